//! `sluice replay`: run archived lake files (and dead letters) through a pipeline again, into
//! BigQuery, a lake prefix of its own, or the pipeline's Pub/Sub topic. NDJSON files (one payload
//! per line, as Cloud Logging exports them) are read by `ndjson` and fed in by `ndjson_run`.
//!
//! ```text
//! --from prefix ─▶ plan (list, partition + time selection, footers) ─▶ for each file, row group:
//!   reader (one row group at a time, 8Ki-row batches) ─▶ rows ─▶ events ─▶ transform::Chain
//!   ─▶ sink::group (lake objects named after the row group; BigQuery: only ids not in the table)
//!   ─▶ checkpoint (per file: row groups done) ─▶ progress
//! --from *.ndjson[.gz|.zst] or a prefix of them ─▶ ndjson (stream, decompress, split) ─▶ batches
//!   of lines as events ─▶ the same chain and sinks ─▶ checkpoint (per file: lines done)
//! ```
//! Decisions, and why:
//! - **What goes through the transforms.** An archived row is the pipeline's own output: it is
//!   rebuilt as the message that would produce it (payload = the row as JSON, message id = its
//!   `message_id`, publish time = its time field) and runs the whole chain, so a fixed or new
//!   stage applies to it; stages accept their own output (parse, rename, timestamp, redact, validate
//!   are idempotent on it). The chain's `metadata.ingest_time` field keeps the archived value: the
//!   message was received then, a replay is not a new receipt. Attributes are not archived, so
//!   stages that read them see none. A dead letter carries the original bytes, attributes, id and
//!   publish time: it runs the full chain exactly as the message first did.
//! - **Idempotence.** BigQuery: before each batch is appended, the table is asked which of its
//!   message ids it already has (one parameterised query per batch, ids bound as an array), and
//!   only the others are appended, through an exactly-once committed stream (a retried append is
//!   never doubled). A crash between an append and the checkpoint is safe: the next run finds those
//!   ids. Lake output goes under `--output` (never the archive), one object per source row group
//!   batch, named after it, so a second run rewrites the same objects.
//! - **Resumption.** `<output>/_checkpoints/<pipeline>.json` records the replay's parameters and,
//!   per file, the row groups done; it is rewritten after each row group. A run with the same
//!   parameters continues from it and says so; different parameters are refused while it is
//!   unfinished (`--restart` discards it). Paths under `_`-prefixed folders are never replayed, so
//!   checkpoints and `_sluice/` state are not read as data.
//! - **Time selection.** `dt=/hour=` folders outside `--since`/`--until` are skipped unread; rows of
//!   the edge hours are filtered on the file's time field (`timestamp` for the shipped schemas,
//!   `failed_at` for dead letters).
//! - **Memory.** One row group is read at a time, in batches of [`reader::BATCH_ROWS`] rows; sluice
//!   writes row groups of at most 64Ki rows, so memory does not grow with the file.

pub mod checkpoint;
pub mod existing;
mod ingest;
pub mod ndjson;
mod ndjson_run;
mod outputs;
pub mod plan;
pub mod progress;
pub mod reader;
pub mod rows;
pub mod run;
mod select;
pub mod topic;
mod unit;

pub use run::{replay, Args, Target};

use crate::store::Location;

#[derive(Debug, thiserror::Error)]
pub enum ReplayError {
    /// The command line or config asks for something that cannot be done; retrying will not help.
    #[error("{0}")]
    Usage(String),
    /// Listing, reading or writing a store failed (may pass on a retry; the checkpoint keeps progress).
    #[error("{what}: {source}")]
    Store { what: String, source: object_store::Error },
    /// A file is not Parquet sluice can read.
    #[error("reading {path}: {reason}")]
    Read { path: String, reason: String },
    /// Nothing matches the selection.
    #[error("{0}")]
    Empty(String),
    /// An NDJSON file could not be read or decompressed.
    #[error(transparent)]
    Ndjson(#[from] ndjson::NdjsonError),
    #[error(transparent)]
    Checkpoint(#[from] checkpoint::CheckpointError),
    /// Some rows of a unit were not written after their sinks' retries (each sink logged why);
    /// run the replay again to resume.
    #[error("{failed} of {rows} rows of {file} ({object}) could not be written (the log says why); run the same replay again to resume from the checkpoint")]
    Sink { failed: usize, rows: usize, file: String, object: String },
    /// Publishing to the pipeline's topic failed; run the replay again to resume.
    #[error("{0}; run the same replay again to resume from the checkpoint")]
    Topic(#[from] topic::TopicError),
    #[error("starting the sinks: {0}")]
    Start(#[from] crate::topology::StartError),
}

impl ReplayError {
    fn store(what: impl std::fmt::Display, source: object_store::Error) -> ReplayError {
        ReplayError::Store { what: what.to_string(), source }
    }
}

/// Parse a location from the command line, naming the flag in the error.
fn location(flag: &str, text: &str) -> Result<Location, ReplayError> {
    Location::parse(text).map_err(|e| ReplayError::Usage(format!("{flag}: {e}")))
}

/// What a replay did (or, for a dry run, would do).
#[derive(Debug, Default)]
pub struct Summary {
    pub plan: plan::Plan,
    pub resumed: bool,
    /// The checkpoint said this replay had already finished: nothing was read.
    pub already_complete: bool,
    pub files_done: usize,
    /// Selected rows read in this run.
    pub rows: u64,
    /// Rows that passed the chain.
    pub forwarded: u64,
    /// Removed on purpose by a stage (filter, dedupe).
    pub dropped: u64,
    /// Routed (by a `route` stage) only to sinks the replay does not feed.
    pub not_routed: u64,
    /// Refused by a stage or a sink, written under the output's dead letters.
    pub dead_letters: u64,
    /// BigQuery rows appended, and rows left out because the table had their id.
    pub appended: u64,
    pub already_present: u64,
    pub published: u64,
    pub checkpoint: String,
    pub seconds: f64,
}
