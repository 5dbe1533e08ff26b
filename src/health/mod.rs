//! Health: of the services that publish to sluice ([`producers`]), judged from their signs of
//! life, and of sluice itself ([`liveness`]): connected subscriptions, writable sinks, no stalled
//! stream. `probe` asks Pub/Sub what the streaming client cannot tell.

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
