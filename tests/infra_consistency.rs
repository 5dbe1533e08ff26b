//! One source of truth: `infra/` (Terraform) and the config (`config/sluice.yaml`, `pipelines/`,
//! `schemas/`) must describe the same deployment. The HCL is parsed and the root module's inputs to
//! its modules evaluated (variables at their defaults, sample values for the required ones); the
//! config is loaded with the environment Terraform gives the Cloud Run service. Every topic,
//! subscription, bucket prefix, dataset and table the config names must exist in Terraform with
//! the same settings, every table laid out (columns, daily partition, clustering) as its schema
//! says, and nothing in Terraform may be left over. Module calls are also checked against the
//! modules' variables, since `terraform validate` cannot run without the providers.

mod common;

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

use hcl::eval::{Context, Evaluate};
use serde_json::{json, Value};
use sluice::config::{Config, Sink};

#[path = "infra_consistency/compact.rs"]
mod compact_schedule;
#[path = "infra_consistency/drift.rs"]
mod drift;

use drift::drift;

/// Values for the root variables that have no default (what a tfvars file supplies).
const SAMPLE_VARS: &[(&str, &str)] = &[
    ("project", "sample-project"),
    ("region", "europe-west1"),
    ("image", "europe-west1-docker.pkg.dev/sample-project/sluice/sluice:test"),
    ("lake_bucket", "sample-lake"),
];

/// The modules the root must call, each with a resource type it must declare.
const MODULES: &[(&str, &[&str])] = &[
    ("pubsub", &["google_pubsub_topic", "google_pubsub_subscription"]),
    ("gcs", &["google_storage_bucket"]),
    ("bigquery", &["google_bigquery_dataset", "google_bigquery_table"]),
    ("cloudrun", &["google_cloud_run_v2_service", "google_cloud_run_v2_job"]),
    ("workflows", &["google_workflows_workflow"]),
    ("scheduler", &["google_cloud_scheduler_job"]),
];

/// Meta-arguments of a module block, which are not module variables.
const META: &[&str] = &["source", "version", "depends_on", "count", "for_each", "providers"];

fn read_tf(dir: &Path) -> Vec<(String, String)> {
    let mut files: Vec<(String, String)> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("cannot read {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "tf"))
        .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), std::fs::read_to_string(&p).unwrap()))
        .collect();
    files.sort();
    files
}

/// One Terraform module directory, parsed.
struct Module {
    dir: PathBuf,
    files: Vec<(String, hcl::Body, String)>,
}

impl Module {
    fn parse(dir: &Path, sources: &[(String, String)]) -> Result<Module, String> {
        let mut files = Vec::new();
        for (name, text) in sources {
            let body = hcl::parse(text).map_err(|e| format!("{}/{name}: not valid HCL: {e}", dir.display()))?;
            files.push((name.clone(), body, text.clone()));
        }
        Ok(Module { dir: dir.to_owned(), files })
    }

    fn blocks<'a>(&'a self, kind: &'a str) -> impl Iterator<Item = (&'a str, &'a hcl::Block)> + 'a {
        self.files.iter().flat_map(move |(name, body, _)| {
            body.blocks().filter(move |b| b.identifier() == kind).map(move |b| (name.as_str(), b))
        })
    }

    fn label(b: &hcl::Block, i: usize) -> &str {
        b.labels().get(i).map(|l| l.as_str()).unwrap_or_default()
    }

    /// Declared variables: name -> has a default.
    fn variables(&self) -> BTreeMap<String, bool> {
        self.blocks("variable")
            .map(|(_, b)| (Self::label(b, 0).to_owned(), b.body().attributes().any(|a| a.key() == "default")))
            .collect()
    }

    fn locals(&self) -> Vec<(&str, &hcl::Expression)> {
        self.blocks("locals").flat_map(|(_, b)| b.body().attributes().map(|a| (a.key(), a.expr()))).collect()
    }

