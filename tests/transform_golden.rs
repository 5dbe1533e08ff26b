//! Golden files for the shipped transform chains: `tests/golden/<pipeline>.input.ndjson` runs
//! through the pipeline's chain and must give `tests/golden/<pipeline>.expected.ndjson` exactly.
//! After an intended change, regenerate with `UPDATE_GOLDEN=1 cargo test --test transform_golden`
//! and review the diff.

mod common;

use std::sync::Arc;

use serde_json::{json, Value};
use sluice::event::ack::Ack;
use sluice::event::{Event, Message};
use sluice::transform::Output;

/// How the chain is driven: one event at a time, or every case in one batch.
#[derive(Clone, Copy, PartialEq)]
enum Drive {
    Rows,
    Batch,
}

/// A case's output as the golden file spells it.
fn forwarded(id: &str, record: Value) -> Value {
    let mut record = record;
    let obj = record.as_object_mut().unwrap();
    let ingest = obj.remove("ingest_time").expect("ingest_time is set");
    assert!(sluice::schema::parse_timestamp(ingest.as_str().unwrap()).is_some());
    json!({"id": id, "out": record})
}

fn run_golden(pipeline: &str, drive: Drive) {
    let config = sluice::config::load(&common::repo().join("config/sluice.yaml")).expect("shipped config loads");
    let p = config.pipelines.iter().find(|p| p.name == pipeline).expect("pipeline exists");
    let mut chain = p.chain().unwrap();
    let dir = common::repo().join("tests/golden");
    let input = std::fs::read_to_string(dir.join(format!("{pipeline}.input.ndjson"))).unwrap();
    let publish_time = chrono::DateTime::parse_from_rfc3339("2026-11-26T09:30:00Z").unwrap().into();
    let mut events = Vec::new();
    for line in input.lines().filter(|l| !l.trim().is_empty()) {
        let case: Value = serde_json::from_str(line).unwrap();
        let data = match case.get("raw") {
            Some(raw) => raw.as_str().unwrap().as_bytes().to_vec(),
            None => case["data"].to_string().into_bytes(),
        };
        let mut attributes: sluice::event::Attributes = serde_json::from_value(case["attributes"].clone()).unwrap();
        // Which case an output is, in a batch (the shipped chains do not write attributes).
        attributes.insert(CASE, events.len().to_string());
        let id = case["id"].as_str().unwrap();
        events.push(Event::alone(
            Message::new(id, publish_time, attributes, data.into(), Arc::from("golden")),
            Ack::none(),
        ));
    }
    let mut lines: Vec<Value> = events.iter().map(|e| json!({"id": e.message_id, "dropped": true})).collect();
    let case = |e: &Event| e.attributes[CASE].parse::<usize>().unwrap();
    if drive == Drive::Rows {
        for event in events {
            let (at, id) = (case(&event), event.message_id.clone());
            lines[at] = match chain.process(event) {
                Output::Forward(e) => forwarded(&id, e.record),
                Output::Dropped => continue,
                Output::Dead(d) => json!({"id": id, "dead": {"stage": d.stage, "reason": d.reason}}),
            };
        }
    } else {
        assert!(chain.is_columnar(), "the {pipeline} chain runs on columns");
        let out = chain.process_batch(events);
        for e in out.forward {
            lines[case(&e)] = forwarded(&e.message_id, e.record(None).into_owned());
        }
        for d in out.dead {
            lines[case(&d.event)] = json!({"id": d.event.message_id, "dead": {"stage": d.stage, "reason": d.reason}});
        }
    }
    let got = lines.iter().map(Value::to_string).collect::<Vec<_>>().join("\n") + "\n";
    let expected_path = dir.join(format!("{pipeline}.expected.ndjson"));
    if std::env::var_os("UPDATE_GOLDEN").is_some() && drive == Drive::Rows {
        std::fs::write(&expected_path, &got).unwrap();
    }
    let expected = std::fs::read_to_string(&expected_path).expect("golden file exists (UPDATE_GOLDEN=1 writes it)");
    assert_eq!(got, expected, "chain output differs from {}", expected_path.display());
}

const CASE: &str = "golden-case";

#[test]
fn logs_chain_matches_golden() {
    run_golden("logs", Drive::Rows);
}

/// The same cases in one batch, on columns where the decoder takes them.
#[test]
fn logs_chain_on_columns_matches_golden() {
    run_golden("logs", Drive::Batch);
}
