//! Payloads straight into typed columns, one pass over each payload's bytes.
//!
//! The decoder takes only what it is sure of: a flat JSON object whose keys are all slots, each
//! value non-null and of its slot's type. Anything else (a null, an unknown or repeated key, an
//! escape it does not read, malformed text, a value of another type) leaves the row to the
//! row-by-row chain, which gives the same result or the precise error it always gave. So a bad
//! payload costs its own row a slower path and never touches its neighbours.

use std::borrow::Cow;

use arrow::array::Array;

use super::column::{Builder, Column, Kind};
use super::compact;
use super::plan::Slot;
use crate::transform::time_text;

/// The latest time a record can write (RFC 3339 has four-digit years): 9999-12-31T23:59:59.999999Z.
const MAX_MICROS: i64 = 253_402_300_799_999_999;

/// The text bytes per row each slot's values took in the last batch. The next batch's builders
/// are sized from them: a builder that grows copies all it holds each time.
#[derive(Debug, Default)]
pub struct Widths(Vec<usize>);

impl Widths {
    fn builder(&self, slot: usize, kind: Kind, rows: usize) -> Builder {
        // An eighth more than last time, for a batch of somewhat longer texts.
        let bytes = self.0.get(slot).map_or(0, |w| rows * (w + w / 8));
        Builder::new(kind, rows, bytes)
    }

    fn learn(&mut self, columns: &[Column]) {
        self.0 = columns
            .iter()
            .map(|c| match c {
                Column::Str(a) | Column::Json(a) if !a.is_empty() => a.value_data().len().div_ceil(a.len()),
                _ => 0,
            })
            .collect();
    }
}

/// Decode every payload; a row the decoder leaves is null in every column and `true` in `slow`.
pub(super) fn decode<'a>(
    slots: &[Slot],
    payloads: impl ExactSizeIterator<Item = &'a [u8]>,
    widths: &mut Widths,
) -> (Vec<Column>, Vec<bool>) {
    let rows = payloads.len();
    let mut builders: Vec<Builder> = slots.iter().enumerate().map(|(i, s)| widths.builder(i, s.kind, rows)).collect();
    let mut slow = Vec::with_capacity(rows);
    // The row each slot last took a value in, counted from 1: a key repeated within a row shows,
    // and so do the slots a row did not fill (or filled before it was left).
    let mut filled: Vec<usize> = vec![0; slots.len()];
    // The slot whose key followed each slot's last time (the last entry: the first key): producers
    // write their keys in one order, so most keys are found at the first comparison.
    let mut next: Vec<usize> = vec![0; slots.len() + 1];
    for (r, payload) in payloads.enumerate() {
        // Every payload is checked whole, so the check is SIMD (simdutf8, already arrow-json's).
        let whole = simdutf8::basic::from_utf8(payload)
            .ok()
            .and_then(|text| Row { slots, text, at: 0, number: r + 1 }.read(&mut builders, &mut filled, &mut next))
            .is_some();
        slow.push(!whole);
        for (b, &f) in builders.iter_mut().zip(&filled) {
            if f == r + 1 && !whole {
                b.truncate(r);
            }
            if f != r + 1 || !whole {
                b.append_null();
            }
        }
    }
    let columns: Vec<Column> = builders.into_iter().map(Builder::finish).collect();
    widths.learn(&columns);
    (columns, slow)
}

/// A reader over one payload.
struct Row<'s, 'a> {
    slots: &'s [Slot],
    text: &'a str,
    at: usize,
    /// Which row of the batch, counted from 1.
    number: usize,
}

