//! Archived rows back into the messages they came from: the inverse of `sink::encode`. Columns
//! are read by their Arrow type (so files written before a column was added still read) and the
//! schema says which text columns hold JSON. Nulls are left out, as a parsed payload would not
//! have them. An archive's rows are written as JSON payloads straight from the columns
//! ([`archived`]); dead letters go through records ([`records`], [`dead_letter_message`]).

use arrow::array::{Array, ArrayRef, AsArray};
use arrow::datatypes::{DataType, Float64Type, Int64Type, TimeUnit, TimestampMicrosecondType};
use arrow::record_batch::RecordBatch;
use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use chrono::Utc;
use serde_json::{Map, Value};

use crate::event::ack::Ack;
use crate::event::{Attributes, DeadLetter, Event, Message};
use crate::path::FieldPath;
use crate::schema::{format_timestamp, parse_timestamp, FieldType, Schema};

/// A batch's columns as read: each with its name, whether the schema says it holds JSON, and
/// timestamps in microseconds. Every cell is checked here, column by column, so that reading a
/// row after cannot fail.
struct Read {
    columns: Vec<(String, bool, ArrayRef)>,
}

impl Read {
    fn new(schema: &Schema, batch: &RecordBatch) -> Result<Read, String> {
        let mut columns = Vec::with_capacity(batch.num_columns());
        for (field, column) in batch.schema().fields().iter().zip(batch.columns()) {
            let name = field.name();
            let json = schema.field(name).is_some_and(|f| f.ty == FieldType::Json);
            let column = match column.data_type() {
                DataType::Timestamp(unit, _) if *unit != TimeUnit::Microsecond => {
                    arrow::compute::cast(column, &DataType::Timestamp(TimeUnit::Microsecond, None))
                        .map_err(|e| format!("column '{name}': {e}"))?
                }
                _ => column.clone(),
            };
            check(name, json, &column)?;
            columns.push((name.clone(), json, column));
        }
        Ok(Read { columns })
    }

    /// Column `name`'s position.
    fn position(&self, name: &str) -> Option<usize> {
        self.columns.iter().position(|(n, _, _)| n == name)
    }

    /// Column `c`'s cell in `row` as the record's value; `None` when null.
    fn value(&self, c: usize, row: usize) -> Option<Value> {
        let (_, json, column) = &self.columns[c];
        if column.is_null(row) {
            return None;
        }
        Some(match column.data_type() {
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View if *json => {
                serde_json::from_str(text(column, row)).expect("JSON text, checked")
            }
            DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => Value::String(text(column, row).to_owned()),
            DataType::Int64 => Value::from(column.as_primitive::<Int64Type>().value(row)),
            DataType::Float64 => Value::from(column.as_primitive::<Float64Type>().value(row)),
            DataType::Boolean => Value::Bool(column.as_boolean().value(row)),
            DataType::Timestamp(..) => Value::String(format_timestamp(time(column, row))),
            DataType::Binary => Value::String(base64(column, row)),
            other => unreachable!("{other} checked"),
        })
    }

    /// Column `c`'s cell in `row` as a time, as its record's value reads as one.
    fn time(&self, c: usize, row: usize) -> Option<chrono::DateTime<Utc>> {
        match self.columns[c].2.data_type() {
            DataType::Timestamp(..) if self.columns[c].2.is_valid(row) => Some(time(&self.columns[c].2, row)),
            _ => self.value(c, row)?.as_str().and_then(parse_timestamp),
        }
    }

    /// Row `row` as a JSON object, written after `out`: what serializing its record gives
    /// (fields in name order, nulls left out), without building the record.
    fn write_row(&self, order: &[usize], row: usize, out: &mut Vec<u8>) {
        out.push(b'{');
        let mut first = true;
        for &c in order {
            let (name, json, column) = &self.columns[c];
            if column.is_null(row) {
                continue;
            }
            if !std::mem::take(&mut first) {
                out.push(b',');
            }
            write_json(out, name.as_str());
            out.push(b':');
            match column.data_type() {
                // Plain text is escaped where it lies; the rest as its record's value writes.
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View if !*json => {
                    write_json(out, text(column, row))
                }
                _ => write_json(out, &self.value(c, row).expect("a set cell")),
            }
        }
        out.push(b'}');
    }
}

