//! `config/sluice.yaml`: settings shared by every pipeline of one sluice instance.

use std::net::SocketAddr;
use std::num::NonZeroUsize;
use std::path::PathBuf;

use serde::Deserialize;

use crate::units::{ByteSize, HumanDuration};

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GlobalConfig {
    /// Names this instance in object names, so instances writing one lake never collide.
    pub instance: String,
    #[serde(default)]
    pub http: HttpConfig,
    pub lake: LakeConfig,
    /// Who may push; required when a pipeline accepts push (`mode: none` must be chosen explicitly).
    pub push_auth: Option<super::push_auth::PushAuthConfig>,
    #[serde(default)]
    pub limits: Limits,
    /// Pub/Sub streaming pull; absent means pipelines are fed by the push endpoint only.
    pub pubsub: Option<PubsubConfig>,
    /// BigQuery through the Storage Write API; absent or disabled, `bigquery` sinks are skipped.
    pub bigquery: Option<BigQueryConfig>,
    /// Producer liveness, sluice's own liveness checks, the configuration-state view.
    #[serde(default)]
    pub health: super::health::HealthConfig,
    /// The web console (`/`, `/ui/...`): off unless enabled; authenticated off loopback.
    #[serde(default)]
    pub console: super::console::ConsoleConfig,
    /// Where secret references live and how they are fetched.
    #[serde(default)]
    pub secrets: SecretsConfig,
    /// Folder of pipeline files, relative to this file.
    #[serde(default = "default_pipelines_dir")]
    pub pipelines_dir: PathBuf,
    /// Folder of schema files, relative to this file.
    #[serde(default = "default_schemas_dir")]
    pub schemas_dir: PathBuf,
}

