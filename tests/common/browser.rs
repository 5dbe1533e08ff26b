//! Headless Chromium for the console tests: `--dump-dom` of a page, `--screenshot`, and a page
//! kept open and read again over the DevTools protocol (`--remote-debugging-pipe`), to watch the
//! live refresh change it without a reload.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use serde_json::{json, Value};

/// The flags every run takes: no sandbox (containers), nothing fetched from the network.
const FLAGS: &[&str] = &[
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
];

/// Chromium, if installed. Missing: the test is skipped with a message, except in CI
/// (`CI=true`), where `.ci/run` installs it and its absence fails the test.
pub(crate) fn chromium() -> Option<PathBuf> {
    let found = ["/usr/bin/chromium", "/usr/bin/chromium-browser"].iter().map(PathBuf::from).find(|p| p.exists());
    if found.is_none() {
        assert!(
            std::env::var("CI").as_deref() != Ok("true"),
            "chromium is not installed, and CI=true: .ci/run installs it (apt-get install -y chromium)"
        );
        eprintln!("SKIPPED: chromium is not installed (apt-get install -y chromium); the browser test did not run");
    }
    found
}

fn command(bin: &Path, profile: &Path) -> Command {
    let mut cmd = Command::new(bin);
    cmd.args(FLAGS).arg(format!("--user-data-dir={}", profile.display())).stdin(Stdio::null());
    cmd
}

/// The DOM of `url` after `virtual_ms` of (virtual) time, which lets the live refresh run.
pub(crate) fn dump_dom(bin: &Path, url: &str, virtual_ms: u32) -> String {
    let profile = tempfile::tempdir().unwrap();
    let out = command(bin, profile.path())
        .arg(format!("--virtual-time-budget={virtual_ms}"))
        .args(["--dump-dom", url])
        .stderr(Stdio::null())
        .output()
        .unwrap();
    assert!(out.status.success(), "chromium --dump-dom {url} failed");
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// A PNG of `url` at 1280x`height`.
pub(crate) fn screenshot(bin: &Path, url: &str, file: &Path, height: u32) {
    let profile = tempfile::tempdir().unwrap();
    let status = command(bin, profile.path())
        .args(["--hide-scrollbars", &format!("--window-size=1280,{height}"), "--virtual-time-budget=2000"])
        .arg(format!("--screenshot={}", file.display()))
        .arg(url)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .unwrap();
    assert!(status.success() && file.exists(), "chromium --screenshot {url} failed");
}

/// A browser driven over the DevTools protocol on a pipe (fds 3 and 4 of the child).
pub(crate) struct Browser {
    child: Child,
    to: std::fs::File,
    from: mpsc::Receiver<Value>,
    next_id: u64,
    _profile: tempfile::TempDir,
}

fn pipe() -> (OwnedFd, OwnedFd) {
    let mut fds = [0; 2];
    // SAFETY: pipe2(2) fills two new descriptors, owned from here on; close-on-exec, so only the
    // two the child gets by dup2 (which clears the flag) reach chromium.
    assert_eq!(unsafe { libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) }, 0);
    unsafe { (OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])) }
}

impl Browser {
    pub(crate) fn start(bin: &Path) -> Browser {
        use std::os::fd::AsRawFd;
        let profile = tempfile::tempdir().unwrap();
        let (cmd_read, cmd_write) = pipe();
        let (reply_read, reply_write) = pipe();
        let (r, w) = (cmd_read.as_raw_fd(), reply_write.as_raw_fd());
        let mut cmd = command(bin, profile.path());
        cmd.arg("--remote-debugging-pipe").stdout(Stdio::null()).stderr(Stdio::null());
        // SAFETY: only dup2 between fork and exec: the child reads commands on 3, replies on 4.
        unsafe {
            cmd.pre_exec(move || {
                if libc::dup2(r, 3) < 0 || libc::dup2(w, 4) < 0 {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let child = cmd.spawn().unwrap();
        drop((cmd_read, reply_write));
        let (tx, from) = mpsc::channel();
        let reader = BufReader::new(std::fs::File::from(reply_read));
        std::thread::spawn(move || {
            for message in reader.split(0).map_while(Result::ok) {
                if let Ok(v) = serde_json::from_slice::<Value>(&message) {
                    if tx.send(v).is_err() {
                        return;
                    }
                }
            }
        });
        Browser { child, to: std::fs::File::from(cmd_write), from, next_id: 0, _profile: profile }
    }

    /// Send one command (to `session`, or the browser) and wait for its result.
    fn call(&mut self, session: Option<&str>, method: &str, params: Value) -> Value {
        self.next_id += 1;
        let id = self.next_id;
        let mut message = json!({"id": id, "method": method, "params": params});
        if let Some(s) = session {
            message["sessionId"] = json!(s);
        }
        let mut bytes = message.to_string().into_bytes();
        bytes.push(0);
        self.to.write_all(&bytes).unwrap();
        loop {
            let reply = self.from.recv_timeout(Duration::from_secs(30)).expect("chromium answers within 30s");
            if reply["id"] == json!(id) {
                assert!(reply.get("error").is_none(), "{method}: {reply}");
                return reply["result"].clone();
            }
        }
    }

    /// Open `url` in a new tab; returns the tab's session.
    pub(crate) fn open(&mut self, url: &str) -> String {
        let target = self.call(None, "Target.createTarget", json!({"url": url}))["targetId"].clone();
        let attached = self.call(None, "Target.attachToTarget", json!({"targetId": target, "flatten": true}));
        attached["sessionId"].as_str().unwrap().to_owned()
    }

    /// The tab's DOM now, as HTML.
    pub(crate) fn html(&mut self, session: &str) -> String {
        let expression = "document.documentElement.outerHTML";
        let r = self.call(Some(session), "Runtime.evaluate", json!({"expression": expression, "returnByValue": true}));
        r["result"]["value"].as_str().unwrap_or_default().to_owned()
    }
}

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}
