//! `google.pubsub.v1` messages as prost derives them, for tests and the hot-path benchmark only:
//! an independent encoder and decoder to hold the hand-written wire code to.

#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct StreamingPullResponse {
    #[prost(message, repeated, tag = "1")]
    pub received_messages: Vec<ReceivedMessage>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct ReceivedMessage {
    #[prost(string, tag = "1")]
    pub ack_id: String,
    #[prost(message, optional, tag = "2")]
    pub message: Option<PubsubMessage>,
    #[prost(int32, tag = "3")]
    pub delivery_attempt: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct PubsubMessage {
    #[prost(bytes = "bytes", tag = "1")]
    pub data: bytes::Bytes,
    /// In key order: a hash map would write each message's in an order of its own.
    #[prost(btree_map = "string, string", tag = "2")]
    pub attributes: std::collections::BTreeMap<String, String>,
    #[prost(string, tag = "3")]
    pub message_id: String,
    #[prost(message, optional, tag = "4")]
    pub publish_time: Option<prost_types::Timestamp>,
    #[prost(string, tag = "5")]
    pub ordering_key: String,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct StreamingPullRequest {
    #[prost(string, tag = "1")]
    pub subscription: String,
    #[prost(string, repeated, tag = "2")]
    pub ack_ids: Vec<String>,
    #[prost(int32, tag = "5")]
    pub stream_ack_deadline_seconds: i32,
    #[prost(string, tag = "6")]
    pub client_id: String,
    #[prost(int64, tag = "7")]
    pub max_outstanding_messages: i64,
    #[prost(int64, tag = "8")]
    pub max_outstanding_bytes: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub(super) struct ModifyAckDeadlineRequest {
    #[prost(string, tag = "1")]
    pub subscription: String,
    #[prost(int32, tag = "3")]
    pub ack_deadline_seconds: i32,
    #[prost(string, repeated, tag = "4")]
    pub ack_ids: Vec<String>,
}
