//! Benchmark: a backlog on the Pub/Sub emulator drained into the local lake by the release
//! `sluice` binary with the shipped defaults (4 streams per subscription, flow control on).
//! Prints events/s, the CPU used by sluice and by the emulator while draining, and the peak RSS
//! of the sluice process against the flow-control bound. With `SLUICE_BENCH_PYTHON` set (see
//! `scripts/bench`) the same backlog, on a second subscription, is then drained by the Python
//! baseline (`benches/python/pubsub_to_lake.py`) and the table shows both.
//!
//! Run: `scripts/bench pubsub_to_lake`, or `cargo bench --bench pubsub_to_lake` (sluice alone).
//! When fake-gcs-server is installed (`scripts/install-emulators`), the backlog is drained once
//! more by sluice into a `gs://` lake on it. Env: BACKLOG (100000); EVENT_BYTES (0: the sample
//! log lines of ~360 bytes; e.g. 4096 lengthens each, to check memory with large events).

#[path = "../tests/common/mod.rs"]
mod common;

use std::path::Path;
use std::time::{Duration, Instant};

/// One consumer's drain of the backlog.
struct Drain {
    secs: f64,
    cpu_secs: f64,
    emulator_cpu_secs: f64,
    peak_rss_mib: f64,
}

fn drain_with_sluice(emu: &common::PubsubEmulator, env: &[(&str, String)], backlog: u64) -> Drain {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    run_sluice_until(emu, &lake, env, Duration::from_millis(200), || common::count_rows(&lake.join("logs")) >= backlog)
}

/// Start sluice on `lake`, wait (at most 15 minutes, polling every `poll`) until `drained`, and
/// measure it; the clock and the emulator's CPU count from just before the start.
fn run_sluice_until(
    emu: &common::PubsubEmulator,
    lake: &Path,
    env: &[(&str, String)],
    poll: Duration,
    mut drained: impl FnMut() -> bool,
) -> Drain {
    let (started, emu_cpu) = (Instant::now(), emu.cpu_secs());
    let sluice = common::Sluice::start_with(lake, env);
    let deadline = Instant::now() + Duration::from_secs(900);
    while !drained() {
        assert!(Instant::now() < deadline, "backlog not drained into {} in 15 minutes", lake.display());
        std::thread::sleep(poll);
    }
    let drain = Drain {
        secs: started.elapsed().as_secs_f64(),
        cpu_secs: common::cpu_secs(sluice.child.id()),
        emulator_cpu_secs: emu.cpu_secs() - emu_cpu,
        peak_rss_mib: common::peak_rss_mib(sluice.child.id()),
    };
    assert!(sluice.stop().success());
    drain
}

/// Rows in the Parquet objects under `gs://bucket/lake/logs` on fake-gcs-server, from their footers.
fn count_gcs_rows(gcs: &common::FakeGcs, bucket: &str, rt: &tokio::runtime::Runtime) -> u64 {
    use parquet::file::reader::FileReader;
    let objects = rt.block_on(gcs.objects(bucket, "lake/logs"));
    objects
        .into_iter()
        .filter(|(name, _)| name.ends_with(".parquet"))
        .filter_map(|(_, bytes)| parquet::file::serialized_reader::SerializedFileReader::new(bytes).ok())
        .map(|r| r.metadata().file_metadata().num_rows() as u64)
        .sum()
}

/// The same drain with the lake on fake-gcs-server (`gs://bench/lake`, JSON API uploads).
fn drain_into_gcs(emu: &common::PubsubEmulator, env: &[(&str, String)], backlog: u64) -> Drain {
    let gcs = common::FakeGcs::start();
    gcs.create_bucket("bench");
    let rt = tokio::runtime::Runtime::new().unwrap();
    let mut env = env.to_vec();
    env.push(("STORAGE_EMULATOR_HOST", gcs.url.clone()));
    env.push(("SLUICE_LOGS_SUBSCRIPTION", GCS_SUBSCRIPTION.into()));
    run_sluice_until(emu, Path::new("gs://bench/lake"), &env, Duration::from_millis(500), || {
        count_gcs_rows(&gcs, "bench", &rt) >= backlog
    })
}

