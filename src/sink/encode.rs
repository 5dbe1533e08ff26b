//! Records -> Arrow `RecordBatch` -> Parquet bytes (zstd, statistics on, dictionaries where values
//! repeat), driven by the schema.

use std::sync::Arc;

use arrow::array::{
    ArrayRef, BinaryBuilder, BooleanBuilder, Float64Builder, Int64Builder, StringBuilder, TimestampMicrosecondBuilder,
};
use arrow::record_batch::RecordBatch;
use base64::Engine;
use bytes::Bytes;
use parquet::arrow::ArrowWriter;
use parquet::basic::{Compression, ZstdLevel};
use parquet::file::properties::{EnabledStatistics, WriterProperties};
use parquet::schema::types::ColumnPath;
use serde_json::Value;

use super::dictionary;
use crate::event::Event;
use crate::schema::{parse_timestamp, Field, FieldType, Schema};
use crate::transform::columnar::Columns;

/// Rows per Parquet row group: large enough for good compression and pruning, small enough
/// that a reader streams a file in bounded memory.
pub const ROW_GROUP_ROWS: usize = 64 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum EncodeError {
    #[error("row {row}, field '{field}': {reason}")]
    Value { row: usize, field: String, reason: String },
    #[error("arrow: {0}")]
    Arrow(#[from] arrow::error::ArrowError),
    #[error("parquet: {0}")]
    Parquet(#[from] parquet::errors::ParquetError),
}

/// Every record's value for every schema field, column after column (`cells[field * rows + row]`),
/// null as absent. Each record's keys are walked once beside the schema's names
/// ([`Schema::fields_of`]), rather than each record searched once per column: a batch of records
/// is larger than the caches, and a search touches every key's text.
fn cells<'a>(schema: &Schema, records: &[&'a Value]) -> Vec<Option<&'a Value>> {
    let rows = records.len();
    let mut cells = vec![None; schema.fields.len() * rows];
    for (row, record) in records.iter().enumerate() {
        let Some(obj) = record.as_object() else { continue };
        for (field, _, v) in schema.fields_of(obj) {
            if let Some(i) = field {
                cells[i * rows + row] = Some(v).filter(|v| !v.is_null());
            }
        }
    }
    cells
}

/// Build one Arrow batch from records that already passed `Schema::check`.
pub fn to_record_batch(schema: &Schema, records: &[&Value]) -> Result<RecordBatch, EncodeError> {
    let cells = cells(schema, records);
    let columns = (schema.fields.iter().enumerate())
        .map(|(fi, f)| encode_column(f, &cells[fi * records.len()..(fi + 1) * records.len()]))
        .collect::<Result<Vec<ArrayRef>, EncodeError>>()?;
    Ok(RecordBatch::try_new(schema.arrow_schema(), columns)?)
}

/// One field's column from its cells, one per record.
fn encode_column(f: &Field, column: &[Option<&Value>]) -> Result<ArrayRef, EncodeError> {
    let values = column.iter().copied();
    let bad = |row: usize, reason: &str| EncodeError::Value { row, field: f.name.clone(), reason: reason.into() };
    Ok(match f.ty {
        FieldType::String => {
            // The column's values are walked twice for text: once to size its buffer.
            let text_bytes = column.iter().flatten().filter_map(|v| v.as_str()).map(str::len).sum();
            let mut b = StringBuilder::with_capacity(column.len(), text_bytes);
            for (i, v) in values.enumerate() {
                match v {
                    None => b.append_null(),
                    Some(v) => b.append_value(v.as_str().ok_or_else(|| bad(i, "expected a string"))?),
                }
            }
            Arc::new(b.finish())
        }
        FieldType::Json => json_column(column),
        FieldType::Int64 => {
            let mut b = Int64Builder::with_capacity(column.len());
            for (i, v) in values.enumerate() {
                b.append_option(v.map(|v| v.as_i64().ok_or_else(|| bad(i, "expected an integer"))).transpose()?);
            }
            Arc::new(b.finish())
        }
        FieldType::Float64 => {
            let mut b = Float64Builder::with_capacity(column.len());
            for (i, v) in values.enumerate() {
                b.append_option(v.map(|v| v.as_f64().ok_or_else(|| bad(i, "expected a number"))).transpose()?);
            }
            Arc::new(b.finish())
        }
        FieldType::Bool => {
            let mut b = BooleanBuilder::with_capacity(column.len());
            for (i, v) in values.enumerate() {
                b.append_option(v.map(|v| v.as_bool().ok_or_else(|| bad(i, "expected a boolean"))).transpose()?);
            }
            Arc::new(b.finish())
        }
        FieldType::Timestamp => {
            let mut b = TimestampMicrosecondBuilder::with_capacity(column.len()).with_timezone("+00:00");
            for (i, v) in values.enumerate() {
                let t = v
                    .map(|v| {
                        v.as_str()
                            .and_then(parse_timestamp)
                            .map(|t| t.timestamp_micros())
                            .ok_or_else(|| bad(i, "expected an RFC 3339 timestamp"))
                    })
                    .transpose()?;
                b.append_option(t);
            }
            Arc::new(b.finish())
        }
        FieldType::Bytes => bytes_column(column, bad)?,
    })
}

