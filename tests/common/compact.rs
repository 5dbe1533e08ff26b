//! Helpers for the compaction tests: a lake (local folder or fake-gcs-server bucket) seeded with
//! small Parquet objects, `sluice compact` runs, and what the lake holds afterwards.

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::process::{Child, Command};
use std::sync::Arc;
use std::time::{Duration, Instant};

use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde_json::{json, Value};

/// A lake as `sluice compact` sees it (through the shipped config's env) and as the test reads it.
pub(crate) struct Lake {
    pub store: Arc<dyn ObjectStore>,
    /// The lake location's prefix inside the store.
    pub base: ObjectPath,
    pub env: Vec<(&'static str, String)>,
}

/// A closed hour (long past) and an open one (the next hour: not ended yet).
pub(crate) const CLOSED: &str = "dt=2026-11-26/hour=09";

pub(crate) fn open_hour() -> String {
    sluice::sink::lake::Partition::of(chrono::Utc::now() + chrono::TimeDelta::hours(1)).path()
}

impl Lake {
    pub(crate) fn local(dir: &std::path::Path) -> Lake {
        let location = sluice::store::Location::parse(dir.to_str().unwrap()).unwrap();
        let (store, base) = location.open(None).unwrap();
        Lake { store, base, env: vec![("SLUICE_LAKE", dir.display().to_string())] }
    }

    pub(crate) fn gcs(gcs: &super::FakeGcs, bucket: &str) -> Lake {
        gcs.create_bucket(bucket);
        Lake {
            store: gcs.store(bucket),
            base: ObjectPath::from("lake"),
            env: vec![("SLUICE_LAKE", format!("gs://{bucket}/lake")), ("STORAGE_EMULATOR_HOST", gcs.url.clone())],
        }
    }

    fn path(&self, rest: &str) -> ObjectPath {
        sluice::store::join(&self.base, rest)
    }

    /// `files` log objects of `rows` rows each under `logs/<hour>/`, ids `<tag>-<file>-<row>`.
    pub(crate) async fn seed_logs(&self, hour: &str, tag: &str, files: usize, rows: usize) -> Vec<String> {
        let schema = sluice::schema::Schema::load(&super::repo().join("schemas"), "log").unwrap();
        let mut ids = Vec::new();
        for f in 0..files {
            let mut records = super::samples::log_rows(f * rows..(f + 1) * rows, f as u64);
            for (r, rec) in records.iter_mut().enumerate() {
                let id = format!("{tag}-{f}-{r}");
                rec["message_id"] = json!(id);
                ids.push(id);
            }
            let refs: Vec<&Value> = records.iter().collect();
            let bytes = sluice::sink::encode::parquet_file(&schema, &refs).unwrap();
            self.put(&format!("logs/{hour}/{tag}-{f}.parquet"), bytes).await;
        }
        ids
    }

    /// `files` dead-letter objects of `rows` rows each under `dead-letters/logs/<hour>/`.
    pub(crate) async fn seed_dead_letters(&self, hour: &str, files: usize, rows: usize) -> Vec<String> {
        let schema = sluice::sink::dead_letter::schema();
        let mut ids = Vec::new();
        for f in 0..files {
            let records: Vec<Value> = (0..rows)
                .map(|r| {
                    ids.push(format!("dead-{f}-{r}"));
                    json!({"failed_at": "2026-11-26T09:10:00Z", "pipeline": "logs", "stage": "validate",
                        "reason": "r", "message_id": format!("dead-{f}-{r}"), "publish_time": "2026-11-26T09:09:00Z",
                        "subscription": "push", "data": "eyJ4IjoxfQ=="})
                })
                .collect();
            let bytes = sluice::sink::encode::parquet_file(&schema, &records.iter().collect::<Vec<_>>()).unwrap();
            self.put(&format!("dead-letters/logs/{hour}/dl-{f}.parquet"), bytes).await;
        }
        ids
    }

    async fn put(&self, rest: &str, bytes: bytes::Bytes) {
        self.store.put(&self.path(rest), PutPayload::from_bytes(bytes)).await.unwrap();
    }