const GCS_SUBSCRIPTION: &str = "logs-gcs";

fn drain_with_python(python: &str, emu: &common::PubsubEmulator, subscription: &str, backlog: u64) -> Option<Drain> {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let script = common::repo().join("benches/python/pubsub_to_lake.py");
    let emu_cpu = emu.cpu_secs();
    let out = std::process::Command::new(python)
        .arg(&script)
        .args(["--project", "sluice-test", "--subscription", subscription, "--expect", &backlog.to_string()])
        .arg("--lake")
        .arg(&lake)
        .env("PUBSUB_EMULATOR_HOST", &emu.host)
        .stderr(common::log_file("python-baseline.log"))
        .output()
        .expect("python starts");
    let emulator_cpu_secs = emu.cpu_secs() - emu_cpu;
    let v: serde_json::Value = match serde_json::from_slice(&out.stdout) {
        Ok(v) if out.status.success() => v,
        _ => {
            eprintln!(
                "python baseline failed ({}); see {}",
                out.status,
                std::env::temp_dir().join("python-baseline.log").display()
            );
            return None;
        }
    };
    assert_eq!(v["finished"], true, "python baseline drained the backlog: {v}");
    assert_eq!(common::count_rows(&lake.join("logs")), backlog, "python baseline wrote every row");
    Some(Drain {
        secs: v["wall_s"].as_f64()?,
        cpu_secs: v["cpu_s"].as_f64()?,
        emulator_cpu_secs,
        peak_rss_mib: v["peak_rss_mib"].as_f64()?,
    })
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return; // built by `cargo test --benches`: nothing to measure there
    }
    let backlog: u64 = std::env::var("BACKLOG").ok().and_then(|v| v.parse().ok()).unwrap_or(100_000);
    let size: usize = std::env::var("EVENT_BYTES").ok().and_then(|v| v.parse().ok()).unwrap_or(0);
    let python = std::env::var("SLUICE_BENCH_PYTHON").ok().filter(|p| !p.is_empty());
    let emu = common::PubsubEmulator::start();
    let env = emu.env();
    common::sluice_cmd(&["provision"], &env);
    let python_sub = "logs-python";
    let gcs = common::emulators_dir().join("fake-gcs-server").exists();
    // More subscriptions on the same topic: the same backlog for the baseline and the GCS lake.
    for (wanted, sub) in [(python.is_some(), python_sub), (gcs, GCS_SUBSCRIPTION)] {
        if wanted {
            let mut e = env.clone();
            e.push(("SLUICE_LOGS_SUBSCRIPTION", sub.into()));
            common::sluice_cmd(&["provision"], &e);
        }
    }
    let publish_secs = publish(&env, backlog, size);

    let sluice = drain_with_sluice(&emu, &env, backlog);
    let baseline = python.as_deref().and_then(|py| drain_with_python(py, &emu, python_sub, backlog));
    let into_gcs = gcs.then(|| drain_into_gcs(&emu, &env, backlog));

    report(&emu, (backlog, size, publish_secs), &sluice, baseline.as_ref(), into_gcs);
}

