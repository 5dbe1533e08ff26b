//! An event's record held as one row of the Arrow batch a chain forwarded ([`RowRef`]), instead
//! of a JSON tree: events carry it from the chain to the sinks, which gather their rows from it.

use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::TimestampMicrosecondType;
use arrow::record_batch::RecordBatch;
use serde_json::{Map, Value};

use crate::schema::Schema;

/// The rows a chain forwarded from one batch, as the schema's columns.
#[derive(Debug)]
pub struct Columns {
    pub batch: RecordBatch,
    pub schema: Arc<Schema>,
    /// The column of the schema's `time_field`, which places a row in its partition.
    time: Option<usize>,
}

/// An event's record held as one row of a [`Columns`] batch instead of a JSON tree.
#[derive(Debug, Clone)]
pub struct RowRef {
    pub columns: Arc<Columns>,
    pub row: usize,
}

impl Columns {
    /// The rows of `batch`, typed as `schema`'s columns.
    pub fn new(batch: RecordBatch, schema: Arc<Schema>) -> Columns {
        let time = schema.time_field.as_deref().and_then(|f| schema.fields.iter().position(|x| x.name == f));
        Columns { batch, schema, time }
    }

    /// The position of TIMESTAMP column `field`.
    pub fn time_column(&self, field: &str) -> Option<usize> {
        self.schema.fields.iter().position(|f| f.name == field && f.ty == crate::schema::FieldType::Timestamp)
    }

    /// The same rows with these rows' times in TIMESTAMP column `field` replaced; `None` when
    /// the schema has no such column.
    pub fn with_times(&self, field: &str, times: &[(usize, i64)]) -> Option<Columns> {
        let at = self.time_column(field)?;
        let old = self.batch.column(at).as_primitive::<TimestampMicrosecondType>();
        let mut values: Vec<Option<i64>> = old.iter().collect();
        times.iter().for_each(|&(r, t)| values[r] = Some(t));
        let column = arrow::array::TimestampMicrosecondArray::from(values).with_timezone("+00:00");
        let mut columns = self.batch.columns().to_vec();
        columns[at] = Arc::new(column);
        let batch = RecordBatch::try_new(self.batch.schema(), columns).expect("the same column type");
        Some(Columns { batch, schema: self.schema.clone(), time: self.time })
    }
}

impl RowRef {
    /// The record as the row-by-row chain would have left it (for observers).
    pub fn record(&self) -> Value {
        self.record_of(None)
    }

    /// The record with only the named fields (all of them with `None`).
    pub fn record_of(&self, names: Option<&[&str]>) -> Value {
        let mut map = Map::new();
        for (i, f) in self.columns.schema.fields.iter().enumerate() {
            if names.is_some_and(|n| !n.contains(&f.name.as_str())) {
                continue;
            }
            if let Some(v) = cell(&self.columns.batch, i, self.row, f.ty) {
                map.insert(f.name.clone(), v);
            }
        }
        Value::Object(map)
    }

    /// The row's time in the schema's `time_field`, in microseconds since the epoch, if it has one.
    pub fn event_micros(&self) -> Option<i64> {
        let col = self.columns.batch.column(self.columns.time?);
        let col = col.as_primitive_opt::<TimestampMicrosecondType>()?;
        col.is_valid(self.row).then(|| col.value(self.row))
    }
}

/// One cell of a forwarded batch as a record's JSON value.
fn cell(batch: &RecordBatch, col: usize, row: usize, ty: crate::schema::FieldType) -> Option<Value> {
    use crate::schema::FieldType as T;
    let a = batch.column(col);
    if a.is_null(row) {
        return None;
    }
    Some(match ty {
        T::String => Value::String(a.as_string::<i32>().value(row).to_owned()),
        T::Json => serde_json::from_str(a.as_string::<i32>().value(row)).ok()?,
        T::Int64 => Value::from(a.as_primitive::<arrow::datatypes::Int64Type>().value(row)),
        T::Float64 => serde_json::Number::from_f64(a.as_primitive::<arrow::datatypes::Float64Type>().value(row))
            .map(Value::Number)?,
        T::Bool => Value::Bool(a.as_boolean().value(row)),
        T::Timestamp => Value::String(crate::schema::format_timestamp(time(
            a.as_primitive::<TimestampMicrosecondType>().value(row),
        ))),
        T::Bytes => return None,
    })
}

/// A decoded TIMESTAMP cell (microseconds since the epoch) as a time: the decoder accepts only
/// times in range.
pub(crate) fn time(micros: i64) -> chrono::DateTime<chrono::Utc> {
    chrono::DateTime::from_timestamp_micros(micros).expect("decoded times are in range")
}
