//! Popularity: how often each key is read, in bounded memory.
//!
//! The background refresher wants the keys read most often lately, and
//! activation the entities read lately; neither may keep a map of every key
//! ever read, whose size a game's players would decide. Two bounded parts
//! answer them, in the manner of TinyLFU (Einziger, Friedman, Manes):
//!
//! - [`FrequencySketch`]: a count-min sketch of a fixed number of
//!   counters. Its estimate of a key's reads is never below the true count
//!   (collisions only add), and after every *sample* of additions it ages:
//!   each counter is halved, so that what was popular long ago fades.
//! - [`Popularity`]: the sketch plus a bounded set of candidates, the keys
//!   whose estimates were the highest when they were last read. A key read
//!   while the set is full enters only by beating the least popular
//!   candidate, which leaves.
//!
//! Pure: the caller hashes nothing, locks nothing and keeps the time.

use std::collections::HashMap;
use std::hash::{Hash, Hasher};

/// The rows of the sketch: each key has one counter per row, and its
/// estimate is the smallest of them.
const DEPTH: usize = 4;

/// The fewest counters per row.
const MIN_WIDTH: usize = 16;

/// A count-min sketch of read counts that halves itself after each sample.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FrequencySketch {
    /// `DEPTH` rows of `width` counters, row after row.
    counters: Vec<u32>,
    /// `width - 1`: the width is a power of two.
    mask: usize,
    /// Additions since the last aging.
    additions: u64,
    /// Additions between two agings.
    sample: u64,
}

impl FrequencySketch {
    /// A sketch of `width` counters per row (rounded up to a power of two,
    /// at least 16), which ages after every `sample` additions (at least
    /// one). A width of about the number of keys that matter and a sample
    /// of ten times the width are TinyLFU's choice.
    pub fn new(width: usize, sample: u64) -> Self {
        let width = width.clamp(MIN_WIDTH, 1 << 24).next_power_of_two();
        Self {
            counters: vec![0; width * DEPTH],
            mask: width - 1,
            additions: 0,
            sample: sample.max(1),
        }
    }

    /// Counts one read of `key` and answers its new estimate. Only the
    /// row counters that hold the smallest value are raised (the
    /// conservative update), which keeps every estimate at or above the
    /// true count and lowers the error the others' keys add.
    pub fn record<K: Hash + ?Sized>(&mut self, key: &K) -> u32 {
        self.record_aging(key).0
    }

    /// [`record`](Self::record), also saying whether the sketch aged.
    fn record_aging<K: Hash + ?Sized>(&mut self, key: &K) -> (u32, bool) {
        let slots = self.slots(hash(key));
        let low = self.min_of(&slots);
        let new = low.saturating_add(1);
        for &slot in &slots {
            if self.counters[slot] < new {
                self.counters[slot] = new;
            }
        }
        self.additions += 1;
        if self.additions >= self.sample {
            self.age();
            return (self.min_of(&slots), true);
        }
        (new, false)
    }

    /// How many reads of `key` the sketch has counted, aged: never less
    /// than the true count since the last aging.
    pub fn estimate<K: Hash + ?Sized>(&self, key: &K) -> u32 {
        self.min_of(&self.slots(hash(key)))
    }

    /// Halves every counter: what happened before counts half as much.
    pub fn age(&mut self) {
        for c in &mut self.counters {
            *c /= 2;
        }
        self.additions /= 2;
    }

    /// The bytes the counters take: fixed at construction, whatever the
    /// number of keys counted.
    pub fn memory_bytes(&self) -> usize {
        self.counters.len() * std::mem::size_of::<u32>()
    }

    fn slots(&self, h: u64) -> [usize; DEPTH] {
        // Double hashing: row i's index is h1 + i·h2, from one 64-bit hash.
        let h1 = h as usize;
        let h2 = (mix(h) as usize) | 1;
        let width = self.mask + 1;
        std::array::from_fn(|i| i * width + (h1.wrapping_add(i.wrapping_mul(h2)) & self.mask))
    }

