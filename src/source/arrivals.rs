//! Whether more push events can still reach a pipeline's open batches.
//!
//! A push caller waits for its event to be durable, so once every request the pipeline holds has
//! its event in an open batch, waiting for `max_idle` cannot make that batch larger: every caller
//! that could add to it is waiting for it. Each push request is counted here from the moment it
//! has room in the flow control (it is about to read its body) until its event is in a batch, or
//! the request ends without one (refused body, dropped by the chain). When the count is zero,
//! nothing more can arrive but a request not yet received ([`crate::sink::group`] may linger for
//! those), and the sinks write at once. A request still waiting for room is not counted: it can
//! only go on once a write frees some.
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
}

/// One request counted in [`Arrivals`] until it is dropped: when its event enters a batch, or
/// with the request if it never gets that far.
#[derive(Debug)]
pub struct Arriving(Arc<Inner>);

/// A sink's view of [`Arrivals`]: wakes it when nothing more may arrive.
pub struct Settled(watch::Receiver<()>);

impl Arrivals {
    pub fn new() -> Arrivals {
        Arrivals(Arc::new(Inner { pending: AtomicUsize::new(0), settled: watch::Sender::new(()) }))
    }

    /// Count one request until the returned guard is dropped.
    pub fn begin(&self) -> Arriving {
        self.0.pending.fetch_add(1, Ordering::AcqRel);
        Arriving(self.0.clone())
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
        let a = arrivals.begin();
        let b = arrivals.begin();
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
        drop(arrivals.begin());
        let woken = tokio::time::timeout(Duration::from_secs(5), settled.changed()).await;
        assert!(woken.is_ok(), "the count fell to zero before the sink waited");
    }
}
