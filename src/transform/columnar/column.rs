//! One slot's values for every row of a batch, typed as the schema column it ends in.

use std::sync::Arc;

use arrow::array::builder::{BooleanBufferBuilder, NullBufferBuilder};
use arrow::array::{Array, ArrayRef, BooleanArray, Float64Array, Int64Array, StringArray, TimestampMicrosecondArray};
use arrow::buffer::{NullBuffer, OffsetBuffer};
use serde_json::Value;

use crate::event::row::time;

/// What a slot holds between stages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    Str,
    Int,
    Float,
    Bool,
    /// Microseconds since the epoch, UTC.
    Time,
    /// Any JSON value, kept as the compact text a record's value is written as (keys sorted);
    /// parsed only by a stage that looks inside it.
    Json,
}

/// A finished column. Rows that are not on the columnar path hold null.
#[derive(Debug, Clone)]
pub enum Column {
    Str(StringArray),
    Int(Int64Array),
    Float(Float64Array),
    Bool(BooleanArray),
    Time(Int64Array),
    Json(StringArray),
}

impl Column {
    pub fn nulls(kind: Kind, rows: usize) -> Column {
        Builder::new(kind, rows, 0).finish_nulls(rows)
    }

    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }

    pub fn len(&self) -> usize {
        match self {
            Column::Str(a) | Column::Json(a) => a.len(),
            Column::Int(a) | Column::Time(a) => a.len(),
            Column::Float(a) => a.len(),
            Column::Bool(a) => a.len(),
        }
    }

    pub fn null_count(&self) -> usize {
        match self {
            Column::Str(a) | Column::Json(a) => a.null_count(),
            Column::Int(a) | Column::Time(a) => a.null_count(),
            Column::Float(a) => a.null_count(),
            Column::Bool(a) => a.null_count(),
        }
    }

    pub fn kind(&self) -> Kind {
        match self {
            Column::Str(_) => Kind::Str,
            Column::Int(_) => Kind::Int,
            Column::Float(_) => Kind::Float,
            Column::Bool(_) => Kind::Bool,
            Column::Time(_) => Kind::Time,
            Column::Json(_) => Kind::Json,
        }
    }

    /// A column of `kind` from record values that fit it (as [`Column::value`] gives them).
    pub fn from_values(kind: Kind, values: &[Option<Value>]) -> Column {
        match kind {
            Kind::Str => Column::Str(values.iter().map(|v| v.as_ref().and_then(Value::as_str)).collect()),
            Kind::Int => Column::Int(values.iter().map(|v| v.as_ref().and_then(Value::as_i64)).collect()),
            Kind::Float => Column::Float(values.iter().map(|v| v.as_ref().and_then(Value::as_f64)).collect()),
            Kind::Bool => Column::Bool(values.iter().map(|v| v.as_ref().and_then(Value::as_bool)).collect()),
            Kind::Json => Column::Json(values.iter().map(|v| v.as_ref().map(Value::to_string)).collect()),
            Kind::Time => unreachable!("times are not set from values"),
        }
    }

    /// Row by row, `from`'s value where it has one, else this column's (same kinds).
    pub fn overlaid(&self, from: &Column) -> Column {
        let (to, from) = (self.arrow_values(), from.arrow_values());
        let mask = arrow::compute::is_not_null(&from).expect("a column has a null buffer or none");
        let merged = arrow::compute::kernels::zip::zip(&mask, &from, &to).expect("columns of one kind and length");
        Column::from_arrow(self.kind(), &merged)
    }

    /// The values as the Arrow array they are kept in (times as plain microseconds).
    fn arrow_values(&self) -> ArrayRef {
        match self {
            Column::Time(a) => Arc::new(a.clone()),
            other => other.to_arrow(),
        }
    }

    fn from_arrow(kind: Kind, a: &ArrayRef) -> Column {
        use arrow::array::AsArray;
        use arrow::datatypes::{Float64Type, Int64Type};
        match kind {
            Kind::Str => Column::Str(a.as_string::<i32>().clone()),
            Kind::Int => Column::Int(a.as_primitive::<Int64Type>().clone()),
            Kind::Time => Column::Time(a.as_primitive::<Int64Type>().clone()),
            Kind::Float => Column::Float(a.as_primitive::<Float64Type>().clone()),
            Kind::Bool => Column::Bool(a.as_boolean().clone()),
            Kind::Json => Column::Json(a.as_string::<i32>().clone()),
        }
    }

    pub fn is_valid(&self, row: usize) -> bool {
        match self {
            Column::Str(a) | Column::Json(a) => a.is_valid(row),
            Column::Int(a) | Column::Time(a) => a.is_valid(row),
            Column::Float(a) => a.is_valid(row),
            Column::Bool(a) => a.is_valid(row),
        }
    }

    /// The Arrow array for the schema column: timestamps typed as such, JSON as its compact text.
    pub fn to_arrow(&self) -> ArrayRef {
        match self {
            Column::Str(a) | Column::Json(a) => Arc::new(a.clone()),
            Column::Int(a) => Arc::new(a.clone()),
            Column::Float(a) => Arc::new(a.clone()),
            Column::Bool(a) => Arc::new(a.clone()),
            Column::Time(a) => {
                Arc::new(TimestampMicrosecondArray::new(a.values().clone(), a.nulls().cloned()).with_timezone("+00:00"))
            }
        }
    }

    /// Row `row`'s value as a record holds it (timestamps as canonical RFC 3339 text).
    pub fn value(&self, row: usize) -> Option<Value> {
        if !self.is_valid(row) {
            return None;
        }
        Some(match self {
            Column::Str(a) => Value::String(a.value(row).to_owned()),
            Column::Int(a) => Value::from(a.value(row)),
            Column::Float(a) => serde_json::Number::from_f64(a.value(row)).map_or(Value::Null, Value::Number),
            Column::Bool(a) => Value::Bool(a.value(row)),
            Column::Time(a) => Value::String(crate::schema::format_timestamp(time(a.value(row)))),
            Column::Json(a) => serde_json::from_str(a.value(row)).expect("JSON columns hold JSON text"),
        })
    }
}

