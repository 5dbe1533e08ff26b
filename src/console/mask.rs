//! Masking what the console shows, with the `redact` stage's default names and patterns.
//!
//! A configuration value is hidden whole when its key looks secret: a segment of the key (split
//! on `.` and `/`) is one of the stage's secret field names (`password`, `token`, `api_key`, …),
//! or `<key>=…` is matched by one of its `key=value` patterns (`db_password`, `stripe.api_key`).
//! Any other string (a value, a payload preview) has the secrets inside it masked by the
//! stage's patterns (bearer tokens, JWTs, private keys, `password=…`).

use serde_json::Value;

use crate::transform::redact::{Config, Redact};
use crate::transform::BuildContext;

/// What a masked value shows.
pub const MASKED: &str = "[REDACTED]";

pub struct Mask {
    redact: Redact,
}

impl Default for Mask {
    fn default() -> Self {
        Mask::new()
    }
}

impl Mask {
    pub fn new() -> Mask {
        let schema = crate::sink::dead_letter::schema();
        let ctx = BuildContext { pipeline: "console", schema: &schema, sinks: &[] };
        Mask { redact: Config::default().build(&ctx).expect("the default redact stage builds") }
    }

    /// Whether values under `key` are hidden whole.
    pub fn secret_key(&self, key: &str) -> bool {
        key.split(['.', '/']).any(|segment| self.redact.masks_name(segment))
            || self.redact.mask_str(&format!("{key}=x")).is_some()
    }

    /// `text` with the secrets inside it masked.
    pub fn text(&self, text: &str) -> String {
        self.redact.mask_str(text).unwrap_or_else(|| text.to_owned())
    }

    /// A configuration value with its secrets masked, still JSON (for diffs).
    pub fn json(&self, key: &str, value: &Value) -> Value {
        if self.secret_key(key) && !value.is_null() {
            return Value::String(MASKED.to_owned());
        }
        let mut v = value.clone();
        self.walk(&mut v);
        v
    }

    fn walk(&self, v: &mut Value) {
        match v {
            Value::String(s) => *s = self.text(s),
            Value::Array(items) => items.iter_mut().for_each(|i| self.walk(i)),
            Value::Object(map) => {
                for (k, child) in map.iter_mut() {
                    if self.redact.masks_name(k) && !child.is_null() {
                        *child = Value::String(MASKED.to_owned());
                    } else {
                        self.walk(child);
                    }
                }
            }
            _ => {}
        }
    }

    /// A configuration value as the console shows it: compact JSON (a string as itself), masked.
    pub fn value(&self, key: &str, value: &Value) -> String {
        if self.secret_key(key) && !value.is_null() {
            return MASKED.to_owned();
        }
        match self.json(key, value) {
            Value::String(s) => s,
            other => other.to_string(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn secret_looking_keys_are_masked_whole() {
        let m = Mask::new();
        for key in
            ["password", "db.password", "DB_PASSWORD", "stripe.api_key", "auth/token", "client_secret", "smtp.pwd"]
        {
            assert_eq!(m.value(key, &json!("hunter2")), MASKED, "{key}");
        }
        for key in ["max_tokens", "timeout", "password_hint", "feature.flags"] {
            assert_eq!(m.value(key, &json!("plain")), "plain", "{key}");
        }
        assert_eq!(m.value("limits", &json!({"rps": 5})), r#"{"rps":5}"#);
        assert_eq!(m.value("db", &json!({"host": "h", "password": "p"})), r#"{"host":"h","password":"[REDACTED]"}"#);
    }

    #[test]
    fn secrets_inside_values_are_masked() {
        let m = Mask::new();
        assert_eq!(
            m.value("upstream", &json!("Authorization: Bearer abcdefgh1234")),
            "Authorization: Bearer [REDACTED]"
        );
        assert_eq!(m.text("dsn password=s3cret host=db"), "dsn password=[REDACTED] host=db");
    }
}
