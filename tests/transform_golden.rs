//! Golden files for the shipped transform chains: `tests/golden/<pipeline>.input.ndjson` runs
//! through the pipeline's chain and must give `tests/golden/<pipeline>.expected.ndjson` exactly.
//! After an intended change, regenerate with `UPDATE_GOLDEN=1 cargo test --test transform_golden`
//! and review the diff.

mod common;

use std::sync::Arc;

use serde_json::{json, Value};
use sluice::ack::Ack;
use sluice::event::Event;
use sluice::transform::Output;

fn run_golden(pipeline: &str) {
    let config = sluice::config::load(&common::repo().join("config/sluice.yaml")).expect("shipped config loads");
    let p = config.pipelines.iter().find(|p| p.name == pipeline).expect("pipeline exists");
    let mut chain = p.chain().unwrap();
    let dir = common::repo().join("tests/golden");
    let input = std::fs::read_to_string(dir.join(format!("{pipeline}.input.ndjson"))).unwrap();
    let publish_time = chrono::DateTime::parse_from_rfc3339("2026-11-26T09:30:00Z").unwrap().into();
    let mut lines = Vec::new();
    for line in input.lines().filter(|l| !l.trim().is_empty()) {
        let case: Value = serde_json::from_str(line).unwrap();
        let data = match case.get("raw") {
            Some(raw) => raw.as_str().unwrap().as_bytes().to_vec(),
            None => case["data"].to_string().into_bytes(),
        };
        let attributes = serde_json::from_value(case["attributes"].clone()).unwrap();
        let id = case["id"].as_str().unwrap();
        let event = Event::new(id, publish_time, attributes, data.into(), Arc::from("golden"), Ack::none());
        let out = match chain.process(event) {
            Output::Forward(mut e) => {
                let obj = e.record.as_object_mut().unwrap();
                let ingest = obj.remove("ingest_time").expect("ingest_time is set");
                assert!(sluice::schema::parse_timestamp(ingest.as_str().unwrap()).is_some());
                json!({"id": id, "out": e.record})
            }
            Output::Dropped => json!({"id": id, "dropped": true}),
            Output::Dead(d) => json!({"id": id, "dead": {"stage": d.stage, "reason": d.reason}}),
        };
        lines.push(out.to_string());
    }
    let got = lines.join("\n") + "\n";
    let expected_path = dir.join(format!("{pipeline}.expected.ndjson"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&expected_path, &got).unwrap();
    }
    let expected = std::fs::read_to_string(&expected_path).expect("golden file exists (UPDATE_GOLDEN=1 writes it)");
    assert_eq!(got, expected, "chain output differs from {}", expected_path.display());
}

#[test]
fn logs_chain_matches_golden() {
    run_golden("logs");
}
