//! The Python side of the hot-path bench: the baseline (`benches/python/hot_path.py`) and the
//! anchors (`benches/python/anchors.py`: DuckDB and polars, one thread each), their figures and
//! the tables that set sluice beside them.

use std::io::Write;
use std::path::{Path, PathBuf};

use sluice::publish::sample::{Generator, Kind};

use super::Round;

/// What the Python baseline reported (one JSON object on its stdout).
pub(crate) struct Baseline {
    pub(crate) cpu: f64,
    pub(crate) wall: f64,
    pub(crate) phases: Vec<(String, f64)>,
    pub(crate) matches: String,
}

/// Run `benches/python/<script>` with `args`; the one JSON object it prints, or `None` if it failed.
fn python_json(python: &str, script: &str, args: &[&std::ffi::OsStr]) -> Option<serde_json::Value> {
    let path = Path::new(env!("CARGO_MANIFEST_DIR")).join("benches/python").join(script);
    let out = std::process::Command::new(python)
        .arg(&path)
        .args(args)
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("python starts");
    if !out.status.success() {
        eprintln!("{script} failed ({})", out.status);
        return None;
    }
    Some(serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{script} prints one JSON object: {e}")))
}

pub(crate) fn run_baseline(python: &str, frames: &Path, sluice_parquet: &Path, events: usize) -> Option<Baseline> {
    let v =
        python_json(python, "hot_path.py", &[frames.as_os_str(), "--compare".as_ref(), sluice_parquet.as_os_str()])?;
    assert_eq!(v["written"].as_u64(), Some(events as u64), "baseline wrote every event: {v}");
    let phases = v["phases"].as_object()?.iter().map(|(k, p)| (k.clone(), p["cpu_s"].as_f64().unwrap())).collect();
    Some(Baseline {
        cpu: v["cpu_s"].as_f64()?,
        wall: v["wall_s"].as_f64()?,
        phases,
        matches: v["compare"].as_str().unwrap_or("not compared").to_owned(),
    })
}

/// The logs payloads written one per line, for the anchors (ids: their line number + 1).
pub(crate) fn write_payloads(dir: &Path, seed: u64, n: usize) -> PathBuf {
    let path = dir.join("logs.ndjson");
    let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    let mut g = Generator::new(Kind::Log, seed);
    for _ in 0..n {
        writeln!(f, "{}", g.next_event()).unwrap();
    }
    f.flush().unwrap();
    path
}

/// Each engine's name and version, and its CPU seconds.
pub(crate) type Engines = Vec<(String, f64)>;

/// One round of sluice's logs pipeline and, right after it, one run of each anchor, so that a
/// ratio compares what the shared machine gave both at about the same time.
pub(crate) struct Paired {
    /// sluice's CPU seconds from payloads (the round less its Pub/Sub decode).
    pub(crate) sluice: f64,
    pub(crate) engines: Engines,
}

/// DuckDB and polars once each on `payloads`; with `compare`, how their rows compare with that
/// Parquet file of sluice's (checked once: the rows are the same in every round).
pub(crate) fn run_anchors(
    python: &str,
    payloads: &Path,
    dir: &Path,
    n: usize,
    compare: Option<&Path>,
) -> Option<(Engines, Option<String>)> {
    let out = dir.join("anchors");
    let os = std::ffi::OsStr::new;
    let mut args = vec![payloads.as_os_str(), os("--out"), out.as_os_str()];
    args.extend([os("--publish-time"), os("2026-11-26T09:30:00Z")]);
    if let Some(path) = compare {
        args.extend([os("--compare"), path.as_os_str()]);
    }
    let v = python_json(python, "anchors.py", &args)?;
    let version = |k: &str| v["versions"][k].as_str().unwrap_or("?").to_owned();
    let mut engines = Vec::new();
    for name in ["duckdb", "polars"] {
        assert_eq!(v[name]["rows"].as_u64(), Some(n as u64), "{name} wrote every event: {v}");
        engines.push((format!("{name} {}", version(name)), v[name]["cpu_s"].as_f64()?));
    }
    Some((engines, compare.map(|_| v["compare"].to_string())))
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

/// sluice beside the anchors (DuckDB, polars) on the same payloads: each engine's median over the
/// rounds, and sluice's ratio to it taken round by round.
pub(crate) fn print_anchors(r: &Round, pairs: &[Paired], compare: &str, n: usize, payload: usize) {
    let rounds = pairs.len();
    println!();
    println!("logs: sluice vs the strongest alternatives, one thread each, the same {n} payloads,");
    println!("each anchor run right after each of sluice's {rounds} rounds; ratios taken round by round");
    println!();
    println!("| engine | CPU µs/event | MB/s per CPU s | sluice (payloads) is: median | lowest | highest |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: |");
    let line = |what: &str, secs: f64, ratios: Option<Vec<f64>>| {
        let ratios = ratios.map_or_else(
            || " | | ".to_owned(),
            |rs| {
                let (lo, hi) = rs.iter().fold((f64::MAX, f64::MIN), |(lo, hi), &x| (lo.min(x), hi.max(x)));
                format!("{:.2}x | {lo:.2}x | {hi:.2}x", median(rs))
            },
        );
        println!("| {what} | {:.2} | {:.1} | {ratios} |", secs * 1e6 / n as f64, payload as f64 / 1e6 / secs);
    };
    line("sluice: Pub/Sub frames -> Parquet (median round)", r.cpu().as_secs_f64(), None);
    line("sluice: payloads -> Parquet (no Pub/Sub decode)", median(pairs.iter().map(|p| p.sluice).collect()), None);
    for (i, (name, _)) in pairs[0].engines.iter().enumerate() {
        let secs = median(pairs.iter().map(|p| p.engines[i].1).collect());
        line(name, secs, Some(pairs.iter().map(|p| p.engines[i].1 / p.sluice).collect()));
    }
    println!();
    println!("anchors' rows vs sluice's first Parquet file: {compare}");
}

/// sluice beside the Python baseline.
pub(crate) fn print_baseline(r: &Round, b: &Baseline, n: usize, payload: usize) {
    let cpu = r.cpu().as_secs_f64();
    println!();
    println!("logs: sluice vs the Python baseline (google-cloud-pubsub protobuf + json + re + pyarrow), one core");
    println!();
    println!("| measure | sluice | python | sluice/python |");
    println!("| --- | ---: | ---: | ---: |");
    let row = |what: &str, s: f64, p: f64| println!("| {what} | {s:.0} | {p:.0} | {:.1}x |", s / p);
    row("events/s per CPU second", n as f64 / cpu, n as f64 / b.cpu);
    row("events/s wall", n as f64 / r.wall().as_secs_f64(), n as f64 / b.wall);
    println!(
        "| MB/s per CPU second | {:.1} | {:.1} | {:.1}x |",
        payload as f64 / 1e6 / cpu,
        payload as f64 / 1e6 / b.cpu,
        b.cpu / cpu
    );
    println!();
    println!("first Parquet file, sluice vs python (all columns but ingest_time): {}", b.matches);
}
