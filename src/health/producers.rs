//! Producer health from liveness: every service seen on the watched pipelines (`health`,
//! `logs`) has a last-seen time, an expected interval, and a state.
//!
//! A producer is late once silent for `late_after` intervals and down after `down_after`;
//! otherwise its state is what its last explicit report said (`healthy`, `degraded`,
//! `unhealthy`; a plain heartbeat or log line counts as healthy). Each change of state is logged
//! and sent, as a `health` event from sluice, into the `emit_to` pipeline, so its sinks keep the
//! history. Those events carry the attribute `origin: sluice-liveness` and are not themselves
//! signs of life. Their message id is derived from the producer and the last-seen time, so
//! instances that see the same heartbeats emit the same ids (deduplicated downstream).
//!
//! Event time is the record's `timestamp` (capped at now), so a backlog of old heartbeats does
//! not make a dead producer look alive.
//!
//! Several instances on one subscription each see part of the heartbeats; every
//! `producers.lake_refresh` each also reads the `emit_to` pipeline's recent lake files
//! ([`Producers::follow_lake`]), so every instance's view holds every instance's heartbeats.

use std::borrow::Cow;
use std::collections::{BTreeMap, HashMap};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use chrono::{DateTime, SecondsFormat, Utc};
use serde::Serialize;
use serde_json::{json, Value};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::Clock;
use crate::config::health::ProducersConfig;
use crate::event::ack::{Ack, Outcome};
use crate::event::row::RowRef;
use crate::event::{Attributes, Event, Handover, Message};
use crate::lake_tail::LakeTail;
use crate::telemetry::metrics::{Metrics, StateLabel};
use crate::topology::{Observer, PipelineInput};

/// Attribute marking events sluice emits itself.
pub(crate) const ORIGIN: &str = "origin";
pub(crate) const ORIGIN_LIVENESS: &str = "sluice-liveness";

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum State {
    Healthy,
    Degraded,
    Unhealthy,
    Late,
    Down,
}

impl State {
    pub fn as_str(self) -> &'static str {
        match self {
            State::Healthy => "healthy",
            State::Degraded => "degraded",
            State::Unhealthy => "unhealthy",
            State::Late => "late",
            State::Down => "down",
        }
    }

    const ALL: [State; 5] = [State::Healthy, State::Degraded, State::Unhealthy, State::Late, State::Down];
}

/// An explicit health report's content.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Report {
    pub status: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub latency_ms: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub checks: Option<Value>,
}

impl Report {
    fn state(&self) -> State {
        match self.status.as_str() {
            "degraded" => State::Degraded,
            "unhealthy" => State::Unhealthy,
            _ => State::Healthy,
        }
    }
}

struct Producer {
    last_seen: DateTime<Utc>,
    /// `None` until first evaluated: the first sighting is not a transition.
    state: Option<State>,
    report: Option<Report>,
}

/// One producer as `/status` shows it.
#[derive(Debug, Clone, Serialize)]
pub struct ProducerView {
    pub state: State,
    pub last_seen: String,
    pub interval_seconds: f64,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub report: Option<Report>,
}

/// A change of a producer's state.
#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub service: String,
    pub from: State,
    pub to: State,
    /// When it happened: the threshold crossed, or the sign of life that ended it.
    pub at: DateTime<Utc>,
    pub last_seen: DateTime<Utc>,
    pub interval: Duration,
}

pub struct Producers {
    config: ProducersConfig,
    watched: Vec<String>,
    clock: Clock,
    inner: Mutex<HashMap<String, Producer>>,
    wake: Notify,
    metrics: Arc<Metrics>,
}

impl Producers {
    pub fn new(config: ProducersConfig, watched: Vec<String>, clock: Clock, metrics: Arc<Metrics>) -> Producers {
        Producers { config, watched, clock, inner: Mutex::new(HashMap::new()), wake: Notify::new(), metrics }
    }

    fn thresholds(&self, service: &str) -> (Duration, Duration, Duration) {
        let i = self.config.interval(service);
        (i, i.mul_f64(self.config.late_after), i.mul_f64(self.config.down_after))
    }

    fn state_of(&self, service: &str, p: &Producer, now: DateTime<Utc>) -> State {
        let (_, late, down) = self.thresholds(service);
        let silent = (now - p.last_seen).to_std().unwrap_or_default();
        if silent >= down {
            State::Down
        } else if silent >= late {
            State::Late
        } else {
            p.report.as_ref().map_or(State::Healthy, Report::state)
        }
    }

    /// A sign of life from `service` at `at`, with its report if it was an explicit one.
    pub fn seen(&self, service: &str, at: DateTime<Utc>, report: Option<Report>) {
        self.seen_all([(service, at, report)]);
    }

