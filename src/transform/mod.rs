//! The transform chain: an ordered list of stages, declared per pipeline under `transforms:`.
//!
//! A stage looks at one event and keeps it, drops it on purpose (filter, dedupe), or refuses it
//! with a reason. A refused event becomes a [`DeadLetter`] naming the stage; nothing is lost and
//! nothing panics. Each stage lives in its own file with its `Config` and unit tests.

use std::sync::Arc;

use serde::Deserialize;

use crate::event::ack::Outcome;
use crate::event::{DeadLetter, Event, Handover};
use crate::path::FieldPath;
use crate::schema::Schema;
pub use columnar::Batched;
use columnar::{Columnar, Slot, Widths};

pub mod columnar;
pub mod condition;
pub mod dedupe;
pub mod fields;
pub mod filter;
pub mod metadata;
pub mod name_marks;
pub mod parse_json;
pub mod redact;
pub mod route;
pub mod time_text;
pub mod timestamp;
pub mod validate;

/// What a stage decided about an event.
#[derive(Debug, PartialEq, Eq)]
pub enum Verdict {
    /// Pass it to the next stage.
    Keep,
    /// Intentionally removed (filtered or a duplicate): acknowledged without being written.
    Drop,
}

/// One step of a chain. `Err` carries the reason the event is sent to dead letters.
pub trait Stage: Send {
    fn apply(&mut self, event: &mut Event) -> Result<Verdict, String>;

    /// What the stage may do to a record it keeps; see [`Chain::checked_against`].
    fn effect(&self) -> Effect<'_> {
        Effect::Changes
    }

    /// The stage as an operator on columns, where it has one ([`columnar`]).
    fn columnar(&mut self) -> Option<&mut dyn Columnar> {
        None
    }

    /// No two events this stage will see share a message id ([`Chain::message_ids_unique`]).
    fn message_ids_unique(&mut self) {}
}

/// What a stage may do to the record of an event it keeps.
#[derive(Debug, Clone, Copy)]
pub enum Effect<'a> {
    /// Reads it at most (it may drop the event, or set its routes).
    Reads,
    /// May change it.
    Changes,
    /// Leaves it passing `schema.check` (an event that does not is refused).
    Checks(&'a Schema),
}

/// What a stage's config needs to know about its pipeline when it is built.
pub struct BuildContext<'a> {
    pub pipeline: &'a str,
    pub schema: &'a Arc<Schema>,
    /// Names of the pipeline's sinks, for the `route` stage.
    pub sinks: &'a [String],
}

/// A config problem inside a stage: `field` is relative to the stage (may be empty).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    pub field: String,
    pub message: String,
}

impl FieldError {
    pub fn new(field: impl Into<String>, message: impl Into<String>) -> Self {
        FieldError { field: field.into(), message: message.into() }
    }

    /// The same error seen from an enclosing key: `matches` under `keep_if` is `keep_if.matches`.
    pub fn under(self, prefix: &str) -> FieldError {
        let field = if self.field.is_empty() { prefix.to_owned() } else { format!("{prefix}.{}", self.field) };
        FieldError { field, message: self.message }
    }
}

/// A dotted path from a stage's config; `field` says where it was written, for the error.
pub(crate) fn parse_path(field: impl Into<String>, text: &str) -> Result<FieldPath, FieldError> {
    FieldPath::parse(text).map_err(|m| FieldError::new(field, m))
}

/// A list of dotted paths written under `name`; an error names the entry, e.g. `fields[1]`.
pub(crate) fn parse_paths(name: &str, texts: &[String]) -> Result<Vec<FieldPath>, FieldError> {
    texts.iter().enumerate().map(|(i, t)| parse_path(format!("{name}[{i}]"), t)).collect()
}

/// A stage as written in YAML: `- parse_json: {}`, `- rename: {fields: {level: severity}}`, …
#[derive(Debug, Clone, Deserialize)]
#[serde(rename_all = "snake_case", deny_unknown_fields)]
pub enum StageConfig {
    ParseJson(parse_json::Config),
    Validate(validate::Config),
    Rename(fields::RenameConfig),
    Drop(fields::DropConfig),
    Set(fields::SetConfig),
    Metadata(metadata::Config),
    Filter(filter::Config),
    Redact(redact::Config),
    Timestamp(timestamp::Config),
    Route(route::Config),
    Dedupe(dedupe::Config),
}

