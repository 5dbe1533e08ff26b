//! The producer tracker's unit tests: transitions at their thresholds, and batches observed as
//! their events one by one.

use super::*;
use crate::event::Message;
use crate::units::HumanDuration;
use tokio::sync::mpsc;

fn producers() -> Arc<Producers> {
    let mut config = ProducersConfig::default();
    config.intervals.insert("billing".into(), HumanDuration(Duration::from_secs(10)));
    config.late_after = 2.0;
    config.down_after = 5.0;
    Arc::new(Producers::new(config, vec!["health".into()], Clock::default(), Arc::new(Metrics::new())))
}

fn record(e: &Event) -> Value {
    serde_json::from_slice(&e.data).unwrap()
}

/// The next transition sent: each is sent alone.
async fn next(rx: &mut mpsc::Receiver<crate::event::Handover>) -> Event {
    let sent = rx.recv().await.unwrap();
    assert_eq!(sent.len(), 1, "one transition per send");
    let messages = Arc::new(crate::event::Messages(sent.messages));
    Event::of(messages, 0, crate::event::ack::Ack::none())
}

/// Heartbeats stop: late at 2 intervals, down at 5, healthy again at the next heartbeat;
/// each transition emitted once, at its threshold.
#[tokio::test(start_paused = true)]
async fn silent_producer_turns_late_then_down_and_recovers_on_its_next_heartbeat() {
    let p = producers();
    let (tx, mut rx) = mpsc::channel(16);
    let input = PipelineInput { name: Arc::from("health"), push: false, tx, budget: None, arrivals: None };
    let stop = CancellationToken::new();
    let task = tokio::spawn(p.clone().run("test".into(), Some(input), stop.clone()));
    let start = tokio::time::Instant::now();
    let t0 = p.clock.now();
    p.seen("billing", t0, Some(Report { status: "healthy".into(), latency_ms: Some(12.0), checks: None }));
    tokio::time::sleep(Duration::from_secs(19)).await;
    assert!(rx.try_recv().is_err(), "still healthy 19s after the last heartbeat (late at 20s)");
    assert_eq!(p.view()["billing"].state, State::Healthy);

    let late = next(&mut rx).await;
    assert_eq!(start.elapsed(), Duration::from_secs(20), "late exactly at 2 x 10s");
    let r = record(&late);
    assert_eq!(r["status"], "late");
    assert_eq!(r["service"], "billing");
    assert_eq!(r["checks"]["liveness"]["from"], "healthy");
    assert_eq!(late.publish_time, t0 + chrono::Duration::seconds(20));
    assert_eq!(&late.attributes[ORIGIN], ORIGIN_LIVENESS);

    let down = next(&mut rx).await;
    assert_eq!(start.elapsed(), Duration::from_secs(50), "down exactly at 5 x 10s");
    assert_eq!(record(&down)["status"], "down");
    assert_eq!(record(&down)["checks"]["liveness"]["from"], "late");

    tokio::time::sleep(Duration::from_secs(600)).await;
    assert!(rx.try_recv().is_err(), "down is emitted once, and nothing follows while silent");

    let back = p.clock.now();
    p.seen("billing", back, None);
    let healthy = next(&mut rx).await;
    assert_eq!(record(&healthy)["status"], "healthy");
    assert_eq!(record(&healthy)["checks"]["liveness"]["from"], "down");
    assert_eq!(healthy.publish_time, back);
    assert_ne!(healthy.message_id, down.message_id);
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert!(rx.try_recv().is_err(), "recovery emitted once");

    let now = p.clock.now();
    p.seen("billing", now, Some(Report { status: "degraded".into(), latency_ms: None, checks: None }));
    assert_eq!(record(&next(&mut rx).await)["status"], "degraded", "an explicit report counts");
    stop.cancel();
    task.await.unwrap();
}

