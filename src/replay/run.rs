//! One replay from start to end: plan, checkpoint, sinks, then every selected row group (or batch
//! of NDJSON lines, `ndjson_run`) through the chain into the chosen targets, checkpointing after each.

use std::sync::atomic::Ordering;

use chrono::{DateTime, Utc};
use object_store::path::Path as ObjectPath;

use super::checkpoint::{self, Checkpoint, Params, Start};
use super::ndjson_run::{self, Input};
use super::outputs::outputs;
pub use super::outputs::Target;
use super::plan::{self, Kind, Plan, Selector, SourceFile, Window};
use super::progress::Progress;
use super::unit::Unit;
use super::{location, reader, rows, ReplayError, Summary};
use crate::config::{Config, Pipeline};
use crate::path::FieldPath;
use crate::schema::format_timestamp;
use crate::sink::dead_letter;
use crate::store::join;
use crate::transform::{Chain, StageConfig};

#[derive(Debug, Clone)]
pub struct Args {
    pub pipeline: String,
    /// A lake location or a prefix inside one (`gs://b/events/logs/dt=2026-11-20/`, a folder).
    pub from: String,
    pub since: Option<DateTime<Utc>>,
    pub until: Option<DateTime<Utc>>,
    /// Empty means BigQuery.
    pub to: Vec<Target>,
    /// Lake output and checkpoints; default `<lake.location>/_replay`.
    pub output: Option<String>,
    pub dry_run: bool,
    /// Discard the checkpoint and start over.
    pub restart: bool,
}

/// Run a replay with a checked config.
pub async fn replay(config: &Config, args: Args) -> Result<Summary, ReplayError> {
    let started = std::time::Instant::now();
    let p = config.pipeline_named(&args.pipeline).map_err(ReplayError::Usage)?;
    let window = Window { since: args.since, until: args.until };
    if let (Some(s), Some(u)) = (args.since, args.until) {
        if s >= u {
            return Err(ReplayError::Usage(format!(
                "--since ({}) must be before --until ({})",
                format_timestamp(s),
                format_timestamp(u)
            )));
        }
    }
    let mut to = if args.to.is_empty() { vec![Target::Bigquery] } else { args.to.clone() };
    to.sort();
    to.dedup();

    let endpoint = config.global.lake.endpoint.clone();
    let input = Input::open(&location("--from", &args.from)?, &args.from, endpoint.as_deref())?;
    let selector = Selector { window, pipeline: p.name.clone(), time_field: p.schema.time_field.clone() };
    let plan = plan_of(&input, p, &args, &selector).await?;
    let mut summary = Summary::default();
    if args.dry_run {
        summary.plan = plan;
        return Ok(summary);
    }

    let output_text =
        args.output.clone().unwrap_or_else(|| format!("{}/_replay", config.global.lake.location.trim_end_matches('/')));
    let output = location("--output", &output_text)?;
    let (out_store, out_base) =
        output.open(endpoint.as_deref()).map_err(|e| ReplayError::store(format!("opening {output_text}"), e))?;
    let cp_store = checkpoint::Store::new(out_store.clone(), join(&out_base, &format!("_checkpoints/{}.json", p.name)));
    summary.checkpoint = format!("{}/_checkpoints/{}.json", output_text.trim_end_matches('/'), p.name);
    let params = Params {
        pipeline: p.name.clone(),
        from: args.from.clone(),
        since: args.since.map(format_timestamp),
        until: args.until.map(format_timestamp),
        to: to.iter().map(|t| t.name().to_owned()).collect(),
        output: output_text,
    };
    let Some(mut cp) = begin(cp_store.load().await?, &params, &args, &plan, &mut summary)? else {
        summary.plan = plan;
        return Ok(summary);
    };
    cp_store.save(&cp).await?;

    let mut outputs = outputs(config, p, &to, &out_store, &out_base).await?;
    let mut chain = chain(p, &plan)?;
    let ingest = ingest_field(p);
    let mut progress = progress(&plan, &cp);
    let mut run = Unit { p, chain: &mut chain, ingest: ingest.as_ref(), outputs: &mut outputs, summary: &mut summary };
    for file in &plan.files {
        let first = cp.done(file.path.as_ref());
        if first >= file.parts() {
            continue;
        }
        if file.kind == Kind::Ndjson {
            ndjson_run::file(&mut run, &input, file, (&mut cp, &cp_store), &mut progress).await?;
        } else {
            parquet_file(&mut run, &input, &selector, file, first, (&mut cp, &cp_store), &mut progress).await?;
        }
        run.summary.files_done += 1;
        progress.file_done();
    }
    outputs.close().await;
    cp.complete = true;
    cp_store.save(&cp).await?;
    progress.finish();
    summary.appended = outputs.counts.appended.load(Ordering::Relaxed);
    summary.already_present = outputs.counts.present.load(Ordering::Relaxed);
    summary.plan = plan;
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
}

