//! The unit that flows through a pipeline after its chain: one message, its parsed record and its ack.
//!
//! Beside it: `handover` (what sources hand to a pipeline: messages in a batch, and the messages
//! events share), `ack` (the shares that settle a message once every sink has it durably), `row`
//! (an event's record as one row of the Arrow batch its chain forwarded), `arrivals` (a push-only
//! pipeline's requests whose event is not in a batch yet).

pub mod ack;
pub(crate) mod arrivals;
pub mod handover;
pub(crate) mod row;

use std::sync::Arc;

use serde_json::Value;

use self::ack::Ack;
pub use self::handover::{Handover, Message, Messages};
use self::row::RowRef;

/// A message's Pub/Sub attributes, sorted by key: a message has a few, so a sorted list is
/// found by a short search and built without hashing, and it iterates in a stable order. The
/// list is shared (copied only when changed), and so are its texts: the messages of a stream
/// mostly carry the same set, and a reader hands each message the one it already holds.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Attributes(Option<Arc<Vec<Pair>>>);

/// A key and its value.
type Pair = (Arc<str>, Arc<str>);

impl Attributes {
    pub fn new() -> Attributes {
        Attributes(None)
    }

    /// Set `key`; the value it had, if any.
    pub fn insert(&mut self, key: impl Into<Arc<str>>, value: impl Into<Arc<str>>) -> Option<Arc<str>> {
        let (key, value) = (key.into(), value.into());
        let pairs = Arc::make_mut(self.0.get_or_insert_with(Default::default));
        match pairs.binary_search_by(|(k, _)| k.as_ref().cmp(&key)) {
            Ok(i) => Some(std::mem::replace(&mut pairs[i].1, value)),
            Err(i) => {
                pairs.insert(i, (key, value));
                None
            }
        }
    }

    fn pairs(&self) -> &[Pair] {
        self.0.as_deref().map_or(&[], Vec::as_slice)
    }

    pub fn get(&self, key: &str) -> Option<&str> {
        let pairs = self.pairs();
        pairs.binary_search_by(|(k, _)| k.as_ref().cmp(key)).ok().map(|i| &*pairs[i].1)
    }

    /// Key and value pairs, by key.
    pub fn iter(&self) -> impl Iterator<Item = (&str, &str)> {
        self.pairs().iter().map(|(k, v)| (&**k, &**v))
    }

    pub fn is_empty(&self) -> bool {
        self.pairs().is_empty()
    }

    /// Whether both are the same shared list (not only equal).
    #[cfg(test)]
    pub(crate) fn shares(&self, other: &Attributes) -> bool {
        match (&self.0, &other.0) {
            (Some(a), Some(b)) => Arc::ptr_eq(a, b),
            _ => false,
        }
    }
}

impl FromIterator<(String, String)> for Attributes {
    fn from_iter<I: IntoIterator<Item = (String, String)>>(pairs: I) -> Self {
        let mut a = Attributes::new();
        for (k, v) in pairs {
            a.insert(k, v);
        }
        a
    }
}

impl<const N: usize> From<[(String, String); N]> for Attributes {
    fn from(pairs: [(String, String); N]) -> Self {
        pairs.into_iter().collect()
    }
}

impl std::ops::Index<&str> for Attributes {
    type Output = str;
    fn index(&self, key: &str) -> &str {
        self.get(key).unwrap_or_else(|| panic!("no attribute {key:?}"))
    }
}

impl serde::Serialize for Attributes {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_map(self.iter())
    }
}

impl<'de> serde::Deserialize<'de> for Attributes {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        std::collections::BTreeMap::<String, String>::deserialize(d).map(|m| m.into_iter().collect())
    }
}

/// What an event of `payload` bytes with an id of `id` bytes weighs in memory at its peak, about:
/// the payload kept verbatim and the record parsed from it, then, while its batch is written,
/// its Arrow columns and its share of the Parquet file (each at most as large again). A source
/// counts a message with it before the event exists; batches are measured with it too.
pub fn footprint(payload: usize, id: usize) -> usize {
    4 * payload + id + 64
}

