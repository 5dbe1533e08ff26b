//! Archived rows back into records: the inverse of `sink::encode`. Columns are read by their Arrow
//! type (so files written before a column was added still read) and the schema says which text
//! columns hold JSON. Nulls are left out, as a parsed payload would not have them. Then records
//! back into the messages they came from (`archived_event`, `dead_letter_event`).

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float64Type, Int64Type, TimeUnit, TimestampMicrosecondType};
use arrow::record_batch::RecordBatch;
use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use chrono::Utc;
use serde_json::{Map, Value};

use crate::event::ack::Ack;
use crate::event::{Attributes, DeadLetter, Event};
use crate::schema::{format_timestamp, parse_timestamp, FieldType, Schema};

/// Every row of `batch` as a JSON object, fields in column order.
pub fn records(schema: &Schema, batch: &RecordBatch) -> Result<Vec<Map<String, Value>>, String> {
    let mut out: Vec<Map<String, Value>> = (0..batch.num_rows()).map(|_| Map::new()).collect();
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
        for (row, record) in out.iter_mut().enumerate() {
            if column.is_null(row) {
                continue;
            }
            let value = match column.data_type() {
                DataType::Utf8 | DataType::LargeUtf8 | DataType::Utf8View => {
                    let text = match column.data_type() {
                        DataType::Utf8 => column.as_string::<i32>().value(row),
                        DataType::LargeUtf8 => column.as_string::<i64>().value(row),
                        _ => column.as_string_view().value(row),
                    };
                    if json {
                        serde_json::from_str(text)
                            .map_err(|e| format!("row {row}, column '{name}': not JSON ({e}): {text:.80}"))?
                    } else {
                        Value::String(text.to_owned())
                    }
                }
                DataType::Int64 => Value::from(column.as_primitive::<Int64Type>().value(row)),
                DataType::Float64 => Value::from(column.as_primitive::<Float64Type>().value(row)),
                DataType::Boolean => Value::Bool(column.as_boolean().value(row)),
                DataType::Timestamp(..) => {
                    let micros = column.as_primitive::<TimestampMicrosecondType>().value(row);
                    let t = chrono::DateTime::from_timestamp_micros(micros)
                        .ok_or_else(|| format!("row {row}, column '{name}': timestamp {micros} µs is out of range"))?;
                    Value::String(format_timestamp(t))
                }
                DataType::Binary => Value::String(
                    base64::engine::general_purpose::STANDARD.encode(column.as_binary::<i32>().value(row)),
                ),
                other => return Err(format!("column '{name}' has Arrow type {other}, which sluice does not write")),
            };
            record.insert(name.clone(), value);
        }
    }
    Ok(out)
}

/// An archived row as the message that would produce it: payload = the row as JSON.
pub fn archived_event(schema: &Schema, record: Map<String, Value>, ack: Ack) -> Result<Event, Box<DeadLetter>> {
    let id = record.get("message_id").and_then(Value::as_str).map(str::to_owned);
    let publish_time = schema
        .time_field
        .as_deref()
        .and_then(|f| record.get(f))
        .and_then(Value::as_str)
        .and_then(parse_timestamp)
        .unwrap_or_else(Utc::now);
    let data = Bytes::from(serde_json::to_vec(&record).expect("a JSON map serializes"));
    let event =
        Event::new(id.clone().unwrap_or_default(), publish_time, Attributes::new(), data, Arc::from("replay"), ack);
    match id {
        Some(_) => Ok(event),
        None => {
            Err(Box::new(DeadLetter { event, stage: "replay".into(), reason: "archived row has no message_id".into() }))
        }
    }
}

/// A dead letter as the message it was: original bytes, attributes, id and publish time.
pub fn dead_letter_event(record: Map<String, Value>, ack: Ack) -> Result<Event, Box<DeadLetter>> {
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
            Ok(Event::new(text("message_id"), publish_time, attributes, Bytes::from(bytes), subscription, ack))
        }
        Err(e) => {
            let event = Event::new(text("message_id"), publish_time, attributes, Bytes::new(), subscription, ack);
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
}