/// The files to replay: Parquet under the prefix, or NDJSON when `--from` names an NDJSON file or
/// a prefix holding no Parquet file.
async fn plan_of(input: &Input, p: &Pipeline, args: &Args, selector: &Selector) -> Result<Plan, ReplayError> {
    let plan = match input.file {
        true => input.plan_file().await?,
        false => match plan::plan(&input.store, &input.prefix, &p.schema, selector).await? {
            plan if plan.listed == 0 => input.plan_prefix().await?,
            plan => plan,
        },
    };
    if plan.is_ndjson() {
        if args.since.is_some() || args.until.is_some() {
            return Err(ReplayError::Usage(
                "--since/--until select rows of Parquet archives; NDJSON files are replayed whole".into(),
            ));
        }
        return Ok(plan);
    }
    if plan.selected_rows() == 0 {
        return Err(ReplayError::Empty(format!(
            "nothing to replay under {}: {} Parquet files listed (and no NDJSON file), {} in hours outside \
             --since/--until, {} of another schema than '{}' or dead letters, {} selected with no row for pipeline \
             '{}' in the window",
            args.from,
            plan.listed,
            plan.outside_window,
            plan.other_schema.len(),
            p.schema.name,
            plan.files.len(),
            p.name
        )));
    }
    Ok(plan)
}

/// The checkpoint this run continues, or `None` when the checkpoint says the replay is complete.
fn begin(
    stored: Option<Checkpoint>,
    params: &Params,
    args: &Args,
    plan: &Plan,
    summary: &mut Summary,
) -> Result<Option<Checkpoint>, ReplayError> {
    Ok(match checkpoint::start(stored, params, args.restart, &summary.checkpoint)? {
        Start::Complete(c) => {
            tracing::info!(checkpoint = %summary.checkpoint, finished = %c.updated_at, "replay already complete");
            summary.already_complete = true;
            None
        }
        Start::Resume(c) => {
            let done = plan.files.iter().filter(|f| c.done(f.path.as_ref()) >= f.parts()).count();
            tracing::info!(checkpoint = %summary.checkpoint, files_done = done, files = plan.files.len(),
                rows_done = c.rows_done(), "resuming replay from its checkpoint");
            eprintln!(
                "resuming from checkpoint {}: {done} of {} files and {} rows done (started {})",
                summary.checkpoint,
                plan.files.len(),
                c.rows_done(),
                c.started_at
            );
            summary.resumed = true;
            Some(c)
        }
        Start::Fresh(c) => Some(c),
    })
}

/// Progress in rows for Parquet (counted by the plan), in bytes read for NDJSON.
fn progress(plan: &Plan, cp: &Checkpoint) -> Progress {
    let done: Vec<&SourceFile> = plan.files.iter().filter(|f| cp.done(f.path.as_ref()) >= f.parts()).collect();
    if plan.is_ndjson() {
        let total = plan.files.iter().map(|f| f.size).sum();
        Progress::bytes("replay", plan.files.len(), total, done.len(), done.iter().map(|f| f.size).sum())
    } else {
        Progress::new("replay", plan.files.len(), plan.selected_rows(), done.len(), cp.rows_done())
    }
}

/// Replay one Parquet file from row group `first`, checkpointing after each.
async fn parquet_file(
    run: &mut Unit<'_>,
    input: &Input,
    selector: &Selector,
    file: &SourceFile,
    first: usize,
    (cp, cp_store): (&mut Checkpoint, &checkpoint::Store),
    progress: &mut Progress,
) -> Result<(), ReplayError> {
    let footer = reader::footer(&input.store, &file.path, file.size).await?;
    for rg in first..file.row_groups.len() {
        let mut stream = reader::row_group(&input.store, &file.path, file.size, &footer, rg)?;
        let mut rows_in_group = 0;
        let mut b = 0;
        while let Some(batch) = reader::next(&mut stream, &file.path).await? {
            let batch = match selector.mask(file.kind, &batch).map_err(|r| read_error(file, r))? {
                None => batch,
                Some(m) => arrow::compute::filter_record_batch(&batch, &m).map_err(|e| read_error(file, e))?,
            };
            let n = batch.num_rows() as u64;
            if n > 0 {
                let object = format!("{}-rg{rg}-b{b}", stem(&file.path));
                if file.kind == Kind::Archive {
                    let rows = rows::archived(&run.p.schema, &batch, run.ingest).map_err(|r| read_error(file, r))?;
                    run.archived(file, rows, &object).await?;
                } else {
                    let records = rows::records(&dead_letter::schema(), &batch).map_err(|r| read_error(file, r))?;
                    run.dead_letters(file, records, &object).await?;
                }
            }
            rows_in_group += n;
            progress.advance(n);
            b += 1;
        }
        cp.record(file.path.as_ref(), rg + 1, rows_in_group);
        cp_store.save(cp).await?;
    }
    Ok(())
}

fn read_error(file: &SourceFile, reason: impl std::fmt::Display) -> ReplayError {
    ReplayError::Read { path: file.path.to_string(), reason: reason.to_string() }
}

/// The file name without `.parquet`: object names of its replayed batches start with it.
fn stem(path: &ObjectPath) -> String {
    let name = path.filename().unwrap_or("file");
    name.strip_suffix(".parquet").unwrap_or(name).to_owned()
}

/// The pipeline's chain, told when ids never repeat: an NDJSON replay's are `<file>:<line>`, and
/// each line is read once.
fn chain(p: &Pipeline, plan: &Plan) -> Result<Chain, ReplayError> {
    let mut chain =
        p.chain().map_err(|e| ReplayError::Usage(format!("{}: {}: {}", p.file.display(), e.field, e.message)))?;
    if plan.is_ndjson() {
        chain.message_ids_unique();
    }
    Ok(chain)
}

/// The field the chain's `metadata` stage writes the ingest time to, if any.
fn ingest_field(p: &Pipeline) -> Option<FieldPath> {
    p.transforms.iter().find_map(|s| match s {
        StageConfig::Metadata(m) => m.ingest_time.as_deref().and_then(|t| FieldPath::parse(t).ok()),
        _ => None,
    })
}
