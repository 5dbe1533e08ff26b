//! Which columns of a batch get a Parquet dictionary.
//!
//! A dictionary pays when values repeat (service, severity, host). On nearly unique columns
//! (ids, timestamps, latencies) it only costs: every value is hashed into a dictionary as large as
//! the column, then its index written beside it, so leaving those columns plain makes files
//! smaller and encoding faster (`docs/performance.md`). Which columns repeat is
//! read from the data, a sample of each batch, so no schema needs a hint.

use std::hash::Hash;

use arrow::array::{Array, ArrayAccessor, AsArray};
use arrow::datatypes::{DataType, Float64Type, Int64Type, TimeUnit, TimestampMicrosecondType};
use arrow::record_batch::RecordBatch;

/// Rows looked at per column, spread evenly over the batch. Fewer misjudge columns of a few
/// hundred distinct values as unique, and lose their dictionary.
const SAMPLE_ROWS: usize = 1024;

/// A column whose sample holds more distinct values than this share is written plain.
const MAX_DISTINCT_SHARE: f64 = 0.5;

/// Names of the batch's columns that should be written without a dictionary.
pub fn plain_columns(batch: &RecordBatch) -> Vec<String> {
    let schema = batch.schema();
    schema
        .fields()
        .iter()
        .zip(batch.columns())
        .filter(|(_, column)| mostly_distinct(column.as_ref()) == Some(true))
        .map(|(field, _)| field.name().clone())
        .collect()
}

/// Whether the sampled non-null values are mostly distinct; `None` for types without a
/// dictionary choice (booleans) or a column with no values.
fn mostly_distinct(column: &dyn Array) -> Option<bool> {
    match column.data_type() {
        DataType::Utf8 => distinct_share(column.as_string::<i32>(), |v| v),
        DataType::Binary => distinct_share(column.as_binary::<i32>(), |v| v),
        DataType::Int64 => distinct_share(column.as_primitive::<Int64Type>(), |v| v),
        DataType::Float64 => distinct_share(column.as_primitive::<Float64Type>(), f64::to_bits),
        DataType::Timestamp(TimeUnit::Microsecond, _) => {
            distinct_share(column.as_primitive::<TimestampMicrosecondType>(), |v| v)
        }
        _ => None,
    }
}

/// Up to `SAMPLE_ROWS` row indices, evenly spread over `len` rows.
fn sample(len: usize) -> impl Iterator<Item = usize> {
    let step = len.div_ceil(SAMPLE_ROWS).max(1);
    (0..len).step_by(step)
}

fn distinct_share<A: ArrayAccessor, K: Hash + Eq>(array: A, key: impl Fn(A::Item) -> K) -> Option<bool> {
    // aHash: the sample is hashed on every batch, and SipHash's resistance to hostile keys is
    // not needed for a count.
    let mut seen = ahash::AHashSet::with_capacity(SAMPLE_ROWS);
    let mut present = 0usize;
    for i in sample(array.len()).filter(|&i| array.is_valid(i)) {
        present += 1;
        seen.insert(key(array.value(i)));
    }
    (present > 0).then_some(seen.len() as f64 > present as f64 * MAX_DISTINCT_SHARE)
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use arrow::array::{ArrayRef, BooleanArray, Int64Array, StringArray};

    use super::*;

    fn batch(columns: Vec<(&str, ArrayRef)>) -> RecordBatch {
        RecordBatch::try_from_iter(columns).unwrap()
    }

    #[test]
    fn unique_columns_are_plain_and_repeated_ones_keep_a_dictionary() {
        let rows = 5000;
        let ids: Vec<String> = (0..rows).map(|i| format!("id-{i}")).collect();
        let levels: Vec<&str> = (0..rows).map(|i| ["INFO", "WARNING", "ERROR"][i % 3]).collect();
        let times: Vec<i64> = (0..rows as i64).map(|i| 1_700_000_000_000_000 + i * 37).collect();
        let buckets: Vec<i64> = (0..rows as i64).map(|i| i % 10).collect();
        let flags: Vec<bool> = (0..rows).map(|i| i % 2 == 0).collect();
        let b = batch(vec![
            ("id", Arc::new(StringArray::from(ids)) as ArrayRef),
            ("severity", Arc::new(StringArray::from(levels))),
            ("time", Arc::new(Int64Array::from(times))),
            ("bucket", Arc::new(Int64Array::from(buckets))),
            ("flag", Arc::new(BooleanArray::from(flags))),
        ]);
        assert_eq!(plain_columns(&b), ["id", "time"]);
    }

    #[test]
    fn nulls_are_not_values_and_an_empty_column_keeps_the_default() {
        let mostly_null: Vec<Option<&str>> = (0..3000).map(|i| (i % 100 == 0).then_some("same")).collect();
        let all_null: Vec<Option<&str>> = vec![None; 3000];
        let b = batch(vec![
            ("rare", Arc::new(StringArray::from(mostly_null)) as ArrayRef),
            ("none", Arc::new(StringArray::from(all_null))),
        ]);
        assert!(plain_columns(&b).is_empty());
    }

    #[test]
    fn samples_spread_over_the_whole_batch() {
        assert_eq!(sample(10).collect::<Vec<_>>(), (0..10).collect::<Vec<_>>());
        let s: Vec<usize> = sample(10_000).collect();
        assert!(s.len() <= SAMPLE_ROWS && s.len() > SAMPLE_ROWS / 2, "{}", s.len());
        assert!(*s.last().unwrap() > 9_000);
    }
}
