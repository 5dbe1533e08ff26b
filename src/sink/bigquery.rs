//! The BigQuery sink: each batch -> Arrow IPC appends on a Storage Write stream.
//!
//! Requests stay under the API's 10 MB cap by splitting large batches. Transient failures are
//! retried with backoff; rows BigQuery refuses go to dead letters with BigQuery's reason while the
//! rest of the batch is written: refused rows named by BigQuery are taken out and the remainder
//! appended again; a request refused as a whole is split in halves until the refused row is alone.

use std::time::Duration;

use arrow::array::UInt32Array;
use arrow::record_batch::RecordBatch;
use backon::{ExponentialBuilder, Retryable};
use futures::future::BoxFuture;

use super::{Encoded, WriteError, WriteResult, Writer, Written};
use crate::bigquery::stream::{AppendFailure, Appender};
use crate::bigquery::written::WrittenIds;
use crate::bigquery::OpenTable;
use crate::telemetry::metrics::SinkMetrics;

/// How long after a possible redelivery arrived its rows are checked against the table: the
/// previous holder may have died with an append of them in flight, which lands meanwhile.
pub const REDELIVERY_GRACE: Duration = Duration::from_secs(15);

/// Arrow bytes per append; the API refuses requests over 10 MB.
const MAX_REQUEST_BYTES: usize = 8 << 20;

pub struct BigQueryWriter {
    pub name: String,
    pub pipeline: String,
    /// `dataset.table`, for logs.
    pub table: String,
    pub appender: Appender,
    pub retry: ExponentialBuilder,
    /// Rows written, flush times and failures; readiness and liveness read it.
    pub metrics: SinkMetrics,
    /// Exactly-once: asks the table which rows that may have been written before it holds, so
    /// a redelivery is not appended twice. `None` on the default stream (at-least-once).
    pub written: Option<WrittenIds>,
}

impl BigQueryWriter {
    /// The sink `name` of `pipeline`, appending to a table the warehouse checked and opened.
    pub fn new(table: OpenTable, name: &str, pipeline: &str, metrics: SinkMetrics) -> BigQueryWriter {
        let OpenTable { shown, appender, written } = table;
        BigQueryWriter {
            name: name.into(),
            pipeline: pipeline.into(),
            table: shown,
            appender,
            retry: default_retry(),
            metrics,
            written,
        }
    }
}

/// The retry policy for appends: at most 25 s of backoff in all, then the batch is given back.
/// A bound on the total, not on the count: with jitter, a count of retries sleeps anywhere in a
/// wide range, and whether an outage of half a minute ends in a nack must not be left to chance.
pub fn default_retry() -> ExponentialBuilder {
    ExponentialBuilder::default()
        .with_min_delay(Duration::from_millis(200))
        .with_max_delay(Duration::from_secs(5))
        .with_max_times(16)
        .with_total_delay(Some(RETRY_BUDGET))
        .with_jitter()
}

/// How long appends are retried, at most, before the batch is nacked.
pub const RETRY_BUDGET: Duration = Duration::from_secs(25);

impl Writer for BigQueryWriter {
    fn name(&self) -> &str {
        &self.name
    }

