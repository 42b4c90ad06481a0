//! Checks of the world repository port.

mod outbox;

pub use outbox::*;

use std::collections::BTreeSet;
use std::sync::Arc;

use lwcache_core::ports::SourceError;
use lwcache_domain::world::apply_to;
use lwcache_domain::{
    CacheKey, CachedValue, Change, Document, EntityKind, EntityRef, Mutation, NewEvent, Op, Value,
    WorldError, WorldId, WorldModel,
};

use crate::Harness;
use crate::fixtures::{character, doc, entity, event_kind, flag, fresh_world};

async fn apply(
    h: &Harness,
    world: &WorldId,
    op: Op,
) -> Result<lwcache_domain::Committed, SourceError> {
    h.repo
        .apply(&Mutation {
            world: world.clone(),
            op,
        })
        .await
}

async fn create_world(h: &Harness) -> WorldId {
    let world = fresh_world();
    let c = apply(h, &world, Op::ReplaceSnapshot(doc("name", "Harbor")))
        .await
        .expect("create");
    assert_eq!(c.version, 1, "a new world starts at version 1");
    assert_eq!(
        c.change,
        Change::SnapshotReplaced {
            snapshot: doc("name", "Harbor"),
            created_world: true
        }
    );
    world
}

fn event(entity: &EntityRef, n: i64) -> Op {
    Op::AddEvent(NewEvent {
        entity: entity.entity_id(),
        kind: event_kind("tick"),
        at_ms: 1_700_000_000_000 + n,
        data: Document::new().with("n", Value::Int(n)),
        top_k: lwcache_domain::DEFAULT_TOP_K,
    })
}

/// Reads, writes and the version of an unknown world are refused with
/// [`WorldError::UnknownWorld`].
pub async fn unknown_worlds_are_refused(h: &Harness) {
    let world = fresh_world();
    let unknown = SourceError::Rejected(WorldError::UnknownWorld(world.clone()));
    assert_eq!(h.repo.version(&world).await, Err(unknown.clone()));
    assert_eq!(
        h.repo.read(&CacheKey::state(&world), 10).await,
        Err(unknown.clone())
    );
    assert_eq!(
        h.repo.image(&world, 10).await.map(|_| ()),
        Err(unknown.clone())
    );
    let set = apply(h, &world, Op::SetFlag(flag("door"), Value::Bool(true))).await;
    assert_eq!(set, Err(unknown));
    h.repo.ping().await.expect("ping");
}

/// A world created by its snapshot reads back with empty flags.
pub async fn a_new_world_reads_back(h: &Harness) {
    let world = create_world(h).await;
    let state = h.repo.read(&CacheKey::state(&world), 10).await.unwrap();
    assert_eq!(state.version, 1);
    assert_eq!(state.value, CachedValue::Snapshot(doc("name", "Harbor")));
    let flags = h.repo.read(&CacheKey::flags(&world), 10).await.unwrap();
    assert_eq!(flags.value, CachedValue::Flags(Default::default()));
    assert!(h.repo.read(&CacheKey::version(&world), 10).await.is_err());
}

/// Every write, of every kind, bumps the version by exactly one.
pub async fn every_write_bumps_the_version_by_one(h: &Harness) {
    let world = create_world(h).await;
    let c = character("c1");
    let ops = vec![
        Op::SetFlag(flag("door"), Value::Bool(true)),
        Op::ClearFlag(flag("door")),
        Op::ClearFlag(flag("never_set")),
        Op::CreateEntity(c.clone(), doc("hp", "10")),
        Op::UpdateEntity(c.clone(), doc("hp", "9")),
        Op::PutEntity(c.clone(), doc("hp", "8")),
        event(&c, 1),
        Op::ReplaceSnapshot(doc("name", "Harbor at night")),
        Op::DeleteEntity(c.clone()),
    ];
    for (i, op) in ops.into_iter().enumerate() {
        let name = op.name();
        let committed = apply(h, &world, op)
            .await
            .unwrap_or_else(|e| panic!("{name}: {e}"));
        assert_eq!(committed.version, i as u64 + 2, "{name}");
        assert_eq!(h.repo.version(&world).await.unwrap(), committed.version);
    }
}

