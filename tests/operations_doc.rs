//! docs/operations.md, the Grafana dashboard (infra/monitoring/grafana-dashboard.json) and the
//! alert policies (infra/monitoring.tf) use real metrics: every `sluice_*` name they use is served
//! by a running sluice at `GET /metrics` (counters with `_total`, histograms with `_bucket`,
//! `_sum`, `_count`); and every alert the doc lists has its policy.

mod common;

use std::collections::BTreeSet;

/// The names a query can use for each family declared in an OpenMetrics/Prometheus exposition.
fn served(exposition: &str) -> BTreeSet<String> {
    let mut names = BTreeSet::new();
    for line in exposition.lines() {
        let Some(rest) = line.strip_prefix("# TYPE ") else { continue };
        let mut words = rest.split_whitespace();
        let (Some(name), Some(kind)) = (words.next(), words.next()) else { continue };
        let name = name.strip_suffix("_total").unwrap_or(name);
        let suffixes: &[&str] = match kind {
            "counter" => &["_total"],
            "histogram" => &["_bucket", "_sum", "_count"],
            _ => &[""],
        };
        names.extend(suffixes.iter().map(|s| format!("{name}{s}")));
    }
    names
}

async fn metrics(client: &reqwest::Client, base: &str) -> String {
    let response = client.get(format!("{base}/metrics")).send().await.unwrap();
    assert_eq!(response.status().as_u16(), 200);
    response.text().await.unwrap()
}

/// The monitoring as code beside the doc: the Grafana dashboard and the alert policies.
const MONITORING: [&str; 2] = ["infra/monitoring/grafana-dashboard.json", "infra/monitoring.tf"];

fn read(file: &str) -> String {
    std::fs::read_to_string(common::repo().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"))
}

/// The `sluice_*` names a text uses.
fn metric_names(text: &str) -> BTreeSet<String> {
    let re = regex::Regex::new(r"\bsluice_[a-z_]+").unwrap();
    re.find_iter(text).map(|m| m.as_str().to_owned()).collect()
}

/// Every alert of docs/operations.md has an alert policy in infra/monitoring.tf with its
/// expression, and every Google Cloud metric the doc alerts on is queried there.
#[test]
fn every_alert_the_operations_doc_lists_has_a_policy() {
    let doc = read("docs/operations.md");
    let tf = read("infra/monitoring.tf");
    let row = regex::Regex::new(r"(?m)^\| ([^|`]+?) \| `(.+?)` \| (\d+)m \|").unwrap();
    let alerts: Vec<_> = row.captures_iter(&doc).collect();
    assert!(alerts.len() >= 10, "docs/operations.md's alerts table: found {}", alerts.len());
    for a in &alerts {
        let query = format!("\"{}\"", a[2].replace('\\', "\\\\").replace('"', "\\\""));
        assert!(tf.contains(&query), "alert '{}' has no policy with query {query} in infra/monitoring.tf", &a[1]);
        let duration = format!("\"{}s\"", a[3].parse::<u64>().unwrap() * 60);
        let policy = &tf[tf.find(&query).unwrap()..];
        assert!(
            policy[..policy.find("\n    }").unwrap()].contains(&duration),
            "alert '{}': expected duration {duration}",
            &a[1]
        );
    }
    let gcp = regex::Regex::new(r"`((?:pubsub|run)\.googleapis\.com)/([a-z_]+)/([a-z_]+)`").unwrap();
    for m in gcp.captures_iter(&doc) {
        let promql = format!("{}:{}_{}", m[1].replace('.', "_"), &m[2], &m[3]);
        assert!(tf.contains(&promql), "{} is alerted on in the doc but not queried in infra/monitoring.tf", &m[0]);
    }
    let dashboard: serde_json::Value = serde_json::from_str(&read(MONITORING[0])).unwrap();
    let panels = dashboard["panels"].as_array().unwrap();
    assert!(panels.len() >= 10 && panels.iter().all(|p| p["targets"][0]["expr"].is_string()));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_operations_doc_uses_is_served() {
    let named = metric_names(&read("docs/operations.md"));
    assert!(named.len() >= 8, "docs/operations.md should alert on sluice's own metrics; found {named:?}");
    let mut named: BTreeSet<(String, &str)> = named.into_iter().map(|n| (n, "docs/operations.md")).collect();
    for file in MONITORING {
        named.extend(metric_names(&read(file)).into_iter().map(|n| (n, file)));
    }

    // Families appear once they have a series: pull from the emulator (subscription metrics) and
    // make the logs sink fail (a file where its folder should be) so sink errors are counted.
    let emu = common::PubsubEmulator::start();
    let env = emu.env();
    common::sluice_cmd(&["provision"], &env);
    let lake = tempfile::tempdir().unwrap();
    std::fs::write(lake.path().join("logs"), b"not a folder").unwrap();
    let sluice = common::Sluice::start_with(lake.path(), &env);
    let client = reqwest::Client::new();
    let body = sluice::source::push::envelope(
        br#"{"timestamp": "2026-11-26T09:00:00Z", "service": "api", "severity": "INFO", "message": "hi"}"#,
        "doc-1",
        &Default::default(),
        "s",
    )
    .to_string();
    let push = client.post(format!("{}/push/logs", sluice.url)).header("content-type", "application/json").body(body);
    let pushed = tokio::spawn(push.send());
    // And one refused push, so the refusals are counted.
    let refused = client.post(format!("{}/push/no-such-pipeline", sluice.url)).body("{}").send().await.unwrap();
    assert_eq!(refused.status().as_u16(), 404);

    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(60);
    let mut text = metrics(&client, &sluice.url).await;
    while !text.contains("sluice_sink_errors_total{") && std::time::Instant::now() < deadline {
        tokio::time::sleep(std::time::Duration::from_millis(250)).await;
        text = metrics(&client, &sluice.url).await;
    }
    let served = served(&text);
    let _ = pushed.await;
    assert!(sluice.stop().success());

    let missing: Vec<&(String, &str)> = named.iter().filter(|(n, _)| !served.contains(n)).collect();
    assert!(
        missing.is_empty(),
        "metrics (and where they are named) that /metrics does not serve: {missing:?}\nserved: {served:?}"
    );
}
