//! Which rows a table already holds, by message id: the half of exactly-once that spans
//! processes.
//!
//! A committed stream's offsets stop a writer's retried append from landing twice, but a message
//! written and then not acked (sluice killed, or another sink of its batch failed so the batch was
//! nacked) comes back as a redelivery, to this or another instance, and goes to another stream or
//! offset. Before such rows are appended the table is asked which of their ids it already has;
//! those rows are taken out and count as written. The query reads the `message_id` column of the
//! partitions the rows' own event times fall in (a redelivered copy has the same event time as the
//! copy written before), so its cost follows the batch, not the table.

use std::collections::HashSet;

use arrow::array::{Array, StringArray, TimestampMicrosecondArray};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, SecondsFormat};
use google_cloud_bigquery_v2::model::QueryParameter;
use serde_json::Value;

use super::rest::{string_array_param, timestamp_param, Rest, RestError};

/// The column every exactly-once table carries the Pub/Sub message id in.
pub const ID_COLUMN: &str = "message_id";

/// Ids per query: keeps each request far below BigQuery's limits on parameters and response size.
const IDS_PER_QUERY: usize = 5_000;

/// Asks one table which message ids it holds.
#[derive(Clone)]
pub struct WrittenIds {
    rest: Rest,
    /// `` `project.dataset.table` ``, quoted for SQL.
    table: String,
    /// The TIMESTAMP column the table is partitioned on, to read only the partitions the rows fall in.
    partition_column: Option<String>,
}

impl WrittenIds {
    pub fn new(rest: Rest, project: &str, table: &str, partition_column: Option<String>) -> WrittenIds {
        let table = format!("`{project}.{}.{table}`", rest.dataset());
        WrittenIds { rest, table, partition_column }
    }

    /// Those of `rows` (indices into `batch`) whose message id the table already holds.
    pub async fn present(&self, batch: &RecordBatch, rows: &[usize]) -> Result<HashSet<usize>, RestError> {
        let ids = batch.column_by_name(ID_COLUMN).and_then(|c| c.as_any().downcast_ref::<StringArray>());
        let Some(ids) = ids else { return Ok(HashSet::new()) };
        let range = self.partition_column.as_deref().and_then(|c| time_range(batch, c, rows));
        let wanted: Vec<(usize, &str)> =
            rows.iter().filter(|&&i| ids.is_valid(i)).map(|&i| (i, ids.value(i))).collect();
        let mut found = HashSet::new();
        for chunk in wanted.chunks(IDS_PER_QUERY) {
            let names: Vec<&str> = chunk.iter().map(|(_, id)| *id).collect();
            let (sql, params) = self.query(&names, range);
            let held: HashSet<String> = self
                .rest
                .query_with(&sql, params)
                .await?
                .into_iter()
                .filter_map(|row| row.first().and_then(Value::as_str).map(str::to_owned))
                .collect();
            found.extend(chunk.iter().filter(|(_, id)| held.contains(*id)).map(|(i, _)| *i));
        }
        Ok(found)
    }

    /// The query and its parameters for one chunk of ids.
    fn query(&self, ids: &[&str], range: Option<(i64, i64)>) -> (String, Vec<QueryParameter>) {
        let mut params = vec![string_array_param("ids", ids)];
        let mut sql = format!("SELECT DISTINCT {ID_COLUMN} FROM {} WHERE {ID_COLUMN} IN UNNEST(@ids)", self.table);
        if let (Some(column), Some((lo, hi))) = (&self.partition_column, range) {
            sql.push_str(&format!(" AND `{column}` BETWEEN @lo AND @hi"));
            for (name, micros) in [("lo", lo), ("hi", hi)] {
                params.push(timestamp_param(name, &rfc3339(micros)));
            }
        }
        (sql, params)
    }
}

/// Earliest and latest value of a TIMESTAMP column over `rows`; `None` if any of them has none
/// (such a row could sit in any partition, so the query must not be narrowed).
fn time_range(batch: &RecordBatch, column: &str, rows: &[usize]) -> Option<(i64, i64)> {
    let times = batch.column_by_name(column)?.as_any().downcast_ref::<TimestampMicrosecondArray>()?;
    rows.iter().try_fold(None, |acc: Option<(i64, i64)>, &i| {
        let t = times.is_valid(i).then(|| times.value(i))?;
        Some(Some(acc.map_or((t, t), |(lo, hi)| (lo.min(t), hi.max(t)))))
    })?
}

fn rfc3339(micros: i64) -> String {
    DateTime::from_timestamp_micros(micros)
        .map(|t| t.to_rfc3339_opts(SecondsFormat::Micros, true))
        .unwrap_or_else(|| "1970-01-01T00:00:00Z".into())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::sync::Arc;

    fn batch() -> RecordBatch {
        let times = TimestampMicrosecondArray::from(vec![Some(3_000_000), Some(1_000_000), None, Some(2_000_000)])
            .with_timezone("+00:00");
        let ids = StringArray::from(vec![Some("a"), Some("b"), Some("c"), None]);
        let schema = Arc::new(arrow::datatypes::Schema::new(vec![
            arrow::datatypes::Field::new("timestamp", times.data_type().clone(), true),
            arrow::datatypes::Field::new(ID_COLUMN, arrow::datatypes::DataType::Utf8, true),
        ]));
        RecordBatch::try_new(schema, vec![Arc::new(times), Arc::new(ids)]).unwrap()
    }

    #[test]
    fn the_time_range_covers_the_rows_asked_about_and_is_absent_when_one_has_no_time() {
        let b = batch();
        assert_eq!(time_range(&b, "timestamp", &[0, 1, 3]), Some((1_000_000, 3_000_000)));
        assert_eq!(time_range(&b, "timestamp", &[3]), Some((2_000_000, 2_000_000)));
        assert_eq!(time_range(&b, "timestamp", &[0, 2]), None, "a row without a time could be in any partition");
        assert_eq!(time_range(&b, "missing", &[0]), None);
    }

    #[test]
    fn the_query_names_the_ids_and_narrows_to_the_partitions() {
        let config = crate::config::global::BigQueryConfig {
            enabled: true,
            project: "p".into(),
            dataset: "d".into(),
            location: "US".into(),
            endpoint: Some("127.0.0.1:1".into()),
            grpc_endpoint: None,
            write_mode: Default::default(),
        };
        let w = WrittenIds::new(Rest::new(&config).unwrap(), "p", "logs", Some("timestamp".into()));
        let (sql, params) = w.query(&["1", "it's"], Some((0, 86_400_000_000)));
        // As they travel: the API's JSON form of each parameter.
        let params: Vec<Value> = params.iter().map(|p| serde_json::to_value(p).unwrap()).collect();
        assert_eq!(
            sql,
            "SELECT DISTINCT message_id FROM `p.d.logs` WHERE message_id IN UNNEST(@ids) AND `timestamp` BETWEEN @lo AND @hi"
        );
        assert_eq!(params[0]["parameterValue"]["arrayValues"][1]["value"], "it's", "ids travel as parameters");
        assert_eq!(params[1]["parameterValue"]["value"], "1970-01-01T00:00:00.000000Z");
        assert_eq!(params[2]["parameterValue"]["value"], "1970-01-02T00:00:00.000000Z");
        let (sql, params) = w.query(&["1"], None);
        assert!(!sql.contains("BETWEEN"), "{sql}");
        assert_eq!(params.len(), 1);
    }
}