#[tokio::test(start_paused = true)]
async fn default_interval_applies_and_old_heartbeats_do_not_revive() {
    let p = producers();
    let now = p.clock.now();
    p.seen("search", now - chrono::Duration::seconds(200), None);
    assert!(p.evaluate(now).is_empty(), "first sighting is not a transition");
    assert_eq!(p.view()["search"].state, State::Down, "200s silent at 30s interval: down");
    p.seen("search", now - chrono::Duration::seconds(300), None);
    assert_eq!(p.view()["search"].state, State::Down, "an older heartbeat changes nothing");
    p.seen("search", now - chrono::Duration::seconds(61), None);
    assert_eq!(p.view()["search"].state, State::Late, "61s silent: late (60s), not down (150s)");
    assert!(p.evaluate(now).iter().any(|t| t.from == State::Down && t.to == State::Late));
    assert!(p.evaluate(now).is_empty(), "each transition once");
}

/// A chain batch observed at once, its rows in columns, leaves each producer as its events
/// observed one at a time as JSON records do; liveness rows of sluice's own are not signs.
#[tokio::test(start_paused = true)]
async fn a_batch_in_columns_is_observed_as_its_records_one_by_one() {
    let schema = Arc::new(
        crate::schema::Schema::load(&std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas"), "health")
            .unwrap(),
    );
    let now = Clock::default().now();
    let at = |secs: i64| crate::schema::format_timestamp(now - chrono::Duration::seconds(secs));
    let records = [
        json!({"timestamp": at(30), "service": "billing", "status": "healthy", "latency_ms": 12.5, "checks": {"db": "ok"}}),
        json!({"timestamp": at(40), "service": "billing", "status": "degraded"}),
        json!({"timestamp": at(5), "service": "search", "status": "heartbeat", "instance": "s-1"}),
        json!({"timestamp": at(1), "service": "pricing", "status": "down"}),
        json!({"timestamp": at(3), "service": "search", "status": "heartbeat", "latency_ms": 3.0}),
    ];
    let events: Vec<Event> = records
        .iter()
        .enumerate()
        .map(|(i, r)| {
            let attributes = match i {
                3 => Attributes::from([(ORIGIN.to_owned(), ORIGIN_LIVENESS.to_owned())]),
                _ => Attributes::new(),
            };
            let mut e = Event::alone(
                Message::new(format!("m{i}"), now, attributes, bytes::Bytes::new(), Arc::from("s")),
                Ack::none(),
            );
            e.record = r.clone();
            e.record["message_id"] = json!(format!("m{i}"));
            e
        })
        .collect();
    let (one_by_one, batched) = (producers(), producers());
    for e in &events {
        one_by_one.observe("health", std::slice::from_ref(e));
    }
    let columns = Arc::new(crate::event::row::Columns::new(
        crate::sink::encode::events_to_batch(&schema, &events).unwrap(),
        schema.clone(),
    ));
    let rows: Vec<Event> = events
        .iter()
        .enumerate()
        .map(|(i, e)| {
            let mut row = Event::alone(
                Message::new(e.message_id.clone(), now, e.attributes.clone(), e.data.clone(), Arc::from("s")),
                Ack::none(),
            );
            row.row = Some(RowRef { columns: columns.clone(), row: i });
            row
        })
        .collect();
    batched.observe("health", &rows);
    let view = |p: &Producers| serde_json::to_value(p.view()).unwrap();
    assert_eq!(view(&batched), view(&one_by_one));
    let v = view(&batched);
    assert_eq!(v.as_object().unwrap().len(), 2, "sluice's own liveness row is no sign of life: {v}");
    assert_eq!(v["billing"]["report"], json!({"status": "healthy", "latency_ms": 12.5, "checks": {"db": "ok"}}));
    assert_eq!(v["search"]["report"], json!({"status": "heartbeat", "latency_ms": 3.0}), "{v}");
    let three_ago = (now - chrono::Duration::seconds(3)).to_rfc3339_opts(SecondsFormat::Millis, true);
    assert_eq!(v["search"]["last_seen"], json!(three_ago));
}

#[test]
fn transition_ids_are_the_same_on_every_instance() {
    let t = Transition {
        service: "s".into(),
        from: State::Healthy,
        to: State::Late,
        at: Utc::now(),
        last_seen: Utc::now(),
        interval: Duration::from_secs(1),
    };
    let m = Metrics::new();
    let (a, a_ack) = transition_message(&t, "a", m.input("health", "liveness"));
    let (b, b_ack) = transition_message(&t, "b", m.input("health", "liveness"));
    assert_eq!(a.message_id, b.message_id);
    a_ack.settle(Outcome::Delivered);
    b_ack.settle(Outcome::Delivered);
}
