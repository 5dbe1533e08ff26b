//! `sluice replay` from NDJSON files (Cloud Logging's export form): plain, `.gz` and `.zst` files,
//! alone or as a folder, into a lake output; every good line lands once with id `<file>:<line>`,
//! a bad line is a dead letter naming its file and line; a rerun rewrites the same objects; a
//! truncated `.gz` is a clear error; a replay killed midway resumes from the last batch it
//! checkpointed, and every line lands once; into the BigQuery emulator once, however often it is
//! run; and the same from a `gs://` prefix on fake-gcs-server.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::io::Write;
use std::path::Path;

use common::replay::{self as rp, table_ids};
use common::{BigQueryEmulator, FakeGcs};

/// Good lines per file.
const GOOD: usize = 3000;

/// A file's text: `GOOD` sample log lines with, among them, blank lines, CRLF endings, three bad
/// lines, and no final newline. Returns the text, the line numbers of good lines and of bad ones.
fn ndjson(seed: u64) -> (Vec<u8>, Vec<u64>, Vec<u64>) {
    let mut text = Vec::new();
    let (mut good, mut bad) = (Vec::new(), Vec::new());
    let mut n = 0u64;
    let mut line = |text: &mut Vec<u8>, bytes: &[u8], end: &[u8]| {
        n += 1;
        text.extend_from_slice(bytes);
        text.extend_from_slice(end);
        n
    };
    for (i, payload) in common::samples::log_lines(GOOD, seed).iter().enumerate() {
        match i {
            10 => bad.push(line(&mut text, br#"{"service": "billing", "message": "cut sh"#, b"\n")),
            20 => bad.push(line(&mut text, b"{\"message\": \"\xff\xfe not UTF-8\"}", b"\n")),
            30 => bad.push(line(&mut text, b"[1, 2, 3]", b"\r\n")),
            40 | 41 => drop(line(&mut text, b"  ", b"\n")),
            _ => {}
        }
        let end: &[u8] = if i == GOOD - 1 {
            b""
        } else if i % 7 == 0 {
            b"\r\n"
        } else {
            b"\n"
        };
        good.push(line(&mut text, payload.as_bytes(), end));
    }
    (text, good, bad)
}

fn gzip(text: &[u8]) -> Vec<u8> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(text).unwrap();
    e.finish().unwrap()
}

/// The ids a replay of `name` must write: `<name>:<line>` for each line.
fn ids(name: &str, lines: &[u64]) -> BTreeSet<String> {
    lines.iter().map(|l| format!("{name}:{l}")).collect()
}

/// Dead-letter reasons under `dir`, by message id.
fn reasons(dir: &Path) -> BTreeMap<String, String> {
    common::read_rows(dir)
        .into_iter()
        .map(|r| (r["message_id"].as_str().unwrap().to_owned(), r["reason"].as_str().unwrap().to_owned()))
        .collect()
}

fn s(p: &Path) -> String {
    p.display().to_string()
}

#[test]
fn plain_gzip_and_zstd_files_replay_into_the_lake_with_bad_lines_as_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let exports = dir.path().canonicalize().unwrap().join("exports");
    std::fs::create_dir_all(exports.join("2026/11/20")).unwrap();
    let files = [("2026/11/20/a.ndjson", 1), ("2026/11/20/b.ndjson.gz", 2), ("2026/11/20/c.json.zst", 3)];
    let (mut want, mut want_dead) = (BTreeSet::new(), BTreeSet::new());
    for (file, seed) in files {
        let (text, good, bad) = ndjson(seed);
        let bytes = match file {
            f if f.ends_with(".gz") => gzip(&text),
            f if f.ends_with(".zst") => zstd::encode_all(&text[..], 3).unwrap(),
            _ => text,
        };
        std::fs::write(exports.join(file), bytes).unwrap();
        let name = s(&exports.join(file));
        want.extend(ids(&name, &good));
        want_dead.extend(ids(&name, &bad));
    }

    // One file: its lines land; the three bad ones are dead letters naming file and line.
    let one = dir.path().join("one");
    let a = exports.join(files[0].0);
    let text = rp::ok(&["--pipeline", "logs", "--from", &s(&a), "--to", "lake", "--output", &s(&one)], &[]);
    assert!(text.contains(&format!("{GOOD} through the transforms, 0 dropped, 0 routed elsewhere, 3 dead letters")));
    let landed = common::lake_ids(&one, "logs");
    let name = s(&a);
    assert_eq!(
        landed.keys().cloned().collect::<BTreeSet<_>>(),
        want.iter().filter(|i| i.starts_with(&name)).cloned().collect()
    );
    let dead = reasons(&one.join("dead-letters/logs"));
    for (id, reason) in &dead {
        assert!(reason.starts_with(&format!("{id}: ")) && id.starts_with(&format!("{name}:")), "{id}: {reason}");
    }
    println!("one file: {} rows, dead letters {dead:?}", landed.len());
    assert_eq!(
        dead.keys().cloned().collect::<BTreeSet<_>>(),
        want_dead.iter().filter(|i| i.starts_with(&name)).cloned().collect()
    );

    // The folder: every good line of the three files once, every bad one a dead letter.
    let out = dir.path().join("out");
    let args = ["--pipeline", "logs", "--from", &s(&exports), "--to", "lake", "--output", &s(&out)];
    let plan = rp::ok(&[&args[..], &["--dry-run"]].concat(), &[]);
    assert!(plan.contains("3 NDJSON files"), "{plan}");
    let text = rp::ok(&args, &[]);
    println!("{}", text.lines().find(|l| l.starts_with("replayed")).unwrap_or(&text));
    assert!(text.contains(&format!("replayed {} rows from 3 files", 3 * (GOOD + 3))), "{text}");
    let landed = common::lake_ids(&out, "logs");
    assert_eq!(landed.keys().cloned().collect::<BTreeSet<_>>(), want, "every good line, by file and line");
    assert!(landed.values().all(|n| *n == 1), "each once");
    assert_eq!(reasons(&out.join("dead-letters/logs")).into_keys().collect::<BTreeSet<_>>(), want_dead);

    // Again: complete; with --restart the same objects are rewritten, nothing added.
    assert!(rp::ok(&args, &[]).contains("already complete"));
    let before = common::parquet_files(&out);
    rp::ok(&[&args[..], &["--restart"]].concat(), &[]);
    assert_eq!(common::parquet_files(&out), before, "a rerun rewrites the same objects");
    assert_eq!(common::lake_ids(&out, "logs"), landed);

    // A truncated .gz: a clear error naming the file, not a panic.
    let gz = std::fs::read(exports.join(files[1].0)).unwrap();
    let cut = exports.join("2026/11/20/cut.ndjson.gz");
    std::fs::write(&cut, &gz[..gz.len() / 2]).unwrap();
    let (ok, text) = rp::run(
        &["--pipeline", "logs", "--from", &s(&cut), "--to", "lake", "--output", &s(&dir.path().join("cut"))],
        &[],
    );
    println!("truncated: {}", text.lines().last().unwrap_or(""));
    assert!(!ok && text.contains(&format!("{}: the gzip stream is truncated or corrupt", s(&cut))), "{text}");
    assert!(!text.contains("panicked"), "{text}");
}

