//! Checks of the cache manager over a store and a repository: what a game
//! service sees. Reads, writes, warming and privacy here; what happens
//! around faults (a failing store, a crash, two instances, a restored
//! world) in `recovery.rs`; shared misses, fail-safe answers, negative
//! entries and TTL jitter in `expiry.rs`; privacy by configuration in
//! `privacy.rs`.

mod batch;
mod expiry;
mod privacy;
mod recovery;

pub use batch::*;
pub use expiry::*;
pub use privacy::*;
pub use recovery::*;

use std::sync::Arc;

use lwcache_core::codec;
use lwcache_core::ports::{CacheStore, WorldRepository};
use lwcache_core::{CacheManager, CacheStep, Counters, Fields, ManagerConfig, Outcome};
use lwcache_domain::{
    CacheKey, CachedValue, Document, EntityKind, NewEvent, Op, Value, WorldError, WorldId,
    WriteMode,
};

use crate::Harness;
use crate::decorators::{Gated, Recording};
use crate::fixtures::{character, doc, entity, event_kind, flag, fresh_world, seed_ops};

pub(super) type Manager<S, R> = CacheManager<S, R>;

pub(super) fn manager_with<S, R>(
    store: S,
    repo: R,
    config: ManagerConfig,
) -> (Manager<S, R>, Arc<Counters>)
where
    S: CacheStore + 'static,
    R: WorldRepository + 'static,
{
    let counters = Arc::new(Counters::new());
    let m = CacheManager::builder(store, repo)
        .config(config)
        .metrics(counters.clone())
        .build()
        .expect("valid config");
    (m, counters)
}

pub(super) type DynManager = Manager<Arc<dyn CacheStore>, Arc<dyn WorldRepository>>;

pub(super) fn manager(h: &Harness) -> (DynManager, Arc<Counters>) {
    manager_with(h.store.clone(), h.repo.clone(), ManagerConfig::default())
}

/// A world made directly in the source, past the cache: a snapshot, a flag,
/// a character `c1` with two events, a location `l1` and an object `o1`.
pub(super) async fn seed_world(repo: &dyn WorldRepository) -> WorldId {
    let ops = vec![
        Op::ReplaceSnapshot(doc("name", "Harbor")),
        Op::SetFlag(flag("door_open"), Value::Bool(false)),
        Op::CreateEntity(character("c1"), doc("mood", "calm")),
        Op::CreateEntity(entity(EntityKind::Location, "l1"), doc("name", "Pier")),
        Op::CreateEntity(entity(EntityKind::Object, "o1"), doc("name", "Lantern")),
        event_op("c1", 1),
        event_op("c1", 2),
    ];
    seed_ops(repo, ops).await
}

fn event_op(id: &str, n: i64) -> Op {
    Op::AddEvent(NewEvent {
        entity: character(id).entity_id(),
        kind: event_kind("spoke"),
        at_ms: n,
        data: Document::new().with("n", Value::Int(n)),
        top_k: lwcache_domain::DEFAULT_TOP_K,
    })
}

async fn source_value(h: &Harness, key: &CacheKey, limit: usize) -> CachedValue {
    h.repo.read(key, limit).await.expect("source read").value
}

/// The value an entry holds; `None` for an absent key, a tombstone or a
/// negative entry.
pub(super) fn cached_entry(bytes: Option<Vec<u8>>) -> Option<codec::Entry> {
    match codec::decode_slot(&bytes?).expect("the manager writes decodable entries") {
        codec::Slot::Value(entry) => Some(entry),
        codec::Slot::Tombstone { .. } | codec::Slot::Absent { .. } => None,
    }
}

/// A configuration whose outbox replay runs every 20 ms on entries older
/// than 50 ms, so that checks see it act within moments.
pub(super) fn quick_replay() -> ManagerConfig {
    let mut config = ManagerConfig::default();
    config.replay_interval = std::time::Duration::from_millis(20);
    config.replay_min_age = std::time::Duration::from_millis(50);
    config
}

/// Lets time pass, in small steps, until `done` holds or about ten seconds
/// went by; answers whether it held.
pub(super) async fn eventually<F, Fut>(h: &Harness, mut done: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    for _ in 0..200 {
        if done().await {
            return true;
        }
        h.time.advance(std::time::Duration::from_millis(50)).await;
    }
    done().await
}

