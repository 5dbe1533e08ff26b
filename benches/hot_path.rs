//! Benchmark: the hot path on one core, no I/O. Events generated from a seed are packed 100 to a
//! `StreamingPullResponse` (as the emulator sends them), then for each pipeline (`logs`, `health`,
//! `config-changes`, with their shipped chains and schemas): decode the protobuf into batches of messages as
//! the Pub/Sub source does, run the transform chain on batches as a loaded pipeline does, batch by
//! partition as the lake sink does, gather the rows into Arrow and encode Parquet (zstd) into
//! memory.
//!
//! Figures are per core: events and payload MB per CPU second of this thread, plus wall time.
//! With `SLUICE_BENCH_PYTHON` set (see `scripts/bench`) the anchors (`benches/python/anchors.py`:
//! DuckDB and polars, one thread each) do the logs work on the same payloads right after each of
//! sluice's logs rounds, so that each ratio is of one round and the runs beside it; the Python
//! baseline (`benches/python/hot_path.py`) runs the logs chain on the same messages; the tables show
//! sluice against each, and each one's rows are compared with sluice's first Parquet file.
//!
//! Run: `scripts/bench` (everything), or `cargo bench --bench hot_path` (sluice alone).
//! Env: EVENTS per pipeline (200000), SEED (7), ROUNDS (5, the median is reported),
//! SLUICE_BENCH_DIR (target/bench), PIPELINES (e.g. `logs`; default all three), CHAIN_FRAMES
//! (frames per chain batch: 10, a loaded pipeline's 1,000 events; 1, a frame at a time as a
//! pipeline that keeps up with its emulator takes them), COLD_MB (before each chain batch, write
//! this many MiB elsewhere, untimed, so that the batch finds cold caches as a pipeline that idles
//! between frames does; 0 by default).

use std::collections::VecDeque;
use std::io::Write;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use prost::Message as _;
use sluice::event::ack::{Ack, Outcome};
use sluice::event::{Event, Handover, Message};
use sluice::publish::sample::{Generator, Kind};
use sluice::sink::batcher::{Batch, Batcher, Limits};
use sluice::sink::encode;
use sluice::sink::lake::Partition;
use sluice::source::budget::Budget;
use sluice::source::pull;
use sluice::source::pull::lease::Leases;
use sluice::source::pull::wire::{self, Received};
use sluice::source::pull::Holds;
use sluice::telemetry::metrics::Metrics;
use sluice::topology::CHAIN_BATCH;

/// The allocator of the `sluice` binary (src/main.rs), so the figures are the binary's.
#[global_allocator]
static ALLOCATOR: sluice::alloc::Allocator = sluice::alloc::Allocator;

/// `google.pubsub.v1` as prost derives it: encodes the frames, and decodes them the way the
/// official client does, for the comparison.
#[allow(dead_code)]
#[path = "../src/source/pull/wire/proto.rs"]
mod proto;

#[path = "hot_path/python.rs"]
mod python;

/// Messages per streaming-pull response, as the emulator sends them.
const PER_RESPONSE: usize = 100;

/// CPU time this thread has used.
fn thread_cpu() -> Duration {
    let mut ts = libc::timespec { tv_sec: 0, tv_nsec: 0 };
    // SAFETY: clock_gettime writes into the timespec we own.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) };
    Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
}

/// Wall and CPU time spent in one phase, summed over calls.
#[derive(Default, Clone, Copy)]
struct Phase {
    wall: Duration,
    cpu: Duration,
}

struct Clock {
    wall: Instant,
    cpu: Duration,
}

impl Clock {
    fn start() -> Clock {
        Clock { wall: Instant::now(), cpu: thread_cpu() }
    }
    /// Add the time since the last lap to `phase` and start the next lap.
    fn lap(&mut self, phase: &mut Phase) {
        let (wall, cpu) = (Instant::now(), thread_cpu());
        phase.wall += wall - self.wall;
        phase.cpu += cpu - self.cpu;
        (self.wall, self.cpu) = (wall, cpu);
    }
}

const PHASES: [&str; 5] = ["decode", "transform chain", "batch + row check", "arrow columns", "parquet (zstd)"];

