//! Availability: what a caller pays when Redis is partitioned or slow,
//! reached through the testkit's fault-injecting proxy, against the same
//! operations in the same run.
//!
//! - A read with Redis blackholed and the circuit breaker open, against the
//!   bare source read of the same entity: the fallback should cost the
//!   source read and nothing more (no cache timeout).
//! - A write with Redis delayed, against the same write with Redis
//!   reached through an idle proxy: the cache step adds the delay, and
//!   never more than the cache timeout.
//!
//! These managers keep the default 250 ms cache timeout and breaker: the
//! point is what they do when Redis misbehaves.

use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use lwcache_bench::render::fmt_us;
use lwcache_bench::report::{LatencyComparison, Measured};
use lwcache_core::ports::WorldRepository;
use lwcache_core::{BreakerState, CacheManager, CacheStep, Fields, ManagerConfig, Outcome};
use lwcache_demo::DemoSpec;
use lwcache_domain::{CacheKey, FlagName, Value};
use lwcache_redis::{RedisConfig, RedisStore, Topology};
use lwcache_testkit::proxy::{Fault, Proxy};

use super::{Plan, against_source_read, compare, nothing, world_id};

/// The delay the proxy adds to each chunk, each way, in the slow-Redis
/// comparisons: one at half the cache timeout (a round trip of 200 ms
/// more, within the 250 ms timeout) and one past it (400 ms more).
const DELAYS: [Duration; 2] = [Duration::from_millis(100), Duration::from_millis(200)];

/// The managers' configuration here: the defaults, with room for a busy
/// Neo4j.
fn config() -> ManagerConfig {
    ManagerConfig {
        source_timeout: Duration::from_secs(120),
        ..ManagerConfig::default()
    }
}

/// The standalone server's address, for the proxies' upstream.
async fn upstream(redis_url: &str) -> Result<SocketAddr> {
    let config = RedisConfig::from_url(redis_url)?;
    let Topology::Standalone(node) = &config.topology else {
        bail!("the availability scenarios need a standalone Redis URL");
    };
    tokio::net::lookup_host((node.host.as_str(), node.port))
        .await?
        .next()
        .with_context(|| format!("{}:{} resolves to no address", node.host, node.port))
}

/// A store that reaches Redis through `proxy`, with the default timeouts.
async fn through(proxy: &Proxy) -> Result<RedisStore> {
    let config = RedisConfig::from_url(&format!("redis://{}", proxy.addr()))?;
    RedisStore::connect(&config)
        .await
        .context("connecting through the proxy")
}

/// Both availability figures over `repo`.
pub(crate) async fn availability<R>(
    repo: &Arc<R>,
    source: &str,
    redis_url: &str,
    run: u64,
    plan: &Plan,
) -> Result<Vec<LatencyComparison>>
where
    R: WorldRepository + 'static,
{
    let upstream = upstream(redis_url).await?;
    let world = world_id("avail", source, run)?;
    let spec = DemoSpec::standard();
    repo.load(&world, &spec.seed()).await?;
    let mut out = vec![breaker_open_read(repo, source, upstream, &world, &spec, plan).await?];
    for delay in DELAYS {
        out.push(slow_write(repo, source, upstream, &world, delay, plan).await?);
    }
    Ok(out)
}

/// A read with Redis blackholed and the breaker open, against the bare
/// source read.
async fn breaker_open_read<R>(
    repo: &Arc<R>,
    source: &str,
    upstream: SocketAddr,
    world: &lwcache_domain::WorldId,
    spec: &DemoSpec,
    plan: &Plan,
) -> Result<LatencyComparison>
where
    R: WorldRepository + 'static,
{
    let proxy = Proxy::start(upstream).await?;
    let manager = CacheManager::builder(through(&proxy).await?, Arc::clone(repo))
        .config(config())
        .build()?;
    manager.activate(world).await?;
    let entity = spec.character(spec.players);
    proxy.set_fault(Fault::Blackhole);
    // The writes that open the breaker: each waits the cache timeout.
    let flag = FlagName::new("bench_avail")?;
    let mut tripped = 0;
    while manager.breaker() != BreakerState::Open {
        ensure!(tripped < 100, "the breaker never opened");
        manager
            .set_flag(world, flag.clone(), Value::Int(tripped))
            .await?;
        tripped += 1;
    }
    let fallbacks = Arc::new(AtomicU64::new(0));
    let read = |_| {
        let (m, w, e, f) = (
            manager.clone(),
            world.clone(),
            entity.clone(),
            Arc::clone(&fallbacks),
        );
        async move {
            let read = m.entity(&w, &e, Fields::Cacheable).await?;
            ensure!(read.outcome == Outcome::Fallback, "{:?}", read.outcome);
            f.fetch_add(1, Ordering::Relaxed);
            Ok(())
        }
    };
    let key = CacheKey::entity(world, &entity);
    let (subject, baseline) = against_source_read(&manager, repo, &key, plan, read).await?;
    let still_open = manager.breaker();
    proxy.set_fault(Fault::None);
    manager.shutdown().await;
    let (subject, baseline) = (subject.summary(), baseline.summary());
    Ok(LatencyComparison {
        id: "read_breaker_open_vs_source_read".to_owned(),
        title: format!("read, Redis blackholed, breaker open ({source})"),
        subject: Measured {
            label: "CacheManager::entity, fallback".to_owned(),
            summary: subject,
        },
        baseline: Measured {
            label: format!("{source} read of the same entity"),
            summary: baseline,
        },
        note: format!(
            "Redis behind a blackholing proxy; {tripped} writes opened the breaker (each waited the 250 ms cache timeout), then every timed read was a fallback ({} of them) and none waited for Redis: p99 {} against {} for the bare read; breaker {} at the end (it probes every second, in the replay loop, not in reads)",
            fallbacks.load(Ordering::Relaxed),
            fmt_us(subject.p99_us),
            fmt_us(baseline.p99_us),
            still_open.as_str(),
        ),
    })
}

