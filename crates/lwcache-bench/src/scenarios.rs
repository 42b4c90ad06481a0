//! The scenarios: each measures lwcache and its baseline in the same run,
//! on the same server and the same bytes.

use std::future::Future;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use lwcache_bench::render::fmt_us;
use lwcache_bench::report::{
    ActivationRow, HitRatioRow, LatencyComparison, Measured, MemoryRow, ThroughputRow,
};
use lwcache_bench::stats::Samples;
use lwcache_core::codec;
use lwcache_core::ports::{CacheStore, Put, WorldRepository};
use lwcache_core::{CacheManager, Counters, Fields, ManagerConfig, MetricsSink, Outcome};
use lwcache_demo::{Action, DemoSpec, Simulation};
use lwcache_domain::{
    CacheKey, CachedValue, Document, EntityRef, EventKind, FlagName, Mutation, NewEvent, Op, Value,
    WorldId,
};
use redis::aio::ConnectionManager;

use crate::args::{Mode, redis_host_port};
use crate::counting::Counting;

/// How many calls each scenario makes in a mode.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Plan {
    /// Untimed calls before each latency measurement, per side.
    pub(crate) warmup: usize,
    /// Timed calls per side of a Redis latency comparison.
    pub(crate) latency: usize,
    /// Timed calls per side of a comparison that involves the source.
    pub(crate) source_latency: usize,
    /// Reads per throughput measurement, shared by the tasks.
    pub(crate) throughput: usize,
    /// Timed activations (and naive writes) of the 1,000-entity world.
    pub(crate) activations: usize,
    /// Turns of the simulated workload.
    pub(crate) turns: usize,
}

impl Plan {
    pub(crate) fn for_mode(mode: Mode) -> Self {
        match mode {
            Mode::Quick => Self {
                warmup: 500,
                latency: 10_000,
                source_latency: 300,
                throughput: 10_000,
                activations: 3,
                turns: 5_000,
            },
            Mode::Full => Self {
                warmup: 5_000,
                latency: 100_000,
                source_latency: 2_000,
                throughput: 200_000,
                activations: 15,
                turns: 50_000,
            },
        }
    }

    pub(crate) fn describe(&self) -> String {
        format!(
            "{} warm-up + {} timed calls per side (Redis), {} (with the source); {} reads per throughput level; {} activations; {} simulated turns",
            self.warmup,
            self.latency,
            self.source_latency,
            self.throughput,
            self.activations,
            self.turns
        )
    }
}

/// Calls are interleaved in blocks of this many, so that drift (another
/// process waking up, the CPU's clock) hits both sides alike.
const BLOCK: usize = 100;

/// Concurrency levels of the throughput scenario.
pub(crate) const CONCURRENCY: [usize; 3] = [1, 16, 64];

/// Events a recent-timeline read asks for in the simulated workload.
const RECENT_LIMIT: usize = 10;

async fn time<F: Future<Output = Result<()>>>(fut: F) -> Result<Duration> {
    let started = Instant::now();
    fut.await?;
    Ok(started.elapsed())
}