    fn min_of(&self, slots: &[usize; DEPTH]) -> u32 {
        slots.iter().map(|&s| self.counters[s]).min().unwrap_or(0)
    }
}

/// A key's hash on the standard library's hasher with its fixed keys, so
/// that estimates do not depend on a random seed.
fn hash<K: Hash + ?Sized>(key: &K) -> u64 {
    let mut h = std::hash::DefaultHasher::new();
    key.hash(&mut h);
    h.finish()
}

/// splitmix64's finalizer: a second, independent-looking hash.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// What the candidate set knows of one key.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Candidate {
    /// Its estimate when it was last read (aged with the sketch).
    pub estimate: u32,
    /// Reads since it was last marked refreshed.
    pub reads: u32,
}

/// The sketch and a bounded set of the most popular keys read lately.
#[derive(Debug, Clone)]
pub struct Popularity<K> {
    sketch: FrequencySketch,
    capacity: usize,
    candidates: HashMap<K, Candidate>,
    /// The least popular candidate, as last computed: a key that does not
    /// beat it stays out without a scan.
    floor: Option<(K, u32)>,
}

impl<K: Hash + Eq + Clone> Popularity<K> {
    /// Counts reads in a sketch of `width` counters per row aging every
    /// `sample` reads, and keeps up to `capacity` candidates.
    pub fn new(width: usize, sample: u64, capacity: usize) -> Self {
        Self {
            sketch: FrequencySketch::new(width, sample),
            capacity,
            candidates: HashMap::with_capacity(capacity),
            floor: None,
        }
    }

    /// Counts one read of `key`; answers its estimate.
    pub fn record(&mut self, key: &K) -> u32 {
        let (estimate, aged) = self.sketch.record_aging(key);
        if aged {
            // The sketch aged: the candidates' estimates age with it.
            for c in self.candidates.values_mut() {
                c.estimate /= 2;
            }
            self.floor = None;
        }
        if let Some(c) = self.candidates.get_mut(key) {
            c.estimate = estimate;
            c.reads = c.reads.saturating_add(1);
            if self.floor.as_ref().is_some_and(|(low, _)| low == key) {
                // The floor rose: find it again when it is next needed.
                self.floor = None;
            }
            return estimate;
        }
        if self.capacity == 0 {
            return estimate;
        }
        if self.candidates.len() >= self.capacity {
            if self.floor.is_none() {
                self.floor = self.lowest();
            }
            match &self.floor {
                Some((low, e)) if estimate > *e => {
                    let low = low.clone();
                    self.candidates.remove(&low);
                    self.floor = None;
                }
                _ => return estimate,
            }
        }
        self.candidates
            .insert(key.clone(), Candidate { estimate, reads: 1 });
        estimate
    }

    /// The sketch's estimate of `key`'s reads.
    pub fn estimate(&self, key: &K) -> u32 {
        self.sketch.estimate(key)
    }

    /// The candidates with at least `min_estimate`, most popular first.
    pub fn top(&self, min_estimate: u32) -> Vec<(K, Candidate)> {
        let mut top: Vec<_> = self
            .candidates
            .iter()
            .filter(|(_, c)| c.estimate >= min_estimate)
            .map(|(k, c)| (k.clone(), *c))
            .collect();
        top.sort_by_key(|(_, c)| std::cmp::Reverse(c.estimate));
        top
    }

    /// Marks `key` refreshed: its reads start again from zero.
    pub fn refreshed(&mut self, key: &K) {
        if let Some(c) = self.candidates.get_mut(key) {
            c.reads = 0;
        }
    }

    /// Drops the candidates `drop` picks (a deactivated world's keys). The
    /// sketch keeps its counts: they fade with aging.
    pub fn forget(&mut self, mut drop: impl FnMut(&K) -> bool) {
        self.candidates.retain(|k, _| !drop(k));
        self.floor = None;
    }

