//! Stale-read bookkeeping for the players scenario, without servers.
//!
//! The cache promises that once a write is acknowledged, no read that
//! starts afterwards returns a value older than that write. The bench
//! checks it from the outside: it records, per key, the version and the
//! acknowledgement time of every write, and asks for each read whether a
//! write of *that key* newer than the read's version was acknowledged
//! before the read started. Writes of other keys of the world do not
//! count: an entry's version is the version of the write that produced it
//! (or of its fill's source read), which is lower than the world's current
//! version whenever the key has not been written since.
//!
//! Writes may be acknowledged out of version order (two players write at
//! once; the later version's acknowledgement arrives first), and reads may
//! start before an acknowledgement that is recorded later, so the record
//! keeps every acknowledgement in time order with the newest version
//! acknowledged so far, and a question is one binary search.

use std::collections::HashMap;
use std::hash::Hash;

/// Per key, every acknowledged write's time and version. `K` is the key
/// (a `CacheKey` in the bench), `T` the clock (an `Instant` in the bench,
/// plain numbers in tests).
#[derive(Debug, Clone)]
pub struct Freshness<K, T> {
    writes: HashMap<K, Vec<Ack<T>>>,
}

#[derive(Debug, Clone, Copy)]
struct Ack<T> {
    at: T,
    /// The newest version acknowledged at or before `at`.
    newest: u64,
    version: u64,
}

impl<K, T> Default for Freshness<K, T> {
    fn default() -> Self {
        Self {
            writes: HashMap::new(),
        }
    }
}

impl<K: Hash + Eq, T: Ord + Copy> Freshness<K, T> {
    /// An empty record.
    pub fn new() -> Self {
        Self::default()
    }

    /// A write of `key` at `version` was acknowledged at `at`.
    pub fn acknowledged(&mut self, key: K, at: T, version: u64) {
        let acks = self.writes.entry(key).or_default();
        // Acknowledgements are noted after they happen, by tasks that race
        // for the record: keep them in time order.
        let i = acks.partition_point(|a| a.at <= at);
        acks.insert(
            i,
            Ack {
                at,
                newest: version,
                version,
            },
        );
        let mut newest = i
            .checked_sub(1)
            .and_then(|p| acks.get(p))
            .map_or(0, |a| a.newest);
        for a in acks.iter_mut().skip(i) {
            newest = newest.max(a.version);
            a.newest = newest;
        }
    }

    /// The newest version of `key` acknowledged strictly before `started`.
    pub fn newest_before(&self, key: &K, started: T) -> Option<u64> {
        let acks = self.writes.get(key)?;
        let n = acks.partition_point(|a| a.at < started);
        n.checked_sub(1).and_then(|i| acks.get(i)).map(|a| a.newest)
    }

    /// Whether a read of `key` that started at `started` and returned a
    /// value at `version` is older than a write of that key acknowledged
    /// before it started.
    pub fn is_stale(&self, key: &K, started: T, version: u64) -> bool {
        self.newest_before(key, started)
            .is_some_and(|newest| version < newest)
    }

    /// Whether any write of `key` was acknowledged.
    pub fn was_written(&self, key: &K) -> bool {
        self.writes.contains_key(key)
    }

    /// Acknowledged writes recorded, over every key.
    pub fn len(&self) -> usize {
        self.writes.values().map(Vec::len).sum()
    }

    /// Whether no write was recorded.
    pub fn is_empty(&self) -> bool {
        self.writes.is_empty()
    }
}