/// A miss reads the source and fills the cache; the next read hits with the
/// same value and version.
pub async fn misses_populate_the_cache(h: &Harness) {
    let world = seed_world(h.repo.as_ref()).await;
    let (m, counters) = manager(h);
    let c1 = character("c1");
    for key in [
        CacheKey::state(&world),
        CacheKey::flags(&world),
        CacheKey::entity(&world, &c1),
        CacheKey::timeline(&world, &c1.entity_id()),
    ] {
        assert_eq!(h.store.get(&key).await.unwrap(), None, "{key} starts empty");
        let first = m.read(&key, Fields::Cacheable).await.expect("read");
        assert_eq!(first.outcome, Outcome::Miss, "{key}");
        assert_eq!(
            first.value,
            source_value(h, &key, m.config().policy.timeline_top_k).await
        );
        let entry = cached_entry(h.store.get(&key).await.unwrap()).expect("filled");
        assert_eq!(entry.value, first.value);
        let second = m.read(&key, Fields::Cacheable).await.expect("read");
        assert_eq!(second.outcome, Outcome::Hit, "{key}");
        assert_eq!((second.value, second.version), (first.value, first.version));
    }
    let c = counters.snapshot();
    assert_eq!((c.misses, c.hits, c.fallbacks), (4, 4, 0));
    let unknown = m
        .entity(&world, &character("nobody"), Fields::Cacheable)
        .await;
    assert!(matches!(
        unknown.unwrap_err().rejection(),
        Some(WorldError::UnknownEntity { .. })
    ));
}

/// After each kind of change, the cache answers what the source holds:
/// write-through keys hit with the new value, deleted keys are gone, and a
/// timeline hits with the list its event's commit returned.
pub async fn every_change_invalidates_what_it_makes_stale(h: &Harness) {
    let world = seed_world(h.repo.as_ref()).await;
    let (m, counters) = manager(h);
    m.activate(&world).await.expect("activate");
    let c1 = character("c1");
    let top_k = m.config().policy.timeline_top_k;

    let w = m
        .replace_snapshot(&world, doc("name", "Harbor at dusk"))
        .await
        .unwrap();
    assert_eq!(w.cache, CacheStep::Applied);
    let r = m.world_state(&world).await.unwrap();
    assert_eq!(
        (r.outcome, r.value, r.version),
        (
            Outcome::Hit,
            doc("name", "Harbor at dusk"),
            w.committed.version
        )
    );

    m.set_flag(&world, flag("door_open"), Value::Bool(true))
        .await
        .unwrap();
    let r = m.flag(&world, &flag("door_open")).await.unwrap();
    assert_eq!(
        (r.outcome, r.value),
        (Outcome::Hit, Some(Value::Bool(true)))
    );
    m.clear_flag(&world, flag("door_open")).await.unwrap();
    let r = m.flag(&world, &flag("door_open")).await.unwrap();
    assert_eq!((r.outcome, r.value), (Outcome::Hit, None));

    m.update_entity(&world, c1.clone(), doc("mood", "anxious"))
        .await
        .unwrap();
    let r = m.entity(&world, &c1, Fields::Cacheable).await.unwrap();
    assert_eq!((r.outcome, r.value), (Outcome::Hit, doc("mood", "anxious")));
    let l2 = entity(EntityKind::Location, "l2");
    m.put_entity(&world, l2.clone(), doc("name", "Lighthouse"))
        .await
        .unwrap();
    let r = m.entity(&world, &l2, Fields::Cacheable).await.unwrap();
    assert_eq!(
        (r.outcome, r.value),
        (Outcome::Hit, doc("name", "Lighthouse"))
    );
    // A created entity's timeline is put empty with it.
    let r = m.recent(&world, &l2.entity_id(), top_k).await.unwrap();
    assert_eq!((r.outcome, r.value), (Outcome::Hit, Vec::new()));

    let w = m
        .add_event(
            &world,
            c1.entity_id(),
            event_kind("cried"),
            doc("why", "storm"),
        )
        .await
        .unwrap();
    assert_eq!(
        w.cache,
        CacheStep::Applied,
        "the write puts the timeline its commit returned, before the ack"
    );
    let r = m.recent(&world, &c1.entity_id(), top_k).await.unwrap();
    assert_eq!(r.outcome, Outcome::Hit);
    assert_eq!(r.value.first().map(|e| e.seq), Some(w.committed.version));
    assert_eq!(
        CachedValue::Timeline(r.value),
        source_value(h, &CacheKey::timeline(&world, &c1.entity_id()), top_k).await
    );

    m.delete_entity(&world, c1.clone()).await.unwrap();
    assert_eq!(
        cached_entry(h.store.get(&CacheKey::entity(&world, &c1)).await.unwrap()),
        None
    );
    assert_eq!(
        cached_entry(
            h.store
                .get(&CacheKey::timeline(&world, &c1.entity_id()))
                .await
                .unwrap()
        ),
        None
    );
    let gone = m.entity(&world, &c1, Fields::Cacheable).await.unwrap_err();
    assert!(
        matches!(gone.rejection(), Some(WorldError::UnknownEntity { .. })),
        "{gone}"
    );

    // snapshot, set, clear, update, event: one step each; the put that
    // created l2 and the delete: two (the entity and its timeline).
    assert_eq!(counters.snapshot().invalidations, 9);
    let cached = h.store.version(&world).await.unwrap();
    assert_eq!(
        cached,
        Some(h.repo.version(&world).await.unwrap()),
        "ver follows the source"
    );
}

