//! The lake sink: events -> batches per hour partition -> Parquet -> one object each.
//!
//! Objects are named `<prefix>/dt=YYYY-MM-DD/hour=HH/<instance>-<uuid>.parquet`: unique per
//! writer, so instances sharing a lake never collide. Each object is written with a single put,
//! which both backends make atomic (local: temp file + rename; GCS: one upload), so a file
//! appears whole or not at all. Events are acknowledged only after their object is written.

use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use tokio::sync::mpsc;
use tokio_util::sync::CancellationToken;

use super::batcher::{Batch, Batcher, Limits};
use super::encode;
use crate::ack::Outcome;
use crate::event::{DeadLetter, Event};
use crate::metrics::SinkMetrics;
use crate::schema::{parse_timestamp, Schema};

/// The hour a row belongs to.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Partition {
    pub date: NaiveDate,
    pub hour: u32,
}

impl Partition {
    pub fn of(t: DateTime<Utc>) -> Self {
        Partition { date: t.date_naive(), hour: t.hour() }
    }

    /// The partition of the event's `time_field`, or of its publish time when it has none.
    pub fn for_event(schema: &Schema, event: &Event) -> Self {
        let t = schema
            .time_field
            .as_deref()
            .and_then(|f| event.record.get(f))
            .and_then(|v| v.as_str())
            .and_then(parse_timestamp)
            .unwrap_or(event.publish_time);
        Partition::of(t)
    }

    /// `dt=2026-11-26/hour=09`
    pub fn path(&self) -> String {
        format!("dt={:04}-{:02}-{:02}/hour={:02}", self.date.year(), self.date.month(), self.date.day(), self.hour)
    }
}

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("writing {path}: {source}")]
    Store { path: String, source: object_store::Error },
}

pub struct LakeSink {
    /// Sink name from the pipeline file (`lake`), or `dead_letters`; used in logs and dead letters.
    pub name: String,
    pub pipeline: String,
    pub store: Arc<dyn ObjectStore>,
    /// Full prefix of this sink's objects inside the store.
    pub prefix: ObjectPath,
    pub instance: String,
    pub schema: Arc<Schema>,
    pub limits: Limits,
    /// Where rows this sink cannot encode go; `None` for the dead-letter sink itself.
    pub dead: Option<mpsc::Sender<DeadLetter>>,
    /// Rows written, flush times and failures; readiness and liveness read it.
    pub metrics: SinkMetrics,
}