/// A JSON column: each value as compact JSON text.
fn json_column(column: &[Option<&Value>]) -> ArrayRef {
    let mut b = StringBuilder::with_capacity(column.len(), column.len() * 32);
    // Compact JSON text, as `Value`'s `Display` writes it, without the formatter between.
    let mut text = Vec::new();
    for v in column.iter().copied() {
        match v {
            None => b.append_null(),
            Some(v) => {
                text.clear();
                serde_json::to_writer(&mut text, v).expect("a Value always serializes");
                b.append_value(std::str::from_utf8(&text).expect("serde_json writes UTF-8"));
            }
        }
    }
    Arc::new(b.finish())
}

/// A BYTES column from base64 text.
fn bytes_column(column: &[Option<&Value>], bad: impl Fn(usize, &str) -> EncodeError) -> Result<ArrayRef, EncodeError> {
    let mut b = BinaryBuilder::with_capacity(column.len(), column.len() * 64);
    for (i, v) in column.iter().copied().enumerate() {
        match v {
            None => b.append_null(),
            Some(v) => {
                let raw = v
                    .as_str()
                    .and_then(|s| base64::engine::general_purpose::STANDARD.decode(s).ok())
                    .ok_or_else(|| bad(i, "expected base64 text"))?;
                b.append_value(raw);
            }
        }
    }
    Ok(Arc::new(b.finish()))
}

/// One Arrow batch of the events' records, in order: rows held in a chain's columns are gathered
/// from them, JSON records (which passed `Schema::check`) are encoded first.
pub fn events_to_batch(schema: &Schema, events: &[Event]) -> Result<RecordBatch, EncodeError> {
    let json: Vec<&Value> = events.iter().filter(|e| e.row.is_none()).map(|e| &e.record).collect();
    if json.len() == events.len() {
        return to_record_batch(schema, &json);
    }
    // Sources: the JSON records' batch first, then each chain batch the rows come from.
    let mut sources: Vec<RecordBatch> = vec![to_record_batch(schema, &json)?];
    let mut seen: Vec<*const Columns> = vec![std::ptr::null()];
    let mut json_rows = 0..;
    let mut indices = Vec::with_capacity(events.len());
    // Rows come in runs from one chain batch, so the previous row's source is looked at first: a
    // batch of 10,000 rows gathered from 100 chain batches of 100 would otherwise scan 50 a row.
    let mut last = 0;
    for e in events {
        let Some(row) = &e.row else {
            indices.push((0, json_rows.next().expect("unbounded")));
            continue;
        };
        let at = Arc::as_ptr(&row.columns);
        let source = match seen[last] == at {
            true => last,
            false => match seen.iter().position(|&p| p == at) {
                Some(i) => i,
                None => {
                    seen.push(at);
                    sources.push(row.columns.batch.clone());
                    sources.len() - 1
                }
            },
        };
        last = source;
        indices.push((source, row.row));
    }
    let runs = runs(&indices);
    // A chain forwards its rows in order, so they mostly come in long runs: each run is sliced and
    // the slices copied whole, where gathering them would copy row by row.
    let in_runs = runs.len() * 8 <= indices.len();
    let columns = (0..schema.fields.len())
        .map(|c| {
            if in_runs {
                let slices: Vec<ArrayRef> =
                    runs.iter().map(|&(s, row, n)| sources[s].column(c).slice(row, n)).collect();
                arrow::compute::concat(&slices.iter().map(AsRef::as_ref).collect::<Vec<_>>())
            } else {
                let arrays: Vec<&dyn arrow::array::Array> = sources.iter().map(|b| b.column(c).as_ref()).collect();
                arrow::compute::interleave(&arrays, &indices)
            }
        })
        .collect::<Result<Vec<_>, _>>()?;
    Ok(RecordBatch::try_new(schema.arrow_schema(), columns)?)
}

/// `(source, row)` pairs as runs of consecutive rows of one source: `(source, first row, rows)`.
fn runs(indices: &[(usize, usize)]) -> Vec<(usize, usize, usize)> {
    let mut runs: Vec<(usize, usize, usize)> = Vec::new();
    for &(source, row) in indices {
        match runs.last_mut() {
            Some((s, first, n)) if *s == source && *first + *n == row => *n += 1,
            _ => runs.push((source, row, 1)),
        }
    }
    runs
}

