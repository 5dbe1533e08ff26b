//! The services page's timelines: producer transitions, as the producer tracker sends them into
//! its `emit_to` pipeline (`health` events with `origin: sluice-liveness`), kept for the last
//! [`WINDOW_HOURS`] hours and at most [`KEPT`] of them.

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use chrono::{DateTime, TimeDelta, Utc};
use serde_json::Value;

use crate::event::Event;
use crate::health::producers::{ORIGIN, ORIGIN_LIVENESS};
use crate::topology::Observer;

pub const WINDOW_HOURS: i64 = 6;
pub const KEPT: usize = 20_000;

#[derive(Debug, Clone, PartialEq)]
pub struct Transition {
    pub service: String,
    pub from: String,
    pub to: String,
    pub at: DateTime<Utc>,
}

pub struct Timeline {
    pipeline: String,
    ring: Mutex<VecDeque<Transition>>,
}

impl Timeline {
    /// Follows the transitions sent into `pipeline` (`health.producers.emit_to`).
    pub fn new(pipeline: String) -> Timeline {
        Timeline { pipeline, ring: Mutex::new(VecDeque::new()) }
    }

    pub fn record(&self, t: Transition) {
        let mut ring = self.ring.lock().expect("not poisoned");
        let horizon = Utc::now() - TimeDelta::hours(WINDOW_HOURS);
        if t.at < horizon {
            return;
        }
        while ring.front().is_some_and(|f| f.at < horizon) || ring.len() >= KEPT {
            ring.pop_front();
        }
        // Mostly in order; a late one goes to its place so each service's list stays sorted.
        let at = ring.iter().rposition(|x| x.at <= t.at).map_or(0, |i| i + 1);
        ring.insert(at, t);
    }

    /// Every service's transitions in the window, oldest first.
    pub fn by_service(&self) -> HashMap<String, Vec<Transition>> {
        let mut out: HashMap<String, Vec<Transition>> = HashMap::new();
        for t in self.ring.lock().expect("not poisoned").iter() {
            out.entry(t.service.clone()).or_default().push(t.clone());
        }
        out
    }

    /// The latest `n` transitions, newest first.
    pub fn latest(&self, n: usize) -> Vec<Transition> {
        self.ring.lock().expect("not poisoned").iter().rev().take(n).cloned().collect()
    }
}

impl Observer for Timeline {
    fn wants(&self, pipeline: &str) -> bool {
        pipeline == self.pipeline
    }

    fn observe(&self, _pipeline: &str, events: &[Event]) {
        for event in events.iter().filter(|e| e.attributes.get(ORIGIN).is_some_and(|o| o == ORIGIN_LIVENESS)) {
            let record = event.record(Some(&["service", "timestamp", "status", "checks"]));
            if let Some(t) = transition(&record) {
                self.record(t);
            }
        }
    }
}

/// A transition from its `health` record; `None` if it lacks what it needs.
fn transition(r: &Value) -> Option<Transition> {
    let checks = match r.get("checks") {
        Some(Value::String(text)) => serde_json::from_str(text).ok()?,
        Some(c) => c.clone(),
        None => return None,
    };
    let liveness = checks.get("liveness")?;
    Some(Transition {
        service: r.get("service")?.as_str()?.to_owned(),
        from: liveness.get("from")?.as_str()?.to_owned(),
        to: liveness.get("to")?.as_str()?.to_owned(),
        at: r.get("timestamp").and_then(Value::as_str).and_then(crate::schema::parse_timestamp)?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn reads_transition_records_and_keeps_them_ordered() {
        let now = Utc::now();
        let stamp = |t: DateTime<Utc>| t.to_rfc3339_opts(chrono::SecondsFormat::Micros, true);
        let r = json!({"service": "api", "timestamp": stamp(now), "status": "late",
            "checks": {"liveness": {"from": "healthy", "to": "late"}}});
        let t = transition(&r).unwrap();
        assert_eq!((t.from.as_str(), t.to.as_str()), ("healthy", "late"));
        let as_text = json!({"service": "api", "timestamp": stamp(now), "checks": r["checks"].to_string()});
        assert_eq!(transition(&as_text), Some(t.clone()));
        assert_eq!(transition(&json!({"service": "api", "status": "up"})), None);

        let tl = Timeline::new("health".into());
        tl.record(Transition { at: now - TimeDelta::minutes(1), ..t.clone() });
        tl.record(Transition { at: now - TimeDelta::minutes(5), to: "down".into(), ..t.clone() });
        tl.record(Transition { at: now - TimeDelta::hours(7), ..t.clone() });
        let api = &tl.by_service()["api"];
        assert_eq!(api.len(), 2, "older than the window is gone");
        assert!(api[0].at < api[1].at);
        assert_eq!(tl.latest(1)[0].to, "late");
    }
}
