//! Acknowledgement tracking: a message is settled once every part of the pipeline is done with it.
//!
//! Each incoming message gets one [`Ack`]. Whoever holds a piece of the message (a sink batch, the
//! dead-letter writer) holds an [`Ack`] split from it and settles it explicitly. When the last piece is
//! settled the source's callback runs once with the combined [`Outcome`]: `Delivered` only if every
//! piece was delivered. A piece dropped without being settled counts as `Failed`, so a bug that loses
//! an event leads to redelivery, never to a silent ack.

use std::sync::{Arc, Mutex, MutexGuard};

/// The final word on a message, reported once to its source.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Durable in every sink it was meant for (or in dead letters, or intentionally filtered).
    Delivered,
    /// Some part could not be made durable: the source must redeliver (nack).
    Failed,
}

/// A message's acknowledgement and the callback its source gave, in one allocation with the
/// callback's own type (no box of its own): a source creates one per message.
struct Shared<F: FnOnce(Outcome) + Send> {
    failed: std::sync::atomic::AtomicBool,
    /// Taken when the last share settles (in `drop`, which needs no lock); the mutex only makes
    /// the message shareable between threads.
    callback: Mutex<Option<F>>,
    /// What observers (the dedupe stage) see; it outlives this once the message is settled.
    status: Arc<Status>,
}

/// What a share needs of its message, whatever its callback's type.
trait Message: Send + Sync {
    fn fail(&self);
    fn status(&self) -> &Arc<Status>;
}

impl<F: FnOnce(Outcome) + Send> Message for Shared<F> {
    fn fail(&self) {
        self.failed.store(true, std::sync::atomic::Ordering::Release);
    }

    fn status(&self) -> &Arc<Status> {
        &self.status
    }
}

/// A message's status for its watchers: small, because the dedupe stage keeps one per key
/// for its whole window.
struct Status(Mutex<State>);

enum State {
    /// Duplicates folded into the message: they settle exactly as it does.
    InFlight(Vec<Ack>),
    Settled(Outcome),
}

impl Status {
    /// The state, even after a panic elsewhere while it was held (it is always consistent).
    fn lock(&self) -> MutexGuard<'_, State> {
        crate::locks::lock(&self.0)
    }
}

impl<F: FnOnce(Outcome) + Send> Drop for Shared<F> {
    fn drop(&mut self) {
        let outcome =
            if self.failed.load(std::sync::atomic::Ordering::Acquire) { Outcome::Failed } else { Outcome::Delivered };
        // Settled under the lock, so a duplicate is either taken as a follower here or sees the outcome.
        let followers = match std::mem::replace(&mut *self.status.lock(), State::Settled(outcome)) {
            State::InFlight(followers) => followers,
            State::Settled(_) => Vec::new(),
        };
        if let Some(cb) = self.callback.get_mut().ok().and_then(|c| c.take()) {
            cb(outcome);
        }
        for f in followers {
            f.settle(outcome);
        }
    }
}

/// One holder's share of a message's acknowledgement. Not `Clone`: use [`Ack::split`].
pub struct Ack {
    shared: Option<Arc<dyn Message>>,
}

impl std::fmt::Debug for Ack {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ack").field("tracked", &self.shared.is_some()).finish()
    }
}

impl Ack {
    /// A tracked acknowledgement; `on_settled` runs exactly once, when every share is settled.
    pub fn new(on_settled: impl FnOnce(Outcome) + Send + 'static) -> Self {
        Ack {
            shared: Some(Arc::new(Shared {
                failed: false.into(),
                callback: Mutex::new(Some(on_settled)),
                status: Arc::new(Status(Mutex::new(State::InFlight(Vec::new())))),
            })),
        }
    }

    /// An acknowledgement nobody waits for (replayed data, tests).
    pub fn none() -> Self {
        Ack { shared: None }
    }

    /// A tracked acknowledgement and a receiver for its outcome.
    pub fn channel() -> (Self, tokio::sync::oneshot::Receiver<Outcome>) {
        let (tx, rx) = tokio::sync::oneshot::channel();
        (
            Ack::new(move |o| {
                let _ = tx.send(o);
            }),
            rx,
        )
    }

    /// Another share of the same message, for a second holder (e.g. a second sink).
    pub fn split(&self) -> Ack {
        Ack { shared: self.shared.clone() }
    }

    /// Take this share out, leaving an untracked one behind.
    pub fn take(&mut self) -> Ack {
        Ack { shared: self.shared.take() }
    }

    /// Settle this share.
    pub fn settle(mut self, outcome: Outcome) {
        if let Some(shared) = self.shared.take() {
            if outcome == Outcome::Failed {
                shared.fail();
            }
        }
    }

