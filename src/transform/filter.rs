//! `filter`: keep or drop events by a condition. `- filter: {keep_if: {field: severity, ne: DEBUG}}`
//! or `- filter: {drop_if: {...}}`. A dropped event is acknowledged: dropping it was the intent.

use serde::Deserialize;

use super::columnar::{Columnar, Planner, Rows, Slot};
use super::condition::{Condition, ConditionConfig};
use super::{BuildContext, Effect, FieldError, Stage, Verdict};
use crate::event::Event;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    // Boxed: a condition is large, and `StageConfig` is as big as its largest variant.
    pub keep_if: Option<Box<ConditionConfig>>,
    pub drop_if: Option<Box<ConditionConfig>>,
}

pub struct Filter {
    condition: Condition,
    /// true: keep what matches; false: drop what matches.
    keep: bool,
}

impl Config {
    pub fn build(&self, _ctx: &BuildContext) -> Result<Filter, FieldError> {
        let (name, c, keep) = match (&self.keep_if, &self.drop_if) {
            (Some(c), None) => ("keep_if", c, true),
            (None, Some(c)) => ("drop_if", c, false),
            _ => return Err(FieldError::new("", "expected exactly one of `keep_if` or `drop_if`")),
        };
        let condition = c.build().map_err(|e| e.under(name))?;
        Ok(Filter { condition, keep })
    }
}

impl Stage for Filter {
    fn apply(&mut self, event: &mut Event) -> Result<Verdict, String> {
        Ok(if self.condition.matches(event) == self.keep { Verdict::Keep } else { Verdict::Drop })
    }

    fn effect(&self) -> Effect<'_> {
        Effect::Reads
    }

    fn columnar(&mut self) -> Option<&mut dyn Columnar> {
        Some(self)
    }
}

impl Columnar for Filter {
    fn plan(&mut self, _p: &mut Planner) -> bool {
        true
    }

    fn check(&mut self, slots: &[Slot]) -> bool {
        self.condition.on_columns(slots)
    }

    fn apply_columns(&mut self, rows: &mut Rows, _stage: usize) {
        for r in 0..rows.len() {
            if rows.is_fast(r) && self.condition.matches_row(rows, r) != self.keep {
                rows.drop_row(r);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{build, event};
    use super::super::Verdict;
    use serde_json::json;

    #[test]
    fn keeps_or_drops_by_condition() {
        let mut s = build("filter: {drop_if: {field: severity, eq: DEBUG}}", &[]).unwrap();
        assert_eq!(s.apply(&mut event(json!({"severity": "DEBUG"}))).unwrap(), Verdict::Drop);
        assert_eq!(s.apply(&mut event(json!({"severity": "INFO"}))).unwrap(), Verdict::Keep);
        let mut s = build("filter: {keep_if: {field: severity, in: [WARNING, ERROR]}}", &[]).unwrap();
        assert_eq!(s.apply(&mut event(json!({"severity": "INFO"}))).unwrap(), Verdict::Drop);
        assert_eq!(s.apply(&mut event(json!({"severity": "ERROR"}))).unwrap(), Verdict::Keep);
    }

    #[test]
    fn combinators_and_attributes() {
        let mut s = build(
            "filter: {keep_if: {any: [{attribute: kind, eq: audit}, {not: {field: severity, in: [DEBUG, INFO]}}]}}",
            &[],
        )
        .unwrap();
        let mut audit = event(json!({"severity": "DEBUG"}));
        audit.message_mut().attributes.insert("kind", "audit");
        assert_eq!(s.apply(&mut audit).unwrap(), Verdict::Keep);
        assert_eq!(s.apply(&mut event(json!({"severity": "DEBUG"}))).unwrap(), Verdict::Drop);
        assert_eq!(s.apply(&mut event(json!({"severity": "ERROR"}))).unwrap(), Verdict::Keep);
    }

    #[test]
    fn config_errors_name_the_field() {
        let err = |y: &str| {
            let e = build(y, &[]).err().unwrap();
            (e.field, e.message)
        };
        let want = ("".to_string(), "expected exactly one of `keep_if` or `drop_if`".to_string());
        assert_eq!(err("filter: {}"), want);
        assert_eq!(err("filter: {keep_if: {field: a, eq: 1}, drop_if: {field: a, eq: 2}}"), want);
        assert_eq!(err("filter: {keep_if: {field: a, matches: '['}}").0, "keep_if.matches");
        assert_eq!(
            err("filter: {drop_if: {all: [{field: a}]}}"),
            ("drop_if.all[0]".into(), "expected one operator: eq, ne, in, exists, matches, gt, gte, lt or lte".into())
        );
    }
}
