//! The operator's view of a running `sluice run`: `/metrics` in Prometheus text format,
//! `/status`, producer transitions written to the health lake, and `/config/<service>` after a
//! shuffled, duplicated stream of changes and after restarts.

mod common;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::time::{Duration, Instant};

use serde_json::{json, Value};
use sluice::source::push::envelope;

async fn push(client: &reqwest::Client, base: &str, pipeline: &str, id: &str, record: &Value) {
    let body = envelope(record.to_string().as_bytes(), id, &BTreeMap::new(), "s").to_string();
    let r = client
        .post(format!("{base}/push/{pipeline}"))
        .header("content-type", "application/json")
        .body(body)
        .send()
        .await
        .unwrap();
    let status = r.status().as_u16();
    assert_eq!(status, 200, "{pipeline} {id}: {}", r.text().await.unwrap());
}

async fn get(client: &reqwest::Client, url: &str) -> (u16, String) {
    let r = client.get(url).send().await.unwrap();
    (r.status().as_u16(), r.text().await.unwrap())
}

fn now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Check every line against the text format's grammar, so a malformed line fails the test
/// rather than being skipped, then parse with `prometheus-parse`.
fn parse_strict(text: &str) -> prometheus_parse::Scrape {
    let name = r"[a-zA-Z_:][a-zA-Z0-9_:]*";
    let label = r#"[a-zA-Z_][a-zA-Z0-9_]*="(?:[^"\\\n]|\\.)*""#;
    let number = r"(?:[-+]?(?:[0-9]+(?:\.[0-9]*)?(?:[eE][-+]?[0-9]+)?|Inf|NaN))";
    let sample =
        regex::Regex::new(&format!(r"^({name})(?:\{{{label}(?:,{label})*\}})? {number}(?: [0-9]+)?$")).unwrap();
    let meta = regex::Regex::new(&format!(
        r"^# (?:HELP {name} .*|TYPE {name} (?:counter|gauge|histogram|summary|unknown)|UNIT {name} \w+|EOF)$"
    ))
    .unwrap();
    let mut typed = Vec::new();
    for line in text.lines() {
        if meta.is_match(line) {
            if line.starts_with("# TYPE ") {
                typed.push(line.split(' ').nth(2).unwrap().to_owned());
            }
            continue;
        }
        let c = sample.captures(line).unwrap_or_else(|| panic!("not Prometheus text format: {line:?}"));
        let metric = &c[1];
        assert!(typed.iter().any(|t| metric.starts_with(t.as_str())), "sample {metric} has no TYPE line before it");
    }
    assert_eq!(text.lines().last(), Some("# EOF"), "OpenMetrics ends with # EOF");
    prometheus_parse::Scrape::parse(text.lines().map(|l| Ok(l.to_owned()))).unwrap()
}

fn value(scrape: &prometheus_parse::Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| s.metric == metric && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v)))
        .and_then(|s| match &s.value {
            prometheus_parse::Value::Counter(v)
            | prometheus_parse::Value::Gauge(v)
            | prometheus_parse::Value::Untyped(v) => Some(*v),
            prometheus_parse::Value::Histogram(h) => h.last().map(|b| b.count),
            _ => None,
        })
}

/// Health rows in the lake, by message id.
fn health_rows(lake: &Path) -> HashMap<String, serde_json::Map<String, Value>> {
    common::read_rows(&lake.join("health"))
        .into_iter()
        .map(|r| (r["message_id"].as_str().unwrap().to_owned(), r))
        .collect()
}

