//! What sluice knows of the services that publish to it, and of itself, as the `health` section
//! of `config/sluice.yaml` configures it:
//! - [`producers`]: each service's state, judged from its signs of life on its streams;
//! - [`config_state`]: each service's current configuration (other services' settings, not
//!   sluice's own), from the `config-changes` stream;
//! - [`liveness`]: sluice's own readiness (connected subscriptions, writable sinks, no stalled
//!   stream), with `probe` asking Pub/Sub what the streaming client cannot tell.
//!
//! `producers` and `config_state` are the same kind of thing: an observer of a pipeline's output,
//! plus a follower of the lake for what other instances of a shared subscription received.

pub mod config_state;
pub mod liveness;
pub(crate) mod probe;
pub mod producers;

use chrono::{DateTime, Utc};
use tokio::time::Instant;

/// Wall-clock time that advances with tokio's clock, so thresholds measured against event
/// timestamps can be tested with paused time. Read once at start, it then follows the monotonic
/// clock: a wall-clock jump does not make every producer late at once.
#[derive(Debug, Clone, Copy)]
pub struct Clock {
    wall: DateTime<Utc>,
    mono: Instant,
}

impl Default for Clock {
    fn default() -> Self {
        Clock { wall: Utc::now(), mono: Instant::now() }
    }
}

impl Clock {
    pub fn now(&self) -> DateTime<Utc> {
        self.wall + (Instant::now() - self.mono)
    }

    /// The tokio instant at which the wall clock reads `t` (now, if `t` is past).
    pub fn instant_at(&self, t: DateTime<Utc>) -> Instant {
        self.mono + (t - self.wall).to_std().unwrap_or_default()
    }
}
