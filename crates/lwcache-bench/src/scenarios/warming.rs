//! Warming what is active: the activation of a 10,000-entity world within a
//! budget of keys (the entities read lately, then those with the newest
//! events) against the warm-everything activation of the same world, in
//! the same run, over the same store: time and keys written.

use std::sync::Arc;
use std::time::Instant;

use anyhow::Result;
use lwcache_bench::render::fmt_us;
use lwcache_bench::report::TargetCheck;
use lwcache_bench::stats::Samples;
use lwcache_core::ports::{CacheStore, WorldRepository};
use lwcache_core::{CacheManager, Fields};
use lwcache_demo::{Rng, Zipf};
use lwcache_domain::{
    Document, EntityKind, EntityRef, EventKind, NewEvent, Value, WorldId, WorldSeed,
};
use lwcache_memory::MemoryRepository;

use super::Plan;

/// Entities of the world.
const ENTITIES: usize = 10_000;
/// One entity in this many has events, `EVENTS` each.
const WITH_EVENTS: usize = 10;
const EVENTS: usize = 3;
/// The budget: the flags, the snapshot and 500 entities' two keys.
const BUDGET: usize = 2 + 2 * 500;
/// Reads played before the budgeted activation, Zipf(1.0) over the
/// entities: what makes some of them "read lately".
const READS_BEFORE: usize = 2_000;

/// The budgeted activation against warm-everything over `store` (named
/// `store_name`), with an in-memory source; the figures as a checked
/// target and a note.
pub(crate) async fn active_warming<S>(
    store: S,
    store_name: &str,
    plan: &Plan,
    run_id: u64,
) -> Result<(TargetCheck, String)>
where
    S: CacheStore + Clone + 'static,
{
    let repo = Arc::new(MemoryRepository::new());
    let seed = seed()?;
    let budgeted_world = super::world_id("warm-budget", store_name, run_id)?;
    let everything_world = super::world_id("warm-all", store_name, run_id)?;
    repo.load(&budgeted_world, &seed).await?;
    repo.load(&everything_world, &seed).await?;

    let mut config = super::config();
    config.warm_budget = Some(BUDGET);
    let budgeted = CacheManager::builder(store.clone(), Arc::clone(&repo))
        .config(config)
        .try_build()?;
    let everything = CacheManager::builder(store, Arc::clone(&repo))
        .config(super::config())
        .try_build()?;
    let read_lately = play(&budgeted, &budgeted_world).await?;

    let rounds = plan.activations.max(1);
    let (mut budget_times, mut all_times) = (
        Samples::with_capacity(rounds),
        Samples::with_capacity(rounds),
    );
    let (mut budget_keys, mut all_keys) = (0, 0);
    for _ in 0..rounds {
        let started = Instant::now();
        budget_keys = budgeted.activate(&budgeted_world).await?.keys;
        budget_times.record(started.elapsed());
        let started = Instant::now();
        all_keys = everything.activate(&everything_world).await?.keys;
        all_times.record(started.elapsed());
    }
    budgeted.shutdown().await;
    everything.shutdown().await;

    let (b, a) = (budget_times.summary(), all_times.summary());
    let met = budget_keys <= BUDGET;
    let target = TargetCheck {
        name: format!(
            "activation of a {ENTITIES}-entity world within a budget of {BUDGET} keys ({store_name} store)"
        ),
        goal: format!("≤ {BUDGET} keys written"),
        measured: format!(
            "{budget_keys} keys in {} (p50 of {rounds}); warm-everything {all_keys} keys in {}",
            fmt_us(b.p50_us),
            fmt_us(a.p50_us)
        ),
        met,
        why: (!met).then(|| "the activation wrote more keys than its budget".to_owned()),
    };
    let note = format!(
        "Active warming ({store_name} store, in-memory source): a world of {ENTITIES} characters, one in {WITH_EVENTS} with {EVENTS} events; {READS_BEFORE} Zipf(1.0) reads over its entities ({read_lately} distinct) before the budgeted activation, which warms the flags, the snapshot and the entities read lately, then those with the newest events, within {BUDGET} keys; warm-everything warms every entity's state and timeline. Activations alternate, {rounds} of each; the image read is included in both."
    );
    Ok((target, note))
}

/// Reads entities' states before activation; answers how many distinct
/// entities were read.
async fn play<S, R>(manager: &CacheManager<S, Arc<R>>, world: &WorldId) -> Result<usize>
where
    S: CacheStore + 'static,
    R: WorldRepository + 'static,
{
    let zipf = Zipf::new(ENTITIES, 1.0);
    let mut rng = Rng::new(0x5eed);
    let mut seen = std::collections::HashSet::new();
    for _ in 0..READS_BEFORE {
        let i = zipf.sample(&mut rng);
        manager
            .entity(world, &entity(i)?, Fields::Cacheable)
            .await?;
        seen.insert(i);
    }
    Ok(seen.len())
}

fn entity(i: usize) -> Result<EntityRef> {
    Ok(EntityRef::parse(
        EntityKind::Character,
        &format!("a{i:05}"),
    )?)
}

fn seed() -> Result<WorldSeed> {
    let kind = EventKind::new("moved")?;
    let mut entities = Vec::with_capacity(ENTITIES);
    let mut events = Vec::new();
    for i in 0..ENTITIES {
        let e = entity(i)?;
        if i % WITH_EVENTS == 0 {
            for n in 0..EVENTS {
                events.push(NewEvent {
                    entity: e.entity_id(),
                    kind: kind.clone(),
                    at_ms: lwcache_demo::EPOCH_MS + n as i64,
                    data: Document::new().with("step", Value::Int(n as i64)),
                    top_k: lwcache_domain::DEFAULT_TOP_K,
                });
            }
        }
        entities.push((e, Document::new().with("hp", Value::Int(10))));
    }
    Ok(WorldSeed {
        snapshot: Document::new().with("name", Value::Text("warming".to_owned())),
        flags: Vec::new(),
        entities,
        events,
    })
}
