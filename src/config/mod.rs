//! Configuration: YAML files -> structs (unknown keys refused) -> checked, typed [`Config`].
//!
//! [`load`] reads `config/sluice.yaml` and every `pipelines/*.yaml`, and collects every problem it
//! finds, each naming the file, the field and what was expected, so `sluice validate` can report
//! them all at once.

pub mod console;
pub mod global;
pub mod health;
pub mod pipeline;
pub mod push_auth;

use std::collections::HashMap;
use std::fmt;
use std::path::{Component, Path, PathBuf};
use std::sync::Arc;

/// Kept here too: config structs are read with it everywhere, tests included.
pub use crate::json::from_yaml_str;
/// Where config values are read: kept reachable from here for code that names them so.
pub use crate::{interpolate, units};
pub use global::{BatchLimits, GlobalConfig, WriteMode};
pub use pipeline::{PipelineFile, SinkConfig, SourceConfig};

use crate::schema::Schema;
use crate::store::Location;
use crate::transform::{BuildContext, Chain, StageConfig};

/// One thing wrong with the configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub file: PathBuf,
    /// Dotted path of the offending field; empty when the problem is the file as a whole.
    pub field: String,
    pub message: String,
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.field.is_empty() {
            write!(f, "{}: {}", self.file.display(), self.message)
        } else {
            write!(f, "{}: {}: {}", self.file.display(), self.field, self.message)
        }
    }
}

/// Every problem found; loading fails when there is at least one.
#[derive(Debug, thiserror::Error)]
pub struct Problems(pub Vec<Problem>);

impl fmt::Display for Problems {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, p) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{p}")?;
        }
        Ok(())
    }
}

/// A checked configuration: every pipeline's schema loaded and its chain buildable.
#[derive(Debug)]
pub struct Config {
    pub file: PathBuf,
    pub global: GlobalConfig,
    /// `global.lake.location`, parsed once here, so no later step parses (or fails on) it again.
    pub lake: Location,
    pub pipelines: Vec<Pipeline>,
}

impl Config {
    /// The pipeline named on a command line (`--pipeline`); the error lists the names there are.
    pub fn pipeline_named(&self, name: &str) -> Result<&Pipeline, String> {
        self.pipelines.iter().find(|p| p.name == name).ok_or_else(|| {
            let names: Vec<&str> = self.pipelines.iter().map(|p| p.name.as_str()).collect();
            format!(
                "--pipeline: no pipeline '{name}' in {}; expected one of: {}",
                self.file.display(),
                names.join(", ")
            )
        })
    }
}

#[derive(Debug)]
pub struct Pipeline {
    pub name: String,
    pub file: PathBuf,
    pub source: SourceConfig,
    pub schema: Arc<Schema>,
    pub transforms: Vec<StageConfig>,
    pub sinks: Vec<Sink>,
    /// The chain built when the pipeline was checked, until [`Pipeline::chain`] hands it out.
    built: std::sync::Mutex<Option<Chain>>,
}

/// A sink with its effective settings (global defaults merged with the pipeline's overrides).
#[derive(Debug, Clone)]
pub enum Sink {
    Lake { name: String, prefix: String, batch: BatchLimits },
    BigQuery { name: String, table: String, mode: WriteMode, batch: BatchLimits },
}

impl Sink {
    pub fn name(&self) -> &str {
        match self {
            Sink::Lake { name, .. } | Sink::BigQuery { name, .. } => name,
        }
    }

    pub fn batch(&self) -> &BatchLimits {
        match self {
            Sink::Lake { batch, .. } | Sink::BigQuery { batch, .. } => batch,
        }
    }
}

impl Pipeline {
    pub fn sink_names(&self) -> Vec<String> {
        self.sinks.iter().map(|s| s.name().to_owned()).collect()
    }

    /// This pipeline's transform chain: the one built when the config was checked, the first
    /// time; built anew after that, since a chain holds state (dedupe's window) that two runs
    /// of the same config (tests, benches) must not share.
    pub fn chain(&self) -> Result<Chain, crate::transform::FieldError> {
        match crate::locks::lock(&self.built).take() {
            Some(chain) => Ok(chain),
            None => self.build_chain(),
        }
    }

    fn build_chain(&self) -> Result<Chain, crate::transform::FieldError> {
        let sinks = self.sink_names();
        Chain::build(&self.transforms, &BuildContext { pipeline: &self.name, schema: &self.schema, sinks: &sinks })
    }
}

impl GlobalConfig {
    /// The Pub/Sub settings a pipeline with this source pulls with; `None` when it is not pulled.
    pub fn pulling(&self, source: &SourceConfig) -> Option<&global::PubsubConfig> {
        self.pubsub_enabled().filter(|_| source.subscription.is_some())
    }
}

