//! The emulators the integration tests run against (Pub/Sub, fake-gcs-server, the BigQuery
//! emulator), each started on free ports and stopped with its process group, and the helpers
//! that drive sluice against them.

use super::*;

/// The official Pub/Sub emulator on a free loopback port, stopped when dropped.
pub(crate) struct PubsubEmulator {
    child: Child,
    pub host: String,
}

pub(crate) const PUBSUB_EMULATOR: &str = "/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator";

impl PubsubEmulator {
    pub(crate) fn start() -> PubsubEmulator {
        assert!(
            Path::new(PUBSUB_EMULATOR).exists(),
            "the Pub/Sub emulator is not installed at {PUBSUB_EMULATOR} (Debian package google-cloud-cli-pubsub-emulator)"
        );
        let port = free_port();
        let mut cmd = Command::new(PUBSUB_EMULATOR);
        cmd.args(["--host=127.0.0.1", &format!("--port={port}")]);
        let (child, log) = spawn_in_group(cmd, &format!("pubsub-emulator-{port}"));
        let emu = PubsubEmulator { child, host: format!("127.0.0.1:{port}") };
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("Server started") {
                return emu;
            }
            assert!(Instant::now() < deadline, "emulator did not start within 60s:\n{text}");
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// CPU seconds (user + system) used so far by the emulator's processes (launcher and JVM).
    pub(crate) fn cpu_secs(&self) -> f64 {
        let pgid = self.child.id().to_string();
        let mut ticks = 0.0;
        for e in std::fs::read_dir("/proc").into_iter().flatten().flatten() {
            let Ok(stat) = std::fs::read_to_string(e.path().join("stat")) else { continue };
            let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
            if fields.get(2) == Some(&pgid.as_str()) {
                ticks += fields[11].parse::<f64>().unwrap_or(0.0) + fields[12].parse::<f64>().unwrap_or(0.0);
            }
        }
        ticks / 100.0
    }

    /// Environment for a sluice that pulls from this emulator.
    pub(crate) fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("SLUICE_PUBSUB", "true".into()),
            ("PUBSUB_EMULATOR_HOST", self.host.clone()),
            ("SLUICE_PROJECT", "sluice-test".into()),
        ]
    }
}

impl PubsubEmulator {
    /// Freeze (`STOP`) or thaw (`CONT`) the emulator: its JVM stops answering but keeps its state.
    pub(crate) fn freeze(&self, on: bool) {
        let sig = if on { libc::SIGSTOP } else { libc::SIGCONT };
        for pid in descendants(self.child.id()) {
            // SAFETY: kill(2) with a positive pid signals only that process, one we started.
            unsafe { libc::kill(pid as libc::pid_t, sig) };
        }
    }
}

/// `pid` and every process below it, from /proc.
fn descendants(pid: u32) -> Vec<u32> {
    let mut out = vec![pid];
    let mut i = 0;
    while i < out.len() {
        let p = out[i];
        for task in std::fs::read_dir(format!("/proc/{p}/task")).into_iter().flatten().flatten() {
            let children = std::fs::read_to_string(task.path().join("children")).unwrap_or_default();
            out.extend(children.split_whitespace().filter_map(|c| c.parse::<u32>().ok()));
        }
        i += 1;
    }
    out
}

impl Drop for PubsubEmulator {
    fn drop(&mut self) {
        // The launcher script starts a JVM child: end the whole group.
        kill_group(&mut self.child);
    }
}

/// Start `cmd` as the leader of a process group of its own (so it and any children it starts
/// can be ended together), stdout and stderr to `<temp>/<name>.log`; returns the log's path.
pub(crate) fn spawn_in_group(mut cmd: Command, name: &str) -> (Child, PathBuf) {
    let log = std::env::temp_dir().join(format!("{name}.log"));
    let child = cmd
        .stdin(Stdio::null())
        .stdout(std::fs::File::create(&log).unwrap())
        .stderr(std::fs::File::options().append(true).open(&log).unwrap())
        .process_group(0)
        .spawn()
        .unwrap_or_else(|e| panic!("{name} starts: {e}"));
    (child, log)
}

