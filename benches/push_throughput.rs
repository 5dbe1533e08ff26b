//! Benchmark: what one push instance serves. The release `sluice run` (shipped config) takes
//! `sluice publish --pipeline logs -n N --concurrency C` into the local lake, into fake-gcs-server
//! (`gs://`), and into the local lake with BigQuery on (its emulator). Per case it prints events/s,
//! p50 and p99 request latency (first attempt to answer), the Parquet files written and rows per
//! file, sluice's CPU seconds and peak RSS. Then the same events are sent again: every one is a
//! duplicate the dedupe stage drops, so nothing waits for a write. That rate is the ceiling (what
//! HTTP, the publisher and the chain cost on this machine), measured in the same run.
//!
//! Run: `scripts/bench push_throughput`, or `cargo bench --bench push_throughput`. Env:
//! PUSH_CONCURRENCY ("1,80,250,1000"); PUSH_EVENTS (20000) per case, PUSH_EVENTS_SERIAL (2000) at
//! concurrency 1; PUSH_TARGETS ("local,gcs,bigquery"); PUSH_LINGER (unset: the shipped
//! `http.push_linger`), passed as SLUICE_PUSH_LINGER.

#[path = "../tests/common/mod.rs"]
mod common;

use common::push_load::{publish, Published};

#[derive(Clone, Copy, PartialEq)]
enum Target {
    Local,
    Gcs,
    BigQuery,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Local => "local lake",
            Target::Gcs => "fake-gcs (gs://)",
            Target::BigQuery => "local lake + BigQuery emulator",
        }
    }
}

/// The emulators the cases share, started once.
struct Emulators {
    gcs: Option<common::FakeGcs>,
    bigquery: Option<common::BigQueryEmulator>,
}

struct Measured {
    sent: Published,
    ceiling: Published,
    rows_per_file: Vec<u64>,
    cpu_secs: f64,
    peak_rss_mib: f64,
}

const BUCKET: &str = "push-bench";

/// Start sluice on `target`, push `events` at `concurrency`, then the same again (the ceiling).
fn measure(target: Target, concurrency: usize, events: u64, emulators: &Emulators, case: usize) -> Measured {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let port = common::free_port();
    let mut cmd = common::run_command(&lake, port);
    let prefix = format!("case-{case}");
    match target {
        Target::Local => {}
        Target::Gcs => {
            let gcs = emulators.gcs.as_ref().expect("fake-gcs-server started");
            cmd.env("SLUICE_LAKE", format!("gs://{BUCKET}/{prefix}")).env("STORAGE_EMULATOR_HOST", &gcs.url);
        }
        Target::BigQuery => {
            cmd.envs(emulators.bigquery.as_ref().expect("BigQuery emulator started").env());
        }
    }
    if let Ok(linger) = std::env::var("PUSH_LINGER") {
        cmd.env("SLUICE_PUSH_LINGER", linger);
    }
    let sluice = common::Sluice::spawn(cmd, port);
    let (n, c, seed) = (events.to_string(), concurrency.to_string(), case.to_string());
    let args = ["-n", n.as_str(), "--concurrency", c.as_str(), "--seed", seed.as_str()];
    let sent = publish(&sluice.url, &args);
    let ceiling = publish(&sluice.url, &args);
    let pid = sluice.child.id();
    let (cpu_secs, peak_rss_mib) = (common::cpu_secs(pid), common::peak_rss_mib(pid));
    let log = common::faults::log_path(&sluice);
    assert!(sluice.stop().success(), "sluice exits cleanly; log: {}", log.display());
    let rows_per_file: Vec<u64> = match target {
        Target::Gcs => {
            let gcs = emulators.gcs.as_ref().expect("fake-gcs-server started");
            let runtime = tokio::runtime::Runtime::new().unwrap();
            let objects = runtime.block_on(gcs.objects(BUCKET, &format!("{prefix}/logs")));
            objects
                .into_iter()
                .filter(|(name, _)| name.ends_with(".parquet"))
                .filter_map(|(_, b)| common::footer_rows(b))
                .collect()
        }
        _ => common::parquet_files(&lake.join("logs"))
            .into_iter()
            .filter_map(|f| common::footer_rows(std::fs::File::open(f).ok()?))
            .collect(),
    };
    let rows: u64 = rows_per_file.iter().sum();
    assert!(rows >= sent.delivered, "{} delivered but {rows} rows in the lake; log: {}", sent.delivered, log.display());
    Measured { sent, ceiling, rows_per_file, cpu_secs, peak_rss_mib }
}

