//! `sluice publish`: send sample or given events either to a Pub/Sub topic (the load generator
//! for tests and benchmarks) or to a running sluice's push endpoint, wrapped the way Pub/Sub
//! pushes them and retried on 429/503 the way Pub/Sub would.

pub mod sample;

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use futures::StreamExt;

use crate::publish::sample::{Generator, Kind};
use crate::source::push::envelope;

/// Where events go.
pub enum Target {
    /// A running sluice: base URL, e.g. `http://127.0.0.1:8080`.
    Push { url: String },
    /// A Pub/Sub topic (full path), reached with the config's project, endpoint and credentials.
    Topic { topic: String, pubsub: crate::config::global::PubsubConfig },
}

pub struct PublishArgs {
    pub target: Target,
    pub pipeline: String,
    /// NDJSON file: each non-empty line is sent verbatim as one message's data.
    pub file: Option<PathBuf>,
    /// How many sample events to generate when no file is given.
    pub count: u64,
    pub seed: u64,
    /// Lengthen generated log events to at least this many bytes (0: as generated).
    pub size: usize,
    pub kind: Option<Kind>,
    pub concurrency: usize,
    /// Events per second at most; `None` sends as fast as the target takes them.
    pub rate: Option<f64>,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub sent: u64,
    pub delivered: u64,
    /// Refused with a 4xx: the request itself was wrong; retrying cannot help.
    pub rejected: u64,
    /// Still 429/5xx or unreachable after retries.
    pub failed: u64,
    /// Message ids of what was delivered (assigned by Pub/Sub for a topic).
    pub ids: Vec<String>,
    /// How long delivered messages took, from the first attempt to the answer (retries included).
    pub latency: Option<Latency>,
}

/// Percentiles of the time each delivered message took.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Latency {
    pub p50: Duration,
    pub p99: Duration,
    pub max: Duration,
}

impl Latency {
    /// `None` without any time to summarise.
    pub fn of(mut times: Vec<Duration>) -> Option<Latency> {
        times.sort_unstable();
        let max = *times.last()?;
        // Nearest rank: the smallest time at least `q` of the times are no longer than.
        let at = |q: f64| times[((q * times.len() as f64).ceil() as usize).clamp(1, times.len()) - 1];
        Some(Latency { p50: at(0.50), p99: at(0.99), max })
    }
}

impl std::fmt::Display for Latency {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let ms = |d: Duration| d.as_secs_f64() * 1e3;
        write!(f, "p50 {:.1} ms, p99 {:.1} ms, max {:.1} ms", ms(self.p50), ms(self.p99), ms(self.max))
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("no sample kind for pipeline '{0}'; pass --kind log|health|config-change or --file")]
    NoKind(String),
    #[error("--size lengthens the message of log events; {0:?} events have no such text (use --kind log or --file)")]
    SizeNeedsLogs(Kind),
    #[error("cannot create the Pub/Sub publisher: {0}")]
    Publisher(#[from] google_cloud_gax::client_builder::Error),
}

enum Attempt {
    Delivered(String),
    Rejected(String),
    Retry(String),
}

fn messages(args: &PublishArgs) -> Result<Vec<(String, Vec<u8>)>, PublishError> {
    Ok(match &args.file {
        Some(path) => {
            let text = std::fs::read(path).map_err(|source| PublishError::Read { path: path.clone(), source })?;
            let stem = path.file_stem().and_then(|s| s.to_str()).unwrap_or("file").to_owned();
            text.split(|b| *b == b'\n')
                .enumerate()
                .filter(|(_, l)| !l.iter().all(u8::is_ascii_whitespace))
                .map(|(i, l)| (format!("{stem}-{}", i + 1), l.to_vec()))
                .collect()
        }
        None => {
            let kind = args
                .kind
                .or_else(|| Kind::for_pipeline(&args.pipeline))
                .ok_or_else(|| PublishError::NoKind(args.pipeline.clone()))?;
            if args.size > 0 && kind != Kind::Log {
                return Err(PublishError::SizeNeedsLogs(kind));
            }
            let mut g = Generator::new(kind, args.seed).sized(args.size);
            (0..args.count)
                .map(|i| (format!("sample-{}-{i}", args.seed), g.next_event().to_string().into_bytes()))
                .collect()
        }
    })
}

/// Wait so that the `n`th message goes out no earlier than `n / rate` seconds after the start.
async fn pace(rate: Option<f64>, started: Instant, n: usize) {
    if let Some(r) = rate.filter(|r| *r > 0.0) {
        let due = started + Duration::from_secs_f64(n as f64 / r);
        tokio::time::sleep_until(due.into()).await;
    }
}

