//! The near cache: an optional in-process tier in front of the cache store,
//! holding decoded values, shared and never re-decoded, bounded by bytes.
//!
//! Coherence across processes comes from an [`InvalidationFeed`]: every
//! committed write anywhere publishes its keys and version, and the feed
//! delivers them here ([`NearCache::invalidate`]). Three rules keep the
//! tier from ever serving what the store would not:
//!
//! - **An invalidation wins over a fill in flight.** A reader takes a
//!   ticket before it asks the store; an invalidation bumps the counter
//!   of its key's stripe (and a clear bumps the epoch) under the shard's
//!   lock; a fill is admitted only if neither moved since its ticket. An
//!   entry read from the store before a write's invalidation arrived can
//!   therefore never be kept after it.
//! - **Served only while the feed is known to be live.** The feed confirms
//!   periodically that everything published before a given instant has
//!   been delivered (a PING answered on the subscription's own connection,
//!   behind the messages). A hit needs a confirmation younger than
//!   [`NearConfig::max_lag`]; without one the tier is bypassed. Losing the
//!   feed ([`NearCache::lost`]) empties it, and it stays bypassed until the
//!   feed confirms again. So the staleness another process's write can cause
//!   here is bounded by `max_lag`, partitions and hung connections included.
//! - **Never longer than the store's entry is fresh**, and at most
//!   [`NearConfig::max_age`]: expiry by TTL publishes nothing.
//!
//! This process's own writes invalidate their keys here before they are
//! acknowledged (read-your-writes needs no round trip through the feed).
//!
//! The map is the standard library's, in shards behind mutexes, evicting by
//! CLOCK (second chance) over an insertion queue: a hit sets a bit, the
//! sweep spares a set entry once. Every shard keeps its own byte budget.

use std::collections::{HashMap, VecDeque};
use std::hash::BuildHasher;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lwcache_domain::{CacheKey, CachedValue, Redaction, Value, WorldId};
use tokio::time::Instant;

/// How the near cache is sized and bounded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NearConfig {
    /// The most bytes its values may take, as estimated from their decoded
    /// size. At least 64 KiB.
    pub max_bytes: usize,
    /// The oldest feed confirmation a hit may rely on: the bound on how long
    /// another process's acknowledged write can stay unseen here. At least
    /// twice the feed's heartbeat, or the tier is bypassed between beats.
    pub max_lag: Duration,
    /// The longest an entry is kept, whatever its store TTL.
    pub max_age: Duration,
}

/// The default byte budget: 64 MiB.
pub const DEFAULT_NEAR_BYTES: usize = 64 << 20;
/// The default bound on the feed's confirmation age.
pub const DEFAULT_NEAR_MAX_LAG: Duration = Duration::from_millis(500);
/// The default longest life of a near entry.
pub const DEFAULT_NEAR_MAX_AGE: Duration = Duration::from_secs(60);

impl Default for NearConfig {
    fn default() -> Self {
        Self {
            max_bytes: DEFAULT_NEAR_BYTES,
            max_lag: DEFAULT_NEAR_MAX_LAG,
            max_age: DEFAULT_NEAR_MAX_AGE,
        }
    }
}

/// Why a near-cache configuration is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NearConfigError {
    /// `max_bytes` is below the minimum.
    #[error("near cache max_bytes {0} is below the minimum of 65536")]
    TooSmall(usize),
    /// `max_lag` or `max_age` is zero.
    #[error("near cache {0} must be above zero")]
    Zero(&'static str),
}

impl NearConfig {
    /// Checks the bounds.
    pub fn validate(&self) -> Result<(), NearConfigError> {
        if self.max_bytes < 64 << 10 {
            return Err(NearConfigError::TooSmall(self.max_bytes));
        }
        if self.max_lag.is_zero() {
            return Err(NearConfigError::Zero("max_lag"));
        }
        if self.max_age.is_zero() {
            return Err(NearConfigError::Zero("max_age"));
        }
        Ok(())
    }
}

/// Where a feed delivers what it learns. Calls must not block: they come
/// from the feed's connection task.
pub trait InvalidationSink: Send + Sync {
    /// `keys` were changed by a write committed at `version`.
    fn invalidate(&self, keys: &[CacheKey], version: u64);
    /// Every key of `world` may have changed (its cache was dropped).
    fn invalidate_world(&self, world: &WorldId);
    /// Every invalidation published before `as_of` has been delivered.
    fn confirmed(&self, as_of: Instant);
    /// The feed lost its connection: invalidations may be missed from now
    /// on, until the next confirmation.
    fn lost(&self);
}

