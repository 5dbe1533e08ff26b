//! `dedupe`: drop repeats of a key seen within a time window.
//!
//! `- dedupe: {key: message_id, window: 10m, max_keys: 200000}` or `key: {field: order.id}`.
//! Memory is bounded by `max_keys` (oldest keys are forgotten first). At-least-once holds: a
//! repeat of an event still in flight is folded into it and settles with it, and a repeat of an
//! event that failed goes through, so a redelivery is never dropped in favour of a lost original.

use std::collections::{HashMap, VecDeque};
use std::num::NonZeroUsize;
use std::time::{Duration, Instant};

use serde::Deserialize;

use super::{BuildContext, FieldError, Stage, Verdict};
use crate::ack::{Absorbed, AckWatch};
use crate::config::units::HumanDuration;
use crate::event::Event;
use crate::path::FieldPath;

#[derive(Debug, Clone, Deserialize)]
#[serde(untagged)]
pub enum KeyConfig {
    /// `message_id`: the Pub/Sub message id.
    Named(String),
    /// `{field: path}`: a record field.
    Field { field: String },
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

struct Seen {
    at: Instant,
    /// The first copy's acknowledgement; `None` when it was untracked (taken as delivered).
    watch: Option<AckWatch>,
}

pub struct Dedupe {
    key: Key,
    window: Duration,
    max_keys: usize,
    seen: HashMap<String, Seen>,
    /// Keys in the order they were recorded, for expiry and eviction.
    order: VecDeque<(String, Instant)>,
    now: Box<dyn Fn() -> Instant + Send>,
}

impl Config {
    pub fn build(&self, _ctx: &BuildContext) -> Result<Dedupe, FieldError> {
        let key = match &self.key {
            None => Key::MessageId,
            Some(KeyConfig::Named(n)) if n == "message_id" => Key::MessageId,
            Some(KeyConfig::Named(n)) => {
                return Err(FieldError::new("key", format!("expected `message_id` or `{{field: <path>}}`, found '{n}'")))
            }
            Some(KeyConfig::Field { field }) => {
                Key::Field(FieldPath::parse(field).map_err(|m| FieldError::new("key.field", m))?)
            }
        };
        if self.window.0.is_zero() {
            return Err(FieldError::new("window", "expected a duration above zero"));
        }
        Ok(Dedupe {
            key,
            window: self.window.0,
            max_keys: self.max_keys.get(),
            seen: HashMap::new(),
            order: VecDeque::new(),
            now: Box::new(Instant::now),
        })
    }
}

impl Dedupe {
    fn key_of(&self, event: &Event) -> Result<String, String> {
        match &self.key {
            Key::MessageId => Ok(event.message_id.clone()),
            Key::Field(p) => match p.get(&event.record) {
                Some(serde_json::Value::String(s)) => Ok(s.clone()),
                Some(v) if !v.is_null() => Ok(v.to_string()),
                _ => Err(format!("dedupe key field '{p}' is missing")),
            },
        }
    }

    /// Forget keys older than the window, then the oldest beyond `max_keys`.
    fn expire(&mut self, now: Instant) {
        while let Some((key, at)) = self.order.front() {
            let expired = now.duration_since(*at) >= self.window;
            if !expired && self.seen.len() <= self.max_keys {
                break;
            }
            if self.seen.get(key).is_some_and(|s| s.at == *at) {
                self.seen.remove(key);
            }
            self.order.pop_front();
        }
    }

