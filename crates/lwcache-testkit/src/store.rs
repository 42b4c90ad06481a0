//! Checks of the cache store port: per-key versions, tombstones, leases for
//! fills, the world's highest version, TTLs, and dropping a world.

use std::time::Duration;

use lwcache_core::codec::{self, Entry};
use lwcache_core::ports::{CacheError, CacheWrite, Lease, Put, WriteOutcome};
use lwcache_domain::{CacheKey, CachedValue, Document, EntityId, Redaction, Value, WorldId};

use crate::Harness;
use crate::fixtures::{character, fresh_world};

/// An entry at `version` whose value names `tag`, so that checks can tell
/// entries apart.
pub fn entry(version: u64, tag: &str) -> Vec<u8> {
    codec::encode(&Entry {
        version,
        redaction: Redaction::Complete,
        value: CachedValue::Entity(Document::new().with("tag", Value::Text(tag.to_owned()))),
    })
}

/// The same entry in format 2, with freshness stamps in its header.
pub fn entry_v2(version: u64, tag: &str) -> Vec<u8> {
    let entry = codec::decode(&entry(version, tag)).expect("a valid entry");
    let stamps = codec::Freshness {
        written_ms: 1,
        fresh_until_ms: i64::MAX,
    };
    codec::encode_as(&entry, Some(stamps), codec::Format::V2)
}

fn put(key: &CacheKey, bytes: Vec<u8>) -> Put {
    Put {
        key: key.clone(),
        bytes,
        ttl: None,
    }
}

/// A commit by a writer that learned the world's epoch just before.
async fn commit(h: &Harness, world: &WorldId, version: u64, puts: Vec<Put>) -> CacheWrite {
    let epoch = h.store.epoch(world).await.expect("the store answers");
    CacheWrite::commit(world.clone(), version, Some(epoch), puts)
}

fn fill(world: &WorldId, version: u64, lease: Lease, puts: Vec<Put>) -> CacheWrite {
    CacheWrite::fill(world.clone(), version, lease, puts)
}

async fn must(h: &Harness, w: &CacheWrite) -> WriteOutcome {
    h.store.write(w).await.expect("the store answers")
}

async fn lease(h: &Harness, world: &WorldId, keys: &[CacheKey], lease: Lease) -> Vec<bool> {
    h.store
        .lease(world, keys, lease, Duration::from_secs(30))
        .await
        .expect("the store answers")
}

async fn get(h: &Harness, key: &CacheKey) -> Option<Vec<u8>> {
    h.store.get(key).await.expect("the store answers")
}

fn counts(landed: usize, skipped: usize, previous: Option<u64>) -> WriteOutcome {
    WriteOutcome {
        landed,
        skipped,
        previous,
        epoch_lost: false,
    }
}

/// A key never written reads as `None`, and so does an unknown world's
/// version.
pub async fn absent_keys_read_as_none(h: &Harness) {
    let world = fresh_world();
    assert_eq!(get(h, &CacheKey::state(&world)).await, None);
    assert_eq!(h.store.version(&world).await.unwrap(), None);
    h.store.ping().await.expect("ping");
}

