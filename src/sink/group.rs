//! A pipeline's sinks as one group: events are batched once (per hour partition and route),
//! each batch is encoded to Arrow once, and every sink it is routed to writes that same batch
//! concurrently. An event is acknowledged only when every one of its sinks has it durably, or it
//! is in dead letters with the reason a sink refused it.

use std::collections::{HashSet, VecDeque};
use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use futures::future::BoxFuture;
use futures::stream::{FuturesUnordered, StreamExt};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::batcher::{Batch, Batcher, Limits};
use super::encode;
use super::lake::Partition;
use crate::ack::Outcome;
use crate::event::{DeadLetter, Event};
use crate::schema::Schema;

/// One batch as every sink receives it.
pub struct Encoded {
    pub partition: Partition,
    pub batch: RecordBatch,
    /// A fixed object name (without `.parquet`) for this batch, so writing it again replaces the
    /// object instead of adding one (replay: one per source row group); `None`: a unique name.
    pub object: Option<String>,
    /// Rows whose message may have been written before (a redelivery, or a delivery Pub/Sub did
    /// not count): a sink that must not duplicate checks these first.
    pub maybe_written: Vec<usize>,
    /// When the last of those rows arrived.
    pub maybe_written_since: Option<std::time::Instant>,
}

/// What a sink made of a batch it wrote: every row, or every row but these (index, reason).
#[derive(Debug, PartialEq)]
pub enum Written {
    All,
    Except(Vec<(usize, String)>),
}

/// `Err` means nothing of the batch is known to be durable: its messages are redelivered.
pub type WriteResult = Result<Written, String>;

/// A destination for encoded batches (the lake, a BigQuery table).
pub trait Writer: Send + Sync {
    fn name(&self) -> &str;
    /// Write the batch, retrying what may pass on a later attempt.
    fn write<'a>(&'a self, batch: &'a Encoded) -> BoxFuture<'a, WriteResult>;
    /// Whether it looks up rows that may have been written before (see [`Encoded::maybe_written`]).
    fn checks_redeliveries(&self) -> bool {
        false
    }
    /// Release what the writer holds (streams) once the group has written its last batch.
    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

type Routes = Option<Arc<[Arc<str>]>>;
type GroupBatch = Batch<(Partition, Routes), Event>;

/// The batches a group is writing. For sinks that check redeliveries, each write also has a
/// token cancelled when it ends and the hashes of its message ids.
#[derive(Default)]
struct InFlight<'a> {
    writes: FuturesUnordered<BoxFuture<'a, ()>>,
    running: Vec<(CancellationToken, HashSet<u64>)>,
}

fn id_hash(id: &str) -> u64 {
    use std::hash::{BuildHasher, BuildHasherDefault};
    BuildHasherDefault::<std::collections::hash_map::DefaultHasher>::default().hash_one(id)
}

pub struct SinkGroup {
    pub pipeline: String,
    pub schema: Arc<Schema>,
    pub writers: Vec<Box<dyn Writer>>,
    pub limits: Limits,
    /// Batches written at once (at least one).
    pub in_flight: usize,
    /// Where rows a sink refuses go; `None` for the dead-letter group itself.
    pub dead: Option<mpsc::Sender<DeadLetter>>,
}

