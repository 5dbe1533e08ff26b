//! Follows a lake prefix: hands out the rows of Parquet files not read before.
//!
//! Several instances pulling one subscription each receive part of the stream, but all write the
//! same lake, so reading it back is how every instance sees the whole stream (configuration state,
//! producer heartbeats). Files are read once; `since` skips files last modified before it, and
//! `hours` limits listing to the `dt=/hour=` partitions of the last hours, so a large history is
//! not listed at every refresh.
//!
//! Files are told apart by name, so after `sluice compact` merged a partition the merged object is
//! a new file and its rows are handed out again: the followers are idempotent (configuration:
//! highest version wins; producers: a sign of life older than the last one seen changes nothing).
//! An object deleted between listing and reading is skipped: its rows are in the merged one.

use std::collections::HashSet;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;

use crate::store::join;
use object_store::{ObjectStore, ObjectStoreExt};
use serde_json::{Map, Value};

use crate::sink::lake::Partition;

#[derive(Debug, thiserror::Error)]
pub enum LakeError {
    /// The store failed (listing, reading, writing): the next refresh tries again.
    #[error("lake {path}: {source}")]
    Store { path: String, source: object_store::Error },
    /// A file is not the Parquet sluice writes: retrying will not help.
    #[error("reading {path}: {reason}")]
    Read { path: String, reason: String },
}

impl LakeError {
    pub fn store(path: &ObjectPath, source: object_store::Error) -> LakeError {
        LakeError::Store { path: path.to_string(), source }
    }
}

pub struct LakeTail {
    store: Arc<dyn ObjectStore>,
    prefix: ObjectPath,
    /// List only the hour partitions of this many past hours (and the current one); `None`: all.
    hours: Option<u32>,
    /// Files already read.
    seen: HashSet<ObjectPath>,
    /// Files last modified before this are skipped.
    pub since: Option<DateTime<Utc>>,
}

impl LakeTail {
    pub fn new(store: Arc<dyn ObjectStore>, prefix: ObjectPath, hours: Option<u32>) -> LakeTail {
        LakeTail { store, prefix, hours, seen: HashSet::new(), since: None }
    }

    pub fn store(&self) -> &Arc<dyn ObjectStore> {
        &self.store
    }

    fn prefixes(&self) -> Vec<ObjectPath> {
        match self.hours {
            None => vec![self.prefix.clone()],
            Some(h) => {
                let now = Utc::now();
                (0..=h as i64)
                    .map(|back| join(&self.prefix, &Partition::of(now - chrono::TimeDelta::hours(back)).path()))
                    .collect()
            }
        }
    }

    /// Rows of the files not read yet, each marked `_lake: true`.
    pub async fn new_rows(&mut self) -> Result<Vec<Map<String, Value>>, LakeError> {
        let mut out = Vec::new();
        let prefixes = self.prefixes();
        if self.hours.is_some() {
            // Files of partitions no longer listed will not be met again.
            self.seen.retain(|p| prefixes.iter().any(|pre| p.prefix_matches(pre)));
        }
        for prefix in prefixes {
            let listed: Vec<_> =
                self.store.list(Some(&prefix)).try_collect().await.map_err(|e| LakeError::store(&prefix, e))?;
            for meta in listed {
                let fresh = self.since.is_none_or(|s| meta.last_modified >= s);
                if !fresh || !meta.location.as_ref().ends_with(".parquet") || self.seen.contains(&meta.location) {
                    continue;
                }
                let path = &meta.location;
                let bytes = match self.store.get(path).await {
                    Ok(got) => got.bytes().await.map_err(|e| LakeError::store(path, e))?,
                    // Deleted since the listing: `sluice compact` merged it, and the merged
                    // object, written first, is listed next time.
                    Err(object_store::Error::NotFound { .. }) => continue,
                    Err(e) => return Err(LakeError::store(path, e)),
                };
                out.extend(rows(bytes).map_err(|reason| LakeError::Read { path: path.to_string(), reason })?);
                self.seen.insert(meta.location);
            }
        }
        Ok(out)
    }
}

/// Every row of a Parquet file as a JSON object, marked as read from the lake.
fn rows(bytes: bytes::Bytes) -> Result<Vec<Map<String, Value>>, String> {
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(bytes)
        .and_then(|b| b.build())
        .map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    for batch in reader {
        let batch = batch.map_err(|e| e.to_string())?;
        let mut w = arrow::json::ArrayWriter::new(Vec::new());
        w.write(&batch).map_err(|e| e.to_string())?;
        w.finish().map_err(|e| e.to_string())?;
        let mut rows: Vec<Map<String, Value>> = serde_json::from_slice(&w.into_inner()).map_err(|e| e.to_string())?;
        for r in &mut rows {
            r.insert("_lake".into(), Value::Bool(true));
        }
        out.extend(rows);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::PutPayload;
    use serde_json::json;

    async fn put(store: &Arc<dyn ObjectStore>, name: &str, ids: &[&str]) {
        let schema = crate::schema::Schema::load(
            &std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas"),
            "config_change",
        )
        .unwrap();
        let rows: Vec<Value> = ids
            .iter()
            .map(|id| json!({"timestamp": "2026-11-26T09:15:00Z", "service": "s", "key": id, "version": 1, "message_id": id}))
            .collect();
        let bytes = crate::sink::encode::parquet_file(&schema, &rows.iter().collect::<Vec<_>>()).unwrap();
        store
            .put(&ObjectPath::from(format!("lake/c/dt=2026-11-26/hour=09/{name}")), PutPayload::from_bytes(bytes))
            .await
            .unwrap();
    }

    fn ids(rows: &[Map<String, Value>]) -> Vec<&str> {
        let mut ids: Vec<&str> = rows.iter().map(|r| r["message_id"].as_str().unwrap()).collect();
        ids.sort();
        ids
    }

    /// A partition compacted after the follower read part of it: nothing it had not read is hidden.
    #[tokio::test]
    async fn a_compacted_partition_hides_no_row() {
        let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        put(&store, "a.parquet", &["a"]).await;
        let mut tail = LakeTail::new(store.clone(), ObjectPath::from("lake/c"), None);
        assert_eq!(ids(&tail.new_rows().await.unwrap()), ["a"]);
        put(&store, "b.parquet", &["b"]).await;
        // `sluice compact`: the merged object first, then its inputs go.
        put(&store, "compacted-1.parquet", &["a", "b"]).await;
        for name in ["a.parquet", "b.parquet"] {
            store.delete(&ObjectPath::from(format!("lake/c/dt=2026-11-26/hour=09/{name}"))).await.unwrap();
        }
        assert_eq!(ids(&tail.new_rows().await.unwrap()), ["a", "b"], "b is read; a again, which followers ignore");
        assert!(tail.new_rows().await.unwrap().is_empty());
    }
}
