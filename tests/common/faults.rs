//! Fault-test harness: a steady publisher, a seeded random source, ids in the lake and in
//! BigQuery, the count table every fault test prints, `/metrics` and RSS sampling of a sluice,
//! and a gate that cuts a service off the network.

use std::collections::HashMap;
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use tokio::task::JoinHandle;

use super::{BigQueryEmulator, PubsubEmulator, Sluice};

/// Print `text` where CI shows it even when the test passes: the test harness captures
/// `println!`, not direct writes to stderr. One write, so parallel tests do not interleave it.
pub(crate) fn report(text: impl AsRef<str>) {
    use std::io::Write;
    let mut text = text.as_ref().to_owned();
    text.push('\n');
    let _ = std::io::stderr().lock().write_all(text.as_bytes());
}

/// A subscription on the dead-letter topic `sluice provision` sets on every subscription: what
/// Pub/Sub gave up on after `max_delivery_attempts` goes there instead of to sluice, so a count
/// of it tells a slow or stuck delivery from a loss in sluice.
pub(crate) struct ParkedWatch {
    base: String,
}

impl ParkedWatch {
    /// Provision with `env`, then subscribe to the dead-letter topic.
    pub(crate) async fn provision(ps: &PubsubEmulator, env: &[(&'static str, String)]) -> ParkedWatch {
        tokio::task::block_in_place(|| super::sluice_cmd(&["provision"], env));
        let base = format!("http://{}/v1/projects/sluice-test/subscriptions/parked-watch", ps.host);
        let body = serde_json::json!({"topic": "projects/sluice-test/topics/sluice-dead-letters"});
        let r = reqwest::Client::new().put(&base).json(&body).send().await.expect("create the watch subscription");
        assert!(r.status().is_success(), "creating the dead-letter watch: {}", r.text().await.unwrap_or_default());
        ParkedWatch { base }
    }

    /// Report how many messages Pub/Sub dead-lettered, by the subscription they came from.
    pub(crate) async fn report(&self) {
        let client = reqwest::Client::new();
        let mut by_source: std::collections::BTreeMap<String, usize> = Default::default();
        loop {
            let pulled: serde_json::Value = client
                .post(format!("{}:pull", self.base))
                .json(&serde_json::json!({"maxMessages": 1000, "returnImmediately": true}))
                .send()
                .await
                .expect("pull the dead-letter watch")
                .json()
                .await
                .expect("a pull response");
            let received = pulled["receivedMessages"].as_array().cloned().unwrap_or_default();
            if received.is_empty() {
                break;
            }
            let acks: Vec<&str> = received.iter().filter_map(|m| m["ackId"].as_str()).collect();
            for m in &received {
                let source = m["message"]["attributes"]["CloudPubSubDeadLetterSourceSubscription"].as_str();
                *by_source.entry(source.unwrap_or("?").rsplit('/').next().unwrap_or("?").to_owned()).or_default() += 1;
            }
            let ack = serde_json::json!({ "ackIds": acks });
            client.post(format!("{}:acknowledge", self.base)).json(&ack).send().await.expect("ack the watch");
        }
        report(format!("  moved to the Pub/Sub dead-letter topic after max delivery attempts: {by_source:?}"));
    }
}

/// sluice's seeded generator, seeded from `SLUICE_FAULT_SEED` when set, else from the clock. The
/// seed is printed, so a failing run can be repeated from it.
pub(crate) fn seeded_rng(test: &str) -> sluice::publish::sample::Rng {
    let seed = std::env::var("SLUICE_FAULT_SEED").ok().and_then(|s| s.parse().ok()).unwrap_or_else(|| {
        std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH).unwrap().as_nanos() as u64
    });
    report(format!("{test}: seed {seed} (repeat with SLUICE_FAULT_SEED={seed})"));
    sluice::publish::sample::Rng::new(seed)
}

/// A duration in `[lo, hi)`.
pub(crate) fn between(rng: &mut sluice::publish::sample::Rng, lo: Duration, hi: Duration) -> Duration {
    let span = (hi - lo).as_millis().max(1) as u64;
    lo + Duration::from_millis(rng.below(span))
}

/// Publish `count` sample events for `pipeline` at `rate` per second (`None`: as fast as
/// possible) to the emulator `env` names ([`PubsubEmulator::env`]); returns the Pub/Sub message ids.
pub(crate) async fn publish_at(
    env: &[(&'static str, String)],
    pipeline: &str,
    count: u64,
    seed: u64,
    rate: Option<f64>,
) -> Vec<String> {
    let env: HashMap<&str, String> = env.iter().cloned().collect();
    let config =
        sluice::config::load_with_env(&super::repo().join("config/sluice.yaml"), |k| env.get(k).cloned()).unwrap();
    let pubsub = config.global.pubsub.clone().unwrap();
    let summary = sluice::publish::run(sluice::publish::PublishArgs {
        target: sluice::publish::Target::Topic { topic: pubsub.topic_path(pipeline), pubsub },
        pipeline: pipeline.into(),
        file: None,
        count,
        seed,
        size: 0,
        kind: None,
        concurrency: 64,
        rate,
    })
    .await
    .unwrap();
    assert_eq!(summary.delivered, count, "every publish succeeded");
    summary.ids
}

/// Publishers running in the background, one per pipeline, each at a steady rate.
pub(crate) struct Steady {
    tasks: Vec<(&'static str, JoinHandle<Vec<String>>)>,
}

impl Steady {
    /// Start publishing `count` events at `rate`/s to each `(pipeline, count, rate)`.
    pub(crate) fn start(emu: &PubsubEmulator, plan: &[(&'static str, u64, f64)], seed: u64) -> Steady {
        let tasks = plan
            .iter()
            .map(|&(pipeline, count, rate)| {
                let env = emu.env();
                (pipeline, tokio::spawn(async move { publish_at(&env, pipeline, count, seed, Some(rate)).await }))
            })
            .collect();
        Steady { tasks }
    }

    /// Wait for every publisher; the ids each published.
    pub(crate) async fn finish(self) -> Vec<(&'static str, Vec<String>)> {
        let mut out = Vec::new();
        for (pipeline, task) in self.tasks {
            out.push((pipeline, task.await.expect("publisher task")));
        }
        out
    }
}

/// BigQuery table of each shipped pipeline.
pub(crate) fn table_of(pipeline: &str) -> &'static str {
    match pipeline {
        "logs" => "logs",
        "health" => "health",
        "config-changes" => "config_changes",
        other => panic!("no table for pipeline {other}"),
    }
}

/// For ids BigQuery holds twice: when each copy was ingested, and which instances wrote the id to
/// the local lake (object names start with the instance), to tell a late append of a killed
/// instance from a message two survivors held at once.
pub(crate) async fn explain_duplicates(
    bq: &BigQueryEmulator,
    lake: Option<&Path>,
    pipeline: &str,
    logs: &[std::path::PathBuf],
) {
    let table = table_of(pipeline);
    let sql = format!(
        "SELECT message_id, ARRAY_AGG(CAST(ingest_time AS STRING)) FROM `sluice-test.sluice.{table}` \
         GROUP BY message_id HAVING COUNT(*) > 1 LIMIT 5"
    );
    let duplicated = bq.query(&sql).await;
    if duplicated.is_empty() {
        return;
    }
    // Each lake file read once: the writing instance of every id in it.
    let mut writers: HashMap<String, Vec<String>> = HashMap::new();
    for f in lake.map(|l| super::parquet_files(&l.join(pipeline))).unwrap_or_default() {
        let instance = f.file_name().unwrap().to_string_lossy().split('-').next().unwrap_or("?").to_owned();
        for r in super::parquet_rows(std::fs::File::open(&f).unwrap()) {
            if let Some(id) = r["message_id"].as_str() {
                writers.entry(id.to_owned()).or_default().push(instance.clone());
            }
        }
    }
    for row in &duplicated {
        let id = row[0].as_str().unwrap_or_default();
        let from = writers.get(id).cloned().unwrap_or_default();
        report(format!("  {pipeline}: {id} twice in BigQuery, ingested {}; in the lake from {from:?}", row[1]));
    }
    if let Some(id) = duplicated.first().and_then(|r| r[0].as_str()) {
        report(trace(&format!("{pipeline} id {id}, twice in BigQuery"), id, logs));
    }
}

/// Message ids in a BigQuery table, with how often each occurs.
pub(crate) async fn table_ids(bq: &BigQueryEmulator, table: &str) -> HashMap<String, usize> {
    let mut ids = HashMap::new();
    for row in bq.query(&format!("SELECT message_id FROM `sluice-test.sluice.{table}`")).await {
        *ids.entry(row[0].as_str().unwrap().to_owned()).or_insert(0) += 1;
    }
    ids
}

/// One line of the count table: what was published, and what each sink holds of it.
#[derive(Debug, Default)]
pub(crate) struct Counts {
    pub pipeline: String,
    pub published: usize,
    pub in_lake: usize,
    pub in_bigquery: usize,
    pub lost_lake: usize,
    pub lost_bigquery: usize,
    pub dup_lake: usize,
    pub dup_bigquery: usize,
    /// Ids in a sink that were never published (must be none).
    pub unknown: usize,
    /// The first few lost ids, each with the sink that lacks it.
    pub missing: Vec<String>,
}

impl Counts {
    pub(crate) fn of(
        pipeline: &str,
        published: &[String],
        lake: &HashMap<String, usize>,
        table: &HashMap<String, usize>,
    ) -> Counts {
        let lost = |sink: &HashMap<String, usize>| published.iter().filter(|id| !sink.contains_key(*id)).count();
        let set: std::collections::HashSet<&String> = published.iter().collect();
        // Duplicates of published events; rows sluice makes itself (liveness) are reported apart.
        let dups = |sink: &HashMap<String, usize>| {
            let other: usize = sink.iter().filter(|(id, _)| !set.contains(id)).map(|(_, n)| n - 1).sum();
            if other > 0 {
                report(format!("  {pipeline}: {other} duplicated rows of sluice's own events (not published ids)"));
            }
            sink.iter().filter(|(id, _)| set.contains(id)).map(|(_, n)| n - 1).sum()
        };
        let unknown =
            lake.keys().chain(table.keys()).filter(|id| !set.contains(id) && !id.starts_with("liveness:")).count();
        let missing = [("lake", lake), ("BigQuery", table)]
            .into_iter()
            .flat_map(|(name, sink)| {
                published.iter().filter(|id| !sink.contains_key(*id)).map(move |id| format!("{id} ({name})"))
            })
            .take(10)
            .collect();
        Counts {
            pipeline: pipeline.into(),
            published: published.len(),
            in_lake: lake.len(),
            in_bigquery: table.len(),
            lost_lake: lost(lake),
            lost_bigquery: lost(table),
            dup_lake: dups(lake),
            dup_bigquery: dups(table),
            unknown,
            missing,
        }
    }

    /// Print the table under a title, with the first ids each sink lacks.
    pub(crate) fn print(title: &str, rows: &[Counts]) {
        let line = |cells: [&dyn std::fmt::Display; 7]| {
            let [p, n, l, b, lost, dl, db] = cells;
            format!("  {p:<15} {n:>9} {l:>8} {b:>11} {lost:>5} {dl:>14} {db:>13}\n")
        };
        let mut text = format!("{title}\n");
        text +=
            &line([&"pipeline", &"published", &"in lake", &"in BigQuery", &"lost", &"dup (lake)", &"dup (BigQuery)"]);
        for c in rows {
            let lost = c.lost_lake + c.lost_bigquery;
            text += &line([&c.pipeline, &c.published, &c.in_lake, &c.in_bigquery, &lost, &c.dup_lake, &c.dup_bigquery]);
            if !c.missing.is_empty() {
                text += &format!("    first missing: {}\n", c.missing.join(", "));
            }
        }
        report(text.trim_end());
    }
}

/// Distinct published-looking ids in a table (sluice's own liveness rows left out): a cheap
/// progress check, so waiting does not load the emulator with full reads.
pub(crate) async fn distinct_ids(bq: &BigQueryEmulator, table: &str) -> usize {
    let sql = format!(
        "SELECT COUNT(DISTINCT message_id) FROM `sluice-test.sluice.{table}` WHERE message_id NOT LIKE 'liveness:%'"
    );
    bq.query(&sql).await.first().and_then(|r| r[0].as_str()?.parse().ok()).unwrap_or(0)
}

/// Wait until BigQuery and then the lake (read by `lake`) hold as many ids as were published,
/// or `limit` passes; then count. Panics on neither: the caller asserts on the counts.
pub(crate) async fn settle<F>(
    bq: &BigQueryEmulator,
    published: &[(&'static str, Vec<String>)],
    mut lake: F,
    limit: Duration,
) -> Vec<Counts>
where
    F: AsyncFnMut(&str) -> HashMap<String, usize>,
{
    let deadline = Instant::now() + limit;
    'wait: while Instant::now() < deadline {
        tokio::time::sleep(Duration::from_secs(2)).await;
        for (pipeline, ids) in published {
            if distinct_ids(bq, table_of(pipeline)).await < ids.len() {
                continue 'wait;
            }
        }
        for (pipeline, ids) in published {
            let set: std::collections::HashSet<&String> = ids.iter().collect();
            if lake(pipeline).await.keys().filter(|id| set.contains(id)).count() < ids.len() {
                continue 'wait;
            }
        }
        break;
    }
    let mut counts = Vec::new();
    for (pipeline, ids) in published {
        let in_lake = lake(pipeline).await;
        let in_table = table_ids(bq, table_of(pipeline)).await;
        counts.push(Counts::of(pipeline, ids, &in_lake, &in_table));
    }
    counts
}

/// Resident set size of a process, in bytes (0 once it is gone).
pub(crate) fn rss(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
        .map_or(0, |kb| kb * 1024)
}

/// The value of a `/metrics` sample whose line starts with `name` and contains `label`.
pub(crate) async fn metric(url: &str, name: &str, label: &str) -> Option<f64> {
    let text = reqwest::get(format!("{url}/metrics")).await.ok()?.text().await.ok()?;
    text.lines()
        .filter(|l| l.starts_with(name) && l[name.len()..].starts_with(['{', ' ']) && l.contains(label))
        .find_map(|l| l.rsplit(' ').next()?.parse().ok())
}

/// Peaks seen while sampling a sluice: RSS, outstanding messages and bytes on one subscription.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Peaks {
    pub rss: u64,
    pub messages: f64,
    pub bytes: f64,
}

/// Samples a sluice every 200 ms in the background until stopped.
pub(crate) struct Sampler {
    stop: Arc<AtomicBool>,
    peaks: Arc<Mutex<Peaks>>,
    task: JoinHandle<()>,
}

impl Sampler {
    pub(crate) fn start(sluice: &Sluice, subscription: &str) -> Sampler {
        let (pid, url, sub) = (sluice.child.id(), sluice.url.clone(), subscription.to_owned());
        let stop = Arc::new(AtomicBool::new(false));
        let peaks = Arc::new(Mutex::new(Peaks::default()));
        let (s, p) = (stop.clone(), peaks.clone());
        let task = tokio::spawn(async move {
            while !s.load(Ordering::Relaxed) {
                let m = metric(&url, "sluice_outstanding_messages", &sub).await.unwrap_or(0.0);
                let b = metric(&url, "sluice_outstanding_bytes", &sub).await.unwrap_or(0.0);
                let r = rss(pid);
                {
                    let mut peaks = p.lock().unwrap();
                    peaks.rss = peaks.rss.max(r);
                    peaks.messages = peaks.messages.max(m);
                    peaks.bytes = peaks.bytes.max(b);
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        });
        Sampler { stop, peaks, task }
    }

    /// Peaks so far.
    pub(crate) fn peaks(&self) -> Peaks {
        *self.peaks.lock().unwrap()
    }

    /// Peaks since the last reset, then start over.
    pub(crate) fn take(&self) -> Peaks {
        std::mem::take(&mut *self.peaks.lock().unwrap())
    }

    pub(crate) async fn stop(self) -> Peaks {
        self.stop.store(true, Ordering::Relaxed);
        let peaks = self.peaks.clone();
        let _ = self.task.await;
        let last = *peaks.lock().unwrap();
        last
    }
}

/// Lines of a sluice's log (its stderr) that contain `needle`.
pub(crate) fn log_lines(sluice: &Sluice, needle: &str) -> usize {
    let text = std::fs::read_to_string(log_path(sluice)).unwrap_or_default();
    text.lines().filter(|l| l.contains(needle)).count()
}

/// Where a sluice started by the harness writes its log.
pub(crate) fn log_path(sluice: &Sluice) -> std::path::PathBuf {
    let port = sluice.url.rsplit(':').next().unwrap();
    std::env::temp_dir().join(format!("sluice-{port}.log"))
}

/// Follow each lost id through the logs of every instance that ran (with
/// `RUST_LOG=…,sluice::source::pull=debug` they hold each delivery and how it settled) and the
/// lake's dead letters, so a loss says where the message went.
pub(crate) async fn trace_missing(counts: &[Counts], logs: &[std::path::PathBuf], lake: Option<&Path>) {
    for c in counts.iter().filter(|c| !c.missing.is_empty()) {
        let dead = match lake {
            Some(l) => local_lake_ids(l, &format!("dead-letters/{}", c.pipeline)).await,
            None => HashMap::new(),
        };
        let ids: std::collections::BTreeSet<&str> = c.missing.iter().filter_map(|m| m.split(' ').next()).collect();
        for id in ids {
            let found = dead.contains_key(id);
            report(trace(&format!("lost {} id {id} (in the lake's dead letters: {found})", c.pipeline), id, logs));
        }
    }
}

/// The log lines of every instance that name message `id`, under a heading.
pub(crate) fn trace(heading: &str, id: &str, logs: &[std::path::PathBuf]) -> String {
    let mut text = format!("  trace of {heading}:");
    let needle = format!("\"message_id\":\"{id}\"");
    for (n, log) in logs.iter().enumerate() {
        let lines = std::fs::read_to_string(log).unwrap_or_default();
        for line in lines.lines().filter(|l| l.contains(&needle)) {
            text += &format!("\n    instance {n} ({}): {line}", log.display());
        }
    }
    text
}

/// A TCP gate in front of a service: while closed, open connections are cut and new ones are
/// accepted and dropped at once, as a crashed service behind a load balancer looks to a client.
pub(crate) struct Gate {
    pub addr: String,
    closed: Arc<AtomicBool>,
    /// Bumped on every close, so connection tasks of an earlier opening end themselves.
    epoch: Arc<std::sync::atomic::AtomicU64>,
}

impl Gate {
    pub(crate) async fn start(target: String) -> Gate {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let closed = Arc::new(AtomicBool::new(false));
        let epoch = Arc::new(std::sync::atomic::AtomicU64::new(0));
        let (c, e) = (closed.clone(), epoch.clone());
        tokio::spawn(async move {
            while let Ok((client, _)) = listener.accept().await {
                if c.load(Ordering::SeqCst) {
                    drop(client);
                    continue;
                }
                let Ok(server) = tokio::net::TcpStream::connect(&target).await else { continue };
                let (e, mine) = (e.clone(), e.load(Ordering::SeqCst));
                tokio::spawn(async move {
                    let (mut client, mut server) = (client, server);
                    let copy = tokio::io::copy_bidirectional(&mut client, &mut server);
                    let cut = async {
                        while e.load(Ordering::SeqCst) == mine {
                            tokio::time::sleep(Duration::from_millis(50)).await;
                        }
                    };
                    tokio::select! { _ = copy => {}, _ = cut => {} }
                });
            }
        });
        Gate { addr, closed, epoch }
    }

    /// Cut every connection and refuse new ones (`true`), or let them through again.
    pub(crate) fn close(&self, closed: bool) {
        self.closed.store(closed, Ordering::SeqCst);
        if closed {
            self.epoch.fetch_add(1, Ordering::SeqCst);
        }
    }
}

/// Message ids in a local lake for a pipeline (the shared helper, for `settle`).
pub(crate) async fn local_lake_ids(lake: &Path, pipeline: &str) -> HashMap<String, usize> {
    let (lake, pipeline) = (lake.to_owned(), pipeline.to_owned());
    tokio::task::spawn_blocking(move || super::lake_ids(&lake, &pipeline)).await.unwrap()
}
