//! The cache manager's configuration.

use std::time::Duration;

use lwcache_domain::CachePolicy;

/// The default deadline of one cache store call made by the manager
/// ([`ManagerConfig::cache_timeout`]). The manager owns this deadline;
/// adapters derive their own connection-level bounds from it.
pub const DEFAULT_CACHE_TIMEOUT: Duration = Duration::from_millis(250);

/// The default deadline of one source call made by the manager
/// ([`ManagerConfig::source_timeout`]).
pub const DEFAULT_SOURCE_TIMEOUT: Duration = Duration::from_secs(5);

/// The default run of failed cache calls that opens the circuit breaker
/// ([`ManagerConfig::breaker_failures`]).
pub const DEFAULT_BREAKER_FAILURES: u32 = 5;

/// The default time an open circuit breaker waits before its probe
/// ([`ManagerConfig::breaker_open`]).
pub const DEFAULT_BREAKER_OPEN: Duration = Duration::from_secs(1);

/// Whether a write-behind key may be served older than an acknowledged
/// write while its update waits in the queue.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StaleReads {
    /// Never: a write-behind key is tombstoned in the write's cache step,
    /// before the acknowledgement, and the worker refills it afterwards.
    /// Every instance then misses (and reads the source) or reads the refill.
    #[default]
    Never,
    /// The older entry stays until the worker replaces it. This process
    /// serves it marked [`Outcome::Stale`](crate::Outcome::Stale); other
    /// processes serve it as a hit. The window is the queue's delay. An
    /// explicit opt-in, for derived data that may lag.
    WhileQueued,
}

/// Everything the cache manager is configured with.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ManagerConfig {
    /// The domain policies: write modes, TTLs, top-k, limits, privacy,
    /// warming. Its `limits` are the one setting of document limits; a
    /// repository that checks them too is given these.
    pub policy: CachePolicy,
    /// Every cache store call the manager makes is bounded by this; past it
    /// the call counts as failed and the caller is served by the source.
    /// This is the deadline of a cache call: an adapter's own timeout is
    /// only a connection-level backstop (see `docs/ARCHITECTURE.md`,
    /// "Settings: who owns what").
    pub cache_timeout: Duration,
    /// Every source call the manager makes is bounded by this, whatever the
    /// repository's own timeout.
    pub source_timeout: Duration,
    /// How many write-behind updates may wait; past it an update becomes a
    /// synchronous invalidation instead of blocking the caller.
    pub write_behind_capacity: usize,
    /// Whether write-behind keys may be served older than a write.
    pub stale_reads: StaleReads,
    /// The entry format written; every format of this release is read
    /// ([`Format`](crate::codec::Format)). Changed only in the second step
    /// of a rolling upgrade, once every instance reads the new one.
    pub entry_format: crate::codec::Format,
    /// How long a miss's lease on its key lasts: the fill of a source read
    /// slower than this is dropped.
    pub lease_ttl: Duration,
    /// How long a miss waits for another reader's fill of the same key
    /// before it reads the source itself (without filling).
    pub lease_wait: Duration,
    /// The outbox replay: how often each process looks for owed cache steps.
    pub replay_interval: Duration,
    /// Only owed steps at least this old are replayed: younger ones belong
    /// to writes whose own step is probably still running.
    pub replay_min_age: Duration,
    /// At most this many owed steps per replay round.
    pub replay_batch: usize,
    /// Done outbox entries are removed in batches of at most this many, one
    /// source transaction per batch, at least every `settle_interval`.
    pub settle_batch: usize,
    /// How long done outbox entries may wait for their batch.
    pub settle_interval: Duration,

    // The circuit breaker around the cache store (`manager/breaker.rs`).
    /// How many cache calls in a row may fail (unreachable, or past
    /// `cache_timeout`) before the breaker opens and cache calls fail at
    /// once, without paying the timeout. At least 1.
    pub breaker_failures: u32,
    /// How long an open breaker fails calls before it lets one through as a
    /// probe; the probe's answer closes it, its failure opens it again.
    pub breaker_open: Duration,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        Self {
            policy: CachePolicy::default(),
            cache_timeout: DEFAULT_CACHE_TIMEOUT,
            source_timeout: DEFAULT_SOURCE_TIMEOUT,
            write_behind_capacity: 1024,
            stale_reads: StaleReads::Never,
            entry_format: crate::codec::Format::V1,
            lease_ttl: Duration::from_secs(5),
            lease_wait: Duration::from_millis(50),
            replay_interval: Duration::from_millis(500),
            replay_min_age: Duration::from_millis(500),
            replay_batch: 256,
            settle_batch: 256,
            settle_interval: Duration::from_millis(100),

            breaker_failures: DEFAULT_BREAKER_FAILURES,
            breaker_open: DEFAULT_BREAKER_OPEN,
        }
    }
}
