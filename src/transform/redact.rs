//! `redact`: mask secrets before anything is written.
//!
//! - by field name: any key, at any depth, named like a secret (`password`, `api_key`, …,
//!   case-insensitive) has its value replaced;
//! - by pattern: secrets inside string values (bearer tokens, `password=…`, API keys, AWS and
//!   Google keys, JWTs, PEM private keys), in `in_fields` or else in every string. For
//!   `key=value` patterns only the value is masked, so the line stays readable.
//!
//! `- redact: {fields: [password], patterns: [bearer_token, {name: card, regex: '\d{16}'}],
//!    in_fields: [message], replacement: "[REDACTED]"}`; every key is optional.

use regex::Regex;
use serde::Deserialize;
use serde_json::Value;

use super::{BuildContext, FieldError, Stage, Verdict};
use crate::event::Event;
use crate::path::FieldPath;

/// Built-in patterns. Where a pattern has a `secret` group, only that group is replaced.
const BUILT_IN: &[(&str, &str)] = &[
    ("private_key", r"(?s)-----BEGIN [A-Z ]*PRIVATE KEY-----.*?-----END [A-Z ]*PRIVATE KEY-----"),
    ("bearer_token", r"(?i)\bbearer\s+(?P<secret>[A-Za-z0-9\-._~+/]{8,}=*)"),
    ("password", r#"(?i)\b(?:password|passwd|pwd)\b"?\s*[:=]\s*"?(?P<secret>[^\s"',;&]+)"#),
    ("api_key", r#"(?i)\b(?:api[_-]?key|access[_-]?token|client[_-]?secret|secret[_-]?key)\b"?\s*[:=]\s*"?(?P<secret>[^\s"',;&]+)"#),
    ("aws_access_key", r"\b(?P<secret>(?:AKIA|ASIA)[0-9A-Z]{16})\b"),
    ("google_api_key", r"\b(?P<secret>AIza[0-9A-Za-z_\-]{35})"),
    ("jwt", r"\b(?P<secret>eyJ[A-Za-z0-9_\-]+\.eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+)"),
];

const DEFAULT_FIELDS: &[&str] =
    &["password", "passwd", "secret", "token", "api_key", "apikey", "authorization", "access_token", "client_secret", "private_key"];

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum PatternConfig {
    BuiltIn(String),
    Custom { name: String, regex: String },
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    /// Field names whose values are always masked; default: common secret names.
    pub fields: Option<Vec<String>>,
    /// Patterns searched in string values; default: every built-in.
    pub patterns: Option<Vec<PatternConfig>>,
    /// Only search these fields for patterns; default: every string in the record.
    pub in_fields: Option<Vec<String>>,
    pub replacement: Option<String>,
}

pub struct Redact {
    fields: Vec<String>,
    patterns: Vec<Regex>,
    in_fields: Option<Vec<FieldPath>>,
    replacement: String,
}

impl Config {
    pub fn build(&self, _ctx: &BuildContext) -> Result<Redact, FieldError> {
        let fields = match &self.fields {
            Some(f) => f.iter().map(|s| s.to_lowercase()).collect(),
            None => DEFAULT_FIELDS.iter().map(|s| s.to_string()).collect(),
        };
        let patterns = match &self.patterns {
            None => BUILT_IN.iter().map(|(_, r)| Regex::new(r).expect("built-in pattern compiles")).collect(),
            Some(list) => list
                .iter()
                .enumerate()
                .map(|(i, p)| match p {
                    PatternConfig::BuiltIn(name) => BUILT_IN
                        .iter()
                        .find(|(n, _)| n == name)
                        .map(|(_, r)| Regex::new(r).expect("built-in pattern compiles"))
                        .ok_or_else(|| {
                            let known: Vec<&str> = BUILT_IN.iter().map(|(n, _)| *n).collect();
                            FieldError::new(
                                format!("patterns[{i}]"),
                                format!("unknown pattern '{name}'; built-in ones are {}, or give {{name, regex}}", known.join(", ")),
                            )
                        }),
                    PatternConfig::Custom { name, regex } => Regex::new(regex).map_err(|e| {
                        FieldError::new(format!("patterns[{i}].regex"), format!("pattern '{name}' is not a valid regular expression: {e}"))
                    }),
                })
                .collect::<Result<_, _>>()?,
        };
        let in_fields = self
            .in_fields
            .as_ref()
            .map(|fs| {
                fs.iter()
                    .enumerate()
                    .map(|(i, f)| FieldPath::parse(f).map_err(|m| FieldError::new(format!("in_fields[{i}]"), m)))
                    .collect::<Result<Vec<_>, _>>()
            })
            .transpose()?;
        Ok(Redact { fields, patterns, in_fields, replacement: self.replacement.clone().unwrap_or_else(|| "[REDACTED]".into()) })
    }
}

impl Redact {
    fn mask_fields(&self, v: &mut Value) {
        match v {
            Value::Object(map) => {
                for (k, child) in map.iter_mut() {
                    if self.fields.iter().any(|f| f.eq_ignore_ascii_case(k)) && !child.is_null() {
                        *child = Value::String(self.replacement.clone());
                    } else {
                        self.mask_fields(child);
                    }
                }
            }
            Value::Array(items) => items.iter_mut().for_each(|c| self.mask_fields(c)),
            _ => {}
        }
    }

    fn mask_patterns(&self, v: &mut Value) {
        match v {
            Value::String(s) => {
                if let Some(masked) = self.mask_text(s) {
                    *s = masked;
                }
            }
            Value::Object(map) => map.values_mut().for_each(|c| self.mask_patterns(c)),
            Value::Array(items) => items.iter_mut().for_each(|c| self.mask_patterns(c)),
            _ => {}
        }
    }

    /// The text with every secret replaced, or `None` when there was nothing to mask.
    fn mask_text(&self, text: &str) -> Option<String> {
        let mut out: Option<String> = None;
        for re in &self.patterns {
            let cur = out.as_deref().unwrap_or(text);
            if !re.is_match(cur) {
                continue;
            }
            let replaced = re.replace_all(cur, |caps: &regex::Captures| {
                let whole = caps.get(0).expect("group 0 always matches");
                match caps.name("secret") {
                    Some(s) => format!(
                        "{}{}{}",
                        &whole.as_str()[..s.start() - whole.start()],
                        self.replacement,
                        &whole.as_str()[s.end() - whole.start()..]
                    ),
                    None => self.replacement.clone(),
                }
            });
            out = Some(replaced.into_owned());
        }
        out
    }
}

impl Stage for Redact {
    fn apply(&mut self, event: &mut Event) -> Result<Verdict, String> {
        self.mask_fields(&mut event.record);
        match &self.in_fields {
            None => self.mask_patterns(&mut event.record),
            Some(paths) => {
                for p in paths {
                    if let Some(v) = p.get_mut(&mut event.record) {
                        self.mask_patterns(v);
                    }
                }
            }
        }
        Ok(Verdict::Keep)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{build, event};
    use serde_json::json;

    fn redact_message(config: &str, message: &str) -> String {
        let mut s = build(config, &[]).unwrap();
        let mut e = event(json!({ "message": message }));
        s.apply(&mut e).unwrap();
        e.record["message"].as_str().unwrap().to_owned()
    }

    #[test]
    fn each_built_in_pattern_masks_its_secret_and_leaves_plain_text() {
        let cases = [
            ("login ok password=hunter2 user=bob", "login ok password=[REDACTED] user=bob"),
            ("Authorization: Bearer abc.def.ghi", "Authorization: Bearer [REDACTED]"),
            ("retrying with api_key=sk_live_abcdef123", "retrying with api_key=[REDACTED]"),
            ("aws key AKIAIOSFODNN7EXAMPLE used", "aws key [REDACTED] used"),
            ("key AIzaSyA1234567890abcdefghijklmnopqrstuv ok", "key [REDACTED] ok"),
            ("tok eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln end", "tok [REDACTED] end"),
            ("k: -----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY----- done", "k: [REDACTED] done"),
            ("{\"password\": \"p4ss\"}", "{\"password\": \"[REDACTED]\"}"),
        ];
        for (input, want) in cases {
            assert_eq!(redact_message("redact: {}", input), want, "{input}");
        }
        for plain in ["password reset requested", "bearer of bad news", "AKIA is a prefix", "order 1234 filled"] {
            assert_eq!(redact_message("redact: {}", plain), plain);
        }
    }

    #[test]
    fn masks_secret_named_fields_at_any_depth() {
        let mut s = build("redact: {}", &[]).unwrap();
        let mut e = event(json!({"user": "bob", "Password": "x", "auth": {"API_KEY": "k", "list": [{"token": 1}]}}));
        s.apply(&mut e).unwrap();
        assert_eq!(e.record, json!({"user": "bob", "Password": "[REDACTED]", "auth": {"API_KEY": "[REDACTED]", "list": [{"token": "[REDACTED]"}]}}));
    }

    #[test]
    fn in_fields_limits_pattern_search_and_custom_patterns_work() {
        let mut s = build("redact: {in_fields: [message], patterns: [{name: card, regex: '\\d{16}'}], replacement: '***'}", &[]).unwrap();
        let mut e = event(json!({"message": "card 4111111111111111", "note": "card 4111111111111111"}));
        s.apply(&mut e).unwrap();
        assert_eq!(e.record, json!({"message": "card ***", "note": "card 4111111111111111"}));
    }

    #[test]
    fn unknown_pattern_lists_the_built_ins() {
        let e = build("redact: {patterns: [bearer_token, ssn]}", &[]).err().unwrap();
        assert_eq!(e.field, "patterns[1]");
        assert!(e.message.starts_with("unknown pattern 'ssn'; built-in ones are private_key, bearer_token"), "{}", e.message);
        let e = build("redact: {patterns: [{name: x, regex: '('}]}", &[]).err().unwrap();
        assert_eq!(e.field, "patterns[0].regex");
    }
}
