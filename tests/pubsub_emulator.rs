//! Streaming pull against the real Pub/Sub emulator: every published event lands in the lake,
//! across restarts, SIGKILLs and failing writes. Each test runs its own emulator on a free port.

mod common;

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use common::{env_with, lake_ids, publish, wait_for_all, PubsubEmulator, Sluice};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn twenty_thousand_events_across_three_topics_land_once_each() {
    let emu = PubsubEmulator::start();
    let env = env_with(&emu, &[("SLUICE_BATCH_MAX_AGE", "1s")]);
    let out = common::sluice_cmd(&["provision"], &env);
    assert!(
        out.contains(
            "created subscription projects/sluice-test/subscriptions/logs-sluice -> projects/sluice-test/topics/logs"
        ),
        "{out}"
    );
    let again = common::sluice_cmd(&["provision"], &env);
    assert!(
        again.contains("exists  subscription projects/sluice-test/subscriptions/logs-sluice"),
        "provision is idempotent: {again}"
    );

    let plan = [("logs", 8_000u64), ("health", 8_000), ("config-changes", 4_000)];
    let mut published = HashMap::new();
    for (pipeline, count) in plan {
        published.insert(pipeline, publish(&emu, pipeline, count, 11).await);
    }
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let started = Instant::now();
    let sluice = Sluice::start_with(&lake, &env);
    let mut total = 0;
    for (pipeline, count) in plan {
        let found = wait_for_all(&lake, pipeline, &published[pipeline], Duration::from_secs(180));
        let dups: usize = found.values().map(|n| n - 1).sum();
        println!("{pipeline}: published {count}, in lake {}, duplicated {dups}", found.len());
        assert_eq!(found.len() as u64, count, "{pipeline}: nothing extra");
        assert_eq!(dups, 0, "{pipeline}: exactly once per event id in a clean run");
        total += count;
    }
    println!("{total} events from the emulator into the lake in {:.1}s", started.elapsed().as_secs_f64());
    // Each message's ack gave back what its subscription held for it, and counted itself once.
    for (pipeline, count) in plan {
        let (input, held) = (format!(r#"pipeline="{pipeline}",source="pubsub""#), format!(r#"pipeline="{pipeline}""#));
        let settled = || async {
            let url = &sluice.url;
            [
                common::faults::metric(url, "sluice_acks_total", &input).await,
                common::faults::metric(url, "sluice_nacks_total", &input).await,
                common::faults::metric(url, "sluice_outstanding_messages", &held).await,
                common::faults::metric(url, "sluice_outstanding_bytes", &held).await,
            ]
        };
        let deadline = Instant::now() + Duration::from_secs(30);
        let want = [Some(count as f64), Some(0.0), Some(0.0), Some(0.0)];
        while settled().await != want {
            assert!(Instant::now() < deadline, "{pipeline}: acks, nacks, outstanding: {:?}", settled().await);
            tokio::time::sleep(Duration::from_millis(250)).await;
        }
    }
    assert!(sluice.stop().success());
    assert!(common::parquet_files(&lake.join("dead-letters")).is_empty(), "no dead letters");

    // Everything was acked: a fresh sluice on the same subscriptions finds nothing to write.
    let dir2 = tempfile::tempdir().unwrap();
    let lake2 = dir2.path().join("lake");
    let again = Sluice::start_with(&lake2, &env);
    std::thread::sleep(Duration::from_secs(3));
    assert!(again.stop().success());
    assert!(common::parquet_files(&lake2).is_empty(), "acked messages were not redelivered");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sigkill_mid_run_loses_nothing() {
    let emu = PubsubEmulator::start();
    // A short ack deadline: messages held by a killed instance come back after 10s, not 60s.
    let env = env_with(&emu, &[("SLUICE_BATCH_MAX_AGE", "500ms"), ("SLUICE_ACK_DEADLINE", "10s")]);
    common::sluice_cmd(&["provision"], &env);
    let ids = publish(&emu, "logs", 6_000, 21).await;
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");

    let mut kills = 0;
    for _ in 0..2 {
        let sluice = Sluice::start_with(&lake, &env);
        let deadline = Instant::now() + Duration::from_secs(60);
        let before = lake_ids(&lake, "logs").len();
        while lake_ids(&lake, "logs").len() < before + 500 && Instant::now() < deadline {
            std::thread::sleep(Duration::from_millis(100));
        }
        common::signal(sluice.child.id(), "KILL");
        kills += 1;
        drop(sluice);
    }
    let sluice = Sluice::start_with(&lake, &env);
    let found = wait_for_all(&lake, "logs", &ids, Duration::from_secs(180));
    assert!(sluice.stop().success());
    let dups: usize = found.values().map(|n| n - 1).sum();
    let extra: HashSet<&String> = found.keys().filter(|k| !ids.contains(k)).collect();
    println!("published {}, in lake {}, lost 0, duplicated {dups}, SIGKILLs {kills}", ids.len(), found.len());
    assert!(extra.is_empty(), "only published ids: {extra:?}");
    // Only messages written but not yet acked when killed come back: at most what flow control holds.
    assert!(dups <= 2 * 20_000, "duplicates bounded by flow control: {dups}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failing_writes_lead_to_redelivery_not_loss() {
    let emu = PubsubEmulator::start();
    let env = env_with(&emu, &[("SLUICE_BATCH_MAX_AGE", "200ms")]);
    common::sluice_cmd(&["provision"], &env);
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    std::fs::create_dir_all(&lake).unwrap();
    // A file where the pipeline's folder belongs: every lake write fails until it is removed.
    std::fs::write(lake.join("logs"), b"blocked").unwrap();
    let ids = publish(&emu, "logs", 300, 31).await;
    let sluice = Sluice::start_with(&lake, &env);
    std::thread::sleep(Duration::from_secs(10));
    assert!(lake_ids(&lake, "logs").is_empty());
    std::fs::remove_file(lake.join("logs")).unwrap();
    let found = wait_for_all(&lake, "logs", &ids, Duration::from_secs(120));
    assert!(sluice.stop().success());
    println!("published {}, in lake {} after the lake came back", ids.len(), found.len());
}

/// Large events fill flow control's bytes long before a batch's rows: 8,000 log lines of 4 KB weigh
/// ~130 MB decoded against sluice's 50 MiB, and no age or idle limit could close a batch within
/// the test (an hour each). Batches are written each time the budget runs out of room, once they
/// hold half of what it can hold, so they stay large; only the tail waits, and shutdown writes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn large_events_beyond_flow_control_are_written_in_large_batches_as_it_fills() {
    let emu = PubsubEmulator::start();
    let env = env_with(&emu, &[("SLUICE_BATCH_MAX_AGE", "1h"), ("SLUICE_BATCH_MAX_IDLE", "1h")]);
    common::sluice_cmd(&["provision"], &env);
    let publish = ["publish", "--topic", "logs", "-p", "logs", "-n", "8000", "--seed", "41", "--size", "4096"];
    let out = common::sluice_cmd(&publish, &env);
    assert!(out.contains("8000 delivered"), "{out}");
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let sluice = Sluice::start_with(&lake, &env);
    let deadline = Instant::now() + Duration::from_secs(120);
    while lake_ids(&lake, "logs").len() < 4_000 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
    }
    // Ids and files from one listing: sluice goes on writing while the lake is read.
    let files = common::parquet_files(&lake.join("logs"));
    let ids: std::collections::HashSet<String> = files
        .iter()
        .flat_map(|f| common::parquet_rows(std::fs::File::open(f).unwrap()))
        .map(|r| r["message_id"].as_str().unwrap().to_owned())
        .collect();
    let (written, files) = (ids.len(), files.len());
    println!("out of room: {written} of 8000 rows written in {files} files before any batch limit");
    assert!(written >= 4_000, "written each time the budget ran out of room: {written}");
    assert!(written >= 1_000 * files, "batches stayed large: {written} rows in {files} files");
    // Shutdown nacks what was not handed over yet, so stop once the tail is held: every message
    // received, the last ones in the open batch, which only shutdown writes.
    let pulled = || common::faults::metric(&sluice.url, "sluice_events_in_total", r#"pipeline="logs",source="pubsub""#);
    while pulled().await.unwrap_or(0.0) < 8_000.0 {
        assert!(Instant::now() < deadline, "8,000 messages not received: {:?}", pulled().await);
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    assert!(sluice.stop().success());
    let found = lake_ids(&lake, "logs");
    assert_eq!(found.len(), 8_000, "shutdown wrote the tail");
}

/// Events held in an open batch for two and a half ack deadlines keep their leases: Pub/Sub does
/// not deliver them again while sluice holds them, so each message is received exactly once.
/// (The logs chain's dedupe would hide a redelivery from the lake; the received count does not.)
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn leases_are_extended_while_a_batch_holds_events() {
    let emu = PubsubEmulator::start();
    let held = [("SLUICE_BATCH_MAX_AGE", "25s"), ("SLUICE_BATCH_MAX_IDLE", "25s"), ("SLUICE_ACK_DEADLINE", "10s")];
    let env = env_with(&emu, &held);
    common::sluice_cmd(&["provision"], &env);
    let ids = publish(&emu, "logs", 200, 41).await;
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let sluice = Sluice::start_with(&lake, &env);
    let started = Instant::now();
    let found = wait_for_all(&lake, "logs", &ids, Duration::from_secs(90));
    let held_for = started.elapsed();
    let metrics = reqwest::get(format!("{}/metrics", sluice.url)).await.unwrap().text().await.unwrap();
    assert!(sluice.stop().success());
    let received: f64 = metrics
        .lines()
        .find(|l| {
            l.starts_with("sluice_events_in_total{")
                && l.contains("pipeline=\"logs\"")
                && l.contains("source=\"pubsub\"")
        })
        .and_then(|l| l.rsplit(' ').next()?.parse().ok())
        .unwrap_or_else(|| panic!("no pulled logs counter in:\n{metrics}"));
    println!("{} events held {:.0}s in one batch, received {received}", found.len(), held_for.as_secs_f64());
    assert!(held_for >= Duration::from_secs(20), "the batch was held past two deadlines: {held_for:?}");
    assert_eq!(found.len(), ids.len());
    assert_eq!(received, ids.len() as f64, "each message received once: no lease lapsed");
}
