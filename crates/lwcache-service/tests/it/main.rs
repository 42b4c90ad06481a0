//! The `lwcache` binary, started for real and driven over HTTP.
//!
//! Every test starts its own process on a free loopback port. The route
//! suite runs on the embedded default, and again on Redis when
//! `LWCACHE_TEST_REDIS_URL` is set (skipped loudly otherwise, failed under
//! `LWCACHE_REQUIRE_SERVERS=1`), and on Neo4j when `LWCACHE_TEST_NEO4J_URI`
//! is set, with `lwcache seed`.

#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap in a test is a failed test, with its message"
)]

mod cli;
mod neo4j;
mod openapi;
mod routes;
mod support;
