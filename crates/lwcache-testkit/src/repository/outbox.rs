//! Checks of the repository's outbox: what each write owes the cache, in
//! its own transaction, until settled; claims, their ages and owners.

use super::{apply, create_world, event};
use crate::Harness;
use crate::fixtures::{character, doc, flag, fresh_world};
use lwcache_domain::{Document, Op, Value, WorldId};

fn claim(owner: &str, world: &WorldId) -> lwcache_core::ports::Claim {
    lwcache_core::ports::Claim {
        owner: owner.to_owned(),
        world: Some(world.clone()),
        limit: 100,
        min_age: std::time::Duration::ZERO,
        lease: std::time::Duration::from_secs(60),
        take_held: false,
    }
}

/// Every committed write records what it owes the cache (its stale keys at
/// its version) until settled; a refused write records nothing; a claim
/// keeps other owners off until it lapses.
pub async fn writes_record_what_they_owe_until_settled(h: &Harness) {
    let world = create_world(h).await;
    let c1 = character("c1");
    let created = apply(h, &world, Op::CreateEntity(c1.clone(), doc("mood", "calm")))
        .await
        .unwrap();
    let evented = apply(h, &world, event(&c1, 1)).await.unwrap();
    apply(h, &world, Op::CreateEntity(c1.clone(), Document::new()))
        .await
        .expect_err("the id is taken");
    let mut owed = h.repo.owed(&claim("owner-a", &world)).await.unwrap();
    owed.sort_by_key(|o| o.version);
    let want: Vec<_> = [1, created.version, evented.version].into();
    assert_eq!(owed.iter().map(|o| o.version).collect::<Vec<_>>(), want);
    assert_eq!(owed[1], lwcache_domain::Owed::of(&created));
    assert_eq!(owed[2].keys, lwcache_domain::stale_keys(&evented));
    assert_eq!(
        h.repo.owed(&claim("owner-b", &world)).await.unwrap(),
        Vec::new(),
        "claimed by owner-a"
    );
    h.repo.settle(&[owed[0].id(), owed[1].id()]).await.unwrap();
    let left = h.repo.owed(&claim("owner-a", &world)).await.unwrap();
    assert_eq!(
        left,
        vec![owed[2].clone()],
        "the owner claims its own again"
    );
    let mut short = claim("owner-a", &world);
    short.lease = h.time.short_ttl();
    h.repo.owed(&short).await.unwrap();
    h.time.advance(h.time.short_ttl() * 2).await;
    let taken = h.repo.owed(&claim("owner-b", &world)).await.unwrap();
    if taken.is_empty() {
        // On a source shared with other tests, another process's replay in
        // trouble may have taken (and carried out) the lapsed entry first:
        // then it is no longer owner-a's either.
        assert_eq!(
            h.repo.owed(&claim("owner-a", &world)).await.unwrap(),
            Vec::new(),
            "a lapsed claim is no longer its owner's"
        );
    } else {
        assert_eq!(taken, vec![owed[2].clone()], "a lapsed claim is anyone's");
    }
    h.repo.settle(&[owed[2].id(), owed[2].id()]).await.unwrap();
    assert_eq!(
        h.repo.owed(&claim("owner-b", &world)).await.unwrap(),
        Vec::new()
    );
    h.repo.settle(&[]).await.expect("settling nothing is fine");
}

/// Young entries wait for `min_age`: their own writer is probably still
/// carrying them out.
pub async fn young_entries_are_left_to_their_writer(h: &Harness) {
    let world = create_world(h).await;
    let mut patient = claim("owner-a", &world);
    patient.min_age = std::time::Duration::from_secs(3600);
    assert_eq!(h.repo.owed(&patient).await.unwrap(), Vec::new());
    assert_eq!(
        h.repo.owed(&claim("owner-a", &world)).await.unwrap().len(),
        1
    );
}

/// A bulk load owes the cache nothing: it bypasses it.
pub async fn loads_owe_nothing(h: &Harness) {
    let world = fresh_world();
    let seed = lwcache_domain::WorldSeed {
        snapshot: doc("name", "Bay"),
        flags: Default::default(),
        entities: vec![(character("c1"), doc("mood", "calm"))],
        events: Vec::new(),
    };
    h.repo.load(&world, &seed).await.unwrap();
    assert_eq!(
        h.repo.owed(&claim("owner-a", &world)).await.unwrap(),
        Vec::new()
    );
}

/// Entries another owner holds a live claim on are left to it, unless the
/// claim asks to take held entries too (a process ending its cache's
/// trouble must see every step still owed).
pub async fn held_entries_are_taken_only_when_asked(h: &Harness) {
    let world = create_world(h).await;
    apply(h, &world, Op::SetFlag(flag("f"), Value::Int(1)))
        .await
        .unwrap();
    let held = h.repo.owed(&claim("owner-a", &world)).await.unwrap();
    assert_eq!(held.len(), 2, "the world's creation and the flag");
    assert!(
        h.repo
            .owed(&claim("owner-b", &world))
            .await
            .unwrap()
            .is_empty(),
        "owner-a's live claim keeps owner-b away"
    );
    let mut taking = claim("owner-b", &world);
    taking.take_held = true;
    let taken = h.repo.owed(&taking).await.unwrap();
    assert_eq!(taken, held);
}
