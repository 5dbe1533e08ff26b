//! The `sluice` command line. Each subcommand is a thin call into the library.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::Context;
use clap::{Parser, Subcommand};
use sluice::telemetry::{self, LogFormat};

/// Every event allocates dozens of small strings and map nodes, which mimalloc serves far cheaper
/// than glibc malloc (see docs/performance.md).
#[global_allocator]
static ALLOCATOR: sluice::alloc::Allocator = sluice::alloc::Allocator;

/// sluice: Pub/Sub events through transform chains into a Parquet lake and BigQuery.
#[derive(Parser)]
#[command(version, about, long_about = None)]
struct Cli {
    /// Log format: Cloud Logging JSON (default) or human-readable text.
    #[arg(long, global = true, value_enum, default_value = "json", env = "SLUICE_LOG_FORMAT")]
    log_format: LogFormat,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Run every pipeline: serve the push endpoint and write the lake until SIGINT/SIGTERM.
    Run {
        /// The global config file; pipelines and schemas are found relative to it.
        #[arg(long, short, default_value = "config/sluice.yaml", env = "SLUICE_CONFIG")]
        config: PathBuf,
    },
    /// Check the config and every pipeline; print each problem with file and field.
    Validate {
        #[arg(long, short, default_value = "config/sluice.yaml", env = "SLUICE_CONFIG")]
        config: PathBuf,
    },
    /// Print a schema as a BigQuery table schema (JSON).
    Schema {
        /// Schema name, e.g. log, health, config_change, dead_letter.
        kind: String,
        #[arg(long, default_value = "schemas")]
        schemas_dir: PathBuf,
    },
    /// Create the Pub/Sub topics and subscriptions the config names, where missing.
    Provision {
        #[arg(long, short, default_value = "config/sluice.yaml", env = "SLUICE_CONFIG")]
        config: PathBuf,
    },
    /// Send sample events (or an NDJSON file) to a running sluice's push endpoint, or to a
    /// Pub/Sub topic with --topic.
    Publish {
        /// Pipeline the events are for (picks the sample kind and the push route).
        #[arg(long, short, default_value = "logs")]
        pipeline: String,
        /// Base URL of the running sluice (push).
        #[arg(long, default_value = "http://127.0.0.1:8080", env = "SLUICE_URL")]
        url: String,
        /// Publish to this Pub/Sub topic instead (name or full path), using the config's
        /// `pubsub` project and endpoint.
        #[arg(long)]
        topic: Option<String>,
        /// Config that supplies the `pubsub` section for --topic.
        #[arg(long, short, default_value = "config/sluice.yaml", env = "SLUICE_CONFIG")]
        config: PathBuf,
        /// Events per second at most (default: as fast as possible).
        #[arg(long)]
        rate: Option<f64>,
        /// NDJSON file whose lines are sent as message data, verbatim.
        #[arg(long, short)]
        file: Option<PathBuf>,
        /// Number of sample events to generate (without --file).
        #[arg(long, short = 'n', default_value_t = 100)]
        count: u64,
        /// Seed of the sample generator: the same seed gives the same events and message ids.
        #[arg(long, default_value_t = 1)]
        seed: u64,
        /// Lengthen each generated log event's message so the event is at least this many bytes
        /// (load tests with large events); 0 keeps them as generated (~300 bytes).
        #[arg(long, default_value_t = 0)]
        size: usize,
        /// Event kind to generate; inferred from the shipped pipeline names.
        #[arg(long, value_enum)]
        kind: Option<sluice::publish::sample::Kind>,
        /// Requests in flight at once.
        #[arg(long, default_value_t = 64)]
        concurrency: usize,
    },
    /// Replay archived lake files (and dead letters), or NDJSON files, through a pipeline into
    /// BigQuery, a lake prefix of its own, or the pipeline's topic.
    ///
    /// Archived rows are the pipeline's output: each is rebuilt as the message that produced it
    /// (payload = the row as JSON, message id = its message_id) and runs the whole transform
    /// chain (stages accept their own output; the archived ingest_time is kept). Dead letters
    /// (files of the dead_letter schema under --from) run the full chain from their original
    /// bytes and attributes, so a fixed pipeline or config takes them in. Idempotent: BigQuery
    /// gets only message ids it does not have; lake output goes under --output, one object per
    /// source row group, rewritten by a second run. Resumable from
    /// <output>/_checkpoints/<pipeline>.json.
    ///
    /// NDJSON files (*.ndjson, *.jsonl, *.json, each optionally .gz or .zst; Cloud Logging's
    /// exports to GCS) hold one payload per line: each line runs the whole chain as a message with
    /// id <file>:<line> and the file's modification time as publish time; a refused line is a dead
    /// letter whose reason starts with <file>:<line>.
    Replay {
        #[arg(long, short, default_value = "config/sluice.yaml", env = "SLUICE_CONFIG")]
        config: PathBuf,
        /// The pipeline whose transforms and sinks are used.
        #[arg(long, short)]
        pipeline: String,
        /// A lake location or a folder inside one (gs://BUCKET/events/logs/dt=2026-11-20/, a path),
        /// or NDJSON: one file, or a prefix holding NDJSON files and no Parquet.
        #[arg(long)]
        from: String,
        /// Only rows at or after this instant (RFC 3339; the time field, failed_at for dead letters).
        #[arg(long, value_parser = parse_instant)]
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// Only rows before this instant (RFC 3339).
        #[arg(long, value_parser = parse_instant)]
        until: Option<chrono::DateTime<chrono::Utc>>,
        /// Targets (repeat or comma-separate); default bigquery.
        #[arg(long, value_enum, value_delimiter = ',')]
        to: Vec<sluice::replay::Target>,
        /// Where lake output and checkpoints go (default <lake.location>/_replay).
        #[arg(long, env = "SLUICE_REPLAY_OUTPUT")]
        output: Option<String>,
        /// List the files and row counts that would be replayed, and stop.
        #[arg(long)]
        dry_run: bool,
        /// Discard the checkpoint and start over.
        #[arg(long)]
        restart: bool,
    },
    /// Merge the small Parquet objects of each closed hour partition of a pipeline's lake (and
    /// its dead letters) into objects of about --target-size.
    ///
    /// An hour is closed once it ended more than the batch max_age ago. Each merged object is
    /// written before its inputs are deleted, so a reader in between may see rows twice, never
    /// miss one. A manifest under <lake>/_sluice/compact/ names each merge's inputs and output
    /// until they are deleted: a run after a crash finishes or undoes the interrupted merge
    /// first, so nothing is lost and no duplicate is left. A second run is a no-op. One
    /// compaction of a pipeline runs at a time: a run holds <lake>/_locks/compact/<pipeline>.json
    /// and another is refused with who holds it.
    Compact {
        #[arg(long, short, default_value = "config/sluice.yaml", env = "SLUICE_CONFIG")]
        config: PathBuf,
        /// The pipeline whose lake sinks and dead letters are compacted.
        #[arg(long, short)]
        pipeline: String,
        /// Only hours that end after this instant: RFC 3339, or a duration before now (48h, 7d).
        /// Only the days from it on are listed, so a scheduled run stays cheap on a long history.
        #[arg(long, value_parser = parse_instant_or_ago)]
        since: Option<chrono::DateTime<chrono::Utc>>,
        /// Only hours that start before this instant (RFC 3339, or a duration before now).
        #[arg(long, value_parser = parse_instant_or_ago)]
        until: Option<chrono::DateTime<chrono::Utc>>,
        /// Parquet bytes a merged object grows to (e.g. 128MiB, 64MB, 1000000); objects this
        /// large are left alone.
        #[arg(long, default_value = "128MiB", value_parser = sluice::config::units::parse_bytes)]
        target_size: u64,
        /// Print what would be merged and change nothing.
        #[arg(long)]
        dry_run: bool,
    },
    /// Probe a running sluice's `GET /healthz`: exit 0 when it answers 200, 1 otherwise. For
    /// container health checks (the distroless image has no curl).
    Healthcheck {
        /// The address sluice listens on (its `http.listen`); 0.0.0.0 or :: is probed on loopback.
        #[arg(long, default_value = "127.0.0.1:8080", env = "SLUICE_LISTEN")]
        listen: SocketAddr,
        /// Give up after this long, e.g. 500ms or 3s.
        #[arg(long, default_value = "3s", value_parser = sluice::config::units::parse_duration)]
        timeout: Duration,
    },
}

