//! Replaying NDJSON files: each line is a payload as if it arrived from Pub/Sub, and runs the
//! pipeline's whole chain (`parse_json` first) into the replay's targets.
//!
//! - **Message id** `<file>:<line>` (the file's full location: `gs://bucket/path` or an absolute
//!   path), so a rerun gives the same ids: BigQuery's id check leaves out rows it has, and `dedupe`
//!   sees repeats. **Publish time**: the file's modification time in its store, the same on every
//!   run. Attributes: none. The chain's `ingest_time` is the replay's own (a first receipt).
//! - A line refused by a stage or a sink is a dead letter whose reason starts with `<file>:<line>`.
//! - Lines go through in batches of at most [`reader::BATCH_ROWS`] lines or [`BATCH_BYTES`];
//!   the checkpoint records the last line of each batch made durable, and a resumed replay reads
//!   the file again from its start (a compressed stream cannot be entered midway), skipping the
//!   lines done.

use std::path::Path;
use std::sync::Arc;

use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt};

use super::checkpoint::{self, Checkpoint};
use super::ndjson::{compression_of, Line, Lines, MAX_LINE};
use super::plan::{Plan, SourceFile};
use super::progress::Progress;
use super::unit::{Acks, Unit};
use super::{reader, ReplayError};
use crate::event::{Attributes, DeadLetter, Event, Handover, Message};
use crate::store::Location;

/// The most payload bytes in one batch, so a file of long lines keeps memory bounded too.
pub(super) const BATCH_BYTES: usize = 16 * 1024 * 1024;

/// What `--from` opens: a store, the prefix (or the one file) in it, and how to name its files.
pub(super) struct Input {
    pub store: Arc<dyn ObjectStore>,
    pub prefix: ObjectPath,
    /// `--from` names one NDJSON file: `prefix` is that file.
    pub file: bool,
    /// Put before an object path to give a file's full location.
    base: String,
}

impl Input {
    /// Open `--from`: a folder, a bucket prefix, or one NDJSON file in either.
    pub(super) fn open(from: &Location, text: &str, endpoint: Option<&str>) -> Result<Input, ReplayError> {
        let opening = |e| ReplayError::store(format!("opening {text}"), e);
        match from {
            Location::Local(path) if path.is_file() && is_ndjson(path) => {
                let dir = path.parent().filter(|d| !d.as_os_str().is_empty()).unwrap_or(Path::new("."));
                let (store, _) = Location::Local(dir.to_owned()).open(endpoint).map_err(opening)?;
                let name = path.file_name().unwrap_or_default().to_string_lossy();
                Ok(Input { store, prefix: ObjectPath::from(name.as_ref()), file: true, base: local_base(dir) })
            }
            Location::Local(dir) if !dir.is_dir() => Err(ReplayError::Usage(format!(
                "--from: {} is not a folder (nor an NDJSON file: *.ndjson, *.jsonl or *.json, optionally .gz or .zst)",
                dir.display()
            ))),
            Location::Local(dir) => {
                let (store, prefix) = from.open(endpoint).map_err(opening)?;
                Ok(Input { store, prefix, file: false, base: local_base(dir) })
            }
            Location::Gcs { bucket, prefix } => {
                let (store, path) = from.open(endpoint).map_err(opening)?;
                let file = compression_of(prefix).is_some();
                Ok(Input { store, prefix: path, file, base: format!("gs://{bucket}/") })
            }
        }
    }

    /// A file's full location, as ids and dead letters name it.
    pub(super) fn name(&self, path: &ObjectPath) -> String {
        format!("{}{path}", self.base)
    }

    /// The plan for `--from` naming one NDJSON file.
    pub(super) async fn plan_file(&self) -> Result<Plan, ReplayError> {
        let meta = self.store.head(&self.prefix).await.map_err(|e| ReplayError::store(self.name(&self.prefix), e))?;
        Ok(Plan::ndjson(vec![meta]))
    }

    /// The plan for a prefix holding no Parquet files: its NDJSON files.
    pub(super) async fn plan_prefix(&self) -> Result<Plan, ReplayError> {
        Ok(Plan::ndjson(super::ndjson::list(&self.store, &self.prefix).await?))
    }
}

fn is_ndjson(path: &Path) -> bool {
    path.file_name().is_some_and(|n| compression_of(&n.to_string_lossy()).is_some())
}

/// An absolute folder name ending in `/` (as given if it cannot be resolved).
fn local_base(dir: &Path) -> String {
    let dir = std::fs::canonicalize(dir).unwrap_or_else(|_| dir.to_owned());
    format!("{}/", dir.display().to_string().trim_end_matches('/'))
}

