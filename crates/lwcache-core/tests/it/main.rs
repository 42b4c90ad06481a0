//! Interaction checks of the cache manager: the order of calls on its
//! ports, and what it never does. Whether adapters work is the
//! conformance suite's business (lwcache-testkit), not this file's.

#![allow(
    clippy::unwrap_used,
    reason = "test helpers: a failed unwrap is a failed test"
)]

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lwcache_core::codec;
use lwcache_core::ports::{
    CacheError, CacheStore, CacheWrite, Claim, Epoch, Lease, SourceError, WorldRepository,
    WriteKind, WriteOutcome,
};
use lwcache_core::{CacheManager, CacheStep, Counters, Error, ManagerConfig, StaleReads};
use lwcache_domain::{
    CacheKey, CachedValue, Change, Committed, Document, DocumentError, EntityId, EventKind,
    FlagName, Flags, Mutation, Owed, OwedId, TimelineEvent, Value, Versioned, WorldId, WorldImage,
};
use mockall::{Sequence, mock};
use tokio::sync::Notify;

mod breaker;

mock! {
    Store {}
    #[async_trait]
    impl CacheStore for Store {
        async fn get(&self, key: &CacheKey) -> Result<Option<Vec<u8>>, CacheError>;
        async fn write(&self, write: &CacheWrite) -> Result<WriteOutcome, CacheError>;
        async fn lease(&self, world: &WorldId, keys: &[CacheKey], lease: Lease, ttl: Duration) -> Result<Vec<bool>, CacheError>;
        async fn version(&self, world: &WorldId) -> Result<Option<u64>, CacheError>;
        async fn epoch(&self, world: &WorldId) -> Result<Epoch, CacheError>;
        async fn remove(&self, keys: &[CacheKey]) -> Result<(), CacheError>;
        async fn drop_world(&self, world: &WorldId) -> Result<usize, CacheError>;
        async fn ping(&self) -> Result<(), CacheError>;
    }
}

mock! {
    Repo {}
    #[async_trait]
    impl WorldRepository for Repo {
        async fn version(&self, world: &WorldId) -> Result<u64, SourceError>;
        async fn read(&self, key: &CacheKey, limit: usize) -> Result<Versioned<CachedValue>, SourceError>;
        async fn image(&self, world: &WorldId, top_k: usize) -> Result<Versioned<WorldImage>, SourceError>;
        async fn apply(&self, mutation: &Mutation) -> Result<Committed, SourceError>;
        async fn owed(&self, claim: &Claim) -> Result<Vec<Owed>, SourceError>;
        async fn settle(&self, done: &[OwedId]) -> Result<(), SourceError>;
        async fn ping(&self) -> Result<(), SourceError>;
    }
}

/// A repository mock whose outbox is empty and takes any settle: the
/// manager's background tasks call both.
fn repo_with_outbox() -> MockRepo {
    let mut repo = MockRepo::new();
    repo.expect_owed().returning(|_| Ok(Vec::new()));
    repo.expect_settle().returning(|_| Ok(()));
    repo
}

fn landed(n: usize) -> WriteOutcome {
    WriteOutcome {
        landed: n,
        ..WriteOutcome::default()
    }
}

fn world() -> WorldId {
    WorldId::new("w1").unwrap()
}

fn door() -> FlagName {
    FlagName::new("door").unwrap()
}

fn flag_committed(version: u64) -> Committed {
    let mut flags = Flags::new();
    flags.insert(door(), Value::Bool(true));
    Committed {
        world: world(),
        version,
        change: Change::FlagChanged {
            name: door(),
            flags,
        },
    }
}