/// Entries with a TTL are read again from the source once it has passed;
/// flags, which have none, keep hitting.
pub async fn entries_expire_after_their_ttl(h: &Harness) {
    let world = seed_world(h.repo.as_ref()).await;
    let mut config = ManagerConfig::default();
    let ttl = h.time.short_ttl();
    config.policy.entity.ttl = Some(ttl);
    config.policy.timeline.ttl = Some(ttl);
    let (m, _) = manager_with(h.store.clone(), h.repo.clone(), config);
    let c1 = character("c1");
    assert_eq!(
        m.entity(&world, &c1, Fields::Cacheable)
            .await
            .unwrap()
            .outcome,
        Outcome::Miss
    );
    assert_eq!(m.flags(&world).await.unwrap().outcome, Outcome::Miss);
    assert_eq!(
        m.entity(&world, &c1, Fields::Cacheable)
            .await
            .unwrap()
            .outcome,
        Outcome::Hit
    );
    h.time.advance(ttl * 2).await;
    assert_eq!(
        m.entity(&world, &c1, Fields::Cacheable)
            .await
            .unwrap()
            .outcome,
        Outcome::Miss,
        "expired"
    );
    assert_eq!(
        m.flags(&world).await.unwrap().outcome,
        Outcome::Hit,
        "flags never expire"
    );
}

/// The stale-set race, interleaved deterministically: a reader reads the
/// source, a write commits and runs its cache step, then the reader's fill
/// arrives. The fill must lose, under write-through and under invalidation.
pub async fn a_fill_that_races_a_write_never_leaves_the_old_value(h: &Harness) {
    for mode in [WriteMode::WriteThrough, WriteMode::Invalidate] {
        let world = seed_world(h.repo.as_ref()).await;
        let gated = Arc::new(Gated::new(h.repo.clone()));
        let mut config = ManagerConfig::default();
        config.policy.entity.mode = mode;
        let (m, counters) = manager_with(h.store.clone(), gated.clone(), config);
        let c1 = character("c1");
        let key = CacheKey::entity(&world, &c1);
        m.activate(&world).await.expect("activate");
        h.store.remove(std::slice::from_ref(&key)).await.unwrap();

        let read = {
            let (m, world, c1) = (m.clone(), world.clone(), c1.clone());
            async move { m.entity(&world, &c1, Fields::Cacheable).await }
        };
        let write = m.update_entity(&world, c1.clone(), doc("mood", "hopeful"));
        let (old, w) = gated.interleave(key.clone(), read, write).await;
        let (old, w) = (old.expect("reader"), w.unwrap());
        assert_eq!(
            old.value,
            doc("mood", "calm"),
            "the reader saw the value before the write"
        );
        assert_eq!(
            counters.snapshot().fills_rejected,
            1,
            "{mode:?}: the racing fill was refused"
        );

        let entry = cached_entry(h.store.get(&key).await.unwrap());
        match mode {
            WriteMode::WriteThrough => {
                let entry = entry.expect("the write-through value stays");
                assert_eq!(entry.value, CachedValue::Entity(doc("mood", "hopeful")));
                assert_eq!(entry.version, w.committed.version);
            }
            _ => assert_eq!(entry, None, "{mode:?}: nothing cached until the next read"),
        }
        let now = m.entity(&world, &c1, Fields::Cacheable).await.unwrap();
        assert_eq!(now.value, doc("mood", "hopeful"), "{mode:?}");
    }
}