/// Eight tasks writing to one world at once get strictly increasing
/// versions with no gaps and no duplicates.
pub async fn concurrent_writers_get_distinct_versions(h: &Harness) {
    let world = create_world(h).await;
    let repo = Arc::clone(&h.repo);
    let mut tasks = Vec::new();
    for t in 0..8 {
        let repo = Arc::clone(&repo);
        let world = world.clone();
        tasks.push(tokio::spawn(async move {
            let mut versions = Vec::new();
            for i in 0..10 {
                let op = Op::SetFlag(flag(&format!("f{t}")), Value::Int(i));
                let c = repo
                    .apply(&Mutation {
                        world: world.clone(),
                        op,
                    })
                    .await
                    .expect("write");
                versions.push(c.version);
            }
            versions
        }));
    }
    let mut all = Vec::new();
    for task in tasks {
        let versions = task.await.expect("task");
        assert!(
            versions.windows(2).all(|w| w[0] < w[1]),
            "one task's versions increase: {versions:?}"
        );
        all.extend(versions);
    }
    let set: BTreeSet<u64> = all.iter().copied().collect();
    assert_eq!(set.len(), 80, "no duplicates");
    assert_eq!(set, (2..=81).collect(), "no gaps");
}

/// Characters, locations and objects share one id namespace per world;
/// updates and deletes of absent entities are refused.
pub async fn entities_share_one_id_namespace(h: &Harness) {
    let world = create_world(h).await;
    let c = character("x1");
    apply(h, &world, Op::CreateEntity(c.clone(), doc("name", "Ada")))
        .await
        .unwrap();
    let dup = apply(
        h,
        &world,
        Op::CreateEntity(entity(EntityKind::Object, "x1"), Document::new()),
    )
    .await;
    assert!(
        matches!(
            dup,
            Err(SourceError::Rejected(WorldError::EntityExists {
                existing: EntityKind::Character,
                ..
            }))
        ),
        "{dup:?}"
    );
    let put = apply(
        h,
        &world,
        Op::PutEntity(entity(EntityKind::Location, "x1"), Document::new()),
    )
    .await;
    assert!(
        matches!(
            put,
            Err(SourceError::Rejected(WorldError::EntityExists { .. }))
        ),
        "{put:?}"
    );
    let upd = apply(
        h,
        &world,
        Op::UpdateEntity(character("nobody"), Document::new()),
    )
    .await;
    assert!(
        matches!(
            upd,
            Err(SourceError::Rejected(WorldError::UnknownEntity { .. }))
        ),
        "{upd:?}"
    );
    let del = apply(
        h,
        &world,
        Op::DeleteEntity(entity(EntityKind::Object, "x1")),
    )
    .await;
    assert!(
        matches!(
            del,
            Err(SourceError::Rejected(WorldError::UnknownEntity { .. }))
        ),
        "{del:?}"
    );
    let ev = apply(h, &world, event(&character("nobody"), 1)).await;
    assert!(
        matches!(
            ev,
            Err(SourceError::Rejected(WorldError::UnknownEntity { .. }))
        ),
        "{ev:?}"
    );
    let read = h
        .repo
        .read(&CacheKey::entity(&world, &c), 10)
        .await
        .unwrap();
    assert_eq!(read.value, CachedValue::Entity(doc("name", "Ada")));
    let wrong_kind = h
        .repo
        .read(
            &CacheKey::entity(&world, &entity(EntityKind::Object, "x1")),
            10,
        )
        .await;
    assert!(matches!(
        wrong_kind,
        Err(SourceError::Rejected(WorldError::UnknownEntity { .. }))
    ));
}

