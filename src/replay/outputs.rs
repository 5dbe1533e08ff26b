//! The writers and targets a replay feeds: the pipeline's BigQuery sinks (only ids the table
//! lacks, exactly-once appends), its lake sinks under `--output`, its topic, and the dead letters.

use std::sync::Arc;

use object_store::path::Path as ObjectPath;

use super::existing::{Counts, MissingOnly};
use super::topic::TopicTarget;
use super::ReplayError;
use crate::config::global::WriteMode;
use crate::config::{Config, Pipeline, Sink};
use crate::sink::batcher::Limits;
use crate::sink::build::{Built, SinkContext};
use crate::sink::group::{SinkGroup, Writer};
use crate::telemetry::metrics::Metrics;
use crate::topology::StartError;

/// Where replayed events go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Target {
    /// The pipeline's BigQuery sinks: only message ids the table does not have yet.
    Bigquery,
    /// The pipeline's lake sinks, under the replay's --output (never the archive).
    Lake,
    /// The pipeline's Pub/Sub topic (original bytes; the running service processes them).
    Topic,
}

impl Target {
    pub(super) fn name(self) -> &'static str {
        match self {
            Target::Bigquery => "bigquery",
            Target::Lake => "lake",
            Target::Topic => "topic",
        }
    }
}

/// The writers and targets a replay feeds.
pub(super) struct Outputs {
    pub group: Option<SinkGroup>,
    pub dead: SinkGroup,
    pub topic: Option<TopicTarget>,
    pub counts: Arc<Counts>,
}

impl Outputs {
    /// Whether an event with these routes goes to any of the replay's sinks.
    pub(super) fn takes(&self, routes: Option<&[Arc<str>]>) -> bool {
        let Some(group) = &self.group else { return false };
        routes.is_none_or(|r| group.writers.iter().any(|w| r.iter().any(|n| &**n == w.name())))
    }

    /// Close the writers (BigQuery streams) once everything is written.
    pub(super) async fn close(&self) {
        if let Some(g) = &self.group {
            for w in &g.writers {
                w.close().await;
            }
        }
    }
}

/// Build the replay's writers for `to` (lake output and dead letters under `base` in `store`).
pub(super) async fn outputs(
    config: &Config,
    p: &Pipeline,
    to: &[Target],
    store: &Arc<dyn object_store::ObjectStore>,
    base: &ObjectPath,
) -> Result<Outputs, ReplayError> {
    let metrics = Metrics::new();
    let counts = Arc::new(Counts::default());
    let usage = |t: &str, why: String| ReplayError::Usage(format!("--to {t}: {why}"));
    let warehouse = if to.contains(&Target::Bigquery) {
        let w = crate::bigquery::Warehouse::connect(config).await.map_err(StartError::from)?;
        Some(w.ok_or_else(|| {
            usage("bigquery", "bigquery is not enabled in the config (SLUICE_BIGQUERY=true enables it)".into())
        })?)
    } else {
        None
    };
    let cx = SinkContext {
        config,
        pipeline: p,
        lake: (store, base),
        instance: "replay",
        metrics: &metrics,
        warehouse: warehouse.as_ref(),
        // Exactly-once whatever the service uses: a retried append must not double rows.
        write_mode: Some(WriteMode::ExactlyOnce),
    };
    let mut writers: Vec<Box<dyn Writer>> = Vec::new();
    for target in [Target::Bigquery, Target::Lake].into_iter().filter(|t| to.contains(t)) {
        let before = writers.len();
        for s in p.sinks.iter().filter(|s| matches!(s, Sink::BigQuery { .. }) == (target == Target::Bigquery)) {
            match cx.build(s).await.map_err(StartError::from)? {
                Some(Built::BigQuery(inner)) => {
                    let checked = MissingOnly::new(*inner, counts.clone()).expect("an exactly-once writer checks ids");
                    writers.push(Box::new(checked));
                }
                Some(lake) => writers.push(lake.boxed()),
                None => {}
            }
        }
        if writers.len() == before {
            let kind = target.name();
            return Err(usage(kind, format!("pipeline '{}' has no {kind} sink", p.name)));
        }
    }
    let topic = if to.contains(&Target::Topic) {
        let pubsub =
            config.global.pubsub.as_ref().ok_or_else(|| usage("topic", "the config has no pubsub section".into()))?;
        let name = p
            .source
            .topic
            .as_deref()
            .ok_or_else(|| usage("topic", format!("{} names no source.topic", p.file.display())))?;
        Some(TopicTarget::connect(pubsub, name).await.map_err(|e| usage("topic", e.to_string()))?)
    } else {
        None
    };
    // Batches are written as they are formed (one per row-group batch and partition), so the
    // batcher's limits are not used.
    let limits =
        Limits { max_rows: usize::MAX, max_bytes: usize::MAX, max_age: std::time::Duration::MAX, max_idle: None };
    // Every row is checked: records are changed after the chain (the archived ingest time is put back).
    let group =
        (!writers.is_empty()).then(|| SinkGroup::new(&p.name, p.schema.clone(), writers, limits).keeping_refusals());
    let dead = cx.dead_letter_group(limits);
    Ok(Outputs { group, dead, topic, counts })
}