/// Rows its lake sink cannot write (the sink's folder is a file) fail the replay with how many,
/// of which file, and what to do; run again once the lake takes them, every line lands once.
#[test]
fn rows_the_lake_refuses_fail_the_replay_which_resumes_when_run_again() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().canonicalize().unwrap().join("refused.ndjson");
    let (text, good, bad) = ndjson(7);
    std::fs::write(&file, text).unwrap();
    let out = dir.path().join("out");
    std::fs::create_dir_all(&out).unwrap();
    std::fs::write(out.join("logs"), b"in the way").unwrap();
    let args = ["--pipeline", "logs", "--from", &s(&file), "--to", "lake", "--output", &s(&out)];

    let (success, text) = rp::run(&args, &[]);
    assert!(!success, "a replay whose rows were not written must fail:\n{text}");
    let name = s(&file);
    let counted = format!("{GOOD} of {} rows of refused.ndjson (", GOOD + bad.len());
    assert!(text.contains(&counted), "says how many rows of which file: {text}");
    assert!(
        text.contains(
            "could not be written (the log says why); run the same replay again to resume from the checkpoint"
        ),
        "{text}"
    );

    std::fs::remove_file(out.join("logs")).unwrap();
    rp::ok(&args, &[]);
    let landed = common::lake_ids(&out, "logs");
    assert_eq!(landed.keys().cloned().collect::<BTreeSet<_>>(), ids(&name, &good));
    assert!(landed.values().all(|n| *n == 1), "every line once");
    assert_eq!(reasons(&out.join("dead-letters/logs")).into_keys().collect::<BTreeSet<_>>(), ids(&name, &bad));
}

