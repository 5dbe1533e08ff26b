//! Wires each pipeline: input channel -> transform chain -> sink channels, plus its dead letters.
//!
//! ```text
//! sources ─▶ input (bounded) ─▶ chain ─┬─▶ sink "lake" (bounded) ─┐
//!                                      └─▶ dead letters ◀─────────┘ (rows a sink cannot write)
//! ```
//! Every channel is bounded, so a slow sink slows the chain, which slows the sources.
//! Shutdown: the sources drop their input senders; each task ends when its input closes, after
//! writing what it holds, so nothing accepted is left unwritten.

use std::collections::HashMap;
use std::sync::Arc;

use object_store::path::Path as ObjectPath;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::ack::Outcome;
use crate::config::{BatchLimits, Config, Sink};
use crate::event::{DeadLetter, Event};
use crate::metrics::Metrics;
use crate::sink::batcher::Limits;
use crate::sink::dead_letter;
use crate::sink::lake::LakeSink;
use crate::store::Location;
use crate::transform::Output;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("opening lake {location}: {source}")]
    Lake { location: String, source: object_store::Error },
    #[error("{file}: {field}: {message}")]
    Chain { file: String, field: String, message: String },
    #[error("sink {0}: bigquery sinks are not built yet")]
    NotBuilt(String),
}

/// Where sources hand events to one pipeline.
#[derive(Clone)]
pub struct PipelineInput {
    pub name: Arc<str>,
    /// Whether `POST /push/<name>` is accepted.
    pub push: bool,
    pub tx: mpsc::Sender<Event>,
}

/// Sees every event a pipeline's chain hands to its sinks (producer liveness, config state).
/// Called on the chain's task, so it must be quick.
pub trait Observer: Send + Sync {
    /// Whether this observer wants the events of `pipeline` (asked once, at start).
    fn wants(&self, pipeline: &str) -> bool;
    fn observe(&self, pipeline: &str, event: &Event);
}

/// The running pipelines.
pub struct Topology {
    pub inputs: HashMap<String, PipelineInput>,
    /// Counters and liveness state of every source and sink.
    pub metrics: Arc<Metrics>,
    /// Cancelled at shutdown: sinks stop waiting for full batches and write at once.
    pub drain: CancellationToken,
    tasks: Vec<JoinHandle<()>>,
}

impl Topology {
    pub fn start(config: &Config) -> Result<Topology, StartError> {
        Self::start_with(config, Arc::new(Metrics::new()), &[])
    }

    /// Start with shared metrics and observers of the chains' output.
    pub fn start_with(
        config: &Config,
        metrics: Arc<Metrics>,
        observers: &[Arc<dyn Observer>],
    ) -> Result<Topology, StartError> {
        let location = Location::parse(&config.global.lake.location).expect("checked by config::load");
        let (store, base) = location
            .open(config.global.lake.endpoint_url().as_deref())
            .map_err(|source| StartError::Lake { location: config.global.lake.location.clone(), source })?;
        let drain = CancellationToken::new();
        let mut inputs = HashMap::new();
        let mut tasks = Vec::new();
        let queue = config.global.limits.queue_capacity.get();
        for p in &config.pipelines {
            let chain = p.chain().map_err(|e| StartError::Chain {
                file: p.file.display().to_string(),
                field: e.field,
                message: e.message,
            })?;
            let (dead_tx, dead_rx) = mpsc::channel::<DeadLetter>(queue);
            let dead_sink = LakeSink {
                name: "dead_letters".into(),
                pipeline: p.name.clone(),
                store: store.clone(),
                prefix: join(&base, &format!("{}/{}", config.global.lake.dead_letters, p.name)),
                instance: config.global.instance.clone(),
                schema: dead_letter::schema(),
                limits: limits(&config.global.limits.batch),
                dead: None,
                metrics: metrics.sink(&p.name, "dead_letters"),
            };
            let dead_count = metrics.dead_lettered(&p.name);
            tasks.push(spawn_dead_letters(dead_sink, dead_rx, drain.clone(), queue, dead_count));

            let mut sinks = Vec::new();
            for s in &p.sinks {
                let (tx, rx) = mpsc::channel::<Event>(queue);
                match s {
                    Sink::Lake { name, prefix, batch } => {
                        let sink = LakeSink {
                            name: name.clone(),
                            pipeline: p.name.clone(),
                            store: store.clone(),
                            prefix: join(&base, prefix),
                            instance: config.global.instance.clone(),
                            schema: p.schema.clone(),
                            limits: limits(batch),
                            dead: Some(dead_tx.clone()),
                            metrics: metrics.sink(&p.name, name),
                        };
                        tasks.push(tokio::spawn(sink.run(rx, drain.clone())));
                    }
                    Sink::BigQuery { .. } => return Err(StartError::NotBuilt(s.name().to_owned())),
                }
                sinks.push((Arc::<str>::from(s.name()), tx));
            }

            let (tx, rx) = mpsc::channel::<Event>(queue);
            let watching: Vec<Arc<dyn Observer>> = observers.iter().filter(|o| o.wants(&p.name)).cloned().collect();
            tasks.push(tokio::spawn(run_chain(p.name.clone(), chain, rx, sinks, dead_tx, watching)));
            inputs.insert(p.name.clone(), PipelineInput { name: Arc::from(p.name.as_str()), push: p.source.push, tx });
        }
        Ok(Topology { inputs, metrics, drain, tasks })
    }

