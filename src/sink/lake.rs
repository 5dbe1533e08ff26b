//! The lake sink: each batch (one hour partition) -> Parquet -> one object.
//!
//! Objects are named `<prefix>/dt=YYYY-MM-DD/hour=HH/<instance>-<uuid>.parquet`: unique per
//! writer, so instances sharing a lake never collide (a replay names its batches after their
//! source row groups instead, so a second replay replaces its objects rather than adding). Each object is written with a single put,
//! which both backends make atomic (local: temp file + rename; GCS: one upload), so a file
//! appears whole or not at all. Events are acknowledged only after their object is written.

use std::sync::Arc;
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use futures::future::BoxFuture;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};

use super::encode;
pub use super::Partition;
use super::{Encoded, WriteResult, Writer, Written};
use crate::telemetry::metrics::SinkMetrics;

#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    #[error("writing {path}: {source}")]
    Store { path: String, source: object_store::Error },
}

/// Writes each batch as one Parquet object under its partition.
pub struct LakeWriter {
    /// Sink name from the pipeline file (`lake`), or `dead_letters`; used in logs and dead letters.
    pub name: String,
    pub pipeline: String,
    pub store: Arc<dyn ObjectStore>,
    /// Full prefix of this sink's objects inside the store.
    pub prefix: ObjectPath,
    pub instance: String,
    /// Rows written, flush times and failures; readiness and liveness read it.
    pub metrics: SinkMetrics,
}

impl Writer for LakeWriter {
    fn name(&self) -> &str {
        &self.name
    }

    fn write<'a>(&'a self, encoded: &'a Encoded) -> BoxFuture<'a, WriteResult> {
        Box::pin(async move {
            let batch = encoded.batch.clone();
            let bytes = tokio::task::spawn_blocking(move || encode::to_parquet(&batch)).await?;
            let bytes = match bytes {
                Ok(b) => b,
                // Deterministic: the same rows would fail again, so they go to dead letters.
                Err(e) => {
                    self.metrics.failed("encode", &e.to_string());
                    let reason = format!("cannot encode Parquet: {e}");
                    return Ok(Written::Except((0..encoded.batch.num_rows()).map(|i| (i, reason.clone())).collect()));
                }
            };
            let path = self.object_path(encoded.partition, encoded.object.as_deref());
            let started = std::time::Instant::now();
            let size = bytes.len();
            if let Err(e) = self.put(&path, bytes).await {
                self.metrics.failed("write", &e.to_string());
                return Err(e.into());
            }
            self.metrics.flushed(encoded.batch.num_rows(), started.elapsed());
            tracing::info!(sink = %self.name, pipeline = %self.pipeline, object = %path, rows = encoded.batch.num_rows(),
                bytes = size, millis = started.elapsed().as_millis() as u64, "wrote batch");
            Ok(Written::All)
        })
    }
}

impl LakeWriter {
    /// The writer of lake sink `name` of `pipeline`, under `prefix` in `store`; `instance` starts
    /// the names of its objects. Its metrics are the sink's in `metrics`.
    pub fn new(
        name: &str,
        pipeline: &str,
        (store, prefix): (&Arc<dyn ObjectStore>, ObjectPath),
        instance: &str,
        metrics: &crate::telemetry::metrics::Metrics,
    ) -> LakeWriter {
        LakeWriter {
            name: name.into(),
            pipeline: pipeline.into(),
            store: store.clone(),
            prefix,
            instance: instance.into(),
            metrics: metrics.sink(pipeline, name),
        }
    }

    fn object_path(&self, partition: Partition, fixed: Option<&str>) -> ObjectPath {
        let name = match fixed {
            Some(stem) => format!("{stem}.parquet"),
            None => format!("{}-{}.parquet", self.instance, uuid::Uuid::new_v4()),
        };
        let mut p = self.prefix.clone();
        for part in partition.path().split('/') {
            p = p.join(part);
        }
        p.join(name)
    }

    async fn put(&self, path: &ObjectPath, bytes: bytes::Bytes) -> Result<(), WriteError> {
        put_retrying(self.store.as_ref(), path, bytes, &self.name).await
    }
}

