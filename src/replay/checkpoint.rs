//! The replay checkpoint: the replay's parameters and, per source file, how many of its row groups
//! (for an NDJSON file: lines, then the whole file) are done. One JSON object beside the output (`<output>/_checkpoints/<pipeline>.json`), rewritten
//! whole after each row group with one put (atomic on both stores).

use std::collections::BTreeMap;
use std::sync::Arc;

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};

/// What a replay was asked to do; a checkpoint only resumes the same replay.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Params {
    pub pipeline: String,
    pub from: String,
    pub since: Option<String>,
    pub until: Option<String>,
    pub to: Vec<String>,
    pub output: String,
}

impl Params {
    /// The differences from `other`, as `--flag: A (checkpoint) vs B (now)`.
    fn differences(&self, other: &Params) -> Vec<String> {
        let show = |v: &Option<String>| v.clone().unwrap_or_else(|| "(none)".into());
        let mut out = Vec::new();
        let mut cmp = |flag: &str, a: String, b: String| {
            if a != b {
                out.push(format!("{flag}: {a} (checkpoint) vs {b} (this run)"));
            }
        };
        cmp("--pipeline", self.pipeline.clone(), other.pipeline.clone());
        cmp("--from", self.from.clone(), other.from.clone());
        cmp("--since", show(&self.since), show(&other.since));
        cmp("--until", show(&self.until), show(&other.until));
        cmp("--to", self.to.join(","), other.to.join(","));
        cmp("--output", self.output.clone(), other.output.clone());
        out
    }
}

/// Progress in one source file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileState {
    /// Row groups done, from the first: the next run starts at this one.
    pub row_groups_done: usize,
    /// Selected rows read from those row groups (NDJSON: lines replayed).
    pub rows: u64,
    /// NDJSON: the last line of the last batch made durable; the next run skips up to it.
    #[serde(default, skip_serializing_if = "is_zero")]
    pub lines_done: u64,
}

fn is_zero(n: &u64) -> bool {
    *n == 0
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checkpoint {
    pub params: Params,
    pub started_at: String,
    pub updated_at: String,
    pub complete: bool,
    /// By object path.
    pub files: BTreeMap<String, FileState>,
}

impl Checkpoint {
    pub fn new(params: Params) -> Checkpoint {
        let now = crate::schema::format_timestamp(chrono::Utc::now());
        Checkpoint { params, started_at: now.clone(), updated_at: now, complete: false, files: BTreeMap::new() }
    }

    /// Row groups of `path` already done.
    pub fn done(&self, path: &str) -> usize {
        self.files.get(path).map_or(0, |f| f.row_groups_done)
    }

    /// Lines of the NDJSON file `path` already done.
    pub fn lines_done(&self, path: &str) -> u64 {
        self.files.get(path).map_or(0, |f| f.lines_done)
    }

    /// A batch of an NDJSON file is durable: `rows` lines, up to line `last`.
    pub fn record_lines(&mut self, path: &str, last: u64, rows: u64) {
        let f = self.files.entry(path.to_owned()).or_default();
        f.lines_done = last;
        f.rows += rows;
        self.updated_at = crate::schema::format_timestamp(chrono::Utc::now());
    }

    pub fn rows_done(&self) -> u64 {
        self.files.values().map(|f| f.rows).sum()
    }

    pub fn record(&mut self, path: &str, row_groups_done: usize, rows: u64) {
        let f = self.files.entry(path.to_owned()).or_default();
        f.row_groups_done = row_groups_done;
        f.rows += rows;
        self.updated_at = crate::schema::format_timestamp(chrono::Utc::now());
    }
}

#[derive(Debug, thiserror::Error)]
pub enum CheckpointError {
    #[error("{path}: {source}")]
    Store { path: String, source: object_store::Error },
    #[error("{path} is not a replay checkpoint ({reason}); remove it or pass --restart")]
    Corrupt { path: String, reason: String },
    #[error(
        "{path} belongs to an unfinished replay with other parameters:\n  {}\nrun that replay again with its own \
         parameters to finish it, pass --restart to discard it, or choose another --output",
        differences.join("\n  ")
    )]
    OtherReplay { path: String, differences: Vec<String> },
}

/// How a replay starts, given what the checkpoint holds.
#[derive(Debug, PartialEq)]
pub enum Start {
    /// No checkpoint, a finished one for another replay, or `--restart`.
    Fresh(Checkpoint),
    /// The same replay, interrupted: continue it.
    Resume(Checkpoint),
    /// The same replay already finished.
    Complete(Checkpoint),
}

/// Decide from the stored checkpoint (if any) and this run's parameters.
pub fn start(stored: Option<Checkpoint>, params: &Params, restart: bool, path: &str) -> Result<Start, CheckpointError> {
    let fresh = || Start::Fresh(Checkpoint::new(params.clone()));
    let Some(stored) = stored.filter(|_| !restart) else { return Ok(fresh()) };
    if stored.params == *params {
        return Ok(if stored.complete { Start::Complete(stored) } else { Start::Resume(stored) });
    }
    if stored.complete {
        return Ok(fresh());
    }
    Err(CheckpointError::OtherReplay { path: path.into(), differences: stored.params.differences(params) })
}

