//! The metrics port, and an in-process counter implementation.
//!
//! The cache manager reports what it does as [`MetricEvent`]s to an injected
//! [`MetricsSink`]; the binary alone decides where they go (OpenTelemetry,
//! Prometheus, a log). [`Counters`] keeps plain totals: enough for tests, the
//! demo's summary, and as the reference an exporter must agree with.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use lwcache_domain::{InvalidationCause, KeyKind};

use crate::manager::BreakerState;

/// A stage whose latency is measured.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Stage {
    /// A read from the cache store.
    CacheRead,
    /// A fill of the cache store after a miss.
    Fill,
    /// A read from the source of truth.
    SourceRead,
    /// A write to the source of truth.
    SourceWrite,
}

impl Stage {
    /// The label used in metrics.
    pub fn as_str(self) -> &'static str {
        match self {
            Stage::CacheRead => "cache_read",
            Stage::Fill => "fill",
            Stage::SourceRead => "source_read",
            Stage::SourceWrite => "source_write",
        }
    }
}

/// One thing the cache manager did.
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum MetricEvent {
    /// A read was served from the cache (`cache_hits`).
    Hit(KeyKind),
    /// A read was served from the near cache, without a round trip
    /// (`cache_hits` with `tier="near"`).
    NearHit(KeyKind),
    /// A read missed and was served by the source (`cache_misses`).
    Miss(KeyKind),
    /// A read was served from a cache entry known to be older than a pending
    /// write-behind update.
    Stale(KeyKind),
    /// The cache failed and the read was served by the source.
    Fallback(KeyKind),
    /// A cached value was rewritten or deleted (`invalidations`).
    Invalidation(KeyKind, InvalidationCause),
    /// Keys were prefilled by warming (`warm_count`).
    Warmed(u64),
    /// A fill lost against a newer write and was not stored.
    FillRejected(KeyKind),
    /// A cache store call failed.
    CacheError,
    /// A write-behind update found its queue full.
    WriteBehindDropped,
    /// The replay loop carried out this many owed steps (outbox entries)
    /// that their own writes' cache steps had not.
    Replayed(u64),
    /// A world had its cache dropped: its source went back in time, or the
    /// store refused its owed steps.
    WorldDropped,
    /// The cache went into trouble (`true`: a call failed, reads go to the
    /// source) or out of it (`false`: everything owed was carried out).
    Trouble(bool),
    /// The write-behind queue's depth after a change.
    WriteBehindDepth(usize),
    /// How long a stage took.
    Latency(Stage, KeyKind, Duration),
    // Fail-safe reads and stampede control.
    /// A read was served from an entry past its TTL because the source
    /// failed (`fail_safe_serves`).
    FailSafe(KeyKind),
    /// A miss waited for another read of the same key in this process and
    /// took its result instead of reading the source (`coalesced_misses`).
    Coalesced(KeyKind),
    /// A miss found another process's lease on its key and waited for its
    /// fill: `true` if the fill came in time, `false` if the wait ran out
    /// and the source was read (`lease_waits`).
    LeaseWait(KeyKind, bool),
    /// A read found a negative entry: the source has no such entity
    /// (`negative_hits`).
    NegativeHit(KeyKind),
    /// The background refresher read a popular key from the source before
    /// its TTL ended, to fill it under its lease (`refreshes`); a fill that
    /// lost to a newer write counts as [`FillRejected`](Self::FillRejected)
    /// too.
    Refreshed(KeyKind),

    // The circuit breaker around the cache store.
    /// The circuit breaker moved to this state.
    Breaker(BreakerState),
    /// A cache call failed at once because the breaker is open.
    BreakerRejected,
}

/// The metrics port. Implementations must be cheap: it is called on the hot
/// path of every read.
pub trait MetricsSink: Send + Sync {
    /// Records one event.
    fn record(&self, event: MetricEvent);
}

/// A sink that drops everything.
#[derive(Debug, Clone, Copy, Default)]
pub struct NoMetrics;

impl MetricsSink for NoMetrics {
    fn record(&self, _event: MetricEvent) {}
}

impl<T: MetricsSink + ?Sized> MetricsSink for Arc<T> {
    fn record(&self, event: MetricEvent) {
        (**self).record(event);
    }
}

/// Sends every event to two sinks.
#[derive(Debug, Clone)]
pub struct Both<A, B>(pub A, pub B);

impl<A: MetricsSink, B: MetricsSink> MetricsSink for Both<A, B> {
    fn record(&self, event: MetricEvent) {
        self.0.record(event);
        self.1.record(event);
    }
}

/// Totals of every counter, in process.
#[derive(Debug, Default)]
pub struct Counters {
    hits: AtomicU64,
    misses: AtomicU64,
    stale: AtomicU64,
    fallbacks: AtomicU64,
    invalidations: AtomicU64,
    warm_count: AtomicU64,
    fills_rejected: AtomicU64,
    decode_failures: AtomicU64,
    cache_errors: AtomicU64,
    write_behind_dropped: AtomicU64,
    replayed: AtomicU64,
    worlds_dropped: AtomicU64,
    fail_safe: AtomicU64,
    coalesced: AtomicU64,
    lease_waits: AtomicU64,
    lease_waits_filled: AtomicU64,
    negative_hits: AtomicU64,
    near_hits: AtomicU64,
    refreshes: AtomicU64,

