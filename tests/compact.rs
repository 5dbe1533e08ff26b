//! `sluice compact` end to end, the real binary against fake-gcs-server and a local folder: the
//! rows of a closed hour end up in fewer objects, the same rows; an open hour is not touched; a dry
//! run changes nothing; a second run is a no-op; a run SIGKILLed after each step of a merge (and
//! at seeded random moments), then run again, leaves every row exactly once; a run is refused
//! while another holds the pipeline's lock.

mod common;

use std::collections::BTreeMap;
use std::time::Duration;

use common::compact::{exactly_once, no_gap, open_hour, Lake, CLOSED};
use common::FakeGcs;

/// Every row under `rest`, sorted: the multiset of rows, whatever objects hold them.
fn rows(snapshot: &BTreeMap<String, Vec<String>>) -> Vec<String> {
    let mut all: Vec<String> =
        snapshot.iter().filter(|(n, _)| n.ends_with(".parquet")).flat_map(|(_, r)| r.clone()).collect();
    all.sort();
    all
}

fn names(snapshot: &BTreeMap<String, Vec<String>>) -> Vec<&str> {
    snapshot.keys().map(|k| k.rsplit('/').next().unwrap()).collect()
}

/// A closed hour of many small objects, an open hour, dead letters: dry run, run, run again.
async fn compacts_closed_hours_once(lake: &Lake) {
    let ids = lake.seed_logs(CLOSED, "small", 24, 40).await;
    let open = open_hour();
    lake.seed_logs(&open, "open", 3, 10).await;
    lake.seed_dead_letters(CLOSED, 5, 4).await;
    let before = lake.snapshot("").await;

    let dry = lake.compact(&["--dry-run"]);
    assert!(dry.contains("logs: would merge 24 objects into 1 in 1 closed hours (1 open hours left alone)"), "{dry}");
    assert!(dry.contains("dead-letters/logs: would merge 5 objects into 1"), "{dry}");
    assert_eq!(lake.snapshot("").await, before, "a dry run changes nothing");

    let out = lake.compact(&[]);
    assert!(out.contains("logs: merged 24 objects (960 rows"), "{out}");
    let hour = lake.snapshot(&format!("logs/{CLOSED}")).await;
    assert_eq!(hour.len(), 1, "one object: {:?}", names(&hour));
    assert!(names(&hour)[0].starts_with("compacted-"), "{:?}", names(&hour));
    let mut hour_before = before.clone();
    hour_before.retain(|n, _| n.starts_with(&format!("logs/{CLOSED}")));
    assert_eq!(rows(&hour), rows(&hour_before), "the same multiset of rows");
    exactly_once(&lake.ids(&format!("logs/{CLOSED}")).await, &ids);
    let open_now = lake.snapshot(&format!("logs/{open}")).await;
    assert_eq!(open_now.len(), 3, "the open hour is not touched");
    assert!(open_now.iter().all(|(n, r)| before.get(n) == Some(r)));
    let dead = lake.snapshot(&format!("dead-letters/logs/{CLOSED}")).await;
    assert_eq!((dead.len(), rows(&dead).len()), (1, 20), "dead letters compacted: {:?}", names(&dead));
    assert!(lake.snapshot("_sluice").await.is_empty(), "no manifest left");

    let after = lake.snapshot("").await;
    let again = lake.compact(&[]);
    assert!(again.contains("logs: merged 0 objects"), "{again}");
    assert_eq!(lake.snapshot("").await, after, "a second run is a no-op");
}

#[tokio::test]
async fn compacts_a_gcs_lake() {
    let gcs = FakeGcs::start();
    compacts_closed_hours_once(&Lake::gcs(&gcs, "compact")).await;
}

#[tokio::test]
async fn compacts_a_local_lake_and_replays_it() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::local(dir.path());
    compacts_closed_hours_once(&lake).await;

    // A replay of the compacted hour reads every row once.
    let out = tempfile::tempdir().unwrap();
    let from = dir.path().join(format!("logs/{CLOSED}"));
    let args =
        ["-p", "logs", "--from", from.to_str().unwrap(), "--to", "lake", "--output", out.path().to_str().unwrap()];
    let text = common::replay::ok(&args, &lake.env);
    assert!(text.contains("1 files, 960 rows selected"), "{text}");
    let replayed = common::lake_ids(out.path(), "logs");
    let compacted = lake.ids(&format!("logs/{CLOSED}")).await;
    assert_eq!(replayed, compacted, "every row of the compacted hour replayed once");
}

