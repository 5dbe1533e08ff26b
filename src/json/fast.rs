//! The common payload read without serde's machinery: one pass over the text building the `Value`
//! directly, each object's members handed to the map in bulk (sorted once, no search per key).
//!
//! It only answers when it is sure: anything it does not handle itself (a `\u` surrogate, a
//! repeated key, nesting deeper than [`MAX_DEPTH`], malformed text) gives `None`, and the caller
//! reads the text with serde_json, which then gives the same value or its precise error. Numbers
//! other than plain integers are read by serde_json from their own text, so they are the same
//! numbers bit for bit. A test holds `parse` to serde_json on random and damaged documents.

use serde_json::{Map, Number, Value};

/// Deeper text goes to serde_json (whose limit is 128), so its error stays the one reported.
const MAX_DEPTH: usize = 100;

/// The character the JSON escape `\c` stands for; `at` is just past `c`, and moves past a `\u`'s
/// four hex digits. `None` for an escape JSON does not have, and for a `\u` surrogate (serde_json
/// pairs them).
pub(crate) fn escape(c: u8, text: &str, at: &mut usize) -> Option<char> {
    Some(match c {
        b'"' => '"',
        b'\\' => '\\',
        b'/' => '/',
        b'b' => '\u{8}',
        b'f' => '\u{c}',
        b'n' => '\n',
        b'r' => '\r',
        b't' => '\t',
        b'u' => {
            let hex = text.get(*at..*at + 4)?;
            if !hex.bytes().all(|b| b.is_ascii_hexdigit()) {
                return None; // (from_str_radix would take a sign)
            }
            *at += 4;
            char::from_u32(u32::from_str_radix(hex, 16).ok()?)?
        }
        _ => return None,
    })
}

/// `text` as one JSON value, or `None` to let serde_json read it.
pub(super) fn parse(text: &str) -> Option<Value> {
    let mut r = Reader { text, bytes: text.as_bytes(), at: 0 };
    let v = r.value(0)?;
    r.skip_ws();
    (r.at == r.bytes.len()).then_some(v)
}

struct Reader<'a> {
    text: &'a str,
    bytes: &'a [u8],
    at: usize,
}