/// Times `n` calls of `a` and of `b`, interleaved in blocks, after
/// `warmup` untimed calls of each; `settle` runs untimed after every call.
/// Each closure gets the call's index and builds its future before the
/// clock starts.
async fn compare<A, FA, B, FB, S, FS>(
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

async fn nothing() {}

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

/// A cached read of a warm character state against a raw GET of the very
/// same key, each over its own `ConnectionManager` to the same server.
pub(crate) async fn read_hit_vs_get<S, R>(
    manager: &CacheManager<S, R>,
    raw: &ConnectionManager,
    world: &WorldId,
    entity: &EntityRef,
    plan: &Plan,
) -> Result<LatencyComparison>
where
    S: CacheStore + 'static,
    R: WorldRepository + 'static,
{
    let key = CacheKey::entity(world, entity).to_string();
    let hit = |_| cached_read(manager, world, entity, None);
    let get = |_| {
        let (mut c, k) = (raw.clone(), key.clone());
        async move {
            let bytes: Option<Vec<u8>> = redis::cmd("GET").arg(&k).query_async(&mut c).await?;
            ensure!(bytes.is_some(), "{k} is not cached");
            Ok(())
        }
    };
    let (subject, baseline) = compare(plan.latency, plan.warmup, hit, get, nothing).await?;
    Ok(LatencyComparison {
        id: "read_hit_vs_redis_get".to_owned(),
        title: "cached read (Redis tier)".to_owned(),
        subject: Measured {
            label: "CacheManager::entity, hit".to_owned(),
            summary: subject.summary(),
        },
        baseline: Measured {
            label: "redis-rs GET of the same key".to_owned(),
            summary: baseline.summary(),
        },
        note: format!(
            "a character state of {} bytes; both sides use redis-rs's ConnectionManager to the same server",
            entry_len(raw, &key).await?
        ),
    })
}

async fn entry_len(raw: &ConnectionManager, key: &str) -> Result<usize> {
    let mut conn = raw.clone();
    let len: usize = redis::cmd("STRLEN").arg(key).query_async(&mut conn).await?;
    Ok(len)
}

/// How long decoding the entry under `key` takes on its own, in µs (mean
/// of many runs): the part of the hit path's overhead that is not I/O.
pub(crate) async fn decode_cost_us(raw: &ConnectionManager, key: &CacheKey) -> Result<f64> {
    let mut conn = raw.clone();
    let bytes: Vec<u8> = redis::cmd("GET")
        .arg(key.to_string())
        .query_async(&mut conn)
        .await?;
    let rounds = 20_000u32;
    let started = Instant::now();
    for _ in 0..rounds {
        std::hint::black_box(codec::decode(std::hint::black_box(&bytes))?);
    }
    Ok(started.elapsed().as_secs_f64() * 1e6 / f64::from(rounds))
}

/// One read of `entity` through the manager, which must be answered by the
/// cache. A fallback to the source (a cache call over the manager's cache
/// timeout) is counted in `fallbacks` when given, and an error otherwise.
fn cached_read<S, R>(
    manager: &CacheManager<S, R>,
    world: &WorldId,
    entity: &EntityRef,
    fallbacks: Option<&Arc<AtomicU64>>,
) -> impl Future<Output = Result<()>> + Send + 'static
where
    S: CacheStore + 'static,
    R: WorldRepository + 'static,
{
    let (m, w, e) = (manager.clone(), world.clone(), entity.clone());
    let fallbacks = fallbacks.cloned();
    async move {
        let read = m.entity(&w, &e, Fields::Cacheable).await?;
        match (read.outcome, &fallbacks) {
            (Outcome::Hit, _) => {}
            (Outcome::Fallback, Some(fallbacks)) => {
                fallbacks.fetch_add(1, Ordering::Relaxed);
            }
            (other, _) => bail!("not a hit: {other:?}"),
        }
        Ok(())
    }
}

/// A cached read against a direct read of the same entity from the source.
pub(crate) async fn read_hit_vs_source<S, R>(
    manager: &CacheManager<S, Arc<R>>,
    repo: &Arc<R>,
    source: &str,
    world: &WorldId,
    entity: &EntityRef,
    plan: &Plan,
) -> Result<LatencyComparison>
where
    S: CacheStore + 'static,
    R: WorldRepository + 'static,
{
    let key = CacheKey::entity(world, entity);
    let top_k = manager.config().policy.timeline_top_k;
    let hit = |_| cached_read(manager, world, entity, None);
    let direct = |_| {
        let (r, k) = (Arc::clone(repo), key.clone());
        async move {
            r.read(&k, top_k).await?;
            Ok(())
        }
    };
    let (subject, baseline) = compare(
        plan.source_latency,
        plan.warmup.min(plan.source_latency),
        hit,
        direct,
        nothing,
    )
    .await?;
    let (subject, baseline) = (subject.summary(), baseline.summary());
    Ok(LatencyComparison {
        id: "read_hit_vs_source_read".to_owned(),
        title: format!("cached read vs {source}"),
        subject: Measured {
            label: "CacheManager::entity, hit".to_owned(),
            summary: subject,
        },
        baseline: Measured {
            label: format!("{source} read of the same entity"),
            summary: baseline,
        },
        note: format!(
            "speedup {:.1}× at p50 and {:.1}× at p99 (baseline over cached); the baseline is WorldRepository::read of the same entity on {source}",
            baseline.p50_us / subject.p50_us.max(f64::MIN_POSITIVE),
            baseline.p99_us / subject.p99_us.max(f64::MIN_POSITIVE),
        ),
    })
}

/// The write path through the manager against the bare source write: an
/// event added (write-behind timeline) and a flag set (write-through).
pub(crate) async fn write_path<S, R>(
    manager: &CacheManager<S, Arc<R>>,
    repo: &Arc<R>,
    source: &str,
    world: &WorldId,
    entity: &EntityRef,
    plan: &Plan,
) -> Result<Vec<LatencyComparison>>
where
    S: CacheStore + 'static,
    R: WorldRepository + 'static,
{
    let kind = EventKind::new("spoke")?;
    let flag = FlagName::new("bench_flag")?;
    let event = |i: usize| Document::new().with("turn", Value::Int(i as i64));
    let settle = || {
        let m = manager.clone();
        async move { m.settle().await }
    };
    let warmup = (plan.warmup / 10).clamp(10, 100);

    let through_cache = |i| {
        let (m, w, e, k, d) = (
            manager.clone(),
            world.clone(),
            entity.entity_id(),
            kind.clone(),
            event(i),
        );
        async move {
            m.add_event(&w, e, k, d).await?;
            Ok(())
        }
    };
    let bare = |i| {
        let r = Arc::clone(repo);
        let mutation = Mutation {
            world: world.clone(),
            op: Op::AddEvent(NewEvent {
                entity: entity.entity_id(),
                kind: kind.clone(),
                at_ms: lwcache_demo::EPOCH_MS,
                data: event(i),
            }),
        };
        async move {
            r.apply(&mutation).await?;
            Ok(())
        }
    };
    let (add_subject, add_baseline) =
        compare(plan.source_latency, warmup, through_cache, bare, settle).await?;

    let through_cache = |i: usize| {
        let (m, w, f) = (manager.clone(), world.clone(), flag.clone());
        async move {
            m.set_flag(&w, f, Value::Bool(i.is_multiple_of(2))).await?;
            Ok(())
        }
    };
    let bare = |i: usize| {
        let r = Arc::clone(repo);
        let mutation = Mutation {
            world: world.clone(),
            op: Op::SetFlag(flag.clone(), Value::Bool(i.is_multiple_of(2))),
        };
        async move {
            r.apply(&mutation).await?;
            Ok(())
        }
    };
    let (flag_subject, flag_baseline) =
        compare(plan.source_latency, warmup, through_cache, bare, settle).await?;

    Ok(vec![
        write_comparison(
            "write_add_event",
            &format!("add an event ({source})"),
            "CacheManager::add_event",
            source,
            (&add_subject, &add_baseline),
            "timelines are write-behind: the caller waits for the source commit and the queueing; the background refresh runs after the acknowledgement and is let finish, untimed, between samples",
        ),
        write_comparison(
            "write_set_flag",
            &format!("set a flag ({source})"),
            "CacheManager::set_flag",
            source,
            (&flag_subject, &flag_baseline),
            "flags are write-through: the caller also waits for the versioned cache write (one EVALSHA)",
        ),
    ])
}

/// One write through the manager against the bare source write.
fn write_comparison(
    id: &str,
    title: &str,
    label: &str,
    source: &str,
    (subject, baseline): (&Samples, &Samples),
    why: &str,
) -> LatencyComparison {
    LatencyComparison {
        id: id.to_owned(),
        title: title.to_owned(),
        subject: Measured {
            label: label.to_owned(),
            summary: subject.summary(),
        },
        baseline: Measured {
            label: format!("bare {source} apply"),
            summary: baseline.summary(),
        },
        note: format!("{}; {why}", added_cost(subject, baseline)),
    }
}

/// What the cache adds to a write, in absolute terms.
fn added_cost(subject: &Samples, baseline: &Samples) -> String {
    let (s, b) = (subject.summary(), baseline.summary());
    let (p50, p99) = (s.p50_us - b.p50_us, s.p99_us - b.p99_us);
    let noise = if p50 < 0.0 || p99 < 0.0 {
        " (a negative difference: the cost is below this run's noise)"
    } else {
        ""
    };
    format!(
        "the cache adds {} at p50 and {} at p99{noise}",
        fmt_us(p50),
        fmt_us(p99)
    )
}

/// Runs `total` reads shared by `c` tasks; returns how many ran and how
/// long they took.
async fn run_tasks<F, Fut>(c: usize, total: usize, read: F) -> Result<(usize, Duration)>
where
    F: Fn() -> Fut,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    let per_task = (total / c).max(1);
    // The futures are built before the clock starts; each only clones
    // handles, and nothing runs until it is polled.
    let batches: Vec<Vec<Fut>> = (0..c)
        .map(|_| (0..per_task).map(|_| read()).collect())
        .collect();
    let started = Instant::now();
    let tasks: Vec<_> = batches
        .into_iter()
        .map(|reads| {
            tokio::spawn(async move {
                for r in reads {
                    r.await?;
                }
                Ok::<_, anyhow::Error>(())
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    Ok((per_task * c, started.elapsed()))
}

/// Throughput is measured in this many alternating rounds per side, so
/// that a change in the machine's load hits both sides alike.
const ROUNDS: usize = 5;

/// Read throughput at 1, 16 and 64 concurrent tasks: lwcache hits, raw
/// redis-rs GETs, and `redis-benchmark` GETs of the same key.
pub(crate) async fn throughput<S, R>(
    manager: &CacheManager<S, R>,
    raw: &ConnectionManager,
    redis_url: &str,
    redis_benchmark: &std::path::Path,
    world: &WorldId,
    entity: &EntityRef,
    plan: &Plan,
) -> Result<(Vec<ThroughputRow>, Option<String>)>
where
    S: CacheStore + 'static,
    R: WorldRepository + 'static,
{
    let key = CacheKey::entity(world, entity).to_string();
    // A cache call that outlives the manager's cache timeout (a scheduling
    // stall on a loaded machine) falls back to the source: counted and
    // reported, not fatal, unless it stops being rare.
    let fallbacks = Arc::new(AtomicU64::new(0));
    let hit = || cached_read(manager, world, entity, Some(&fallbacks));
    let get = || {
        let (mut c, k) = (raw.clone(), key.clone());
        async move {
            let bytes: Option<Vec<u8>> = redis::cmd("GET").arg(&k).query_async(&mut c).await?;
            ensure!(bytes.is_some(), "{k} is not cached");
            Ok(())
        }
    };
    let mut rows = Vec::new();
    let mut problem = None;
    for c in CONCURRENCY {
        let total = plan.throughput;
        // A short untimed round of each first, at the same concurrency.
        run_tasks(c, total / 10, hit).await?;
        run_tasks(c, total / 10, get).await?;
        let (mut lw, mut raw_rs) = ((0, Duration::ZERO), (0, Duration::ZERO));
        // redis-benchmark's requests and the time they took at its rate.
        let mut bench = Some((0, Duration::ZERO));
        fallbacks.store(0, Ordering::Relaxed);
        for _ in 0..ROUNDS {
            let (n, t) = run_tasks(c, total / ROUNDS, hit).await?;
            lw = (lw.0 + n, lw.1 + t);
            let (n, t) = run_tasks(c, total / ROUNDS, get).await?;
            raw_rs = (raw_rs.0 + n, raw_rs.1 + t);
            if let Some((n, t)) = bench {
                let requests = total / ROUNDS;
                bench = match run_redis_benchmark(redis_benchmark, redis_url, c, requests, &key)
                    .await
                {
                    Ok(ops) => Some((
                        n + requests,
                        t + Duration::from_secs_f64(requests as f64 / ops),
                    )),
                    Err(e) => {
                        problem = Some(format!("{e:#}"));
                        None
                    }
                };
            }
        }
        let fell_back = fallbacks.load(Ordering::Relaxed);
        ensure!(
            fell_back * 100 <= lw.0 as u64,
            "{fell_back} of {} reads at {c} tasks fell back to the source: the cache is not answering",
            lw.0
        );
        let per_s = |(n, t): (usize, Duration)| n as f64 / t.as_secs_f64();
        let benchmark = bench.map(per_s);
        rows.push(ThroughputRow {
            concurrency: c,
            requests: lw.0 as u64,
            lwcache_ops_per_s: per_s(lw),
            redis_rs_ops_per_s: per_s(raw_rs),
            lwcache_fallbacks: fell_back,
            redis_benchmark_ops_per_s: benchmark,
        });
    }
    Ok((rows, problem))
}

/// Runs `redis-benchmark -c <c> -n <total> -q --csv GET <key>` and returns
/// its requests per second.
async fn run_redis_benchmark(
    program: &std::path::Path,
    redis_url: &str,
    c: usize,
    total: usize,
    key: &str,
) -> Result<f64> {
    let (host, port) = redis_host_port(redis_url)
        .context("redis-benchmark needs a plain redis://host:port URL")?;
    let mut command = Command::new(program);
    command.args([
        "-h",
        &host,
        "-p",
        &port.to_string(),
        "-c",
        &c.to_string(),
        "-n",
        &total.to_string(),
        "-q",
        "--csv",
        "GET",
        key,
    ]);
    let output = tokio::task::spawn_blocking(move || command.output())
        .await?
        .with_context(|| format!("running {}", program.display()))?;
    ensure!(
        output.status.success(),
        "redis-benchmark failed: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    parse_redis_benchmark_csv(&String::from_utf8_lossy(&output.stdout))
}

/// The requests per second of the first data row of `redis-benchmark
/// --csv` output (`"test","rps",...` then `"GET ...","12345.67",...`).
fn parse_redis_benchmark_csv(text: &str) -> Result<f64> {
    let row = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("\"test\""))
        .context("redis-benchmark printed no result row")?;
    let rps = row
        .split(',')
        .nth(1)
        .map(|f| f.trim_matches('"'))
        .context("redis-benchmark's row has no rps column")?;
    let value: f64 = rps
        .parse()
        .with_context(|| format!("redis-benchmark's rps {rps:?}"))?;
    ensure!(
        value.is_finite() && value > 0.0,
        "redis-benchmark's rps {rps:?} is not a positive rate"
    );
    Ok(value)
}

/// `MEMORY USAGE` of lwcache's entry of every character against the same
/// document as plain JSON, stored under a scratch key of the same length.
pub(crate) async fn memory_per_entity(
    raw: &ConnectionManager,
    world: &WorldId,
    spec: &DemoSpec,
) -> Result<MemoryRow> {
    let mut conn = raw.clone();
    let (mut lw_usage, mut json_usage, mut lw_len, mut json_len) = (0u64, 0u64, 0u64, 0u64);
    for i in 0..spec.characters {
        let key = CacheKey::entity(world, &spec.character(i)).to_string();
        let bytes: Option<Vec<u8>> = redis::cmd("GET").arg(&key).query_async(&mut conn).await?;
        let bytes = bytes.with_context(|| format!("{key} is not cached"))?;
        let CachedValue::Entity(document) = codec::decode(&bytes)?.value else {
            bail!("{key} holds something other than an entity");
        };
        let json = serde_json::to_vec(&document_json(&document))?;
        let scratch = key.replacen("lw:world:", "lw:plain:", 1);
        let _: () = redis::cmd("SET")
            .arg(&scratch)
            .arg(&json)
            .query_async(&mut conn)
            .await?;
        lw_usage += memory_usage(&mut conn, &key).await?;
        json_usage += memory_usage(&mut conn, &scratch).await?;
        let _: i64 = redis::cmd("DEL")
            .arg(&scratch)
            .query_async(&mut conn)
            .await?;
        lw_len += bytes.len() as u64;
        json_len += json.len() as u64;
    }
    let n = spec.characters.max(1) as f64;
    Ok(MemoryRow {
        entities: spec.characters,
        what: "every character state of the standard demo world".to_owned(),
        lwcache_memory_usage: lw_usage as f64 / n,
        json_memory_usage: json_usage as f64 / n,
        lwcache_value_bytes: lw_len as f64 / n,
        json_value_bytes: json_len as f64 / n,
    })
}

async fn memory_usage(conn: &mut ConnectionManager, key: &str) -> Result<u64> {
    let usage: Option<u64> = redis::cmd("MEMORY")
        .arg("USAGE")
        .arg(key)
        .arg("SAMPLES")
        .arg(0)
        .query_async(conn)
        .await?;
    usage.with_context(|| format!("MEMORY USAGE found no {key}"))
}

/// A document as plain JSON: maps as objects, lists as arrays.
pub(crate) fn document_json(d: &Document) -> serde_json::Value {
    serde_json::Value::Object(
        d.fields()
            .iter()
            .map(|(k, v)| (k.clone(), value_json(v)))
            .collect(),
    )
}

fn value_json(v: &Value) -> serde_json::Value {
    use serde_json::Value as J;
    match v {
        Value::Null => J::Null,
        Value::Bool(b) => J::Bool(*b),
        Value::Int(i) => J::from(*i),
        Value::Float(f) => serde_json::Number::from_f64(*f).map_or(J::Null, J::Number),
        Value::Text(s) => J::String(s.clone()),
        Value::List(items) => J::Array(items.iter().map(value_json).collect()),
        Value::Map(m) => J::Object(m.iter().map(|(k, v)| (k.clone(), value_json(v))).collect()),
    }
}

/// Activations of a world of 1,000 entities with 100 events each against
/// writing the same bytes naively, one awaited `SET` per key, and as one
/// pipeline.
pub(crate) async fn activation<S, R>(
    store: S,
    raw: &ConnectionManager,
    repo: &Arc<R>,
    source: &str,
    run: u64,
    plan: &Plan,
) -> Result<(ActivationRow, Duration)>
where
    S: CacheStore + 'static,
    R: WorldRepository + 'static,
{
    let world = world_id("activate", source, run)?;
    let spec = DemoSpec::sized(1_000, 100);
    let seed = spec.seed();
    let loading = Instant::now();
    repo.load(&world, &seed)
        .await
        .context("loading the 1,000-entity world")?;
    let load_time = loading.elapsed();

    let counting = Arc::new(Counting::new(store));
    let manager = CacheManager::builder(Arc::clone(&counting), Arc::clone(repo))
        .config(config())
        .build()?;
    let top_k = manager.config().policy.timeline_top_k;

    // One untimed activation warms both sides and records what it writes.
    counting.start_recording();
    let first = manager.activate(&world).await?;
    let puts = counting.take_recording();
    ensure!(
        first.skipped == 0 && puts.len() == first.keys,
        "the warm-up activation wrote {} of {} keys",
        puts.len(),
        first.keys
    );
    let bytes = puts.iter().map(|p| p.bytes.len() as u64).sum();
    let mut keys: Vec<String> = puts.iter().map(|p| p.key.to_string()).collect();
    keys.push(CacheKey::version(&world).to_string());

    let (mut act, mut image, mut naive, mut piped) = (
        Samples::default(),
        Samples::default(),
        Samples::default(),
        Samples::default(),
    );
    let mut round_trips = 0;
    for _ in 0..plan.activations {
        clear(raw, &keys).await?;
        let started = Instant::now();
        repo.image(&world, top_k).await?;
        image.record(started.elapsed());

        counting.take_calls();
        let started = Instant::now();
        let report = manager.activate(&world).await?;
        act.record(started.elapsed());
        round_trips = counting.take_calls();
        ensure!(report.skipped == 0, "an activation skipped keys");

        clear(raw, &keys).await?;
        naive.record(set_one_by_one(raw, &puts).await?);
        clear(raw, &keys).await?;
        piped.record(set_pipelined(raw, &puts).await?);
    }
    // Leave the world warm, as an activation would.
    clear(raw, &keys).await?;
    manager.activate(&world).await?;
    Ok((
        ActivationRow {
            source: source.to_owned(),
            entities: spec.entities(),
            events_per_entity: spec.events_per_entity,
            keys: puts.len(),
            bytes,
            activation: act.summary(),
            activation_round_trips: round_trips,
            image_read: image.summary(),
            naive: naive.summary(),
            naive_round_trips: puts.len() as u64,
            pipelined: piped.summary(),
        },
        load_time,
    ))
}

async fn clear(raw: &ConnectionManager, keys: &[String]) -> Result<()> {
    let mut conn = raw.clone();
    for chunk in keys.chunks(500) {
        let _: i64 = redis::cmd("DEL").arg(chunk).query_async(&mut conn).await?;
    }
    Ok(())
}

fn set_command(put: &Put) -> redis::Cmd {
    let mut cmd = redis::cmd("SET");
    cmd.arg(put.key.to_string()).arg(put.bytes.as_slice());
    if let Some(ttl) = put.ttl {
        cmd.arg("PX")
            .arg(u64::try_from(ttl.as_millis()).unwrap_or(u64::MAX));
    }
    cmd
}

async fn set_one_by_one(raw: &ConnectionManager, puts: &[Put]) -> Result<Duration> {
    let mut conn = raw.clone();
    let commands: Vec<redis::Cmd> = puts.iter().map(set_command).collect();
    let started = Instant::now();
    for cmd in &commands {
        let _: () = cmd.query_async(&mut conn).await?;
    }
    Ok(started.elapsed())
}

async fn set_pipelined(raw: &ConnectionManager, puts: &[Put]) -> Result<Duration> {
    let mut conn = raw.clone();
    let mut pipe = redis::pipe();
    for put in puts {
        pipe.add_command(set_command(put)).ignore();
    }
    let started = Instant::now();
    let _: () = pipe.query_async(&mut conn).await?;
    Ok(started.elapsed())
}

/// The hit ratio of a simulated player workload (Zipf(1.0) popularity, 10%
/// writes) over the standard demo world, from a cold cache.
pub(crate) async fn hit_ratio<S, R>(
    store: S,
    repo: &Arc<R>,
    source: &str,
    run: u64,
    plan: &Plan,
) -> Result<HitRatioRow>
where
    S: CacheStore + 'static,
    R: WorldRepository + 'static,
{
    let world = world_id("zipf", source, run)?;
    let spec = DemoSpec::standard();
    repo.load(&world, &spec.seed()).await?;
    let counters = Arc::new(Counters::new());
    let manager = CacheManager::builder(store, Arc::clone(repo))
        .config(config())
        .metrics(Arc::clone(&counters) as Arc<dyn MetricsSink>)
        .build()?;
    let mut sim = Simulation::new(spec, 0x5eed).with_write_ratio(0.1);
    let turns = plan.turns as u64;
    let warmup = turns / 10;
    let mut row = HitRatioRow {
        source: source.to_owned(),
        workload: format!(
            "Zipf(1.0) over {} entities, 10% writes, standard demo world",
            spec.entities()
        ),
        turns,
        warmup_turns: warmup,
        reads: 0,
        cache_served: 0,
        hits: 0,
        reads_after_warmup: 0,
        cache_served_after_warmup: 0,
        writes: 0,
        fills_rejected: 0,
        fallbacks: 0,
    };
    for turn in 0..turns {
        let outcome = match sim.next_action() {
            Action::ReadState => manager.world_state(&world).await?.outcome,
            Action::ReadFlags => manager.flags(&world).await?.outcome,
            Action::ReadEntity(e) => manager.entity(&world, &e, Fields::Cacheable).await?.outcome,
            Action::ReadRecent(e) => manager.recent(&world, &e, RECENT_LIMIT).await?.outcome,
            Action::Write(op) => {
                manager
                    .apply(Mutation {
                        world: world.clone(),
                        op,
                    })
                    .await?;
                row.writes += 1;
                continue;
            }
        };
        let served = matches!(outcome, Outcome::Hit | Outcome::Stale);
        row.reads += 1;
        row.cache_served += u64::from(served);
        row.hits += u64::from(outcome == Outcome::Hit);
        if turn >= warmup {
            row.reads_after_warmup += 1;
            row.cache_served_after_warmup += u64::from(served);
        }
    }
    manager.shutdown().await;
    let counted = counters.snapshot();
    row.fills_rejected = counted.fills_rejected;
    row.fallbacks = counted.fallbacks;
    Ok(row)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_benchmark_csv_is_read() {
        let out = "\"test\",\"rps\",\"avg_latency_ms\"\n\"GET lw:world:{x}:state\",\"30911.90\",\"0.343\"\n";
        assert!((parse_redis_benchmark_csv(out).unwrap() - 30_911.9).abs() < 1e-6);
        assert!(parse_redis_benchmark_csv("\"test\",\"rps\"\n").is_err());
        assert!(parse_redis_benchmark_csv("\"GET\",\"0.00\"\n").is_err());
    }

    #[test]
    fn documents_map_to_plain_json() {
        let d = Document::new()
            .with("hp", Value::Int(3))
            .with(
                "tags",
                Value::List(vec![Value::Text("a".into()), Value::Null]),
            )
            .with("x", Value::Float(f64::NAN));
        assert_eq!(
            serde_json::to_string(&document_json(&d)).unwrap(),
            r#"{"hp":3,"tags":["a",null],"x":null}"#
        );
    }
}
