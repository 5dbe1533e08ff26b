//! Wires each pipeline: input channel -> transform chain -> sink channels, plus its dead letters.
//!
//! ```text
//! sources ─▶ input (bounded) ─▶ chain ─┬─▶ sink group (bounded) ─┬─▶ lake (Parquet)
//!                                      │                         └─▶ BigQuery (Storage Write)
//!                                      └─▶ dead letters ◀──────── rows a sink refused
//! ```
//! The channels carry batches (into the chain, batches of messages: a pulled frame's, a push
//! request's; out of it, a chain batch's rows as events), so a send, a receive and a wake-up are
//! paid per batch. The chain takes what its input
//! holds, and for pulled events what comes within [`CHAIN_LINGER`], up to [`CHAIN_BATCH`]. Every
//! channel is bounded, so a slow sink slows the chain, which slows the sources.
//! Shutdown: the sources drop their input senders; each task ends when its input closes, after
//! writing what it holds, so nothing accepted is left unwritten.

use std::collections::HashMap;
use std::sync::Arc;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::bigquery::Warehouse;
use crate::config::{BatchLimits, Config};
use crate::event::ack::Outcome;
use crate::event::arrivals::Arrivals;
use crate::event::{DeadLetter, Event, Handover};
use crate::sink::batcher::Limits;
use crate::sink::build::SinkContext;
use crate::sink::dead_letter;
use crate::sink::group::{Refusals, SinkGroup, Writer};
use crate::source::budget::Budget;
pub use crate::source::PipelineInput;
use crate::telemetry::metrics::Metrics;

#[derive(Debug, thiserror::Error)]
pub enum StartError {
    #[error("opening lake {location}: {source}")]
    Lake { location: String, source: object_store::Error },
    #[error("{file}: {field}: {message}")]
    Chain { file: String, field: String, message: String },
    #[error("{file}: sinks: no sink is active (bigquery is disabled and the pipeline has no other sink)")]
    NoSink { file: String },
    #[error(transparent)]
    BigQuery(#[from] crate::bigquery::WarehouseError),
}

/// Sees every event a pipeline's chain hands to its sinks (producer liveness, config state), a
/// chain batch at a time. Called on the chain's task, so it must be quick.
pub trait Observer: Send + Sync {
    /// Whether this observer wants the events of `pipeline` (asked once, at start).
    fn wants(&self, pipeline: &str) -> bool;
    /// The events one batch of the chain forwarded, in order.
    fn observe(&self, pipeline: &str, events: &[Event]);
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
    pub async fn start(config: &Config) -> Result<Topology, StartError> {
        Self::start_with(config, Arc::new(Metrics::new()), &[]).await
    }