/// A timeline reads newest first, bounded by the limit, with `seq` equal to
/// the version of each event's commit.
pub async fn timelines_are_newest_first_and_bounded(h: &Harness) {
    let world = create_world(h).await;
    let c = character("c1");
    apply(h, &world, Op::CreateEntity(c.clone(), Document::new()))
        .await
        .unwrap();
    let other = character("c2");
    apply(h, &world, Op::CreateEntity(other.clone(), Document::new()))
        .await
        .unwrap();
    let mut seqs = Vec::new();
    for n in 0..12 {
        let committed = apply(h, &world, event_with_top_k(&c, n, 5)).await.unwrap();
        let Change::EventAdded { event, recent } = committed.change else {
            panic!("not an event")
        };
        assert_eq!(event.seq, committed.version);
        seqs.push(event.seq);
        // The commit returns what a read at its version answers.
        let key = CacheKey::timeline(&world, &c.entity_id());
        let read = h.repo.read(&key, 5).await.unwrap();
        assert_eq!(read.version, committed.version);
        assert_eq!(CachedValue::Timeline(recent), read.value, "after event {n}");
        apply(h, &world, event_op_for(&other, n)).await.unwrap();
    }
    let key = CacheKey::timeline(&world, &c.entity_id());
    let read = h.repo.read(&key, 5).await.unwrap();
    let CachedValue::Timeline(events) = read.value else {
        panic!("not a timeline")
    };
    let got: Vec<u64> = events.iter().map(|e| e.seq).collect();
    let want: Vec<u64> = seqs.iter().rev().take(5).copied().collect();
    assert_eq!(got, want);
    assert!(events.iter().all(|e| e.entity == c.entity_id()));
    assert_eq!(events[0].data, Document::new().with("n", Value::Int(11)));
    let all = h.repo.read(&key, 100).await.unwrap();
    let CachedValue::Timeline(all) = all.value else {
        panic!("not a timeline")
    };
    assert_eq!(all.len(), 12);
}

fn event_op_for(e: &EntityRef, n: i64) -> Op {
    event(e, n + 1000)
}

fn event_with_top_k(entity: &EntityRef, n: i64, top_k: usize) -> Op {
    let Op::AddEvent(mut new) = event(entity, n) else {
        unreachable!("event builds an event")
    };
    new.top_k = top_k;
    Op::AddEvent(new)
}

/// Events added concurrently to one timeline each return every event of a
/// lower version: the list a write returns is the timeline at its version,
/// whatever the other writers do, so that the cache may keep it.
pub async fn concurrent_events_return_the_timeline_at_their_version(h: &Harness) {
    let world = create_world(h).await;
    let c = character("c1");
    apply(h, &world, Op::CreateEntity(c.clone(), Document::new()))
        .await
        .unwrap();
    let mut tasks = Vec::new();
    for t in 0..6 {
        let (repo, world, c) = (Arc::clone(&h.repo), world.clone(), c.clone());
        tasks.push(tokio::spawn(async move {
            let mut commits = Vec::new();
            for i in 0..8 {
                let op = event_with_top_k(&c, t * 100 + i, 1000);
                let mutation = Mutation {
                    world: world.clone(),
                    op,
                };
                commits.push(repo.apply(&mutation).await.expect("write"));
            }
            commits
        }));
    }
    let mut commits = Vec::new();
    for task in tasks {
        commits.extend(task.await.expect("task"));
    }
    let all: BTreeSet<u64> = commits.iter().map(|c| c.version).collect();
    assert_eq!(all.len(), 48);
    for committed in &commits {
        let Change::EventAdded { recent, .. } = &committed.change else {
            panic!("not an event")
        };
        let got: Vec<u64> = recent.iter().map(|e| e.seq).collect();
        let want: Vec<u64> = all
            .iter()
            .rev()
            .copied()
            .filter(|&v| v <= committed.version)
            .collect();
        assert_eq!(got, want, "the timeline at version {}", committed.version);
    }
}

/// Deleting an entity deletes its timeline.
pub async fn deleting_an_entity_drops_its_timeline(h: &Harness) {
    let world = create_world(h).await;
    let c = character("c1");
    apply(h, &world, Op::CreateEntity(c.clone(), Document::new()))
        .await
        .unwrap();
    apply(h, &world, event(&c, 1)).await.unwrap();
    apply(h, &world, Op::DeleteEntity(c.clone())).await.unwrap();
    assert!(
        h.repo
            .read(&CacheKey::timeline(&world, &c.entity_id()), 10)
            .await
            .is_err()
    );
    apply(h, &world, Op::CreateEntity(c.clone(), Document::new()))
        .await
        .unwrap();
    let read = h
        .repo
        .read(&CacheKey::timeline(&world, &c.entity_id()), 10)
        .await
        .unwrap();
    assert_eq!(
        read.value,
        CachedValue::Timeline(vec![]),
        "a re-created entity starts a new timeline"
    );
}