pub async fn run(args: PublishArgs) -> Result<Summary, PublishError> {
    let messages = messages(&args)?;
    let mut attributes = BTreeMap::new();
    attributes.insert("publisher".to_string(), "sluice-publish".to_string());
    attributes.insert("pipeline".to_string(), args.pipeline.clone());
    let started = Instant::now();
    let total = messages.len() as u64;
    let (results, destination) = match &args.target {
        Target::Push { url } => {
            let endpoint = format!("{}/push/{}", url.trim_end_matches('/'), args.pipeline);
            (push_all(&args, &endpoint, messages, &attributes, started).await, endpoint)
        }
        Target::Topic { topic, pubsub } => {
            (publish_all(&args, topic, pubsub, messages, &attributes, started).await?, topic.clone())
        }
    };
    let mut summary = Summary { sent: total, ..Default::default() };
    let mut times = Vec::with_capacity(results.len());
    for (r, took) in results {
        match r {
            Attempt::Delivered(id) => {
                summary.delivered += 1;
                summary.ids.push(id);
                times.push(took);
            }
            Attempt::Rejected(why) => {
                summary.rejected += 1;
                eprintln!("rejected {why}");
            }
            Attempt::Retry(why) => {
                summary.failed += 1;
                eprintln!("failed {why}");
            }
        }
    }
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "published {} events to {destination}: {} delivered, {} rejected, {} failed in {secs:.2}s ({:.0} events/s)",
        summary.sent,
        summary.delivered,
        summary.rejected,
        summary.failed,
        summary.sent as f64 / secs.max(1e-9)
    );
    summary.latency = Latency::of(times);
    if let Some(latency) = &summary.latency {
        eprintln!("latency of delivered events (first attempt to answer): {latency}");
    }
    Ok(summary)
}

async fn push_all(
    args: &PublishArgs,
    endpoint: &str,
    messages: Vec<(String, Vec<u8>)>,
    attributes: &BTreeMap<String, String>,
    started: Instant,
) -> Vec<(Attempt, Duration)> {
    let client = reqwest::Client::builder().timeout(Duration::from_secs(120)).build().expect("http client builds");
    let subscription = format!("sluice-publish/{}", args.pipeline);
    futures::stream::iter(messages.into_iter().enumerate())
        .map(|(n, (id, data))| {
            let body = envelope(&data, &id, attributes, &subscription);
            let client = &client;
            async move {
                pace(args.rate, started, n).await;
                let first = Instant::now();
                let send = || async {
                    let resp = client.post(endpoint).json(&body).send().await.map_err(|e| e.to_string())?;
                    let status = resp.status();
                    let text = resp.text().await.unwrap_or_default();
                    if status.is_success() {
                        Ok(Attempt::Delivered(id.clone()))
                    } else if status.as_u16() == 429 || status.is_server_error() {
                        Err(format!("{status}: {text}"))
                    } else {
                        Ok(Attempt::Rejected(format!("{id}: {status}: {text}")))
                    }
                };
                let attempt = send
                    .retry(ExponentialBuilder::default().with_min_delay(Duration::from_millis(200)).with_max_times(5))
                    .await
                    .unwrap_or_else(|e| Attempt::Retry(format!("{id}: {e}")));
                (attempt, first.elapsed())
            }
        })
        .buffer_unordered(args.concurrency.max(1))
        .collect()
        .await
}

async fn publish_all(
    args: &PublishArgs,
    topic: &str,
    pubsub: &crate::config::global::PubsubConfig,
    messages: Vec<(String, Vec<u8>)>,
    attributes: &BTreeMap<String, String>,
    started: Instant,
) -> Result<Vec<(Attempt, Duration)>, PublishError> {
    let publisher = crate::source::pubsub::at_endpoint!(google_cloud_pubsub::client::Publisher::builder(topic), pubsub)
        .build()
        .await?;
    let attrs: Vec<(String, String)> = attributes.iter().map(|(k, v)| (k.clone(), v.clone())).collect();
    // The publisher batches internally; many publishes in flight let it fill its batches.
    let results = futures::stream::iter(messages.into_iter().enumerate())
        .map(|(n, (name, data))| {
            let msg = google_cloud_pubsub::model::Message::new().set_data(data).set_attributes(attrs.clone());
            let publisher = &publisher;
            async move {
                pace(args.rate, started, n).await;
                let first = Instant::now();
                let attempt = match publisher.publish(msg).await {
                    Ok(id) => Attempt::Delivered(id),
                    Err(e) => Attempt::Retry(format!("{name}: {e}")),
                };
                (attempt, first.elapsed())
            }
        })
        .buffer_unordered(args.concurrency.max(1) * 32)
        .collect()
        .await;
    publisher.flush().await;
    Ok(results)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn latency_percentiles_by_nearest_rank() {
        let times: Vec<Duration> = (1..=200).rev().map(Duration::from_millis).collect();
        let l = Latency::of(times).unwrap();
        assert_eq!(
            (l.p50, l.p99, l.max),
            (Duration::from_millis(100), Duration::from_millis(198), Duration::from_millis(200))
        );
        assert_eq!(Latency::of(vec![Duration::from_millis(7)]).unwrap().p99, Duration::from_millis(7));
        assert_eq!(Latency::of(Vec::new()), None);
    }
}
