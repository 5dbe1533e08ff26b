//! Hostile input: the nasty inputs kept in `tests/fixtures/hostile/` (and the big ones, made here)
//! through the shipped `logs` chain, the push endpoint of the real binary, and config loading (what
//! `sluice validate` runs). Nothing panics; each input gets a precise answer: a dead letter naming
//! the stage and the reason, an HTTP status with the reason, or a problem naming file and field.
//! Property tests (bounded case counts) feed the same surfaces generated input; the open-ended
//! search is the cargo-fuzz targets in `fuzz/` (docs/security.md).

mod common;

use std::collections::HashMap;
use std::sync::Arc;

use proptest::prelude::*;
use serde_json::{json, Value};
use sluice::event::ack::Ack;
use sluice::event::{Event, Message};
use sluice::source::push::{decode, envelope, HEADER_MESSAGE_ID};
use sluice::transform::{Chain, Output};

fn fixture(path: &str) -> Vec<u8> {
    std::fs::read(common::repo().join("tests/fixtures/hostile").join(path)).unwrap()
}

/// What the `logs` chain must make of a payload.
#[derive(Debug, Clone, PartialEq)]
enum Fate {
    /// Refused: (stage, the reason's start).
    Dead(&'static str, &'static str),
    /// Written, with this `message` (checked when given).
    Kept(Option<&'static str>),
}

const PARSE: &str = "transforms[0].parse_json";
const VALIDATE: &str = "transforms[6].validate";
const TEN_MB: usize = 10_000_000;

fn log_line(extra: &str) -> String {
    format!(r#"{{"timestamp": "2026-11-26T09:00:00Z", "service": "api", "severity": "INFO"{extra}}}"#)
}

/// Every payload case: fixture files, plus deep nesting and a 10 MB message made here.
fn payload_cases() -> Vec<(String, Vec<u8>, Fate)> {
    use Fate::*;
    let files: &[(&str, Fate)] = &[
        ("invalid_utf8.json", Dead(PARSE, "payload is not valid JSON: invalid unicode code point at line 1 column 92")),
        (
            "overlong_utf8.json",
            Dead(PARSE, "payload is not valid JSON: invalid unicode code point at line 1 column 89"),
        ),
        ("bom.json", Dead(PARSE, "payload is not valid JSON: expected value at line 1 column 1")),
        ("nul_byte.json", Dead(PARSE, "payload is not valid JSON: control character (\\u0000-\\u001F) found")),
        ("escaped_nul.json", Kept(Some("a\u{0}b"))),
        (
            "duplicate_keys.json",
            Dead(PARSE, "payload is not valid JSON: duplicate key 'severity' at line 1 column 102"),
        ),
        ("huge_number.json", Dead(PARSE, "payload is not valid JSON: number out of range at line 1 column 111")),
        ("nan_text.json", Dead(PARSE, "payload is not valid JSON: expected value at line 1 column 107")),
        ("big_integer.json", Kept(None)),
        ("negative_zero.json", Kept(None)),
        ("truncated.json", Dead(PARSE, "payload is not valid JSON: EOF while parsing a string at line 1 column 94")),
        ("wrong_types.json", Dead(VALIDATE, "field 'service': expected a string, found 5")),
        ("missing_fields.json", Dead(VALIDATE, "field 'service' is required by schema 'log'")),
        ("not_an_object.json", Dead(PARSE, "payload must be a JSON object, found an array")),
        ("empty.json", Dead(PARSE, "payload is not valid JSON: EOF while parsing a value at line 1 column 0")),
    ];
    let mut cases: Vec<_> =
        files.iter().map(|(f, fate)| (f.to_string(), fixture(&format!("payload/{f}")), fate.clone())).collect();
    let too_deep = Dead(PARSE, "payload is not valid JSON: recursion limit exceeded");
    cases.push(("deep_arrays".into(), "[".repeat(100_000).into_bytes(), too_deep.clone()));
    cases.push(("deep_objects".into(), r#"{"a":"#.repeat(100_000).into_bytes(), too_deep));
    // As deep as the parser allows, inside a JSON column: every stage that walks the record copes.
    let labels = format!("{}1{}", "[".repeat(126), "]".repeat(126));
    cases.push((
        "deep_labels".into(),
        log_line(&format!(r#", "message": "m", "labels": {labels}"#)).into_bytes(),
        Kept(None),
    ));
    let message = "lorem ipsum dolor sit amet ".repeat(TEN_MB / 27);
    cases.push(("ten_mb".into(), log_line(&format!(r#", "message": "{message}""#)).into_bytes(), Kept(None)));
    cases
}

fn logs_chain() -> Chain {
    let config = sluice::config::load(&common::repo().join("config/sluice.yaml")).expect("shipped config loads");
    config.pipelines.iter().find(|p| p.name == "logs").unwrap().chain().unwrap()
}

fn run_chain(chain: &mut Chain, id: &str, data: &[u8]) -> Output {
    let publish_time = sluice::schema::parse_timestamp("2026-11-26T09:30:00Z").unwrap();
    chain.process(Event::alone(
        Message::new(id, publish_time, Default::default(), data.to_vec().into(), Arc::from("t")),
        Ack::none(),
    ))
}

#[test]
fn nasty_payloads_become_dead_letters_naming_stage_and_reason() {
    let mut chain = logs_chain();
    for (name, data, fate) in payload_cases() {
        match (run_chain(&mut chain, &name, &data), &fate) {
            (Output::Dead(d), Fate::Dead(stage, reason)) => {
                assert_eq!(d.stage, *stage, "{name}");
                assert!(d.reason.starts_with(reason), "{name}: {}", d.reason);
            }
            (Output::Forward(e), Fate::Kept(message)) => {
                if let Some(m) = message {
                    assert_eq!(e.record["message"], *m, "{name}");
                }
            }
            (out, fate) => panic!("{name}: expected {fate:?}, got {out:?}"),
        }
    }
}

#[test]
fn duplicate_keys_are_refused_not_resolved() {
    // serde_json alone keeps the last value, so the producer's DEBUG would win silently.
    let data = fixture("payload/duplicate_keys.json");
    assert_eq!(serde_json::from_slice::<Value>(&data).unwrap()["severity"], "DEBUG");
    let e = sluice::json::from_slice(&data).unwrap_err();
    assert!(sluice::json::is_duplicate_key(&e));
    // In an envelope they are a 400 (the request is wrong); in a payload a dead letter (above).
    let err = decode(fixture("push/duplicate_keys.json").into(), |_| None).unwrap_err();
    assert_eq!(err.to_string(), "invalid push envelope: duplicate key 'messageId' at line 1 column 59");
}

/// Push through the real binary: each payload in an envelope and unwrapped, then the malformed
/// requests. Every answer is checked, then the lake: each refused payload is one dead letter with
/// its stage, reason and original bytes; each kept one is one row.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_push_endpoint_answers_every_hostile_request_precisely() {
    let dir = tempfile::tempdir().unwrap();
    let lake = dir.path().join("lake");
    let sluice = common::Sluice::start(&lake, &[("SLUICE_BATCH_MAX_AGE", "200ms"), ("SLUICE_BATCH_MAX_IDLE", "50ms")]);
    let url = format!("{}/push/logs", sluice.url);
    let http = reqwest::Client::new();
    let post = |body: Vec<u8>, id: Option<String>| {
        let mut r = http.post(&url).body(body);
        if let Some(id) = id {
            r = r.header(HEADER_MESSAGE_ID, id);
        }
        async move {
            let r = r.send().await.unwrap();
            let status = r.status().as_u16();
            let text = r.text().await.unwrap();
            // Refusals are `{"error": reason}`: compare the reason.
            let reason = serde_json::from_str::<Value>(&text).ok().and_then(|v| v["error"].as_str().map(str::to_owned));
            (status, reason.unwrap_or(text))
        }
    };

    let cases = payload_cases();
    let mut expected: HashMap<String, (&Vec<u8>, &Fate)> = HashMap::new();
    for (name, data, fate) in &cases {
        let wrapped = envelope(data, &format!("env-{name}"), &Default::default(), "hostile").to_string().into_bytes();
        let (status, body) = post(wrapped.clone(), None).await;
        // Pub/Sub's largest message (10 MB, 13.3 MB in base64) fits the default http.max_body.
        assert_eq!(status, 200, "{name}: {body}");
        expected.insert(format!("env-{name}"), (data, fate));
        let (status, body) = post(data.clone(), Some(format!("raw-{name}"))).await;
        if data.is_empty() {
            assert_eq!(
                (status, body.as_str()),
                (400, "request body is empty; expected a Pub/Sub push envelope or an event")
            );
        } else {
            assert_eq!(status, 200, "raw {name}: {body}");
            expected.insert(format!("raw-{name}"), (data, fate));
        }
    }
    let refused = [
        ("invalid_base64.json", "message.data is not valid base64: Invalid symbol 32, offset 3."),
        ("missing_message_id.json", "message.messageId is missing; Pub/Sub always sends it"),
        ("wrong_type_data.json", "invalid push envelope: message.data: invalid type: integer `5`, expected a string"),
        (
            "wrong_type_attributes.json",
            "invalid push envelope: message.attributes.kind: invalid type: sequence, expected a string",
        ),
        ("duplicate_keys.json", "invalid push envelope: duplicate key 'messageId' at line 1 column 59"),
        ("bad_publish_time.json", "message.publishTime '1e400' is not an RFC 3339 timestamp"),
        ("whitespace_only.json", "request body is empty; expected a Pub/Sub push envelope or an event"),
    ];
    for (file, reason) in refused {
        assert_eq!(post(fixture(&format!("push/{file}")), None).await, (400, reason.to_owned()), "{file}");
    }
    let port = sluice.url.rsplit(':').next().unwrap().to_owned();
    assert!(sluice.stop().success());

    let kept = common::lake_ids(&lake, "logs");
    let dead: HashMap<String, serde_json::Map<String, Value>> = common::read_rows(&lake.join("dead-letters/logs"))
        .into_iter()
        .map(|r| (r["message_id"].as_str().unwrap().to_owned(), r))
        .collect();
    assert_eq!(kept.len() + dead.len(), expected.len(), "one outcome per accepted request");
    for (id, (data, fate)) in expected {
        match fate {
            Fate::Kept(_) => assert_eq!(kept.get(&id), Some(&1), "{id} written once"),
            Fate::Dead(stage, reason) => {
                let d = dead.get(&id).unwrap_or_else(|| panic!("{id} dead-lettered"));
                assert_eq!(d["stage"], *stage, "{id}");
                assert!(d["reason"].as_str().unwrap().starts_with(reason), "{id}: {}", d["reason"]);
                let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
                assert_eq!(d["data"], hex, "{id}: original bytes kept");
            }
        }
    }
    let log = std::fs::read_to_string(std::env::temp_dir().join(format!("sluice-{port}.log"))).unwrap();
    assert!(!log.contains("panicked"), "no panic in the log");
}

/// Each config fixture as `pipelines/logs.yaml`: (file, expected field, expected message start).
#[test]
fn hostile_config_files_are_refused_naming_file_and_field() {
    let cases: &[(&str, &str, &str)] = &[
        ("invalid_utf8.yaml", "", "cannot read: stream did not contain valid UTF-8"),
        ("nul_byte.yaml", "", "invalid YAML: control characters are not allowed"),
        ("duplicate_keys.yaml", "", "invalid YAML: duplicate key 'schema'"),
        ("wrong_types.yaml", "source.push", "invalid type: string \"yes please\", expected a boolean"),
        ("huge_number.yaml", "sinks[0].batch.max_rows", "invalid type: floating point `1.8446744073709552e+19`"),
        ("missing_field.yaml", "", "missing field `schema`"),
        ("truncated.yaml", "", "invalid YAML: "),
        ("aliases.yaml", "", "invalid YAML: repetition limit exceeded"),
        ("unit_overflow.yaml", "sinks[0].batch.max_age", "duration '99999999999999999999d' is too large"),
        ("bad_interpolation.yaml", "", "line 3: '${' is never closed"),
    ];
    let root = common::shipped_copy();
    let target = root.path().join("pipelines/logs.yaml");
    let check = |name: &str, text: &[u8], field: &str, message: &str| {
        std::fs::write(&target, text).unwrap();
        let problems = sluice::config::load(&root.path().join("config/sluice.yaml")).unwrap_err().0;
        let p = problems.iter().find(|p| p.file == target).unwrap_or_else(|| panic!("{name}: {problems:?}"));
        assert_eq!(p.field, field, "{name}: {p}");
        assert!(p.message.starts_with(message), "{name}: {p}");
    };
    for (file, field, message) in cases {
        check(file, &fixture(&format!("config/{file}")), field, message);
    }
    let deep = format!("name: logs\nsource: {{push: true}}\nschema: log\ntransforms: {}\n", "[".repeat(100_000));
    // Refused before libyaml, whose time grows with the square of the depth (minutes here).
    check("deep nesting", deep.as_bytes(), "", "invalid YAML: line 4: '[' and '{' nested more than 128 deep");
    let deep = format!("name: logs\nsource: {{push: true}}\nschema: log\ntransforms: {}\n", "{a: ".repeat(100_000));
    check("deep maps", deep.as_bytes(), "", "invalid YAML: line 4: '[' and '{' nested more than 128 deep");
    // A byte-order mark is allowed in YAML (unlike in payloads): the file loads.
    std::fs::write(&target, fixture("config/bom.yaml")).unwrap();
    sluice::config::load(&root.path().join("config/sluice.yaml")).unwrap();
}

#[test]
fn hostile_global_config_values_name_their_field() {
    let cases: &[(&str, &str, &str, &str)] = &[
        (
            "queue_capacity: 4096",
            "queue_capacity: 18446744073709551617",
            "limits.queue_capacity",
            "invalid type: floating",
        ),
        ("queue_capacity: 4096", "queue_capacity: -1", "limits.queue_capacity", "invalid value: integer `-1`"),
        ("max_bytes: 64MiB", "max_bytes: 1e400GiB", "limits.batch.max_bytes", "unknown size unit 'e400GiB'"),
        (
            "max_bytes: 64MiB",
            "max_bytes: 99999999999999999999GiB",
            "limits.batch.max_bytes",
            "size '99999999999999999999GiB' is too large",
        ),
        ("request_timeout: 60s", "request_timeout: NaNs", "http.request_timeout", "expected a duration"),
        (
            "max_delivery_attempts: ${SLUICE_MAX_DELIVERY_ATTEMPTS:-10}",
            "max_delivery_attempts: 1000000",
            "pubsub.max_delivery_attempts",
            "expected 5 to 100",
        ),
    ];
    for (from, to, field, message) in cases {
        let root = common::shipped_copy();
        common::edit(root.path(), "config/sluice.yaml", from, to);
        let file = root.path().join("config/sluice.yaml");
        let problems = sluice::config::load(&file).unwrap_err().0;
        assert_eq!(problems.len(), 1, "{to}: {problems:?}");
        assert_eq!(
            (problems[0].file.as_path(), problems[0].field.as_str()),
            (file.as_path(), *field),
            "{}",
            problems[0]
        );
        assert!(problems[0].message.starts_with(message), "{to}: {}", problems[0]);
    }
}

/// Arbitrary JSON values, nested a few levels.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(|f| serde_json::Number::from_f64(f).map_or(Value::Null, Value::Number)),
        ".{0,12}".prop_map(Value::String),
        prop::sample::select(vec!["timestamp", "service", "severity", "message", "2026-11-26T09:00:00Z", "INFO"])
            .prop_map(Value::from),
    ];
    leaf.prop_recursive(4, 32, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map(
                prop::sample::select(vec![
                    "timestamp",
                    "service",
                    "severity",
                    "message",
                    "labels",
                    "level",
                    "msg",
                    "x"
                ])
                .prop_map(str::to_owned),
                inner,
                0..6
            )
            .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, failure_persistence: None, ..ProptestConfig::default() })]

    #[test]
    fn push_decode_never_panics_on_bytes(body in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode(body.into(), |_| None);
    }

    #[test]
    fn push_decode_answers_any_envelope_shape(message in json_value(), id in json_value(), data in json_value()) {
        let mut m = message;
        if let Value::Object(o) = &mut m {
            o.insert("messageId".into(), id);
            o.insert("data".into(), data);
        }
        let body = json!({"message": m}).to_string();
        if let Ok(decoded) = decode(body.into(), |_| None) {
            prop_assert!(!decoded.message_id.is_empty());
        }
    }

    #[test]
    fn strict_json_reads_what_serde_json_reads(v in json_value()) {
        let text = v.to_string();
        prop_assert_eq!(sluice::json::from_slice(text.as_bytes()).unwrap(), serde_json::from_str::<Value>(&text).unwrap());
    }

    #[test]
    fn the_logs_chain_keeps_or_refuses_any_record(v in json_value(), raw in prop::collection::vec(any::<u8>(), 0..64)) {
        static CHAIN: std::sync::OnceLock<std::sync::Mutex<Chain>> = std::sync::OnceLock::new();
        let mut chain = CHAIN.get_or_init(|| std::sync::Mutex::new(logs_chain())).lock().unwrap();
        for data in [v.to_string().into_bytes(), raw] {
            match run_chain(&mut chain, "p", &data) {
                Output::Dead(d) => prop_assert!(!d.stage.is_empty() && !d.reason.is_empty()),
                Output::Forward(e) => prop_assert!(e.record.is_object()),
                Output::Dropped => {}
            }
        }
    }

    #[test]
    fn config_text_parses_or_names_a_problem(text in "[ -~\n]{0,200}", prefix in prop::sample::select(vec!["", "name: logs\n", "transforms:\n  - "])) {
        let text = format!("{prefix}{text}");
        if let Ok(t) = sluice::config::interpolate::interpolate(&text, |_| None) {
            let _ = sluice::config::from_yaml_str::<sluice::config::PipelineFile>(&t);
            let _ = sluice::config::from_yaml_str::<sluice::config::GlobalConfig>(&t);
        }
        let _ = sluice::config::units::parse_duration(&text);
        let _ = sluice::config::units::parse_bytes(&text);
    }
}
