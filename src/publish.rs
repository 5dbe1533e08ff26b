//! `sluice publish`: send sample or given events to a running sluice's push endpoint, wrapped
//! the way Pub/Sub pushes them, retrying 429/503 the way Pub/Sub would.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use backon::{ExponentialBuilder, Retryable};
use futures::StreamExt;

use crate::sample::{Generator, Kind};
use crate::source::push::envelope;

pub struct PublishArgs {
    /// Base URL of sluice, e.g. `http://127.0.0.1:8080`.
    pub url: String,
    pub pipeline: String,
    /// NDJSON file: each non-empty line is sent verbatim as one message's data.
    pub file: Option<PathBuf>,
    /// How many sample events to generate when no file is given.
    pub count: u64,
    pub seed: u64,
    pub kind: Option<Kind>,
    pub concurrency: usize,
}

#[derive(Debug, Default, PartialEq, Eq)]
pub struct Summary {
    pub sent: u64,
    pub delivered: u64,
    /// Refused with a 4xx: the request itself was wrong; retrying cannot help.
    pub rejected: u64,
    /// Still 429/5xx or unreachable after retries.
    pub failed: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum PublishError {
    #[error("cannot read {path}: {source}")]
    Read { path: PathBuf, source: std::io::Error },
    #[error("no sample kind for pipeline '{0}'; pass --kind log|health|config-change or --file")]
    NoKind(String),
}

enum Attempt {
    Delivered,
    Rejected(String),
    Retry(String),
}

pub async fn run(args: PublishArgs) -> Result<Summary, PublishError> {
    let messages: Vec<(String, Vec<u8>)> = match &args.file {
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
            let kind = args.kind.or_else(|| Kind::for_pipeline(&args.pipeline)).ok_or_else(|| PublishError::NoKind(args.pipeline.clone()))?;
            let mut g = Generator::new(kind, args.seed);
            (0..args.count).map(|i| (format!("sample-{}-{i}", args.seed), g.next_event().to_string().into_bytes())).collect()
        }
    };
    let client = reqwest::Client::builder().timeout(Duration::from_secs(120)).build().expect("http client builds");
    let endpoint = format!("{}/push/{}", args.url.trim_end_matches('/'), args.pipeline);
    let mut attributes = BTreeMap::new();
    attributes.insert("publisher".to_string(), "sluice-publish".to_string());
    let subscription = format!("sluice-publish/{}", args.pipeline);
    let started = Instant::now();
    let total = messages.len() as u64;
    let results: Vec<Attempt> = futures::stream::iter(messages)
        .map(|(id, data)| {
            let body = envelope(&data, &id, &attributes, &subscription);
            let (client, endpoint) = (&client, &endpoint);
            async move {
                let send = || async {
                    let resp = client.post(endpoint).json(&body).send().await.map_err(|e| e.to_string())?;
                    let status = resp.status();
                    let text = resp.text().await.unwrap_or_default();
                    if status.is_success() {
                        Ok(Attempt::Delivered)
                    } else if status.as_u16() == 429 || status.is_server_error() {
                        Err(format!("{status}: {text}"))
                    } else {
                        Ok(Attempt::Rejected(format!("{id}: {status}: {text}")))
                    }
                };
                send.retry(ExponentialBuilder::default().with_min_delay(Duration::from_millis(200)).with_max_times(5))
                    .await
                    .unwrap_or_else(|e| Attempt::Retry(format!("{id}: {e}")))
            }
        })
        .buffer_unordered(args.concurrency.max(1))
        .collect()
        .await;
    let mut summary = Summary { sent: total, ..Default::default() };
    for r in results {
        match r {
            Attempt::Delivered => summary.delivered += 1,
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
        "published {} events to {endpoint}: {} delivered, {} rejected, {} failed in {secs:.2}s ({:.0} events/s)",
        summary.sent, summary.delivered, summary.rejected, summary.failed, summary.sent as f64 / secs.max(1e-9)
    );
    Ok(summary)
}
