//! sluice: Pub/Sub events through a chain of transforms into a Parquet lake and BigQuery.
//!
//! ```text
//! source (pubsub pull | HTTP push) ─▶ bounded channel ─▶ transform::Chain ─▶ sink::{lake, dead_letter}
//!         ▲                                                                          │
//!         └──────────────── ack::Ack settles when every sink made it durable ◀────────┘
//! ```
//! `config` loads and checks YAML; `schema` derives Arrow/BigQuery schemas; `topology` wires a
//! pipeline; `server` is the HTTP surface; `shutdown` drains in order.

pub mod ack;
pub mod config;
pub mod event;
pub mod path;
pub mod schema;
pub mod sink;
pub mod transform;
