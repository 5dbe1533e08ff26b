//! Idempotent BigQuery writes for replay: a batch's rows whose message id the table already has
//! are left out, the rest go to the wrapped writer (an exactly-once committed stream).
//!
//! The check is one parameterised query per batch (`message_id IN UNNEST(@ids)`, at most
//! [`IDS_PER_QUERY`] ids bound as an array, never spliced into the SQL). It runs before every
//! append, so rows appended just before a crash are found by the next run. Two replays of one
//! range running at the same time could both append a row: a replay is one job at a time.

use std::collections::HashSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow::array::{Array, AsArray, UInt32Array};
use backon::Retryable;
use futures::future::BoxFuture;

use crate::bigquery::rest::{string_array_param, Rest, RestError};
use crate::sink::group::{Encoded, WriteResult, Writer, Written};

/// Ids bound to one query: keeps the request small (BigQuery caps a request at 10 MB).
pub const IDS_PER_QUERY: usize = 10_000;

/// Rows appended and rows left out because the table had them; shared with the replay summary.
#[derive(Debug, Default)]
pub struct Counts {
    pub appended: AtomicU64,
    pub present: AtomicU64,
}

pub struct MissingOnly {
    pub inner: Box<dyn Writer>,
    pub rest: Rest,
    /// `dataset.table`, quoted into the SQL (it comes from the config, not from data).
    pub table: String,
    pub counts: Arc<Counts>,
}

impl MissingOnly {
    /// The ids among `ids` that the table already has.
    async fn present(&self, ids: &[&str]) -> Result<HashSet<String>, RestError> {
        let sql = format!("SELECT message_id FROM `{}` WHERE message_id IN UNNEST(@ids)", self.table);
        let mut found = HashSet::new();
        for chunk in ids.chunks(IDS_PER_QUERY) {
            let rows = (|| self.rest.query_with(&sql, vec![string_array_param("ids", chunk)]))
                .retry(crate::sink::bigquery::default_retry())
                .when(RestError::retryable)
                .await?;
            found.extend(rows.into_iter().filter_map(|r| r.first().and_then(|v| v.as_str()).map(str::to_owned)));
        }
        Ok(found)
    }
}

impl Writer for MissingOnly {
    fn name(&self) -> &str {
        self.inner.name()
    }

    fn write<'a>(&'a self, encoded: &'a Encoded) -> BoxFuture<'a, WriteResult> {
        Box::pin(async move {
            let ids = encoded
                .batch
                .column_by_name("message_id")
                .and_then(|c| c.as_string_opt::<i32>())
                .ok_or_else(|| format!("{}: the batch has no text message_id column", self.table))?;
            let all: Vec<&str> = (0..ids.len()).map(|i| ids.value(i)).collect();
            let present = self.present(&all).await.map_err(|e| format!("checking ids in {}: {e}", self.table))?;
            let missing: Vec<usize> = (0..all.len()).filter(|&i| !present.contains(all[i])).collect();
            self.counts.present.fetch_add((all.len() - missing.len()) as u64, Ordering::Relaxed);
            if missing.is_empty() {
                return Ok(Written::All);
            }
            let take = UInt32Array::from_iter_values(missing.iter().map(|&i| i as u32));
            let batch = arrow::compute::take_record_batch(&encoded.batch, &take).map_err(|e| e.to_string())?;
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
