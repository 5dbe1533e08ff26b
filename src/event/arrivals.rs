//! Whether more push events can still reach a pipeline's open batches.
//!
//! A push caller waits for its event to be durable, so once every request the pipeline holds has
//! its event in an open batch, waiting for `max_idle` cannot make that batch larger: every caller
//! that could add to it is waiting for it. Each push request is counted here from the moment it
//! has room in the flow control (it is about to read its body) until its event is in a batch, or
//! the request ends without one (refused body, dropped by the chain). When the count is zero,
//! nothing more can arrive but a request not yet received, and the sinks write at once. A request
//! still waiting for room is not counted: it can only go on once a write frees some.
//!
//! Requests not yet received are the callers just answered, sending their next event. The sinks
//! wait for them only while the open batches hold fewer events than requests were held at once
//! since their last write ([`Arrivals::callers`]), and at most `http.push_linger`: a lone caller
//! is written at once, and 80 callers fill a batch of 80 without waiting for the linger to end.
//!
//! Pulled pipelines have no such count: Pub/Sub may deliver at any moment, so they keep their
//! batching.

use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

use tokio::sync::watch;

/// One pipeline's push requests whose event is not in a batch yet, shared by its handler and sinks.
#[derive(Clone, Debug)]
pub struct Arrivals(Arc<Inner>);

#[derive(Debug)]
struct Inner {
    pending: AtomicUsize,
    /// Touched each time the count falls to zero, so a sink waiting on it looks again.
    settled: watch::Sender<()>,
    /// Requests held from the same point until answered, and the most held at once since the
    /// sinks last wrote: callers whose answer went out come back with their next event soon, so
    /// a batch holding fewer than that is worth a short wait (see [`Arrivals::callers`]).
    held: AtomicUsize,
    peak: AtomicUsize,
}

/// One request counted in [`Arrivals`] until it is dropped: when its event enters a batch, or
/// with the request if it never gets that far.
#[derive(Debug)]
pub struct Arriving(Arc<Inner>);

/// One request counted as held until it is dropped, with its answer.
pub struct Answering(Arc<Inner>);

/// A sink's view of [`Arrivals`]: wakes it when nothing more may arrive.
pub struct Settled(watch::Receiver<()>);

impl Arrivals {
    pub fn new() -> Arrivals {
        Arrivals(Arc::new(Inner {
            pending: AtomicUsize::new(0),
            settled: watch::Sender::new(()),
            held: AtomicUsize::new(0),
            peak: AtomicUsize::new(0),
        }))
    }

    /// Count one request: as arriving until its event is in a batch, as held until answered.
    pub fn begin(&self) -> (Answering, Arriving) {
        let held = self.0.held.fetch_add(1, Ordering::AcqRel) + 1;
        self.0.peak.fetch_max(held, Ordering::AcqRel);
        self.0.pending.fetch_add(1, Ordering::AcqRel);
        (Answering(self.0.clone()), Arriving(self.0.clone()))
    }

    /// The most requests held at once since the last [`Arrivals::new_round`]: about how many
    /// callers an open batch can expect while their answers and next requests are on the way.
    pub fn callers(&self) -> usize {
        self.0.peak.load(Ordering::Acquire)
    }

    /// Start counting [`Arrivals::callers`] again from the requests held now (the sinks write).
    pub fn new_round(&self) {
        self.0.peak.store(self.0.held.load(Ordering::Acquire), Ordering::Release);
    }

    /// Whether a request the pipeline holds may still add an event to its batches.
    pub fn can_more_arrive(&self) -> bool {
        self.0.pending.load(Ordering::Acquire) > 0
    }

    /// For a sink that waits until nothing more may arrive.
    pub fn watch(&self) -> Settled {
        Settled(self.0.settled.subscribe())
    }
}

impl Default for Arrivals {
    fn default() -> Self {
        Arrivals::new()
    }
}

impl Settled {
    /// Resolves once the count has fallen to zero since the last time this resolved (it may have
    /// risen again since: look at [`Arrivals::can_more_arrive`]).
    pub async fn changed(&mut self) {
        if self.0.changed().await.is_err() {
            std::future::pending::<()>().await; // the Arrivals is gone: no more changes
        }
    }
}

impl Drop for Answering {
    fn drop(&mut self) {
        self.0.held.fetch_sub(1, Ordering::AcqRel);
    }
}

impl Drop for Arriving {
    fn drop(&mut self) {
        if self.0.pending.fetch_sub(1, Ordering::AcqRel) == 1 {
            self.0.settled.send_modify(|_| {});
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[tokio::test]
    async fn nothing_more_arrives_once_every_request_is_in_a_batch() {
        let arrivals = Arrivals::new();
        let mut settled = arrivals.watch();
        assert!(!arrivals.can_more_arrive(), "no request held");
        let (_held_a, a) = arrivals.begin();
        let (_held_b, b) = arrivals.begin();
        assert!(arrivals.can_more_arrive());
        drop(a);
        assert!(arrivals.can_more_arrive(), "one body is still being read");
        let quiet = tokio::time::timeout(Duration::from_millis(50), settled.changed()).await;
        assert!(quiet.is_err(), "not woken while a request may still add an event");
        drop(b);
        assert!(!arrivals.can_more_arrive());
        let woken = tokio::time::timeout(Duration::from_secs(5), settled.changed()).await;
        assert!(woken.is_ok(), "woken when the last request's event entered a batch");
    }

    #[tokio::test]
    async fn a_wake_before_the_wait_is_not_lost() {
        let arrivals = Arrivals::new();
        let mut settled = arrivals.watch();
        drop(arrivals.begin().1);
        let woken = tokio::time::timeout(Duration::from_secs(5), settled.changed()).await;
        assert!(woken.is_ok(), "the count fell to zero before the sink waited");
    }

    #[test]
    fn callers_is_the_most_held_at_once_since_the_last_round() {
        let arrivals = Arrivals::new();
        let first: Vec<_> = (0..3).map(|_| arrivals.begin()).collect();
        assert_eq!(arrivals.callers(), 3);
        drop(first);
        assert_eq!(arrivals.callers(), 3, "answered callers are expected back");
        let _one = arrivals.begin();
        arrivals.new_round();
        assert_eq!(arrivals.callers(), 1, "a new round starts from the requests held now");
    }
}
