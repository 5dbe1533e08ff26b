//! The overview's sparklines: per pipeline, events in, out (acknowledged) and dead-lettered,
//! sampled from the metrics every [`EVERY`] into a ring holding the last 15 minutes.

use std::collections::VecDeque;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio_util::sync::CancellationToken;

use crate::telemetry::metrics::Metrics;

/// How often the counters are sampled.
pub const EVERY: Duration = Duration::from_secs(10);
/// Samples kept: 15 minutes of them, plus the one each rate starts from.
pub const KEPT: usize = 15 * 60 / 10 + 1;

/// One pipeline's counters at one moment: events in, acknowledged, dead-lettered.
pub type Counts = [u64; 3];

/// Per-second rates of one pipeline, oldest first.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Series {
    pub events_in: Vec<f64>,
    pub events_out: Vec<f64>,
    pub dead_lettered: Vec<f64>,
}

impl Series {
    /// The latest rate of each, or zeros before two samples exist.
    pub fn latest(&self) -> [f64; 3] {
        let last = |v: &Vec<f64>| v.last().copied().unwrap_or(0.0);
        [last(&self.events_in), last(&self.events_out), last(&self.dead_lettered)]
    }
}

pub struct Rates {
    pipelines: Vec<String>,
    ring: Mutex<VecDeque<(Instant, Vec<Counts>)>>,
}

impl Rates {
    pub fn new(pipelines: Vec<String>) -> Rates {
        Rates { pipelines, ring: Mutex::new(VecDeque::with_capacity(KEPT)) }
    }

    /// The counters of every pipeline now.
    pub fn counts(&self, metrics: &Metrics) -> Vec<Counts> {
        self.pipelines
            .iter()
            .map(|p| {
                let t = metrics.pipeline_totals(p);
                [t.events_in, t.acks, t.dead_lettered]
            })
            .collect()
    }

    /// Add a sample, dropping the oldest beyond [`KEPT`].
    pub fn push(&self, at: Instant, counts: Vec<Counts>) {
        let mut ring = self.ring.lock().expect("not poisoned");
        if ring.len() == KEPT {
            ring.pop_front();
        }
        ring.push_back((at, counts));
    }

    /// The rates of pipeline number `i` between consecutive samples.
    pub fn series(&self, i: usize) -> Series {
        let ring = self.ring.lock().expect("not poisoned");
        let mut s = Series::default();
        for (a, b) in ring.iter().zip(ring.iter().skip(1)) {
            let secs = (b.0 - a.0).as_secs_f64().max(1e-3);
            let rate = |k: usize| b.1[i][k].saturating_sub(a.1[i][k]) as f64 / secs;
            s.events_in.push(rate(0));
            s.events_out.push(rate(1));
            s.dead_lettered.push(rate(2));
        }
        s
    }

    /// Sample every [`EVERY`] until `stop`.
    pub async fn run(self: Arc<Self>, metrics: Arc<Metrics>, stop: CancellationToken) {
        let mut tick = tokio::time::interval(EVERY);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => self.push(Instant::now(), self.counts(&metrics)),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn rates_between_samples_and_a_bounded_ring() {
        let r = Rates::new(vec!["logs".into()]);
        let t0 = Instant::now();
        for i in 0..(KEPT as u64 + 20) {
            r.push(t0 + Duration::from_secs(10 * i), vec![[i * 100, i * 90, i]]);
        }
        let s = r.series(0);
        assert_eq!(s.events_in.len(), KEPT - 1, "15 minutes of rates, no more");
        assert_eq!(s.latest(), [10.0, 9.0, 0.1]);
        assert_eq!(Rates::new(vec!["x".into()]).series(0).latest(), [0.0; 3]);
    }
}
