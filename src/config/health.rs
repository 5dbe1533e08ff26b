//! The `health` section of `config/sluice.yaml`: producer liveness, sluice's own liveness checks,
//! and the configuration-state view.

use std::collections::BTreeMap;
use std::num::NonZeroU64;
use std::time::Duration;

use serde::Deserialize;

use crate::units::HumanDuration;

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct HealthConfig {
    /// How often sluice checks its subscriptions and sinks; also the longest one check may take,
    /// so `/readyz` turns unready within two intervals of a source going away.
    #[serde(default = "default_check_interval")]
    pub check_interval: HumanDuration,
    /// A subscription whose streams delivered nothing for this long while messages wait in it
    /// is stalled: its streams are reopened and sluice reports itself unhealthy until it delivers.
    #[serde(default = "default_stall_after")]
    pub stall_after: HumanDuration,
    /// Batches failing in a row after which a sink makes sluice unhealthy (one makes it unready).
    #[serde(default = "default_sink_failures")]
    pub sink_failures: NonZeroU64,
    #[serde(default)]
    pub producers: ProducersConfig,
    #[serde(default)]
    pub config_state: ConfigStateConfig,
}

impl Default for HealthConfig {
    fn default() -> Self {
        HealthConfig {
            check_interval: default_check_interval(),
            stall_after: default_stall_after(),
            sink_failures: default_sink_failures(),
            producers: ProducersConfig::default(),
            config_state: ConfigStateConfig::default(),
        }
    }
}

fn default_check_interval() -> HumanDuration {
    HumanDuration(Duration::from_secs(5))
}
fn default_stall_after() -> HumanDuration {
    HumanDuration(Duration::from_secs(60))
}
fn default_sink_failures() -> NonZeroU64 {
    NonZeroU64::new(5).expect("nonzero")
}

/// Which events prove a producer alive, and when it counts as late or down.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ProducersConfig {
    /// Pipelines whose events (their `service` field) count as signs of life.
    /// Absent: `health` and `logs`, those of them that exist.
    #[serde(default)]
    pub pipelines: Option<Vec<String>>,
    /// Pipeline that receives the state transitions as events (so its sinks keep the history).
    /// Absent: `health` if it exists; otherwise transitions are only logged.
    #[serde(default)]
    pub emit_to: Option<String>,
    /// Expected interval between signs of life, unless `intervals` names the service.
    #[serde(default = "default_interval")]
    pub default_interval: HumanDuration,
    /// Expected interval per service.
    #[serde(default)]
    pub intervals: BTreeMap<String, HumanDuration>,
    /// Late once silent for this many intervals.
    #[serde(default = "default_late_after")]
    pub late_after: f64,
    /// Down once silent for this many intervals.
    #[serde(default = "default_down_after")]
    pub down_after: f64,
    /// How often the `emit_to` pipeline's recent lake files are read for signs of life other
    /// instances took in (instances sharing a subscription each see part of it).
    #[serde(default = "default_refresh")]
    pub lake_refresh: HumanDuration,
}

impl Default for ProducersConfig {
    fn default() -> Self {
        ProducersConfig {
            pipelines: None,
            emit_to: None,
            default_interval: default_interval(),
            intervals: BTreeMap::new(),
            late_after: default_late_after(),
            down_after: default_down_after(),
            lake_refresh: default_refresh(),
        }
    }
}

impl ProducersConfig {
    pub fn interval(&self, service: &str) -> Duration {
        self.intervals.get(service).unwrap_or(&self.default_interval).0
    }

    /// The pipelines watched, given the pipelines that exist.
    pub fn watched(&self, existing: &[&str]) -> Vec<String> {
        match &self.pipelines {
            Some(p) => p.clone(),
            None => ["health", "logs"].iter().filter(|n| existing.contains(n)).map(|n| n.to_string()).collect(),
        }
    }

    /// The pipeline transitions go to, given the pipelines that exist.
    pub fn emit_to(&self, existing: &[&str]) -> Option<String> {
        match &self.emit_to {
            Some(p) => Some(p.clone()),
            None => existing.contains(&"health").then(|| "health".to_owned()),
        }
    }
}
fn default_interval() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}
fn default_late_after() -> f64 {
    2.0
}
fn default_down_after() -> f64 {
    5.0
}
fn default_refresh() -> HumanDuration {
    HumanDuration(Duration::from_secs(30))
}

