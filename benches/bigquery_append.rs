//! Benchmark: rows/s into the BigQuery emulator through the sink's Storage Write path (Arrow IPC
//! appends), in both write modes, with the shipped batch size (10,000 rows per append).
//!
//! Run: `cargo bench --bench bigquery_append` (ROWS=200000, BATCH=10000 by default).

#[path = "../tests/common/mod.rs"]
mod common;

use std::time::Instant;

use serde_json::Value;
use sluice::config::WriteMode;
use sluice::sink::group::{Encoded, Writer, Written};

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return; // built by `cargo test --benches`: nothing to measure there
    }
    let rows = common::samples::env_usize("ROWS", 200_000);
    let batch_rows = common::samples::env_usize("BATCH", 10_000);
    let bq = common::BigQueryEmulator::start();
    let rt = tokio::runtime::Runtime::new().unwrap();
    let schema = sluice::schema::Schema::load(&common::repo().join("schemas"), "log").unwrap();

    // Realistic log rows: sample events through the shipped `logs` chain, as the sink gets them.
    let records = common::samples::log_rows(0..batch_rows, 7);
    let refs: Vec<&Value> = records.iter().collect();
    let batch = sluice::sink::encode::to_record_batch(&schema, &refs).unwrap();
    let encoded = Encoded {
        partition: sluice::sink::lake::Partition::of(chrono::Utc::now()),
        batch,
        object: None,
        maybe_written: vec![],
        maybe_written_since: None,
    };
    let ipc_bytes = sluice::bigquery::stream::batch_message(&encoded.batch).unwrap().len();

    println!("| mode | rows | batch | seconds | rows/s | MB/s (Arrow IPC) |");
    println!("|---|---|---|---|---|---|");
    for (mode, table) in [(WriteMode::DefaultStream, "bench_default"), (WriteMode::ExactlyOnce, "bench_exactly_once")] {
        rt.block_on(async {
            let config = bq.config();
            let rest = sluice::bigquery::rest::Rest::new(&config).unwrap();
            rest.ensure_dataset().await.unwrap();
            rest.ensure_table(table, &schema).await.unwrap();
            let writer = common::bigquery_writer(&config, table, &schema, mode).await;
            let appends = rows.div_ceil(batch_rows);
            let started = Instant::now();
            for _ in 0..appends {
                assert_eq!(writer.write(&encoded).await, Ok(Written::All));
            }
            let secs = started.elapsed().as_secs_f64();
            writer.close().await;
            let total = appends * batch_rows;
            let counted = bq.query(&format!("SELECT COUNT(*) FROM `sluice-test.sluice.{table}`")).await;
            assert_eq!(counted[0][0].as_str().unwrap(), total.to_string(), "every row is in the table");
            println!(
                "| {mode:?} | {total} | {batch_rows} | {secs:.1} | {:.0} | {:.1} |",
                total as f64 / secs,
                (appends * ipc_bytes) as f64 / secs / 1e6
            );
        });
    }
}
