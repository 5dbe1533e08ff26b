//! Conditions on an event, shared by `filter` (keep/drop) and `route` (the subject it reads).
//!
//! YAML: `{field: severity, eq: ERROR}`, `{attribute: kind, in: [a, b]}`,
//! `{field: latency_ms, gt: 100}`, `{field: msg, matches: "^timeout"}`, `{field: x, exists: true}`,
//! `{all: [...]}`, `{any: [...]}`, `{not: {...}}`. Checked into a [`Condition`] at build time.
//!
//! A missing (or null) subject matches only `ne` and `exists: false`. Numbers compare by value
//! (`1` = `1.0`); `gt`/`gte`/`lt`/`lte` match numbers only. An attribute is a string, so `eq`,
//! `ne` and `in` compare it with their operand's text (`eq: 200` matches "200").

use std::borrow::Cow;

use regex::Regex;
use serde::Deserialize;
use serde_json::Value;

use super::columnar::{Kind, Rows, Slot};
use super::{parse_path, FieldError};
use crate::event::Event;
use crate::path::FieldPath;

/// What a condition or route reads: a record field or a Pub/Sub attribute.
#[derive(Debug, Clone)]
pub enum Subject {
    Field(FieldPath),
    Attribute(String),
}

impl Subject {
    /// From the optional `field` / `attribute` keys: exactly one must be set.
    pub fn from_keys(field: Option<&str>, attribute: Option<&str>) -> Result<Subject, FieldError> {
        match (field, attribute) {
            (Some(f), None) => parse_path("field", f).map(Subject::Field),
            (None, Some(a)) if !a.is_empty() => Ok(Subject::Attribute(a.to_owned())),
            (None, Some(_)) => Err(FieldError::new("attribute", "expected an attribute name, found an empty string")),
            (Some(_), Some(_)) => Err(FieldError::new("", "expected either `field` or `attribute`, not both")),
            (None, None) => Err(FieldError::new("", "expected `field` or `attribute`")),
        }
    }

    /// The subject's value; attributes are strings.
    pub fn value<'a>(&self, event: &'a Event) -> Option<Cow<'a, Value>> {
        match self {
            Subject::Field(p) => p.get(&event.record).map(Cow::Borrowed),
            Subject::Attribute(a) => event.attributes.get(a).map(|v| Cow::Owned(Value::String(v.to_owned()))),
        }
    }
}

impl Subject {
    /// The subject's value for row `r` of a batch on columns.
    pub fn value_at<'a>(&self, rows: &'a Rows, r: usize) -> Option<Cow<'a, Value>> {
        match self {
            Subject::Field(p) => rows.value_at(r, p).map(Cow::Owned),
            Subject::Attribute(a) => rows.message(r).attributes.get(a).map(|v| Cow::Owned(Value::String(v.to_owned()))),
        }
    }

    /// Whether it can be read on columns: not a time slot, whose text depends on where it is read.
    pub fn on_columns(&self, slots: &[Slot]) -> bool {
        match self {
            Subject::Field(p) => !slots.iter().any(|s| s.name == p.root() && s.kind == Kind::Time),
            Subject::Attribute(_) => true,
        }
    }
}

impl Condition {
    /// Whether every subject it reads can be read on columns.
    pub fn on_columns(&self, slots: &[Slot]) -> bool {
        match self {
            Condition::All(cs) | Condition::Any(cs) => cs.iter().all(|c| c.on_columns(slots)),
            Condition::Not(c) => c.on_columns(slots),
            Condition::Test(subject, _) => subject.on_columns(slots),
        }
    }
}

/// A condition as written in YAML.
#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConditionConfig {
    field: Option<String>,
    attribute: Option<String>,
    eq: Option<Value>,
    ne: Option<Value>,
    #[serde(rename = "in")]
    one_of: Option<Vec<Value>>,
    exists: Option<bool>,
    matches: Option<String>,
    gt: Option<f64>,
    gte: Option<f64>,
    lt: Option<f64>,
    lte: Option<f64>,
    all: Option<Vec<ConditionConfig>>,
    any: Option<Vec<ConditionConfig>>,
    not: Option<Box<ConditionConfig>>,
}

/// One operator and its operand.
#[derive(Debug, Clone)]
pub enum Test {
    Eq(Value),
    Ne(Value),
    In(Vec<Value>),
    Exists(bool),
    Matches(Regex),
    Cmp(fn(f64, f64) -> bool, f64),
}

/// A checked condition.
#[derive(Debug, Clone)]
pub enum Condition {
    Test(Subject, Test),
    All(Vec<Condition>),
    Any(Vec<Condition>),
    Not(Box<Condition>),
}

/// A value as text, for matching against strings: a string as it is, anything else as its JSON
/// text (`200`, `true`). Attributes are compared this way, and `route` matches its keys so.
pub fn text_of(v: &Value) -> Cow<'_, str> {
    match v {
        Value::String(s) => Cow::Borrowed(s),
        other => Cow::Owned(other.to_string()),
    }
}

