//! The cache manager: read-through, write-through, write-behind,
//! invalidation, versioning and warming over the two ports.
//!
//! One file per mechanism: this one holds the manager, the result types and
//! what every mechanism shares (bounded port calls, encoding entries);
//! [`Builder`] is in `builder.rs`, reads and fills in `read.rs`, writes and
//! their cache plans in `write.rs`, the write-behind queue and worker in
//! `write_behind.rs`, activation in `warm.rs`, shared misses in `flight.rs`,
//! batched reads in `batch.rs`, the circuit breaker around the store in
//! `breaker.rs`.
//!
//! # The consistency protocol
//!
//! `docs/consistency.md` states the promises and their windows; in short:
//!
//! - Every entry carries the version it is valid at, and a put never
//!   replaces a newer entry ([`WriteKind`]): writers of one world cannot
//!   undo each other, and no world-wide gate makes unrelated fills fail.
//!   An invalidation leaves a tombstone at the write's version, which reads
//!   as a miss and keeps older puts out.
//! - A miss takes a lease on its key *before* it reads the source; its fill
//!   lands only while the lease is still its own. Every write's cache step
//!   deletes its keys' leases, and a restarted store has lost them all, so
//!   a fill whose read may predate a write cannot land after it.
//! - The source records what each write owes the cache (its outbox) in the
//!   write's own transaction; done entries are removed in batches, and
//!   every process replays the steps left owed by a crash or an unreachable
//!   cache (`outbox.rs`).
//!
//! [`WriteKind`]: crate::ports::WriteKind

mod batch;
mod breaker;
mod builder;
mod drop;
mod flight;
mod memo;
mod near_tier;
mod outbox;
mod read;
mod refresh;
mod warm;
mod write;
mod write_behind;

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use lwcache_domain::{CacheKey, CachedValue, Committed, OwedId, Redaction, Versioned};
use tokio::sync::{Notify, mpsc};
use tokio::task::JoinHandle;
use tokio::time::Instant;

pub use batch::ItemRead;
pub use breaker::BreakerState;
pub use builder::Builder;

use crate::codec::{self, Entry};
use crate::config::ManagerConfig;
use crate::metrics::{MetricEvent, MetricsSink, Stage};
use crate::ports::{CacheError, CacheStore, Clock, Lease, Put, SourceError, WorldRepository};
use write_behind::Task;

/// How a read was served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// From the cache.
    Hit,
    /// From the near cache, this process's own tier in front of the cache
    /// store (`near.rs`), without a round trip.
    NearHit,
    /// From the source, after the cache had no usable entry.
    Miss,
    /// From a cache entry older than a write-behind update still queued
    /// (only with [`StaleReads::WhileQueued`](crate::StaleReads::WhileQueued)).
    Stale,
    /// From the source, because the cache failed.
    Fallback,
    /// From a cache entry past its TTL (within the fail-safe grace),
    /// because the source failed when asked for a fresh value.
    FailSafe(Staleness),
}

impl Outcome {
    /// `hit`, `miss`, `stale`, `fallback` or `fail_safe`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Hit => "hit",
            Outcome::NearHit => "near_hit",
            Outcome::Miss => "miss",
            Outcome::Stale => "stale",
            Outcome::Fallback => "fallback",
            Outcome::FailSafe(_) => "fail_safe",
        }
    }
}

/// How old a fail-safe answer is, and why it was served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Staleness {
    /// How long ago the value was written to the cache (read from the
    /// source or committed).
    pub age: Duration,
    /// How the source failed.
    pub reason: SourceFailure,
}

/// How the source failed a read that a fail-safe answer then served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SourceFailure {
    /// It could not be reached.
    Unavailable,
    /// It did not answer within the source timeout.
    Timeout,
    /// It reported an error of its own.
    Error,
}

impl SourceFailure {
    /// The failure of a source error, if the error is the source's failure
    /// rather than its answer (a refusal of the request is an answer).
    pub fn of(error: &SourceError) -> Option<SourceFailure> {
        match error {
            SourceError::Unavailable(_) => Some(SourceFailure::Unavailable),
            SourceError::Timeout(_) => Some(SourceFailure::Timeout),
            SourceError::Other(_) => Some(SourceFailure::Error),
            _ => None,
        }
    }

