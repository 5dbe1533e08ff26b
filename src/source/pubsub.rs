//! Pub/Sub streaming pull, with Google's official client.
//!
//! Each subscription is read by `streams` parallel streaming-pull streams. What is held un-acked
//! is bounded twice by `max_outstanding_messages` / `_bytes`: Pub/Sub's flow control (split across
//! streams) and sluice's own [`Budget`] for the whole subscription, which also holds when Pub/Sub
//! sends more after a stream reset. The bytes are split in two halves, so that together they
//! bound memory: Pub/Sub may send payload up to one (what the client buffers and sluice holds),
//! and what sluice holds, weighed decoded (about 4x the payload), fits in the other. The
//! client keeps extending the leases of held messages, so an event waiting in an open batch is
//! not redelivered.
//! A message is acked only when its [`Ack`] settles `Delivered` (every sink wrote it, or it is in
//! dead letters); `Failed` nacks it so Pub/Sub redelivers at once. Sending into the pipeline's
//! bounded input waits when the pipeline is full, so slow sinks slow the pulling.

use std::sync::Arc;
use std::time::Duration;

use chrono::{DateTime, Utc};
use google_cloud_pubsub::client::Subscriber;
use google_cloud_pubsub::model::Message;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use super::budget::Budget;
use super::PipelineInput;
use crate::ack::{Ack, Outcome};
use crate::config::global::PubsubConfig;
use crate::event::{footprint, Event};
use crate::metrics::SourceMetrics;

#[derive(Debug, thiserror::Error)]
#[error("cannot create the Pub/Sub client for {endpoint}: {source}")]
pub struct ConnectError {
    endpoint: String,
    source: google_cloud_gax::client_builder::Error,
}

/// Credentials for an endpoint: anonymous for an emulator or private endpoint named in config,
/// application default credentials otherwise.
pub fn credentials(config: &PubsubConfig) -> Option<google_cloud_auth::credentials::Credentials> {
    config.endpoint_url().map(|_| google_cloud_auth::credentials::anonymous::Builder::new().build())
}

/// Point any Google client builder (subscriber, publisher, admin) at the configured endpoint with
/// the matching credentials. The builders share no trait, hence a macro.
macro_rules! at_endpoint {
    ($builder:expr, $config:expr) => {{
        let (mut b, config) = ($builder, $config);
        if let Some(e) = config.endpoint_url() {
            b = b.with_endpoint(e);
        }
        if let Some(c) = $crate::source::pubsub::credentials(config) {
            b = b.with_credentials(c);
        }
        b
    }};
}
pub(crate) use at_endpoint;

pub async fn subscriber(config: &PubsubConfig) -> Result<Subscriber, ConnectError> {
    at_endpoint!(Subscriber::builder(), config).build().await.map_err(|source| ConnectError {
        endpoint: config.endpoint_url().unwrap_or_else(|| "pubsub.googleapis.com".into()),
        source,
    })
}

/// Start the pulling tasks for one subscription feeding one pipeline. They stop pulling when
/// `stop` is cancelled; messages they already handed over settle through their acks. They
/// report to `metrics`, and reopen when the liveness check asks through it.
pub fn spawn(
    client: &Subscriber,
    config: &PubsubConfig,
    subscription: String,
    input: PipelineInput,
    metrics: SourceMetrics,
    stop: CancellationToken,
) -> Vec<JoinHandle<()>> {
    let streams = config.streams.get();
    let messages = (config.max_outstanding_messages.get() / streams).max(1) as i64;
    let bytes = (config.half_of_bytes() / streams).max(1) as i64;
    let budget = input.budget.clone().unwrap_or_else(|| Budget::for_subscription(config));
    let name: Arc<str> = Arc::from(subscription.as_str());
    (0..streams)
        .map(|n| {
            let pull = Pull {
                client: client.clone(),
                subscription: name.clone(),
                input: input.clone(),
                max_messages: messages,
                max_bytes: bytes,
                budget: budget.clone(),
                lease_extension: config.ack_deadline.0,
                stream: n,
                metrics: metrics.clone(),
            };
            tokio::spawn(pull.run(stop.clone()))
        })
        .collect()
}

/// Longest a stream waits at shutdown for its delivered messages to settle.
const SHUTDOWN_WAIT: Duration = Duration::from_secs(60);

struct Pull {
    client: Subscriber,
    subscription: Arc<str>,
    input: PipelineInput,
    max_messages: i64,
    max_bytes: i64,
    /// What the subscription's streams together may hold un-settled.
    budget: Budget,
    /// How far each lease is extended: how soon Pub/Sub redelivers if this process dies.
    lease_extension: Duration,
    stream: usize,
    metrics: SourceMetrics,
}