#[derive(Default, Clone)]
struct Round {
    phases: [Phase; 5],
    written: usize,
    dropped: usize,
    parquet_bytes: usize,
}

impl Round {
    fn cpu(&self) -> Duration {
        self.phases.iter().map(|p| p.cpu).sum()
    }
    fn wall(&self) -> Duration {
        self.phases.iter().map(|p| p.wall).sum()
    }
}

/// Generated events of one kind as serialized streaming-pull responses, and their payload bytes.
fn responses(kind: Kind, pipeline: &str, seed: u64, n: usize) -> (Vec<Vec<u8>>, usize) {
    let mut g = Generator::new(kind, seed);
    let publish = chrono::DateTime::parse_from_rfc3339("2026-11-26T09:30:00Z").unwrap();
    let mut out = Vec::new();
    let mut payload = 0;
    let mut i = 0;
    while i < n {
        let received_messages = (i..n.min(i + PER_RESPONSE))
            .map(|j| {
                let data = g.next_event().to_string();
                payload += data.len();
                // What `sluice publish --topic` sets, and the emulator's numeric ids.
                let attributes = [("publisher", "sluice-publish"), ("pipeline", pipeline)]
                    .iter()
                    .map(|(k, v)| (k.to_string(), v.to_string()))
                    .collect();
                proto::ReceivedMessage {
                    ack_id: format!("projects/sluice-local/subscriptions/{pipeline}-sluice:{}", j + 1),
                    message: Some(proto::PubsubMessage {
                        data: data.into(),
                        attributes,
                        message_id: (j + 1).to_string(),
                        publish_time: Some(prost_types::Timestamp {
                            seconds: publish.timestamp() + (j / 1000) as i64,
                            nanos: ((j % 1000) * 1_000_000) as i32,
                        }),
                        ordering_key: String::new(),
                    }),
                    delivery_attempt: 0,
                }
            })
            .collect();
        i = n.min(i + PER_RESPONSE);
        out.push(proto::StreamingPullResponse { received_messages }.encode_to_vec());
    }
    (out, payload)
}

/// Decode one response, as `source::pull` does: the messages' leases taken, then handed over in
/// batches of messages whose acks give back their lease, their room in the budget and their
/// share of the gauges.
fn decode(frame: &[u8], subscription: &Arc<str>, holds: &Arc<Holds>, received: &mut Vec<Received>, out: &mut Handover) {
    wire::decode_response(frame, received).expect("valid frame");
    let keys = holds.leases.hold(received.iter_mut().map(|r| &mut r.ack_id));
    let mut waiting: VecDeque<_> = keys.into_iter().zip(received.drain(..)).collect();
    while let Some((_, r)) = waiting.front() {
        let first = holds.budget.try_reserve(pull::weight(r));
        out.append(holds.hand_over(first.expect("the bench's budget has room"), &mut waiting, subscription));
    }
}

/// CPU seconds to decode `frames` the way the official client does (prost into its generated
/// types, then its `Message`, then sluice's message and ack in a hand-over, as the reader gives
/// them): the measurement behind reading the frames with `source::pull::wire` instead.
fn client_decode(frames: &[Vec<u8>], subscription: &Arc<str>) -> f64 {
    let start = thread_cpu();
    let mut batch = Handover::default();
    for frame in frames {
        let response = proto::StreamingPullResponse::decode(frame.as_slice()).expect("valid frame");
        let received = std::time::Instant::now();
        for rm in response.received_messages {
            let m = rm.message.expect("message present");
            let mut message = google_cloud_pubsub::model::Message::new()
                .set_data(m.data)
                .set_attributes(m.attributes)
                .set_message_id(m.message_id)
                .set_ordering_key(m.ordering_key);
            if let Some(t) = m.publish_time {
                message = message.set_publish_time(google_cloud_wkt::Timestamp::clamp(t.seconds, t.nanos));
            }
            let ack_id = rm.ack_id;
            let ack = Ack::new(move |_| drop(ack_id));
            let publish_time = message
                .publish_time
                .and_then(|t| chrono::DateTime::from_timestamp(t.seconds(), t.nanos() as u32))
                .expect("frames carry publish times");
            batch.push(
                Message {
                    message_id: message.message_id,
                    publish_time,
                    attributes: message.attributes.into_iter().collect(),
                    data: message.data,
                    subscription: subscription.clone(),
                    delivery_attempt: None,
                    received,
                },
                ack,
            );
        }
        std::mem::take(&mut batch).settle(Outcome::Delivered);
    }
    (thread_cpu() - start).as_secs_f64()
}