    /// A handle that can later tell how the message settled, or fold a duplicate into it.
    pub fn watch(&self) -> Option<AckWatch> {
        self.shared.as_ref().map(|s| AckWatch { status: s.status().clone() })
    }
}

impl Drop for Ack {
    fn drop(&mut self) {
        if let Some(shared) = self.shared.take() {
            // Dropped without being settled: something lost it. Fail so the source redelivers.
            tracing::debug!("ack dropped without being settled; message will be redelivered");
            shared.fail();
        }
    }
}

/// Observes a message's acknowledgement without keeping it open: it holds only the message's
/// small `Status`, not what settling it needs.
#[derive(Clone)]
pub struct AckWatch {
    status: Arc<Status>,
}

/// What became of a duplicate offered to [`AckWatch::absorb`].
pub enum Absorbed {
    /// The duplicate now settles with the original; drop the duplicate event.
    Folded,
    /// The original failed: the duplicate must go through the pipeline itself.
    Retry(Ack),
}

impl AckWatch {
    /// Fold a duplicate's acknowledgement into the original's.
    ///
    /// While the original is in flight the duplicate settles with it; once the original is
    /// delivered the duplicate is delivered at once; if it failed, the duplicate is handed back.
    pub fn absorb(&self, dup: Ack) -> Absorbed {
        let outcome = match &mut *self.status.lock() {
            State::InFlight(followers) => {
                followers.push(dup);
                return Absorbed::Folded;
            }
            State::Settled(outcome) => *outcome,
        };
        match outcome {
            Outcome::Delivered => {
                dup.settle(Outcome::Delivered);
                Absorbed::Folded
            }
            Outcome::Failed => Absorbed::Retry(dup),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn delivered_only_when_every_share_is_delivered() {
        let (ack, mut rx) = Ack::channel();
        let a = ack.split();
        let b = ack.split();
        ack.settle(Outcome::Delivered);
        a.settle(Outcome::Delivered);
        assert!(rx.try_recv().is_err(), "settled too early");
        b.settle(Outcome::Delivered);
        assert_eq!(rx.try_recv().unwrap(), Outcome::Delivered);
    }

    #[test]
    fn one_failed_share_fails_the_message() {
        let (ack, mut rx) = Ack::channel();
        let a = ack.split();
        ack.settle(Outcome::Delivered);
        a.settle(Outcome::Failed);
        assert_eq!(rx.try_recv().unwrap(), Outcome::Failed);
    }

    #[test]
    fn dropping_a_share_unsettled_fails_the_message() {
        let (ack, mut rx) = Ack::channel();
        drop(ack);
        assert_eq!(rx.try_recv().unwrap(), Outcome::Failed);
    }

    #[test]
    fn duplicate_follows_in_flight_original() {
        let (orig, mut orx) = Ack::channel();
        let (dup, mut drx) = Ack::channel();
        let watch = orig.watch().unwrap();
        assert!(matches!(watch.absorb(dup), Absorbed::Folded));
        assert!(drx.try_recv().is_err());
        orig.settle(Outcome::Failed);
        assert_eq!(orx.try_recv().unwrap(), Outcome::Failed);
        assert_eq!(drx.try_recv().unwrap(), Outcome::Failed);
    }

    #[test]
    fn duplicate_of_failed_original_is_handed_back() {
        let (orig, _orx) = Ack::channel();
        let watch = orig.watch().unwrap();
        orig.settle(Outcome::Failed);
        let (dup, mut drx) = Ack::channel();
        match watch.absorb(dup) {
            Absorbed::Retry(a) => a.settle(Outcome::Delivered),
            Absorbed::Folded => panic!("duplicate of a failed message must be retried"),
        }
        assert_eq!(drx.try_recv().unwrap(), Outcome::Delivered);
    }

    #[test]
    fn duplicate_offered_while_the_original_settles_is_never_lost() {
        for _ in 0..500 {
            let (orig, _orx) = Ack::channel();
            let watch = orig.watch().unwrap();
            let (dup, mut drx) = Ack::channel();
            let settler = std::thread::spawn(move || orig.settle(Outcome::Delivered));
            assert!(matches!(watch.absorb(dup), Absorbed::Folded), "the original was delivered");
            settler.join().unwrap();
            assert_eq!(drx.try_recv().unwrap(), Outcome::Delivered);
        }
    }

    #[test]
    fn duplicate_of_delivered_original_is_delivered() {
        let (orig, _orx) = Ack::channel();
        let watch = orig.watch().unwrap();
        orig.settle(Outcome::Delivered);
        let (dup, mut drx) = Ack::channel();
        assert!(matches!(watch.absorb(dup), Absorbed::Folded));
        assert_eq!(drx.try_recv().unwrap(), Outcome::Delivered);
    }
}
