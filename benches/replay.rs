//! Benchmark: rows/s replayed from a Parquet archive through the `logs` chain into the local lake
//! sink, and into the BigQuery emulator (ids checked, then exactly-once appends).
//!
//! The archive is `FILES` Parquet files of sample log rows as the lake sink writes them (the logs
//! chain's output, encoded by `sink::encode`), in one hour folder of a local lake.
//! Run: `cargo bench --bench replay` (ROWS=200000, FILES=4 by default).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use serde_json::Value;

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return; // built by `cargo test --benches`: nothing to measure there
    }
    let rows = common::samples::env_usize("ROWS", 200_000);
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
