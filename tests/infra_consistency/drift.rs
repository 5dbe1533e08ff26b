//! The comparison itself: every topic, subscription, bucket prefix, dataset and table the config
//! names, looked up in the evaluated Terraform with its settings, and what Terraform has beyond.

use super::*;

/// Every way `infra/` and the config rooted at `config_file` disagree, one line each.
pub(super) fn drift(tf: &Terraform, infra: &Path, config_file: &Path) -> Vec<String> {
    let mut out = tf.problems.clone();
    check_modules(tf, infra, &mut out);
    let mut input = |module: &str, key: &str| -> Value {
        tf.input(module, key).unwrap_or_else(|e| {
            out.push(e);
            Value::Null
        })
    };
    let env = input("cloudrun", "env");
    let port = input("cloudrun", "port");
    let bucket = input("gcs", "name");
    let lake_prefix = input("gcs", "lake_prefix");
    let dead_letters_prefix = input("gcs", "dead_letters_prefix");
    let tf_pipelines = input("pubsub", "pipelines");
    let dead_letter_topic = input("pubsub", "dead_letter_topic");
    let max_delivery_attempts = input("pubsub", "max_delivery_attempts");
    let ack_deadline = input("pubsub", "ack_deadline_seconds");
    let dataset = input("bigquery", "dataset");
    let tables = input("bigquery", "tables");
    let replay_env = input("cloudrun", "replay_env");
    let replay_prefix = input("gcs", "replay_prefix");
    let concurrency = input("cloudrun", "concurrency");
    let project = tf.ctx_vars["project"].clone();

    // The config as the service runs it: with the environment Terraform gives it.
    let env: BTreeMap<String, String> =
        serde_json::from_value(env).unwrap_or_else(|e| panic!("cloudrun env is not a map of strings: {e}"));
    let config: Config = match sluice::config::load_with_env(config_file, |k| env.get(k).cloned()) {
        Ok(c) => c,
        Err(problems) => {
            out.push(format!(
                "{} does not load with the environment infra/ gives the service ({env:?}):\n{problems}",
                config_file.display()
            ));
            return out;
        }
    };
    let g = &config.global;
    let config_dir = config_file.parent().unwrap();
    let schemas_dir = config_dir.join(&g.schemas_dir);

    // Every variable Terraform sets is one the config or the CLI reads: a misspelt one would be
    // silently ignored and its default used.
    let mut read = String::new();
    read.push_str(&std::fs::read_to_string(config_file).unwrap_or_default());
    for p in &config.pipelines {
        read.push_str(&std::fs::read_to_string(&p.file).unwrap_or_default());
    }
    let cli = std::fs::read_to_string(common::repo().join("src/main.rs")).unwrap();
    for k in env.keys() {
        if !read.contains(&format!("${{{k}")) && !cli.contains(&format!("env = \"{k}\"")) {
            out.push(format!(
                "infra/ sets {k} for the service, which neither {} nor its pipelines nor the CLI read",
                config_file.display()
            ));
        }
    }

    // Push requests beyond the push flow control would wait for room, then get 429.
    if concurrency.as_u64().is_none_or(|c| c > g.http.max_outstanding_messages.get() as u64) {
        out.push(format!(
            "the service takes {concurrency} push requests at once, more than http.max_outstanding_messages ({})",
            g.http.max_outstanding_messages
        ));
    }

    // The replay job: what it adds to the environment is read too, and its output (checkpoints,
    // lake output) is under the only prefix it may write to.
    let replay_env: BTreeMap<String, String> = serde_json::from_value(replay_env).unwrap_or_default();
    for k in replay_env.keys() {
        if !read.contains(&format!("${{{k}")) && !cli.contains(&format!("env = \"{k}\"")) {
            out.push(format!("infra/ sets {k} for the replay job, which neither the config nor the CLI read"));
        }
    }
    let writable = format!("gs://{}/{}", as_str(&bucket), as_str(&replay_prefix).trim_end_matches('/'));
    match replay_env.get("SLUICE_REPLAY_OUTPUT").map(|o| o.trim_end_matches('/')) {
        Some(o) if o == writable || o.starts_with(&format!("{writable}/")) => {}
        other => out.push(format!(
            "the replay job's SLUICE_REPLAY_OUTPUT is {other:?}, but infra/ lets it write only under {writable}"
        )),
    }

    compact_schedule::check(tf.locals.get("compact"), &config, &mut out);

    // HTTP: the container port.
    if g.http.listen.port() as u64 != port.as_u64().unwrap_or(0) || !g.http.listen.ip().is_unspecified() {
        out.push(format!(
            "http.listen is {} with infra/'s environment, but the Cloud Run container port is {port}: expected 0.0.0.0:{port}",
            g.http.listen
        ));
    }

    // The lake: gs://<bucket>/<prefix>, dead letters under the prefix.
    let location = g.lake.location.trim_end_matches('/');
    let expected_lake = format!("gs://{}/{}", as_str(&bucket), as_str(&lake_prefix));
    if location != expected_lake {
        out.push(format!(
            "lake.location is '{location}' with infra/'s environment, but infra/ creates the lake at {expected_lake} (bucket {bucket}, lake_prefix {lake_prefix})"
        ));
    }
    let expected_dead = format!("{}/{}/", as_str(&lake_prefix), g.lake.dead_letters.trim_matches('/'));
    if as_str(&dead_letters_prefix) != expected_dead {
        out.push(format!(
            "lake.dead_letters puts dead letters under {expected_dead}, but infra/'s dead_letters_prefix (their lifecycle rule) is {dead_letters_prefix}"
        ));
    }

    // Pub/Sub: project, dead-letter policy, ack deadline, and each pipeline's topic and subscription.
    match &g.pubsub {
        None => out.push("config has no `pubsub` section, but infra/ creates topics and subscriptions".into()),
        Some(ps) => {
            if ps.project != as_str(&project) {
                out.push(format!("pubsub.project is '{}' but infra/ deploys to project {project}", ps.project));
            }
            if ps.dead_letter_topic.as_deref() != Some(as_str(&dead_letter_topic)) {
                out.push(format!(
                    "pubsub.dead_letter_topic is {:?} but infra/'s dead-letter topic is {dead_letter_topic}",
                    ps.dead_letter_topic
                ));
            }
            if Some(ps.max_delivery_attempts as u64) != max_delivery_attempts.as_u64() {
                out.push(format!(
                    "pubsub.max_delivery_attempts is {} but infra/ sets {max_delivery_attempts}",
                    ps.max_delivery_attempts
                ));
            }
            if Some(ps.ack_deadline.0.as_secs()) != ack_deadline.as_u64() {
                out.push(format!(
                    "pubsub.ack_deadline is {} but infra/'s subscriptions have ack_deadline_seconds {ack_deadline}",
                    ps.ack_deadline
                ));
            }
        }
    }
    let tf_pipelines = tf_pipelines.as_object().cloned().unwrap_or_default();
    for p in &config.pipelines {
        let file = p.file.display();
        let Some(t) = tf_pipelines.get(&p.name) else {
            out.push(format!(
                "pipeline '{}' ({file}) is missing from infra/ pipelines (its topic and subscription)",
                p.name
            ));
            continue;
        };
        match &p.source.topic {
            None => out.push(format!("{file}: source.topic is missing; infra/ creates topic {} for it", t["topic"])),
            Some(topic) if topic != as_str(&t["topic"]) => out.push(format!(
                "{file}: source.topic is '{topic}' but infra/ creates topic {} for pipeline '{}'",
                t["topic"], p.name
            )),
            Some(_) => {}
        }
        match &p.source.subscription {
            None => out.push(format!(
                "{file}: source.subscription is missing; infra/ creates subscription {} for it",
                t["subscription"]
            )),
            Some(sub) if sub != as_str(&t["subscription"]) => out.push(format!(
                "{file}: source.subscription is '{sub}' but infra/ creates subscription {} for pipeline '{}'",
                t["subscription"], p.name
            )),
            Some(_) => {}
        }
    }
    for name in tf_pipelines.keys() {
        if !config.pipelines.iter().any(|p| &p.name == name) {
            out.push(format!("infra/ pipelines has '{name}', which is no pipeline in the config (left over?)"));
        }
    }

    // BigQuery: every bigquery sink's table exists, follows the pipeline's schema, in the dataset.
    let tables = tables.as_object().cloned().unwrap_or_default();
    let mut written = BTreeSet::new();
    for p in &config.pipelines {
        for s in &p.sinks {
            let Sink::BigQuery { name, table, .. } = s else { continue };
            written.insert(table.clone());
            let Some(t) = tables.get(table) else {
                out.push(format!(
                    "{}: sink '{name}' writes table '{table}', which infra/ does not create",
                    p.file.display()
                ));
                continue;
            };
            if as_str(&t["schema"]) != p.schema.name {
                out.push(format!(
                    "{}: sink '{name}' writes schema '{}' into table '{table}', which infra/ lays out as schema {}",
                    p.file.display(),
                    p.schema.name,
                    t["schema"]
                ));
            }
        }
    }
    if let Some(bq) = &g.bigquery {
        if bq.dataset != as_str(&dataset) {
            out.push(format!("bigquery.dataset is '{}' but infra/ creates dataset {dataset}", bq.dataset));
        }
        if bq.project != as_str(&project) {
            out.push(format!("bigquery.project is '{}' but infra/ deploys to project {project}", bq.project));
        }
        // Tables created but never written: the service would skip its bigquery sinks.
        if !bq.enabled && !written.is_empty() {
            out.push(format!(
                "pipelines write BigQuery tables {written:?}, but with infra/'s environment for the service \
                 bigquery.enabled is false (set SLUICE_BIGQUERY)"
            ));
        }
    } else if !written.is_empty() {
        out.push("pipelines have bigquery sinks but the config has no `bigquery` section".into());
    }
    // A table no pipeline writes is left over; checked once pipelines write BigQuery at all.
    if !written.is_empty() {
        for t in tables.keys().filter(|t| !written.contains(*t)) {
            out.push(format!("infra/ creates table '{t}', which no pipeline's bigquery sink writes (left over?)"));
        }
    }
    // Every table's layout is its schema's.
    for (table, t) in &tables {
        let schema = match sluice::schema::Schema::load(&schemas_dir, as_str(&t["schema"])) {
            Ok(s) => s,
            Err(e) => {
                out.push(format!("infra/ table '{table}': {e}"));
                continue;
            }
        };
        let file = schemas_dir.join(format!("{}.yaml", schema.name));
        let file = file.display();
        let expected = serde_json::to_value(schema.bigquery_fields()).unwrap();
        let expected = expected.as_array().unwrap();
        let actual = t["fields"].as_array().cloned().unwrap_or_default();
        let show = |f: &Value| {
            format!(
                "{} {} {} \"{}\"",
                as_str(&f["name"]),
                as_str(&f["type"]),
                as_str(&f["mode"]),
                as_str(&f["description"])
            )
        };
        for i in 0..expected.len().max(actual.len()) {
            match (expected.get(i), actual.get(i)) {
                (Some(e), Some(a)) if show(e) == show(a) => {}
                (Some(e), Some(a)) => out.push(format!(
                    "infra/ table '{table}' column {i} is `{}` but {file} says `{}`",
                    show(a),
                    show(e)
                )),
                (Some(e), None) => out.push(format!("infra/ table '{table}' lacks column `{}` of {file}", show(e))),
                (None, Some(a)) => {
                    out.push(format!("infra/ table '{table}' has column `{}`, which {file} does not define", show(a)))
                }
                (None, None) => unreachable!(),
            }
        }
        let partition = t["partition_by"].as_str().map(str::to_owned);
        if partition != schema.table.partition_by {
            out.push(format!(
                "infra/ table '{table}' is partitioned by {partition:?} but {file} says table.partition_by {:?}",
                schema.table.partition_by
            ));
        }
        let cluster: Vec<String> = serde_json::from_value(t["cluster_by"].clone()).unwrap_or_default();
        if cluster != schema.table.cluster_by {
            out.push(format!(
                "infra/ table '{table}' is clustered by {cluster:?} but {file} says table.cluster_by {:?}",
                schema.table.cluster_by
            ));
        }
    }
    out
}
