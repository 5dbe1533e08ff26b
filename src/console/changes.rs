//! The configuration page's history: every change of each key this instance has seen go
//! through the configuration pipeline since it started, the last [`PER_KEY`] per key, for up to
//! [`MAX_KEYS`] keys. The current value comes from `ConfigState`, which also holds what the lake
//! said at start; history before the start is in the lake (`config-changes`).

use std::collections::{HashMap, VecDeque};
use std::sync::Mutex;

use crate::event::Event;
use crate::health::config_state::{Change, Entry};
use crate::topology::Observer;

pub const PER_KEY: usize = 20;
pub const MAX_KEYS: usize = 200_000;

pub struct ChangeLog {
    pipeline: String,
    keys: Mutex<HashMap<(String, String), VecDeque<Entry>>>,
}

impl ChangeLog {
    pub fn new(pipeline: String) -> ChangeLog {
        ChangeLog { pipeline, keys: Mutex::new(HashMap::new()) }
    }

    pub fn record(&self, c: Change) {
        let mut keys = self.keys.lock().expect("not poisoned");
        let full = keys.len() >= MAX_KEYS;
        let key = (c.service, c.key);
        if full && !keys.contains_key(&key) {
            return;
        }
        let versions = keys.entry(key).or_default();
        if versions.iter().any(|e| e.message_id == c.entry.message_id) {
            return;
        }
        if versions.len() == PER_KEY {
            versions.pop_front();
        }
        versions.push_back(c.entry);
    }

    /// The changes seen of one key, highest version first (ties: larger message id first).
    pub fn history(&self, service: &str, key: &str) -> Vec<Entry> {
        let keys = self.keys.lock().expect("not poisoned");
        let mut out: Vec<Entry> =
            keys.get(&(service.to_owned(), key.to_owned())).map(|v| v.iter().cloned().collect()).unwrap_or_default();
        out.sort_by(|a, b| (b.version, &b.message_id).cmp(&(a.version, &a.message_id)));
        out
    }
}

impl Observer for ChangeLog {
    fn wants(&self, pipeline: &str) -> bool {
        pipeline == self.pipeline
    }

    fn observe(&self, _pipeline: &str, events: &[Event]) {
        for event in events {
            if let Some(c) = event.record(None).as_object().and_then(Change::from_record) {
                self.record(c);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn change(version: i64, id: &str) -> Change {
        let entry =
            Entry { value: json!(version), version, author: None, changed_at: String::new(), message_id: id.into() };
        Change { service: "pricing".into(), key: "limit".into(), entry }
    }

    #[test]
    fn newest_first_deduplicated_and_bounded() {
        let log = ChangeLog::new("config-changes".into());
        for v in 1..=30 {
            log.record(change(v, &format!("m{v:02}")));
        }
        log.record(change(30, "m30"));
        let h = log.history("pricing", "limit");
        assert_eq!(h.len(), PER_KEY);
        assert_eq!((h[0].version, h[PER_KEY - 1].version), (30, 11));
        assert!(log.history("pricing", "other").is_empty());
    }
}
