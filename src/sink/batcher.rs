//! Groups items into batches per partition key, closing a batch when it reaches its row count,
//! its byte size or its age, or has gone idle, whichever comes first. Pure logic: time is passed in.

use std::collections::hash_map::{Entry, HashMap};
use std::hash::Hash;
use std::time::Duration;

use tokio::time::Instant;

/// When to close a batch.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    pub max_rows: usize,
    /// A batch never exceeds this, unless one item alone does.
    pub max_bytes: usize,
    pub max_age: Duration,
    /// Close a batch that received nothing for this long. Push requests wait for their batch,
    /// so without it a burst of requests waits the whole `max_age`.
    pub max_idle: Option<Duration>,
}

/// A closed batch, ready to write.
#[derive(Debug)]
pub struct Batch<K, T> {
    pub key: K,
    pub items: Vec<T>,
    pub bytes: usize,
}

struct Open<T> {
    items: Vec<T>,
    bytes: usize,
    opened: Instant,
    last: Instant,
}

/// Room reserved up front in a new batch: its row limit, up to this many. A batch that fills is
/// then never copied to grow (a 10,000-row batch of events is megabytes).
const RESERVED_ROWS: usize = 16 * 1024;

impl<T> Open<T> {
    fn new(limits: &Limits, now: Instant) -> Self {
        Open { items: Vec::with_capacity(limits.max_rows.min(RESERVED_ROWS)), bytes: 0, opened: now, last: now }
    }

    fn into_batch<K>(self, key: K) -> Batch<K, T> {
        Batch { key, items: self.items, bytes: self.bytes }
    }

    fn due_at(&self, limits: &Limits) -> Instant {
        let aged = self.opened + limits.max_age;
        match limits.max_idle {
            Some(idle) => aged.min(self.last + idle),
            None => aged,
        }
    }
}

pub struct Batcher<K, T> {
    limits: Limits,
    /// One entry per partition open, looked up per item: aHash, randomly keyed, is cheaper than SipHash.
    open: HashMap<K, Open<T>, ahash::RandomState>,
}

impl<K: Hash + Eq + Clone, T> Batcher<K, T> {
    pub fn new(limits: Limits) -> Self {
        Batcher { limits, open: HashMap::default() }
    }

    /// Add an item; returns the batches this closed (at most two: the one it did not fit in,
    /// and its own if it filled it).
    pub fn push(&mut self, key: K, item: T, size: usize, now: Instant) -> Vec<Batch<K, T>> {
        let mut closed = Vec::new();
        let limits = self.limits;
        // One search per item; the key is cloned only when a batch closes.
        let mut slot = match self.open.entry(key) {
            Entry::Occupied(slot) => slot,
            Entry::Vacant(slot) => slot.insert_entry(Open::new(&limits, now)),
        };
        let open = slot.get_mut();
        if !open.items.is_empty() && open.bytes + size > limits.max_bytes {
            let full = std::mem::replace(open, Open::new(&limits, now));
            closed.push(full.into_batch(slot.key().clone()));
        }
        let open = slot.get_mut();
        open.last = now;
        open.items.push(item);
        open.bytes += size;
        if open.items.len() >= limits.max_rows || open.bytes >= limits.max_bytes {
            let (key, full) = slot.remove_entry();
            closed.push(full.into_batch(key));
        }
        closed
    }

    /// Close every batch past its age or idle limit.
    pub fn due(&mut self, now: Instant) -> Vec<Batch<K, T>> {
        let expired: Vec<K> =
            self.open.iter().filter(|(_, o)| o.due_at(&self.limits) <= now).map(|(k, _)| k.clone()).collect();
        expired.iter().filter_map(|k| self.close(k)).collect()
    }

