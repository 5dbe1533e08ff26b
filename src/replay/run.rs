//! One replay from start to end: plan, checkpoint, sinks, then every selected row group through
//! the chain into the chosen targets, checkpointing after each.

use std::sync::atomic::Ordering;
use std::sync::Arc;

use base64::Engine;
use bytes::Bytes;
use chrono::{DateTime, Utc};
use object_store::path::Path as ObjectPath;
use serde_json::{Map, Value};
use tokio::sync::mpsc;

use super::checkpoint::{self, Params, Start};
use super::existing::{Counts, MissingOnly};
use super::plan::{self, Kind, Plan, Selector, SourceFile, Window};
use super::topic::TopicTarget;
use super::{location, reader, rows, ReplayError};
use crate::ack::{Ack, Outcome};
use crate::config::global::WriteMode;
use crate::config::{Config, Pipeline, Sink};
use crate::event::{Attributes, DeadLetter, Event};
use crate::lake_tail::join;
use crate::metrics::Metrics;
use crate::path::FieldPath;
use crate::schema::{format_timestamp, parse_timestamp, Schema};
use crate::sink::batcher::Limits;
use crate::sink::dead_letter;
use crate::sink::group::{SinkGroup, Writer};
use crate::sink::lake::{LakeWriter, Partition};
use crate::transform::{Chain, Output, StageConfig};

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

/// The writers and targets a replay feeds.
struct Outputs {
    group: Option<SinkGroup>,
    dead: SinkGroup,
    topic: Option<TopicTarget>,
    counts: Arc<Counts>,
}

impl Outputs {
    /// Whether an event with these routes goes to any of the replay's sinks.
    fn takes(&self, routes: Option<&[Arc<str>]>) -> bool {
        let Some(group) = &self.group else { return false };
        routes.is_none_or(|r| group.writers.iter().any(|w| r.iter().any(|n| &**n == w.name())))
    }
}

