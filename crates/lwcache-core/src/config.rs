//! The cache manager's configuration.

use std::time::Duration;

use lwcache_domain::CachePolicy;

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
    /// The domain policies: write modes, TTLs, top-k, limits, privacy, warming.
    pub policy: CachePolicy,
    /// Every cache store call is bounded by this; past it the call counts as
    /// failed and the caller is served by the source.
    pub cache_timeout: Duration,
    /// Every source call is bounded by this.
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
            cache_timeout: Duration::from_millis(250),
            source_timeout: Duration::from_secs(5),
            write_behind_capacity: 1024,
            stale_reads: StaleReads::Serve,
        }
    }
}