/// Where the checkpoint lives.
pub struct Store {
    store: Arc<dyn ObjectStore>,
    path: ObjectPath,
}

impl Store {
    pub fn new(store: Arc<dyn ObjectStore>, path: ObjectPath) -> Store {
        Store { store, path }
    }

    pub fn path(&self) -> &ObjectPath {
        &self.path
    }

    fn error(&self, source: object_store::Error) -> CheckpointError {
        CheckpointError::Store { path: self.path.to_string(), source }
    }

    pub async fn load(&self) -> Result<Option<Checkpoint>, CheckpointError> {
        let bytes = match self.store.get(&self.path).await {
            Ok(r) => r.bytes().await.map_err(|e| self.error(e))?,
            Err(object_store::Error::NotFound { .. }) => return Ok(None),
            Err(e) => return Err(self.error(e)),
        };
        serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| CheckpointError::Corrupt { path: self.path.to_string(), reason: e.to_string() })
    }

    pub async fn save(&self, checkpoint: &Checkpoint) -> Result<(), CheckpointError> {
        let bytes = serde_json::to_vec_pretty(checkpoint).expect("a checkpoint serializes");
        self.store.put(&self.path, PutPayload::from(bytes)).await.map(|_| ()).map_err(|e| self.error(e))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn params() -> Params {
        Params {
            pipeline: "logs".into(),
            from: "gs://b/events/logs/".into(),
            since: Some("2026-11-20T00:00:00Z".into()),
            until: None,
            to: vec!["bigquery".into()],
            output: "gs://b/replay".into(),
        }
    }

    #[test]
    fn same_parameters_resume_or_report_complete() {
        let mut c = Checkpoint::new(params());
        c.record("a.parquet", 2, 100);
        assert_eq!(start(Some(c.clone()), &params(), false, "cp").unwrap(), Start::Resume(c.clone()));
        c.complete = true;
        assert_eq!(start(Some(c.clone()), &params(), false, "cp").unwrap(), Start::Complete(c));
        assert!(matches!(start(None, &params(), false, "cp").unwrap(), Start::Fresh(_)));
    }

    #[test]
    fn other_parameters_are_refused_while_unfinished() {
        let c = Checkpoint::new(params());
        let mut other = params();
        other.until = Some("2026-11-21T00:00:00Z".into());
        other.to = vec!["lake".into()];
        let err = start(Some(c.clone()), &other, false, "gs://b/replay/_checkpoints/logs.json").unwrap_err();
        let text = err.to_string();
        assert!(text.contains("--until: (none) (checkpoint) vs 2026-11-21T00:00:00Z (this run)"), "{text}");
        assert!(text.contains("--to: bigquery (checkpoint) vs lake (this run)"), "{text}");
        assert!(!text.contains("--from"), "{text}");
        // --restart discards it; a finished replay is simply replaced.
        assert!(matches!(start(Some(c.clone()), &other, true, "cp").unwrap(), Start::Fresh(f) if f.params == other));
        let mut done = c;
        done.complete = true;
        assert!(matches!(start(Some(done), &other, false, "cp").unwrap(), Start::Fresh(_)));
    }

    #[test]
    fn records_progress_per_file() {
        let mut c = Checkpoint::new(params());
        assert_eq!(c.done("a"), 0);
        c.record("a", 1, 10);
        c.record("a", 2, 5);
        c.record("b", 1, 7);
        assert_eq!((c.done("a"), c.done("b"), c.rows_done()), (2, 1, 22));
        c.record_lines("x.ndjson", 8192, 8000);
        c.record_lines("x.ndjson", 9000, 700);
        assert_eq!((c.done("x.ndjson"), c.lines_done("x.ndjson"), c.lines_done("a")), (0, 9000, 0));
        c.record("x.ndjson", 1, 0);
        assert_eq!((c.done("x.ndjson"), c.rows_done()), (1, 22 + 8700));
        let back: Checkpoint = serde_json::from_slice(&serde_json::to_vec(&c).unwrap()).unwrap();
        assert_eq!(back, c);
    }

    #[tokio::test]
    async fn saves_and_loads_through_a_store() {
        let store = Store::new(Arc::new(object_store::memory::InMemory::new()), ObjectPath::from("_checkpoints/x"));
        assert_eq!(store.load().await.unwrap(), None);
        let c = Checkpoint::new(params());
        store.save(&c).await.unwrap();
        assert_eq!(store.load().await.unwrap(), Some(c));
        store.store.put(&store.path, PutPayload::from_static(b"{")).await.unwrap();
        assert!(matches!(store.load().await, Err(CheckpointError::Corrupt { .. })));
    }
}