    /// `source-unavailable`, `source-timeout` or `source-error`.
    pub fn as_str(self) -> &'static str {
        match self {
            SourceFailure::Unavailable => "source-unavailable",
            SourceFailure::Timeout => "source-timeout",
            SourceFailure::Error => "source-error",
        }
    }
}

/// Which fields a read needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fields {
    /// Only the fields that may be cached: sensitive fields are left out,
    /// whether the read hits or misses, so the answer never depends on the
    /// cache's state.
    #[default]
    Cacheable,
    /// Every field: served by the source whenever the cached copy was
    /// redacted.
    All,
}

/// A value read, with its version and how it was served.
#[derive(Debug, Clone, PartialEq)]
pub struct Read<T> {
    /// The value.
    pub value: T,
    /// The world version the value was read at or written as.
    pub version: u64,
    /// How it was served.
    pub outcome: Outcome,
}

impl<T> Read<T> {
    /// The same read with its value mapped: its version and outcome kept.
    pub fn map<U>(self, f: impl FnOnce(T) -> U) -> Read<U> {
        Read {
            value: f(self.value),
            version: self.version,
            outcome: self.outcome,
        }
    }

    /// How old the value is and why it was served, if it is a fail-safe
    /// answer (an entry past its TTL, served because the source failed).
    pub fn staleness(&self) -> Option<Staleness> {
        match self.outcome {
            Outcome::FailSafe(s) => Some(s),
            _ => None,
        }
    }
}

/// What the cache step of a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStep {
    /// The cache was updated before the write was acknowledged.
    Applied,
    /// A later write's cache step ran first on some key, which keeps that
    /// write's value.
    Superseded,
    /// Every update was queued for the write-behind worker (their keys
    /// invalidated first unless stale reads were opted into).
    Deferred,
    /// The cache failed; the step stays owed in the outbox and is replayed.
    Failed,
}

/// An acknowledged write.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    /// What the source committed.
    pub committed: Committed,
    /// What the cache step did.
    pub cache: CacheStep,
}

/// What an activation warmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WarmReport {
    /// The version the world was read at.
    pub version: u64,
    /// Keys prefilled.
    pub keys: usize,
    /// Batches written (one round trip each).
    pub batches: usize,
    /// Keys not prefilled because a write raced with the warming; they fill
    /// on their first read.
    pub skipped: usize,
}

/// The cache manager. Cheap to clone; clones share everything.
pub struct CacheManager<S, R> {
    inner: Arc<Inner<S, R>>,
}

impl<S, R> Clone for CacheManager<S, R> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

