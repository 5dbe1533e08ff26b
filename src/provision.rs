//! `sluice provision`: create what the config names, where missing: Pub/Sub topics and
//! subscriptions (with the dead-letter policy), and the BigQuery dataset and tables (columns from
//! `schemas/`, daily partitioning and clustering as each schema's `table:` block says). Useful
//! against emulators; in production Terraform owns them. Existing resources are left as they are.

use google_cloud_gax::error::rpc::Code;
use google_cloud_pubsub::client::{SubscriptionAdmin, TopicAdmin};
use google_cloud_pubsub::model::DeadLetterPolicy;

use crate::bigquery::rest::Rest;
use crate::config::global::{BigQueryConfig, PubsubConfig};
use crate::config::{Config, Sink};
use crate::source::pubsub::at_endpoint;

#[derive(Debug, thiserror::Error)]
pub enum ProvisionError {
    #[error("neither `pubsub` nor `bigquery` is enabled in the config (SLUICE_PUBSUB=true, SLUICE_BIGQUERY=true): nothing to provision")]
    Nothing,
    #[error("bigquery: {0}")]
    BigQuery(#[from] crate::bigquery::rest::RestError),
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
    let bigquery = config.global.bigquery.as_ref().filter(|b| b.enabled);
    let pubsub = config.global.pubsub_enabled();
    if pubsub.is_none() && bigquery.is_none() {
        return Err(ProvisionError::Nothing);
    }
    let mut report = Report::default();
    if let Some(ps) = pubsub {
        topics_and_subscriptions(config, ps, &mut report).await?;
    }
    if let Some(bq) = bigquery {
        tables(config, bq, &mut report).await?;
    }
    Ok(report)
}

async fn tables(config: &Config, bq: &BigQueryConfig, report: &mut Report) -> Result<(), ProvisionError> {
    let rest = Rest::new(bq)?;
    let dataset = format!("dataset {}.{}", bq.project, bq.dataset);
    if rest.ensure_dataset().await? {
        report.created.push(dataset);
    } else {
        report.existing.push(dataset);
    }
    for p in &config.pipelines {
        for s in &p.sinks {
            let Sink::BigQuery { table, .. } = s else { continue };
            let name = format!("table {}.{table} (schema {})", bq.dataset, p.schema.name);
            if rest.ensure_table(table, &p.schema).await? {
                report.created.push(name);
            } else {
                report.existing.push(name);
            }
        }
    }
    Ok(())
}

async fn topics_and_subscriptions(
    config: &Config,
    ps: &PubsubConfig,
    report: &mut Report,
) -> Result<(), ProvisionError> {
    let topics = at_endpoint!(TopicAdmin::builder(), ps).build().await?;
    let subscriptions = at_endpoint!(SubscriptionAdmin::builder(), ps).build().await?;

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
    Ok(())
}