/// The current-state view of configuration changes.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ConfigStateConfig {
    /// Pipeline carrying configuration changes. Absent: `config-changes` if it exists;
    /// otherwise the view is off.
    #[serde(default)]
    pub pipeline: Option<String>,
    /// How often the pipeline's lake files are re-read for changes other instances took in,
    /// and the state snapshot rewritten.
    #[serde(default = "default_refresh")]
    pub refresh: HumanDuration,
}

impl Default for ConfigStateConfig {
    fn default() -> Self {
        ConfigStateConfig { pipeline: None, refresh: default_refresh() }
    }
}

impl ConfigStateConfig {
    /// The pipeline whose changes make the view, given the pipelines that exist.
    pub fn pipeline(&self, existing: &[&str]) -> Option<String> {
        match &self.pipeline {
            Some(p) => Some(p.clone()),
            None => existing.contains(&"config-changes").then(|| "config-changes".to_owned()),
        }
    }
}

/// Check the section against the pipelines that exist.
pub fn check(h: &HealthConfig, pipelines: &[&str], report: &mut impl FnMut(&str, String)) {
    for (field, d) in [
        ("health.check_interval", h.check_interval),
        ("health.stall_after", h.stall_after),
        ("health.producers.default_interval", h.producers.default_interval),
        ("health.config_state.refresh", h.config_state.refresh),
        ("health.producers.lake_refresh", h.producers.lake_refresh),
    ] {
        if d.0.is_zero() {
            report(field, "expected a duration above zero".into());
        }
    }
    for (service, d) in &h.producers.intervals {
        if d.0.is_zero() {
            report(&format!("health.producers.intervals.{service}"), "expected a duration above zero".into());
        }
    }
    let p = &h.producers;
    if !(p.late_after.is_finite() && p.late_after > 0.0) {
        report(
            "health.producers.late_after",
            format!("expected a number of intervals above 0, found {}", p.late_after),
        );
    }
    if !(p.down_after.is_finite() && p.down_after > p.late_after) {
        report(
            "health.producers.down_after",
            format!("expected more intervals than late_after ({}), found {}", p.late_after, p.down_after),
        );
    }
    let known = |name: &str| pipelines.contains(&name);
    let mut named = Vec::new();
    for (i, name) in p.pipelines.iter().flatten().enumerate() {
        named.push((format!("health.producers.pipelines[{i}]"), name));
    }
    named.extend(p.emit_to.iter().map(|n| ("health.producers.emit_to".to_owned(), n)));
    named.extend(h.config_state.pipeline.iter().map(|n| ("health.config_state.pipeline".to_owned(), n)));
    for (field, name) in named {
        if !known(name) {
            report(&field, format!("no pipeline named '{name}'; pipelines are: {}", pipelines.join(", ")));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reports_bad_thresholds_and_unknown_pipelines() {
        let mut h = HealthConfig::default();
        h.producers.late_after = 3.0;
        h.producers.down_after = 2.0;
        h.producers.pipelines = Some(vec!["health".into(), "nope".into()]);
        let mut problems = Vec::new();
        check(&h, &["health", "logs"], &mut |f, m| problems.push(format!("{f}: {m}")));
        assert_eq!(problems.len(), 2, "{problems:?}");
        assert!(problems[0].starts_with("health.producers.down_after: expected more intervals"), "{problems:?}");
        assert!(problems[1].starts_with("health.producers.pipelines[1]: no pipeline named 'nope'"), "{problems:?}");
    }

    #[test]
    fn per_service_interval_overrides_the_default() {
        let mut p = ProducersConfig::default();
        p.intervals.insert("billing".into(), HumanDuration(Duration::from_secs(10)));
        assert_eq!(p.interval("billing"), Duration::from_secs(10));
        assert_eq!(p.interval("other"), Duration::from_secs(30));
        assert_eq!(p.watched(&["logs", "config-changes"]), vec!["logs".to_owned()]);
        assert_eq!(p.emit_to(&["logs"]), None);
    }
}