/// SIGKILL the process group `spawn_in_group` made for `child` (pgid = its pid, never ours), and reap it.
pub(crate) fn kill_group(child: &mut Child) {
    let pgid = child.id() as libc::pid_t;
    assert!(pgid > 1);
    // SAFETY: a negative pid signals exactly that process group.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
    let _ = child.wait();
}

/// Run the sluice binary to completion with the shipped config and `env`; panics on failure.
pub(crate) fn sluice_cmd(args: &[&str], env: &[(&str, String)]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(repo())
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()
        .unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    assert!(out.status.success(), "sluice {args:?} failed:\n{text}");
    text
}

/// Where `scripts/install-emulators` put the GCS and BigQuery emulators.
pub(crate) fn emulators_dir() -> PathBuf {
    std::env::var_os("SLUICE_EMULATORS_DIR").map(PathBuf::from).unwrap_or_else(|| repo().join(".emulators"))
}

/// fake-gcs-server on a loopback port, stopped (killed) when dropped.
pub(crate) struct FakeGcs {
    child: Option<Child>,
    pub port: u16,
    /// Base URL, as STORAGE_EMULATOR_HOST and `lake.endpoint` take it.
    pub url: String,
    /// Filesystem backend root, so data outlives a restart; `None`: memory.
    root: Option<PathBuf>,
}

impl FakeGcs {
    /// On a free port with the memory backend.
    pub(crate) fn start() -> FakeGcs {
        Self::launch(free_port(), None)
    }

    /// On a free port, keeping objects under `root` so a restart on the same port finds them.
    pub(crate) fn start_persistent(root: &Path) -> FakeGcs {
        Self::launch(free_port(), Some(root.to_owned()))
    }

    fn launch(port: u16, root: Option<PathBuf>) -> FakeGcs {
        let bin = emulators_dir().join("fake-gcs-server");
        assert!(bin.exists(), "fake-gcs-server is not installed at {} (run scripts/install-emulators)", bin.display());
        let url = format!("http://127.0.0.1:{port}");
        let mut cmd = Command::new(&bin);
        cmd.args(["-scheme", "http", "-host", "127.0.0.1", "-port", &port.to_string(), "-external-url", &url]);
        match &root {
            Some(dir) => cmd.args(["-backend", "filesystem", "-filesystem-root", dir.to_str().unwrap()]),
            None => cmd.args(["-backend", "memory"]),
        };
        let (child, log) = spawn_in_group(cmd, &format!("fake-gcs-{port}"));
        let gcs = FakeGcs { child: Some(child), port, url, root };
        let deadline = Instant::now() + Duration::from_secs(30);
        while !reqwest::blocking_get(&format!("{}/storage/v1/b", gcs.url)).unwrap_or(false) {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            assert!(Instant::now() < deadline, "fake-gcs-server did not start within 30s:\n{text}");
            std::thread::sleep(Duration::from_millis(50));
        }
        gcs
    }