#[tokio::test]
async fn the_cache_step_comes_strictly_after_the_source_commit() {
    let mut seq = Sequence::new();
    let mut repo = repo_with_outbox();
    let mut store = MockStore::new();
    // The replay loop pings the store before each round.
    store.expect_ping().returning(|| Ok(()));
    // The world's epoch first: the step's values land only if the store
    // lost nothing of the world after it was learned.
    store
        .expect_epoch()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(Epoch(41)));
    repo.expect_apply()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(flag_committed(7)));
    store
        .expect_write()
        .times(1)
        .in_sequence(&mut seq)
        .withf(|w| {
            w.kind
                == WriteKind::Commit {
                    epoch: Some(Epoch(41)),
                }
                && w.version == 7
                && w.puts.len() == 1
                && w.puts[0].key == CacheKey::flags(&world())
        })
        .returning(|_| Ok(landed(1)));
    let m = CacheManager::builder(store, repo).build().unwrap();
    let w = m
        .set_flag(&world(), door(), Value::Bool(true))
        .await
        .unwrap();
    assert_eq!(w.cache, CacheStep::Applied);
    assert_eq!(w.committed.version, 7);
}

#[tokio::test]
async fn a_failed_source_write_touches_no_cache() {
    let mut repo = repo_with_outbox();
    let mut store = MockStore::new();
    // The replay loop pings the store before each round.
    store.expect_ping().returning(|| Ok(()));
    store.expect_epoch().returning(|_| Ok(Epoch(1)));
    repo.expect_apply()
        .times(1)
        .returning(|_| Err(SourceError::Unavailable("neo4j is down".into())));
    store.expect_write().times(0);
    store.expect_remove().times(0);
    store.expect_lease().times(0);
    let m = CacheManager::builder(store, repo).build().unwrap();
    let err = m
        .set_flag(&world(), door(), Value::Bool(true))
        .await
        .unwrap_err();
    assert_eq!(
        err,
        Error::Source(SourceError::Unavailable("neo4j is down".into()))
    );
}

#[tokio::test]
async fn an_invalid_document_reaches_neither_port() {
    let mut repo = repo_with_outbox();
    let mut store = MockStore::new();
    // The replay loop pings the store before each round.
    store.expect_ping().returning(|| Ok(()));
    repo.expect_apply().times(0);
    store.expect_epoch().times(0);
    store.expect_write().times(0);
    let mut config = ManagerConfig::default();
    config.policy.limits.max_bytes = 16;
    let m = CacheManager::builder(store, repo)
        .config(config)
        .build()
        .unwrap();
    let big = Document::new().with("text", Value::Text("x".repeat(64)));
    let err = m.replace_snapshot(&world(), big).await.unwrap_err();
    assert!(
        matches!(
            err,
            Error::Document(DocumentError::TooLarge { limit: 16, .. })
        ),
        "{err}"
    );
}

#[tokio::test]
async fn a_cache_read_failure_falls_back_without_a_fill() {
    let mut repo = repo_with_outbox();
    let mut store = MockStore::new();
    // The replay loop pings the store before each round.
    store.expect_ping().returning(|| Ok(()));
    store.expect_epoch().returning(|_| Ok(Epoch(1)));
    store
        .expect_get()
        .times(1)
        .returning(|_| Err(CacheError::Unavailable("refused".into())));
    store.expect_write().times(0);
    repo.expect_read()
        .times(1)
        .returning(|_, _| Ok(Versioned::new(3, CachedValue::Snapshot(Document::new()))));
    let counters = Arc::new(Counters::new());
    let m = CacheManager::builder(store, repo)
        .metrics(counters.clone())
        .build()
        .unwrap();
    let r = m.world_state(&world()).await.unwrap();
    assert_eq!(r.outcome, lwcache_core::Outcome::Fallback);
    assert_eq!(r.version, 3);
    let c = counters.snapshot();
    assert_eq!((c.fallbacks, c.cache_errors, c.misses), (1, 1, 0));
}

/// A store whose writes of values wait until released: it holds the
/// write-behind worker on its first put, while tombstones go through.
struct StuckStore {
    release: Notify,
}

