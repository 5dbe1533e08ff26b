//! `redact`: mask secrets before anything is written.
//!
//! - by field name: any key, at any depth, named like a secret (`password`, `api_key`, …,
//!   case-insensitive) has its value replaced;
//! - by pattern: secrets inside string values (bearer tokens, `password=…`, API keys, AWS and
//!   Google keys, JWTs, PEM private keys), in `in_fields` or else in every string. For
//!   `key=value` patterns only the value is masked, so the line stays readable. A custom regex
//!   masks its whole match, or only its group named `secret` if it has one.
//!
//! `- redact: {fields: [password], patterns: [bearer_token, {name: card, regex: '\d{16}'}],
//!    in_fields: [message], replacement: "[REDACTED]"}`; every key is optional. Defaults: the
//! names in `DEFAULT_FIELDS`, every built-in pattern, every string, `[REDACTED]`.

mod columns;
mod needles;

use std::borrow::Cow;

use regex::{Regex, RegexSet};
use serde::Deserialize;
use serde_json::Value;

use super::columnar::Columnar;
use super::{name_marks::NameMarks, parse_paths, BuildContext, FieldError, Stage, Verdict};
use crate::event::Event;
use crate::path::FieldPath;
use needles::Needles;

/// `key: value` / `key=value` for the given key names; the value may be quoted. Only the value is
/// captured (in one of the `secret*` groups), so the key stays readable.
macro_rules! key_value {
    ($keys:literal) => {
        concat!(
            r#"(?i)(?:"#,
            $keys,
            r#")["']?\s*[:=]\s*(?:"(?P<secret_dq>[^"]*)"|'(?P<secret_sq>[^']*)'|(?P<secret>[^\s"',;&]+))"#
        )
    };
}

/// Built-in patterns, tried in this order (a PEM block first, so nothing inside it is matched
/// piecemeal). A key with no `-----END` line, as in a truncated log line, is masked to the end.
/// Each comes with words of which every match contains one, ASCII case ignored (see [`needles`]),
/// and where its secret lies in a match ([`SecretAt`]).
const BUILT_IN: &[(&str, &str, &[&str], SecretAt)] = &[
    (
        "private_key",
        r"(?s)-----BEGIN [A-Z ]*PRIVATE KEY-----(?:.*?-----END [A-Z ]*PRIVATE KEY-----|.*)",
        &["-----BEGIN "],
        SecretAt::Whole,
    ),
    ("bearer_token", r"(?i)\bbearer\s+(?P<secret>[A-Za-z0-9\-._~+/]{8,}=*)", &["bearer"], SecretAt::AfterSpace),
    ("password", key_value!("password|passwd|pwd"), &["passw", "pwd"], SecretAt::Value),
    (
        "api_key",
        key_value!(r"api[_-]?key|access[_-]?token|client[_-]?secret|secret[_-]?key"),
        &["api", "access", "client", "secret"],
        SecretAt::Value,
    ),
    ("aws_access_key", r"\b(?:AKIA|ASIA)[0-9A-Z]{16}\b", &["AKIA", "ASIA"], SecretAt::Whole),
    ("google_api_key", r"\bAIza[0-9A-Za-z_\-]{35}", &["AIza"], SecretAt::Whole),
    ("jwt", r"\beyJ[A-Za-z0-9_\-]+\.eyJ[A-Za-z0-9_\-]+\.[A-Za-z0-9_\-]+", &["eyJ"], SecretAt::Whole),
];

/// Where a built-in's secret lies in one of its matches, read from the match's text: the same
/// span as its `secret` groups, without the slower search for groups (a test holds them equal).
#[derive(Debug, Clone, Copy)]
enum SecretAt {
    Whole,
    /// After the first run of white space (`bearer <token>`).
    AfterSpace,
    /// `key_value!`: after the first `:` or `=` and the white space behind it; inside the quotes
    /// when quoted. (No key name holds either sign.)
    Value,
}

impl SecretAt {
    fn span(self, m: &str) -> std::ops::Range<usize> {
        let skip_space = |from: usize| m[from..].find(|c: char| !c.is_whitespace()).map_or(m.len(), |i| from + i);
        match self {
            SecretAt::Whole => 0..m.len(),
            SecretAt::AfterSpace => skip_space(m.find(char::is_whitespace).unwrap_or(m.len()))..m.len(),
            SecretAt::Value => {
                let value = skip_space(m.find([':', '=']).map_or(m.len(), |i| i + 1));
                match m.as_bytes().get(value) {
                    Some(b'"' | b'\'') => value + 1..m.len() - 1,
                    _ => value..m.len(),
                }
            }
        }
    }
}

