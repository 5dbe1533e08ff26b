//! Shared by the integration tests: run the real `sluice` binary and read back what it wrote.
#![allow(dead_code)]

use std::collections::HashMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

pub mod browser;
pub mod compact;
pub mod console;
pub mod faults;
pub mod push_load;
pub mod replay;
pub mod samples;

pub fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A log file for a child process, under the system temp dir (named in failures).
pub fn log_file(name: &str) -> std::fs::File {
    let path = std::env::temp_dir().join(name);
    std::fs::File::create(&path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()))
}

/// A free TCP port on loopback (bound, then released for the child to take).
pub fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Message ids in the lake for a pipeline, with how often each occurs.
pub fn lake_ids(lake: &Path, pipeline: &str) -> std::collections::HashMap<String, usize> {
    let mut ids = std::collections::HashMap::new();
    for row in read_rows(&lake.join(pipeline)) {
        *ids.entry(row["message_id"].as_str().unwrap().to_owned()).or_insert(0) += 1;
    }
    ids
}

/// `sluice run` on the shipped config, with its lake in `lake`, listening on loopback `port`.
pub fn run_command(lake: &Path, port: u16) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.current_dir(repo())
        .args(["run", "--config", "config/sluice.yaml"])
        .env("SLUICE_LAKE", lake)
        .env("SLUICE_LISTEN", format!("127.0.0.1:{port}"));
    cmd
}

/// A `sluice run` child process on the shipped config, with its lake in `lake`.
pub struct Sluice {
    pub child: Child,
    pub url: String,
}

impl Sluice {
    pub fn start(lake: &Path, extra_env: &[(&str, &str)]) -> Sluice {
        let env: Vec<(&str, String)> = extra_env.iter().map(|(k, v)| (*k, v.to_string())).collect();
        Self::start_with(lake, &env)
    }

    pub fn start_with(lake: &Path, extra_env: &[(&str, String)]) -> Sluice {
        let port = free_port();
        let mut cmd = run_command(lake, port);
        cmd.env("SLUICE_INSTANCE", "test");
        for (k, v) in extra_env {
            cmd.env(k, v);
        }
        Self::spawn(cmd, port)
    }

    /// Spawn `cmd` (a [`run_command`] listening on `port`), logging to `sluice-<port>.log`, and
    /// wait until it is ready.
    pub fn spawn(mut cmd: Command, port: u16) -> Sluice {
        cmd.stdin(Stdio::null()).stderr(log_file(&format!("sluice-{port}.log")));
        let child = cmd.spawn().expect("sluice binary starts");
        let s = Sluice { child, url: format!("http://127.0.0.1:{port}") };
        s.wait_ready();
        s
    }

    fn wait_ready(&self) {
        let deadline = Instant::now() + Duration::from_secs(30);
        while Instant::now() < deadline {
            if let Ok(r) = reqwest::blocking_get(&format!("{}/readyz", self.url)) {
                if r {
                    return;
                }
            }
            std::thread::sleep(Duration::from_millis(100));
        }
        panic!("sluice did not become ready within 30s");
    }

    /// SIGTERM, then wait for a clean exit.
    pub fn stop(mut self) -> std::process::ExitStatus {
        signal(self.child.id(), "TERM");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                return status;
            }
            assert!(Instant::now() < deadline, "sluice did not exit within 60s of SIGTERM");
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

impl Drop for Sluice {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Send `sig` ("TERM", "KILL") to one process.
pub fn signal(pid: u32, sig: &str) {
    let signo = match sig {
        "TERM" => libc::SIGTERM,
        "KILL" => libc::SIGKILL,
        other => panic!("unsupported signal {other}"),
    };
    // SAFETY: kill(2) with a positive pid only signals that one process.
    let rc = unsafe { libc::kill(pid as libc::pid_t, signo) };
    assert_eq!(rc, 0, "kill -{sig} {pid}: {}", std::io::Error::last_os_error());
}

/// A tiny blocking HTTP/1.1 client for readiness checks and setup calls outside a runtime.
mod reqwest {
    use std::io::{Read, Write};

    /// True on HTTP 200.
    pub fn blocking_get(url: &str) -> std::io::Result<bool> {
        Ok(blocking_request("GET", url, "")?.0 == 200)
    }