impl StageConfig {
    /// The stage's name as written in YAML, used in dead-letter reasons and errors.
    pub fn kind(&self) -> &'static str {
        match self {
            StageConfig::ParseJson(_) => "parse_json",
            StageConfig::Validate(_) => "validate",
            StageConfig::Rename(_) => "rename",
            StageConfig::Drop(_) => "drop",
            StageConfig::Set(_) => "set",
            StageConfig::Metadata(_) => "metadata",
            StageConfig::Filter(_) => "filter",
            StageConfig::Redact(_) => "redact",
            StageConfig::Timestamp(_) => "timestamp",
            StageConfig::Route(_) => "route",
            StageConfig::Dedupe(_) => "dedupe",
        }
    }

    pub fn build(&self, ctx: &BuildContext) -> Result<Box<dyn Stage>, FieldError> {
        Ok(match self {
            StageConfig::ParseJson(c) => Box::new(c.build(ctx)?),
            StageConfig::Validate(c) => Box::new(c.build(ctx)?),
            StageConfig::Rename(c) => Box::new(c.build(ctx)?),
            StageConfig::Drop(c) => Box::new(c.build(ctx)?),
            StageConfig::Set(c) => Box::new(c.build(ctx)?),
            StageConfig::Metadata(c) => Box::new(c.build(ctx)?),
            StageConfig::Filter(c) => Box::new(c.build(ctx)?),
            StageConfig::Redact(c) => Box::new(c.build(ctx)?),
            StageConfig::Timestamp(c) => Box::new(c.build(ctx)?),
            StageConfig::Route(c) => Box::new(c.build(ctx)?),
            StageConfig::Dedupe(c) => Box::new(c.build(ctx)?),
        })
    }
}

/// What the chain made of one event.
#[derive(Debug)]
pub enum Output {
    /// Passed every stage: on to the sinks.
    Forward(Event),
    /// Filtered or deduplicated: already acknowledged.
    Dropped,
    /// Refused by a stage: on to dead letters.
    Dead(DeadLetter),
}

/// The built stages of one pipeline, in order.
pub struct Chain {
    stages: Vec<(String, Box<dyn Stage>)>,
    schema: Arc<Schema>,
    /// The columns a batch is decoded into; `None`: the chain runs row by row.
    slots: Option<Arc<[Slot]>>,
    widths: Widths,
}

/// The stages by label: a chain's state (dedupe's window) is no one's business in a log.
impl std::fmt::Debug for Chain {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let stages: Vec<&str> = self.stages.iter().map(|(label, _)| label.as_str()).collect();
        f.debug_struct("Chain").field("stages", &stages).field("columnar", &self.slots.is_some()).finish()
    }
}

impl Chain {
    /// Build every stage; errors carry the field path `transforms[i].<kind>.<field>`.
    pub fn build(configs: &[StageConfig], ctx: &BuildContext) -> Result<Chain, FieldError> {
        let mut stages = Vec::with_capacity(configs.len());
        for (i, c) in configs.iter().enumerate() {
            let label = format!("transforms[{i}].{}", c.kind());
            let stage = c.build(ctx).map_err(|e| FieldError {
                field: if e.field.is_empty() { label.clone() } else { format!("{label}.{}", e.field) },
                message: e.message,
            })?;
            stages.push((label, stage));
        }
        let mut chain = Chain { stages, schema: ctx.schema.clone(), slots: None, widths: Widths::default() };
        // Rows leave a planned chain as columns, unchecked by the sinks: it must end in `validate`.
        if chain.checked_against(ctx.schema) {
            let parses = matches!(configs.first(), Some(StageConfig::ParseJson(_)));
            chain.slots = columnar::plan(&mut chain.stages, parses, ctx.schema);
        }
        Ok(chain)
    }

    /// Whether batches are decoded into columns (else every row runs through the stages alone).
    pub fn is_columnar(&self) -> bool {
        self.slots.is_some()
    }

