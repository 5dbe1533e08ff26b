//! One compaction from start to end: for each prefix of the pipeline, finish interrupted units,
//! plan, then each unit in order: manifest, merge, output, inputs deleted, manifest deleted.

use std::sync::Arc;
use std::time::Instant;

use chrono::{DateTime, Utc};
use object_store::path::Path as ObjectPath;
use object_store::ObjectStore;

use super::lock::Lock;
use super::manifest::{self, Finished, Manifest};
use super::plan::{self, Plan, Selection, Unit};
use super::{merge, CompactError};
use crate::config::{Config, Pipeline, Sink};
use crate::replay::plan::Window;
use crate::replay::progress::Progress;
use crate::store::join;

/// Where manifests live, under the lake location.
const MANIFESTS: &str = "_sluice/compact";

/// Test hook: pause (until killed) right after this step of the first unit: `manifest`, `output`
/// or `delete` (the first input deleted). Lets the crash tests stop a run at each step.
const PAUSE_ENV: &str = "SLUICE_COMPACT_PAUSE_AT";

#[derive(Debug, Clone)]
pub struct Args {
    pub pipeline: String,
    /// Hours overlapping `[since, until)`; either end may be open.
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Parquet bytes an output grows to; objects at or over it are left alone.
    pub target_size: u64,
    /// Plan and report; change nothing (interrupted units are reported, not finished).
    pub dry_run: bool,
}

/// What happened under one prefix (a lake sink's, or the pipeline's dead letters).
#[derive(Debug, Default)]
pub struct PrefixSummary {
    /// The prefix under the lake location, as configured (`logs`, `dead-letters/logs`).
    pub prefix: String,
    pub plan: Plan,
    /// Interrupted units found (manifests); finished unless a dry run.
    pub interrupted: usize,
    /// Of those, how many had their output and so had their inputs deleted.
    pub completed: usize,
    pub units_done: usize,
    pub files_in: usize,
    pub rows: u64,
    pub bytes_in: u64,
    pub bytes_out: u64,
}

#[derive(Debug, Default)]
pub struct Summary {
    pub prefixes: Vec<PrefixSummary>,
    pub seconds: f64,
}

