//! `sluice publish` against a running sluice's push endpoint, and what it reported.

use std::process::{Command, Stdio};

/// What one `sluice publish` run printed at its end.
pub(crate) struct Published {
    pub delivered: u64,
    /// Events sent per second of publishing, as publish measured it.
    pub events_per_s: f64,
    /// Time from a delivered event's first attempt to its answer, in ms.
    pub p50_ms: f64,
    pub p99_ms: f64,
}

/// Push sample events to `url` with `sluice publish --pipeline logs` and `args` (e.g. `-n`,
/// `--concurrency`, `--seed`). Requests still refused after publish's retries are a result, so
/// its exit status is not checked.
pub(crate) fn publish(url: &str, args: &[&str]) -> Published {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["publish", "--url", url, "--pipeline", "logs"])
        .args(args)
        .stdin(Stdio::null())
        .output()
        .expect("sluice publish starts");
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    parse(&text).unwrap_or_else(|| panic!("no publish summary ({}):\n{text}", out.status))
}

/// From "published N events to URL: D delivered, R rejected, F failed in S s (E events/s)" and
/// "latency of delivered events (…): p50 X ms, p99 Y ms, max Z ms".
fn parse(text: &str) -> Option<Published> {
    let line = text.lines().rfind(|l| l.starts_with("published "))?;
    let counts = line.rsplit_once(": ")?.1;
    let delivered = counts.split_whitespace().next()?.parse().ok()?;
    let events_per_s = counts.rsplit_once('(')?.1.split_whitespace().next()?.parse().ok()?;
    let latency = text.lines().rfind(|l| l.starts_with("latency of delivered events"));
    let ms = |name: &str| -> Option<f64> {
        let after = latency?.split_once(&format!("{name} "))?.1;
        after.split_whitespace().next()?.parse().ok()
    };
    let (p50_ms, p99_ms) = (ms("p50").unwrap_or(f64::NAN), ms("p99").unwrap_or(f64::NAN));
    Some(Published { delivered, events_per_s, p50_ms, p99_ms })
}
