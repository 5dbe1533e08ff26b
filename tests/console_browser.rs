//! The console in a real browser (headless Chromium) against `sluice run` pulling from the
//! Pub/Sub emulator, fed by `sluice publish --topic`: one producer keeps beating, one stops and
//! goes late then down, configuration changes arrive, a bad log line becomes a dead letter.
//! Each page's DOM is checked after its script ran (`--dump-dom`), and two pages kept open over
//! the DevTools protocol must change without a reload (the live refresh) as the producer goes
//! down and a new version of a key arrives.
//!
//! Skipped, with a message, only when chromium is missing outside CI. With
//! `SLUICE_CONSOLE_SCREENSHOTS=<dir>` it also writes a screenshot of each page there
//! (docs/console/ holds the committed ones).

mod common;

use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use common::browser::{chromium, dump_dom, screenshot, Browser};
use common::console::{change, heartbeat, wait_for_page};
use serde_json::{json, Value};

/// `sluice publish --topic <pipeline>` of these records (one NDJSON line each).
fn publish(env: &[(&'static str, String)], pipeline: &str, records: &[Value]) {
    let lines: Vec<String> = records.iter().map(Value::to_string).collect();
    publish_lines(env, pipeline, &lines);
}

fn publish_lines(env: &[(&'static str, String)], pipeline: &str, lines: &[String]) {
    let file = tempfile::NamedTempFile::new().unwrap();
    std::fs::write(file.path(), lines.join("\n") + "\n").unwrap();
    let path = file.path().to_str().unwrap();
    common::sluice_cmd(&["publish", "--topic", pipeline, "-p", pipeline, "-f", path, "--log-format", "text"], env);
}

/// Heartbeats of `svc-steady` every second until `stop`.
fn keep_beating(env: Vec<(&'static str, String)>, stop: Arc<AtomicBool>) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        while !stop.load(Ordering::Relaxed) {
            publish(&env, "health", &[heartbeat("svc-steady")]);
            std::thread::sleep(Duration::from_secs(1));
        }
    })
}

/// Poll the open tab until `ok` holds for its DOM, or panic with the last one.
fn watch(browser: &mut Browser, tab: &str, what: &str, limit: Duration, ok: impl Fn(&str) -> bool) -> String {
    let deadline = Instant::now() + limit;
    loop {
        let html = browser.html(tab);
        if ok(&html) {
            return html;
        }
        assert!(Instant::now() < deadline, "{what}: not seen within {limit:?} without a reload; DOM:\n{html}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

fn refreshes(html: &str) -> u32 {
    let re = regex::Regex::new(r#"data-refreshes="(\d+)""#).unwrap();
    re.captures(html).and_then(|c| c[1].parse().ok()).unwrap_or(0)
}

/// The `<tr>` of `service` on the services page.
fn service_row<'a>(html: &'a str, service: &str) -> &'a str {
    let start = html.find(&format!("data-service=\"{service}\"")).unwrap_or_else(|| panic!("no row for {service}"));
    let end = html[start..].find("</tr>").map_or(html.len(), |e| start + e);
    &html[start..end]
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_page_in_chromium_with_live_refresh() {
    let Some(bin) = chromium() else { return };
    let emu = common::PubsubEmulator::start();
    let mut env = emu.env();
    for (k, v) in [
        ("SLUICE_PRODUCER_INTERVAL", "2s"),
        ("SLUICE_PRODUCER_REFRESH", "1s"),
        ("SLUICE_BATCH_MAX_AGE", "300ms"),
        ("SLUICE_CONFIG_REFRESH", "1s"),
        ("SLUICE_ACK_DEADLINE", "10s"),
        ("SLUICE_MAX_DELIVERY_ATTEMPTS", "100"),
    ] {
        env.push((k, v.into()));
    }
    common::sluice_cmd(&["provision"], &env);
    let lake = tempfile::tempdir().unwrap();
    let sluice = common::Sluice::start_with(lake.path(), &env);
    let base = sluice.url.clone();

    let stop = Arc::new(AtomicBool::new(false));
    let beating = keep_beating(env.clone(), stop.clone());
    publish(&env, "health", &[heartbeat("svc-stops")]);
    publish(
        &env,
        "config-changes",
        &[
            change("pricing", "limit", 1, json!(100), "alice@example.com"),
            change("pricing", "mode", 1, json!({"fast": true}), "bob@example.com"),
            change("billing", "stripe.api_key", 1, json!("sk_live_abcdef"), "alice@example.com"),
        ],
    );
    publish_lines(&env, "logs", &["not json at all".into()]);
    wait_for_page(&base, "/ui/config?service=pricing", None, "alice@example.com", 60).await;
    wait_for_page(&base, "/ui/services", None, "data-service=\"svc-stops\"", 60).await;

    // Two tabs kept open: they must follow the producer going down and the new version.
    let mut browser = Browser::start(&bin);
    let services_tab = browser.open(&format!("{base}/ui/services"));
    let config_tab = browser.open(&format!("{base}/ui/config?service=pricing"));
    let before = watch(&mut browser, &config_tab, "pricing's limit", Duration::from_secs(10), |h| {
        h.contains("data-key=\"limit\"")
    });
    assert!(before.contains("alice@example.com"), "{before}");
    publish(&env, "config-changes", &[change("pricing", "limit", 2, json!(250), "carol@example.com")]);
    let services = watch(&mut browser, &services_tab, "svc-stops down", Duration::from_secs(60), |h| {
        h.contains("data-service=\"svc-stops\"") && service_row(h, "svc-stops").contains("state down")
    });
    assert!(refreshes(&services) >= 1, "the page changed by its live refresh, not a reload");
    assert!(service_row(&services, "svc-steady").contains("state healthy"), "{services}");
    let config = watch(&mut browser, &config_tab, "limit version 2", Duration::from_secs(60), |h| {
        h.contains("carol@example.com") && h.contains("250")
    });
    assert!(refreshes(&config) >= 1);
    drop(browser);

    // The dead letters are read from the lake once someone looks.
    wait_for_page(&base, "/ui/dead-letters?pipeline=logs", None, "not json at all", 60).await;
    check_pages(&bin, &base);
    if let Ok(dir) = std::env::var("SLUICE_CONSOLE_SCREENSHOTS") {
        screenshots(&bin, &base, Path::new(&dir));
    }
    stop.store(true, Ordering::Relaxed);
    beating.join().unwrap();
    assert!(sluice.stop().success());
}

/// Each page loaded whole in Chromium, its script run for 6 s of virtual time.
fn check_pages(bin: &Path, base: &str) {
    let overview = dump_dom(bin, &format!("{base}/"), 6_000);
    for p in ["config-changes", "health", "logs"] {
        assert!(overview.contains(&format!("data-pipeline=\"{p}\"")), "overview lists {p}:\n{overview}");
    }
    assert!(overview.contains("class=\"state connected\""), "subscriptions connected:\n{overview}");
    assert!(overview.contains("sluice is <span class=\"healthy\">healthy</span>"), "{overview}");
    assert!(refreshes(&overview) >= 1, "the live refresh ran in 6 s:\n{overview}");

    let services = dump_dom(bin, &format!("{base}/ui/services"), 1_000);
    assert!(service_row(&services, "svc-stops").contains("state down"));
    assert!(services.contains("<span class=\"state late\">late</span></td><td><span class=\"state down\">down</span>"));
    let down_only = dump_dom(bin, &format!("{base}/ui/services?state=down"), 1_000);
    assert!(down_only.contains("svc-stops") && !down_only.contains("data-service=\"svc-steady\""));

    let config = dump_dom(bin, &format!("{base}/ui/config"), 1_000);
    assert!(config.contains("?service=pricing") && config.contains("?service=billing"), "{config}");
    let billing = dump_dom(bin, &format!("{base}/ui/config?service=billing"), 1_000);
    assert!(billing.contains("[REDACTED]") && !billing.contains("sk_live_abcdef"), "{billing}");
    let history = dump_dom(bin, &format!("{base}/ui/config?service=pricing&key=limit&from=1&to=2"), 1_000);
    assert!(history.contains("<b>current</b>") && history.contains("diff with 1"), "{history}");
    assert!(history.contains("<del>- 100</del>") && history.contains("<ins>+ 250</ins>"), "{history}");

    let letters = dump_dom(bin, &format!("{base}/ui/dead-letters?pipeline=logs"), 1_000);
    assert!(letters.contains("not json at all") && letters.contains("transforms[0].parse_json"), "{letters}");
    assert!(letters.contains("sluice replay --config config/sluice.yaml -p logs --from "), "{letters}");
}

fn screenshots(bin: &Path, base: &str, dir: &Path) {
    std::fs::create_dir_all(dir).unwrap();
    for (name, path, height) in [
        ("overview", "/", 900),
        ("services", "/ui/services", 700),
        ("configuration", "/ui/config?service=pricing", 600),
        ("configuration-history", "/ui/config?service=pricing&key=limit&from=1&to=2", 700),
        ("dead-letters", "/ui/dead-letters", 700),
    ] {
        screenshot(bin, &format!("{base}{path}"), &dir.join(format!("{name}.png")), height);
    }
}
