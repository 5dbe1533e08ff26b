//! What a source hands to a pipeline: a batch of messages, each one's facts in a [`Message`],
//! beside its ack. No [`Event`] is built for a message until the chain forwards or refuses it, and
//! then only a handle on the message, which the chain batch's messages share ([`Messages`]).

use std::sync::Arc;

use bytes::Bytes;
use chrono::{DateTime, Utc};

use super::ack::Ack;
use super::arrivals::Arriving;
use super::{Attributes, Event};

/// One message as received: what Pub/Sub (or a push, or a replayed file) says of it.
#[derive(Debug, Clone)]
pub struct Message {
    /// Pub/Sub message id: stable across redeliveries, so it is the identity used for dedupe.
    pub message_id: String,
    /// When Pub/Sub accepted the message; the fallback event time for partitioning.
    pub publish_time: DateTime<Utc>,
    /// Pub/Sub attributes, kept for routing, metadata and dead letters.
    pub attributes: Attributes,
    /// The original payload bytes, never modified, so a dead letter can keep them verbatim.
    pub data: Bytes,
    /// Where it came from: the subscription path, or `push` for the HTTP endpoint.
    pub subscription: Arc<str>,
    /// Which delivery of the message this is (1: the first), as Pub/Sub counts it for
    /// subscriptions with a dead-letter policy; `None` when unknown (no policy, push, internal
    /// events). Anything but 1 may have been written before: exactly-once sinks check it.
    pub delivery_attempt: Option<u32>,
    /// When this process received it: a redelivery is checked against what the previous holder
    /// wrote only after its in-flight writes had time to land.
    pub received: std::time::Instant,
}

impl Message {
    /// A message received now, with no count of deliveries.
    pub fn new(
        message_id: impl Into<String>,
        publish_time: DateTime<Utc>,
        attributes: Attributes,
        data: Bytes,
        subscription: Arc<str>,
    ) -> Message {
        Message {
            message_id: message_id.into(),
            publish_time,
            attributes,
            data,
            subscription,
            delivery_attempt: None,
            received: std::time::Instant::now(),
        }
    }
}

/// The messages of one chain batch, shared by the events made of them: an event is a message's
/// position in here, so its facts are never copied or moved again once the chain has them.
#[derive(Debug, Clone, Default)]
pub struct Messages(pub Vec<Message>);

/// A batch of messages from a source, with one ack each, taken by the chain as it is.
#[derive(Debug, Default)]
pub struct Handover {
    pub messages: Vec<Message>,
    /// The ack of each message, in the same order.
    pub acks: Vec<Ack>,
    /// Push requests still counted as arriving, by the position of their message.
    pub arriving: Vec<(usize, Arriving)>,
    /// A caller waits for one of these messages' outcome (a push request): the chain takes the
    /// batch at once, never lingering for more to fill it.
    pub awaited: bool,
}

impl Handover {
    pub fn with_capacity(n: usize) -> Handover {
        Handover { messages: Vec::with_capacity(n), acks: Vec::with_capacity(n), ..Default::default() }
    }

    /// One message and its ack (a push request's, a liveness transition's).
    pub fn one(message: Message, ack: Ack) -> Handover {
        Handover { messages: vec![message], acks: vec![ack], ..Default::default() }
    }

    pub fn len(&self) -> usize {
        self.messages.len()
    }

    pub fn is_empty(&self) -> bool {
        self.messages.is_empty()
    }

    pub fn push(&mut self, message: Message, ack: Ack) {
        self.messages.push(message);
        self.acks.push(ack);
    }

    /// `other`'s messages after these.
    pub fn append(&mut self, other: Handover) {
        let at = self.messages.len();
        self.messages.extend(other.messages);
        self.acks.extend(other.acks);
        self.arriving.extend(other.arriving.into_iter().map(|(r, a)| (r + at, a)));
        self.awaited |= other.awaited;
    }

    /// Every message's ack settled as `outcome` (nowhere to take them).
    pub fn settle(self, outcome: super::ack::Outcome) {
        self.acks.into_iter().for_each(|a| a.settle(outcome));
    }
}

/// Events made elsewhere (a push request's, an internal one, a replayed row) handed over as a batch.
impl From<Vec<Event>> for Handover {
    fn from(events: Vec<Event>) -> Handover {
        let mut h = Handover::with_capacity(events.len());
        for (r, mut e) in events.into_iter().enumerate() {
            if let Some(a) = e.arriving.take() {
                h.arriving.push((r, a));
            }
            debug_assert!(e.record.is_null() && e.row.is_none(), "handed over before any chain");
            let ack = e.ack.take();
            h.push(e.into_message(), ack);
        }
        h
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::event::ack::Outcome;
    use crate::event::arrivals::Arrivals;

    fn event(id: &str) -> Event {
        Event::alone(
            Message::new(id, Utc::now(), Attributes::new(), Bytes::from(id.to_owned()), Arc::from("s")),
            Ack::none(),
        )
    }

    /// Batches appended keep their order, and each push request's arriving count stays with its
    /// own message; a caller waiting on any of them is waiting on the whole.
    #[test]
    fn append_keeps_order_and_each_arriving_with_its_message() {
        let arrivals = Arrivals::new();
        let (_answering, arriving) = arrivals.begin();
        let mut pushed = event("p");
        pushed.arriving = Some(arriving);
        let mut batch = Handover::from(vec![event("a"), event("b")]);
        assert!(!batch.awaited && batch.arriving.is_empty());
        batch.append(Handover { awaited: true, ..Handover::from(vec![event("c"), pushed]) });
        let ids: Vec<&str> = batch.messages.iter().map(|m| m.message_id.as_str()).collect();
        assert_eq!(ids, ["a", "b", "c", "p"]);
        assert_eq!(batch.acks.len(), 4);
        assert_eq!(batch.arriving.iter().map(|(r, _)| *r).collect::<Vec<_>>(), [3]);
        assert!(batch.awaited);
        assert!(arrivals.can_more_arrive(), "still counted while its message is handed over");
        drop(batch);
        assert!(!arrivals.can_more_arrive());
    }

    /// An event's message taken out: moved when the event is alone, copied when shared.
    #[test]
    fn an_event_gives_back_its_message_and_settles_through_its_batch() {
        let messages = Arc::new(Messages(vec![event("x").into_message(), event("y").into_message()]));
        let shared = Event::of(messages.clone(), 1, Ack::none());
        assert_eq!(shared.message_id, "y");
        assert_eq!(shared.into_message().data, Bytes::from("y"));
        assert_eq!(messages.0.len(), 2, "the others' messages are left alone");

        let (tx, rx) = std::sync::mpsc::channel();
        let mut batch = Handover::default();
        batch.push(messages.0[0].clone(), Ack::new(move |o| tx.send(o).unwrap()));
        batch.settle(Outcome::Failed);
        assert_eq!(rx.recv().unwrap(), Outcome::Failed);
    }
}
