//! `rename`, `drop` and `set`: reshape a record's fields (dotted paths reach into objects).
//!
//! `- rename: {fields: {level: severity, "http.code": "http.status"}}` moves values; a missing
//! source is left alone and an existing target is overwritten.
//! `- drop: {fields: [debug, http.headers]}` removes fields.
//! `- set: {fields: {environment: prod, labels.team: core}, if_missing: false}` writes fixed JSON
//! values; with `if_missing: true` only absent (or null) fields are written.
//!
//! The `fields` maps are applied in key order (sorted: serde_json does not keep YAML order). So that
//! the order never changes a result, a rename whose target overlaps another rename's source is
//! refused. Several sources may share one target (producer spellings such as `ts` and `time` both
//! onto `timestamp`); if a record has more than one of them, the source sorting last wins.

use std::collections::BTreeMap;

use serde::Deserialize;
use serde_json::Value;

use super::columnar::plan::top_level;
use super::columnar::{Column, Columnar, Kind, Planner, Rows, Slot};
use super::{name_marks::NameMarks, parse_path, parse_paths, BuildContext, FieldError, Stage, Verdict};
use crate::event::Event;
use crate::path::FieldPath;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RenameConfig {
    /// old path -> new path.
    pub fields: BTreeMap<String, String>,
}

pub struct Rename {
    pairs: Vec<(FieldPath, FieldPath)>,
    /// The sources' top-level keys: a record with no key they may hold (the usual case, a producer
    /// already using the schema's names) is passed over without a search per source.
    roots: NameMarks,
    /// `(source, target)` slots, on columns.
    slots: Vec<(usize, usize)>,
}

/// True when one path is the other or lies inside it (`a` and `a.b`).
fn overlaps(a: &str, b: &str) -> bool {
    let inside = |x: &str, y: &str| x.strip_prefix(y).is_some_and(|rest| rest.starts_with('.'));
    a == b || inside(a, b) || inside(b, a)
}

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
            if let Some(other) = self.fields.keys().find(|k| *k != from && overlaps(k, to)) {
                return Err(FieldError::new(
                    field,
                    format!("target '{to}' collides with '{other}', the source of another rename; chained renames depend on order"),
                ));
            }
            pairs.push((parse_path(field.clone(), from)?, parse_path(field, to)?));
        }
        let roots = NameMarks::new(pairs.iter().map(|(from, _)| from.root()));
        Ok(Rename { pairs, roots, slots: Vec::new() })
    }
}

impl Stage for Rename {
    fn apply(&mut self, event: &mut Event) -> Result<Verdict, String> {
        let mut keys = event.record.as_object().into_iter().flat_map(|o| o.keys());
        if !keys.any(|k| self.roots.may_hold(k)) {
            return Ok(Verdict::Keep);
        }
        for (from, to) in &self.pairs {
            if let Some(v) = from.remove(&mut event.record) {
                to.set(&mut event.record, v)?;
            }
        }
        Ok(Verdict::Keep)
    }

    fn columnar(&mut self) -> Option<&mut dyn Columnar> {
        Some(self)
    }
}

/// Top-level renames onto schema fields: the source is decoded as the field it becomes.
impl Columnar for Rename {
    fn plan(&mut self, p: &mut Planner) -> bool {
        for (from, to) in &self.pairs {
            let Some(target) = p.slot(to).filter(|&t| p.slots[t].in_schema) else { return false };
            let kind = p.slots[target].kind;
            let Some(source) = p.extra(from, kind) else { return false };
            // A time read leniently for a `timestamp` stage must reach that stage where it is.
            if p.slots[source].any_time {
                return false;
            }
            p.renames.push((source, target));
            self.slots.push((source, target));
        }
        true
    }

