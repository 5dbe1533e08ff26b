//! One batch of replayed rows (a row group's, or a batch of NDJSON lines) through the chain into
//! the replay's targets and dead letters, and the acks that say whether all of it is durable.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use serde_json::{Map, Value};
use tokio::sync::Notify;

use super::outputs::Outputs;
use super::plan::{Kind, SourceFile};
use super::{ingest, rows, ReplayError, Summary};
use crate::config::Pipeline;
use crate::event::ack::{Ack, Outcome};
use crate::event::{DeadLetter, Event, Handover};
use crate::path::FieldPath;
use crate::sink::dead_letter;
use crate::sink::lake::Partition;
use crate::topology::CHAIN_BATCH;
use crate::transform::Chain;

/// The acks of one batch's events; their outcomes are counted here.
pub(super) struct Acks {
    tally: Arc<Tally>,
}

#[derive(Default)]
struct Tally {
    /// Acks handed out and not settled yet.
    open: AtomicUsize,
    failed: AtomicUsize,
    /// Woken when `open` reaches zero.
    done: Notify,
}

impl Acks {
    pub(super) fn new() -> Acks {
        Acks { tally: Arc::default() }
    }

    pub(super) fn ack(&self) -> Ack {
        self.tally.open.fetch_add(1, Ordering::Relaxed);
        let tally = self.tally.clone();
        Ack::new(move |o| {
            if o == Outcome::Failed {
                tally.failed.fetch_add(1, Ordering::Relaxed);
            }
            if tally.open.fetch_sub(1, Ordering::AcqRel) == 1 {
                tally.done.notify_one();
            }
        })
    }

    /// Wait for every ack handed out; how many failed.
    async fn failed(self) -> usize {
        // `notify_one` leaves a permit when nobody waits yet, so a last settle between the
        // check and the wait is not missed.
        while self.tally.open.load(Ordering::Acquire) > 0 {
            self.tally.done.notified().await;
        }
        self.tally.failed.load(Ordering::Relaxed)
    }
}

/// The state one batch of rows goes through.
pub(super) struct Unit<'a> {
    pub(super) p: &'a Pipeline,
    pub(super) chain: &'a mut Chain,
    pub(super) ingest: Option<&'a FieldPath>,
    pub(super) outputs: &'a mut Outputs,
    pub(super) summary: &'a mut Summary,
}

type Routes = Option<Arc<[Arc<str>]>>;

/// Forwarded events by hour partition and routes: one object each.
type Batches = Vec<((Partition, Routes), Vec<Event>)>;

