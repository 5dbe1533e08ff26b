//! An event's record held as one row of the Arrow batch a chain forwarded ([`RowRef`]), instead
//! of a JSON tree: events carry it from the chain to the sinks, which gather their rows from it,
//! and observers read single fields of it.

use std::borrow::Cow;
use std::sync::Arc;

use arrow::array::{Array, AsArray};
use arrow::datatypes::TimestampMicrosecondType;
use arrow::record_batch::RecordBatch;
use serde_json::{Map, Value};

use crate::schema::{FieldType, Schema};

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

/// Single fields of a row, read from its column without building a record (observers).
impl RowRef {
    /// The position of field `name`.
    fn index(&self, name: &str) -> Option<usize> {
        self.columns.schema.fields.iter().position(|f| f.name == name)
    }

    /// The column of field `name`, and the field's type, when the row has a value in it.
    fn field(&self, name: &str) -> Option<(&dyn Array, FieldType)> {
        let i = self.index(name)?;
        let column = self.columns.batch.column(i);
        column.is_valid(self.row).then(|| (column.as_ref(), self.columns.schema.fields[i].ty))
    }

    /// Field `name` as text, as a record's value reads as one (`Value::as_str`): a STRING, or a
    /// JSON field that holds a string. TIMESTAMP fields are read with [`RowRef::time`].
    pub fn text(&self, name: &str) -> Option<Cow<'_, str>> {
        match self.field(name)? {
            (a, FieldType::String) => Some(Cow::Borrowed(a.as_string::<i32>().value(self.row))),
            (_, FieldType::Json) => match self.value(name)? {
                Value::String(s) => Some(Cow::Owned(s)),
                _ => None,
            },
            _ => None,
        }
    }

    /// Field `name` as a number, as a record's value reads as one (`Value::as_f64`): FLOAT64,
    /// INT64, or a JSON field that holds a number.
    pub fn number(&self, name: &str) -> Option<f64> {
        match self.field(name)? {
            (a, FieldType::Float64) => Some(a.as_primitive::<arrow::datatypes::Float64Type>().value(self.row)),
            (a, FieldType::Int64) => Some(a.as_primitive::<arrow::datatypes::Int64Type>().value(self.row) as f64),
            (_, FieldType::Json) => self.value(name)?.as_f64(),
            _ => None,
        }
    }

    /// The time in field `name`: a TIMESTAMP, or text that reads as one.
    pub fn time(&self, name: &str) -> Option<chrono::DateTime<chrono::Utc>> {
        match self.field(name)? {
            (a, FieldType::Timestamp) => Some(time(a.as_primitive::<TimestampMicrosecondType>().value(self.row))),
            _ => crate::schema::parse_timestamp(&self.text(name)?),
        }
    }

    /// Field `name` as the record's JSON value (the record holds no nulls).
    pub fn value(&self, name: &str) -> Option<Value> {
        let i = self.index(name)?;
        cell(&self.columns.batch, i, self.row, self.columns.schema.fields[i].ty)
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