/// Publish the backlog to the emulator's `logs` topic; how long it took, in seconds.
fn publish(env: &[(&'static str, String)], backlog: u64, size: usize) -> f64 {
    let publish_started = Instant::now();
    let out = common::sluice_cmd(
        &[
            "publish",
            "--topic",
            "logs",
            "-p",
            "logs",
            "-n",
            &backlog.to_string(),
            "--seed",
            "7",
            "--size",
            &size.to_string(),
            "--concurrency",
            "64",
        ],
        env,
    );
    assert!(out.contains(&format!("{backlog} delivered")), "{out}");
    publish_started.elapsed().as_secs_f64()
}

/// The drain figures of sluice, beside the baseline's if it ran, and the GCS lake's.
fn report(
    emu: &common::PubsubEmulator,
    (backlog, size, publish_secs): (u64, usize, f64),
    sluice: &Drain,
    baseline: Option<&Drain>,
    into_gcs: Option<Drain>,
) {
    // pubsub.max_outstanding_bytes in config/sluice.yaml (per subscription; only `logs` has a
    // backlog here), plus the fixed overhead the memory target allows.
    let (bound_mib, overhead_mib) = (100.0, 64.0);
    let limit = bound_mib + overhead_mib;
    println!();
    println!(
        "pubsub_to_lake: {backlog} log events ({}) published in {publish_secs:.1}s to the emulator at {}, drained into a local lake",
        if size > 0 { format!("at least {size} bytes each") } else { "sample lines".into() },
        emu.host
    );
    println!("(sluice: shipped config, 4 streaming-pull streams; CPU figures are seconds of CPU while draining)");
    println!();
    let cols = if baseline.is_some() { " python | sluice/python |" } else { "" };
    println!("| measure | sluice |{cols}");
    println!("| --- | ---: |{}", if baseline.is_some() { " ---: | ---: |" } else { "" });
    let row = |what: &str, f: &dyn Fn(&Drain) -> f64, fmt: &dyn Fn(f64) -> String, ratio: &dyn Fn(f64, f64) -> f64| {
        let extra = baseline
            .map(|b| match ratio(f(sluice), f(b)) {
                r if r.is_finite() => format!(" {} | {r:.1}x |", fmt(f(b))),
                _ => format!(" {} | |", fmt(f(b))),
            })
            .unwrap_or_default();
        println!("| {what} | {} |{extra}", fmt(f(sluice)));
    };
    let per_s = |s: f64, p: f64| s / p;
    let less = |s: f64, p: f64| p / s;
    row("drain time", &|d| d.secs, &|v| format!("{v:.1} s"), &less);
    row("events/s (wall)", &|d| backlog as f64 / d.secs, &|v| format!("{v:.0}"), &per_s);
    row("consumer CPU", &|d| d.cpu_secs, &|v| format!("{v:.1} s"), &less);
    row("consumer CPU share of one core", &|d| 100.0 * d.cpu_secs / d.secs, &|v| format!("{v:.0}%"), &less);
    row("consumer CPU µs/event", &|d| 1e6 * d.cpu_secs / backlog as f64, &|v| format!("{v:.1}"), &less);
    row("emulator CPU meanwhile", &|d| d.emulator_cpu_secs, &|v| format!("{v:.1} s"), &|_, _| f64::NAN);
    row("peak RSS of the consumer", &|d| d.peak_rss_mib, &|v| format!("{v:.0} MiB"), &less);
    let verdict = if sluice.peak_rss_mib <= limit { "within" } else { "OVER" };
    println!();
    println!(
        "sluice peak RSS {:.0} MiB: {verdict} the flow-control bound + fixed overhead ({bound_mib:.0} + {overhead_mib:.0} = {limit:.0} MiB, {:.0}%)",
        sluice.peak_rss_mib,
        100.0 * sluice.peak_rss_mib / limit
    );
    match into_gcs {
        Some(g) => println!(
            "into the GCS emulator (fake-gcs-server, gs://bench/lake): {:.1} s, {:.0} events/s, sluice CPU {:.1} s \
             ({:.0}% of one core, {:.1} µs/event), emulator CPU {:.1} s, peak RSS {:.0} MiB",
            g.secs,
            backlog as f64 / g.secs,
            g.cpu_secs,
            100.0 * g.cpu_secs / g.secs,
            1e6 * g.cpu_secs / backlog as f64,
            g.emulator_cpu_secs,
            g.peak_rss_mib
        ),
        None => println!("into the GCS emulator: skipped (fake-gcs-server not installed; scripts/install-emulators)"),
    }
}
