//! Benchmark: the console's pages at scale, against the 50 ms target. An in-process console
//! holds SERVICES producers (a fifth down, a tenth late, transitions for each), KEYS
//! configuration keys spread over those services (with 20 versions of one key), 1,000 dead
//! letters per pipeline and 15 minutes of rate samples. Each page is rendered ROUNDS times and
//! then fetched ROUNDS times over HTTP from sluice's router on loopback (auth, render, headers,
//! transfer); printed: median and worst ms per page and whether the worst is under 50 ms.
//!
//! Run: `scripts/bench console`, or `cargo bench --bench console`. Env: SERVICES (1000), KEYS
//! (100000), ROUNDS (20).

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeDelta, Utc};
use serde_json::json;
use sluice::console::html::{Nav, Query};
use sluice::console::{auth::ConsoleAuth, changes::ChangeLog, letters, rates, timeline, Budget, Console};
use sluice::health::config_state::{Change, ConfigState, Entry};
use sluice::health::producers::{Producers, Report};
use sluice::telemetry::metrics::Metrics;

const TARGET_MS: f64 = 50.0;
const PIPELINES: [&str; 3] = ["config-changes", "health", "logs"];

fn env(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

fn service(i: usize) -> String {
    format!("service-{i:04}")
}

fn producers(metrics: &Arc<Metrics>, services: usize) -> Arc<Producers> {
    let config = sluice::config::from_yaml_str("{default_interval: 30s}").unwrap();
    let p = Producers::new(config, vec!["health".into()], Default::default(), metrics.clone());
    let now = Utc::now();
    for i in 0..services {
        // A fifth down (silent 10 min), a tenth late (silent 90 s), the rest seen just now.
        let silent = match i % 10 {
            0 | 5 => 600,
            3 => 90,
            _ => 0,
        };
        let report = Report { status: "healthy".into(), latency_ms: Some(3.0), checks: None };
        p.seen(&service(i), now - TimeDelta::seconds(silent), Some(report));
    }
    p.evaluate(now);
    Arc::new(p)
}

fn config_state(metrics: &Arc<Metrics>, services: usize, keys: usize) -> (Arc<ConfigState>, Arc<ChangeLog>) {
    let state = Arc::new(ConfigState::new("config-changes".into(), metrics.clone()));
    let log = Arc::new(ChangeLog::new("config-changes".into()));
    let at = Utc::now().to_rfc3339();
    for k in 0..keys {
        let entry = Entry {
            value: json!({"limit": k, "note": "<b>not markup</b>", "enabled": k % 2 == 0}),
            version: 1,
            author: Some("ops@example.com".into()),
            changed_at: at.clone(),
            message_id: format!("m-{k}"),
        };
        let key = if k % 50 == 0 { format!("db.password.{k}") } else { format!("feature.key-{k:06}") };
        state.apply(Change { service: service(k % services), key, entry });
    }
    for v in 1..=20 {
        let entry = Entry {
            value: json!({"rps": v * 10, "regions": ["eu", "us"], "owner": "pricing"}),
            version: 100 + v,
            author: Some("ops@example.com".into()),
            changed_at: at.clone(),
            message_id: format!("h-{v}"),
        };
        let c = Change { service: service(0), key: "limits".into(), entry };
        state.apply(c.clone());
        log.record(c);
    }
    (state, log)
}

fn console(services: usize, keys: usize) -> Console {
    let metrics = Arc::new(Metrics::new());
    let health = sluice::config::health::HealthConfig::default();
    let liveness =
        Arc::new(sluice::health::liveness::Liveness::new(metrics.clone(), &health, 20_000, Default::default()));
    let (state, log) = config_state(&metrics, services, keys);
    let names: Vec<String> = PIPELINES.iter().map(|p| p.to_string()).collect();
    let status = Arc::new(sluice::server::status::Status::new(
        "bench".into(),
        names.clone(),
        metrics.clone(),
        liveness,
        Some(producers(&metrics, services)),
        Some(state),
    ));
    let rates = Arc::new(rates::Rates::new(names));
    let t0 = Instant::now();
    for i in 0..rates::KEPT as u64 {
        rates.push(t0 + Duration::from_secs(10 * i), vec![[i * 1000, i * 990, i]; PIPELINES.len()]);
    }
    let tl = Arc::new(timeline::Timeline::new("health".into()));
    let now = Utc::now();
    for i in 0..services {
        for (m, from, to) in [(200, "healthy", "late"), (190, "late", "down"), (100, "down", "healthy")] {
            let at = now - TimeDelta::minutes(m) + TimeDelta::seconds(i as i64);
            tl.record(timeline::Transition { service: service(i), from: from.into(), to: to.into(), at });
        }
    }
    let dead = Arc::new(letters::Letters::default());
    for p in PIPELINES {
        for i in 0..letters::KEPT {
            dead.add(letters::Letter {
                pipeline: p.into(),
                failed_at: (now - TimeDelta::seconds(i as i64)).to_rfc3339(),
                stage: "transforms[0].parse_json".into(),
                reason: if i % 3 == 0 { "missing field `service`".into() } else { "not valid JSON".into() },
                message_id: format!("{p}-{i}"),
                preview: format!("{{\"message\": \"<script>x</script> password=p{i}\", \"n\": {i}}}"),
            });
        }
    }
    Console {
        status,
        auth: ConsoleAuth::Open,
        rates,
        timeline: Some(tl),
        changes: Some(log),
        letters: dead,
        mask: Default::default(),
        budget: Budget { pubsub_messages: Some(20_000), push_messages: 1_000 },
        replay: Default::default(),
    }
}

/// (name, page, query string).
fn pages(services: usize) -> Vec<(&'static str, Nav, String)> {
    let middle = service(services / 2);
    vec![
        ("overview", Nav::Overview, String::new()),
        ("services", Nav::Services, String::new()),
        ("services, search", Nav::Services, "q=service-04".into()),
        ("services, down only, page 2", Nav::Services, "state=down&page=2".into()),
        ("configuration: services", Nav::Config, String::new()),
        ("configuration: services, last page", Nav::Config, "page=20".into()),
        ("configuration: one service's keys", Nav::Config, format!("service={middle}")),
        ("configuration: keys, search", Nav::Config, format!("service={middle}&q=key-05")),
        ("configuration: history and diff", Nav::Config, format!("service={}&key=limits&from=110&to=120", service(0))),
        ("dead letters", Nav::DeadLetters, String::new()),
        ("dead letters, filtered", Nav::DeadLetters, "pipeline=logs&q=missing&page=3".into()),
    ]
}

fn query(q: &str) -> Query {
    url::form_urlencoded::parse(q.as_bytes()).into_owned().collect::<HashMap<_, _>>()
}

/// (median, worst) milliseconds of `rounds` calls.
fn time(rounds: usize, mut f: impl FnMut()) -> (f64, f64) {
    let mut ms: Vec<f64> = (0..rounds)
        .map(|_| {
            let t = Instant::now();
            f();
            t.elapsed().as_secs_f64() * 1e3
        })
        .collect();
    ms.sort_by(f64::total_cmp);
    (ms[ms.len() / 2], ms[ms.len() - 1])
}

fn path(nav: Nav) -> &'static str {
    match nav {
        Nav::Overview => "/",
        Nav::Services => "/ui/services",
        Nav::Config => "/ui/config",
        Nav::DeadLetters => "/ui/dead-letters",
    }
}

