//! `route`: choose an event's sinks by an attribute or field value.
//!
//! `- route: {attribute: kind, routes: {audit: [lake, warehouse], noise: []}, default: [lake]}`
//! A value with no route takes `default`, or every sink when there is no default. An empty
//! list means "write nowhere": the event is dropped (and acknowledged) here, on purpose.
//! Non-string values are matched by their JSON text (`200`, `true`), so YAML keys `200:` and
//! `'200':` both match the number 200 and the string "200".
//!
//! Dropping on an empty list is this stage's rule for "write nowhere": whoever reads
//! `event.routes` never sees an empty list, so an event can't sit unsettled for want of a sink.

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use super::columnar::{Columnar, Planner, Rows, Slot};
use super::condition::{text_of, Subject};
use super::{BuildContext, Effect, FieldError, Stage, Verdict};
use crate::event::Event;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub field: Option<String>,
    pub attribute: Option<String>,
    pub routes: BTreeMap<String, Vec<String>>,
    pub default: Option<Vec<String>>,
}

type Sinks = Arc<[Arc<str>]>;

pub struct Route {
    subject: Subject,
    routes: BTreeMap<String, Sinks>,
    default: Option<Sinks>,
}

impl Config {
    pub fn build(&self, ctx: &BuildContext) -> Result<Route, FieldError> {
        let subject = Subject::from_keys(self.field.as_deref(), self.attribute.as_deref())?;
        if self.routes.is_empty() {
            return Err(FieldError::new("routes", "expected at least one `value: [sinks]` entry"));
        }
        let check = |field: String, names: &[String]| -> Result<Sinks, FieldError> {
            for (i, n) in names.iter().enumerate() {
                let at = || format!("{field}[{i}]");
                if !ctx.sinks.contains(n) {
                    let message = match ctx.sinks {
                        [] => format!("unknown sink '{n}'; the pipeline has no sinks"),
                        known => {
                            format!("unknown sink '{n}'; expected one of: {}", known.join(", "))
                        }
                    };
                    return Err(FieldError::new(at(), message));
                }
                if names[..i].contains(n) {
                    return Err(FieldError::new(at(), format!("sink '{n}' is listed twice")));
                }
            }
            Ok(names.iter().map(|n| Arc::from(n.as_str())).collect())
        };
        let routes = self
            .routes
            .iter()
            .map(|(value, names)| Ok((value.clone(), check(format!("routes.{value}"), names)?)))
            .collect::<Result<_, FieldError>>()?;
        let default = self.default.as_deref().map(|d| check("default".into(), d)).transpose()?;
        Ok(Route { subject, routes, default })
    }
}

impl Route {
    /// The sinks for a subject's value: `None` keeps the event's routes as they are.
    fn chosen(&self, value: Option<&Value>) -> Option<&Sinks> {
        let route = value.and_then(|v| self.routes.get(text_of(v).as_ref()));
        route.or(self.default.as_ref())
    }
}

impl Stage for Route {
    fn apply(&mut self, event: &mut Event) -> Result<Verdict, String> {
        let value = self.subject.value(event);
        match self.chosen(value.as_deref()) {
            Some(sinks) if sinks.is_empty() => Ok(Verdict::Drop),
            Some(sinks) => {
                event.routes = Some(sinks.clone());
                Ok(Verdict::Keep)
            }
            None => Ok(Verdict::Keep),
        }
    }

    fn effect(&self) -> Effect<'_> {
        Effect::Reads
    }

    fn columnar(&mut self) -> Option<&mut dyn Columnar> {
        Some(self)
    }
}

impl Columnar for Route {
    fn plan(&mut self, _p: &mut Planner) -> bool {
        true
    }

    fn check(&mut self, slots: &[Slot]) -> bool {
        self.subject.on_columns(slots)
    }

