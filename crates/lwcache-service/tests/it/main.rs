//! The `lwcache` binary, started for real and driven over HTTP, and its
//! telemetry set-up.
//!
//! Every binary test starts its own process on a free loopback port. The
//! route suite runs on the embedded default, and again on Redis when
//! `LWCACHE_TEST_REDIS_URL` is set (skipped loudly otherwise, failed under
//! `LWCACHE_REQUIRE_SERVERS=1`), on a Redis Cluster when
//! `LWCACHE_TEST_REDIS_CLUSTER_URLS` is set, and on Neo4j when `LWCACHE_TEST_NEO4J_URI`
//! is set, with `lwcache seed`. The telemetry tests check the Prometheus
//! text with promtool and sample by sample, OTLP export to a local HTTP
//! stub (and none without an endpoint), and configuration from the standard
//! variables, every documented series at 0 from the start. The admin
//! routes are checked for who may call them and what they delete, and
//! privacy by scanning every value of a real Redis after a workload. The stampede test starts two processes over one Redis and
//! one Neo4j and counts, in Neo4j's own query log, the reads one cold key
//! cost.

#![allow(
    clippy::unwrap_used,
    reason = "a failed unwrap in a test is a failed test, with its message"
)]

mod admin;
mod cli;
mod cluster;
mod config;
mod eviction;
mod near;
mod neo4j;
mod openapi;
mod otlp;
mod privacy;
mod prometheus;
mod routes;
mod settings;
mod stampede;
mod support;
mod tls;
mod workload;
