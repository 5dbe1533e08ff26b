//! The dead-letters page's data: the latest dead letters of each pipeline, read back from the
//! lake (`<lake>/<dead_letters>/<pipeline>/`, the last [`HOURS`] hour partitions) every
//! [`REFRESH`], so every instance's dead letters show, [`KEPT`] per pipeline at most. The lake is
//! listed only while someone looks (the page was rendered in the last [`WANTED_FOR`]): an
//! instance nobody watches makes no requests to the bucket.

use std::collections::{HashMap, VecDeque};
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use base64::Engine;
use serde_json::{Map, Value};
use tokio_util::sync::CancellationToken;

use crate::lake_tail::LakeTail;

pub const KEPT: usize = 1_000;
pub const HOURS: u32 = 24;
pub const REFRESH: Duration = Duration::from_secs(5);
pub const WANTED_FOR: Duration = Duration::from_secs(120);
/// Characters of a payload kept for its preview.
const PREVIEW: usize = 400;

#[derive(Debug, Clone, PartialEq)]
pub struct Letter {
    pub pipeline: String,
    /// RFC 3339, as the lake holds it; sorts in time order.
    pub failed_at: String,
    pub stage: String,
    pub reason: String,
    pub message_id: String,
    /// The start of the original bytes, as text (invalid UTF-8 replaced).
    pub preview: String,
}

impl Letter {
    /// From a lake row of the `dead_letter` schema; `None` if it lacks what it needs.
    pub fn from_row(r: &Map<String, Value>) -> Option<Letter> {
        let s = |k: &str| r.get(k).and_then(Value::as_str).map(str::to_owned);
        let data = r.get("data").and_then(Value::as_str).map(payload).unwrap_or_default();
        Some(Letter {
            pipeline: s("pipeline")?,
            failed_at: s("failed_at")?,
            stage: s("stage").unwrap_or_default(),
            reason: s("reason").unwrap_or_default(),
            message_id: s("message_id").unwrap_or_default(),
            preview: crate::console::html::truncate(&String::from_utf8_lossy(&data), PREVIEW),
        })
    }
}

/// A BYTES column read back as JSON text: hex (Arrow's JSON writer) or base64.
fn payload(text: &str) -> Vec<u8> {
    let hex = text.len().is_multiple_of(2) && text.bytes().all(|b| b.is_ascii_hexdigit());
    if hex {
        let digit = |b: u8| (b as char).to_digit(16).unwrap_or(0) as u8;
        return text.as_bytes().chunks(2).map(|p| digit(p[0]) << 4 | digit(p[1])).collect();
    }
    base64::engine::general_purpose::STANDARD.decode(text).unwrap_or_else(|_| text.as_bytes().to_vec())
}

#[derive(Default)]
pub struct Letters {
    by_pipeline: Mutex<HashMap<String, VecDeque<Letter>>>,
    /// When the page was last rendered (ms since the epoch).
    viewed_ms: AtomicI64,
    /// Whether the lake has been read once.
    read: AtomicBool,
}

impl Letters {
    /// The page is being looked at: keep reading the lake.
    pub fn viewed(&self) {
        self.viewed_ms.store(chrono::Utc::now().timestamp_millis(), Ordering::Relaxed);
    }

    fn wanted(&self) -> bool {
        chrono::Utc::now().timestamp_millis() - self.viewed_ms.load(Ordering::Relaxed) < WANTED_FOR.as_millis() as i64
    }

    /// Whether the lake has been read at least once.
    pub fn read_once(&self) -> bool {
        self.read.load(Ordering::Relaxed)
    }

    pub fn add(&self, l: Letter) {
        let mut all = self.by_pipeline.lock().expect("not poisoned");
        let list = all.entry(l.pipeline.clone()).or_default();
        if list.len() == KEPT {
            list.pop_front();
        }
        list.push_back(l);
    }

    /// The dead letters of `pipeline` (or every one) whose reason contains `reason` (any case),
    /// newest first.
    pub fn latest(&self, pipeline: Option<&str>, reason: &str) -> Vec<Letter> {
        let needle = reason.to_lowercase();
        let all = self.by_pipeline.lock().expect("not poisoned");
        let mut out: Vec<Letter> = all
            .iter()
            .filter(|(p, _)| pipeline.is_none_or(|want| want == p.as_str()))
            .flat_map(|(_, list)| list.iter())
            .filter(|l| needle.is_empty() || l.reason.to_lowercase().contains(&needle))
            .cloned()
            .collect();
        out.sort_by(|a, b| b.failed_at.cmp(&a.failed_at));
        out
    }
}

/// Reads each pipeline's new dead-letter files into [`Letters`].
pub struct Follower {
    tails: Vec<LakeTail>,
    letters: Arc<Letters>,
}

impl Follower {
    /// `prefixes`: each pipeline's dead-letter prefix in `store`.
    pub fn new(
        store: Arc<dyn object_store::ObjectStore>,
        prefixes: Vec<object_store::path::Path>,
        letters: Arc<Letters>,
    ) -> Follower {
        let tails = prefixes.into_iter().map(|p| LakeTail::new(store.clone(), p, Some(HOURS))).collect();
        Follower { tails, letters }
    }

    pub async fn refresh(&mut self) {
        for tail in &mut self.tails {
            match tail.new_rows().await {
                Ok(rows) => rows.iter().filter_map(Letter::from_row).for_each(|l| self.letters.add(l)),
                Err(e) => tracing::warn!(error = %e, "console: cannot read dead letters from the lake"),
            }
        }
        self.letters.read.store(true, Ordering::Relaxed);
    }

    /// Every [`REFRESH`] while the page is looked at, until `stop`.
    pub async fn run(mut self, stop: CancellationToken) {
        let mut tick = tokio::time::interval(REFRESH);
        loop {
            tokio::select! {
                _ = stop.cancelled() => return,
                _ = tick.tick() => {
                    if self.letters.wanted() {
                        self.refresh().await;
                    }
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn rows_newest_first_filtered_by_pipeline_and_reason() {
        let row = |p: &str, at: &str, reason: &str, data: &str| {
            json!({"pipeline": p, "failed_at": at, "stage": "transforms[0].parse_json", "reason": reason,
                "message_id": "m", "data": data})
            .as_object()
            .cloned()
            .unwrap()
        };
        let letters = Letters::default();
        letters.add(Letter::from_row(&row("logs", "2026-12-02T09:00:01Z", "not JSON", "3c623e")).unwrap());
        letters.add(Letter::from_row(&row("logs", "2026-12-02T09:00:02Z", "missing field", "aGk=")).unwrap());
        letters.add(Letter::from_row(&row("health", "2026-12-02T09:00:03Z", "not JSON", "zz")).unwrap());
        let all = letters.latest(None, "");
        assert_eq!(all.iter().map(|l| l.preview.as_str()).collect::<Vec<_>>(), ["zz", "hi", "<b>"]);
        assert_eq!(letters.latest(Some("logs"), "JSON").len(), 1);
        assert_eq!(letters.latest(Some("logs"), "json")[0].preview, "<b>");
        assert!(Letter::from_row(&json!({"pipeline": "x"}).as_object().cloned().unwrap()).is_none());
        assert!(!letters.wanted());
        letters.viewed();
        assert!(letters.wanted(), "read while the page is looked at");
    }
}
