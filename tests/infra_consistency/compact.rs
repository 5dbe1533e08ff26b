//! The compaction jobs' schedule in `infra/pipelines.tf` (`local.compact`), held to the CLI and
//! the config.

use std::time::Duration;

use serde_json::Value;
use sluice::config::Config;

fn as_str(v: &Value) -> &str {
    v.as_str().unwrap_or_default()
}

/// The compaction schedule: its arguments are ones `sluice compact` takes, every hour is in the
/// window of a run after it closed (twice, so one failed run is made good), and one execution with
/// its retries ends before the next starts (two runs of a pipeline must not overlap).
pub(crate) fn check(compact: Option<&Value>, config: &Config, out: &mut Vec<String>) {
    let Some(c) = compact else {
        out.push("infra/pipelines.tf: no local `compact` (the compaction jobs' schedule)".into());
        return;
    };
    if let Err(e) = sluice::config::units::parse_bytes(as_str(&c["target_size"])) {
        out.push(format!("infra/ compact.target_size: {e}"));
    }
    let interval = c["interval_hours"].as_u64().unwrap_or(0) * 3600;
    let schedule = as_str(&c["schedule"]);
    let every = match schedule.split(' ').collect::<Vec<_>>()[..] {
        [m, "*", "*", "*", "*"] if m.parse::<u32>().is_ok() => Some(3600),
        [m, h, "*", "*", "*"] if m.parse::<u32>().is_ok() => {
            h.strip_prefix("*/").and_then(|n| n.parse::<u64>().ok()).map(|n| n * 3600)
        }
        _ => None,
    };
    if every != Some(interval) {
        out.push(format!("infra/ compact.schedule '{schedule}' does not run every compact.interval_hours ({c})"));
    }
    let timeout = c["timeout_seconds"].as_u64().unwrap_or(0);
    let attempts = c["max_retries"].as_u64().unwrap_or(0) + 1;
    if timeout * attempts >= interval {
        out.push(format!(
            "infra/ compact: {attempts} attempts of {timeout}s can outlast the {interval}s between runs, so two \
             compactions of a pipeline could overlap"
        ));
    }
    let settle = config.pipelines.iter().flat_map(|p| p.sinks.iter().map(|s| s.batch().max_age.0)).max();
    let needed = Duration::from_secs(3600 + 2 * interval) + settle.unwrap_or_default();
    match sluice::config::units::parse_duration(as_str(&c["since"])) {
        Ok(since) if since >= needed => {}
        Ok(since) => out.push(format!(
            "infra/ compact.since {since:?} is shorter than an hour, its batches' max_age and two intervals \
             ({needed:?}): an hour could close after the last run that looks at it"
        )),
        Err(e) => out.push(format!("infra/ compact.since: {e}")),
    }
}
