//! `dedupe`: drop repeats of a key seen within a time window.
//!
//! `- dedupe: {key: message_id, window: 10m, max_keys: 200000}` or `key: {field: order.id}`
//! (`key` defaults to `message_id`, the Pub/Sub id; a field's value is compared by its text, and
//! an event without it is refused). A key is remembered for `window` from its first sighting;
//! memory is bounded by `max_keys` (oldest keys are forgotten first).
//!
//! At-least-once holds: a repeat of an event still in flight is folded into it and settles with
//! it, a repeat of a delivered event is dropped (acknowledged), and a repeat of an event that
//! failed goes through, so a redelivery is never dropped in favour of a lost original. An
//! untracked original (nobody waits for its ack) counts as delivered.

mod table;
mod window;

use std::borrow::Cow;
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use arrow::array::Array;
use serde::Deserialize;
use serde_json::Value;

use super::columnar::{Column, Columnar, Kind, Planner, Rows};
use super::condition::text_of;
use super::{parse_path, BuildContext, Effect, FieldError, Stage, Verdict};
use crate::event::ack::{Absorbed, Ack};
use crate::event::Event;
use crate::path::FieldPath;
use crate::units::HumanDuration;
use window::Window;

/// How many rows ahead a batch fetches the table lines a row will read.
const AHEAD: usize = 8;

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum KeyConfig {
    /// `message_id`: the Pub/Sub message id.
    Named(String),
    /// `{field: path}`: a record field.
    Field(FieldKey),
    /// Anything else, kept so `build` can say precisely what is wrong with it.
    Invalid(serde_json::Value),
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct FieldKey {
    pub field: String,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Config {
    pub key: Option<KeyConfig>,
    pub window: HumanDuration,
    pub max_keys: NonZeroUsize,
}

enum Key {
    MessageId,
    Field(FieldPath),
}

/// Where a key is read on columns: the message id, or a text or integer slot.
enum KeySlot {
    MessageId,
    Slot(usize),
}

pub struct Dedupe {
    key: Key,
    window_length: Duration,
    max_keys: usize,
    /// The keys recorded within the window, at most `max_keys`.
    window: Window,
    now: Box<dyn Fn() -> Instant + Send>,
    key_slot: Option<KeySlot>,
    /// Keyed on message ids that never repeat: every event is kept and nothing recorded.
    unique: bool,
}

impl Config {
    pub fn build(&self, _ctx: &BuildContext) -> Result<Dedupe, FieldError> {
        let wrong = |found: String| {
            FieldError::new("key", format!("expected `message_id` or `{{field: <path>}}`, found {found}"))
        };
        let key = match &self.key {
            None => Key::MessageId,
            Some(KeyConfig::Named(n)) if n == "message_id" => Key::MessageId,
            Some(KeyConfig::Named(n)) => return Err(wrong(format!("'{n}'"))),
            Some(KeyConfig::Field(f)) => Key::Field(parse_path("key.field", &f.field)?),
            Some(KeyConfig::Invalid(v)) => return Err(wrong(v.to_string())),
        };
        if self.window.0.is_zero() {
            return Err(FieldError::new("window", "expected a duration above zero"));
        }
        Ok(Dedupe {
            key,
            window_length: self.window.0,
            max_keys: self.max_keys.get(),
            window: Window::new(),
            now: Box::new(Instant::now),
            key_slot: None,
            unique: false,
        })
    }
}

impl Dedupe {
    /// An event's key, from its message id or its record.
    fn key_of<'e>(&self, message_id: &'e str, record: &'e Value) -> Result<Cow<'e, str>, String> {
        match &self.key {
            Key::MessageId => Ok(Cow::Borrowed(message_id)),
            Key::Field(p) => match p.get(record) {
                Some(v) if !v.is_null() => Ok(text_of(v)),
                _ => Err(self.missing()),
            },
        }
    }

    /// Row `r`'s key: from its column on the columnar path, else from its event.
    fn key_at<'r>(&self, rows: &'r Rows, r: usize) -> Result<Cow<'r, str>, String> {
        let id = rows.message(r).message_id.as_str();
        match (&self.key_slot, rows.event(r)) {
            (Some(KeySlot::MessageId), _) => Ok(Cow::Borrowed(id)),
            (Some(KeySlot::Slot(s)), None) => match &rows.cols[*s] {
                Column::Str(a) if a.is_valid(r) => Ok(Cow::Borrowed(a.value(r))),
                Column::Int(a) if a.is_valid(r) => Ok(Cow::Owned(a.value(r).to_string())),
                _ => Err(self.missing()),
            },
            (_, event) => self.key_of(id, event.map_or(&Value::Null, |e| &e.record)),
        }
    }

    fn missing(&self) -> String {
        match &self.key {
            Key::Field(p) => format!("dedupe key field '{p}' is missing"),
            Key::MessageId => unreachable!("every event has a message id"),
        }
    }

    /// Forget keys older than the window, then the oldest beyond `max_keys`.
    fn expire(&mut self, now: Instant) {
        // A key recorded at or before this is out of the window (none is, this soon after boot).
        let horizon = now.checked_sub(self.window_length);
        let max_keys = self.max_keys;
        self.window.expire(|oldest, keys| horizon.is_some_and(|h| oldest.at <= h) || keys > max_keys);
    }

    /// Record `key` (this copy's acknowledgement in `ack`), seen `now`, and say whether the copy
    /// goes on. `hash` is the key's, when it was hashed already.
    fn see(&mut self, key: &str, hash: Option<u64>, ack: &mut Ack, message_id: &str, now: Instant) -> Verdict {
        self.expire(now);
        let key = window::Key::new(key);
        let hash = hash.unwrap_or_else(|| self.window.hash(&key));
        let (seen, probe) = self.window.find(hash, &key);
        let verdict = match seen.map(|seen| &seen.watch) {
            None => Verdict::Keep,
            // The first copy was untracked: it is as good as delivered.
            Some(None) => Verdict::Drop,
            Some(Some(watch)) => match watch.absorb(ack.take()) {
                Absorbed::Folded => {
                    tracing::debug!(message_id, "repeat folded into the first copy");
                    Verdict::Drop
                }
                Absorbed::Retry(retry) => {
                    tracing::debug!(message_id, "repeat of a failed copy goes through");
                    *ack = retry;
                    Verdict::Keep
                }
            },
        };
        if verdict == Verdict::Keep {
            // This copy is now the one repeats follow (a new key, or the retry of a failed one).
            self.window.record(probe, hash, &key, now, ack.watch());
            if self.window.len() > self.max_keys {
                self.expire(now); // the oldest beyond `max_keys`; expired keys went above
            }
        }
        verdict
    }
}