    /// Signs of life in the order they came, taken under one lock and one reading of the clock
    /// (a chain batch's worth).
    fn seen_all<S: AsRef<str>>(&self, signs: impl IntoIterator<Item = (S, DateTime<Utc>, Option<Report>)>) {
        let now = self.clock.now();
        let mut changed = false;
        let mut inner = crate::locks::lock(&self.inner);
        for (service, at, report) in signs {
            let (service, at) = (service.as_ref(), at.min(now));
            let p = match inner.get_mut(service) {
                Some(p) => p,
                None => {
                    inner.entry(service.to_owned()).or_insert(Producer { last_seen: at, state: None, report: None })
                }
            };
            if at >= p.last_seen {
                p.last_seen = at;
                if report.is_some() {
                    p.report = report;
                }
            }
            changed |= p.state != Some(self.state_of(service, p, now));
        }
        drop(inner);
        if changed {
            self.wake.notify_one();
        }
    }

    /// Bring every producer's state up to `now`; returns the changes, oldest first.
    pub fn evaluate(&self, now: DateTime<Utc>) -> Vec<Transition> {
        let mut out = Vec::new();
        let mut inner = crate::locks::lock(&self.inner);
        for (service, p) in inner.iter_mut() {
            let to = self.state_of(service, p, now);
            match p.state {
                None => p.state = Some(to),
                Some(from) if from != to => {
                    let (interval, late, down) = self.thresholds(service);
                    let at = match to {
                        State::Late => p.last_seen + late,
                        State::Down => p.last_seen + down,
                        _ => p.last_seen,
                    };
                    out.push(Transition { service: service.clone(), from, to, at, last_seen: p.last_seen, interval });
                    p.state = Some(to);
                }
                Some(_) => {}
            }
        }
        let mut counts: HashMap<State, i64> = HashMap::new();
        for p in inner.values() {
            *counts.entry(p.state.unwrap_or(State::Healthy)).or_default() += 1;
        }
        drop(inner);
        for s in State::ALL {
            let n = counts.get(&s).copied().unwrap_or(0);
            self.metrics.producers.get_or_create(&StateLabel { state: s.as_str().into() }).set(n);
        }
        out.sort_by(|a, b| (a.at, &a.service).cmp(&(b.at, &b.service)));
        out
    }

    /// When the next threshold is crossed, if any producer has one ahead.
    fn next_deadline(&self) -> Option<DateTime<Utc>> {
        let inner = crate::locks::lock(&self.inner);
        inner
            .iter()
            .filter_map(|(service, p)| {
                let (_, late, down) = self.thresholds(service);
                match p.state {
                    Some(State::Down) => None,
                    Some(State::Late) => Some(p.last_seen + down),
                    _ => Some(p.last_seen + late),
                }
            })
            .min()
    }

    /// Every producer, by name.
    pub fn view(&self) -> BTreeMap<String, ProducerView> {
        let now = self.clock.now();
        let inner = crate::locks::lock(&self.inner);
        inner
            .iter()
            .map(|(service, p)| {
                let view = ProducerView {
                    state: self.state_of(service, p, now),
                    last_seen: p.last_seen.to_rfc3339_opts(SecondsFormat::Millis, true),
                    interval_seconds: self.config.interval(service).as_secs_f64(),
                    report: p.report.clone(),
                };
                (service.clone(), view)
            })
            .collect()
    }

    /// Evaluate at each threshold and each sign of life that changes a state; log every
    /// transition and send it into `emit` (the `emit_to` pipeline) until `stop`.
    pub async fn run(self: Arc<Self>, instance: String, emit: Option<PipelineInput>, stop: CancellationToken) {
        let counted = emit.as_ref().map(|i| self.metrics.input(&i.name, "liveness"));
        loop {
            for t in self.evaluate(self.clock.now()) {
                tracing::info!(service = %t.service, from = t.from.as_str(), to = t.to.as_str(),
                    at = %t.at.to_rfc3339_opts(SecondsFormat::Millis, true),
                    last_seen = %t.last_seen.to_rfc3339_opts(SecondsFormat::Millis, true),
                    interval_s = t.interval.as_secs_f64(), "producer health changed");
                if let (Some(input), Some(counted)) = (&emit, &counted) {
                    let (message, ack) = transition_message(&t, &instance, counted.clone());
                    counted.received(message.publish_time);
                    if input.tx.send(Handover::one(message, ack)).await.is_err() {
                        return; // the pipeline has shut down
                    }
                }
            }
            let deadline = self.next_deadline().map(|d| self.clock.instant_at(d));
            let far = tokio::time::Instant::now() + Duration::from_secs(3600);
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = self.wake.notified() => {}
                _ = tokio::time::sleep_until(deadline.unwrap_or(far)) => {}
            }
        }
    }
}

