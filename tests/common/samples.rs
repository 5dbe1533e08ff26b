//! Realistic rows for benchmarks: sample events through the shipped `logs` chain, as sinks get them.

use serde_json::Value;

/// Log rows with message ids `bench-<i>` for `i` in `ids`, from the sample generator's `seed`.
pub(crate) fn log_rows(ids: std::ops::Range<usize>, seed: u64) -> Vec<Value> {
    let config = sluice::config::load(&super::repo().join("config/sluice.yaml")).unwrap();
    let mut chain = config.pipelines.iter().find(|p| p.name == "logs").unwrap().chain().unwrap();
    let mut sample = sluice::publish::sample::Generator::new(sluice::publish::sample::Kind::Log, seed);
    ids.map(|i| {
        let data = bytes::Bytes::from(sample.next_event().to_string());
        let event = sluice::event::Event::alone(
            sluice::event::Message::new(
                format!("bench-{i}"),
                chrono::Utc::now(),
                Default::default(),
                data,
                std::sync::Arc::from("bench"),
            ),
            sluice::event::ack::Ack::none(),
        );
        match chain.process(event) {
            sluice::transform::Output::Forward(e) => e.record,
            _ => panic!("sample event {i} did not pass the logs chain"),
        }
    })
    .collect()
}

/// A benchmark's size setting from the environment (`ROWS=…`), or its default.
pub(crate) fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name).ok().and_then(|v| v.parse().ok()).unwrap_or(default)
}

/// `n` sample log payloads from the generator's `seed`, one JSON text each, as an NDJSON file holds them.
pub(crate) fn log_lines(n: usize, seed: u64) -> Vec<String> {
    let mut sample = sluice::publish::sample::Generator::new(sluice::publish::sample::Kind::Log, seed);
    (0..n).map(|_| sample.next_event().to_string()).collect()
}
