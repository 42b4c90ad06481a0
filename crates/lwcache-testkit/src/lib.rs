//! lwcache's conformance suite.
//!
//! Every adapter of a port runs the same checks, written once here as plain
//! `async fn`s over a [`Harness`]. The in-memory adapters run them in
//! `lwcache-memory`'s tests; the Redis and Neo4j adapters run them against
//! real servers. An adapter test crate calls [`conformance_tests!`] with a
//! function that builds its harness.
//!
//! - [`store`]: the cache store port.
//! - [`repository`]: the world repository port.
//! - [`stack`]: the cache manager over a store and a repository.
//! - [`decorators`]: port wrappers that record, fail or pause calls.
//! - [`fixtures`]: fresh ids and small documents.
//! - [`memory`]: [`memory_harness!`](crate::memory_harness), the in-memory store in front of any
//!   repository.
//! - [`proxy`]: a fault-injecting TCP proxy for tests against real servers.
//! - [`own_redis`]: a redis-server a test starts and stops itself.

#![allow(
    clippy::unwrap_used,
    reason = "a conformance check is a test: a failed unwrap is a failed check, with its message"
)]

pub mod decorators;
pub mod fixtures;
pub mod memory;
pub mod own_redis;
pub mod proxy;
pub mod repository;
pub mod servers;
pub mod stack;
pub mod store;

use std::sync::Arc;
use std::time::Duration;

/// What the testkit's macros name in the calling crate.
#[doc(hidden)]
pub mod __private {
    pub use async_trait::async_trait;
    pub use lwcache_core;
    pub use lwcache_domain;
}

use async_trait::async_trait;
use lwcache_core::ports::{CacheStore, WorldRepository};
use lwcache_domain::{CacheKey, WorldId};

/// What the suite needs to see inside a cache store, beyond the port.
#[async_trait]
pub trait StoreProbe: Send + Sync {
    /// Puts raw bytes under a key, bypassing the port's checks.
    async fn put_raw(&self, key: &CacheKey, bytes: Vec<u8>);
    /// Every key of `world` the store holds, formatted, sorted.
    async fn keys(&self, world: &WorldId) -> Vec<String>;
    /// A key's remaining TTL; `None` for a persistent or absent key.
    async fn ttl(&self, key: &CacheKey) -> Option<Duration>;
    /// Forgets every key of `world`, as a cache server restarted without
    /// persistence would.
    async fn forget(&self, world: &WorldId);
}

/// Moves time forward, for TTL checks: tokio's paused clock in memory, real
/// time against a server.
#[async_trait]
pub trait TimeControl: Send + Sync {
    /// Lets `d` pass.
    async fn advance(&self, d: Duration);
    /// The shortest TTL the store honours precisely.
    fn short_ttl(&self) -> Duration;
}

/// An adapter under test: a store, a repository and the probes around them.
/// Each check uses fresh world ids, so checks may share a server and run in
/// parallel.
#[derive(Clone)]
pub struct Harness {
    /// The cache store under test.
    pub store: Arc<dyn CacheStore>,
    /// The repository under test.
    pub repo: Arc<dyn WorldRepository>,
    /// A look inside the store.
    pub probe: Arc<dyn StoreProbe>,
    /// The clock for TTL checks.
    pub time: Arc<dyn TimeControl>,
}

/// Tokio's paused clock: `advance` moves it without sleeping. Use with
/// `#[tokio::test(start_paused = true)]`.
#[derive(Debug, Clone, Copy, Default)]
pub struct PausedClock;

#[async_trait]
impl TimeControl for PausedClock {
    async fn advance(&self, d: Duration) {
        tokio::time::advance(d).await;
    }
    fn short_ttl(&self) -> Duration {
        Duration::from_secs(60)
    }
}

/// Real time: `advance` sleeps.
#[derive(Debug, Clone, Copy, Default)]
pub struct RealClock;

