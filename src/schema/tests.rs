use super::*;
use serde_json::json;

fn schema() -> Schema {
    serde_yaml_ng::from_str(
        r#"
name: t
time_field: ts
fields:
  - {name: ts, type: TIMESTAMP, mode: REQUIRED}
  - {name: n, type: INTEGER}
  - {name: msg, type: STRING}
  - {name: extra, type: JSON}
"#,
    )
    .unwrap()
}

#[test]
fn checks_required_types_and_unknowns() {
    let s = schema();
    s.check_definition().unwrap();
    s.check(&json!({"ts": "2026-01-01T00:00:00Z", "n": 3}), false).unwrap();
    assert_eq!(s.check(&json!({"n": 3}), false).unwrap_err(), "field 'ts' is required by schema 't'");
    assert_eq!(
        s.check(&json!({"ts": "2026-01-01T00:00:00Z", "n": "3"}), false).unwrap_err(),
        "field 'n': expected an integer within 64 bits, found \"3\""
    );
    assert_eq!(
        s.check(&json!({"ts": "2026-01-01T00:00:00Z", "x": 1}), false).unwrap_err(),
        "field 'x' is not in schema 't'"
    );
    s.check(&json!({"ts": "2026-01-01T00:00:00Z", "x": 1}), true).unwrap();
    assert!(s.check(&json!([1]), true).is_err());
}

/// `fields_of` and the one-walk check rely on a record's keys iterating in name order, as
/// serde_json's default map does (its `preserve_order` feature would break that).
#[test]
fn record_keys_iterate_in_name_order() {
    let r = json!({"zeta": 1, "Alpha": 2, "alpha": 3, "_x": 4, "a_b": 5, "ab": 6, "é": 7});
    let keys: Vec<&String> = r.as_object().unwrap().keys().collect();
    let mut sorted = keys.clone();
    sorted.sort();
    assert_eq!(keys, sorted);
}

#[test]
fn fields_of_pairs_keys_with_their_fields() {
    let s = schema();
    let r = json!({"aaa": 0, "extra": {}, "msg": "m", "n": 3, "ts": "2026-01-01T00:00:00Z", "zz": null});
    let got: Vec<(Option<usize>, &str)> =
        s.fields_of(r.as_object().unwrap()).map(|(f, k, _)| (f, k.as_str())).collect();
    assert_eq!(
        got,
        [(None, "aaa"), (Some(3), "extra"), (Some(2), "msg"), (Some(1), "n"), (Some(0), "ts"), (None, "zz")]
    );
}

/// Names whose prefixes differ order as the prefixes do: short names, shared heads, NUL bytes.
#[test]
fn prefixes_order_as_their_names() {
    let pieces = ["", "a", "b", "\0", "message_", "id", "é", "zz"];
    let mut r = crate::publish::sample::Rng::new(9);
    let mut name = || (0..r.below(4)).map(|_| *r.pick(&pieces)).collect::<String>();
    for _ in 0..20_000 {
        let (a, b) = (name(), name());
        if prefix(&a) != prefix(&b) {
            assert_eq!(prefix(&a).cmp(&prefix(&b)), a.cmp(&b), "{a:?} {b:?}");
        } else if a.len().min(b.len()) < 8 && !a.contains('\0') && !b.contains('\0') {
            assert_eq!(a, b, "equal prefixes of short names without NUL");
        }
    }
}

/// Names that share their first eight bytes are told apart by their text.
#[test]
fn fields_of_tells_apart_names_with_one_prefix() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    let s = Schema::load(&dir, "log").unwrap();
    let at = |name: &str| s.fields.iter().position(|f| f.name == name);
    let r = json!({"message": 1, "message_": 2, "message_i": 3, "message_id": 4, "message_idx": 5, "messag": 6});
    let got: Vec<(Option<usize>, &str)> =
        s.fields_of(r.as_object().unwrap()).map(|(f, k, _)| (f, k.as_str())).collect();
    let want: Vec<(Option<usize>, &str)> = r.as_object().unwrap().keys().map(|k| (at(k), k.as_str())).collect();
    assert_eq!(got, want);
    assert!(at("message").is_some() && at("message_id").is_some());
}

/// The one-walk check agrees with the field-by-field one on every record, good or bad.
#[test]
fn check_agrees_with_the_field_by_field_reading() {
    let s = schema();
    let names = ["ts", "n", "msg", "extra", "other", "a", "zz"];
    let values =
        [json!(null), json!("2026-01-01T00:00:00Z"), json!("text"), json!(3), json!(2.5), json!(true), json!({"k": 1})];
    let mut rng = crate::publish::sample::Rng::new(11);
    for _ in 0..20_000 {
        let mut obj = Map::new();
        for name in names {
            if rng.below(2) == 0 {
                obj.insert(name.to_string(), values[rng.below(values.len() as u64) as usize].clone());
            }
        }
        for allow_unknown in [false, true] {
            let slow = s.first_problem(&obj, allow_unknown);
            assert_eq!(s.check(&Value::Object(obj.clone()), allow_unknown), slow, "{obj:?}");
            assert_eq!(s.conforms(&obj, allow_unknown), slow.is_ok(), "{obj:?}");
        }
    }
}

#[test]
fn derives_arrow_and_bigquery_schemas() {
    let s = schema();
    let a = s.arrow_schema();
    assert_eq!(a.field(0).data_type(), &FieldType::Timestamp.arrow_type());
    assert!(!a.field(0).is_nullable());
    assert!(a.field(1).is_nullable());
    assert!(Arc::ptr_eq(&a, &s.arrow_schema()), "built once");
    let any_null = s.arrow_schema_nullable();
    assert!(any_null.fields().iter().all(|f| f.is_nullable()), "a chain's batch: every column nullable");
    let names = |a: &arrow::datatypes::Schema| {
        a.fields().iter().map(|f| (f.name().clone(), f.data_type().clone())).collect::<Vec<_>>()
    };
    assert_eq!(names(&any_null), names(&a), "the same columns and types");
    let bq = serde_json::to_value(s.bigquery_fields()).unwrap();
    assert_eq!(bq[1], json!({"name": "n", "type": "INTEGER", "mode": "NULLABLE"}));
}

#[test]
fn rejects_bad_definitions() {
    let mut s = schema();
    s.time_field = Some("n".into());
    assert_eq!(s.check_definition().unwrap_err(), "time_field: 'n' must be a TIMESTAMP field");
    let mut s = schema();
    s.fields[1].name = "ts".into();
    assert_eq!(s.check_definition().unwrap_err(), "fields[1].name: 'ts' is defined twice");
    let mut s = schema();
    s.table.cluster_by = vec!["msg".into(), "nope".into()];
    assert_eq!(s.check_definition().unwrap_err(), "table.cluster_by[1]: 'nope' is not one of the fields");
    let mut s = schema();
    s.table.partition_by = Some("msg".into());
    assert_eq!(s.check_definition().unwrap_err(), "table.partition_by: 'msg' must be a TIMESTAMP field");
}

#[test]
fn shipped_schemas_load() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    for name in ["log", "health", "config_change"] {
        Schema::load(&dir, name).unwrap();
    }
}
