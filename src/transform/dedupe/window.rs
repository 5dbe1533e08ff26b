//! The keys a `dedupe` stage remembers: a queue in the order they were recorded (for expiry),
//! and a table of where in that queue each key's latest recording is.
//!
//! A recording lives once, in the queue, with its key packed into words when short: recording a
//! key allocates nothing, and expiring one reads the queue's front in order and finds its table
//! slot by the hash it kept. Cache misses, not instructions, are what a window of 200,000 keys
//! costs, hence [`Window::prefetch`].

use std::collections::VecDeque;
use std::time::Instant;

use super::table::{Probe, Table};
use crate::event::ack::AckWatch;

/// Keys up to this many bytes are packed into words (Pub/Sub message ids are 16 to 20 digits).
const SHORT: usize = 24;

/// A key as the window holds it: packed into three words when short, else on the heap.
enum Text {
    Short(u8, [u64; 3]),
    Long(Box<str>),
}

/// A key looked up: its text, and its words when short.
pub(super) struct Key<'a> {
    text: &'a str,
    short: Option<[u64; 3]>,
}

impl<'a> Key<'a> {
    pub(super) fn new(text: &'a str) -> Key<'a> {
        Key { text, short: (text.len() <= SHORT).then(|| pack(text.as_bytes())) }
    }

    fn to_text(&self) -> Text {
        match self.short {
            Some(words) => Text::Short(self.text.len() as u8, words),
            None => Text::Long(self.text.into()),
        }
    }
}

impl Text {
    fn is(&self, key: &Key<'_>) -> bool {
        match (self, &key.short) {
            (Text::Short(len, words), Some(k)) => *len as usize == key.text.len() && words == k,
            (Text::Long(text), None) => **text == *key.text,
            _ => false,
        }
    }
}

/// Up to 24 bytes as three little-endian words, zero-padded; built from loads of fixed size, so
/// in registers, without a `memcpy` call for each key.
fn pack(b: &[u8]) -> [u64; 3] {
    let word = |at: usize| u64::from_le_bytes(b[at..at + 8].try_into().expect("eight bytes"));
    let n = b.len();
    let mut words = [0; 3];
    if n >= 8 {
        for (i, w) in words.iter_mut().enumerate().take(n / 8) {
            *w = word(8 * i);
        }
        if !n.is_multiple_of(8) {
            // The last eight bytes, shifted so that only the ones past the whole words remain.
            words[n / 8] = word(n - 8) >> (8 * (8 - n % 8));
        }
    } else if n >= 4 {
        let half = |at: usize| u64::from(u32::from_le_bytes(b[at..at + 4].try_into().expect("four bytes")));
        // Two overlapping halves: where they overlap they hold the same bytes.
        words[0] = half(0) | half(n - 4) << (8 * (n - 4));
    } else {
        for (i, &byte) in b.iter().enumerate() {
            words[0] |= u64::from(byte) << (8 * i);
        }
    }
    words
}

/// One recording of a key.
pub(super) struct Seen {
    hash: u64,
    key: Text,
    pub(super) at: Instant,
    /// The first copy's acknowledgement; `None` when it was untracked (taken as delivered).
    pub(super) watch: Option<AckWatch>,
}

/// Keys with the latest recording of each. Hashed with aHash, randomly keyed, so keys crafted to
/// collide cannot slow it down.
pub(super) struct Window {
    /// Recordings, oldest first; a key recorded again leaves its older recording here, no
    /// longer in `table`, until it expires. Fewer than 2^32, so the table's 32 bits of a
    /// sequence number tell recordings apart.
    queue: VecDeque<Seen>,
    /// The sequence number of `queue[0]`; recordings are numbered from 0.
    first: u64,
    table: Table,
    hasher: ahash::RandomState,
}

impl Window {
    pub(super) fn new() -> Window {
        Window { queue: VecDeque::new(), first: 0, table: Table::new(), hasher: ahash::RandomState::new() }
    }

    /// How many keys are remembered.
    pub(super) fn len(&self) -> usize {
        self.table.len()
    }

    /// Recordings queued for expiry (at least [`Window::len`]).
    #[cfg(test)]
    pub(super) fn queued(&self) -> usize {
        self.queue.len()
    }

    pub(super) fn hash(&self, key: &Key<'_>) -> u64 {
        match key.short {
            Some(words) => self.hasher.hash_one((key.text.len(), words)),
            None => self.hasher.hash_one(key.text),
        }
    }

    /// Fetch ahead what looking up the key with `hash` will read, and what expiring the
    /// recording `ahead` places from the oldest will.
    pub(super) fn prefetch(&self, hash: u64, ahead: usize) {
        self.table.prefetch(hash);
        if let Some(later) = self.queue.get(ahead) {
            self.table.prefetch(later.hash);
        }
    }

    /// The recording that table sequence number `seq` (its low half) names.
    fn at(&self, seq: u32) -> &Seen {
        &self.queue[seq.wrapping_sub(self.first as u32) as usize]
    }

    fn probe(&self, hash: u64, key: &Key<'_>) -> Probe {
        self.table.probe(hash, |seq| {
            let seen = self.at(seq);
            seen.hash == hash && seen.key.is(key)
        })
    }

