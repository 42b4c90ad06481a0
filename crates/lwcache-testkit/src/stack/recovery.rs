//! Checks around faults: a store that fails and recovers, two instances on
//! one store, a process that dies between its commit and its cache step,
//! a world whose source went back in time.

use std::sync::Arc;

use lwcache_core::codec;
use lwcache_core::{CacheStep, Fields, Outcome};
use lwcache_domain::{CacheKey, CachedValue, Document, Op, Value};

use super::{cached_entry, eventually, manager, manager_with, quick_replay, seed_world};
use crate::Harness;
use crate::decorators::Faulty;
use crate::fixtures::{character, doc, event_kind, flag};

/// While the store fails, reads are served by the source and writes are
/// acknowledged; once it recovers, the keys that changed meanwhile are not
/// served stale.
pub async fn a_failing_store_never_fails_the_caller(h: &Harness) {
    let world = seed_world(h.repo.as_ref()).await;
    let faulty = Arc::new(Faulty::new(h.store.clone()));
    let (m, counters) = manager_with(faulty.clone(), h.repo.clone(), quick_replay());
    let c1 = character("c1");
    m.activate(&world).await.unwrap();
    assert_eq!(
        m.entity(&world, &c1, Fields::Cacheable)
            .await
            .unwrap()
            .outcome,
        Outcome::Hit
    );

    faulty.set_failing(true);
    let r = m
        .entity(&world, &c1, Fields::Cacheable)
        .await
        .expect("a read survives the cache");
    assert_eq!(
        (r.outcome, r.value),
        (Outcome::Fallback, doc("mood", "calm"))
    );
    let w = m
        .update_entity(&world, c1.clone(), doc("mood", "brave"))
        .await
        .expect("a write survives the cache");
    assert_eq!(w.cache, CacheStep::Failed);
    m.add_event(&world, c1.entity_id(), event_kind("spoke"), Document::new())
        .await
        .expect("write-behind survives");
    let r = m.entity(&world, &c1, Fields::Cacheable).await.unwrap();
    assert_eq!(
        (r.outcome, r.value),
        (Outcome::Fallback, doc("mood", "brave"))
    );
    assert!(m.health().await.0.is_err());

    faulty.set_failing(false);
    m.settle().await;
    // The failed step stayed owed in the outbox: the replay removes the old
    // value, and until it has, reads go to the source.
    let key = CacheKey::entity(&world, &c1);
    assert!(
        eventually(h, || async {
            cached_entry(h.store.get(&key).await.unwrap()).is_none() && h.store.ping().await.is_ok()
        })
        .await,
        "the owed step was replayed"
    );
    assert!(
        eventually(h, || async {
            let r = m.entity(&world, &c1, Fields::Cacheable).await.unwrap();
            assert_eq!(r.value, doc("mood", "brave"), "never stale meanwhile");
            r.outcome != Outcome::Fallback
        })
        .await,
        "reads use the cache again once nothing is owed"
    );
    h.store.remove(std::slice::from_ref(&key)).await.unwrap();
    let r = m.entity(&world, &c1, Fields::Cacheable).await.unwrap();
    assert_eq!(
        r.value,
        doc("mood", "brave"),
        "no stale value after recovery"
    );
    assert_eq!(r.outcome, Outcome::Miss);
    assert_eq!(
        m.entity(&world, &c1, Fields::Cacheable)
            .await
            .unwrap()
            .outcome,
        Outcome::Hit
    );
    let c = counters.snapshot();
    assert!(c.fallbacks >= 2 && c.cache_errors >= 2, "{c:?}");
}

/// Two instances on one store and one source: once a write through one is
/// acknowledged, the other reads it, for every key kind, although it had
/// the older values cached.
pub async fn an_acknowledged_write_is_read_by_every_instance(h: &Harness) {
    let world = seed_world(h.repo.as_ref()).await;
    let (a, _) = manager(h);
    let (b, _) = manager(h);
    let c1 = character("c1");
    b.activate(&world).await.unwrap();
    let top_k = b.config().policy.timeline_top_k;
    assert_eq!(b.flags(&world).await.unwrap().outcome, Outcome::Hit);

    a.replace_snapshot(&world, doc("name", "Harbor at night"))
        .await
        .unwrap();
    assert_eq!(
        b.world_state(&world).await.unwrap().value,
        doc("name", "Harbor at night")
    );
    a.set_flag(&world, flag("door_open"), Value::Bool(true))
        .await
        .unwrap();
    assert_eq!(
        b.flag(&world, &flag("door_open")).await.unwrap().value,
        Some(Value::Bool(true))
    );
    a.update_entity(&world, c1.clone(), doc("mood", "wary"))
        .await
        .unwrap();
    assert_eq!(
        b.entity(&world, &c1, Fields::Cacheable)
            .await
            .unwrap()
            .value,
        doc("mood", "wary")
    );
    let w = a
        .add_event(&world, c1.entity_id(), event_kind("spoke"), Document::new())
        .await
        .unwrap();
    let recent = b.recent(&world, &c1.entity_id(), top_k).await.unwrap();
    assert_eq!(
        recent.value.first().map(|e| e.seq),
        Some(w.committed.version),
        "the other instance sees the acknowledged event at once"
    );
    a.delete_entity(&world, c1.clone()).await.unwrap();
    assert!(b.entity(&world, &c1, Fields::Cacheable).await.is_err());
    a.shutdown().await;
    b.shutdown().await;
}