#[async_trait]
impl TimeControl for RealClock {
    async fn advance(&self, d: Duration) {
        tokio::time::sleep(d).await;
    }
    fn short_ttl(&self) -> Duration {
        Duration::from_millis(300)
    }
}

/// Expands to one `#[tokio::test]` per conformance check.
///
/// `$harness` is an async expression of type `Option<Harness>`; `None`
/// means the adapter's server is not available and the check is skipped
/// (the harness function must say so loudly, and must fail instead when the
/// environment demands the server). `$flavor` is the test attribute's
/// arguments, e.g. `start_paused = true` for the in-memory adapters.
#[macro_export]
macro_rules! conformance_tests {
    ($harness:expr, $flavor:tt) => {
        $crate::conformance_tests!(@cases $harness, $flavor,
            store::absent_keys_read_as_none,
            store::commits_put_by_per_key_versions,
            store::tombstones_keep_older_puts_out,
            store::fills_need_their_lease,
            store::commits_take_the_leases_of_their_keys,
            store::fills_never_replace_newer_entries,
            store::leases_expire_and_go_with_the_store,
            store::remove_deletes_keys,
            store::dropping_a_world_leaves_nothing_of_it,
            store::a_commit_from_before_the_world_was_lost_lands_tombstones,
            store::ttls_expire_and_flags_persist,
            store::foreign_keys_are_refused,
            store::batched_gets_answer_each_key_in_order,
            repository::unknown_worlds_are_refused,
            repository::a_new_world_reads_back,
            repository::every_write_bumps_the_version_by_one,
            repository::concurrent_writers_get_distinct_versions,
            repository::entities_share_one_id_namespace,
            repository::timelines_are_newest_first_and_bounded,
            repository::concurrent_events_return_the_timeline_at_their_version,
            repository::deleting_an_entity_drops_its_timeline,
            repository::refused_writes_change_nothing,
            repository::agrees_with_the_reference_model,
            repository::loading_a_seed_equals_applying_it,
            repository::writes_record_what_they_owe_until_settled,
            repository::young_entries_are_left_to_their_writer,
            repository::held_entries_are_taken_only_when_asked,
            repository::loads_owe_nothing,
            repository::batched_reads_agree_with_single_reads,
            stack::misses_populate_the_cache,
            stack::every_change_invalidates_what_it_makes_stale,
            stack::entries_expire_after_their_ttl,
            stack::a_fill_that_races_a_write_never_leaves_the_old_value,
            stack::a_lost_cache_refills_without_stale_values,
            stack::activation_warms_every_expected_key,
            stack::recent_timelines_keep_order_and_top_k,
            stack::sensitive_values_never_reach_the_store,
            stack::configured_privacy_keeps_data_out_and_serves_it_from_the_source,
            stack::a_failing_store_never_fails_the_caller,
            stack::undecodable_entries_are_misses,
            stack::an_acknowledged_write_is_read_by_every_instance,
            stack::a_crash_between_commit_and_cache_step_is_replayed,
            stack::a_world_restored_to_an_older_version_is_dropped,
            stack::a_recreated_entity_never_serves_the_deleted_timeline,
            stack::batched_manager_reads_agree_with_single_reads,
            stack::batched_reads_see_every_acknowledged_write,
            stack::concurrent_misses_share_one_source_read,
            stack::a_miss_after_a_write_never_takes_an_older_flight,
            stack::entries_past_their_ttl_serve_marked_only_while_the_source_fails,
            stack::unknown_entities_are_remembered_until_a_create,
            stack::activation_spreads_expiry,
        );
    };
    (@cases $harness:expr, $flavor:tt, $($module:ident :: $case:ident),* $(,)?) => {
        $(
            #[tokio::test $flavor]
            async fn $case() {
                let Some(harness) = $harness.await else { return };
                $crate::$module::$case(&harness).await;
            }
        )*
    };
}
