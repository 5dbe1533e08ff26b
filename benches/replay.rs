//! Benchmark: rows/s replayed from a Parquet archive through the `logs` chain into the local lake
//! sink, and into the BigQuery emulator (ids checked, then exactly-once appends).
//!
//! The archive is `FILES` Parquet files of sample log rows as the lake sink writes them (the logs
//! chain's output, encoded by `sink::encode`), in one hour folder of a local lake.
//!
//! Then NDJSON on one core: `ROWS` sample log payloads in one `.ndjson` file, replayed `RUNS`
//! times by the release binary as a user would time it,
//! `taskset -c 0 sluice replay -p logs --from FILE --to lake --output DIR`; each run's CPU time
//! (user + system, from `getrusage`) gives MB of input per CPU second.
//! Run: `cargo bench --bench replay` (ROWS=200000, FILES=4, RUNS=3 by default; NDJSON_ONLY=1
//! skips the Parquet cases and the BigQuery emulator; NDJSON_KEEP=PATH also writes the NDJSON file
//! there, for profiling the same command).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use serde_json::Value;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return; // built by `cargo test --benches`: nothing to measure there
    }
    let rows = common::samples::env_usize("ROWS", 200_000);
    if common::samples::env_usize("NDJSON_ONLY", 0) == 0 {
        parquet(rows);
    }
    ndjson(rows, common::samples::env_usize("RUNS", 3));
}

/// Replay a Parquet archive into the lake and into the BigQuery emulator, in process.
fn parquet(rows: usize) {
    let files = common::samples::env_usize("FILES", 4).max(1);
    let bq = common::BigQueryEmulator::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let env: std::collections::HashMap<&str, String> = bq.env().into_iter().collect();
    let config =
        sluice::config::load_with_env(&common::repo().join("config/sluice.yaml"), |k| env.get(k).cloned()).unwrap();
    let pipeline = config.pipelines.iter().find(|p| p.name == "logs").unwrap();

    // The archive: sample events through the logs chain, written as the lake sink writes them.
    let dir = tempfile::tempdir().unwrap();
    let hour = dir.path().join("lake/logs/dt=2026-11-20/hour=10");
    std::fs::create_dir_all(&hour).unwrap();
    let per_file = rows.div_ceil(files);
    let mut bytes = 0;
    for f in 0..files {
        let records = common::samples::log_rows(f * per_file..((f + 1) * per_file).min(rows), 7 + f as u64);
        let refs: Vec<&Value> = records.iter().collect();
        let file = sluice::sink::encode::parquet_file(&pipeline.schema, &refs).unwrap();
        bytes += file.len();
        std::fs::write(hour.join(format!("bench-{f}.parquet")), file).unwrap();
    }
    rt.block_on(async {
        let rest = sluice::bigquery::rest::Rest::new(&bq.config()).unwrap();
        rest.ensure_dataset().await.unwrap();
        rest.ensure_table("logs", &pipeline.schema).await.unwrap();
    });
    println!("archive: {rows} log rows in {files} files, {:.1} MB of Parquet", bytes as f64 / 1e6);
    println!("| target | rows | seconds | rows/s |");
    println!("|---|---|---|---|");
    for target in [sluice::replay::Target::Lake, sluice::replay::Target::Bigquery] {
        let output = dir.path().join(format!("out-{target:?}"));
        let args = sluice::replay::Args {
            pipeline: "logs".into(),
            from: dir.path().join("lake/logs").display().to_string(),
            since: None,
            until: None,
            to: vec![target],
            output: Some(output.display().to_string()),
            dry_run: false,
            restart: false,
        };
        let started = Instant::now();
        let summary = rt.block_on(sluice::replay::replay(&config, args)).unwrap();
        let secs = started.elapsed().as_secs_f64();
        assert_eq!(summary.rows as usize, rows);
        match target {
            sluice::replay::Target::Bigquery => {
                assert_eq!(summary.appended as usize, rows, "every row appended");
                let counted = rt.block_on(bq.query("SELECT COUNT(*) FROM `sluice-test.sluice.logs`"));
                assert_eq!(counted[0][0].as_str().unwrap(), rows.to_string(), "every row is in the table");
            }
            _ => assert_eq!(common::lake_ids(&output, "logs").len(), rows, "every row is in the output"),
        }
        println!("| {target:?} | {rows} | {secs:.1} | {:.0} |", rows as f64 / secs);
    }
}