/// Run a replay with a checked config.
pub async fn replay(config: &Config, args: Args) -> Result<Summary, ReplayError> {
    let started = std::time::Instant::now();
    let p = config.pipelines.iter().find(|p| p.name == args.pipeline).ok_or_else(|| {
        let names: Vec<&str> = config.pipelines.iter().map(|p| p.name.as_str()).collect();
        ReplayError::Usage(format!(
            "--pipeline: no pipeline '{}' in {}; expected one of: {}",
            args.pipeline,
            config.file.display(),
            names.join(", ")
        ))
    })?;
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
    let from = location("--from", &args.from)?;
    if let crate::store::Location::Local(dir) = &from {
        if !dir.is_dir() {
            return Err(ReplayError::Usage(format!("--from: {} is not a folder", dir.display())));
        }
    }
    let (from_store, from_prefix) =
        from.open(endpoint.as_deref()).map_err(|e| ReplayError::store(format!("opening {}", args.from), e))?;
    let selector = Selector { window, pipeline: p.name.clone(), time_field: p.schema.time_field.clone() };
    let plan = plan::plan(&from_store, &from_prefix, &p.schema, &selector).await?;
    if plan.selected_rows() == 0 {
        return Err(ReplayError::Empty(format!(
            "nothing to replay under {}: {} Parquet files listed, {} in hours outside --since/--until, {} of \
             another schema than '{}' or dead letters, {} selected with no row for pipeline '{}' in the window",
            args.from,
            plan.listed,
            plan.outside_window,
            plan.other_schema.len(),
            p.schema.name,
            plan.files.len(),
            p.name
        )));
    }
    let mut summary = Summary::default();
    if args.dry_run {
        summary.plan = plan;
        return Ok(summary);
    }

    let output_text = match &args.output {
        Some(o) => o.clone(),
        None => format!("{}/_replay", config.global.lake.location.trim_end_matches('/')),
    };
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
        output: output_text.clone(),
    };
    let mut cp = match checkpoint::start(cp_store.load().await?, &params, args.restart, &summary.checkpoint)? {
        Start::Complete(c) => {
            tracing::info!(checkpoint = %summary.checkpoint, finished = %c.updated_at, "replay already complete");
            summary.already_complete = true;
            summary.plan = plan;
            return Ok(summary);
        }
        Start::Resume(c) => {
            let done = plan.files.iter().filter(|f| c.done(f.path.as_ref()) >= f.row_groups.len()).count();
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
            c
        }
        Start::Fresh(c) => c,
    };
    cp_store.save(&cp).await?;

    let mut outputs = outputs(config, p, &to, &out_store, &out_base).await?;
    let mut chain =
        p.chain().map_err(|e| ReplayError::Usage(format!("{}: {}: {}", p.file.display(), e.field, e.message)))?;
    let ingest = ingest_field(p);
    let files_done = plan.files.iter().filter(|f| cp.done(f.path.as_ref()) >= f.row_groups.len()).count();
    let mut progress =
        super::progress::Progress::new(plan.files.len(), plan.selected_rows(), files_done, cp.rows_done());
    let mut run = Unit { p, chain: &mut chain, ingest: ingest.as_ref(), outputs: &mut outputs, summary: &mut summary };
    for file in &plan.files {
        let first = cp.done(file.path.as_ref());
        if first >= file.row_groups.len() {
            continue;
        }
        let footer = reader::footer(&from_store, &file.path, file.size).await?;
        for rg in first..file.row_groups.len() {
            let mut stream = reader::row_group(&from_store, &file.path, file.size, &footer, rg)?;
            let mut rows_in_group = 0;
            let mut b = 0;
            while let Some(batch) = reader::next(&mut stream, &file.path).await? {
                let batch = match selector.mask(file.kind, &batch).map_err(|r| read_error(file, r))? {
                    None => batch,
                    Some(m) => arrow::compute::filter_record_batch(&batch, &m).map_err(|e| read_error(file, e))?,
                };
                let n = batch.num_rows() as u64;
                if n > 0 {
                    let schema = if file.kind == Kind::Archive { p.schema.clone() } else { dead_letter::schema() };
                    let records = rows::records(&schema, &batch).map_err(|r| read_error(file, r))?;
                    run.process(file, records, &format!("{}-rg{rg}-b{b}", stem(&file.path))).await?;
                }
                rows_in_group += n;
                progress.rows(n);
                b += 1;
            }
            cp.record(file.path.as_ref(), rg + 1, rows_in_group);
            cp_store.save(&cp).await?;
        }
        run.summary.files_done += 1;
        progress.file_done();
    }
    if let Some(g) = &outputs.group {
        for w in &g.writers {
            w.close().await;
        }
    }
    cp.complete = true;
    cp_store.save(&cp).await?;
    progress.finish();
    summary.appended = outputs.counts.appended.load(Ordering::Relaxed);
    summary.already_present = outputs.counts.present.load(Ordering::Relaxed);
    summary.plan = plan;
    summary.seconds = started.elapsed().as_secs_f64();
    Ok(summary)
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