/// One atomic put of a whole object, retried with backoff while the error may pass (transport and
/// server errors; not permissions, bad paths or bad requests). `what` names the writer in logs.
pub async fn put_retrying(
    store: &dyn ObjectStore,
    path: &ObjectPath,
    bytes: bytes::Bytes,
    what: &str,
) -> Result<(), WriteError> {
    let attempt = || async { store.put(path, PutPayload::from_bytes(bytes.clone())).await.map(|_| ()) };
    attempt
        .retry(
            ExponentialBuilder::default()
                .with_min_delay(Duration::from_millis(100))
                .with_max_delay(Duration::from_secs(5))
                .with_max_times(6)
                .with_jitter(),
        )
        .when(crate::store::gcs::retryable)
        .notify(|e, wait| tracing::warn!(sink = %what, error = %e, retry_in_ms = wait.as_millis() as u64, "write failed; retrying"))
        .await
        .map_err(|source| WriteError::Store { path: path.to_string(), source })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::ack::{Ack, Outcome};
    use crate::event::{DeadLetter, Event, Message};
    use crate::schema::Schema;
    use crate::sink::batcher::Limits;
    use crate::sink::group::SinkGroup;
    use object_store::memory::InMemory;
    use serde_json::json;
    use tokio::sync::mpsc;
    use tokio_util::sync::CancellationToken;

    fn group(store: Arc<dyn ObjectStore>, dead: Option<mpsc::Sender<DeadLetter>>) -> SinkGroup {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
        SinkGroup {
            pipeline: "config-changes".into(),
            schema: Arc::new(Schema::load(&dir, "config_change").unwrap()),
            writers: vec![Box::new(LakeWriter {
                name: "lake".into(),
                pipeline: "config-changes".into(),
                store,
                prefix: ObjectPath::from("lake/config-changes"),
                instance: "test".into(),
                metrics: crate::telemetry::metrics::Metrics::new().sink("config-changes", "lake"),
            })],
            limits: Limits { max_rows: 2, max_bytes: 1 << 20, max_age: Duration::from_millis(100), max_idle: None },
            rows_checked: false,
            dead: dead.map_or(crate::sink::group::Refusals::None, crate::sink::group::Refusals::Channel),
            budget: None,
            arrivals: None,
            linger: Duration::ZERO,
        }
    }

    /// A valid config-change row with this message id.
    fn row(id: &str) -> serde_json::Value {
        json!({"timestamp": "2026-11-26T09:15:00Z", "service": "s", "key": "k", "version": 1, "message_id": id})
    }

    fn event(id: &str, record: serde_json::Value) -> (Event, tokio::sync::oneshot::Receiver<Outcome>) {
        let (ack, rx) = Ack::channel();
        let mut e = Event::alone(
            Message::new(id, chrono::Utc::now(), Default::default(), bytes::Bytes::new(), Arc::from("push")),
            ack,
        );
        e.record = record;
        (e, rx)
    }

    #[tokio::test]
    async fn writes_partitioned_files_acks_after_write_and_dead_letters_bad_rows() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let (dtx, mut drx) = mpsc::channel(8);
        let (tx, rx) = mpsc::channel(8);
        let task = tokio::spawn(group(store.clone(), Some(dtx)).run(rx, CancellationToken::new()));
        let (a, arx) = event("a", row("a"));
        let (b, brx) = event("b", row("b"));
        let (c, crx) = event("c", json!({"service": "s"}));
        tx.send(vec![a, c]).await.unwrap();
        tx.send(vec![b]).await.unwrap();
        assert_eq!(arx.await.unwrap(), Outcome::Delivered);
        assert_eq!(brx.await.unwrap(), Outcome::Delivered);
        let dead = drx.recv().await.unwrap();
        assert_eq!(dead.stage, "sinks");
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
    async fn events_routed_only_to_inactive_sinks_go_to_dead_letters() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let (dtx, mut drx) = mpsc::channel(8);
        let (tx, rx) = mpsc::channel(8);
        let task = tokio::spawn(group(store.clone(), Some(dtx)).run(rx, CancellationToken::new()));
        let (mut a, arx) = event("a", row("a"));
        a.routes = Some(Arc::from(vec![Arc::from("warehouse")]));
        tx.send(vec![a]).await.unwrap();
        drop(tx);
        let dead = drx.recv().await.unwrap();
        assert_eq!(dead.stage, "sinks");
        assert_eq!(dead.reason, "routed only to sink(s) warehouse, none of which is active in this process");
        dead.event.ack.settle(Outcome::Delivered);
        assert_eq!(arx.await.unwrap(), Outcome::Delivered);
        task.await.unwrap();
        use futures::TryStreamExt;
        let objects: Vec<_> = store.list(None).try_collect().await.unwrap();
        assert!(objects.is_empty(), "nothing written to the lake: {objects:?}");
    }

    /// A source out of room gets the open batch written once it holds half of what the source
    /// can hold, not before (a batch written early stays small) and not only when it ages.
    #[tokio::test(start_paused = true)]
    async fn a_source_out_of_room_gets_the_open_batch_written_once_it_holds_half_of_it() {
        use crate::source::budget::Budget;
        use std::sync::atomic::AtomicU64;
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let budget = Budget::new(4, 1 << 30);
        let blocked = Arc::new(AtomicU64::new(0));
        let mut held = Vec::new();
        for _ in 0..4 {
            held.push(budget.hold(budget.slot(&blocked).await, 100, &blocked).await);
        }
        let mut g = group(store.clone(), None);
        g.limits = Limits { max_rows: 1_000, max_bytes: 1 << 30, max_age: Duration::from_secs(3_600), max_idle: None };
        g.budget = Some(budget.clone());
        let (tx, rx) = mpsc::channel(8);
        let task = tokio::spawn(g.run(rx, CancellationToken::new()));
        let (a, mut arx) = event("a", row("a"));
        tx.send(vec![a]).await.unwrap();
        let (b2, bl) = (budget.clone(), blocked.clone());
        let waiting = tokio::spawn(async move { b2.slot(&bl).await });
        tokio::time::sleep(Duration::from_secs(60)).await;
        assert!(arx.try_recv().is_err(), "one row of four the budget holds: the batch waits for more");
        let (b, brx) = event("b", row("b"));
        tx.send(vec![b]).await.unwrap();
        let settled = tokio::time::timeout(Duration::from_secs(1), async { (arx.await, brx.await) }).await;
        assert_eq!(settled.unwrap(), (Ok(Outcome::Delivered), Ok(Outcome::Delivered)), "two of four: written");
        use futures::TryStreamExt;
        let objects: Vec<_> = store.list(Some(&ObjectPath::from("lake"))).try_collect().await.unwrap();
        assert_eq!(objects.len(), 1, "both rows in one file");
        drop(held);
        waiting.await.unwrap();
        drop(tx);
        task.await.unwrap();
    }

    #[tokio::test]
    async fn open_batches_are_written_when_the_channel_closes() {
        let store: Arc<dyn ObjectStore> = Arc::new(InMemory::new());
        let (tx, rx) = mpsc::channel(8);
        let (a, arx) = event("a", row("a"));
        tx.send(vec![a]).await.unwrap();
        drop(tx);
        group(store, None).run(rx, CancellationToken::new()).await;
        assert_eq!(arx.await.unwrap(), Outcome::Delivered);
    }
}
