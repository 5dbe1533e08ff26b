//! `pipelines/<name>.yaml`: one pipeline's source, transform chain, schema and sinks.

use serde::Deserialize;

use super::global::WriteMode;
use super::units::{ByteSize, HumanDuration};
use crate::transform::StageConfig;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PipelineFile {
    /// Must equal the file name without `.yaml`; names the push route and lake prefix.
    pub name: String,
    #[serde(default)]
    pub description: String,
    pub source: SourceConfig,
    /// A schema name from the schemas folder.
    pub schema: String,
    #[serde(default)]
    pub transforms: Vec<StageConfig>,
    pub sinks: Vec<SinkConfig>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SourceConfig {
    /// Accept `POST /push/<pipeline>` (Cloud Run push subscriptions, `sluice publish`).
    #[serde(default)]
    pub push: bool,
    /// Pub/Sub subscription to stream-pull from, when the `pubsub` section is enabled.
    pub subscription: Option<String>,
    /// The topic the subscription reads, for `sluice provision` and `sluice publish --topic`.
    pub topic: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum SinkConfig {
    /// Parquet files in the lake.
    Lake(LakeSinkConfig),
    /// Rows in a BigQuery table, through the Storage Write API.
    Bigquery(BigQuerySinkConfig),
}

impl SinkConfig {
    pub fn name(&self) -> &str {
        match self {
            SinkConfig::Lake(c) => &c.name,
            SinkConfig::Bigquery(c) => &c.name,
        }
    }

    pub fn batch(&self) -> &BatchOverride {
        match self {
            SinkConfig::Lake(c) => &c.batch,
            SinkConfig::Bigquery(c) => &c.batch,
        }
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LakeSinkConfig {
    pub name: String,
    /// Prefix under the lake location; defaults to the pipeline name.
    pub prefix: Option<String>,
    /// Overrides of the global batch limits.
    #[serde(default)]
    pub batch: BatchOverride,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BigQuerySinkConfig {
    pub name: String,
    /// Table in the `bigquery.dataset`; its schema and layout come from the pipeline's schema.
    pub table: String,
    /// Overrides `bigquery.write_mode`.
    pub write_mode: Option<WriteMode>,
    /// Overrides of the global batch limits (one append per batch).
    #[serde(default)]
    pub batch: BatchOverride,
}

#[derive(Debug, Clone, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchOverride {
    pub max_rows: Option<usize>,
    pub max_bytes: Option<ByteSize>,
    pub max_age: Option<HumanDuration>,
    pub max_idle: Option<HumanDuration>,
}
