//! One replay from start to end: plan, checkpoint, sinks, then every selected row group (or batch
//! of NDJSON lines, `ndjson_run`) through the chain into the chosen targets, checkpointing after each.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use chrono::{DateTime, Utc};
use object_store::path::Path as ObjectPath;
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use super::checkpoint::{self, Checkpoint, Params, Start};
use super::ndjson_run::{self, Input};
use super::outputs::{outputs, Outputs};
use super::plan::{self, Kind, Plan, Selector, SourceFile, Window};
use super::progress::Progress;
use super::{ingest, location, reader, rows, ReplayError};
use crate::ack::{Ack, Outcome};
use crate::config::{Config, Pipeline};
use crate::event::{DeadLetter, Event};
use crate::lake_tail::join;
use crate::path::FieldPath;
use crate::schema::format_timestamp;
use crate::sink::dead_letter;
use crate::sink::lake::Partition;
use crate::transform::{Chain, StageConfig};

/// Where replayed events go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, clap::ValueEnum)]
pub enum Target {
    /// The pipeline's BigQuery sinks: only message ids the table does not have yet.
    Bigquery,
    /// The pipeline's lake sinks, under the replay's --output (never the archive).
    Lake,
    /// The pipeline's Pub/Sub topic (original bytes; the running service processes them).
    Topic,
}

impl Target {
    fn name(self) -> &'static str {
        match self {
            Target::Bigquery => "bigquery",
            Target::Lake => "lake",
            Target::Topic => "topic",
        }
    }
}

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

/// What a replay did (or, for a dry run, would do).
#[derive(Debug, Default)]
pub struct Summary {
    pub plan: Plan,
    pub resumed: bool,
    /// The checkpoint said this replay had already finished: nothing was read.
    pub already_complete: bool,
    pub files_done: usize,
    /// Selected rows read in this run.
    pub rows: u64,
    /// Rows that passed the chain.
    pub forwarded: u64,
    /// Removed on purpose by a stage (filter, dedupe).
    pub dropped: u64,
    /// Routed (by a `route` stage) only to sinks the replay does not feed.
    pub not_routed: u64,
    /// Refused by a stage or a sink, written under the output's dead letters.
    pub dead_letters: u64,
    /// BigQuery rows appended, and rows left out because the table had their id.
    pub appended: u64,
    pub already_present: u64,
    pub published: u64,
    pub checkpoint: String,
    pub seconds: f64,
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

    let endpoint = config.global.lake.endpoint_url();
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
    let mut chain =
        p.chain().map_err(|e| ReplayError::Usage(format!("{}: {}: {}", p.file.display(), e.field, e.message)))?;
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
                let schema = if file.kind == Kind::Archive { run.p.schema.clone() } else { dead_letter::schema() };
                let records = rows::records(&schema, &batch).map_err(|r| read_error(file, r))?;
                run.process(file, records, &format!("{}-rg{rg}-b{b}", stem(&file.path))).await?;
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

/// The field the chain's `metadata` stage writes the ingest time to, if any.
fn ingest_field(p: &Pipeline) -> Option<FieldPath> {
    p.transforms.iter().find_map(|s| match s {
        StageConfig::Metadata(m) => m.ingest_time.as_deref().and_then(|t| FieldPath::parse(t).ok()),
        _ => None,
    })
}

/// The acks of one batch's events; their outcomes come back here.
pub(super) struct Acks {
    tx: mpsc::UnboundedSender<Outcome>,
    rx: mpsc::UnboundedReceiver<Outcome>,
}

impl Acks {
    pub(super) fn new() -> Acks {
        let (tx, rx) = mpsc::unbounded_channel();
        Acks { tx, rx }
    }

    pub(super) fn ack(&self) -> Ack {
        let tx = self.tx.clone();
        Ack::new(move |o| {
            let _ = tx.send(o);
        })
    }

    /// Wait for every ack handed out; how many failed.
    async fn failed(self) -> usize {
        let Acks { tx, mut rx } = self;
        drop(tx);
        let mut failed = 0;
        while let Some(o) = rx.recv().await {
            failed += usize::from(o == Outcome::Failed);
        }
        failed
    }
}

/// The state one batch of rows goes through.
pub(super) struct Unit<'a> {
    p: &'a Pipeline,
    chain: &'a mut Chain,
    ingest: Option<&'a FieldPath>,
    outputs: &'a mut Outputs,
    summary: &'a mut Summary,
}

type Routes = Option<Arc<[Arc<str>]>>;

/// Forwarded events by hour partition and routes: one object each.
type Batches = Vec<((Partition, Routes), Vec<Event>)>;