impl Stage for Dedupe {
    fn apply(&mut self, event: &mut Event) -> Result<Verdict, String> {
        if self.unique {
            return Ok(Verdict::Keep);
        }
        let now = (self.now)();
        let (message, record, ack) = event.parts();
        let key = self.key_of(&message.message_id, record)?;
        Ok(self.see(&key, None, ack, &message.message_id, now))
    }

    fn columnar(&mut self) -> Option<&mut dyn Columnar> {
        Some(self)
    }

    fn effect(&self) -> Effect<'_> {
        Effect::Reads
    }

    fn message_ids_unique(&mut self) {
        self.unique = matches!(self.key, Key::MessageId);
    }
}

/// Every live row in arrival order, on columns or not, so that repeats are found across both.
impl Columnar for Dedupe {
    fn plan(&mut self, p: &mut Planner) -> bool {
        self.key_slot = match &self.key {
            Key::MessageId => Some(KeySlot::MessageId),
            Key::Field(path) => {
                p.slot(path).filter(|&s| matches!(p.slots[s].kind, Kind::Str | Kind::Int)).map(KeySlot::Slot)
            }
        };
        self.key_slot.is_some()
    }

    fn takes_slow_rows(&self) -> bool {
        true
    }

    fn apply_columns(&mut self, rows: &mut Rows, stage: usize) {
        if self.unique {
            return;
        }
        // One reading of the clock for the batch: its rows arrived together.
        let now = (self.now)();
        // Every key hashed first, so that each row can fetch the table line of a row further on:
        // their cache misses then overlap instead of following one another.
        let hashes: Vec<Option<u64>> = (0..rows.len())
            .map(|r| match rows.is_live(r) {
                true => self.key_at(rows, r).ok().map(|k| self.window.hash(&window::Key::new(&k))),
                false => None,
            })
            .collect();
        for r in 0..rows.len() {
            if !rows.is_live(r) {
                continue;
            }
            if let Some(&Some(hash)) = hashes.get(r + AHEAD) {
                self.window.prefetch(hash, AHEAD);
            }
            let mut ack = rows.ack_mut(r).take();
            let verdict =
                self.key_at(rows, r).map(|key| self.see(&key, hashes[r], &mut ack, &rows.message(r).message_id, now));
            *rows.ack_mut(r) = ack;
            match verdict {
                Ok(Verdict::Keep) => {}
                Ok(Verdict::Drop) => rows.drop_row(r),
                Err(reason) => rows.refuse(r, stage, reason),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::testing::{event, schema};
    use super::*;
    use crate::event::ack::{Ack, Outcome};
    use serde_json::json;
    use std::sync::{Arc, Mutex};
    use tokio::sync::oneshot::Receiver;

    fn config(yaml: &str) -> Result<Dedupe, FieldError> {
        let config: Config = crate::config::from_yaml_str(yaml).unwrap();
        config.build(&BuildContext { pipeline: "logs", schema: &schema(), sinks: &[] })
    }

    /// A stage with a clock the test moves by hand.
    fn stage(yaml: &str) -> (Dedupe, Arc<Mutex<Instant>>) {
        let mut d = config(yaml).unwrap();
        let clock = Arc::new(Mutex::new(Instant::now()));
        let c = clock.clone();
        d.now = Box::new(move || *c.lock().unwrap());
        (d, clock)
    }

    fn tracked(id: &str) -> (Event, Receiver<Outcome>) {
        let (ack, rx) = Ack::channel();
        let mut e = event(json!({"order": {"id": 7}}));
        e.message_mut().message_id = id.into();
        e.ack = ack;
        (e, rx)
    }

    /// What the chain does with a dropped event.
    fn settle_dropped(mut e: Event) {
        e.ack.take().settle(Outcome::Delivered);
    }

    #[test]
    fn repeat_in_window_is_dropped_and_settles_with_the_original() {
        for outcome in [Outcome::Delivered, Outcome::Failed] {
            let (mut d, _) = stage("{window: 10m, max_keys: 10}");
            let (mut a, mut arx) = tracked("m1");
            let (mut b, mut brx) = tracked("m1");
            assert_eq!(d.apply(&mut a).unwrap(), Verdict::Keep);
            assert_eq!(d.apply(&mut b).unwrap(), Verdict::Drop);
            settle_dropped(b);
            assert!(brx.try_recv().is_err(), "the duplicate waits for the original");
            a.ack.take().settle(outcome);
            assert_eq!(arx.try_recv().unwrap(), outcome);
            assert_eq!(brx.try_recv().unwrap(), outcome, "the duplicate settles as the original did");
        }
    }

    #[test]
    fn repeat_of_a_delivered_original_is_delivered_at_once() {
        let (mut d, _) = stage("{window: 10m, max_keys: 10}");
        let (mut a, _arx) = tracked("m1");
        d.apply(&mut a).unwrap();
        a.ack.take().settle(Outcome::Delivered);
        let (mut b, mut brx) = tracked("m1");
        assert_eq!(d.apply(&mut b).unwrap(), Verdict::Drop);
        drop(b);
        assert_eq!(brx.try_recv().unwrap(), Outcome::Delivered);
    }

    #[test]
    fn repeat_of_a_failed_original_goes_through_and_becomes_the_original() {
        let (mut d, _) = stage("{window: 10m, max_keys: 10}");
        let (mut a, _arx) = tracked("m1");
        d.apply(&mut a).unwrap();
        a.ack.take().settle(Outcome::Failed);
        let (mut b, mut brx) = tracked("m1");
        assert_eq!(d.apply(&mut b).unwrap(), Verdict::Keep);
        // A third copy now follows the second, which is in flight.
        let (mut c, mut crx) = tracked("m1");
        assert_eq!(d.apply(&mut c).unwrap(), Verdict::Drop);
        settle_dropped(c);
        b.ack.take().settle(Outcome::Delivered);
        assert_eq!(brx.try_recv().unwrap(), Outcome::Delivered);
        assert_eq!(crx.try_recv().unwrap(), Outcome::Delivered);
    }

    #[test]
    fn repeat_of_an_untracked_original_is_dropped() {
        let (mut d, _) = stage("{window: 10m, max_keys: 10}");
        assert_eq!(d.apply(&mut event(json!({}))).unwrap(), Verdict::Keep);
        let (mut b, _brx) = tracked("m-1");
        assert_eq!(d.apply(&mut b).unwrap(), Verdict::Drop);
    }

    #[test]
    fn keys_expire_after_the_window() {
        let (mut d, clock) = stage("{window: 1m, max_keys: 10}");
        let (mut a, _) = tracked("m1");
        d.apply(&mut a).unwrap();
        a.ack.take().settle(Outcome::Delivered);
        *clock.lock().unwrap() += Duration::from_secs(59);
        let (mut b, _) = tracked("m1");
        assert_eq!(d.apply(&mut b).unwrap(), Verdict::Drop, "still inside the window");
        *clock.lock().unwrap() += Duration::from_secs(1);
        let (mut c, _) = tracked("m1");
        assert_eq!(d.apply(&mut c).unwrap(), Verdict::Keep, "the window counts from the first sighting");
        assert_eq!(d.window.len(), 1);
    }

    #[test]
    fn max_keys_bounds_memory_oldest_first() {
        let (mut d, _) = stage("{window: 1h, max_keys: 2}");
        let mut apply = |id: &str| {
            let mut e = event(json!({}));
            e.message_mut().message_id = id.into();
            d.apply(&mut e).unwrap()
        };
        assert_eq!(apply("a"), Verdict::Keep);
        assert_eq!(apply("b"), Verdict::Keep);
        assert_eq!(apply("c"), Verdict::Keep);
        assert_eq!(apply("c"), Verdict::Drop);
        assert_eq!(apply("b"), Verdict::Drop);
        assert_eq!(apply("a"), Verdict::Keep, "the oldest key was forgotten");
        assert_eq!(d.window.len(), 2);
        assert!(d.window.queued() <= 3);
    }

    #[test]
    fn field_keys_compare_by_text_and_must_be_present() {
        let (mut d, _) = stage("{key: {field: order.id}, window: 1h, max_keys: 10}");
        assert_eq!(d.apply(&mut event(json!({"order": {"id": 7}}))).unwrap(), Verdict::Keep);
        let mut e = event(json!({"order": {"id": "7"}}));
        e.message_mut().message_id = "other".into();
        assert_eq!(d.apply(&mut e).unwrap(), Verdict::Drop);
        assert_eq!(d.apply(&mut event(json!({"order": {"id": 8}}))).unwrap(), Verdict::Keep);
        for record in [json!({}), json!({"order": {"id": null}})] {
            assert_eq!(d.apply(&mut event(record)).unwrap_err(), "dedupe key field 'order.id' is missing");
        }
    }

    #[test]
    fn unique_message_ids_are_not_remembered_but_field_keys_still_are() {
        let (mut d, _) = stage("{window: 10m, max_keys: 10}");
        d.message_ids_unique();
        for id in ["a:1", "a:2"] {
            let (mut e, _rx) = tracked(id);
            assert_eq!(d.apply(&mut e).unwrap(), Verdict::Keep);
        }
        assert!(d.window.len() == 0 && d.window.queued() == 0);
        let (mut d, _) = stage("{key: {field: order.id}, window: 1h, max_keys: 10}");
        d.message_ids_unique();
        assert_eq!(d.apply(&mut event(json!({"order": {"id": 7}}))).unwrap(), Verdict::Keep);
        assert_eq!(d.apply(&mut event(json!({"order": {"id": 7}}))).unwrap(), Verdict::Drop);
    }

    #[test]
    fn config_errors() {
        let err = |y: &str| {
            let e = config(y).err().unwrap();
            (e.field, e.message)
        };
        assert_eq!(
            err("{key: id, window: 1h, max_keys: 10}"),
            ("key".into(), "expected `message_id` or `{field: <path>}`, found 'id'".into())
        );
        assert_eq!(
            err("{key: {feild: id}, window: 1h, max_keys: 10}"),
            ("key".into(), r#"expected `message_id` or `{field: <path>}`, found {"feild":"id"}"#.into())
        );
        assert_eq!(
            err("{key: {field: 'a..b'}, window: 1h, max_keys: 10}"),
            ("key.field".into(), "field path 'a..b' has an empty segment".into())
        );
        assert_eq!(err("{window: 0s, max_keys: 10}"), ("window".into(), "expected a duration above zero".into()));
        let e = crate::config::from_yaml_str::<Config>("{window: 1m, max_keys: 0}").unwrap_err();
        assert_eq!(e.0, "max_keys");
    }
}