const DEFAULT_FIELDS: &[&str] = &[
    "password",
    "passwd",
    "secret",
    "token",
    "api_key",
    "apikey",
    "authorization",
    "access_token",
    "client_secret",
    "private_key",
];

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum PatternConfig {
    /// The name of a built-in pattern.
    BuiltIn(String),
    Custom(CustomPattern),
    /// Anything else, kept so `build` can say precisely what is wrong with it.
    Invalid(Value),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CustomPattern {
    pub name: String,
    pub regex: String,
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

/// A compiled pattern and the groups holding its secret (none: the whole match is the secret).
struct Pattern {
    re: Regex,
    secret_groups: Vec<usize>,
    /// A built-in's words (see [`BUILT_IN`]); `None` for a custom regex.
    words: Option<&'static [&'static str]>,
    /// A built-in's secret span; `None` for a custom regex, whose groups say it.
    secret_at: Option<SecretAt>,
}

impl Pattern {
    /// Groups named `secret…` hold the secret; the first one that took part in a match is masked.
    fn new(re: Regex, words: Option<&'static [&'static str]>, secret_at: Option<SecretAt>) -> Pattern {
        let secret_groups = re
            .capture_names()
            .enumerate()
            .filter(|(_, n)| n.is_some_and(|n| n.starts_with("secret")))
            .map(|(i, _)| i)
            .collect();
        Pattern { re, secret_groups, words, secret_at }
    }
}

pub struct Redact {
    fields: Vec<String>,
    /// Most keys are passed over unread: they cannot be one of `fields`.
    marks: NameMarks,
    patterns: Vec<Pattern>,
    /// Which patterns can match a text, when every pattern is a built-in: one pass says so.
    needles: Option<Needles>,
    /// All patterns at once, for the other cases: most text holds no secret, and one pass says so.
    any: Option<RegexSet>,
    in_fields: Option<Vec<FieldPath>>,
    replacement: String,
    /// On columns: the slots searched for patterns, the slots named as secrets, and the JSON
    /// slots whose values are walked for secret names.
    slots: columns::ColumnSlots,
}

fn built_in(name: &str) -> Option<Pattern> {
    let (_, re, words, at) = BUILT_IN.iter().find(|(n, ..)| *n == name)?;
    Some(Pattern::new(Regex::new(re).expect("built-in patterns compile (tested)"), Some(words), Some(*at)))
}

fn pattern(field: String, p: &PatternConfig) -> Result<Pattern, FieldError> {
    match p {
        PatternConfig::BuiltIn(name) => built_in(name).ok_or_else(|| {
            let known: Vec<&str> = BUILT_IN.iter().map(|(n, ..)| *n).collect();
            FieldError::new(
                field,
                format!("unknown pattern '{name}'; built-in ones are {}, or give {{name, regex}}", known.join(", ")),
            )
        }),
        PatternConfig::Custom(c) => Regex::new(&c.regex).map(|re| Pattern::new(re, None, None)).map_err(|e| {
            FieldError::new(
                format!("{field}.regex"),
                format!("pattern '{}' is not a valid regular expression: {e}", c.name),
            )
        }),
        PatternConfig::Invalid(v) => {
            Err(FieldError::new(field, format!("expected a built-in pattern name or {{name, regex}}, found {v}")))
        }
    }
}

