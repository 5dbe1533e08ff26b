//! Sinks: where events end up. Each sink runs as a task that owns a bounded input channel and
//! settles every event's ack once the event is durable (or hands it to dead letters).
//!
//! - `batcher`: groups events per partition by rows, bytes and age.
//! - `encode`: records -> Arrow -> Parquet bytes.
//! - `lake`: the Parquet lake sink.
//! - `dead_letter`: refused events as rows of the dead-letter schema.

pub mod batcher;
pub mod dead_letter;
pub mod encode;
pub mod lake;