    /// Start with shared metrics and observers of the chains' output.
    pub async fn start_with(
        config: &Config,
        metrics: Arc<Metrics>,
        observers: &[Arc<dyn Observer>],
    ) -> Result<Topology, StartError> {
        let (store, base) = config
            .lake
            .open(config.global.lake.endpoint.as_deref())
            .map_err(|source| StartError::Lake { location: config.global.lake.location.clone(), source })?;
        let warehouse = Warehouse::connect(config).await?;
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
            let pulled = config.global.pulling(&p.source);
            // Shared with the dead letters: a refused event goes there while its caller waits.
            let arrivals = (pulled.is_none() && p.source.push).then(Arrivals::new);
            let cx = SinkContext {
                config,
                pipeline: p,
                lake: (&store, &base),
                instance: &config.global.instance,
                metrics: &metrics,
                warehouse: warehouse.as_ref(),
                write_mode: None,
            };
            let (dead_tx, dead_rx) = mpsc::channel::<DeadLetter>(queue);
            let dead_group = cx.dead_letter_group(limits(&config.global.limits.batch)).with_arrivals(arrivals.clone());
            tasks.push(spawn_dead_letters(dead_group, dead_rx, drain.clone(), queue, metrics.dead_lettered(&p.name)));
            let (writers, batch) = sink_writers(&cx).await?;
            // One flow control per pipeline: the subscription's when pulled (push shares it).
            let budget = match pulled {
                Some(pubsub) => Some(Budget::for_subscription(pubsub)),
                None => p.source.push.then(|| Budget::for_push(&config.global.http)),
            };
            let group = SinkGroup {
                pipeline: p.name.clone(),
                schema: p.schema.clone(),
                writers,
                limits: batch,
                rows_checked: chain.checked_against(&p.schema),
                dead: Refusals::Channel(dead_tx.clone()),
                budget: budget.clone(),
                arrivals: arrivals.clone(),
                linger: config.global.http.push_linger.0,
            };
            let (sinks, sink_rx) = mpsc::channel::<Vec<Event>>(queue);
            tasks.push(tokio::spawn(group.run(sink_rx, drain.clone())));

            let (tx, rx) = mpsc::channel::<Handover>(queue);
            let watching: Vec<Arc<dyn Observer>> = observers.iter().filter(|o| o.wants(&p.name)).cloned().collect();
            tasks.push(tokio::spawn(run_chain(p.name.clone(), chain, rx, sinks, dead_tx, watching)));
            let input = PipelineInput { name: Arc::from(p.name.as_str()), push: p.source.push, tx, budget, arrivals };
            inputs.insert(p.name.clone(), input);
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

/// The writers of a pipeline's active sinks and the tightest of their batch limits; a BigQuery
/// sink is skipped while BigQuery is disabled, and a pipeline left without a sink is an error.
async fn sink_writers(cx: &SinkContext<'_>) -> Result<(Vec<Box<dyn Writer>>, Limits), StartError> {
    let p = cx.pipeline;
    let mut writers: Vec<Box<dyn Writer>> = Vec::new();
    let mut batch: Option<Limits> = None;
    for s in &p.sinks {
        let Some(writer) = cx.build(s).await? else {
            tracing::info!(pipeline = %p.name, sink = %s.name(),
                "bigquery is disabled (SLUICE_BIGQUERY=true enables it); this sink is skipped");
            continue;
        };
        writers.push(writer.boxed());
        batch = Some(tightest(batch, limits(s.batch())));
    }
    match batch {
        Some(batch) => Ok((writers, batch)),
        None => Err(StartError::NoSink { file: p.file.display().to_string() }),
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

/// A group's batch limits: a batch closes when any of its sinks' limits is reached.
fn tightest(a: Option<Limits>, b: Limits) -> Limits {
    let Some(a) = a else { return b };
    Limits {
        max_rows: a.max_rows.min(b.max_rows),
        max_bytes: a.max_bytes.min(b.max_bytes),
        max_age: a.max_age.min(b.max_age),
        max_idle: match (a.max_idle, b.max_idle) {
            (Some(x), Some(y)) => Some(x.min(y)),
            (x, y) => x.or(y),
        },
    }
}

fn spawn_dead_letters(
    sink: SinkGroup,
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
            if tx.send(vec![dead_letter::to_event(d, &pipeline)]).await.is_err() {
                break;
            }
        }
        drop(tx);
        let _ = writer.await;
    })
}

/// The most messages the chain takes at once: what the input holds when it looks, up to this.
pub const CHAIN_BATCH: usize = 1024;

/// How long the chain waits, after a first hand-over of pulled events, for more to fill its
/// batch. Each batch pays for refilling the caches of the decoder and the stages (about 130 µs
/// on the development VM, see docs/performance.md), which a batch of one frame at a time pays
/// per 100 events. Pulled events wait for their sink's batch anyway; a push request's event,
/// whose caller waits, is never held.
pub const CHAIN_LINGER: std::time::Duration = std::time::Duration::from_millis(50);

/// Run messages through the chain, a batch at a time, and hand the events it forwards to their sinks.
async fn run_chain(
    pipeline: String,
    mut chain: crate::transform::Chain,
    mut rx: mpsc::Receiver<Handover>,
    sinks: mpsc::Sender<Vec<Event>>,
    dead: mpsc::Sender<DeadLetter>,
    observers: Vec<Arc<dyn Observer>>,
) {
    while let Some(batch) = take(&mut rx, CHAIN_LINGER).await {
        let out = chain.process_batch(batch);
        for d in out.dead {
            dead_letter::send(&dead, d).await;
        }
        for o in &observers {
            o.observe(&pipeline, &out.forward);
        }
        deliver(&pipeline, out.forward, &sinks).await;
    }
}

/// Whole hand-overs, waiting for the first, as one, until there are [`CHAIN_BATCH`] messages: what the
/// input holds, then what comes within `linger` of the first, unless a caller waits on one of
/// them. `None` once the input is closed and empty.
async fn take(rx: &mut mpsc::Receiver<Handover>, linger: std::time::Duration) -> Option<Handover> {
    let mut batch = rx.recv().await?;
    let until = tokio::time::Instant::now() + linger;
    while batch.len() < CHAIN_BATCH && !batch.awaited {
        // A hand-over already held is taken even after `until`: the timeout polls the receive first.
        let Ok(Some(more)) = tokio::time::timeout_at(until, rx.recv()).await else { break };
        batch.append(more);
    }
    Some(batch)
}

async fn deliver(pipeline: &str, mut events: Vec<Event>, sinks: &mpsc::Sender<Vec<Event>>) {
    // Routed to no sink on purpose: nothing to write, so it is done.
    events.retain_mut(|e| {
        let nowhere = e.routes.as_ref().is_some_and(|r| r.is_empty());
        if nowhere {
            e.ack.take().settle(Outcome::Delivered);
        }
        !nowhere
    });
    if events.is_empty() {
        return;
    }
    if let Err(mpsc::error::SendError(events)) = sinks.send(events).await {
        // Only happens if the sink task died: fail the messages so the source redelivers them.
        tracing::error!(pipeline, messages = events.len(), "sink task is gone; messages will be redelivered");
        for e in events {
            e.ack.settle(Outcome::Failed);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn events(n: usize, awaited: bool) -> Handover {
        let events: Vec<Event> = (0..n).map(|_| crate::transform::testing::event(serde_json::json!(null))).collect();
        Handover { awaited, ..events.into() }
    }

    /// What the input holds, then what comes within the linger; never more than a chain batch.
    #[tokio::test(start_paused = true)]
    async fn take_lingers_for_pulled_events_up_to_a_chain_batch() {
        let (tx, mut rx) = mpsc::channel(16);
        let linger = Duration::from_millis(50);
        tx.send(events(100, false)).await.unwrap();
        tx.send(events(100, false)).await.unwrap();
        let late = tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(30)).await;
            late.send(events(100, false)).await.unwrap();
            tokio::time::sleep(Duration::from_millis(40)).await;
            late.send(events(7, false)).await.unwrap();
        });
        let started = tokio::time::Instant::now();
        assert_eq!(take(&mut rx, linger).await.unwrap().len(), 300, "held, then within the linger");
        assert_eq!(started.elapsed(), linger, "waited the whole linger for more");
        assert_eq!(take(&mut rx, linger).await.unwrap().len(), 7, "what came after the linger is the next batch");

        for _ in 0..11 {
            tx.send(events(100, false)).await.unwrap();
        }
        let started = tokio::time::Instant::now();
        assert_eq!(take(&mut rx, linger).await.unwrap().len(), 1_100, "whole hand-overs up to a chain batch");
        assert_eq!(started.elapsed(), Duration::ZERO, "a full batch does not wait");
        drop(tx);
        assert!(take(&mut rx, linger).await.is_none(), "closed and empty");
    }

    /// A push request's caller waits for its event: its batch is taken at once.
    #[tokio::test(start_paused = true)]
    async fn take_never_holds_an_event_a_caller_waits_on() {
        let (tx, mut rx) = mpsc::channel(16);
        let linger = Duration::from_millis(50);
        tx.send(events(100, false)).await.unwrap();
        tx.send(events(1, true)).await.unwrap();
        let started = tokio::time::Instant::now();
        assert_eq!(take(&mut rx, linger).await.unwrap().len(), 101);
        assert_eq!(started.elapsed(), Duration::ZERO);

        let later = tx.clone();
        tokio::spawn(async move {
            tokio::time::sleep(Duration::from_millis(10)).await;
            later.send(events(1, true)).await.unwrap();
        });
        tx.send(events(100, false)).await.unwrap();
        let started = tokio::time::Instant::now();
        assert_eq!(take(&mut rx, linger).await.unwrap().len(), 101, "a pushed event ends the linger");
        assert_eq!(started.elapsed(), Duration::from_millis(10));

        drop(tx);
        assert!(take(&mut rx, linger).await.is_none(), "closed and empty");
    }
}
