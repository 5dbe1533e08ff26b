//! Deterministic sample events (log lines, heartbeats, config changes) from a seed: for
//! `sluice publish`, the local demo, tests and benchmarks.

use chrono::{Duration, SecondsFormat, TimeZone, Utc};
use serde_json::{json, Value};

/// The event kinds sluice ships schemas for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Kind {
    Log,
    Health,
    ConfigChange,
}

impl Kind {
    /// The kind a shipped pipeline carries, from its name.
    pub fn for_pipeline(name: &str) -> Option<Kind> {
        match name {
            "logs" => Some(Kind::Log),
            "health" => Some(Kind::Health),
            "config-changes" => Some(Kind::ConfigChange),
            _ => None,
        }
    }
}

/// SplitMix64: tiny, fast, and the same sequence everywhere for a given seed.
pub struct Rng(u64);

impl Rng {
    pub fn new(seed: u64) -> Self {
        Rng(seed)
    }
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    }
    pub fn below(&mut self, n: u64) -> u64 {
        self.next_u64() % n
    }
    pub fn pick<'a, T>(&mut self, items: &'a [T]) -> &'a T {
        &items[self.below(items.len() as u64) as usize]
    }
}

const SERVICES: &[&str] = &["order-router", "risk-engine", "market-data", "position-keeper", "pricing", "gateway"];
const SEVERITIES: &[&str] = &["DEBUG", "INFO", "INFO", "INFO", "INFO", "WARNING", "ERROR"];
const MESSAGES: &[&str] = &[
    "order accepted for routing to venue",
    "risk limits recalculated for portfolio",
    "quote stream reconnected after gap",
    "position snapshot persisted",
    "request completed",
    "slow upstream response from pricing service",
    "login ok for user=ops password=hunter2",
    "calling venue api with Authorization: Bearer eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiIxIn0.c2lnbmF0dXJl",
];

/// A generator of sample events of one kind.
pub struct Generator {
    kind: Kind,
    rng: Rng,
    start: chrono::DateTime<Utc>,
    n: u64,
    /// Log events are lengthened to at least this many bytes (see [`Generator::sized`]).
    size: usize,
}

impl Generator {
    pub fn new(kind: Kind, seed: u64) -> Self {
        Generator {
            kind,
            rng: Rng::new(seed),
            start: Utc.with_ymd_and_hms(2026, 11, 26, 9, 0, 0).unwrap(),
            n: 0,
            size: 0,
        }
    }

    /// Log events of at least `bytes` (their message is made longer with more sample phrases),
    /// for loads of large events. Other kinds have no free text to lengthen and stay as they are.
    pub fn sized(mut self, bytes: usize) -> Self {
        self.size = bytes;
        self
    }

    /// The next event as JSON.
    pub fn next_event(&mut self) -> Value {
        self.n += 1;
        let t = (self.start + Duration::milliseconds(self.n as i64 * 37)).to_rfc3339_opts(SecondsFormat::Millis, true);
        let r = &mut self.rng;
        let service = *r.pick(SERVICES);
        match self.kind {
            Kind::Log => {
                let mut event = json!({
                    "timestamp": t,
                    "service": service,
                    "severity": r.pick(SEVERITIES),
                    "message": r.pick(MESSAGES),
                    "host": format!("{service}-{}", r.below(8)),
                    "environment": "prod",
                    "logger": format!("{service}.handler"),
                    "trace_id": format!("{:032x}", (r.next_u64() as u128) << 64 | r.next_u64() as u128),
                    "span_id": format!("{:016x}", r.next_u64()),
                    "latency_ms": (r.below(250_000) as f64) / 1000.0,
                    "labels": {"region": *r.pick(&["europe-west1", "us-central1"]), "version": format!("1.{}.{}", r.below(5), r.below(20))},
                });
                lengthen(&mut event, self.size, r);
                event
            }
            Kind::Health => json!({
                "timestamp": t,
                "service": service,
                "instance": format!("{service}-{}", r.below(4)),
                "status": r.pick(&["heartbeat", "heartbeat", "heartbeat", "healthy", "degraded"]),
                "latency_ms": (r.below(50_000) as f64) / 1000.0,
                "checks": {"db": "ok", "upstream": *r.pick(&["ok", "ok", "slow"])},
                "version": format!("1.{}.0", r.below(5)),
            }),
            Kind::ConfigChange => {
                let version = self.n as i64;
                json!({
                    "timestamp": t,
                    "service": service,
                    "key": r.pick(&["max_order_qty", "risk.var_limit", "feed.reconnect_ms", "routing.venues"]),
                    "old_value": r.below(1000),
                    "new_value": r.below(1000),
                    "version": version,
                    "author": r.pick(&["alice", "bob", "deploy-bot"]),
                    "reason": "tuning",
                })
            }
        }
    }
}

/// Add sample phrases to a log event's message until the event is at least `size` bytes.
fn lengthen(event: &mut Value, size: usize, r: &mut Rng) {
    if size == 0 {
        return; // not asked for: spare the serialisation
    }
    let short = size.saturating_sub(event.to_string().len());
    if let (true, Some(Value::String(message))) = (short > 0, event.get_mut("message")) {
        let want = message.len() + short;
        while message.len() < want {
            let phrase = *r.pick(MESSAGES);
            message.push_str("; ");
            message.push_str(phrase);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_seed_same_events() {
        let a: Vec<Value> = (0..5)
            .map({
                let mut g = Generator::new(Kind::Log, 7);
                move |_| g.next_event()
            })
            .collect();
        let b: Vec<Value> = (0..5)
            .map({
                let mut g = Generator::new(Kind::Log, 7);
                move |_| g.next_event()
            })
            .collect();
        assert_eq!(a, b);
        let size = a[0].to_string().len();
        assert!((250..450).contains(&size), "log lines are about 300 bytes, got {size}");
    }

    #[test]
    fn sized_log_events_are_at_least_that_long_and_still_the_same_for_a_seed() {
        let mut g = Generator::new(Kind::Log, 7).sized(4_096);
        let events: Vec<Value> = (0..20).map(|_| g.next_event()).collect();
        for e in &events {
            let len = e.to_string().len();
            assert!((4_096..4_096 + 100).contains(&len), "{len} bytes");
            assert!(e["message"].as_str().unwrap().contains("; "), "the message was lengthened");
        }
        let mut again = Generator::new(Kind::Log, 7).sized(4_096);
        assert!(events.iter().all(|e| *e == again.next_event()));
        let mut health = Generator::new(Kind::Health, 7).sized(4_096);
        assert!(health.next_event().to_string().len() < 400, "only log events have text to lengthen");
    }
}