#[async_trait]
impl CacheStore for StuckStore {
    async fn get(&self, _: &CacheKey) -> Result<Option<Vec<u8>>, CacheError> {
        Ok(None)
    }
    async fn write(&self, write: &CacheWrite) -> Result<WriteOutcome, CacheError> {
        if write.puts.iter().any(|p| !codec::is_tombstone(&p.bytes)) {
            self.release.notified().await;
        }
        Ok(landed(write.puts.len()))
    }
    async fn lease(
        &self,
        _: &WorldId,
        keys: &[CacheKey],
        _: Lease,
        _: Duration,
    ) -> Result<Vec<bool>, CacheError> {
        Ok(vec![true; keys.len()])
    }
    async fn drop_world(&self, _: &WorldId) -> Result<usize, CacheError> {
        Ok(0)
    }
    async fn version(&self, _: &WorldId) -> Result<Option<u64>, CacheError> {
        Ok(None)
    }
    async fn epoch(&self, _: &WorldId) -> Result<Epoch, CacheError> {
        Ok(Epoch(1))
    }
    async fn remove(&self, _: &[CacheKey]) -> Result<(), CacheError> {
        Ok(())
    }
    async fn ping(&self) -> Result<(), CacheError> {
        Ok(())
    }
}

#[tokio::test]
async fn write_behind_never_blocks_the_caller_and_overflows_into_invalidation() {
    let entity = EntityId::new("c1").unwrap();
    let mut repo = repo_with_outbox();
    let mut version = 10;
    let e = entity.clone();
    repo.expect_apply().returning(move |_| {
        version += 1;
        Ok(Committed {
            world: world(),
            version,
            change: {
                let event = TimelineEvent {
                    seq: version,
                    entity: e.clone(),
                    kind: EventKind::new("spoke").unwrap(),
                    at_ms: 0,
                    data: Document::new(),
                };
                Change::EventAdded {
                    recent: vec![event.clone()],
                    event,
                }
            },
        })
    });
    repo.expect_read()
        .returning(|_, _| Ok(Versioned::new(11, CachedValue::Timeline(Vec::new()))));
    let store = Arc::new(StuckStore {
        release: Notify::new(),
    });
    let counters = Arc::new(Counters::new());
    let mut config = ManagerConfig::default();
    config.write_behind_capacity = 1;
    config.cache_timeout = Duration::from_secs(3600);
    // Only with stale reads opted into does a write leave its put to the
    // worker.
    config.stale_reads = StaleReads::WhileQueued;
    let m = CacheManager::builder(store.clone(), repo)
        .config(config)
        .metrics(counters.clone())
        .build()
        .unwrap();
    let w = world();
    let add = || {
        m.add_event(
            &w,
            entity.clone(),
            EventKind::new("spoke").unwrap(),
            Document::new(),
        )
    };

    // The worker takes the first task and is stuck in the store, putting.
    assert_eq!(add().await.unwrap().cache, CacheStep::Deferred);
    tokio::task::yield_now().await;
    // The second waits in the queue, which is now full.
    assert_eq!(add().await.unwrap().cache, CacheStep::Deferred);
    // The third cannot wait: it is acknowledged at once, as an invalidation.
    let third = tokio::time::timeout(Duration::from_secs(5), add())
        .await
        .expect("the caller was never blocked")
        .unwrap();
    assert_eq!(third.cache, CacheStep::Applied);
    let c = counters.snapshot();
    assert_eq!(c.write_behind_dropped, 1);
    assert_eq!(c.invalidations, 4, "three events, one overflow");

    // Once the store answers, the queue drains.
    store.release.notify_one();
    tokio::task::yield_now().await;
    store.release.notify_one();
    tokio::time::timeout(Duration::from_secs(5), m.shutdown())
        .await
        .expect("the queue drained");
}