impl Reader<'_> {
    fn peek(&self) -> Option<u8> {
        self.bytes.get(self.at).copied()
    }

    fn next(&mut self) -> Option<u8> {
        let c = self.peek()?;
        self.at += 1;
        Some(c)
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.at += 1;
        }
    }

    fn value(&mut self, depth: usize) -> Option<Value> {
        self.skip_ws();
        match self.peek()? {
            b'{' => self.object(depth + 1),
            b'[' => self.array(depth + 1),
            b'"' => self.string().map(Value::String),
            b't' => self.literal("true", Value::Bool(true)),
            b'f' => self.literal("false", Value::Bool(false)),
            b'n' => self.literal("null", Value::Null),
            b'-' | b'0'..=b'9' => self.number(),
            _ => None,
        }
    }

    fn literal(&mut self, word: &str, v: Value) -> Option<Value> {
        let end = self.at + word.len();
        (self.bytes.get(self.at..end)? == word.as_bytes()).then(|| {
            self.at = end;
            v
        })
    }

    fn object(&mut self, depth: usize) -> Option<Value> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.at += 1;
        self.skip_ws();
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(Value::Object(Map::new()));
        }
        // Room for a typical record's members, so the buffer does not grow; the map takes it over.
        let mut entries: Vec<(String, Value)> = Vec::with_capacity(16);
        loop {
            self.skip_ws();
            if self.peek()? != b'"' {
                return None;
            }
            let key = self.string()?;
            self.skip_ws();
            if self.next()? != b':' {
                return None;
            }
            let v = self.value(depth)?;
            entries.push((key, v));
            self.skip_ws();
            match self.next()? {
                b',' => continue,
                b'}' => break,
                _ => return None,
            }
        }
        // The map sorts the members once and builds in bulk, keeping one of each key; a map
        // shorter than the members means a repeated key, which serde_json reports with its place.
        let members = entries.len();
        let map: Map<String, Value> = entries.into_iter().collect();
        (map.len() == members).then_some(Value::Object(map))
    }

    fn array(&mut self, depth: usize) -> Option<Value> {
        if depth > MAX_DEPTH {
            return None;
        }
        self.at += 1;
        let mut items = Vec::new();
        self.skip_ws();
        if self.peek()? == b']' {
            self.at += 1;
            return Some(Value::Array(items));
        }
        loop {
            items.push(self.value(depth)?);
            self.skip_ws();
            match self.next()? {
                b',' => continue,
                b']' => return Some(Value::Array(items)),
                _ => return None,
            }
        }
    }

    /// A string from its opening quote; text without escapes is copied in one piece.
    fn string(&mut self) -> Option<String> {
        self.at += 1;
        let start = self.at;
        let end = start + plain_len(&self.bytes[start..]);
        match *self.bytes.get(end)? {
            b'"' => {
                self.at = end + 1;
                Some(self.text[start..end].to_owned())
            }
            b'\\' => {
                self.at = end;
                let mut out = self.text[start..end].to_owned();
                self.escaped(&mut out)?;
                Some(out)
            }
            _ => None, // a control character: serde_json's error
        }
    }

    /// The rest of a string from its first backslash, into `out`.
    fn escaped(&mut self, out: &mut String) -> Option<()> {
        loop {
            match self.next()? {
                b'"' => return Some(()),
                b'\\' => {
                    let c = self.next()?;
                    out.push(escape(c, self.text, &mut self.at)?);
                }
                _ => {
                    let start = self.at - 1;
                    let end = start + plain_len(&self.bytes[start..]);
                    out.push_str(&self.text[start..end]);
                    self.at = end;
                    if self.peek()? < 0x20 {
                        return None;
                    }
                }
            }
        }
    }

    /// Plain integers are read here; any other number (fraction, exponent, -0, 19 digits or more)
    /// by serde_json from its own text, so it is the number serde_json makes of it.
    fn number(&mut self) -> Option<Value> {
        let start = self.at;
        let negative = self.peek() == Some(b'-');
        self.at += usize::from(negative);
        let digits = self.at;
        while let Some(b'0'..=b'9') = self.peek() {
            self.at += 1;
        }
        let n = self.at - digits;
        let plain = (1..=18).contains(&n)
            && !matches!(self.peek(), Some(b'.' | b'e' | b'E'))
            && (self.bytes[digits] != b'0' || (n == 1 && !negative));
        if plain {
            let v = self.bytes[digits..self.at].iter().fold(0u64, |v, d| v * 10 + u64::from(d - b'0'));
            return Some(if negative { Value::from(-(v as i64)) } else { Value::from(v) });
        }
        while let Some(b'0'..=b'9' | b'.' | b'e' | b'E' | b'+' | b'-') = self.peek() {
            self.at += 1;
        }
        serde_json::from_str::<Number>(&self.text[start..self.at]).ok().map(Value::Number)
    }
}

