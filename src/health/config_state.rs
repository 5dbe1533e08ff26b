//! The current configuration of every service that publishes to sluice (theirs, not sluice's
//! own), from the `config-changes` stream: for each
//! service and key, the change with the highest version. Served at `GET /config/<service>`.
//!
//! Order does not matter: a change with a lower version than the one held is stale and ignored,
//! the same message seen twice is a duplicate, and two different changes claiming one version are
//! settled by the larger message id, so every instance that has seen the same set of changes
//! holds the same state whatever order they came in.
//!
//! Several instances share one subscription and each receives only part of the stream, but they
//! all write the pipeline's lake files. So each instance applies what it receives at once, and
//! every `config_state.refresh` reads the lake files it has not read yet (`LakeFollower`). At
//! start the state is rebuilt from this instance's snapshot (`_sluice/config-state/<instance>.json`
//! in the lake, rewritten at each refresh and at shutdown) plus the lake files written since it,
//! without re-reading Pub/Sub. Another instance's changes show here within about
//! `refresh` + the sink's batch age.

use std::collections::BTreeMap;
use std::sync::{Arc, RwLock};

use chrono::{DateTime, Utc};
use object_store::path::Path as ObjectPath;
use object_store::{ObjectStore, ObjectStoreExt, PutPayload};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use tokio_util::sync::CancellationToken;

use crate::event::Event;
use crate::lake_tail::{LakeError, LakeTail};
use crate::store::join;
use crate::telemetry::metrics::Metrics;
use crate::topology::Observer;

/// One key's current value.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Entry {
    pub value: Value,
    pub version: i64,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
    /// When the change was made (its `timestamp`).
    pub changed_at: String,
    pub message_id: String,
}

/// One change, as read from an event or a lake row.
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    pub service: String,
    pub key: String,
    pub entry: Entry,
}

impl Change {
    /// From a `config_change` record (event or lake row); `None` if it lacks what it needs.
    pub fn from_record(r: &serde_json::Map<String, Value>) -> Option<Change> {
        let s = |k: &str| r.get(k).and_then(Value::as_str).map(str::to_owned);
        // In the lake a JSON column holds JSON text.
        let value = match r.get("new_value") {
            Some(Value::String(text)) if r.get("_lake").is_some() => {
                serde_json::from_str(text).unwrap_or_else(|_| Value::String(text.clone()))
            }
            Some(v) => v.clone(),
            None => Value::Null,
        };
        Some(Change {
            service: s("service")?,
            key: s("key")?,
            entry: Entry {
                value,
                version: r.get("version").and_then(Value::as_i64)?,
                author: s("author"),
                changed_at: s("timestamp").unwrap_or_default(),
                message_id: s("message_id")?,
            },
        })
    }
}

/// What became of a change.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Applied {
    /// It is now the key's current value.
    Current,
    /// A higher version (or the winner of a tie) is held.
    Stale,
    /// This very change is already held.
    Duplicate,
}

type State = BTreeMap<String, BTreeMap<String, Entry>>;

pub struct ConfigState {
    pipeline: String,
    state: RwLock<State>,
    metrics: Arc<Metrics>,
}

impl ConfigState {
    pub fn new(pipeline: String, metrics: Arc<Metrics>) -> ConfigState {
        ConfigState { pipeline, state: RwLock::new(State::new()), metrics }
    }

    /// The pipeline whose changes this follows.
    pub fn pipeline(&self) -> &str {
        &self.pipeline
    }

    pub fn apply(&self, c: Change) -> Applied {
        let mut state = crate::locks::write(&self.state);
        let keys = state.entry(c.service).or_default();
        let applied = match keys.get(&c.key) {
            Some(held) if held.message_id == c.entry.message_id => Applied::Duplicate,
            Some(held) if (held.version, &held.message_id) > (c.entry.version, &c.entry.message_id) => Applied::Stale,
            _ => {
                keys.insert(c.key, c.entry);
                Applied::Current
            }
        };
        let total: usize = state.values().map(BTreeMap::len).sum();
        self.metrics.config_keys.set(total as i64);
        applied
    }

