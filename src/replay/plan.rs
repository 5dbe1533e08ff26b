//! What a replay reads: the Parquet files under `--from`, selected by their `dt=/hour=` folder
//! and then row by row on their time field, and whether each holds archived rows or dead letters.

use std::sync::Arc;

use chrono::{DateTime, NaiveDate, Utc};
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;
use parquet::arrow::arrow_reader::ArrowReaderMetadata;

use super::reader;
pub use super::select::{Kind, Selector, Window};
use super::ReplayError;
use crate::schema::Schema;
use crate::sink::lake::Partition;

/// The `dt=YYYY-MM-DD/hour=HH` folders in a path, if it has both.
pub fn partition_of(path: &str) -> Option<Partition> {
    let mut date = None;
    let mut hour = None;
    for seg in path.split('/') {
        if let Some(d) = seg.strip_prefix("dt=") {
            date = NaiveDate::parse_from_str(d, "%Y-%m-%d").ok();
        } else if let Some(h) = seg.strip_prefix("hour=") {
            hour = h.parse::<u32>().ok().filter(|h| *h < 24);
        }
    }
    Some(Partition { date: date?, hour: hour? })
}

/// Whether a path (relative to the `--from` prefix) is hidden: a folder or file starting with
/// `_` or `.` (checkpoints, `_sluice/` state, temporary files).
pub fn hidden(relative: &str) -> bool {
    relative.split('/').any(|s| s.starts_with('_') || s.starts_with('.'))
}

/// One file to replay.
#[derive(Debug, Clone)]
pub struct SourceFile {
    pub path: ObjectPath,
    pub size: u64,
    pub kind: Kind,
    pub partition: Option<Partition>,
    /// When the store last wrote it.
    pub modified: DateTime<Utc>,
    /// Rows in each row group (none for NDJSON).
    pub row_groups: Vec<u64>,
    /// Rows the selection keeps.
    pub selected: u64,
}

impl SourceFile {
    pub fn rows(&self) -> u64 {
        self.row_groups.iter().sum()
    }

    /// The units a checkpoint counts: row groups, or the whole file for NDJSON.
    pub fn parts(&self) -> usize {
        match self.kind {
            Kind::Ndjson => 1,
            _ => self.row_groups.len(),
        }
    }
}

/// The files of a replay, in path order, and what was left out.
#[derive(Debug, Default)]
pub struct Plan {
    pub files: Vec<SourceFile>,
    /// Parquet files listed under the prefix (hidden ones excluded).
    pub listed: usize,
    /// Files in hour folders outside the window.
    pub outside_window: usize,
    /// Files that hold neither the pipeline's rows nor dead letters (another pipeline's archive).
    pub other_schema: Vec<String>,
}

impl Plan {
    pub fn selected_rows(&self) -> u64 {
        self.files.iter().map(|f| f.selected).sum()
    }

    /// Whether it reads NDJSON files (whose rows are counted only as they are read).
    pub fn is_ndjson(&self) -> bool {
        self.files.first().is_some_and(|f| f.kind == Kind::Ndjson)
    }

    /// An NDJSON plan: these files, whole.
    pub fn ndjson(files: Vec<object_store::ObjectMeta>) -> Plan {
        let files: Vec<SourceFile> = files
            .into_iter()
            .map(|m| SourceFile {
                partition: partition_of(m.location.as_ref()),
                path: m.location,
                size: m.size,
                kind: Kind::Ndjson,
                modified: m.last_modified,
                row_groups: Vec::new(),
                selected: 0,
            })
            .collect();
        Plan { listed: files.len(), files, ..Default::default() }
    }
}

/// List and select the files under `prefix`, reading each footer (and, for files the window
/// cuts, the time column) to count the rows a replay would read.
pub async fn plan(
    store: &Arc<dyn ObjectStore>,
    prefix: &ObjectPath,
    schema: &Schema,
    selector: &Selector,
) -> Result<Plan, ReplayError> {
    let listed: Vec<_> =
        store.list(Some(prefix)).try_collect().await.map_err(|e| ReplayError::store(format!("listing {prefix}"), e))?;
    let mut listed: Vec<_> = listed
        .into_iter()
        .filter(|m| m.location.as_ref().ends_with(".parquet"))
        .filter(|m| {
            let relative = m.location.as_ref().strip_prefix(prefix.as_ref()).unwrap_or(m.location.as_ref());
            !hidden(relative)
        })
        .collect();
    listed.sort_by(|a, b| a.location.cmp(&b.location));
    let mut plan = Plan { listed: listed.len(), ..Default::default() };
    for meta in listed {
        let partition = partition_of(meta.location.as_ref());
        if partition.is_some_and(|p| !selector.window.overlaps(p)) {
            plan.outside_window += 1;
            continue;
        }
        let footer = reader::footer(store, &meta.location, meta.size).await?;
        let Some(kind) = kind_of(&footer, schema) else {
            plan.other_schema.push(meta.location.to_string());
            continue;
        };
        let row_groups: Vec<u64> =
            footer.metadata().row_groups().iter().map(|rg| rg.num_rows().max(0) as u64).collect();
        let whole = partition.is_some_and(|p| selector.window.covers(p)) || selector.window.is_open();
        let selected = if whole && kind == Kind::Archive {
            row_groups.iter().sum()
        } else {
            reader::count_selected(store, &meta.location, meta.size, &footer, kind, selector).await?
        };
        let modified = meta.last_modified;
        plan.files.push(SourceFile {
            path: meta.location,
            size: meta.size,
            kind,
            partition,
            modified,
            row_groups,
            selected,
        });
    }
    Ok(plan)
}