    /// Status code and body of one request with a JSON body.
    pub fn blocking_request(method: &str, url: &str, body: &str) -> std::io::Result<(u16, String)> {
        let rest = url.strip_prefix("http://").unwrap();
        let (host, path) = rest.split_once('/').unwrap();
        let mut s = std::net::TcpStream::connect(host)?;
        write!(
            s,
            "{method} /{path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\nContent-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
            body.len()
        )?;
        let mut buf = String::new();
        s.read_to_string(&mut buf)?;
        let status = buf.get(9..12).and_then(|c| c.parse().ok()).unwrap_or(0);
        let body = buf.split_once("\r\n\r\n").map(|(_, b)| b.to_owned()).unwrap_or_default();
        Ok((status, body))
    }
}

/// Rows in every Parquet file under `dir`, from the file footers only.
pub fn count_rows(dir: &Path) -> u64 {
    parquet_files(dir).iter().filter_map(|f| footer_rows(std::fs::File::open(f).ok()?)).sum()
}

/// Rows in one Parquet file (a `File` or the object's `Bytes`), from its footer only.
pub fn footer_rows<R: parquet::file::reader::ChunkReader + 'static>(file: R) -> Option<u64> {
    use parquet::file::reader::FileReader;
    let reader = parquet::file::serialized_reader::SerializedFileReader::new(file).ok()?;
    Some(reader.metadata().file_metadata().num_rows() as u64)
}

/// Peak resident set size of a process, in MiB (VmHWM).
pub fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// CPU seconds (user + system) a live process has used.
pub fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// Every `.parquet` file under `dir`, recursively, sorted.
pub fn parquet_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(dir) else { return out };
    for e in rd.flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(parquet_files(&p));
        } else if p.extension().is_some_and(|x| x == "parquet") {
            out.push(p);
        }
    }
    out.sort();
    out
}

/// Read every row of every Parquet file under `dir` as a JSON object.
pub fn read_rows(dir: &Path) -> Vec<Map<String, Value>> {
    parquet_files(dir).into_iter().flat_map(|f| parquet_rows(std::fs::File::open(&f).unwrap())).collect()
}

/// Every row of one Parquet file (a `File` or the object's `Bytes`) as a JSON object.
pub fn parquet_rows<R: parquet::file::reader::ChunkReader + 'static>(file: R) -> Vec<Map<String, Value>> {
    let reader = parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder::try_new(file).unwrap().build().unwrap();
    let mut rows = Vec::new();
    for batch in reader {
        let batch = batch.unwrap();
        let mut w = arrow::json::ArrayWriter::new(Vec::new());
        w.write(&batch).unwrap();
        w.finish().unwrap();
        let v: Vec<Map<String, Value>> = serde_json::from_slice(&w.into_inner()).unwrap();
        rows.extend(v);
    }
    rows
}

/// Copy config/, pipelines/ and schemas/ into a temp dir.
pub fn shipped_copy() -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for sub in ["config", "pipelines", "schemas"] {
        std::fs::create_dir_all(dir.path().join(sub)).unwrap();
        for e in std::fs::read_dir(repo().join(sub)).unwrap().flatten() {
            if e.path().is_file() {
                std::fs::copy(e.path(), dir.path().join(sub).join(e.file_name())).unwrap();
            }
        }
    }
    dir
}

pub fn edit(root: &Path, file: &str, from: &str, to: &str) {
    let path = root.join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{file} contains {from:?}");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
}

/// The official Pub/Sub emulator on a free loopback port, stopped when dropped.
pub struct PubsubEmulator {
    child: Child,
    pub host: String,
}

pub const PUBSUB_EMULATOR: &str = "/usr/lib/google-cloud-sdk/platform/pubsub-emulator/bin/cloud-pubsub-emulator";

impl PubsubEmulator {
    pub fn start() -> PubsubEmulator {
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
    pub fn cpu_secs(&self) -> f64 {
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
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("SLUICE_PUBSUB", "true".into()),
            ("PUBSUB_EMULATOR_HOST", self.host.clone()),
            ("SLUICE_PROJECT", "sluice-test".into()),
        ]
    }
}