/// Whether every cell of `column` reads as a record's value: a type sluice writes, JSON text
/// where the schema says JSON, times in range. The first cell that does not, in the words of
/// the error.
fn check(name: &str, json: bool, column: &ArrayRef) -> Result<(), String> {
    let rows = (0..column.len()).filter(|&r| column.is_valid(r));
    match column.data_type() {
        DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View if json => {
            for row in rows {
                let text = text(column, row);
                serde_json::from_str::<serde::de::IgnoredAny>(text)
                    .map_err(|e| format!("row {row}, column '{name}': not JSON ({e}): {text:.80}"))?;
            }
        }
        DataType::Timestamp(..) => {
            for row in rows {
                let micros = column.as_primitive::<TimestampMicrosecondType>().value(row);
                if chrono::DateTime::from_timestamp_micros(micros).is_none() {
                    return Err(format!("row {row}, column '{name}': timestamp {micros} µs is out of range"));
                }
            }
        }
        DataType::Utf8
        | DataType::LargeUtf8
        | DataType::Utf8View
        | DataType::Int64
        | DataType::Float64
        | DataType::Boolean
        | DataType::Binary => {}
        // A column of nulls only has no value to read, whatever its type.
        other if column.null_count() < column.len() => {
            return Err(format!("column '{name}' has Arrow type {other}, which sluice does not write"))
        }
        _ => {}
    }
    Ok(())
}

fn text(column: &ArrayRef, row: usize) -> &str {
    match column.data_type() {
        DataType::Utf8 => column.as_string::<i32>().value(row),
        DataType::LargeUtf8 => column.as_string::<i64>().value(row),
        _ => column.as_string_view().value(row),
    }
}

/// A microseconds column's time in `row` (checked in range).
fn time(column: &ArrayRef, row: usize) -> chrono::DateTime<Utc> {
    let micros = column.as_primitive::<TimestampMicrosecondType>().value(row);
    chrono::DateTime::from_timestamp_micros(micros).expect("a time in range, checked")
}

fn base64(column: &ArrayRef, row: usize) -> String {
    base64::engine::general_purpose::STANDARD.encode(column.as_binary::<i32>().value(row))
}

fn write_json<T: serde::Serialize + ?Sized>(out: &mut Vec<u8>, value: &T) {
    serde_json::to_writer(out, value).expect("text and values serialize");
}

/// Every row of `batch` as a JSON object, fields in column order.
pub fn records(schema: &Schema, batch: &RecordBatch) -> Result<Vec<Map<String, Value>>, String> {
    let read = Read::new(schema, batch)?;
    let mut out: Vec<Map<String, Value>> = (0..batch.num_rows()).map(|_| Map::new()).collect();
    for (c, (name, _, _)) in read.columns.iter().enumerate() {
        for (row, record) in out.iter_mut().enumerate() {
            if let Some(value) = read.value(c, row) {
                record.insert(name.clone(), value);
            }
        }
    }
    Ok(out)
}

/// An archived row as the message that would produce it.
pub struct Archived {
    /// The row as JSON, as its record serializes.
    pub data: Bytes,
    /// Its `message_id`; `None` when it has none, which makes it a dead letter.
    pub id: Option<String>,
    /// Its time field's time, if it has one (the publish time of the rebuilt message).
    pub time: Option<chrono::DateTime<Utc>>,
    /// Its value at `ingest`, if asked and present.
    pub ingest: Option<Value>,
}

