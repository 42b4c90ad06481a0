//! What a benchmark run found: plain data, rendered by [`crate::render`].
//!
//! Every figure sits beside the baseline it was measured against in the
//! same run, so the report carries ratios, not bare numbers.

use crate::stats::{Summary, ratio};

/// A whole run.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Report {
    /// `quick` or `full`.
    pub mode: String,
    /// The machine and the conditions of the run, in display order.
    pub environment: Vec<(String, String)>,
    /// Latencies against their baselines.
    pub latency: Vec<LatencyComparison>,
    /// Read throughput by concurrency.
    pub throughput: Vec<ThroughputRow>,
    /// The service's HTTP read path by connections, from outside.
    pub http: Vec<HttpRow>,
    /// World activations against naive writes of the same bytes.
    pub activation: Vec<ActivationRow>,
    /// Bytes per cached entity.
    pub memory: Option<MemoryRow>,
    /// Hit ratios under a simulated workload.
    pub hit_ratio: Vec<HitRatioRow>,
    /// Hit ratios with concurrent players in one world, by source and
    /// number of players.
    pub players: Vec<PlayersRow>,
    /// The targets the issue sets, checked.
    pub targets: Vec<TargetCheck>,
    /// Scenarios that were not measured, and why.
    pub not_measured: Vec<NotMeasured>,
    /// How the figures were taken.
    pub notes: Vec<String>,
}

/// One measured operation.
#[derive(Debug, Clone, PartialEq)]
pub struct Measured {
    /// What was measured, e.g. `lwcache read (hit)`.
    pub label: String,
    /// Its latency distribution.
    pub summary: Summary,
}

/// An operation of lwcache's against its baseline.
#[derive(Debug, Clone, PartialEq)]
pub struct LatencyComparison {
    /// A stable identifier, e.g. `read_hit_vs_redis_get`.
    pub id: String,
    /// A title for tables and the chart.
    pub title: String,
    /// lwcache's operation.
    pub subject: Measured,
    /// The baseline.
    pub baseline: Measured,
    /// What the comparison means or how it was taken.
    pub note: String,
}

impl LatencyComparison {
    /// Subject p50 over baseline p50.
    pub fn ratio_p50(&self) -> Option<f64> {
        ratio(self.subject.summary.p50_us, self.baseline.summary.p50_us)
    }

    /// Subject p99 over baseline p99.
    pub fn ratio_p99(&self) -> Option<f64> {
        ratio(self.subject.summary.p99_us, self.baseline.summary.p99_us)
    }
}

/// Read throughput at one concurrency.
#[derive(Debug, Clone, PartialEq)]
pub struct ThroughputRow {
    /// `standalone` or `cluster`: the Redis the row was measured on.
    pub topology: String,
    /// Concurrent tasks (and `redis-benchmark` connections).
    pub concurrency: usize,
    /// Reads per measurement.
    pub requests: u64,
    /// lwcache cached reads per second.
    pub lwcache_ops_per_s: f64,
    /// Raw redis-rs GETs of the same key per second, same client setup.
    pub redis_rs_ops_per_s: f64,
    /// Timed lwcache reads the cache did not answer within the manager's
    /// cache timeout, served by the source instead (counted in the rate).
    pub lwcache_fallbacks: u64,
    /// `redis-benchmark` GETs of the same key per second, when it ran.
    pub redis_benchmark_ops_per_s: Option<f64>,
}

/// The service's HTTP read path at one number of connections: `wrk`
/// against `lwcache serve`, and `redis-benchmark` GETs of the same cache
/// key, in the same run.
#[derive(Debug, Clone, PartialEq)]
pub struct HttpRow {
    /// Whether the service ran its near cache.
    pub near: bool,
    /// The service's `--worker-threads`: 0 for one worker per core (its
    /// default), 1 for everything on one thread.
    pub worker_threads: usize,
    /// Whether the service ran sharded (`--runtime sharded`): a
    /// single-threaded runtime per thread, each with its own listener and
    /// Redis read connection.
    pub sharded: bool,
    /// Open connections (of wrk, and of redis-benchmark).
    pub connections: usize,
    /// Requests wrk completed.
    pub requests: u64,
    /// Reads per second through the HTTP API.
    pub http_ops_per_s: f64,
    /// wrk's latency percentiles, in µs.
    pub http_p50_us: f64,
    /// The 99th.
    pub http_p99_us: f64,
    /// `redis-benchmark` GETs of the same key per second, when it ran.
    pub redis_benchmark_ops_per_s: Option<f64>,
    /// wrk against the same service's `/healthz`, which does no cache work,
    /// per second: the most any read route could reach here (near cache
    /// off rows only).
    pub ceiling_ops_per_s: Option<f64>,
    /// CPU time the service spent per `/healthz` request, in µs.
    pub ceiling_service_cpu_us: Option<f64>,
    /// CPU time wrk spent per `/healthz` request, in µs.
    pub ceiling_wrk_cpu_us: Option<f64>,
    /// CPU time wrk spent per HTTP read, in µs.
    pub wrk_cpu_us: Option<f64>,
    /// CPU time redis-benchmark spent per GET, in µs.
    pub redis_benchmark_cpu_us: Option<f64>,
    /// CPU time the service spent per HTTP read, in µs, all threads.
    pub service_cpu_us: Option<f64>,
    /// CPU time redis-server spent per HTTP read, in µs.
    pub redis_cpu_us: Option<f64>,
    /// CPU time redis-server spent per `redis-benchmark` GET, in µs.
    pub redis_benchmark_redis_cpu_us: Option<f64>,
}

