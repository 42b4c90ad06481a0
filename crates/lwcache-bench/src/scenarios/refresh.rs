//! The background refresher: a Zipf(1.0) read workload with short TTLs,
//! played twice on the same draws, with the refresher off and on, and the
//! hit ratio of the most popular keys after warm-up on each side.
//!
//! The reads come in bursts at a fixed pace (not as fast as the store
//! answers), so that both stores and both sides see the same reads per TTL:
//! without the refresher each key misses once per TTL, which costs the keys
//! read a few times per TTL most.

use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::Result;
use lwcache_bench::report::{HitRatioRow, Report, TargetCheck};
use lwcache_core::ports::{CacheStore, WorldRepository};
use lwcache_core::{CacheManager, Counters, Fields, Outcome, RefreshConfig};
use lwcache_demo::{Rng, Zipf};
use lwcache_domain::{
    CacheKey, Document, EntityKind, EntityRef, EventKind, NewEvent, Value, WorldId, WorldSeed,
};
use lwcache_memory::{MemoryRepository, MemoryStore};
use lwcache_redis::RedisStore;

use super::Plan;
use crate::args::Mode;

/// Entities of the world; each has a state and a timeline key.
const ENTITIES: usize = 2_000;
/// The keys drawn from: rank `r` is entity `r / 2`'s state (even) or
/// timeline (odd).
const KEYS: usize = 2 * ENTITIES;
/// The keys counted as popular: the most likely ranks.
const POPULAR: usize = 40;
/// Every kind's TTL.
const TTL: Duration = Duration::from_secs(1);
/// Reads per burst, and bursts per second: 5,000 reads a second.
const BURST: usize = 50;
const PACE: Duration = Duration::from_millis(10);
/// The goal for the popular keys with the refresher on.
const GOAL: f64 = 0.99;

/// The refresher off and on over the in-memory store and Redis, and the
/// activation within a budget against warm-everything over both, into
/// `report`; answers the notes that say how.
pub(crate) async fn refresh_and_warming(
    report: &mut Report,
    redis: RedisStore,
    plan: &Plan,
    mode: Mode,
    run_id: u64,
) -> Result<Vec<String>> {
    let mut notes = Vec::new();
    let memory = Arc::new(MemoryStore::new());
    for (rows, target) in [
        refresher(Arc::clone(&memory), "in-memory", mode, run_id).await?,
        refresher(redis.clone(), "Redis", mode, run_id).await?,
    ] {
        report.hit_ratio.extend(rows);
        report.targets.push(target);
    }
    for (target, note) in [
        super::active_warming(memory, "in-memory", plan, run_id).await?,
        super::active_warming(redis, "Redis", plan, run_id).await?,
    ] {
        report.targets.push(target);
        notes.push(note);
    }
    Ok(notes)
}

/// What one side measured.
struct Side {
    row: HitRatioRow,
    refreshes: u64,
}

/// The refresher off, then on, over `store` (named `store_name`), with an
/// in-memory source: two hit-ratio rows and the goal checked.
pub(crate) async fn refresher<S>(
    store: S,
    store_name: &str,
    mode: Mode,
    run_id: u64,
) -> Result<(Vec<HitRatioRow>, TargetCheck)>
where
    S: CacheStore + Clone + 'static,
{
    let (length, warmup) = match mode {
        Mode::Quick => (Duration::from_secs(8), Duration::from_secs(2)),
        Mode::Full => (Duration::from_secs(40), Duration::from_secs(4)),
    };
    let off = side(store.clone(), store_name, false, length, warmup, run_id).await?;
    let on = side(store, store_name, true, length, warmup, run_id).await?;
    let ratio_on = on.row.after_warmup().unwrap_or(0.0);
    let ratio_off = off.row.after_warmup().unwrap_or(0.0);
    let met = ratio_on >= GOAL;
    let target = TargetCheck {
        name: format!(
            "refresher: hit ratio of the {POPULAR} most popular keys, Zipf(1.0), TTL {} ms ({store_name} store)",
            TTL.as_millis()
        ),
        goal: format!("≥ {:.0}% with the refresher on", GOAL * 100.0),
        measured: format!(
            "on {:.2}% ({} refreshes), off {:.2}%",
            ratio_on * 100.0,
            on.refreshes,
            ratio_off * 100.0
        ),
        met,
        why: (!met).then(|| {
            "the refresher did not reach every popular key inside its lead window on this machine"
                .to_owned()
        }),
    };
    Ok((vec![off.row, on.row], target))
}