impl Pull {
    async fn run(self, stop: CancellationToken) {
        let Pull { client, subscription, input, max_messages, max_bytes, budget, lease_extension, stream: n, metrics } =
            self;
        let mut backoff = Duration::from_millis(200);
        while !stop.is_cancelled() {
            let mut stream = client
                .subscribe(&*subscription)
                .set_max_outstanding_messages(max_messages)
                .set_max_outstanding_bytes(max_bytes)
                .set_max_lease_extension(lease_extension)
                .build();
            tracing::info!(subscription = %subscription, pipeline = %input.name, stream = n, "pulling");
            loop {
                let next = tokio::select! {
                    _ = stop.cancelled() => {
                        // Stop reading, but keep the stream's lease loop alive until every message
                        // handed to the pipeline is acked or nacked, so its ack reaches Pub/Sub.
                        let token = stream.shutdown_token();
                        drop(input);
                        if tokio::time::timeout(SHUTDOWN_WAIT, token.shutdown()).await.is_err() {
                            tracing::warn!(subscription = %subscription, stream = n,
                                "messages still unsettled at shutdown; Pub/Sub will redeliver them");
                        }
                        return;
                    }
                    _ = metrics.state.restart.notified() => {
                        tracing::warn!(subscription = %subscription, stream = n, "stream stalled; reopening");
                        break;
                    }
                    // Take a message only with room for it; dropped mid-wait, it is nacked.
                    next = async {
                        let slot = budget.slot(&metrics.state.blocked).await;
                        match stream.next().await {
                            Some(Ok((message, handler))) => {
                                let weight = footprint(message.data.len(), message.message_id.len());
                                let held = budget.hold(slot, weight, &metrics.state.blocked).await;
                                Some(Ok((message, handler, held)))
                            }
                            Some(Err(e)) => Some(Err(e)),
                            None => None,
                        }
                    } => next,
                };
                match next {
                    Some(Ok((message, handler, held))) => {
                        backoff = Duration::from_millis(200);
                        let publish_time = publish_time(&message);
                        let bytes = message.data.len();
                        let attempt = handler.delivery_attempt().and_then(|a| u32::try_from(a).ok());
                        let outstanding = metrics.received(publish_time, bytes);
                        // Per-message trace (RUST_LOG=sluice::source::pubsub=debug) to follow one id
                        // through crashes and redeliveries; the id is cloned only when it is on.
                        let traced = tracing::enabled!(tracing::Level::DEBUG).then(|| message.message_id.clone());
                        if let Some(id) = &traced {
                            tracing::debug!(message_id = %id, attempt, stream = n, "received");
                        }
                        let settled = metrics.input.clone();
                        let ack = Ack::new(move |outcome| {
                            match outcome {
                                Outcome::Delivered => handler.ack(),
                                Outcome::Failed => handler.nack(),
                            }
                            if let Some(id) = traced {
                                tracing::debug!(message_id = %id, ?outcome, "settled");
                            }
                            settled.settled(outcome);
                            drop(outstanding);
                            drop(held);
                        });
                        let mut event = to_event(message, publish_time, subscription.clone(), ack);
                        event.delivery_attempt = attempt;
                        // Waits while the pipeline is full: back-pressure on the stream, which the
                        // liveness check must not mistake for a stall.
                        let sent = match input.tx.try_send(event) {
                            Ok(()) => Ok(()),
                            Err(tokio::sync::mpsc::error::TrySendError::Full(event)) => {
                                metrics.state.blocked.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                                let r = input.tx.send(event).await.map_err(drop);
                                metrics.state.blocked.fetch_sub(1, std::sync::atomic::Ordering::Relaxed);
                                r
                            }
                            Err(tokio::sync::mpsc::error::TrySendError::Closed(_)) => Err(()),
                        };
                        if sent.is_err() {
                            return; // pipeline closed: shutting down; the dropped event nacks itself
                        }
                    }
                    Some(Err(e)) => {
                        metrics.stream_error(&e.to_string());
                        tracing::warn!(subscription = %subscription, stream = n, error = %e,
                            retry_in_ms = backoff.as_millis() as u64, "streaming pull failed; reopening");
                        break;
                    }
                    None => {
                        tracing::warn!(subscription = %subscription, stream = n, "stream ended; reopening");
                        break;
                    }
                }
            }
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tokio::time::sleep(backoff) => {}
            }
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
    }
}

/// When Pub/Sub accepted the message (now, if it did not say).
pub fn publish_time(message: &Message) -> DateTime<Utc> {
    message.publish_time.and_then(to_chrono).unwrap_or_else(Utc::now)
}

/// The pipeline's view of a pulled message (also what the hot-path benchmark decodes into).
pub fn to_event(message: Message, publish_time: DateTime<Utc>, subscription: Arc<str>, ack: Ack) -> Event {
    Event::new(message.message_id, publish_time, message.attributes, message.data, subscription, ack)
}

fn to_chrono(t: google_cloud_wkt::Timestamp) -> Option<DateTime<Utc>> {
    DateTime::from_timestamp(t.seconds(), t.nanos().max(0) as u32)
}