/// A process that dies between its commit and its cache step leaves the
/// step owed in the source; another instance's replay carries it out, so
/// the older cached value does not stay.
pub async fn a_crash_between_commit_and_cache_step_is_replayed(h: &Harness) {
    let world = seed_world(h.repo.as_ref()).await;
    let (survivor, _) = manager_with(h.store.clone(), h.repo.clone(), quick_replay());
    let c1 = character("c1");
    survivor.activate(&world).await.unwrap();
    let key = CacheKey::entity(&world, &c1);
    assert!(cached_entry(h.store.get(&key).await.unwrap()).is_some());
    // The dying process: its commit lands, its cache step never runs.
    h.repo
        .apply(&lwcache_domain::Mutation {
            world: world.clone(),
            op: Op::UpdateEntity(c1.clone(), doc("mood", "gone")),
        })
        .await
        .unwrap();
    assert!(
        eventually(h, || async {
            cached_entry(h.store.get(&key).await.unwrap()).is_none()
        })
        .await,
        "the survivor replayed the owed step"
    );
    assert_eq!(
        survivor
            .entity(&world, &c1, Fields::Cacheable)
            .await
            .unwrap()
            .value,
        doc("mood", "gone")
    );
    survivor.shutdown().await;
}

/// A world whose source went back in time (restored from a backup, or
/// deleted and made again) while the cache holds entries of its abandoned,
/// newer-looking history: the next write shows the cache a version above
/// its own, the source is behind that too, and the world's keys are dropped.
pub async fn a_world_restored_to_an_older_version_is_dropped(h: &Harness) {
    let world = seed_world(h.repo.as_ref()).await;
    let (m, _) = manager_with(h.store.clone(), h.repo.clone(), quick_replay());
    // The cache as the abandoned history left it: version 100.
    let abandoned = codec::encode(&codec::Entry {
        version: 100,
        redaction: lwcache_domain::Redaction::Complete,
        value: CachedValue::Snapshot(doc("name", "Harbor, burnt")),
    });
    let put = lwcache_core::ports::Put {
        key: CacheKey::state(&world),
        bytes: abandoned,
        ttl: None,
    };
    let epoch = h.store.epoch(&world).await.unwrap();
    h.store
        .write(&lwcache_core::ports::CacheWrite::commit(
            world.clone(),
            100,
            Some(epoch),
            vec![put],
        ))
        .await
        .unwrap();
    assert_eq!(
        m.world_state(&world).await.unwrap().value,
        doc("name", "Harbor, burnt"),
        "served until something shows the regression"
    );
    m.set_flag(&world, flag("bell"), Value::Bool(true))
        .await
        .unwrap();
    assert!(
        eventually(h, || async {
            m.world_state(&world).await.unwrap().value == doc("name", "Harbor")
        })
        .await,
        "the restored world's true state is served"
    );
    let source = h.repo.version(&world).await.unwrap();
    assert!(
        h.store
            .version(&world)
            .await
            .unwrap()
            .is_none_or(|v| v <= source),
        "the abandoned version went too"
    );
    m.shutdown().await;
}

/// An entity deleted while its instance could not reach the store, then
/// created again under the same id by another instance before the delete's
/// step was replayed: the new entity's timeline is empty, never the
/// deleted entity's events.
pub async fn a_recreated_entity_never_serves_the_deleted_timeline(h: &Harness) {
    let world = seed_world(h.repo.as_ref()).await;
    let faulty = Arc::new(Faulty::new(h.store.clone()));
    let (a, _) = manager_with(faulty.clone(), h.repo.clone(), quick_replay());
    let (b, _) = manager(h);
    b.activate(&world).await.unwrap();
    let c1 = character("c1");
    let top_k = b.config().policy.timeline_top_k;
    let before = b.recent(&world, &c1.entity_id(), top_k).await.unwrap();
    assert_eq!(before.outcome, Outcome::Hit);
    assert!(!before.value.is_empty(), "c1 has seeded events");

    faulty.set_failing(true);
    let deleted = a.delete_entity(&world, c1.clone()).await.unwrap();
    assert_eq!(deleted.cache, CacheStep::Failed);
    let created = b
        .create_entity(&world, c1.clone(), doc("mood", "new"))
        .await
        .unwrap();
    assert!(created.committed.version > deleted.committed.version);
    let r = b.recent(&world, &c1.entity_id(), top_k).await.unwrap();
    assert_eq!(r.value, Vec::new(), "the new c1 has no events");
    assert!(r.version >= created.committed.version);
    let e = b.entity(&world, &c1, Fields::Cacheable).await.unwrap();
    assert_eq!(e.value, doc("mood", "new"));
    faulty.set_failing(false);
    a.shutdown().await;
    b.shutdown().await;
}