/// What every clone of a manager shares, and the write-behind worker holds
/// weakly.
struct Inner<S, R> {
    store: S,
    /// Whether reads of the store need the manager's own timer: the store
    /// does not bound them within `cache_timeout` itself
    /// ([`CacheStore::read_deadline`]).
    read_timer: bool,
    repo: R,
    config: ManagerConfig,
    metrics: Arc<dyn MetricsSink>,
    clock: Arc<dyn Clock>,
    queue: Mutex<Option<mpsc::Sender<Task>>>,
    /// The newest version queued for each key with pending write-behind work.
    pending: Mutex<HashMap<CacheKey, u64>>,
    /// How many keys `pending` holds, stored under its lock with each
    /// change: a read finds it empty (the common case) without the lock.
    pending_keys: AtomicUsize,
    /// Tasks queued or running.
    in_flight: AtomicUsize,
    /// Signalled each time `in_flight` drops to zero.
    settled: Notify,
    worker: Mutex<Option<JoinHandle<()>>>,
    /// This process's name in outbox claims.
    owner: String,
    /// Lease tokens: a per-process random base plus a counter, so that no
    /// two reads anywhere share one.
    lease_base: u64,
    lease_seq: AtomicU64,
    /// Outbox entries whose cache step is done, on their way to removal.
    done: Mutex<Option<mpsc::Sender<OwedId>>>,
    /// Worlds whose cache has seen a version above a write's own, with that
    /// version: the replay loop checks whether the source went back in time.
    suspects: Mutex<HashMap<lwcache_domain::WorldId, u64>>,
    /// How many cache calls have failed since the cache was last known to be
    /// whole; 0 when it is. While not 0, reads go to the source without
    /// asking the cache (which may miss writes whose steps failed), and the
    /// replay loop runs over every owed step, however young, until a round
    /// succeeds.
    trouble: AtomicU64,
    /// The store's epoch of each world this process wrote to, as last
    /// learned (`write.rs`).
    store_epochs: Mutex<HashMap<lwcache_domain::WorldId, crate::ports::Epoch>>,
    /// Worlds with a write whose cache step failed here, not yet replayed.
    failed_worlds: Mutex<std::collections::HashSet<lwcache_domain::WorldId>>,
    /// Worlds whose drop failed, owed like a step (`drop.rs`).
    owed_drops: Mutex<std::collections::BTreeSet<lwcache_domain::WorldId>>,
    /// Wakes the replay loop when trouble starts; shared so that the loop
    /// can wait on it without keeping the manager alive.
    wake: Arc<Notify>,
    /// The outbox tasks: the settler and the replay loop.
    housekeeping: Mutex<Option<(JoinHandle<()>, JoinHandle<()>)>>,
    /// The source reads in flight in this process, by key: concurrent
    /// misses of one key wait for the first one's (`read.rs`).
    flights: Mutex<HashMap<CacheKey, flight::Flight>>,
    /// The wall clock's reading when the manager was built, and tokio's
    /// instant then: entries' freshness is read on this clock, which
    /// follows tokio's (paused in tests) as the stores' TTLs do.
    epoch: (i64, Instant),
    /// Decides whether a cache call is made at all (`breaker.rs`).
    breaker: breaker::Breaker,
    /// Whether the breaker's opening has been logged since it last closed.
    breaker_said_open: std::sync::atomic::AtomicBool,
    /// The near cache, when configured, and the feed task that keeps it
    /// coherent (stopped with the manager).
    near: Option<Arc<crate::near::NearCache>>,
    _feed: Option<crate::near::FeedGuard>,
    /// Popular keys, the refresher and deactivated worlds (`refresh.rs`).
    refresh: refresh::Refresh,
    /// Decoded entries by their bytes, when on (`memo.rs`).
    memo: Option<memo::DecodeMemo>,
}

/// How long a tombstone lives when its key kind has no TTL: longer than any
/// delayed cache step of an older write could take to arrive.
const TOMBSTONE_TTL: Duration = Duration::from_secs(3600);

/// Locks a std mutex, recovering from poisoning: every critical section
/// here leaves the data consistent, so a panic elsewhere cannot corrupt it.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

impl<S, R> CacheManager<S, R>
where
    S: CacheStore + 'static,
    R: WorldRepository + 'static,
{
    /// The configuration.
    pub fn config(&self) -> &ManagerConfig {
        &self.inner.config
    }

    /// The cache store.
    pub fn store(&self) -> &S {
        &self.inner.store
    }

    /// The repository.
    pub fn repository(&self) -> &R {
        &self.inner.repo
    }

    /// The near cache, when one is configured.
    pub fn near_cache(&self) -> Option<&crate::near::NearCache> {
        self.inner.near.as_deref()
    }

    /// Where the circuit breaker around the cache store stands: while it
    /// is not closed, reads are served by the source and writes skip their
    /// cache step (it stays owed, and is replayed).
    pub fn breaker(&self) -> BreakerState {
        self.inner.breaker.state()
    }

    /// Whether the cache is in trouble: a cache call failed and what it
    /// owed (a step, a drop) is not all made yet. Meanwhile reads go to the
    /// source without asking the cache, however well it answers now.
    pub fn in_trouble(&self) -> bool {
        self.inner.trouble.load(Ordering::SeqCst) != 0
    }

    /// Checks both ports: `(cache, source)`. While the breaker is open the
    /// cache's answer is [`CacheError::CircuitOpen`], at once; past its
    /// interval this ping may be the breaker's probe.
    pub async fn health(&self) -> (Result<(), CacheError>, Result<(), SourceError>) {
        let cache = self.inner.cache_call(self.inner.store.ping()).await;
        let source = self.inner.source_call(self.inner.repo.ping()).await;
        (cache, source)
    }
}

