//! sluice's own health, judged every `health.check_interval`.
//!
//! Ready (`/readyz`) means every subscription answers and no stream is failing, every sink's
//! last write succeeded, and shutdown has not begun. Healthy (`/healthz`) means no subscription
//! is stalled (silent while messages wait in it, without back-pressure or full flow control to
//! explain it) and no sink has failed `health.sink_failures` batches in a row. A stalled
//! subscription's streams are reopened at each check until it delivers again.

use std::collections::HashMap;
use std::sync::atomic::Ordering;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde::Serialize;
use tokio_util::sync::CancellationToken;

use super::probe::Probe;
use crate::telemetry::metrics::{Metrics, SourceMetrics};

/// What `/readyz`, `/healthz` and `/status` say about sluice itself.
#[derive(Debug, Clone, Serialize)]
pub struct SelfReport {
    pub ready: bool,
    pub healthy: bool,
    /// Why not ready, one line each.
    pub not_ready: Vec<String>,
    /// Why not healthy, one line each.
    pub unhealthy: Vec<String>,
}

pub struct Liveness {
    metrics: Arc<Metrics>,
    check_interval: Duration,
    stall_after: Duration,
    sink_failures: u64,
    /// Messages a subscription may hold un-acked: at the limit, silence is flow control.
    max_outstanding: i64,
    shutting_down: CancellationToken,
    /// Subscriptions found stalled, with when they were last restarted.
    stalled: Mutex<HashMap<String, tokio::time::Instant>>,
}

/// Whether a subscription's silence is a stall worth probing for: connected, silent long enough,
/// and not explained by back-pressure from the pipeline or by flow control being full.
pub(crate) fn may_be_stalled(
    silent_for: Duration,
    stall_after: Duration,
    blocked: bool,
    outstanding: i64,
    max: i64,
) -> bool {
    silent_for >= stall_after && !blocked && outstanding < max
}

impl Liveness {
    pub fn new(
        metrics: Arc<Metrics>,
        health: &crate::config::health::HealthConfig,
        max_outstanding: i64,
        shutting_down: CancellationToken,
    ) -> Liveness {
        Liveness {
            metrics,
            check_interval: health.check_interval.0,
            stall_after: health.stall_after.0,
            sink_failures: health.sink_failures.get(),
            max_outstanding,
            shutting_down,
            stalled: Mutex::new(HashMap::new()),
        }
    }

    /// The current verdict, from the sources' and sinks' state.
    pub fn report(&self) -> SelfReport {
        let mut not_ready = Vec::new();
        let mut unhealthy = Vec::new();
        if self.shutting_down.is_cancelled() {
            not_ready.push("shutting down".to_owned());
        }
        for s in self.metrics.sources() {
            if !s.connected() {
                let why = s.last_error().unwrap_or_default();
                not_ready.push(format!("subscription {} not connected: {why}", s.subscription));
            }
        }
        for s in crate::locks::lock(&self.stalled).keys() {
            unhealthy.push(format!("subscription {s} stalled: messages wait but its streams deliver none"));
        }
        for s in self.metrics.sinks() {
            let failures = s.consecutive_failures();
            if failures > 0 {
                let why = s.last_error().unwrap_or_default();
                not_ready.push(format!("sink {}/{} not writable: {why}", s.pipeline, s.sink));
            }
            if failures >= self.sink_failures {
                unhealthy.push(format!("sink {}/{} failed {failures} batches in a row", s.pipeline, s.sink));
            }
        }
        // An unhealthy instance should not take traffic either.
        let ready = not_ready.is_empty() && unhealthy.is_empty();
        let healthy = unhealthy.is_empty();
        self.metrics.set_self_state(ready, healthy);
        SelfReport { ready, healthy, not_ready, unhealthy }
    }