/// JSON equality, except that `1` and `1.0` are equal: YAML and producers spell numbers differently.
fn same(a: &Value, b: &Value) -> bool {
    a == b || ((a.is_f64() || b.is_f64()) && a.as_f64().is_some() && a.as_f64() == b.as_f64())
}

impl ConditionConfig {
    pub fn build(&self) -> Result<Condition, FieldError> {
        let combinators = [self.all.is_some(), self.any.is_some(), self.not.is_some()].iter().filter(|b| **b).count();
        let mut ops = self.operators()?;
        let has_subject = self.field.is_some() || self.attribute.is_some();
        if combinators > 0 {
            if combinators > 1 || !ops.is_empty() || has_subject {
                return Err(FieldError::new(
                    "",
                    "expected exactly one of `all`, `any`, `not` with nothing else beside it",
                ));
            }
            let list = |name: &str, items: &[ConditionConfig]| -> Result<Vec<Condition>, FieldError> {
                if items.is_empty() {
                    return Err(FieldError::new(name, "expected at least one condition"));
                }
                items.iter().enumerate().map(|(i, c)| c.build().map_err(|e| e.under(&format!("{name}[{i}]")))).collect()
            };
            return Ok(match (&self.all, &self.any, &self.not) {
                (Some(a), _, _) => Condition::All(list("all", a)?),
                (_, Some(a), _) => Condition::Any(list("any", a)?),
                (_, _, Some(n)) => Condition::Not(Box::new(n.build().map_err(|e| e.under("not"))?)),
                _ => unreachable!("one combinator is set"),
            });
        }
        let subject = Subject::from_keys(self.field.as_deref(), self.attribute.as_deref())?;
        let (name, test) = match ops.len() {
            1 => ops.pop().expect("one op"),
            0 => {
                return Err(FieldError::new(
                    "",
                    "expected one operator: eq, ne, in, exists, matches, gt, gte, lt or lte",
                ))
            }
            _ => {
                let names: Vec<&str> = ops.iter().map(|(n, _)| *n).collect();
                return Err(FieldError::new("", format!("expected one operator, found {}", names.join(", "))));
            }
        };
        let test = match subject {
            Subject::Attribute(_) => for_attribute(name, test)?,
            Subject::Field(_) => test,
        };
        Ok(Condition::Test(subject, test))
    }

    /// Every operator written, checked on its own (regex compiled, lists non-empty).
    fn operators(&self) -> Result<Vec<(&'static str, Test)>, FieldError> {
        let mut ops = Vec::new();
        if let Some(v) = &self.eq {
            ops.push(("eq", Test::Eq(v.clone())));
        }
        if let Some(v) = &self.ne {
            ops.push(("ne", Test::Ne(v.clone())));
        }
        if let Some(v) = &self.one_of {
            if v.is_empty() {
                return Err(FieldError::new("in", "expected at least one value"));
            }
            ops.push(("in", Test::In(v.clone())));
        }
        if let Some(v) = self.exists {
            ops.push(("exists", Test::Exists(v)));
        }
        if let Some(r) = &self.matches {
            let re =
                Regex::new(r).map_err(|e| FieldError::new("matches", format!("invalid regular expression: {e}")))?;
            ops.push(("matches", Test::Matches(re)));
        }
        for (name, bound, cmp) in [
            ("gt", self.gt, (|a, b| a > b) as fn(f64, f64) -> bool),
            ("gte", self.gte, |a, b| a >= b),
            ("lt", self.lt, |a, b| a < b),
            ("lte", self.lte, |a, b| a <= b),
        ] {
            if let Some(b) = bound {
                ops.push((name, Test::Cmp(cmp, b)));
            }
        }
        Ok(ops)
    }
}

/// Attributes are strings: operands are compared by their text, and numeric comparisons refused.
fn for_attribute(name: &str, test: Test) -> Result<Test, FieldError> {
    let text = |v: Value| Value::String(text_of(&v).into_owned());
    Ok(match test {
        Test::Eq(v) => Test::Eq(text(v)),
        Test::Ne(v) => Test::Ne(text(v)),
        Test::In(vs) => Test::In(vs.into_iter().map(text).collect()),
        Test::Cmp(..) => {
            return Err(FieldError::new(
                name,
                format!("attributes are strings; `{name}` compares numbers, so it needs a `field`"),
            ))
        }
        other => other,
    })
}

impl Condition {
    pub fn matches(&self, event: &Event) -> bool {
        self.holds(&|s: &Subject| s.value(event))
    }

    /// Row `r` of a batch on columns.
    pub fn matches_row(&self, rows: &Rows, r: usize) -> bool {
        self.holds(&|s: &Subject| s.value_at(rows, r))
    }

