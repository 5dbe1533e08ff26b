//! Pub/Sub streaming pull, spoken by sluice itself: each response frame is read once, straight
//! into what the pipeline keeps of each message ([`wire`]), handed over in batches of messages,
//! never as an event each ([`crate::event::Handover`]), over tonic ([`grpc`]), with the leases kept here
//! ([`lease`]). The official client decodes every message twice (into its generated types, then
//! its `Message`); `scripts/bench hot_path` prints what each way costs per event.
//!
//! Each subscription is read by `streams` parallel streams. What is held un-acked is bounded
//! twice by `max_outstanding_messages` / `_bytes`: Pub/Sub's flow control (split across streams)
//! and sluice's own [`Budget`] for the whole subscription, which also holds when Pub/Sub sends
//! more after a stream reset. The bytes are split in two halves, so that together they bound
//! memory: Pub/Sub may send payload up to one, and what sluice holds, weighed decoded (about 4x
//! the payload), fits in the other. Held messages' leases are extended until they settle, so an
//! event waiting in an open batch is not redelivered. What a message holds (its lease, its room,
//! its count in the gauges) is given back by its ack ([`Holds`]).
//! A message is acked only when its [`Ack`](crate::event::ack::Ack) settles `Delivered` (every
//! sink wrote it, or it is in dead letters); `Failed` nacks it so Pub/Sub redelivers at once.
//! Sending into the pipeline's bounded input waits when the pipeline is full, so slow sinks slow
//! the pulling.

pub mod grpc;
mod holds;
pub mod lease;
pub mod wire;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use self::grpc::Client;
pub use self::holds::{weight, Holds};
use self::lease::{Key, Leases, Sender};
use self::wire::Received;
use super::budget::Budget;
use super::PipelineInput;
use crate::config::global::PubsubConfig;
use crate::event::ack::Outcome;
use crate::event::Handover;
use crate::telemetry::metrics::SourceMetrics;

pub use self::grpc::ConnectError;

/// Longest the leases wait at shutdown for delivered messages to settle.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(60);
/// An empty request this often tells Pub/Sub a quiet stream's client is alive.
const KEEPALIVE: Duration = Duration::from_secs(30);

/// Start the pulling tasks for one subscription feeding one pipeline, and the task that keeps
/// their leases. They stop pulling when `stop` is cancelled; the lease task ends once what they
/// handed over has settled and its acks are sent. They report to `metrics`, and reopen their
/// streams when the liveness check asks through it.
pub fn spawn(
    client: &Client,
    config: &PubsubConfig,
    subscription: String,
    input: PipelineInput,
    metrics: SourceMetrics,
    stop: CancellationToken,
) -> Vec<JoinHandle<()>> {
    let streams = config.streams.get();
    let budget = input.budget.clone().unwrap_or_else(|| Budget::for_subscription(config));
    let name: Arc<str> = Arc::from(subscription.as_str());
    let leases = Leases::new();
    let holds = Arc::new(Holds { leases: leases.clone(), budget, metrics });
    let stream = Stream {
        client: client.clone(),
        subscription: name.clone(),
        client_id: Arc::from(format!("sluice-{}", uuid::Uuid::new_v4())),
        input,
        max_messages: (config.max_outstanding_messages.get() / streams).max(1) as i64,
        max_bytes: (config.half_of_bytes() / streams).max(1) as i64,
        ack_deadline: config.ack_deadline.0,
        holds,
    };
    let sender = Sender { client: client.clone(), subscription: name };
    let mut tasks = vec![tokio::spawn(leases.run(sender, config.ack_deadline.0, stop.clone(), SHUTDOWN_WAIT))];
    tasks.extend((0..streams).map(|n| tokio::spawn(stream.clone().run(n, stop.clone()))));
    tasks
}

/// One streaming pull of a subscription, reopened until `stop`.
#[derive(Clone)]
struct Stream {
    client: Client,
    subscription: Arc<str>,
    client_id: Arc<str>,
    input: PipelineInput,
    max_messages: i64,
    max_bytes: i64,
    /// How long a lease lasts: how soon Pub/Sub redelivers if this process dies.
    ack_deadline: Duration,
    holds: Arc<Holds>,
}

/// Why a stream's session ended.
enum Ended {
    /// Shutting down, or the pipeline closed.
    Stop,
    /// Open a new stream (after a pause when it failed).
    Reopen { failed: bool },
}

