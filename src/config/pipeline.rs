//! `pipelines/<name>.yaml`: one pipeline's source, transform chain, schema and sinks.

use serde::Deserialize;

use super::global::WriteMode;
use crate::transform::StageConfig;
use crate::units::{ByteSize, HumanDuration};

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
#[serde(try_from = "RawSink")]
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

/// A sink as written: one struct for every type, so an error deep inside (`batch.max_rows`) keeps
/// its path; serde's tagged enums buffer their content and would report only `sinks[i]`.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSink {
    #[serde(rename = "type")]
    kind: SinkKind,
    name: String,
    prefix: Option<String>,
    table: Option<String>,
    write_mode: Option<WriteMode>,
    #[serde(default)]
    batch: BatchOverride,
}

#[derive(Deserialize)]
#[serde(rename_all = "snake_case")]
enum SinkKind {
    Lake,
    Bigquery,
}

impl TryFrom<RawSink> for SinkConfig {
    type Error = String;

    fn try_from(r: RawSink) -> Result<Self, String> {
        let only = |key: &str, set: bool, kind: &str| match set {
            true => Err(format!("`{key}` is a setting of {kind} sinks, not of this `type`")),
            false => Ok(()),
        };
        match r.kind {
            SinkKind::Lake => {
                only("table", r.table.is_some(), "bigquery")?;
                only("write_mode", r.write_mode.is_some(), "bigquery")?;
                Ok(SinkConfig::Lake(LakeSinkConfig { name: r.name, prefix: r.prefix, batch: r.batch }))
            }
            SinkKind::Bigquery => {
                only("prefix", r.prefix.is_some(), "lake")?;
                let table = r.table.ok_or("missing field `table` (a bigquery sink writes one table)")?;
                Ok(SinkConfig::Bigquery(BigQuerySinkConfig {
                    name: r.name,
                    table,
                    write_mode: r.write_mode,
                    batch: r.batch,
                }))
            }
        }
    }
}

#[derive(Debug, Clone)]
pub struct LakeSinkConfig {
    pub name: String,
    /// Prefix under the lake location; defaults to the pipeline name.
    pub prefix: Option<String>,
    /// Overrides of the global batch limits.
    pub batch: BatchOverride,
}

#[derive(Debug, Clone)]
pub struct BigQuerySinkConfig {
    pub name: String,
    /// Table in the `bigquery.dataset`; its schema and layout come from the pipeline's schema.
    pub table: String,
    /// Overrides `bigquery.write_mode`.
    pub write_mode: Option<WriteMode>,
    /// Overrides of the global batch limits (one append per batch).
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
