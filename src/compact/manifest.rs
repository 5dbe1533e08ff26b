//! A unit's manifest: the inputs it merges and the object it writes, put before the merge and
//! deleted once every input is gone, so a run after a crash finishes what it names.
//!
//! Manifests live under `<lake>/_sluice/compact/<prefix>/dt=…/hour=…/<hash>.json`: outside the
//! data folders (a reader of `<prefix>/` never sees them), and hidden from replays of the whole
//! lake (`_`-prefixed folders are skipped).

use std::sync::Arc;

use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};
use serde::{Deserialize, Serialize};

use super::CompactError;

/// One input object of a unit.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Input {
    pub path: String,
    pub size: u64,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Manifest {
    /// The merged object; written whole (one put) before any input is deleted.
    pub output: String,
    pub inputs: Vec<Input>,
    /// Rows of all inputs together (from their footers): the output holds exactly these.
    pub rows: u64,
    pub created_at: String,
}

/// What finishing an interrupted unit did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Finished {
    /// The output was there: the inputs still present were deleted.
    Completed,
    /// The output was not written: no input had been deleted, the manifest was dropped.
    RolledBack,
}

pub async fn save(store: &dyn ObjectStore, path: &ObjectPath, m: &Manifest) -> Result<(), CompactError> {
    let text = serde_json::to_vec_pretty(m).expect("a manifest serializes");
    crate::sink::lake::put_retrying(store, path, text.into(), "compact")
        .await
        .map_err(|e| CompactError::Write { path: path.to_string(), reason: e.to_string() })
}

async fn load(store: &dyn ObjectStore, path: &ObjectPath) -> Result<Manifest, CompactError> {
    let what = || format!("reading manifest {path}");
    let bytes = store.get(path).await.map_err(|e| CompactError::store(what(), e))?;
    let bytes = bytes.bytes().await.map_err(|e| CompactError::store(what(), e))?;
    serde_json::from_slice(&bytes).map_err(|e| CompactError::Manifest { path: path.to_string(), reason: e.to_string() })
}

/// Delete an object; one already gone is fine (an earlier attempt deleted it).
pub async fn delete(store: &dyn ObjectStore, path: &ObjectPath) -> Result<(), CompactError> {
    match store.delete(path).await {
        Ok(()) | Err(object_store::Error::NotFound { .. }) => Ok(()),
        Err(e) => Err(CompactError::store(format!("deleting {path}"), e)),
    }
}

/// Whether an object exists.
async fn exists(store: &dyn ObjectStore, path: &ObjectPath) -> Result<bool, CompactError> {
    match store.head(path).await {
        Ok(_) => Ok(true),
        Err(object_store::Error::NotFound { .. }) => Ok(false),
        Err(e) => Err(CompactError::store(format!("looking up {path}"), e)),
    }
}

/// The manifests left under `under` by interrupted runs.
pub async fn pending(store: &Arc<dyn ObjectStore>, under: &ObjectPath) -> Result<Vec<ObjectPath>, CompactError> {
    let listed: Vec<_> =
        store.list(Some(under)).try_collect().await.map_err(|e| CompactError::store(format!("listing {under}"), e))?;
    let mut out: Vec<ObjectPath> =
        listed.into_iter().map(|m| m.location).filter(|p| p.as_ref().ends_with(".json")).collect();
    out.sort();
    Ok(out)
}

/// Finish the unit a manifest names: the output decides whether the inputs go or stay.
pub async fn finish(store: &dyn ObjectStore, path: &ObjectPath) -> Result<Finished, CompactError> {
    let m = load(store, path).await?;
    let done = if exists(store, &ObjectPath::from(m.output.as_str())).await? {
        for input in &m.inputs {
            delete(store, &ObjectPath::from(input.path.as_str())).await?;
        }
        Finished::Completed
    } else {
        Finished::RolledBack
    };
    delete(store, path).await?;
    tracing::info!(manifest = %path, output = %m.output, outcome = ?done, "finished an interrupted compaction");
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;
    use object_store::memory::InMemory;
    use object_store::PutPayload;

    async fn put(store: &dyn ObjectStore, path: &str, text: &str) {
        store.put(&ObjectPath::from(path), PutPayload::from(text.to_owned())).await.unwrap();
    }

    async fn names(store: &dyn ObjectStore) -> Vec<String> {
        let listed: Vec<_> = store.list(None).try_collect().await.unwrap();
        let mut names: Vec<String> = listed.into_iter().map(|m| m.location.to_string()).collect();
        names.sort();
        names
    }

    fn manifest() -> Manifest {
        let input = |p: &str| Input { path: p.into(), size: 1 };
        Manifest { output: "p/out".into(), inputs: vec![input("p/a"), input("p/b")], rows: 2, created_at: "t".into() }
    }

    #[tokio::test]
    async fn an_interrupted_merge_with_its_output_deletes_the_inputs_left() {
        let store = InMemory::new();
        let path = ObjectPath::from("m/x.json");
        save(&store, &path, &manifest()).await.unwrap();
        put(&store, "p/out", "merged").await;
        put(&store, "p/b", "b").await; // `p/a` was deleted before the crash
        assert_eq!(finish(&store, &path).await.unwrap(), Finished::Completed);
        assert_eq!(names(&store).await, ["p/out"]);
    }

    #[tokio::test]
    async fn an_interrupted_merge_without_its_output_keeps_the_inputs() {
        let store = InMemory::new();
        let path = ObjectPath::from("m/x.json");
        save(&store, &path, &manifest()).await.unwrap();
        put(&store, "p/a", "a").await;
        put(&store, "p/b", "b").await;
        assert_eq!(finish(&store, &path).await.unwrap(), Finished::RolledBack);
        assert_eq!(names(&store).await, ["p/a", "p/b"]);
    }

    #[tokio::test]
    async fn an_unreadable_manifest_is_left_and_named() {
        let store = InMemory::new();
        put(&store, "m/x.json", "{").await;
        put(&store, "p/a", "a").await;
        let err = finish(&store, &ObjectPath::from("m/x.json")).await.unwrap_err().to_string();
        assert!(err.starts_with("manifest m/x.json: "), "{err}");
        assert_eq!(names(&store).await, ["m/x.json", "p/a"]);
    }
}