impl GlobalConfig {
    /// The Pub/Sub settings, when streaming pull is enabled.
    pub fn pubsub_enabled(&self) -> Option<&PubsubConfig> {
        self.pubsub.as_ref().filter(|p| p.enabled)
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SecretsConfig {
    /// Folder of `{secret: NAME}` reference files (`NAME.yaml`), relative to this file.
    #[serde(default = "default_secrets_dir")]
    pub dir: PathBuf,
    /// Secret Manager endpoint for tests (reached anonymously); empty or absent:
    /// secretmanager.googleapis.com with application default credentials.
    #[serde(default, deserialize_with = "endpoint")]
    pub endpoint: Option<String>,
}

impl Default for SecretsConfig {
    fn default() -> Self {
        SecretsConfig { dir: default_secrets_dir(), endpoint: None }
    }
}

fn default_secrets_dir() -> PathBuf {
    "secrets".into()
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
    /// Push requests held at once per pipeline, from the first byte of their body until their
    /// event settles; more wait briefly, then get 429. A pipeline that is also pulled shares
    /// its subscription's flow control instead.
    #[serde(default = "default_push_outstanding_messages")]
    pub max_outstanding_messages: NonZeroUsize,
    /// What those requests may weigh per pipeline: a body counts as its event would decoded
    /// ([`crate::event::footprint`]) from its first byte, so memory stays bounded whatever the
    /// number of callers.
    #[serde(default = "default_outstanding_bytes")]
    pub max_outstanding_bytes: ByteSize,
    /// A push-only pipeline writes its open batches as soon as every request it holds has its
    /// event in one (the callers wait for that write, so no more can come). While they hold fewer
    /// events than requests were held at once since the last write, it waits up to this long for
    /// the callers just answered to send their next event, so batches under load stay large.
    #[serde(default = "default_push_linger")]
    pub push_linger: HumanDuration,
}

impl Default for HttpConfig {
    fn default() -> Self {
        HttpConfig {
            listen: default_listen(),
            max_body: default_max_body(),
            request_timeout: default_request_timeout(),
            max_outstanding_messages: default_push_outstanding_messages(),
            max_outstanding_bytes: default_outstanding_bytes(),
            push_linger: default_push_linger(),
        }
    }
}

fn default_listen() -> SocketAddr {
    "127.0.0.1:8080".parse().expect("valid literal")
}
/// Pub/Sub's largest message (10 MB) is ~13.4 MB once base64 in a push envelope with attributes:
/// any message Pub/Sub can push is accepted.
fn default_max_body() -> ByteSize {
    ByteSize(14 << 20)
}
/// Cloud Run's largest concurrency per instance.
fn default_push_outstanding_messages() -> NonZeroUsize {
    NonZeroUsize::new(1_000).expect("nonzero")
}
fn default_push_linger() -> HumanDuration {
    HumanDuration(std::time::Duration::from_millis(5))
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
    /// GCS emulator for `gs://` locations, e.g. `http://127.0.0.1:4443` (or `host:port`, as
    /// STORAGE_EMULATOR_HOST is written), reached anonymously. Empty or absent:
    /// storage.googleapis.com with application default credentials.
    #[serde(default, deserialize_with = "endpoint")]
    pub endpoint: Option<String>,
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
    /// Write a batch that received nothing for this long (absent: only age closes it).
    #[serde(default)]
    pub max_idle: Option<HumanDuration>,
}

impl Default for BatchLimits {
    fn default() -> Self {
        BatchLimits {
            max_rows: default_max_rows(),
            max_bytes: default_max_bytes(),
            max_age: default_max_age(),
            max_idle: None,
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
    /// Hand-overs buffered between a pipeline's stages (a push request's message, the messages of
    /// a pulled frame that had room, a chain batch's rows); a full queue pushes back on the source.
    #[serde(default = "default_queue")]
    pub queue_capacity: NonZeroUsize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits { batch: BatchLimits::default(), queue_capacity: default_queue() }
    }
}

fn default_queue() -> NonZeroUsize {
    NonZeroUsize::new(4096).expect("nonzero")
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PubsubConfig {
    /// Pull from the pipelines' subscriptions; off, pipelines are fed by the push endpoint only.
    #[serde(default = "yes")]
    pub enabled: bool,
    pub project: String,
    /// Emulator or private endpoint, e.g. `http://127.0.0.1:8085` (or `127.0.0.1:8085`, as
    /// PUBSUB_EMULATOR_HOST is written). Empty or absent: production, with application default
    /// credentials. Any endpoint given here is reached with anonymous credentials.
    #[serde(default, deserialize_with = "endpoint")]
    pub endpoint: Option<String>,
    /// Streaming-pull streams per subscription: the emulator serves ~2k msg/s per stream.
    #[serde(default = "default_streams")]
    pub streams: NonZeroUsize,
    /// Messages held un-acked per subscription (across its streams): bounds memory whatever the backlog.
    #[serde(default = "default_outstanding_messages")]
    pub max_outstanding_messages: NonZeroUsize,
    /// Memory for un-acked messages per subscription (across its streams): half is the payload
    /// Pub/Sub may send ahead, half what sluice holds, weighed decoded ([`crate::event::footprint`]).
    #[serde(default = "default_outstanding_bytes")]
    pub max_outstanding_bytes: ByteSize,
    /// Ack deadline set on subscriptions by `sluice provision`, and how far sluice extends the
    /// lease of each held message: after a crash Pub/Sub redelivers within this time.
    #[serde(default = "default_ack_deadline")]
    pub ack_deadline: HumanDuration,
    /// Topic that `sluice provision` sets as the subscriptions' dead-letter topic.
    pub dead_letter_topic: Option<String>,
    /// Deliveries before Pub/Sub moves a message to the dead-letter topic (5 to 100).
    #[serde(default = "default_max_delivery_attempts")]
    pub max_delivery_attempts: u32,
}

fn yes() -> bool {
    true
}
fn default_streams() -> NonZeroUsize {
    NonZeroUsize::new(4).expect("nonzero")
}
fn default_outstanding_messages() -> NonZeroUsize {
    NonZeroUsize::new(20_000).expect("nonzero")
}
fn default_outstanding_bytes() -> ByteSize {
    ByteSize(100 << 20)
}
fn default_ack_deadline() -> HumanDuration {
    HumanDuration(std::time::Duration::from_secs(60))
}
fn default_max_delivery_attempts() -> u32 {
    10
}

impl PubsubConfig {
    /// Each half of `max_outstanding_bytes`: one is the payload Pub/Sub may send ahead, the other
    /// what sluice holds, weighed decoded (see [`crate::source::pubsub`]).
    pub fn half_of_bytes(&self) -> usize {
        self.max_outstanding_bytes.0 as usize / 2
    }

    /// `projects/<project>/subscriptions/<name>` unless already a full path.
    pub fn subscription_path(&self, name: &str) -> String {
        full_path(&self.project, "subscriptions", name)
    }

    /// `projects/<project>/topics/<name>` unless already a full path.
    pub fn topic_path(&self, name: &str) -> String {
        full_path(&self.project, "topics", name)
    }
}

fn full_path(project: &str, kind: &str, name: &str) -> String {
    if name.starts_with("projects/") {
        name.to_owned()
    } else {
        format!("projects/{project}/{kind}/{name}")
    }
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct BigQueryConfig {
    /// Write to BigQuery; off, pipelines' `bigquery` sinks are skipped (logged at start).
    #[serde(default = "yes")]
    pub enabled: bool,
    pub project: String,
    pub dataset: String,
    /// Dataset location for `sluice provision` (e.g. `EU`, `us-central1`).
    #[serde(default = "default_bq_location")]
    pub location: String,
    /// REST endpoint of an emulator, e.g. `http://127.0.0.1:9050` (tables, queries). Empty or
    /// absent: bigquery.googleapis.com with application default credentials.
    #[serde(default, deserialize_with = "endpoint")]
    pub endpoint: Option<String>,
    /// gRPC endpoint of an emulator for the Storage Write API, e.g. `http://127.0.0.1:9060`.
    #[serde(default, deserialize_with = "endpoint")]
    pub grpc_endpoint: Option<String>,
    /// How rows are appended, unless a sink says otherwise.
    #[serde(default)]
    pub write_mode: WriteMode,
}

fn default_bq_location() -> String {
    "US".into()
}

/// Storage Write API mode.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum WriteMode {
    /// The table's default stream: at-least-once, a retried append may duplicate rows.
    #[default]
    DefaultStream,
    /// A stream per writer with offsets: a retried append is never written twice.
    ExactlyOnce,
}

/// An endpoint setting as it is read: a URL, or `None` when empty (`${VAR:-}` unset); a bare
/// `host:port`, as `*_EMULATOR_HOST` variables are written, gets `http://`.
fn endpoint<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Option<String>, D::Error> {
    let text = Option::<String>::deserialize(d)?;
    Ok(match text.as_deref().map(str::trim) {
        None | Some("") => None,
        Some(e) if e.contains("://") => Some(e.to_owned()),
        Some(e) => Some(format!("http://{e}")),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::json::from_yaml_str;

    #[test]
    fn endpoints_are_read_as_urls() {
        let b: BigQueryConfig =
            from_yaml_str("project: p\ndataset: d\nendpoint: 127.0.0.1:9050\ngrpc_endpoint: ' '\n").unwrap();
        assert_eq!((b.endpoint.as_deref(), b.grpc_endpoint), (Some("http://127.0.0.1:9050"), None));
        let l: LakeConfig = from_yaml_str("location: gs://b/l\nendpoint: https://storage.example/\n").unwrap();
        assert_eq!(l.endpoint.as_deref(), Some("https://storage.example/"));
        let p: PubsubConfig = from_yaml_str("project: p\n").unwrap();
        assert_eq!(p.endpoint, None);
    }
}
