//! Benchmark: a backlog on the Pub/Sub emulator drained into the local lake by the release
//! `sluice` binary with the shipped defaults (4 streams per subscription, flow control on).
//! Prints events/s and the peak RSS of the sluice process against the flow-control bound.
//!
//! Run: `cargo bench --bench pubsub_to_lake` (BACKLOG=100000 by default).

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

/// Rows in every Parquet file under `dir`, from the file footers only.
fn count_rows(dir: &Path) -> u64 {
    common::parquet_files(dir)
        .iter()
        .filter_map(|f| {
            let file = std::fs::File::open(f).ok()?;
            let reader = parquet::file::serialized_reader::SerializedFileReader::new(file).ok()?;
            use parquet::file::reader::FileReader;
            Some(reader.metadata().file_metadata().num_rows() as u64)
        })
        .sum()
}

/// Peak resident set size of a process, in MiB (VmHWM).
fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return; // built by `cargo test --benches`: nothing to measure there
    }
    let backlog: u64 = std::env::var("BACKLOG").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let emu = common::PubsubEmulator::start();
    let env = emu.env();
    common::sluice_cmd(&["provision"], &env);
    let publish_started = Instant::now();
    let host = emu.host.clone();
    let out = common::sluice_cmd(
        &["publish", "--topic", "logs", "-p", "logs", "-n", &backlog.to_string(), "--seed", "7", "--concurrency", "64"],
        &env,
    );
    assert!(out.contains(&format!("{backlog} delivered")), "{out}");
    let publish_secs = publish_started.elapsed().as_secs_f64();

    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let started = Instant::now();
    let sluice = common::Sluice::start_with(&lake, &env);
    let deadline = Instant::now() + Duration::from_secs(900);
    while count_rows(&lake.join("logs")) < backlog {
        assert!(Instant::now() < deadline, "backlog not drained in 15 minutes");
        std::thread::sleep(Duration::from_millis(200));
    }
    let secs = started.elapsed().as_secs_f64();
    let rss = peak_rss_mib(sluice.child.id());
    // CPU time the sluice process used while draining (utime + stime, in clock ticks).
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", sluice.child.id())).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    let cpu_secs = ticks / 100.0;
    assert!(sluice.stop().success());

    // pubsub.max_outstanding_bytes in config/sluice.yaml (per subscription; only `logs` has a
    // backlog here), plus the fixed overhead the memory target allows.
    let (bound_mib, overhead_mib) = (100.0, 64.0);
    println!();
    println!("pubsub_to_lake  (emulator at {host}, shipped config: 4 streams/subscription)");
    println!("| measure                               | value |");
    println!("| ------------------------------------- | ----- |");
    println!("| backlog published (log events)        | {backlog} in {publish_secs:.1}s |");
    println!("| drained into the lake                 | {secs:.1}s |");
    println!("| throughput                            | {:.0} events/s |", backlog as f64 / secs);
    println!(
        "| sluice CPU while draining             | {cpu_secs:.1}s ({:.0}% of one core) |",
        100.0 * cpu_secs / secs
    );
    println!("| peak RSS of sluice                    | {rss:.1} MiB |");
    let limit = bound_mib + overhead_mib;
    let verdict = if rss <= limit { "within" } else { "OVER" };
    println!("| flow-control bound + fixed overhead   | {bound_mib:.0} + {overhead_mib:.0} = {limit:.0} MiB: peak RSS {verdict} ({:.0}%) |", 100.0 * rss / limit);
}
