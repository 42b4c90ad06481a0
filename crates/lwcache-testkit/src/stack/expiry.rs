//! Checks of how entries age and how misses are shared: one source read
//! for concurrent misses of a key, fail-safe answers past the TTL while the
//! source fails, negative entries for unknown entities, and TTL jitter.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use lwcache_core::ports::{Claim, SourceError, WorldRepository};
use lwcache_core::{Error, Fields, ManagerConfig, Outcome, SourceFailure, codec};
use lwcache_domain::{
    CacheKey, CachedValue, Committed, Document, Mutation, Op, Owed, OwedId, Value, Versioned,
    WorldError, WorldId, WorldImage, WriteMode,
};
use tokio::sync::{Notify, RwLock, RwLockWriteGuard};

use super::{manager_with, seed_world};
use crate::Harness;
use crate::decorators::Gated;
use crate::fixtures::{character, doc, entity, seed_ops};

/// A repository that counts its reads, fails every call but the outbox's
/// while down, and can hold reads (after counting them) until released.
struct Flaky {
    inner: Arc<dyn WorldRepository>,
    reads: AtomicUsize,
    down: AtomicBool,
    gate: RwLock<()>,
    entered: Notify,
}

impl Flaky {
    fn new(inner: Arc<dyn WorldRepository>) -> Arc<Self> {
        Arc::new(Self {
            inner,
            reads: AtomicUsize::new(0),
            down: AtomicBool::new(false),
            gate: RwLock::new(()),
            entered: Notify::new(),
        })
    }

    fn reads(&self) -> usize {
        self.reads.load(Ordering::SeqCst)
    }

    fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Holds every read until the guard is dropped.
    async fn hold(&self) -> RwLockWriteGuard<'_, ()> {
        self.gate.write().await
    }

    fn fail(&self) -> Result<(), SourceError> {
        if self.down.load(Ordering::SeqCst) {
            return Err(SourceError::Unavailable("the source is down".into()));
        }
        Ok(())
    }
}

#[async_trait]
impl WorldRepository for Flaky {
    async fn version(&self, world: &WorldId) -> Result<u64, SourceError> {
        self.fail()?;
        self.inner.version(world).await
    }
    async fn read(
        &self,
        key: &CacheKey,
        limit: usize,
    ) -> Result<Versioned<CachedValue>, SourceError> {
        self.reads.fetch_add(1, Ordering::SeqCst);
        self.entered.notify_one();
        let _open = self.gate.read().await;
        self.fail()?;
        self.inner.read(key, limit).await
    }
    async fn image(
        &self,
        world: &WorldId,
        top_k: usize,
    ) -> Result<Versioned<WorldImage>, SourceError> {
        self.fail()?;
        self.inner.image(world, top_k).await
    }
    async fn apply(&self, mutation: &Mutation) -> Result<Committed, SourceError> {
        self.fail()?;
        self.inner.apply(mutation).await
    }
    async fn owed(&self, claim: &Claim) -> Result<Vec<Owed>, SourceError> {
        self.inner.owed(claim).await
    }
    async fn settle(&self, done: &[OwedId]) -> Result<(), SourceError> {
        self.inner.settle(done).await
    }
    async fn ping(&self) -> Result<(), SourceError> {
        self.fail()?;
        self.inner.ping().await
    }
}

/// Lets the other tasks run: a few turns of the scheduler and a little
/// time, enough for reads to reach their flight against a real server.
async fn settle_tasks(h: &Harness) {
    for _ in 0..20 {
        tokio::task::yield_now().await;
    }
    h.time.advance(Duration::from_millis(300)).await;
}

