//! What a subscription holds for each message it handed over and that has not settled: its
//! lease, its room in the budget, its count in the gauges; given back by the message's ack.

use std::collections::VecDeque;
use std::sync::Arc;

use chrono::Utc;

use super::lease::{Key, Leases};
use super::wire::Received;
use crate::event::ack::{Ack, Outcome};
use crate::event::{footprint, Handover, Message};
use crate::source::budget::{Budget, Held};
use crate::telemetry::metrics::SourceMetrics;

/// What the subscription's streams together hold for their un-settled messages: leases, room in
/// the budget, and the gauges that count them. Each message's ack holds one reference to it, not
/// one to each of those: it is cloned on the stream's thread and dropped on the sink's.
pub struct Holds {
    pub leases: Leases,
    pub budget: Budget,
    pub metrics: SourceMetrics,
}

/// A handed-over message's part in [`Holds`], given back when its ack settles (or as failed, if
/// its ack were dropped uncalled).
struct Holding {
    holds: Arc<Holds>,
    key: Key,
    /// Byte permits of the budget it took.
    weight: u32,
    payload: usize,
    outcome: Outcome,
    /// Its id, when its settling is traced.
    traced: Option<String>,
}

impl Holding {
    fn settle(mut self, outcome: Outcome) {
        self.outcome = outcome; // given back as it is dropped
    }
}

impl Drop for Holding {
    fn drop(&mut self) {
        self.holds.leases.settle(self.key, self.outcome);
        if let Some(id) = &self.traced {
            tracing::debug!(message_id = %id, outcome = ?self.outcome, "settled");
        }
        self.holds.metrics.settled(self.outcome, self.payload);
        self.holds.budget.release(self.weight);
    }
}

impl Holds {
    /// The messages at the front of `waiting` as one hand-over, received now: the first with the
    /// room `first` already holds for it, the ones after it while the budget has room for them
    /// now. Counted once on the metrics; each message's ack gives back its own part.
    pub fn hand_over(
        self: &Arc<Self>,
        first: Held,
        waiting: &mut VecDeque<(Key, Received)>,
        subscription: &Arc<str>,
    ) -> Handover {
        let now = std::time::Instant::now();
        let (mut batch, mut payload) = (Handover::with_capacity(waiting.len()), 0);
        let mut held = Some(first);
        while let Some((_, r)) = waiting.front() {
            let Some(h) = held.take().or_else(|| self.budget.try_reserve(weight(r))) else { break };
            let (key, r) = waiting.pop_front().expect("front was there");
            payload += r.data.len();
            let ack = self.ack(key, &r, h);
            batch.push(message(r, subscription.clone(), now), ack);
        }
        if let Some(last) = batch.messages.last() {
            self.metrics.handed(batch.len(), payload, last.publish_time);
        }
        batch
    }

    /// The ack of a message, which gives back what it holds.
    fn ack(self: &Arc<Self>, key: Key, r: &Received, held: Held) -> Ack {
        // Per-message trace (RUST_LOG=sluice::source::pull=debug) to follow one id through
        // crashes and redeliveries; the id is cloned only when it is on.
        let traced = tracing::enabled!(tracing::Level::DEBUG).then(|| r.message_id.clone());
        if let Some(id) = &traced {
            tracing::debug!(message_id = %id, attempt = r.delivery_attempt, "received");
        }
        let holding = Holding {
            holds: self.clone(),
            key,
            weight: held.detach(),
            payload: r.data.len(),
            outcome: Outcome::Failed,
            traced,
        };
        Ack::new(move |outcome| holding.settle(outcome))
    }
}

/// What a message weighs in the budget.
pub fn weight(r: &Received) -> usize {
    footprint(r.data.len(), r.message_id.len())
}

/// The pipeline's view of a pulled message, received at `received`.
fn message(r: Received, subscription: Arc<str>, received: std::time::Instant) -> Message {
    Message {
        message_id: r.message_id,
        publish_time: r.publish_time.unwrap_or_else(Utc::now),
        attributes: r.attributes,
        data: r.data,
        subscription,
        delivery_attempt: u32::try_from(r.delivery_attempt).ok().filter(|&a| a > 0),
        received,
    }
}
