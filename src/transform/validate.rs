//! `validate`: check the record against the pipeline's schema. `unknown_fields: reject` (default)
//! refuses fields the schema does not name; `drop` removes them, as an explicit choice.

use std::sync::Arc;

use serde::Deserialize;

use super::columnar::{Column, Columnar, Planner, Rows, Slot};
use super::{BuildContext, Effect, FieldError, Stage, Verdict};
use crate::event::Event;
use crate::schema::{Mode, Schema};

#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum UnknownFields {
    #[default]
    Reject,
    Drop,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    #[serde(default)]
    pub unknown_fields: UnknownFields,
}

pub struct Validate {
    schema: Arc<Schema>,
    unknown: UnknownFields,
    /// On columns: the slots of REQUIRED fields, and the other slots with their names, sorted.
    required: Vec<usize>,
    extras: Vec<(String, usize)>,
}

impl Config {
    pub fn build(&self, ctx: &BuildContext) -> Result<Validate, FieldError> {
        Ok(Validate { schema: ctx.schema.clone(), unknown: self.unknown_fields, required: vec![], extras: vec![] })
    }
}

impl Stage for Validate {
    fn apply(&mut self, event: &mut Event) -> Result<Verdict, String> {
        if self.unknown == UnknownFields::Drop {
            if let Some(obj) = event.record.as_object_mut() {
                obj.retain(|k, _| self.schema.field(k).is_some());
            }
        }
        self.schema.check(&event.record, false)?;
        Ok(Verdict::Keep)
    }

    fn effect(&self) -> Effect<'_> {
        Effect::Checks(&self.schema)
    }

    fn columnar(&mut self) -> Option<&mut dyn Columnar> {
        Some(self)
    }
}

/// Decoded values already have their field's type, so what is left to check is presence:
/// required fields first (in schema order), then names the schema lacks, as `Schema::check` does.
impl Columnar for Validate {
    fn plan(&mut self, p: &mut Planner) -> bool {
        std::ptr::eq(p.schema, self.schema.as_ref())
    }

    fn check(&mut self, slots: &[Slot]) -> bool {
        let required = self.schema.fields.iter().enumerate().filter(|(_, f)| f.mode == Mode::Required);
        self.required = required.map(|(i, _)| i).collect();
        self.extras =
            slots.iter().enumerate().filter(|(_, s)| !s.in_schema).map(|(i, s)| (s.name.clone(), i)).collect();
        self.extras.sort();
        true
    }

    fn apply_columns(&mut self, rows: &mut Rows, stage: usize) {
        if self.unknown == UnknownFields::Drop {
            for (_, slot) in &self.extras {
                let kind = rows.cols[*slot].kind();
                rows.cols[*slot] = Column::nulls(kind, rows.len());
            }
        }
        for r in 0..rows.len() {
            if !rows.is_fast(r) {
                continue;
            }
            let missing = self.required.iter().find(|&&i| !rows.cols[i].is_valid(r));
            let reason = match missing {
                Some(&i) => {
                    format!("field '{}' is required by schema '{}'", self.schema.fields[i].name, self.schema.name)
                }
                None => match self.extras.iter().find(|(_, i)| rows.cols[*i].is_valid(r)) {
                    Some((name, _)) => format!("field '{name}' is not in schema '{}'", self.schema.name),
                    None => continue,
                },
            };
            rows.refuse(r, stage, reason);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{build, event};
    use serde_json::json;

    fn row() -> serde_json::Value {
        json!({"timestamp": "2026-11-26T10:00:00Z", "service": "s", "severity": "INFO", "message": "m", "message_id": "1"})
    }

    #[test]
    fn accepts_a_conforming_record() {
        let mut s = build("validate: {}", &[]).unwrap();
        s.apply(&mut event(row())).unwrap();
    }

    #[test]
    fn rejects_with_the_schema_reason() {
        let mut s = build("validate: {}", &[]).unwrap();
        let mut r = row();
        r["latency_ms"] = json!("slow");
        assert_eq!(s.apply(&mut event(r)).unwrap_err(), "field 'latency_ms': expected a number, found \"slow\"");
        let mut r = row();
        r["colour"] = json!("red");
        assert_eq!(s.apply(&mut event(r)).unwrap_err(), "field 'colour' is not in schema 'log'");
    }

    #[test]
    fn names_missing_required_fields_and_non_objects() {
        let mut s = build("validate: {unknown_fields: reject}", &[]).unwrap();
        let mut r = row();
        r.as_object_mut().unwrap().remove("service");
        assert_eq!(s.apply(&mut event(r)).unwrap_err(), "field 'service' is required by schema 'log'");
        assert_eq!(s.apply(&mut event(json!(null))).unwrap_err(), "expected a JSON object for schema 'log'");
    }

    #[test]
    fn drop_mode_removes_unknown_fields_but_still_checks_types() {
        let mut s = build("validate: {unknown_fields: drop}", &[]).unwrap();
        let mut r = row();
        r["colour"] = json!("red");
        let mut e = event(r);
        s.apply(&mut e).unwrap();
        assert_eq!(e.record, row());
        let mut r = row();
        r["severity"] = json!(3);
        assert_eq!(s.apply(&mut event(r)).unwrap_err(), "field 'severity': expected a string, found 3");
    }
}