    breaker_opened: AtomicU64,
    breaker_rejected: AtomicU64,
}

/// A copy of [`Counters`] at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct CounterSnapshot {
    /// `cache_hits`
    pub hits: u64,
    /// Reads served from the near cache (also in `cache_hits`).
    pub near_hits: u64,
    /// `cache_misses`
    pub misses: u64,
    /// Reads served stale.
    pub stale: u64,
    /// Reads served by the source because the cache failed.
    pub fallbacks: u64,
    /// `invalidations`
    pub invalidations: u64,
    /// `warm_count`
    pub warm_count: u64,
    /// Fills that lost against a newer write.
    pub fills_rejected: u64,
    /// Entries that failed to decode.
    pub decode_failures: u64,
    /// Failed cache store calls.
    pub cache_errors: u64,
    /// Write-behind updates that found the queue full.
    pub write_behind_dropped: u64,
    /// Owed steps carried out by the replay loop.
    pub replayed: u64,
    /// Worlds dropped because their source went back in time.
    pub worlds_dropped: u64,
    /// Reads served from an entry past its TTL because the source failed.
    pub fail_safe: u64,
    /// Misses that took another read's result in this process.
    pub coalesced: u64,
    /// Misses that waited for another process's fill.
    pub lease_waits: u64,
    /// Of those, the waits the fill ended in time.
    pub lease_waits_filled: u64,
    /// Reads answered by a negative entry.
    pub negative_hits: u64,
    /// Popular keys refreshed before their TTL ended.
    pub refreshes: u64,

    /// Times the circuit breaker opened (after a run of failures or a
    /// failed probe).
    pub breaker_opened: u64,
    /// Cache calls failed at once by the open breaker.
    pub breaker_rejected: u64,
}

impl Counters {
    /// New counters at zero.
    pub fn new() -> Self {
        Self::default()
    }

    /// The totals now.
    pub fn snapshot(&self) -> CounterSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CounterSnapshot {
            hits: get(&self.hits),
            near_hits: get(&self.near_hits),
            misses: get(&self.misses),
            stale: get(&self.stale),
            fallbacks: get(&self.fallbacks),
            invalidations: get(&self.invalidations),
            warm_count: get(&self.warm_count),
            fills_rejected: get(&self.fills_rejected),
            decode_failures: get(&self.decode_failures),
            cache_errors: get(&self.cache_errors),
            write_behind_dropped: get(&self.write_behind_dropped),
            replayed: get(&self.replayed),
            worlds_dropped: get(&self.worlds_dropped),
            fail_safe: get(&self.fail_safe),
            coalesced: get(&self.coalesced),
            lease_waits: get(&self.lease_waits),
            lease_waits_filled: get(&self.lease_waits_filled),
            negative_hits: get(&self.negative_hits),
            refreshes: get(&self.refreshes),

            breaker_opened: get(&self.breaker_opened),
            breaker_rejected: get(&self.breaker_rejected),
        }
    }
}

impl MetricsSink for Counters {
    fn record(&self, event: MetricEvent) {
        let add = |c: &AtomicU64, n: u64| {
            c.fetch_add(n, Ordering::Relaxed);
        };
        match event {
            MetricEvent::Hit(_) => add(&self.hits, 1),
            MetricEvent::NearHit(_) => {
                add(&self.hits, 1);
                add(&self.near_hits, 1);
            }
            MetricEvent::Miss(_) => add(&self.misses, 1),
            MetricEvent::Stale(_) => add(&self.stale, 1),
            MetricEvent::Fallback(_) => add(&self.fallbacks, 1),
            MetricEvent::Invalidation(_, cause) => {
                add(&self.invalidations, 1);
                if cause == InvalidationCause::DecodeFailure {
                    add(&self.decode_failures, 1);
                }
            }
            MetricEvent::Warmed(n) => add(&self.warm_count, n),
            MetricEvent::FillRejected(_) => add(&self.fills_rejected, 1),
            MetricEvent::CacheError => add(&self.cache_errors, 1),
            MetricEvent::WriteBehindDropped => add(&self.write_behind_dropped, 1),
            MetricEvent::Replayed(n) => add(&self.replayed, n),
            MetricEvent::WorldDropped => add(&self.worlds_dropped, 1),
            MetricEvent::FailSafe(_) => add(&self.fail_safe, 1),
            MetricEvent::Coalesced(_) => add(&self.coalesced, 1),
            MetricEvent::LeaseWait(_, filled) => {
                add(&self.lease_waits, 1);
                if filled {
                    add(&self.lease_waits_filled, 1);
                }
            }
            MetricEvent::NegativeHit(_) => add(&self.negative_hits, 1),
            MetricEvent::Refreshed(_) => add(&self.refreshes, 1),
            MetricEvent::Breaker(BreakerState::Open) => add(&self.breaker_opened, 1),
            MetricEvent::BreakerRejected => add(&self.breaker_rejected, 1),
            MetricEvent::Breaker(_) => {}
            MetricEvent::WriteBehindDepth(_)
            | MetricEvent::Latency(..)
            | MetricEvent::Trouble(_) => {}
        }
    }
}