    /// Wait for every task to finish. Call after every input sender has been dropped.
    pub async fn join(self) {
        drop(self.inputs);
        for t in self.tasks {
            if let Err(e) = t.await {
                tracing::error!(error = %e, "pipeline task failed");
            }
        }
    }
}

/// The batcher's limits from checked config (dead letters use the global ones).
fn limits(b: &BatchLimits) -> Limits {
    Limits {
        max_rows: b.max_rows.get(),
        max_bytes: b.max_bytes.0 as usize,
        max_age: b.max_age.0,
        max_idle: b.max_idle.map(|d| d.0),
    }
}

fn join(base: &ObjectPath, rest: &str) -> ObjectPath {
    rest.split('/').filter(|s| !s.is_empty()).fold(base.clone(), |p, s| p.join(s))
}

fn spawn_dead_letters(
    sink: LakeSink,
    mut rx: mpsc::Receiver<DeadLetter>,
    drain: CancellationToken,
    queue: usize,
    count: prometheus_client::metrics::counter::Counter,
) -> JoinHandle<()> {
    let pipeline = sink.pipeline.clone();
    let (tx, events) = mpsc::channel(queue);
    let writer = tokio::spawn(sink.run(events, drain));
    tokio::spawn(async move {
        while let Some(d) = rx.recv().await {
            tracing::warn!(pipeline = %pipeline, stage = %d.stage, reason = %d.reason,
                message_id = %d.event.message_id, "dead letter");
            count.inc();
            if tx.send(dead_letter::to_event(d, &pipeline)).await.is_err() {
                break;
            }
        }
        drop(tx);
        let _ = writer.await;
    })
}

/// Run events through the chain and hand them to their sinks.
async fn run_chain(
    pipeline: String,
    mut chain: crate::transform::Chain,
    mut rx: mpsc::Receiver<Event>,
    sinks: Vec<(Arc<str>, mpsc::Sender<Event>)>,
    dead: mpsc::Sender<DeadLetter>,
    observers: Vec<Arc<dyn Observer>>,
) {
    while let Some(event) = rx.recv().await {
        match chain.process(event) {
            Output::Forward(event) => {
                for o in &observers {
                    o.observe(&pipeline, &event);
                }
                deliver(&pipeline, event, &sinks).await
            }
            Output::Dropped => {}
            Output::Dead(d) => dead_letter::send(&dead, d).await,
        }
    }
}

async fn deliver(pipeline: &str, mut event: Event, sinks: &[(Arc<str>, mpsc::Sender<Event>)]) {
    let targets: Vec<&mpsc::Sender<Event>> = match &event.routes {
        None => sinks.iter().map(|(_, tx)| tx).collect(),
        Some(routes) => sinks.iter().filter(|(n, _)| routes.contains(n)).map(|(_, tx)| tx).collect(),
    };
    let Some((last, rest)) = targets.split_last() else {
        // Routed to no sink on purpose: nothing to write, so it is done.
        event.ack.take().settle(Outcome::Delivered);
        return;
    };
    for tx in rest {
        if let Err(mpsc::error::SendError(e)) = tx.send(event.fork()).await {
            return sink_gone(pipeline, e);
        }
    }
    if let Err(mpsc::error::SendError(e)) = last.send(event).await {
        sink_gone(pipeline, e);
    }
}

fn sink_gone(pipeline: &str, event: Event) {
    // Only happens if a sink task died: fail the message so the source redelivers it.
    tracing::error!(pipeline, message_id = %event.message_id, "sink task is gone; message will be redelivered");
    event.ack.settle(Outcome::Failed);
}
