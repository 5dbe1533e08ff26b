//! The lake on GCS, against a real fake-gcs-server: sluice's JSON-API store passes
//! object_store's own conformance suite, serves a Parquet reader, and the `sluice` binary writes
//! its lake and dead letters into a bucket, row for row, riding out an outage of the server.

mod common;

use std::sync::Arc;

use bytes::Bytes;
use common::FakeGcs;
use futures::TryStreamExt;
use object_store::integration;
use object_store::path::Path;
use object_store::{ObjectStore, ObjectStoreExt, PutMode, PutPayload};
use sluice::store::gcs::GcsStore;

/// An emulator with one empty bucket, and sluice's store for it.
fn bucket(name: &str) -> (FakeGcs, Arc<dyn ObjectStore>) {
    let gcs = FakeGcs::start();
    gcs.create_bucket(name);
    let store = gcs.store(name);
    (gcs, store)
}

#[tokio::test]
async fn put_get_ranges_head_list_delete_copy_conform() {
    let (_gcs, store) = bucket("conform");
    integration::put_get_delete_list(store.as_ref()).await;
    integration::list_uses_directories_correctly(store.as_ref()).await;
    integration::list_with_delimiter(store.as_ref()).await;
    integration::list_with_offset_exclusivity(store.as_ref()).await;
    integration::rename_and_copy(store.as_ref()).await;
    integration::copy_if_not_exists(store.as_ref()).await;
    integration::copy_rename_nonexistent_object(store.as_ref()).await;
    let err = integration::get_nonexistent_object(store.as_ref(), None).await.unwrap_err();
    assert!(matches!(err, object_store::Error::NotFound { .. }), "{err}");
}

#[tokio::test]
async fn conditional_puts_and_gets_conform() {
    // Versioned, as the suite reads an old generation back by its version.
    let gcs = FakeGcs::start();
    gcs.create_versioned_bucket("conditions");
    let store = gcs.store("conditions");
    integration::get_opts(store.as_ref()).await;
    // Create is ifGenerationMatch=0, Update is ifGenerationMatch=<generation>; includes a race
    // of five writers incrementing one counter through compare-and-swap.
    integration::put_opts(store.as_ref(), true).await;
}

#[tokio::test]
async fn multipart_uploads_conform() {
    let (_gcs, store) = bucket("multipart");
    integration::stream_get(store.as_ref()).await;
    integration::multipart_out_of_order(store.as_ref()).await;
    integration::multipart_race_condition(store.as_ref(), true).await;
}

#[tokio::test]
async fn listings_follow_page_tokens() {
    let gcs = FakeGcs::start();
    gcs.create_bucket("pages");
    let store = GcsStore::new("pages", Some(&gcs.url)).unwrap().with_page_size(2);
    let mut names: Vec<String> = (0..7).map(|i| format!("p/dt=2026-11-26/hour={i:02}/f.parquet")).collect();
    names.extend((0..3).map(|i| format!("p/top-{i}")));
    for n in &names {
        store.put(&Path::from(n.as_str()), PutPayload::from_static(b"x")).await.unwrap();
    }
    let mut listed: Vec<String> =
        store.list(Some(&Path::from("p"))).map_ok(|m| m.location.to_string()).try_collect().await.unwrap();
    listed.sort();
    names.sort();
    assert_eq!(listed, names, "10 objects over 5 pages");

    let r = store.list_with_delimiter(Some(&Path::from("p"))).await.unwrap();
    let objects: Vec<String> = r.objects.iter().map(|m| m.location.to_string()).collect();
    assert_eq!(objects, ["p/top-0", "p/top-1", "p/top-2"]);
    assert_eq!(r.common_prefixes, [Path::from("p/dt=2026-11-26")]);
    let r = store.list_with_delimiter(Some(&Path::from("p/dt=2026-11-26"))).await.unwrap();
    assert_eq!(r.common_prefixes.len(), 7);
}

#[tokio::test]
async fn create_if_absent_never_overwrites() {
    let (_gcs, store) = bucket("create");
    let path = Path::from("lake/a.parquet");
    store.put_opts(&path, PutPayload::from_static(b"first"), PutMode::Create.into()).await.unwrap();
    let err = store.put_opts(&path, PutPayload::from_static(b"second"), PutMode::Create.into()).await.unwrap_err();
    assert!(matches!(err, object_store::Error::AlreadyExists { .. }), "{err}");
    assert!(!sluice::store::gcs::retryable(&err), "a lost race is not retried");
    assert_eq!(store.get(&path).await.unwrap().bytes().await.unwrap(), Bytes::from_static(b"first"));
}

