//! `sluice validate` and config loading: each bad config is reported with its file, its field and
//! what was expected. Every case starts from a copy of the shipped config with one change.

mod common;

use std::path::{Path, PathBuf};

use std::process::Command;

use common::{edit, shipped_copy};
use sluice::config::{load_with_env, Problem};

fn env(name: &str) -> Option<String> {
    (name == "SET_VAR").then(|| "value".into())
}

fn problems(root: &Path) -> Vec<Problem> {
    match load_with_env(&root.join("config/sluice.yaml"), env) {
        Ok(_) => Vec::new(),
        Err(p) => p.0,
    }
}

/// (what is broken, file, text replaced, replacement, expected field, expected message part)
const CASES: &[(&str, &str, &str, &str, &str, &str)] = &[
    ("unknown global key", "config/sluice.yaml", "http:\n", "colour: blue\nhttp:\n", "colour",
     "unknown field `colour`, expected one of `instance`, `http`, `lake`, `push_auth`, `limits`, `pubsub`, `bigquery`, `health`, `console`, `secrets`, `pipelines_dir`, `schemas_dir`"),
    ("down before late", "config/sluice.yaml", "down_after: 5 ", "down_after: 1.5 ", "health.producers.down_after",
     "expected more intervals than late_after (2), found 1.5"),
    ("unknown producer pipeline", "config/sluice.yaml", "    late_after: 2", "    pipelines: [health, metrics]\n    late_after: 2",
     "health.producers.pipelines[1]", "no pipeline named 'metrics'; pipelines are: config-changes, health, logs"),
    ("bad producer interval", "config/sluice.yaml", "intervals: {}", "intervals: {billing: soon}",
     "health.producers.intervals.billing", "expected a duration"),
    ("oidc push auth without an audience", "config/sluice.yaml", "${SLUICE_PUSH_AUTH:-none}", "oidc", "push_auth.audience",
     "expected the push subscription's audience (mode is oidc)"),
    ("unknown push auth mode", "config/sluice.yaml", "${SLUICE_PUSH_AUTH:-none}", "iap", "push_auth.mode",
     "unknown variant `iap`, expected one of `none`, `oidc`, `token`"),
    ("bad listen address", "config/sluice.yaml", "${SLUICE_LISTEN:-127.0.0.1:8080}", "localhost:http", "http.listen",
     "invalid socket address syntax"),
    ("push linger too long", "config/sluice.yaml", "${SLUICE_PUSH_LINGER:-5ms}", "5s", "http.push_linger",
     "expected a short wait under 1s (every push request may wait it), found 5s"),
    ("push linger not a duration", "config/sluice.yaml", "${SLUICE_PUSH_LINGER:-5ms}", "soon", "http.push_linger",
     "expected a duration"),
    ("zero batch rows", "config/sluice.yaml", "max_rows: ${SLUICE_BATCH_MAX_ROWS:-10000} ", "max_rows: 0 ", "limits.batch.max_rows",
     "invalid value: integer `0`, expected a nonzero usize"),
    ("duration without a known unit", "config/sluice.yaml", "${SLUICE_BATCH_MAX_AGE:-5s}", "5 fortnights", "limits.batch.max_age",
     "unknown duration unit 'fortnights' in '5 fortnights'; expected ms, s, m, h or d"),
    ("unsupported lake scheme", "config/sluice.yaml", "${SLUICE_LAKE:-./data/lake}", "s3://bucket/lake", "lake.location",
     "expected gs://, file:// or a local path, found 's3://bucket/lake'"),
    ("lake endpoint with another scheme", "config/sluice.yaml", "${STORAGE_EMULATOR_HOST:-}", "ftp://127.0.0.1:4443", "lake.endpoint",
     "expected host:port or an http(s) URL, found 'ftp://127.0.0.1:4443'"),
    ("lake endpoint with a bad port", "config/sluice.yaml", "${STORAGE_EMULATOR_HOST:-}", "127.0.0.1:gcs", "lake.endpoint",
     "expected host:port or an http(s) URL, found 'http://127.0.0.1:gcs'"),
    ("instance name with a space", "config/sluice.yaml", "${SLUICE_INSTANCE:-local}", "\"my box\"", "instance",
     "expected letters, digits, '-' or '_' (it is part of object names), found 'my box'"),
    ("unset environment variable", "config/sluice.yaml", "${SLUICE_INSTANCE:-local}", "${NOT_SET_ANYWHERE}", "",
     "line 6: environment variable NOT_SET_ANYWHERE is not set and has no default (write ${NOT_SET_ANYWHERE:-default})"),
    ("invalid YAML", "config/sluice.yaml", "http:\n", "http: [\n", "", "invalid YAML:"),
    ("pipeline name differs from file", "pipelines/logs.yaml", "name: logs", "name: log", "name",
     "expected 'logs' (the file name without .yaml), found 'log'"),
    ("unknown stage", "pipelines/logs.yaml", "- parse_json: {}", "- parse_xml: {}", "transforms[0]",
     "unknown variant `parse_xml`, expected one of"),
    ("unknown schema", "pipelines/health.yaml", "schema: health", "schema: heath", "schema",
     "cannot read schema file"),
    ("unknown sink type", "pipelines/health.yaml", "type: lake", "type: s3", "sinks[0].type",
     "unknown variant `s3`, expected `lake`"),
    ("duplicate sink names", "pipelines/health.yaml", "sinks:\n", "sinks:\n  - {name: lake, type: lake}\n", "sinks[1].name",
     "'lake' is already the name of sinks[0]"),
    ("source with nothing to read", "pipelines/health.yaml", "  push: true\n  subscription: ${SLUICE_HEALTH_SUBSCRIPTION:-health-sluice}\n", "  push: false\n", "source",
     "expected `push: true`, a `subscription`, or both"),
    ("unknown key in source", "pipelines/health.yaml", "  push: true\n", "  push: true\n  pull: true\n", "source.pull",
     "unknown field `pull`, expected one of `push`, `subscription`, `topic`"),
    ("subscription used twice", "pipelines/logs.yaml", "${SLUICE_LOGS_SUBSCRIPTION:-logs-sluice}", "health-sluice", "source.subscription",
     "'health-sluice' is already consumed by"),
    ("zero rows in a sink override", "pipelines/health.yaml", "max_rows: 5000", "max_rows: 0", "sinks[0].batch.max_rows",
     "expected a number above zero"),
    ("unknown stage option", "pipelines/logs.yaml", "unknown_fields: reject", "unknown_fields: reject\n      strict: true", "transforms[6].validate.strict",
     "unknown field `strict`"),
];