impl<'a> Row<'_, 'a> {
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    fn peek(&self) -> Option<u8> {
        self.bytes().get(self.at).copied()
    }

    fn skip_ws(&mut self) {
        while let Some(b' ' | b'\n' | b'\r' | b'\t') = self.peek() {
            self.at += 1;
        }
    }

    fn eat(&mut self, c: u8) -> Option<()> {
        self.skip_ws();
        (self.peek()? == c).then(|| self.at += 1)
    }

    /// The whole object into `builders` (each slot it fills marked in `filled`), or `None` to
    /// leave the row to the row-by-row chain.
    fn read(mut self, builders: &mut [Builder], filled: &mut [usize], next: &mut [usize]) -> Option<()> {
        let mut previous = self.slots.len();
        self.eat(b'{')?;
        self.skip_ws();
        if self.peek()? == b'}' {
            self.at += 1;
        } else {
            loop {
                self.skip_ws();
                let key = self.plain_string()?;
                let guess = next[previous];
                let slot = match self.slots.get(guess) {
                    Some(s) if s.name == key => guess,
                    _ => self.slots.iter().position(|s| s.name == key)?,
                };
                next[previous] = slot;
                previous = slot;
                self.eat(b':')?;
                self.skip_ws();
                if filled[slot] == self.number {
                    return None; // a repeated key: the strict reader names it
                }
                self.value(&self.slots[slot], &mut builders[slot])?;
                filled[slot] = self.number;
                self.skip_ws();
                match self.peek()? {
                    b',' => self.at += 1,
                    b'}' => {
                        self.at += 1;
                        break;
                    }
                    _ => return None,
                }
            }
        }
        self.skip_ws();
        (self.at == self.bytes().len()).then_some(())
    }

    /// One value of `slot`'s kind, appended to `b` once it is read whole.
    fn value(&mut self, slot: &Slot, b: &mut Builder) -> Option<()> {
        match (slot.kind, self.peek()?) {
            (Kind::Str, b'"') => b.push_str(&self.string()?),
            (Kind::Int, b'-' | b'0'..=b'9') => b.push_i64(self.integer()?),
            (Kind::Float, b'-' | b'0'..=b'9') => b.push_f64(self.float()?),
            (Kind::Bool, b't') => self.literal("true").map(|_| b.push_bool(true))?,
            (Kind::Bool, b'f') => self.literal("false").map(|_| b.push_bool(false))?,
            (Kind::Time, b'"') => {
                let s = self.string()?;
                if !slot.any_time && matches!(s, Cow::Owned(_)) {
                    return None; // escaped: the strict reader decides
                }
                // Canonical text (what records and most producers write) without a date in between.
                let m = match crate::rfc3339::canonical_micros(s.as_bytes()) {
                    Some(m) => m,
                    None => match slot.any_time {
                        true => time_text::parse_text(&s).ok()?.timestamp_micros(),
                        false => crate::schema::parse_timestamp(&s)?.timestamp_micros(),
                    },
                };
                b.push_i64(micros(m)?);
            }
            (Kind::Time, b'-' | b'0'..=b'9') if slot.any_time => {
                let n: serde_json::Value = serde_json::from_str(self.number()?).ok()?;
                b.push_i64(micros(time_text::parse_any(&n).ok()?.timestamp_micros())?);
            }
            (Kind::Json, b'n') => return None,
            (Kind::Json, _) => {
                let start = self.at;
                // Most values are already canonical: one pass finds where such a value ends.
                if let Some(len) = compact::canonical_len(&self.bytes()[start..]) {
                    self.at += len;
                    b.push_str(&self.text[start..self.at]);
                    return Some(());
                }
                self.skip_value(0)?;
                let raw = &self.text[start..self.at];
                let value = crate::json::from_slice(raw.as_bytes()).ok()?;
                b.push_str(&value.to_string());
            }
            _ => return None,
        }
        Some(())
    }

    fn literal(&mut self, word: &str) -> Option<()> {
        let end = self.at + word.len();
        (self.bytes().get(self.at..end)? == word.as_bytes()).then(|| self.at = end)
    }

    /// A string without escapes, borrowed.
    fn plain_string(&mut self) -> Option<&'a str> {
        match self.string()? {
            Cow::Borrowed(s) => Some(s),
            Cow::Owned(_) => None,
        }
    }

    /// A string; escapes other than a `\u` surrogate are read. Inlined: a payload holds twenty
    /// or so, and a call's set-up cost as much as scanning a short one.
    #[inline(always)]
    fn string(&mut self) -> Option<Cow<'a, str>> {
        if self.peek()? != b'"' {
            return None;
        }
        self.at += 1;
        let start = self.at;
        let end = start + compact::special(&self.bytes()[start..])?;
        self.at = end;
        match self.bytes()[end] {
            b'"' => {
                self.at += 1;
                Some(Cow::Borrowed(&self.text[start..end]))
            }
            b'\\' => self.escaped(start).map(Cow::Owned),
            _ => None, // a raw control character: JSON refuses it
        }
    }

    /// The rest of a string that holds an escape, from its start.
    fn escaped(&mut self, start: usize) -> Option<String> {
        let mut out = String::from(&self.text[start..self.at]);
        loop {
            let from = self.at;
            while !matches!(self.peek()?, b'"' | b'\\' | 0..=0x1f) {
                self.at += 1;
            }
            out.push_str(&self.text[from..self.at]);
            match self.peek()? {
                b'"' => {
                    self.at += 1;
                    return Some(out);
                }
                b'\\' => {
                    let c = *self.bytes().get(self.at + 1)?;
                    self.at += 2;
                    out.push(crate::json::escape(c, self.text, &mut self.at)?);
                }
                _ => return None,
            }
        }
    }

    /// A number's text, checked against JSON's grammar.
    fn number(&mut self) -> Option<&'a str> {
        let start = self.at;
        let digits = |r: &mut Self| {
            let from = r.at;
            while let Some(b'0'..=b'9') = r.peek() {
                r.at += 1;
            }
            r.at - from
        };
        if self.peek() == Some(b'-') {
            self.at += 1;
        }
        let int_start = self.at;
        match digits(self) {
            0 => return None,
            n if n > 1 && self.bytes()[int_start] == b'0' => return None,
            _ => {}
        }
        if self.peek() == Some(b'.') {
            self.at += 1;
            if digits(self) == 0 {
                return None;
            }
        }
        if let Some(b'e' | b'E') = self.peek() {
            self.at += 1;
            if let Some(b'+' | b'-') = self.peek() {
                self.at += 1;
            }
            if digits(self) == 0 {
                return None;
            }
        }
        Some(&self.text[start..self.at])
    }

    /// An integer that a record holds as one within 64 bits.
    fn integer(&mut self) -> Option<i64> {
        let text = self.number()?;
        if text == "-0" || text.contains(['.', 'e', 'E']) {
            return None;
        }
        text.parse().ok()
    }

    /// Any number, as the record's reader turns it into a float.
    fn float(&mut self) -> Option<f64> {
        let x: f64 = self.number()?.parse().ok()?;
        x.is_finite().then_some(x)
    }

    /// Past one JSON value of any shape (checked later by the strict reader).
    fn skip_value(&mut self, depth: usize) -> Option<()> {
        if depth > 100 {
            return None;
        }
        self.skip_ws();
        match self.peek()? {
            b'"' => self.string().map(drop),
            b'{' | b'[' => {
                let close = if self.peek()? == b'{' { b'}' } else { b']' };
                self.at += 1;
                loop {
                    self.skip_ws();
                    match self.peek()? {
                        c if c == close => {
                            self.at += 1;
                            return Some(());
                        }
                        b',' | b':' => self.at += 1,
                        _ => self.skip_value(depth + 1)?,
                    }
                }
            }
            b't' => self.literal("true"),
            b'f' => self.literal("false"),
            b'n' => self.literal("null"),
            _ => self.number().map(drop),
        }
    }
}

