//! The protobuf messages of Pub/Sub's `StreamingPull`, `Acknowledge` and `ModifyAckDeadline`,
//! read and written by hand: a response is walked once, straight into what sluice keeps of each
//! message, with none of the generated types and conversions in between.
//!
//! Field numbers are those of `google/pubsub/v1/pubsub.proto`. Unknown fields are skipped, as
//! protobuf requires, so fields Pub/Sub adds later do not break the reader.

use std::sync::Arc;

use bytes::{BufMut, Bytes};
use chrono::{DateTime, Utc};

use crate::event::Attributes;

/// One message of a `StreamingPullResponse`, as the source hands it on.
#[derive(Debug, PartialEq)]
pub struct Received {
    /// Opaque to sluice, only sent back: kept as bytes.
    pub ack_id: Bytes,
    pub message_id: String,
    pub data: Bytes,
    pub attributes: Attributes,
    pub publish_time: Option<DateTime<Utc>>,
    /// Pub/Sub's count of deliveries, 0 when the subscription has no dead-letter policy.
    pub delivery_attempt: i32,
}

/// A response that is not the protobuf it should be.
#[derive(Debug, thiserror::Error, PartialEq)]
#[error("malformed StreamingPullResponse: {0}")]
pub struct Malformed(&'static str);

const VARINT: u8 = 0;
const FIXED64: u8 = 1;
const LEN: u8 = 2;
const FIXED32: u8 = 5;

/// A cursor over one message's bytes.
struct Reader<'a> {
    buf: &'a [u8],
    at: usize,
}

impl<'a> Reader<'a> {
    fn new(buf: &'a [u8]) -> Self {
        Reader { buf, at: 0 }
    }

    /// A varint; one byte (field keys, short lengths, most of a frame's) without the loop. The
    /// reader's small steps are inlined: a frame is mostly keys and lengths, and a call each cost
    /// more than reading them.
    #[inline(always)]
    fn varint(&mut self) -> Result<u64, Malformed> {
        match self.buf.get(self.at) {
            Some(&byte) if byte < 0x80 => {
                self.at += 1;
                Ok(u64::from(byte))
            }
            _ => self.long_varint(),
        }
    }

    fn long_varint(&mut self) -> Result<u64, Malformed> {
        let mut value = 0u64;
        for shift in (0..64).step_by(7) {
            let byte = *self.buf.get(self.at).ok_or(Malformed("truncated varint"))?;
            self.at += 1;
            value |= u64::from(byte & 0x7f) << shift;
            if byte < 0x80 {
                return Ok(value);
            }
        }
        Err(Malformed("varint longer than 10 bytes"))
    }

    /// The next field's number and wire type, or `None` at the end.
    #[inline(always)]
    fn key(&mut self) -> Result<Option<(u32, u8)>, Malformed> {
        if self.at == self.buf.len() {
            return Ok(None);
        }
        let key = self.varint()?;
        let field = u32::try_from(key >> 3).map_err(|_| Malformed("field number out of range"))?;
        Ok(Some((field, (key & 7) as u8)))
    }

    /// The span of a length-delimited field's bytes.
    #[inline(always)]
    fn span(&mut self) -> Result<std::ops::Range<usize>, Malformed> {
        let len = usize::try_from(self.varint()?).map_err(|_| Malformed("length out of range"))?;
        let end = self.at.checked_add(len).filter(|&e| e <= self.buf.len()).ok_or(Malformed("truncated field"))?;
        let span = self.at..end;
        self.at = end;
        Ok(span)
    }

    /// A length-delimited field's bytes; `wire` is the type the field came with.
    #[inline(always)]
    fn bytes(&mut self, wire: u8) -> Result<&'a [u8], Malformed> {
        Self::expect(wire, LEN)?;
        let span = self.span()?;
        Ok(&self.buf[span])
    }

    fn string(&mut self, wire: u8) -> Result<String, Malformed> {
        let bytes = self.bytes(wire)?;
        utf8(bytes).map(str::to_owned)
    }

    fn skip(&mut self, wire: u8) -> Result<(), Malformed> {
        let width = match wire {
            VARINT => return self.varint().map(drop),
            LEN => return self.span().map(drop),
            FIXED64 => 8,
            FIXED32 => 4,
            _ => return Err(Malformed("unknown wire type")),
        };
        self.at = self.at.checked_add(width).filter(|&e| e <= self.buf.len()).ok_or(Malformed("truncated field"))?;
        Ok(())
    }

    /// A varint field's value; `wire` is the type the field came with.
    fn int(&mut self, wire: u8) -> Result<u64, Malformed> {
        Self::expect(wire, VARINT)?;
        self.varint()
    }

    /// Checks the wire type of a known field.
    fn expect(wire: u8, want: u8) -> Result<(), Malformed> {
        if wire == want {
            Ok(())
        } else {
            Err(Malformed("known field with the wrong wire type"))
        }
    }
}

