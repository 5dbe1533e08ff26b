//! Where each key's latest recording is: open addressing with linear probing over one array of
//! words. A lookup reads one cache line in the common case, and that line can be fetched ahead
//! ([`Table::prefetch`]): a batch does so for the rows to come, so their misses overlap instead
//! of following one another. Removal shifts the entries after it back, so there are no
//! tombstones to clean up.

/// A free slot. An occupied one holds the high half of its key's hash (never zero: see
/// [`high`]), which gives its home slot and filters the keys compared, above the low half of
/// its recording's sequence number.
const EMPTY: u64 = 0;

/// The slots of a new table. It doubles when more than half are used, so that linear probing
/// stays at a probe or two.
const MIN_SLOTS: usize = 16;

pub(super) struct Table {
    slots: Vec<u64>,
    len: usize,
}

/// The half of `hash` a slot keeps: its home and its filter.
fn high(hash: u64) -> u64 {
    (hash >> 32).max(1)
}

/// What a probe for a key found.
#[derive(Clone, Copy)]
pub(super) enum Probe {
    /// The key's slot, and the sequence number (low half) there.
    Found(usize, u32),
    /// The free slot where the key would go.
    Vacant(usize),
}

impl Table {
    pub(super) fn new() -> Table {
        Table { slots: vec![EMPTY; MIN_SLOTS], len: 0 }
    }

    pub(super) fn len(&self) -> usize {
        self.len
    }

    fn mask(&self) -> usize {
        self.slots.len() - 1
    }

    fn home(&self, high: u64) -> usize {
        high as usize & self.mask()
    }

    /// Ask for the line where `hash`'s probe starts, ahead of [`Table::probe`].
    pub(super) fn prefetch(&self, hash: u64) {
        #[cfg(target_arch = "x86_64")]
        {
            use std::arch::x86_64::{_mm_prefetch, _MM_HINT_T0};
            let slot: *const u64 = &self.slots[self.home(high(hash))];
            // SAFETY: a prefetch is a hint that reads nothing; SSE is part of every x86_64 CPU.
            unsafe { _mm_prefetch::<_MM_HINT_T0>(slot.cast()) };
        }
        #[cfg(not(target_arch = "x86_64"))]
        let _ = hash;
    }

    /// The slot of the key with `hash` for which `is(sequence)` holds, or where it would go.
    pub(super) fn probe(&self, hash: u64, mut is: impl FnMut(u32) -> bool) -> Probe {
        let high = high(hash);
        let mut i = self.home(high);
        loop {
            let slot = self.slots[i];
            if slot == EMPTY {
                return Probe::Vacant(i);
            }
            if slot >> 32 == high && is(slot as u32) {
                return Probe::Found(i, slot as u32);
            }
            i = (i + 1) & self.mask();
        }
    }

    /// Point a found slot at a later recording.
    pub(super) fn set(&mut self, slot: usize, seq: u32) {
        self.slots[slot] = self.slots[slot] >> 32 << 32 | u64::from(seq);
    }

    /// Put a key in the vacant slot its probe found, and say whether the table then grew
    /// (which moves slots: probe again before using one).
    pub(super) fn insert(&mut self, vacant: usize, hash: u64, seq: u32, rehash: impl Fn(u32) -> u64) -> bool {
        self.slots[vacant] = high(hash) << 32 | u64::from(seq);
        self.len += 1;
        if self.len * 2 <= self.slots.len() {
            return false;
        }
        let grown = vec![EMPTY; self.slots.len() * 2];
        let old = std::mem::replace(&mut self.slots, grown);
        for slot in old.into_iter().filter(|&s| s != EMPTY) {
            let high = slot >> 32;
            debug_assert_eq!(high, self::high(rehash(slot as u32)), "a slot keeps its key's hash");
            let mut i = self.home(high);
            while self.slots[i] != EMPTY {
                i = (i + 1) & self.mask();
            }
            self.slots[i] = slot;
        }
        true
    }

    /// Free `slot`, moving back the entries after it that their probes would no longer reach.
    pub(super) fn remove(&mut self, slot: usize) {
        let mask = self.mask();
        let mut hole = slot;
        let mut i = slot;
        loop {
            i = (i + 1) & mask;
            let entry = self.slots[i];
            if entry == EMPTY {
                break;
            }
            // An entry may fill the hole when its home is not within (hole, i] going round.
            let home = self.home(entry >> 32);
            if (i.wrapping_sub(home) & mask) >= (i.wrapping_sub(hole) & mask) {
                self.slots[hole] = entry;
                hole = i;
            }
        }
        self.slots[hole] = EMPTY;
        self.len -= 1;
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Keys 0.. with hashes chosen to collide in a few homes: every entry stays reachable
    /// through inserts, growth and removals in any order.
    #[test]
    fn entries_stay_reachable_through_growth_and_removal() {
        // Eight homes at most, and hashes that share their high half within a home.
        let hash = |k: u32| (u64::from(k % 8 + 1) << 32) | u64::from(k);
        let mut t = Table::new();
        let mut live = std::collections::BTreeSet::new();
        let find = |t: &Table, k: u32| match t.probe(hash(k), |s| s == k) {
            Probe::Found(slot, s) => Some((slot, s)),
            Probe::Vacant(_) => None,
        };
        for k in 0..200 {
            let Probe::Vacant(at) = t.probe(hash(k), |s| s == k) else { panic!("{k} is new") };
            t.insert(at, hash(k), k, hash);
            live.insert(k);
        }
        // Remove in an order that punches holes all over the clusters.
        for k in (0..200).filter(|k| k % 3 != 1) {
            let (slot, _) = find(&t, k).expect("present");
            t.remove(slot);
            live.remove(&k);
            for &l in &live {
                assert!(find(&t, l).is_some(), "{l} lost after removing {k}");
            }
            assert!(find(&t, k).is_none());
        }
        assert_eq!(t.len(), live.len());
        let (slot, _) = find(&t, 7).unwrap();
        t.set(slot, 7);
        assert_eq!(find(&t, 7).map(|(_, s)| s), Some(7));
    }

    #[test]
    fn removal_wraps_round_the_end() {
        let mut t = Table::new();
        let last = (MIN_SLOTS - 1) as u64;
        // Three keys whose home is the last slot: the second and third wrap to slots 0 and 1.
        for k in 0..3u32 {
            let h = last << 32 | u64::from(k);
            let Probe::Vacant(at) = t.probe(h, |s| s == k) else { panic!() };
            t.insert(at, h, k, |_| h);
        }
        let (first, _) = match t.probe(last << 32, |s| s == 0) {
            Probe::Found(slot, s) => (slot, s),
            Probe::Vacant(_) => panic!(),
        };
        assert_eq!(first, MIN_SLOTS - 1);
        t.remove(first);
        for k in 1..3u32 {
            assert!(matches!(t.probe(last << 32 | u64::from(k), |s| s == k), Probe::Found(..)), "{k}");
        }
    }
}