    /// How many candidates are kept.
    pub fn len(&self) -> usize {
        self.candidates.len()
    }

    /// Whether no key is a candidate.
    pub fn is_empty(&self) -> bool {
        self.candidates.is_empty()
    }

    /// The most candidates kept.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// The sketch.
    pub fn sketch(&self) -> &FrequencySketch {
        &self.sketch
    }

    fn lowest(&self) -> Option<(K, u32)> {
        self.candidates
            .iter()
            .min_by_key(|(_, c)| c.estimate)
            .map(|(k, c)| (k.clone(), c.estimate))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn memory_is_bounded_whatever_the_keys(
            width in 1usize..2048,
            capacity in 0usize..64,
            keys in proptest::collection::vec(any::<u64>(), 0..3000),
        ) {
            let mut p = Popularity::new(width, 10 * width as u64, capacity);
            let bytes = p.sketch().memory_bytes();
            for k in &keys {
                p.record(k);
                prop_assert!(p.len() <= capacity);
            }
            prop_assert_eq!(p.sketch().memory_bytes(), bytes);
        }

        #[test]
        fn estimates_are_never_below_the_true_count_before_aging(
            width in 16usize..256,
            reads in proptest::collection::vec(0u16..500, 1..2000),
        ) {
            // A sample larger than the reads: no aging happens.
            let mut sketch = FrequencySketch::new(width, u64::MAX);
            let mut truth: HashMap<u16, u32> = HashMap::new();
            for k in &reads {
                let estimate = sketch.record(k);
                let count = truth.entry(*k).or_default();
                *count += 1;
                prop_assert!(estimate >= *count);
            }
            for (k, count) in &truth {
                prop_assert!(sketch.estimate(k) >= *count);
            }
        }

        #[test]
        fn aging_halves_every_estimate(
            reads in proptest::collection::vec(0u16..100, 1..1000),
        ) {
            let mut sketch = FrequencySketch::new(64, u64::MAX);
            for k in &reads {
                sketch.record(k);
            }
            let before: Vec<u32> = (0u16..100).map(|k| sketch.estimate(&k)).collect();
            sketch.age();
            for (k, b) in (0u16..100).zip(before) {
                prop_assert_eq!(sketch.estimate(&k), b / 2);
            }
        }

        #[test]
        fn the_sketch_ages_by_itself_after_each_sample(
            sample in 1u64..200,
            key in any::<u32>(),
        ) {
            let mut sketch = FrequencySketch::new(16, sample);
            for _ in 0..sample - 1 {
                sketch.record(&key);
            }
            prop_assert_eq!(u64::from(sketch.estimate(&key)), sample - 1);
            let aged = sketch.record(&key);
            prop_assert_eq!(u64::from(aged), sample / 2);
        }
    }

    #[test]
    fn a_popular_key_displaces_an_unpopular_candidate() {
        let mut p = Popularity::new(256, u64::MAX, 2);
        p.record(&"once");
        p.record(&"twice");
        p.record(&"twice");
        for _ in 0..5 {
            p.record(&"hot");
        }
        let top: Vec<_> = p.top(0).into_iter().map(|(k, _)| k).collect();
        assert_eq!(top, vec!["hot", "twice"]);
        // A key read once does not beat the floor.
        p.record(&"cold");
        assert!(p.top(0).iter().all(|(k, _)| *k != "cold"));
    }

    #[test]
    fn refreshed_resets_reads_and_forget_drops() {
        let mut p = Popularity::new(64, u64::MAX, 8);
        p.record(&1u8);
        p.record(&1u8);
        p.record(&2u8);
        p.refreshed(&1);
        let top = p.top(1);
        assert_eq!(
            top[0],
            (
                1,
                Candidate {
                    estimate: 2,
                    reads: 0
                }
            )
        );
        p.forget(|k| *k == 1);
        assert_eq!(p.top(0).len(), 1);
        assert_eq!(p.estimate(&1), 2);
    }
}
