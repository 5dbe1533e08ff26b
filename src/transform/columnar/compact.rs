//! Whether JSON text is already what a record's value is written as: compact, object keys in
//! sorted order and unique, strings without escapes, plain integers. Such text (as producers that
//! serialize with serde_json send) is kept as it is instead of being parsed and written again.

/// Deeper text is parsed (whose limit the strict reader enforces).
const MAX_DEPTH: usize = 100;

/// The length of the canonical JSON value `text` starts with (what follows it is not read), or
/// `None` when the value there is not canonical or not whole.
pub(super) fn canonical_len(text: &[u8]) -> Option<usize> {
    let mut at = 0;
    value(text, &mut at, 0).then_some(at)
}

fn value(t: &[u8], at: &mut usize, depth: usize) -> bool {
    match t.get(*at) {
        Some(b'{') if depth < MAX_DEPTH => object(t, at, depth + 1),
        Some(b'[') if depth < MAX_DEPTH => array(t, at, depth + 1),
        Some(b'"') => string(t, at).is_some(),
        Some(b't') => literal(t, at, b"true"),
        Some(b'f') => literal(t, at, b"false"),
        Some(b'n') => literal(t, at, b"null"),
        Some(b'-' | b'0'..=b'9') => integer(t, at),
        _ => false,
    }
}

fn object(t: &[u8], at: &mut usize, depth: usize) -> bool {
    *at += 1;
    if t.get(*at) == Some(&b'}') {
        *at += 1;
        return true;
    }
    let mut last: Option<&[u8]> = None;
    loop {
        let Some(key) = string(t, at) else { return false };
        // Sorted and unique, as a record's map iterates (byte order is `String`'s order).
        if last.is_some_and(|l| l >= key) || t.get(*at) != Some(&b':') {
            return false;
        }
        last = Some(key);
        *at += 1;
        if !value(t, at, depth) {
            return false;
        }
        match t.get(*at) {
            Some(b',') => *at += 1,
            Some(b'}') => {
                *at += 1;
                return true;
            }
            _ => return false,
        }
    }
}

fn array(t: &[u8], at: &mut usize, depth: usize) -> bool {
    *at += 1;
    if t.get(*at) == Some(&b']') {
        *at += 1;
        return true;
    }
    loop {
        if !value(t, at, depth) {
            return false;
        }
        match t.get(*at) {
            Some(b',') => *at += 1,
            Some(b']') => {
                *at += 1;
                return true;
            }
            _ => return false,
        }
    }
}

/// A string with nothing escaped (and nothing that would need it); its content.
fn string<'a>(t: &'a [u8], at: &mut usize) -> Option<&'a [u8]> {
    if t.get(*at) != Some(&b'"') {
        return None;
    }
    let start = *at + 1;
    let end = start + special(&t[start..])?;
    if t[end] != b'"' {
        return None;
    }
    *at = end + 1;
    Some(&t[start..end])
}

/// Where the first byte that ends or interrupts a JSON string is: a quote, a backslash or a
/// control character. Sixteen bytes at a time where SSE2 is (every x86_64), then eight: most
/// strings are short, and a search routine's set-up costs more than the scan. Inlined into its
/// two readers: a call costs as much as scanning a short string.
#[inline(always)]
pub(super) fn special(bytes: &[u8]) -> Option<usize> {
    #[cfg(target_arch = "x86_64")]
    let at = match sixteen_at_a_time(bytes) {
        Ok(found) => return Some(found),
        Err(clean) => clean,
    };
    #[cfg(not(target_arch = "x86_64"))]
    let at = 0;
    eight_at_a_time(&bytes[at..]).map(|i| at + i)
}

/// `Ok` with where the first special byte is, or `Err` with how far the bytes are clean (the
/// last partial block is left to [`eight_at_a_time`]).
#[cfg(target_arch = "x86_64")]
#[inline]
fn sixteen_at_a_time(bytes: &[u8]) -> Result<usize, usize> {
    use std::arch::x86_64::{
        _mm_cmpeq_epi8, _mm_loadu_si128, _mm_min_epu8, _mm_movemask_epi8, _mm_or_si128, _mm_set1_epi8,
    };
    let mut at = 0;
    while at + 16 <= bytes.len() {
        // SAFETY: SSE2 is part of every x86_64 CPU, and the load reads `bytes[at..at + 16]`.
        let hits = unsafe {
            let x = _mm_loadu_si128(bytes.as_ptr().add(at).cast());
            // Below 0x20 exactly when the unsigned minimum with 0x1f is the byte itself.
            let control = _mm_cmpeq_epi8(_mm_min_epu8(x, _mm_set1_epi8(0x1f)), x);
            let quote = _mm_cmpeq_epi8(x, _mm_set1_epi8(b'"' as i8));
            let backslash = _mm_cmpeq_epi8(x, _mm_set1_epi8(b'\\' as i8));
            _mm_movemask_epi8(_mm_or_si128(_mm_or_si128(quote, backslash), control))
        };
        if hits != 0 {
            return Ok(at + hits.trailing_zeros() as usize);
        }
        at += 16;
    }
    Err(at)
}

