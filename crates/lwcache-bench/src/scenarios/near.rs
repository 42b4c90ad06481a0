//! The near cache: a hit from the in-process tier against a hit from the
//! Redis tier, both through `CacheManager`, and the broadcast delay: how
//! long after a write through one instance another instance's near cache
//! first answers the new value, against the same delay for an instance
//! without a near cache (which reads Redis, so sees it at once).

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Result, bail, ensure};
use lwcache_bench::report::{LatencyComparison, Measured, TargetCheck};
use lwcache_bench::stats::Samples;
use lwcache_core::near::NearConfig;
use lwcache_core::ports::WorldRepository;
use lwcache_core::{CacheManager, Fields, Outcome};
use lwcache_demo::DemoSpec;
use lwcache_domain::{Document, EntityRef, Value, WorldId};
use lwcache_memory::MemoryRepository;
use lwcache_redis::{RedisConfig, RedisFeed, RedisStore};

use super::{Plan, compare, config, nothing, world_id};
use crate::render;

type Manager = CacheManager<RedisStore, Arc<MemoryRepository>>;

/// A manager over `store` with a near cache fed from `redis_url`, once its
/// feed has confirmed.
async fn with_near(
    store: &RedisStore,
    repo: &Arc<MemoryRepository>,
    redis_url: &str,
) -> Result<Manager> {
    let feed = RedisFeed::new(&RedisConfig::from_url(redis_url)?)?;
    let m = CacheManager::builder(store.clone(), Arc::clone(repo))
        .config(config())
        .near_cache(NearConfig::default(), Arc::new(feed))?
        .build()?;
    let started = Instant::now();
    while !m.near_cache().is_some_and(|n| n.coherent()) {
        ensure!(
            started.elapsed() < Duration::from_secs(10),
            "the near cache's feed never confirmed"
        );
        tokio::time::sleep(Duration::from_millis(5)).await;
    }
    Ok(m)
}

async fn read_expecting(
    m: &Manager,
    world: &WorldId,
    entity: &EntityRef,
    want: Outcome,
) -> Result<()> {
    let read = m.entity(world, entity, Fields::Cacheable).await?;
    if read.outcome != want {
        bail!("wanted {want:?}, got {:?}", read.outcome);
    }
    std::hint::black_box(read.value);
    Ok(())
}

/// The near-cache rows: a near hit against a Redis-tier hit, and the
/// broadcast delay with and without a near cache; and their goals.
pub(crate) async fn near_reads(
    store: &RedisStore,
    redis_url: &str,
    plan: &Plan,
    run_id: u64,
) -> Result<(Vec<LatencyComparison>, Vec<TargetCheck>)> {
    let repo = Arc::new(MemoryRepository::new());
    let world = world_id("near", "memory", run_id)?;
    let spec = DemoSpec::standard();
    repo.load(&world, &spec.seed()).await?;
    let entity = spec.character(spec.players);
    let plain = CacheManager::builder(store.clone(), Arc::clone(&repo))
        .config(config())
        .build()?;
    let near = with_near(store, &repo, redis_url).await?;
    let writer = with_near(store, &repo, redis_url).await?;
    plain.activate(&world).await?;
    // Two reads: the first keeps the entry near, the second is a near hit.
    near.entity(&world, &entity, Fields::Cacheable).await?;
    read_expecting(&near, &world, &entity, Outcome::NearHit).await?;

    // Many more near hits than Redis hits fit in the same time: the near
    // side gets ten times the calls, for stable nanosecond percentiles.
    let (near_hits, redis_hits) = compare(
        plan.latency,
        plan.warmup,
        |_| read_expecting(&near, &world, &entity, Outcome::NearHit),
        |_| read_expecting(&plain, &world, &entity, Outcome::Hit),
        nothing,
    )
    .await?;
    let hit = LatencyComparison {
        id: "near_hit_vs_redis_hit".to_owned(),
        title: "near-cache hit".to_owned(),
        subject: Measured {
            label: "CacheManager::entity, near hit".to_owned(),
            summary: near_hits.summary(),
        },
        baseline: Measured {
            label: "CacheManager::entity, Redis-tier hit".to_owned(),
            summary: redis_hits.summary(),
        },
        note: "the same character state; the near hit returns a copy of the shared decoded value"
            .to_owned(),
    };

    let rounds = plan.source_latency;
    let (with, without) = delays(&writer, &near, &plain, &world, &entity, rounds).await?;
    let delay = LatencyComparison {
        id: "broadcast_delay".to_owned(),
        title: "another instance's write seen".to_owned(),
        subject: Measured {
            label: "from the write's acknowledgement to a near cache's first new answer".to_owned(),
            summary: with.summary(),
        },
        baseline: Measured {
            label: "the same, for an instance without a near cache".to_owned(),
            summary: without.summary(),
        },
        note: format!(
            "{rounds} writes through a third instance; each side's delay includes one read of its own; the feed is pub/sub from the write's script, over loopback"
        ),
    };
    let targets = near_targets(&hit);
    Ok((vec![hit, delay], targets))
}

