//! Counters, gauges and histograms of one running sluice, served at `/metrics` (OpenMetrics text).
//!
//! Sources and sinks get small handles ([`SourceMetrics`], [`SinkMetrics`]) once, at start, and
//! touch only atomics per event. The handles also carry the state that sluice's own liveness and
//! readiness are judged from (last message, consecutive sink failures), so one call both counts
//! and reports, and `/status` reads the same numbers as `/metrics`.

use std::sync::atomic::{AtomicBool, AtomicI64, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{exponential_buckets, Histogram};
use prometheus_client::registry::Registry;
use tokio::sync::Notify;

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct PipelineLabel {
    pipeline: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SourceLabels {
    pipeline: String,
    /// `pubsub`, `push` or `liveness` (events sluice emits itself).
    source: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SubscriptionLabels {
    pipeline: String,
    subscription: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SinkLabels {
    pipeline: String,
    sink: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct SinkErrorLabels {
    pipeline: String,
    sink: String,
    kind: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
struct RefusalLabels {
    pipeline: String,
    /// The HTTP status answered, e.g. `429`.
    status: String,
}

#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub(crate) struct StateLabel {
    pub state: String,
}

type HistogramFamily<L> = Family<L, Histogram, fn() -> Histogram>;

fn rows_histogram() -> Histogram {
    Histogram::new(exponential_buckets(1.0, 4.0, 10))
}
fn seconds_histogram() -> Histogram {
    Histogram::new(exponential_buckets(0.005, 2.0, 14))
}

/// Wall-clock milliseconds since the epoch; 0 means never.
fn now_ms() -> i64 {
    chrono::Utc::now().timestamp_millis()
}

/// Every metric of one sluice process, and the per-source and per-sink state behind liveness.
pub struct Metrics {
    registry: Registry,
    events_in: Family<SourceLabels, Counter>,
    events_out: Family<SinkLabels, Counter>,
    dead_lettered: Family<PipelineLabel, Counter>,
    acks: Family<SourceLabels, Counter>,
    nacks: Family<SourceLabels, Counter>,
    lag: Family<PipelineLabel, Gauge<f64, AtomicU64>>,
    batch_rows: HistogramFamily<SinkLabels>,
    flush_seconds: HistogramFamily<SinkLabels>,
    last_flush: Family<SinkLabels, Gauge<f64, AtomicU64>>,
    sink_errors: Family<SinkErrorLabels, Counter>,
    outstanding_messages: Family<SubscriptionLabels, Gauge>,
    outstanding_bytes: Family<SubscriptionLabels, Gauge>,
    stream_restarts: Family<SubscriptionLabels, Counter>,
    push_refusals: Family<RefusalLabels, Counter>,
    pub(crate) producers: Family<StateLabel, Gauge>,
    pub(crate) config_keys: Gauge,
    ready: Gauge,
    healthy: Gauge,
    purge_delay: Gauge<f64, AtomicU64>,
    sinks: Mutex<Vec<SinkMetrics>>,
    sources: Mutex<Vec<SourceMetrics>>,
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    pub fn new() -> Metrics {
        let mut registry = Registry::with_prefix("sluice");
        let m = Metrics {
            events_in: Family::default(),
            events_out: Family::default(),
            dead_lettered: Family::default(),
            acks: Family::default(),
            nacks: Family::default(),
            lag: Family::default(),
            batch_rows: Family::new_with_constructor(rows_histogram),
            flush_seconds: Family::new_with_constructor(seconds_histogram),
            last_flush: Family::default(),
            sink_errors: Family::default(),
            outstanding_messages: Family::default(),
            outstanding_bytes: Family::default(),
            stream_restarts: Family::default(),
            push_refusals: Family::default(),
            producers: Family::default(),
            config_keys: Gauge::default(),
            ready: Gauge::default(),
            healthy: Gauge::default(),
            purge_delay: Gauge::default(),
            sinks: Mutex::new(Vec::new()),
            sources: Mutex::new(Vec::new()),
            registry: Registry::default(),
        };
        registry.register("events_in", "Events taken in, by pipeline and source", m.events_in.clone());
        registry.register("events_out", "Events written by a sink", m.events_out.clone());
        registry.register("events_dead_lettered", "Events sent to dead letters", m.dead_lettered.clone());
        registry.register("acks", "Messages acknowledged (push: answered 200)", m.acks.clone());
        registry.register("nacks", "Messages refused for redelivery (push: answered 503)", m.nacks.clone());
        registry.register("lag_seconds", "Publish-to-receive age of the last event taken in", m.lag.clone());
        registry.register("batch_rows", "Rows per batch written", m.batch_rows.clone());
        registry.register("flush_duration_seconds", "Time to encode and write one batch", m.flush_seconds.clone());
        registry.register("last_flush_timestamp_seconds", "When a sink last wrote a batch", m.last_flush.clone());
        registry.register("sink_errors", "Sink failures, by kind", m.sink_errors.clone());
        registry.register(
            "outstanding_messages",
            "Messages pulled (or pushed, subscription=\"push\") and not yet acked or nacked",
            m.outstanding_messages.clone(),
        );
        registry.register(
            "outstanding_bytes",
            "Payload bytes pulled (or pushed, subscription=\"push\") and not yet acked or nacked",
            m.outstanding_bytes.clone(),
        );
        registry.register(
            "stream_restarts",
            "Streaming pulls restarted because they stalled",
            m.stream_restarts.clone(),
        );
        registry.register(
            "push_refusals",
            "Push requests answered with an error, by HTTP status (pipeline \"unknown\" for a path no pipeline has)",
            m.push_refusals.clone(),
        );
        registry.register("producers", "Producers by liveness state", m.producers.clone());
        registry.register("config_keys", "Keys in the current configuration state", m.config_keys.clone());
        registry.register("ready", "1 when sources are connected and sinks writable", m.ready.clone());
        registry.register("healthy", "1 unless a stream stalled or a sink keeps failing", m.healthy.clone());
        registry.register(
            "memory_purge_delay_seconds",
            "How long freed memory is kept before it goes back to the OS (0: at once, near the memory bound)",
            m.purge_delay.clone(),
        );
        Metrics { registry, ..m }
    }

    /// The OpenMetrics text exposition of every metric.
    pub fn encode(&self) -> String {
        self.purge_delay.set(crate::alloc::purge_delay() as f64 / 1e3);
        let mut out = String::new();
        prometheus_client::encoding::text::encode(&mut out, &self.registry).expect("writing to a String");
        out
    }

    /// Counters for one pipeline fed by one kind of source (`push`, `liveness`).
    pub fn input(&self, pipeline: &str, source: &str) -> InputMetrics {
        let labels = SourceLabels { pipeline: pipeline.into(), source: source.into() };
        InputMetrics {
            events_in: self.events_in.get_or_create_owned(&labels),
            acks: self.acks.get_or_create_owned(&labels),
            nacks: self.nacks.get_or_create_owned(&labels),
            lag: self.lag.get_or_create_owned(&PipelineLabel { pipeline: pipeline.into() }),
        }
    }

    /// Handle for one subscription's pulling streams; registered for liveness checks.
    pub fn subscription(&self, pipeline: &str, subscription: &str) -> SourceMetrics {
        let labels = SubscriptionLabels { pipeline: pipeline.into(), subscription: subscription.into() };
        let s = SourceMetrics {
            pipeline: pipeline.into(),
            subscription: subscription.into(),
            input: self.input(pipeline, "pubsub"),
            outstanding_messages: self.outstanding_messages.get_or_create_owned(&labels),
            outstanding_bytes: self.outstanding_bytes.get_or_create_owned(&labels),
            restarts: self.stream_restarts.get_or_create_owned(&labels),
            state: Arc::new(SourceState::default()),
        };
        crate::locks::lock(&self.sources).push(s.clone());
        s
    }

    /// A push request answered `status`, an error. `pipeline` must be a known pipeline's name (or
    /// `unknown`): paths come from callers, and each name would be a series of its own.
    pub fn push_refused(&self, pipeline: &str, status: u16) {
        let labels = RefusalLabels { pipeline: pipeline.into(), status: status.to_string() };
        self.push_refusals.get_or_create(&labels).inc();
    }

    /// One push request's event counted as outstanding until the returned guard is dropped (when
    /// the event settles), beside the subscriptions' under `subscription="push"`: one alert on
    /// the outstanding gauges covers both flow controls.
    pub fn push_outstanding(&self, pipeline: &str, bytes: usize) -> Outstanding {
        let labels = SubscriptionLabels { pipeline: pipeline.into(), subscription: "push".into() };
        Outstanding::count(
            &self.outstanding_messages.get_or_create(&labels),
            &self.outstanding_bytes.get_or_create(&labels),
            bytes,
        )
    }

    /// Handle for one sink; registered for readiness and liveness checks.
    pub fn sink(&self, pipeline: &str, sink: &str) -> SinkMetrics {
        let labels = SinkLabels { pipeline: pipeline.into(), sink: sink.into() };
        let s = SinkMetrics {
            pipeline: pipeline.into(),
            sink: sink.into(),
            events_out: self.events_out.get_or_create_owned(&labels),
            batch_rows: self.batch_rows.get_or_create_owned(&labels),
            flush_seconds: self.flush_seconds.get_or_create_owned(&labels),
            last_flush: self.last_flush.get_or_create_owned(&labels),
            errors: self.sink_errors.clone(),
            state: Arc::new(SinkState::default()),
        };
        crate::locks::lock(&self.sinks).push(s.clone());
        s
    }

    /// Counter of events a pipeline sent to dead letters.
    pub fn dead_lettered(&self, pipeline: &str) -> Counter {
        self.dead_lettered.get_or_create_owned(&PipelineLabel { pipeline: pipeline.into() })
    }

    pub fn sinks(&self) -> Vec<SinkMetrics> {
        crate::locks::lock(&self.sinks).clone()
    }

    pub fn sources(&self) -> Vec<SourceMetrics> {
        crate::locks::lock(&self.sources).clone()
    }

    /// Totals for one pipeline, summed over its sources and sinks (for `/status`).
    pub fn pipeline_totals(&self, pipeline: &str) -> PipelineTotals {
        let mut t = PipelineTotals::default();
        for source in ["pubsub", "push", "liveness"] {
            let labels = SourceLabels { pipeline: pipeline.into(), source: source.into() };
            t.events_in += self.events_in.get(&labels).map(|c| c.get()).unwrap_or(0);
            t.acks += self.acks.get(&labels).map(|c| c.get()).unwrap_or(0);
            t.nacks += self.nacks.get(&labels).map(|c| c.get()).unwrap_or(0);
        }
        t.dead_lettered = self.dead_lettered(pipeline).get();
        t.lag_seconds = self.lag.get(&PipelineLabel { pipeline: pipeline.into() }).map(|g| g.get()).unwrap_or(0.0);
        t
    }

    pub(crate) fn set_self_state(&self, ready: bool, healthy: bool) {
        self.ready.set(ready as i64);
        self.healthy.set(healthy as i64);
    }
}

/// Sums for one pipeline.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct PipelineTotals {
    pub events_in: u64,
    pub acks: u64,
    pub nacks: u64,
    pub dead_lettered: u64,
    pub lag_seconds: f64,
}

/// Per-event counters for one pipeline and source kind.
#[derive(Clone)]
pub struct InputMetrics {
    events_in: Counter,
    acks: Counter,
    nacks: Counter,
    lag: Gauge<f64, AtomicU64>,
}

impl InputMetrics {
    /// An event was taken in; `publish_time` gives the lag.
    pub fn received(&self, publish_time: chrono::DateTime<chrono::Utc>) {
        self.received_many(1, publish_time);
    }

    /// `n` events were taken in at once; the last one's `publish_time` gives the lag.
    pub fn received_many(&self, n: u64, publish_time: chrono::DateTime<chrono::Utc>) {
        self.events_in.inc_by(n);
        let lag = (chrono::Utc::now() - publish_time).num_milliseconds().max(0) as f64 / 1000.0;
        self.lag.set(lag);
    }

    /// The message settled: acked (delivered) or nacked.
    pub fn settled(&self, outcome: crate::event::ack::Outcome) {
        match outcome {
            crate::event::ack::Outcome::Delivered => self.acks.inc(),
            crate::event::ack::Outcome::Failed => self.nacks.inc(),
        };
    }
}

/// One message counted in the outstanding gauges (pulled or pushed) while it lives.
pub struct Outstanding {
    messages: Gauge,
    bytes: Gauge,
    n: i64,
}

impl Outstanding {
    fn count(messages: &Gauge, bytes: &Gauge, n: usize) -> Outstanding {
        messages.inc();
        bytes.inc_by(n as i64);
        Outstanding { messages: messages.clone(), bytes: bytes.clone(), n: n as i64 }
    }
}

impl Drop for Outstanding {
    fn drop(&mut self) {
        self.messages.dec();
        self.bytes.dec_by(self.n);
    }
}

/// What liveness knows about one subscription's streams.
#[derive(Default)]
pub struct SourceState {
    /// Wall-clock ms of the last message any stream of the subscription delivered.
    pub last_message_ms: AtomicI64,
    /// Wall-clock ms of the last stream error; cleared by a message or a successful check.
    pub last_error_ms: AtomicI64,
    pub last_error: Mutex<Option<String>>,
    /// Streams currently waiting for room in the pipeline (back-pressure, not a stall).
    pub blocked: AtomicU64,
    /// Set by the liveness check: the streams should reopen.
    pub restart: Notify,
    /// Set by the liveness check while the subscription is stalled.
    pub stalled: AtomicBool,
}

/// Handle for one subscription: counters plus liveness state.
#[derive(Clone)]
pub struct SourceMetrics {
    pub pipeline: String,
    pub subscription: String,
    pub input: InputMetrics,
    outstanding_messages: Gauge,
    outstanding_bytes: Gauge,
    restarts: Counter,
    pub state: Arc<SourceState>,
}

impl SourceMetrics {
    /// `n` messages of `bytes` of payload in all were handed to the pipeline at once, the last
    /// published at `publish_time`; each counts as outstanding until it settles
    /// ([`SourceMetrics::settled`]).
    pub fn handed(&self, n: usize, bytes: usize, publish_time: chrono::DateTime<chrono::Utc>) {
        self.input.received_many(n as u64, publish_time);
        self.outstanding_messages.inc_by(n as i64);
        self.outstanding_bytes.inc_by(bytes as i64);
        self.state.last_message_ms.store(now_ms(), Ordering::Relaxed);
        self.state.last_error_ms.store(0, Ordering::Relaxed);
    }

    /// A handed message of `bytes` of payload settled: no longer outstanding, its outcome counted.
    pub fn settled(&self, outcome: crate::event::ack::Outcome, bytes: usize) {
        self.input.settled(outcome);
        self.outstanding_messages.dec();
        self.outstanding_bytes.dec_by(bytes as i64);
    }

    pub fn outstanding(&self) -> (i64, i64) {
        (self.outstanding_messages.get(), self.outstanding_bytes.get())
    }

    /// A stream failed (server gone, subscription missing): not connected until it recovers.
    pub fn stream_error(&self, error: &str) {
        self.state.last_error_ms.store(now_ms(), Ordering::Relaxed);
        *crate::locks::lock(&self.state.last_error) = Some(error.to_owned());
    }

    /// The subscription answered a check asked at `asked_ms`: what failed before then has recovered.
    pub fn check_ok(&self, asked_ms: i64) {
        let _ = self
            .state
            .last_error_ms
            .fetch_update(Ordering::Relaxed, Ordering::Relaxed, |e| (e < asked_ms).then_some(0));
    }

    pub fn connected(&self) -> bool {
        self.state.last_error_ms.load(Ordering::Relaxed) == 0
    }

    pub fn last_error(&self) -> Option<String> {
        crate::locks::lock(&self.state.last_error).clone()
    }

    /// Ask every stream of this subscription to reopen.
    pub fn restart_streams(&self) {
        self.restarts.inc();
        self.state.restart.notify_waiters();
    }

    pub fn restarts(&self) -> u64 {
        self.restarts.get()
    }
}

/// What liveness knows about one sink.
#[derive(Default)]
pub struct SinkState {
    /// Batches that failed in a row; 0 after a success.
    pub consecutive_failures: AtomicU64,
    pub errors: AtomicU64,
    pub last_flush_ms: AtomicI64,
    pub last_error: Mutex<Option<String>>,
}

/// Handle for one sink: counters plus liveness state.
#[derive(Clone)]
pub struct SinkMetrics {
    pub pipeline: String,
    pub sink: String,
    events_out: Counter,
    batch_rows: Histogram,
    flush_seconds: Histogram,
    last_flush: Gauge<f64, AtomicU64>,
    errors: Family<SinkErrorLabels, Counter>,
    pub state: Arc<SinkState>,
}

impl SinkMetrics {
    /// A batch of `rows` was written in `took`.
    pub fn flushed(&self, rows: usize, took: Duration) {
        self.events_out.inc_by(rows as u64);
        self.batch_rows.observe(rows as f64);
        self.flush_seconds.observe(took.as_secs_f64());
        let now = now_ms();
        self.last_flush.set(now as f64 / 1000.0);
        self.state.last_flush_ms.store(now, Ordering::Relaxed);
        self.state.consecutive_failures.store(0, Ordering::Relaxed);
    }

    /// A batch (or a row) failed; `kind` is a short class such as `write`, `encode`, `schema`.
    pub fn failed(&self, kind: &str, error: &str) {
        self.errors
            .get_or_create(&SinkErrorLabels {
                pipeline: self.pipeline.clone(),
                sink: self.sink.clone(),
                kind: kind.into(),
            })
            .inc();
        self.state.errors.fetch_add(1, Ordering::Relaxed);
        if kind == "write" {
            self.state.consecutive_failures.fetch_add(1, Ordering::Relaxed);
        }
        *crate::locks::lock(&self.state.last_error) = Some(error.to_owned());
    }

    /// Whether the last write succeeded (or none was tried yet).
    pub fn writable(&self) -> bool {
        self.state.consecutive_failures.load(Ordering::Relaxed) == 0
    }

    pub fn consecutive_failures(&self) -> u64 {
        self.state.consecutive_failures.load(Ordering::Relaxed)
    }

    pub fn last_error(&self) -> Option<String> {
        crate::locks::lock(&self.state.last_error).clone()
    }

    pub fn events_out(&self) -> u64 {
        self.events_out.get()
    }
}