/// Every row of an archived `batch`, written as its payload straight from the columns.
pub fn archived(schema: &Schema, batch: &RecordBatch, ingest: Option<&FieldPath>) -> Result<Vec<Archived>, String> {
    let read = Read::new(schema, batch)?;
    // A record's fields serialize in name order.
    let mut order: Vec<usize> = (0..read.columns.len()).collect();
    order.sort_by(|&a, &b| read.columns[a].0.cmp(&read.columns[b].0));
    let id = read.position("message_id");
    let time_field = schema.time_field.as_deref().and_then(|f| read.position(f));
    let ingest = ingest.and_then(|path| Some((path, read.position(path.root())?)));
    let mut buffer = Vec::with_capacity(batch.get_array_memory_size() + 32 * batch.num_rows());
    let mut ends = Vec::with_capacity(batch.num_rows());
    let mut rows = Vec::with_capacity(batch.num_rows());
    for row in 0..batch.num_rows() {
        read.write_row(&order, row, &mut buffer);
        ends.push(buffer.len());
        let id = match id.and_then(|c| read.value(c, row)) {
            Some(Value::String(id)) => Some(id),
            _ => None,
        };
        let time = time_field.and_then(|c| read.time(c, row));
        let ingest = ingest.and_then(|(path, c)| path.within(read.value(c, row)?));
        rows.push(Archived { data: Bytes::new(), id, time, ingest });
    }
    // One buffer for the batch: its rows are replayed, written and settled together.
    let buffer = Bytes::from(buffer);
    let mut start = 0;
    for (archived, end) in rows.iter_mut().zip(ends) {
        archived.data = buffer.slice(start..end);
        start = end;
    }
    Ok(rows)
}

/// An archived row as the message that would produce it (payload = the row as JSON), with its ack.
pub fn archived_message(row: Archived, ack: Ack) -> Result<(Message, Ack), Box<DeadLetter>> {
    let publish_time = row.time.unwrap_or_else(Utc::now);
    let message = Message::new(
        row.id.clone().unwrap_or_default(),
        publish_time,
        Attributes::new(),
        row.data,
        Arc::from("replay"),
    );
    match row.id {
        Some(_) => Ok((message, ack)),
        None => Err(Box::new(DeadLetter {
            event: Event::alone(message, ack),
            stage: "replay".into(),
            reason: "archived row has no message_id".into(),
        })),
    }
}

