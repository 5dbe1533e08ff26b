//! `route`: choose an event's sinks by an attribute or field value.
//!
//! `- route: {attribute: kind, routes: {audit: [lake, warehouse], noise: []}, default: [lake]}`
//! A value with no route takes `default`, or every sink when there is no default. An empty
//! list means "write nowhere": the event is dropped (and acknowledged) here, on purpose.
//! Non-string values are matched by their JSON text (`200`, `true`).

use std::collections::BTreeMap;
use std::sync::Arc;

use serde::Deserialize;
use serde_json::Value;

use super::condition::Subject;
use super::{BuildContext, FieldError, Stage, Verdict};
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
                if !ctx.sinks.contains(n) {
                    return Err(FieldError::new(
                        format!("{field}[{i}]"),
                        format!("unknown sink '{n}'; expected one of: {}", ctx.sinks.join(", ")),
                    ));
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

impl Stage for Route {
    fn apply(&mut self, event: &mut Event) -> Result<Verdict, String> {
        let key = self.subject.value(event).map(|v| match &*v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        });
        let chosen = key.and_then(|k| self.routes.get(&k)).or(self.default.as_ref());
        match chosen {
            Some(sinks) if sinks.is_empty() => Ok(Verdict::Drop),
            Some(sinks) => {
                event.routes = Some(sinks.clone());
                Ok(Verdict::Keep)
            }
            None => Ok(Verdict::Keep),
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
        let mut s = build("route: {attribute: kind, routes: {audit: [lake, warehouse], noise: []}, default: [lake]}", &["lake", "warehouse"]).unwrap();
        let mut e = event(json!({}));
        e.attributes.insert("kind".into(), "audit".into());
        assert_eq!(s.apply(&mut e).unwrap(), Verdict::Keep);
        assert_eq!(routes(&e), Some(vec!["lake".into(), "warehouse".into()]));

        let mut e = event(json!({}));
        e.attributes.insert("kind".into(), "noise".into());
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
    fn unknown_sinks_are_config_errors() {
        let e = build("route: {field: a, routes: {x: [lake, nowhere]}}", &["lake"]).err().unwrap();
        assert_eq!((e.field.as_str(), e.message.as_str()), ("routes.x[1]", "unknown sink 'nowhere'; expected one of: lake"));
        let e = build("route: {field: a, attribute: b, routes: {x: [lake]}}", &["lake"]).err().unwrap();
        assert_eq!(e.message, "expected either `field` or `attribute`, not both");
    }
}