    fn write<'a>(&'a self, encoded: &'a Encoded) -> BoxFuture<'a, WriteResult> {
        Box::pin(async move {
            let started = std::time::Instant::now();
            let rows = encoded.batch.num_rows();
            let mut refused = Vec::new();
            let mut present = 0;
            // Redeliveries the table already holds count as written, and are not appended again.
            let (batch, index) = match &self.written {
                Some(w) if !encoded.maybe_written.is_empty() => {
                    if let Some(since) = encoded.maybe_written_since {
                        tokio::time::sleep_until((since + REDELIVERY_GRACE).into()).await;
                    }
                    let (rest, index, n) =
                        self.without_present(w, &encoded.batch, (0..rows).collect(), &encoded.maybe_written).await?;
                    present += n;
                    (rest, index)
                }
                _ => (encoded.batch.clone(), (0..rows).collect()),
            };
            // Work list of (rows to append, their indices in the original batch).
            let mut work: Vec<(RecordBatch, Vec<usize>)> =
                split(&batch).into_iter().map(|(b, i)| (b, i.into_iter().map(|k| index[k]).collect())).collect();
            while let Some((batch, index)) = work.pop() {
                match self.append(&batch).await {
                    Ok(()) => {}
                    Err(AppendFailure::Rows(bad)) => {
                        let bad_set: std::collections::HashSet<usize> = bad.iter().map(|(i, _)| *i).collect();
                        for (i, reason) in bad {
                            if let Some(&orig) = index.get(i) {
                                refused.push((orig, format!("BigQuery refused the row: {reason}")));
                            }
                        }
                        let keep: Vec<usize> = (0..batch.num_rows()).filter(|i| !bad_set.contains(i)).collect();
                        if !keep.is_empty() && keep.len() < batch.num_rows() {
                            let take = UInt32Array::from_iter_values(keep.iter().map(|&i| i as u32));
                            let rest = arrow::compute::take_record_batch(&batch, &take)?;
                            work.push((rest, keep.iter().map(|&i| index[i]).collect()));
                        }
                    }
                    Err(AppendFailure::Invalid(reason)) if batch.num_rows() == 1 => {
                        refused.push((index[0], format!("BigQuery refused the row: {reason}")));
                    }
                    Err(AppendFailure::Invalid(reason)) => {
                        tracing::warn!(sink = %self.name, table = %self.table, rows = batch.num_rows(), %reason,
                            "append refused; splitting it to find the refused rows");
                        let half = batch.num_rows() / 2;
                        work.push((batch.slice(half, batch.num_rows() - half), index[half..].to_vec()));
                        work.push((batch.slice(0, half), index[..half].to_vec()));
                    }
                    Err(AppendFailure::Uncertain) => {
                        let Some(w) = &self.written else {
                            return Err(WriteError::Append {
                                table: self.table.clone(),
                                source: AppendFailure::Uncertain,
                            });
                        };
                        let every: Vec<usize> = (0..batch.num_rows()).collect();
                        let (rest, index, n) = self.without_present(w, &batch, index, &every).await?;
                        present += n;
                        if rest.num_rows() > 0 {
                            work.push((rest, index));
                        }
                    }
                    Err(failure @ AppendFailure::Transient(_)) => {
                        // The last attempt may land yet: the next batch must not take its offset.
                        self.appender.abandon().await;
                        return Err(WriteError::Append { table: self.table.clone(), source: failure });
                    }
                }
            }
            if !refused.is_empty() {
                self.metrics.failed("refused", &refused[0].1);
            }
            self.metrics.flushed(rows - refused.len(), started.elapsed());
            tracing::info!(sink = %self.name, pipeline = %self.pipeline, table = %self.table, rows = rows - refused.len(),
                refused = refused.len(), already_written = present, millis = started.elapsed().as_millis() as u64,
                "appended batch");
            Ok(if refused.is_empty() { Written::All } else { Written::Except(refused) })
        })
    }

    fn close(&self) -> BoxFuture<'_, ()> {
        Box::pin(self.appender.close())
    }
}