/// The cache loses everything (a restart without persistence) while a read
/// is between its source read and its fill. The fill must not bring the
/// older value back: its lease went with the cache.
pub async fn a_lost_cache_refills_without_stale_values(h: &Harness) {
    let world = seed_world(h.repo.as_ref()).await;
    let gated = Arc::new(Gated::new(h.repo.clone()));
    let (m, counters) = manager_with(h.store.clone(), gated.clone(), ManagerConfig::default());
    let c1 = character("c1");
    let key = CacheKey::entity(&world, &c1);
    assert_eq!(
        m.entity(&world, &c1, Fields::Cacheable)
            .await
            .unwrap()
            .outcome,
        Outcome::Miss
    );
    h.store.remove(std::slice::from_ref(&key)).await.unwrap();

    let read = {
        let (m, world, c1) = (m.clone(), world.clone(), c1.clone());
        async move { m.entity(&world, &c1, Fields::Cacheable).await }
    };
    let write_then_lose_the_cache = async {
        m.update_entity(&world, c1.clone(), doc("mood", "steady"))
            .await
            .unwrap();
        h.probe.forget(&world).await;
        assert_eq!(h.store.version(&world).await.unwrap(), None);
    };
    let (read, ()) = gated
        .interleave(key.clone(), read, write_then_lose_the_cache)
        .await;
    read.expect("reader");
    assert_eq!(
        h.store.get(&key).await.unwrap(),
        None,
        "the old value did not come back"
    );
    assert_eq!(counters.snapshot().fills_rejected, 1);
    let r = m.entity(&world, &c1, Fields::Cacheable).await.unwrap();
    assert_eq!((r.outcome, r.value), (Outcome::Miss, doc("mood", "steady")));
}

/// Activation prefills flags, snapshot, and each entity's state and recent
/// timeline: exactly those keys, then every read hits.
pub async fn activation_warms_every_expected_key(h: &Harness) {
    let world = seed_world(h.repo.as_ref()).await;
    let mut config = ManagerConfig::default();
    config.policy.warm.batch_size = 3;
    let (m, counters) = manager_with(h.store.clone(), h.repo.clone(), config);
    let report = m.activate(&world).await.expect("activate");
    assert_eq!((report.keys, report.skipped), (8, 0));
    assert_eq!(report.batches, 3, "8 keys in batches of 3");
    assert_eq!(report.version, h.repo.version(&world).await.unwrap());
    assert_eq!(counters.snapshot().warm_count, 8);
    let w = world.as_str();
    let mut want: Vec<String> = [
        "character:c1:state",
        "flags",
        "location:l1:state",
        "object:o1:state",
        "state",
        "timeline:c1:recent",
        "timeline:l1:recent",
        "timeline:o1:recent",
    ]
    .iter()
    .map(|k| format!("lw:world:{{{w}}}:{k}"))
    .collect();
    want.sort();
    assert_eq!(h.probe.keys(&world).await, want);
    let c1 = character("c1");
    assert_eq!(m.world_state(&world).await.unwrap().outcome, Outcome::Hit);
    assert_eq!(m.flags(&world).await.unwrap().outcome, Outcome::Hit);
    assert_eq!(
        m.entity(&world, &c1, Fields::Cacheable)
            .await
            .unwrap()
            .outcome,
        Outcome::Hit
    );
    let recent = m.recent(&world, &c1.entity_id(), 10).await.unwrap();
    assert_eq!(recent.outcome, Outcome::Hit);
    assert_eq!(recent.value.len(), 2);
    assert_eq!(counters.snapshot().misses, 0);
}

/// Recent timelines are newest first and hold the policy's top-k; a longer
/// read goes to the source.
pub async fn recent_timelines_keep_order_and_top_k(h: &Harness) {
    let world = seed_world(h.repo.as_ref()).await;
    let mut config = ManagerConfig::default();
    config.policy.timeline_top_k = 5;
    let (m, _) = manager_with(h.store.clone(), h.repo.clone(), config);
    let c1 = character("c1").entity_id();
    let mut seqs = Vec::new();
    for n in 0..8 {
        let w = m
            .add_event(
                &world,
                c1.clone(),
                event_kind("step"),
                Document::new().with("n", Value::Int(n)),
            )
            .await
            .unwrap();
        seqs.push(w.committed.version);
    }
    m.settle().await;
    let r = m.recent(&world, &c1, 3).await.unwrap();
    assert_eq!(
        r.outcome,
        Outcome::Hit,
        "the write-behind worker refreshed the timeline"
    );
    let got: Vec<u64> = r.value.iter().map(|e| e.seq).collect();
    assert_eq!(got, seqs.iter().rev().take(3).copied().collect::<Vec<_>>());
    let entry = cached_entry(h.store.get(&CacheKey::timeline(&world, &c1)).await.unwrap()).unwrap();
    let CachedValue::Timeline(cached) = entry.value else {
        panic!("not a timeline")
    };
    assert_eq!(cached.len(), 5, "the entry holds top-k");
    let long = m.recent(&world, &c1, 9).await.unwrap();
    assert_eq!(long.outcome, Outcome::Miss, "past top-k the source answers");
    assert_eq!(
        long.value.len(),
        9,
        "eight new events and one of the two seeded"
    );
    assert!(long.value.windows(2).all(|w| w[0].seq > w[1].seq));
}