/// A run is refused while another holds the pipeline's lock, and changes nothing; the lock of a
/// run that is gone (expired) is taken over, and released at the end.
async fn one_run_at_a_time(lake: &Lake) {
    use object_store::ObjectStoreExt;
    let ids = lake.seed_logs(CLOSED, "small", 6, 10).await;
    let lock = sluice::compact::lock::path(&lake.base, "logs");
    let hold = |expires: chrono::TimeDelta| {
        let now = chrono::Utc::now();
        let h = serde_json::json!({"host": "elsewhere", "pid": 1, "run": "r", "started_at": now.to_rfc3339(),
            "expires_at": (now + expires).to_rfc3339()});
        object_store::PutPayload::from(serde_json::to_vec(&h).unwrap())
    };
    lake.store.put(&lock, hold(chrono::TimeDelta::minutes(5))).await.unwrap();
    let before = lake.snapshot("").await;
    let out = lake.command(&[]).output().unwrap();
    let text = String::from_utf8_lossy(&out.stderr);
    assert!(!out.status.success(), "refused while locked: {text}");
    assert!(text.contains(&format!("another compaction holds {lock}: pid 1 on host elsewhere")), "{text}");
    assert_eq!(lake.snapshot("").await, before, "a refused run changes nothing");

    lake.store.put(&lock, hold(-chrono::TimeDelta::seconds(1))).await.unwrap();
    let out = lake.compact(&[]);
    assert!(out.contains("logs: merged 6 objects"), "{out}");
    exactly_once(&lake.ids(&format!("logs/{CLOSED}")).await, &ids);
    assert!(lake.snapshot("_locks").await.is_empty(), "the lock is released");
}

#[tokio::test]
async fn one_run_at_a_time_on_gcs() {
    let gcs = FakeGcs::start();
    one_run_at_a_time(&Lake::gcs(&gcs, "locked")).await;
}

#[tokio::test]
async fn one_run_at_a_time_on_a_local_lake() {
    let dir = tempfile::tempdir().unwrap();
    one_run_at_a_time(&Lake::local(dir.path())).await;
}

/// Outputs of about the target size; new small objects later merge with the small last output.
#[tokio::test]
async fn outputs_grow_to_the_target_and_take_late_objects() {
    let dir = tempfile::tempdir().unwrap();
    let lake = Lake::local(dir.path());
    let mut ids = lake.seed_logs(CLOSED, "small", 20, 40).await;
    let target = (object_size(&lake, &format!("logs/{CLOSED}/small-0.parquet")).await * 6).to_string();
    let before = lake.snapshot("").await;
    let recent = lake.compact(&["--since", "1h", "--target-size", &target]);
    assert!(recent.contains("logs: merged 0 objects"), "{recent}");
    assert_eq!(lake.snapshot("").await, before, "hours before --since are not touched");
    lake.compact(&["--target-size", &target]);
    let hour = lake.snapshot(&format!("logs/{CLOSED}")).await;
    assert!((3..=4).contains(&hour.len()), "20 objects in units of ~6: {:?}", names(&hour));
    exactly_once(&lake.ids(&format!("logs/{CLOSED}")).await, &ids);
    let settled = lake.snapshot("").await;
    lake.compact(&["--target-size", &target]);
    assert_eq!(lake.snapshot("").await, settled, "a second run is a no-op");

    // A late event lands in the compacted hour: it is merged with the small outputs.
    ids.extend(lake.seed_logs(CLOSED, "late", 1, 5).await);
    lake.compact(&["--target-size", &target]);
    let hour = lake.snapshot(&format!("logs/{CLOSED}")).await;
    assert!(names(&hour).iter().all(|n| n.starts_with("compacted-")), "{:?}", names(&hour));
    exactly_once(&lake.ids(&format!("logs/{CLOSED}")).await, &ids);
}

