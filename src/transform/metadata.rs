//! `metadata`: copy what Pub/Sub knows about a message into its record.
//!
//! `- metadata: {ingest_time: ingest_time, message_id: message_id, publish_time: published,
//!    subscription: source, attributes: attrs, attribute_fields: {origin: labels.origin}}`
//! Each key names the field to write; leave a key out to skip it. Times are RFC 3339 UTC with
//! microseconds (`2026-11-26T10:00:00.000000Z`), `ingest_time` being when this stage saw the event.
//! `attributes` writes them all as one object; an attribute named in `attribute_fields` that the
//! message lacks writes nothing.

use std::collections::BTreeMap;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::Value;

use super::columnar::{Column, Columnar, Kind, Planner, Rows};
use super::{parse_path, BuildContext, FieldError, Stage, Verdict};
use crate::event::Event;
use crate::path::FieldPath;
use crate::schema::format_timestamp;

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub ingest_time: Option<String>,
    pub message_id: Option<String>,
    pub publish_time: Option<String>,
    pub subscription: Option<String>,
    pub attributes: Option<String>,
    /// Single attributes to copy: attribute name -> field.
    #[serde(default)]
    pub attribute_fields: BTreeMap<String, String>,
}

pub struct Metadata {
    ingest_time: Option<FieldPath>,
    message_id: Option<FieldPath>,
    publish_time: Option<FieldPath>,
    subscription: Option<FieldPath>,
    attributes: Option<FieldPath>,
    attribute_fields: Vec<(String, FieldPath)>,
    /// Wall clock, replaceable in tests.
    now: fn() -> DateTime<Utc>,
    /// On columns: what each written slot gets, in the order the row form writes them.
    slots: Vec<(usize, Source)>,
}

/// What a metadata field is filled from.
#[derive(Debug, Clone)]
enum Source {
    IngestTime,
    MessageId,
    PublishTime,
    Subscription,
    Attributes,
    Attribute(String),
}

impl Config {
    pub fn build(&self, _ctx: &BuildContext) -> Result<Metadata, FieldError> {
        let p = |name: &str, v: &Option<String>| v.as_deref().map(|t| parse_path(name, t)).transpose();
        let m = Metadata {
            ingest_time: p("ingest_time", &self.ingest_time)?,
            message_id: p("message_id", &self.message_id)?,
            publish_time: p("publish_time", &self.publish_time)?,
            subscription: p("subscription", &self.subscription)?,
            attributes: p("attributes", &self.attributes)?,
            attribute_fields: self
                .attribute_fields
                .iter()
                .map(|(a, f)| Ok((a.clone(), parse_path(format!("attribute_fields.{a}"), f)?)))
                .collect::<Result<_, FieldError>>()?,
            now: Utc::now,
            slots: Vec::new(),
        };
        let any = m.ingest_time.is_some()
            || m.message_id.is_some()
            || m.publish_time.is_some()
            || m.subscription.is_some()
            || m.attributes.is_some()
            || !m.attribute_fields.is_empty();
        if !any {
            return Err(FieldError::new(
                "",
                "expected at least one of ingest_time, message_id, publish_time, subscription, attributes, attribute_fields",
            ));
        }
        Ok(m)
    }
}

impl Stage for Metadata {
    fn apply(&mut self, event: &mut Event) -> Result<Verdict, String> {
        // Written in this order; a path that cannot be set stops the stage there.
        let (event, record, _) = event.parts();
        if let Some(p) = &self.ingest_time {
            p.set(record, format_timestamp((self.now)()).into())?;
        }
        if let Some(p) = &self.message_id {
            p.set(record, event.message_id.clone().into())?;
        }
        if let Some(p) = &self.publish_time {
            p.set(record, format_timestamp(event.publish_time).into())?;
        }
        if let Some(p) = &self.subscription {
            p.set(record, Value::String(event.subscription.to_string()))?;
        }
        if let Some(p) = &self.attributes {
            let attrs = event.attributes.iter().map(|(k, v)| (k.to_owned(), Value::String(v.to_owned())));
            p.set(record, Value::Object(attrs.collect()))?;
        }
        for (a, p) in &self.attribute_fields {
            if let Some(v) = event.attributes.get(a) {
                p.set(record, v.into())?;
            }
        }
        Ok(Verdict::Keep)
    }

    fn columnar(&mut self) -> Option<&mut dyn Columnar> {
        Some(self)
    }
}

