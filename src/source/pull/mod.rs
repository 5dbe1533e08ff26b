//! Pub/Sub streaming pull, spoken by sluice itself: each response frame is read once, straight
//! into the pipeline's events ([`wire`]), over tonic ([`grpc`]), with the leases kept here
//! ([`lease`]). The official client decodes every message twice (into its generated types, then
//! its `Message`); `scripts/bench hot_path` prints what each way costs per event.
//!
//! Each subscription is read by `streams` parallel streams. What is held un-acked is bounded
//! twice by `max_outstanding_messages` / `_bytes`: Pub/Sub's flow control (split across streams)
//! and sluice's own [`Budget`] for the whole subscription, which also holds when Pub/Sub sends
//! more after a stream reset. The bytes are split in two halves, so that together they bound
//! memory: Pub/Sub may send payload up to one, and what sluice holds, weighed decoded (about 4x
//! the payload), fits in the other. Held messages' leases are extended until they settle, so an
//! event waiting in an open batch is not redelivered.
//! A message is acked only when its [`Ack`] settles `Delivered` (every sink wrote it, or it is in
//! dead letters); `Failed` nacks it so Pub/Sub redelivers at once. Sending into the pipeline's
//! bounded input waits when the pipeline is full, so slow sinks slow the pulling.

pub mod grpc;
pub mod lease;
pub mod wire;

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::Duration;

use bytes::Bytes;
use chrono::Utc;
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use self::grpc::Client;
use self::lease::{Key, Leases, Sender};
use self::wire::Received;
use super::budget::{Budget, Held};
use super::PipelineInput;
use crate::config::global::PubsubConfig;
use crate::event::ack::Ack;
use crate::event::{footprint, Event};
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
    let stream = Stream {
        client: client.clone(),
        subscription: name.clone(),
        client_id: Arc::from(format!("sluice-{}", uuid::Uuid::new_v4())),
        input,
        max_messages: (config.max_outstanding_messages.get() / streams).max(1) as i64,
        max_bytes: (config.half_of_bytes() / streams).max(1) as i64,
        ack_deadline: config.ack_deadline.0,
        budget,
        leases: leases.clone(),
        metrics,
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
    /// What the subscription's streams together may hold un-settled.
    budget: Budget,
    leases: Leases,
    metrics: SourceMetrics,
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
                _ = self.metrics.state.restart.notified() => {
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
        self.metrics.stream_error(error);
        tracing::warn!(subscription = %self.subscription, stream = n, error = %error,
            retry_in_ms = backoff.as_millis() as u64, "streaming pull failed; reopening");
        Ended::Reopen { failed: true }
    }

    /// Hand a frame's messages to the pipeline, each once there is room for it. False when
    /// stopping: what was not handed over is nacked.
    async fn deliver(&self, mut frame: Vec<Received>, stop: &CancellationToken) -> bool {
        let keys = self.leases.hold(frame.iter_mut().map(|r| &mut r.ack_id));
        let mut waiting: VecDeque<(Key, Received)> = keys.into_iter().zip(frame).collect();
        let handed = tokio::select! {
            _ = stop.cancelled() => false,
            handed = self.hand_over(&mut waiting) => handed,
        };
        for (key, _) in waiting {
            self.leases.settle(key, crate::event::ack::Outcome::Failed);
        }
        handed
    }

    /// Hand the messages over in batches: the first of each waits for room in the budget, the
    /// ones after it join while there is room now. A batch is sent before waiting for more room,
    /// as only settling what was handed over makes room.
    async fn hand_over(&self, waiting: &mut VecDeque<(Key, Received)>) -> bool {
        let blocked = &self.metrics.state.blocked;
        while let Some((_, r)) = waiting.front() {
            let held = self.budget.reserve(footprint(r.data.len(), r.message_id.len()), blocked).await;
            // The batch is built at once: one reading of the clock and of the metrics for it.
            let now = std::time::Instant::now();
            let mut batch = Vec::with_capacity(waiting.len());
            batch.push(self.event(waiting.pop_front().expect("front was there"), held, now));
            while let Some((_, r)) = waiting.front() {
                let Some(held) = self.budget.try_reserve(footprint(r.data.len(), r.message_id.len())) else { break };
                batch.push(self.event(waiting.pop_front().expect("front was there"), held, now));
            }
            self.metrics.handed(batch.len(), batch.last().expect("one at least").publish_time);
            if !self.send(batch).await {
                return false; // pipeline closed: shutting down; the dropped events nack themselves
            }
        }
        true
    }

    /// A message received at `now` as an event whose ack settles its lease and gives back its room.
    fn event(&self, (key, r): (Key, Received), held: Held, now: std::time::Instant) -> Event {
        let publish_time = r.publish_time.unwrap_or_else(Utc::now);
        let outstanding = self.metrics.outstanding_one(r.data.len());
        // Per-message trace (RUST_LOG=sluice::source::pull=debug) to follow one id through
        // crashes and redeliveries; the id is cloned only when it is on.
        let traced = tracing::enabled!(tracing::Level::DEBUG).then(|| r.message_id.clone());
        if let Some(id) = &traced {
            tracing::debug!(message_id = %id, attempt = r.delivery_attempt, "received");
        }
        let (leases, settled) = (self.leases.clone(), self.metrics.input.clone());
        let ack = Ack::new(move |outcome| {
            leases.settle(key, outcome);
            if let Some(id) = traced {
                tracing::debug!(message_id = %id, ?outcome, "settled");
            }
            settled.settled(outcome);
            drop(outstanding);
            drop(held);
        });
        to_event(r, publish_time, self.subscription.clone(), ack, now)
    }

    /// Into the pipeline; waits while it is full: back-pressure on the stream, which the liveness
    /// check must not mistake for a stall.
    async fn send(&self, batch: Vec<Event>) -> bool {
        use std::sync::atomic::Ordering::Relaxed;
        match self.input.tx.try_send(batch) {
            Ok(()) => true,
            Err(mpsc::error::TrySendError::Full(batch)) => {
                self.metrics.state.blocked.fetch_add(1, Relaxed);
                let sent = self.input.tx.send(batch).await.is_ok();
                self.metrics.state.blocked.fetch_sub(1, Relaxed);
                sent
            }
            Err(mpsc::error::TrySendError::Closed(_)) => false,
        }
    }
}

/// The pipeline's view of a pulled message (also what the hot-path benchmark decodes into).
pub fn to_event(
    r: Received,
    publish_time: chrono::DateTime<Utc>,
    subscription: Arc<str>,
    ack: Ack,
    received: std::time::Instant,
) -> Event {
    let mut event = Event::arrived((received, ack), r.message_id, publish_time, r.attributes, r.data, subscription);
    event.delivery_attempt = u32::try_from(r.delivery_attempt).ok().filter(|&a| a > 0);
    event
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
