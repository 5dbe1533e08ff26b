//! The transform chain: an ordered list of stages, declared per pipeline under `transforms:`.
//!
//! A stage looks at one event and keeps it, drops it on purpose (filter, dedupe), or refuses it
//! with a reason. A refused event becomes a [`DeadLetter`] naming the stage; nothing is lost and
//! nothing panics. Each stage lives in its own file with its `Config` and unit tests.

use std::sync::Arc;

use serde::Deserialize;

use crate::ack::Outcome;
use crate::event::{DeadLetter, Event};
use crate::schema::Schema;

pub mod condition;
pub mod dedupe;
pub mod fields;
pub mod filter;
pub mod metadata;
pub mod parse_json;
pub mod redact;
pub mod route;
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
        FieldError {
            field: field.into(),
            message: message.into(),
        }
    }
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
        Ok(Chain { stages })
    }

    pub fn process(&mut self, mut event: Event) -> Output {
        for (label, stage) in &mut self.stages {
            match stage.apply(&mut event) {
                Ok(Verdict::Keep) => {}
                Ok(Verdict::Drop) => {
                    event.ack.take().settle(Outcome::Delivered);
                    return Output::Dropped;
                }
                Err(reason) => {
                    return Output::Dead(DeadLetter {
                        event,
                        stage: label.clone(),
                        reason,
                    })
                }
            }
        }
        Output::Forward(event)
    }
}

/// Test helpers shared by the stage tests.
#[cfg(test)]
pub(crate) mod testing {
    use super::*;
    use crate::ack::Ack;
    use bytes::Bytes;

    /// An event whose record is already `record` (as if parsed).
    pub fn event(record: serde_json::Value) -> Event {
        let mut e = Event::new(
            "m-1",
            chrono::DateTime::parse_from_rfc3339("2026-11-26T10:00:00Z").unwrap().into(),
            Default::default(),
            Bytes::from(record.to_string()),
            Arc::from("projects/p/subscriptions/s"),
            Ack::none(),
        );
        e.record = record;
        e
    }

    pub fn schema() -> Arc<Schema> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
        Arc::new(Schema::load(&dir, "log").unwrap())
    }

    /// Build a stage from YAML text such as `rename: {fields: {a: b}}`.
    pub fn build(yaml: &str, sinks: &[&str]) -> Result<Box<dyn Stage>, FieldError> {
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
    use crate::ack::Ack;

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
        let mut chain = Chain { stages: vec![("transforms[0].x".into(), Box::new(Refuse))] };
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
        let mut chain = Chain { stages: vec![("transforms[0].x".into(), Box::new(DropAll))] };
        let (ack, mut rx) = Ack::channel();
        let mut e = event(serde_json::json!({}));
        e.ack = ack;
        assert!(matches!(chain.process(e), Output::Dropped));
        assert_eq!(rx.try_recv().unwrap(), Outcome::Delivered);
    }
}