    fn apply_columns(&mut self, rows: &mut Rows, _stage: usize) {
        for r in 0..rows.len() {
            if !rows.is_fast(r) {
                continue;
            }
            let value = self.subject.value_at(rows, r);
            match self.chosen(value.as_deref()).cloned() {
                Some(sinks) if sinks.is_empty() => rows.drop_row(r),
                Some(sinks) => rows.set_routes(r, sinks),
                None => {}
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{build, event};
    use super::super::Verdict;
    use serde_json::json;

    fn routes(e: &crate::event::Event) -> Option<Vec<String>> {
        e.routes.as_ref().map(|r| r.iter().map(|s| s.to_string()).collect())
    }

    #[test]
    fn routes_by_attribute_with_default_and_empty_routes() {
        let mut s = build(
            "route: {attribute: kind, routes: {audit: [lake, warehouse], noise: []}, default: [lake]}",
            &["lake", "warehouse"],
        )
        .unwrap();
        let mut e = event(json!({}));
        e.message_mut().attributes.insert("kind", "audit");
        assert_eq!(s.apply(&mut e).unwrap(), Verdict::Keep);
        assert_eq!(routes(&e), Some(vec!["lake".into(), "warehouse".into()]));

        let mut e = event(json!({}));
        e.message_mut().attributes.insert("kind", "noise");
        assert_eq!(s.apply(&mut e).unwrap(), Verdict::Drop);

        let mut e = event(json!({}));
        assert_eq!(s.apply(&mut e).unwrap(), Verdict::Keep);
        assert_eq!(routes(&e), Some(vec!["lake".into()]));
    }

    #[test]
    fn routes_by_field_value_including_numbers() {
        let mut s = build("route: {field: http.status, routes: {'500': [errors]}}", &["lake", "errors"]).unwrap();
        let mut e = event(json!({"http": {"status": 500}}));
        s.apply(&mut e).unwrap();
        assert_eq!(routes(&e), Some(vec!["errors".into()]));
        let mut e = event(json!({"http": {"status": 200}}));
        s.apply(&mut e).unwrap();
        assert_eq!(routes(&e), None, "no route and no default: every sink");
    }

    #[test]
    fn without_default_unmatched_and_absent_keep_every_sink() {
        let mut s = build("route: {attribute: kind, routes: {audit: [lake]}}", &["lake", "errors"]).unwrap();
        let mut e = event(json!({}));
        e.message_mut().attributes.insert("kind", "other");
        assert_eq!(s.apply(&mut e).unwrap(), Verdict::Keep);
        assert_eq!(routes(&e), None);
        let mut e = event(json!({"kind": "audit"}));
        assert_eq!(s.apply(&mut e).unwrap(), Verdict::Keep);
        assert_eq!(routes(&e), None, "an attribute route does not read the record");
    }

    #[test]
    fn numeric_and_boolean_yaml_keys_match_by_text() {
        let mut s = build("route: {field: ok, routes: {true: [lake], 'false': []}}", &["lake"]).unwrap();
        let mut e = event(json!({"ok": true}));
        assert_eq!(s.apply(&mut e).unwrap(), Verdict::Keep);
        assert_eq!(routes(&e), Some(vec!["lake".into()]));
        assert_eq!(s.apply(&mut event(json!({"ok": false}))).unwrap(), Verdict::Drop);
        let mut e = event(json!({"ok": "true"}));
        s.apply(&mut e).unwrap();
        assert_eq!(routes(&e), Some(vec!["lake".into()]), "the string \"true\" has the same text");
    }

    #[test]
    fn config_errors_name_the_entry() {
        let err = |y: &str, sinks: &[&str]| {
            let e = build(y, sinks).err().unwrap();
            (e.field, e.message)
        };
        assert_eq!(
            err("route: {field: a, routes: {x: [lake, nowhere]}}", &["lake", "errors"]),
            ("routes.x[1]".into(), "unknown sink 'nowhere'; expected one of: lake, errors".into())
        );
        assert_eq!(
            err("route: {field: a, routes: {x: [lake]}, default: [lake, lake]}", &["lake"]),
            ("default[1]".into(), "sink 'lake' is listed twice".into())
        );
        assert_eq!(
            err("route: {field: a, routes: {x: [lake]}}", &[]),
            ("routes.x[0]".into(), "unknown sink 'lake'; the pipeline has no sinks".into())
        );
        assert_eq!(
            err("route: {field: a, attribute: b, routes: {x: [lake]}}", &["lake"]),
            ("".into(), "expected either `field` or `attribute`, not both".into())
        );
        assert_eq!(
            err("route: {routes: {x: [lake]}}", &["lake"]),
            ("".into(), "expected `field` or `attribute`".into())
        );
        assert_eq!(
            err("route: {field: a, routes: {}}", &["lake"]),
            ("routes".into(), "expected at least one `value: [sinks]` entry".into())
        );
    }
}