/// Dead letters by their schema's columns; an archive when the file's columns are the pipeline's
/// (every required field present; a column added to the schema later may be missing).
fn kind_of(footer: &ArrowReaderMetadata, schema: &Schema) -> Option<Kind> {
    let columns = footer.schema();
    let has = |name: &str| columns.field_with_name(name).is_ok();
    if ["failed_at", "stage", "reason", "data", "message_id"].iter().all(|c| has(c)) {
        return Some(Kind::DeadLetters);
    }
    let required = schema.fields.iter().filter(|f| f.mode == crate::schema::Mode::Required);
    let named = columns.fields().iter().all(|c| schema.field(c.name()).is_some());
    (has("message_id") && named && required.into_iter().all(|f| has(&f.name))).then_some(Kind::Archive)
}

#[cfg(test)]
mod tests {
    use super::*;
    use arrow::array::BooleanArray;

    fn t(s: &str) -> DateTime<Utc> {
        crate::schema::parse_timestamp(s).unwrap()
    }

    fn hour(s: &str) -> Partition {
        Partition::of(t(s))
    }

    #[test]
    fn windows_select_hours_and_instants() {
        let w = Window { since: Some(t("2026-11-20T10:30:00Z")), until: Some(t("2026-11-20T12:00:00Z")) };
        assert!(!w.overlaps(hour("2026-11-20T09:00:00Z")));
        assert!(w.overlaps(hour("2026-11-20T10:00:00Z")) && !w.covers(hour("2026-11-20T10:00:00Z")));
        assert!(w.overlaps(hour("2026-11-20T11:00:00Z")) && w.covers(hour("2026-11-20T11:00:00Z")));
        assert!(!w.overlaps(hour("2026-11-20T12:00:00Z")), "until is exclusive");
        assert!(w.contains(t("2026-11-20T10:30:00Z")) && !w.contains(t("2026-11-20T12:00:00Z")));
        let open = Window::default();
        assert!(open.is_open() && open.covers(hour("2000-01-01T00:00:00Z")));
        let from = Window { since: Some(t("2026-11-20T10:00:00Z")), until: None };
        assert!(from.covers(hour("2030-01-01T00:00:00Z")) && !from.overlaps(hour("2026-11-20T09:00:00Z")));
    }

    #[test]
    fn partitions_come_from_hive_folders() {
        assert_eq!(partition_of("lake/logs/dt=2026-11-26/hour=09/local-x.parquet"), Some(hour("2026-11-26T09:00:00Z")));
        assert_eq!(partition_of("lake/logs/dt=2026-11-26/x.parquet"), None);
        assert_eq!(partition_of("dt=2026-13-01/hour=01/x.parquet"), None);
        assert_eq!(partition_of("dt=2026-11-01/hour=24/x.parquet"), None);
    }

    #[test]
    fn hidden_paths_are_skipped() {
        assert!(hidden("/_checkpoints/logs.json"));
        assert!(hidden("_sluice/config-state/x.parquet"));
        assert!(hidden("logs/dt=2026-11-26/hour=09/.tmp.parquet"));
        assert!(!hidden("/logs/dt=2026-11-26/hour=09/local-1.parquet"));
    }

    #[test]
    fn selector_masks_by_time_and_pipeline() {
        let dead = crate::sink::dead_letter::schema();
        let row = |at: &str, pipeline: &str| {
            serde_json::json!({"failed_at": at, "pipeline": pipeline, "stage": "s", "reason": "r", "message_id": "m",
                "publish_time": at, "subscription": "push", "data": ""})
        };
        let rows = [
            row("2026-11-20T10:00:00Z", "logs"),
            row("2026-11-20T11:00:00Z", "logs"),
            row("2026-11-20T11:00:00Z", "health"),
        ];
        let batch = crate::sink::encode::to_record_batch(&dead, &rows.iter().collect::<Vec<_>>()).unwrap();
        let mut s = Selector { window: Window::default(), pipeline: "logs".into(), time_field: None };
        assert_eq!(s.mask(Kind::DeadLetters, &batch).unwrap(), Some(BooleanArray::from(vec![true, true, false])));
        s.window.since = Some(t("2026-11-20T10:30:00Z"));
        assert_eq!(s.mask(Kind::DeadLetters, &batch).unwrap(), Some(BooleanArray::from(vec![false, true, false])));
        s.pipeline = "health".into();
        s.window = Window::default();
        assert_eq!(s.mask(Kind::DeadLetters, &batch).unwrap(), Some(BooleanArray::from(vec![false, false, true])));
        // Nothing to filter: no mask at all.
        assert_eq!(s.mask(Kind::Archive, &batch).unwrap(), None);
    }
}