/// Longest `http.push_linger` accepted: every push request may wait it on top of its write.
const MAX_PUSH_LINGER: std::time::Duration = std::time::Duration::from_secs(1);

/// Load and check the configuration rooted at `file`, with `${VAR}` taken from the environment.
pub fn load(file: &Path) -> Result<Config, Problems> {
    load_with_env(file, |k| std::env::var(k).ok())
}

pub fn load_with_env(file: &Path, env: impl Fn(&str) -> Option<String>) -> Result<Config, Problems> {
    let env = &env;
    let mut problems = Vec::new();
    let global: GlobalConfig = read_file(file, env).map_err(|p| Problems(vec![p]))?;
    let problem = |field: &str, message: String| Problem { file: file.to_owned(), field: field.into(), message };
    let lake = check_global(&global, &mut |f, m| problems.push(problem(f, m)));

    let base = file.parent().unwrap_or(Path::new("."));
    let pipelines_dir = clean(&base.join(&global.pipelines_dir));
    let schemas_dir = clean(&base.join(&global.schemas_dir));
    let mut files: Vec<PathBuf> = match std::fs::read_dir(&pipelines_dir) {
        Ok(rd) => rd
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|x| x == "yaml" || x == "yml"))
            .collect(),
        Err(e) => {
            problems.push(problem("pipelines_dir", format!("cannot read folder {}: {e}", pipelines_dir.display())));
            Vec::new()
        }
    };
    files.sort();
    if files.is_empty() && problems.is_empty() {
        problems.push(problem(
            "pipelines_dir",
            format!("expected at least one pipeline file (*.yaml) in {}", pipelines_dir.display()),
        ));
    }

    if let Some(token) = global.push_auth.as_ref().and_then(|a| a.token.as_ref()) {
        token.check(&secrets_dir(file, &global), &mut |m| problems.push(problem("push_auth.token", m)));
    }
    if let Some(token) = global.console.auth.as_ref().and_then(|a| a.token.as_ref()) {
        token.check(&secrets_dir(file, &global), &mut |m| problems.push(problem("console.auth.token", m)));
    }

    let mut pipelines = Vec::new();
    for pfile in files {
        match read_file::<PipelineFile>(&pfile, env) {
            Ok(spec) => {
                if let Some(p) = check_pipeline(&pfile, spec, &global, &schemas_dir, &mut problems) {
                    pipelines.push(p);
                }
            }
            Err(p) => problems.push(p),
        }
    }
    check_across(&pipelines, &mut problems);
    if global.push_auth.is_none() && pipelines.iter().any(|p| p.source.push) {
        problems.push(problem(
            "push_auth",
            "pipelines accept push: expected `push_auth` with `mode: oidc` (Google-signed tokens) or, for local use, `mode: none`".into(),
        ));
    }
    if problems.is_empty() {
        // Only against a complete set of pipelines, or a broken pipeline file would read as missing.
        let names: Vec<&str> = pipelines.iter().map(|p| p.name.as_str()).collect();
        health::check(&global.health, &names, &mut |f, m| problems.push(problem(f, m)));
    }

    match lake {
        Some(lake) if problems.is_empty() => Ok(Config { file: file.to_owned(), global, lake, pipelines }),
        _ => Err(Problems(problems)),
    }
}

/// The folder of secret reference files, `secrets.dir` relative to the config file.
pub fn secrets_dir(file: &Path, global: &GlobalConfig) -> PathBuf {
    clean(&file.parent().unwrap_or(Path::new(".")).join(&global.secrets.dir))
}

fn read_file<T: serde::de::DeserializeOwned>(file: &Path, env: impl Fn(&str) -> Option<String>) -> Result<T, Problem> {
    let problem = |field: String, message: String| Problem { file: file.to_owned(), field, message };
    let text = std::fs::read_to_string(file).map_err(|e| problem(String::new(), format!("cannot read: {e}")))?;
    // A byte-order mark is allowed at the start of a YAML stream; serde_yaml_ng misreads it.
    let text = text.strip_prefix('\u{feff}').unwrap_or(&text);
    let text = interpolate::interpolate(text, env).map_err(|m| problem(String::new(), m))?;
    from_yaml_str(&text).map_err(|(f, m)| problem(f, m))
}

fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Check the settings shared by every pipeline; the lake's location, parsed, when it is one.
fn check_global(g: &GlobalConfig, report: &mut impl FnMut(&str, String)) -> Option<Location> {
    if !valid_name(&g.instance) {
        report(
            "instance",
            format!("expected letters, digits, '-' or '_' (it is part of object names), found '{}'", g.instance),
        );
    }
    let lake = crate::store::Location::parse(&g.lake.location).map_err(|e| report("lake.location", e)).ok();
    if let Some(e) = &g.lake.endpoint {
        if !url::Url::parse(e).is_ok_and(|u| matches!(u.scheme(), "http" | "https") && u.has_host()) {
            report("lake.endpoint", format!("expected host:port or an http(s) URL, found '{e}'"));
        }
    }
    if g.lake.dead_letters.trim_matches('/').is_empty() {
        report("lake.dead_letters", "expected a non-empty prefix".into());
    }
    if g.limits.batch.max_age.0.is_zero() {
        report("limits.batch.max_age", "expected a duration above zero".into());
    }
    if g.http.max_body.0 == 0 {
        report("http.max_body", "expected a size above zero".into());
    }
    if g.http.max_outstanding_bytes.0 == 0 {
        report("http.max_outstanding_bytes", "expected a size above zero".into());
    }
    if g.http.push_linger.0 >= MAX_PUSH_LINGER {
        report(
            "http.push_linger",
            format!(
                "expected a short wait under {MAX_PUSH_LINGER:?} (every push request may wait it), found {}",
                g.http.push_linger
            ),
        );
    }
    if let Some(a) = &g.push_auth {
        a.check(report);
    }
    g.console.check(g.http.listen, g.push_auth.as_ref(), report);
    if let Some(b) = &g.bigquery {
        if b.project.trim().is_empty() {
            report("bigquery.project", "expected a project id, found an empty string".into());
        }
        if !valid_table(&b.dataset) {
            report(
                "bigquery.dataset",
                format!("expected a dataset name (letters, digits, '_'), found '{}'", b.dataset),
            );
        }
        for (field, e) in [("bigquery.endpoint", &b.endpoint), ("bigquery.grpc_endpoint", &b.grpc_endpoint)] {
            if let Some(e) = e {
                if url::Url::parse(e).is_err() {
                    report(field, format!("expected host:port or a URL, found '{e}'"));
                }
            }
        }
        if b.endpoint.is_some() != b.grpc_endpoint.is_some() {
            report("bigquery.grpc_endpoint", "an emulator needs both `endpoint` (REST) and `grpc_endpoint`".into());
        }
    }
    if let Some(p) = &g.pubsub {
        if p.project.trim().is_empty() {
            report("pubsub.project", "expected a project id, found an empty string".into());
        }
        if let Some(e) = &p.endpoint {
            if url::Url::parse(e).is_err() {
                report("pubsub.endpoint", format!("expected host:port or a URL, found '{e}'"));
            }
        }
        if !(5..=100).contains(&p.max_delivery_attempts) {
            report(
                "pubsub.max_delivery_attempts",
                format!("expected 5 to 100 (Pub/Sub's limits), found {}", p.max_delivery_attempts),
            );
        }
    }
    lake
}

fn valid_table(s: &str) -> bool {
    !s.is_empty() && s.len() <= 1024 && s.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
}

/// A sink's batch limits: the global defaults with the sink's overrides, each checked.
fn effective_batch(
    global: &GlobalConfig,
    pulled: Option<&global::PubsubConfig>,
    o: &pipeline::BatchOverride,
    report: &mut impl FnMut(&str, String),
) -> BatchLimits {
    let d = global.limits.batch;
    let max_rows = match o.max_rows {
        None => d.max_rows,
        Some(n) => std::num::NonZeroUsize::new(n).unwrap_or_else(|| {
            report("max_rows", "expected a number above zero".into());
            d.max_rows
        }),
    };
    let batch = BatchLimits {
        max_rows,
        max_bytes: o.max_bytes.unwrap_or(d.max_bytes),
        max_age: o.max_age.unwrap_or(d.max_age),
        max_idle: o.max_idle.or(d.max_idle),
    };
    if batch.max_bytes.0 == 0 {
        report("max_bytes", "expected a size above zero".into());
    }
    if batch.max_age.0.is_zero() {
        report("max_age", "expected a duration above zero".into());
    }
    if let Some(p) = pulled {
        // Un-acked messages are capped by flow control: a larger batch could only close by age.
        if batch.max_rows > p.max_outstanding_messages {
            report(
                "max_rows",
                format!(
                    "{} is more than pubsub.max_outstanding_messages ({}): such a batch never fills and waits for max_age; lower it or raise the flow-control limit",
                    batch.max_rows, p.max_outstanding_messages
                ),
            );
        }
    }
    batch
}

