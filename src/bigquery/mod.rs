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

/// Why the BigQuery side could not start, or a table cannot take a pipeline's rows.
#[derive(Debug, thiserror::Error)]
pub enum WarehouseError {
    #[error("bigquery: {0}")]
    Rest(#[from] rest::RestError),
    #[error("bigquery: {0}")]
    Open(#[from] stream::OpenError),
    #[error("{file}: sinks.{sink}: table {table} does not take the schema's rows:\n  {}", problems.join("\n  "))]
    TableMismatch { file: String, sink: String, table: String, problems: Vec<String> },
}

/// A table checked against a pipeline's schema, with what a sink appends to it through.
pub struct OpenTable {
    /// `dataset.table`, for logs.
    pub shown: String,
    pub appender: stream::Appender,
    /// Exactly-once: which redelivered rows the table already holds; `None` on the default stream.
    pub written: Option<written::WrittenIds>,
}

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
    pub async fn connect(config: &Config) -> Result<Option<Warehouse>, WarehouseError> {
        let Some(bq) = config.global.bigquery.as_ref().filter(|b| b.enabled) else { return Ok(None) };
        let rest = rest::Rest::new(bq)?;
        let write = stream::client(bq).await?;
        Ok(Some(Warehouse { config: bq.clone(), rest, write }))
    }

    /// One pipeline's table for sink `sink`, after checking the table takes the schema's rows.
    pub async fn open_table(
        &self,
        p: &Pipeline,
        sink: &str,
        table: &str,
        mode: WriteMode,
    ) -> Result<OpenTable, WarehouseError> {
        let shown = format!("{}.{table}", self.config.dataset);
        let mismatch = |problems: Vec<String>| WarehouseError::TableMismatch {
            file: p.file.display().to_string(),
            sink: sink.into(),
            table: shown.clone(),
            problems,
        };
        let columns = self.rest.table_columns(table).await?;
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
                .await?;
        Ok(OpenTable { shown, appender, written })
    }
}
