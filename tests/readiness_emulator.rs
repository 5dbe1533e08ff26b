//! `/readyz` against the real Pub/Sub emulator: it turns unready within the configured bound
//! when the emulator stops answering or the subscription is deleted, ready again when they come
//! back, and every event published around it lands in the lake.

mod common;

use std::time::{Duration, Instant};

use common::{env_with, publish, wait_for_all, PubsubEmulator, Sluice};

/// `health.check_interval` for this test; unready must follow within two of them.
const CHECK: Duration = Duration::from_secs(1);

async fn readyz(client: &reqwest::Client, base: &str) -> (u16, String) {
    match client.get(format!("{base}/readyz")).timeout(Duration::from_secs(5)).send().await {
        Ok(r) => (r.status().as_u16(), r.text().await.unwrap_or_default()),
        Err(e) => (0, e.to_string()),
    }
}

/// Poll `/readyz` until it answers `want` (200 or 503) with a body containing `naming`; returns
/// how long that took and the body. Each subscription is checked on its own, so when the emulator
/// freezes the first 503 may name another subscription than the one the test waits for.
async fn until(client: &reqwest::Client, base: &str, want: u16, naming: &str, limit: Duration) -> (Duration, String) {
    let started = Instant::now();
    loop {
        let (status, body) = readyz(client, base).await;
        if status == want && body.contains(naming) {
            return (started.elapsed(), body);
        }
        assert!(started.elapsed() < limit, "/readyz still {status} after {limit:?} (wanted {want}): {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn readyz_follows_emulator_and_subscription_and_no_event_is_lost() {
    let emu = PubsubEmulator::start();
    let env = env_with(
        &emu,
        &[("SLUICE_BATCH_MAX_AGE", "300ms"), ("SLUICE_ACK_DEADLINE", "10s"), ("SLUICE_CHECK_INTERVAL", "1s")],
    );
    common::sluice_cmd(&["provision"], &env);
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let sluice = Sluice::start_with(&lake, &env);
    let client = reqwest::Client::new();
    let bound = 2 * CHECK;
    let slack = Duration::from_secs(2); // polling, process scheduling on a shared machine

    let mut ids = publish(&emu, "logs", 300, 41).await;
    wait_for_all(&lake, "logs", &ids, Duration::from_secs(60));
    assert_eq!(readyz(&client, &sluice.url).await.0, 200);

    // The emulator stops answering (frozen, its state kept).
    emu.freeze(true);
    let (took, body) =
        until(&client, &sluice.url, 503, "projects/sluice-test/subscriptions/logs-sluice not connected", bound + slack)
            .await;
    println!("emulator frozen: unready after {took:?} (bound {bound:?}): {body}");
    emu.freeze(false);
    let (took, _) = until(&client, &sluice.url, 200, "", bound + slack).await;
    println!("emulator back: ready after {took:?}");
    let more = publish(&emu, "logs", 300, 42).await;
    wait_for_all(&lake, "logs", &more, Duration::from_secs(60));
    ids.extend(more);

    // The subscription is deleted, then created again.
    let sub = format!("http://{}/v1/projects/sluice-test/subscriptions/logs-sluice", emu.host);
    let r = client.delete(&sub).send().await.unwrap();
    assert!(r.status().is_success(), "delete subscription: {}", r.status());
    let (took, body) = until(&client, &sluice.url, 503, "logs-sluice not connected", bound + slack).await;
    println!("subscription deleted: unready after {took:?}: {body}");
    common::sluice_cmd(&["provision"], &env);
    let (took, _) = until(&client, &sluice.url, 200, "", bound + slack).await;
    println!("subscription re-created: ready after {took:?}");
    // The emulator drops acks on a subscription re-created under a deleted name, so these may be
    // delivered more than once; what matters is that none is missing.
    let after = publish(&emu, "logs", 300, 43).await;
    wait_for_all(&lake, "logs", &after, Duration::from_secs(90));
    ids.extend(after);

    let status: serde_json::Value =
        serde_json::from_str(&client.get(format!("{}/status", sluice.url)).send().await.unwrap().text().await.unwrap())
            .unwrap();
    assert_eq!(status["ready"], true, "{status:#}");
    assert!(sluice.stop().success());
    let found = common::lake_ids(&lake, "logs");
    let missing = ids.iter().filter(|id| !found.contains_key(*id)).count();
    println!("published {}, in lake {}, missing {missing}", ids.len(), found.len());
    assert_eq!(missing, 0);
}
