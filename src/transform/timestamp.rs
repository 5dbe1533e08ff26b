//! `timestamp`: normalise time fields to RFC 3339 UTC with microseconds (`…T10:00:00.123456Z`).
//!
//! Accepted: RFC 3339 with any offset; `YYYY-MM-DD HH:MM:SS[.frac]` and `YYYY-MM-DDTHH:MM:SS[.frac]`
//! without a zone (taken as UTC); epoch numbers or numeric strings, whose unit is read from their
//! size: below 1e11 seconds, below 1e14 milliseconds, below 1e17 microseconds, else nanoseconds
//! (so any date from 1973 to 5138 is read right).
//! `- timestamp: {fields: [timestamp], if_missing: skip | error | publish_time | now}`

use chrono::{DateTime, NaiveDateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::{BuildContext, FieldError, Stage, Verdict};
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
}

impl Config {
    pub fn build(&self, _ctx: &BuildContext) -> Result<Timestamp, FieldError> {
        if self.fields.is_empty() {
            return Err(FieldError::new("fields", "expected at least one field"));
        }
        let fields = self
            .fields
            .iter()
            .enumerate()
            .map(|(i, f)| FieldPath::parse(f).map_err(|m| FieldError::new(format!("fields[{i}]"), m)))
            .collect::<Result<_, _>>()?;
        Ok(Timestamp { fields, if_missing: self.if_missing })
    }
}

/// Read a timestamp in any accepted form.
pub fn parse_any(v: &Value) -> Result<DateTime<Utc>, String> {
    match v {
        Value::Number(n) => n.as_f64().ok_or_else(|| "not a finite number".to_string()).and_then(from_epoch),
        Value::String(s) => {
            let s = s.trim();
            if let Ok(t) = DateTime::parse_from_rfc3339(s) {
                return Ok(t.with_timezone(&Utc));
            }
            for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
                if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
                    return Ok(t.and_utc());
                }
            }
            match s.parse::<f64>() {
                Ok(x) if x.is_finite() => from_epoch(x),
                _ => Err("not a timestamp (expected RFC 3339, 'YYYY-MM-DD HH:MM:SS' or epoch seconds/millis/micros/nanos)".into()),
            }
        }
        _ => Err("expected a string or a number".into()),
    }
}

fn from_epoch(x: f64) -> Result<DateTime<Utc>, String> {
    let a = x.abs();
    let micros = if a < 1e11 {
        x * 1e6
    } else if a < 1e14 {
        x * 1e3
    } else if a < 1e17 {
        x
    } else {
        x / 1e3
    };
    DateTime::from_timestamp_micros(micros.round() as i64).ok_or_else(|| "epoch value out of range".into())
}

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
            let normalised = match p.get(&event.record).filter(|v| !v.is_null()) {
                Some(v) => parse_any(v).map_err(|why| format!("field '{p}': {why}, found {}", shown(v)))?,
                None => match self.if_missing {
                    IfMissing::Skip => continue,
                    IfMissing::Error => return Err(format!("field '{p}' is missing")),
                    IfMissing::PublishTime => event.publish_time,
                    IfMissing::Now => Utc::now(),
                },
            };
            p.set(&mut event.record, format_timestamp(normalised).into())?;
        }
        Ok(Verdict::Keep)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{build, event};
    use serde_json::json;

    fn normalise(v: serde_json::Value) -> Result<serde_json::Value, String> {
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
            json!("2026-11-26 09:00:00.25"),
            json!("2026-11-26T09:00:00.250"),
            json!(1_795_683_600.25),
            json!(1_795_683_600_250i64),
            json!(1_795_683_600_250_000i64),
            json!(1_795_683_600_250_000_000i64),
            json!("1795683600250"),
        ] {
            assert_eq!(normalise(input.clone()).unwrap(), want, "{input}");
        }
        assert_eq!(normalise(json!(1_795_683_600)).unwrap(), json!("2026-11-26T09:00:00.000000Z"));
    }

    #[test]
    fn refuses_what_it_cannot_read() {
        assert!(normalise(json!("last tuesday")).unwrap_err().starts_with("field 'ts': not a timestamp"));
        assert_eq!(normalise(json!(true)).unwrap_err(), "field 'ts': expected a string or a number, found true");
        assert!(normalise(json!(1e300)).unwrap_err().contains("out of range"));
    }

    #[test]
    fn missing_fields_follow_if_missing() {
        let mut e = event(json!({}));
        build("timestamp: {fields: [ts]}", &[]).unwrap().apply(&mut e).unwrap();
        assert_eq!(e.record, json!({}));
        let err = build("timestamp: {fields: [ts], if_missing: error}", &[]).unwrap().apply(&mut e).unwrap_err();
        assert_eq!(err, "field 'ts' is missing");
        build("timestamp: {fields: [ts], if_missing: publish_time}", &[]).unwrap().apply(&mut e).unwrap();
        assert_eq!(e.record, json!({"ts": "2026-11-26T10:00:00.000000Z"}));
    }
}