/// Commits put key by key: a late commit skips the keys a newer one wrote
/// and keeps the keys it alone touched; the world's version only rises.
pub async fn commits_put_by_per_key_versions(h: &Harness) {
    let world = fresh_world();
    let a = CacheKey::state(&world);
    let b = CacheKey::entity(&world, &character("c1"));
    let first = commit(
        h,
        &world,
        3,
        vec![put(&a, entry(3, "a")), put(&b, entry(3, "b"))],
    )
    .await;
    assert_eq!(must(h, &first).await, counts(2, 0, None));
    assert_eq!(h.store.version(&world).await.unwrap(), Some(3));
    let later = commit(h, &world, 5, vec![put(&a, entry(5, "a"))]).await;
    assert_eq!(must(h, &later).await, counts(1, 0, Some(3)));
    let late = commit(
        h,
        &world,
        4,
        vec![put(&a, entry(4, "a")), put(&b, entry(4, "b"))],
    )
    .await;
    assert_eq!(
        must(h, &late).await,
        counts(1, 1, Some(5)),
        "the late commit keeps b, which only it wrote, and skips a"
    );
    assert_eq!(get(h, &a).await, Some(entry(5, "a")));
    assert_eq!(get(h, &b).await, Some(entry(4, "b")));
    assert_eq!(
        h.store.version(&world).await.unwrap(),
        Some(5),
        "never lowered"
    );
    let again = commit(h, &world, 5, vec![put(&a, entry(5, "a"))]).await;
    assert_eq!(must(h, &again).await.landed, 1, "a repeated put lands");
}

/// A tombstone keeps older puts out and reads back as itself; it never
/// replaces the value its own version wrote, while that value replaces it.
pub async fn tombstones_keep_older_puts_out(h: &Harness) {
    let world = fresh_world();
    let k = CacheKey::entity(&world, &character("c2"));
    must(
        h,
        &commit(h, &world, 6, vec![put(&k, codec::tombstone(6))]).await,
    )
    .await;
    assert_eq!(get(h, &k).await, Some(codec::tombstone(6)));
    let old = commit(h, &world, 5, vec![put(&k, entry(5, "old"))]).await;
    assert_eq!(must(h, &old).await.skipped, 1, "an older write stays out");
    assert_eq!(get(h, &k).await, Some(codec::tombstone(6)));
    let own = commit(h, &world, 6, vec![put(&k, entry(6, "own"))]).await;
    assert_eq!(
        must(h, &own).await.landed,
        1,
        "the write's value over its tombstone"
    );
    let replayed = commit(h, &world, 6, vec![put(&k, codec::tombstone(6))]).await;
    assert_eq!(
        must(h, &replayed).await.skipped,
        1,
        "a replayed tombstone keeps its write's value"
    );
    assert_eq!(get(h, &k).await, Some(entry(6, "own")));
    must(
        h,
        &commit(h, &world, 7, vec![put(&k, codec::tombstone(7))]).await,
    )
    .await;
    assert_eq!(get(h, &k).await, Some(codec::tombstone(7)));
}

/// A fill lands only under its own lease, which it then releases; a lease
/// is held by one token at a time.
pub async fn fills_need_their_lease(h: &Harness) {
    let world = fresh_world();
    let k = CacheKey::flags(&world);
    let (mine, theirs) = (Lease(11), Lease(12));
    let unleased = fill(&world, 2, mine, vec![put(&k, entry(2, "f"))]);
    assert_eq!(must(h, &unleased).await.skipped, 1, "no lease, no fill");
    assert_eq!(get(h, &k).await, None);
    assert_eq!(
        lease(h, &world, std::slice::from_ref(&k), mine).await,
        [true]
    );
    assert_eq!(
        lease(h, &world, std::slice::from_ref(&k), theirs).await,
        [false]
    );
    assert_eq!(
        lease(h, &world, std::slice::from_ref(&k), mine).await,
        [true],
        "the holder holds it still"
    );
    let foreign = fill(&world, 2, theirs, vec![put(&k, entry(2, "theirs"))]);
    assert_eq!(must(h, &foreign).await.skipped, 1, "another lease's fill");
    let own = fill(&world, 2, mine, vec![put(&k, entry(2, "mine"))]);
    assert_eq!(must(h, &own).await.landed, 1);
    assert_eq!(get(h, &k).await, Some(entry(2, "mine")));
    assert_eq!(
        lease(h, &world, std::slice::from_ref(&k), theirs).await,
        [true],
        "the fill released its lease"
    );
    let twice = fill(&world, 2, mine, vec![put(&k, entry(2, "again"))]);
    assert_eq!(
        must(h, &twice).await.skipped,
        1,
        "a released lease fills no more"
    );
}

