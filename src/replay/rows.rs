//! Archived rows back into records: the inverse of `sink::encode`. Columns are read by their Arrow
//! type (so files written before a column was added still read) and the schema says which text
//! columns hold JSON. Nulls are left out, as a parsed payload would not have them.

use arrow::array::{Array, AsArray};
use arrow::datatypes::{DataType, Float64Type, Int64Type, TimeUnit, TimestampMicrosecondType};
use arrow::record_batch::RecordBatch;
use base64::Engine;
use serde_json::{Map, Value};

use crate::schema::{format_timestamp, FieldType, Schema};

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