    /// Say that no two events this chain will see share a message id, as in an NDJSON replay
    /// (`<file>:<line>`, each line read once): a `dedupe` on the id then remembers nothing, as it
    /// could never find a repeat.
    pub fn message_ids_unique(&mut self) {
        self.stages.iter_mut().for_each(|(_, s)| s.message_ids_unique());
    }

    /// Run a batch of messages through the chain, in arrival order. Dropped ones are acknowledged.
    pub fn process_batch(&mut self, batch: impl Into<Handover>) -> Batched {
        columnar::run(&mut self.stages, self.slots.as_ref(), &self.schema, batch.into(), &mut self.widths)
    }

    /// Whether every event the chain forwards passes `schema.check(record, true)` as it leaves:
    /// the last stage that may change the record is a `validate` against this same schema (only
    /// stages that read it come after). The sinks then do not check the rows again; anything that
    /// changes a record after the chain (replay restoring `ingest_time`) must check it itself.
    pub fn checked_against(&self, schema: &Schema) -> bool {
        for (_, stage) in self.stages.iter().rev() {
            match stage.effect() {
                Effect::Reads => {}
                Effect::Changes => return false,
                Effect::Checks(s) => return std::ptr::eq(s, schema),
            }
        }
        false
    }

    pub fn process(&mut self, mut event: Event) -> Output {
        for (label, stage) in &mut self.stages {
            match stage.apply(&mut event) {
                Ok(Verdict::Keep) => {}
                Ok(Verdict::Drop) => {
                    event.ack.take().settle(Outcome::Delivered);
                    return Output::Dropped;
                }
                Err(reason) => return Output::Dead(DeadLetter { event, stage: label.clone(), reason }),
            }
        }
        Output::Forward(event)
    }
}

/// Test helpers shared by the stage tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::event::ack::Ack;
    use crate::event::Message;
    use bytes::Bytes;

    /// An event whose record is already `record` (as if parsed).
    pub(crate) fn event(record: serde_json::Value) -> Event {
        let mut e = Event::alone(
            Message::new(
                "m-1",
                chrono::DateTime::parse_from_rfc3339("2026-11-26T10:00:00Z").unwrap().into(),
                Default::default(),
                Bytes::from(record.to_string()),
                Arc::from("projects/p/subscriptions/s"),
            ),
            Ack::none(),
        );
        e.record = record;
        e
    }

    pub(crate) fn schema() -> Arc<Schema> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
        Arc::new(Schema::load(&dir, "log").unwrap())
    }

    /// Build a stage from YAML text such as `rename: {fields: {a: b}}`.
    pub(crate) fn build(yaml: &str, sinks: &[&str]) -> Result<Box<dyn Stage>, FieldError> {
        let config: StageConfig = crate::config::from_yaml_str(yaml).expect("stage yaml parses");
        let schema = schema();
        let sinks: Vec<String> = sinks.iter().map(|s| s.to_string()).collect();
        config.build(&BuildContext { pipeline: "logs", schema: &schema, sinks: &sinks })
    }
}

#[cfg(test)]
mod tests {
    use super::testing::*;
    use super::*;
    use crate::event::ack::Ack;
    use crate::event::Message;

    struct Refuse;
    impl Stage for Refuse {
        fn apply(&mut self, _: &mut Event) -> Result<Verdict, String> {
            Err("no".into())
        }
    }
    struct DropAll;
    impl Stage for DropAll {
        fn apply(&mut self, _: &mut Event) -> Result<Verdict, String> {
            Ok(Verdict::Drop)
        }
    }

    #[test]
    fn refused_event_becomes_dead_letter_naming_the_stage() {
        let mut chain = Chain {
            stages: vec![("transforms[0].x".into(), Box::new(Refuse))],
            schema: schema(),
            slots: None,
            widths: Widths::default(),
        };
        match chain.process(event(serde_json::json!({}))) {
            Output::Dead(d) => {
                assert_eq!(d.stage, "transforms[0].x");
                assert_eq!(d.reason, "no");
            }
            other => panic!("expected a dead letter, got {other:?}"),
        }
    }

