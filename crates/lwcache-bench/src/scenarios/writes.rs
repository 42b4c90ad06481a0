//! Writes: the manager's write path against the bare source write.

use std::sync::Arc;

use anyhow::Result;
use lwcache_bench::render::fmt_us;
use lwcache_bench::report::{LatencyComparison, Measured};
use lwcache_bench::stats::Samples;
use lwcache_core::CacheManager;
use lwcache_core::ports::{CacheStore, WorldRepository};
use lwcache_domain::{
    Document, EntityRef, EventKind, FlagName, Mutation, NewEvent, Op, Value, WorldId,
};

use super::{Plan, compare};

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
                top_k: lwcache_domain::DEFAULT_TOP_K,
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
            "the commit returns the new recent timeline, which the caller waits to see put in the cache (one EVALSHA) instead of a tombstone and a second source read",
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
