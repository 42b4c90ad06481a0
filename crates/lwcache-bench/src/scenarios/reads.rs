//! Reads: a cached hit against a raw GET of the same key and against the
//! source, the decode cost on its own, and the hit ratio of a simulated
//! player workload.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use anyhow::{Result, bail, ensure};
use lwcache_bench::report::{HitRatioRow, LatencyComparison, Measured};
use lwcache_core::codec;
use lwcache_core::ports::{CacheStore, WorldRepository};
use lwcache_core::{CacheManager, Counters, Fields, MetricsSink, Outcome};
use lwcache_demo::{Action, DemoSpec, Simulation};
use lwcache_domain::{CacheKey, EntityRef, Mutation, WorldId};
use redis::aio::ConnectionManager;

use super::{Plan, RECENT_LIMIT, Raw, against_source_read, compare, config, nothing, world_id};

/// A cached read of a warm character state against a raw GET of the very
/// same key, each over its own `ConnectionManager` to the same server.
pub(crate) async fn read_hit_vs_get<S, R, C: Raw>(
    manager: &CacheManager<S, R>,
    raw: &C,
    world: &WorldId,
    entity: &EntityRef,
    plan: &Plan,
    topology: &str,
) -> Result<LatencyComparison>
where
    S: CacheStore + 'static,
    R: WorldRepository + 'static,
{
    let key = CacheKey::entity(world, entity).to_string();
    let hit = |_| cached_read(manager, world, entity, None, ReadApi::Typed);
    let get = |_| {
        let (mut c, k) = (raw.clone(), key.clone());
        async move {
            let bytes: Option<Vec<u8>> = redis::cmd("GET").arg(&k).query_async(&mut c).await?;
            ensure!(bytes.is_some(), "{k} is not cached");
            Ok(())
        }
    };
    let (subject, baseline) = compare(plan.latency, plan.warmup, hit, get, nothing).await?;
    let (id, title) = match topology {
        "cluster" => (
            "read_hit_vs_redis_get_cluster",
            "cached read (Redis tier, 3-master Cluster)",
        ),
        _ => ("read_hit_vs_redis_get", "cached read (Redis tier)"),
    };
    Ok(LatencyComparison {
        id: id.to_owned(),
        title: title.to_owned(),
        subject: Measured {
            label: "CacheManager::entity, hit".to_owned(),
            summary: subject.summary(),
        },
        baseline: Measured {
            label: "redis-rs GET of the same key".to_owned(),
            summary: baseline.summary(),
        },
        note: format!(
            "a character state of {} bytes; both sides use one redis-rs connection each to the same {topology} Redis",
            entry_len(raw, &key).await?
        ),
    })
}

async fn entry_len<C: Raw>(raw: &C, key: &str) -> Result<usize> {
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

/// How a cached read is asked.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum ReadApi {
    /// `CacheManager::entity`: the typed document, a copy of its own.
    Typed,
    /// `CacheManager::read_shared`: the decoded value shared, as the
    /// service's handlers read.
    Shared,
}

/// One read of `entity` through the manager, which must be answered by the
/// cache. A fallback to the source (a cache call over the manager's cache
/// timeout) is counted in `fallbacks` when given, and an error otherwise.
pub(super) fn cached_read<S, R>(
    manager: &CacheManager<S, R>,
    world: &WorldId,
    entity: &EntityRef,
    fallbacks: Option<&Arc<AtomicU64>>,
    api: ReadApi,
) -> impl Future<Output = Result<()>> + Send + 'static + use<S, R>
where
    S: CacheStore + 'static,
    R: WorldRepository + 'static,
{
    let (m, w, e) = (manager.clone(), world.clone(), entity.clone());
    let fallbacks = fallbacks.cloned();
    async move {
        let outcome = match api {
            ReadApi::Typed => m.entity(&w, &e, Fields::Cacheable).await?.outcome,
            ReadApi::Shared => {
                let key = CacheKey::entity(&w, &e);
                let read = m.read_shared(&key, Fields::Cacheable).await?;
                ensure!(
                    matches!(*read.value, lwcache_domain::CachedValue::Entity(_)),
                    "{key} answered another kind of value"
                );
                read.outcome
            }
        };
        match (outcome, &fallbacks) {
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
    let hit = |_| cached_read(manager, world, entity, None, ReadApi::Typed);
    let (subject, baseline) = against_source_read(manager, repo, &key, plan, hit).await?;
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