/// For each round: the reader's near cache holds the entity, the writer
/// changes it, and each reader reads until it sees the change.
async fn delays(
    writer: &Manager,
    near: &Manager,
    plain: &Manager,
    world: &WorldId,
    entity: &EntityRef,
    rounds: usize,
) -> Result<(Samples, Samples)> {
    let (mut with, mut without) = (
        Samples::with_capacity(rounds),
        Samples::with_capacity(rounds),
    );
    for round in 0..rounds {
        for _ in 0..100 {
            if near.entity(world, entity, Fields::Cacheable).await?.outcome == Outcome::NearHit {
                break;
            }
        }
        let state = Document::new().with("mood", Value::Text(format!("round-{round}")));
        let version = writer
            .update_entity(world, entity.clone(), state)
            .await?
            .committed
            .version;
        let acked = Instant::now();
        with.record(seen(near, world, entity, version, acked).await?);
        without.record(seen(plain, world, entity, version, Instant::now()).await?);
    }
    Ok((with, without))
}

/// How long after `from` a read through `m` first answers `version`.
async fn seen(
    m: &Manager,
    world: &WorldId,
    entity: &EntityRef,
    version: u64,
    from: Instant,
) -> Result<Duration> {
    loop {
        let read = m.entity(world, entity, Fields::Cacheable).await?;
        if read.version >= version {
            return Ok(from.elapsed());
        }
        ensure!(
            from.elapsed() < Duration::from_secs(5),
            "version {version} not seen within 5 s"
        );
        tokio::task::yield_now().await;
    }
}

fn near_targets(hit: &LatencyComparison) -> Vec<TargetCheck> {
    let (near, redis) = (&hit.subject.summary, &hit.baseline.summary);
    let speedup = redis.p50_us / near.p50_us.max(1e-9);
    vec![
        TargetCheck {
            name: "near-cache hit through CacheManager, p50".to_owned(),
            goal: "< 1 µs".to_owned(),
            measured: format!(
                "{:.0} ns (p99 {:.0} ns)",
                near.p50_us * 1e3,
                near.p99_us * 1e3
            ),
            met: near.p50_us < 1.0,
            why: (near.p50_us >= 1.0)
                .then(|| "the hit copies the decoded document out of the shared entry".to_owned()),
        },
        TargetCheck {
            name: "near-cache hit against a Redis-tier hit, p50".to_owned(),
            goal: "≥ 100× faster".to_owned(),
            measured: format!(
                "{speedup:.0}× faster ({} vs {})",
                render::fmt_us(near.p50_us),
                render::fmt_us(redis.p50_us)
            ),
            met: speedup >= 100.0,
            why: (speedup < 100.0).then(|| "see the near hit's own p50".to_owned()),
        },
    ]
}
