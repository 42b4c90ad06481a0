//! The scenarios: each measures lwcache and its baseline in the same run,
//! on the same server and the same bytes. This module holds what they
//! share: the plan of how many calls, the interleaved timing, the
//! manager's configuration and the run's world ids.
//!
//! - `reads`: cached reads against a raw GET and against the source, and
//!   the hit ratio of a simulated workload.
//! - `writes`: the write path against the bare source write.
//! - `throughput`: reads per second at several concurrencies, against
//!   redis-rs and `redis-benchmark`.
//! - `http`: the service's HTTP read path from outside (`wrk`, a Python
//!   client) against `redis-benchmark` and redis-py.
//! - `memory`: the entry's size in Redis against plain JSON, and
//!   activation against naive and pipelined SETs.
//! - `players`: the hit ratio with 1, 16 and 64 concurrent players in one
//!   world, and the reads older than an acknowledged write of their key.
//! - `availability`: reads with Redis partitioned and the breaker open, and
//!   writes with Redis slow, through the testkit's fault-injecting proxy.
//! - `turn`: a 14-key turn read as one batch, against raw `MGET` and 14
//!   single reads, warm and cold.
//! - `cluster`: the Redis-tier rows (hit, turn, throughput) again on a
//!   real Redis Cluster, beside the standalone ones.
//! - `near`: a near-cache hit against a Redis-tier hit, and how long
//!   another instance's write takes to reach a near cache.
//! - `refresh`: the hit ratio of the popular keys under Zipf reads with
//!   short TTLs, the background refresher off and on.
//! - `warming`: a 10,000-entity world activated within a budget of keys
//!   against warm-everything.

mod availability;
mod cluster;
mod cpu;
mod http;
mod memory;
mod near;
mod players;
mod reads;
mod refresh;
mod throughput;
mod turn;
mod warming;
mod writes;

use std::future::Future;
use std::time::{Duration, Instant};

use anyhow::{Context, Result};
use lwcache_bench::stats::Samples;
use lwcache_core::ManagerConfig;
use lwcache_domain::WorldId;
use redis::aio::ConnectionManager;

use crate::args::Mode;

/// The topology label of the standalone throughput rows measured with the
/// store's read batching on.
pub(crate) const BATCHED: &str = "standalone, reads batched";

pub(crate) use availability::availability;
pub(crate) use cluster::cluster_rows;
pub(crate) use http::http_reads;
pub(crate) use memory::{activation, memory_per_entity};
pub(crate) use near::near_reads;
pub(crate) use players::players;
pub(crate) use reads::{decode_cost_us, hit_ratio, read_hit_vs_get, read_hit_vs_source};
pub(crate) use refresh::refresh_and_warming;
pub(crate) use throughput::throughput;
pub(crate) use turn::{turn_cold, turn_warm};
pub(crate) use warming::active_warming;
pub(crate) use writes::write_path;

/// A raw redis-rs connection the baselines run on: a standalone server's
/// `ConnectionManager` or a Cluster's connection.
pub(crate) trait Raw: redis::aio::ConnectionLike + Clone + Send + Sync + 'static {}

impl<T: redis::aio::ConnectionLike + Clone + Send + Sync + 'static> Raw for T {}

/// How many calls each scenario makes in a mode.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    /// Untimed calls before each latency measurement, per side.
    pub(crate) warmup: usize,
    /// Timed calls per side of a Redis latency comparison.
    pub(crate) latency: usize,
    /// Timed calls per side of a comparison that involves the source.
    pub(crate) source_latency: usize,
    /// Reads per throughput measurement at one task.
    pub(crate) throughput: usize,
    /// Reads per throughput measurement at 16 and 64 tasks, shared by the
    /// tasks: more than at one, so that each of its rounds lasts long
    /// enough for a round's start and its tail (fewer tasks left in flight)
    /// to weigh little.
    pub(crate) throughput_concurrent: usize,
    /// Timed activations (and naive writes) of the 1,000-entity world.
    pub(crate) activations: usize,
    /// Turns of the simulated workload.
    pub(crate) turns: usize,
    /// Counted turns per number of players in the players scenario.
    pub(crate) player_turns: usize,
}

impl Plan {
    pub(crate) fn for_mode(mode: Mode) -> Self {
        match mode {
            Mode::Quick => Self {
                warmup: 500,
                latency: 10_000,
                source_latency: 300,
                throughput: 10_000,
                throughput_concurrent: 10_000,
                activations: 3,
                turns: 5_000,
                player_turns: 3_000,
            },
            Mode::Full => Self {
                warmup: 5_000,
                latency: 100_000,
                source_latency: 2_000,
                throughput: 200_000,
                throughput_concurrent: 1_000_000,
                activations: 15,
                turns: 50_000,
                player_turns: 30_000,
            },
        }
    }

