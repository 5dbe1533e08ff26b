//! Which rows a replay takes: a time window (`--since`/`--until`), and for dead letters those of
//! one pipeline; shared by the plan (which files) and the reader (which rows of a row group).

use arrow::array::{Array, AsArray, BooleanArray};
use arrow::datatypes::{DataType, TimeUnit, TimestampMicrosecondType};
use arrow::record_batch::RecordBatch;
use chrono::{DateTime, TimeDelta, Utc};

use crate::sink::lake::Partition;

/// `[since, until)`; either end may be open.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Window {
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
}

impl Window {
    pub fn contains(&self, t: DateTime<Utc>) -> bool {
        self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t < u)
    }

    /// Whether any instant of the hour is inside.
    pub fn overlaps(&self, p: Partition) -> bool {
        let (start, end) = hour_span(p);
        self.since.is_none_or(|s| end > s) && self.until.is_none_or(|u| start < u)
    }

    /// Whether the whole hour is inside, so its rows need no filtering.
    pub fn covers(&self, p: Partition) -> bool {
        let (start, end) = hour_span(p);
        self.since.is_none_or(|s| start >= s) && self.until.is_none_or(|u| end <= u)
    }

    pub fn is_open(&self) -> bool {
        self.since.is_none() && self.until.is_none()
    }
}

fn hour_span(p: Partition) -> (DateTime<Utc>, DateTime<Utc>) {
    let start = p.date.and_hms_opt(p.hour, 0, 0).expect("hour < 24").and_utc();
    (start, start + TimeDelta::hours(1))
}

/// What a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Kind {
    /// The pipeline's output rows.
    Archive,
    /// Rows of the `dead_letter` schema (original bytes).
    DeadLetters,
    /// One payload per line (`ndjson`): read as a whole, its rows are not known before.
    Ndjson,
}

/// Which rows of a file are replayed: those inside the window, and for dead letters those of
/// this pipeline (a dead-letter prefix may hold several pipelines').
#[derive(Debug, Clone)]
pub struct Selector {
    pub window: Window,
    pub pipeline: String,
    /// The time field of archived rows (the schema's `time_field`).
    pub time_field: Option<String>,
}

impl Selector {
    /// The column a file of this kind is selected on.
    pub fn time_column(&self, kind: Kind) -> Option<&str> {
        match kind {
            Kind::Archive => self.time_field.as_deref(),
            Kind::DeadLetters => Some("failed_at"),
            Kind::Ndjson => None,
        }
    }

    /// The rows of `batch` to replay; `None` means all of them.
    pub fn mask(&self, kind: Kind, batch: &RecordBatch) -> Result<Option<BooleanArray>, String> {
        let mut keep: Option<Vec<bool>> = None;
        if !self.window.is_open() {
            if let Some(column) = self.time_column(kind).and_then(|c| batch.column_by_name(c)) {
                let column = arrow::compute::cast(column, &DataType::Timestamp(TimeUnit::Microsecond, None))
                    .map_err(|e| format!("time column: {e}"))?;
                let times = column.as_primitive::<TimestampMicrosecondType>();
                keep = Some(
                    (0..batch.num_rows())
                        .map(|i| {
                            times.is_valid(i)
                                && DateTime::from_timestamp_micros(times.value(i))
                                    .is_some_and(|t| self.window.contains(t))
                        })
                        .collect(),
                );
            }
        }
        if kind == Kind::DeadLetters {
            if let Some(column) = batch.column_by_name("pipeline") {
                let names = column.as_string_opt::<i32>().ok_or("column 'pipeline' is not text")?;
                let mine: Vec<bool> = (0..batch.num_rows()).map(|i| names.value(i) == self.pipeline).collect();
                keep = Some(match keep {
                    None => mine,
                    Some(k) => k.iter().zip(mine).map(|(a, b)| *a && b).collect(),
                });
            }
        }
        Ok(keep.filter(|k| !k.iter().all(|b| *b)).map(BooleanArray::from))
    }
}