/// A dead letter as the message it was (original bytes, attributes, id and publish time), with its ack.
pub fn dead_letter_message(record: Map<String, Value>, ack: Ack) -> Result<(Message, Ack), Box<DeadLetter>> {
    let text = |k: &str| record.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    let attributes: Attributes = record
        .get("attributes")
        .and_then(Value::as_object)
        .map(|a| a.iter().map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned))).collect())
        .unwrap_or_default();
    let publish_time = parse_timestamp(&text("publish_time")).unwrap_or_else(Utc::now);
    let data = base64::engine::general_purpose::STANDARD.decode(text("data"));
    let subscription: Arc<str> = Arc::from(text("subscription").as_str());
    match data {
        Ok(bytes) => {
            Ok((Message::new(text("message_id"), publish_time, attributes, Bytes::from(bytes), subscription), ack))
        }
        Err(e) => {
            let event = Event::alone(
                Message::new(text("message_id"), publish_time, attributes, Bytes::new(), subscription),
                ack,
            );
            Err(Box::new(DeadLetter {
                event,
                stage: "replay".into(),
                reason: format!("dead letter's data is not base64: {e}"),
            }))
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::sink::encode;
    use serde_json::json;

    #[test]
    fn inverts_encode_for_every_type() {
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
        let schema = Schema::load(&dir, "config_change").unwrap();
        let a = json!({"timestamp": "2026-11-26T10:00:00.500000Z", "service": "s", "key": "k",
                       "new_value": {"x": [1, 2.5, null]}, "version": 7, "message_id": "m1"});
        let b = json!({"timestamp": "2026-11-26T11:00:00.000000Z", "service": "t", "key": "k2",
                       "version": 8, "message_id": "m2", "author": "ann", "old_value": "text"});
        let batch = encode::to_record_batch(&schema, &[&a, &b]).unwrap();
        let back = records(&schema, &batch).unwrap();
        assert_eq!(Value::Object(back[0].clone()), a);
        assert_eq!(Value::Object(back[1].clone()), b);

        let dead = crate::sink::dead_letter::schema();
        let row = json!({"failed_at": "2026-11-26T10:00:00.000000Z", "pipeline": "logs", "stage": "s",
                         "reason": "r", "message_id": "m", "publish_time": "2026-11-26T09:00:00.000000Z",
                         "subscription": "push", "attributes": {"k": "v"}, "data": "/yBub3QganNvbg=="});
        let batch = encode::to_record_batch(&dead, &[&row]).unwrap();
        assert_eq!(Value::Object(records(&dead, &batch).unwrap().remove(0)), row);
    }

    /// An archived row's payload, written from the columns, is the bytes its record serializes
    /// to; its id, time and archived ingest time are its record's.
    #[test]
    fn archived_rows_are_their_records_serialized() {
        use arrow::array::{
            BinaryArray, BooleanArray, Float64Array, Int32Array, Int64Array, LargeStringArray, StringArray,
            StringViewArray, TimestampSecondArray,
        };
        let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("schemas");
        let schema = Schema::load(&dir, "config_change").unwrap();
        let columns: Vec<(&str, ArrayRef)> = vec![
            ("version", Arc::new(Int64Array::from(vec![Some(7), None, Some(-1)]))),
            ("message_id", Arc::new(StringArray::from(vec![Some("m1"), None, Some("m\"3\u{e9}")]))),
            ("timestamp", Arc::new(TimestampSecondArray::from(vec![Some(1_795_683_600), Some(0), None]))),
            (
                "new_value",
                Arc::new(StringArray::from(vec![Some(r#"{"b": [1, 2.50, null], "a": "x"}"#), None, Some("3")])),
            ),
            ("score", Arc::new(Float64Array::from(vec![Some(1.0), Some(f64::NAN), Some(0.1)]))),
            ("ok", Arc::new(BooleanArray::from(vec![Some(true), None, Some(false)]))),
            ("blob", Arc::new(BinaryArray::from(vec![Some(&b"\xff\x00"[..]), None, Some(&b""[..])]))),
            ("wide", Arc::new(LargeStringArray::from(vec![None, Some("w"), None]))),
            ("view", Arc::new(StringViewArray::from(vec![Some("a long enough text to be out of line"), None, None]))),
            ("unset", Arc::new(Int32Array::from(vec![None, None, None]))),
        ];
        let batch = RecordBatch::try_from_iter(columns).unwrap();
        let ingest = FieldPath::parse("new_value.a").unwrap();
        let rows = archived(&schema, &batch, Some(&ingest)).unwrap();
        let held = records(&schema, &batch).unwrap();
        assert_eq!(rows.len(), 3);
        for (row, record) in rows.iter().zip(&held) {
            assert_eq!(row.data, serde_json::to_vec(record).unwrap(), "{}", String::from_utf8_lossy(&row.data));
            assert_eq!(row.id.as_deref(), record.get("message_id").and_then(Value::as_str));
            let time = record.get("timestamp").and_then(Value::as_str).and_then(parse_timestamp);
            assert_eq!(row.time, time);
            assert_eq!(row.ingest.as_ref(), ingest.get_in(record));
        }
        assert_eq!(rows[0].ingest, Some(json!("x")));
        assert_eq!(rows[1].id, None, "a row without message_id");

        // Bad cells name their row and column, the first in column order, as records() does.
        let bad = RecordBatch::try_from_iter(vec![
            ("new_value", Arc::new(StringArray::from(vec![Some("{}"), Some("{not json")])) as ArrayRef),
            ("when", Arc::new(arrow::array::TimestampMicrosecondArray::from(vec![i64::MAX, 0]))),
        ])
        .unwrap();
        let err = archived(&schema, &bad, None).err().unwrap();
        assert!(err.starts_with("row 1, column 'new_value': not JSON"), "{err}");
        assert_eq!(records(&schema, &bad).err().unwrap(), err);
        let bad =
            RecordBatch::try_from_iter(vec![("n", Arc::new(Int32Array::from(vec![Some(1)])) as ArrayRef)]).unwrap();
        let err = archived(&schema, &bad, None).err().unwrap();
        assert_eq!(err, "column 'n' has Arrow type Int32, which sluice does not write");
    }
}
