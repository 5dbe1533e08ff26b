//! The columnar chain against the row-by-row one: the same payloads, good and hostile, through
//! every shipped pipeline's chain, give the same rows, the same drops and the same dead letters
//! with the same stage and reason.

use std::sync::Arc;

use arrow::record_batch::RecordBatch;
use bytes::Bytes;
use serde_json::{json, Value};

use crate::event::ack::Ack;
use crate::event::{Event, Message};
use crate::publish::sample::{Generator, Kind, Rng};
use crate::schema::{FieldType, Schema};
use crate::sink::encode;
use crate::transform::{BuildContext, Chain, Output, StageConfig};

fn schema(name: &str) -> Arc<Schema> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    Arc::new(Schema::load(&dir, name).unwrap())
}

/// The `transforms:` of a shipped pipeline file.
fn shipped(pipeline: &str) -> Vec<StageConfig> {
    let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join(format!("pipelines/{pipeline}.yaml"));
    let file: serde_yaml_ng::Value = serde_yaml_ng::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    crate::config::from_yaml_str(&serde_yaml_ng::to_string(&file["transforms"]).unwrap()).unwrap()
}

fn chain(configs: &[StageConfig], schema: &Arc<Schema>) -> Chain {
    let sinks = ["lake".to_string(), "audit".to_string()];
    Chain::build(configs, &BuildContext { pipeline: "p", schema, sinks: &sinks }).unwrap()
}