/// The messages of one `StreamingPullResponse` frame; the other fields (confirmations,
/// subscription properties) are for exactly-once and ordered delivery, which sluice does not use.
pub fn decode_response(frame: &[u8], out: &mut Vec<Received>) -> Result<(), Malformed> {
    let mut r = Reader::new(frame);
    let mut sets = AttributeSets::default();
    while let Some((field, wire)) = r.key()? {
        if field == 1 {
            out.push(received_message(r.bytes(wire)?, &mut sets)?);
        } else {
            r.skip(wire)?;
        }
    }
    Ok(())
}

/// `ReceivedMessage { ack_id = 1, message = 2, delivery_attempt = 3 }`.
fn received_message<'a>(buf: &'a [u8], sets: &mut AttributeSets<'a>) -> Result<Received, Malformed> {
    let mut r = Reader::new(buf);
    let mut received = Received {
        ack_id: Bytes::new(),
        message_id: String::new(),
        data: Bytes::new(),
        attributes: Attributes::new(),
        publish_time: None,
        delivery_attempt: 0,
    };
    while let Some((field, wire)) = r.key()? {
        match field {
            1 => received.ack_id = Bytes::copy_from_slice(r.bytes(wire)?),
            2 => pubsub_message(r.bytes(wire)?, &mut received, sets)?,
            3 => received.delivery_attempt = r.int(wire)? as i32,
            _ => r.skip(wire)?,
        }
    }
    if received.ack_id.is_empty() {
        return Err(Malformed("a received message without an ack id"));
    }
    Ok(received)
}

/// `PubsubMessage { data = 1, attributes = 2, message_id = 3, publish_time = 4, ordering_key = 5 }`.
fn pubsub_message<'a>(buf: &'a [u8], into: &mut Received, sets: &mut AttributeSets<'a>) -> Result<(), Malformed> {
    let mut r = Reader::new(buf);
    sets.entries.clear();
    while let Some((field, wire)) = r.key()? {
        match field {
            1 => {
                // Copied, not sliced from the frame: a held event must not pin its whole frame.
                into.data = Bytes::copy_from_slice(r.bytes(wire)?);
            }
            2 => sets.entries.push(r.bytes(wire)?),
            3 => into.message_id = r.string(wire)?,
            4 => into.publish_time = timestamp(r.bytes(wire)?)?,
            _ => r.skip(wire)?,
        }
    }
    into.attributes = sets.attributes()?;
    Ok(())
}

/// The attributes of one response's messages. Most messages carry the same set as the one
/// before: when a message's entries are the same bytes, it shares that message's attributes,
/// without reading them again.
#[derive(Default)]
struct AttributeSets<'a> {
    texts: Texts,
    /// The current message's map entries, as read.
    entries: Vec<&'a [u8]>,
    /// The message before's entries, and what they were read as.
    last_entries: Vec<&'a [u8]>,
    last: Attributes,
}

impl AttributeSets<'_> {
    /// The current message's attributes, from its `entries`.
    fn attributes(&mut self) -> Result<Attributes, Malformed> {
        if self.entries.is_empty() {
            return Ok(Attributes::new());
        }
        if self.entries != self.last_entries {
            let mut attributes = Attributes::new();
            for entry in &self.entries {
                let (key, value) = map_entry(entry)?;
                attributes.insert(self.texts.get(key)?, self.texts.get(value)?);
            }
            self.last = attributes;
            std::mem::swap(&mut self.entries, &mut self.last_entries);
        }
        Ok(self.last.clone())
    }
}

/// A `map<string, string>` entry: `{ key = 1, value = 2 }`, either may be absent (empty).
fn map_entry(buf: &[u8]) -> Result<(&[u8], &[u8]), Malformed> {
    let mut r = Reader::new(buf);
    let (mut key, mut value): (&[u8], &[u8]) = (&[], &[]);
    while let Some((field, wire)) = r.key()? {
        match field {
            1 => key = r.bytes(wire)?,
            2 => value = r.bytes(wire)?,
            _ => r.skip(wire)?,
        }
    }
    Ok((key, value))
}

