//! A pipeline's sinks built from its checked config: the one way `sluice run` and `sluice replay`
//! build writers and the dead-letter group (Vector's `sink.build(cx)`). What differs between them
//! is the context (where lake sinks write, the name objects start with, the append mode), never
//! the construction; each writer keeps its own options.

use std::sync::Arc;

use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;

use super::batcher::Limits;
use super::bigquery::BigQueryWriter;
use super::dead_letter;
use super::group::{SinkGroup, Writer};
use super::lake::LakeWriter;
use crate::bigquery::{Warehouse, WarehouseError};
use crate::config::global::WriteMode;
use crate::config::{Config, Pipeline, Sink};
use crate::store::join;
use crate::telemetry::metrics::Metrics;

/// What a pipeline's sinks are built with.
pub struct SinkContext<'a> {
    pub config: &'a Config,
    pub pipeline: &'a Pipeline,
    /// The lake's store and the prefix lake sinks and dead letters write under (the lake's base,
    /// or a replay's `--output`).
    pub lake: (&'a Arc<dyn ObjectStore>, &'a ObjectPath),
    /// The first part of every object name: the instance, or `replay`.
    pub instance: &'a str,
    pub metrics: &'a Metrics,
    /// `None` while BigQuery is disabled: BigQuery sinks are then skipped.
    pub warehouse: Option<&'a Warehouse>,
    /// The append mode of every BigQuery sink in place of its own (replay: exactly-once).
    pub write_mode: Option<WriteMode>,
}

/// A built sink, by kind (replay wraps BigQuery writers; `run` boxes them all alike).
pub enum Built {
    Lake(Box<LakeWriter>),
    BigQuery(Box<BigQueryWriter>),
}

impl Built {
    pub fn boxed(self) -> Box<dyn Writer> {
        match self {
            Built::Lake(w) => w,
            Built::BigQuery(w) => w,
        }
    }
}

impl SinkContext<'_> {
    /// The writer of `sink`; `None` for a BigQuery sink while BigQuery is disabled.
    pub async fn build(&self, sink: &Sink) -> Result<Option<Built>, WarehouseError> {
        let p = self.pipeline;
        Ok(match sink {
            Sink::Lake { name, prefix, .. } => {
                let (store, base) = self.lake;
                let writer = LakeWriter::new(name, &p.name, (store, join(base, prefix)), self.instance, self.metrics);
                Some(Built::Lake(Box::new(writer)))
            }
            Sink::BigQuery { name, table, mode, .. } => match self.warehouse {
                Some(w) => {
                    let opened = w.open_table(p, name, table, self.write_mode.unwrap_or(*mode)).await?;
                    Some(Built::BigQuery(Box::new(BigQueryWriter::new(
                        opened,
                        name,
                        &p.name,
                        self.metrics.sink(&p.name, name),
                    ))))
                }
                None => None,
            },
        })
    }

    /// The group that writes the pipeline's dead letters to the lake, under
    /// `<base>/<dead_letters>/<pipeline>/`. Without linger: dead letters are few, and a push
    /// caller may be waiting for one.
    pub fn dead_letter_group(&self, limits: Limits) -> SinkGroup {
        let pipeline = &self.pipeline.name;
        let (store, base) = self.lake;
        let prefix = join(base, &format!("{}/{pipeline}", self.config.global.lake.dead_letters));
        let writer = LakeWriter::new("dead_letters", pipeline, (store, prefix), self.instance, self.metrics);
        SinkGroup::new(pipeline, dead_letter::schema(), vec![Box::new(writer)], limits)
    }
}