#[test]
fn shipped_config_is_valid() {
    let root = shipped_copy();
    assert_eq!(problems(root.path()), Vec::<Problem>::new());
}

#[test]
fn each_bad_config_names_file_field_and_expectation() {
    for (what, file, from, to, field, message) in CASES {
        let root = shipped_copy();
        edit(root.path(), file, from, to);
        let found = problems(root.path());
        let hit = found.iter().find(|p| p.file.ends_with(file) && p.field == *field && p.message.contains(message));
        assert!(
            hit.is_some(),
            "{what}: expected {file}: {field}: …{message}…, got:\n{}",
            found.iter().map(|p| p.to_string()).collect::<Vec<_>>().join("\n")
        );
    }
    assert!(CASES.len() >= 10);
}

#[test]
fn push_without_a_push_auth_section_is_refused() {
    let root = shipped_copy();
    let path = root.path().join("config/sluice.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    // Drop the section and its indented lines: unauthenticated push must be chosen explicitly.
    let mut in_section = false;
    let kept: Vec<&str> = text
        .lines()
        .filter(|l| {
            in_section = l.starts_with("push_auth:") || (in_section && l.starts_with("  "));
            !in_section
        })
        .collect();
    std::fs::write(&path, kept.join("\n")).unwrap();
    let found = problems(root.path());
    assert_eq!(found.len(), 1, "{found:#?}");
    assert_eq!(found[0].field, "push_auth");
    assert!(found[0].message.contains("expected `push_auth` with `mode: oidc`"), "{}", found[0]);
}

#[test]
fn every_problem_is_reported_not_just_the_first() {
    let root = shipped_copy();
    edit(root.path(), "pipelines/logs.yaml", "name: logs", "name: log");
    edit(root.path(), "pipelines/health.yaml", "schema: health", "schema: heath");
    edit(root.path(), "config/sluice.yaml", "${SLUICE_INSTANCE:-local}", "\"a b\"");
    let found = problems(root.path());
    let fields: Vec<&str> = found.iter().map(|p| p.field.as_str()).collect();
    assert_eq!(fields, ["instance", "schema", "name"], "{found:#?}");
}

#[test]
fn validate_command_prints_file_and_field_and_fails() {
    let root = shipped_copy();
    edit(root.path(), "pipelines/health.yaml", "type: lake", "type: s3");
    let cfg: PathBuf = root.path().join("config/sluice.yaml");
    let out = Command::new(env!("CARGO_BIN_EXE_sluice")).args(["validate", "--config"]).arg(&cfg).output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(out.status.code(), Some(1), "{stdout}");
    assert!(stdout.contains("pipelines/health.yaml: sinks[0].type: unknown variant `s3`, expected `lake`"), "{stdout}");
    assert!(stdout.contains("1 problem(s) found"), "{stdout}");

    let out = Command::new(env!("CARGO_BIN_EXE_sluice")).current_dir(common::repo()).arg("validate").output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "shipped config validates: {stdout}");
    assert!(stdout.contains("ok (3 pipelines: config-changes, health, logs)"), "{stdout}");
}