impl BigQueryWriter {
    /// `batch` without those of the rows `check` the table already holds; `index` maps rows to
    /// the original batch and is narrowed alike. Also returns how many rows were taken out.
    /// Replay's idempotent writes ([`crate::replay::existing`]) use it for every row.
    pub(crate) async fn without_present(
        &self,
        written: &WrittenIds,
        batch: &RecordBatch,
        index: Vec<usize>,
        check: &[usize],
    ) -> Result<(RecordBatch, Vec<usize>, usize), WriteError> {
        let present = (|| written.present(batch, check))
            .retry(self.retry)
            .when(|e| e.retryable())
            .notify(|e, wait| {
                tracing::warn!(sink = %self.name, table = %self.table, error = %e,
                    retry_in_ms = wait.as_millis() as u64, "checking for rows written before failed; retrying")
            })
            .await
            .map_err(|source| WriteError::Lookup { table: self.table.clone(), source })?;
        if present.is_empty() {
            return Ok((batch.clone(), index, 0));
        }
        tracing::info!(sink = %self.name, table = %self.table, rows = present.len(),
            "redelivered rows already in the table; not appended again");
        let keep: Vec<usize> = (0..batch.num_rows()).filter(|i| !present.contains(i)).collect();
        let take = UInt32Array::from_iter_values(keep.iter().map(|&i| i as u32));
        let rest = arrow::compute::take_record_batch(batch, &take)?;
        Ok((rest, keep.iter().map(|&i| index[i]).collect(), present.len()))
    }

    /// One append, retried while the failure is transient.
    async fn append(&self, batch: &RecordBatch) -> Result<(), AppendFailure> {
        (|| self.appender.append(batch))
            .retry(self.retry)
            .when(|e| matches!(e, AppendFailure::Transient(_)))
            .notify(|e, wait| {
                tracing::warn!(sink = %self.name, table = %self.table, error = %e,
                    retry_in_ms = wait.as_millis() as u64, "append failed; retrying")
            })
            .await
    }
}

/// Slices of at most MAX_REQUEST_BYTES (by Arrow memory size), with their row indices.
fn split(batch: &RecordBatch) -> Vec<(RecordBatch, Vec<usize>)> {
    let rows = batch.num_rows();
    let bytes = batch.get_array_memory_size().max(1);
    let per = (rows * MAX_REQUEST_BYTES / bytes).clamp(1, rows.max(1));
    let mut out: Vec<(RecordBatch, Vec<usize>)> = (0..rows)
        .step_by(per)
        .map(|start| (batch.slice(start, per.min(rows - start)), (start..(start + per).min(rows)).collect()))
        .collect();
    out.reverse(); // worked from the back of the list: first slice first
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::StringArray;
    use std::sync::Arc;

    #[test]
    fn appends_are_retried_for_15_to_25_s_of_backoff_whatever_the_jitter() {
        use backon::BackoffBuilder;
        for _ in 0..1_000 {
            let slept: Duration = default_retry().build().sum();
            assert!(slept <= RETRY_BUDGET, "slept {slept:?}");
            // The next delay is at most 10 s (5 s plus its jitter), so stopping short of 25 s
            // still leaves at least 15 s: a blip of a few seconds is ridden out.
            assert!(slept >= Duration::from_secs(15), "slept {slept:?}");
        }
    }

    #[test]
    fn splits_large_batches_under_the_request_cap_keeping_every_row_once() {
        let big = "x".repeat(1 << 20);
        let col = StringArray::from_iter_values((0..20).map(|_| big.as_str()));
        let schema = Arc::new(arrow::datatypes::Schema::new(vec![arrow::datatypes::Field::new(
            "s",
            arrow::datatypes::DataType::Utf8,
            false,
        )]));
        let batch = RecordBatch::try_new(schema, vec![Arc::new(col)]).unwrap();
        let parts = split(&batch);
        assert!(parts.len() >= 3, "{} parts", parts.len());
        let mut all: Vec<usize> = parts.iter().rev().flat_map(|(_, i)| i.clone()).collect();
        assert_eq!(all, (0..20).collect::<Vec<_>>());
        for (b, i) in &parts {
            assert_eq!(b.num_rows(), i.len());
            // What goes on the wire is the IPC message of the slice, not the shared buffers.
            let wire = crate::bigquery::stream::batch_message(b).unwrap().len();
            assert!(wire <= MAX_REQUEST_BYTES + (1 << 20) + 4096, "{wire} bytes");
        }
        all.dedup();
        assert_eq!(all.len(), 20);
    }
}
