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