/// [`special`] eight bytes at a time in a `u64`.
#[inline]
fn eight_at_a_time(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = 0x0101_0101_0101_0101;
    const HIGH: u64 = 0x8080_8080_8080_8080;
    // High bit set in each byte below `n` (exact up to the first such byte, which is all we read).
    let below = |x: u64, n: u8| x.wrapping_sub(ONES * u64::from(n)) & !x & HIGH;
    let mut chunks = bytes.chunks_exact(8);
    let mut at = 0;
    for chunk in &mut chunks {
        let x = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        let hits = below(x ^ (ONES * u64::from(b'"')), 1) | below(x ^ (ONES * u64::from(b'\\')), 1) | below(x, 0x20);
        if hits != 0 {
            return Some(at + (hits.trailing_zeros() / 8) as usize);
        }
        at += 8;
    }
    let tail = chunks.remainder().iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20)?;
    Some(at + tail)
}

fn literal(t: &[u8], at: &mut usize, word: &[u8]) -> bool {
    let found = t[*at..].starts_with(word);
    *at += word.len();
    found
}

/// An integer that parses to an `i64` or `u64` and prints back the same (no `-0`, no leading
/// zero); anything else, fractions and exponents included, may print otherwise.
fn integer(t: &[u8], at: &mut usize) -> bool {
    let start = *at;
    if t[*at] == b'-' {
        *at += 1;
    }
    let digits = *at;
    while t.get(*at).is_some_and(u8::is_ascii_digit) {
        *at += 1;
    }
    let n = *at - digits;
    let text = &t[start..*at];
    let plain = n > 0 && n <= 18 && (t[digits] != b'0' || n == 1) && text != b"-0";
    plain && !matches!(t.get(*at), Some(b'.' | b'e' | b'E'))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn is_canonical(text: &[u8]) -> bool {
        canonical_len(text) == Some(text.len())
    }

    /// The first quote, backslash or control character, at every offset and chunk position.
    #[test]
    fn special_finds_the_first_byte_that_ends_a_string() {
        for len in 0..72 {
            for at in 0..len {
                for c in [b'"', b'\\', 0, 0x1f, b'\n'] {
                    let mut s = vec![b'a'; len];
                    s[at] = c;
                    if at + 1 < len {
                        s[at + 1] = b'"'; // a later hit never hides the first
                    }
                    assert_eq!(special(&s), Some(at), "{len} {at} {c}");
                }
            }
            assert_eq!(special(&vec![b'x'; len]), None);
            let high: Vec<u8> = (0..len).map(|i| 0x80 + (i % 0x7f) as u8).collect();
            assert_eq!(special(&high), None, "bytes above 0x7f are not special");
            assert_eq!(special(&vec![0x20u8; len]), None, "space is not");
        }
    }

    /// Canonical exactly when parsing and writing again gives the same text.
    #[test]
    fn canonical_means_written_as_serde_json_writes_it() {
        let canonical = [
            r#"{"a":1,"b":[true,false,null],"c":{"d":"é x"}}"#,
            r#"{}"#,
            r#"[]"#,
            r#""text""#,
            r#"-12"#,
            r#"[0,123456789012345678]"#,
            r#"{"region":"europe-west1","version":"1.2.3"}"#,
        ];
        let not = [
            r#"{"b":1,"a":2}"#,
            r#"{"a":1,"a":2}"#,
            r#"{"a": 1}"#,
            r#"{"a":1.5}"#,
            r#"{"a":1e3}"#,
            r#"{"a":-0}"#,
            r#"{"a":01}"#,
            r#"{"a":"x\ny"}"#,
            r#"{"a":"\u00e9"}"#,
            r#"[1,]"#,
            r#"{"a":1}x"#,
            r#"1234567890123456789"#,
            "\"tab\there\"",
        ];
        for text in canonical {
            assert!(is_canonical(text.as_bytes()), "{text}");
            let v: serde_json::Value = serde_json::from_str(text).unwrap();
            assert_eq!(v.to_string(), text);
        }
        for text in not {
            assert!(!is_canonical(text.as_bytes()), "{text}");
        }
        // A value is read to its end and no further.
        assert_eq!(canonical_len(br#"{"a":[1]},"b":2}"#), Some(9));
        assert_eq!(canonical_len(b"12}"), Some(2));
        assert_eq!(canonical_len(b"12.5}"), None);
        assert_eq!(canonical_len(br#"{"a":1"#), None);
    }
}