async fn outputs(
    config: &Config,
    p: &Pipeline,
    to: &[Target],
    store: &Arc<dyn object_store::ObjectStore>,
    base: &ObjectPath,
) -> Result<Outputs, ReplayError> {
    let metrics = Metrics::new();
    let counts = Arc::new(Counts::default());
    let mut writers: Vec<Box<dyn Writer>> = Vec::new();
    let usage = |t: &str, why: String| ReplayError::Usage(format!("--to {t}: {why}"));
    if to.contains(&Target::Bigquery) {
        let warehouse = crate::bigquery::Warehouse::connect(config).await?.ok_or_else(|| {
            usage("bigquery", "bigquery is not enabled in the config (SLUICE_BIGQUERY=true enables it)".into())
        })?;
        for s in &p.sinks {
            if let Sink::BigQuery { name, table, .. } = s {
                // Exactly-once whatever the service uses: a retried append must not double rows.
                let inner =
                    warehouse.writer(p, name, table, WriteMode::ExactlyOnce, metrics.sink(&p.name, name)).await?;
                let checked = MissingOnly::new(inner, counts.clone()).expect("an exactly-once writer checks ids");
                writers.push(Box::new(checked));
            }
        }
        if writers.is_empty() {
            return Err(usage("bigquery", format!("pipeline '{}' has no bigquery sink", p.name)));
        }
    }
    if to.contains(&Target::Lake) {
        let before = writers.len();
        for s in &p.sinks {
            if let Sink::Lake { name, prefix, .. } = s {
                writers.push(Box::new(lake_writer(p, name, store, join(base, prefix), &metrics)));
            }
        }
        if writers.len() == before {
            return Err(usage("lake", format!("pipeline '{}' has no lake sink", p.name)));
        }
    }
    let topic = if to.contains(&Target::Topic) {
        let pubsub =
            config.global.pubsub.as_ref().ok_or_else(|| usage("topic", "the config has no pubsub section".into()))?;
        let name = p
            .source
            .topic
            .as_deref()
            .ok_or_else(|| usage("topic", format!("{} names no source.topic", p.file.display())))?;
        Some(TopicTarget::connect(pubsub, name).await.map_err(|e| usage("topic", e))?)
    } else {
        None
    };
    // Batches are written as they are formed (one per row-group batch and partition), so the
    // batcher's limits are not used.
    let limits =
        Limits { max_rows: usize::MAX, max_bytes: usize::MAX, max_age: std::time::Duration::MAX, max_idle: None };
    // Every row is checked: records are changed after the chain (the archived ingest time is put back).
    let group = (!writers.is_empty()).then(|| SinkGroup::new(&p.name, p.schema.clone(), writers, limits));
    let dead_prefix = join(base, &format!("{}/{}", config.global.lake.dead_letters, p.name));
    let dead_writer: Box<dyn crate::sink::group::Writer> =
        Box::new(lake_writer(p, "dead_letters", store, dead_prefix, &metrics));
    let dead = SinkGroup::new(&p.name, dead_letter::schema(), vec![dead_writer], limits);
    Ok(Outputs { group, dead, topic, counts })
}

fn lake_writer(
    p: &Pipeline,
    name: &str,
    store: &Arc<dyn object_store::ObjectStore>,
    prefix: ObjectPath,
    metrics: &Metrics,
) -> LakeWriter {
    LakeWriter {
        name: name.into(),
        pipeline: p.name.clone(),
        store: store.clone(),
        prefix,
        instance: "replay".into(),
        metrics: metrics.sink(&p.name, name),
    }
}

/// The state one batch of rows goes through.
struct Unit<'a> {
    p: &'a Pipeline,
    chain: &'a mut Chain,
    ingest: Option<&'a FieldPath>,
    outputs: &'a mut Outputs,
    summary: &'a mut Summary,
}

type Routes = Option<Arc<[Arc<str>]>>;

