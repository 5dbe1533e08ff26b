//! `sluice compact`: merge the many small Parquet objects of each closed hour partition of a
//! pipeline's lake sinks and dead letters into a few objects of a target size.
//!
//! ```text
//! for each prefix (every lake sink of the pipeline, then <dead_letters>/<pipeline>):
//!   finish interrupted units (manifests) ─▶ plan (closed hours, small files, one schema, bins)
//!   ─▶ for each unit: manifest ─▶ merge (row groups as Arrow batches) ─▶ put output
//!      ─▶ delete inputs ─▶ delete manifest ─▶ progress
//! ```
//! Decisions, and why:
//! - **No gap, ever.** A unit's merged object is written (one atomic put) before any of its
//!   inputs is deleted, so a reader listing in between sees the rows twice, never missing; the
//!   lake is at-least-once anyway.
//! - **No duplicate left behind.** Before merging, a manifest naming the unit's inputs and its
//!   output is written under `_sluice/compact/` (outside the data folders, so no reader takes it
//!   for data). A run that finds a manifest finishes that unit first: output present -> delete
//!   the inputs still there; output absent -> nothing was deleted, the manifest goes. Then it plans
//!   afresh, so an output is never merged again together with its own inputs.
//! - **Idempotent.** The output's name is a hash of the sorted input names
//!   (`compacted-<hash>.parquet`): a rerun of the same unit writes the same object. A partition
//!   holding fewer than two objects under the target size is left alone, so a second run is a
//!   no-op; compacted objects under the target are merged again only with newer small objects.
//! - **Closed hours only.** An hour is compacted once it ended more than the batch `max_age`
//!   ago (no open batch can still hold its rows). A late event written into a compacted hour
//!   afterwards is a new small object, taken by the next run.
//! - **Arrow as it is.** Row groups are read one batch at a time and written with the lake's own
//!   Parquet settings ([`crate::sink::encode::writer_properties`]); values are never converted.
//!   Objects of different column sets (a schema that gained a column) are merged separately.
//! - **One run at a time per pipeline.** Two runs planning different sets of one hour would each
//!   write their output: duplicates, never a gap. A run holds the pipeline's lock (`lock`) from
//!   before it finishes interrupted units to its end; a second run is refused with who holds it.

pub mod lock;
pub mod manifest;
pub mod merge;
pub mod plan;
pub mod run;

pub use run::{compact, Args, PrefixSummary, Summary};

#[derive(Debug, thiserror::Error)]
pub enum CompactError {
    /// Arguments or config that cannot work (a pipeline that does not exist, an empty window).
    #[error("{0}")]
    Usage(String),
    /// Listing, looking up or deleting objects, or saving a manifest, failed; a rerun resumes.
    #[error("{what}: {source}")]
    Store { what: String, source: object_store::Error },
    /// Reading an input (the replay reader: footers, row groups); nothing was deleted.
    #[error(transparent)]
    Input(#[from] crate::replay::ReplayError),
    /// A manifest sluice cannot read: left in place, so its inputs are not touched.
    #[error("manifest {path}: {reason}")]
    Manifest { path: String, reason: String },
    /// Another run holds the pipeline's lock, or this run lost it.
    #[error("{0}")]
    Locked(String),
    /// Writing the merged object failed; nothing was deleted, a rerun starts the merge again.
    #[error("writing {path}: {reason}")]
    Write { path: String, reason: String },
}

impl CompactError {
    fn store(what: impl std::fmt::Display, source: object_store::Error) -> CompactError {
        CompactError::Store { what: what.to_string(), source }
    }
}
