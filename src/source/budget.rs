//! Flow control that sluice enforces itself, per subscription: a stream takes the next message
//! only while fewer than `max_outstanding_messages` are held un-settled, and while what they
//! weigh decoded ([`crate::event::footprint`]) fits in the bytes the budget was given.
//!
//! Pub/Sub's own flow control is not enough to bound memory. The server counts per stream, and
//! when a stream is reset or a lease lapses it sends more while sluice still holds the first
//! copies (a reopened stream starts from zero). Messages the client has read but sluice has not
//! taken stay leased in the client's pool, at most one pull response per stream. And it counts
//! payload only, while a message sluice holds weighs about four times that at its peak.
//!
//! A stream that has to wait for room tells the pipeline's sinks ([`Budget::pressed`]). They then
//! write their open batches as soon as those hold at least half of what the budget can hold: a
//! batch that cannot fill is not left waiting for `max_idle` or `max_age`, and a batch is never
//! written smaller than that under pressure, so batches stay large (each write frees only what
//! it wrote, and the next fills again from there).

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use tokio::sync::{Notify, OwnedSemaphorePermit, Semaphore};

use crate::config::global::{HttpConfig, PubsubConfig};

/// The room one subscription has left, shared by its streams.
#[derive(Clone)]
pub struct Budget {
    messages: Arc<Semaphore>,
    bytes: Arc<Semaphore>,
    max_messages: usize,
    max_bytes: usize,
    /// Notified when a stream must wait for room.
    pressure: Arc<Notify>,
}

/// One message's share of the budget, given back when it is dropped (the message settled).
pub struct Held {
    _message: OwnedSemaphorePermit,
    bytes: OwnedSemaphorePermit,
}

impl Held {
    /// Keep the room without this handle, for a holder that gives it back itself with
    /// [`Budget::release`] (a pulled message's ack, which shares one handle to the budget with
    /// the rest of its subscription's instead of holding two of its own); the byte permits.
    pub fn detach(self) -> u32 {
        let bytes = self.bytes.num_permits() as u32;
        self._message.forget();
        self.bytes.forget();
        bytes
    }

    /// Give back what it holds beyond `bytes` (at least one byte stays held), once a message
    /// reserved at an upper bound is known to weigh less.
    pub fn shrink_to(&mut self, bytes: usize) {
        let keep = bytes.max(1);
        if let Some(extra) = self.bytes.num_permits().checked_sub(keep).filter(|n| *n > 0) {
            drop(self.bytes.split(extra));
        }
    }
}

/// Room for one message whose size is not known yet.
pub struct Slot(OwnedSemaphorePermit);

impl Budget {
    pub fn new(max_messages: usize, max_bytes: usize) -> Budget {
        let max_bytes = max_bytes.clamp(1, Semaphore::MAX_PERMITS);
        let max_messages = max_messages.clamp(1, Semaphore::MAX_PERMITS);
        Budget {
            messages: Arc::new(Semaphore::new(max_messages)),
            bytes: Arc::new(Semaphore::new(max_bytes)),
            max_messages,
            max_bytes,
            pressure: Arc::new(Notify::new()),
        }
    }

    /// A subscription's budget: its messages, and sluice's half of its bytes (the other half is
    /// what Pub/Sub may send ahead; see [`crate::source::pubsub`]).
    pub fn for_subscription(config: &PubsubConfig) -> Budget {
        Budget::new(config.max_outstanding_messages.get(), config.half_of_bytes())
    }

    /// A push-only pipeline's budget: its requests from the first byte of their body until
    /// their event settles (see [`crate::server`]).
    pub fn for_push(config: &HttpConfig) -> Budget {
        Budget::new(config.max_outstanding_messages.get(), config.max_outstanding_bytes.0 as usize)
    }

    /// How many messages it holds when full, and what they may weigh.
    pub fn capacity(&self) -> (usize, usize) {
        (self.max_messages, self.max_bytes)
    }

    /// Resolves once a stream has had to wait for room (since the last time it resolved).
    pub async fn pressed(&self) {
        self.pressure.notified().await
    }