/// A refused write leaves the version and every value as they were.
pub async fn refused_writes_change_nothing(h: &Harness) {
    let world = create_world(h).await;
    let c = character("c1");
    apply(h, &world, Op::CreateEntity(c.clone(), doc("hp", "10")))
        .await
        .unwrap();
    let before = h.repo.image(&world, 10).await.unwrap();
    assert!(
        apply(h, &world, Op::CreateEntity(c.clone(), doc("hp", "1")))
            .await
            .is_err()
    );
    assert!(
        apply(h, &world, Op::UpdateEntity(character("c9"), doc("hp", "1")))
            .await
            .is_err()
    );
    assert_eq!(h.repo.image(&world, 10).await.unwrap(), before);
}

/// A long random sequence of writes gives the same commits and the same
/// reads as the domain's reference model.
pub async fn agrees_with_the_reference_model(h: &Harness) {
    let world = fresh_world();
    let mut model: Option<WorldModel> = None;
    let mut rng = 0x9E37_79B9_7F4A_7C15u64 ^ u64::from(world.as_str().len() as u32);
    let mut next = move |n: u64| {
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        rng % n
    };
    let ids = ["a", "b", "c", "d"];
    let flags = ["door", "storm"];
    for step in 0..120i64 {
        let id = ids[next(4) as usize];
        let kind = EntityKind::ALL[next(3) as usize];
        let e = entity(kind, id);
        let d = Document::new()
            .with("step", Value::Int(step))
            .with(
                "mood",
                Value::Text(["calm", "tense"][next(2) as usize].into()),
            )
            .with(
                "nested",
                Value::Map([("x".to_owned(), Value::Float(step as f64 / 4.0))].into()),
            );
        let op = match if step == 0 { 0 } else { next(8) } {
            0 => Op::ReplaceSnapshot(d),
            1 => Op::SetFlag(flag(flags[next(2) as usize]), Value::Int(step)),
            2 => Op::ClearFlag(flag(flags[next(2) as usize])),
            3 => Op::CreateEntity(e, d),
            4 => Op::UpdateEntity(e, d),
            5 => Op::PutEntity(e, d),
            6 => Op::DeleteEntity(e),
            _ => event(&entity(kind, id), step),
        };
        let mutation = Mutation {
            world: world.clone(),
            op,
        };
        let expected = apply_to(&mut model, mutation.clone());
        let got = h.repo.apply(&mutation).await;
        match (&expected, &got) {
            (Ok(e), Ok(g)) => assert_eq!(g, e, "step {step}"),
            (Err(e), Err(SourceError::Rejected(g))) => {
                assert_eq!(
                    std::mem::discriminant(g),
                    std::mem::discriminant(e),
                    "step {step}: {g} vs {e}"
                )
            }
            _ => panic!("step {step}: repository {got:?}, model {expected:?}"),
        }
    }
    let model = model.expect("the first step creates the world");
    assert_eq!(h.repo.image(&world, 3).await.unwrap(), model.image(3));
    for id in ids {
        for kind in EntityKind::ALL {
            let key = CacheKey::entity(&world, &entity(kind, id));
            let got = h.repo.read(&key, 3).await.ok().map(|v| v.value);
            assert_eq!(got, model.read(&key, 3), "{key}");
        }
        let key = CacheKey::timeline(&world, &entity(EntityKind::Character, id).entity_id());
        assert_eq!(
            h.repo.read(&key, 3).await.ok().map(|v| v.value),
            model.read(&key, 3),
            "{key}"
        );
    }
}