/// The lake sink's work on one closed batch: check rows (unless the chain did, as the sink group
/// decides it), Arrow columns, Parquet bytes, acks.
fn write(
    schema: &sluice::schema::Schema,
    rows_checked: bool,
    batch: Batch<Partition, Event>,
    round: &mut Round,
    clock: &mut Clock,
    keep_first: &mut Option<PathBuf>,
) {
    let good = batch.items;
    if !rows_checked {
        for e in &good {
            if let Err(reason) = schema.check(&e.record, true) {
                panic!("row refused by the sink: {reason}");
            }
        }
    }
    clock.lap(&mut round.phases[2]);
    let rb = encode::events_to_batch(schema, &good).expect("rows encode");
    clock.lap(&mut round.phases[3]);
    let bytes = encode::to_parquet(&rb).expect("parquet encodes");
    round.parquet_bytes += bytes.len();
    round.written += good.len();
    for e in good {
        e.ack.settle(Outcome::Delivered);
    }
    clock.lap(&mut round.phases[4]);
    if let Some(path) = keep_first.take() {
        std::fs::write(&path, &bytes).unwrap();
        *clock = Clock::start(); // the file write is not part of the hot path
    }
}

/// Write to every cache line of `elsewhere`, as the other work of a process that idles between
/// frames would (the emulator beside it, the other pipelines): the next batch finds cold caches.
fn evict_caches(elsewhere: &mut [u8]) {
    for (i, b) in elsewhere.iter_mut().enumerate().step_by(64) {
        *b = b.wrapping_add(i as u8);
    }
    std::hint::black_box(elsewhere);
}

/// Not inlined, so that a profile can count it alone (see Profiling in docs/performance.md).
#[inline(never)]
fn run_round(pipeline: &sluice::config::Pipeline, frames: &[Vec<u8>], mut keep_first: Option<PathBuf>) -> Round {
    let mut chain = pipeline.chain().unwrap();
    let sluice::config::Sink::Lake { batch, .. } = &pipeline.sinks[0] else { panic!("a lake sink") };
    let limits = Limits {
        max_rows: batch.max_rows.get(),
        max_bytes: batch.max_bytes.0 as usize,
        max_age: Duration::from_secs(3600),
        max_idle: None,
    };
    let mut batcher: Batcher<Partition, Event> = Batcher::new(limits);
    let subscription: Arc<str> = Arc::from(format!("projects/sluice-local/subscriptions/{}-sluice", pipeline.name));
    let schema = &pipeline.schema;
    let rows_checked = chain.checked_against(schema);
    let mut round = Round::default();
    let (mut events, mut kept) = (Handover::with_capacity(CHAIN_BATCH), Vec::with_capacity(CHAIN_BATCH));
    let metrics = Metrics::new();
    let holds = Arc::new(Holds {
        leases: Leases::new(),
        // Room for every event of a round: the bench measures the work, not waits.
        budget: Budget::new(usize::MAX, usize::MAX),
        metrics: metrics.subscription(&pipeline.name, &subscription),
    });
    let mut received = Vec::with_capacity(PER_RESPONSE);
    let now = tokio::time::Instant::now();
    let mut clock = Clock::start();
    // The chain takes what its input holds, up to CHAIN_BATCH: under load, that many.
    let frames_per_batch =
        std::env::var("CHAIN_FRAMES").ok().and_then(|v| v.parse().ok()).unwrap_or(CHAIN_BATCH / PER_RESPONSE);
    let mut elsewhere = vec![0u8; std::env::var("COLD_MB").ok().and_then(|v| v.parse().ok()).unwrap_or(0) << 20];
    for group in frames.chunks(frames_per_batch) {
        if !elsewhere.is_empty() {
            evict_caches(&mut elsewhere);
            clock = Clock::start(); // the eviction is not part of the hot path
        }
        for frame in group {
            decode(frame, &subscription, &holds, &mut received, &mut events);
        }
        clock.lap(&mut round.phases[0]);
        let taken = events.len();
        let out = chain.process_batch(std::mem::replace(&mut events, Handover::with_capacity(CHAIN_BATCH)));
        if let Some(d) = out.dead.first() {
            panic!("dead letter in the benchmark: {}: {}", d.stage, d.reason);
        }
        round.dropped += taken - out.forward.len();
        kept.extend(out.forward);
        clock.lap(&mut round.phases[1]);
        let mut full = Vec::new();
        for e in kept.drain(..) {
            let size = e.size_hint();
            full.extend(batcher.push(Partition::for_event(schema, &e), e, size, now));
        }
        clock.lap(&mut round.phases[2]);
        for b in full {
            write(schema, rows_checked, b, &mut round, &mut clock, &mut keep_first);
        }
    }
    for b in batcher.drain() {
        write(schema, rows_checked, b, &mut round, &mut clock, &mut keep_first);
    }
    let totals = metrics.pipeline_totals(&pipeline.name);
    assert_eq!((totals.acks, totals.nacks), ((round.written + round.dropped) as u64, 0), "every message acked");
    round
}