    /// Check the subscriptions every interval until `stop`.
    pub async fn run(self: Arc<Self>, probe: Option<Probe>, stop: CancellationToken) {
        let started = tokio::time::Instant::now();
        let mut tick = tokio::time::interval(self.check_interval);
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            if let Some(probe) = &probe {
                // All at once, so one slow subscription does not delay the verdict on the others.
                let sources = self.metrics.sources();
                futures::future::join_all(sources.iter().map(|s| self.check(probe, s, started))).await;
            }
            let report = self.report();
            if !report.healthy {
                tracing::warn!(problems = %report.unhealthy.join("; "), "sluice is unhealthy");
            }
        }
    }

    async fn check(&self, probe: &Probe, s: &SourceMetrics, started: tokio::time::Instant) {
        let asked = chrono::Utc::now().timestamp_millis();
        match probe.exists(&s.subscription).await {
            Ok(()) => s.check_ok(asked),
            Err(e) if e.is_forbidden() => {
                tracing::debug!(subscription = %s.subscription, error = %e, "cannot check the subscription");
            }
            Err(e) => {
                tracing::warn!(subscription = %s.subscription, error = %e, "subscription check failed");
                s.stream_error(&format!("check failed: {e}"));
                return;
            }
        }
        let now = tokio::time::Instant::now();
        let last_message = s.state.last_message_ms.load(Ordering::Relaxed);
        let silent_ms = chrono::Utc::now().timestamp_millis() - last_message;
        let mut stalled = crate::locks::lock(&self.stalled).get(&s.subscription).copied();
        // Silence counts from the later of: the last message, sluice's start, the last restart.
        let mut silent_for = Duration::from_millis(silent_ms.max(0) as u64).min(now - started);
        if let Some(restarted) = stalled {
            if silent_for < now - restarted {
                // Delivered since the restart: recovered.
                tracing::info!(subscription = %s.subscription, "stalled subscription delivers again");
                crate::locks::lock(&self.stalled).remove(&s.subscription);
                stalled = None;
            } else {
                silent_for = now - restarted;
            }
        }
        let (outstanding, _) = s.outstanding();
        let blocked = s.state.blocked.load(Ordering::Relaxed) > 0;
        if !may_be_stalled(silent_for, self.stall_after, blocked, outstanding, self.max_outstanding) {
            return;
        }
        match probe.has_backlog(&s.subscription).await {
            Ok(true) => {
                tracing::warn!(subscription = %s.subscription, silent_s = silent_for.as_secs(), restarted_before = stalled.is_some(),
                    "messages wait but the streams deliver none; restarting them");
                crate::locks::lock(&self.stalled).insert(s.subscription.clone(), now);
                s.restart_streams();
            }
            Ok(false) => {
                if stalled.is_some() {
                    crate::locks::lock(&self.stalled).remove(&s.subscription);
                }
            }
            Err(e) => tracing::warn!(subscription = %s.subscription, error = %e, "backlog check failed"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn silence_is_a_stall_only_without_back_pressure_or_full_flow_control() {
        let after = Duration::from_secs(60);
        assert!(may_be_stalled(Duration::from_secs(61), after, false, 10, 100));
        assert!(!may_be_stalled(Duration::from_secs(59), after, false, 10, 100), "not silent long enough");
        assert!(!may_be_stalled(Duration::from_secs(61), after, true, 10, 100), "waiting on the pipeline");
        assert!(!may_be_stalled(Duration::from_secs(61), after, false, 100, 100), "flow control is full");
    }

    #[test]
    fn failing_sink_makes_unready_then_unhealthy_past_the_threshold() {
        let metrics = Arc::new(Metrics::new());
        let sink = metrics.sink("logs", "lake");
        let health = crate::config::health::HealthConfig {
            sink_failures: std::num::NonZeroU64::new(3).unwrap(),
            ..Default::default()
        };
        let l = Liveness::new(metrics.clone(), &health, 100, CancellationToken::new());
        assert!(l.report().ready);
        sink.failed("write", "disk full");
        let r = l.report();
        assert!(!r.ready && r.healthy, "{r:?}");
        assert_eq!(r.not_ready, vec!["sink logs/lake not writable: disk full".to_owned()]);
        sink.failed("write", "disk full");
        sink.failed("write", "disk full");
        let r = l.report();
        assert!(!r.healthy, "{r:?}");
        assert!(metrics.encode().contains("sluice_healthy 0"));
        sink.flushed(10, Duration::from_millis(5));
        let r = l.report();
        assert!(r.ready && r.healthy, "{r:?}");
    }
}