/// Loading a seed leaves the world that applying its mutations one by one
/// leaves, versions and event sequence numbers included; a second load of
/// the same world and an invalid seed are refused and write nothing.
pub async fn loading_a_seed_equals_applying_it(h: &Harness) {
    let spec = lwcache_demo::DemoSpec::sized(24, 5);
    let seed = spec.seed();
    let world = fresh_world();
    let mut model: Option<WorldModel> = None;
    for mutation in seed.mutations(&world) {
        apply_to(&mut model, mutation).expect("the demo seed is valid");
    }
    let model = model.expect("the seed creates the world");

    let version = h.repo.load(&world, &seed).await.expect("load");
    assert_eq!(version, seed.len() as u64);
    assert_eq!(version, model.version());
    assert_eq!(h.repo.image(&world, 3).await.unwrap(), model.image(3));
    for entity in spec.entity_refs() {
        let key = CacheKey::timeline(&world, &entity.entity_id());
        assert_eq!(
            h.repo.read(&key, 10).await.unwrap().value,
            model.read(&key, 10).expect("every entity has a timeline"),
            "{key}"
        );
    }

    assert_eq!(
        h.repo.load(&world, &seed).await,
        Err(SourceError::Rejected(WorldError::WorldExists(
            world.clone()
        )))
    );
    assert_eq!(h.repo.version(&world).await, Ok(version));

    let mut invalid = seed.clone();
    invalid.events.push(NewEvent {
        entity: lwcache_domain::EntityId::new("nobody").unwrap(),
        kind: event_kind("tick"),
        at_ms: 0,
        data: Document::new(),
        top_k: lwcache_domain::DEFAULT_TOP_K,
    });
    let other = fresh_world();
    assert!(matches!(
        h.repo.load(&other, &invalid).await,
        Err(SourceError::Rejected(WorldError::InvalidSeed { .. }))
    ));
    assert!(matches!(
        h.repo.version(&other).await,
        Err(SourceError::Rejected(WorldError::UnknownWorld(_)))
    ));
}

/// A batched read answers each key in order with what a single read of it
/// answers, at a version no older than the world's when it started; an
/// absent entity fails its own item only; an unknown world, a key of
/// another world and the version key fail the call.
pub async fn batched_reads_agree_with_single_reads(h: &Harness) {
    let world = create_world(h).await;
    let c = character("c1");
    let l = entity(EntityKind::Location, "l1");
    apply(h, &world, Op::CreateEntity(c.clone(), doc("mood", "calm")))
        .await
        .unwrap();
    apply(h, &world, Op::CreateEntity(l.clone(), doc("name", "Dock")))
        .await
        .unwrap();
    apply(h, &world, Op::SetFlag(flag("door"), Value::Bool(true)))
        .await
        .unwrap();
    for n in 0..4 {
        apply(h, &world, event(&c, n)).await.unwrap();
    }
    let keys = vec![
        CacheKey::state(&world),
        CacheKey::flags(&world),
        CacheKey::entity(&world, &c),
        CacheKey::entity(&world, &l),
        // The id is a location's: no object holds it.
        CacheKey::entity(&world, &entity(EntityKind::Object, "l1")),
        CacheKey::entity(&world, &character("nobody")),
        CacheKey::timeline(&world, &c.entity_id()),
        CacheKey::timeline(&world, &l.entity_id()),
        CacheKey::timeline(&world, &lwcache_domain::EntityId::new("nobody").unwrap()),
        CacheKey::entity(&world, &c),
    ];
    let version = h.repo.version(&world).await.unwrap();
    let many = h.repo.read_many(&world, &keys, 3).await.expect("read_many");
    assert!(many.version >= version);
    assert_eq!(many.value.len(), keys.len());
    for (key, item) in keys.iter().zip(&many.value) {
        match h.repo.read(key, 3).await {
            Ok(single) => assert_eq!(item.as_ref(), Ok(&single.value), "{key}"),
            Err(SourceError::Rejected(e)) => assert_eq!(item.as_ref(), Err(&e), "{key}"),
            Err(other) => panic!("{key}: {other}"),
        }
    }
    let CachedValue::Timeline(events) = many.value[6].clone().unwrap() else {
        panic!("not a timeline")
    };
    assert_eq!(events.len(), 3, "bounded by the limit");
    assert!(matches!(
        many.value[5],
        Err(WorldError::UnknownEntity { .. })
    ));

    let unknown = fresh_world();
    assert_eq!(
        h.repo
            .read_many(&unknown, &[CacheKey::state(&unknown)], 3)
            .await,
        Err(SourceError::Rejected(WorldError::UnknownWorld(
            unknown.clone()
        )))
    );
    let foreign = [CacheKey::state(&world), CacheKey::state(&unknown)];
    assert!(matches!(
        h.repo.read_many(&world, &foreign, 3).await,
        Err(SourceError::Invalid(_))
    ));
    assert!(matches!(
        h.repo
            .read_many(&world, &[CacheKey::version(&world)], 3)
            .await,
        Err(SourceError::Invalid(_))
    ));
}