    /// Every object under `rest` (relative to the lake), by name relative to the lake, with its
    /// rows as JSON text, sorted (manifests: their text).
    pub(crate) async fn snapshot(&self, rest: &str) -> BTreeMap<String, Vec<String>> {
        let prefix = self.path(rest);
        let listed: Vec<_> = self.store.list(Some(&prefix)).try_collect().await.unwrap();
        let mut out = BTreeMap::new();
        for m in listed {
            let bytes = self.store.get(&m.location).await.unwrap().bytes().await.unwrap();
            let mut rows: Vec<String> = if m.location.as_ref().ends_with(".parquet") {
                super::parquet_rows(bytes).into_iter().map(|r| Value::Object(r).to_string()).collect()
            } else {
                vec![String::from_utf8_lossy(&bytes).into_owned()]
            };
            rows.sort();
            let name = m.location.as_ref().strip_prefix(self.base.as_ref()).unwrap_or(m.location.as_ref());
            out.insert(name.trim_start_matches('/').to_owned(), rows);
        }
        out
    }

    /// Message ids in the Parquet objects under `rest`, with how often each occurs.
    pub(crate) async fn ids(&self, rest: &str) -> HashMap<String, usize> {
        let mut ids = HashMap::new();
        for (name, rows) in self.snapshot(rest).await {
            if !name.ends_with(".parquet") {
                continue;
            }
            for r in rows {
                let v: Value = serde_json::from_str(&r).unwrap();
                *ids.entry(v["message_id"].as_str().unwrap().to_owned()).or_insert(0) += 1;
            }
        }
        ids
    }

    /// `sluice compact -p logs ARGS` on the shipped config, not yet started.
    pub(crate) fn command(&self, args: &[&str]) -> Command {
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
        cmd.current_dir(super::repo())
            .args(["--log-format", "text", "compact", "-c", "config/sluice.yaml", "-p", "logs"])
            .args(args)
            .envs(self.env.iter().map(|(k, v)| (*k, v.as_str())));
        cmd
    }

    /// Run a compaction that must succeed; its stdout and stderr.
    pub(crate) fn compact(&self, args: &[&str]) -> String {
        let out = self.command(args).output().unwrap();
        let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
        assert!(out.status.success(), "sluice compact {args:?} failed:\n{text}");
        text
    }

    /// Start a compaction that pauses after `step` of its first merge; once it says so, SIGKILL it.
    pub(crate) fn kill_at(&self, args: &[&str], step: &str) {
        let mut cmd = self.command(args);
        cmd.env("SLUICE_COMPACT_PAUSE_AT", step);
        let (child, log) = super::spawn_in_group(cmd, &format!("compact-pause-{step}-{}", std::process::id()));
        wait_for(child, &log, &format!("paused after step '{step}'"));
    }
}

/// Wait until the log holds `needle`, then SIGKILL the child and reap it.
fn wait_for(mut child: Child, log: &PathBuf, needle: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let text = std::fs::read_to_string(log).unwrap_or_default();
        if text.contains(needle) {
            break;
        }
        assert!(child.try_wait().unwrap().is_none(), "compact exited before '{needle}':\n{text}");
        assert!(Instant::now() < deadline, "no '{needle}' within 60s:\n{text}");
        std::thread::sleep(Duration::from_millis(20));
    }
    super::signal(child.id(), "KILL");
    child.wait().unwrap();
}

/// Every id of `want` exactly once in `got`, and nothing else.
pub(crate) fn exactly_once(got: &HashMap<String, usize>, want: &[String]) {
    let missing = want.iter().filter(|id| !got.contains_key(*id)).count();
    let twice = got.values().filter(|n| **n > 1).count();
    assert_eq!((missing, twice, got.len()), (0, 0, want.len()), "missing, duplicated, distinct ids");
}

/// Every id of `want` at least once (a reader between write and delete may see duplicates).
pub(crate) fn no_gap(got: &HashMap<String, usize>, want: &[String]) {
    let missing: Vec<&String> = want.iter().filter(|id| !got.contains_key(*id)).collect();
    assert!(missing.is_empty(), "{} ids missing, e.g. {:?}", missing.len(), missing.first());
}