#[tokio::main]
async fn main() {
    let (services, keys, rounds) = (env("SERVICES", 1_000), env("KEYS", 100_000), env("ROUNDS", 20).max(1));
    let built = Instant::now();
    let console = Arc::new(console(services, keys));
    println!(
        "console with {services} services, {keys} configuration keys: built in {:.1}s",
        built.elapsed().as_secs_f64()
    );
    let base = serve(console.clone()).await;
    let client = reqwest::Client::new();
    println!(
        "{:<38} {:>12} {:>11} {:>12} {:>11} {:>8}",
        "page", "render p50", "render max", "HTTP p50", "HTTP max", "≤50 ms"
    );
    let mut all_under = true;
    for (name, nav, q) in pages(services) {
        let qm = query(&q);
        let (r50, rmax) = time(rounds, || {
            std::hint::black_box(console.page(nav, &qm, Utc::now()));
        });
        let url = format!("{base}{}?{q}", path(nav));
        let mut http = Vec::with_capacity(rounds);
        for _ in 0..rounds {
            let t = Instant::now();
            let body = client.get(&url).send().await.unwrap().text().await.unwrap();
            http.push(t.elapsed().as_secs_f64() * 1e3);
            assert!(body.contains("</main>"), "{name}: not a page");
        }
        http.sort_by(f64::total_cmp);
        let (h50, hmax) = (http[rounds / 2], http[rounds - 1]);
        let under = hmax <= TARGET_MS;
        all_under &= under;
        println!(
            "{name:<38} {r50:>9.2} ms {rmax:>8.2} ms {h50:>9.2} ms {hmax:>8.2} ms {:>8}",
            if under { "yes" } else { "NO" }
        );
    }
    println!(
        "every page within {TARGET_MS} ms (worst of {rounds} HTTP fetches): {}",
        if all_under { "yes" } else { "no" }
    );
}

/// sluice's router with this console on a loopback port; its base URL.
async fn serve(console: Arc<Console>) -> String {
    let state = sluice::server::AppState {
        inputs: Arc::new(HashMap::new()),
        request_timeout: Duration::from_secs(10),
        shutting_down: Default::default(),
        metrics: console.status.metrics.clone(),
        status: console.status.clone(),
        push_auth: Arc::new(sluice::source::push::auth::PushAuth::Open),
        console: Some(console),
    };
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move { axum::serve(listener, sluice::server::router(state, 1 << 20)).await });
    format!("http://{addr}")
}
