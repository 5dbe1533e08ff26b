//! `timestamp`: normalise time fields to RFC 3339 UTC with microseconds (`…T10:00:00.123456Z`).
//!
//! `- timestamp: {fields: [timestamp], if_missing: skip | error | publish_time | now}`
//!
//! Accepted: RFC 3339 with any offset; `YYYY-MM-DD HH:MM:SS[.frac]` and `YYYY-MM-DDTHH:MM:SS[.frac]`
//! without a zone (taken as UTC); epoch numbers or numeric strings, whose unit is read from their
//! magnitude: below 1e11 seconds, below 1e14 milliseconds, below 1e17 microseconds, else
//! nanoseconds. So every date from 1973 to 5138 is read right whatever the unit. Integers are
//! converted exactly (nanoseconds truncated to the microsecond); fractions round to the microsecond.
//! A missing or null field follows `if_missing` (default `skip`: leave it absent).

use arrow::array::Array;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::columnar::{Column, Columnar, Kind, Planner, Rows};
#[cfg(test)]
use super::time_text::NOT_A_TIMESTAMP;
pub use super::time_text::{parse_any, parse_text};
use super::{parse_paths, BuildContext, FieldError, Stage, Verdict};
use crate::event::Event;
use crate::path::FieldPath;
use crate::schema::format_timestamp;

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum IfMissing {
    #[default]
    Skip,
    Error,
    PublishTime,
    Now,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub fields: Vec<String>,
    #[serde(default)]
    pub if_missing: IfMissing,
}

pub struct Timestamp {
    fields: Vec<FieldPath>,
    if_missing: IfMissing,
    /// Wall clock for `if_missing: now`, replaceable in tests.
    now: fn() -> DateTime<Utc>,
    /// On columns: each field's slot, whose values the decoder already read as times.
    slots: Vec<usize>,
}

impl Config {
    pub fn build(&self, _ctx: &BuildContext) -> Result<Timestamp, FieldError> {
        if self.fields.is_empty() {
            return Err(FieldError::new("fields", "expected at least one field"));
        }
        Ok(Timestamp {
            fields: parse_paths("fields", &self.fields)?,
            if_missing: self.if_missing,
            now: Utc::now,
            slots: vec![],
        })
    }
}

/// The offending value as JSON text, cut to about 60 characters for the reason.
fn shown(v: &Value) -> String {
    let s = v.to_string();
    match s.char_indices().nth(60) {
        Some((i, _)) => format!("{}…", &s[..i]),
        None => s,
    }
}

impl Stage for Timestamp {
    fn apply(&mut self, event: &mut Event) -> Result<Verdict, String> {
        for p in &self.fields {
            // Replaced where it is (one search, the key kept); written anew when it was missing.
            if let Some(slot) = p.get_mut(&mut event.record).filter(|v| !v.is_null()) {
                let t = parse_any(slot).map_err(|why| format!("field '{p}': {why}, found {}", shown(slot)))?;
                *slot = Value::String(format_timestamp(t));
                continue;
            }
            let t = match self.if_missing {
                IfMissing::Skip => continue,
                IfMissing::Error => return Err(format!("field '{p}' is missing")),
                IfMissing::PublishTime => event.publish_time,
                IfMissing::Now => (self.now)(),
            };
            p.set(&mut event.record, Value::String(format_timestamp(t)))?;
        }
        Ok(Verdict::Keep)
    }

    fn columnar(&mut self) -> Option<&mut dyn Columnar> {
        Some(self)
    }
}

/// Top-level TIMESTAMP fields: the decoder reads every accepted form into microseconds (a value
/// it cannot read leaves the row to this stage's row form, with its error), so what is left here
/// is `if_missing`.
impl Columnar for Timestamp {
    fn plan(&mut self, p: &mut Planner) -> bool {
        for path in &self.fields {
            let Some(slot) = p.field(path, Kind::Time) else { return false };
            // Moved away before this stage: its value is not this stage's to read.
            if p.renames.iter().any(|&(source, _)| source == slot) {
                return false;
            }
            p.slots[slot].any_time = true;
            for &(source, target) in &p.renames {
                if target == slot {
                    p.slots[source].any_time = true;
                }
            }
            self.slots.push(slot);
        }
        true
    }