/// The `health` message that records a transition, and its ack.
pub(crate) fn transition_message(
    t: &Transition,
    instance: &str,
    counted: crate::telemetry::metrics::InputMetrics,
) -> (Message, Ack) {
    let ts = |d: DateTime<Utc>| d.to_rfc3339_opts(SecondsFormat::Micros, true);
    let record = json!({
        "timestamp": ts(t.at),
        "service": t.service,
        "instance": format!("sluice/{instance}"),
        "status": t.to.as_str(),
        "checks": {"liveness": {
            "from": t.from.as_str(),
            "to": t.to.as_str(),
            "last_seen": ts(t.last_seen),
            "interval_seconds": t.interval.as_secs_f64(),
        }},
    });
    let id = format!("liveness:{}:{}:{}", t.service, t.to.as_str(), t.last_seen.timestamp_micros());
    let service = t.service.clone();
    let ack = Ack::new(move |o| {
        counted.settled(o);
        if o == Outcome::Failed {
            tracing::error!(service, "producer health transition could not be written");
        }
    });
    let attributes = Attributes::from([(ORIGIN.to_owned(), ORIGIN_LIVENESS.to_owned())]);
    (Message::new(id, t.at, attributes, bytes::Bytes::from(record.to_string()), Arc::from("liveness")), ack)
}

impl Observer for Producers {
    fn wants(&self, pipeline: &str) -> bool {
        self.watched.iter().any(|w| w == pipeline)
    }

    fn observe(&self, _pipeline: &str, events: &[Event]) {
        let signs = events.iter().filter(|e| e.attributes.get(ORIGIN).is_none_or(|o| o != ORIGIN_LIVENESS));
        self.seen_all(signs.filter_map(|e| {
            let (service, at, report) = match &e.row {
                Some(row) => sign_of_row(row)?,
                None => e.record.as_object().and_then(sign_of_life).map(|(s, at, r)| (Cow::Borrowed(s), at, r))?,
            };
            Some((service, at.unwrap_or(e.publish_time), report))
        }));
    }
}

/// The sign of life of a row the chain forwarded in columns, read from them (what
/// [`sign_of_life`] reads from a record).
fn sign_of_row(row: &RowRef) -> Option<SignOfLife<Cow<'_, str>>> {
    let report = row.text("status").map(|status| Report {
        status: status.into_owned(),
        latency_ms: row.number("latency_ms"),
        checks: row.value("checks"),
    });
    Some((row.text("service")?, row.time("timestamp"), report))
}

/// What a record tells: the service, when (if its `timestamp` says), and its report if explicit.
type SignOfLife<S> = (S, Option<DateTime<Utc>>, Option<Report>);

/// The sign of life a record carries; `None` without a service.
fn sign_of_life(r: &serde_json::Map<String, Value>) -> Option<SignOfLife<&str>> {
    let service = r.get("service").and_then(Value::as_str)?;
    let at = r.get("timestamp").and_then(Value::as_str).and_then(crate::schema::parse_timestamp);
    let report = r.get("status").and_then(Value::as_str).map(|status| Report {
        status: status.to_owned(),
        latency_ms: r.get("latency_ms").and_then(Value::as_f64),
        checks: match r.get("checks") {
            // In the lake a JSON column holds JSON text.
            Some(Value::String(text)) if r.contains_key("_lake") => serde_json::from_str(text).ok(),
            Some(c) if !c.is_null() => Some(c.clone()),
            _ => None,
        },
    });
    Some((service, at, report))
}

impl Producers {
    /// The hour partitions that can hold a heartbeat of a producer not yet down.
    pub fn window_hours(&self) -> u32 {
        let longest = self.config.intervals.values().map(|d| d.0).chain([self.config.default_interval.0]).max();
        let window = longest.unwrap_or_default().mul_f64(self.config.down_after);
        (window.as_secs() / 3600) as u32 + 1
    }

    /// Every `every` until `stop`, take the signs of life other instances wrote to the lake
    /// (`tail` follows the `emit_to` pipeline's lake sink); sluice's own transition rows are skipped.
    pub async fn follow_lake(self: Arc<Self>, mut tail: LakeTail, every: Duration, stop: CancellationToken) {
        let mut tick = tokio::time::interval(every);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {}
            }
            match tail.new_rows().await {
                Ok(rows) => {
                    for r in &rows {
                        let ours =
                            r.get("message_id").and_then(Value::as_str).is_some_and(|m| m.starts_with("liveness:"));
                        if let Some((service, Some(at), report)) = sign_of_life(r).filter(|_| !ours) {
                            self.seen(service, at, report);
                        }
                    }
                }
                Err(e) => tracing::warn!(error = %e, "cannot read producer signs of life from the lake"),
            }
        }
    }
}

#[cfg(test)]
mod tests;
