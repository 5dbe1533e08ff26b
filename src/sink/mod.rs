//! Sinks: where events end up. A pipeline's sinks run as one task that owns a bounded input
//! channel and settles every event's ack once every sink has it durably (or dead letters do).
//!
//! - `group`: a pipeline's sinks sharing one batcher and one Arrow encoding per batch.
//! - `batcher`: groups events per partition by rows, bytes and age.
//! - `encode`: records -> Arrow -> Parquet bytes.
//! - `dictionary`: which columns of a batch get a Parquet dictionary (the repeating ones).
//! - `lake`: Parquet objects in the lake (a `store`).
//! - `bigquery`: rows in a BigQuery table through the Storage Write API.
//! - `dead_letter`: refused events as rows of the dead-letter schema.

pub mod batcher;
pub mod bigquery;
pub mod dead_letter;
pub mod dictionary;
pub mod encode;
pub mod group;
pub mod lake;