fn main() -> ExitCode {
    let thp = sluice::alloc::no_transparent_huge_pages();
    sluice::alloc::purge_after(sluice::alloc::RUN_PURGE_DELAY_MS);
    let cli = Cli::parse();
    telemetry::init(cli.log_format);
    if let Err(e) = thp {
        tracing::warn!(error = %e, "could not turn transparent huge pages off; peak memory may be higher");
    }
    match run(cli.command) {
        Ok(code) => code,
        Err(e) => {
            tracing::error!(error = format!("{e:#}"), "sluice failed");
            eprintln!("error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

/// Load the config, or fail with every problem listed.
fn load_or_report(path: &std::path::Path) -> anyhow::Result<sluice::config::Config> {
    sluice::config::load(path).map_err(|problems| {
        anyhow::anyhow!("{problems}\n{} problem(s) in the configuration (run `sluice validate`)", problems.0.len())
    })
}

fn runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread().enable_all().build().context("starting the async runtime")
}

fn run(command: Command) -> anyhow::Result<ExitCode> {
    match command {
        Command::Run { config } => {
            let config = load_or_report(&config)?;
            sluice::alloc::govern(sluice::app::memory_bound(&config));
            runtime()?.block_on(sluice::app::run(config, None, sluice::shutdown::signal()))?;
            Ok(ExitCode::SUCCESS)
        }
        Command::Validate { config } => Ok(validate(&config)),
        Command::Schema { kind, schemas_dir } => {
            let schema = if kind == "dead_letter" {
                sluice::sink::dead_letter::schema()
            } else {
                std::sync::Arc::new(sluice::schema::Schema::load(&schemas_dir, &kind).map_err(anyhow::Error::msg)?)
            };
            println!("{}", serde_json::to_string_pretty(&schema.bigquery_fields())?);
            Ok(ExitCode::SUCCESS)
        }
        Command::Provision { config } => {
            let config = load_or_report(&config)?;
            let report = runtime()?.block_on(sluice::provision::provision(&config))?;
            for r in &report.created {
                println!("created {r}");
            }
            for r in &report.existing {
                println!("exists  {r}");
            }
            Ok(ExitCode::SUCCESS)
        }
        Command::Publish { pipeline, url, topic, config, rate, file, count, seed, size, kind, concurrency } => {
            let target = match topic {
                None => sluice::publish::Target::Push { url },
                Some(topic) => {
                    let config = load_or_report(&config)?;
                    let pubsub =
                        config.global.pubsub.clone().context("--topic needs a `pubsub` section in the config")?;
                    sluice::publish::Target::Topic { topic: pubsub.topic_path(&topic), pubsub }
                }
            };
            let args =
                sluice::publish::PublishArgs { target, pipeline, file, count, seed, size, kind, concurrency, rate };
            let summary = runtime()?.block_on(sluice::publish::run(args))?;
            Ok(if summary.rejected + summary.failed == 0 { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
        Command::Replay { config, pipeline, from, since, until, to, output, dry_run, restart } => {
            let config = load_or_report(&config)?;
            let args = sluice::replay::Args { pipeline, from, since, until, to, output, dry_run, restart };
            sluice::alloc::purge_after(sluice::alloc::REPLAY_PURGE_DELAY_MS);
            let summary = runtime()?.block_on(sluice::replay::replay(&config, args))?;
            print_replay(&summary, dry_run);
            Ok(ExitCode::SUCCESS)
        }
        Command::Compact { config, pipeline, since, until, target_size, dry_run } => {
            let config = load_or_report(&config)?;
            let args = sluice::compact::Args { pipeline, since, until, target_size, dry_run };
            let summary = runtime()?.block_on(sluice::compact::compact(&config, args))?;
            print_compact(&summary, dry_run);
            Ok(ExitCode::SUCCESS)
        }
        Command::Healthcheck { listen, timeout } => healthcheck(listen, timeout),
    }
}

/// `sluice validate`: every problem of the config, or what it holds.
fn validate(config: &std::path::Path) -> ExitCode {
    match sluice::config::load(config) {
        Ok(c) => {
            let names: Vec<&str> = c.pipelines.iter().map(|p| p.name.as_str()).collect();
            println!("{}: ok ({} pipelines: {})", config.display(), names.len(), names.join(", "));
            ExitCode::SUCCESS
        }
        Err(problems) => {
            println!("{problems}");
            println!("{} problem(s) found", problems.0.len());
            ExitCode::FAILURE
        }
    }
}

/// `sluice healthcheck`: success when `/healthz` answers 2xx within `timeout`.
fn healthcheck(listen: SocketAddr, timeout: Duration) -> anyhow::Result<ExitCode> {
    let url = healthz_url(listen);
    let client = reqwest::Client::builder().timeout(timeout).build()?;
    let status = runtime()?.block_on(async { client.get(&url).send().await.map(|r| r.status()) });
    match status {
        Ok(s) if s.is_success() => Ok(ExitCode::SUCCESS),
        Ok(s) => {
            eprintln!("unhealthy: {url} answered {s}");
            Ok(ExitCode::FAILURE)
        }
        Err(e) => {
            eprintln!("unhealthy: {:#}", anyhow::Error::from(e));
            Ok(ExitCode::FAILURE)
        }
    }
}

fn parse_instant(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    sluice::schema::parse_timestamp(text)
        .ok_or_else(|| format!("expected an RFC 3339 instant such as 2026-11-20T00:00:00Z, found '{text}'"))
}

/// An RFC 3339 instant, or a duration (`48h`) before now.
fn parse_instant_or_ago(text: &str) -> Result<chrono::DateTime<chrono::Utc>, String> {
    if let Ok(ago) = sluice::config::units::parse_duration(text) {
        let ago = chrono::TimeDelta::from_std(ago).map_err(|e| format!("'{text}': {e}"))?;
        return chrono::Utc::now().checked_sub_signed(ago).ok_or_else(|| format!("'{text}' is too long ago"));
    }
    parse_instant(text).map_err(|e| format!("{e}, or a duration before now such as 48h"))
}

/// The compaction's outcome on stdout, per prefix; a dry run lists each merge it would do.
fn print_compact(s: &sluice::compact::Summary, dry_run: bool) {
    for p in &s.prefixes {
        let plan = &p.plan;
        if dry_run {
            for u in &plan.units {
                println!(
                    "{}\t{} objects\t{} bytes\t{} rows\t-> {}",
                    u.partition.path(),
                    u.inputs.len(),
                    u.bytes(),
                    u.rows,
                    u.output
                );
            }
            let files: usize = plan.units.iter().map(|u| u.inputs.len()).sum();
            println!(
                "{}: would merge {files} objects into {} in {} closed hours ({} open hours left alone); {} interrupted merges to finish",
                p.prefix,
                plan.units.len(),
                plan.partitions,
                plan.open,
                p.interrupted
            );
        } else {
            println!(
                "{}: merged {} objects ({} rows, {} bytes) into {} ({} bytes) in {} closed hours ({} open left alone); \
                 finished {} interrupted merges ({} completed, {} undone)",
                p.prefix,
                p.files_in,
                p.rows,
                p.bytes_in,
                p.units_done,
                p.bytes_out,
                plan.partitions,
                plan.open,
                p.interrupted,
                p.completed,
                p.interrupted - p.completed
            );
        }
    }
    if !dry_run {
        println!("compaction done in {:.1}s", s.seconds);
    }
}

/// The replay's outcome on stdout: the plan for a dry run, else the counts.
fn print_replay(s: &sluice::replay::Summary, dry_run: bool) {
    let plan = &s.plan;
    if dry_run {
        for f in &plan.files {
            let kind = match f.kind {
                sluice::replay::plan::Kind::Archive => "rows",
                sluice::replay::plan::Kind::DeadLetters => "dead letters",
                sluice::replay::plan::Kind::Ndjson => {
                    println!("{}	{} bytes	ndjson", f.path, f.size);
                    continue;
                }
            };
            println!("{}	{} row groups	{} {kind}	{} selected", f.path, f.row_groups.len(), f.rows(), f.selected);
        }
    }
    if plan.is_ndjson() {
        let bytes: u64 = plan.files.iter().map(|f| f.size).sum();
        println!("{} NDJSON files, {bytes} bytes (every line is replayed)", plan.files.len());
    } else {
        let skipped = plan.outside_window + plan.other_schema.len();
        println!(
            "{} files, {} rows selected ({} files listed, {skipped} skipped)",
            plan.files.len(),
            plan.selected_rows(),
            plan.listed
        );
    }
    if dry_run {
        return;
    }
    if s.already_complete {
        println!("already complete (checkpoint {}); pass --restart to run it again", s.checkpoint);
        return;
    }
    println!(
        "replayed {} rows from {} files in {:.1}s{}: {} through the transforms, {} dropped, {} routed elsewhere, {} dead letters; \
         bigquery {} appended, {} already present; {} published",
        s.rows,
        s.files_done,
        s.seconds,
        if s.resumed { " (resumed)" } else { "" },
        s.forwarded,
        s.dropped,
        s.not_routed,
        s.dead_letters,
        s.appended,
        s.already_present,
        s.published
    );
}

/// `/healthz` at `listen`, reached on loopback when sluice listens on every interface.
fn healthz_url(listen: SocketAddr) -> String {
    let ip = match listen.ip() {
        IpAddr::V4(ip) if ip.is_unspecified() => IpAddr::V4(Ipv4Addr::LOCALHOST),
        IpAddr::V6(ip) if ip.is_unspecified() => IpAddr::V6(Ipv6Addr::LOCALHOST),
        ip => ip,
    };
    format!("http://{}/healthz", SocketAddr::new(ip, listen.port()))
}