/// `a` with rows `set` (ascending, each once) holding their new value, `None` for null. The rows
/// in between keep theirs, copied a run of bytes at a time: a stage that changes a few rows of a
/// batch (redact) pays for those rows and one copy of the buffer, not for a rebuild row by row.
pub fn with_rows_set(a: &StringArray, set: &[(usize, Option<&str>)]) -> StringArray {
    let (old, values) = (a.value_offsets(), a.value_data());
    let added: usize = set.iter().map(|(_, v)| v.map_or(0, str::len)).sum();
    let mut bytes: Vec<u8> = Vec::with_capacity(values.len() + added);
    let mut offsets: Vec<i32> = Vec::with_capacity(a.len() + 1);
    offsets.push(0);
    let copy = |rows: std::ops::Range<usize>, bytes: &mut Vec<u8>, offsets: &mut Vec<i32>| {
        let (from, to) = (old[rows.start], old[rows.end]);
        let shift = bytes.len() as i32 - from;
        bytes.extend_from_slice(&values[from as usize..to as usize]);
        offsets.extend(old[rows.start + 1..=rows.end].iter().map(|o| o + shift));
    };
    let mut next = 0;
    for &(r, v) in set {
        copy(next..r, &mut bytes, &mut offsets);
        bytes.extend_from_slice(v.unwrap_or_default().as_bytes());
        offsets.push(i32::try_from(bytes.len()).expect("a batch's text fits Arrow's 32-bit offsets"));
        next = r + 1;
    }
    copy(next..a.len(), &mut bytes, &mut offsets);
    let nulls = (a.nulls().is_some() || set.iter().any(|(_, v)| v.is_none())).then(|| {
        let mut set = set.iter().peekable();
        NullBuffer::from_iter((0..a.len()).map(|r| match set.next_if(|(s, _)| *s == r) {
            Some((_, v)) => v.is_some(),
            None => a.is_valid(r),
        }))
    });
    StringArray::new(OffsetBuffer::new(offsets.into()), bytes.into(), nulls)
}