fn wait_for(what: &str, limit: Duration, mut ok: impl FnMut() -> bool) {
    let deadline = Instant::now() + limit;
    while !ok() {
        assert!(Instant::now() < deadline, "{what}: not within {limit:?}");
        std::thread::sleep(Duration::from_millis(200));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_status_and_producer_transitions() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let sluice = common::Sluice::start(
        &lake,
        &[("SLUICE_BATCH_MAX_AGE", "300ms"), ("SLUICE_PRODUCER_INTERVAL", "1s"), ("SLUICE_PRODUCER_REFRESH", "1s")],
    );
    let client = reqwest::Client::new();
    for i in 0..20 {
        let line =
            json!({"timestamp": now(), "service": "pricing", "severity": "INFO", "message": format!("line {i}")});
        push(&client, &sluice.url, "logs", &format!("log-{i}"), &line).await;
    }
    let beat = json!({"timestamp": now(), "service": "billing", "status": "healthy", "latency_ms": 3.5, "checks": {"db": "ok"}});
    push(&client, &sluice.url, "health", "beat-1", &beat).await;
    // Poison: counted as dead-lettered.
    push(&client, &sluice.url, "logs", "poison-1", &json!({"service": "x"})).await;

    // A malformed push in a traced request: its log line carries the trace, as Cloud Logging reads it.
    let r = client
        .post(format!("{}/push/logs", sluice.url))
        .header("traceparent", "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01")
        .body(r#"{"message": {"data": "%%%", "messageId": "traced"}}"#)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 400);
    let port = sluice.url.rsplit(':').next().unwrap();
    let log = std::fs::read_to_string(std::env::temp_dir().join(format!("sluice-{port}.log"))).unwrap();
    let line: Value = log
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .find(|l| l["message"] == "rejected push request")
        .unwrap_or_else(|| panic!("no rejected-push line in:\n{log}"));
    assert_eq!(line["severity"], "WARNING");
    assert_eq!(line["logging.googleapis.com/trace"], "projects/sluice-local/traces/4bf92f3577b34da6a3ce929d0e0e4736");
    assert_eq!(line["logging.googleapis.com/spanId"], "00f067aa0ba902b7");

    let (status, text) = get(&client, &format!("{}/metrics", sluice.url)).await;
    assert_eq!(status, 200);
    let scrape = parse_strict(&text);
    let logs_push = [("pipeline", "logs"), ("source", "push")];
    assert_eq!(value(&scrape, "sluice_events_in_total", &logs_push), Some(21.0), "{text}");
    assert_eq!(value(&scrape, "sluice_acks_total", &logs_push), Some(21.0));
    assert_eq!(value(&scrape, "sluice_nacks_total", &logs_push), Some(0.0));
    assert_eq!(value(&scrape, "sluice_events_out_total", &[("pipeline", "logs"), ("sink", "lake")]), Some(20.0));
    assert_eq!(value(&scrape, "sluice_events_dead_lettered_total", &[("pipeline", "logs")]), Some(1.0));
    assert_eq!(value(&scrape, "sluice_events_out_total", &[("pipeline", "logs"), ("sink", "dead_letters")]), Some(1.0));
    let batches = value(&scrape, "sluice_batch_rows", &[("pipeline", "logs"), ("sink", "lake")]).unwrap();
    assert!(batches >= 1.0, "batch-size histogram counts batches: {batches}");
    assert!(value(&scrape, "sluice_flush_duration_seconds", &[("pipeline", "logs"), ("sink", "lake")]).unwrap() >= 1.0);
    assert_eq!(value(&scrape, "sluice_ready", &[]), Some(1.0));
    assert_eq!(value(&scrape, "sluice_healthy", &[]), Some(1.0));
    // Far below its memory bound, `sluice run` keeps freed memory for ten seconds.
    assert_eq!(value(&scrape, "sluice_memory_purge_delay_seconds", &[]), Some(10.0));

    let (status, text) = get(&client, &format!("{}/status", sluice.url)).await;
    assert_eq!(status, 200);
    let s: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(s["ready"], true, "{s:#}");
    assert_eq!(s["pipelines"]["logs"]["events_in"], 21, "{s:#}");
    assert_eq!(s["pipelines"]["logs"]["dead_lettered"], 1);
    assert_eq!(s["pipelines"]["logs"]["sinks"]["lake"]["events_out"], 20);
    assert!(s["pipelines"]["logs"]["last_flush"].is_string(), "{s:#}");
    assert!(s["pipelines"]["logs"]["events_per_second"].as_f64().unwrap() > 0.0, "{s:#}");
    assert_eq!(s["producers"]["billing"]["report"]["latency_ms"], 3.5, "{s:#}");
    assert_eq!(s["producers"]["pricing"]["interval_seconds"], 1.0);

    // Silent at a 1s interval: late after 2s, down after 5s, each written to the health lake once.
    let id = |service: &str, state: &str| format!("liveness:{service}:{state}:");
    wait_for("billing late and down in the lake", Duration::from_secs(30), || {
        let rows = health_rows(&lake);
        ["late", "down"].iter().all(|st| rows.keys().any(|k| k.starts_with(&id("billing", st))))
    });
    let (_, text) = get(&client, &format!("{}/status", sluice.url)).await;
    let s: Value = serde_json::from_str(&text).unwrap();
    assert_eq!(s["producers"]["billing"]["state"], "down");
    assert_eq!(s["producers"]["pricing"]["state"], "down");

    push(
        &client,
        &sluice.url,
        "health",
        "beat-2",
        &json!({"timestamp": now(), "service": "billing", "status": "heartbeat"}),
    )
    .await;
    wait_for("billing healthy again in the lake", Duration::from_secs(30), || {
        health_rows(&lake).keys().any(|k| k.starts_with(&id("billing", "healthy")))
    });

    // A heartbeat another instance took in reaches this one through the lake.
    let other = dir.path().join("other");
    let peer = common::Sluice::start_with(
        &other,
        &[("SLUICE_BATCH_MAX_AGE", "300ms".into()), ("SLUICE_INSTANCE", "peer".into())],
    );
    let at = now();
    push(
        &client,
        &peer.url,
        "health",
        "peer-beat",
        &json!({"timestamp": at, "service": "payments", "status": "degraded"}),
    )
    .await;
    assert!(peer.stop().success());
    copy_lake(&other, &lake, "health");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, text) = get(&client, &format!("{}/status", sluice.url)).await;
        let s: Value = serde_json::from_str(&text).unwrap();
        if let Some(p) = s["producers"].get("payments") {
            assert_eq!(p["report"]["status"], "degraded", "{p}");
            assert_eq!(p["last_seen"], at.as_str(), "{p}");
            break;
        }
        assert!(Instant::now() < deadline, "the peer's heartbeat was not read from the lake: {s:#}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }

    assert!(sluice.stop().success());
    let rows = health_rows(&lake);
    let transitions: Vec<&serde_json::Map<String, Value>> = rows
        .values()
        .filter(|r| r["service"] == "billing" && r.get("instance") == Some(&json!("sluice/test")))
        .collect();
    let mut states: Vec<(String, &str)> = transitions
        .iter()
        .map(|r| (r["timestamp"].as_str().unwrap().to_owned(), r["status"].as_str().unwrap()))
        .collect();
    states.sort();
    let order: Vec<&str> = states.iter().map(|(_, s)| *s).collect();
    // After the recovery it may go late again before shutdown; what came before is exact.
    assert_eq!(&order[..3], &["late", "down", "healthy"], "{states:?}");
    let checks: Value = serde_json::from_str(transitions[0]["checks"].as_str().unwrap()).unwrap();
    assert_eq!(checks["liveness"]["interval_seconds"], 1.0, "{checks}");
}

/// Copy one pipeline's Parquet files from one lake into another, as a second instance sharing
/// the lake would have written them.
fn copy_lake(from: &Path, to: &Path, pipeline: &str) {
    for f in common::parquet_files(&from.join(pipeline)) {
        let dest = to.join(f.strip_prefix(from).unwrap());
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(&f, &dest).unwrap();
    }
}

/// A change of one key as the config-changes topic carries it.
fn change(key: &str, version: i64, value: Value) -> Value {
    json!({"timestamp": now(), "service": "billing", "key": key, "old_value": null, "new_value": value,
           "version": version, "author": "ops@example.com"})
}

async fn config_of(client: &reqwest::Client, base: &str, service: &str) -> (u16, Value) {
    let (status, text) = get(client, &format!("{base}/config/{service}")).await;
    (status, serde_json::from_str(&text).unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn config_state_after_shuffled_duplicated_changes_and_after_restarts() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let env = [("SLUICE_BATCH_MAX_AGE", "300ms"), ("SLUICE_CONFIG_REFRESH", "1s")];
    let sluice = common::Sluice::start(&lake, &env);
    let client = reqwest::Client::new();

    let mut changes: Vec<(String, Value)> = Vec::new();
    for v in 1..=12 {
        changes.push((format!("limit-{v}"), change("limit", v, json!(v * 100))));
    }
    for (v, mode) in [(1, "fast"), (2, "safe"), (3, "paranoid")] {
        changes.push((format!("mode-{v}"), change("mode", v, json!(mode))));
    }
    changes.push(("flags-1".into(), change("flags", 1, json!({"beta": true, "regions": ["eu", "us"]}))));
    // Redeliveries (same message id) and re-sends (new id, same version and value).
    let redelivered: Vec<(String, Value)> = changes.iter().step_by(2).cloned().collect();
    let resent: Vec<(String, Value)> =
        changes.iter().step_by(3).map(|(id, c)| (format!("{id}-again"), c.clone())).collect();
    changes.extend(redelivered);
    changes.extend(resent);
    // A fixed shuffle that puts old versions after new ones.
    let mut x = 7u64;
    for i in (1..changes.len()).rev() {
        x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
        changes.swap(i, (x >> 33) as usize % (i + 1));
    }
    for (id, c) in &changes {
        push(&client, &sluice.url, "config-changes", id, c).await;
    }

    let expect = |body: &Value| {
        let keys = &body["keys"];
        assert_eq!(keys["limit"]["version"], 12, "{body:#}");
        assert_eq!(keys["limit"]["value"], 1200, "{body:#}");
        assert_eq!(keys["mode"]["version"], 3);
        assert_eq!(keys["mode"]["value"], "paranoid");
        assert_eq!(keys["flags"]["value"], json!({"beta": true, "regions": ["eu", "us"]}));
        assert_eq!(keys["flags"]["author"], "ops@example.com");
        assert_eq!(keys.as_object().unwrap().len(), 3);
    };
    let (status, body) = config_of(&client, &sluice.url, "billing").await;
    assert_eq!(status, 200, "{body}");
    expect(&body);
    let (status, body) = config_of(&client, &sluice.url, "nobody").await;
    assert_eq!(status, 404, "{body}");
    assert!(sluice.stop().success());
    let snapshot = lake.join("_sluice/config-state/test.json");
    assert!(snapshot.exists(), "a snapshot is written at shutdown");

    // Restart: from the snapshot (and lake files newer than it), not from Pub/Sub.
    let sluice = common::Sluice::start(&lake, &env);
    let (status, body) = config_of(&client, &sluice.url, "billing").await;
    assert_eq!(status, 200, "{body}");
    expect(&body);
    assert!(sluice.stop().success());

    // Without the snapshot: from the lake files alone.
    std::fs::remove_file(&snapshot).unwrap();
    let sluice = common::Sluice::start(&lake, &env);
    let (status, body) = config_of(&client, &sluice.url, "billing").await;
    assert_eq!(status, 200, "{body}");
    expect(&body);

    // A change written to the lake by another instance shows up at the next refresh.
    let other = dir.path().join("other");
    let peer = common::Sluice::start_with(
        &other,
        &[("SLUICE_BATCH_MAX_AGE", "300ms".into()), ("SLUICE_INSTANCE", "peer".into())],
    );
    push(&client, &peer.url, "config-changes", "limit-13", &change("limit", 13, json!(1300))).await;
    assert!(peer.stop().success());
    copy_lake(&other, &lake, "config-changes");
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        let (_, body) = config_of(&client, &sluice.url, "billing").await;
        if body["keys"]["limit"]["version"] == 13 {
            break;
        }
        assert!(Instant::now() < deadline, "the other instance's change was not read from the lake: {body:#}");
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert!(sluice.stop().success());
}