/// zstd level of the lake's Parquet files: 1, the default of parquet-rs and Arrow C++. On log
/// rows level 3 made files no smaller (51 and 50 bytes per row in `scripts/bench hot_path`)
/// and took a quarter more instructions to encode.
pub const ZSTD_LEVEL: i32 = 1;

/// The lake's Parquet settings for this batch: the named columns are written without a
/// dictionary ([`dictionary::plain_columns`]).
pub fn writer_properties(plain_columns: &[String]) -> WriterProperties {
    let builder = WriterProperties::builder()
        .set_compression(Compression::ZSTD(ZstdLevel::try_new(ZSTD_LEVEL).expect("valid zstd level")))
        .set_statistics_enabled(EnabledStatistics::Page)
        .set_max_row_group_row_count(Some(ROW_GROUP_ROWS))
        .set_created_by(concat!("sluice ", env!("CARGO_PKG_VERSION")).into());
    plain_columns
        .iter()
        .fold(builder, |b, name| b.set_column_dictionary_enabled(ColumnPath::from(name.as_str()), false))
        .build()
}

/// Records that passed `Schema::check` as one complete Parquet file in memory.
pub fn parquet_file(schema: &Schema, records: &[&Value]) -> Result<Bytes, EncodeError> {
    to_parquet(&to_record_batch(schema, records)?)
}

/// Encode a batch as one complete Parquet file in memory.
pub fn to_parquet(batch: &RecordBatch) -> Result<Bytes, EncodeError> {
    let mut buf = Vec::with_capacity(batch.get_array_memory_size() / 2 + 1024);
    let properties = writer_properties(&dictionary::plain_columns(batch));
    let mut writer = ArrowWriter::try_new(&mut buf, batch.schema(), Some(properties))?;
    writer.write(batch)?;
    writer.close()?;
    Ok(Bytes::from(buf))
}

#[cfg(test)]
mod tests {
    use super::*;
    use parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
    use serde_json::json;

    #[test]
    fn round_trips_through_parquet() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
        let schema = Schema::load(&dir, "config_change").unwrap();
        let a = json!({"timestamp": "2026-11-26T10:00:00.5Z", "service": "s", "key": "k",
                       "new_value": {"x": [1, 2]}, "version": 7, "message_id": "m1"});
        let b = json!({"timestamp": "2026-11-26T11:00:00Z", "service": "t", "key": "k2",
                       "version": 8, "message_id": "m2", "author": "ann"});
        let batch = to_record_batch(&schema, &[&a, &b]).unwrap();
        let bytes = to_parquet(&batch).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(bytes).unwrap();
        assert_eq!(reader.metadata().file_metadata().num_rows(), 2);
        let meta = reader.metadata().row_group(0).column(0);
        assert!(meta.statistics().is_some(), "statistics are written");
        assert!(matches!(meta.compression(), Compression::ZSTD(_)));
        let back: Vec<RecordBatch> = reader.build().unwrap().collect::<Result<_, _>>().unwrap();
        assert_eq!(back[0], batch);
    }

    #[test]
    fn unique_columns_are_written_without_a_dictionary() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
        let schema = Schema::load(&dir, "log").unwrap();
        let rows: Vec<Value> = (0..3000)
            .map(|i| {
                json!({"timestamp": format!("2026-11-26T10:00:00.{i:06}Z"), "service": if i % 2 == 0 { "a" } else { "b" },
                       "severity": "INFO", "message": "same", "message_id": i.to_string()})
            })
            .collect();
        let batch = to_record_batch(&schema, &rows.iter().collect::<Vec<_>>()).unwrap();
        let reader = ParquetRecordBatchReaderBuilder::try_new(to_parquet(&batch).unwrap()).unwrap();
        let group = reader.metadata().row_group(0);
        let dictionary = |name: &str| {
            let column = group.columns().iter().find(|c| c.column_path().string() == name).unwrap();
            column.dictionary_page_offset().is_some()
        };
        assert!(!dictionary("message_id") && !dictionary("timestamp"), "unique columns are plain");
        assert!(dictionary("service") && dictionary("severity"), "repeated columns keep a dictionary");
        let back: Vec<RecordBatch> = reader.build().unwrap().collect::<Result<_, _>>().unwrap();
        assert_eq!(arrow::compute::concat_batches(&batch.schema(), &back).unwrap(), batch);
    }

    #[test]
    fn reports_the_row_and_field_of_a_bad_value() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
        let schema = Schema::load(&dir, "config_change").unwrap();
        let bad = json!({"timestamp": "yesterday", "service": "s", "key": "k", "version": 1, "message_id": "m"});
        let err = to_record_batch(&schema, &[&bad]).unwrap_err().to_string();
        assert_eq!(err, "row 0, field 'timestamp': expected an RFC 3339 timestamp");
    }
}
