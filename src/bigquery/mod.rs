//! BigQuery: table management over REST (`rest`), schema agreement between a table and
//! `schemas/` (`table_check`), and the Storage Write API streams the sink appends to (`stream`).

pub mod rest;
pub mod stream;
pub mod table_check;
pub mod written;

use std::sync::Arc;

use google_cloud_bigquery::client::Write;

use crate::config::global::{BigQueryConfig, WriteMode};
use crate::config::{Config, Pipeline};
use crate::metrics::SinkMetrics;
use crate::sink::bigquery::{default_retry, BigQueryWriter};
use crate::topology::StartError;

/// `projects/P/datasets/D/tables/T`, the name the Storage Write API uses.
pub fn table_path(config: &BigQueryConfig, table: &str) -> String {
    format!("projects/{}/datasets/{}/tables/{table}", config.project, config.dataset)
}

/// The BigQuery side of a running sluice: one REST client and one Storage Write client.
pub struct Warehouse {
    config: BigQueryConfig,
    rest: rest::Rest,
    write: Arc<Write>,
}

impl Warehouse {
    /// `None` when the config has no enabled `bigquery` section.
    pub async fn connect(config: &Config) -> Result<Option<Warehouse>, StartError> {
        let Some(bq) = config.global.bigquery.as_ref().filter(|b| b.enabled) else { return Ok(None) };
        let rest = rest::Rest::new(bq).map_err(|e| StartError::BigQuery(e.to_string()))?;
        let write = stream::client(bq).await.map_err(|e| StartError::BigQuery(e.to_string()))?;
        Ok(Some(Warehouse { config: bq.clone(), rest, write }))
    }

    /// A writer for one pipeline's table, after checking the table takes the schema's rows.
    pub async fn writer(
        &self,
        p: &Pipeline,
        sink: &str,
        table: &str,
        mode: WriteMode,
        metrics: SinkMetrics,
    ) -> Result<BigQueryWriter, StartError> {
        let shown = format!("{}.{table}", self.config.dataset);
        let mismatch = |problems: Vec<String>| StartError::TableMismatch {
            file: p.file.display().to_string(),
            sink: sink.into(),
            table: shown.clone(),
            problems,
        };
        let columns = self.rest.table_columns(table).await.map_err(|e| StartError::BigQuery(e.to_string()))?;
        let Some(columns) = columns else {
            return Err(mismatch(vec![format!("table {shown} does not exist; create it with `sluice provision`")]));
        };
        let problems = table_check::mismatches(&shown, &columns, &p.schema);
        if !problems.is_empty() {
            return Err(mismatch(problems));
        }
        let written = match mode {
            WriteMode::DefaultStream => None,
            WriteMode::ExactlyOnce => {
                if !p.schema.fields.iter().any(|f| f.name == written::ID_COLUMN) {
                    return Err(mismatch(vec![format!(
                        "write_mode exactly_once needs a '{}' column (the Pub/Sub message id, set by a `metadata` stage) to recognise redelivered rows; schema '{}' has none",
                        written::ID_COLUMN,
                        p.schema.name
                    )]));
                }
                Some(written::WrittenIds::new(
                    self.rest.clone(),
                    &self.config.project,
                    table,
                    p.schema.table.partition_by.clone(),
                ))
            }
        };
        let appender =
            stream::Appender::open(self.write.clone(), table_path(&self.config, table), &p.schema.arrow_schema(), mode)
                .await
                .map_err(|e| StartError::BigQuery(e.to_string()))?;
        Ok(BigQueryWriter {
            name: sink.into(),
            pipeline: p.name.clone(),
            table: shown,
            appender,
            retry: default_retry(),
            metrics,
            written,
        })
    }
}
