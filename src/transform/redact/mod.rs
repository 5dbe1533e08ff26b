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
//! names in [`DEFAULT_FIELDS`], every built-in pattern, every string, `[REDACTED]`.

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
mod tests {
    use super::super::testing::{build, event};
    use super::BUILT_IN;
    use serde_json::json;

    fn redact_message(config: &str, message: &str) -> String {
        let mut s = build(config, &[]).unwrap();
        let mut e = event(json!({ "message": message }));
        s.apply(&mut e).unwrap();
        e.record["message"].as_str().unwrap().to_owned()
    }

    /// Each built-in on its own: what it masks, and look-alikes it must leave alone.
    #[test]
    fn each_built_in_pattern_masks_its_secret_and_leaves_plain_text() {
        // (pattern, [(input, masked)], [left alone])
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a [&'a str]);
        let cases: &[Case] = &[
            (
                "password",
                &[
                    ("login ok password=hunter2 user=bob", "login ok password=[REDACTED] user=bob"),
                    ("db_password: s3cret, retry", "db_password: [REDACTED], retry"),
                    (r#"{"password": "two words"}"#, r#"{"password": "[REDACTED]"}"#),
                    ("PWD='x y' next", "PWD='[REDACTED]' next"),
                ],
                &["password reset requested", "password_hint=blue", "wrong password"],
            ),
            (
                "bearer_token",
                &[("Authorization: Bearer abc.def.ghi", "Authorization: Bearer [REDACTED]")],
                &["bearer of bad news", "bearer"],
            ),
            (
                "api_key",
                &[
                    ("retrying with api_key=sk_live_abcdef123", "retrying with api_key=[REDACTED]"),
                    ("X-Api-Key: k-123 sent", "X-Api-Key: [REDACTED] sent"),
                    (r#"{"client_secret":"cs"}"#, r#"{"client_secret":"[REDACTED]"}"#),
                ],
                &["api_key is required", "the access token expired"],
            ),
            (
                "aws_access_key",
                &[("aws key AKIAIOSFODNN7EXAMPLE used", "aws key [REDACTED] used")],
                &["AKIA is a prefix", "AKIAIOSFODNN7EXAMPL", "akiaiosfodnn7example", "XAKIAIOSFODNN7EXAMPLE"],
            ),
            (
                "google_api_key",
                &[("key AIzaSyA1234567890abcdefghijklmnopqrstuv ok", "key [REDACTED] ok")],
                &["AIzaShort", "key AIza-not-long-enough-1234567890"],
            ),
            (
                "jwt",
                &[("tok eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln end", "tok [REDACTED] end")],
                &["eyJhbGciOiJIUzI1NiJ9 alone", "eyJhbGciOiJIUzI1NiJ9.notjwt.sig", "v1.2.3"],
            ),
            (
                "private_key",
                &[
                    (
                        "k: -----BEGIN RSA PRIVATE KEY-----\nMIIE\n-----END RSA PRIVATE KEY----- done",
                        "k: [REDACTED] done",
                    ),
                    ("-----BEGIN PRIVATE KEY-----\nMIIEvQ (truncated", "[REDACTED]"),
                ],
                &["-----BEGIN PUBLIC KEY-----\nMIIB\n-----END PUBLIC KEY-----", "no private key here"],
            ),
        ];
        assert_eq!(cases.len(), BUILT_IN.len(), "every built-in has cases");
        for (name, masked, plain) in cases {
            let config = format!("redact: {{patterns: [{name}]}}");
            for (input, want) in *masked {
                assert_eq!(redact_message(&config, input), *want, "{name}: {input}");
                assert_eq!(redact_message("redact: {}", input), *want, "defaults, {name}: {input}");
            }
            for input in *plain {
                assert_eq!(redact_message(&config, input), *input, "{name} must leave: {input}");
            }
        }
    }

    /// The words and the secret spans only skip work: on random lines (secrets of every kind,
    /// look-alikes, mixed case, letters that `(?i)` folds from outside ASCII, white space from
    /// outside ASCII) the masked text is what all patterns give, their groups saying the secret.
    #[test]
    fn words_change_nothing_but_the_work() {
        use super::super::{testing::schema, BuildContext};
        use super::Config;
        let pieces = [
            "login ok ",
            "password=hunter2 ",
            "PaSsWd: 'a b' ",
            "pwd",
            "Bearer abcdefgh123 ",
            "bearer x ",
            "api_key=k1 ",
            "X-Api-Key: k ",
            "client_secret",
            "=s ",
            "access-token: t ",
            "AKIAIOSFODNN7EXAMPLE ",
            "ASIA",
            "AIzaSyA1234567890abcdefghijklmnopqrstuv ",
            "eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2ln ",
            "-----BEGIN RSA PRIVATE KEY-----\nMIIE\n",
            "-----END RSA PRIVATE KEY----- ",
            "paſſword=x ",
            "\u{212a}ey ",
            "apikey ",
            "secret",
            "_key=v ",
            "plain words ",
            "é ",
            "=",
            "\"",
            "'",
            " ",
            "password:\u{a0}x ",
            "bearer\u{2003}abcdefghij ",
            "api_key = \"q w\" ",
            "pwd=''",
            "secret_key\t:\t",
        ];
        let ctx = BuildContext { pipeline: "p", schema: &schema(), sinks: &[] };
        for replacement in [None, Some("***".to_owned())] {
            let config = Config { replacement, ..Config::default() };
            let with = config.build(&ctx).unwrap();
            assert!(with.needles.is_some());
            let mut without = config.build(&ctx).unwrap();
            without.needles = None;
            // And the secrets found by the regexes' own groups, as custom patterns are.
            let mut by_groups = config.build(&ctx).unwrap();
            by_groups.needles = None;
            by_groups.patterns.iter_mut().for_each(|p| p.secret_at = None);
            let mut r = crate::sample::Rng::new(5);
            for _ in 0..20_000 {
                let text: String = (0..r.below(8)).map(|_| *r.pick(&pieces)).collect();
                let masked = with.mask_text(&text);
                assert_eq!(masked, without.mask_text(&text), "{text:?}");
                assert_eq!(masked, by_groups.mask_text(&text), "{text:?}");
            }
        }
        // A replacement a word could form across is not trusted with the words.
        let config = Config { replacement: Some("REDACTED".into()), ..Config::default() };
        assert!(config.build(&ctx).unwrap().needles.is_none());
    }

    #[test]
    fn masks_secret_named_fields_at_any_depth() {
        let mut s = build("redact: {}", &[]).unwrap();
        let mut e = event(json!({"user": "bob", "Password": "x", "none": null, "token": null,
                                 "auth": {"API_KEY": {"k": 1}, "list": [{"token": 1}]}}));
        s.apply(&mut e).unwrap();
        assert_eq!(
            e.record,
            json!({"user": "bob", "Password": "[REDACTED]", "none": null, "token": null,
                   "auth": {"API_KEY": "[REDACTED]", "list": [{"token": "[REDACTED]"}]}})
        );
        let mut s = build("redact: {fields: [pin], patterns: []}", &[]).unwrap();
        let mut e = event(json!({"PIN": 1234, "password": "kept: not in this list"}));
        s.apply(&mut e).unwrap();
        assert_eq!(e.record, json!({"PIN": "[REDACTED]", "password": "kept: not in this list"}));
        // Names that share a first letter and a length with a secret name, or are empty.
        let mut s = build(
            r#"redact: {fields: [Pin, "", very_long_secret_name_beyond_sixty_three_characters_of_text_here_ok]}"#,
            &[],
        )
        .unwrap();
        let mut e = event(json!({"pIN": 1, "pun": 2, "pi": 3, "": 4, "x": 5,
            "VERY_LONG_SECRET_NAME_BEYOND_SIXTY_THREE_CHARACTERS_OF_TEXT_HERE_OK": 6,
            "very_long_secret_name_beyond_sixty_three_characters_of_text_here_no": 7,
            "very_long_secret_name_beyond_sixty_three_characters_of_text_here_ok!": 8}));
        s.apply(&mut e).unwrap();
        assert_eq!(
            e.record,
            json!({"pIN": "[REDACTED]", "pun": 2, "pi": 3, "": "[REDACTED]", "x": 5,
                "VERY_LONG_SECRET_NAME_BEYOND_SIXTY_THREE_CHARACTERS_OF_TEXT_HERE_OK": "[REDACTED]",
                "very_long_secret_name_beyond_sixty_three_characters_of_text_here_no": 7,
                "very_long_secret_name_beyond_sixty_three_characters_of_text_here_ok!": 8})
        );
    }

    #[test]
    fn in_fields_limits_pattern_search_and_custom_patterns_work() {
        let config = r"redact: {in_fields: [message, http.url], patterns: [{name: card, regex: '\d{16}'}, {name: pin, regex: 'pin (?P<secret>\d+)'}], replacement: '***'}";
        let mut s = build(config, &[]).unwrap();
        let mut e = event(json!({"message": "card 4111111111111111 pin 1234", "note": "card 4111111111111111",
                                 "http": {"url": "/pay?pin 99"}}));
        s.apply(&mut e).unwrap();
        assert_eq!(
            e.record,
            json!({"message": "card *** pin ***", "note": "card 4111111111111111", "http": {"url": "/pay?pin ***"}})
        );
    }

    #[test]
    fn config_errors_name_the_pattern() {
        let err = |y: &str| {
            let e = build(y, &[]).err().unwrap();
            (e.field, e.message)
        };
        assert_eq!(
            err("redact: {patterns: [bearer_token, ssn]}"),
            (
                "patterns[1]".into(),
                "unknown pattern 'ssn'; built-in ones are private_key, bearer_token, password, api_key, aws_access_key, google_api_key, jwt, or give {name, regex}".into()
            )
        );
        let (field, message) = err("redact: {patterns: [{name: x, regex: '('}]}");
        assert_eq!(field, "patterns[0].regex");
        assert!(message.starts_with("pattern 'x' is not a valid regular expression: regex parse error"), "{message}");
        assert_eq!(
            err("redact: {patterns: [{name: x}]}"),
            ("patterns[0]".into(), r#"expected a built-in pattern name or {name, regex}, found {"name":"x"}"#.into())
        );
        assert_eq!(err("redact: {in_fields: ['']}"), ("in_fields[0]".into(), "field path is empty".into()));
    }
}