impl SinkGroup {
    /// Consume events until the channel closes, then write what is left. Up to `in_flight`
    /// batches are written at once; while that many are, no event is taken, so the queue fills
    /// and pushes back on the source. Once `drain` is cancelled every open batch is written at
    /// once and new events as they come, so in-flight requests settle quickly during shutdown.
    pub async fn run(self, mut rx: mpsc::Receiver<Event>, drain: CancellationToken) {
        let mut batcher: Batcher<(Partition, Routes), Event> = Batcher::new(self.limits);
        let mut ready: VecDeque<GroupBatch> = VecDeque::new();
        let mut writing = InFlight::default();
        let mut draining = false;
        loop {
            let room = self.start_writes(&mut ready, &mut writing);
            let deadline = batcher.next_deadline();
            tokio::select! {
                Some(()) = writing.writes.next(), if !writing.writes.is_empty() => {}
                _ = drain.cancelled(), if !draining => {
                    draining = true;
                    ready.extend(batcher.drain());
                }
                next = rx.recv(), if room => match next {
                    Some(event) => {
                        ready.extend(self.add(&mut batcher, event));
                        if draining {
                            while let Ok(more) = rx.try_recv() {
                                ready.extend(self.add(&mut batcher, more));
                            }
                            ready.extend(batcher.drain());
                        }
                    }
                    None => break,
                },
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)), if deadline.is_some() => {
                    ready.extend(batcher.due(tokio::time::Instant::now()));
                }
            }
        }
        ready.extend(batcher.drain());
        loop {
            self.start_writes(&mut ready, &mut writing);
            if writing.writes.next().await.is_none() {
                break;
            }
        }
        for w in &self.writers {
            w.close().await;
        }
    }

    fn add(&self, batcher: &mut Batcher<(Partition, Routes), Event>, event: Event) -> Vec<GroupBatch> {
        let size = event.size_hint();
        let key = (Partition::for_event(&self.schema, &event), event.routes.clone());
        batcher.push(key, event, size, tokio::time::Instant::now())
    }

    /// Start writing ready batches while fewer than `in_flight` are; returns whether there is
    /// room for more.
    ///
    /// A sink that checks possible redeliveries against what it holds must see every earlier
    /// write of the same message: a batch holding such rows first waits for the running writes
    /// that carry one of its message ids (the first copy, when its lease lapsed or it was nacked
    /// while still being written), as it did when batches went one at a time.
    fn start_writes<'a>(&'a self, ready: &mut VecDeque<GroupBatch>, writing: &mut InFlight<'a>) -> bool {
        let most = self.in_flight.max(1);
        let ordered = self.writers.iter().any(|w| w.checks_redeliveries());
        while writing.writes.len() < most {
            let Some(b) = ready.pop_front() else { break };
            let done = CancellationToken::new();
            let mut earlier = Vec::new();
            if ordered {
                writing.running.retain(|(t, _)| !t.is_cancelled());
                let maybe: Vec<u64> =
                    b.items.iter().filter(|e| e.maybe_written()).map(|e| id_hash(&e.message_id)).collect();
                earlier = writing
                    .running
                    .iter()
                    .filter(|(_, ids)| maybe.iter().any(|h| ids.contains(h)))
                    .map(|(t, _)| t.clone())
                    .collect();
                writing.running.push((done.clone(), b.items.iter().map(|e| id_hash(&e.message_id)).collect()));
            }
            writing.writes.push(Box::pin(async move {
                let _done = done.drop_guard();
                for write in earlier {
                    write.cancelled().await;
                }
                let (partition, routes) = b.key;
                self.write_batch(partition, routes.as_deref(), b.items).await
            }));
        }
        writing.writes.len() < most
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
        let mut good = Vec::with_capacity(events.len());
        for e in events {
            match self.schema.check(&e.record, true) {
                Ok(()) => good.push(e),
                Err(reason) => self.refuse(e, "sinks", reason).await,
            }
        }
        if good.is_empty() {
            return;
        }
        let schema = self.schema.clone();
        let encoded = tokio::task::spawn_blocking(move || {
            let records: Vec<&serde_json::Value> = good.iter().map(|e| &e.record).collect();
            let batch = encode::to_record_batch(&schema, &records);
            (good, batch)
        })
        .await;
        let (good, batch) = match encoded {
            Ok(r) => r,
            Err(e) => {
                // The events were dropped with the task: their acks fail and the source redelivers.
                tracing::error!(pipeline = %self.pipeline, error = %e, "encoding task failed");
                return;
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
                return;
            }
        };
        let results = futures::future::join_all(writers.iter().map(|w| w.write(&batch))).await;

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

    /// Send an event a sink cannot write to dead letters (or fail it if this is that sink).
    async fn refuse(&self, event: Event, stage: &str, reason: String) {
        match &self.dead {
            Some(tx) => super::dead_letter::send(tx, DeadLetter { event, stage: stage.into(), reason }).await,
            None => {
                tracing::error!(pipeline = %self.pipeline, message_id = %event.message_id, %reason,
                    "dead letter cannot be written; message will be redelivered");
                event.ack.settle(Outcome::Failed);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::time::Duration;

    use tokio::sync::Semaphore;

    use super::*;
    use crate::sink::testing::{config_change, config_change_schema, event};

    /// Holds every batch whose first id starts with "slow" until a permit is added.
    struct Gate {
        open: Arc<Semaphore>,
        started: Arc<AtomicUsize>,
        checks: bool,
    }

    impl Writer for Gate {
        fn name(&self) -> &str {
            "gate"
        }
        fn checks_redeliveries(&self) -> bool {
            self.checks
        }
        fn write<'a>(&'a self, batch: &'a Encoded) -> BoxFuture<'a, WriteResult> {
            Box::pin(async move {
                self.started.fetch_add(1, Ordering::SeqCst);
                let ids = batch.batch.column_by_name("message_id").unwrap();
                let ids = ids.as_any().downcast_ref::<arrow::array::StringArray>().unwrap();
                if ids.value(0).starts_with("slow") {
                    self.open.acquire().await.unwrap().forget();
                }
                Ok(Written::All)
            })
        }
    }

    fn gated(in_flight: usize, checks: bool) -> (SinkGroup, Arc<Semaphore>, Arc<AtomicUsize>) {
        let open = Arc::new(Semaphore::new(0));
        let started = Arc::new(AtomicUsize::new(0));
        let group = SinkGroup {
            pipeline: "config-changes".into(),
            schema: config_change_schema(),
            writers: vec![Box::new(Gate { open: open.clone(), started: started.clone(), checks })],
            limits: Limits { max_rows: 1, max_bytes: 1 << 20, max_age: Duration::from_secs(60), max_idle: None },
            in_flight,
            dead: None,
        };
        (group, open, started)
    }

    #[tokio::test]
    async fn a_slow_batch_does_not_hold_up_the_next_ones() {
        let (group, open, _) = gated(2, false);
        let (tx, rx) = mpsc::channel(8);
        let task = tokio::spawn(group.run(rx, CancellationToken::new()));
        let (slow, mut slow_rx) = event("slow", config_change("slow"));
        let (fast, fast_rx) = event("fast", config_change("fast"));
        tx.send(slow).await.unwrap();
        tx.send(fast).await.unwrap();
        assert_eq!(fast_rx.await.unwrap(), Outcome::Delivered);
        assert!(slow_rx.try_recv().is_err(), "the slow batch is still being written");
        open.add_permits(1);
        assert_eq!(slow_rx.await.unwrap(), Outcome::Delivered);
        drop(tx);
        task.await.unwrap();
    }

    #[tokio::test]
    async fn no_event_is_taken_while_every_write_slot_is_busy() {
        let (group, open, started) = gated(2, false);
        let (tx, rx) = mpsc::channel(1);
        let task = tokio::spawn(group.run(rx, CancellationToken::new()));
        let mut acks = Vec::new();
        for id in ["slow1", "slow2", "fast"] {
            let (e, r) = event(id, config_change(id));
            tx.send(e).await.unwrap();
            acks.push(r);
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
        assert_eq!(started.load(Ordering::SeqCst), 2, "two writes running, the third batch waits");
        assert_eq!(tx.capacity(), 0, "the third event stays queued: the source is pushed back on");
        open.add_permits(1);
        let fast = acks.pop().unwrap();
        assert_eq!(fast.await.unwrap(), Outcome::Delivered);
        open.add_permits(1);
        drop(tx);
        task.await.unwrap();
        for a in acks {
            assert_eq!(a.await.unwrap(), Outcome::Delivered);
        }
    }

    #[tokio::test]
    async fn a_redelivery_waits_for_the_running_write_of_its_first_copy_only() {
        let (group, open, started) = gated(4, true);
        let (tx, rx) = mpsc::channel(8);
        let task = tokio::spawn(group.run(rx, CancellationToken::new()));
        let delivery = |id: &str, attempt: u32| {
            let (mut e, r) = event(id, config_change(id));
            e.delivery_attempt = Some(attempt);
            (e, r)
        };
        let (first, first_rx) = delivery("slow", 1);
        let (again, mut again_rx) = delivery("slow", 2);
        let (other, other_rx) = delivery("other", 2);
        tx.send(first).await.unwrap();
        tx.send(again).await.unwrap();
        tx.send(other).await.unwrap();
        assert_eq!(other_rx.await.unwrap(), Outcome::Delivered, "a redelivery of another message goes ahead");
        assert_eq!(started.load(Ordering::SeqCst), 2, "the second copy of slow waits for the first copy's write");
        assert!(again_rx.try_recv().is_err());
        open.add_permits(2);
        assert_eq!(first_rx.await.unwrap(), Outcome::Delivered);
        assert_eq!(again_rx.await.unwrap(), Outcome::Delivered);
        assert_eq!(started.load(Ordering::SeqCst), 3);
        drop(tx);
        task.await.unwrap();
    }
}