#[test]
fn schema_command_prints_bigquery_json() {
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(common::repo())
        .args(["schema", "log"])
        .output()
        .unwrap();
    assert!(out.status.success());
    let fields: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap();
    assert_eq!(
        fields[0],
        serde_json::json!({"name": "timestamp", "type": "TIMESTAMP", "mode": "REQUIRED",
        "description": "When the line was written (UTC)."})
    );
    let out = Command::new(env!("CARGO_BIN_EXE_sluice"))
        .current_dir(common::repo())
        .args(["schema", "nope"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("cannot read schema file schemas/nope.yaml"));
}

#[test]
fn pubsub_settings_are_checked_when_pulling() {
    let root = shipped_copy();
    edit(
        root.path(),
        "config/sluice.yaml",
        "max_outstanding_messages: ${SLUICE_MAX_OUTSTANDING_MESSAGES:-20000}",
        "max_outstanding_messages: 2000",
    );
    edit(
        root.path(),
        "config/sluice.yaml",
        "max_delivery_attempts: ${SLUICE_MAX_DELIVERY_ATTEMPTS:-10}",
        "max_delivery_attempts: 500",
    );
    let pulling = |k: &str| match k {
        "SLUICE_PUBSUB" => Some("true".to_string()),
        _ => None,
    };
    let found = match load_with_env(&root.path().join("config/sluice.yaml"), pulling) {
        Ok(_) => panic!("expected problems"),
        Err(p) => p.0,
    };
    let lines: Vec<String> = found.iter().map(|p| format!("{}: {}", p.field, p.message)).collect();
    assert!(
        lines.contains(&"pubsub.max_delivery_attempts: expected 5 to 100 (Pub/Sub's limits), found 500".to_string()),
        "{lines:#?}"
    );
    let too_big =
        found.iter().find(|p| p.file.ends_with("pipelines/logs.yaml") && p.field == "sinks[0].batch.max_rows");
    assert!(
        too_big.is_some_and(|p| p.message.starts_with("10000 is more than pubsub.max_outstanding_messages (2000)")),
        "{lines:#?}"
    );
    // The same file with pulling off has no flow-control conflict to report.
    let off = load_with_env(&root.path().join("config/sluice.yaml"), |_| None).err().unwrap().0;
    assert!(off.iter().all(|p| p.field != "sinks[0].batch.max_rows"), "{off:#?}");
}