/// `rounds` rounds of `pipeline` on `frames` (the first keeps its first Parquet file at `keep`),
/// each followed by a run of the anchors when given (Python, and the payloads file they read).
fn measure(
    pipeline: &sluice::config::Pipeline,
    frames: &[Vec<u8>],
    rounds: usize,
    keep: &Path,
    anchors: Option<(&str, PathBuf)>,
) -> (Vec<Round>, Vec<python::Paired>, String) {
    let (mut all, mut pairs, mut compare) = (Vec::new(), Vec::new(), String::new());
    for i in 0..rounds {
        let round = run_round(pipeline, frames, (i == 0).then(|| keep.to_owned()));
        let sluice = (round.cpu() - round.phases[0].cpu).as_secs_f64();
        let n = round.written + round.dropped;
        all.push(round);
        let Some((py, payloads)) = &anchors else { continue };
        let dir = payloads.parent().expect("the payloads file is in the bench directory");
        if let Some((engines, compared)) = python::run_anchors(py, payloads, dir, n, (i == 0).then_some(keep)) {
            compare = compared.unwrap_or(compare);
            pairs.push(python::Paired { sluice, engines });
        }
    }
    (all, pairs, compare)
}

fn median_round(mut rounds: Vec<Round>) -> Round {
    rounds.sort_by_key(|r| r.cpu());
    rounds[rounds.len() / 2].clone()
}

/// sluice's Pub/Sub decode (the round's first phase) beside the official client's way.
fn print_decode(r: &Round, frames: &[Vec<u8>], rounds: usize, n: usize) {
    let subscription: Arc<str> = Arc::from("projects/sluice-local/subscriptions/logs-sluice");
    let client = (0..rounds).map(|_| client_decode(frames, &subscription)).fold(f64::MAX, f64::min);
    let own = r.phases[0].cpu.as_secs_f64();
    println!();
    println!("logs: Pub/Sub frames -> hand-overs of messages, CPU µs/event (best of {rounds} for the client's way)");
    println!();
    println!("| decode | CPU µs/event |");
    println!("| --- | ---: |");
    println!("| sluice's own reader (source::pull::wire), leases included | {:.2} |", own * 1e6 / n as f64);
    println!("| the official client's way (prost types, then its Message) | {:.2} |", client * 1e6 / n as f64);
}

