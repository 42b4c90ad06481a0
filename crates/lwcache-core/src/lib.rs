//! lwcache's core: the ports and the cache manager.
//!
//! - [`ports`]: the traits adapters implement: [`CacheStore`] (Redis, in
//!   memory), [`WorldRepository`] (Neo4j, in memory) and [`Clock`].
//! - [`metrics`]: the [`MetricsSink`] port and in-process [`Counters`].
//! - [`codec`]: the versioned binary format of a cache entry.
//! - [`manager`]: [`CacheManager`], generic over its ports: read-through,
//!   write-through, write-behind, invalidation, versions and warming.
//! - [`near`]: the optional in-process tier in front of the store, and the
//!   [`InvalidationFeed`] port that keeps it
//!   coherent across processes.
//!
//! Cache store failures never fail a caller: reads fall back to the source
//! and writes are acknowledged once durable in the source.

pub mod codec;
mod config;
mod error;
pub mod manager;
pub mod metrics;
pub mod near;
pub mod ports;

pub use config::{
    ConfigError, DEFAULT_BREAKER_FAILURES, DEFAULT_BREAKER_OPEN, DEFAULT_CACHE_TIMEOUT,
    DEFAULT_DECODE_MEMO_BYTES, DEFAULT_SOURCE_TIMEOUT, ManagerConfig, RefreshConfig, RefreshError,
    StaleReads,
};
pub use error::Error;
pub use manager::{
    BreakerState, Builder, CacheManager, CacheStep, Fields, ItemRead, Outcome, Read, SourceFailure,
    Staleness, WarmReport, Written,
};
pub use metrics::{CounterSnapshot, Counters, MetricEvent, MetricsSink, NoMetrics, Stage};
pub use near::{InvalidationFeed, InvalidationSink, NearCache, NearConfig};
pub use ports::{
    CacheError, CacheStore, CacheWrite, Cause, Clock, Put, SourceError, SystemClock,
    WorldRepository, WriteKind, WriteOutcome,
};

/// The domain crate, re-exported so that users of the core need one import.
pub use lwcache_domain as domain;
