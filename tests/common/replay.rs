//! Helpers for the replay tests and benchmark: run `sluice replay`, read a table's ids.

use std::collections::HashMap;
use std::path::PathBuf;
use std::process::{Child, Command};

use super::BigQueryEmulator;

/// `sluice replay ARGS` with `env`, not yet started (the shipped config unless ARGS name one).
pub(crate) fn command(args: &[&str], env: &[(&str, String)]) -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    cmd.current_dir(super::repo())
        .arg("--log-format")
        .arg("text")
        .arg("replay")
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())));
    cmd
}

/// Run a replay to its end: (exit success, stdout + stderr).
pub(crate) fn run(args: &[&str], env: &[(&str, String)]) -> (bool, String) {
    let out = command(args, env).output().unwrap();
    let text = format!("{}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    (out.status.success(), text)
}

/// Run a replay that must succeed; its output.
pub(crate) fn ok(args: &[&str], env: &[(&str, String)]) -> String {
    let (success, text) = run(args, env);
    assert!(success, "sluice replay {args:?} failed:\n{text}");
    text
}

/// Start a replay in a process group of its own (so the test can SIGKILL it); its log's path.
pub(crate) fn spawn(args: &[&str], env: &[(&str, String)], name: &str) -> (Child, PathBuf) {
    super::spawn_in_group(command(args, env), name)
}

/// Message ids in `sluice.<table>` with how often each occurs.
pub(crate) async fn table_ids(bq: &BigQueryEmulator, table: &str) -> HashMap<String, usize> {
    let mut ids = HashMap::new();
    for row in bq.query(&format!("SELECT message_id FROM `sluice-test.sluice.{table}`")).await {
        *ids.entry(row[0].as_str().unwrap().to_owned()).or_insert(0) += 1;
    }
    ids
}

/// Pull (and ack) until `want` messages came from `subscription` on the Pub/Sub emulator, over its
/// REST API; each as the API gives it (`data` base64, `attributes`).
pub(crate) async fn pull(emu: &super::PubsubEmulator, subscription: &str, want: usize) -> Vec<serde_json::Value> {
    let client = reqwest::Client::new();
    let base = format!("http://{}/v1/projects/sluice-test/subscriptions/{subscription}", emu.host);
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(30);
    let mut got = Vec::new();
    while got.len() < want {
        assert!(std::time::Instant::now() < deadline, "{} of {want} messages pulled in 30s", got.len());
        let body: serde_json::Value = client
            .post(format!("{base}:pull"))
            .json(&serde_json::json!({"maxMessages": 100}))
            .send()
            .await
            .unwrap()
            .json()
            .await
            .unwrap();
        let received = body["receivedMessages"].as_array().cloned().unwrap_or_default();
        let acks: Vec<serde_json::Value> = received.iter().map(|m| m["ackId"].clone()).collect();
        if !acks.is_empty() {
            let ack = client.post(format!("{base}:acknowledge")).json(&serde_json::json!({"ackIds": acks}));
            assert!(ack.send().await.unwrap().status().is_success());
        }
        got.extend(received.into_iter().map(|m| m["message"].clone()));
    }
    got
}
