//! `GET /status`: one JSON document on how this instance is doing: its own health, per pipeline
//! throughput, lag, last flush and errors, per subscription and sink, and per producer health.

use std::collections::{BTreeMap, VecDeque};
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde_json::{json, Value};
use tokio::time::Instant;

use crate::health::config_state::ConfigState;
use crate::health::liveness::Liveness;
use crate::health::producers::Producers;
use crate::telemetry::metrics::Metrics;

/// Throughput is averaged over about this long.
const WINDOW: Duration = Duration::from_secs(60);

/// Everything `/status`, `/readyz`, `/healthz` and `/config` read.
pub struct Status {
    pub instance: String,
    pub pipelines: Vec<String>,
    pub metrics: Arc<Metrics>,
    pub liveness: Arc<Liveness>,
    pub producers: Option<Arc<Producers>>,
    pub config_state: Option<Arc<ConfigState>>,
    /// Samples of events taken in per pipeline, oldest first, for throughput.
    samples: Mutex<VecDeque<(Instant, Vec<u64>)>>,
}

fn time(ms: i64) -> Value {
    match DateTime::<Utc>::from_timestamp_millis(ms).filter(|_| ms > 0) {
        Some(t) => t.to_rfc3339_opts(SecondsFormat::Millis, true).into(),
        None => Value::Null,
    }
}

impl Status {
    pub fn new(
        instance: String,
        pipelines: Vec<String>,
        metrics: Arc<Metrics>,
        liveness: Arc<Liveness>,
        producers: Option<Arc<Producers>>,
        config_state: Option<Arc<ConfigState>>,
    ) -> Status {
        let zero = vec![0; pipelines.len()];
        Status {
            instance,
            pipelines,
            metrics,
            liveness,
            producers,
            config_state,
            samples: Mutex::new(VecDeque::from([(Instant::now(), zero)])),
        }
    }

    /// Events per second per pipeline since the oldest sample kept (at most about a minute ago).
    fn rates(&self, counts: &[u64]) -> Vec<f64> {
        let now = Instant::now();
        let mut samples = crate::locks::lock(&self.samples);
        while samples.len() > 1 && now - samples[1].0 >= WINDOW {
            samples.pop_front();
        }
        let (then, old) = samples.front().cloned().expect("one sample is always kept");
        samples.push_back((now, counts.to_vec()));
        let secs = (now - then).as_secs_f64();
        counts.iter().zip(old).map(|(n, o)| if secs > 0.0 { n.saturating_sub(o) as f64 / secs } else { 0.0 }).collect()
    }

    pub fn to_json(&self) -> Value {
        let report = self.liveness.report();
        let totals: Vec<_> = self.pipelines.iter().map(|p| self.metrics.pipeline_totals(p)).collect();
        let rates = self.rates(&totals.iter().map(|t| t.events_in).collect::<Vec<_>>());
        let sinks = self.metrics.sinks();
        let sources = self.metrics.sources();
        let mut pipelines = serde_json::Map::new();
        for ((name, t), rate) in self.pipelines.iter().zip(&totals).zip(rates) {
            let mut sink_view = serde_json::Map::new();
            let mut errors = 0;
            let mut last_flush = 0;
            for s in sinks.iter().filter(|s| &s.pipeline == name) {
                let st = &s.state;
                let flushed = st.last_flush_ms.load(Ordering::Relaxed);
                errors += st.errors.load(Ordering::Relaxed);
                last_flush = last_flush.max(flushed);
                sink_view.insert(
                    s.sink.clone(),
                    json!({
                        "events_out": s.events_out(),
                        "last_flush": time(flushed),
                        "errors": st.errors.load(Ordering::Relaxed),
                        "consecutive_failures": s.consecutive_failures(),
                        "last_error": s.last_error(),
                    }),
                );
            }
            let mut sub_view = serde_json::Map::new();
            for s in sources.iter().filter(|s| &s.pipeline == name) {
                let (messages, bytes) = s.outstanding();
                sub_view.insert(
                    s.subscription.clone(),
                    json!({
                        "connected": s.connected(),
                        "last_message": time(s.state.last_message_ms.load(Ordering::Relaxed)),
                        "outstanding_messages": messages,
                        "outstanding_bytes": bytes,
                        "stream_restarts": s.restarts(),
                        "last_error": s.last_error(),
                    }),
                );
            }
            pipelines.insert(
                name.clone(),
                json!({
                    "events_in": t.events_in,
                    "events_per_second": (rate * 100.0).round() / 100.0,
                    "lag_seconds": t.lag_seconds,
                    "acks": t.acks,
                    "nacks": t.nacks,
                    "dead_lettered": t.dead_lettered,
                    "errors": errors,
                    "last_flush": time(last_flush),
                    "sinks": sink_view,
                    "subscriptions": sub_view,
                }),
            );
        }
        let producers: BTreeMap<_, _> = self.producers.as_ref().map(|p| p.view()).unwrap_or_default();
        let config_state = self.config_state.as_ref().map(|c| {
            let (services, keys) = c.size();
            json!({"services": services, "keys": keys})
        });
        json!({
            "instance": self.instance,
            "time": Utc::now().to_rfc3339_opts(SecondsFormat::Millis, true),
            "ready": report.ready,
            "healthy": report.healthy,
            "not_ready": report.not_ready,
            "unhealthy": report.unhealthy,
            "pipelines": pipelines,
            "producers": producers,
            "config_state": config_state,
        })
    }
}