    fn apply_columns(&mut self, rows: &mut Rows, _stage: usize) {
        for &(source, target) in &self.slots {
            if rows.cols[source].null_count() == rows.len() {
                continue; // the usual case: no row spells it this way
            }
            let moved = rows.cols[target].overlaid(&rows.cols[source]);
            let kind = rows.cols[source].kind();
            rows.cols[target] = moved;
            rows.cols[source] = Column::nulls(kind, rows.len());
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct DropConfig {
    pub fields: Vec<String>,
}

pub struct Drop {
    paths: Vec<FieldPath>,
    /// On columns: each path's slot, if it has one.
    slots: Vec<Option<usize>>,
}

impl DropConfig {
    pub fn build(&self, _ctx: &BuildContext) -> Result<Drop, FieldError> {
        if self.fields.is_empty() {
            return Err(FieldError::new("fields", "expected at least one field"));
        }
        Ok(Drop { paths: parse_paths("fields", &self.fields)?, slots: Vec::new() })
    }
}

impl Stage for Drop {
    fn apply(&mut self, event: &mut Event) -> Result<Verdict, String> {
        for p in &self.paths {
            p.remove(&mut event.record);
        }
        Ok(Verdict::Keep)
    }

    fn columnar(&mut self) -> Option<&mut dyn Columnar> {
        Some(self)
    }
}

/// A top-level slot is emptied; a path inside a JSON slot is removed from each value. Anything
/// else names what a row on columns cannot hold (an unknown name, inside a scalar).
impl Columnar for Drop {
    fn plan(&mut self, _p: &mut Planner) -> bool {
        true
    }

    fn check(&mut self, slots: &[Slot]) -> bool {
        self.slots = self.paths.iter().map(|p| slots.iter().position(|s| s.name == p.root())).collect();
        true
    }

    fn apply_columns(&mut self, rows: &mut Rows, _stage: usize) {
        for (path, slot) in self.paths.iter().zip(&self.slots) {
            let Some(slot) = *slot else { continue };
            match (top_level(path), rows.cols[slot].kind()) {
                (Some(_), kind) => rows.cols[slot] = Column::nulls(kind, rows.len()),
                (None, Kind::Json) => {
                    for r in rows.fast_rows() {
                        rows.edit_json(r, slot, |record| path.remove(record));
                    }
                }
                (None, _) => {}
            }
        }
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
    /// On columns: each field's slot (made for a name the schema lacks).
    slots: Vec<usize>,
}

impl SetConfig {
    pub fn build(&self, _ctx: &BuildContext) -> Result<Set, FieldError> {
        if self.fields.is_empty() {
            return Err(FieldError::new("fields", "expected at least one `field: value` pair"));
        }
        let fields = self
            .fields
            .iter()
            .map(|(k, v)| Ok((parse_path(format!("fields.{k}"), k)?, v.clone())))
            .collect::<Result<_, FieldError>>()?;
        Ok(Set { fields, if_missing: self.if_missing, slots: Vec::new() })
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

    fn columnar(&mut self) -> Option<&mut dyn Columnar> {
        Some(self)
    }
}

/// The kind of slot a value set on columns fits; `None` for one a slot cannot hold as it is.
fn kind_of(v: &Value) -> Option<Kind> {
    Some(match v {
        Value::String(_) => Kind::Str,
        Value::Bool(_) => Kind::Bool,
        Value::Number(n) if n.is_i64() => Kind::Int,
        Value::Number(_) => Kind::Float,
        Value::Array(_) | Value::Object(_) => Kind::Json,
        Value::Null => return None,
    })
}

/// A top-level field of the value's kind (a JSON slot takes any value), or a path inside a JSON
/// slot; a name the schema lacks gets a slot of its own, which `validate` then refuses.
impl Columnar for Set {
    fn plan(&mut self, p: &mut Planner) -> bool {
        for (path, value) in &self.fields {
            let Some(kind) = kind_of(value) else { return false };
            let slot = match (top_level(path), p.slots.iter().position(|s| s.name == path.root())) {
                (Some(_), Some(s)) => Some(s).filter(|&s| p.slots[s].kind == kind || p.slots[s].kind == Kind::Json),
                (Some(_), None) => p.extra(path, kind),
                (None, Some(s)) => Some(s).filter(|&s| p.slots[s].kind == Kind::Json),
                (None, None) => p.extra(&FieldPath::parse(path.root()).expect("a root is a name"), Kind::Json),
            };
            match slot {
                Some(s) => self.slots.push(s),
                None => return false,
            }
        }
        true
    }

    fn apply_columns(&mut self, rows: &mut Rows, stage: usize) {
        for ((path, value), &slot) in self.fields.iter().zip(&self.slots) {
            if let (Some(_), false) = (top_level(path), rows.cols[slot].kind() == Kind::Json) {
                let column = (0..rows.len())
                    .map(|r| {
                        let keep = !rows.is_fast(r) || (self.if_missing && rows.cols[slot].is_valid(r));
                        if keep {
                            rows.cols[slot].value(r)
                        } else {
                            Some(value.clone())
                        }
                    })
                    .collect::<Vec<_>>();
                let kind = rows.cols[slot].kind();
                rows.cols[slot] = Column::from_values(kind, &column);
                continue;
            }
            for r in rows.fast_rows() {
                let set = rows.edit_json(r, slot, |record| {
                    if self.if_missing && path.get(record).is_some_and(|v| !v.is_null()) {
                        return Ok(());
                    }
                    path.set(record, value.clone())
                });
                if let Err(reason) = set {
                    rows.refuse(r, stage, reason);
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{build, event};
    use serde_json::json;

    #[test]
    fn rename_moves_values_and_ignores_missing_sources() {
        let mut s = build("rename: {fields: {level: severity, 'http.code': 'http.status'}}", &[]).unwrap();
        let mut e = event(json!({"level": "INFO", "severity": "old", "http": {"code": 200}}));
        s.apply(&mut e).unwrap();
        assert_eq!(e.record, json!({"severity": "INFO", "http": {"status": 200}}));
        let mut e = event(json!({"other": 1}));
        s.apply(&mut e).unwrap();
        assert_eq!(e.record, json!({"other": 1}));
    }

    #[test]
    fn rename_several_spellings_onto_one_target() {
        let mut s = build("rename: {fields: {ts: timestamp, time: timestamp}}", &[]).unwrap();
        let mut e = event(json!({"time": 1}));
        s.apply(&mut e).unwrap();
        assert_eq!(e.record, json!({"timestamp": 1}));
        let mut e = event(json!({"time": 1, "ts": 2}));
        s.apply(&mut e).unwrap();
        assert_eq!(e.record, json!({"timestamp": 2}), "the source sorting last wins");
    }

    #[test]
    fn rename_refuses_self_chained_and_invalid_renames() {
        let err = |y: &str| {
            let e = build(y, &[]).err().unwrap();
            (e.field, e.message)
        };
        assert_eq!(err("rename: {fields: {a: a}}"), ("fields.a".into(), "'a' is renamed to itself".into()));
        assert_eq!(
            err("rename: {fields: {a: b, b: c}}"),
            (
                "fields.a".into(),
                "target 'b' collides with 'b', the source of another rename; chained renames depend on order".into()
            )
        );
        assert_eq!(
            err("rename: {fields: {a: b.c, b: d}}"),
            (
                "fields.a".into(),
                "target 'b.c' collides with 'b', the source of another rename; chained renames depend on order".into()
            )
        );
        assert_eq!(
            err("rename: {fields: {a: 'b..c'}}"),
            ("fields.a".into(), "field path 'b..c' has an empty segment".into())
        );
        assert_eq!(err("rename: {fields: {}}"), ("fields".into(), "expected at least one `old: new` pair".into()));
        // Only whole segments collide: `ab` is not inside `a`.
        build("rename: {fields: {a: x, b: ab}}", &[]).unwrap();
    }

    #[test]
    fn rename_onto_a_scalar_parent_fails() {
        let mut s = build("rename: {fields: {code: http.status}}", &[]).unwrap();
        let mut e = event(json!({"code": 200, "http": "yes"}));
        assert_eq!(s.apply(&mut e).unwrap_err(), "cannot set 'http.status': a parent is not an object");
    }

    #[test]
    fn drop_removes_nested_fields() {
        let mut s = build("drop: {fields: [debug, http.headers, absent.x]}", &[]).unwrap();
        let mut e = event(json!({"debug": 1, "http": {"headers": {}, "status": 200}, "keep": true}));
        s.apply(&mut e).unwrap();
        assert_eq!(e.record, json!({"http": {"status": 200}, "keep": true}));
        let e = build("drop: {fields: [ok, 'a..b']}", &[]).err().unwrap();
        assert_eq!((e.field.as_str(), e.message.as_str()), ("fields[1]", "field path 'a..b' has an empty segment"));
    }

    #[test]
    fn set_writes_any_json_or_only_fills_gaps() {
        let mut s = build("set: {fields: {environment: prod, labels.team: core, tags: [a, 1]}}", &[]).unwrap();
        let mut e = event(json!({"environment": "dev"}));
        s.apply(&mut e).unwrap();
        assert_eq!(e.record, json!({"environment": "prod", "labels": {"team": "core"}, "tags": ["a", 1]}));

        let mut s = build("set: {fields: {environment: prod}, if_missing: true}", &[]).unwrap();
        let mut e = event(json!({"environment": "dev"}));
        s.apply(&mut e).unwrap();
        assert_eq!(e.record, json!({"environment": "dev"}));
        let mut e = event(json!({"environment": null}));
        s.apply(&mut e).unwrap();
        assert_eq!(e.record, json!({"environment": "prod"}));
    }

    #[test]
    fn set_under_a_scalar_is_refused_not_overwritten() {
        let mut s = build("set: {fields: {message.extra: 1}}", &[]).unwrap();
        let mut e = event(json!({"message": "text"}));
        assert_eq!(s.apply(&mut e).unwrap_err(), "cannot set 'message.extra': a parent is not an object");
        assert_eq!(e.record, json!({"message": "text"}));
    }
}
