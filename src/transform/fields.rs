//! `rename`, `drop` and `set`: reshape a record's fields (dotted paths reach into objects).
//!
//! `- rename: {fields: {level: severity}}` moves a value; a missing source is left alone.
//! `- drop: {fields: [debug, http.headers]}` removes fields.
//! `- set: {fields: {environment: prod}, if_missing: true}` writes fixed values.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::{BuildContext, FieldError, Stage, Verdict};
use crate::event::Event;
use crate::path::FieldPath;

fn path(field: String, text: &str) -> Result<FieldPath, FieldError> {
    FieldPath::parse(text).map_err(|m| FieldError::new(field, m))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenameConfig {
    /// old name -> new name. Applied in the order of the old names (sorted), so renames must not
    /// depend on each other; one that would is refused at build time.
    pub fields: BTreeMap<String, String>,
}

pub struct Rename(Vec<(FieldPath, FieldPath)>);

impl RenameConfig {
    pub fn build(&self, _ctx: &BuildContext) -> Result<Rename, FieldError> {
        if self.fields.is_empty() {
            return Err(FieldError::new("fields", "expected at least one `old: new` pair"));
        }
        let mut pairs = Vec::new();
        for (from, to) in &self.fields {
            let field = format!("fields.{from}");
            if from == to {
                return Err(FieldError::new(field, format!("'{from}' is renamed to itself")));
            }
            if self.fields.contains_key(to) {
                return Err(FieldError::new(field, format!("'{to}' is also renamed; chained renames are ambiguous")));
            }
            pairs.push((path(field.clone(), from)?, path(field, to)?));
        }
        Ok(Rename(pairs))
    }
}

impl Stage for Rename {
    fn apply(&mut self, event: &mut Event) -> Result<Verdict, String> {
        for (from, to) in &self.0 {
            if let Some(v) = from.remove(&mut event.record) {
                to.set(&mut event.record, v)?;
            }
        }
        Ok(Verdict::Keep)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropConfig {
    pub fields: Vec<String>,
}

pub struct Drop(Vec<FieldPath>);

impl DropConfig {
    pub fn build(&self, _ctx: &BuildContext) -> Result<Drop, FieldError> {
        if self.fields.is_empty() {
            return Err(FieldError::new("fields", "expected at least one field"));
        }
        let paths = self.fields.iter().enumerate().map(|(i, f)| path(format!("fields[{i}]"), f)).collect::<Result<_, _>>()?;
        Ok(Drop(paths))
    }
}

impl Stage for Drop {
    fn apply(&mut self, event: &mut Event) -> Result<Verdict, String> {
        for p in &self.0 {
            p.remove(&mut event.record);
        }
        Ok(Verdict::Keep)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SetConfig {
    pub fields: BTreeMap<String, Value>,
    /// Only set fields that are absent (or null), keeping what the producer sent.
    #[serde(default)]
    pub if_missing: bool,
}

pub struct Set {
    fields: Vec<(FieldPath, Value)>,
    if_missing: bool,
}

impl SetConfig {
    pub fn build(&self, _ctx: &BuildContext) -> Result<Set, FieldError> {
        if self.fields.is_empty() {
            return Err(FieldError::new("fields", "expected at least one `field: value` pair"));
        }
        let fields = self
            .fields
            .iter()
            .map(|(k, v)| Ok((path(format!("fields.{k}"), k)?, v.clone())))
            .collect::<Result<_, FieldError>>()?;
        Ok(Set { fields, if_missing: self.if_missing })
    }
}

impl Stage for Set {
    fn apply(&mut self, event: &mut Event) -> Result<Verdict, String> {
        for (p, v) in &self.fields {
            if self.if_missing && p.get(&event.record).is_some_and(|v| !v.is_null()) {
                continue;
            }
            p.set(&mut event.record, v.clone())?;
        }
        Ok(Verdict::Keep)
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{build, event};
    use serde_json::json;

    #[test]
    fn rename_moves_values_and_ignores_missing_sources() {
        let mut s = build("rename: {fields: {level: severity, 'http.code': 'http.status'}}", &[]).unwrap();
        let mut e = event(json!({"level": "INFO", "http": {"code": 200}}));
        s.apply(&mut e).unwrap();
        assert_eq!(e.record, json!({"severity": "INFO", "http": {"status": 200}}));
        let mut e = event(json!({"other": 1}));
        s.apply(&mut e).unwrap();
        assert_eq!(e.record, json!({"other": 1}));
    }

    #[test]
    fn rename_refuses_self_and_chained_renames() {
        assert_eq!(build("rename: {fields: {a: a}}", &[]).err().unwrap().message, "'a' is renamed to itself");
        let e = build("rename: {fields: {a: b, b: c}}", &[]).err().unwrap();
        assert_eq!((e.field.as_str(), e.message.as_str()), ("fields.a", "'b' is also renamed; chained renames are ambiguous"));
    }

    #[test]
    fn drop_removes_nested_fields() {
        let mut s = build("drop: {fields: [debug, http.headers]}", &[]).unwrap();
        let mut e = event(json!({"debug": 1, "http": {"headers": {}, "status": 200}, "keep": true}));
        s.apply(&mut e).unwrap();
        assert_eq!(e.record, json!({"http": {"status": 200}, "keep": true}));
        assert_eq!(build("drop: {fields: ['a..b']}", &[]).err().unwrap().field, "fields[0]");
    }

    #[test]
    fn set_writes_values_or_only_fills_gaps() {
        let mut s = build("set: {fields: {environment: prod, labels.team: core}}", &[]).unwrap();
        let mut e = event(json!({"environment": "dev"}));
        s.apply(&mut e).unwrap();
        assert_eq!(e.record, json!({"environment": "prod", "labels": {"team": "core"}}));

        let mut s = build("set: {fields: {environment: prod}, if_missing: true}", &[]).unwrap();
        let mut e = event(json!({"environment": "dev"}));
        s.apply(&mut e).unwrap();
        assert_eq!(e.record["environment"], "dev");
        let mut e = event(json!({"environment": null}));
        s.apply(&mut e).unwrap();
        assert_eq!(e.record["environment"], "prod");
    }

    #[test]
    fn set_under_a_scalar_is_refused_not_overwritten() {
        let mut s = build("set: {fields: {message.extra: 1}}", &[]).unwrap();
        let mut e = event(json!({"message": "text"}));
        assert_eq!(s.apply(&mut e).unwrap_err(), "cannot set 'message.extra': a parent is not an object");
    }
}