/// A source of other processes' invalidations: the cache store's
/// broadcast of every committed write.
pub trait InvalidationFeed: Send + Sync + 'static {
    /// Starts delivering to `sink` on the current tokio runtime, until the
    /// returned guard is dropped. Reconnects on its own, reporting each loss.
    fn follow(&self, sink: Arc<dyn InvalidationSink>) -> FeedGuard;
}

/// Stops a feed when dropped: aborts its task, or runs what unsubscribes.
pub struct FeedGuard(Option<Box<dyn FnOnce() + Send + Sync>>);

impl std::fmt::Debug for FeedGuard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("FeedGuard").finish_non_exhaustive()
    }
}

impl FeedGuard {
    /// A guard that aborts the feed's task.
    pub fn new(task: tokio::task::JoinHandle<()>) -> Self {
        Self::on_drop(move || task.abort())
    }

    /// A guard that runs `stop` once, when dropped.
    pub fn on_drop(stop: impl FnOnce() + Send + Sync + 'static) -> Self {
        Self(Some(Box::new(stop)))
    }
}

impl Drop for FeedGuard {
    fn drop(&mut self) {
        if let Some(stop) = self.0.take() {
            stop();
        }
    }
}

/// One value held near.
#[derive(Debug)]
pub struct NearEntry {
    /// The decoded value, shared with every reader.
    pub value: Arc<CachedValue>,
    /// Its version.
    pub version: u64,
    /// Whether sensitive fields were left out.
    pub redaction: Redaction,
    /// When it stops being usable, on the manager's wall clock (ms).
    pub(crate) until_ms: i64,
    bytes: usize,
}

/// A value read from the store, offered to the near cache.
#[derive(Debug)]
pub(crate) struct Fill {
    /// The decoded value.
    pub(crate) value: Arc<CachedValue>,
    /// Its version.
    pub(crate) version: u64,
    /// Whether sensitive fields were left out.
    pub(crate) redaction: Redaction,
    /// The store entry's own freshness, if it has one.
    pub(crate) fresh_until_ms: Option<i64>,
}

/// What a reader saw before asking the store: its fill is admitted only if
/// nothing invalidated the key since.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Ticket {
    epoch: u64,
    stripe: usize,
    count: u64,
}

const SHARDS: usize = 16;
const STRIPES: usize = 256;

struct Slot {
    entry: Arc<NearEntry>,
    generation: u64,
    visited: AtomicBool,
}

#[derive(Default)]
struct Shard {
    map: HashMap<CacheKey, Slot>,
    /// Keys in insertion order with their slot's generation; a pair whose
    /// generation no longer matches is skipped.
    queue: VecDeque<(CacheKey, u64)>,
    bytes: usize,
    next_generation: u64,
}

/// What the near cache counted, for metrics and tests.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct NearStats {
    /// Entries held now.
    pub entries: usize,
    /// Their estimated bytes.
    pub bytes: usize,
    /// Entries evicted for room.
    pub evictions: u64,
    /// Entries dropped by an invalidation.
    pub invalidated: u64,
    /// Fills refused because an invalidation came first.
    pub refused: u64,
    /// Times the whole cache was emptied.
    pub clears: u64,
}

/// The near cache.
pub struct NearCache {
    config: NearConfig,
    shards: Box<[Mutex<Shard>]>,
    stripes: Box<[AtomicU64]>,
    epoch: AtomicU64,
    hasher: std::collections::hash_map::RandomState,
    /// Nanoseconds after `base` of the feed's last confirmation; 0 while it
    /// is lost (or has never confirmed).
    confirmed: AtomicU64,
    base: Instant,
    evictions: AtomicU64,
    invalidated: AtomicU64,
    refused: AtomicU64,
    clears: AtomicU64,
}