/// A time a record can hold, in microseconds.
fn micros(m: i64) -> Option<i64> {
    (0..=MAX_MICROS).contains(&m).then_some(m)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn slots() -> Vec<Slot> {
        let s = |name: &str, kind, any_time| Slot { name: name.into(), kind, any_time, in_schema: true };
        vec![
            s("s", Kind::Str, false),
            s("i", Kind::Int, false),
            s("f", Kind::Float, false),
            s("b", Kind::Bool, false),
            s("t", Kind::Time, false),
            s("any", Kind::Time, true),
            s("j", Kind::Json, false),
        ]
    }

    fn one(payload: &str) -> Option<Vec<Option<serde_json::Value>>> {
        let slots = slots();
        let (cols, slow) = decode(&slots, [payload.as_bytes()].into_iter(), &mut Widths::default());
        (!slow[0]).then(|| cols.iter().map(|c| c.value(0)).collect())
    }

    #[test]
    fn reads_every_kind() {
        let row = one(r#" {"s": "a\"b\u00e9\n", "i": -12, "f": 2.5e1, "b": true, "t": "2026-11-26T10:00:00+01:00",
                "any": 1795683600250, "j": {"z": [1, {"y": null}], "a": "x"}} "#)
        .unwrap();
        let t = "2026-11-26T09:00:00.000000Z";
        assert_eq!(
            row,
            [
                Some(json!("a\"bé\n")),
                Some(json!(-12)),
                Some(json!(25.0)),
                Some(json!(true)),
                Some(json!(t)),
                Some(json!("2026-11-26T09:00:00.250000Z")),
                Some(json!({"a": "x", "z": [1, {"y": null}]})),
            ]
        );
        assert_eq!(one("{}").unwrap(), vec![None; 7]);
        for (j, want) in
            [(r#"{"a":1}"#, json!({"a": 1})), ("12.50", json!(12.5)), (r#"{"b":1, "a":[]}"#, json!({"a": [], "b": 1}))]
        {
            assert_eq!(one(&format!(r#"{{"j": {j}, "i": 1}}"#)).unwrap()[6], Some(want), "{j}");
        }
        assert_eq!(one(r#"{"any": " 2026-11-26 09:00:00 "}"#).unwrap()[5], Some(json!(t)));
    }

    /// Whatever the decoder is not sure of goes to the row-by-row chain, never into a column.
    #[test]
    fn leaves_what_it_is_not_sure_of() {
        for payload in [
            "",
            "[1]",
            "{",
            r#"{"s": "a",}"#,
            r#"{"s": "a"} x"#,
            r#"{"s": null}"#,
            r#"{"s": 1}"#,
            r#"{"other": 1}"#,
            r#"{"s": "a", "s": "b"}"#,
            r#"{"s": "\ud83d\ude00"}"#,
            r#"{"s": "\u+041"}"#,
            "{\"s\": \"tab\there\"}",
            r#"{"s": "\x"}"#,
            r#"{"i": 1.0}"#,
            r#"{"i": 01}"#,
            r#"{"i": -0}"#,
            r#"{"i": 9223372036854775808}"#,
            r#"{"f": 1e400}"#,
            r#"{"f": .5}"#,
            r#"{"b": True}"#,
            r#"{"t": "2026-11-26 10:00:00"}"#,
            r#"{"t": 1795683600}"#,
            r#"{"any": "yesterday"}"#,
            r#"{"any": "1969-12-31T23:59:59Z"}"#,
            r#"{"j": null}"#,
            r#"{"j": {"a": 1, "a": 2}}"#,
            r#"{"j": [1,]}"#,
            r#"{"s\u0041": "a"}"#,
            r#"{"j": {"a":1}x}"#,
            r#"{"j": 1 2}"#,
        ] {
            assert!(one(payload).is_none(), "{payload}");
        }
        let (_, slow) = decode(&slots(), [b"{\"s\": \"\xff\"}".as_slice()].into_iter(), &mut Widths::default());
        assert!(slow[0], "invalid UTF-8");
    }

    /// A row the decoder leaves is null everywhere, and its neighbours are read whole.
    #[test]
    fn a_bad_row_leaves_its_neighbours_alone() {
        let slots = slots();
        let payloads: [&[u8]; 3] = [br#"{"s": "a", "i": 1}"#, br#"{"s": "b", "i": "x"}"#, br#"{"s": "c"}"#];
        let (cols, slow) = decode(&slots, payloads.into_iter(), &mut Widths::default());
        assert_eq!(slow, [false, true, false]);
        let s: Vec<_> = (0..3).map(|r| cols[0].value(r)).collect();
        assert_eq!(s, [Some(json!("a")), None, Some(json!("c"))]);
        assert_eq!(cols[1].value(0), Some(json!(1)));
        assert_eq!(cols[1].value(1), None);

        // A row left after every kind took a value (here at a repeated key) is taken back whole.
        let left = r#"{"b": true, "f": 1.5, "i": 2, "t": "2026-11-26T09:00:00Z", "j": {"a":1}, "s": "x", "s": "y"}"#;
        let next = r#"{"s": "é", "j": [2], "b": false}"#;
        let (cols, slow) = decode(&slots, [left.as_bytes(), next.as_bytes()].into_iter(), &mut Widths::default());
        assert_eq!(slow, [true, false]);
        for c in &cols {
            assert_eq!(c.value(0), None);
            assert_eq!(c.len(), 2);
        }
        let row: Vec<_> = cols.iter().map(|c| c.value(1)).collect();
        assert_eq!(row, [Some(json!("é")), None, None, Some(json!(false)), None, None, Some(json!([2]))]);
    }
}
