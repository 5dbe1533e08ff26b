//! What a compaction merges: under one prefix, the closed hour partitions in the window, their
//! objects under the target size grouped by column set, packed in path order into units of about
//! the target size. A unit of one object is left alone (merging it gains nothing), and so is a
//! group of only compacted objects.

use std::collections::BTreeMap;
use std::sync::Arc;

use arrow::datatypes::Fields;
use chrono::{DateTime, TimeDelta, Utc};
use futures::TryStreamExt;
use object_store::path::Path as ObjectPath;
use object_store::{ObjectMeta, ObjectStore};

use super::manifest::Input;
use super::CompactError;
use crate::replay::plan::{hidden, partition_of, Window};
use crate::replay::reader;
use crate::sink::lake::Partition;

/// The name every merged object starts with, so it is recognisable in listings and logs.
pub const COMPACTED: &str = "compacted-";

/// Objects merged into one.
#[derive(Debug, Clone)]
pub struct Unit {
    pub partition: Partition,
    pub inputs: Vec<Input>,
    /// Rows of all inputs (from their footers).
    pub rows: u64,
    pub output: ObjectPath,
}

impl Unit {
    pub fn bytes(&self) -> u64 {
        self.inputs.iter().map(|i| i.size).sum()
    }
}

/// The units of one prefix, and what was left out.
#[derive(Debug, Default)]
pub struct Plan {
    pub units: Vec<Unit>,
    /// Hour partitions in the window that are closed.
    pub partitions: usize,
    /// Hour partitions in the window not closed yet (left alone).
    pub open: usize,
}

/// What to select and how large the outputs grow.
#[derive(Debug, Clone, Copy)]
pub struct Selection {
    pub window: Window,
    /// Hours that ended at or before this are closed.
    pub closed_before: DateTime<Utc>,
    /// Objects at or over this size are left as they are; units are packed up to it.
    pub target: u64,
}

impl Selection {
    fn closed(&self, p: Partition) -> bool {
        let end = p.date.and_hms_opt(p.hour, 0, 0).expect("hour < 24").and_utc() + TimeDelta::hours(1);
        end <= self.closed_before
    }
}