    #[test]
    fn dropped_event_is_acknowledged_as_delivered() {
        let mut chain = Chain {
            stages: vec![("transforms[0].x".into(), Box::new(DropAll))],
            schema: schema(),
            slots: None,
            widths: Widths::default(),
        };
        let (ack, mut rx) = Ack::channel();
        let mut e = event(serde_json::json!({}));
        e.ack = ack;
        assert!(matches!(chain.process(e), Output::Dropped));
        assert_eq!(rx.try_recv().unwrap(), Outcome::Delivered);
    }

    /// A realistic chain built from YAML, with a few events through it; every output is compared
    /// whole. `ingest_time` is the wall clock, so it is checked for shape and then removed.
    #[test]
    fn full_chain_from_yaml() {
        let yaml = r#"
- parse_json: {}
- rename: {fields: {level: severity, msg: message, ts: timestamp}}
- timestamp: {fields: [timestamp], if_missing: publish_time}
- redact: {in_fields: [message]}
- metadata: {message_id: message_id, ingest_time: ingest_time, attribute_fields: {origin: labels.origin}}
- set: {fields: {environment: prod}, if_missing: true}
- filter: {drop_if: {field: severity, eq: DEBUG}}
- route: {attribute: kind, routes: {audit: [lake, audit], noise: []}, default: [lake]}
- dedupe: {key: message_id, window: 10m, max_keys: 1000}
- validate: {unknown_fields: reject}
"#;
        let configs: Vec<StageConfig> = crate::config::from_yaml_str(yaml).unwrap();
        let (schema, sinks) = (schema(), ["lake".to_string(), "audit".to_string()]);
        let mut chain =
            Chain::build(&configs, &BuildContext { pipeline: "logs", schema: &schema, sinks: &sinks }).unwrap();

        // (message id, attributes, payload)
        type Case<'a> = (&'a str, &'a [(&'a str, &'a str)], &'a str);
        let cases: &[Case] = &[
            (
                "a1",
                &[("kind", "audit"), ("origin", "eu")],
                r#"{"ts": 1795683600250, "service": "auth", "level": "INFO", "msg": "login ok password=hunter2 user=bob"}"#,
            ),
            (
                "a2",
                &[],
                r#"{"timestamp": "2026-11-26 09:00:01", "service": "web", "severity": "WARNING", "message": "slow", "environment": "staging"}"#,
            ),
            ("a3", &[], r#"{"service": "web", "severity": "DEBUG", "message": "tick"}"#),
            ("a4", &[("kind", "noise")], r#"{"service": "web", "severity": "INFO", "message": "heartbeat"}"#),
            ("a1", &[("kind", "audit")], r#"{"service": "auth", "severity": "INFO", "message": "redelivered"}"#),
            (
                "a5",
                &[],
                r#"{"service": "web", "severity": "ERROR", "message": "Authorization: Bearer abcdefgh12345678"}"#,
            ),
            ("a6", &[], r#"{"service": "web", "severity": "INFO", "message": "m", "colour": "red"}"#),
            ("a7", &[], r#"{"ts": "yesterday", "service": "web", "severity": "INFO", "message": "m"}"#),
            ("a8", &[], "[1]"),
        ];
        let publish_time = chrono::DateTime::parse_from_rfc3339("2026-11-26T09:30:00Z").unwrap().into();
        let got: Vec<serde_json::Value> = cases
            .iter()
            .map(|(id, attrs, payload)| {
                let attrs = attrs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
                let e = Event::alone(
                    Message::new(*id, publish_time, attrs, bytes::Bytes::from(*payload), Arc::from("s")),
                    Ack::none(),
                );
                match chain.process(e) {
                    Output::Forward(mut e) => {
                        let ingest = e.record.as_object_mut().unwrap().remove("ingest_time").unwrap();
                        let ingest = ingest.as_str().unwrap();
                        assert!(ingest.len() == 27 && ingest.ends_with('Z'), "{ingest}");
                        assert!(crate::schema::parse_timestamp(ingest).is_some(), "{ingest}");
                        let routes = e.routes.map(|r| r.iter().map(|s| s.to_string()).collect::<Vec<_>>());
                        serde_json::json!({"out": e.record, "routes": routes})
                    }
                    Output::Dropped => serde_json::json!("dropped"),
                    Output::Dead(d) => serde_json::json!({"dead": d.stage, "reason": d.reason}),
                }
            })
            .collect();

        let expected = serde_json::json!([
            {"routes": ["lake", "audit"], "out": {
                "timestamp": "2026-11-26T09:00:00.250000Z", "service": "auth", "severity": "INFO",
                "message": "login ok password=[REDACTED] user=bob", "message_id": "a1",
                "labels": {"origin": "eu"}, "environment": "prod"}},
            {"routes": ["lake"], "out": {
                "timestamp": "2026-11-26T09:00:01.000000Z", "service": "web", "severity": "WARNING",
                "message": "slow", "message_id": "a2", "environment": "staging"}},
            "dropped",
            "dropped",
            "dropped",
            {"routes": ["lake"], "out": {
                "timestamp": "2026-11-26T09:30:00.000000Z", "service": "web", "severity": "ERROR",
                "message": "Authorization: Bearer [REDACTED]", "message_id": "a5", "environment": "prod"}},
            {"dead": "transforms[9].validate", "reason": "field 'colour' is not in schema 'log'"},
            {"dead": "transforms[2].timestamp", "reason": "field 'timestamp': not a timestamp (expected RFC 3339, \
                'YYYY-MM-DD HH:MM:SS' or epoch seconds/millis/micros/nanos), found \"yesterday\""},
            {"dead": "transforms[0].parse_json", "reason": "payload must be a JSON object, found an array"},
        ]);
        assert_eq!(serde_json::Value::Array(got), expected);
    }

    /// The sinks skip their row check only when the chain's last record-changing stage is a
    /// `validate` against the pipeline's own schema.
    #[test]
    fn checked_against_needs_a_final_validate_of_the_same_schema() {
        let schema = schema();
        let sinks = ["lake".to_string()];
        let chain = |yaml: &str| {
            let configs: Vec<StageConfig> = crate::config::from_yaml_str(yaml).unwrap();
            Chain::build(&configs, &BuildContext { pipeline: "logs", schema: &schema, sinks: &sinks }).unwrap()
        };
        let checked = [
            "[{parse_json: {}}, {validate: {}}]",
            "[{parse_json: {}}, {validate: {unknown_fields: drop}}]",
            "[{validate: {}}, {dedupe: {window: 1m, max_keys: 10}}, {filter: {drop_if: {field: a, eq: b}}}, \
              {route: {field: a, routes: {b: [lake]}}}]",
        ];
        for yaml in checked {
            assert!(chain(yaml).checked_against(&schema), "{yaml}");
        }
        let unchecked = [
            "[{parse_json: {}}]",
            "[{validate: {}}, {set: {fields: {a: b}}}]",
            "[{validate: {}}, {rename: {fields: {a: b}}}]",
            "[{validate: {}}, {metadata: {message_id: message_id}}]",
            "[{validate: {}}, {timestamp: {fields: [timestamp]}}]",
            "[{validate: {}}, {redact: {}}]",
            "[{validate: {}}, {drop: {fields: [host]}}]",
            "[{validate: {}}, {parse_json: {}}]",
        ];
        for yaml in unchecked {
            assert!(!chain(yaml).checked_against(&schema), "{yaml}");
        }
        // The same definition in another value is not taken on trust.
        let other = super::testing::schema();
        assert!(!chain("[{validate: {}}]").checked_against(&other));
    }

    #[test]
    fn chain_build_errors_name_the_stage_and_field() {
        let configs: Vec<StageConfig> =
            crate::config::from_yaml_str("[{parse_json: {}}, {route: {field: kind, routes: {a: [nowhere]}}}]").unwrap();
        let schema = schema();
        let err = Chain::build(&configs, &BuildContext { pipeline: "logs", schema: &schema, sinks: &["lake".into()] })
            .err()
            .unwrap();
        assert_eq!(
            err,
            FieldError::new("transforms[1].route.routes.a[0]", "unknown sink 'nowhere'; expected one of: lake")
        );
    }
}
