//! Each page rendered from a console holding hostile values: everything escaped, secrets masked,
//! lists paginated and searched.

use std::sync::Arc;

use chrono::{TimeDelta, Utc};
use serde_json::{json, Value};

use super::html::{Nav, Query};
use super::*;
use crate::health::config_state::{Change, ConfigState, Entry};
use crate::health::producers::{Producers, Report};
use crate::telemetry::metrics::Metrics;

const HOSTILE: &str = "<script>alert('x')</script>";
const ESCAPED: &str = "&lt;script&gt;alert(&#39;x&#39;)&lt;/script&gt;";

fn entry(value: Value, version: i64, id: &str) -> Entry {
    Entry {
        value,
        version,
        author: Some(HOSTILE.into()),
        changed_at: "2026-12-02T09:00:00Z".into(),
        message_id: id.into(),
    }
}

/// 120 services `svc-000`.. (every third down), `<b>` one, 120 keys of `pricing` plus hostile
/// and secret ones, two versions of `pricing`'s `limit`, dead letters with hostile payloads.
fn console() -> Console {
    let metrics = Arc::new(Metrics::new());
    let health = crate::config::health::HealthConfig::default();
    let liveness = Arc::new(crate::health::liveness::Liveness::new(metrics.clone(), &health, 100, Default::default()));
    let producers = Producers::new(
        crate::config::from_yaml_str("{}").unwrap(),
        vec!["health".into()],
        Default::default(),
        metrics.clone(),
    );
    let now = Utc::now();
    for i in 0..120 {
        let silent = if i % 3 == 0 { 3600 } else { 0 };
        producers.seen(&format!("svc-{i:03}"), now - TimeDelta::seconds(silent), None);
    }
    let report = Report { status: HOSTILE.into(), latency_ms: None, checks: None };
    producers.seen("<b>bold</b>", now, Some(report));
    producers.evaluate(now);
    let state = Arc::new(ConfigState::new("config-changes".into(), metrics.clone()));
    let changes = Arc::new(changes::ChangeLog::new("config-changes".into()));
    let change = |key: &str, e: Entry| Change { service: "pricing".into(), key: key.into(), entry: e };
    for k in 0..120 {
        state.apply(change(&format!("key-{k:03}"), entry(json!(k), 1, &format!("k{k}"))));
    }
    state.apply(change("banner", entry(json!(HOSTILE), 1, "b1")));
    state.apply(change("db.password", entry(json!("hunter2"), 1, "p1")));
    for (v, value) in [(1, json!({"rps": 10, "note": HOSTILE})), (2, json!({"rps": 20, "note": HOSTILE}))] {
        let c = change("limit", entry(value, v, &format!("l{v}")));
        state.apply(c.clone());
        changes.record(c);
    }
    let status = Arc::new(crate::server::status::Status::new(
        "test".into(),
        vec!["logs".into()],
        metrics,
        liveness,
        Some(Arc::new(producers)),
        Some(state),
    ));
    let letters = Arc::new(letters::Letters::default());
    for i in 0..3 {
        letters.add(letters::Letter {
            pipeline: "logs".into(),
            failed_at: format!("2026-12-02T09:00:0{i}Z"),
            stage: "transforms[0].parse_json".into(),
            reason: format!("not JSON {HOSTILE}"),
            message_id: format!("m{i}"),
            preview: format!("{HOSTILE} password=hunter3"),
        });
    }
    Console {
        rates: Arc::new(rates::Rates::new(status.pipelines.clone())),
        status,
        auth: auth::ConsoleAuth::Open,
        timeline: None,
        changes: Some(changes),
        letters,
        mask: Default::default(),
        budget: Budget { pubsub_messages: None, push_messages: 1000 },
        replay: ReplayHint {
            config: "config/sluice.yaml".into(),
            dead_letters: "./data/lake/dead-letters".into(),
            to_bigquery: vec![],
        },
    }
}

fn page(c: &Console, nav: Nav, query: &str) -> String {
    let q: Query = url::form_urlencoded::parse(query.as_bytes()).into_owned().collect();
    let html = c.page(nav, &q, Utc::now());
    assert!(!html.contains(HOSTILE) && !html.contains("<b>bold</b>"), "{nav:?} {query}: raw HTML shown:\n{html}");
    assert!(!html.contains("hunter2") && !html.contains("hunter3"), "{nav:?} {query}: a secret shown:\n{html}");
    html
}

#[test]
fn every_page_escapes_and_masks() {
    let c = console();
    for (nav, q) in [
        (Nav::Overview, ""),
        (Nav::Services, ""),
        (Nav::Services, "q=bold"),
        (Nav::Config, ""),
        (Nav::Config, "service=pricing"),
        (Nav::Config, "service=pricing&q=banner"),
        (Nav::Config, "service=pricing&key=limit&from=1&to=2"),
        (Nav::DeadLetters, ""),
        (Nav::DeadLetters, "pipeline=logs&q=json"),
    ] {
        page(&c, nav, q);
    }
    assert!(page(&c, Nav::Services, "q=bold").contains("&lt;b&gt;bold&lt;/b&gt;"));
    let banner = page(&c, Nav::Config, "service=pricing&q=banner");
    assert!(banner.contains(ESCAPED) && banner.contains("data-key=\"banner\""));
    assert!(page(&c, Nav::Config, "service=pricing&q=db.").contains("[REDACTED]"));
    let diff = page(&c, Nav::Config, "service=pricing&key=limit&from=1&to=2");
    assert!(
        diff.contains("<del>-   &quot;rps&quot;: 10</del>") && diff.contains("<ins>+   &quot;rps&quot;: 20</ins>"),
        "{diff}"
    );
    let letters = page(&c, Nav::DeadLetters, "");
    assert!(letters.contains("password=[REDACTED]") && letters.contains(ESCAPED));
    assert!(letters.contains(
        "sluice replay --config config/sluice.yaml -p logs --from ./data/lake/dead-letters/logs \
                              --since 2026-12-02T09:00:00Z --until 2026-12-02T09:00:03Z --to lake"
    ));
}

#[test]
fn lists_are_paginated_searched_and_ordered() {
    let c = console();
    let first = page(&c, Nav::Services, "");
    assert!(first.contains("page <b class=\"page\">1</b> of 3 (121)"), "{first}");
    let rows = first.matches("data-service=").count();
    assert_eq!(rows, 50);
    assert!(first.find("data-service=\"svc-000\"") < first.find("data-service=\"svc-001\""), "down ones first");
    let down = page(&c, Nav::Services, "state=down&per=500");
    assert_eq!(down.matches("data-service=").count(), 40);
    let keys = page(&c, Nav::Config, "service=pricing&page=3");
    assert!(keys.contains("page <b class=\"page\">3</b> of 3 (123)") && keys.contains("rel=\"prev\""), "{keys}");
    assert_eq!(page(&c, Nav::Config, "service=pricing&q=key-11").matches("data-key=").count(), 10);
    let fragment = page(&c, Nav::Overview, "fragment=1");
    assert!(fragment.starts_with("<!-- refreshed ") && !fragment.contains("<html"));
}