async fn side<S>(
    store: S,
    store_name: &str,
    on: bool,
    length: Duration,
    warmup: Duration,
    run_id: u64,
) -> Result<Side>
where
    S: CacheStore + Clone + 'static,
{
    let name = if on { "refresh-on" } else { "refresh-off" };
    let world = super::world_id(name, store_name, run_id)?;
    let repo = Arc::new(MemoryRepository::new());
    repo.load(&world, &seed()?).await?;
    let mut config = super::config();
    config.policy.state.ttl = Some(TTL);
    config.policy.entity.ttl = Some(TTL);
    config.policy.timeline.ttl = Some(TTL);
    config.refresh = on.then_some(RefreshConfig {
        lead_percent: 30,
        interval: Duration::from_millis(50),
        min_reads: 4,
        ..RefreshConfig::default()
    });
    let counters = Arc::new(Counters::new());
    let manager = CacheManager::builder(store, Arc::clone(&repo))
        .config(config)
        .metrics(counters.clone())
        .try_build()?;
    let keys = keys(&world)?;
    let zipf = Zipf::new(KEYS, 1.0);
    let mut rng = Rng::new(0x5eed);
    let mut row = HitRatioRow {
        source: format!("in-memory source, {store_name} store"),
        workload: String::new(),
        turns: 0,
        warmup_turns: 0,
        reads: 0,
        cache_served: 0,
        hits: 0,
        reads_after_warmup: 0,
        cache_served_after_warmup: 0,
        writes: 0,
        fills_rejected: 0,
        fallbacks: 0,
    };
    let started = Instant::now();
    let mut pace = tokio::time::interval(PACE);
    pace.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    while started.elapsed() < length {
        pace.tick().await;
        let warm = started.elapsed() >= warmup;
        row.turns += 1;
        if !warm {
            row.warmup_turns += 1;
        }
        for _ in 0..BURST {
            let rank = zipf.sample(&mut rng);
            let read = manager.read(&keys[rank], Fields::Cacheable).await?;
            if rank >= POPULAR {
                continue;
            }
            let hit = read.outcome == Outcome::Hit;
            row.reads += 1;
            row.cache_served += u64::from(hit);
            row.hits += u64::from(hit);
            if warm {
                row.reads_after_warmup += 1;
                row.cache_served_after_warmup += u64::from(hit);
            }
        }
    }
    let all_reads = row.turns * BURST as u64;
    row.workload = format!(
        "Zipf(1.0) reads over {KEYS} keys (states and timelines of {ENTITIES} entities), TTL {} ms, paced at up to {} reads/s ({:.0} reached), refresher {}; counted: the {POPULAR} most popular keys; turns: bursts of {BURST} reads, warm-up {} s",
        TTL.as_millis(),
        BURST as u128 * 1000 / PACE.as_millis(),
        all_reads as f64 / started.elapsed().as_secs_f64(),
        if on { "on" } else { "off" },
        warmup.as_secs()
    );
    let counted = counters.snapshot();
    row.fills_rejected = counted.fills_rejected;
    row.fallbacks = counted.fallbacks;
    manager.shutdown().await;
    Ok(Side {
        row,
        refreshes: counted.refreshes,
    })
}

fn entity(i: usize) -> Result<EntityRef> {
    Ok(EntityRef::parse(
        EntityKind::Character,
        &format!("r{i:05}"),
    )?)
}

/// Rank `r`: entity `r / 2`'s state (even) or timeline (odd).
fn keys(world: &WorldId) -> Result<Vec<CacheKey>> {
    (0..KEYS)
        .map(|rank| {
            let e = entity(rank / 2)?;
            Ok(if rank % 2 == 0 {
                CacheKey::entity(world, &e)
            } else {
                CacheKey::timeline(world, &e.entity_id())
            })
        })
        .collect()
}

/// `ENTITIES` characters with one event each.
fn seed() -> Result<WorldSeed> {
    let kind = EventKind::new("spawned")?;
    let entities = (0..ENTITIES)
        .map(|i| Ok((entity(i)?, Document::new().with("hp", Value::Int(10)))))
        .collect::<Result<Vec<_>>>()?;
    let events = entities
        .iter()
        .map(|(e, _)| NewEvent {
            entity: e.entity_id(),
            kind: kind.clone(),
            at_ms: lwcache_demo::EPOCH_MS,
            data: Document::new(),
            top_k: lwcache_domain::DEFAULT_TOP_K,
        })
        .collect();
    Ok(WorldSeed {
        snapshot: Document::new().with("name", Value::Text("refresh".to_owned())),
        flags: Vec::new(),
        entities,
        events,
    })
}
