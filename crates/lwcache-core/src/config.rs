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

/// What a read does when the cached entry is older than a write-behind
/// update still queued in this process.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum StaleReads {
    /// Serve the older value, marked [`Outcome::Stale`](crate::Outcome::Stale):
    /// the bounded staleness that write-behind accepts for derived data.
    #[default]
    Serve,
    /// Read the source of truth instead.
    Bypass,
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
    /// What reads of a key with a pending write-behind update do.
    pub stale_reads: StaleReads,
}

impl Default for ManagerConfig {
    fn default() -> Self {
        Self {
            policy: CachePolicy::default(),
            cache_timeout: DEFAULT_CACHE_TIMEOUT,
            source_timeout: DEFAULT_SOURCE_TIMEOUT,
            write_behind_capacity: 1024,
            stale_reads: StaleReads::Serve,
        }
    }
}
