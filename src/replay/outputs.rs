//! The writers and targets a replay feeds: the pipeline's BigQuery sinks (only ids the table
//! lacks, exactly-once appends), its lake sinks under `--output`, its topic, and the dead letters.

use std::sync::Arc;

use object_store::path::Path as ObjectPath;

use super::existing::{Counts, MissingOnly};
use super::topic::TopicTarget;
use super::ReplayError;
use crate::config::global::WriteMode;
use crate::config::{Config, Pipeline, Sink};
use crate::lake_tail::join;
use crate::metrics::Metrics;
use crate::sink::batcher::Limits;
use crate::sink::bigquery::BigQueryWriter;
use crate::sink::group::{SinkGroup, Writer};
use crate::sink::lake::LakeWriter;
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
    let mut writers: Vec<Box<dyn Writer>> = Vec::new();
    let usage = |t: &str, why: String| ReplayError::Usage(format!("--to {t}: {why}"));
    if to.contains(&Target::Bigquery) {
        let warehouse =
            crate::bigquery::Warehouse::connect(config).await.map_err(StartError::from)?.ok_or_else(|| {
                usage("bigquery", "bigquery is not enabled in the config (SLUICE_BIGQUERY=true enables it)".into())
            })?;
        for s in &p.sinks {
            if let Sink::BigQuery { name, table, .. } = s {
                // Exactly-once whatever the service uses: a retried append must not double rows.
                let opened =
                    warehouse.open_table(p, name, table, WriteMode::ExactlyOnce).await.map_err(StartError::from)?;
                let inner = BigQueryWriter::new(opened, name, &p.name, metrics.sink(&p.name, name));
                let checked = MissingOnly::new(inner, counts.clone()).expect("an exactly-once writer checks ids");
                writers.push(Box::new(checked));
            }
        }
        if writers.is_empty() {
            return Err(usage("bigquery", format!("pipeline '{}' has no bigquery sink", p.name)));
        }
    }
    if to.contains(&Target::Lake) {
        let before = writers.len();
        for s in &p.sinks {
            if let Sink::Lake { name, prefix, .. } = s {
                writers.push(Box::new(LakeWriter::new(name, &p.name, (store, join(base, prefix)), "replay", &metrics)));
            }
        }
        if writers.len() == before {
            return Err(usage("lake", format!("pipeline '{}' has no lake sink", p.name)));
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
    let dead = crate::topology::dead_letter_group(config, &p.name, (store, base), "replay", &metrics, limits);
    Ok(Outputs { group, dead, topic, counts })
}