mod privacy {
    //! The privacy property at the byte level: whatever a document holds,
    //! the bytes the manager hands to a cache store never contain a
    //! sensitive value.

    use lwcache_core::codec::{self, Entry};
    use lwcache_domain::privacy::DEFAULT_SENSITIVE_NAMES;
    use lwcache_domain::{CachedValue, Document, SensitivityPolicy, Value};
    use proptest::prelude::*;

    fn value() -> impl Strategy<Value = Value> {
        let leaf = prop_oneof![
            any::<i64>().prop_map(Value::Int),
            "[a-z ]{0,10}".prop_map(Value::Text),
        ];
        leaf.prop_recursive(3, 16, 4, |inner| {
            prop_oneof![
                prop::collection::vec(inner.clone(), 0..3).prop_map(Value::List),
                prop::collection::btree_map("[a-z]{1,5}", inner, 0..3).prop_map(Value::Map),
            ]
        })
    }

    /// A document where sensitive names, at any depth, hold `SECRET` text.
    fn doc() -> impl Strategy<Value = Document> {
        let sensitive = prop::sample::select(DEFAULT_SENSITIVE_NAMES);
        (
            prop::collection::btree_map("[a-z]{1,6}", value(), 0..5),
            prop::collection::vec((sensitive, 0usize..3), 1..4),
        )
            .prop_map(|(mut fields, secrets)| {
                for (i, (name, depth)) in secrets.into_iter().enumerate() {
                    let mut v = Value::Text(format!("SECRET{i}"));
                    let mut key = name.to_owned();
                    for d in 0..depth {
                        v = Value::Map([(key, v)].into());
                        key = format!("wrap{d}");
                    }
                    fields.insert(key, v);
                }
                Document(fields)
            })
    }

    proptest! {
        #[test]
        fn encoded_entries_hold_no_sensitive_value(doc in doc()) {
            let policy = SensitivityPolicy::default();
            let (value, redaction) = policy.redact(lwcache_domain::KeyKind::Character, &CachedValue::Entity(doc));
            let bytes = codec::encode(&Entry { version: 1, redaction, value });
            prop_assert!(!bytes.windows(6).any(|w| w == b"SECRET"));
        }
    }
}

fn event_committed(version: u64) -> Committed {
    let event = TimelineEvent {
        seq: version,
        entity: EntityId::new("c1").unwrap(),
        kind: EventKind::new("spoke").unwrap(),
        at_ms: 0,
        data: Document::new(),
    };
    Committed {
        world: world(),
        version,
        change: Change::EventAdded {
            recent: vec![event.clone()],
            event,
        },
    }
}