impl Config {
    pub fn build(&self, _ctx: &BuildContext) -> Result<Redact, FieldError> {
        let fields = match &self.fields {
            Some(f) => f.clone(),
            None => DEFAULT_FIELDS.iter().map(|s| s.to_string()).collect(),
        };
        let patterns: Vec<Pattern> = match &self.patterns {
            None => BUILT_IN.iter().filter_map(|(n, ..)| built_in(n)).collect(),
            Some(list) => {
                list.iter().enumerate().map(|(i, p)| pattern(format!("patterns[{i}]"), p)).collect::<Result<_, _>>()?
            }
        };
        let in_fields = self.in_fields.as_deref().map(|f| parse_paths("in_fields", f)).transpose()?;
        let replacement = self.replacement.clone().unwrap_or_else(|| "[REDACTED]".into());
        // Each pattern compiled on its own, so the set only fails on size; then go without it.
        let any = RegexSet::new(patterns.iter().map(|p| p.re.as_str())).ok();
        let words: Vec<_> = patterns.iter().map(|p| p.words).collect();
        let needles = Needles::new(&words, &replacement);
        let marks = NameMarks::new(fields.iter().map(String::as_str));
        Ok(Redact {
            fields,
            marks,
            patterns,
            needles,
            any,
            in_fields,
            replacement,
            slots: columns::ColumnSlots::default(),
        })
    }
}

impl Redact {
    fn is_secret_name(&self, key: &str) -> bool {
        self.marks.may_hold(key) && self.fields.iter().any(|f| f.eq_ignore_ascii_case(key))
    }

    fn mask_fields(&self, v: &mut Value) {
        match v {
            Value::Object(map) => {
                for (k, child) in map.iter_mut() {
                    if self.is_secret_name(k) && !child.is_null() {
                        *child = Value::String(self.replacement.clone());
                    } else if matches!(child, Value::Object(_) | Value::Array(_)) {
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
        self.mask_with(text, self.needles.as_ref().and_then(|n| n.candidates(text)))
    }

    /// [`Redact::mask_text`] with the needles' candidates for `text` already found (`None`:
    /// no needles, or text that is not ASCII).
    fn mask_with(&self, text: &str, candidates: Option<u64>) -> Option<String> {
        // Most text holds no secret, and one pass over it says so.
        let candidates = match candidates {
            Some(0) => return None,
            Some(bits) => bits,
            None if self.any.as_ref().is_some_and(|set| !set.is_match(text)) => return None,
            None => u64::MAX,
        };
        // Each pattern that may match then searches on its own (cheaper than asking the set which
        // matched); after a first replacement the later patterns look at the masked text.
        let mut out: Option<String> = None;
        for (i, p) in self.patterns.iter().enumerate() {
            if i < 64 && candidates & 1 << i == 0 {
                continue;
            }
            let cur = out.as_deref().unwrap_or(text);
            if let Some(at) = p.secret_at {
                if let Some(masked) = self.mask_spans(&p.re, at, cur) {
                    out = Some(masked);
                }
                continue;
            }
            let replaced = p.re.replace_all(cur, |caps: &regex::Captures| {
                let whole = caps.get(0).expect("group 0 always matches");
                match p.secret_groups.iter().find_map(|&i| caps.get(i)) {
                    Some(s) => {
                        let (start, end) = (s.start() - whole.start(), s.end() - whole.start());
                        format!("{}{}{}", &whole.as_str()[..start], self.replacement, &whole.as_str()[end..])
                    }
                    None => self.replacement.clone(),
                }
            });
            // Borrowed: the pattern matched nothing.
            if let Cow::Owned(masked) = replaced {
                out = Some(masked);
            }
        }
        out
    }
}

impl Redact {
    /// `text` with the secret of each match of `re` replaced, or `None` when nothing matched.
    fn mask_spans(&self, re: &Regex, at: SecretAt, text: &str) -> Option<String> {
        let mut out: Option<String> = None;
        let mut copied = 0;
        for m in re.find_iter(text) {
            let secret = at.span(m.as_str());
            let o = out.get_or_insert_with(|| String::with_capacity(text.len() + self.replacement.len()));
            o.push_str(&text[copied..m.start() + secret.start]);
            o.push_str(&self.replacement);
            copied = m.start() + secret.end;
        }
        let mut o = out?;
        o.push_str(&text[copied..]);
        Some(o)
    }
}

/// The console's use of the same names and patterns (`crate::console::mask`).
impl Redact {
    /// Whether a value held under the key `name` is masked: one of `fields`, any case.
    pub fn masks_name(&self, name: &str) -> bool {
        self.is_secret_name(name)
    }

    /// `text` with every pattern's secret replaced, or `None` when there was nothing to mask.
    pub fn mask_str(&self, text: &str) -> Option<String> {
        self.mask_text(text)
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

    fn columnar(&mut self) -> Option<&mut dyn Columnar> {
        Some(self)
    }
}

#[cfg(test)]
mod tests;
