//! End to end on the embedded default: events POSTed to a running `sluice run` come back out of
//! the Parquet files field for field, and poison events land in dead letters with their reason.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::process::Command;

use chrono::DateTime;
use serde_json::{json, Value};
use sluice::publish::sample::{Generator, Kind};
use sluice::source::push::envelope;

fn instant(v: &Value) -> DateTime<chrono::FixedOffset> {
    let s = v.as_str().unwrap_or_else(|| panic!("timestamp is a string: {v}"));
    DateTime::parse_from_rfc3339(s).unwrap_or_else(|_| panic!("timestamp parses: {s}"))
}

async fn post(client: &reqwest::Client, url: &str, body: Vec<u8>) -> (u16, String) {
    let r = client.post(url).header("content-type", "application/json").body(body).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pushed_events_come_back_out_of_the_lake_and_poison_goes_to_dead_letters() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let sluice = common::Sluice::start(&lake, &[("SLUICE_BATCH_MAX_AGE", "500ms")]);
    let push = format!("{}/push/logs", sluice.url);
    let client = reqwest::Client::new();
    let attrs = BTreeMap::new();

    // Producer spellings the chain normalises: level/msg/ts names, epoch-millis time, a secret.
    let odd = json!({"ts": 1_795_683_600_000i64, "service": "pricing", "level": "ERROR",
                     "msg": "retrying with api_key=sk_live_abcdefghijklmnop1234", "host": "p-1"});
    let (status, body) =
        post(&client, &push, envelope(odd.to_string().as_bytes(), "odd-1", &attrs, "s").to_string().into_bytes()).await;
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("delivered"), "{body}");

    // Poison: each is answered 200 (it is durable, in dead letters) and kept with its reason.
    let poison: Vec<(&str, Vec<u8>, &str)> = vec![
        ("bad-json", b"{\"service\": \"x\",".to_vec(), "parse_json"),
        ("bad-array", b"[1, 2, 3]".to_vec(), "parse_json"),
        ("bad-missing", br#"{"timestamp": "2026-11-26T09:00:00Z", "severity": "INFO", "message": "m"}"#.to_vec(), "validate"),
        ("bad-type", br#"{"timestamp": "2026-11-26T09:00:00Z", "service": "s", "severity": "INFO", "message": "m", "latency_ms": "fast"}"#.to_vec(), "validate"),
        ("bad-unknown", br#"{"timestamp": "2026-11-26T09:00:00Z", "service": "s", "severity": "INFO", "message": "m", "colour": "red"}"#.to_vec(), "validate"),
        ("bad-time", br#"{"timestamp": "last tuesday", "service": "s", "severity": "INFO", "message": "m"}"#.to_vec(), "timestamp"),
    ];
    for (id, data, _) in &poison {
        let (status, body) = post(&client, &push, envelope(data, id, &attrs, "s").to_string().into_bytes()).await;
        assert_eq!(status, 200, "{id}: {body}");
    }

    // A malformed envelope is refused outright with the reason.
    let (status, body) = post(&client, &push, br#"{"message": {"data": "%%%", "messageId": "x"}}"#.to_vec()).await;
    assert_eq!(status, 400);
    assert!(body.contains("message.data is not valid base64"), "{body}");
    let (status, body) = post(&client, &format!("{}/push/nope", sluice.url), b"{}".to_vec()).await;
    assert_eq!(status, 404);
    assert!(body.contains("config-changes, health, logs"), "{body}");

    // Sample load through the CLI, as the README shows it.
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["publish", "--pipeline", "logs", "-n", "300", "--seed", "3", "--url", &sluice.url])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(out.status.success(), "publish failed: {stderr}");
    assert!(stderr.contains("300 delivered, 0 rejected, 0 failed"), "{stderr}");

    let status = sluice.stop();
    assert!(status.success(), "clean exit after SIGTERM: {status:?}");

    // The lake: every sample event once, field for field.
    let rows = common::read_rows(&lake.join("logs"));
    let by_id: HashMap<String, &serde_json::Map<String, Value>> =
        rows.iter().map(|r| (r["message_id"].as_str().unwrap().to_owned(), r)).collect();
    assert_eq!(rows.len(), 301, "300 samples + 1 normalised event");
    assert_eq!(by_id.len(), 301, "no message id twice");
    for f in common::parquet_files(&lake.join("logs")) {
        let rel = f.strip_prefix(&lake).unwrap().to_string_lossy().into_owned();
        assert!(
            rel.starts_with("logs/dt=2026-11-26/hour=09/test-") || rel.starts_with("logs/dt=2026-11-26/hour=10/test-"),
            "{rel}"
        );
    }

    let mut gen = Generator::new(Kind::Log, 3);
    for i in 0..300 {
        let sent = gen.next_event();
        let row = by_id[&format!("sample-3-{i}")];
        assert_eq!(instant(&row["timestamp"]), instant(&sent["timestamp"]), "timestamp of {i}");
        for f in ["service", "severity", "host", "environment", "logger", "trace_id", "span_id", "latency_ms"] {
            assert_eq!(row[f], sent[f], "field {f} of sample {i}");
        }
        let labels: Value = serde_json::from_str(row["labels"].as_str().unwrap()).unwrap();
        assert_eq!(labels, sent["labels"], "labels of sample {i}");
        let expected_message = match sent["message"].as_str().unwrap() {
            "login ok for user=ops password=hunter2" => "login ok for user=ops password=[REDACTED]",
            m if m.starts_with("calling venue api") => "calling venue api with Authorization: Bearer [REDACTED]",
            m => m,
        };
        assert_eq!(row["message"], expected_message, "message of sample {i}");
        assert!(row.contains_key("ingest_time"));
    }
    let odd = by_id["odd-1"];
    assert_eq!(instant(&odd["timestamp"]), instant(&json!("2026-11-26T09:00:00Z")));
    assert_eq!(odd["severity"], "ERROR");
    assert_eq!(odd["message"], "retrying with api_key=[REDACTED]");

    // Dead letters: each poison event with its stage, reason and original bytes.
    let dead = common::read_rows(&lake.join("dead-letters/logs"));
    assert_eq!(dead.len(), poison.len(), "{dead:#?}");
    for (id, data, stage) in &poison {
        let d = dead.iter().find(|d| d["message_id"] == *id).unwrap_or_else(|| panic!("{id} in dead letters"));
        assert!(d["stage"].as_str().unwrap().ends_with(stage), "{id}: stage {}", d["stage"]);
        assert!(!d["reason"].as_str().unwrap().is_empty());
        assert_eq!(d["pipeline"], "logs");
        let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(d["data"], hex, "{id}: original bytes kept");
    }
    let reason = |id: &str| dead.iter().find(|d| d["message_id"] == id).unwrap()["reason"].as_str().unwrap().to_owned();
    assert_eq!(reason("bad-missing"), "field 'service' is required by schema 'log'");
    assert_eq!(reason("bad-unknown"), "field 'colour' is not in schema 'log'");
    assert_eq!(reason("bad-array"), "payload must be a JSON object, found an array");
}