impl LakeSink {
    /// Consume events until the channel closes, then write what is left.
    /// Once `drain` is cancelled every open batch is written at once and new events are
    /// written as they come, so in-flight requests settle quickly during shutdown.
    pub async fn run(self, mut rx: mpsc::Receiver<Event>, drain: CancellationToken) {
        let mut batcher: Batcher<Partition, Event> = Batcher::new(self.limits);
        let mut draining = false;
        loop {
            let deadline = batcher.next_deadline();
            tokio::select! {
                _ = drain.cancelled(), if !draining => {
                    draining = true;
                    self.write_all(batcher.drain()).await;
                }
                next = rx.recv() => match next {
                    Some(event) => {
                        let mut closed = self.add(&mut batcher, event);
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
                _ = tokio::time::sleep_until(deadline.unwrap_or_else(tokio::time::Instant::now)), if deadline.is_some() => {
                    let due = batcher.due(tokio::time::Instant::now());
                    self.write_all(due).await;
                }
            }
        }
        self.write_all(batcher.drain()).await;
    }

    fn add(&self, batcher: &mut Batcher<Partition, Event>, event: Event) -> Vec<Batch<Partition, Event>> {
        let size = event.size_hint();
        batcher.push(Partition::for_event(&self.schema, &event), event, size, tokio::time::Instant::now())
    }

    async fn write_all(&self, batches: Vec<Batch<Partition, Event>>) {
        for b in batches {
            self.write_batch(b.key, b.items).await;
        }
    }

    /// Write one batch and settle every event in it: delivered, dead-lettered, or failed.
    pub async fn write_batch(&self, partition: Partition, events: Vec<Event>) {
        let started = std::time::Instant::now();
        let mut good = Vec::with_capacity(events.len());
        for e in events {
            match self.schema.check(&e.record, true) {
                Ok(()) => good.push(e),
                Err(reason) => {
                    self.metrics.failed("schema", &reason);
                    self.refuse(e, reason).await
                }
            }
        }
        if good.is_empty() {
            return;
        }
        let schema = self.schema.clone();
        let encoded = tokio::task::spawn_blocking(move || {
            let records: Vec<&serde_json::Value> = good.iter().map(|e| &e.record).collect();
            let bytes = encode::parquet_file(&schema, &records);
            (good, bytes)
        })
        .await;
        let (good, bytes) = match encoded {
            Ok(r) => r,
            Err(e) => {
                // The events were moved into the task and dropped with it: their acks fail,
                // so the source redelivers. Nothing is acknowledged.
                tracing::error!(sink = %self.name, pipeline = %self.pipeline, error = %e, "encoding task failed");
                self.metrics.failed("encode", &e.to_string());
                return;
            }
        };
        let bytes = match bytes {
            Ok(b) => b,
            Err(e) => {
                self.metrics.failed("encode", &e.to_string());
                for ev in good {
                    self.refuse(ev, format!("cannot encode batch: {e}")).await;
                }
                return;
            }
        };
        let rows = good.len();
        let path = self.object_path(partition);
        match self.put(&path, bytes.clone()).await {
            Ok(()) => {
                self.metrics.flushed(rows, started.elapsed());
                tracing::info!(sink = %self.name, pipeline = %self.pipeline, object = %path, rows, bytes = bytes.len(),
                    millis = started.elapsed().as_millis() as u64, "wrote batch");
                for ev in good {
                    ev.ack.settle(Outcome::Delivered);
                }
            }
            Err(e) => {
                self.metrics.failed("write", &e.to_string());
                tracing::error!(sink = %self.name, pipeline = %self.pipeline, rows, error = %e,
                    "batch not written; its messages will be redelivered");
                for ev in good {
                    ev.ack.settle(Outcome::Failed);
                }
            }
        }
    }

    /// Send an event this sink cannot write to dead letters (or fail it if this is that sink).
    async fn refuse(&self, event: Event, reason: String) {
        let stage = format!("sink.{}", self.name);
        match &self.dead {
            Some(tx) => super::dead_letter::send(tx, DeadLetter { event, stage, reason }).await,
            None => {
                tracing::error!(sink = %self.name, pipeline = %self.pipeline, message_id = %event.message_id, %reason,
                    "dead letter cannot be written; message will be redelivered");
                event.ack.settle(Outcome::Failed);
            }
        }
    }

    fn object_path(&self, partition: Partition) -> ObjectPath {
        let name = format!("{}-{}.parquet", self.instance, uuid::Uuid::new_v4());
        let mut p = self.prefix.clone();
        for part in partition.path().split('/') {
            p = p.join(part);
        }
        p.join(name)
    }

    async fn put(&self, path: &ObjectPath, bytes: bytes::Bytes) -> Result<(), WriteError> {
        let attempt = || async { self.store.put(path, PutPayload::from_bytes(bytes.clone())).await.map(|_| ()) };
        attempt
            .retry(
                ExponentialBuilder::default()
                    .with_min_delay(Duration::from_millis(100))
                    .with_max_delay(Duration::from_secs(5))
                    .with_max_times(6)
                    .with_jitter(),
            )
            // Transport and server errors may pass; permissions, bad paths and bad requests will not.
            .when(crate::store::gcs::retryable)
            .notify(|e, wait| tracing::warn!(sink = %self.name, error = %e, retry_in_ms = wait.as_millis() as u64, "write failed; retrying"))
            .await
            .map_err(|source| WriteError::Store { path: path.to_string(), source })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ack::Ack;
    use object_store::memory::InMemory;
    use serde_json::json;

    fn sink(store: Arc<dyn ObjectStore>, dead: Option<mpsc::Sender<DeadLetter>>) -> LakeSink {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
        LakeSink {
            name: "lake".into(),
            pipeline: "config-changes".into(),
            store,
            prefix: ObjectPath::from("lake/config-changes"),
            instance: "test".into(),
            schema: Arc::new(Schema::load(&dir, "config_change").unwrap()),
            limits: Limits { max_rows: 2, max_bytes: 1 << 20, max_age: Duration::from_millis(100), max_idle: None },
            dead,
            metrics: crate::metrics::Metrics::new().sink("config-changes", "lake"),
        }
    }

    fn event(id: &str, record: serde_json::Value) -> (Event, tokio::sync::oneshot::Receiver<Outcome>) {
        let (ack, rx) = Ack::channel();
        let mut e = Event::new(id, Utc::now(), Default::default(), bytes::Bytes::new(), Arc::from("push"), ack);
        e.record = record;
        (e, rx)
    }

    #[tokio::test]
    async fn writes_partitioned_files_acks_after_write_and_dead_letters_bad_rows() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let (dtx, mut drx) = mpsc::channel(8);
        let (tx, rx) = mpsc::channel(8);
        let task = tokio::spawn(sink(store.clone(), Some(dtx)).run(rx, CancellationToken::new()));
        let row = |id: &str| json!({"timestamp": "2026-11-26T09:15:00Z", "service": "s", "key": "k", "version": 1, "message_id": id});
        let (a, arx) = event("a", row("a"));
        let (b, brx) = event("b", row("b"));
        let (c, crx) = event("c", json!({"service": "s"}));
        tx.send(a).await.unwrap();
        tx.send(c).await.unwrap();
        tx.send(b).await.unwrap();
        assert_eq!(arx.await.unwrap(), Outcome::Delivered);
        assert_eq!(brx.await.unwrap(), Outcome::Delivered);
        let dead = drx.recv().await.unwrap();
        assert_eq!(dead.stage, "sink.lake");
        assert!(dead.reason.contains("required"), "{}", dead.reason);
        dead.event.ack.settle(Outcome::Delivered);
        assert_eq!(crx.await.unwrap(), Outcome::Delivered);
        drop(tx);
        task.await.unwrap();

        use futures::TryStreamExt;
        let objects: Vec<_> = store.list(Some(&ObjectPath::from("lake"))).try_collect().await.unwrap();
        assert_eq!(objects.len(), 1);
        let name = objects[0].location.to_string();
        assert!(name.starts_with("lake/config-changes/dt=2026-11-26/hour=09/test-"), "{name}");
        assert!(name.ends_with(".parquet"));
    }

    #[tokio::test]
    async fn open_batches_are_written_when_the_channel_closes() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let (tx, rx) = mpsc::channel(8);
        let (a, arx) = event(
            "a",
            json!({"timestamp": "2026-11-26T09:15:00Z", "service": "s", "key": "k", "version": 1, "message_id": "a"}),
        );
        tx.send(a).await.unwrap();
        drop(tx);
        sink(store, None).run(rx, CancellationToken::new()).await;
        assert_eq!(arx.await.unwrap(), Outcome::Delivered);
    }
}