#[tokio::test]
async fn a_missing_bucket_is_not_found_and_a_stopped_server_is_retryable() {
    let (mut gcs, store) = bucket("present");
    let other = gcs.store("absent");
    let err = other.put(&Path::from("x"), PutPayload::from_static(b"x")).await.unwrap_err();
    assert!(matches!(err, object_store::Error::NotFound { .. }), "{err}");
    gcs.stop();
    let err = store.put(&Path::from("x"), PutPayload::from_static(b"x")).await.unwrap_err();
    assert!(matches!(err, object_store::Error::Generic { .. }) && sluice::store::gcs::retryable(&err), "{err}");
}

#[tokio::test]
#[allow(deprecated)] // ParquetObjectReader: still the stock reader over a `dyn ObjectStore`.
async fn a_parquet_reader_reads_row_groups_by_range() {
    use parquet::arrow::async_reader::{ParquetObjectReader, ParquetRecordBatchStreamBuilder};
    let (_gcs, store) = bucket("reader");
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
    let schema = sluice::schema::Schema::load(&dir, "config_change").unwrap();
    let records: Vec<serde_json::Value> = (0..1000)
        .map(|i| serde_json::json!({"timestamp": "2026-11-26T09:15:00Z", "service": "s", "key": format!("k{i}"), "version": i, "message_id": format!("m{i}")}))
        .collect();
    let batch = sluice::sink::encode::to_record_batch(&schema, &records.iter().collect::<Vec<_>>()).unwrap();
    let bytes = sluice::sink::encode::to_parquet(&batch).unwrap();
    let path = Path::from("lake/config/x.parquet");
    store.put(&path, bytes.into()).await.unwrap();

    let reader = ParquetObjectReader::new(store.clone(), path);
    let stream = ParquetRecordBatchStreamBuilder::new(reader).await.unwrap().build().unwrap();
    let batches: Vec<_> = stream.try_collect().await.unwrap();
    let rows: usize = batches.iter().map(|b| b.num_rows()).sum();
    assert_eq!(rows, 1000);
    let keys = batches[0].column_by_name("key").unwrap();
    let keys = keys.as_any().downcast_ref::<arrow::array::StringArray>().unwrap();
    assert_eq!((keys.value(0), keys.value(999)), ("k0", "k999"));
}

/// `sluice publish` of `n` sample config changes (seed `seed`) to a running sluice; returns its
/// report line once it has finished.
fn publish(sluice_url: &str, n: u64, seed: u64) -> std::process::Child {
    std::process::Command::new(env!("CARGO_BIN_EXE_sluice"))
        .args(["publish", "--pipeline", "config-changes", "-n", &n.to_string(), "--seed", &seed.to_string()])
        .args(["--url", sluice_url])
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap()
}

fn finished(child: std::process::Child) -> String {
    let out = child.wait_with_output().unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "publish failed: {stderr}");
    stderr
}

/// A `sluice run` whose lake is `gs://<bucket>/lake` on the emulator at `endpoint`.
fn sluice_on(endpoint: &str, bucket: &str) -> common::Sluice {
    let lake = format!("gs://{bucket}/lake");
    common::Sluice::start_with(
        std::path::Path::new(&lake),
        &[("STORAGE_EMULATOR_HOST", endpoint.to_owned()), ("SLUICE_BATCH_MAX_AGE", "500ms".into())],
    )
}

type Row = serde_json::Map<String, serde_json::Value>;