    /// `var.X` and `local.X` referenced anywhere that are not declared: what `terraform validate`
    /// would refuse.
    fn undeclared_references(&self) -> Vec<String> {
        let vars = self.variables();
        let locals: BTreeSet<&str> = self.locals().into_iter().map(|(k, _)| k).collect();
        let re = regex::Regex::new(r"\b(var|local)\.([A-Za-z_][A-Za-z0-9_-]*)").unwrap();
        let mut out = Vec::new();
        for (name, _, text) in &self.files {
            for line in text.lines().filter(|l| !l.trim_start().starts_with('#')) {
                for c in re.captures_iter(line) {
                    let (kind, id) = (&c[1], &c[2]);
                    let known = if kind == "var" { vars.contains_key(id) } else { locals.contains(id) };
                    if !known {
                        out.push(format!("{}/{name}: {kind}.{id} is not declared in the module", self.dir.display()));
                    }
                }
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

/// The root module with its variables and locals evaluated.
struct Terraform {
    root: Module,
    ctx_vars: Value,
    locals: serde_json::Map<String, Value>,
    problems: Vec<String>,
}

fn to_json(v: hcl::Value) -> Value {
    serde_json::to_value(v).expect("HCL values are JSON")
}

impl Terraform {
    fn load(infra: &Path, root_sources: &[(String, String)]) -> Terraform {
        let mut problems = Vec::new();
        let root = Module::parse(infra, root_sources).unwrap_or_else(|e| panic!("{e}"));

        let mut vars = serde_json::Map::new();
        for (_, b) in root.blocks("variable") {
            let name = Module::label(b, 0);
            match b.body().attributes().find(|a| a.key() == "default") {
                Some(a) => match a.expr().evaluate(&Context::new()) {
                    Ok(v) => {
                        vars.insert(name.into(), to_json(v));
                    }
                    Err(e) => problems.push(format!("infra/: variable {name}: default does not evaluate: {e}")),
                },
                None => match SAMPLE_VARS.iter().find(|(k, _)| *k == name) {
                    Some((_, v)) => {
                        vars.insert(name.into(), json!(v));
                    }
                    None => problems.push(format!(
                        "infra/: variable {name} has no default: give it one, or a sample value in SAMPLE_VARS of tests/infra_consistency.rs"
                    )),
                },
            }
        }
        let ctx_vars = Value::Object(vars);

        // Locals may use each other: evaluate until nothing more resolves. Those that need
        // resources or functions stay unevaluated, which is fine unless a check needs them.
        let mut locals = serde_json::Map::new();
        let pending: Vec<(&str, &hcl::Expression)> = root.locals();
        let mut left: Vec<(&str, &hcl::Expression)> = pending;
        loop {
            let ctx = context(&ctx_vars, &locals);
            let before = left.len();
            let mut still = Vec::new();
            for (k, e) in left {
                match e.evaluate(&ctx) {
                    Ok(v) => {
                        locals.insert(k.into(), to_json(v));
                    }
                    Err(_) => still.push((k, e)),
                }
            }
            left = still;
            if left.is_empty() || left.len() == before {
                break;
            }
        }
        Terraform { root, ctx_vars, locals, problems }
    }

    fn module_call(&self, name: &str) -> Option<&hcl::Block> {
        self.root.blocks("module").map(|(_, b)| b).find(|b| Module::label(b, 0) == name)
    }

    /// The value the root passes to a module input, evaluated.
    fn input(&self, module: &str, key: &str) -> Result<Value, String> {
        let call = self.module_call(module).ok_or_else(|| format!("infra/: no module \"{module}\""))?;
        let attr = call
            .body()
            .attributes()
            .find(|a| a.key() == key)
            .ok_or_else(|| format!("infra/: module \"{module}\" is not given `{key}`"))?;
        attr.expr().evaluate(&context(&self.ctx_vars, &self.locals)).map(to_json).map_err(|e| {
            format!("infra/: module \"{module}\" `{key}` does not evaluate from variables and locals: {e}")
        })
    }
}

fn context<'a>(vars: &Value, locals: &serde_json::Map<String, Value>) -> Context<'a> {
    let mut ctx = Context::new();
    ctx.declare_var("var", hcl::to_value(vars).unwrap());
    ctx.declare_var("local", hcl::to_value(locals).unwrap());
    ctx
}

/// Module calls against the modules: sources, inputs declared, required inputs given, resources present.
fn check_modules(tf: &Terraform, infra: &Path, out: &mut Vec<String>) {
    out.extend(tf.root.undeclared_references());
    for (name, resources) in MODULES {
        let Some(call) = tf.module_call(name) else {
            out.push(format!("infra/: the root module does not call module \"{name}\""));
            continue;
        };
        let source = call.body().attributes().find(|a| a.key() == "source").map(|a| a.expr().to_string());
        let expected = format!("\"./modules/{name}\"");
        if source.as_deref() != Some(&expected) {
            out.push(format!("infra/: module \"{name}\" source is {source:?}, expected {expected}"));
            continue;
        }
        let dir = infra.join("modules").join(name);
        let module = match Module::parse(&dir, &read_tf(&dir)) {
            Ok(m) => m,
            Err(e) => {
                out.push(e);
                continue;
            }
        };
        out.extend(module.undeclared_references());
        let declared = module.variables();
        let given: BTreeSet<&str> = call.body().attributes().map(|a| a.key()).filter(|k| !META.contains(k)).collect();
        for g in &given {
            if !declared.contains_key(*g) {
                out.push(format!("infra/: module \"{name}\" is given `{g}`, which modules/{name} does not declare"));
            }
        }
        for (v, has_default) in &declared {
            if !has_default && !given.contains(v.as_str()) {
                out.push(format!("infra/: module \"{name}\" needs `{v}` (no default in modules/{name})"));
            }
        }
        let types: BTreeSet<&str> = module.blocks("resource").map(|(_, b)| Module::label(b, 0)).collect();
        for r in *resources {
            if !types.contains(r) {
                out.push(format!("infra/modules/{name}: declares no {r}"));
            }
        }
    }
}

fn as_str(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

fn infra_dir() -> PathBuf {
    common::repo().join("infra")
}

fn shipped_config() -> PathBuf {
    common::repo().join("config/sluice.yaml")
}

fn drift_with(root_edit: impl Fn(&str, String) -> String) -> Vec<String> {
    let infra = infra_dir();
    let sources: Vec<(String, String)> =
        read_tf(&infra).into_iter().map(|(name, text)| (name.clone(), root_edit(&name, text))).collect();
    drift(&Terraform::load(&infra, &sources), &infra, &shipped_config())
}

#[test]
fn infra_and_config_describe_the_same_deployment() {
    let problems = drift_with(|_, t| t);
    assert!(
        problems.is_empty(),
        "infra/ and the config disagree ({} problems):\n - {}",
        problems.len(),
        problems.join("\n - ")
    );
}

/// Apply `edit` (a text replacement) to one root file, which must contain `from`.
fn replaced(file: &'static str, from: &'static str, to: &'static str) -> impl Fn(&str, String) -> String {
    move |name, text| {
        if name != file {
            return text;
        }
        assert!(text.contains(from), "infra/{file} no longer contains {from:?}: update this test");
        text.replacen(from, to, 1)
    }
}

#[track_caller]
fn assert_reports(problems: &[String], expected: &str) {
    assert!(
        problems.iter().any(|p| p.contains(expected)),
        "expected a problem mentioning {expected:?}, got:\n - {}",
        problems.join("\n - ")
    );
}

#[test]
fn drift_in_terraform_is_reported() {
    let p = drift_with(replaced("pipelines.tf", "\"logs-sluice\"", "\"logs-sluice-v2\""));
    assert_reports(&p, "source.subscription is 'logs-sluice' but infra/ creates subscription \"logs-sluice-v2\"");

    let p = drift_with(replaced("pipelines.tf", "topic        = \"health\"", "topic        = \"heartbeats\""));
    assert_reports(&p, "source.topic is 'health' but infra/ creates topic \"heartbeats\"");

    let p = drift_with(replaced("pipelines.tf", "\n    health = {\n", "\n    heartbeat = {\n"));
    assert_reports(&p, "pipeline 'health' (");
    assert_reports(&p, "infra/ pipelines has 'heartbeat', which is no pipeline in the config");

    let p = drift_with(replaced(
        "pipelines.tf",
        "cluster_by   = [\"service\", \"severity\"]",
        "cluster_by   = [\"severity\"]",
    ));
    assert_reports(&p, "infra/ table 'logs' is clustered by [\"severity\"] but");

    let p = drift_with(replaced(
        "pipelines.tf",
        "type = \"INTEGER\", mode = \"REQUIRED\"",
        "type = \"STRING\", mode = \"REQUIRED\"",
    ));
    assert_reports(&p, "infra/ table 'config_changes' column 5 is `version STRING REQUIRED");

    let p = drift_with(replaced(
        "pipelines.tf",
        "        { name = \"host\", type = \"STRING\", mode = \"NULLABLE\", description = \"Host or pod name.\" },\n",
        "",
    ));
    assert_reports(&p, "infra/ table 'logs' column 4 is `environment");

    let p = drift_with(replaced("pipelines.tf", "partition_by = \"timestamp\"", "partition_by = \"ingest_time\""));
    assert_reports(&p, "is partitioned by Some(\"ingest_time\")");

    let p = drift_with(replaced("pipelines.tf", "\"events/dead-letters/\"", "\"events/dlq/\""));
    assert_reports(&p, "lake.dead_letters puts dead letters under events/dead-letters/");

    let p = drift_with(replaced(
        "main.tf",
        "concurrency            = var.push_concurrency",
        "concurrency            = 1200",
    ));
    assert_reports(&p, "the service takes 1200 push requests at once, more than http.max_outstanding_messages (1000)");

    let p = drift_with(replaced("pipelines.tf", "max_delivery_attempts = 10", "max_delivery_attempts = 5"));
    assert_reports(&p, "pubsub.max_delivery_attempts is 10 but infra/ sets 5");

    let p = drift_with(replaced(
        "pipelines.tf",
        "dead_letter_topic     = \"sluice-dead-letters\"",
        "dead_letter_topic     = \"dlq\"",
    ));
    assert_reports(
        &p,
        "pubsub.dead_letter_topic is Some(\"sluice-dead-letters\") but infra/'s dead-letter topic is \"dlq\"",
    );

    // Without SLUICE_LAKE the service would write to the image's scratch folder.
    let p = drift_with(replaced("pipelines.tf", "    SLUICE_LAKE ", "    X_SLUICE_LAKE "));
    assert_reports(&p, "lake.location is './data/lake' with infra/'s environment, but infra/ creates the lake at gs://sample-lake/events");

    let p = drift_with(replaced("pipelines.tf", "    SLUICE_PROJECT ", "    SLUICE_PROJECT_ID "));
    assert_reports(&p, "infra/ sets SLUICE_PROJECT_ID for the service, which neither");
    assert_reports(&p, "pubsub.project is 'sluice-local' but infra/ deploys to project \"sample-project\"");

    // A misspelt module input, an undeclared variable, a missing module.
    let p = drift_with(replaced(
        "main.tf",
        "  replay_prefix       = local.replay_prefix",
        "  replay_prefixes     = local.replay_prefix",
    ));
    assert_reports(&p, "module \"gcs\" is given `replay_prefixes`, which modules/gcs does not declare");
    assert_reports(&p, "module \"gcs\" needs `replay_prefix`");
    let p = drift_with(replaced("main.tf", "var.lake_retention_days", "var.lake_retention"));
    assert_reports(&p, "var.lake_retention is not declared in the module");
    let p = drift_with(replaced(
        "pipelines.tf",
        "gs://${var.lake_bucket}/${local.replay_prefix}",
        "gs://${var.lake_bucket}/elsewhere",
    ));
    assert_reports(&p, "the replay job's SLUICE_REPLAY_OUTPUT is Some(\"gs://sample-lake/elsewhere\"), but infra/ lets it write only under gs://sample-lake/replay");

    let p = drift_with(replaced("pipelines.tf", "timeout_seconds = 1500", "timeout_seconds = 1800"));
    assert_reports(&p, "infra/ compact: 2 attempts of 1800s can outlast the 3600s between runs");
    let p = drift_with(replaced("pipelines.tf", "since           = \"48h\"", "since           = \"2h\""));
    assert_reports(&p, "infra/ compact.since 7200s is shorter than");
    let p = drift_with(replaced("pipelines.tf", "\"15 * * * *\"", "\"15 */2 * * *\""));
    assert_reports(&p, "infra/ compact.schedule '15 */2 * * *' does not run every compact.interval_hours");

    let p = drift_with(replaced("main.tf", "module \"workflows\" {", "module \"replay_workflow\" {"));
    assert_reports(&p, "the root module does not call module \"workflows\"");
}

#[test]
fn drift_in_the_config_is_reported() {
    // A copy of the config whose health pipeline reads another subscription and whose logs
    // pipeline writes a table Terraform lacks.
    let dir = tempfile::tempdir().unwrap();
    let repo = common::repo();
    for sub in ["config", "pipelines", "schemas"] {
        std::fs::create_dir(dir.path().join(sub)).unwrap();
        // Files only: config/secrets/ holds references the drift check does not read.
        for e in std::fs::read_dir(repo.join(sub)).unwrap() {
            let e = e.unwrap();
            if e.path().is_file() {
                std::fs::copy(e.path(), dir.path().join(sub).join(e.file_name())).unwrap();
            }
        }
    }
    let health = dir.path().join("pipelines/health.yaml");
    let text = std::fs::read_to_string(&health).unwrap();
    assert!(text.contains("health-sluice}"));
    std::fs::write(&health, text.replace("health-sluice}", "health-v2}")).unwrap();
    let global = dir.path().join("config/sluice.yaml");
    let text = std::fs::read_to_string(&global).unwrap();
    let text = if text.contains("\nbigquery:") {
        text
    } else {
        text + "\nbigquery:\n  project: ${SLUICE_PROJECT:-sluice-local}\n  dataset: sluice\n"
    };
    std::fs::write(&global, text).unwrap();
    let logs = dir.path().join("pipelines/logs.yaml");
    let text = std::fs::read_to_string(&logs).unwrap();
    std::fs::write(&logs, text + "  - {name: archive, type: bigquery, table: logs_archive}\n").unwrap();

    let infra = infra_dir();
    let tf = Terraform::load(&infra, &read_tf(&infra));
    let p = drift(&tf, &infra, &global);
    assert_reports(&p, "source.subscription is 'health-v2' but infra/ creates subscription \"health-sluice\"");
    assert_reports(&p, "sink 'archive' writes table 'logs_archive', which infra/ does not create");
}