    /// When the next open batch falls due.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.open.values().map(|o| o.due_at(&self.limits)).min()
    }

    /// Close everything (shutdown, or a flush request).
    pub fn drain(&mut self) -> Vec<Batch<K, T>> {
        let keys: Vec<K> = self.open.keys().cloned().collect();
        keys.iter().filter_map(|k| self.close(k)).collect()
    }

    pub fn is_empty(&self) -> bool {
        self.open.is_empty()
    }

    /// Items and bytes in all open batches.
    pub fn totals(&self) -> (usize, usize) {
        self.open.values().fold((0, 0), |(n, b), o| (n + o.items.len(), b + o.bytes))
    }

    fn close(&mut self, key: &K) -> Option<Batch<K, T>> {
        self.open.remove(key).map(|o| o.into_batch(key.clone()))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn limits(max_rows: usize, max_bytes: usize) -> Limits {
        Limits { max_rows, max_bytes, max_age: Duration::from_secs(10), max_idle: None }
    }

    #[test]
    fn closes_on_rows_bytes_and_age() {
        let t0 = Instant::now();
        let mut b = Batcher::new(limits(2, 100));
        assert!(b.push("a", 1, 10, t0).is_empty());
        let out = b.push("a", 2, 10, t0);
        assert_eq!(out[0].items, vec![1, 2]);

        assert!(b.push("a", 3, 60, t0).is_empty());
        let out = b.push("a", 4, 60, t0); // would exceed 100 bytes: 3 closes alone
        assert_eq!(out.len(), 1);
        assert_eq!(out[0].items, vec![3]);

        assert_eq!(b.next_deadline(), Some(t0 + Duration::from_secs(10)));
        assert!(b.due(t0 + Duration::from_secs(9)).is_empty());
        let out = b.due(t0 + Duration::from_secs(10));
        assert_eq!(out[0].items, vec![4]);
        assert!(b.is_empty());
    }

    #[test]
    fn closes_an_idle_batch_before_its_age() {
        let t0 = Instant::now();
        let mut b = Batcher::new(Limits { max_idle: Some(Duration::from_millis(200)), ..limits(100, 1000) });
        b.push("a", 1, 1, t0);
        b.push("a", 2, 1, t0 + Duration::from_millis(150));
        assert_eq!(b.next_deadline(), Some(t0 + Duration::from_millis(350)));
        assert!(b.due(t0 + Duration::from_millis(300)).is_empty(), "still receiving");
        assert_eq!(b.due(t0 + Duration::from_millis(350))[0].items, vec![1, 2]);
    }

    proptest! {
        /// Every item comes out exactly once, in order per key, and no batch breaks its limits.
        #[test]
        fn nothing_lost_nothing_twice_no_batch_over_limits(
            max_rows in 1usize..20,
            max_bytes in 1usize..500,
            idle in any::<bool>(),
            ops in prop::collection::vec((0u8..4, 1usize..200, 0u64..5_000), 0..400),
        ) {
            let t0 = Instant::now();
            let max_idle = idle.then_some(Duration::from_millis(700));
            let mut b = Batcher::new(Limits { max_rows, max_bytes, max_age: Duration::from_millis(3_000), max_idle });
            let mut out = Vec::new();
            let mut now = t0;
            for (i, (key, size, advance)) in ops.iter().enumerate() {
                now += Duration::from_millis(*advance);
                out.extend(b.due(now));
                out.extend(b.push(*key, (i, *size), *size, now));
            }
            out.extend(b.drain());
            prop_assert!(b.is_empty());

            let mut seen = vec![0u32; ops.len()];
            for batch in &out {
                prop_assert!(!batch.items.is_empty());
                prop_assert!(batch.items.len() <= max_rows);
                prop_assert!(batch.bytes <= max_bytes || batch.items.len() == 1);
                prop_assert_eq!(batch.bytes, batch.items.iter().map(|(_, s)| s).sum::<usize>());
                for (i, _) in &batch.items {
                    prop_assert_eq!(ops[*i].0, batch.key);
                    seen[*i] += 1;
                }
            }
            prop_assert!(seen.iter().all(|&n| n == 1), "every item exactly once");
            for key in 0u8..4 {
                let order: Vec<usize> = out.iter().filter(|b| b.key == key).flat_map(|b| b.items.iter().map(|(i, _)| *i)).collect();
                prop_assert!(order.windows(2).all(|w| w[0] < w[1]), "order kept per key");
            }
        }
    }
}
