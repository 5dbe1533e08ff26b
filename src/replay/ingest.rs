//! The archived `ingest_time` put back on replayed rows after the chain, whose `metadata` stage
//! wrote the replay's own: a replayed row keeps when sluice first received its message.

use std::sync::Arc;

use serde_json::Value;

use crate::event::Event;
use crate::path::FieldPath;
use crate::transform::columnar::RowRef;

/// Put `originals[from[i]]` (when set) into `field` of `forward[i]`. Rows held in columns get a
/// copy of their batch with that column replaced; a record gets the value set.
pub fn restore(field: &FieldPath, forward: &mut [Event], from: &[usize], originals: &[Option<Value>]) {
    let mut times: Vec<(usize, i64)> = Vec::new();
    for (e, &i) in forward.iter_mut().zip(from) {
        let Some(v) = &originals[i] else { continue };
        let micros = v.as_str().and_then(crate::schema::parse_timestamp).map(|t| t.timestamp_micros());
        match (&e.row, micros) {
            (Some(row), Some(t)) => times.push((row.row, t)),
            (Some(_), None) => {
                // Not a time the column can hold: the row goes on as a record, checked by the sinks.
                e.record = e.record(None).into_owned();
                e.row = None;
                let _ = field.set(&mut e.record, v.clone());
            }
            (None, _) => {
                let _ = field.set(&mut e.record, v.clone());
            }
        }
    }
    let Some(columns) = forward.iter().find_map(|e| e.row.as_ref().map(|r| r.columns.clone())) else { return };
    match columns.with_times(field.as_str(), &times) {
        Some(replaced) => {
            let replaced = Arc::new(replaced);
            for e in forward.iter_mut() {
                if let Some(row) = &mut e.row {
                    *row = RowRef { columns: replaced.clone(), row: row.row };
                }
            }
        }
        // No such TIMESTAMP column: the rows go on as records.
        None => {
            for (e, &i) in forward.iter_mut().zip(from) {
                if e.row.is_some() {
                    e.record = e.record(None).into_owned();
                    e.row = None;
                    if let Some(v) = &originals[i] {
                        let _ = field.set(&mut e.record, v.clone());
                    }
                }
            }
        }
    }
}