    /// Kill it (objects stay on disk with the filesystem backend).
    pub(crate) fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_group(&mut child);
        }
    }

    /// Start it again on the same port with the same backend.
    pub(crate) fn restart(&mut self) {
        self.stop();
        let again = Self::launch(self.port, self.root.clone());
        *self = again;
    }

    pub(crate) fn create_bucket(&self, name: &str) {
        self.create(serde_json::json!({ "name": name }));
    }

    /// A bucket keeping every generation of its objects (old ones readable by version).
    pub(crate) fn create_versioned_bucket(&self, name: &str) {
        self.create(serde_json::json!({ "name": name, "versioning": {"enabled": true} }));
    }

    fn create(&self, bucket: Value) {
        let url = format!("{}/storage/v1/b", self.url);
        let (status, body) = reqwest::blocking_request("POST", &url, &bucket.to_string()).unwrap();
        let name = &bucket["name"];
        assert_eq!(status, 200, "creating bucket {name}: {body}");
    }

    /// The bucket through sluice's own store, as the lake sink opens it.
    pub(crate) fn store(&self, bucket: &str) -> std::sync::Arc<dyn object_store::ObjectStore> {
        let location = sluice::store::Location::parse(&format!("gs://{bucket}")).unwrap();
        location.open(Some(&self.url)).unwrap().0
    }

    /// Name and content of every object under `prefix`, sorted by name.
    pub(crate) async fn objects(&self, bucket: &str, prefix: &str) -> Vec<(String, bytes::Bytes)> {
        use futures::TryStreamExt;
        use object_store::ObjectStoreExt;
        let store = self.store(bucket);
        let prefix = object_store::path::Path::from(prefix);
        let mut metas: Vec<_> = store.list(Some(&prefix)).try_collect().await.unwrap();
        metas.sort_by(|a, b| a.location.cmp(&b.location));
        let mut out = Vec::new();
        for m in metas {
            let bytes = store.get(&m.location).await.unwrap().bytes().await.unwrap();
            out.push((m.location.to_string(), bytes));
        }
        out
    }

    /// Every row of every Parquet object under `prefix`.
    pub(crate) async fn rows(&self, bucket: &str, prefix: &str) -> Vec<Map<String, Value>> {
        let objects = self.objects(bucket, prefix).await;
        objects.into_iter().filter(|(n, _)| n.ends_with(".parquet")).flat_map(|(_, b)| parquet_rows(b)).collect()
    }
}

impl Drop for FakeGcs {
    fn drop(&mut self) {
        self.stop();
    }
}

/// Publish `count` sample events for `pipeline` to its topic; returns the Pub/Sub message ids.
pub(crate) async fn publish(emu: &PubsubEmulator, pipeline: &str, count: u64, seed: u64) -> Vec<String> {
    faults::publish_at(&emu.env(), pipeline, count, seed, None).await
}

