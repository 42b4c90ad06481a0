//! Checks of the cache store port.

use lwcache_core::ports::{CacheError, CacheWrite, Put, WriteKind, WriteOutcome};
use lwcache_domain::{CacheKey, EntityId, WorldId};

use crate::Harness;
use crate::fixtures::{character, fresh_world};

fn put(key: &CacheKey, bytes: &[u8]) -> Put {
    Put {
        key: key.clone(),
        bytes: bytes.to_vec(),
        ttl: None,
    }
}

fn write(
    world: &WorldId,
    version: u64,
    kind: WriteKind,
    puts: Vec<Put>,
    deletes: Vec<CacheKey>,
) -> CacheWrite {
    CacheWrite {
        world: world.clone(),
        version,
        kind,
        puts,
        deletes,
    }
}

async fn must(h: &Harness, w: &CacheWrite) -> WriteOutcome {
    h.store.write(w).await.expect("the store answers")
}

/// A key never written reads as `None`, and so does an unknown world's
/// version.
pub async fn absent_keys_read_as_none(h: &Harness) {
    let world = fresh_world();
    assert_eq!(h.store.get(&CacheKey::state(&world)).await.unwrap(), None);
    assert_eq!(h.store.version(&world).await.unwrap(), None);
    h.store.ping().await.expect("ping");
}

/// A fill is refused until the world's version is seeded; then it lands.
pub async fn fills_need_a_version(h: &Harness) {
    let world = fresh_world();
    let key = CacheKey::state(&world);
    let fill = write(&world, 5, WriteKind::Fill, vec![put(&key, b"v5")], vec![]);
    assert_eq!(must(h, &fill).await, WriteOutcome::NoVersion);
    assert_eq!(
        h.store.get(&key).await.unwrap(),
        None,
        "a refused fill writes nothing"
    );
    assert_eq!(h.store.seed_version(&world, 5).await.unwrap(), 5);
    assert_eq!(
        h.store.seed_version(&world, 3).await.unwrap(),
        5,
        "seeding never lowers"
    );
    assert_eq!(must(h, &fill).await, WriteOutcome::Applied);
    assert_eq!(h.store.get(&key).await.unwrap(), Some(b"v5".to_vec()));
    assert_eq!(h.store.version(&world).await.unwrap(), Some(5));
}

/// A fill read at an older version than the cached one writes nothing;
/// a fill at a newer version raises the cached version.
pub async fn fills_lose_to_newer_versions(h: &Harness) {
    let world = fresh_world();
    let key = CacheKey::flags(&world);
    h.store.seed_version(&world, 10).await.unwrap();
    let old = write(&world, 9, WriteKind::Fill, vec![put(&key, b"old")], vec![]);
    assert_eq!(must(h, &old).await, WriteOutcome::Rejected { cached: 10 });
    assert_eq!(h.store.get(&key).await.unwrap(), None);
    let new = write(&world, 12, WriteKind::Fill, vec![put(&key, b"new")], vec![]);
    assert_eq!(must(h, &new).await, WriteOutcome::Applied);
    assert_eq!(h.store.version(&world).await.unwrap(), Some(12));
    assert_eq!(h.store.get(&key).await.unwrap(), Some(b"new".to_vec()));
}

/// A commit raises the version and writes; a commit older than the cached
/// version deletes its keys instead of writing them.
pub async fn commits_raise_the_version_and_supersede(h: &Harness) {
    let world = fresh_world();
    let a = CacheKey::state(&world);
    let b = CacheKey::entity(&world, &character("c1"));
    let first = write(
        &world,
        3,
        WriteKind::Commit,
        vec![put(&a, b"a3"), put(&b, b"b3")],
        vec![],
    );
    assert_eq!(
        must(h, &first).await,
        WriteOutcome::Applied,
        "a commit needs no seeded version"
    );
    assert_eq!(h.store.version(&world).await.unwrap(), Some(3));
    let later = write(&world, 5, WriteKind::Commit, vec![put(&a, b"a5")], vec![]);
    assert_eq!(must(h, &later).await, WriteOutcome::Applied);
    let late = write(
        &world,
        4,
        WriteKind::Commit,
        vec![put(&a, b"a4"), put(&b, b"b4")],
        vec![],
    );
    assert_eq!(must(h, &late).await, WriteOutcome::Superseded { cached: 5 });
    assert_eq!(
        h.store.get(&a).await.unwrap(),
        None,
        "a superseded put is deleted"
    );
    assert_eq!(h.store.get(&b).await.unwrap(), None);
    assert_eq!(h.store.version(&world).await.unwrap(), Some(5));
    let del = write(
        &world,
        6,
        WriteKind::Commit,
        vec![put(&a, b"a6")],
        vec![b.clone()],
    );
    assert_eq!(must(h, &del).await, WriteOutcome::Applied);
    assert_eq!(h.store.get(&a).await.unwrap(), Some(b"a6".to_vec()));
}

/// `remove` deletes keys unconditionally and leaves others alone.
pub async fn remove_deletes_keys(h: &Harness) {
    let world = fresh_world();
    let a = CacheKey::state(&world);
    let t = CacheKey::timeline(&world, &EntityId::new("e1").unwrap());
    let w = write(
        &world,
        1,
        WriteKind::Commit,
        vec![put(&a, b"a"), put(&t, b"t")],
        vec![],
    );
    must(h, &w).await;
    h.store.remove(std::slice::from_ref(&a)).await.unwrap();
    assert_eq!(h.store.get(&a).await.unwrap(), None);
    assert_eq!(h.store.get(&t).await.unwrap(), Some(b"t".to_vec()));
    h.store.remove(&[]).await.unwrap();
}

/// A put with a TTL disappears after it; a put without one and the version
/// key stay.
pub async fn ttls_expire_and_flags_persist(h: &Harness) {
    let world = fresh_world();
    let ttl = h.time.short_ttl();
    let derived = CacheKey::timeline(&world, &EntityId::new("e1").unwrap());
    let flags = CacheKey::flags(&world);
    let w = write(
        &world,
        1,
        WriteKind::Commit,
        vec![
            Put {
                key: derived.clone(),
                bytes: b"d".to_vec(),
                ttl: Some(ttl),
            },
            put(&flags, b"f"),
        ],
        vec![],
    );
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
    assert_eq!(h.store.get(&derived).await.unwrap(), None, "expired");
    assert_eq!(h.store.get(&flags).await.unwrap(), Some(b"f".to_vec()));
    assert_eq!(
        h.store.version(&world).await.unwrap(),
        Some(1),
        "the version key never expires"
    );
}

/// A write naming a key of another world, or the version key, is refused
/// whole; reading the version key as data is refused.
pub async fn foreign_keys_are_refused(h: &Harness) {
    let world = fresh_world();
    let other = fresh_world();
    let mine = CacheKey::state(&world);
    let theirs = CacheKey::state(&other);
    let w = write(
        &world,
        1,
        WriteKind::Commit,
        vec![put(&mine, b"m"), put(&theirs, b"t")],
        vec![],
    );
    assert!(matches!(
        h.store.write(&w).await,
        Err(CacheError::Refused(_))
    ));
    assert_eq!(
        h.store.get(&mine).await.unwrap(),
        None,
        "nothing half-written"
    );
    let v = write(
        &world,
        1,
        WriteKind::Commit,
        vec![put(&CacheKey::version(&world), b"9")],
        vec![],
    );
    assert!(matches!(
        h.store.write(&v).await,
        Err(CacheError::Refused(_))
    ));
    assert!(h.store.get(&CacheKey::version(&world)).await.is_err());
}
