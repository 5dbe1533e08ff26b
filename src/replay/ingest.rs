//! The archived `ingest_time` put back on replayed rows after the chain, whose `metadata` stage
//! wrote the replay's own: a replayed row keeps when sluice first received its message.

use std::sync::Arc;

use serde_json::Value;

use crate::event::Event;
use crate::path::FieldPath;

/// Put `originals[from[i]]` (when set) into `field` of `forward[i]`. Rows held in columns get a
/// copy of their batch with that column replaced; a record gets the value set.
pub(super) fn restore(field: &FieldPath, forward: &mut [Event], from: &[usize], originals: &[Option<Value>]) {
    let columns = forward.iter().find_map(|e| e.row.as_ref().map(|r| r.columns.clone()));
    let in_column = columns.as_ref().is_some_and(|c| c.time_column(field.as_str()).is_some());
    let mut times: Vec<(usize, i64)> = Vec::new();
    for (e, &i) in forward.iter_mut().zip(from) {
        let Some(v) = &originals[i] else { continue };
        let micros = v.as_str().and_then(crate::schema::parse_timestamp).map(|t| t.timestamp_micros());
        match (&e.row, micros) {
            (Some(row), Some(t)) if in_column => times.push((row.row, t)),
            _ => {
                // A record, or a value the batch cannot hold: set in the record, which the sinks check.
                if let Some(row) = e.row.take() {
                    e.record = row.record();
                }
                let _ = field.set(&mut e.record, v.clone());
            }
        }
    }
    let Some(columns) = columns.filter(|_| !times.is_empty()) else { return };
    let replaced = Arc::new(columns.with_times(field.as_str(), &times).expect("a TIMESTAMP column, checked above"));
    for row in forward.iter_mut().filter_map(|e| e.row.as_mut()) {
        row.columns = replaced.clone();
    }
}