    /// The latest recording of `key` (whose hash is `hash`), if any, and where the table has
    /// it or would put it (for [`Window::record`]).
    pub(super) fn find(&self, hash: u64, key: &Key<'_>) -> (Option<&Seen>, Probe) {
        let probe = self.probe(hash, key);
        match probe {
            Probe::Found(_, seq) => (Some(self.at(seq)), probe),
            Probe::Vacant(_) => (None, probe),
        }
    }

    /// Record `key` (whose hash is `hash`) as seen `at`, in place of any earlier recording;
    /// `probe` is what [`Window::find`] gave for it, the window unchanged since.
    pub(super) fn record(&mut self, probe: Probe, hash: u64, key: &Key<'_>, at: Instant, watch: Option<AckWatch>) {
        let seq = (self.first + self.queue.len() as u64) as u32;
        self.queue.push_back(Seen { hash, key: key.to_text(), at, watch });
        match probe {
            Probe::Found(slot, _) => self.table.set(slot, seq),
            Probe::Vacant(slot) => {
                let (queue, first) = (&self.queue, self.first as u32);
                self.table.insert(slot, hash, seq, |s| queue[s.wrapping_sub(first) as usize].hash);
            }
        }
    }

    /// Forget the oldest recordings while `done` says so of the oldest (given how many keys are
    /// remembered), and while the queue is at its limit.
    pub(super) fn expire(&mut self, mut done: impl FnMut(&Seen, usize) -> bool) {
        while let Some(oldest) = self.queue.front() {
            if !done(oldest, self.table.len()) && self.queue.len() < u32::MAX as usize {
                break;
            }
            let seq = self.first as u32;
            // Not found when the key was recorded again since: the table holds the later one.
            if let Probe::Found(slot, _) = self.table.probe(oldest.hash, |s| s == seq) {
                self.table.remove(slot);
            }
            self.queue.pop_front();
            self.first += 1;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    fn find<'w>(w: &'w Window, key: &str) -> Option<&'w Seen> {
        let key = Key::new(key);
        w.find(w.hash(&key), &key).0
    }

    fn put(w: &mut Window, key: &str, at: Instant) {
        let key = Key::new(key);
        let hash = w.hash(&key);
        let (_, probe) = w.find(hash, &key);
        w.record(probe, hash, &key, at, None);
    }

    #[test]
    fn short_keys_pack_byte_for_byte() {
        let text: Vec<u8> = (1..=SHORT as u8).map(|b| b.wrapping_mul(37)).collect();
        for n in 0..=SHORT {
            let mut padded = [0u8; 24];
            padded[..n].copy_from_slice(&text[..n]);
            let want: Vec<u64> = padded.chunks(8).map(|c| u64::from_le_bytes(c.try_into().unwrap())).collect();
            assert_eq!(pack(&text[..n]).to_vec(), want, "{n} bytes");
        }
    }

    #[test]
    fn keys_short_and_long_are_found_and_expire_oldest_first() {
        let mut w = Window::new();
        let t0 = Instant::now();
        let long = "k".repeat(SHORT + 1);
        let keys = ["", "a", "a\0", "012345678901234567890123", long.as_str()];
        for (i, k) in keys.iter().enumerate() {
            assert!(find(&w, k).is_none());
            put(&mut w, k, t0 + Duration::from_secs(i as u64));
        }
        assert_eq!(w.len(), 5);
        for (i, k) in keys.iter().enumerate() {
            assert_eq!(find(&w, k).unwrap().at, t0 + Duration::from_secs(i as u64), "{k:?}");
        }
        assert!(find(&w, "b").is_none());
        assert!(find(&w, &long[1..]).is_none(), "a shorter key of the same bytes is another key");
        assert!(find(&w, "01234567890123456789012").is_none());

        // Recorded again: the later recording is the one found, and the older one's expiry
        // leaves it in place.
        put(&mut w, "a", t0 + Duration::from_secs(9));
        assert_eq!((w.len(), w.queued()), (5, 6));
        w.expire(|s, _| s.at <= t0 + Duration::from_secs(1));
        assert_eq!((w.len(), w.queued()), (4, 4));
        assert!(find(&w, "").is_none());
        assert_eq!(find(&w, "a").unwrap().at, t0 + Duration::from_secs(9));

        // By count: the oldest go first.
        w.expire(|_, len| len > 1);
        assert_eq!((w.len(), w.queued()), (1, 1));
        assert!(find(&w, "a").is_some());
    }

    /// Many keys: each is found until it expires, then never.
    #[test]
    fn a_large_window_finds_each_key_until_it_expires() {
        let mut w = Window::new();
        let t0 = Instant::now();
        let key = |i: u64| format!("{}", 18_000_000_000_000_000 + i * 7919);
        for i in 0..50_000u64 {
            put(&mut w, &key(i), t0);
        }
        w.expire(|_, len| len > 30_000);
        for i in 0..50_000u64 {
            assert_eq!(find(&w, &key(i)).is_some(), i >= 20_000, "{i}");
        }
    }
}
