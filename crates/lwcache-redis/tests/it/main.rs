//! lwcache-redis against real servers: the conformance suite and checks of
//! what only Redis shows, on a standalone server and on a Cluster.
//!
//! Servers come from the environment (`LWCACHE_TEST_REDIS_URL`,
//! `LWCACHE_TEST_REDIS_CLUSTER_URLS`, optionally
//! `LWCACHE_TEST_REDIS_ACL_URL`); without them the tests skip loudly, unless
//! `LWCACHE_REQUIRE_SERVERS=1` demands them. Only `restart` starts a server of
//! its own, because it must stop and start it, and `background`, because
//! its server must start after the store.

#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap in a test is a failed test, with its message"
)]

mod background;
mod config;
mod faults;
mod gets;
mod near;
mod refused;
mod restart;
mod server_info;
mod specific;
mod support;
mod upgrade;

mod standalone {
    use crate::support::standalone_harness;
    lwcache_testkit::conformance_tests!(
        standalone_harness(),
        (flavor = "multi_thread", worker_threads = 2)
    );
}

mod cluster {
    use crate::support::cluster_harness;
    lwcache_testkit::conformance_tests!(
        cluster_harness(),
        (flavor = "multi_thread", worker_threads = 2)
    );
}