impl Unit<'_> {
    /// Rebuild archived rows or dead letters as events and deliver them.
    async fn process(
        &mut self,
        file: &SourceFile,
        records: Vec<Map<String, Value>>,
        object: &str,
    ) -> Result<(), ReplayError> {
        let acks = Acks::new();
        let mut events = Vec::with_capacity(records.len());
        let mut dead: Vec<DeadLetter> = Vec::new();
        for record in records {
            let ack = acks.ack();
            let original_ingest = self.ingest.and_then(|f| f.get(&Value::Object(record.clone())).cloned());
            let rebuilt = match file.kind {
                Kind::Archive => rows::archived_event(&self.p.schema, record, ack),
                // NDJSON lines come as events from `ndjson_run`, never as records.
                Kind::DeadLetters | Kind::Ndjson => rows::dead_letter_event(record, ack),
            };
            match rebuilt {
                Ok(e) => events.push((e, original_ingest.filter(|_| file.kind == Kind::Archive))),
                Err(d) => dead.push(*d),
            }
        }
        self.deliver(acks, events, dead, file, object).await
    }

    /// Run events (each with the archived ingest time to put back, if any) through the chain and
    /// write them, and `dead` to dead letters; fails if any event could not be made durable in its
    /// targets or in dead letters. Objects are named after `object`.
    pub(super) async fn deliver(
        &mut self,
        acks: Acks,
        events: Vec<(Event, Option<Value>)>,
        mut dead: Vec<DeadLetter>,
        file: &SourceFile,
        object: &str,
    ) -> Result<(), ReplayError> {
        let n = events.len() + dead.len();
        self.summary.rows += n as u64;
        if let Some(topic) = &self.outputs.topic {
            let plain: Vec<&Event> = events.iter().map(|(e, _)| e).collect();
            topic.publish(&plain).await.map_err(ReplayError::Sink)?;
            self.summary.published += plain.len() as u64;
        }
        let batches = self.chain_events(events, &mut dead);
        if let Some(group) = &mut self.outputs.group {
            // Rows a sink refuses come back on this channel; each event is refused at most once.
            let (dead_tx, mut refused) = mpsc::channel(n.max(1));
            group.dead = Some(dead_tx);
            for (k, ((partition, routes), events)) in batches.into_iter().enumerate() {
                group.write_named(partition, routes.as_deref(), events, Some(format!("{object}-{k}"))).await;
            }
            group.dead = None;
            while let Ok(d) = refused.try_recv() {
                dead.push(d);
            }
        }
        if !dead.is_empty() {
            self.summary.dead_letters += dead.len() as u64;
            if file.kind == Kind::Ndjson {
                // The id is `<file>:<line>`: the reason says where the line is.
                dead.iter_mut().for_each(|d| d.reason = format!("{}: {}", d.event.message_id, d.reason));
            }
            let rows: Vec<Event> = dead.into_iter().map(|d| dead_letter::to_event(d, &self.p.name)).collect();
            // The source file's hour (or its modification time's), so a second run rewrites the same object.
            let partition = file.partition.unwrap_or_else(|| Partition::of(file.modified));
            self.outputs.dead.write_named(partition, None, rows, Some(object.to_owned())).await;
        }
        let failed = acks.failed().await;
        if failed > 0 {
            return Err(ReplayError::Sink(format!(
                "{failed} of {n} rows of {} ({object}) could not be written (the log says why)",
                file.path
            )));
        }
        Ok(())
    }

    /// The chain over `events`: what it forwards to the replay's sinks, by partition and routes;
    /// what it refuses, into `dead`.
    fn chain_events(&mut self, events: Vec<(Event, Option<Value>)>, dead: &mut Vec<DeadLetter>) -> Batches {
        let mut batches: Batches = Vec::new();
        if self.outputs.group.is_none() {
            // Published only: nothing else to do with them.
            events.into_iter().for_each(|(e, _)| e.ack.settle(Outcome::Delivered));
            return batches;
        }
        let taken = events.len();
        let (events, originals): (Vec<Event>, Vec<Option<Value>>) = events.into_iter().unzip();
        let mut out = self.chain.process_batch(events);
        self.summary.dropped += (taken - out.forward.len() - out.dead.len()) as u64;
        self.summary.forwarded += out.forward.len() as u64;
        dead.append(&mut out.dead);
        if let Some(f) = self.ingest {
            ingest::restore(f, &mut out.forward, &out.forward_from, &originals);
        }
        for e in out.forward {
            if !self.outputs.takes(e.routes.as_deref()) {
                // Routed to no sink, or only to sinks this replay was not asked to feed.
                self.summary.not_routed += 1;
                e.ack.settle(Outcome::Delivered);
                continue;
            }
            let key = (Partition::for_event(&self.p.schema, &e), e.routes.clone());
            match batches.iter_mut().find(|(k, _)| *k == key) {
                Some((_, v)) => v.push(e),
                None => batches.push((key, vec![e])),
            }
        }
        batches
    }
}
