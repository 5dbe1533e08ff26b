//! `sluice healthcheck`, the container HEALTHCHECK command: exit 0 while a running sluice answers
//! `/healthz`, exit 1 with the reason once it is gone.

mod common;

use std::process::{Command, Output};

fn healthcheck(listen: &str) -> Output {
    Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["healthcheck", "--listen", listen, "--timeout", "2s"])
        .env_remove("SLUICE_LISTEN")
        .output()
        .expect("sluice healthcheck runs")
}

#[test]
fn healthcheck_passes_while_sluice_runs_and_fails_once_it_stopped() {
    let lake = tempfile::tempdir().unwrap();
    let sluice = common::Sluice::start(lake.path(), &[]);
    let port = sluice.url.rsplit(':').next().unwrap().to_owned();

    let up = healthcheck(&format!("127.0.0.1:{port}"));
    assert!(up.status.success(), "healthcheck failed on a running sluice: {}", String::from_utf8_lossy(&up.stderr));
    // The image listens on 0.0.0.0 (SLUICE_LISTEN); the probe must then go to loopback.
    let any = healthcheck(&format!("0.0.0.0:{port}"));
    assert!(any.status.success(), "0.0.0.0 was not probed on loopback: {}", String::from_utf8_lossy(&any.stderr));

    assert!(sluice.stop().success());
    let down = healthcheck(&format!("127.0.0.1:{port}"));
    assert_eq!(down.status.code(), Some(1), "healthcheck must exit 1 once sluice is gone");
    let stderr = String::from_utf8_lossy(&down.stderr);
    assert!(
        stderr.contains("unhealthy") && stderr.contains(&format!("127.0.0.1:{port}/healthz")),
        "stderr should say what failed: {stderr}"
    );
}