    /// The current keys of one service.
    pub fn service(&self, service: &str) -> Option<BTreeMap<String, Entry>> {
        crate::locks::read(&self.state).get(service).cloned()
    }

    /// `f` over the whole state (service -> key -> entry), under the read lock: for views that
    /// page through it without copying it.
    pub fn read<R>(&self, f: impl FnOnce(&BTreeMap<String, BTreeMap<String, Entry>>) -> R) -> R {
        f(&self.state.read().expect("not poisoned"))
    }

    /// `(services, keys)` held.
    pub fn size(&self) -> (usize, usize) {
        let state = crate::locks::read(&self.state);
        (state.len(), state.values().map(BTreeMap::len).sum())
    }

    fn snapshot(&self) -> State {
        crate::locks::read(&self.state).clone()
    }

    fn apply_all(&self, state: State) {
        for (service, keys) in state {
            for (key, entry) in keys {
                self.apply(Change { service: service.clone(), key, entry });
            }
        }
    }
}

impl Observer for ConfigState {
    fn wants(&self, pipeline: &str) -> bool {
        pipeline == self.pipeline
    }

    fn observe(&self, _pipeline: &str, events: &[Event]) {
        for event in events {
            if let Some(c) = event.record(None).as_object().and_then(Change::from_record) {
                if self.apply(c) == Applied::Stale {
                    tracing::debug!(message_id = %event.message_id, "stale configuration change ignored");
                }
            }
        }
    }
}

#[derive(Serialize, Deserialize)]
struct Snapshot {
    /// Lake files modified before this (less a margin) are in `state`.
    written_at: DateTime<Utc>,
    state: State,
}

/// Files may land in the lake a little out of step with the clock that named them "read".
const MARGIN: chrono::TimeDelta = chrono::TimeDelta::minutes(10);

/// Reads the config pipeline's lake files into a [`ConfigState`] and keeps a snapshot.
pub(crate) struct LakeFollower {
    tail: LakeTail,
    snapshot: ObjectPath,
    state: Arc<ConfigState>,
}

impl LakeFollower {
    pub(crate) fn new(
        store: Arc<dyn ObjectStore>,
        base: &ObjectPath,
        prefix: &str,
        instance: &str,
        state: Arc<ConfigState>,
    ) -> Self {
        LakeFollower {
            tail: LakeTail::new(store, join(base, prefix), None),
            snapshot: join(base, &format!("_sluice/config-state/{instance}.json")),
            state,
        }
    }

    /// Load the snapshot, if any, then every lake file written since it.
    pub(crate) async fn rebuild(&mut self) -> Result<usize, LakeError> {
        match self.tail.store().get(&self.snapshot).await {
            Ok(r) => {
                let bytes = r.bytes().await.map_err(|e| LakeError::store(&self.snapshot, e))?;
                match serde_json::from_slice::<Snapshot>(&bytes) {
                    Ok(s) => {
                        self.tail.since = Some(s.written_at - MARGIN);
                        self.state.apply_all(s.state);
                    }
                    Err(e) => {
                        tracing::warn!(snapshot = %self.snapshot, error = %e, "unreadable snapshot; reading the whole lake")
                    }
                }
            }
            Err(object_store::Error::NotFound { .. }) => {}
            Err(e) => return Err(LakeError::store(&self.snapshot, e)),
        }
        self.refresh().await
    }

    /// Read the lake files not read yet; returns how many changes they held.
    pub(crate) async fn refresh(&mut self) -> Result<usize, LakeError> {
        let mut changes = 0;
        for row in self.tail.new_rows().await? {
            if let Some(c) = Change::from_record(&row) {
                self.state.apply(c);
                changes += 1;
            }
        }
        Ok(changes)
    }

    /// Write the snapshot: the state now, and the time it covers the lake up to.
    pub(crate) async fn save(&mut self) -> Result<(), LakeError> {
        let snap = Snapshot { written_at: Utc::now(), state: self.state.snapshot() };
        let bytes = serde_json::to_vec(&snap).expect("state serializes");
        self.tail
            .store()
            .put(&self.snapshot, PutPayload::from(bytes))
            .await
            .map_err(|e| LakeError::store(&self.snapshot, e))?;
        Ok(())
    }