/// Top-level schema fields of the type each value has: the column is built from the events.
impl Columnar for Metadata {
    fn plan(&mut self, p: &mut Planner) -> bool {
        let singles = [
            (&self.ingest_time, Source::IngestTime, Kind::Time),
            (&self.message_id, Source::MessageId, Kind::Str),
            (&self.publish_time, Source::PublishTime, Kind::Time),
            (&self.subscription, Source::Subscription, Kind::Str),
            (&self.attributes, Source::Attributes, Kind::Json),
        ];
        let singles = singles.into_iter().filter_map(|(path, source, kind)| Some((path.as_ref()?, source, kind)));
        let attributes = self.attribute_fields.iter().map(|(a, path)| (path, Source::Attribute(a.clone()), Kind::Str));
        for (path, source, kind) in singles.chain(attributes).collect::<Vec<_>>() {
            let Some(slot) = p.field(path, kind) else { return false };
            self.slots.push((slot, source));
        }
        true
    }

    fn apply_columns(&mut self, rows: &mut Rows, _stage: usize) {
        let now = (self.now)().timestamp_micros();
        let fast: Vec<bool> = (0..rows.len()).map(|r| rows.is_fast(r)).collect();
        let messages = &rows.messages.0;
        let on = |r: usize| fast[r].then_some(&messages[r]);
        for (slot, source) in &self.slots {
            let n = rows.len();
            let column = match source {
                Source::IngestTime => Column::Time((0..n).map(|r| on(r).map(|_| now)).collect()),
                Source::PublishTime => {
                    Column::Time((0..n).map(|r| on(r).map(|e| e.publish_time.timestamp_micros())).collect())
                }
                Source::MessageId => Column::Str((0..n).map(|r| on(r).map(|e| e.message_id.as_str())).collect()),
                Source::Subscription => Column::Str((0..n).map(|r| on(r).map(|e| &*e.subscription)).collect()),
                Source::Attributes => {
                    let values: Vec<Option<Value>> = (0..n)
                        .map(|r| {
                            let attrs = &on(r)?.attributes;
                            Some(Value::Object(attrs.iter().map(|(k, v)| (k.to_owned(), v.into())).collect()))
                        })
                        .collect();
                    Column::from_values(Kind::Json, &values)
                }
                // An attribute the message lacks writes nothing: the field keeps its value.
                Source::Attribute(a) => {
                    let values = Column::Str((0..n).map(|r| on(r)?.attributes.get(a)).collect());
                    rows.cols[*slot].overlaid(&values)
                }
            };
            rows.cols[*slot] = column;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn copies_message_metadata_into_the_record() {
        let config: Config = crate::config::from_yaml_str(
            "{ingest_time: ingested, message_id: id, publish_time: published, subscription: src, attributes: attrs, attribute_fields: {origin: labels.origin, absent: x}}",
        )
        .unwrap();
        let schema = super::super::testing::schema();
        let mut stage = config.build(&BuildContext { pipeline: "logs", schema: &schema, sinks: &[] }).unwrap();
        stage.now = || DateTime::parse_from_rfc3339("2026-11-26T10:00:01.5Z").unwrap().into();
        let mut e = super::super::testing::event(json!({"a": 1}));
        e.message_mut().attributes.insert("origin", "eu");
        stage.apply(&mut e).unwrap();
        assert_eq!(
            e.record,
            json!({"a": 1, "ingested": "2026-11-26T10:00:01.500000Z", "id": "m-1",
                   "published": "2026-11-26T10:00:00.000000Z", "src": "projects/p/subscriptions/s",
                   "attrs": {"origin": "eu"}, "labels": {"origin": "eu"}})
        );
    }

    #[test]
    fn needs_something_to_copy_and_valid_paths() {
        let err = |y: &str| {
            let e = super::super::testing::build(y, &[]).err().unwrap();
            (e.field, e.message)
        };
        assert_eq!(
            err("metadata: {}"),
            (
                "".into(),
                "expected at least one of ingest_time, message_id, publish_time, subscription, attributes, attribute_fields"
                    .into()
            )
        );
        assert_eq!(err("metadata: {message_id: ''}"), ("message_id".into(), "field path is empty".into()));
        assert_eq!(
            err("metadata: {attribute_fields: {origin: 'a..b'}}"),
            ("attribute_fields.origin".into(), "field path 'a..b' has an empty segment".into())
        );
    }

    #[test]
    fn writing_under_a_scalar_fails() {
        let mut stage = super::super::testing::build("metadata: {message_id: meta.id}", &[]).unwrap();
        let mut e = super::super::testing::event(json!({"meta": 1}));
        assert_eq!(stage.apply(&mut e).unwrap_err(), "cannot set 'meta.id': a parent is not an object");
    }
}