/// How many bytes from the start of `s` need no attention in a string: up to the first `"`, `\`
/// or control character (or the end). Eight bytes at a time.
fn plain_len(s: &[u8]) -> usize {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    let mut at = 0;
    while let Some(chunk) = s.get(at..at + 8) {
        let w = u64::from_le_bytes(chunk.try_into().expect("8 bytes"));
        let zero_in = |v: u64| v.wrapping_sub(ONES) & !v & HIGH;
        // Bytes below 0x20, and bytes equal to '"' or '\'. A borrow can only flag bytes above a
        // flagged one, so the lowest flag is always a real one.
        let hits = (w.wrapping_sub(ONES * 0x20) & !w & HIGH) | zero_in(w ^ (ONES * 0x22)) | zero_in(w ^ (ONES * 0x5c));
        if hits != 0 {
            return at + (hits.trailing_zeros() / 8) as usize;
        }
        at += 8;
    }
    at + s[at..].iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20).unwrap_or(s.len() - at)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::publish::sample::{Generator, Kind, Rng};

    /// What `from_slice` gives without the fast reader.
    fn serde(text: &str) -> Result<Value, String> {
        serde_json::from_str::<super::super::Strict>(text).map(|s| s.0).map_err(|e| e.to_string())
    }

    /// JSON text written by hand, to reach what `serde_json::to_string` never writes: repeated
    /// keys, escapes of every kind, odd spacing, numbers in every notation, deep nesting.
    fn write_value(r: &mut Rng, depth: u32, out: &mut String) {
        let ws = |r: &mut Rng, out: &mut String| {
            for _ in 0..r.below(3) {
                out.push(*r.pick(&[' ', '\n', '\t', '\r']));
            }
        };
        ws(r, out);
        match r.below(if depth > 5 { 4 } else { 6 }) {
            0 => out.push_str(r.pick::<&str>(&["true", "false", "null"])),
            1 => out.push_str(r.pick::<&str>(NUMBERS)),
            2 => out.push_str(&(r.next_u64() as i64 >> r.below(64)).to_string()),
            3 => write_string(r, out),
            4 => {
                out.push('[');
                for i in 0..r.below(4) {
                    if i > 0 {
                        out.push(',');
                    }
                    write_value(r, depth + 1, out);
                }
                out.push(']');
            }
            _ => {
                out.push('{');
                for i in 0..r.below(6) {
                    if i > 0 {
                        out.push(',');
                    }
                    ws(r, out);
                    write_string(r, out);
                    ws(r, out);
                    out.push(':');
                    write_value(r, depth + 1, out);
                }
                out.push('}');
            }
        }
        ws(r, out);
    }

    const NUMBERS: &[&str] = &[
        "0",
        "-0",
        "7",
        "-7",
        "12.5",
        "-0.0",
        "1e3",
        "1E+2",
        "2.5e-3",
        "01",
        "-",
        "1.",
        ".5",
        "1e400",
        "999999999999999999",
        "-999999999999999999",
        "1000000000000000000",
        "18446744073709551615",
        "18446744073709551616",
        "-9223372036854775808",
        "-9223372036854775809",
        "0.1",
        "123456.789012345678",
    ];

    fn write_string(r: &mut Rng, out: &mut String) {
        out.push('"');
        for _ in 0..r.below(8) {
            out.push_str(r.pick::<&str>(&[
                "a",
                "b",
                "key",
                "é",
                "😀",
                "\\\"",
                "\\\\",
                "\\/",
                "\\n",
                "\\t",
                "\\b",
                "\\f",
                "\\r",
                "\\u00e9",
                "\\u0000",
                "\\ud83d\\ude00",
                "\\ud800",
                "\\uZZZZ",
                "\\x",
                "\u{1}",
                "\t",
                "long text without escapes ",
            ]));
        }
        out.push('"');
    }

    /// Whatever the fast reader answers is what serde_json answers, on documents whole and damaged;
    /// and it does answer most of the whole ones.
    #[test]
    fn agrees_with_serde_json() {
        let mut r = Rng::new(11);
        let (mut whole, mut answered) = (0, 0);
        for _ in 0..20_000 {
            let mut text = String::new();
            write_value(&mut r, 0, &mut text);
            let mut texts = vec![text.clone()];
            // Damage: a byte cut, a byte added, the text cut short.
            let bytes = text.as_bytes();
            let at = r.below(bytes.len() as u64 + 1) as usize;
            for damaged in [
                [&bytes[..at], &bytes[(at + 1).min(bytes.len())..]].concat(),
                [&bytes[..at], *r.pick::<&[u8]>(&[b"\"", b",", b"}", b"]", b"\\", b"{", b"1"]), &bytes[at..]].concat(),
                bytes[..at].to_vec(),
            ] {
                if let Ok(t) = String::from_utf8(damaged) {
                    texts.push(t);
                }
            }
            for (i, t) in texts.iter().enumerate() {
                if let Some(v) = parse(t) {
                    assert_eq!(Ok(v), serde(t), "{t:?}");
                    answered += usize::from(i == 0);
                }
            }
            whole += 1;
        }
        assert!(answered * 2 > whole, "the fast reader answered only {answered} of {whole} whole documents");
    }

    #[test]
    fn reads_every_sample_event_itself() {
        for kind in [Kind::Log, Kind::Health, Kind::ConfigChange] {
            let mut g = Generator::new(kind, 3);
            for _ in 0..1000 {
                let text = g.next_event().to_string();
                assert_eq!(parse(&text).as_ref(), Some(&serde(&text).unwrap()), "{text}");
            }
        }
    }

    #[test]
    fn leaves_to_serde_json_what_it_must() {
        for text in [r#"{"a": 1, "a": 2}"#, r#""\ud83d\ude00""#, "1e400", "[1,]", "{\"a\": \"\u{1}\"}", ""] {
            assert_eq!(parse(text), None, "{text}");
        }
        // Numbers other than plain integers are serde_json's own.
        assert_eq!(parse("-0"), Some(serde_json::json!(-0.0)));
        let deep = "[".repeat(MAX_DEPTH + 1) + &"]".repeat(MAX_DEPTH + 1);
        assert_eq!(parse(&deep), None);
        let fine = "[".repeat(MAX_DEPTH) + &"]".repeat(MAX_DEPTH);
        assert!(parse(&fine).is_some());
        assert_eq!(plain_len(b"0123456789abcdef\"x"), 16);
        assert_eq!(plain_len("héllo\u{1f}".as_bytes()), 6);
        assert_eq!(plain_len(b"ab\\"), 2);
        assert_eq!(plain_len(b"abc"), 3);
    }
}
