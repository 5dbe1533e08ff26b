//! Shared by the integration tests: run the real `sluice` binary and read back what it wrote.
#![allow(dead_code)]

use std::collections::HashMap;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::{Map, Value};

pub(crate) mod browser;
pub(crate) mod compact;
pub(crate) mod console;
mod emulators;
pub(crate) mod faults;
pub(crate) mod push_load;
pub(crate) mod replay;
pub(crate) mod samples;

pub(crate) use emulators::*;

pub(crate) fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A log file for a child process, under the system temp dir (named in failures).
pub(crate) fn log_file(name: &str) -> std::fs::File {
    let path = std::env::temp_dir().join(name);
    std::fs::File::create(&path).unwrap_or_else(|e| panic!("cannot create {}: {e}", path.display()))
}

/// A free TCP port on loopback (bound, then released for the child to take).
pub(crate) fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0").unwrap().local_addr().unwrap().port()
}

/// Message ids in the lake for a pipeline, with how often each occurs.
pub(crate) fn lake_ids(lake: &Path, pipeline: &str) -> std::collections::HashMap<String, usize> {
    let mut ids = std::collections::HashMap::new();
    for row in read_rows(&lake.join(pipeline)) {
        *ids.entry(row["message_id"].as_str().unwrap().to_owned()).or_insert(0) += 1;
    }
    ids
}

/// `sluice run` on the shipped config, with its lake in `lake`, listening on loopback `port`.
pub(crate) fn run_command(lake: &Path, port: u16) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.current_dir(repo())
        .args(["run", "--config", "config/sluice.yaml"])
        .env("SLUICE_LAKE", lake)
        .env("SLUICE_LISTEN", format!("127.0.0.1:{port}"));
    cmd
}

/// A `sluice run` child process on the shipped config, with its lake in `lake`.
pub(crate) struct Sluice {
    pub child: Child,
    pub url: String,
}

impl Sluice {
    pub(crate) fn start(lake: &Path, extra_env: &[(&str, &str)]) -> Sluice {
        let env: Vec<(&str, String)> = extra_env.iter().map(|(k, v)| (*k, v.to_string())).collect();
        Self::start_with(lake, &env)
    }

    pub(crate) fn start_with(lake: &Path, extra_env: &[(&str, String)]) -> Sluice {
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
    pub(crate) fn spawn(mut cmd: Command, port: u16) -> Sluice {
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
    pub(crate) fn stop(mut self) -> std::process::ExitStatus {
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
pub(crate) fn signal(pid: u32, sig: &str) {
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
    pub(super) fn blocking_get(url: &str) -> std::io::Result<bool> {
        Ok(blocking_request("GET", url, "")?.0 == 200)
    }

    /// Status code and body of one request with a JSON body.
    pub(super) fn blocking_request(method: &str, url: &str, body: &str) -> std::io::Result<(u16, String)> {
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
pub(crate) fn count_rows(dir: &Path) -> u64 {
    parquet_files(dir).iter().filter_map(|f| footer_rows(std::fs::File::open(f).ok()?)).sum()
}

/// Rows in one Parquet file (a `File` or the object's `Bytes`), from its footer only.
pub(crate) fn footer_rows<R: parquet::file::reader::ChunkReader + 'static>(file: R) -> Option<u64> {
    use parquet::file::reader::FileReader;
    let reader = parquet::file::serialized_reader::SerializedFileReader::new(file).ok()?;
    Some(reader.metadata().file_metadata().num_rows() as u64)
}

/// Peak resident set size of a process, in MiB (VmHWM).
pub(crate) fn peak_rss_mib(pid: u32) -> f64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap_or_default();
    status
        .lines()
        .find(|l| l.starts_with("VmHWM:"))
        .and_then(|l| l.split_whitespace().nth(1)?.parse::<f64>().ok())
        .map(|kb| kb / 1024.0)
        .unwrap_or(f64::NAN)
}

/// CPU seconds (user + system) a live process has used.
pub(crate) fn cpu_secs(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    let fields: Vec<&str> = stat.rsplit(')').next().unwrap_or("").split_whitespace().collect();
    let ticks: f64 = fields.get(11).and_then(|v| v.parse().ok()).unwrap_or(0.0)
        + fields.get(12).and_then(|v| v.parse().ok()).unwrap_or(0.0);
    ticks / 100.0
}

/// Every `.parquet` file under `dir`, recursively, sorted.
pub(crate) fn parquet_files(dir: &Path) -> Vec<PathBuf> {
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
pub(crate) fn read_rows(dir: &Path) -> Vec<Map<String, Value>> {
    parquet_files(dir).into_iter().flat_map(|f| parquet_rows(std::fs::File::open(&f).unwrap())).collect()
}

/// Every row of one Parquet file (a `File` or the object's `Bytes`) as a JSON object.
pub(crate) fn parquet_rows<R: parquet::file::reader::ChunkReader + 'static>(file: R) -> Vec<Map<String, Value>> {
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
pub(crate) fn shipped_copy() -> tempfile::TempDir {
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

pub(crate) fn edit(root: &Path, file: &str, from: &str, to: &str) {
    let path = root.join(file);
    let text = std::fs::read_to_string(&path).unwrap();
    assert!(text.contains(from), "{file} contains {from:?}");
    std::fs::write(&path, text.replacen(from, to, 1)).unwrap();
}
