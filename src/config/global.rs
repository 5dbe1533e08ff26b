//! `config/sluice.yaml`: settings shared by every pipeline of one sluice instance.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;

use serde::Deserialize;

use super::units::{ByteSize, HumanDuration};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalConfig {
    /// Names this instance in object names, so instances writing one lake never collide.
    pub instance: String,
    #[serde(default)]
    pub http: HttpConfig,
    pub lake: LakeConfig,
    #[serde(default)]
    pub limits: Limits,
    /// Pub/Sub streaming pull; absent means pipelines are fed by the push endpoint only.
    pub pubsub: Option<PubsubConfig>,
    /// BigQuery; absent means no pipeline may use a `bigquery` sink.
    pub warehouse: Option<WarehouseConfig>,
    /// Folder of pipeline files, relative to this file.
    #[serde(default = "default_pipelines_dir")]
    pub pipelines_dir: PathBuf,
    /// Folder of schema files, relative to this file.
    #[serde(default = "default_schemas_dir")]
    pub schemas_dir: PathBuf,
}

fn default_pipelines_dir() -> PathBuf {
    "../pipelines".into()
}
fn default_schemas_dir() -> PathBuf {
    "../schemas".into()
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HttpConfig {
    /// Address of the push endpoint, health checks and metrics.
    #[serde(default = "default_listen")]
    pub listen: SocketAddr,
    /// Largest push request body accepted; larger ones get 413.
    #[serde(default = "default_max_body")]
    pub max_body: ByteSize,
    /// How long a push request waits for its event to become durable before answering 503.
    #[serde(default = "default_request_timeout")]
    pub request_timeout: HumanDuration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: default_listen(),
            max_body: default_max_body(),
            request_timeout: default_request_timeout(),
        }
    }
}

fn default_listen() -> SocketAddr {
    "127.0.0.1:8080".parse().expect("valid literal")
}
fn default_max_body() -> ByteSize {
    ByteSize(10 << 20)
}
fn default_request_timeout() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(60))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct LakeConfig {
    /// `gs://bucket/prefix`, `file:///abs/path` or a plain local path.
    pub location: String,
    /// Prefix under `location` for dead letters.
    #[serde(default = "default_dead_letters")]
    pub dead_letters: String,
}

fn default_dead_letters() -> String {
    "dead-letters".into()
}

/// Batch limits: a batch is written when any one is reached.
#[derive(Debug, Clone, Copy, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BatchLimits {
    #[serde(default = "default_max_rows")]
    pub max_rows: NonZeroUsize,
    #[serde(default = "default_max_bytes")]
    pub max_bytes: ByteSize,
    #[serde(default = "default_max_age")]
    pub max_age: HumanDuration,
}

impl Default for BatchLimits {
    fn default() -> Self {
        BatchLimits {
            max_rows: default_max_rows(),
            max_bytes: default_max_bytes(),
            max_age: default_max_age(),
        }
    }
}

fn default_max_rows() -> NonZeroUsize {
    NonZeroUsize::new(50_000).expect("nonzero")
}
fn default_max_bytes() -> ByteSize {
    ByteSize(64 << 20)
}
fn default_max_age() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(10))
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Limits {
    /// Default batch limits for every sink.
    #[serde(default)]
    pub batch: BatchLimits,
    /// Events buffered between a pipeline's stages; a full queue pushes back on the source.
    #[serde(default = "default_queue")]
    pub queue_capacity: NonZeroUsize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            batch: BatchLimits::default(),
            queue_capacity: default_queue(),
        }
    }
}

fn default_queue() -> NonZeroUsize {
    NonZeroUsize::new(4096).expect("nonzero")
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PubsubConfig {
    pub project: String,
    /// Emulator or private endpoint, e.g. `http://127.0.0.1:8085`.
    pub endpoint: Option<String>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WarehouseConfig {
    pub project: String,
    pub dataset: String,
    /// Emulator or private endpoint.
    pub endpoint: Option<String>,
}
