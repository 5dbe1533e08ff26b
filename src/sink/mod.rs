//! Sinks: where events end up. A pipeline's sinks run as one task that owns a bounded input
//! channel and settles every event's ack once every sink has it durably (or dead letters do).
//!
//! - `build`: a pipeline's writers and dead-letter group from its checked config (`run`, `replay`).
//! - `group`: a pipeline's sinks sharing one batcher and one Arrow encoding per batch.
//! - `batcher`: groups events per partition by rows, bytes and age.
//! - `encode`: records -> Arrow -> Parquet bytes.
//! - `dictionary`: which columns of a batch get a Parquet dictionary (the repeating ones).
//! - `lake`: Parquet objects in the lake (a `store`).
//! - `bigquery`: rows in a BigQuery table through the Storage Write API.
//! - `dead_letter`: refused events as rows of the dead-letter schema.
//!
//! The types every sink shares live here (the hour a row belongs to, the batch every sink
//! receives, what it wrote): `group` and the writers import them, not each other.

pub mod batcher;
pub mod bigquery;
pub mod build;
pub mod dead_letter;
pub mod dictionary;
pub mod encode;
pub mod group;
pub mod lake;

use arrow::record_batch::RecordBatch;
use chrono::{DateTime, Datelike, NaiveDate, Timelike, Utc};
use futures::future::BoxFuture;

use crate::event::Event;
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

    /// The partition of a time in microseconds since the epoch, without a date-time in between
    /// (every row's partition is found this way); `None` beyond the dates chrono holds.
    pub fn of_micros(micros: i64) -> Option<Self> {
        let hours = micros.div_euclid(3_600_000_000);
        // 719,163: days from 0001-01-01 (chrono's day 1) to 1970-01-01.
        let days = i32::try_from(hours.div_euclid(24) + 719_163).ok()?;
        Some(Partition { date: NaiveDate::from_num_days_from_ce_opt(days)?, hour: hours.rem_euclid(24) as u32 })
    }

    /// The partition of the event's `time_field`, or of its publish time when it has none.
    pub fn for_event(schema: &Schema, event: &Event) -> Self {
        if let Some(row) = &event.row {
            return row
                .event_micros()
                .and_then(Partition::of_micros)
                .unwrap_or_else(|| Partition::of(event.publish_time));
        }
        let field = schema.time_field.as_deref();
        let t = field.and_then(|f| event.record.get(f)).and_then(|v| v.as_str()).and_then(parse_timestamp);
        Partition::of(t.unwrap_or(event.publish_time))
    }

    /// `dt=2026-11-26/hour=09`
    pub fn path(&self) -> String {
        format!("dt={:04}-{:02}-{:02}/hour={:02}", self.date.year(), self.date.month(), self.date.day(), self.hour)
    }
}

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
pub type WriteResult = Result<Written, WriteError>;

/// Why a sink wrote nothing of a batch that it knows of.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// The task encoding the batch ended without a result (it panicked).
    #[error("encoding task failed: {0}")]
    Task(#[from] tokio::task::JoinError),
    /// The object store did not take the object, after its retries.
    #[error(transparent)]
    Store(#[from] lake::WriteError),
    /// An append failed after its retries, or may have landed on a stream that was replaced.
    #[error("appending to {table}: {source}")]
    Append { table: String, source: crate::bigquery::stream::AppendFailure },
    /// Which rows the table already holds could not be found out.
    #[error("checking {table} for rows written before: {source}")]
    Lookup { table: String, source: crate::bigquery::rest::RestError },
    /// Taking rows out of a batch failed.
    #[error(transparent)]
    Arrow(#[from] arrow::error::ArrowError),
    /// The batch lacks the column that identifies its rows.
    #[error("{table}: the batch has no {column} column")]
    NoIdColumn { table: String, column: &'static str },
}

/// By message: results are compared in tests and benches, and the sources (object store,
/// transport errors) have no equality of their own.
impl PartialEq for WriteError {
    fn eq(&self, other: &Self) -> bool {
        self.to_string() == other.to_string()
    }
}

/// A destination for encoded batches (the lake, a BigQuery table).
pub trait Writer: Send + Sync {
    fn name(&self) -> &str;
    /// Write the batch, retrying what may pass on a later attempt.
    fn write<'a>(&'a self, batch: &'a Encoded) -> BoxFuture<'a, WriteResult>;
    /// Release what the writer holds (streams) once the group has written its last batch.
    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(async {})
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// From microseconds, the same hour as from the time, on both sides of the epoch and of
    /// each hour, day and year.
    #[test]
    fn partition_of_micros_is_that_of_the_time() {
        let hour = 3_600_000_000i64;
        let mut instants =
            vec![0, -1, 1, hour - 1, hour, -hour, -hour - 1, 951_782_400_000_000, 253_402_300_799_999_999];
        instants.extend((0..2_000).map(|i| i * 7_919 * hour / 3 - 400 * 24 * hour));
        for m in instants {
            let t = DateTime::from_timestamp_micros(m).unwrap();
            assert_eq!(Partition::of_micros(m), Some(Partition::of(t)), "{t}");
        }
        assert_eq!(Partition::of_micros(i64::MAX), None);
    }
}