/// Concurrent misses of one key cost one source read; readers of every
/// field get them all and the others get the cacheable ones; a leader
/// dropped mid-read leaves no follower waiting.
pub async fn concurrent_misses_share_one_source_read(h: &Harness) {
    let c2 = character("c2");
    let secret = doc("mood", "calm").with("email", Value::Text("c2@example.org".into()));
    let world = seed_ops(
        h.repo.as_ref(),
        [
            Op::ReplaceSnapshot(doc("name", "Harbor")),
            Op::CreateEntity(c2.clone(), secret.clone()),
        ],
    )
    .await;
    let flaky = Flaky::new(h.repo.clone());
    let (m, counters) = manager_with(h.store.clone(), flaky.clone(), ManagerConfig::default());
    let hold = flaky.hold().await;
    let mut readers = Vec::new();
    for i in 0..20 {
        let (m, world, c2) = (m.clone(), world.clone(), c2.clone());
        let fields = if i % 2 == 0 {
            Fields::All
        } else {
            Fields::Cacheable
        };
        readers.push(tokio::spawn(async move {
            (fields, m.entity(&world, &c2, fields).await)
        }));
    }
    flaky.entered.notified().await;
    settle_tasks(h).await;
    drop(hold);
    for reader in readers {
        let (fields, read) = reader.await.unwrap();
        let read = read.unwrap();
        assert_eq!(read.outcome, Outcome::Miss);
        match fields {
            Fields::All => assert_eq!(read.value, secret),
            Fields::Cacheable => assert_eq!(read.value, doc("mood", "calm")),
        }
    }
    assert_eq!(flaky.reads(), 1, "one source read for 20 concurrent misses");
    assert_eq!(counters.snapshot().coalesced, 19);

    let key = CacheKey::entity(&world, &c2);
    h.store.remove(std::slice::from_ref(&key)).await.unwrap();
    let hold = flaky.hold().await;
    let leader = {
        let (m, world, c2) = (m.clone(), world.clone(), c2.clone());
        tokio::spawn(async move { m.entity(&world, &c2, Fields::Cacheable).await })
    };
    flaky.entered.notified().await;
    let follower = {
        let (m, world, c2) = (m.clone(), world.clone(), c2.clone());
        tokio::spawn(async move { m.entity(&world, &c2, Fields::Cacheable).await })
    };
    settle_tasks(h).await;
    leader.abort();
    assert!(leader.await.is_err(), "the leader was dropped mid-read");
    drop(hold);
    let read = follower.await.unwrap().unwrap();
    assert_eq!(read.value, doc("mood", "calm"), "the follower read anew");
    assert_eq!(flaky.reads(), 3);
}

/// A miss that starts after a write's acknowledgement never takes the
/// result of a flight whose source read predates the write: it reads again.
pub async fn a_miss_after_a_write_never_takes_an_older_flight(h: &Harness) {
    let world = seed_world(h.repo.as_ref()).await;
    let gated = Arc::new(Gated::new(h.repo.clone()));
    let mut config = ManagerConfig::default();
    config.policy.entity.mode = WriteMode::Invalidate;
    let (m, _) = manager_with(h.store.clone(), gated.clone(), config);
    let c1 = character("c1");
    let key = CacheKey::entity(&world, &c1);
    let (early, late) = gated
        .interleave(
            key,
            {
                let (m, world, c1) = (m.clone(), world.clone(), c1.clone());
                async move { m.entity(&world, &c1, Fields::Cacheable).await }
            },
            async {
                m.update_entity(&world, c1.clone(), doc("mood", "brave"))
                    .await
                    .unwrap();
                // Acknowledged; this miss joins the flight still in the air.
                let late = {
                    let (m, world, c1) = (m.clone(), world.clone(), c1.clone());
                    tokio::spawn(async move { m.entity(&world, &c1, Fields::Cacheable).await })
                };
                settle_tasks(h).await;
                // The handle, to await once the early read is let go.
                [late]
            },
        )
        .await;
    assert_eq!(
        early.unwrap().value,
        doc("mood", "calm"),
        "read before the write"
    );
    let [late] = late;
    assert_eq!(
        late.await.unwrap().unwrap().value,
        doc("mood", "brave"),
        "a read that began after the acknowledgement sees the write"
    );
}