/// Appends one row at a time while payloads are decoded. A row read only in part is taken back
/// ([`Builder::truncate`]), so the decoder writes each value where it ends up as it reads it.
pub(super) struct Builder {
    kind: Kind,
    values: Values,
    /// Which rows hold a value (a bitmap only once a null is written).
    valid: NullBufferBuilder,
    /// Nulls appended but not written yet: written in one go before the next value, or at the
    /// end (a slot most payloads leave out costs nearly nothing per row).
    nulls: usize,
}

enum Values {
    /// Text laid end to end, and where each row's ends (Arrow's layout, from a leading 0).
    Text(Vec<u8>, Vec<i32>),
    /// Integers and times (microseconds).
    Int(Vec<i64>),
    Float(Vec<f64>),
    Bool(BooleanBufferBuilder),
}

impl Builder {
    /// A builder for `rows` values; text kinds with room for `text` bytes (0: a guess).
    pub(super) fn new(kind: Kind, rows: usize, text: usize) -> Builder {
        let text = |guess: usize| if text == 0 { rows * guess } else { text };
        let values = match kind {
            Kind::Str | Kind::Json => {
                let mut offsets = Vec::with_capacity(rows + 1);
                offsets.push(0);
                Values::Text(Vec::with_capacity(text(if kind == Kind::Str { 16 } else { 32 })), offsets)
            }
            Kind::Int | Kind::Time => Values::Int(Vec::with_capacity(rows)),
            Kind::Float => Values::Float(Vec::with_capacity(rows)),
            Kind::Bool => Values::Bool(BooleanBufferBuilder::new(rows)),
        };
        Builder { kind, values, valid: NullBufferBuilder::new(rows), nulls: 0 }
    }

    pub(super) fn append_null(&mut self) {
        self.nulls += 1;
    }

    /// Write the nulls appended since the last value (inlined: almost always none).
    #[inline]
    fn write_nulls(&mut self) {
        if self.nulls > 0 {
            self.write_pending_nulls();
        }
    }

    fn write_pending_nulls(&mut self) {
        let n = std::mem::take(&mut self.nulls);
        match &mut self.values {
            Values::Text(bytes, offsets) => offsets.extend(std::iter::repeat_n(bytes.len() as i32, n)),
            Values::Int(v) => v.resize(v.len() + n, 0),
            Values::Float(v) => v.resize(v.len() + n, 0.0),
            Values::Bool(v) => v.append_n(n, false),
        }
        self.valid.append_n_nulls(n);
    }

    /// Where the next value goes, its row counted as holding one (the nulls before it written).
    #[inline(always)]
    fn next(&mut self) -> &mut Values {
        self.write_nulls();
        self.valid.append_non_null();
        &mut self.values
    }

    #[inline(always)]
    pub(super) fn push_str(&mut self, s: &str) {
        let Values::Text(bytes, offsets) = self.next() else { unreachable!("text is read into text slots") };
        bytes.extend_from_slice(s.as_bytes());
        offsets.push(i32::try_from(bytes.len()).expect("a batch's text fits Arrow's 32-bit offsets"));
    }

    /// An integer, or a time in microseconds.
    #[inline]
    pub(super) fn push_i64(&mut self, i: i64) {
        let Values::Int(v) = self.next() else { unreachable!("integers are read into integer slots") };
        v.push(i);
    }

    #[inline]
    pub(super) fn push_f64(&mut self, x: f64) {
        let Values::Float(v) = self.next() else { unreachable!("numbers are read into float slots") };
        v.push(x);
    }

    #[inline]
    pub(super) fn push_bool(&mut self, b: bool) {
        let Values::Bool(v) = self.next() else { unreachable!("booleans are read into bool slots") };
        v.append(b);
    }

    /// Back to its first `rows` rows.
    pub(super) fn truncate(&mut self, rows: usize) {
        let written = self.valid.len();
        if rows >= written {
            self.nulls = rows - written;
            return;
        }
        self.nulls = 0;
        match &mut self.values {
            Values::Text(bytes, offsets) => {
                offsets.truncate(rows + 1);
                bytes.truncate(offsets[rows] as usize);
            }
            Values::Int(v) => v.truncate(rows),
            Values::Float(v) => v.truncate(rows),
            Values::Bool(v) => v.truncate(rows),
        }
        self.valid.truncate(rows);
    }

