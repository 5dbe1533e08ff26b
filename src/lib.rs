//! sluice: Pub/Sub events through a chain of transforms into a Parquet lake and BigQuery.
//!
//! ```text
//! source::push (HTTP) ─▶ topology: bounded input ─▶ transform::Chain ─▶ sink::lake ─▶ object store
//!        ▲                                                 └──────▶ sink::dead_letter
//!        └──── ack::Ack settles once every sink has made the event durable ◀────┘
//! ```
//! `config` loads and checks YAML; `schema` derives Arrow and BigQuery schemas from `schemas/`;
//! `store` opens the lake location (a local folder, or a GCS bucket over the JSON API);
//! `app` runs it all and shuts down in order; `server` is the HTTP surface; `publish` and
//! `sample` feed it.

pub mod alloc;
pub mod app;
pub mod bigquery;
pub mod compact;
pub mod config;
pub mod console;
pub mod event;
mod gcp;
pub mod health;
pub mod interpolate;
pub mod json;
mod lake_tail;
mod locks;
mod path;
pub mod provision;
pub mod publish;
pub mod replay;
mod rfc3339;
pub mod schema;
mod secret;
pub mod server;
pub mod shutdown;
pub mod sink;
pub mod source;
pub mod store;
pub mod telemetry;
pub mod topology;
pub mod transform;
pub mod units;