impl HttpRow {
    /// The HTTP reads over `redis-benchmark`.
    pub fn ratio_to_redis_benchmark(&self) -> Option<f64> {
        self.redis_benchmark_ops_per_s
            .and_then(|b| ratio(self.http_ops_per_s, b))
    }

    /// The no-cache ceiling over `redis-benchmark`: the best ratio any read
    /// route could reach here.
    pub fn ceiling_to_redis_benchmark(&self) -> Option<f64> {
        let ceiling = self.ceiling_ops_per_s?;
        self.redis_benchmark_ops_per_s
            .and_then(|b| ratio(ceiling, b))
    }

    /// The CPU a read needs at least, in µs, of every process on the
    /// machine, at the costs this row measured: wrk's and the service's
    /// per `/healthz` request (an HTTP request and its answer, no cache
    /// work) and redis-server's per HTTP read.
    pub fn least_cpu_per_read_us(&self) -> Option<f64> {
        Some(self.ceiling_wrk_cpu_us? + self.ceiling_service_cpu_us? + self.redis_cpu_us?)
    }

    /// The reads a second that `cores` could serve, all of them busy, if a
    /// read cost only [`least_cpu_per_read_us`](Self::least_cpu_per_read_us),
    /// over `redis-benchmark`: the best ratio an HTTP read through Redis
    /// could reach on this machine at these costs.
    pub fn cpu_bound_to_redis_benchmark(&self, cores: usize) -> Option<f64> {
        let least = self.least_cpu_per_read_us()?;
        if least <= 0.0 || cores == 0 {
            return None;
        }
        let bound = cores as f64 * 1e6 / least;
        self.redis_benchmark_ops_per_s.and_then(|b| ratio(bound, b))
    }
}

impl ThroughputRow {
    /// lwcache over `redis-benchmark`.
    pub fn ratio_to_redis_benchmark(&self) -> Option<f64> {
        self.redis_benchmark_ops_per_s
            .and_then(|b| ratio(self.lwcache_ops_per_s, b))
    }

    /// lwcache over raw redis-rs.
    pub fn ratio_to_redis_rs(&self) -> Option<f64> {
        ratio(self.lwcache_ops_per_s, self.redis_rs_ops_per_s)
    }
}

/// Activations of one world from one source.
#[derive(Debug, Clone, PartialEq)]
pub struct ActivationRow {
    /// The source of truth, e.g. `in-memory` or `Neo4j 5.26`.
    pub source: String,
    /// Entities in the world.
    pub entities: usize,
    /// Events per entity in the source.
    pub events_per_entity: usize,
    /// Keys one activation prefills.
    pub keys: usize,
    /// Bytes one activation writes (values only).
    pub bytes: u64,
    /// The whole activation: image read, encoding, batched versioned writes.
    pub activation: Summary,
    /// Cache store calls one activation makes (counted at the port).
    pub activation_round_trips: u64,
    /// Of the activation: reading the world's image from the source.
    pub image_read: Summary,
    /// One awaited `SET key bytes PX ttl` per key of the same bytes.
    pub naive: Summary,
    /// Round trips of the naive writes: one per key.
    pub naive_round_trips: u64,
    /// The same `SET`s sent as one pipeline.
    pub pipelined: Summary,
}

/// Bytes per cached entity, lwcache's encoding against plain JSON.
#[derive(Debug, Clone, PartialEq)]
pub struct MemoryRow {
    /// How many entities were measured.
    pub entities: usize,
    /// Which entities.
    pub what: String,
    /// Mean `MEMORY USAGE` of lwcache's entries, bytes.
    pub lwcache_memory_usage: f64,
    /// Mean `MEMORY USAGE` of the plain JSON documents under keys of the
    /// same length, bytes.
    pub json_memory_usage: f64,
    /// Mean size of lwcache's entries (`STRLEN`), bytes.
    pub lwcache_value_bytes: f64,
    /// Mean size of the JSON documents, bytes.
    pub json_value_bytes: f64,
}

impl MemoryRow {
    /// lwcache's `MEMORY USAGE` over JSON's.
    pub fn ratio(&self) -> Option<f64> {
        ratio(self.lwcache_memory_usage, self.json_memory_usage)
    }
}

