//! A pipeline's sinks as one group: events are batched once (per hour partition and route),
//! each batch is encoded to Arrow once, and every sink it is routed to writes that same batch
//! concurrently. An event is acknowledged only when every one of its sinks has it durably, or it
//! is in dead letters with the reason a sink refused it.

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use super::batcher::{Batch, Batcher, Limits};
use super::encode;
use super::Partition;
pub use super::{Encoded, WriteResult, Writer, Written};
use crate::event::ack::Outcome;
use crate::event::arrivals::{Arrivals, Settled};
use crate::event::{DeadLetter, Event};
use crate::schema::Schema;
use crate::source::budget::Budget;

type Routes = Option<Arc<[Arc<str>]>>;

/// Where a group's refused rows go.
pub enum Refusals {
    /// Nowhere: this is the dead-letter group itself, so a refused row fails its message.
    None,
    /// The pipeline's dead-letter channel.
    Channel(mpsc::Sender<DeadLetter>),
    /// Kept until [`SinkGroup::take_refused`]: a replay writes them with its own dead letters.
    Kept(std::sync::Mutex<Vec<DeadLetter>>),
}

pub struct SinkGroup {
    pub pipeline: String,
    pub schema: Arc<Schema>,
    pub writers: Vec<Box<dyn Writer>>,
    pub limits: Limits,
    /// Every event comes straight from a chain that checked it against `schema`
    /// ([`crate::transform::Chain::checked_against`]), so rows are not checked again here.
    pub rows_checked: bool,
    /// Where rows a sink refuses go.
    pub dead: Refusals,
    /// Flow control of the subscription feeding this group: once it is out of room, open batches
    /// are written as soon as they hold half of what it can hold (see [`crate::source::budget`]).
    pub budget: Option<Budget>,
    /// The push requests of a push-only pipeline whose event is not in a batch yet: once there is
    /// none, open batches are written (after `linger`) instead of waiting for more that cannot
    /// come. `None` for pulled pipelines, which keep their batching.
    pub arrivals: Option<Arrivals>,
    /// Once nothing more the pipeline holds can arrive, how long open batches wait at most for
    /// the callers just answered to send their next event (`http.push_linger`); zero: not at all.
    pub linger: Duration,
}

impl SinkGroup {
    /// A group that checks every row and has no dead letters, flow control or push arrivals of
    /// its own: set those fields after, as its source needs.
    pub fn new(pipeline: &str, schema: Arc<Schema>, writers: Vec<Box<dyn Writer>>, limits: Limits) -> SinkGroup {
        SinkGroup {
            pipeline: pipeline.to_owned(),
            schema,
            writers,
            limits,
            rows_checked: false,
            dead: Refusals::None,
            budget: None,
            arrivals: None,
            linger: Duration::ZERO,
        }
    }

    /// A group that keeps the rows its sinks refuse, for [`SinkGroup::take_refused`].
    pub fn keeping_refusals(self) -> SinkGroup {
        SinkGroup { dead: Refusals::Kept(Default::default()), ..self }
    }

    /// The rows refused since the last call, when the group keeps them.
    pub fn take_refused(&self) -> Vec<DeadLetter> {
        match &self.dead {
            Refusals::Kept(kept) => std::mem::take(&mut *crate::locks::lock(kept)),
            _ => Vec::new(),
        }
    }

    /// The group of a push-only pipeline: it writes as soon as no request can add to its batches.
    pub fn with_arrivals(self, arrivals: Option<Arrivals>) -> SinkGroup {
        SinkGroup { arrivals, ..self }
    }