/// A commit deletes the leases of its keys, so a fill whose source read may
/// predate the commit cannot land after it, even at a newer version.
pub async fn commits_take_the_leases_of_their_keys(h: &Harness) {
    let world = fresh_world();
    let a = CacheKey::state(&world);
    let b = CacheKey::flags(&world);
    let l = Lease(21);
    assert_eq!(
        lease(h, &world, &[a.clone(), b.clone()], l).await,
        [true, true]
    );
    must(
        h,
        &commit(h, &world, 4, vec![put(&a, entry(4, "written"))]).await,
    )
    .await;
    let late = fill(
        &world,
        9,
        l,
        vec![put(&a, entry(9, "filled")), put(&b, entry(9, "b"))],
    );
    assert_eq!(
        must(h, &late).await,
        counts(1, 1, Some(4)),
        "a's lease went with the commit; b's is intact"
    );
    assert_eq!(get(h, &a).await, Some(entry(4, "written")));
    assert_eq!(get(h, &b).await, Some(entry(9, "b")));
}

/// A fill never replaces a newer entry, and still releases its lease.
pub async fn fills_never_replace_newer_entries(h: &Harness) {
    let world = fresh_world();
    let k = CacheKey::timeline(&world, &EntityId::new("e1").unwrap());
    let l = Lease(31);
    assert_eq!(lease(h, &world, std::slice::from_ref(&k), l).await, [true]);
    must(
        h,
        &commit(h, &world, 8, vec![put(&k, codec::tombstone(8))]).await,
    )
    .await;
    assert_eq!(lease(h, &world, std::slice::from_ref(&k), l).await, [true]);
    let old = fill(&world, 7, l, vec![put(&k, entry(7, "old"))]);
    assert_eq!(must(h, &old).await.skipped, 1);
    assert_eq!(get(h, &k).await, Some(codec::tombstone(8)));
    assert_eq!(
        lease(h, &world, std::slice::from_ref(&k), Lease(32)).await,
        [true],
        "the skipped fill released its lease"
    );
}

/// Leases expire; a store that lost its keys lost its leases too.
pub async fn leases_expire_and_go_with_the_store(h: &Harness) {
    let world = fresh_world();
    let k = CacheKey::state(&world);
    let ttl = h.time.short_ttl();
    let held = h
        .store
        .lease(&world, std::slice::from_ref(&k), Lease(41), ttl)
        .await
        .unwrap();
    assert_eq!(held, [true]);
    h.time.advance(ttl * 2).await;
    assert_eq!(
        lease(h, &world, std::slice::from_ref(&k), Lease(42)).await,
        [true]
    );
    h.probe.forget(&world).await;
    let lost = fill(&world, 1, Lease(42), vec![put(&k, entry(1, "f"))]);
    assert_eq!(
        must(h, &lost).await.skipped,
        1,
        "a fill read before a restart cannot land after it"
    );
}

/// `remove` deletes keys unconditionally and leaves others alone.
pub async fn remove_deletes_keys(h: &Harness) {
    let world = fresh_world();
    let a = CacheKey::state(&world);
    let t = CacheKey::timeline(&world, &EntityId::new("e1").unwrap());
    must(
        h,
        &commit(
            h,
            &world,
            1,
            vec![put(&a, entry(1, "a")), put(&t, entry(1, "t"))],
        )
        .await,
    )
    .await;
    h.store.remove(std::slice::from_ref(&a)).await.unwrap();
    assert_eq!(get(h, &a).await, None);
    assert_eq!(get(h, &t).await, Some(entry(1, "t")));
    h.store.remove(&[]).await.unwrap();
}