/// The attribute texts one response's messages share: most carry the same few keys and values,
/// each then read and checked once and shared, not copied into every message.
#[derive(Default)]
struct Texts(Vec<Arc<str>>);

impl Texts {
    /// Texts kept per response; a text past them is still read, just not shared.
    const KEPT: usize = 32;

    fn get(&mut self, bytes: &[u8]) -> Result<Arc<str>, Malformed> {
        if let Some(text) = self.0.iter().find(|t| t.as_bytes() == bytes) {
            return Ok(text.clone());
        }
        let text: Arc<str> = utf8(bytes)?.into();
        if self.0.len() < Self::KEPT {
            self.0.push(text.clone());
        }
        Ok(text)
    }
}

/// A string field's bytes as text (protobuf strings are UTF-8).
fn utf8(bytes: &[u8]) -> Result<&str, Malformed> {
    std::str::from_utf8(bytes).map_err(|_| Malformed("string field is not UTF-8"))
}

/// `google.protobuf.Timestamp { seconds = 1, nanos = 2 }`; `None` when out of chrono's range.
fn timestamp(buf: &[u8]) -> Result<Option<DateTime<Utc>>, Malformed> {
    let mut r = Reader::new(buf);
    let (mut seconds, mut nanos) = (0i64, 0i32);
    while let Some((field, wire)) = r.key()? {
        match field {
            1 => seconds = r.int(wire)? as i64,
            2 => nanos = r.int(wire)? as i32,
            _ => r.skip(wire)?,
        }
    }
    Ok(DateTime::from_timestamp(seconds, nanos.max(0) as u32))
}

fn put_key(out: &mut Vec<u8>, field: u32, wire: u8) {
    put_varint(out, u64::from(field) << 3 | u64::from(wire));
}

fn put_varint(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.put_u8((v as u8) | 0x80);
        v >>= 7;
    }
    out.put_u8(v as u8);
}

fn put_bytes(out: &mut Vec<u8>, field: u32, bytes: &[u8]) {
    put_key(out, field, LEN);
    put_varint(out, bytes.len() as u64);
    out.put_slice(bytes);
}

fn put_int(out: &mut Vec<u8>, field: u32, v: i64) {
    if v != 0 {
        put_key(out, field, VARINT);
        put_varint(out, v as u64);
    }
}

/// What opens a stream: `StreamingPullRequest { subscription = 1, stream_ack_deadline_seconds = 5,
/// client_id = 6, max_outstanding_messages = 7, max_outstanding_bytes = 8 }`.
pub struct Open<'a> {
    pub subscription: &'a str,
    pub ack_deadline_seconds: i32,
    /// The same for every stream of this process, so Pub/Sub carries flow control over a reopen.
    pub client_id: &'a str,
    pub max_messages: i64,
    pub max_bytes: i64,
}

impl Open<'_> {
    pub fn encode(&self) -> Bytes {
        let mut out = Vec::with_capacity(self.subscription.len() + self.client_id.len() + 32);
        put_bytes(&mut out, 1, self.subscription.as_bytes());
        put_int(&mut out, 5, i64::from(self.ack_deadline_seconds));
        put_bytes(&mut out, 6, self.client_id.as_bytes());
        put_int(&mut out, 7, self.max_messages);
        put_int(&mut out, 8, self.max_bytes);
        out.into()
    }
}

/// `AcknowledgeRequest { subscription = 1, ack_ids = 2 }`.
pub fn acknowledge(subscription: &str, ack_ids: &[Bytes]) -> Bytes {
    let mut out = Vec::with_capacity(subscription.len() + ack_ids.iter().map(|a| a.len() + 3).sum::<usize>() + 8);
    put_bytes(&mut out, 1, subscription.as_bytes());
    for id in ack_ids {
        put_bytes(&mut out, 2, id);
    }
    out.into()
}

/// `ModifyAckDeadlineRequest { subscription = 1, ack_deadline_seconds = 3, ack_ids = 4 }`; 0 seconds
/// is a nack: Pub/Sub redelivers at once.
pub fn modify_ack_deadline(subscription: &str, ack_ids: &[Bytes], seconds: i32) -> Bytes {
    let mut out = Vec::with_capacity(subscription.len() + ack_ids.iter().map(|a| a.len() + 3).sum::<usize>() + 16);
    put_bytes(&mut out, 1, subscription.as_bytes());
    put_int(&mut out, 3, i64::from(seconds));
    for id in ack_ids {
        put_bytes(&mut out, 4, id);
    }
    out.into()
}

#[cfg(test)]
mod tests;