    /// Refresh and save every `every` until `stop`, then save once more.
    pub(crate) async fn run(mut self, every: std::time::Duration, stop: CancellationToken) {
        let mut tick = tokio::time::interval(every);
        tick.tick().await;
        loop {
            tokio::select! {
                _ = stop.cancelled() => break,
                _ = tick.tick() => {}
            }
            match self.refresh().await {
                Ok(n) if n > 0 => tracing::debug!(changes = n, "configuration changes read from the lake"),
                Ok(_) => {}
                Err(e) => tracing::warn!(error = %e, "cannot read configuration changes from the lake"),
            }
            if let Err(e) = self.save().await {
                tracing::warn!(error = %e, "cannot write the configuration-state snapshot");
            }
        }
        if let Err(e) = self.save().await {
            tracing::warn!(error = %e, "cannot write the configuration-state snapshot");
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn change(key: &str, version: i64, value: Value, id: &str) -> Change {
        Change {
            service: "billing".into(),
            key: key.into(),
            entry: Entry { value, version, author: None, changed_at: String::new(), message_id: id.into() },
        }
    }

    fn all_changes() -> Vec<Change> {
        let mut v = Vec::new();
        for version in 1..=20 {
            v.push(change("limit", version, json!(version * 10), &format!("m{version:03}")));
        }
        v.push(change("mode", 1, json!("fast"), "x1"));
        v.push(change("mode", 2, json!("safe"), "x2"));
        // Two changes claiming one version: the larger message id wins, wherever it comes.
        v.push(change("mode", 3, json!("b"), "x3b"));
        v.push(change("mode", 3, json!("a"), "x3a"));
        v
    }

    #[test]
    fn highest_version_wins_in_any_order_with_duplicates() {
        let mut changes = all_changes();
        let dups: Vec<Change> = changes.iter().step_by(3).cloned().collect();
        changes.extend(dups);
        // A deterministic shuffle per seed (LCG), so a failure names its order.
        for seed in 0..50u64 {
            let mut order = changes.clone();
            let mut x = seed.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
            for i in (1..order.len()).rev() {
                x = x.wrapping_mul(6364136223846793005).wrapping_add(1442695040888963407);
                order.swap(i, (x >> 33) as usize % (i + 1));
            }
            let s = ConfigState::new("config-changes".into(), Arc::new(Metrics::new()));
            for c in order {
                s.apply(c);
            }
            for c in all_changes() {
                assert_ne!(
                    s.apply(c.clone()),
                    Applied::Current,
                    "seed {seed}: nothing seen twice changes the state: {c:?}"
                );
            }
            let billing = s.service("billing").unwrap();
            assert_eq!(billing["limit"].version, 20, "seed {seed}");
            assert_eq!(billing["limit"].value, json!(200), "seed {seed}");
            assert_eq!(billing["mode"].value, json!("b"), "seed {seed}");
            assert_eq!(s.size(), (1, 2));
        }
    }

    #[tokio::test]
    async fn rebuilt_from_snapshot_plus_newer_lake_files() {
        let store: Arc<dyn ObjectStore> = Arc::new(object_store::memory::InMemory::new());
        let metrics = Arc::new(Metrics::new());
        let first = Arc::new(ConfigState::new("config-changes".into(), metrics.clone()));
        for c in all_changes() {
            first.apply(c);
        }
        let mut f = LakeFollower::new(store.clone(), &ObjectPath::from("lake"), "config-changes", "a", first.clone());
        f.save().await.unwrap();
        let again = Arc::new(ConfigState::new("config-changes".into(), metrics));
        let mut g = LakeFollower::new(store, &ObjectPath::from("lake"), "config-changes", "a", again.clone());
        g.rebuild().await.unwrap();
        assert_eq!(again.service("billing"), first.service("billing"));
        assert!(again.service("nobody").is_none());
    }
}
