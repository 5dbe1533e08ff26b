//! Asks Pub/Sub about a subscription over its REST API: does it answer, and are messages waiting?
//!
//! The streaming-pull client says nothing while a stream is idle, so "connected" and "stalled"
//! need a second opinion. `GET subscriptions/<name>` shows the server is there and the
//! subscription exists; a `pull` of one message with `returnImmediately`, nacked at once
//! (`modifyAckDeadline` 0), shows whether a backlog waits while the streams deliver nothing.
//! The probe pull costs the message one delivery attempt; it only runs for a silent subscription.

use std::time::Duration;

use reqwest::Method;
use serde_json::{json, Value};

use crate::config::global::PubsubConfig;
use crate::gcp::{Api, CallError, Timeout};

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// Pub/Sub did not answer in time or could not be reached: retrying may help.
    #[error("Pub/Sub unreachable: {0}")]
    Unreachable(String),
    /// Pub/Sub answered with an error status (404: the subscription is gone); `body` is
    /// Google's message.
    #[error("Pub/Sub answered {status}: {body}")]
    Status { status: u16, body: String },
    /// Credentials for the request could not be had.
    #[error("credentials: {0}")]
    Credentials(#[from] crate::gcp::AuthError),
}

impl ProbeError {
    /// Whether this says nothing about the subscription itself: the check may not ask
    /// (403, e.g. the service account lacks `pubsub.subscriptions.get`).
    pub fn is_forbidden(&self) -> bool {
        matches!(self, ProbeError::Status { status: 403, .. })
    }
}

pub struct Probe {
    api: Api,
    timeout: Duration,
}

impl Probe {
    /// A probe for the configured endpoint; every request gives up after `timeout`.
    pub fn new(config: &PubsubConfig, timeout: Duration) -> Result<Probe, ProbeError> {
        let api = Api::new(config.endpoint.as_deref(), "https://pubsub.googleapis.com", Timeout::Whole(timeout))?;
        Ok(Probe { api, timeout })
    }

    async fn call(&self, method: Method, path: &str, body: Option<Value>) -> Result<Value, ProbeError> {
        let url = format!("{}/v1/{path}", self.api.base());
        let mut req = self.api.request(method, &url).await?;
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = self.api.send(req).await.map_err(|e| match e {
            CallError::Status { status, message } => ProbeError::Status { status, body: message },
            CallError::Transport(e) if e.is_timeout() => {
                ProbeError::Unreachable(format!("no answer within {:?}", self.timeout))
            }
            e => ProbeError::Unreachable(e.to_string()),
        })?;
        let text = resp.text().await.map_err(|e| ProbeError::Unreachable(e.to_string()))?;
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// The subscription (full path) exists and Pub/Sub answers.
    pub async fn exists(&self, subscription: &str) -> Result<(), ProbeError> {
        self.call(Method::GET, subscription, None).await.map(drop)
    }

    /// Whether a message is waiting that no stream holds; the one pulled is handed back at once.
    pub async fn has_backlog(&self, subscription: &str) -> Result<bool, ProbeError> {
        let pulled = self
            .call(
                Method::POST,
                &format!("{subscription}:pull"),
                Some(json!({"maxMessages": 1, "returnImmediately": true})),
            )
            .await?;
        let ack_ids: Vec<Value> = pulled["receivedMessages"]
            .as_array()
            .map(|m| m.iter().filter_map(|r| r.get("ackId").cloned()).collect())
            .unwrap_or_default();
        if ack_ids.is_empty() {
            return Ok(false);
        }
        let nack = json!({"ackIds": ack_ids, "ackDeadlineSeconds": 0});
        if let Err(e) = self.call(Method::POST, &format!("{subscription}:modifyAckDeadline"), Some(nack)).await {
            // Not fatal: the message comes back when its ack deadline lapses.
            tracing::warn!(subscription, error = %e, "could not hand back the probe message");
        }
        Ok(true)
    }
}
