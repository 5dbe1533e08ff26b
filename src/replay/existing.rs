//! Idempotent BigQuery writes for replay: a batch's rows whose message id the table already has
//! are left out, the rest go to the wrapped exactly-once writer.
//!
//! The check is the one the service uses for redeliveries ([`WrittenIds`]: parameterised
//! `message_id IN UNNEST(@ids)` queries narrowed to the rows' partitions), asked for every row and
//! without the service's grace wait: it runs before every append, so rows appended just before a
//! crash are found by the next run. Two replays of one range running at the same time could both
//! append a row: a replay is one job at a time.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use futures::future::BoxFuture;

use crate::bigquery::written::{WrittenIds, ID_COLUMN};
use crate::sink::bigquery::BigQueryWriter;
use crate::sink::group::{Encoded, WriteResult, Writer, Written};
use crate::sink::WriteError;

/// Rows appended and rows left out because the table had them; shared with the replay summary.
#[derive(Debug, Default)]
pub struct Counts {
    pub appended: AtomicU64,
    pub present: AtomicU64,
}

pub struct MissingOnly {
    inner: BigQueryWriter,
    written: WrittenIds,
    counts: Arc<Counts>,
}

impl MissingOnly {
    /// `None` unless `inner` writes exactly-once (only then does it carry the id check).
    pub fn new(inner: BigQueryWriter, counts: Arc<Counts>) -> Option<MissingOnly> {
        let written = inner.written.clone()?;
        Some(MissingOnly { inner, written, counts })
    }
}

impl Writer for MissingOnly {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn write<'a>(&'a self, encoded: &'a Encoded) -> BoxFuture<'a, WriteResult> {
        Box::pin(async move {
            let table = &self.inner.table;
            if encoded.batch.column_by_name(ID_COLUMN).is_none() {
                return Err(WriteError::NoIdColumn { table: table.clone(), column: ID_COLUMN });
            }
            let rows: Vec<usize> = (0..encoded.batch.num_rows()).collect();
            let (batch, missing, present) =
                self.inner.without_present(&self.written, &encoded.batch, rows.clone(), &rows).await?;
            self.counts.present.fetch_add(present as u64, Ordering::Relaxed);
            if missing.is_empty() {
                return Ok(Written::All);
            }
            let part = Encoded {
                partition: encoded.partition,
                batch,
                object: None,
                maybe_written: vec![],
                maybe_written_since: None,
            };
            let written = self.inner.write(&part).await?;
            let refused = match &written {
                Written::All => 0,
                Written::Except(rows) => rows.len(),
            };
            self.counts.appended.fetch_add((missing.len() - refused) as u64, Ordering::Relaxed);
            Ok(match written {
                Written::All => Written::All,
                // Indices in the appended part back to the batch's.
                Written::Except(rows) => Written::Except(rows.into_iter().map(|(i, why)| (missing[i], why)).collect()),
            })
        })
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        self.inner.close()
    }
}