    /// Wait for room for one more message. `blocked` counts the wait as back-pressure, so the
    /// liveness check does not take a full budget for a stalled stream.
    pub async fn slot(&self, blocked: &AtomicU64) -> Slot {
        let permit = match self.messages.clone().try_acquire_owned() {
            Ok(p) => p,
            Err(_) => {
                let _waiting = self.wait(blocked);
                self.messages.clone().acquire_owned().await.expect("the budget is never closed")
            }
        };
        Slot(permit)
    }

    /// Turn a slot into a hold on `bytes` more (a message's decoded weight), waiting for them if
    /// needed. A message larger than the whole budget takes all of it, so it still passes once
    /// it is alone.
    pub async fn hold(&self, slot: Slot, bytes: usize, blocked: &AtomicU64) -> Held {
        let n = self.permits(bytes);
        let permit = match self.bytes.clone().try_acquire_many_owned(n) {
            Ok(p) => p,
            Err(_) => {
                let _waiting = self.wait(blocked);
                self.bytes.clone().acquire_many_owned(n).await.expect("the budget is never closed")
            }
        };
        Held { _message: slot.0, bytes: permit }
    }

    /// Room for one message of `bytes` if there is room now, without waiting or telling anyone:
    /// a source filling a batch after its first message, which waited with [`Budget::reserve`].
    pub fn try_reserve(&self, bytes: usize) -> Option<Held> {
        let message = self.messages.clone().try_acquire_owned().ok()?;
        let bytes = self.bytes.clone().try_acquire_many_owned(self.permits(bytes)).ok()?;
        Some(Held { _message: message, bytes })
    }

    /// Give back one message's room, taken as a [`Held`] of `bytes` permits and detached.
    pub fn release(&self, bytes: u32) {
        self.messages.add_permits(1);
        self.bytes.add_permits(bytes as usize);
    }

    /// The byte permits a message of `bytes` takes: at least one, at most the whole budget.
    fn permits(&self, bytes: usize) -> u32 {
        bytes.clamp(1, self.max_bytes).min(u32::MAX as usize) as u32
    }

    /// Room for one message of `bytes`, waiting for it if needed: [`Budget::slot`] then
    /// [`Budget::hold`].
    pub async fn reserve(&self, bytes: usize, blocked: &AtomicU64) -> Held {
        let slot = self.slot(blocked).await;
        self.hold(slot, bytes, blocked).await
    }

    /// A wait for room: counted as back-pressure, and the sinks are told.
    fn wait<'a>(&self, blocked: &'a AtomicU64) -> Waiting<'a> {
        self.pressure.notify_one();
        Waiting::on(blocked)
    }
}

/// Counts one waiter in `blocked` for as long as it lives, even if the wait is cancelled.
struct Waiting<'a>(&'a AtomicU64);

impl<'a> Waiting<'a> {
    fn on(blocked: &'a AtomicU64) -> Self {
        blocked.fetch_add(1, Ordering::Relaxed);
        Waiting(blocked)
    }
}