/// The file name up to its first dot and a hash of its whole path: Cloud Logging's exports repeat
/// file names (`00:00:00_00:59:59_S0.json`) in every day's folder, and a second run must rewrite
/// the same objects.
fn stem(path: &ObjectPath) -> String {
    let name = path.filename().unwrap_or("file");
    // FNV-1a: stable across builds and platforms, unlike std's hasher.
    let hash =
        path.as_ref().bytes().fold(0xcbf2_9ce4_8422_2325_u64, |h, b| (h ^ u64::from(b)).wrapping_mul(0x100_0000_01b3));
    format!("{}-{:08x}", name.split('.').next().unwrap_or(name), hash as u32)
}

/// Replay one NDJSON file, from the line after the checkpoint's.
pub(super) async fn file(
    run: &mut Unit<'_>,
    input: &Input,
    file: &SourceFile,
    cp: (&mut Checkpoint, &checkpoint::Store),
    progress: &mut Progress,
) -> Result<(), ReplayError> {
    let name = input.name(&file.path);
    let skip = cp.0.lines_done(file.path.as_ref());
    let stem = stem(&file.path);
    let mut lines = Lines::open(&input.store, &file.path, &name).await?;
    let mut reading = Reading { run, file, name, stem, cp: cp.0, cp_store: cp.1 };
    let mut batch: Vec<Line> = Vec::new();
    let mut bytes = 0;
    let mut shown = 0;
    while let Some(line) = lines.next().await? {
        if lines.bytes_read() > shown {
            progress.advance(lines.bytes_read() - shown);
            shown = lines.bytes_read();
        }
        if line.number <= skip {
            continue;
        }
        bytes += line.payload.len();
        batch.push(line);
        if batch.len() >= reader::BATCH_ROWS || bytes >= BATCH_BYTES {
            reading.flush(std::mem::take(&mut batch)).await?;
            bytes = 0;
        }
    }
    progress.advance(lines.bytes_read() - shown);
    if !batch.is_empty() {
        reading.flush(batch).await?;
    }
    reading.cp.record(file.path.as_ref(), 1, 0);
    reading.cp_store.save(reading.cp).await?;
    Ok(())
}

/// One file being replayed.
struct Reading<'a, 'u> {
    run: &'a mut Unit<'u>,
    file: &'a SourceFile,
    /// Its full location.
    name: String,
    /// Names the objects its batches are written to, with their first line (see [`stem`]).
    stem: String,
    cp: &'a mut Checkpoint,
    cp_store: &'a checkpoint::Store,
}

impl Reading<'_, '_> {
    /// The lines as events (an overlong one as a dead letter) through the chain into the targets,
    /// then the checkpoint.
    async fn flush(&mut self, batch: Vec<Line>) -> Result<(), ReplayError> {
        let (first, last, n) = (batch[0].number, batch[batch.len() - 1].number, batch.len() as u64);
        let acks = Acks::new();
        let subscription: Arc<str> = Arc::from("replay");
        let mut lines = Handover::with_capacity(batch.len());
        let mut dead = Vec::new();
        for line in batch {
            let id = line_id(&self.name, line.number);
            let message = Message::new(id, self.file.modified, Attributes::new(), line.payload, subscription.clone());
            if line.cut {
                let mib = MAX_LINE >> 20;
                let reason = format!("line longer than {mib} MiB; its first {mib} MiB are kept");
                let event = Event::alone(message, acks.ack());
                dead.push(DeadLetter { event, stage: "replay".into(), reason });
            } else {
                lines.push(message, acks.ack());
            }
        }
        self.run.deliver(acks, (lines, Vec::new()), dead, self.file, &format!("{}-l{first}", self.stem)).await?;
        self.cp.record_lines(self.file.path.as_ref(), last, n);
        self.cp_store.save(self.cp).await?;
        Ok(())
    }
}

/// `<name>:<number>`, without the formatting machinery (once per line).
fn line_id(name: &str, number: u64) -> String {
    let mut digits = [0u8; 20];
    let mut at = digits.len();
    let mut n = number;
    loop {
        at -= 1;
        digits[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    let mut id = String::with_capacity(name.len() + 1 + digits.len() - at);
    id.push_str(name);
    id.push(':');
    id.extend(digits[at..].iter().map(|&d| char::from(d)));
    id
}

#[cfg(test)]
mod tests {
    #[test]
    fn line_ids_are_name_colon_number() {
        for n in [0, 1, 9, 10, 12_345, u64::MAX] {
            assert_eq!(super::line_id("/data/a.ndjson", n), format!("/data/a.ndjson:{n}"));
        }
    }
}