fn main() {
    if !std::env::args().any(|a| a == "--bench") {
        return; // built by `cargo test --benches`: nothing to measure there
    }
    // Memory as `sluice run` uses it: no huge pages, freed memory kept (below its high mark, as here).
    sluice::alloc::no_transparent_huge_pages().expect("transparent huge pages turned off");
    sluice::alloc::purge_after(sluice::alloc::governor::RELAXED_DELAY_MS);
    let env = |k: &str, d: usize| std::env::var(k).ok().and_then(|v| v.parse().ok()).unwrap_or(d);
    let (n, seed, rounds) = (env("EVENTS", 200_000), env("SEED", 7) as u64, env("ROUNDS", 5).max(1));
    let dir = std::env::var_os("SLUICE_BENCH_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| Path::new(env!("CARGO_MANIFEST_DIR")).join("target/bench"));
    std::fs::create_dir_all(&dir).unwrap();
    let python = std::env::var("SLUICE_BENCH_PYTHON").ok().filter(|p| !p.is_empty());
    let config = sluice::config::load(&Path::new(env!("CARGO_MANIFEST_DIR")).join("config/sluice.yaml"))
        .expect("shipped config loads");

    println!();
    println!("hot path, one core: protobuf decode -> transform chain -> batch -> Arrow -> Parquet (zstd) in memory");
    println!("seed {seed}, {n} events per pipeline, median of {rounds} rounds by CPU time; MB = 10^6 payload bytes");
    println!();
    println!("| pipeline | payload B/event | events/s per CPU s | MB/s per CPU s | CPU µs/event | wall events/s | Parquet B/event |");
    println!("| --- | ---: | ---: | ---: | ---: | ---: | ---: |");
    let mut logs = None;
    let only = std::env::var("PIPELINES").ok();
    for (name, kind) in [("logs", Kind::Log), ("health", Kind::Health), ("config-changes", Kind::ConfigChange)] {
        if only.as_deref().is_some_and(|o| !o.split(',').any(|p| p == name)) {
            continue;
        }
        let pipeline = config.pipelines.iter().find(|p| p.name == name).expect("shipped pipeline");
        let (frames, payload) = responses(kind, name, seed, n);
        let keep = dir.join(format!("sluice-{name}-first.parquet"));
        let anchors =
            python.as_deref().filter(|_| name == "logs").map(|py| (py, python::write_payloads(&dir, seed, n)));
        let (all, pairs, compare) = measure(pipeline, &frames, rounds, &keep, anchors);
        let r = median_round(all);
        assert_eq!(r.written + r.dropped, n, "every event written or dropped");
        let cpu = r.cpu().as_secs_f64();
        println!(
            "| {name} | {:.0} | {:.0} | {:.1} | {:.2} | {:.0} | {:.0} |",
            payload as f64 / n as f64,
            n as f64 / cpu,
            payload as f64 / 1e6 / cpu,
            cpu * 1e6 / n as f64,
            n as f64 / r.wall().as_secs_f64(),
            r.parquet_bytes as f64 / n as f64,
        );
        if name == "logs" {
            logs = Some((r, frames, payload, keep, pairs, compare));
        }
    }
    let Some((r, frames, payload, keep, pairs, compare)) = logs else { return };

    print_decode(&r, &frames, rounds, n);

    let baseline = python.as_deref().and_then(|py| {
        let path = dir.join("logs.frames");
        let mut f = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
        for frame in &frames {
            f.write_all(&(frame.len() as u32).to_le_bytes()).unwrap();
            f.write_all(frame).unwrap();
        }
        f.flush().unwrap();
        drop(f);
        python::run_baseline(py, &path, &keep, n)
    });

    print_phases(&r, baseline.as_ref(), n);

    if !pairs.is_empty() {
        python::print_anchors(&r, &pairs, &compare, n, payload);
    }

    if let Some(b) = baseline {
        python::print_baseline(&r, &b, n, payload);
    }
}

/// Where the logs pipeline's CPU time goes, phase by phase, beside the baseline's if it ran.
fn print_phases(r: &Round, baseline: Option<&python::Baseline>, n: usize) {
    let cpu = r.cpu().as_secs_f64();
    println!();
    println!("logs: where the CPU time goes");
    println!();
    println!(
        "| phase | sluice µs/event | sluice share |{}",
        if baseline.is_some() { " python µs/event |" } else { "" }
    );
    println!("| --- | ---: | ---: |{}", if baseline.is_some() { " ---: |" } else { "" });
    for (i, name) in PHASES.iter().enumerate() {
        let c = r.phases[i].cpu.as_secs_f64();
        let py = baseline
            .as_ref()
            .and_then(|b| b.phases.iter().find(|(k, _)| k == name))
            .map(|(_, s)| format!(" {:.2} |", s * 1e6 / n as f64))
            .unwrap_or_default();
        println!("| {name} | {:.2} | {:.0}% |{py}", c * 1e6 / n as f64, 100.0 * c / cpu);
    }
}