/// An entry past its TTL is read again from the source; only while the
/// source fails is it served, marked with its age and the failure, and only
/// within the grace. Misses and writes fail meanwhile, nothing acknowledged.
pub async fn entries_past_their_ttl_serve_marked_only_while_the_source_fails(h: &Harness) {
    let world = seed_world(h.repo.as_ref()).await;
    let flaky = Flaky::new(h.repo.clone());
    let ttl = h.time.short_ttl();
    let mut config = ManagerConfig::default();
    config.policy.entity.ttl = Some(ttl);
    config.policy.expiry.grace = ttl * 20;
    config.policy.expiry.jitter_percent = 0;
    config.source_timeout = Duration::from_millis(200);
    let (m, counters) = manager_with(h.store.clone(), flaky.clone(), config);
    let (c1, l1) = (
        character("c1"),
        entity(lwcache_domain::EntityKind::Location, "l1"),
    );
    let read = |fields| m.entity(&world, &c1, fields);
    assert_eq!(
        read(Fields::Cacheable).await.unwrap().outcome,
        Outcome::Miss
    );
    assert_eq!(read(Fields::Cacheable).await.unwrap().outcome, Outcome::Hit);

    h.time.advance(ttl * 2).await;
    let fresh = read(Fields::Cacheable).await.unwrap();
    assert_eq!(
        fresh.outcome,
        Outcome::Miss,
        "past its TTL, the source answers"
    );
    assert_eq!(read(Fields::Cacheable).await.unwrap().outcome, Outcome::Hit);

    h.time.advance(ttl * 2).await;
    flaky.set_down(true);
    let before = flaky.reads();
    let served = read(Fields::Cacheable).await.unwrap();
    assert_eq!(flaky.reads(), before + 1, "the source was asked first");
    let Some(staleness) = served.staleness() else {
        panic!("not a fail-safe answer: {:?}", served.outcome);
    };
    assert_eq!(staleness.reason, SourceFailure::Unavailable);
    assert!(staleness.age >= ttl * 2, "age {:?}", staleness.age);
    assert_eq!((served.value, served.version), (fresh.value, fresh.version));
    assert_eq!(counters.snapshot().fail_safe, 1);

    let miss = m.entity(&world, &l1, Fields::Cacheable).await.unwrap_err();
    assert!(
        matches!(miss, Error::Source(SourceError::Unavailable(_))),
        "{miss}"
    );
    let write = m
        .update_entity(&world, c1.clone(), doc("mood", "angry"))
        .await;
    assert!(
        matches!(write, Err(Error::Source(SourceError::Unavailable(_)))),
        "{write:?}"
    );
    let again = read(Fields::Cacheable).await.unwrap();
    assert!(matches!(again.outcome, Outcome::FailSafe(_)));
    assert_eq!(
        again.value,
        doc("mood", "calm"),
        "the refused write left nothing"
    );

    flaky.set_down(false);
    assert_eq!(
        read(Fields::Cacheable).await.unwrap().outcome,
        Outcome::Miss
    );
    h.time.advance(ttl * 23).await;
    flaky.set_down(true);
    assert!(
        read(Fields::Cacheable).await.is_err(),
        "past the grace, nothing is served"
    );
}