impl PubsubEmulator {
    /// Freeze (`STOP`) or thaw (`CONT`) the emulator: its JVM stops answering but keeps its state.
    pub fn freeze(&self, on: bool) {
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
pub fn spawn_in_group(mut cmd: Command, name: &str) -> (Child, PathBuf) {
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
pub fn kill_group(child: &mut Child) {
    let pgid = child.id() as libc::pid_t;
    assert!(pgid > 1);
    // SAFETY: a negative pid signals exactly that process group.
    unsafe { libc::kill(-pgid, libc::SIGKILL) };
    let _ = child.wait();
}

/// Run the sluice binary to completion with the shipped config and `env`; panics on failure.
pub fn sluice_cmd(args: &[&str], env: &[(&str, String)]) -> String {
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
pub fn emulators_dir() -> PathBuf {
    std::env::var_os("SLUICE_EMULATORS_DIR").map(PathBuf::from).unwrap_or_else(|| repo().join(".emulators"))
}

/// fake-gcs-server on a loopback port, stopped (killed) when dropped.
pub struct FakeGcs {
    child: Option<Child>,
    pub port: u16,
    /// Base URL, as STORAGE_EMULATOR_HOST and `lake.endpoint` take it.
    pub url: String,
    /// Filesystem backend root, so data outlives a restart; `None`: memory.
    root: Option<PathBuf>,
}

impl FakeGcs {
    /// On a free port with the memory backend.
    pub fn start() -> FakeGcs {
        Self::launch(free_port(), None)
    }

    /// On a free port, keeping objects under `root` so a restart on the same port finds them.
    pub fn start_persistent(root: &Path) -> FakeGcs {
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
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            kill_group(&mut child);
        }
    }

    /// Start it again on the same port with the same backend.
    pub fn restart(&mut self) {
        self.stop();
        let again = Self::launch(self.port, self.root.clone());
        *self = again;
    }

    pub fn create_bucket(&self, name: &str) {
        self.create(serde_json::json!({ "name": name }));
    }

    /// A bucket keeping every generation of its objects (old ones readable by version).
    pub fn create_versioned_bucket(&self, name: &str) {
        self.create(serde_json::json!({ "name": name, "versioning": {"enabled": true} }));
    }

    fn create(&self, bucket: Value) {
        let url = format!("{}/storage/v1/b", self.url);
        let (status, body) = reqwest::blocking_request("POST", &url, &bucket.to_string()).unwrap();
        let name = &bucket["name"];
        assert_eq!(status, 200, "creating bucket {name}: {body}");
    }

    /// The bucket through sluice's own store, as the lake sink opens it.
    pub fn store(&self, bucket: &str) -> std::sync::Arc<dyn object_store::ObjectStore> {
        let location = sluice::store::Location::parse(&format!("gs://{bucket}")).unwrap();
        location.open(Some(&self.url)).unwrap().0
    }

    /// Name and content of every object under `prefix`, sorted by name.
    pub async fn objects(&self, bucket: &str, prefix: &str) -> Vec<(String, bytes::Bytes)> {
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
    pub async fn rows(&self, bucket: &str, prefix: &str) -> Vec<Map<String, Value>> {
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
pub async fn publish(emu: &PubsubEmulator, pipeline: &str, count: u64, seed: u64) -> Vec<String> {
    faults::publish_at(&emu.env(), pipeline, count, seed, None).await
}

/// Wait until every id is in the lake for `pipeline`, or panic after `limit`.
pub fn wait_for_all(lake: &Path, pipeline: &str, ids: &[String], limit: Duration) -> HashMap<String, usize> {
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
pub fn env_with(emu: &PubsubEmulator, extra: &[(&'static str, &str)]) -> Vec<(&'static str, String)> {
    let mut env = emu.env();
    env.extend(extra.iter().map(|(k, v)| (*k, v.to_string())));
    env
}

/// A BigQuery emulator (bqemulator) on free REST and gRPC ports, killed on drop.
pub struct BigQueryEmulator {
    child: Child,
    pub rest: String,
    pub grpc: String,
}

impl BigQueryEmulator {
    pub fn start() -> BigQueryEmulator {
        Self::start_with(&[])
    }

    /// Start with extra environment (the emulator's settings are `BQEMU_*` variables).
    pub fn start_with(env: &[(&str, &str)]) -> BigQueryEmulator {
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
    pub fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("SLUICE_BIGQUERY", "true".into()),
            ("BIGQUERY_EMULATOR_HOST", self.rest.clone()),
            ("BIGQUERY_EMULATOR_GRPC_HOST", self.grpc.clone()),
            ("SLUICE_PROJECT", "sluice-test".into()),
            ("SLUICE_DATASET", "sluice".into()),
        ]
    }

    /// The emulator's settings as sluice's own config type, for its REST client in tests.
    pub fn config(&self) -> sluice::config::global::BigQueryConfig {
        sluice::config::global::BigQueryConfig {
            enabled: true,
            project: "sluice-test".into(),
            dataset: "sluice".into(),
            location: "US".into(),
            endpoint: Some(self.rest.clone()),
            grpc_endpoint: Some(self.grpc.clone()),
            write_mode: Default::default(),
        }
    }

    /// Run a query and return its rows (cells as the REST API gives them: strings or null).
    pub async fn query(&self, sql: &str) -> Vec<Vec<Value>> {
        let rest = sluice::bigquery::rest::Rest::new(&self.config()).unwrap();
        rest.query(sql).await.unwrap_or_else(|e| panic!("query failed: {e}\n{sql}"))
    }
}

/// The BigQuery sink's writer for `table`, on a stream opened as the sink opens it.
pub async fn bigquery_writer(
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
        metrics: sluice::metrics::Metrics::new().sink("logs", "warehouse"),
        written: None,
    }
}

impl Drop for BigQueryEmulator {
    fn drop(&mut self) {
        kill_group(&mut self.child);
    }
}