impl std::fmt::Debug for NearCache {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NearCache")
            .field("config", &self.config)
            .field("stats", &self.stats())
            .finish_non_exhaustive()
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl NearCache {
    /// An empty near cache, bypassed until its feed first confirms.
    pub fn new(config: NearConfig) -> Self {
        Self {
            config,
            shards: (0..SHARDS).map(|_| Mutex::new(Shard::default())).collect(),
            stripes: (0..STRIPES).map(|_| AtomicU64::new(0)).collect(),
            epoch: AtomicU64::new(0),
            hasher: std::collections::hash_map::RandomState::new(),
            confirmed: AtomicU64::new(0),
            base: Instant::now(),
            evictions: AtomicU64::new(0),
            invalidated: AtomicU64::new(0),
            refused: AtomicU64::new(0),
            clears: AtomicU64::new(0),
        }
    }

    /// Its configuration.
    pub fn config(&self) -> &NearConfig {
        &self.config
    }

    fn hash(&self, key: &CacheKey) -> u64 {
        self.hasher.hash_one(key)
    }

    fn shard(&self, hash: u64) -> &Mutex<Shard> {
        &self.shards[(hash as usize) % SHARDS]
    }

    fn stripe(hash: u64) -> usize {
        ((hash >> 32) as usize) % STRIPES
    }

    /// Whether the feed has confirmed recently enough for a hit.
    pub fn coherent(&self) -> bool {
        let at = self.confirmed.load(Ordering::Acquire);
        if at == 0 {
            return false;
        }
        let now = self.nanos(Instant::now());
        now.saturating_sub(at) <= u64::try_from(self.config.max_lag.as_nanos()).unwrap_or(u64::MAX)
    }

    fn nanos(&self, at: Instant) -> u64 {
        // 1 ns past the base, so that 0 keeps meaning "not confirmed".
        u64::try_from(at.saturating_duration_since(self.base).as_nanos())
            .unwrap_or(u64::MAX)
            .max(1)
    }

    /// The entry of `key`, if one is held, usable at `now_ms` and the feed
    /// is live.
    pub fn get(&self, key: &CacheKey, now_ms: i64) -> Option<Arc<NearEntry>> {
        if !self.coherent() {
            return None;
        }
        let hash = self.hash(key);
        let mut shard = lock(self.shard(hash));
        let slot = shard.map.get(key)?;
        if slot.entry.until_ms <= now_ms {
            let slot = shard.map.remove(key)?;
            shard.bytes -= slot.entry.bytes;
            return None;
        }
        slot.visited.store(true, Ordering::Relaxed);
        Some(Arc::clone(&slot.entry))
    }

    /// A ticket for a fill of `key` about to be read from the store.
    pub(crate) fn ticket(&self, key: &CacheKey) -> Ticket {
        let stripe = Self::stripe(self.hash(key));
        Ticket {
            epoch: self.epoch.load(Ordering::Acquire),
            stripe,
            count: self.stripes[stripe].load(Ordering::Acquire),
        }
    }

    /// Keeps a value read from the store under `ticket`, unless an
    /// invalidation of its stripe or a clear came since, the feed is not
    /// live, or a newer entry is held. `fresh_until_ms` is the store
    /// entry's own freshness, if it has one.
    pub(crate) fn admit(&self, key: &CacheKey, ticket: Ticket, fill: Fill, now_ms: i64) -> bool {
        let Fill {
            value,
            version,
            redaction,
            fresh_until_ms,
        } = fill;
        if !self.coherent() {
            return false;
        }
        let max_age = i64::try_from(self.config.max_age.as_millis()).unwrap_or(i64::MAX);
        let until_ms = fresh_until_ms
            .unwrap_or(i64::MAX)
            .min(now_ms.saturating_add(max_age));
        if until_ms <= now_ms {
            return false;
        }
        let bytes = key_bytes(key) + value_bytes(&value);
        let shard_budget = self.config.max_bytes / SHARDS;
        if bytes > shard_budget {
            return false;
        }
        let hash = self.hash(key);
        let mut shard = lock(self.shard(hash));
        // Checked under the shard's lock, which every invalidation of this
        // key holds while it bumps the stripe: no invalidation can slip in
        // between the check and the insert.
        if self.epoch.load(Ordering::Acquire) != ticket.epoch
            || self.stripes[ticket.stripe].load(Ordering::Acquire) != ticket.count
        {
            self.refused.fetch_add(1, Ordering::Relaxed);
            return false;
        }
        if shard
            .map
            .get(key)
            .is_some_and(|held| held.entry.version > version)
        {
            return false;
        }
        let generation = shard.next_generation;
        shard.next_generation += 1;
        let entry = Arc::new(NearEntry {
            value,
            version,
            redaction,
            until_ms,
            bytes,
        });
        let slot = Slot {
            entry,
            generation,
            visited: AtomicBool::new(false),
        };
        if let Some(old) = shard.map.insert(key.clone(), slot) {
            shard.bytes -= old.entry.bytes;
        }
        shard.bytes += bytes;
        shard.queue.push_back((key.clone(), generation));
        self.evict(&mut shard, shard_budget);
        true
    }

    /// Sweeps the shard's queue until it fits its budget: CLOCK, sparing
    /// once an entry hit since it was last passed.
    fn evict(&self, shard: &mut Shard, budget: usize) {
        while shard.bytes > budget {
            let Some((key, generation)) = shard.queue.pop_front() else {
                break;
            };
            let spare = match shard.map.get(&key) {
                Some(slot) if slot.generation == generation => {
                    slot.visited.swap(false, Ordering::Relaxed)
                }
                // Replaced or removed since: a stale queue item.
                _ => continue,
            };
            if spare {
                shard.queue.push_back((key, generation));
            } else if let Some(slot) = shard.map.remove(&key) {
                shard.bytes -= slot.entry.bytes;
                self.evictions.fetch_add(1, Ordering::Relaxed);
            }
        }
        // Stale queue items are dropped once they outnumber the entries.
        if shard.queue.len() > 2 * shard.map.len() + 64 {
            let map = &shard.map;
            shard
                .queue
                .retain(|(k, g)| map.get(k).is_some_and(|s| s.generation == *g));
        }
    }

    /// Drops `key`'s entry if it is older than `version`, and refuses every
    /// fill of its stripe that began before.
    pub fn drop_key(&self, key: &CacheKey, version: u64) {
        let hash = self.hash(key);
        let mut shard = lock(self.shard(hash));
        self.stripes[Self::stripe(hash)].fetch_add(1, Ordering::AcqRel);
        if shard
            .map
            .get(key)
            .is_some_and(|held| held.entry.version < version || version == u64::MAX)
            && let Some(slot) = shard.map.remove(key)
        {
            shard.bytes -= slot.entry.bytes;
            self.invalidated.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Empties the cache and refuses every fill that began before.
    pub fn clear(&self) {
        self.epoch.fetch_add(1, Ordering::AcqRel);
        for shard in self.shards.iter() {
            let mut shard = lock(shard);
            shard.map.clear();
            shard.queue.clear();
            shard.bytes = 0;
        }
        self.clears.fetch_add(1, Ordering::Relaxed);
    }

    /// What it holds and has counted.
    pub fn stats(&self) -> NearStats {
        let (mut entries, mut bytes) = (0, 0);
        for shard in self.shards.iter() {
            let shard = lock(shard);
            entries += shard.map.len();
            bytes += shard.bytes;
        }
        NearStats {
            entries,
            bytes,
            evictions: self.evictions.load(Ordering::Relaxed),
            invalidated: self.invalidated.load(Ordering::Relaxed),
            refused: self.refused.load(Ordering::Relaxed),
            clears: self.clears.load(Ordering::Relaxed),
        }
    }
}

impl InvalidationSink for NearCache {
    fn invalidate(&self, keys: &[CacheKey], version: u64) {
        for key in keys {
            self.drop_key(key, version);
        }
    }

    fn invalidate_world(&self, world: &WorldId) {
        // Rare (an operator's drop, a world gone back in time): every fill
        // in flight anywhere is refused, and the world's entries go.
        self.epoch.fetch_add(1, Ordering::AcqRel);
        for shard in self.shards.iter() {
            let mut shard = lock(shard);
            let gone: Vec<CacheKey> = shard
                .map
                .keys()
                .filter(|k| k.world() == world)
                .cloned()
                .collect();
            for key in gone {
                if let Some(slot) = shard.map.remove(&key) {
                    shard.bytes -= slot.entry.bytes;
                    self.invalidated.fetch_add(1, Ordering::Relaxed);
                }
            }
        }
    }

    fn confirmed(&self, as_of: Instant) {
        let at = self.nanos(as_of);
        // Only forward: a late confirmation never makes an older instant
        // the newest one.
        self.confirmed.fetch_max(at, Ordering::AcqRel);
    }

    fn lost(&self) {
        self.confirmed.store(0, Ordering::Release);
        self.clear();
    }
}

/// A key's estimated heap bytes in the map and the queue.
fn key_bytes(key: &CacheKey) -> usize {
    // The key is held twice (map and queue), each with its ids' strings.
    2 * (std::mem::size_of::<CacheKey>() + key.world().as_str().len() + 32)
}

/// A decoded value's estimated heap bytes: each string's length and every
/// container's per-item overhead.
pub fn value_bytes(value: &CachedValue) -> usize {
    const ITEM: usize = std::mem::size_of::<Value>() + 16;
    fn of(v: &Value) -> usize {
        ITEM + match v {
            Value::Text(s) => s.len(),
            Value::List(items) => items.iter().map(of).sum(),
            Value::Map(map) => map.iter().map(|(k, v)| k.len() + 24 + of(v)).sum(),
            _ => 0,
        }
    }
    let map_bytes = |m: &std::collections::BTreeMap<String, Value>| -> usize {
        m.iter().map(|(k, v)| k.len() + 24 + of(v)).sum()
    };
    64 + match value {
        CachedValue::Snapshot(d) | CachedValue::Entity(d) => map_bytes(d.fields()),
        CachedValue::Flags(f) => f.iter().map(|(k, v)| k.as_str().len() + 24 + of(v)).sum(),
        CachedValue::Timeline(events) => events
            .iter()
            .map(|e| {
                96 + e.entity.as_str().len() + e.kind.as_str().len() + map_bytes(e.data.fields())
            })
            .sum(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use lwcache_domain::{Document, EntityRef};

    fn key(n: usize) -> CacheKey {
        let world = WorldId::new("w").unwrap();
        CacheKey::entity(
            &world,
            &EntityRef::parse(lwcache_domain::EntityKind::Character, &format!("c{n}")).unwrap(),
        )
    }

    fn doc(text: &str) -> Arc<CachedValue> {
        let mut d = Document::new();
        d.0.insert("name".into(), Value::Text(text.into()));
        Arc::new(CachedValue::Entity(d))
    }

    fn live(config: NearConfig) -> NearCache {
        let near = NearCache::new(config);
        near.confirmed(Instant::now());
        near
    }

    fn admit(near: &NearCache, k: &CacheKey, text: &str, version: u64) -> bool {
        let t = near.ticket(k);
        near.admit(
            k,
            t,
            Fill {
                value: doc(text),
                version,
                redaction: Redaction::Complete,
                fresh_until_ms: None,
            },
            0,
        )
    }

    #[test]
    fn an_invalidation_wins_over_a_fill_in_flight() {
        let near = live(NearConfig::default());
        let k = key(1);
        // The reader's ticket is taken before it asks the store; the
        // write's invalidation arrives before the old value's fill.
        let ticket = near.ticket(&k);
        near.invalidate(std::slice::from_ref(&k), 5);
        assert!(!near.admit(
            &k,
            ticket,
            Fill {
                value: doc("old"),
                version: 4,
                redaction: Redaction::Complete,
                fresh_until_ms: None
            },
            0
        ));
        assert!(near.get(&k, 0).is_none());
        assert_eq!(near.stats().refused, 1);
        // A fill that began after the invalidation is kept.
        assert!(admit(&near, &k, "new", 5));
        assert_eq!(near.get(&k, 0).unwrap().version, 5);
        // A clear refuses every fill that began before it, too.
        let ticket = near.ticket(&key(2));
        near.clear();
        assert!(!near.admit(
            &key(2),
            ticket,
            Fill {
                value: doc("x"),
                version: 1,
                redaction: Redaction::Complete,
                fresh_until_ms: None
            },
            0
        ));
    }

    #[test]
    fn invalidations_drop_only_older_entries() {
        let near = live(NearConfig::default());
        let k = key(1);
        assert!(admit(&near, &k, "v7", 7));
        near.invalidate(std::slice::from_ref(&k), 7);
        assert!(
            near.get(&k, 0).is_some(),
            "an echo of the entry's own write"
        );
        near.invalidate(std::slice::from_ref(&k), 8);
        assert!(near.get(&k, 0).is_none());
        // An older fill never replaces a newer entry.
        assert!(admit(&near, &k, "v9", 9));
        assert!(!admit(&near, &k, "v8", 8));
        assert_eq!(near.get(&k, 0).unwrap().version, 9);
    }

    #[test]
    fn served_only_while_the_feed_is_known_live() {
        let near = NearCache::new(NearConfig::default());
        let k = key(1);
        assert!(!admit(&near, &k, "a", 1), "never confirmed: bypassed");
        near.confirmed(Instant::now());
        assert!(admit(&near, &k, "a", 1));
        assert!(near.get(&k, 0).is_some());
        near.lost();
        assert!(near.get(&k, 0).is_none());
        assert_eq!(near.stats().entries, 0, "losing the feed empties it");
        near.confirmed(Instant::now());
        assert!(near.get(&k, 0).is_none(), "emptied, not hidden");
    }

    #[tokio::test(start_paused = true)]
    async fn a_confirmation_older_than_max_lag_bypasses_the_tier() {
        let config = NearConfig {
            max_lag: Duration::from_millis(100),
            ..NearConfig::default()
        };
        let near = live(config);
        let k = key(1);
        assert!(admit(&near, &k, "a", 1));
        tokio::time::advance(Duration::from_millis(101)).await;
        assert!(
            near.get(&k, 0).is_none(),
            "the feed has not confirmed for 101 ms"
        );
        near.confirmed(Instant::now());
        assert!(
            near.get(&k, 0).is_some(),
            "kept, and served again once confirmed"
        );
        // A late confirmation of an older instant never moves it back.
        near.confirmed(Instant::now() - Duration::from_millis(500));
        assert!(near.coherent());
    }

    #[test]
    fn entries_last_no_longer_than_the_store_keeps_them_fresh() {
        let near = live(NearConfig::default());
        let k = key(1);
        let t = near.ticket(&k);
        assert!(near.admit(
            &k,
            t,
            Fill {
                value: doc("a"),
                version: 1,
                redaction: Redaction::Complete,
                fresh_until_ms: Some(1_500)
            },
            1_000
        ));
        assert!(near.get(&k, 1_499).is_some());
        assert!(near.get(&k, 1_500).is_none());
        let t = near.ticket(&k);
        assert!(!near.admit(
            &k,
            t,
            Fill {
                value: doc("a"),
                version: 1,
                redaction: Redaction::Complete,
                fresh_until_ms: Some(1_500)
            },
            2_000
        ));
    }

    #[test]
    fn bytes_stay_within_the_budget_and_hits_are_spared() {
        let config = NearConfig {
            max_bytes: 64 << 10,
            ..NearConfig::default()
        };
        let near = live(config);
        let hot = key(0);
        assert!(admit(&near, &hot, "hot", 1));
        for n in 1..2_000 {
            // Read the hot key between fills: its bit spares it each sweep.
            near.get(&hot, 0);
            admit(&near, &key(n), &"x".repeat(40), 1);
        }
        assert!(near.get(&hot, 0).is_some(), "the hot key was spared");
        let stats = near.stats();
        assert!(stats.bytes <= 64 << 10, "{stats:?}");
        assert!(stats.evictions > 0, "{stats:?}");
        assert!(stats.entries > 10, "{stats:?}");
    }

    #[test]
    fn a_world_drop_empties_that_world_only() {
        let near = live(NearConfig::default());
        let other = WorldId::new("other").unwrap();
        let theirs = CacheKey::flags(&other);
        assert!(admit(&near, &key(1), "a", 1));
        let t = near.ticket(&theirs);
        assert!(near.admit(
            &theirs,
            t,
            Fill {
                value: Arc::new(CachedValue::Flags(Default::default())),
                version: 1,
                redaction: Redaction::Complete,
                fresh_until_ms: None
            },
            0
        ));
        near.invalidate_world(&WorldId::new("w").unwrap());
        assert!(near.get(&key(1), 0).is_none());
        assert!(near.get(&theirs, 0).is_some());
    }

    #[test]
    fn configurations_are_checked() {
        assert!(NearConfig::default().validate().is_ok());
        let small = NearConfig {
            max_bytes: 1,
            ..NearConfig::default()
        };
        assert_eq!(small.validate(), Err(NearConfigError::TooSmall(1)));
        let zero = NearConfig {
            max_lag: Duration::ZERO,
            ..NearConfig::default()
        };
        assert_eq!(zero.validate(), Err(NearConfigError::Zero("max_lag")));
    }
}
