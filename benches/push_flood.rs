//! Benchmark: peak RSS of the release `sluice run` (push endpoint, shipped config, local lake)
//! while a flood of concurrent push requests arrives, against the push flow-control bound
//! (`http.max_outstanding_bytes`, 100 MiB, + 64 MiB fixed overhead = 164 MiB). For comparison the
//! largest size is flooded once more with the push flow control effectively off (1,000,000
//! messages, 100 GiB). Prints, per case, what `sluice publish` delivered, wall and sluice CPU
//! seconds, peak RSS (VmHWM), the 429 refusals sluice logged and the rows that reached the lake.
//!
//! Run: `scripts/bench push_flood`, or `cargo bench --bench push_flood`. Env: FLOOD_CONCURRENCY
//! (1000) requests in flight; FLOOD_EVENTS (1000) requests per size, 20 times that for sizes up
//! to 4096 bytes (they are quick); FLOOD_SIZES ("4096,100000,1000000") event bytes;
//! FLOOD_UNBOUNDED (1; 0 skips the flow-control-off case).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

struct Case {
    size: usize,
    requests: u64,
    concurrency: usize,
    flow_control: bool,
}

struct Flood {
    delivered: u64,
    secs: f64,
    cpu_secs: f64,
    peak_rss_mib: f64,
    refusals: usize,
    rows: u64,
}

/// Start sluice on a copy of the shipped config, flood its push endpoint, and measure it.
fn flood(case: &Case) -> Flood {
    let root = common::shipped_copy();
    if !case.flow_control {
        // The first max_outstanding_bytes is http's; the second is pubsub's, unused here.
        let config = "config/sluice.yaml";
        common::edit(root.path(), config, "${SLUICE_PUSH_MAX_OUTSTANDING:-1000}", "1000000");
        common::edit(root.path(), config, "  max_outstanding_bytes: 100MiB", "  max_outstanding_bytes: 100GiB");
    }
    let lake = root.path().join("lake");
    let port = common::free_port();
    let mut cmd = common::run_command(&lake, port);
    // Its `config/sluice.yaml` is then the copy; pipelines_dir (../pipelines) resolves beside it.
    cmd.current_dir(root.path());
    let sluice = common::Sluice::spawn(cmd, port);

    let started = Instant::now();
    let (n, size, concurrency) = (case.requests.to_string(), case.size.to_string(), case.concurrency.to_string());
    let published =
        common::push_load::publish(&sluice.url, &["-n", &n, "--size", &size, "--concurrency", &concurrency]);
    let secs = started.elapsed().as_secs_f64();
    let delivered = published.delivered;

    let pid = sluice.child.id();
    let (cpu_secs, peak_rss_mib) = (common::cpu_secs(pid), common::peak_rss_mib(pid));
    let refusals = common::faults::log_lines(&sluice, "at its http.max_outstanding limits");
    let log = common::faults::log_path(&sluice);
    assert!(sluice.stop().success(), "sluice exits cleanly; log: {}", log.display());
    let rows = common::count_rows(&lake.join("logs"));
    assert!(rows >= delivered, "{delivered} delivered but {rows} rows in the lake; log: {}", log.display());
    Flood { delivered, secs, cpu_secs, peak_rss_mib, refusals, rows }
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return; // built by `cargo test --benches`: nothing to measure there
    }
    let concurrency = common::samples::env_usize("FLOOD_CONCURRENCY", 1000);
    let events = common::samples::env_usize("FLOOD_EVENTS", 1000) as u64;
    let sizes: Vec<usize> = std::env::var("FLOOD_SIZES")
        .unwrap_or_else(|_| "4096,100000,1000000".into())
        .split(',')
        .map(|s| s.trim().parse().unwrap_or_else(|_| panic!("FLOOD_SIZES: {s:?} is not a byte count")))
        .collect();
    let unbounded = common::samples::env_usize("FLOOD_UNBOUNDED", 1) != 0;

    let requests = |size: usize| if size <= 4096 { 20 * events } else { events };
    let mut cases: Vec<Case> =
        sizes.iter().map(|&size| Case { size, requests: requests(size), concurrency, flow_control: true }).collect();
    if let Some(&size) = sizes.iter().max().filter(|_| unbounded) {
        cases.push(Case { size, requests: requests(size), concurrency, flow_control: false });
    }

    let mut results = Vec::new();
    for case in &cases {
        let on = if case.flow_control { "on" } else { "off" };
        eprintln!(
            "push_flood: {} × {} bytes, concurrency {}, flow control {on}",
            case.requests, case.size, concurrency
        );
        results.push(flood(case));
    }

    // http.max_outstanding_bytes in config/sluice.yaml, plus the fixed overhead the memory target allows.
    let (bound_mib, overhead_mib) = (100.0, 64.0);
    let limit = bound_mib + overhead_mib;
    println!();
    println!("push_flood: `sluice publish` floods the push endpoint of the release `sluice run` (shipped config, local lake)");
    println!("(bound: http.max_outstanding_bytes {bound_mib:.0} MiB + {overhead_mib:.0} MiB fixed overhead; 429s: refusals sluice logged, publish retries them)");
    println!();
    println!(
        "| event bytes | requests | concurrency | flow control | delivered | wall s | sluice CPU s | peak RSS MiB | bound {limit:.0} MiB | 429s | lake rows |"
    );
    println!("| ---: | ---: | ---: | --- | ---: | ---: | ---: | ---: | --- | ---: | ---: |");
    for (c, f) in cases.iter().zip(&results) {
        println!(
            "| {} | {} | {} | {} | {} | {:.1} | {:.1} | {:.0} | {} | {} | {} |",
            c.size,
            c.requests,
            c.concurrency,
            if c.flow_control { "on" } else { "off" },
            f.delivered,
            f.secs,
            f.cpu_secs,
            f.peak_rss_mib,
            if f.peak_rss_mib <= limit { "within" } else { "over" },
            f.refusals,
            f.rows
        );
    }
}