impl Drop for Waiting<'_> {
    fn drop(&mut self) {
        self.0.fetch_sub(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn a_full_budget_waits_until_a_message_settles_and_counts_as_blocked() {
        let budget = Budget::new(2, 1_000);
        let blocked = Arc::new(AtomicU64::new(0));
        let a = budget.hold(budget.slot(&blocked).await, 10, &blocked).await;
        let _b = budget.hold(budget.slot(&blocked).await, 10, &blocked).await;
        let quiet = tokio::time::timeout(Duration::from_millis(50), budget.pressed()).await;
        assert!(quiet.is_err(), "taking a message there was room for tells nobody");
        let (b2, bl) = (budget.clone(), blocked.clone());
        let third = tokio::spawn(async move { b2.slot(&bl).await });
        tokio::time::sleep(Duration::from_millis(50)).await;
        assert!(!third.is_finished(), "a third message waits while two are held");
        assert_eq!(blocked.load(Ordering::Relaxed), 1, "the wait counts as back-pressure");
        let told = tokio::time::timeout(Duration::from_secs(5), budget.pressed()).await;
        assert!(told.is_ok(), "the sinks are told a stream waits for room");
        assert_eq!(budget.capacity(), (2, 1_000));
        drop(a);
        tokio::time::timeout(Duration::from_secs(5), third).await.expect("room after a settle").unwrap();
        assert_eq!(blocked.load(Ordering::Relaxed), 0);
    }

    #[tokio::test]
    async fn bytes_bound_the_budget_and_an_oversized_message_passes_alone() {
        let budget = Budget::new(100, 1_000);
        let blocked = AtomicU64::new(0);
        let first = budget.hold(budget.slot(&blocked).await, 600, &blocked).await;
        let slot = budget.slot(&blocked).await;
        let wait = tokio::time::timeout(Duration::from_millis(50), budget.hold(slot, 600, &blocked)).await;
        assert!(wait.is_err(), "600 more bytes do not fit in 1,000 while 600 are held");
        assert_eq!(blocked.load(Ordering::Relaxed), 0, "a cancelled wait is no longer counted");
        drop(first);
        let slot = budget.slot(&blocked).await;
        let huge = tokio::time::timeout(Duration::from_secs(5), budget.hold(slot, 5_000, &blocked)).await;
        assert!(huge.is_ok(), "a message larger than the budget takes all of it");
    }

    #[tokio::test]
    async fn a_reservation_shrunk_to_its_weight_gives_the_rest_back() {
        let budget = Budget::new(10, 1_000);
        let blocked = AtomicU64::new(0);
        let mut first = budget.reserve(900, &blocked).await;
        let wait = tokio::time::timeout(Duration::from_millis(50), budget.reserve(300, &blocked)).await;
        assert!(wait.is_err(), "300 bytes do not fit while 900 are reserved");
        first.shrink_to(100);
        let second = tokio::time::timeout(Duration::from_secs(5), budget.reserve(900, &blocked)).await;
        assert!(second.is_ok(), "900 fit once the first holds only 100");
        let third = tokio::time::timeout(Duration::from_millis(50), budget.reserve(1, &blocked)).await;
        assert!(third.is_err(), "the 100 still held count: 1,000 of 1,000 are taken");
        first.shrink_to(0);
        let fourth = tokio::time::timeout(Duration::from_millis(50), budget.reserve(99, &blocked)).await;
        assert!(fourth.is_ok(), "shrunk to nothing, it keeps one byte and gives 99 back");
    }

    #[tokio::test]
    async fn try_reserve_takes_room_only_when_there_is_some_now() {
        let budget = Budget::new(2, 1_000);
        let blocked = AtomicU64::new(0);
        let a = budget.try_reserve(600).expect("an empty budget has room");
        assert!(budget.try_reserve(600).is_none(), "600 more bytes do not fit in 1,000");
        let b = budget.try_reserve(400).expect("400 fit beside 600");
        assert!(budget.try_reserve(0).is_none(), "two messages of two are held");
        let quiet = tokio::time::timeout(Duration::from_millis(50), budget.pressed()).await;
        assert!(quiet.is_err(), "a try that found no room tells nobody: the caller waits with reserve");
        drop(a);
        assert!(budget.try_reserve(5_000).is_none(), "an oversized message needs all of the budget");
        drop(b);
        let _all = budget.try_reserve(5_000).expect("alone, an oversized message takes all of it");
        assert_eq!(blocked.load(Ordering::Relaxed), 0, "nothing waited");
    }

    #[tokio::test]
    async fn detached_room_stays_taken_until_released() {
        let budget = Budget::new(2, 1_000);
        let blocked = AtomicU64::new(0);
        let weight = budget.try_reserve(700).expect("room").detach();
        assert_eq!(weight, 700);
        assert!(budget.try_reserve(400).is_none(), "the detached 700 still count");
        let _b = budget.try_reserve(300).expect("300 fit beside 700");
        assert!(budget.try_reserve(0).is_none(), "the detached message still counts as one of two");
        budget.release(weight);
        let c = tokio::time::timeout(Duration::from_secs(5), budget.reserve(700, &blocked)).await;
        assert!(c.is_ok(), "released, its message and bytes are room again");
    }
}
