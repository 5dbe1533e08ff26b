//! Decoding push requests: the Pub/Sub push envelope, or an unwrapped payload.
//!
//! Envelope (`{"message": {"data": base64, "attributes", "messageId", "publishTime"},
//! "subscription"}`): decoded strictly, every problem named by its field. Anything else is taken
//! as the payload itself (Pub/Sub's "unwrapped" push), with metadata from the
//! `x-goog-pubsub-*` headers when present; a payload that is not valid JSON still becomes an
//! event, so the pipeline dead-letters it with its bytes rather than the request being refused.
//!
//! Who may push: `auth` (Google OIDC tokens or a shared bearer token) with the keys from `jwks`.
//! The HTTP route itself is `server::push`.

pub mod auth;
pub mod jwks;

use std::collections::BTreeMap;

use base64::Engine;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::Deserialize;

use crate::event::Attributes;

/// A push request, decoded.
#[derive(Debug, PartialEq)]
pub struct PushMessage {
    pub message_id: String,
    pub publish_time: DateTime<Utc>,
    pub attributes: Attributes,
    pub data: Bytes,
    pub subscription: Option<String>,
    /// Pub/Sub's count of this delivery (`deliveryAttempt`), sent on subscriptions with a
    /// dead-letter policy; `None` without one and for unwrapped payloads.
    pub delivery_attempt: Option<u32>,
}

/// Why a request body is not acceptable; each becomes a 400 with this text.
#[derive(Debug, thiserror::Error, PartialEq)]
pub enum DecodeError {
    #[error("request body is empty; expected a Pub/Sub push envelope or an event")]
    Empty,
    #[error("invalid push envelope: {0}")]
    Envelope(String),
    #[error("message.data is not valid base64: {0}")]
    Base64(String),
    #[error("message.messageId is missing; Pub/Sub always sends it")]
    MissingId,
    #[error("message.publishTime '{0}' is not an RFC 3339 timestamp")]
    PublishTime(String),
}

#[derive(Deserialize)]
struct Envelope {
    message: Message,
    subscription: Option<String>,
    #[serde(rename = "deliveryAttempt")]
    delivery_attempt: Option<u32>,
}

/// Pub/Sub sends both camelCase and snake_case names for id and time; either is accepted.
#[derive(Deserialize)]
struct Message {
    data: Option<String>,
    #[serde(default)]
    attributes: Option<Attributes>,
    #[serde(rename = "messageId")]
    message_id_camel: Option<String>,
    #[serde(rename = "message_id")]
    message_id_snake: Option<String>,
    #[serde(rename = "publishTime")]
    publish_time_camel: Option<String>,
    #[serde(rename = "publish_time")]
    publish_time_snake: Option<String>,
}

/// Header names Pub/Sub uses for metadata when it pushes unwrapped payloads.
pub const HEADER_MESSAGE_ID: &str = "x-goog-pubsub-message-id";
pub const HEADER_PUBLISH_TIME: &str = "x-goog-pubsub-publish-time";
pub const HEADER_SUBSCRIPTION: &str = "x-goog-pubsub-subscription-name";

/// Decode a request body; `header` looks up request headers by lower-case name.
pub fn decode(body: Bytes, header: impl Fn(&str) -> Option<String>) -> Result<PushMessage, DecodeError> {
    if body.iter().all(u8::is_ascii_whitespace) {
        return Err(DecodeError::Empty);
    }
    match crate::json::from_slice(&body) {
        Ok(value) if is_envelope(&value) => return decode_envelope(value),
        // An envelope with a repeated key is refused; a payload with one is dead-lettered later.
        Err(e)
            if crate::json::is_duplicate_key(&e)
                && serde_json::from_slice::<serde_json::Value>(&body).is_ok_and(|v| is_envelope(&v)) =>
        {
            return Err(DecodeError::Envelope(e.to_string()))
        }
        _ => {}
    }
    let publish_time = match header(HEADER_PUBLISH_TIME) {
        Some(t) => parse_time(&t)?,
        None => Utc::now(),
    };
    Ok(PushMessage {
        message_id: header(HEADER_MESSAGE_ID).unwrap_or_else(|| format!("push-{}", uuid::Uuid::new_v4())),
        publish_time,
        attributes: Attributes::new(),
        data: body,
        subscription: header(HEADER_SUBSCRIPTION),
        delivery_attempt: None,
    })
}

fn is_envelope(value: &serde_json::Value) -> bool {
    value.get("message").is_some_and(|m| m.is_object())
}