    /// Consume events until the channel closes, then write what is left. Once `drain` is
    /// cancelled every open batch is written at once and new events as they come, so in-flight
    /// requests settle quickly during shutdown. Once the source is out of room (`pressed`), open
    /// batches are written as soon as they hold half of what its budget can hold. Once no push
    /// request can add to them (`Arrivals`), they are written as soon as they hold as many
    /// events as there were callers, or `linger` is over.
    pub async fn run(self, mut rx: mpsc::Receiver<Vec<Event>>, drain: CancellationToken) {
        let mut batcher: Batcher<(Partition, Routes), Event> = Batcher::new(self.limits);
        let mut draining = false;
        let mut pressed = false;
        let mut settled = self.arrivals.as_ref().map(Arrivals::watch);
        let mut lingering: Option<Instant> = None;
        loop {
            if pressed && self.holds_most_of_the_budget(&batcher) {
                pressed = false;
                self.write_all(batcher.drain()).await;
            }
            if self.nothing_more_can_arrive(&batcher, &mut lingering) {
                self.write_all(batcher.drain()).await;
            }
            // A linger that is over waits for `settled` instead: a request is still arriving.
            let linger_ends = lingering.filter(|t| *t > Instant::now());
            let deadline = batcher.next_deadline().into_iter().chain(linger_ends).min();
            tokio::select! {
                _ = drain.cancelled(), if !draining => {
                    draining = true;
                    self.write_all(batcher.drain()).await;
                }
                _ = out_of_room(self.budget.as_ref()), if !pressed => pressed = true,
                _ = settled_changed(settled.as_mut()), if !batcher.is_empty() => {}
                next = rx.recv() => match next {
                    Some(events) => {
                        let mut closed = self.add(&mut batcher, events);
                        if draining {
                            while let Ok(more) = rx.try_recv() {
                                closed.extend(self.add(&mut batcher, more));
                            }
                            closed.extend(batcher.drain());
                        }
                        self.write_all(closed).await;
                    }
                    None => break,
                },
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(Instant::now)), if deadline.is_some() => {
                    let due = batcher.due(Instant::now());
                    self.write_all(due).await;
                }
            }
        }
        self.write_all(batcher.drain()).await;
        for w in &self.writers {
            w.close().await;
        }
    }

    /// Whether open batches are to be written now because no push request can add to them, and
    /// they hold as many events as callers were seen this round or the linger (started the first
    /// time nothing could arrive) is over. `lingering` is when it ends.
    fn nothing_more_can_arrive(
        &self,
        batcher: &Batcher<(Partition, Routes), Event>,
        lingering: &mut Option<Instant>,
    ) -> bool {
        if batcher.is_empty() {
            *lingering = None;
            return false;
        }
        let Some(arrivals) = &self.arrivals else { return false };
        if arrivals.can_more_arrive() {
            return false;
        }
        let now = Instant::now();
        let ends = *lingering.get_or_insert(now + self.linger);
        if ends > now && batcher.totals().0 < arrivals.callers() {
            return false; // callers just answered may be sending their next event
        }
        *lingering = None;
        // The dead letters (no linger) leave the count of callers to the pipeline's own sinks.
        if !self.linger.is_zero() {
            arrivals.new_round();
        }
        true
    }

    /// Whether the open batches hold at least half of the messages (or of the weight) the source's
    /// budget can hold. Not half of what it holds now: just after a write that is little, and
    /// every batch written then would stay small.
    fn holds_most_of_the_budget(&self, batcher: &Batcher<(Partition, Routes), Event>) -> bool {
        let Some(budget) = &self.budget else { return false };
        let (messages, bytes) = budget.capacity();
        let (rows, weight) = batcher.totals();
        2 * rows >= messages || 2 * weight >= bytes
    }

    fn add(
        &self,
        batcher: &mut Batcher<(Partition, Routes), Event>,
        events: Vec<Event>,
    ) -> Vec<Batch<(Partition, Routes), Event>> {
        let now = Instant::now();
        let mut closed = Vec::new();
        for mut event in events {
            // In a batch now: its request no longer counts as one that may still add to it.
            drop(event.arriving.take());
            let size = event.size_hint();
            let key = (Partition::for_event(&self.schema, &event), event.routes.clone());
            closed.extend(batcher.push(key, event, size, now));
        }
        closed
    }

    async fn write_all(&self, batches: Vec<Batch<(Partition, Routes), Event>>) {
        for b in batches {
            let (partition, routes) = b.key;
            self.write_batch(partition, routes.as_deref(), b.items).await;
        }
    }

    /// Write one batch to its sinks and settle every event in it: delivered, dead-lettered, or failed.
    pub async fn write_batch(&self, partition: Partition, routes: Option<&[Arc<str>]>, events: Vec<Event>) {
        self.write_named(partition, routes, events, None).await
    }

    /// [`SinkGroup::write_batch`], with a fixed object name for the lake (see [`Encoded::object`]).
    pub async fn write_named(
        &self,
        partition: Partition,
        routes: Option<&[Arc<str>]>,
        events: Vec<Event>,
        object: Option<String>,
    ) {
        let writers: Vec<&dyn Writer> = self
            .writers
            .iter()
            .map(|w| w.as_ref())
            .filter(|w| routes.is_none_or(|r| r.iter().any(|n| &**n == w.name())))
            .collect();
        if writers.is_empty() {
            // Routed only to sinks this process skipped (a bigquery sink while bigquery is off):
            // acking would lose the events, so they go to dead letters, ready for a replay.
            let named = routes.unwrap_or_default().join(", ");
            for e in events {
                let reason = format!("routed only to sink(s) {named}, none of which is active in this process");
                self.refuse(e, "sinks", reason).await;
            }
            return;
        }
        let good = if self.rows_checked { events } else { self.conforming(events).await };
        if good.is_empty() {
            return;
        }
        let Some((good, batch)) = self.encode(partition, good, object).await else { return };
        let results = futures::future::join_all(writers.iter().map(|w| w.write(&batch))).await;
        self.settle(&writers, results, good).await;
    }

    /// The batch every sink writes, in its own thread; `None` when it could not be encoded (the
    /// events are refused, or failed with the task).
    async fn encode(
        &self,
        partition: Partition,
        good: Vec<Event>,
        object: Option<String>,
    ) -> Option<(Vec<Event>, Encoded)> {
        let schema = self.schema.clone();
        let encoded = tokio::task::spawn_blocking(move || {
            let batch = encode::events_to_batch(&schema, &good);
            (good, batch)
        })
        .await;
        let (good, batch) = match encoded {
            Ok(r) => r,
            Err(e) => {
                // The events were dropped with the task: their acks fail and the source redelivers.
                tracing::error!(pipeline = %self.pipeline, error = %e, "encoding task failed");
                return None;
            }
        };
        let batch = match batch {
            Ok(b) => {
                let maybe: Vec<(usize, std::time::Instant)> =
                    good.iter().enumerate().filter(|(_, e)| e.maybe_written()).map(|(i, e)| (i, e.received)).collect();
                let maybe_written_since = maybe.iter().map(|(_, t)| *t).max();
                Encoded {
                    partition,
                    batch: b,
                    object,
                    maybe_written: maybe.into_iter().map(|(i, _)| i).collect(),
                    maybe_written_since,
                }
            }
            Err(e) => {
                for ev in good {
                    self.refuse(ev, "sinks", format!("cannot encode batch: {e}")).await;
                }
                return None;
            }
        };
        Some((good, batch))
    }

    /// Settle each event from every sink's result: failed if a sink failed the batch, refused
    /// (to dead letters) if a sink refused its row, else delivered.
    async fn settle(&self, writers: &[&dyn Writer], results: Vec<WriteResult>, good: Vec<Event>) {
        let mut refused: Vec<Option<(String, String)>> = (0..good.len()).map(|_| None).collect();
        let mut failed = None;
        for (w, r) in writers.iter().zip(results) {
            match r {
                Ok(Written::All) => {}
                Ok(Written::Except(rows)) => {
                    for (i, reason) in rows {
                        if let Some(slot) = refused.get_mut(i) {
                            slot.get_or_insert_with(|| (format!("sink.{}", w.name()), reason));
                        }
                    }
                }
                Err(e) => failed = Some((w.name().to_owned(), e)),
            }
        }
        if let Some((sink, error)) = failed {
            tracing::error!(pipeline = %self.pipeline, sink, rows = good.len(), %error,
                "batch not written; its messages will be redelivered");
            for ev in good {
                ev.ack.settle(Outcome::Failed);
            }
            return;
        }
        for (ev, refusal) in good.into_iter().zip(refused) {
            match refusal {
                None => ev.ack.settle(Outcome::Delivered),
                Some((stage, reason)) => self.refuse(ev, &stage, reason).await,
            }
        }
    }

    /// The events whose record passes the schema check; the others go to dead letters.
    async fn conforming(&self, events: Vec<Event>) -> Vec<Event> {
        let mut good = Vec::with_capacity(events.len());
        for e in events {
            // A row held in columns passed the chain's final `validate` (on columns).
            if e.row.is_some() {
                good.push(e);
                continue;
            }
            match self.schema.check(&e.record, true) {
                Ok(()) => good.push(e),
                Err(reason) => self.refuse(e, "sinks", reason).await,
            }
        }
        good
    }

    /// Send an event a sink cannot write to dead letters (or fail it if this is that sink).
    async fn refuse(&self, event: Event, stage: &str, reason: String) {
        let refused = DeadLetter { event, stage: stage.into(), reason };
        match &self.dead {
            Refusals::Channel(tx) => super::dead_letter::send(tx, refused).await,
            Refusals::Kept(kept) => crate::locks::lock(kept).push(refused),
            Refusals::None => {
                let event = refused.event;
                tracing::error!(pipeline = %self.pipeline, message_id = %event.message_id, reason = %refused.reason,
                    "dead letter cannot be written; message will be redelivered");
                event.ack.settle(Outcome::Failed);
            }
        }
    }
}

/// Resolves when the source's budget ran out of room; never without a budget.
async fn out_of_room(budget: Option<&Budget>) {
    match budget {
        Some(b) => b.pressed().await,
        None => std::future::pending().await,
    }
}

/// Resolves when no push request may add to the open batches any more; never for pulled pipelines.
async fn settled_changed(settled: Option<&mut Settled>) {
    match settled {
        Some(s) => s.changed().await,
        None => std::future::pending().await,
    }
}
