//! Checks of batched reads through the manager: each item agrees with a
//! single read of its key, hits cost one store call in all, and no item is
//! older than a write acknowledged before the batch started, on any
//! instance.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use lwcache_core::ports::CacheStore;
use lwcache_core::{Fields, ManagerConfig, Outcome};
use lwcache_domain::{CacheKey, CachedValue, EntityId, EntityKind, Value, WorldError};

use super::{manager, manager_with, seed_world};
use crate::Harness;
use crate::decorators::Recording;
use crate::fixtures::{character, doc, entity, event_kind};

/// A turn's keys over the seeded world: the snapshot, the flags, every
/// entity, an unknown one, and the timelines of a character, a location
/// without events and an unknown entity.
fn turn(world: &lwcache_domain::WorldId) -> Vec<CacheKey> {
    vec![
        CacheKey::state(world),
        CacheKey::flags(world),
        CacheKey::entity(world, &character("c1")),
        CacheKey::entity(world, &entity(EntityKind::Location, "l1")),
        CacheKey::entity(world, &entity(EntityKind::Object, "o1")),
        CacheKey::entity(world, &character("nobody")),
        CacheKey::timeline(world, &character("c1").entity_id()),
        CacheKey::timeline(world, &entity(EntityKind::Location, "l1").entity_id()),
        CacheKey::timeline(world, &EntityId::new("nobody").unwrap()),
    ]
}

/// A cold batch misses on every known key and fills them all; the next
/// batch hits on every one of them in one store call; every item agrees
/// with a single read of its key, and an unknown entity fails its item
/// alone. Keys of another world are refused before anything is read.
pub async fn batched_manager_reads_agree_with_single_reads(h: &Harness) {
    let world = seed_world(h.repo.as_ref()).await;
    let store = Arc::new(Recording::new(h.store.clone()));
    let dyn_store: Arc<dyn CacheStore> = store.clone();
    let (m, _) = manager_with(dyn_store, h.repo.clone(), ManagerConfig::default());
    let keys = turn(&world);
    let unknown = |at: usize| [5, 8].contains(&at);

    let cold = m.read_many(&world, &keys, Fields::Cacheable).await.unwrap();
    assert_eq!(cold.len(), keys.len());
    for (at, item) in cold.iter().enumerate() {
        if unknown(at) {
            let err = item.as_ref().unwrap_err();
            assert!(
                matches!(err.rejection(), Some(WorldError::UnknownEntity { .. })),
                "{}: {err}",
                keys[at]
            );
        } else {
            assert_eq!(
                item.as_ref().unwrap().outcome,
                Outcome::Miss,
                "{}",
                keys[at]
            );
        }
    }

    let known: Vec<CacheKey> = (0..keys.len())
        .filter(|&at| !unknown(at))
        .map(|at| keys[at].clone())
        .collect();
    let before = store.calls();
    let hits = m
        .read_many(&world, &known, Fields::Cacheable)
        .await
        .unwrap();
    assert_eq!(
        store.calls() - before,
        1,
        "every hit of the batch in one store call"
    );
    assert!(
        hits.iter()
            .all(|i| i.as_ref().unwrap().outcome == Outcome::Hit)
    );
    let warm = m.read_many(&world, &keys, Fields::Cacheable).await.unwrap();
    for (at, (key, item)) in keys.iter().zip(&warm).enumerate() {
        if unknown(at) {
            assert!(item.is_err(), "{key}");
            continue;
        }
        let item = item.as_ref().unwrap();
        assert_eq!(item.outcome, Outcome::Hit, "{key}");
        let single = m.read(key, Fields::Cacheable).await.unwrap();
        assert_eq!(
            (&item.value, item.version),
            (&single.value, single.version),
            "{key}"
        );
        assert_eq!(Some(&item.value), cold[at].as_ref().ok().map(|r| &r.value));
    }
    let CachedValue::Timeline(events) = &warm[6].as_ref().unwrap().value else {
        panic!("not a timeline")
    };
    assert_eq!(events.len(), 2, "c1's two seeded events");

    let other = CacheKey::state(&crate::fixtures::fresh_world());
    let before = store.calls();
    assert!(
        m.read_many(&world, &[keys[0].clone(), other], Fields::Cacheable)
            .await
            .is_err()
    );
    assert!(
        m.read_many(&world, &[CacheKey::version(&world)], Fields::Cacheable)
            .await
            .is_err()
    );
    assert_eq!(store.calls(), before, "nothing read for a refused batch");
}

/// Two instances: one writes an entity's state and events while the other
/// reads turns in batches; no item of a batch is older than a write
/// acknowledged before the batch started.
pub async fn batched_reads_see_every_acknowledged_write(h: &Harness) {
    let world = seed_world(h.repo.as_ref()).await;
    let (writer, _) = manager(h);
    let (reader, _) = manager(h);
    reader.activate(&world).await.expect("activate");
    let c1 = character("c1");
    let acked_state = Arc::new(AtomicU64::new(0));
    let acked_event = Arc::new(AtomicU64::new(0));
    let writes = {
        let (m, world, c1) = (writer.clone(), world.clone(), c1.clone());
        let (state, event) = (acked_state.clone(), acked_event.clone());
        tokio::spawn(async move {
            for n in 1..=30i64 {
                m.update_entity(&world, c1.clone(), doc("n", &n.to_string()))
                    .await
                    .expect("update");
                state.store(n as u64, Ordering::SeqCst);
                let w = m
                    .add_event(
                        &world,
                        c1.entity_id(),
                        event_kind("spoke"),
                        doc("n", &n.to_string()),
                    )
                    .await
                    .expect("event");
                event.store(w.committed.version, Ordering::SeqCst);
                tokio::task::yield_now().await;
            }
        })
    };
    let keys = [
        CacheKey::entity(&world, &c1),
        CacheKey::timeline(&world, &c1.entity_id()),
        CacheKey::state(&world),
    ];
    let mut checked = 0;
    loop {
        let done = writes.is_finished();
        let (state_floor, event_floor) = (
            acked_state.load(Ordering::SeqCst),
            acked_event.load(Ordering::SeqCst),
        );
        let items = reader
            .read_many(&world, &keys, Fields::Cacheable)
            .await
            .unwrap();
        let entity = items[0].as_ref().expect("entity").value.clone();
        let n = match &entity {
            CachedValue::Entity(d) => match d.0.get("n") {
                Some(Value::Text(t)) => t.parse::<u64>().unwrap(),
                _ => 0,
            },
            other => panic!("not an entity: {other:?}"),
        };
        assert!(n >= state_floor, "state {n} older than acked {state_floor}");
        let CachedValue::Timeline(events) = &items[1].as_ref().expect("timeline").value else {
            panic!("not a timeline")
        };
        let newest = events.first().map_or(0, |e| e.seq);
        assert!(
            newest >= event_floor,
            "timeline at {newest} older than acked event {event_floor}"
        );
        checked += 1;
        if done {
            break;
        }
        tokio::task::yield_now().await;
    }
    writes.await.expect("writer");
    assert!(checked > 1);
}