/// A message on its way through a pipeline: where its facts are (a [`Message`] of a shared
/// [`Messages`], read through `Deref`), what the transform chain made of it, and its ack.
#[derive(Debug)]
pub struct Event {
    messages: Arc<Messages>,
    /// Its message's position in `messages`.
    at: u32,
    /// The structured record; `Value::Null` until the `parse_json` stage fills it.
    pub record: Value,
    /// Where the record is instead, once a columnar chain forwarded it (`record` is then null).
    pub row: Option<RowRef>,
    /// Sinks chosen by a `route` stage; `None` means every sink of the pipeline.
    pub routes: Option<Arc<[Arc<str>]>>,
    /// This event's share of the message acknowledgement.
    pub ack: Ack,
    /// Counts a push request as one that may still add to its pipeline's batches, until the
    /// sinks take the event into a batch (see `crate::event::arrivals`); `None` otherwise.
    pub arriving: Option<crate::event::arrivals::Arriving>,
}

/// An event reads as its message: `event.message_id`, `event.data`.
impl std::ops::Deref for Event {
    type Target = Message;
    fn deref(&self) -> &Message {
        &self.messages.0[self.at as usize]
    }
}

impl Event {
    /// The event of a message no other event shares, with an empty record.
    pub fn alone(message: Message, ack: Ack) -> Self {
        Event::of(Arc::new(Messages(vec![message])), 0, ack)
    }

    /// The event of message `at` of `messages`, with an empty record.
    pub fn of(messages: Arc<Messages>, at: usize, ack: Ack) -> Self {
        debug_assert!(at < messages.0.len());
        Event { messages, at: at as u32, record: Value::Null, row: None, routes: None, ack, arriving: None }
    }

    /// Its message beside its record and its ack, to change those while reading it.
    pub fn parts(&mut self) -> (&Message, &mut Value, &mut Ack) {
        (&self.messages.0[self.at as usize], &mut self.record, &mut self.ack)
    }

    /// Its message, to change (a copy of it when other events share its batch's messages).
    pub fn message_mut(&mut self) -> &mut Message {
        &mut Arc::make_mut(&mut self.messages).0[self.at as usize]
    }

    /// Its message, taken out (copied when other events share its batch's messages).
    pub fn into_message(self) -> Message {
        let at = self.at as usize;
        match Arc::try_unwrap(self.messages) {
            Ok(Messages(mut v)) if v.len() == 1 => v.swap_remove(at),
            Ok(Messages(v)) => v[at].clone(),
            Err(shared) => shared.0[at].clone(),
        }
    }

    /// Approximate in-memory weight, used for batch and flow-control byte limits.
    pub fn size_hint(&self) -> usize {
        footprint(self.data.len(), self.message_id.len())
    }

    /// The record, wherever it is held; with `names`, a record held in columns is read for
    /// those fields only (observers that look at a few).
    pub fn record(&self, names: Option<&[&str]>) -> std::borrow::Cow<'_, Value> {
        match &self.row {
            Some(row) => std::borrow::Cow::Owned(row.record_of(names)),
            None => std::borrow::Cow::Borrowed(&self.record),
        }
    }

    /// Whether a sink may already hold it: not known to be the message's first delivery.
    pub fn maybe_written(&self) -> bool {
        self.delivery_attempt != Some(1)
    }

    /// A second copy of this event for another sink, sharing the same acknowledgement.
    pub fn fork(&self) -> Event {
        Event {
            messages: self.messages.clone(),
            at: self.at,
            record: self.record.clone(),
            row: self.row.clone(),
            routes: self.routes.clone(),
            ack: self.ack.split(),
            arriving: None,
        }
    }
}

/// An event that could not be processed or written, with the reason, bound for the dead-letter sink.
#[derive(Debug)]
pub struct DeadLetter {
    pub event: Event,
    /// The stage or sink that refused it, e.g. `transform[2].validate` or `sink.lake`.
    pub stage: String,
    /// Why, in words an operator can act on.
    pub reason: String,
}