/// No sensitive value is ever handed to the store, through fills, warming,
/// write-through or write-behind; a read of every field gets them from the
/// source.
pub async fn sensitive_values_never_reach_the_store(h: &Harness) {
    let world = fresh_world();
    let recording = Arc::new(Recording::new(h.store.clone()));
    let (m, _) = manager_with(recording.clone(), h.repo.clone(), ManagerConfig::default());
    let c1 = character("c1");
    let secret_doc = Document::new()
        .with("mood", Value::Text("calm".into()))
        .with("email", Value::Text("SECRET-1@example.org".into()))
        .with("pii_phone", Value::Text("SECRET-2".into()))
        .with(
            "profile",
            Value::Map([("clinical_notes".to_owned(), Value::Text("SECRET-3".into()))].into()),
        );
    m.replace_snapshot(
        &world,
        Document::new().with("real_name", Value::Text("SECRET-4".into())),
    )
    .await
    .unwrap();
    m.create_entity(&world, c1.clone(), secret_doc.clone())
        .await
        .unwrap();
    m.set_flag(&world, flag("pii_contact"), Value::Text("SECRET-5".into()))
        .await
        .unwrap();
    m.set_flag(&world, flag("door_open"), Value::Bool(true))
        .await
        .unwrap();
    m.add_event(
        &world,
        c1.entity_id(),
        event_kind("session"),
        doc("diagnosis", "SECRET-6"),
    )
    .await
    .unwrap();
    m.settle().await;
    m.activate(&world).await.unwrap();
    h.store
        .remove(&[CacheKey::entity(&world, &c1)])
        .await
        .unwrap();
    let public = m.entity(&world, &c1, Fields::Cacheable).await.unwrap();
    assert_eq!(public.outcome, Outcome::Miss);
    assert_eq!(public.value.get("email"), None);
    assert_eq!(public.value.get("mood"), Some(&Value::Text("calm".into())));
    m.flags(&world).await.unwrap();
    m.recent(&world, &c1.entity_id(), 5).await.unwrap();

    let written = recording.written();
    assert!(
        written.len() >= 6,
        "the checks saw the writes ({})",
        written.len()
    );
    for bytes in &written {
        assert!(
            !bytes.windows(6).any(|w| w == b"SECRET"),
            "a sensitive value reached the store"
        );
    }
    let full = m.entity(&world, &c1, Fields::All).await.unwrap();
    assert_eq!(
        full.outcome,
        Outcome::Miss,
        "the cached copy lacks the sensitive fields"
    );
    assert_eq!(full.value, secret_doc, "the source gives every field");
    let flags = m.flags(&world).await.unwrap();
    assert_eq!(flags.outcome, Outcome::Hit);
    assert!(!flags.value.contains_key(&flag("pii_contact")));
}

/// Bytes that are not a valid entry (an older format, corruption) are a
/// counted miss, never a wrong answer, and are replaced by the fill.
pub async fn undecodable_entries_are_misses(h: &Harness) {
    let world = seed_world(h.repo.as_ref()).await;
    let (m, counters) = manager(h);
    let key = CacheKey::state(&world);
    for garbage in [
        b"\x00garbage".to_vec(),
        b"LW\x00\x00\x00\x00\x00\x00\x00\x00\x00\x01\x01".to_vec(),
        b"LW\x01\x00\x00\x00\x00\x00\x00\x00\x00\x01\x09".to_vec(),
    ] {
        h.probe.put_raw(&key, garbage).await;
        let r = m.world_state(&world).await.expect("read");
        assert_eq!((r.outcome, r.value), (Outcome::Miss, doc("name", "Harbor")));
        assert_eq!(
            m.world_state(&world).await.unwrap().outcome,
            Outcome::Hit,
            "refilled"
        );
    }
    assert_eq!(counters.snapshot().decode_failures, 3);
}
