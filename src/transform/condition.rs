//! Conditions on an event, shared by `filter` (keep/drop) and `route` (the subject it reads).
//!
//! YAML: `{field: severity, eq: ERROR}`, `{attribute: kind, in: [a, b]}`,
//! `{field: latency_ms, gt: 100}`, `{field: msg, matches: "^timeout"}`, `{field: x, exists: true}`,
//! `{all: [...]}`, `{any: [...]}`, `{not: {...}}`. Checked into a [`Condition`] at build time.

use std::borrow::Cow;

use regex::Regex;
use serde::Deserialize;
use serde_json::Value;

use super::FieldError;
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
            (Some(f), None) => FieldPath::parse(f).map(Subject::Field).map_err(|m| FieldError::new("field", m)),
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
            Subject::Attribute(a) => event.attributes.get(a).map(|v| Cow::Owned(Value::String(v.clone()))),
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

fn nested(prefix: &str, e: FieldError) -> FieldError {
    let field = if e.field.is_empty() { prefix.to_owned() } else { format!("{prefix}.{}", e.field) };
    FieldError { field, message: e.message }
}

impl ConditionConfig {
    pub fn build(&self) -> Result<Condition, FieldError> {
        let combinators = [self.all.is_some(), self.any.is_some(), self.not.is_some()].iter().filter(|b| **b).count();
        let mut ops: Vec<(&str, Test)> = Vec::new();
        if let Some(v) = &self.eq {
            ops.push(("eq", Test::Eq(v.clone())));
        }
        if let Some(v) = &self.ne {
            ops.push(("ne", Test::Ne(v.clone())));
        }
        if let Some(v) = &self.one_of {
            ops.push(("in", Test::In(v.clone())));
        }
        if let Some(v) = self.exists {
            ops.push(("exists", Test::Exists(v)));
        }
        if let Some(r) = &self.matches {
            let re = Regex::new(r).map_err(|e| FieldError::new("matches", format!("invalid regular expression: {e}")))?;
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
        let has_subject = self.field.is_some() || self.attribute.is_some();
        if combinators > 0 {
            if combinators > 1 || !ops.is_empty() || has_subject {
                return Err(FieldError::new("", "expected exactly one of `all`, `any`, `not` with nothing else beside it"));
            }
            let list = |name: &str, items: &[ConditionConfig]| -> Result<Vec<Condition>, FieldError> {
                if items.is_empty() {
                    return Err(FieldError::new(name, "expected at least one condition"));
                }
                items.iter().enumerate().map(|(i, c)| c.build().map_err(|e| nested(&format!("{name}[{i}]"), e))).collect()
            };
            return Ok(match (&self.all, &self.any, &self.not) {
                (Some(a), _, _) => Condition::All(list("all", a)?),
                (_, Some(a), _) => Condition::Any(list("any", a)?),
                (_, _, Some(n)) => Condition::Not(Box::new(n.build().map_err(|e| nested("not", e))?)),
                _ => unreachable!("one combinator is set"),
            });
        }
        let subject = Subject::from_keys(self.field.as_deref(), self.attribute.as_deref())?;
        match ops.len() {
            1 => Ok(Condition::Test(subject, ops.pop().expect("one op").1)),
            0 => Err(FieldError::new("", "expected one operator: eq, ne, in, exists, matches, gt, gte, lt or lte")),
            _ => Err(FieldError::new(
                "",
                format!("expected one operator, found {}", ops.iter().map(|(n, _)| *n).collect::<Vec<_>>().join(", ")),
            )),
        }
    }
}

impl Condition {
    pub fn matches(&self, event: &Event) -> bool {
        match self {
            Condition::All(cs) => cs.iter().all(|c| c.matches(event)),
            Condition::Any(cs) => cs.iter().any(|c| c.matches(event)),
            Condition::Not(c) => !c.matches(event),
            Condition::Test(subject, test) => {
                let value = subject.value(event);
                match (test, value.as_deref()) {
                    (Test::Exists(want), v) => v.is_some_and(|v| !v.is_null()) == *want,
                    (Test::Ne(x), v) => v != Some(x),
                    (_, None) => false,
                    (Test::Eq(x), Some(v)) => v == x,
                    (Test::In(xs), Some(v)) => xs.contains(v),
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
        let mut e = event(json!({"severity": "ERROR", "latency_ms": 120.5, "msg": "timeout talking to db"}));
        e.attributes.insert("kind".into(), "audit".into());
        for (yaml, want) in [
            ("{field: severity, eq: ERROR}", true),
            ("{field: severity, ne: ERROR}", false),
            ("{field: missing, ne: ERROR}", true),
            ("{field: severity, in: [WARNING, ERROR]}", true),
            ("{field: latency_ms, gt: 100}", true),
            ("{field: latency_ms, lte: 100}", false),
            ("{field: msg, matches: '^timeout'}", true),
            ("{field: missing, exists: false}", true),
            ("{attribute: kind, eq: audit}", true),
            ("{all: [{field: severity, eq: ERROR}, {attribute: kind, eq: other}]}", false),
            ("{any: [{field: severity, eq: ERROR}, {attribute: kind, eq: other}]}", true),
            ("{not: {field: severity, eq: ERROR}}", false),
        ] {
            assert_eq!(cond(yaml).unwrap().matches(&e), want, "{yaml}");
        }
    }

    #[test]
    fn bad_conditions_name_the_problem() {
        let err = |y: &str| cond(y).unwrap_err();
        assert_eq!(err("{field: a}").message, "expected one operator: eq, ne, in, exists, matches, gt, gte, lt or lte");
        assert_eq!(err("{field: a, eq: 1, gt: 2}").message, "expected one operator, found eq, gt");
        assert_eq!(err("{eq: 1}").message, "expected `field` or `attribute`");
        let e = err("{any: [{field: a, eq: 1}, {field: b, matches: '('}]}");
        assert_eq!(e.field, "any[1].matches");
        assert!(e.message.starts_with("invalid regular expression"), "{}", e.message);
        assert_eq!(err("{all: [], field: a}").message, "expected exactly one of `all`, `any`, `not` with nothing else beside it");
    }
}