impl Stream {
    async fn run(self, n: usize, stop: CancellationToken) {
        let mut backoff = Duration::from_millis(200);
        loop {
            match self.session(n, &stop, &mut backoff).await {
                Ended::Stop => return,
                Ended::Reopen { failed: false } => continue,
                Ended::Reopen { failed: true } => {}
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    }

    /// Open a stream and hand its messages to the pipeline until it ends.
    async fn session(&self, n: usize, stop: &CancellationToken, backoff: &mut Duration) -> Ended {
        let (requests, rx) = mpsc::channel::<Bytes>(2);
        let open = wire::Open {
            subscription: &self.subscription,
            ack_deadline_seconds: lease::deadline_seconds(self.ack_deadline),
            client_id: &self.client_id,
            max_messages: self.max_messages,
            max_bytes: self.max_bytes,
        };
        let _ = requests.try_send(open.encode());
        let _keepalive = KeepAlive::start(requests);
        let opened = tokio::select! {
            _ = stop.cancelled() => return Ended::Stop,
            opened = self.client.streaming_pull(&self.subscription, tokio_stream::wrappers::ReceiverStream::new(rx)) => opened,
        };
        let mut responses = match opened {
            Ok(r) => r,
            Err(status) => return self.failed(n, &status.to_string(), *backoff),
        };
        tracing::info!(subscription = %self.subscription, pipeline = %self.input.name, stream = n, "pulling");
        let mut frame = Vec::new();
        loop {
            let next = tokio::select! {
                _ = stop.cancelled() => return Ended::Stop,
                _ = self.holds.metrics.state.restart.notified() => {
                    tracing::warn!(subscription = %self.subscription, stream = n, "stream stalled; reopening");
                    return Ended::Reopen { failed: false };
                }
                next = responses.message() => next,
            };
            let bytes = match next {
                Ok(Some(bytes)) => bytes,
                Ok(None) => {
                    tracing::warn!(subscription = %self.subscription, stream = n, "stream ended; reopening");
                    return Ended::Reopen { failed: true };
                }
                Err(status) => return self.failed(n, &status.to_string(), *backoff),
            };
            if let Err(e) = wire::decode_response(&bytes, &mut frame) {
                // Its messages come back after their deadline; nothing of the frame was taken.
                return self.failed(n, &e.to_string(), *backoff);
            }
            *backoff = Duration::from_millis(200);
            if !self.deliver(std::mem::take(&mut frame), stop).await {
                return Ended::Stop;
            }
        }
    }

    fn failed(&self, n: usize, error: &str, backoff: Duration) -> Ended {
        self.holds.metrics.stream_error(error);
        tracing::warn!(subscription = %self.subscription, stream = n, error = %error,
            retry_in_ms = backoff.as_millis() as u64, "streaming pull failed; reopening");
        Ended::Reopen { failed: true }
    }

    /// Hand a frame's messages to the pipeline, each once there is room for it. False when
    /// stopping: what was not handed over is nacked.
    async fn deliver(&self, mut frame: Vec<Received>, stop: &CancellationToken) -> bool {
        let keys = self.holds.leases.hold(frame.iter_mut().map(|r| &mut r.ack_id));
        let mut waiting: VecDeque<(Key, Received)> = keys.into_iter().zip(frame).collect();
        let handed = tokio::select! {
            _ = stop.cancelled() => false,
            handed = self.hand_over(&mut waiting) => handed,
        };
        for (key, _) in waiting {
            self.holds.leases.settle(key, Outcome::Failed);
        }
        handed
    }

    /// Hand the messages over in batches: the first of each waits for room in the budget, the
    /// ones after it join while there is room now. A batch is sent before waiting for more room,
    /// as only settling what was handed over makes room.
    async fn hand_over(&self, waiting: &mut VecDeque<(Key, Received)>) -> bool {
        let blocked = &self.holds.metrics.state.blocked;
        while let Some((_, r)) = waiting.front() {
            let first = self.holds.budget.reserve(weight(r), blocked).await;
            let batch = self.holds.hand_over(first, waiting, &self.subscription);
            if !self.send(batch).await {
                return false; // pipeline closed: shutting down; the dropped events nack themselves
            }
        }
        true
    }

    /// Into the pipeline; waits while it is full: back-pressure on the stream, which the liveness
    /// check must not mistake for a stall.
    async fn send(&self, batch: Handover) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        match self.input.tx.try_send(batch) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(batch)) => {
                self.holds.metrics.state.blocked.fetch_add(1, Relaxed);
                let sent = self.input.tx.send(batch).await.is_ok();
                self.holds.metrics.state.blocked.fetch_sub(1, Relaxed);
                sent
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// Sends an empty request every [`KEEPALIVE`] while the stream is open; stops when dropped.
struct KeepAlive(JoinHandle<()>);

impl KeepAlive {
    fn start(requests: mpsc::Sender<Bytes>) -> KeepAlive {
        KeepAlive(tokio::spawn(async move {
            let mut tick = tokio::time::interval_at(tokio::time::Instant::now() + KEEPALIVE, KEEPALIVE);
            loop {
                tick.tick().await;
                if requests.send(Bytes::new()).await.is_err() {
                    return;
                }
            }
        }))
    }
}

impl Drop for KeepAlive {
    fn drop(&mut self) {
        self.0.abort();
    }
}