    pub(crate) fn describe(&self) -> String {
        format!(
            "{} warm-up + {} timed calls per side (Redis), {} (with the source); {} reads per throughput level at one task, {} at 16 and 64; {} activations; {} simulated turns; {} turns per number of players",
            self.warmup,
            self.latency,
            self.source_latency,
            self.throughput,
            self.throughput_concurrent,
            self.activations,
            self.turns,
            self.player_turns
        )
    }
}

/// Calls are interleaved in blocks of this many, so that drift (another
/// process waking up, the CPU's clock) hits both sides alike.
pub(super) const BLOCK: usize = 100;

/// Concurrency levels of the throughput and players scenarios.
pub(crate) const CONCURRENCY: [usize; 3] = [1, 16, 64];

/// Events a recent-timeline read asks for in the simulated workload.
pub(super) const RECENT_LIMIT: usize = 10;

pub(super) async fn time<F: Future<Output = Result<()>>>(fut: F) -> Result<Duration> {
    let started = Instant::now();
    fut.await?;
    Ok(started.elapsed())
}

/// Times `n` calls of `a` and of `b`, interleaved in blocks, after
/// `warmup` untimed calls of each; `settle` runs untimed after every call.
/// Each closure gets the call's index and builds its future before the
/// clock starts.
pub(super) async fn compare<A, FA, B, FB, S, FS>(
    n: usize,
    warmup: usize,
    mut a: A,
    mut b: B,
    mut settle: S,
) -> Result<(Samples, Samples)>
where
    A: FnMut(usize) -> FA,
    FA: Future<Output = Result<()>>,
    B: FnMut(usize) -> FB,
    FB: Future<Output = Result<()>>,
    S: FnMut() -> FS,
    FS: Future<Output = ()>,
{
    for i in 0..warmup {
        a(i).await?;
        settle().await;
        b(i).await?;
        settle().await;
    }
    let (mut sa, mut sb) = (Samples::with_capacity(n), Samples::with_capacity(n));
    let mut start = 0;
    while start < n {
        let end = (start + BLOCK).min(n);
        for i in start..end {
            sa.record(time(a(warmup + i)).await?);
            settle().await;
        }
        for i in start..end {
            sb.record(time(b(warmup + i)).await?);
            settle().await;
        }
        start = end;
    }
    Ok((sa, sb))
}

pub(super) async fn nothing() {}

/// Times `subject` against a bare `WorldRepository::read` of `key` (with
/// the manager's top-k), interleaved, at the plan's source-latency counts.
pub(super) async fn against_source_read<S, R, A, FA>(
    manager: &lwcache_core::CacheManager<S, std::sync::Arc<R>>,
    repo: &std::sync::Arc<R>,
    key: &lwcache_domain::CacheKey,
    plan: &Plan,
    subject: A,
) -> Result<(Samples, Samples)>
where
    S: lwcache_core::ports::CacheStore + 'static,
    R: lwcache_core::ports::WorldRepository + 'static,
    A: FnMut(usize) -> FA,
    FA: Future<Output = Result<()>>,
{
    let top_k = manager.config().policy.timeline_top_k;
    let bare = |_| {
        let (r, k) = (std::sync::Arc::clone(repo), key.clone());
        async move {
            r.read(&k, top_k).await?;
            Ok(())
        }
    };
    compare(
        plan.source_latency,
        plan.warmup.min(plan.source_latency),
        subject,
        bare,
        nothing,
    )
    .await
}

/// How long the benchmark's Redis clients and cache calls wait for a reply.
pub(crate) const REPLY_TIMEOUT: Duration = Duration::from_secs(2);

/// The manager's configuration in every scenario: the defaults, with
/// longer timeouts.
pub(crate) fn config() -> ManagerConfig {
    ManagerConfig {
        // Reading the 1,000-entity world's image from Neo4j on a busy
        // machine takes seconds; the default 5 s can cut it off.
        source_timeout: Duration::from_secs(120),
        // The benchmark measures how long calls take, stalls included; it
        // does not measure the fallback that a 250 ms stall of the shared
        // 2 cores (a JIT burst in the JVM beside it) would trigger.
        cache_timeout: REPLY_TIMEOUT,
        ..ManagerConfig::default()
    }
}

/// A world id unique to this run and source, so that runs against the
/// same servers never collide, and neither do two sources in one run: they
/// share the Redis server, and a world's cached version left by one source
/// would make the other's fills lose.
pub(crate) fn world_id(name: &str, source: &str, run: u64) -> Result<WorldId> {
    let source: String = source
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '-'
            }
        })
        .collect();
    format!("bench-{name}-{source}-{run}")
        .parse()
        .with_context(|| format!("world id for {name}"))
}

/// The server's `redis_version`.
pub(crate) async fn redis_version(raw: &ConnectionManager) -> Result<String> {
    let mut conn = raw.clone();
    let info: String = redis::cmd("INFO")
        .arg("server")
        .query_async(&mut conn)
        .await?;
    Ok(info
        .lines()
        .find_map(|l| l.strip_prefix("redis_version:"))
        .map_or_else(|| "unknown".to_owned(), |v| v.trim().to_owned()))
}