    fn remember(&mut self, key: String, event: &Event, now: Instant) {
        self.order.push_back((key.clone(), now));
        self.seen.insert(key, Seen { at: now, watch: event.ack.watch() });
    }
}

impl Stage for Dedupe {
    fn apply(&mut self, event: &mut Event) -> Result<Verdict, String> {
        let key = self.key_of(event)?;
        let now = (self.now)();
        self.expire(now);
        let Some(seen) = self.seen.get(&key) else {
            self.remember(key, event, now);
            self.expire(now);
            return Ok(Verdict::Keep);
        };
        match &seen.watch {
            // The first copy was untracked: it is as good as delivered.
            None => Ok(Verdict::Drop),
            Some(watch) => match watch.absorb(event.ack.take()) {
                Absorbed::Folded => Ok(Verdict::Drop),
                Absorbed::Retry(ack) => {
                    event.ack = ack;
                    self.remember(key, event, now);
                    Ok(Verdict::Keep)
                }
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::ack::{Ack, Outcome};
    use serde_json::json;
    use std::sync::{Arc, Mutex};

    fn stage(yaml: &str) -> (Dedupe, Arc<Mutex<Instant>>) {
        let config: Config = crate::config::from_yaml_str(yaml).unwrap();
        let schema = super::super::testing::schema();
        let mut d = config.build(&BuildContext { pipeline: "logs", schema: &schema, sinks: &[] }).unwrap();
        let clock = Arc::new(Mutex::new(Instant::now()));
        let c = clock.clone();
        d.now = Box::new(move || *c.lock().unwrap());
        (d, clock)
    }

    fn tracked(id: &str) -> (Event, tokio::sync::oneshot::Receiver<Outcome>) {
        let (ack, rx) = Ack::channel();
        let mut e = super::super::testing::event(json!({"order": {"id": 7}}));
        e.message_id = id.into();
        e.ack = ack;
        (e, rx)
    }

    #[test]
    fn repeat_in_window_is_dropped_and_settles_with_the_original() {
        let (mut d, _) = stage("{window: 10m, max_keys: 10}");
        let (mut a, mut arx) = tracked("m1");
        let (mut b, mut brx) = tracked("m1");
        assert_eq!(d.apply(&mut a).unwrap(), Verdict::Keep);
        assert_eq!(d.apply(&mut b).unwrap(), Verdict::Drop);
        drop(b); // the chain drops the duplicate; its ack was folded into the original
        assert!(brx.try_recv().is_err(), "duplicate waits for the original");
        a.ack.take().settle(Outcome::Delivered);
        drop(a);
        assert_eq!(arx.try_recv().unwrap(), Outcome::Delivered);
        assert_eq!(brx.try_recv().unwrap(), Outcome::Delivered);
    }

    #[test]
    fn repeat_of_a_failed_original_goes_through() {
        let (mut d, _) = stage("{window: 10m, max_keys: 10}");
        let (mut a, _arx) = tracked("m1");
        d.apply(&mut a).unwrap();
        a.ack.take().settle(Outcome::Failed);
        let (mut b, mut brx) = tracked("m1");
        assert_eq!(d.apply(&mut b).unwrap(), Verdict::Keep);
        b.ack.take().settle(Outcome::Delivered);
        assert_eq!(brx.try_recv().unwrap(), Outcome::Delivered);
    }

    #[test]
    fn keys_expire_after_the_window() {
        let (mut d, clock) = stage("{window: 1m, max_keys: 10}");
        let (mut a, _) = tracked("m1");
        d.apply(&mut a).unwrap();
        a.ack.take().settle(Outcome::Delivered);
        *clock.lock().unwrap() += Duration::from_secs(61);
        let (mut b, _) = tracked("m1");
        assert_eq!(d.apply(&mut b).unwrap(), Verdict::Keep);
    }

    #[test]
    fn max_keys_bounds_memory_oldest_first() {
        let (mut d, _) = stage("{window: 1h, max_keys: 2}");
        for id in ["a", "b", "c"] {
            let mut e = super::super::testing::event(json!({}));
            e.message_id = id.into();
            d.apply(&mut e).unwrap();
        }
        assert_eq!(d.seen.len(), 2);
        assert!(!d.seen.contains_key("a"), "oldest key forgotten");
    }

    #[test]
    fn field_keys_and_their_errors() {
        let (mut d, _) = stage("{key: {field: order.id}, window: 1h, max_keys: 10}");
        let mut e = super::super::testing::event(json!({"order": {"id": 7}}));
        assert_eq!(d.apply(&mut e).unwrap(), Verdict::Keep);
        let mut e = super::super::testing::event(json!({"order": {"id": 7}}));
        e.message_id = "other".into();
        assert_eq!(d.apply(&mut e).unwrap(), Verdict::Drop);
        let mut e = super::super::testing::event(json!({}));
        assert_eq!(d.apply(&mut e).unwrap_err(), "dedupe key field 'order.id' is missing");
        let config: Config = crate::config::from_yaml_str("{key: id, window: 1h, max_keys: 10}").unwrap();
        let schema = super::super::testing::schema();
        let err = config.build(&BuildContext { pipeline: "logs", schema: &schema, sinks: &[] }).err().unwrap();
        assert_eq!(err.message, "expected `message_id` or `{field: <path>}`, found 'id'");
    }
}