/// Each sample (seeds and counts as published) is in `rows` with its values, and nothing else is.
fn assert_samples(rows: &[Row], published: &[(u64, u64)]) {
    use std::collections::HashMap;
    let by_id: HashMap<&str, &Row> = rows.iter().map(|r| (r["message_id"].as_str().unwrap(), r)).collect();
    let total: u64 = published.iter().map(|(_, n)| n).sum();
    assert_eq!(by_id.len() as u64, total, "distinct message ids");
    for &(seed, n) in published {
        let mut gen = sluice::publish::sample::Generator::new(sluice::publish::sample::Kind::ConfigChange, seed);
        for i in 0..n {
            let sent = gen.next_event();
            let id = format!("sample-{seed}-{i}");
            let row = by_id.get(id.as_str()).unwrap_or_else(|| panic!("{id} is in the lake"));
            let instant = |v: &serde_json::Value| chrono::DateTime::parse_from_rfc3339(v.as_str().unwrap()).unwrap();
            assert_eq!(instant(&row["timestamp"]), instant(&sent["timestamp"]), "timestamp of {id}");
            for f in ["service", "key", "version", "author", "reason"] {
                assert_eq!(row[f], sent[f], "{f} of {id}");
            }
            for f in ["old_value", "new_value"] {
                let v: serde_json::Value = serde_json::from_str(row[f].as_str().unwrap()).unwrap();
                assert_eq!(v, sent[f], "{f} of {id}");
            }
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sluice_writes_its_lake_and_dead_letters_into_a_bucket() {
    let gcs = FakeGcs::start();
    gcs.create_bucket("sluice-lake");
    // STORAGE_EMULATOR_HOST as some tools write it: host:port, no scheme.
    let sluice = sluice_on(gcs.url.trim_start_matches("http://"), "sluice-lake");

    let report = finished(publish(&sluice.url, 500, 5));
    assert!(report.contains("500 delivered, 0 rejected, 0 failed"), "{report}");
    let client = reqwest::Client::new();
    let poison: [(&str, &[u8]); 2] =
        [("bad-json", b"{\"service\": "), ("bad-field", br#"{"service": "s", "key": "k", "version": 1, "colour": 2}"#)];
    for (id, data) in poison {
        let body = sluice::source::push::envelope(data, id, &Default::default(), "s").to_string();
        let r = client.post(format!("{}/push/config-changes", sluice.url)).body(body).send().await.unwrap();
        assert_eq!(r.status(), 200, "{id}: {}", r.text().await.unwrap());
    }
    assert!(sluice.stop().success(), "clean exit after SIGTERM");

    // Data files only (sluice also keeps its own state under `lake/_sluice/`).
    let mut objects = gcs.objects("sluice-lake", "lake/config-changes").await;
    objects.extend(gcs.objects("sluice-lake", "lake/dead-letters").await);
    assert!(objects.len() >= 2, "{objects:?}");
    for (name, bytes) in &objects {
        assert!(
            name.starts_with("lake/config-changes/dt=2026-11-26/hour=09/test-")
                || name.starts_with("lake/dead-letters/config-changes/dt="),
            "{name}"
        );
        assert!(name.ends_with(".parquet") && bytes.starts_with(b"PAR1") && bytes.ends_with(b"PAR1"), "{name}");
    }
    assert_samples(&gcs.rows("sluice-lake", "lake/config-changes").await, &[(5, 500)]);

    let dead = gcs.rows("sluice-lake", "lake/dead-letters/config-changes").await;
    assert_eq!(dead.len(), poison.len(), "{dead:#?}");
    for (id, data) in poison {
        let d = dead.iter().find(|d| d["message_id"] == id).unwrap_or_else(|| panic!("{id} in dead letters"));
        let hex: String = data.iter().map(|b| format!("{b:02x}")).collect();
        assert_eq!(d["data"], hex, "{id}: original bytes kept");
        assert_eq!(d["pipeline"], "config-changes");
    }
    let stage = |id: &str| dead.iter().find(|d| d["message_id"] == id).unwrap()["stage"].as_str().unwrap().to_owned();
    assert!(stage("bad-json").ends_with("parse_json") && stage("bad-field").ends_with("validate"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn events_arriving_while_the_server_is_down_wait_and_are_not_lost() {
    let root = tempfile::tempdir().unwrap();
    // The filesystem backend keeps the bucket and what was written across the restart.
    let mut gcs = FakeGcs::start_persistent(root.path());
    gcs.create_bucket("outage");
    let sluice = sluice_on(&gcs.url, "outage");
    let report = finished(publish(&sluice.url, 100, 11));
    assert!(report.contains("100 delivered, 0 rejected, 0 failed"), "{report}");

    gcs.stop();
    let during = publish(&sluice.url, 300, 12);
    std::thread::sleep(std::time::Duration::from_secs(4));
    gcs.restart();
    let report = finished(during);
    assert!(report.contains("300 delivered, 0 rejected, 0 failed"), "{report}");
    let port = sluice.url.rsplit(':').next().unwrap().to_owned();
    assert!(sluice.stop().success());

    // The outage was felt: writes failed and were retried.
    let log = std::fs::read_to_string(std::env::temp_dir().join(format!("sluice-{port}.log"))).unwrap();
    assert!(log.contains("write failed; retrying"), "no retried write in the sluice log");
    assert_samples(&gcs.rows("outage", "lake/config-changes").await, &[(11, 100), (12, 300)]);
}