/// Hit ratio of one simulated workload.
#[derive(Debug, Clone, PartialEq)]
pub struct HitRatioRow {
    /// The source of truth behind the cache.
    pub source: String,
    /// The workload, e.g. `Zipf(1.0), 10% writes, standard demo world`.
    pub workload: String,
    /// Turns played, warm-up included.
    pub turns: u64,
    /// Turns counted as warm-up (from a cold cache).
    pub warmup_turns: u64,
    /// Reads over the whole run.
    pub reads: u64,
    /// Reads served by the cache (hits and stale hits) over the whole run.
    pub cache_served: u64,
    /// Of those, hits.
    pub hits: u64,
    /// Reads after warm-up.
    pub reads_after_warmup: u64,
    /// Reads after warm-up served by the cache.
    pub cache_served_after_warmup: u64,
    /// Writes over the whole run.
    pub writes: u64,
    /// Fills that lost against a newer write (the manager's counter).
    pub fills_rejected: u64,
    /// Reads served by the source because the cache failed.
    pub fallbacks: u64,
}

impl HitRatioRow {
    /// Share of all reads served by the cache.
    pub fn overall(&self) -> Option<f64> {
        ratio(self.cache_served as f64, self.reads as f64)
    }

    /// Share of reads after warm-up served by the cache.
    pub fn after_warmup(&self) -> Option<f64> {
        ratio(
            self.cache_served_after_warmup as f64,
            self.reads_after_warmup as f64,
        )
    }
}

/// One number of concurrent players in one world, over one source.
#[derive(Debug, Clone, PartialEq)]
pub struct PlayersRow {
    /// The source of truth behind the cache.
    pub source: String,
    /// Concurrent players (tokio tasks), each taking turns.
    pub players: usize,
    /// Turns counted, over all players (after the warm-up).
    pub turns: u64,
    /// Turns played before counting, at the same concurrency.
    pub warmup_turns: u64,
    /// Reads counted.
    pub reads: u64,
    /// Of those, served by the cache.
    pub hits: u64,
    /// Writes counted.
    pub writes: u64,
    /// Fills that lost against a newer write (the manager's counter, over
    /// the counted turns).
    pub fills_rejected: u64,
    /// Reads served by the source because the cache failed.
    pub fallbacks: u64,
    /// Reads whose value was older than a write of the same key
    /// acknowledged before the read started.
    pub stale_reads: u64,
    /// Reads not served by the cache, by key kind (`timeline`,
    /// `character`, …), most first.
    pub misses_by_kind: Vec<(String, u64)>,
    /// Of the reads not served by the cache, those of keys no write of the
    /// run had touched when the read ended: what a world-wide gate costs.
    pub unwritten_key_misses: u64,
}

impl PlayersRow {
    /// Hits over reads.
    pub fn hit_ratio(&self) -> Option<f64> {
        ratio(self.hits as f64, self.reads as f64)
    }
}

/// The hit ratio with the most players in one world must stay at or above
/// this share of the ratio with one player.
pub const PLAYERS_TARGET: f64 = 0.97;

/// The players target over one source's rows, fewest players first: the
/// most players' hit ratio over the fewest's, and no stale read at any
/// level. `None` without rows or reads.
pub fn players_target(rows: &[PlayersRow]) -> Option<TargetCheck> {
    let (first, last) = (rows.first()?, rows.last()?);
    let (one, many) = (first.hit_ratio()?, last.hit_ratio()?);
    let share = many / one;
    let stale: u64 = rows.iter().map(|r| r.stale_reads).sum();
    let met = share >= PLAYERS_TARGET && stale == 0;
    Some(TargetCheck {
        name: format!(
            "hit ratio with {} players in one world over {} player ({})",
            last.players, first.players, first.source
        ),
        goal: format!("≥ {PLAYERS_TARGET:.2}, 0 stale reads"),
        measured: format!(
            "{share:.3} ({:.1}% vs {:.1}%), {stale} stale reads",
            many * 100.0,
            one * 100.0
        ),
        met,
        why: (!met).then(|| {
            format!(
                "{} fills rejected with {} players against {} with {}; misses with {} players: {} ({} of keys never written); {stale} reads older than an acknowledged write of their key",
                last.fills_rejected,
                last.players,
                first.fills_rejected,
                first.players,
                last.players,
                fmt_kinds(&last.misses_by_kind),
                last.unwritten_key_misses,
            )
        }),
    })
}

/// Counts by kind as `timeline 12, flags 1`; `none` when empty.
pub fn fmt_kinds(kinds: &[(String, u64)]) -> String {
    if kinds.is_empty() {
        return "none".to_owned();
    }
    kinds
        .iter()
        .map(|(kind, n)| format!("{kind} {n}"))
        .collect::<Vec<_>>()
        .join(", ")
}

/// A target and whether the run met it.
#[derive(Debug, Clone, PartialEq)]
pub struct TargetCheck {
    /// What is targeted.
    pub name: String,
    /// The goal, e.g. `≤ 15%`.
    pub goal: String,
    /// What was measured.
    pub measured: String,
    /// Whether the goal was met.
    pub met: bool,
    /// Why not, when it was missed.
    pub why: Option<String>,
}

/// A scenario the run did not measure.
#[derive(Debug, Clone, PartialEq)]
pub struct NotMeasured {
    /// The scenario.
    pub scenario: String,
    /// Why.
    pub why: String,
}
