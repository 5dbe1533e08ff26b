//! The leases of one subscription's held messages: extended while sluice holds them, then acked
//! (every sink has them, or dead letters do) or nacked (redeliver now).
//!
//! Acks and nacks are sent in batches by unary calls, not on a stream, so a stream that breaks
//! loses none of them; an ack id stays valid across streams. One that still fails is dropped with
//! a warning: its message comes back after its deadline, which at-least-once allows.

use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use bytes::Bytes;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::grpc::{Client, Method};
use super::wire;
use crate::event::ack::Outcome;

/// Ack ids per Acknowledge or ModifyAckDeadline call (Pub/Sub caps a request at 512 KiB).
const PER_CALL: usize = 2_500;
/// How often settled messages are sent back.
const FLUSH_EVERY: Duration = Duration::from_millis(100);
/// Held this long, a message's lease is no longer extended and Pub/Sub redelivers it.
const MAX_LEASE: Duration = Duration::from_secs(3600);

/// A held message's key in the table: its slot, and the slot's generation when it was taken.
pub type Key = u64;

/// One held message.
struct Lease {
    ack_id: Bytes,
    since: Instant,
}

/// What the subscription holds, and what is settled but not yet sent. Slots are reused, so
/// holding and settling cost no hashing; a key's generation makes a stale key harmless.
#[derive(Default)]
struct Table {
    slots: Vec<(u32, Option<Lease>)>,
    free: Vec<u32>,
    held: usize,
    acks: Vec<Bytes>,
    nacks: Vec<Bytes>,
}

impl Table {
    fn take(&mut self, lease: Lease) -> Key {
        self.held += 1;
        let index = match self.free.pop() {
            Some(i) => i,
            None => {
                self.slots.push((0, None));
                (self.slots.len() - 1) as u32
            }
        };
        let slot = &mut self.slots[index as usize];
        slot.1 = Some(lease);
        u64::from(slot.0) << 32 | u64::from(index)
    }

    fn release(&mut self, key: Key) -> Option<Lease> {
        let index = (key & u64::from(u32::MAX)) as u32;
        let slot = self.slots.get_mut(index as usize).filter(|s| u64::from(s.0) == key >> 32)?;
        let lease = slot.1.take()?;
        slot.0 = slot.0.wrapping_add(1);
        self.free.push(index);
        self.held -= 1;
        Some(lease)
    }
}

/// The lease table of one subscription, shared by its streams and the acks of its events.
#[derive(Clone)]
pub struct Leases {
    table: Arc<Mutex<Table>>,
    /// Wakes the sender when a full call's worth of acks waits, or the last lease settled.
    wake: Arc<Notify>,
}

impl Leases {
    pub fn new() -> Leases {
        Leases { table: Arc::default(), wake: Arc::new(Notify::new()) }
    }

    /// The table, even after a panic elsewhere while it was held (every update is one step).
    fn lock(&self) -> MutexGuard<'_, Table> {
        self.table.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
    }

    /// Take the leases of a frame's messages: `ack_ids` yields them in order, and so do the keys.
    pub fn hold<'a>(&self, ack_ids: impl Iterator<Item = &'a mut Bytes>) -> Vec<Key> {
        let since = Instant::now();
        let mut table = self.lock();
        ack_ids.map(|id| table.take(Lease { ack_id: std::mem::take(id), since })).collect()
    }

    /// A held message is done with: ack or nack it at the next flush.
    pub fn settle(&self, key: Key, outcome: Outcome) {
        let mut table = self.lock();
        let Some(lease) = table.release(key) else { return };
        let queue = match outcome {
            Outcome::Delivered => &mut table.acks,
            Outcome::Failed => &mut table.nacks,
        };
        queue.push(lease.ack_id);
        if queue.len() >= PER_CALL || table.held == 0 {
            self.wake.notify_one();
        }
    }

    #[cfg(test)]
    fn held(&self) -> usize {
        self.lock().held
    }

    /// Send settled messages back, and extend the leases of held ones, until `stop`; then until
    /// every held message is settled, for at most `shutdown_wait`.
    pub async fn run(self, sender: Sender, extension: Duration, stop: CancellationToken, shutdown_wait: Duration) {
        let seconds = deadline_seconds(extension);
        // Extended well before the deadline, so one slow call does not let a lease lapse.
        let period = Duration::from_secs(seconds as u64 / 2);
        let mut extend = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
        let mut flush = tokio::time::interval(FLUSH_EVERY);
        let mut give_up = None;
        loop {
            tokio::select! {
                _ = flush.tick() => {}
                _ = self.wake.notified() => {}
                _ = extend.tick() => sender.extend(self.leases_to_extend(Instant::now()), seconds).await,
                _ = stop.cancelled(), if give_up.is_none() => give_up = Some(Instant::now() + shutdown_wait),
            }
            // Read with the queues, under one lock: once none is held, every ack is in this flush.
            let (acks, nacks, held) = {
                let mut table = self.lock();
                (std::mem::take(&mut table.acks), std::mem::take(&mut table.nacks), table.held)
            };
            sender.settle(acks, nacks).await;
            match give_up {
                Some(_) if held == 0 => return,
                Some(at) if Instant::now() >= at => {
                    tracing::warn!(subscription = %sender.subscription, held,
                        "messages still unsettled at shutdown; Pub/Sub will redeliver them");
                    return;
                }
                _ => {}
            }
        }
    }

    /// The ack ids still within their maximum lease; older ones are forgotten (Pub/Sub redelivers).
    fn leases_to_extend(&self, now: Instant) -> Vec<Bytes> {
        let mut table = self.lock();
        let mut ids = Vec::with_capacity(table.held);
        let mut expired = Vec::new();
        for (index, (generation, lease)) in table.slots.iter().enumerate() {
            match lease {
                Some(l) if now.duration_since(l.since) < MAX_LEASE => ids.push(l.ack_id.clone()),
                Some(_) => expired.push(u64::from(*generation) << 32 | index as u64),
                None => {}
            }
        }
        for key in expired {
            if let Some(l) = table.release(key) {
                tracing::warn!(ack_id = ?l.ack_id, "message held past its maximum lease; Pub/Sub will redeliver it");
            }
        }
        ids
    }
}

