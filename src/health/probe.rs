//! Asks Pub/Sub about a subscription over its REST API: does it answer, and are messages waiting?
//!
//! The streaming-pull client says nothing while a stream is idle, so "connected" and "stalled"
//! need a second opinion. `GET subscriptions/<name>` shows the server is there and the
//! subscription exists; a `pull` of one message with `returnImmediately`, nacked at once
//! (`modifyAckDeadline` 0), shows whether a backlog waits while the streams deliver nothing.
//! The probe pull costs the message one delivery attempt; it only runs for a silent subscription.

use std::time::Duration;

use serde_json::{json, Value};

use crate::config::global::PubsubConfig;

#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// Pub/Sub did not answer in time or could not be reached: retrying may help.
    #[error("Pub/Sub unreachable: {0}")]
    Unreachable(String),
    /// Pub/Sub answered with an error status (404: the subscription is gone).
    #[error("Pub/Sub answered {status}: {body}")]
    Status { status: u16, body: String },
    /// Credentials for the request could not be had.
    #[error("credentials: {0}")]
    Credentials(String),
}

impl ProbeError {
    /// Whether this says nothing about the subscription itself: the check may not ask
    /// (403, e.g. the service account lacks `pubsub.subscriptions.get`).
    pub fn is_forbidden(&self) -> bool {
        matches!(self, ProbeError::Status { status: 403, .. })
    }
}

pub struct Probe {
    http: reqwest::Client,
    timeout: Duration,
    base: String,
    /// Application default credentials for production; `None` for an emulator or private endpoint.
    credentials: Option<google_cloud_auth::credentials::Credentials>,
}

impl Probe {
    /// A probe for the configured endpoint; every request gives up after `timeout`.
    pub fn new(config: &PubsubConfig, timeout: Duration) -> Result<Probe, ProbeError> {
        let (base, credentials) = match config.endpoint_url() {
            Some(e) => (e.trim_end_matches('/').to_owned(), None),
            None => {
                let c = google_cloud_auth::credentials::Builder::default()
                    .build()
                    .map_err(|e| ProbeError::Credentials(e.to_string()))?;
                ("https://pubsub.googleapis.com".to_owned(), Some(c))
            }
        };
        let http =
            reqwest::Client::builder().timeout(timeout).build().map_err(|e| ProbeError::Unreachable(e.to_string()))?;
        Ok(Probe { http, timeout, base, credentials })
    }

    async fn call(&self, method: reqwest::Method, path: &str, body: Option<Value>) -> Result<Value, ProbeError> {
        let mut req = self.http.request(method, format!("{}/v1/{path}", self.base));
        if let Some(c) = &self.credentials {
            match c.headers(http::Extensions::new()).await {
                Ok(google_cloud_auth::credentials::CacheableResource::New { data, .. }) => req = req.headers(data),
                Ok(google_cloud_auth::credentials::CacheableResource::NotModified) => {}
                Err(e) => return Err(ProbeError::Credentials(e.to_string())),
            }
        }
        if let Some(b) = body {
            req = req.json(&b);
        }
        let resp = req.send().await.map_err(|e| {
            ProbeError::Unreachable(if e.is_timeout() {
                format!("no answer within {:?}", self.timeout)
            } else {
                e.to_string()
            })
        })?;
        let status = resp.status();
        let text = resp.text().await.map_err(|e| ProbeError::Unreachable(e.to_string()))?;
        if !status.is_success() {
            return Err(ProbeError::Status { status: status.as_u16(), body: text.chars().take(300).collect() });
        }
        Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
    }

    /// The subscription (full path) exists and Pub/Sub answers.
    pub async fn exists(&self, subscription: &str) -> Result<(), ProbeError> {
        self.call(reqwest::Method::GET, subscription, None).await.map(drop)
    }

    /// Whether a message is waiting that no stream holds; the one pulled is handed back at once.
    pub async fn has_backlog(&self, subscription: &str) -> Result<bool, ProbeError> {
        let pulled = self
            .call(
                reqwest::Method::POST,
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
        if let Err(e) = self.call(reqwest::Method::POST, &format!("{subscription}:modifyAckDeadline"), Some(nack)).await
        {
            // Not fatal: the message comes back when its ack deadline lapses.
            tracing::warn!(subscription, error = %e, "could not hand back the probe message");
        }
        Ok(true)
    }
}