/// `drop_world` deletes every key, lease and the version of one world, and
/// nothing of another.
pub async fn dropping_a_world_leaves_nothing_of_it(h: &Harness) {
    let world = fresh_world();
    let other = fresh_world();
    let a = CacheKey::state(&world);
    let f = CacheKey::flags(&world);
    must(h, &commit(h, &world, 3, vec![put(&a, entry(3, "a"))]).await).await;
    lease(h, &world, std::slice::from_ref(&f), Lease(51)).await;
    must(
        h,
        &commit(
            h,
            &other,
            2,
            vec![put(&CacheKey::state(&other), entry(2, "o"))],
        )
        .await,
    )
    .await;
    let dropped = h.store.drop_world(&world).await.unwrap();
    assert!(
        dropped >= 2,
        "the entry and the version at least, got {dropped}"
    );
    assert_eq!(h.probe.keys(&world).await, Vec::<String>::new());
    assert_eq!(h.store.version(&world).await.unwrap(), None);
    let late = fill(&world, 3, Lease(51), vec![put(&f, entry(3, "f"))]);
    assert_eq!(must(h, &late).await.skipped, 1, "its leases went too");
    assert_eq!(get(h, &CacheKey::state(&other)).await, Some(entry(2, "o")));
}

/// A commit carries the world's epoch as its writer learned it before its
/// source commit: while the store holds that epoch its values land; once
/// the store lost the world's keys (a restart, here `forget`; or
/// `drop_world`), it holds another, and the same commit lands each value
/// as a tombstone of its version (tombstones as they are), so that it can
/// cost a miss but never put back a value older than one the store lost.
pub async fn a_commit_from_before_the_world_was_lost_lands_tombstones(h: &Harness) {
    let world = fresh_world();
    let (a, b) = (CacheKey::state(&world), CacheKey::flags(&world));
    let before = h.store.epoch(&world).await.expect("the store answers");
    assert_eq!(
        h.store.epoch(&world).await.unwrap(),
        before,
        "one epoch until the world's keys are lost"
    );
    let write = |version, epoch| {
        CacheWrite::commit(
            world.clone(),
            version,
            epoch,
            vec![
                put(&a, entry(version, "a")),
                put(&b, codec::tombstone(version)),
            ],
        )
    };
    let landed = must(h, &write(3, Some(before))).await;
    assert_eq!((landed.landed, landed.epoch_lost), (2, false));
    assert_eq!(get(h, &a).await, Some(entry(3, "a")));

    h.probe.forget(&world).await;
    let late = must(h, &write(4, Some(before))).await;
    assert_eq!((late.landed, late.epoch_lost), (2, true), "{late:?}");
    assert_eq!(get(h, &a).await, Some(codec::tombstone(4)));
    assert_eq!(get(h, &b).await, Some(codec::tombstone(4)));
    let after = h.store.epoch(&world).await.unwrap();
    assert_ne!(after, before, "a lost epoch is never made again");
    let fresh = must(h, &write(5, Some(after))).await;
    assert_eq!((fresh.landed, fresh.epoch_lost), (2, false));
    assert_eq!(get(h, &a).await, Some(entry(5, "a")));

    // No epoch known: tombstones only.
    let blind = must(h, &write(6, None)).await;
    assert!(blind.epoch_lost);
    assert_eq!(get(h, &a).await, Some(codec::tombstone(6)));

    h.store.drop_world(&world).await.unwrap();
    let dropped = must(h, &write(7, Some(after))).await;
    assert!(dropped.epoch_lost, "drop_world takes the epoch too");
    assert_eq!(get(h, &a).await, Some(codec::tombstone(7)));
    assert_ne!(h.store.epoch(&world).await.unwrap(), after);
}