/// CPU seconds (user + system) of the children waited for so far.
fn children_cpu_secs() -> f64 {
    // SAFETY: getrusage writes into the struct it is given.
    let mut usage: libc::rusage = unsafe { std::mem::zeroed() };
    assert_eq!(unsafe { libc::getrusage(libc::RUSAGE_CHILDREN, &mut usage) }, 0);
    let secs = |t: libc::timeval| t.tv_sec as f64 + t.tv_usec as f64 / 1e6;
    secs(usage.ru_utime) + secs(usage.ru_stime)
}

/// Run `cmd` to its end: its output and its peak RSS in MiB, sampled from `/proc` every 10 ms
/// (getrusage's `ru_maxrss` would count this process's own size, which a child has before `exec`).
fn run_sampled(cmd: &mut std::process::Command) -> (std::process::ExitStatus, String, f64) {
    use std::process::Stdio;
    let log = common::log_file("sluice-bench-replay-ndjson.log");
    let mut child = cmd.stdout(Stdio::piped()).stderr(log).spawn().unwrap();
    let mut peak: f64 = 0.0;
    let status = loop {
        if let Some(status) = child.try_wait().unwrap() {
            break status;
        }
        peak = peak.max(common::peak_rss_mib(child.id()));
        std::thread::sleep(std::time::Duration::from_millis(10));
    };
    let mut said = String::new();
    std::io::Read::read_to_string(&mut child.stdout.take().unwrap(), &mut said).unwrap();
    (status, said, peak)
}

/// `taskset -c 0 sluice replay` of one NDJSON file into a lake output, `runs` times.
fn ndjson(rows: usize, runs: usize) {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("logs.ndjson");
    let text = common::samples::log_lines(rows, 11).join("\n") + "\n";
    std::fs::write(&file, &text).unwrap();
    if let Ok(keep) = std::env::var("NDJSON_KEEP") {
        std::fs::write(&keep, &text).unwrap();
    }
    let mb = text.len() as f64 / 1e6;
    println!("\nNDJSON: {rows} sample log lines, {mb:.1} MB, replayed on one core (taskset -c 0) into a lake output");
    println!("| run | CPU s | wall s | MB/s per CPU second | peak RSS, MiB |");
    println!("|---|---|---|---|---|");
    let from = file.display().to_string();
    for run in 1..=runs {
        let out = dir.path().join(format!("out-{run}"));
        let args = ["--pipeline", "logs", "--from", &from, "--to", "lake", "--output", &out.display().to_string()];
        let cmd = common::replay::command(&args, &[]);
        let program = cmd.get_program().to_owned();
        let mut taskset = std::process::Command::new("taskset");
        taskset.current_dir(common::repo()).args(["-c", "0"]).arg(program).args(cmd.get_args());
        let (cpu, started) = (children_cpu_secs(), Instant::now());
        let (status, said, rss) = run_sampled(&mut taskset);
        let (cpu, wall) = (children_cpu_secs() - cpu, started.elapsed().as_secs_f64());
        assert!(status.success(), "{said} (log: $TMPDIR/sluice-bench-replay-ndjson.log)");
        assert!(said.contains(&format!("{rows} through the transforms")), "{said}");
        assert_eq!(common::lake_ids(&out, "logs").len(), rows, "every line is in the output");
        println!("| {run} | {cpu:.2} | {wall:.2} | {:.1} | {rss:.0} |", mb / cpu);
    }
}
