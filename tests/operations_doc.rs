//! docs/operations.md alerts on real metrics: every `sluice_*` name it uses is served by a running
//! sluice at `GET /metrics` (counters with `_total`, histograms with `_bucket`, `_sum`, `_count`).

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

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_metric_the_operations_doc_uses_is_served() {
    let doc = std::fs::read_to_string(common::repo().join("docs/operations.md")).unwrap();
    let re = regex::Regex::new(r"\bsluice_[a-z_]+").unwrap();
    let named: BTreeSet<String> = re.find_iter(&doc).map(|m| m.as_str().to_owned()).collect();
    assert!(named.len() >= 8, "docs/operations.md should alert on sluice's own metrics; found {named:?}");

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

    let missing: Vec<&String> = named.iter().filter(|n| !served.contains(*n)).collect();
    assert!(
        missing.is_empty(),
        "docs/operations.md uses metrics that /metrics does not serve: {missing:?}\nserved: {served:?}"
    );
}