/// `compacted-<hash>.parquet` in the partition folder of the inputs: the hash of their sorted
/// names (FNV-1a, 64 bits; stable across builds, unlike std's hasher), so the same inputs always
/// give the same output.
pub fn output_name(folder: &ObjectPath, inputs: &[Input]) -> ObjectPath {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in inputs.iter().flat_map(|i| i.path.as_bytes().iter().chain(b"\n")) {
        h ^= u64::from(*byte);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    folder.clone().join(format!("{COMPACTED}{h:016x}.parquet"))
}

/// Windows longer than this are listed whole rather than day by day.
const MAX_DAYS_LISTED: i64 = 366;

/// What to list: the `dt=` folders of the days the window touches when it has a start (so a
/// scheduled run over recent hours does not list the whole history), else the whole prefix.
fn folders(prefix: &ObjectPath, window: &Window) -> Vec<ObjectPath> {
    let Some(since) = window.since else { return vec![prefix.clone()] };
    let first = since.date_naive();
    let last = window.until.unwrap_or_else(Utc::now).date_naive();
    if (last - first).num_days() > MAX_DAYS_LISTED {
        return vec![prefix.clone()];
    }
    first
        .iter_days()
        .take_while(|d| *d <= last)
        .map(|d| prefix.clone().join(format!("dt={}", d.format("%Y-%m-%d"))))
        .collect()
}

/// The folder an object is in.
fn parent(path: &ObjectPath) -> ObjectPath {
    let parts: Vec<_> = path.parts().collect();
    ObjectPath::from_iter(parts[..parts.len().saturating_sub(1)].iter().cloned())
}

/// Whether an object is the output of an earlier compaction.
fn compacted(path: &ObjectPath) -> bool {
    path.filename().is_some_and(|n| n.starts_with(COMPACTED))
}

/// List `prefix` and plan its units.
pub async fn plan(
    store: &Arc<dyn ObjectStore>,
    prefix: &ObjectPath,
    selection: &Selection,
) -> Result<Plan, CompactError> {
    let mut listed: Vec<ObjectMeta> = Vec::new();
    for folder in folders(prefix, &selection.window) {
        let what = || format!("listing {folder}");
        listed.extend(
            store.list(Some(&folder)).try_collect::<Vec<_>>().await.map_err(|e| CompactError::store(what(), e))?,
        );
    }
    let mut by_hour: BTreeMap<(chrono::NaiveDate, u32), Vec<ObjectMeta>> = BTreeMap::new();
    for meta in listed {
        let relative = meta.location.as_ref().strip_prefix(prefix.as_ref()).unwrap_or(meta.location.as_ref());
        if !relative.ends_with(".parquet") || hidden(relative) {
            continue;
        }
        if let Some(p) = partition_of(relative).filter(|p| selection.window.overlaps(*p)) {
            by_hour.entry((p.date, p.hour)).or_default().push(meta);
        }
    }
    let mut plan = Plan::default();
    for ((date, hour), mut objects) in by_hour {
        let partition = Partition { date, hour };
        if !selection.closed(partition) {
            plan.open += 1;
            continue;
        }
        plan.partitions += 1;
        objects.retain(|m| m.size < selection.target);
        if objects.len() < 2 {
            continue;
        }
        objects.sort_by(|a, b| a.location.cmp(&b.location));
        for group in by_columns(store, objects).await? {
            // Compacted objects are merged again only together with newer small objects: a
            // rerun right after a compaction changes nothing.
            if group.iter().all(|(m, _)| compacted(&m.location)) {
                continue;
            }
            plan.units.extend(pack(partition, group, selection.target));
        }
    }
    Ok(plan)
}

/// Objects with their row counts, grouped by their Arrow columns (first-seen order kept).
async fn by_columns(
    store: &Arc<dyn ObjectStore>,
    objects: Vec<ObjectMeta>,
) -> Result<Vec<Vec<(ObjectMeta, u64)>>, CompactError> {
    let mut groups: Vec<(Fields, Vec<(ObjectMeta, u64)>)> = Vec::new();
    for meta in objects {
        let footer = reader::footer(store, &meta.location, meta.size).await?;
        let rows = footer.metadata().file_metadata().num_rows().max(0) as u64;
        let fields = footer.schema().fields().clone();
        match groups.iter_mut().find(|(f, _)| *f == fields) {
            Some((_, g)) => g.push((meta, rows)),
            None => groups.push((fields, vec![(meta, rows)])),
        }
    }
    Ok(groups.into_iter().map(|(_, g)| g).collect())
}

/// Consecutive objects packed into units of about `target` bytes; a unit closes once it reaches
/// the target, and a last unit of one object joins the one before (or is left alone).
fn pack(partition: Partition, group: Vec<(ObjectMeta, u64)>, target: u64) -> Vec<Unit> {
    let mut bins: Vec<Vec<(ObjectMeta, u64)>> = vec![Vec::new()];
    for item in group {
        let last = bins.last_mut().expect("never empty");
        if last.iter().map(|(m, _)| m.size).sum::<u64>() >= target {
            bins.push(vec![item]);
        } else {
            last.push(item);
        }
    }
    if bins.len() > 1 && bins.last().is_some_and(|b| b.len() == 1) {
        let lone = bins.pop().expect("checked");
        bins.last_mut().expect("checked").extend(lone);
    }
    bins.into_iter()
        .filter(|b| b.len() >= 2)
        .map(|bin| {
            let folder = parent(&bin[0].0.location);
            let rows = bin.iter().map(|(_, r)| r).sum();
            let inputs: Vec<Input> =
                bin.into_iter().map(|(m, _)| Input { path: m.location.to_string(), size: m.size }).collect();
            Unit { partition, output: output_name(&folder, &inputs), inputs, rows }
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn meta(name: &str, size: u64) -> (ObjectMeta, u64) {
        let location = ObjectPath::from(format!("logs/dt=2026-11-26/hour=09/{name}"));
        (ObjectMeta { location, last_modified: Utc::now(), size, e_tag: None, version: None }, 10)
    }

    fn hour() -> Partition {
        Partition::of(crate::schema::parse_timestamp("2026-11-26T09:00:00Z").unwrap())
    }

    #[test]
    fn packs_consecutive_objects_up_to_the_target() {
        let group = (0..7).map(|i| meta(&format!("{i}.parquet"), 40)).collect();
        let units = pack(hour(), group, 100);
        let sizes: Vec<usize> = units.iter().map(|u| u.inputs.len()).collect();
        assert_eq!(sizes, vec![3, 4], "the lone last object joins the unit before");
        assert_eq!(units[0].rows, 30);
        assert!(units[0].output.as_ref().starts_with("logs/dt=2026-11-26/hour=09/compacted-"), "{}", units[0].output);
        assert_ne!(units[0].output, units[1].output);
    }

    #[test]
    fn one_small_object_is_left_alone() {
        assert!(pack(hour(), vec![meta("a.parquet", 10)], 100).is_empty());
    }

    #[test]
    fn output_names_depend_only_on_the_inputs() {
        let folder = ObjectPath::from("p/dt=2026-11-26/hour=09");
        let a = [Input { path: "p/a".into(), size: 1 }, Input { path: "p/b".into(), size: 2 }];
        let b = [Input { path: "p/a".into(), size: 9 }, Input { path: "p/b".into(), size: 9 }];
        let c = [Input { path: "p/a".into(), size: 1 }, Input { path: "p/c".into(), size: 2 }];
        assert_eq!(output_name(&folder, &a), output_name(&folder, &b));
        assert_ne!(output_name(&folder, &a), output_name(&folder, &c));
        assert_eq!(output_name(&folder, &a).as_ref(), "p/dt=2026-11-26/hour=09/compacted-2fff55ad38d48126.parquet");
    }

    #[test]
    fn a_window_with_a_start_lists_its_days() {
        let t = |s| Some(crate::schema::parse_timestamp(s).unwrap());
        let prefix = ObjectPath::from("lake/logs");
        let w = Window { since: t("2026-11-25T23:00:00Z"), until: t("2026-11-27T01:00:00Z") };
        let listed: Vec<String> = folders(&prefix, &w).iter().map(|p| p.to_string()).collect();
        assert_eq!(listed, ["lake/logs/dt=2026-11-25", "lake/logs/dt=2026-11-26", "lake/logs/dt=2026-11-27"]);
        assert_eq!(folders(&prefix, &Window::default()), std::slice::from_ref(&prefix));
        let long = Window { since: t("2000-01-01T00:00:00Z"), until: None };
        assert_eq!(folders(&prefix, &long), [prefix]);
    }

    #[test]
    fn an_hour_is_closed_once_it_ended_before_the_cut() {
        let t = |s| crate::schema::parse_timestamp(s).unwrap();
        let s = Selection { window: Window::default(), closed_before: t("2026-11-26T10:00:00Z"), target: 1 };
        assert!(s.closed(hour()));
        let s = Selection { closed_before: t("2026-11-26T09:59:59Z"), ..s };
        assert!(!s.closed(hour()));
    }
}