/// A sample event, then damaged or respelled one way in several.
fn payload(g: &mut Generator, r: &mut Rng) -> Vec<u8> {
    let mut v = g.next_event();
    let o = v.as_object_mut().unwrap();
    let pick = r.below(44);
    let mut text = None;
    match pick {
        0 => text = Some(serde_json::to_string_pretty(&v).unwrap()),
        1 => move_key(o, "severity", "level"),
        2 => move_key(o, "message", "msg"),
        3 => move_key(o, "timestamp", "ts"),
        4 => move_key(o, "timestamp", "time"),
        5 => {
            o.insert("ts".into(), json!(1_795_683_600_250i64));
        }
        6 => {
            o.insert("timestamp".into(), json!("2026-11-26 09:00:01"));
        }
        7 => {
            o.insert("timestamp".into(), json!("yesterday"));
        }
        8 => {
            o.remove("timestamp");
        }
        9 => {
            o.insert("timestamp".into(), Value::Null);
        }
        10 => {
            o.insert("colour".into(), json!("red"));
        }
        11 => {
            o.insert("host".into(), Value::Null);
        }
        12 => {
            o.remove("service");
        }
        13 => {
            o.insert("latency_ms".into(), json!("fast"));
        }
        14 => {
            o.insert("service".into(), json!(42));
        }
        15 => {
            o.insert("message".into(), json!("login ok password=hunter2 user=bob"));
        }
        16 => {
            o.insert("message".into(), json!("Authorization: Bearer abcdefgh12345678"));
        }
        17 => {
            o.insert("labels".into(), json!({"token": "t0p", "nested": [{"password": 1}], "ok": "x"}));
            o.insert("checks".into(), json!({"api_key": "k", "db": "ok"}));
        }
        18 => {
            o.insert("message".into(), json!("line\nbreak \"quoted\" é \u{1F600} \\ / tab\t"));
        }
        19 => text = Some(v.to_string().replacen('{', r#"{"service":"dup","#, 1)),
        20 => text = Some(v.to_string()[..30].to_owned()),
        21 => text = Some("[1]".into()),
        22 => return b"{\"service\": \"\xff\"}".to_vec(),
        23 => {
            o.insert("latency_ms".into(), json!(12));
        }
        24 => {
            o.insert("ts".into(), json!("2026-11-26T09:00:00Z"));
        }
        25 => {
            o.insert("version".into(), json!(7.5));
        }
        26 => text = Some(v.to_string().replace("\"service\"", "\"serv\\u0069ce\"")),
        27 => {
            o.insert("ingest_time".into(), json!("not a time"));
        }
        28 => {
            o.insert("labels".into(), Value::Null);
        }
        29 => text = Some(format!("  {}  \n", v)),
        30..=33 => return damaged(v.to_string().into_bytes(), r),
        _ => {}
    }
    text.unwrap_or_else(|| v.to_string()).into_bytes()
}

/// The text with one byte inserted, replaced or removed at random, from bytes that matter to a
/// JSON reader: whatever the row reader makes of it, the columnar path must make the same.
fn damaged(mut text: Vec<u8>, r: &mut Rng) -> Vec<u8> {
    const BYTES: &[u8] = b"\\\"u+-0e.{}[],: n\x01\x7f\xc3\xa9tf";
    let at = r.below(text.len() as u64 + 1) as usize;
    let b = *r.pick(BYTES);
    match r.below(3) {
        0 => text.insert(at, b),
        1 if at < text.len() => text[at] = b,
        _ if at < text.len() => drop(text.remove(at)),
        _ => text.push(b),
    }
    text
}

fn move_key(o: &mut serde_json::Map<String, Value>, from: &str, to: &str) {
    if let Some(v) = o.remove(from) {
        o.insert(to.into(), v);
    }
}

/// What became of one event, comparable between the two engines.
#[derive(Debug, PartialEq)]
enum Fate {
    /// The row as written, and the sinks it was routed to.
    Row(RecordBatch, Option<Vec<String>>),
    Dropped,
    Dead(String, String),
}

/// The event's row as the sinks would write it, without `ingest_time` (the wall clock).
fn row(schema: &Schema, e: &Event) -> Fate {
    let batch = encode::events_to_batch(schema, std::slice::from_ref(e)).unwrap();
    let keep: Vec<usize> =
        (0..batch.num_columns()).filter(|&i| batch.schema().field(i).name() != "ingest_time").collect();
    let routes = e.routes.as_ref().map(|r| r.iter().map(|s| s.to_string()).collect());
    Fate::Row(batch.project(&keep).unwrap(), routes)
}

fn events(kind: Kind, seed: u64, n: usize) -> Vec<Event> {
    let (mut g, mut r) = (Generator::new(kind, seed), Rng::new(seed));
    let publish = chrono::DateTime::parse_from_rfc3339("2026-11-26T09:30:00Z").unwrap().into();
    (0..n)
        .map(|i| {
            // Some ids come again: dedupe sees repeats inside and across batches.
            let id = if r.below(10) == 0 { format!("m{}", r.below(i as u64 + 1)) } else { format!("m{i}") };
            let attrs = [("seq".to_string(), i.to_string())].into_iter().collect();
            let data = Bytes::from(payload(&mut g, &mut r));
            Event::alone(Message::new(id, publish, attrs, data, Arc::from("projects/p/subscriptions/s")), Ack::none())
        })
        .collect()
}

fn seq(e: &Event) -> usize {
    e.attributes["seq"].parse().unwrap()
}

/// Compare both engines on one seed; returns how many rows were forwarded, and how many of those
/// on columns.
fn compare(configs: &[StageConfig], schema: &Arc<Schema>, kind: Kind, seed: u64) -> (usize, usize) {
    let n = 3_000;
    let mut rows = chain(configs, schema);
    let want: Vec<Fate> = events(kind, seed, n)
        .into_iter()
        .map(|e| match rows.process(e) {
            Output::Forward(e) => row(schema, &e),
            Output::Dropped => Fate::Dropped,
            Output::Dead(d) => Fate::Dead(d.stage, d.reason),
        })
        .collect();

    let mut batched = chain(configs, schema);
    let mut got: Vec<Option<Fate>> = (0..n).map(|_| None).collect();
    let (mut input, mut r, mut on_columns, mut forwarded) = (events(kind, seed, n), Rng::new(seed ^ 1), 0, 0);
    let mut kept = Vec::new();
    while !input.is_empty() {
        let take = (1 + r.below(300) as usize).min(input.len());
        let rest = input.split_off(take);
        let out = batched.process_batch(std::mem::replace(&mut input, rest));
        for e in out.forward {
            on_columns += usize::from(e.row.is_some());
            forwarded += 1;
            got[seq(&e)] = Some(row(schema, &e));
            kept.push(e);
        }
        for d in out.dead {
            got[seq(&d.event)] = Some(Fate::Dead(d.stage, d.reason));
        }
    }
    for (i, (want, got)) in want.into_iter().zip(got).enumerate() {
        let got = got.unwrap_or(Fate::Dropped);
        assert_eq!(got, want, "event {i} of seed {seed}");
    }
    gathered_as_alone(schema, &mut kept);
    fields_read_as_the_record_holds_them(schema, &kept);
    (forwarded, on_columns)
}

/// A forwarded row's single fields, read from its columns (as observers read them), are what
/// its record holds: the value, the text, the number, the time.
fn fields_read_as_the_record_holds_them(schema: &Schema, forwarded: &[Event]) {
    for row in forwarded.iter().filter_map(|e| e.row.as_ref()) {
        let record = row.record();
        for f in &schema.fields {
            let (name, held) = (f.name.as_str(), record.get(&f.name));
            assert_eq!(row.value(name).as_ref(), held, "{name}");
            let text = held.and_then(Value::as_str).filter(|_| f.ty != FieldType::Timestamp);
            assert_eq!(row.text(name).as_deref(), text, "{name}");
            assert_eq!(row.number(name), held.and_then(Value::as_f64), "{name}");
            let time = held.and_then(Value::as_str).and_then(crate::schema::parse_timestamp);
            assert_eq!(row.time(name), time, "{name}");
        }
        assert_eq!(row.value("no such field"), None);
    }
}

/// Rows from many chain batches and from JSON records, gathered into one batch as a sink does,
/// are the rows each gives alone: in order (runs of rows), reversed (one row at a time), and
/// taken from both ends in turn (back and forth between sources).
fn gathered_as_alone(schema: &Schema, forwarded: &mut [Event]) {
    for pass in 0..3 {
        let whole = encode::events_to_batch(schema, forwarded).unwrap();
        let alone: Vec<RecordBatch> =
            forwarded.iter().map(|e| encode::events_to_batch(schema, std::slice::from_ref(e)).unwrap()).collect();
        assert_eq!(whole, arrow::compute::concat_batches(&whole.schema(), &alone).unwrap());
        match pass {
            0 => forwarded.reverse(),
            _ => {
                // 0, n-1, 1, n-2, ...: row i goes to 2i, or from the back to 2(n-1-i)+1.
                let n = forwarded.len();
                let mut order: Vec<usize> =
                    (0..n).map(|i| if i < n.div_ceil(2) { 2 * i } else { 2 * (n - 1 - i) + 1 }).collect();
                (0..n).for_each(|i| {
                    while order[i] != i {
                        let j = order[i];
                        forwarded.swap(i, j);
                        order.swap(i, j);
                    }
                });
            }
        }
    }
}

#[test]
fn shipped_chains_give_what_the_row_chain_gives() {
    for (pipeline, schema_name, kind) in [
        ("logs", "log", Kind::Log),
        ("health", "health", Kind::Health),
        ("config-changes", "config_change", Kind::ConfigChange),
    ] {
        let schema = schema(schema_name);
        let configs = shipped(pipeline);
        for seed in [1, 2, 3] {
            let (forwarded, on_columns) = compare(&configs, &schema, kind, seed);
            if chain(&configs, &schema).is_columnar() {
                assert!(on_columns * 10 > forwarded * 8, "{pipeline}: {on_columns} of {forwarded} rows on columns");
            }
        }
    }
    for (pipeline, schema_name) in [("logs", "log"), ("health", "health"), ("config-changes", "config_change")] {
        assert!(chain(&shipped(pipeline), &schema(schema_name)).is_columnar(), "{pipeline} runs on columns");
    }
}

/// Chains shaped otherwise: renames of schema fields, stages in other orders, other options.
#[test]
fn other_chains_give_what_the_row_chain_gives() {
    let schema = schema("log");
    let chains = [
        "[{parse_json: {}}, {timestamp: {fields: [timestamp], if_missing: error}}, {validate: {unknown_fields: drop}}]",
        "[{parse_json: {}}, {rename: {fields: {level: severity, ts: timestamp}}}, {timestamp: {fields: [timestamp], if_missing: skip}}, \
          {metadata: {message_id: message_id, publish_time: ingest_time, attribute_fields: {seq: host}}}, {validate: {}}]",
        "[{parse_json: {}}, {dedupe: {key: {field: service}, window: 1m, max_keys: 5}}, {redact: {in_fields: [message, host], \
          fields: [labels, token]}}, {timestamp: {fields: [timestamp]}}, {metadata: {message_id: message_id}}, {validate: {}}]",
        "[{parse_json: {}}, {validate: {}}]",
        "[{parse_json: {}}, {rename: {fields: {level: severity}}}, {filter: {drop_if: {field: severity, eq: DEBUG}}}, \
          {route: {field: service, routes: {gateway: [lake], pricing: [], risk-engine: [lake, audit]}}}, \
          {set: {fields: {environment: prod, labels.team: core, latency_ms: 1.5}, if_missing: true}}, \
          {drop: {fields: [logger, labels.version, nothing.here]}}, {timestamp: {fields: [timestamp], if_missing: publish_time}}, \
          {metadata: {message_id: message_id}}, {validate: {}}]",
        "[{parse_json: {}}, {timestamp: {fields: [timestamp], if_missing: publish_time}}, {redact: {}}, \
          {metadata: {message_id: message_id, attributes: labels}}, {validate: {}}]",
        "[{parse_json: {}}, {filter: {keep_if: {any: [{field: message, matches: timeout}, {attribute: seq, ne: '3'}, \
          {field: labels.region, eq: us-central1}]}}}, {redact: {in_fields: [labels.region, labels, message], \
          patterns: [password, {name: digits, regex: '[0-9]{5,}'}]}}, {timestamp: {fields: [timestamp]}}, \
          {metadata: {message_id: message_id}}, {set: {fields: {team: core}}}, {validate: {}}]",
    ];
    for yaml in chains {
        let configs: Vec<StageConfig> = crate::config::from_yaml_str(yaml).unwrap();
        assert!(chain(&configs, &schema).is_columnar(), "{yaml}");
        for seed in [4, 5] {
            compare(&configs, &schema, Kind::Log, seed);
        }
    }
}

/// A batch that drops most of its rows hands on events that pin only what they read: their
/// Arrow batch holds the forwarded rows alone, and each event still reads its own message, row
/// and, refused, its original bytes. A batch that drops a few keeps its rows where they are.
#[test]
fn forwarded_events_of_a_mostly_dropped_batch_pin_only_their_rows() {
    let schema = schema("log");
    let mut chain = chain(&shipped("logs"), &schema);
    let mut g = Generator::new(Kind::Log, 9);
    let publish = chrono::DateTime::parse_from_rfc3339("2026-11-26T09:30:00Z").unwrap().into();
    let batch = |ids: &mut dyn Iterator<Item = String>, g: &mut Generator| -> Vec<Event> {
        ids.enumerate()
            .map(|(i, id)| {
                // Every 50th payload is not JSON: a dead letter with its bytes.
                let data = if i % 50 == 7 {
                    Bytes::from(format!("not json {i}"))
                } else {
                    Bytes::from(g.next_event().to_string())
                };
                let attrs = [("seq".to_string(), i.to_string())].into_iter().collect();
                Event::alone(
                    Message::new(id, publish, attrs, data, Arc::from("projects/p/subscriptions/s")),
                    Ack::none(),
                )
            })
            .collect()
    };
    // 400 messages, 100 ids: dedupe drops three in four.
    let events = batch(&mut (0..400).map(|i| format!("a{}", i % 100)), &mut g);
    let sent: Vec<Bytes> = events.iter().map(|e| e.data.clone()).collect();
    let out = chain.process_batch(events);
    assert_eq!(out.dead.len(), 8, "rows 7, 57, ... 357 are not JSON");
    assert_eq!(out.forward.len(), 98);
    for d in &out.dead {
        assert_eq!(d.event.data, sent[seq(&d.event)], "a dead letter keeps its original bytes");
    }
    for e in &out.forward {
        let row = e.row.as_ref().expect("on columns");
        assert_eq!(row.columns.batch.num_rows(), 98, "only the forwarded rows are kept");
        assert_eq!(e.data, sent[seq(e)]);
        assert_eq!(row.text("message_id").as_deref(), Some(e.message_id.as_str()), "its own row");
        let original: Value = serde_json::from_slice(&sent[seq(e)]).unwrap();
        assert_eq!(row.text("service"), original["service"].as_str().map(Into::into));
    }
    // 400 new ids and a few repeats: a tenth dropped, the rows kept where they are.
    let events = batch(&mut (0..400).map(|i| format!("b{}", i - i % 10 / 9)), &mut g);
    let out = chain.process_batch(events);
    assert!(out.forward.len() < 392 && out.forward.len() > 300, "{}", out.forward.len());
    let kept = out.forward[0].row.as_ref().unwrap().columns.batch.num_rows();
    assert_eq!(kept, 400, "rows kept in place when a few are dropped");
}
