//! A payload through every shipped pipeline's transform chain (parse_json, validate, rename,
//! redact, timestamp, ...) and, when forwarded, through the Arrow encoder of its sinks: a record
//! or a dead letter with a stage and a reason, never a panic.
#![no_main]

use std::sync::{Arc, Mutex, OnceLock};

use libfuzzer_sys::fuzz_target;
use sluice::event::ack::Ack;
use sluice::event::Event;
use sluice::transform::{Chain, Output};

struct Pipeline {
    chain: Chain,
    schema: Arc<sluice::schema::Schema>,
}

fn pipelines() -> &'static Mutex<Vec<Pipeline>> {
    static P: OnceLock<Mutex<Vec<Pipeline>>> = OnceLock::new();
    P.get_or_init(|| {
        let file = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../config/sluice.yaml");
        let config = sluice::config::load_with_env(&file, |_| None).expect("shipped config loads");
        Mutex::new(
            config
                .pipelines
                .iter()
                .map(|p| Pipeline { chain: p.chain().expect("chain builds"), schema: p.schema.clone() })
                .collect(),
        )
    })
}

fuzz_target!(|data: &[u8]| {
    let mut pipelines = pipelines().lock().unwrap();
    for p in pipelines.iter_mut() {
        // A fixed publish time: dedupe windows and partitions must not follow the wall clock.
        let publish_time = sluice::schema::parse_timestamp("2026-11-26T09:30:00Z").expect("valid literal");
        let event = Event::new(
            "fuzz-1",
            publish_time,
            Default::default(),
            bytes::Bytes::copy_from_slice(data),
            Arc::from("fuzz"),
            Ack::none(),
        );
        match p.chain.process(event) {
            Output::Forward(e) => {
                let _ = sluice::sink::encode::to_record_batch(&p.schema, &[&e.record]);
            }
            Output::Dead(d) => assert!(!d.stage.is_empty() && !d.reason.is_empty()),
            Output::Dropped => {}
        }
    }
});
