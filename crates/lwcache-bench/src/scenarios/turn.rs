//! A player's turn: the snapshot, the flags, eight entities and four recent
//! timelines (14 keys) read at once through `CacheManager::read_many_shared`,
//! against the same 14 reads one after another and against one raw `MGET`
//! of the same keys; and the same turn cold, from the source, against 14
//! single cold reads.

use anyhow::{Result, ensure};
use lwcache_bench::report::{LatencyComparison, Measured};
use lwcache_core::ports::{CacheStore, WorldRepository};
use lwcache_core::{CacheManager, Fields, Outcome};
use lwcache_demo::DemoSpec;
use lwcache_domain::{CacheKey, WorldId};

use super::{Plan, compare, nothing};

/// The 14 keys of a turn: snapshot, flags, three characters that are not
/// players (nothing of theirs is redacted), three locations, two objects,
/// and the timelines of four of those characters and locations.
pub(crate) fn turn_keys(world: &WorldId, spec: &DemoSpec) -> Vec<CacheKey> {
    let characters: Vec<_> = (0..3).map(|i| spec.character(spec.players + i)).collect();
    let locations: Vec<_> = (0..3).map(|i| spec.location(i)).collect();
    let mut keys = vec![CacheKey::state(world), CacheKey::flags(world)];
    keys.extend(characters.iter().map(|e| CacheKey::entity(world, e)));
    keys.extend(locations.iter().map(|e| CacheKey::entity(world, e)));
    keys.extend((0..2).map(|i| CacheKey::entity(world, &spec.object(i))));
    keys.extend(
        characters
            .iter()
            .chain(&locations)
            .take(4)
            .map(|e| CacheKey::timeline(world, &e.entity_id())),
    );
    keys
}

/// Reads the turn through `read_many_shared` (the decoded values shared,
/// as the service's turn route reads); every item must be served as
/// `want` says (hits when warm, misses when cold).
async fn batched<S, R>(
    m: CacheManager<S, R>,
    world: WorldId,
    keys: Vec<CacheKey>,
    want: Outcome,
) -> Result<()>
where
    S: CacheStore + 'static,
    R: WorldRepository + 'static,
{
    let items = m.read_many_shared(&world, &keys, Fields::Cacheable).await?;
    for (key, item) in keys.iter().zip(items) {
        let outcome = item?.outcome;
        ensure!(outcome == want, "{key}: {outcome:?}, not {want:?}");
    }
    Ok(())
}

/// Reads the turn one key after another.
async fn singles<S, R>(m: CacheManager<S, R>, keys: Vec<CacheKey>, want: Outcome) -> Result<()>
where
    S: CacheStore + 'static,
    R: WorldRepository + 'static,
{
    for key in &keys {
        let outcome = m.read(key, Fields::Cacheable).await?.outcome;
        ensure!(outcome == want, "{key}: {outcome:?}, not {want:?}");
    }
    Ok(())
}

/// The warm turn: batched against one raw `MGET` and against 14 single
/// reads, in the same run.
pub(crate) async fn turn_warm<S, R, C: super::Raw>(
    manager: &CacheManager<S, R>,
    raw: &C,
    world: &WorldId,
    spec: &DemoSpec,
    plan: &Plan,
    topology: &str,
) -> Result<Vec<LatencyComparison>>
where
    S: CacheStore + 'static,
    R: WorldRepository + 'static,
{
    let keys = turn_keys(world, spec);
    let names: Vec<String> = keys.iter().map(ToString::to_string).collect();
    let batch = |_| batched(manager.clone(), world.clone(), keys.clone(), Outcome::Hit);
    let mget = |_| {
        let (mut c, names) = (raw.clone(), names.clone());
        async move {
            let got: Vec<Option<Vec<u8>>> =
                redis::cmd("MGET").arg(&names).query_async(&mut c).await?;
            ensure!(
                got.iter().all(Option::is_some),
                "a key of the turn is not cached"
            );
            Ok(())
        }
    };
    let n = plan.latency / 2;
    let (subject, baseline) = compare(n, plan.warmup, batch, mget, nothing).await?;
    let (suffix, on) = match topology {
        "cluster" => ("_cluster", ", 3-master Cluster"),
        _ => ("", ""),
    };
    let vs_mget = LatencyComparison {
        id: format!("turn_batched_vs_mget{suffix}"),
        title: format!("a 14-key turn, batched, vs raw MGET{on}"),
        subject: Measured {
            label: "CacheManager::read_many_shared, 14 hits".to_owned(),
            summary: subject.summary(),
        },
        baseline: Measured {
            label: "redis-rs MGET of the same 14 keys".to_owned(),
            summary: baseline.summary(),
        },
        note: "snapshot, flags, 8 entities, 4 recent timelines of one world; the batch is one MGET plus the checks of each entry (its bytes decoded, or matched to those the decode memo decoded before)".to_owned(),
    };
    let batch = |_| batched(manager.clone(), world.clone(), keys.clone(), Outcome::Hit);
    let one_by_one = |_| singles(manager.clone(), keys.clone(), Outcome::Hit);
    let (subject, baseline) = compare(n / 4, plan.warmup / 4, batch, one_by_one, nothing).await?;
    let vs_singles = LatencyComparison {
        id: format!("turn_batched_vs_singles{suffix}"),
        title: format!("a 14-key turn, batched, vs 14 single reads{on}"),
        subject: Measured {
            label: "CacheManager::read_many_shared, 14 hits".to_owned(),
            summary: subject.summary(),
        },
        baseline: Measured {
            label: "14 × CacheManager::read, one after another".to_owned(),
            summary: baseline.summary(),
        },
        note: "the same 14 keys; one round trip to Redis against fourteen".to_owned(),
    };
    Ok(vec![vs_mget, vs_singles])
}

/// The cold turn from the source: batched against 14 single cold reads;
/// the turn's keys are removed from the cache before every call, untimed.
pub(crate) async fn turn_cold<S, R>(
    manager: &CacheManager<S, R>,
    source: &str,
    world: &WorldId,
    spec: &DemoSpec,
    plan: &Plan,
) -> Result<LatencyComparison>
where
    S: CacheStore + 'static,
    R: WorldRepository + 'static,
{
    let keys = turn_keys(world, spec);
    let batch = |_| batched(manager.clone(), world.clone(), keys.clone(), Outcome::Miss);
    let one_by_one = |_| singles(manager.clone(), keys.clone(), Outcome::Miss);
    let evict = || {
        let (m, keys) = (manager.clone(), keys.clone());
        async move {
            // A failed removal makes the next call fail its check.
            let _ = m.store().remove(&keys).await;
        }
    };
    evict().await;
    let n = (plan.source_latency / 3).max(10);
    let (subject, baseline) = compare(n, (n / 10).max(3), batch, one_by_one, evict).await?;
    Ok(LatencyComparison {
        id: format!(
            "turn_cold_{}",
            source
                .to_lowercase()
                .replace(|c: char| !c.is_alphanumeric(), "_")
        ),
        title: format!("a cold 14-key turn ({source})"),
        subject: Measured {
            label: "CacheManager::read_many_shared, 14 misses".to_owned(),
            summary: subject.summary(),
        },
        baseline: Measured {
            label: "14 × CacheManager::read, misses".to_owned(),
            summary: baseline.summary(),
        },
        note: format!(
            "every call starts with the turn's keys removed from Redis; the batch is one MGET, one lease call, one {source} read and one fill, the singles fourteen of each"
        ),
    })
}
