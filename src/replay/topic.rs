//! `--to topic`: the rebuilt messages published back onto the pipeline's Pub/Sub topic, for the
//! running service to process (its own chain and sinks). Pub/Sub gives each a new message id, so
//! the original travels as the `sluice_replay_of` attribute; this target is at-least-once, and a
//! second replay of a range publishes it again.

use google_cloud_pubsub::client::Publisher;

use crate::config::global::PubsubConfig;
use crate::event::Message;

/// Why the topic target could not start or publish.
#[derive(Debug, thiserror::Error)]
pub enum TopicError {
    #[error("creating a publisher for {topic}: {source}")]
    Connect { topic: String, source: google_cloud_gax::client_builder::Error },
    #[error("publishing to {topic}: {source}")]
    Publish { topic: String, source: google_cloud_pubsub::error::PublishError },
}

/// The attribute carrying the archived message id.
pub const REPLAY_OF: &str = "sluice_replay_of";

pub struct TopicTarget {
    pub topic: String,
    publisher: Publisher,
}

impl TopicTarget {
    pub async fn connect(pubsub: &PubsubConfig, topic: &str) -> Result<TopicTarget, TopicError> {
        let topic = pubsub.topic_path(topic);
        let publisher = crate::source::pubsub::at_endpoint!(Publisher::builder(&topic), pubsub)
            .build()
            .await
            .map_err(|source| TopicError::Connect { topic: topic.clone(), source })?;
        Ok(TopicTarget { topic, publisher })
    }

    /// Publish every event's original bytes and attributes; all must be accepted.
    pub async fn publish(&self, messages: &[Message]) -> Result<(), TopicError> {
        let sends = messages.iter().map(|e| {
            let mut attrs: Vec<(String, String)> =
                e.attributes.iter().map(|(k, v)| (k.to_owned(), v.to_owned())).collect();
            attrs.push((REPLAY_OF.to_owned(), e.message_id.clone()));
            let msg = google_cloud_pubsub::model::Message::new().set_data(e.data.clone()).set_attributes(attrs);
            self.publisher.publish(msg)
        });
        let results = futures::future::join_all(sends).await;
        match results.into_iter().find_map(Result::err) {
            Some(source) => Err(TopicError::Publish { topic: self.topic.clone(), source }),
            None => Ok(()),
        }
    }
}