impl<S, R> Inner<S, R>
where
    S: CacheStore + 'static,
    R: WorldRepository + 'static,
{
    /// Bounds a cache store call by `cache_timeout`, and counts and logs its
    /// failure: callers only decide what to do instead. While the breaker
    /// is open the call is not made and fails at once.
    async fn cache_call<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, CacheError>>,
    ) -> Result<T, CacheError> {
        self.bounded_cache_call(fut, true).await
    }

    /// [`cache_call`](Self::cache_call) for a `get` or `get_many`: without
    /// a timer of the manager's when the store bounds them within
    /// `cache_timeout` itself, one timer a read instead of two.
    async fn cache_read<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, CacheError>>,
    ) -> Result<T, CacheError> {
        self.bounded_cache_call(fut, self.read_timer).await
    }

    /// [`cache_call`](Self::cache_call) for what a committed write owes
    /// the cache (its step, and the epoch it needs): made even while the
    /// breaker is open (`breaker.rs`, "Owed steps").
    async fn owed_cache_call<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, CacheError>>,
    ) -> Result<T, CacheError> {
        let admitted = self.breaker.admit_owed();
        self.admitted_cache_call(admitted, fut, true).await
    }

    async fn bounded_cache_call<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, CacheError>>,
        timer: bool,
    ) -> Result<T, CacheError> {
        let admitted = match self.breaker.admit() {
            Ok(admitted) => admitted,
            Err(()) => {
                self.metrics.record(MetricEvent::BreakerRejected);
                // A call not made is a call failed, for the trouble mode too:
                // what it should have written is owed.
                self.in_trouble();
                return Err(CacheError::CircuitOpen);
            }
        };
        self.admitted_cache_call(admitted, fut, timer).await
    }

    async fn admitted_cache_call<T>(
        &self,
        (permit, moved): (breaker::Permit<'_>, Option<BreakerState>),
        fut: impl std::future::Future<Output = Result<T, CacheError>>,
        timer: bool,
    ) -> Result<T, CacheError> {
        self.breaker_moved(moved);
        let limit = self.config.cache_timeout;
        let result = if timer {
            match tokio::time::timeout(limit, fut).await {
                Ok(r) => r,
                Err(_) => Err(CacheError::Timeout(limit)),
            }
        } else {
            fut.await
        };
        let moved = self.breaker.finish(permit, breaker::Verdict::of(&result));
        self.breaker_moved(moved);
        if let Err(e) = &result {
            self.metrics.record(MetricEvent::CacheError);
            // Said once per outage; while it lasts (probes failing every
            // `breaker_open`) each further failure is a debug line.
            if self.in_trouble() {
                tracing::warn!(error = %e, "cache store call failed; reads go to the source until what it owed is made");
            } else {
                tracing::debug!(error = %e, "cache store call failed");
            }
        }
        result
    }

    /// Counts a failed cache call in the trouble mode, starting it (and
    /// waking the replay loop) when it is the first; answers whether it
    /// started it.
    fn in_trouble(&self) -> bool {
        let started = self.trouble.fetch_add(1, Ordering::SeqCst) == 0;
        if started {
            // Steps are owed from here on: nothing near may outlive them.
            if let Some(near) = &self.near {
                near.clear();
            }
            self.metrics.record(MetricEvent::Trouble(true));
            self.wake.notify_one();
        }
        started
    }

    /// Bounds a source call by `source_timeout`.
    async fn source_call<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, SourceError>>,
    ) -> Result<T, SourceError> {
        let limit = self.config.source_timeout;
        match tokio::time::timeout(limit, fut).await {
            Ok(r) => r,
            Err(_) => Err(SourceError::Timeout(limit)),
        }
    }

    /// Reads a key from the source, timing the call.
    async fn source_read(
        &self,
        key: &CacheKey,
        limit: usize,
    ) -> Result<Versioned<CachedValue>, SourceError> {
        let started = Instant::now();
        let result = self.source_call(self.repo.read(key, limit)).await;
        self.metrics.record(MetricEvent::Latency(
            Stage::SourceRead,
            key.kind(),
            started.elapsed(),
        ));
        result
    }

    /// Encodes an entry. One with a TTL gets a jittered one, is stamped
    /// with when it stops being fresh, and is kept for the fail-safe grace
    /// past it.
    fn put(&self, key: &CacheKey, version: u64, value: CachedValue, redaction: Redaction) -> Put {
        let entry = Entry {
            version,
            redaction,
            value,
        };
        let expiry = &self.config.policy.expiry;
        let Some(ttl) = self.config.policy.ttl(key.kind()) else {
            return Put {
                ttl: None,
                key: key.clone(),
                bytes: codec::encode_as(&entry, None, self.config.entry_format),
            };
        };
        let now = self.now_ms();
        let ttl = expiry.jittered(ttl, jitter_draw(key, self.lease_base, now));
        let freshness = codec::Freshness {
            written_ms: now,
            fresh_until_ms: now.saturating_add(i64::try_from(ttl.as_millis()).unwrap_or(i64::MAX)),
        };
        Put {
            ttl: Some(ttl.saturating_add(expiry.grace)),
            key: key.clone(),
            bytes: codec::encode_as(&entry, Some(freshness), self.config.entry_format),
        }
    }

    /// Now, in milliseconds since the Unix epoch, on the manager's clock
    /// as it was at the start, moved on by tokio's clock.
    fn now_ms(&self) -> i64 {
        self.ms_at(Instant::now())
    }

    /// The wall clock at `instant` (on tokio's clock), in milliseconds: a
    /// clock read already made serves again.
    fn ms_at(&self, instant: Instant) -> i64 {
        let (wall, at) = self.epoch;
        let since =
            i64::try_from(instant.saturating_duration_since(at).as_millis()).unwrap_or(i64::MAX);
        wall.saturating_add(since)
    }

    /// Redacts and encodes a value for the cache: the single place where
    /// values become bytes, so nothing sensitive can reach the store.
    fn put_redacting(&self, key: &CacheKey, version: u64, value: &CachedValue) -> Put {
        let (value, redaction) = self.config.policy.privacy.redact(key.kind(), value);
        self.put(key, version, value, redaction)
    }

    /// A tombstone for `key`: invalidated by the write committed as
    /// `version`.
    fn tombstone(&self, key: &CacheKey, version: u64) -> Put {
        Put {
            ttl: Some(self.config.policy.ttl(key.kind()).unwrap_or(TOMBSTONE_TTL)),
            key: key.clone(),
            bytes: codec::tombstone(version),
        }
    }

    /// A lease token no other read shares.
    fn next_lease(&self) -> Lease {
        Lease(
            self.lease_base
                .wrapping_add(self.lease_seq.fetch_add(1, Ordering::Relaxed)),
        )
    }
}

/// The draw that jitters one put's TTL: the key, this process and the
/// moment, hashed, so that keys written together spread.
fn jitter_draw(key: &CacheKey, base: u64, now_ms: i64) -> u64 {
    use std::hash::{Hash, Hasher};
    let mut h = std::collections::hash_map::DefaultHasher::new();
    key.hash(&mut h);
    base.hash(&mut h);
    now_ms.hash(&mut h);
    h.finish()
}

/// A random 64-bit number from the standard library's hasher keys, which
/// are seeded from the operating system: enough for lease tokens and
/// process names, with no random-number crate.
pub(crate) fn random_u64() -> u64 {
    use std::hash::{BuildHasher, Hasher};
    let mut h = std::collections::hash_map::RandomState::new().build_hasher();
    h.write_u128(
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos()),
    );
    h.write_u32(std::process::id());
    h.finish()
}