/// Run a compaction with a checked config.
pub async fn compact(config: &Config, args: Args) -> Result<Summary, CompactError> {
    let started = Instant::now();
    let pipeline = config.pipeline_named(&args.pipeline).map_err(CompactError::Usage)?;
    let selection = selection(config, pipeline, &args)?;
    let lake = &config.global.lake;
    let (store, base) = config
        .lake
        .open(lake.endpoint.as_deref())
        .map_err(|e| CompactError::store(format!("opening {}", lake.location), e))?;
    // A dry run changes nothing, so it takes no lock (and may list merges a running one is doing).
    let lock = match args.dry_run {
        true => None,
        false => Some(Lock::acquire(&store, &base, &pipeline.name).await?),
    };
    let result = run(config, pipeline, &args, selection, &store, &base, lock.as_ref()).await;
    if let Some(lock) = lock {
        lock.release().await;
    }
    let mut summary = result?;
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// [`compact`] once the lock is held (`None`: a dry run).
async fn run(
    config: &Config,
    pipeline: &Pipeline,
    args: &Args,
    selection: Selection,
    store: &Arc<dyn ObjectStore>,
    base: &ObjectPath,
    lock: Option<&Lock>,
) -> Result<Summary, CompactError> {
    let held = || lock.map_or(Ok(()), Lock::check);
    let mut summary = Summary::default();
    for prefix in prefixes(config, pipeline) {
        let manifests = join(base, &format!("{MANIFESTS}/{prefix}"));
        let mut s = PrefixSummary { prefix: prefix.clone(), ..Default::default() };
        let pending = manifest::pending(store, &manifests).await?;
        s.interrupted = pending.len();
        if !args.dry_run {
            for m in &pending {
                held()?;
                s.completed += matches!(manifest::finish(store.as_ref(), m).await?, Finished::Completed) as usize;
            }
        }
        s.plan = plan::plan(store, &join(base, &prefix), &selection).await?;
        summary.prefixes.push(s);
    }
    if !args.dry_run {
        let units = summary.prefixes.iter().flat_map(|s| &s.plan.units);
        let (files, rows) = units.fold((0, 0), |(f, r), u| (f + u.inputs.len(), r + u.rows));
        let mut progress = Progress::new("compact", files, rows, 0, 0);
        for s in &mut summary.prefixes {
            let manifests = join(base, &format!("{MANIFESTS}/{}", s.prefix));
            for unit in s.plan.units.clone() {
                let out = run_unit(store, &manifests, &unit, &mut progress, &held).await?;
                s.units_done += 1;
                s.files_in += unit.inputs.len();
                s.rows += unit.rows;
                s.bytes_in += unit.bytes();
                s.bytes_out += out;
            }
        }
        progress.finish();
    }
    Ok(summary)
}

/// The hours to take and the output size, checked.
fn selection(config: &Config, p: &Pipeline, args: &Args) -> Result<Selection, CompactError> {
    if let (Some(s), Some(u)) = (args.since, args.until) {
        if s >= u {
            return Err(CompactError::Usage(format!(
                "--since ({}) must be before --until ({})",
                crate::schema::format_timestamp(s),
                crate::schema::format_timestamp(u)
            )));
        }
    }
    if args.target_size == 0 {
        return Err(CompactError::Usage("--target-size must be more than 0 bytes".into()));
    }
    // A batch of an hour can be written up to its max age after the hour ended.
    let ages = p.sinks.iter().map(|s| s.batch().max_age.0).chain([config.global.limits.batch.max_age.0]);
    let settle = chrono::TimeDelta::from_std(ages.max().unwrap_or_default()).unwrap_or(chrono::TimeDelta::MAX);
    Ok(Selection {
        window: Window { since: args.since, until: args.until },
        closed_before: Utc::now().checked_sub_signed(settle).unwrap_or(DateTime::<Utc>::MIN_UTC),
        target: args.target_size,
    })
}

/// The pipeline's lake sink prefixes, then its dead letters'.
fn prefixes(config: &Config, p: &Pipeline) -> Vec<String> {
    let mut out: Vec<String> = p
        .sinks
        .iter()
        .filter_map(|s| match s {
            Sink::Lake { prefix, .. } => Some(prefix.trim_matches('/').to_owned()),
            _ => None,
        })
        .collect();
    out.push(format!("{}/{}", config.global.lake.dead_letters.trim_matches('/'), p.name));
    out.dedup();
    out
}

/// Merge one unit: manifest, output, inputs deleted, manifest deleted. Returns the output's size.
async fn run_unit(
    store: &Arc<dyn ObjectStore>,
    manifests: &ObjectPath,
    unit: &Unit,
    progress: &mut Progress,
    held: &dyn Fn() -> Result<(), CompactError>,
) -> Result<u64, CompactError> {
    held()?;
    let stem = unit.output.filename().and_then(|n| n.strip_suffix(".parquet")).expect("planned as <stem>.parquet");
    let manifest_path = join(manifests, &format!("{}/{stem}.json", unit.partition.path()));
    let m = Manifest {
        output: unit.output.to_string(),
        inputs: unit.inputs.clone(),
        rows: unit.rows,
        created_at: crate::schema::format_timestamp(Utc::now()),
    };
    manifest::save(store.as_ref(), &manifest_path, &m).await?;
    pause_at("manifest");
    let merged = merge::merge(store, &unit.inputs, &unit.output, progress).await?;
    if merged.rows != unit.rows {
        // Nothing deleted; the next run finds no output and drops the manifest.
        return Err(CompactError::Write {
            path: unit.output.to_string(),
            reason: format!("merged {} rows where the inputs' footers count {}", merged.rows, unit.rows),
        });
    }
    let size = merged.bytes.len() as u64;
    held()?; // the merge may have taken long: still this run's before the lake changes
    crate::sink::lake::put_retrying(store.as_ref(), &unit.output, merged.bytes, "compact")
        .await
        .map_err(|e| CompactError::Write { path: unit.output.to_string(), reason: e.to_string() })?;
    pause_at("output");
    for (i, input) in unit.inputs.iter().enumerate() {
        manifest::delete(store.as_ref(), &ObjectPath::from(input.path.as_str())).await?;
        if i == 0 {
            pause_at("delete");
        }
    }
    manifest::delete(store.as_ref(), &manifest_path).await?;
    tracing::info!(output = %unit.output, inputs = unit.inputs.len(), rows = unit.rows, bytes_in = unit.bytes(),
        bytes_out = size, "compacted");
    Ok(size)
}

/// The crash tests' pause: wait here until killed when [`PAUSE_ENV`] names this step.
fn pause_at(step: &str) {
    if std::env::var(PAUSE_ENV).is_ok_and(|s| s == step) {
        eprintln!("compact: paused after step '{step}'");
        loop {
            std::thread::sleep(std::time::Duration::from_secs(3600));
        }
    }
}