    /// Whether the condition holds for the subjects' values as `read` gives them.
    fn holds<'a>(&self, read: &dyn Fn(&Subject) -> Option<Cow<'a, Value>>) -> bool {
        match self {
            Condition::All(cs) => cs.iter().all(|c| c.holds(read)),
            Condition::Any(cs) => cs.iter().any(|c| c.holds(read)),
            Condition::Not(c) => !c.holds(read),
            Condition::Test(subject, test) => {
                let value = read(subject);
                match (test, value.as_deref()) {
                    // Null counts as absent, as in `set`'s `if_missing`.
                    (Test::Exists(want), v) => v.is_some_and(|v| !v.is_null()) == *want,
                    (Test::Ne(x), v) => !v.is_some_and(|v| same(v, x)),
                    (_, None) => false,
                    (Test::Eq(x), Some(v)) => same(v, x),
                    (Test::In(xs), Some(v)) => xs.iter().any(|x| same(v, x)),
                    (Test::Matches(re), Some(v)) => v.as_str().is_some_and(|s| re.is_match(s)),
                    (Test::Cmp(cmp, bound), Some(v)) => v.as_f64().is_some_and(|x| cmp(x, *bound)),
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::event;
    use super::*;
    use serde_json::json;

    fn cond(yaml: &str) -> Result<Condition, FieldError> {
        crate::config::from_yaml_str::<ConditionConfig>(yaml).unwrap().build()
    }

    #[test]
    fn operators() {
        let mut e = event(
            json!({"severity": "ERROR", "latency_ms": 120.5, "msg": "timeout talking to db", "n": 1.0, "z": null}),
        );
        e.message_mut().attributes.insert("kind", "audit");
        e.message_mut().attributes.insert("code", "200");
        for (yaml, want) in [
            ("{field: severity, eq: ERROR}", true),
            ("{field: severity, ne: ERROR}", false),
            ("{field: missing, ne: ERROR}", true),
            ("{field: missing, eq: ERROR}", false),
            ("{field: severity, in: [WARNING, ERROR]}", true),
            ("{field: severity, in: [WARNING]}", false),
            ("{field: n, eq: 1}", true),
            ("{field: n, in: [0, 1]}", true),
            ("{field: latency_ms, gt: 100}", true),
            ("{field: latency_ms, gte: 120.5}", true),
            ("{field: latency_ms, lt: 120.5}", false),
            ("{field: latency_ms, lte: 100}", false),
            ("{field: severity, gt: 0}", false),
            ("{field: msg, matches: '^timeout'}", true),
            ("{field: msg, matches: '^db'}", false),
            ("{field: latency_ms, matches: '1'}", false),
            ("{field: missing, exists: false}", true),
            ("{field: z, exists: true}", false),
            ("{field: msg, exists: true}", true),
            ("{attribute: kind, eq: audit}", true),
            ("{attribute: kind, exists: true}", true),
            ("{attribute: code, eq: 200}", true),
            ("{attribute: code, in: [404, 200]}", true),
            ("{attribute: absent, ne: x}", true),
            ("{all: [{field: severity, eq: ERROR}, {attribute: kind, eq: other}]}", false),
            ("{all: [{field: severity, eq: ERROR}, {attribute: kind, eq: audit}]}", true),
            ("{any: [{field: severity, eq: ERROR}, {attribute: kind, eq: other}]}", true),
            ("{any: [{field: severity, eq: INFO}, {attribute: kind, eq: other}]}", false),
            ("{not: {field: severity, eq: ERROR}}", false),
        ] {
            assert_eq!(cond(yaml).unwrap().matches(&e), want, "{yaml}");
        }
    }

    #[test]
    fn bad_conditions_name_the_problem() {
        let err = |y: &str| {
            let e = cond(y).unwrap_err();
            (e.field, e.message)
        };
        let at = |f: &str, m: &str| (f.to_string(), m.to_string());
        assert_eq!(err("{field: a}"), at("", "expected one operator: eq, ne, in, exists, matches, gt, gte, lt or lte"));
        assert_eq!(err("{field: a, eq: 1, gt: 2}"), at("", "expected one operator, found eq, gt"));
        assert_eq!(err("{eq: 1}"), at("", "expected `field` or `attribute`"));
        assert_eq!(err("{field: a, attribute: b, eq: 1}"), at("", "expected either `field` or `attribute`, not both"));
        assert_eq!(err("{field: 'a..b', eq: 1}"), at("field", "field path 'a..b' has an empty segment"));
        assert_eq!(err("{field: a, in: []}"), at("in", "expected at least one value"));
        assert_eq!(
            err("{attribute: n, gt: 1}"),
            at("gt", "attributes are strings; `gt` compares numbers, so it needs a `field`")
        );
        let (field, message) = err("{any: [{field: a, eq: 1}, {field: b, matches: '('}]}");
        assert_eq!(field, "any[1].matches");
        assert!(message.starts_with("invalid regular expression: regex parse error"), "{message}");
        assert_eq!(err("{not: {all: [{eq: 1}]}}"), at("not.all[0]", "expected `field` or `attribute`"));
        assert_eq!(err("{any: []}"), at("any", "expected at least one condition"));
        assert_eq!(
            err("{all: [], field: a}"),
            at("", "expected exactly one of `all`, `any`, `not` with nothing else beside it")
        );
    }
}