/// SIGKILL after each step of the first merge, then run again: every row exactly once.
#[tokio::test]
async fn a_compaction_killed_at_each_step_resumes_without_loss_or_duplicates() {
    let gcs = FakeGcs::start();
    for step in ["manifest", "output", "delete"] {
        let lake = Lake::gcs(&gcs, &format!("kill-{step}"));
        let ids = lake.seed_logs(CLOSED, "small", 12, 30).await;
        let dead = lake.seed_dead_letters(CLOSED, 3, 2).await;
        // Two units of six objects, so the first is interrupted and the second not begun.
        let target = (object_size(&lake, &format!("logs/{CLOSED}/small-0.parquet")).await * 6).to_string();
        lake.kill_at(&["--target-size", &target], step);

        let between = lake.ids(&format!("logs/{CLOSED}")).await;
        no_gap(&between, &ids);
        let doubled = between.values().filter(|n| **n > 1).count();
        match step {
            "manifest" => assert_eq!(doubled, 0, "nothing merged yet"),
            // The merged object is written and its inputs still there: readers may see these twice.
            _ => assert!(doubled > 0, "after '{step}' the merged rows are there twice"),
        }
        assert_eq!(lake.snapshot("_sluice").await.len(), 1, "the manifest of the interrupted merge");

        let out = lake.compact(&["--target-size", &target]);
        assert!(out.contains("finished 1 interrupted merges"), "{out}");
        exactly_once(&lake.ids(&format!("logs/{CLOSED}")).await, &ids);
        exactly_once(&lake.ids(&format!("dead-letters/logs/{CLOSED}")).await, &dead);
        assert!(lake.snapshot("_sluice").await.is_empty(), "no manifest left after '{step}'");
        let settled = lake.snapshot("").await;
        lake.compact(&["--target-size", &target]);
        assert_eq!(lake.snapshot("").await, settled, "then a rerun is a no-op (killed after '{step}')");
    }
}

/// SIGKILL at seeded random moments, round after round with new small objects each time (late
/// events into the compacted hour), then a full run: every row exactly once.
#[tokio::test]
async fn a_compaction_killed_at_random_moments_ends_with_every_row_once() {
    let gcs = FakeGcs::start();
    let lake = Lake::gcs(&gcs, "kill-random");
    let mut ids = lake.seed_logs(CLOSED, "small", 16, 20).await;
    let target = (object_size(&lake, &format!("logs/{CLOSED}/small-0.parquet")).await * 4).to_string();
    let mut rng = common::faults::seeded_rng("compact random kills");
    let mut killed = 0;
    // How long a whole run takes here, learnt from the runs that finished: the moments to kill
    // at are drawn inside it, so a fast machine still sees runs killed midway.
    let mut whole = Duration::from_millis(400);
    for round in 0..6 {
        ids.extend(lake.seed_logs(CLOSED, &format!("late{round}"), 8, 20).await);
        let wait = common::faults::between(&mut rng, whole / 10, whole * 9 / 10);
        let (mut child, _log) =
            common::spawn_in_group(lake.command(&["--target-size", &target]), &format!("compact-random-{round}"));
        let started = std::time::Instant::now();
        let running = loop {
            if child.try_wait().unwrap().is_some() {
                whole = started.elapsed();
                break false;
            }
            if started.elapsed() >= wait {
                break true;
            }
            std::thread::sleep(Duration::from_millis(2));
        };
        if running {
            common::signal(child.id(), "KILL");
            killed += 1;
        }
        child.wait().unwrap();
        let seen = lake.ids(&format!("logs/{CLOSED}")).await;
        no_gap(&seen, &ids);
        let objects = lake.snapshot(&format!("logs/{CLOSED}")).await.len();
        let manifests = lake.snapshot("_sluice").await.len();
        let twice = seen.values().filter(|n| **n > 1).count();
        common::faults::report(format!(
            "round {round}: {} after {} ms: {objects} objects, {manifests} manifests, {twice} rows seen twice",
            if running { "killed" } else { "had finished" },
            wait.as_millis()
        ));
    }
    assert!(killed > 0, "no round was killed mid-run: lengthen the runs");
    lake.compact(&["--target-size", &target]);
    exactly_once(&lake.ids(&format!("logs/{CLOSED}")).await, &ids);
    assert!(lake.snapshot("_sluice").await.is_empty(), "no manifest left");
}

async fn object_size(lake: &Lake, rest: &str) -> u64 {
    use object_store::ObjectStoreExt;
    let path = sluice::store::join(&lake.base, rest);
    lake.store.head(&path).await.unwrap().size
}