impl Unit<'_> {
    /// Rebuild the rows as events, run them through the chain and write them; fails if any
    /// event could not be made durable in its targets or in dead letters.
    async fn process(
        &mut self,
        file: &SourceFile,
        records: Vec<Map<String, Value>>,
        object: &str,
    ) -> Result<(), ReplayError> {
        let n = records.len();
        self.summary.rows += n as u64;
        let (outcome_tx, mut outcomes) = mpsc::unbounded_channel::<Outcome>();
        let mut events = Vec::with_capacity(n);
        let mut dead: Vec<DeadLetter> = Vec::new();
        for record in records {
            let tx = outcome_tx.clone();
            let ack = Ack::new(move |o| {
                let _ = tx.send(o);
            });
            let original_ingest = self.ingest.and_then(|f| f.get(&Value::Object(record.clone())).cloned());
            let rebuilt = match file.kind {
                Kind::Archive => archived_event(&self.p.schema, record, ack),
                Kind::DeadLetters => dead_letter_event(record, ack),
            };
            match rebuilt {
                Ok(e) => events.push((e, original_ingest.filter(|_| file.kind == Kind::Archive))),
                Err(d) => dead.push(*d),
            }
        }
        drop(outcome_tx);

        if let Some(topic) = &self.outputs.topic {
            let plain: Vec<&Event> = events.iter().map(|(e, _)| e).collect();
            topic.publish(&plain).await.map_err(ReplayError::Sink)?;
            self.summary.published += plain.len() as u64;
        }
        let mut batches: Vec<((Partition, Routes), Vec<Event>)> = Vec::new();
        for (event, original_ingest) in events {
            if self.outputs.group.is_none() {
                // Published only: nothing else to do with it.
                event.ack.settle(Outcome::Delivered);
                continue;
            }
            match self.chain.process(event) {
                Output::Forward(mut e) => {
                    self.summary.forwarded += 1;
                    if let (Some(f), Some(v)) = (self.ingest, original_ingest) {
                        let _ = f.set(&mut e.record, v);
                    }
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
                Output::Dropped => self.summary.dropped += 1,
                Output::Dead(d) => dead.push(d),
            }
        }
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
            let rows: Vec<Event> = dead.into_iter().map(|d| dead_letter::to_event(d, &self.p.name)).collect();
            // The source file's hour, so a second run rewrites the same object.
            let partition = file.partition.unwrap_or_else(|| Partition::of(Utc::now()));
            self.outputs.dead.write_named(partition, None, rows, Some(object.to_owned())).await;
        }
        let mut failed = 0;
        while let Some(o) = outcomes.recv().await {
            failed += usize::from(o == Outcome::Failed);
        }
        if failed > 0 {
            return Err(ReplayError::Sink(format!(
                "{failed} of {n} rows of {} ({object}) could not be written (the log says why)",
                file.path
            )));
        }
        Ok(())
    }
}

/// An archived row as the message that would produce it: payload = the row as JSON.
fn archived_event(schema: &Schema, record: Map<String, Value>, ack: Ack) -> Result<Event, Box<DeadLetter>> {
    let id = record.get("message_id").and_then(Value::as_str).map(str::to_owned);
    let publish_time = schema
        .time_field
        .as_deref()
        .and_then(|f| record.get(f))
        .and_then(Value::as_str)
        .and_then(parse_timestamp)
        .unwrap_or_else(Utc::now);
    let data = Bytes::from(serde_json::to_vec(&record).expect("a JSON map serializes"));
    let event =
        Event::new(id.clone().unwrap_or_default(), publish_time, Attributes::new(), data, Arc::from("replay"), ack);
    match id {
        Some(_) => Ok(event),
        None => {
            Err(Box::new(DeadLetter { event, stage: "replay".into(), reason: "archived row has no message_id".into() }))
        }
    }
}

/// A dead letter as the message it was: original bytes, attributes, id and publish time.
fn dead_letter_event(record: Map<String, Value>, ack: Ack) -> Result<Event, Box<DeadLetter>> {
    let text = |k: &str| record.get(k).and_then(Value::as_str).unwrap_or_default().to_owned();
    let attributes: Attributes = record
        .get("attributes")
        .and_then(Value::as_object)
        .map(|a| a.iter().map(|(k, v)| (k.clone(), v.as_str().map_or_else(|| v.to_string(), str::to_owned))).collect())
        .unwrap_or_default();
    let publish_time = parse_timestamp(&text("publish_time")).unwrap_or_else(Utc::now);
    let data = base64::engine::general_purpose::STANDARD.decode(text("data"));
    let subscription: Arc<str> = Arc::from(text("subscription").as_str());
    match data {
        Ok(bytes) => {
            Ok(Event::new(text("message_id"), publish_time, attributes, Bytes::from(bytes), subscription, ack))
        }
        Err(e) => {
            let event = Event::new(text("message_id"), publish_time, attributes, Bytes::new(), subscription, ack);
            Err(Box::new(DeadLetter {
                event,
                stage: "replay".into(),
                reason: format!("dead letter's data is not base64: {e}"),
            }))
        }
    }
}