/// A put with a TTL disappears after it; a put without one and the version
/// key stay.
pub async fn ttls_expire_and_flags_persist(h: &Harness) {
    let world = fresh_world();
    let ttl = h.time.short_ttl();
    let derived = CacheKey::timeline(&world, &EntityId::new("e1").unwrap());
    let flags = CacheKey::flags(&world);
    let w = commit(
        h,
        &world,
        1,
        vec![
            Put {
                key: derived.clone(),
                bytes: entry(1, "d"),
                ttl: Some(ttl),
            },
            put(&flags, entry(1, "f")),
        ],
    )
    .await;
    must(h, &w).await;
    let left = h
        .probe
        .ttl(&derived)
        .await
        .expect("the derived key has a TTL");
    assert!(
        left <= ttl && !left.is_zero(),
        "TTL {left:?} not within (0, {ttl:?}]"
    );
    assert_eq!(h.probe.ttl(&flags).await, None, "flags never expire");
    h.time.advance(ttl * 2).await;
    assert_eq!(get(h, &derived).await, None, "expired");
    assert_eq!(get(h, &flags).await, Some(entry(1, "f")));
    assert_eq!(
        h.store.version(&world).await.unwrap(),
        Some(1),
        "the version key never expires"
    );
}

/// A write or a lease naming a key of another world, or the version key, is
/// refused whole; reading the version key as data is refused.
pub async fn foreign_keys_are_refused(h: &Harness) {
    let world = fresh_world();
    let other = fresh_world();
    let mine = CacheKey::state(&world);
    let theirs = CacheKey::state(&other);
    let w = commit(
        h,
        &world,
        1,
        vec![put(&mine, entry(1, "m")), put(&theirs, entry(1, "t"))],
    )
    .await;
    assert!(matches!(
        h.store.write(&w).await,
        Err(CacheError::Refused(_))
    ));
    assert_eq!(get(h, &mine).await, None, "nothing half-written");
    let v = commit(
        h,
        &world,
        1,
        vec![put(&CacheKey::version(&world), entry(1, "9"))],
    )
    .await;
    assert!(matches!(
        h.store.write(&v).await,
        Err(CacheError::Refused(_))
    ));
    let l = h
        .store
        .lease(
            &world,
            &[mine.clone(), theirs],
            Lease(61),
            Duration::from_secs(1),
        )
        .await;
    assert!(matches!(l, Err(CacheError::Refused(_))));
    assert!(h.store.get(&CacheKey::version(&world)).await.is_err());
}

/// A batched get answers each key in order, as single gets do, tombstones
/// and absent keys included; keys of another world and the version key are
/// refused.
pub async fn batched_gets_answer_each_key_in_order(h: &Harness) {
    let world = fresh_world();
    let a = CacheKey::state(&world);
    let b = CacheKey::entity(&world, &character("c1"));
    let gone = CacheKey::timeline(&world, &EntityId::new("c2").unwrap());
    let absent = CacheKey::flags(&world);
    must(
        h,
        &commit(
            h,
            &world,
            4,
            vec![
                put(&a, entry(4, "a")),
                put(&b, entry(4, "b")),
                put(&gone, codec::tombstone(4)),
            ],
        )
        .await,
    )
    .await;
    let keys = [
        a.clone(),
        absent.clone(),
        b.clone(),
        gone.clone(),
        a.clone(),
    ];
    let many = h
        .store
        .get_many(&world, &keys)
        .await
        .expect("the store answers");
    let mut single = Vec::new();
    for key in &keys {
        single.push(get(h, key).await);
    }
    assert_eq!(many, single);
    assert_eq!(many[0], Some(entry(4, "a")));
    assert_eq!(many[1], None);
    assert!(many[3].as_deref().is_some_and(codec::is_tombstone));
    assert_eq!(h.store.get_many(&world, &[]).await, Ok(Vec::new()));

    let other = CacheKey::state(&fresh_world());
    assert!(matches!(
        h.store.get_many(&world, &[a.clone(), other]).await,
        Err(CacheError::Refused(_))
    ));
    assert!(matches!(
        h.store
            .get_many(&world, &[a, CacheKey::version(&world)])
            .await,
        Err(CacheError::Refused(_))
    ));
}