impl Default for Leases {
    fn default() -> Self {
        Leases::new()
    }
}

/// Makes the unary calls of one subscription, a few tries each.
pub struct Sender {
    pub client: Client,
    pub subscription: Arc<str>,
}

impl Sender {
    async fn settle(&self, acks: Vec<Bytes>, nacks: Vec<Bytes>) {
        for chunk in acks.chunks(PER_CALL) {
            self.send(Method::Acknowledge, wire::acknowledge(&self.subscription, chunk), chunk.len()).await;
        }
        for chunk in nacks.chunks(PER_CALL) {
            let body = wire::modify_ack_deadline(&self.subscription, chunk, 0);
            self.send(Method::ModifyAckDeadline, body, chunk.len()).await;
        }
    }

    async fn extend(&self, ids: Vec<Bytes>, seconds: i32) {
        for chunk in ids.chunks(PER_CALL) {
            let body = wire::modify_ack_deadline(&self.subscription, chunk, seconds);
            self.send(Method::ModifyAckDeadline, body, chunk.len()).await;
        }
    }

    async fn send(&self, method: Method, body: Bytes, ids: usize) {
        let mut wait = Duration::from_millis(100);
        for attempt in 1..=4 {
            match self.client.call(method, &self.subscription, body.clone()).await {
                Ok(()) => return,
                Err(status) if attempt < 4 && retryable(status.code()) => {
                    tracing::debug!(subscription = %self.subscription, ?method, error = %status, "retrying");
                    tokio::time::sleep(wait).await;
                    wait *= 2;
                }
                Err(status) => {
                    tracing::warn!(subscription = %self.subscription, ?method, ids, error = %status,
                        "call failed; Pub/Sub will redeliver these messages after their deadline");
                    return;
                }
            }
        }
    }
}

/// A lease's length in whole seconds, within what Pub/Sub accepts (10 s to 10 min).
pub fn deadline_seconds(d: Duration) -> i32 {
    d.as_secs().clamp(10, 600) as i32
}

/// The codes Google's clients retry for these calls.
fn retryable(code: tonic::Code) -> bool {
    use tonic::Code::*;
    matches!(code, Unavailable | DeadlineExceeded | Internal | ResourceExhausted | Aborted | Unknown)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ids(names: &[&'static str]) -> Vec<Bytes> {
        names.iter().map(|n| Bytes::from_static(n.as_bytes())).collect()
    }

    #[test]
    fn settled_messages_queue_as_acks_or_nacks_once() {
        let leases = Leases::new();
        let mut held = ids(&["a", "b", "c"]);
        let keys = leases.hold(held.iter_mut());
        assert!(held.iter().all(Bytes::is_empty), "ids move into the table");
        leases.settle(keys[0], Outcome::Delivered);
        leases.settle(keys[2], Outcome::Failed);
        leases.settle(keys[2], Outcome::Delivered); // settled twice: the second is ignored
        assert_eq!(leases.held(), 1);
        assert_eq!(leases.leases_to_extend(Instant::now()), ids(&["b"]));
        let table = leases.lock();
        assert_eq!((table.acks.clone(), table.nacks.clone()), (ids(&["a"]), ids(&["c"])));
    }

    #[test]
    fn a_reused_slot_ignores_the_stale_key() {
        let leases = Leases::new();
        let old = leases.hold(ids(&["old"]).iter_mut())[0];
        leases.settle(old, Outcome::Delivered);
        let new = leases.hold(ids(&["new"]).iter_mut())[0];
        assert_ne!(old, new, "same slot, next generation");
        leases.settle(old, Outcome::Failed);
        assert_eq!(leases.held(), 1, "the stale key settled nothing");
        leases.settle(new, Outcome::Delivered);
        assert_eq!(leases.lock().acks, ids(&["old", "new"]));
        assert!(leases.lock().nacks.is_empty());
    }

    #[test]
    fn leases_past_the_maximum_are_dropped() {
        let leases = Leases::new();
        leases.hold(ids(&["old"]).iter_mut());
        let later = Instant::now() + MAX_LEASE;
        let keys = leases.hold(ids(&["new"]).iter_mut());
        let index = (keys[0] & u64::from(u32::MAX)) as usize;
        leases.lock().slots[index].1.as_mut().unwrap().since = later;
        assert_eq!(leases.leases_to_extend(later), ids(&["new"]));
        assert_eq!(leases.held(), 1);
    }
}