/// Wait until every id is in the lake for `pipeline`, or panic after `limit`.
pub(crate) fn wait_for_all(lake: &Path, pipeline: &str, ids: &[String], limit: Duration) -> HashMap<String, usize> {
    let deadline = Instant::now() + limit;
    loop {
        let found = lake_ids(lake, pipeline);
        let missing = ids.iter().filter(|id| !found.contains_key(*id)).count();
        if missing == 0 {
            return found;
        }
        assert!(
            Instant::now() < deadline,
            "{pipeline}: {missing} of {} events still missing after {limit:?}",
            ids.len()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The emulator's environment plus `extra`.
pub(crate) fn env_with(emu: &PubsubEmulator, extra: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    let mut env = emu.env();
    env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    env
}

/// A BigQuery emulator (bqemulator) on free REST and gRPC ports, killed on drop.
pub(crate) struct BigQueryEmulator {
    child: Child,
    pub rest: String,
    pub grpc: String,
}

impl BigQueryEmulator {
    pub(crate) fn start() -> BigQueryEmulator {
        Self::start_with(&[])
    }

    /// Start with extra environment (the emulator's settings are `BQEMU_*` variables).
    pub(crate) fn start_with(env: &[(&str, &str)]) -> BigQueryEmulator {
        let bin = emulators_dir().join("bigquery-emulator");
        assert!(
            bin.exists(),
            "the BigQuery emulator is not installed at {}: run scripts/install-emulators",
            bin.display()
        );
        let (rest, grpc) = (free_port(), free_port());
        let mut cmd = Command::new(&bin);
        cmd.args(["start", "--rest-host", "127.0.0.1", "--rest-port", &rest.to_string()])
            .args(["--grpc-host", "127.0.0.1", "--grpc-port", &grpc.to_string(), "--project", "sluice-test"])
            .envs(env.iter().copied());
        let (child, log) = spawn_in_group(cmd, &format!("bigquery-emulator-{rest}"));
        let emu = BigQueryEmulator { child, rest: format!("127.0.0.1:{rest}"), grpc: format!("127.0.0.1:{grpc}") };
        let deadline = Instant::now() + Duration::from_secs(90);
        loop {
            let text = std::fs::read_to_string(&log).unwrap_or_default();
            if text.contains("grpc.listen") && std::net::TcpStream::connect(&emu.rest).is_ok() {
                return emu;
            }
            assert!(Instant::now() < deadline, "BigQuery emulator did not start within 90s:\n{text}");
            std::thread::sleep(Duration::from_millis(200));
        }
    }

    /// Environment for a sluice (or `sluice provision`) that writes to this emulator.
    pub(crate) fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("SLUICE_BIGQUERY", "true".into()),
            ("BIGQUERY_EMULATOR_HOST", self.rest.clone()),
            ("BIGQUERY_EMULATOR_GRPC_HOST", self.grpc.clone()),
            ("SLUICE_PROJECT", "sluice-test".into()),
            ("SLUICE_DATASET", "sluice".into()),
        ]
    }

    /// The emulator's settings as sluice's own config type, for its REST client in tests.
    /// Endpoints as URLs, as `config::load` leaves them.
    pub(crate) fn config(&self) -> sluice::config::global::BigQueryConfig {
        sluice::config::global::BigQueryConfig {
            enabled: true,
            project: "sluice-test".into(),
            dataset: "sluice".into(),
            location: "US".into(),
            endpoint: Some(format!("http://{}", self.rest)),
            grpc_endpoint: Some(format!("http://{}", self.grpc)),
            write_mode: Default::default(),
        }
    }

    /// Run a query and return its rows, cells as the REST API writes them (every scalar a
    /// string, `INT64` 40 as "40"; null as null), which the tests' expectations are written in.
    pub(crate) async fn query(&self, sql: &str) -> Vec<Vec<Value>> {
        let rest = sluice::bigquery::rest::Rest::new(&self.config()).unwrap();
        let rows = rest.query(sql).await.unwrap_or_else(|e| panic!("query failed: {e}\n{sql}"));
        rows.into_iter().map(|r| r.into_iter().map(rest_cell).collect()).collect()
    }
}

/// The BigQuery sink's writer for `table`, on a stream opened as the sink opens it.
pub(crate) async fn bigquery_writer(
    config: &sluice::config::global::BigQueryConfig,
    table: &str,
    schema: &sluice::schema::Schema,
    mode: sluice::config::WriteMode,
) -> sluice::sink::bigquery::BigQueryWriter {
    let client = sluice::bigquery::stream::client(config).await.unwrap();
    let appender = sluice::bigquery::stream::Appender::open(
        client,
        sluice::bigquery::table_path(config, table),
        &schema.arrow_schema(),
        mode,
    )
    .await
    .unwrap();
    sluice::sink::bigquery::BigQueryWriter {
        name: "warehouse".into(),
        pipeline: "logs".into(),
        table: table.into(),
        appender,
        retry: sluice::sink::bigquery::default_retry(),
        metrics: sluice::telemetry::metrics::Metrics::new().sink("logs", "warehouse"),
        written: None,
    }
}

impl Drop for BigQueryEmulator {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}

/// A typed cell (the query client's) in the REST API's form: scalars as strings, an array's
/// values each under `v`.
fn rest_cell(v: Value) -> Value {
    match v {
        Value::Number(n) => Value::String(n.to_string()),
        Value::Bool(b) => Value::String(b.to_string()),
        Value::Array(a) => a.into_iter().map(|v| serde_json::json!({ "v": rest_cell(v) })).collect(),
        v => v,
    }
}