/// The source's "no such entity" is remembered for the negative TTL: a
/// thousand reads cost one source read per TTL, and a create replaces the
/// negative entry at once, under write-through and under invalidation, and
/// when it commits between the negative read and its fill. An unset flag is
/// answered from the cached flags: a thousand reads cost one source read.
pub async fn unknown_entities_are_remembered_until_a_create(h: &Harness) {
    let world = seed_world(h.repo.as_ref()).await;
    let flaky = Flaky::new(h.repo.clone());
    let (m, _) = manager_with(h.store.clone(), flaky.clone(), ManagerConfig::default());
    for _ in 0..1000 {
        let unset = m.flag(&world, &crate::fixtures::flag("no_such_flag")).await;
        assert_eq!(unset.unwrap().value, None);
    }
    assert_eq!(flaky.reads(), 1, "the flags were read once");

    for mode in [WriteMode::WriteThrough, WriteMode::Invalidate] {
        let world = seed_world(h.repo.as_ref()).await;
        let flaky = Flaky::new(h.repo.clone());
        let ttl = h.time.short_ttl();
        let mut config = ManagerConfig::default();
        config.policy.entity.mode = mode;
        config.policy.expiry.negative_ttl = Some(ttl);
        let (m, counters) = manager_with(h.store.clone(), flaky.clone(), config.clone());
        let ghost = character("ghost");
        let started = tokio::time::Instant::now();
        for _ in 0..1000 {
            let err = m
                .entity(&world, &ghost, Fields::Cacheable)
                .await
                .unwrap_err();
            assert!(
                matches!(err.rejection(), Some(WorldError::UnknownEntity { .. })),
                "{err}"
            );
        }
        // Against a real server the thousand reads may outlast a short TTL.
        let periods = started.elapsed().as_millis() / ttl.as_millis() + 1;
        let reads = flaky.reads();
        assert!(
            reads >= 1 && reads as u128 <= periods,
            "{reads} source reads in {periods} negative TTLs"
        );
        assert_eq!(counters.snapshot().negative_hits as usize, 1000 - reads);
        let key = CacheKey::entity(&world, &ghost);
        // (It may have just expired against a real server.)
        assert!(h.probe.ttl(&key).await.is_none_or(|t| t <= ttl));
        h.time.advance(ttl * 2).await;
        assert!(m.entity(&world, &ghost, Fields::Cacheable).await.is_err());
        assert_eq!(flaky.reads(), reads + 1, "expired: read again");

        m.create_entity(&world, ghost.clone(), doc("mood", "shy"))
            .await
            .unwrap();
        let read = m.entity(&world, &ghost, Fields::Cacheable).await.unwrap();
        assert_eq!(
            read.value,
            doc("mood", "shy"),
            "{mode:?}: the create replaced it"
        );

        // The create commits after the negative read, before its fill.
        let gated = Arc::new(Gated::new(h.repo.clone()));
        let (m2, _) = manager_with(h.store.clone(), gated.clone(), config);
        let late = character("late");
        let key = CacheKey::entity(&world, &late);
        let (negative, created) = gated
            .interleave(
                key.clone(),
                {
                    let (m2, world, late) = (m2.clone(), world.clone(), late.clone());
                    async move { m2.entity(&world, &late, Fields::Cacheable).await }
                },
                m2.create_entity(&world, late.clone(), doc("mood", "late")),
            )
            .await;
        assert!(negative.is_err(), "the read predates the create");
        created.unwrap();
        let read = m2.entity(&world, &late, Fields::Cacheable).await.unwrap();
        assert_eq!(
            read.value,
            doc("mood", "late"),
            "{mode:?}: no negative entry outlived it"
        );
    }
}

/// Entries written together (an activation) spread their expiry over the
/// policy's jitter, within it.
pub async fn activation_spreads_expiry(h: &Harness) {
    let ops = std::iter::once(Op::ReplaceSnapshot(doc("name", "Harbor")))
        .chain((0..50).map(|i| Op::CreateEntity(character(&format!("p{i}")), Document::new())));
    let world = seed_ops(h.repo.as_ref(), ops).await;
    let ttl = h.time.short_ttl() * 10;
    let mut config = ManagerConfig::default();
    config.policy.entity.ttl = Some(ttl);
    config.policy.expiry.grace = Duration::ZERO;
    config.policy.expiry.jitter_percent = 10;
    let (m, _) = manager_with(h.store.clone(), h.repo.clone(), config);
    m.activate(&world).await.unwrap();
    let mut left = Vec::new();
    for i in 0..50 {
        let key = CacheKey::entity(&world, &character(&format!("p{i}")));
        let bytes = h.store.get(&key).await.unwrap().expect("warmed");
        let (_, freshness) = codec::decode_fresh(&bytes).unwrap();
        let f = freshness.expect("an entry with a TTL says when it stops being fresh");
        let fresh_for =
            Duration::from_millis(u64::try_from(f.fresh_until_ms - f.written_ms).unwrap());
        assert!(
            fresh_for >= ttl * 9 / 10 && fresh_for <= ttl * 11 / 10,
            "{fresh_for:?}"
        );
        let t = h.probe.ttl(&key).await.expect("a TTL");
        assert!(t <= fresh_for, "the store's TTL {t:?} is the jittered one");
        left.push(t);
    }
    let (min, max) = (left.iter().min().unwrap(), left.iter().max().unwrap());
    assert!(
        *max - *min > ttl / 20,
        "50 entries written together expire within {:?} of each other",
        *max - *min
    );
}