    fn apply_columns(&mut self, rows: &mut Rows, stage: usize) {
        let now = (self.now)().timestamp_micros();
        for (path, &slot) in self.fields.iter().zip(&self.slots) {
            let Column::Time(times) = &rows.cols[slot] else { unreachable!("planned as a time slot") };
            let missing: Vec<usize> = (0..rows.len()).filter(|&r| rows.is_fast(r) && times.is_null(r)).collect();
            if missing.is_empty() || self.if_missing == IfMissing::Skip {
                continue;
            }
            if self.if_missing == IfMissing::Error {
                missing.into_iter().for_each(|r| rows.refuse(r, stage, format!("field '{path}' is missing")));
                continue;
            }
            let mut filled: Vec<Option<i64>> = times.iter().collect();
            for r in missing {
                filled[r] = Some(match self.if_missing {
                    IfMissing::PublishTime => rows.message(r).publish_time.timestamp_micros(),
                    _ => now,
                });
            }
            rows.cols[slot] = Column::Time(filled.into_iter().collect());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{build, event, schema};
    use super::super::BuildContext;
    use super::*;
    use serde_json::json;

    fn normalise(v: Value) -> Result<Value, String> {
        let mut s = build("timestamp: {fields: [ts]}", &[]).unwrap();
        let mut e = event(json!({ "ts": v }));
        s.apply(&mut e).map(|_| e.record["ts"].clone())
    }

    #[test]
    fn accepts_every_documented_form() {
        let want = json!("2026-11-26T09:00:00.250000Z");
        for input in [
            json!("2026-11-26T09:00:00.25Z"),
            json!("2026-11-26T10:00:00.25+01:00"),
            json!("2026-11-26T04:00:00.25-05:00"),
            json!("2026-11-26 09:00:00.25"),
            json!("2026-11-26T09:00:00.250"),
            json!(" 2026-11-26T09:00:00.25Z "),
            json!(1_795_683_600.25),
            json!(1_795_683_600_250i64),
            json!(1_795_683_600_250_000i64),
            json!(1_795_683_600_250_000_000i64),
            json!("1795683600250"),
            json!("1795683600.25"),
        ] {
            assert_eq!(normalise(input.clone()).unwrap(), want, "{input}");
        }
        assert_eq!(normalise(json!(1_795_683_600)).unwrap(), json!("2026-11-26T09:00:00.000000Z"));
        assert_eq!(normalise(json!("2026-11-26 09:00:00")).unwrap(), json!("2026-11-26T09:00:00.000000Z"));
        // Integers are exact: nanoseconds are truncated, never rounded through a float.
        assert_eq!(normalise(json!(1_795_683_600_123_456_999i64)).unwrap(), json!("2026-11-26T09:00:00.123456Z"));
        assert_eq!(normalise(json!(-1)).unwrap(), json!("1969-12-31T23:59:59.000000Z"));
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        assert_eq!(
            normalise(json!("last tuesday")).unwrap_err(),
            format!("field 'ts': {NOT_A_TIMESTAMP}, found \"last tuesday\"")
        );
        assert_eq!(normalise(json!(true)).unwrap_err(), "field 'ts': expected a string or a number, found true");
        assert_eq!(
            normalise(json!({"s": 1})).unwrap_err(),
            "field 'ts': expected a string or a number, found {\"s\":1}"
        );
        assert_eq!(normalise(json!(1e300)).unwrap_err(), "field 'ts': epoch value out of range, found 1e+300");
        assert_eq!(normalise(json!("NaN")).unwrap_err(), format!("field 'ts': {NOT_A_TIMESTAMP}, found \"NaN\""));
        assert_eq!(
            normalise(json!("2026-13-01T00:00:00Z")).unwrap_err(),
            format!("field 'ts': {NOT_A_TIMESTAMP}, found \"2026-13-01T00:00:00Z\"")
        );
        let long = "x".repeat(100);
        assert_eq!(
            normalise(json!(long)).unwrap_err(),
            format!("field 'ts': {NOT_A_TIMESTAMP}, found \"{}…", "x".repeat(59))
        );
    }

    #[test]
    fn missing_fields_follow_if_missing() {
        let mut e = event(json!({"other": null}));
        build("timestamp: {fields: [ts, other]}", &[]).unwrap().apply(&mut e).unwrap();
        assert_eq!(e.record, json!({"other": null}));
        let err = build("timestamp: {fields: [ts], if_missing: error}", &[]).unwrap().apply(&mut e).unwrap_err();
        assert_eq!(err, "field 'ts' is missing");
        build("timestamp: {fields: [a.ts], if_missing: publish_time}", &[]).unwrap().apply(&mut e).unwrap();
        assert_eq!(e.record, json!({"other": null, "a": {"ts": "2026-11-26T10:00:00.000000Z"}}));

        let config: Config = crate::config::from_yaml_str("{fields: [ts], if_missing: now}").unwrap();
        let mut s = config.build(&BuildContext { pipeline: "logs", schema: &schema(), sinks: &[] }).unwrap();
        s.now = || DateTime::parse_from_rfc3339("2026-11-26T11:00:00.000001Z").unwrap().into();
        let mut e = event(json!({}));
        s.apply(&mut e).unwrap();
        assert_eq!(e.record, json!({"ts": "2026-11-26T11:00:00.000001Z"}));
    }

    #[test]
    fn config_errors() {
        let e = build("timestamp: {fields: []}", &[]).err().unwrap();
        assert_eq!((e.field.as_str(), e.message.as_str()), ("fields", "expected at least one field"));
        let e = build("timestamp: {fields: [ok, 'a.']}", &[]).err().unwrap();
        assert_eq!((e.field.as_str(), e.message.as_str()), ("fields[1]", "field path 'a.' has an empty segment"));
    }
}