#[tokio::test]
async fn an_added_event_puts_its_new_timeline_before_the_ack() {
    let timeline = CacheKey::timeline(&world(), &EntityId::new("c1").unwrap());
    let committed = event_committed(9);
    let Change::EventAdded { recent, .. } = committed.change.clone() else {
        unreachable!("an event")
    };
    let mut repo = repo_with_outbox();
    repo.expect_apply()
        .returning(move |_| Ok(committed.clone()));
    // The new timeline comes with the commit: nothing is re-read.
    repo.expect_read().times(0);
    let put = Arc::new(std::sync::atomic::AtomicBool::new(false));
    let seen = put.clone();
    let key = timeline.clone();
    let mut store = MockStore::new();
    // The replay loop pings the store before each round.
    store.expect_ping().returning(|| Ok(()));
    store.expect_epoch().returning(|_| Ok(Epoch(1)));
    store
        .expect_write()
        .withf(move |w| {
            w.is_commit()
                && w.puts.len() == 1
                && w.puts[0].key == key
                && codec::decode(&w.puts[0].bytes).is_ok_and(|e| {
                    e.version == 9 && e.value == CachedValue::Timeline(recent.clone())
                })
        })
        .times(1)
        .returning(move |w| {
            seen.store(true, std::sync::atomic::Ordering::SeqCst);
            Ok(landed(w.puts.len()))
        });
    store.expect_lease().times(0);
    let m = CacheManager::builder(store, repo).build().unwrap();
    let w = m
        .add_event(
            &world(),
            EntityId::new("c1").unwrap(),
            EventKind::new("spoke").unwrap(),
            Document::new(),
        )
        .await
        .unwrap();
    assert!(
        put.load(std::sync::atomic::Ordering::SeqCst),
        "the new timeline was put before the write was acknowledged"
    );
    assert_eq!(w.cache, CacheStep::Applied);
    m.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn done_outbox_entries_are_removed_in_one_batch() {
    let mut repo = MockRepo::new();
    repo.expect_owed().returning(|_| Ok(Vec::new()));
    let mut version = 0;
    repo.expect_apply().returning(move |_| {
        version += 1;
        Ok(flag_committed(version))
    });
    repo.expect_settle()
        .times(1)
        .withf(|done| done.len() == 20 && done.iter().map(|d| d.version).eq(1..=20))
        .returning(|_| Ok(()));
    let mut store = MockStore::new();
    // The replay loop pings the store before each round.
    store.expect_ping().returning(|| Ok(()));
    store.expect_epoch().returning(|_| Ok(Epoch(1)));
    store.expect_write().returning(|w| Ok(landed(w.puts.len())));
    let m = CacheManager::builder(store, repo).build().unwrap();
    for _ in 0..20 {
        m.set_flag(&world(), door(), Value::Bool(true))
            .await
            .unwrap();
    }
    tokio::time::sleep(Duration::from_millis(500)).await;
    m.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn a_failed_cache_step_stays_owed_until_the_replay_carries_it_out() {
    let owed = Owed::of(&flag_committed(4));
    let id = owed.id();
    let mut repo = MockRepo::new();
    repo.expect_apply().returning(|_| Ok(flag_committed(4)));
    let mut rounds = 0;
    repo.expect_owed().returning(move |claim| {
        rounds += 1;
        // Rounds over every world leave young entries alone; after the
        // failure, a round over the failed write's world takes them too:
        // the cache is in trouble until everything owed is carried out.
        let own_world = claim.world.as_ref() == Some(&world());
        assert_eq!(claim.min_age == Duration::ZERO, own_world);
        assert!(claim.world.is_none() || own_world);
        Ok(if own_world && rounds == 2 {
            vec![owed.clone()]
        } else {
            Vec::new()
        })
    });
    let settled = id.clone();
    repo.expect_settle()
        .times(1)
        .withf(move |done| done == [settled.clone()])
        .returning(|_| Ok(()));
    let mut store = MockStore::new();
    // The replay loop pings the store before each round.
    store.expect_ping().returning(|| Ok(()));
    store.expect_epoch().returning(|_| Ok(Epoch(1)));
    let mut calls = 0;
    store.expect_write().returning(move |w| {
        calls += 1;
        if calls == 1 {
            // The write's own step: the cache is unreachable.
            return Err(CacheError::Unavailable("partitioned".into()));
        }
        // The replay: a tombstone of the flags at the write's version.
        // Tombstones only: they need no epoch.
        assert_eq!(w.kind, WriteKind::Commit { epoch: None });
        assert_eq!(w.puts.len(), 1);
        assert_eq!(w.puts[0].key, CacheKey::flags(&world()));
        assert!(codec::is_tombstone(&w.puts[0].bytes));
        assert_eq!(codec::peek_version(&w.puts[0].bytes), Ok(4));
        Ok(landed(1))
    });
    let m = CacheManager::builder(store, repo).build().unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    let w = m
        .set_flag(&world(), door(), Value::Bool(true))
        .await
        .unwrap();
    assert_eq!(w.cache, CacheStep::Failed, "acknowledged all the same");
    tokio::time::sleep(Duration::from_secs(3)).await;
    m.shutdown().await;
}
