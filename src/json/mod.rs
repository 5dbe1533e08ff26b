//! JSON text from outside (push bodies, payloads) to a `serde_json::Value`, strictly.
//!
//! `serde_json::from_slice::<Value>` keeps the last of two equal keys silently, so
//! `{"user": "alice", "user": "admin"}` would read differently here than in a consumer that keeps
//! the first. sluice refuses such text instead: the error names the key. The same reader takes
//! YAML config files (through [`deserialize`]). Nesting is bounded by the parsers' recursion limits
//! (128 in serde_json and serde_yaml_ng), so nothing downstream that walks a record recurses deeper.

mod fast;
mod yaml;

pub(crate) use fast::escape;
pub use yaml::from_yaml_str;

use std::fmt;

use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};
use serde_json::map::Entry;
use serde_json::{Map, Number, Value};

/// Parse `bytes` as one JSON value, refusing duplicate keys in any object.
pub fn from_slice(bytes: &[u8]) -> Result<Value, serde_json::Error> {
    // Text checked as UTF-8 once is read without checking each string again, by the fast reader
    // when it can; text that is not UTF-8 goes the byte way, whose error says where.
    match std::str::from_utf8(bytes) {
        Ok(text) => fast::parse(text).map_or_else(|| serde_json::from_str::<Strict>(text).map(|s| s.0), Ok),
        Err(_) => serde_json::from_slice::<Strict>(bytes).map(|s| s.0),
    }
}

/// Read one value from any self-describing format (YAML config files too), refusing duplicate keys.
pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Value, D::Error> {
    Strict::deserialize(d).map(|s| s.0)
}

/// Whether `e` (from [`from_slice`]) is a duplicate key rather than malformed text.
pub fn is_duplicate_key(e: &serde_json::Error) -> bool {
    e.is_data()
}

/// A `Value` whose objects had no repeated key.
struct Strict(Value);

impl<'de> Deserialize<'de> for Strict {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_any(StrictVisitor).map(Strict)
    }
}

struct StrictVisitor;

impl<'de> Visitor<'de> for StrictVisitor {
    type Value = Value;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("any JSON value")
    }

    fn visit_bool<E>(self, v: bool) -> Result<Value, E> {
        Ok(Value::Bool(v))
    }
    fn visit_i64<E>(self, v: i64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    fn visit_u64<E>(self, v: u64) -> Result<Value, E> {
        Ok(Value::Number(v.into()))
    }
    // YAML integers beyond 64 bits; read as JSON reads them, as a float.
    fn visit_i128<E>(self, v: i128) -> Result<Value, E> {
        Ok(i64::try_from(v).map_or_else(|_| float(v as f64), Value::from))
    }
    fn visit_u128<E>(self, v: u128) -> Result<Value, E> {
        Ok(u64::try_from(v).map_or_else(|_| float(v as f64), Value::from))
    }
    fn visit_f64<E>(self, v: f64) -> Result<Value, E> {
        Ok(float(v))
    }
    fn visit_str<E>(self, v: &str) -> Result<Value, E> {
        Ok(Value::String(v.to_owned()))
    }
    fn visit_string<E>(self, v: String) -> Result<Value, E> {
        Ok(Value::String(v))
    }
    fn visit_unit<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_none<E>(self) -> Result<Value, E> {
        Ok(Value::Null)
    }
    fn visit_some<D: Deserializer<'de>>(self, d: D) -> Result<Value, D::Error> {
        deserialize(d)
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Value, A::Error> {
        let mut items = Vec::with_capacity(seq.size_hint().unwrap_or(0));
        while let Some(Strict(v)) = seq.next_element()? {
            items.push(v);
        }
        Ok(Value::Array(items))
    }
    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Value, A::Error> {
        let mut out = Map::new();
        while let Some(key) = map.next_key::<String>()? {
            // One search per key: the entry both finds a repeat and is where the value goes.
            match out.entry(key) {
                Entry::Occupied(repeat) => {
                    let shown: String = repeat.key().chars().take(64).collect();
                    return Err(de::Error::custom(format_args!("duplicate key '{shown}'")));
                }
                Entry::Vacant(slot) => {
                    let Strict(v) = map.next_value()?;
                    slot.insert(v);
                }
            }
        }
        Ok(Value::Object(out))
    }
}

/// A float as a JSON number; serde_json never hands over a non-finite one (1e400 is "number out of
/// range"), YAML's `.inf` and `.nan` become null as in serde_json's own Value.
fn float(v: f64) -> Value {
    Number::from_f64(v).map_or(Value::Null, Value::Number)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn parses_like_serde_json() {
        let text = br#"{"a": [1, -2, 2.5, true, null, "x"], "b": {"c": 18446744073709551615}}"#;
        assert_eq!(from_slice(text).unwrap(), serde_json::from_slice::<Value>(text).unwrap());
    }

    #[test]
    fn refuses_duplicate_keys_at_any_depth() {
        let e = from_slice(br#"{"user": "alice", "user": "admin"}"#).unwrap_err();
        assert!(is_duplicate_key(&e));
        assert_eq!(e.to_string(), "duplicate key 'user' at line 1 column 24");
        let e = from_slice(br#"{"a": [{"b": 1, "b": 2}]}"#).unwrap_err();
        assert!(e.to_string().starts_with("duplicate key 'b'"));
        assert!(!is_duplicate_key(&from_slice(b"{").unwrap_err()));
        assert_eq!(from_slice(br#"{"a": {"b": 1}, "b": {"b": 2}}"#).unwrap(), json!({"a": {"b": 1}, "b": {"b": 2}}));
    }

    /// Valid UTF-8 is read as text, anything else as bytes: both give serde_json's own errors.
    #[test]
    fn text_and_bytes_read_alike() {
        let cases: &[&[u8]] = &[
            b"{\"a\": \"\\u00e9\\ud83d\\ude00\", \"b\": \"\xc3\xa9\"}",
            br#"{"a": "\ud800"}"#,
            br#"{"a": "x"#,
            b"{\"a\": \"\x01\"}",
            br#"{"a": 1,}"#,
            b"",
        ];
        for &text in cases {
            let strict = from_slice(text).map_err(|e| e.to_string());
            let plain = serde_json::from_slice::<Value>(text).map_err(|e| e.to_string());
            assert_eq!(strict, plain, "{}", String::from_utf8_lossy(text));
        }
        let e = from_slice(b"{\"a\": \"\xff\"}").unwrap_err().to_string();
        assert_eq!(e, serde_json::from_slice::<Value>(b"{\"a\": \"\xff\"}").unwrap_err().to_string());
    }

    #[test]
    fn bounds_nesting_and_numbers() {
        let deep = "[".repeat(100_000);
        assert!(from_slice(deep.as_bytes()).unwrap_err().to_string().starts_with("recursion limit exceeded"));
        assert!(from_slice(b"1e400").unwrap_err().to_string().starts_with("number out of range"));
        // `-0` stays a float minus zero, as serde_json reads it; INT64 fields refuse it in `validate`.
        assert_eq!(from_slice(b"-0").unwrap(), json!(-0.0));
        assert_eq!(from_slice(b"18446744073709551617").unwrap(), json!(18446744073709551617.0));
    }
}
