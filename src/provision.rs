//! `sluice provision`: create the Pub/Sub topics and subscriptions the config names, where
//! missing (useful against emulators; in production Terraform owns them). Existing resources are
//! left as they are.

use google_cloud_gax::error::rpc::Code;
use google_cloud_pubsub::client::{SubscriptionAdmin, TopicAdmin};
use google_cloud_pubsub::model::DeadLetterPolicy;

use crate::config::global::PubsubConfig;
use crate::config::Config;
use crate::source::pubsub::at_endpoint;

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("the config has no `pubsub` section: nothing to provision")]
    NoPubsub,
    #[error("{file}: source.topic: expected the topic of subscription '{subscription}' (needed to create it)")]
    NoTopic { file: String, subscription: String },
    #[error("cannot create the Pub/Sub admin client: {0}")]
    Client(#[from] google_cloud_gax::client_builder::Error),
    #[error("creating {what} {name}: {source}")]
    Create { what: &'static str, name: String, source: google_cloud_pubsub::Error },
}

/// What provisioning did, one line per resource.
#[derive(Debug, Default)]
pub struct Report {
    pub created: Vec<String>,
    pub existing: Vec<String>,
}

fn already_exists(e: &google_cloud_pubsub::Error) -> bool {
    e.status().is_some_and(|s| s.code == Code::AlreadyExists)
}

pub async fn provision(config: &Config) -> Result<Report, ProvisionError> {
    let ps: &PubsubConfig = config.global.pubsub.as_ref().ok_or(ProvisionError::NoPubsub)?;
    let topics = at_endpoint!(TopicAdmin::builder(), ps).build().await?;
    let subscriptions = at_endpoint!(SubscriptionAdmin::builder(), ps).build().await?;
    let mut report = Report::default();

    let mut wanted_topics: Vec<String> = Vec::new();
    let dead_letter_topic = ps.dead_letter_topic.as_deref().map(|t| ps.topic_path(t));
    wanted_topics.extend(dead_letter_topic.clone());
    let mut wanted_subs = Vec::new();
    for p in &config.pipelines {
        let Some(sub) = &p.source.subscription else { continue };
        let topic = p
            .source
            .topic
            .as_deref()
            .ok_or_else(|| ProvisionError::NoTopic { file: p.file.display().to_string(), subscription: sub.clone() })?;
        wanted_topics.push(ps.topic_path(topic));
        wanted_subs.push((ps.subscription_path(sub), ps.topic_path(topic)));
    }
    wanted_topics.dedup();

    for t in wanted_topics {
        match topics.create_topic().set_name(&t).send().await {
            Ok(_) => report.created.push(format!("topic {t}")),
            Err(e) if already_exists(&e) => report.existing.push(format!("topic {t}")),
            Err(source) => return Err(ProvisionError::Create { what: "topic", name: t, source }),
        }
    }
    for (s, t) in wanted_subs {
        let mut req = subscriptions
            .create_subscription()
            .set_name(&s)
            .set_topic(&t)
            .set_ack_deadline_seconds(ps.ack_deadline.0.as_secs().clamp(10, 600) as i32);
        if let Some(dl) = &dead_letter_topic {
            req = req.set_dead_letter_policy(
                DeadLetterPolicy::new()
                    .set_dead_letter_topic(dl)
                    .set_max_delivery_attempts(ps.max_delivery_attempts as i32),
            );
        }
        match req.send().await {
            Ok(_) => report.created.push(format!("subscription {s} -> {t}")),
            Err(e) if already_exists(&e) => report.existing.push(format!("subscription {s}")),
            Err(source) => return Err(ProvisionError::Create { what: "subscription", name: s, source }),
        }
    }
    Ok(report)
}