fn check_pipeline(
    file: &Path,
    spec: PipelineFile,
    global: &GlobalConfig,
    schemas_dir: &Path,
    problems: &mut Vec<Problem>,
) -> Option<Pipeline> {
    let before = problems.len();
    let mut report =
        |field: &str, message: String| problems.push(Problem { file: file.to_owned(), field: field.into(), message });
    let stem = file.file_stem().and_then(|s| s.to_str()).unwrap_or_default();
    if spec.name != stem {
        report("name", format!("expected '{stem}' (the file name without .yaml), found '{}'", spec.name));
    } else if !valid_name(&spec.name) {
        report("name", format!("expected letters, digits, '-' or '_', found '{}'", spec.name));
    }
    if !spec.source.push && spec.source.subscription.is_none() {
        report("source", "expected `push: true`, a `subscription`, or both".into());
    }
    if spec.source.subscription.as_deref().is_some_and(str::is_empty) {
        report("source.subscription", "expected a subscription name, found an empty string".into());
    }
    let pulled = global.pulling(&spec.source);
    if spec.sinks.is_empty() {
        report("sinks", "expected at least one sink".into());
    }
    let sinks = check_sinks(&spec, global, pulled, &mut report);
    let schema = match Schema::load(schemas_dir, &spec.schema) {
        Ok(s) => Arc::new(s),
        Err(e) => {
            report("schema", e);
            return None;
        }
    };
    let pipeline = Pipeline {
        name: spec.name,
        file: file.to_owned(),
        source: spec.source,
        schema,
        transforms: spec.transforms,
        sinks,
        built: Default::default(),
    };
    match pipeline.build_chain() {
        Ok(chain) => *crate::locks::lock(&pipeline.built) = Some(chain),
        Err(e) => report(&e.field, e.message),
    }
    (problems.len() == before).then_some(pipeline)
}

/// A pipeline's sinks, checked: unique valid names, a lake prefix, a BigQuery table name and
/// section, each batch's limits against the flow control it is pulled with.
fn check_sinks(
    spec: &PipelineFile,
    global: &GlobalConfig,
    pulled: Option<&global::PubsubConfig>,
    report: &mut impl FnMut(&str, String),
) -> Vec<Sink> {
    let mut sinks = Vec::new();
    let mut names: HashMap<&str, usize> = HashMap::new();
    for (i, s) in spec.sinks.iter().enumerate() {
        if let Some(first) = names.insert(s.name(), i) {
            report(&format!("sinks[{i}].name"), format!("'{}' is already the name of sinks[{first}]", s.name()));
        }
        if !valid_name(s.name()) {
            report(&format!("sinks[{i}].name"), format!("expected letters, digits, '-' or '_', found '{}'", s.name()));
        }
        let batch = effective_batch(global, pulled, s.batch(), &mut |f, m| report(&format!("sinks[{i}].batch.{f}"), m));
        match s {
            SinkConfig::Lake(c) => {
                let prefix = c.prefix.clone().unwrap_or_else(|| spec.name.clone());
                if prefix.trim_matches('/').is_empty() {
                    report(&format!("sinks[{i}].prefix"), "expected a non-empty prefix".into());
                }
                sinks.push(Sink::Lake { name: c.name.clone(), prefix, batch });
            }
            SinkConfig::Bigquery(c) => {
                if !valid_table(&c.table) {
                    report(
                        &format!("sinks[{i}].table"),
                        format!("expected a BigQuery table name (letters, digits, '_'), found '{}'", c.table),
                    );
                }
                let Some(bq) = &global.bigquery else {
                    report(
                        &format!("sinks[{i}]"),
                        "a bigquery sink needs the `bigquery` section in the global config".into(),
                    );
                    continue;
                };
                let mode = c.write_mode.unwrap_or(bq.write_mode);
                sinks.push(Sink::BigQuery { name: c.name.clone(), table: c.table.clone(), mode, batch });
            }
        }
    }
    sinks
}

fn check_across(pipelines: &[Pipeline], problems: &mut Vec<Problem>) {
    let mut subs: HashMap<&str, &Path> = HashMap::new();
    for p in pipelines {
        if let Some(sub) = p.source.subscription.as_deref() {
            if let Some(other) = subs.insert(sub, &p.file) {
                problems.push(Problem {
                    file: p.file.clone(),
                    field: "source.subscription".into(),
                    message: format!(
                        "'{sub}' is already consumed by {}; each subscription feeds one pipeline",
                        other.display()
                    ),
                });
            }
        }
    }
}

/// Remove `.` and `name/..` pairs so file names in messages read as the user wrote them.
fn clean(path: &Path) -> PathBuf {
    let mut out: Vec<Component> = Vec::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir if matches!(out.last(), Some(Component::Normal(_))) => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    if out.is_empty() {
        PathBuf::from(".")
    } else {
        out.iter().collect()
    }
}