fn targets() -> Vec<Target> {
    let list = std::env::var("PUSH_TARGETS").unwrap_or_else(|_| "local,gcs,bigquery".into());
    list.split(',')
        .map(|t| match t.trim() {
            "local" => Target::Local,
            "gcs" => Target::Gcs,
            "bigquery" => Target::BigQuery,
            other => panic!("PUSH_TARGETS: {other:?} is not local, gcs or bigquery"),
        })
        .collect()
}

fn start_emulators(targets: &[Target]) -> Emulators {
    let gcs = targets.contains(&Target::Gcs).then(|| {
        let gcs = common::FakeGcs::start();
        gcs.create_bucket(BUCKET);
        gcs
    });
    let bigquery = targets.contains(&Target::BigQuery).then(|| {
        let bq = common::BigQueryEmulator::start();
        common::sluice_cmd(&["provision"], &bq.env());
        bq
    });
    Emulators { gcs, bigquery }
}

fn print(results: &[(Target, usize, u64, Measured)]) {
    println!();
    println!("push_throughput: `sluice publish --pipeline logs -n N --concurrency C` into the release `sluice run` (shipped config)");
    println!("(latency: first attempt to answer, per event; ceiling: the same events again, all dropped by dedupe)");
    println!();
    println!("| target | concurrency | events | events/s | p50 ms | p99 ms | files | rows per file (mean, min-max) | ceiling events/s | ceiling p50 / p99 ms | of ceiling | sluice CPU s | peak RSS MiB |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | ---: |");
    for (target, concurrency, events, m) in results {
        let files = m.rows_per_file.len();
        let mean = m.rows_per_file.iter().sum::<u64>() as f64 / files.max(1) as f64;
        let (min, max) = (m.rows_per_file.iter().min().unwrap_or(&0), m.rows_per_file.iter().max().unwrap_or(&0));
        println!(
            "| {} | {concurrency} | {events} | {:.0} | {:.1} | {:.1} | {files} | {mean:.0} ({min}-{max}) | {:.0} | {:.1} / {:.1} | {:.0}% | {:.1} | {:.0} |",
            target.name(),
            m.sent.events_per_s,
            m.sent.p50_ms,
            m.sent.p99_ms,
            m.ceiling.events_per_s,
            m.ceiling.p50_ms,
            m.ceiling.p99_ms,
            100.0 * m.sent.events_per_s / m.ceiling.events_per_s,
            m.cpu_secs,
            m.peak_rss_mib
        );
    }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return; // built by `cargo test --benches`: nothing to measure there
    }
    let concurrencies: Vec<usize> = std::env::var("PUSH_CONCURRENCY")
        .unwrap_or_else(|_| "1,80,250,1000".into())
        .split(',')
        .map(|c| c.trim().parse().unwrap_or_else(|_| panic!("PUSH_CONCURRENCY: {c:?} is not a number")))
        .collect();
    let events = common::samples::env_usize("PUSH_EVENTS", 20_000) as u64;
    let serial = common::samples::env_usize("PUSH_EVENTS_SERIAL", 2_000) as u64;
    let targets = targets();
    let emulators = start_emulators(&targets);
    let mut results = Vec::new();
    for &target in &targets {
        for &concurrency in &concurrencies {
            let n = if concurrency == 1 { serial.min(events) } else { events };
            eprintln!("push_throughput: {} events, concurrency {concurrency}, into {}", n, target.name());
            let m = measure(target, concurrency, n, &emulators, results.len());
            results.push((target, concurrency, n, m));
        }
    }
    print(&results);
}
