//! `sluice replay` against the emulators: an archive the sluice binary wrote from Pub/Sub is
//! replayed into an empty BigQuery table (same ids and values), replayed again (no duplicates),
//! killed midway and resumed (every row once), and into a lake prefix of its own (rewritten, not
//! added to); dead letters caused by a since-fixed config reach the table once replayed.

mod common;

use std::collections::{BTreeSet, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use common::replay::{self as rp, table_ids};
use common::{BigQueryEmulator, PubsubEmulator, Sluice};
use serde_json::Value;

fn env_of(parts: &[Vec<(&'static str, String)>]) -> Vec<(&'static str, String)> {
    parts.iter().flatten().cloned().collect()
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

/// The checkpoint's files with row groups done, once it exists.
fn checkpoint_files(path: &Path) -> Option<(usize, bool)> {
    let text = std::fs::read_to_string(path).ok()?;
    let v: Value = serde_json::from_str(&text).ok()?;
    Some((v["files"].as_object()?.len(), v["complete"].as_bool()?))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_archive_replays_into_bigquery_once_whether_repeated_or_killed_and_resumed() {
    let ps = PubsubEmulator::start();
    let bq = BigQueryEmulator::start();
    let env = env_of(&[ps.env(), bq.env()]);
    common::sluice_cmd(&["provision"], &env);

    // The archive: sluice pulls 3000 log lines from Pub/Sub into the lake (BigQuery off),
    // published in rounds so that it writes many files.
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let archiving = Sluice::start_with(&lake, &env_of(&[ps.env()]));
    let mut ids = Vec::new();
    for round in 0..12 {
        ids.extend(common::publish(&ps, "logs", 250, 100 + round).await);
        tokio::time::sleep(Duration::from_millis(400)).await;
    }
    common::wait_for_all(&lake, "logs", &ids, Duration::from_secs(90));
    assert!(archiving.stop().success());
    let files = common::parquet_files(&lake.join("logs")).len();
    println!("archive: {} rows in {files} files written by sluice from Pub/Sub", ids.len());
    assert!(files >= 4, "several files to kill the replay between");
    assert!(table_ids(&bq, "logs").await.is_empty(), "the table starts empty");

    let from = s(&lake.join("logs"));
    let out = dir.path().join("replay");
    let checkpoint = out.join("_checkpoints/logs.json");
    let args = ["--pipeline", "logs", "--from", &from, "--to", "bigquery", "--output", &s(&out)];

    // Dry run: what would be replayed, nothing written.
    let plan = rp::ok(&[&args[..], &["--dry-run"]].concat(), &env);
    assert!(plan.contains(&format!("{files} files, 3000 rows selected")), "{plan}");
    assert!(!checkpoint.exists(), "a dry run writes no checkpoint");

    // Killed midway (SIGKILL once the checkpoint has some files but is not complete).
    let (mut child, log) = rp::spawn(&args, &env, "replay-killed");
    let deadline = Instant::now() + Duration::from_secs(60);
    let done_at_kill = loop {
        if let Some((done, false)) = checkpoint_files(&checkpoint).filter(|(n, _)| *n > 0) {
            common::kill_group(&mut child);
            break done;
        }
        assert!(
            child.try_wait().unwrap().is_none(),
            "replay ended before it could be killed:\n{}",
            std::fs::read_to_string(&log).unwrap_or_default()
        );
        assert!(Instant::now() < deadline, "no checkpoint progress within 60s");
        std::thread::sleep(Duration::from_millis(20));
    };
    let partial = table_ids(&bq, "logs").await;
    println!("killed after {done_at_kill} of {files} files: {} rows in the table", partial.len());
    assert!(partial.len() < 3000, "killed before the end");

    // Another replay into the same output while that one is unfinished is refused.
    let (refused, text) = rp::run(&[&args[..], &["--since", "2020-01-01T00:00:00Z"]].concat(), &env);
    assert!(!refused && text.contains("unfinished replay with other parameters"), "{text}");
    assert!(text.contains("--since: (none) (checkpoint) vs 2020-01-01T00:00:00.000000Z (this run)"), "{text}");

    // Resumed: continues from the checkpoint and says so; every row exactly once.
    let resumed = rp::ok(&args, &env);
    assert!(resumed.contains("resuming from checkpoint"), "{resumed}");
    let after = table_ids(&bq, "logs").await;
    let want: BTreeSet<&String> = ids.iter().collect();
    assert_eq!(after.keys().collect::<BTreeSet<_>>(), want, "the table holds exactly the archived ids");
    let dups: usize = after.values().map(|n| n - 1).sum();
    println!(
        "resumed: {} rows, {dups} duplicated; {}",
        after.len(),
        resumed.lines().find(|l| l.starts_with("replayed")).unwrap_or("")
    );
    assert_eq!(dups, 0);

    // Same parameters again: the checkpoint says it is done.
    let again = rp::ok(&args, &env);
    assert!(again.contains("already complete"), "{again}");
    // --restart replays everything again: every id is found in the table, none appended.
    let twice = rp::ok(&[&args[..], &["--restart"]].concat(), &env);
    assert!(twice.contains("bigquery 0 appended, 3000 already present"), "{twice}");
    let after_twice = table_ids(&bq, "logs").await;
    println!("replayed twice: {} rows, max copies of an id {}", after_twice.len(), after_twice.values().max().unwrap());
    assert_eq!(after_twice, after, "a second replay adds nothing");

    // Values: every row of the table equals its archived row, field by field.
    let archived: HashMap<String, serde_json::Map<String, Value>> = common::read_rows(&lake.join("logs"))
        .into_iter()
        .map(|r| (r["message_id"].as_str().unwrap().to_owned(), r))
        .collect();
    let cols = ["message_id", "service", "severity", "message", "host", "environment", "logger", "trace_id", "span_id"];
    let rows = bq
        .query(&format!(
            "SELECT {}, latency_ms, TO_JSON_STRING(labels), UNIX_MICROS(timestamp), UNIX_MICROS(ingest_time) \
             FROM `sluice-test.sluice.logs`",
            cols.join(", ")
        ))
        .await;
    assert_eq!(rows.len(), 3000);
    for row in &rows {
        let a = &archived[row[0].as_str().unwrap()];
        for (i, c) in cols.iter().enumerate() {
            assert_eq!(row[i], a.get(*c).cloned().unwrap_or(Value::Null), "column {c} of {}", row[0]);
        }
        let latency = row[cols.len()].as_str().map(|t| t.parse::<f64>().unwrap());
        assert_eq!(latency, a.get("latency_ms").and_then(Value::as_f64), "latency_ms of {}", row[0]);
        let labels: Option<Value> = row[cols.len() + 1].as_str().map(|t| serde_json::from_str(t).unwrap());
        let archived_labels: Option<Value> =
            a.get("labels").and_then(Value::as_str).map(|t| serde_json::from_str(t).unwrap());
        assert_eq!(labels, archived_labels, "labels of {}", row[0]);
        for (at, field) in [(cols.len() + 2, "timestamp"), (cols.len() + 3, "ingest_time")] {
            let micros: i64 = row[at].as_str().unwrap().parse().unwrap();
            let archived_at = chrono::DateTime::parse_from_rfc3339(a[field].as_str().unwrap()).unwrap();
            assert_eq!(micros, archived_at.timestamp_micros(), "{field} of {}", row[0]);
        }
    }
    println!("values: {} rows compared field by field with the archive, all equal", rows.len());

    // Into a lake prefix of its own, twice: the same objects rewritten, the archive untouched.
    let lake_out = dir.path().join("lake-replay");
    let lake_args = ["--pipeline", "logs", "--from", &from, "--to", "lake", "--output", &s(&lake_out)];
    rp::ok(&lake_args, &env);
    let first = common::parquet_files(&lake_out.join("logs"));
    rp::ok(&[&lake_args[..], &["--restart"]].concat(), &env);
    let second = common::parquet_files(&lake_out.join("logs"));
    assert_eq!(first, second, "the second run rewrote the same objects");
    let replayed = common::lake_ids(&lake_out, "logs");
    assert_eq!(replayed.keys().collect::<BTreeSet<_>>(), want);
    assert!(replayed.values().all(|n| *n == 1));
    assert_eq!(common::parquet_files(&lake.join("logs")).len(), files, "the archive is never written");
    println!("lake target: {} rows in {} objects, same objects after a second run", replayed.len(), second.len());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_letters_of_a_since_fixed_config_reach_the_table_when_replayed() {
    let ps = PubsubEmulator::start();
    let bq = BigQueryEmulator::start();
    let env = env_of(&[ps.env(), bq.env()]);
    common::sluice_cmd(&["provision"], &env);
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");

    // A producer spells severity `lvl`, which the shipped logs pipeline does not map: dead letters.
    let ndjson = dir.path().join("events.ndjson");
    let mut lines = String::new();
    for i in 0..40 {
        let lvl = if i % 10 == 0 { "lvl" } else { "severity" };
        lines.push_str(&format!("{{\"service\": \"billing\", \"{lvl}\": \"WARNING\", \"message\": \"line {i}\"}}\n"));
    }
    std::fs::write(&ndjson, lines).unwrap();
    // Push only: a stopped sluice's streaming pulls would hold the topic's messages until their
    // lease lapsed, and the replay below publishes to that topic.
    let sluice = Sluice::start_with(&lake, &env_of(&[bq.env()]));
    let summary = sluice::publish::run(sluice::publish::PublishArgs {
        target: sluice::publish::Target::Push { url: sluice.url.clone() },
        pipeline: "logs".into(),
        file: Some(ndjson),
        count: 0,
        seed: 1,
        size: 0,
        kind: None,
        concurrency: 8,
        rate: None,
    })
    .await
    .unwrap();
    assert_eq!(summary.delivered, 40);
    assert!(sluice.stop().success());
    let dead_dir = lake.join("dead-letters/logs");
    let dead: Vec<String> =
        common::read_rows(&dead_dir).iter().map(|r| r["message_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!(dead.len(), 4, "the four `lvl` lines are dead letters");
    assert_eq!(table_ids(&bq, "logs").await.len(), 36, "the others are in the table");

    // Replayed through the unchanged pipeline they are refused again, into the replay's own
    // dead letters, and the table is unchanged.
    let from = s(&dead_dir);
    let out = dir.path().join("replay-unfixed");
    let text = rp::ok(&["--pipeline", "logs", "--from", &from, "--output", &s(&out)], &env);
    assert!(text.contains("4 dead letters"), "{text}");
    assert_eq!(common::read_rows(&out.join("dead-letters/logs")).len(), 4);
    assert_eq!(table_ids(&bq, "logs").await.len(), 36);

    // The config is fixed (rename lvl -> severity) and the dead letters replayed: they land.
    let fixed = common::shipped_copy();
    common::edit(
        fixed.path(),
        "pipelines/logs.yaml",
        "fields: {level: severity,",
        "fields: {lvl: severity, level: severity,",
    );
    let config = s(&fixed.path().join("config/sluice.yaml"));
    let out = dir.path().join("replay-fixed");
    let text = rp::ok(&["--config", &config, "--pipeline", "logs", "--from", &from, "--output", &s(&out)], &env);
    assert!(
        text.contains("4 through the transforms, 0 dropped, 0 routed elsewhere, 0 dead letters; bigquery 4 appended"),
        "{text}"
    );
    let in_table = table_ids(&bq, "logs").await;
    assert!(dead.iter().all(|id| in_table.get(id) == Some(&1)), "every fixed dead letter is in the table once");
    assert_eq!(in_table.len(), 40);
    let rows = bq.query("SELECT severity, COUNT(*) FROM `sluice-test.sluice.logs` GROUP BY severity").await;
    println!(
        "dead letters: 4 refused, replayed unfixed -> 4 dead again, fixed -> 4 appended; table {} rows {rows:?}",
        in_table.len()
    );
    assert_eq!(rows, vec![vec![Value::from("WARNING"), Value::from("40")]]);

    // --to topic: the rebuilt messages go back onto the pipeline's topic for the running service,
    // original bytes and attributes, the archived id in an attribute.
    let out = dir.path().join("replay-topic");
    let text = rp::ok(&["--pipeline", "logs", "--from", &from, "--to", "topic", "--output", &s(&out)], &env);
    assert!(text.contains("; 4 published"), "{text}");
    let pulled = rp::pull(&ps, "logs-sluice", 4).await;
    let replay_of: BTreeSet<&str> =
        pulled.iter().map(|m| m["attributes"]["sluice_replay_of"].as_str().unwrap()).collect();
    assert_eq!(replay_of, dead.iter().map(String::as_str).collect());
    use base64::Engine;
    for m in &pulled {
        let data = base64::engine::general_purpose::STANDARD.decode(m["data"].as_str().unwrap()).unwrap();
        assert!(String::from_utf8(data).unwrap().contains(r#""lvl": "WARNING""#), "original bytes: {m}");
        assert_eq!(m["attributes"]["publisher"], "sluice-publish", "original attributes kept: {m}");
    }
    println!("topic: {} messages published back, each naming its archived id", pulled.len());

    // A bad prefix and an unknown pipeline are clear errors.
    let (ok, text) = rp::run(&["--pipeline", "logs", "--from", &s(&dir.path().join("nowhere"))], &env);
    assert!(!ok && text.contains("is not a folder"), "{text}");
    let (ok, text) = rp::run(&["--pipeline", "nope", "--from", &from], &env);
    assert!(!ok && text.contains("no pipeline 'nope'") && text.contains("expected one of"), "{text}");
    let (ok, text) = rp::run(
        &["--pipeline", "logs", "--from", &from, "--since", "2001-01-01T00:00:00Z", "--until", "2001-01-02T00:00:00Z"],
        &env,
    );
    assert!(!ok && text.contains("nothing to replay"), "{text}");
}