/// A flag set (write-through: one cache step) with Redis delayed by
/// `delay` each way, against the same write with Redis behind an idle
/// proxy.
async fn slow_write<R>(
    repo: &Arc<R>,
    source: &str,
    upstream: SocketAddr,
    world: &lwcache_domain::WorldId,
    delay: Duration,
    plan: &Plan,
) -> Result<LatencyComparison>
where
    R: WorldRepository + 'static,
{
    let (slow_proxy, normal_proxy) = (Proxy::start(upstream).await?, Proxy::start(upstream).await?);
    let slow = CacheManager::builder(through(&slow_proxy).await?, Arc::clone(repo))
        .config(config())
        .build()?;
    let normal = CacheManager::builder(through(&normal_proxy).await?, Arc::clone(repo))
        .config(config())
        .build()?;
    slow_proxy.set_fault(Fault::Delay(delay));
    let failed = Arc::new(AtomicU64::new(0));
    let write = |m: &CacheManager<RedisStore, Arc<R>>, name: &'static str, count: bool| {
        let (m, w, failed) = (m.clone(), world.clone(), Arc::clone(&failed));
        move |i: usize| {
            let (m, w, failed) = (m.clone(), w.clone(), Arc::clone(&failed));
            async move {
                let written = m
                    .set_flag(&w, FlagName::new(name)?, Value::Int(i as i64))
                    .await?;
                if count && written.cache == CacheStep::Failed {
                    failed.fetch_add(1, Ordering::Relaxed);
                }
                Ok(())
            }
        }
    };
    // Each delayed write waits hundreds of ms: a third of the source
    // comparison's count keeps the run short and still gives a p99.
    let n = (plan.source_latency / 3).max(50);
    let (subject, baseline) = compare(
        n,
        5,
        write(&slow, "bench_slow", true),
        write(&normal, "bench_normal", false),
        nothing,
    )
    .await?;
    let breaker = slow.breaker();
    slow_proxy.set_fault(Fault::None);
    slow.shutdown().await;
    normal.shutdown().await;
    let (subject, baseline) = (subject.summary(), baseline.summary());
    let round_trip = delay * 2;
    let timeout = config().cache_timeout;
    Ok(LatencyComparison {
        id: format!("write_redis_delayed_{}ms_vs_normal", delay.as_millis()),
        title: format!(
            "write, Redis {} ms slower a round trip ({source})",
            round_trip.as_millis()
        ),
        subject: Measured {
            label: format!(
                "CacheManager::set_flag, proxy delaying {} ms each way",
                delay.as_millis()
            ),
            summary: subject,
        },
        baseline: Measured {
            label: "CacheManager::set_flag, proxy idle".to_owned(),
            summary: baseline,
        },
        note: format!(
            "write-through flag sets on {source}; the cache step's round trip is {} ms longer, {} the {} ms cache timeout. Added latency: p50 {}, p99 {}; {} of {} delayed steps failed (timed out, or refused by the open breaker: owed and replayed); breaker {} at the end",
            round_trip.as_millis(),
            if round_trip < timeout {
                "within"
            } else {
                "past"
            },
            timeout.as_millis(),
            fmt_us(subject.p50_us - baseline.p50_us),
            fmt_us(subject.p99_us - baseline.p99_us),
            failed.load(Ordering::Relaxed),
            subject.count + 5,
            breaker.as_str(),
        ),
    })
}
