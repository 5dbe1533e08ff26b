//! A time read from a field in any form the `timestamp` stage accepts (see its module doc):
//! RFC 3339, a date and time without a zone, or an epoch number whose unit is read from its
//! magnitude. Shared by the stage and by the columnar decoder, which reads time slots with it.

use chrono::{DateTime, NaiveDateTime, Utc};
use serde_json::Value;

pub(super) const NOT_A_TIMESTAMP: &str =
    "not a timestamp (expected RFC 3339, 'YYYY-MM-DD HH:MM:SS' or epoch seconds/millis/micros/nanos)";

/// Read a timestamp in any accepted form.
pub fn parse_any(v: &Value) -> Result<DateTime<Utc>, String> {
    match v {
        Value::Number(n) => match n.as_i64() {
            Some(i) => from_epoch_int(i),
            None => from_epoch_float(n.as_f64().unwrap_or(f64::NAN)),
        },
        Value::String(s) => parse_text(s),
        _ => Err("expected a string or a number".into()),
    }
}

/// Read a timestamp written as a JSON string, in any accepted form.
pub fn parse_text(s: &str) -> Result<DateTime<Utc>, String> {
    let s = s.trim();
    if let Some(t) = crate::rfc3339::parse(s) {
        return Ok(t);
    }
    for fmt in ["%Y-%m-%d %H:%M:%S%.f", "%Y-%m-%dT%H:%M:%S%.f"] {
        if let Ok(t) = NaiveDateTime::parse_from_str(s, fmt) {
            return Ok(t.and_utc());
        }
    }
    if let Ok(i) = s.parse::<i64>() {
        return from_epoch_int(i);
    }
    match s.parse::<f64>() {
        Ok(x) if x.is_finite() => from_epoch_float(x),
        _ => Err(NOT_A_TIMESTAMP.into()),
    }
}

/// Microseconds per unit, for an epoch value of this magnitude (see the module doc).
fn unit_micros(magnitude: f64) -> f64 {
    match magnitude {
        m if m < 1e11 => 1e6,
        m if m < 1e14 => 1e3,
        m if m < 1e17 => 1.0,
        _ => 1e-3,
    }
}

fn from_epoch_int(i: i64) -> Result<DateTime<Utc>, String> {
    let per = unit_micros(i.unsigned_abs() as f64);
    let micros = if per >= 1.0 { i.checked_mul(per as i64) } else { Some(i.div_euclid(1000)) };
    micros.and_then(DateTime::from_timestamp_micros).ok_or_else(|| "epoch value out of range".into())
}

fn from_epoch_float(x: f64) -> Result<DateTime<Utc>, String> {
    let micros = (x * unit_micros(x.abs())).round();
    // `as` saturates, so anything beyond i64 lands on a bound chrono refuses.
    DateTime::from_timestamp_micros(micros as i64)
        .filter(|_| micros.is_finite())
        .ok_or_else(|| "epoch value out of range".into())
}