#[test]
fn a_replay_killed_midway_resumes_after_the_last_line_checkpointed() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().canonicalize().unwrap().join("big.ndjson.zst");
    let lines = 5 * 8192 + 100;
    let text = common::samples::log_lines(lines, 5).join("\n");
    std::fs::write(&file, zstd::encode_all(text.as_bytes(), 1).unwrap()).unwrap();
    let out = dir.path().join("out");
    let checkpoint = out.join("_checkpoints/logs.json");
    let args = ["--pipeline", "logs", "--from", &s(&file), "--to", "lake", "--output", &s(&out)];

    // SIGKILLed once the checkpoint has some lines done and the replay is not complete.
    let (mut child, log) = rp::spawn(&args, &[], "replay-ndjson-killed");
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(120);
    let lines_at_kill = loop {
        let cp: Option<serde_json::Value> =
            std::fs::read_to_string(&checkpoint).ok().and_then(|t| serde_json::from_str(&t).ok());
        let done = cp.as_ref().and_then(|c| c["files"]["big.ndjson.zst"]["lines_done"].as_u64()).unwrap_or(0);
        if done > 0 && cp.as_ref().is_some_and(|c| c["complete"] == false) {
            common::kill_group(&mut child);
            break done;
        }
        let ended = child.try_wait().unwrap().is_some();
        assert!(!ended, "replay ended before it could be killed:\n{}", std::fs::read_to_string(&log).unwrap());
        assert!(std::time::Instant::now() < deadline, "no checkpointed line within 120s");
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let partial = common::lake_ids(&out, "logs").len();
    println!("killed with lines 1..={lines_at_kill} checkpointed, {partial} of {lines} rows in the output");
    assert!(partial < lines, "killed before the end");

    let text = rp::ok(&args, &[]);
    assert!(text.contains("resuming from checkpoint"), "{text}");
    assert!(text.contains(&format!("replayed {} rows", lines as u64 - lines_at_kill)), "{text}");
    let landed = common::lake_ids(&out, "logs");
    assert_eq!(
        landed.keys().cloned().collect::<BTreeSet<_>>(),
        ids(&s(&file), &(1..=lines as u64).collect::<Vec<_>>())
    );
    assert!(landed.values().all(|n| *n == 1), "the batch in flight at the kill was rewritten, not added");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ndjson_export_in_a_bucket_replays_into_a_bucket() {
    use object_store::ObjectStoreExt;
    let gcs = FakeGcs::start();
    gcs.create_bucket("exports");
    let store = gcs.store("exports");
    let (text, good, bad) = ndjson(9);
    let path = "logs/2026/11/20/00:00:00_00:59:59_S0.json.gz";
    store.put(&object_store::path::Path::from(path), gzip(&text).into()).await.unwrap();

    let env = [("STORAGE_EMULATOR_HOST", gcs.url.clone())];
    let args =
        ["--pipeline", "logs", "--from", "gs://exports/logs/", "--to", "lake", "--output", "gs://exports/replay"];
    let out = rp::ok(&args, &env);
    assert!(out.contains(&format!("replayed {} rows from 1 files", GOOD + 3)), "{out}");
    let name = format!("gs://exports/{path}");
    let rows = gcs.rows("exports", "replay/logs/").await;
    let landed: BTreeSet<String> = rows.iter().map(|r| r["message_id"].as_str().unwrap().to_owned()).collect();
    assert_eq!((rows.len(), landed), (GOOD, ids(&name, &good)));
    let dead = gcs.rows("exports", "replay/dead-letters/logs/").await;
    let dead: BTreeSet<String> =
        dead.iter().map(|r| r["reason"].as_str().unwrap().split(": ").next().unwrap().to_owned()).collect();
    println!("gs://: {GOOD} rows from {name}, dead letters {dead:?}");
    assert_eq!(dead, ids(&name, &bad));

    // The object named alone: the same rows.
    let args = ["--pipeline", "logs", "--from", &name, "--to", "lake", "--output", "gs://exports/replay-one"];
    assert!(rp::ok(&args, &env).contains(&format!("replayed {} rows from 1 files", GOOD + 3)));
    assert_eq!(gcs.rows("exports", "replay-one/logs/").await.len(), GOOD);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_reach_bigquery_once_however_often_replayed() {
    let bq = BigQueryEmulator::start();
    let config = sluice::config::load(&common::repo().join("config/sluice.yaml")).unwrap();
    let schema = &config.pipelines.iter().find(|p| p.name == "logs").unwrap().schema;
    let rest = sluice::bigquery::rest::Rest::new(&bq.config()).unwrap();
    rest.ensure_dataset().await.unwrap();
    rest.ensure_table("logs", schema).await.unwrap();
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().canonicalize().unwrap().join("export.ndjson.gz");
    let (text, good, _) = ndjson(4);
    std::fs::write(&file, gzip(&text)).unwrap();

    let args = ["--pipeline", "logs", "--from", &s(&file), "--to", "bigquery", "--output", &s(&dir.path().join("o"))];
    let first = rp::ok(&args, &bq.env());
    assert!(first.contains(&format!("bigquery {GOOD} appended, 0 already present")), "{first}");
    let twice = rp::ok(&[&args[..], &["--restart"]].concat(), &bq.env());
    assert!(twice.contains(&format!("bigquery 0 appended, {GOOD} already present")), "{twice}");
    let in_table = table_ids(&bq, "logs").await;
    println!("bigquery: {} rows after two runs, max copies of an id {:?}", in_table.len(), in_table.values().max());
    assert_eq!(in_table.keys().cloned().collect::<BTreeSet<_>>(), ids(&s(&file), &good));
    assert!(in_table.values().all(|n| *n == 1));
}
