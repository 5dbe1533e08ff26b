//! Sinks: where events end up. A pipeline's sinks run as one task that owns a bounded input
//! channel and settles every event's ack once every sink has it durably (or dead letters do).
//!
//! - `group`: a pipeline's sinks sharing one batcher and one Arrow encoding per batch.
//! - `batcher`: groups events per partition by rows, bytes and age.
//! - `encode`: records -> Arrow -> Parquet bytes.
//! - `lake`: Parquet objects in the lake (a `store`).
//! - `bigquery`: rows in a BigQuery table through the Storage Write API.
//! - `dead_letter`: refused events as rows of the dead-letter schema.

pub mod batcher;
pub mod bigquery;
pub mod dead_letter;
pub mod encode;
pub mod group;
pub mod lake;

/// Events and a schema for the sink modules' unit tests.
#[cfg(test)]
pub(crate) mod testing {
    use std::sync::Arc;

    use chrono::Utc;

    use crate::ack::{Ack, Outcome};
    use crate::event::Event;
    use crate::schema::Schema;

    pub fn config_change_schema() -> Arc<Schema> {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
        Arc::new(Schema::load(&dir, "config_change").unwrap())
    }

    /// A valid config-change row with this message id.
    pub fn config_change(id: &str) -> serde_json::Value {
        serde_json::json!({"timestamp": "2026-11-26T09:15:00Z", "service": "s", "key": "k", "version": 1, "message_id": id})
    }

    /// An event carrying `record`, and what its ack settles to.
    pub fn event(id: &str, record: serde_json::Value) -> (Event, tokio::sync::oneshot::Receiver<Outcome>) {
        let (ack, rx) = Ack::channel();
        let mut e = Event::new(id, Utc::now(), Default::default(), bytes::Bytes::new(), Arc::from("push"), ack);
        e.record = record;
        (e, rx)
    }
}