    pub(super) fn finish(mut self) -> Column {
        self.write_nulls();
        let nulls = self.valid.finish().filter(|n| n.null_count() > 0);
        match self.values {
            Values::Text(bytes, offsets) => {
                // SAFETY: the offsets start at 0 and grow with `bytes`, and every row was appended
                // whole from a `&str` (a null appends nothing), so each row is UTF-8.
                let a = unsafe {
                    StringArray::new_unchecked(OffsetBuffer::new_unchecked(offsets.into()), bytes.into(), nulls)
                };
                if self.kind == Kind::Json {
                    Column::Json(a)
                } else {
                    Column::Str(a)
                }
            }
            Values::Int(v) if self.kind == Kind::Time => Column::Time(Int64Array::new(v.into(), nulls)),
            Values::Int(v) => Column::Int(Int64Array::new(v.into(), nulls)),
            Values::Float(v) => Column::Float(Float64Array::new(v.into(), nulls)),
            Values::Bool(mut v) => Column::Bool(BooleanArray::new(v.finish(), nulls)),
        }
    }

    fn finish_nulls(mut self, rows: usize) -> Column {
        self.nulls += rows;
        self.finish()
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn times_become_utc_timestamps_and_json_compact_text() {
        let mut t = Builder::new(Kind::Time, 2, 0);
        t.push_i64(1_795_683_600_250_000);
        t.append_null();
        let t = t.finish();
        assert_eq!(t.value(0), Some(Value::String("2026-11-26T09:00:00.250000Z".into())));
        assert_eq!(t.value(1), None);
        assert_eq!(t.to_arrow().data_type(), &crate::schema::FieldType::Timestamp.arrow_type());
        let j = Column::from_values(Kind::Json, &[Some(serde_json::json!({"b": 1, "a": [true]})), None]);
        let text = j.to_arrow();
        let text = text.as_any().downcast_ref::<StringArray>().unwrap();
        assert_eq!(text.value(0), r#"{"a":[true],"b":1}"#);
        assert!(text.is_null(1));
    }

    /// Rows taken back, before and after nulls not yet written, leave the rows before them as
    /// they were, for every kind.
    #[test]
    fn a_builder_takes_rows_back() {
        let values = [json!("a"), json!(1), json!(1.5), json!(true), json!("b")];
        for (kind, v) in [Kind::Str, Kind::Int, Kind::Float, Kind::Bool, Kind::Json].into_iter().zip(values) {
            let mut b = Builder::new(kind, 4, 0);
            let push = |b: &mut Builder| match kind {
                Kind::Str => b.push_str("a"),
                Kind::Json => b.push_str("\"b\""),
                Kind::Int => b.push_i64(1),
                Kind::Float => b.push_f64(1.5),
                Kind::Bool => b.push_bool(true),
                Kind::Time => unreachable!(),
            };
            push(&mut b);
            b.append_null();
            b.append_null();
            b.truncate(2);
            push(&mut b);
            b.truncate(4);
            push(&mut b);
            b.truncate(1);
            b.append_null();
            let c = b.finish();
            assert_eq!((0..c.len()).map(|r| c.value(r)).collect::<Vec<_>>(), [Some(v), None], "{kind:?}");
        }
        assert_eq!(Builder::new(Kind::Str, 3, 0).finish_nulls(3).null_count(), 3);
    }

    /// Rows set, nulled and kept, at the ends and in between, with and without nulls before.
    #[test]
    fn with_rows_set_changes_only_those_rows() {
        let a = StringArray::from(vec![Some("a"), None, Some("ccc"), Some(""), Some("eé")]);
        let cases: [&[(usize, Option<&str>)]; 4] =
            [&[], &[(0, Some("xy")), (4, None)], &[(1, Some("b")), (2, Some(""))], &[(3, Some("long text"))]];
        for set in cases {
            let got = with_rows_set(&a, set);
            let want: StringArray = (0..a.len())
                .map(|r| match set.iter().find(|(s, _)| *s == r) {
                    Some((_, v)) => *v,
                    None => a.is_valid(r).then(|| a.value(r)),
                })
                .collect();
            assert_eq!(got, want, "{set:?}");
        }
        let plain = StringArray::from(vec!["a", "b"]);
        assert!(with_rows_set(&plain, &[(1, Some("c"))]).nulls().is_none());
    }
}
