//! lwcache-neo4j against a real Neo4j 5.26: the conformance suite that the
//! in-memory repository passes, and what only Neo4j shows (concurrent
//! versions, the timeline index, the schema step, errors and timeouts,
//! authentication and URI schemes).
//!
//! The server comes from `LWCACHE_TEST_NEO4J_URI` (with `_USER` and
//! `_PASSWORD`); without it the tests skip loudly, unless
//! `LWCACHE_REQUIRE_SERVERS=1` demands it. `cargo xtask ci` starts one.

#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap in a test is a failed test, with its message"
)]

mod outbox;
mod specific;
mod support;

mod conformance {
    use crate::support::harness;
    lwcache_testkit::conformance_tests!(harness(), (flavor = "multi_thread", worker_threads = 2));
}