fn decode_envelope(value: serde_json::Value) -> Result<PushMessage, DecodeError> {
    let env: Envelope = serde_path_to_error::deserialize(value)
        .map_err(|e| DecodeError::Envelope(format!("{}: {}", e.path(), e.inner())))?;
    let m = env.message;
    let data = match m.data {
        None => Bytes::new(),
        Some(d) => Bytes::from(
            base64::engine::general_purpose::STANDARD
                .decode(d.trim())
                .map_err(|e| DecodeError::Base64(e.to_string()))?,
        ),
    };
    let message_id =
        m.message_id_camel.or(m.message_id_snake).filter(|s| !s.is_empty()).ok_or(DecodeError::MissingId)?;
    let publish_time = match m.publish_time_camel.or(m.publish_time_snake) {
        Some(t) => parse_time(&t)?,
        None => Utc::now(),
    };
    Ok(PushMessage {
        message_id,
        publish_time,
        attributes: m.attributes.unwrap_or_default(),
        data,
        subscription: env.subscription,
        delivery_attempt: env.delivery_attempt,
    })
}

fn parse_time(t: &str) -> Result<DateTime<Utc>, DecodeError> {
    crate::schema::parse_timestamp(t).ok_or_else(|| DecodeError::PublishTime(t.chars().take(64).collect()))
}

/// Encode an event as Pub/Sub would push it (used by `sluice publish` and tests).
pub fn envelope(
    data: &[u8],
    message_id: &str,
    attributes: &BTreeMap<String, String>,
    subscription: &str,
) -> serde_json::Value {
    let now = Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true);
    serde_json::json!({
        "message": {
            "data": base64::engine::general_purpose::STANDARD.encode(data),
            "attributes": attributes,
            "messageId": message_id,
            "message_id": message_id,
            "publishTime": now,
            "publish_time": now,
        },
        "subscription": subscription,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn no_headers(_: &str) -> Option<String> {
        None
    }

    #[test]
    fn decodes_an_envelope() {
        let mut attrs = BTreeMap::new();
        attrs.insert("kind".to_string(), "log".to_string());
        let body = envelope(br#"{"a":1}"#, "42", &attrs, "projects/p/subscriptions/s").to_string();
        let m = decode(Bytes::from(body), no_headers).unwrap();
        assert_eq!(m.message_id, "42");
        assert_eq!(&m.data[..], br#"{"a":1}"#);
        assert_eq!(m.attributes, attrs.into_iter().collect::<Attributes>());
        assert_eq!(m.subscription.as_deref(), Some("projects/p/subscriptions/s"));
        assert_eq!(m.delivery_attempt, None, "no dead-letter policy, no count");
    }

    /// With a dead-letter policy Pub/Sub counts deliveries; a first one needs no redelivery check.
    #[test]
    fn reads_the_delivery_attempt_of_an_envelope() {
        let mut body = envelope(b"{}", "42", &BTreeMap::new(), "projects/p/subscriptions/s");
        body["deliveryAttempt"] = 1.into();
        let m = decode(Bytes::from(body.to_string()), no_headers).unwrap();
        assert_eq!(m.delivery_attempt, Some(1));
        body["deliveryAttempt"] = "first".into();
        let err = decode(Bytes::from(body.to_string()), no_headers).unwrap_err().to_string();
        assert!(err.starts_with("invalid push envelope: deliveryAttempt: invalid type"), "{err}");
    }

    #[test]
    fn names_what_is_wrong_with_an_envelope() {
        let d = |s: &str| decode(Bytes::from(s.to_owned()), no_headers).unwrap_err().to_string();
        assert_eq!(
            d(r#"{"message": {"data": "!!", "messageId": "1"}}"#),
            "message.data is not valid base64: Invalid symbol 33, offset 0."
        );
        assert_eq!(d(r#"{"message": {"data": "e30="}}"#), "message.messageId is missing; Pub/Sub always sends it");
        assert_eq!(
            d(r#"{"message": {"messageId": "1", "attributes": {"a": 1}}}"#),
            "invalid push envelope: message.attributes.a: invalid type: integer `1`, expected a string"
        );
        assert_eq!(
            d(r#"{"message": {"messageId": "1", "publishTime": "noon"}}"#),
            "message.publishTime 'noon' is not an RFC 3339 timestamp"
        );
        assert_eq!(d("  \n"), "request body is empty; expected a Pub/Sub push envelope or an event");
        assert_eq!(
            d(r#"{"message": {"data": "e30=", "messageId": "1", "messageId": "2"}}"#),
            "invalid push envelope: duplicate key 'messageId' at line 1 column 58"
        );
    }

    #[test]
    fn takes_anything_else_as_an_unwrapped_payload() {
        let headers = |h: &str| (h == HEADER_MESSAGE_ID).then(|| "77".to_string());
        let m = decode(Bytes::from_static(b"{\"message\": \"text\"}"), headers).unwrap();
        assert_eq!(m.message_id, "77");
        assert_eq!(&m.data[..], b"{\"message\": \"text\"}");
        let m = decode(Bytes::from_static(b"not json \xff"), no_headers).unwrap();
        assert!(m.message_id.starts_with("push-"));
        assert_eq!(&m.data[..], b"not json \xff");
    }
}