impl Unit<'_> {
    /// Rebuild archived rows as messages (each with its archived ingest time) and deliver them.
    pub(super) async fn archived(
        &mut self,
        file: &SourceFile,
        rows: Vec<rows::Archived>,
        object: &str,
    ) -> Result<(), ReplayError> {
        let acks = Acks::new();
        let mut batch = Handover::with_capacity(rows.len());
        let mut originals = Vec::with_capacity(rows.len());
        let mut dead: Vec<DeadLetter> = Vec::new();
        for mut row in rows {
            let original_ingest = row.ingest.take();
            match rows::archived_message(row, acks.ack()) {
                Ok((message, ack)) => {
                    batch.push(message, ack);
                    originals.push(original_ingest);
                }
                Err(d) => dead.push(*d),
            }
        }
        self.deliver(acks, (batch, originals), dead, file, object).await
    }

    /// Rebuild dead letters as the messages they were and deliver them.
    pub(super) async fn dead_letters(
        &mut self,
        file: &SourceFile,
        records: Vec<Map<String, Value>>,
        object: &str,
    ) -> Result<(), ReplayError> {
        let acks = Acks::new();
        let mut batch = Handover::with_capacity(records.len());
        let mut dead: Vec<DeadLetter> = Vec::new();
        for record in records {
            match rows::dead_letter_message(record, acks.ack()) {
                Ok((message, ack)) => batch.push(message, ack),
                Err(d) => dead.push(*d),
            }
        }
        self.deliver(acks, (batch, Vec::new()), dead, file, object).await
    }

    /// Run events through the chain and write them, and `dead` to dead letters; fails if any
    /// event could not be made durable in its targets or in dead letters. `originals` holds each
    /// event's archived ingest time to put back, if any, or is empty. Objects are named after
    /// `object`.
    pub(super) async fn deliver(
        &mut self,
        acks: Acks,
        (batch, originals): (Handover, Vec<Option<Value>>),
        mut dead: Vec<DeadLetter>,
        file: &SourceFile,
        object: &str,
    ) -> Result<(), ReplayError> {
        let n = batch.len() + dead.len();
        self.summary.rows += n as u64;
        if let Some(topic) = &self.outputs.topic {
            topic.publish(&batch.messages).await?;
            self.summary.published += batch.len() as u64;
        }
        let batches = self.chain_events(batch, &originals, &mut dead);
        if let Some(group) = &self.outputs.group {
            for (k, ((partition, routes), events)) in batches.into_iter().enumerate() {
                group.write_named(partition, routes.as_deref(), events, Some(format!("{object}-{k}"))).await;
            }
            // What a sink refused is written with the unit's own dead letters.
            dead.extend(group.take_refused());
        }
        if !dead.is_empty() {
            self.summary.dead_letters += dead.len() as u64;
            if file.kind == Kind::Ndjson {
                // The id is `<file>:<line>`: the reason says where the line is.
                dead.iter_mut().for_each(|d| d.reason = format!("{}: {}", d.event.message_id, d.reason));
            }
            let rows: Vec<Event> = dead.into_iter().map(|d| dead_letter::to_event(d, &self.p.name)).collect();
            // The source file's hour (or its modification time's), so a second run rewrites the same object.
            let partition = file.partition.unwrap_or_else(|| Partition::of(file.modified));
            self.outputs.dead.write_named(partition, None, rows, Some(object.to_owned())).await;
        }
        let failed = acks.failed().await;
        if failed > 0 {
            return Err(ReplayError::Sink { failed, rows: n, file: file.path.to_string(), object: object.to_owned() });
        }
        Ok(())
    }

    /// The chain over `batch`, a loaded pipeline's batch at a time (their columns stay in
    /// cache): what it forwards to the replay's sinks, by partition and routes; what it refuses,
    /// into `dead`.
    fn chain_events(&mut self, batch: Handover, originals: &[Option<Value>], dead: &mut Vec<DeadLetter>) -> Batches {
        let mut batches: Batches = Vec::new();
        if self.outputs.group.is_none() {
            // Published only: nothing else to do with them.
            batch.settle(Outcome::Delivered);
            return batches;
        }
        let (mut messages, mut acks) = (batch.messages.into_iter(), batch.acks.into_iter());
        let mut offset = 0;
        loop {
            let chunk = Handover {
                messages: messages.by_ref().take(CHAIN_BATCH).collect(),
                acks: acks.by_ref().take(CHAIN_BATCH).collect(),
                ..Handover::default()
            };
            if chunk.is_empty() {
                return batches;
            }
            let taken = chunk.len();
            let mut out = self.chain.process_batch(chunk);
            self.summary.dropped += (taken - out.forward.len() - out.dead.len()) as u64;
            self.summary.forwarded += out.forward.len() as u64;
            dead.append(&mut out.dead);
            if let Some(f) = self.ingest.filter(|_| !originals.is_empty()) {
                ingest::restore(f, &mut out.forward, &out.forward_from, &originals[offset..offset + taken]);
            }
            offset += taken;
            self.partition(out.forward, &mut batches);
        }
    }

    /// Forwarded events into `batches`, leaving out (delivered) those no sink of this replay takes.
    fn partition(&mut self, forward: Vec<Event>, batches: &mut Batches) {
        for e in forward {
            if !self.outputs.takes(e.routes.as_deref()) {
                // Routed to no sink, or only to sinks this replay was not asked to feed.
                self.summary.not_routed += 1;
                e.ack.settle(Outcome::Delivered);
                continue;
            }
            let key = (Partition::for_event(&self.p.schema, &e), e.routes.clone());
            match batches.iter_mut().find(|(k, _)| *k == key) {
                Some((_, v)) => v.push(e),
                None => batches.push((key, vec![e])),
            }
        }
    }
}
