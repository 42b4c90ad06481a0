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
use lwcache_core::ports::{
    CacheError, CacheStore, CacheWrite, SourceError, WorldRepository, WriteKind, WriteOutcome,
};
use lwcache_core::{CacheManager, CacheStep, Counters, Error, ManagerConfig};
use lwcache_domain::{
    CacheKey, CachedValue, Change, Committed, Document, DocumentError, EntityId, EventKind,
    FlagName, Flags, Mutation, TimelineEvent, Value, Versioned, WorldId, WorldImage,
};
use mockall::{Sequence, mock};
use tokio::sync::Notify;

mock! {
    Store {}
    #[async_trait]
    impl CacheStore for Store {
        async fn get(&self, key: &CacheKey) -> Result<Option<Vec<u8>>, CacheError>;
        async fn write(&self, write: &CacheWrite) -> Result<WriteOutcome, CacheError>;
        async fn seed_version(&self, world: &WorldId, version: u64) -> Result<u64, CacheError>;
        async fn version(&self, world: &WorldId) -> Result<Option<u64>, CacheError>;
        async fn remove(&self, keys: &[CacheKey]) -> Result<(), CacheError>;
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
        async fn ping(&self) -> Result<(), SourceError>;
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
    let mut repo = MockRepo::new();
    let mut store = MockStore::new();
    repo.expect_apply()
        .times(1)
        .in_sequence(&mut seq)
        .returning(|_| Ok(flag_committed(7)));
    store
        .expect_write()
        .times(1)
        .in_sequence(&mut seq)
        .withf(|w| {
            w.kind == WriteKind::Commit
                && w.version == 7
                && w.puts.len() == 1
                && w.puts[0].key == CacheKey::flags(&world())
        })
        .returning(|_| Ok(WriteOutcome::Applied));
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
    let mut repo = MockRepo::new();
    let mut store = MockStore::new();
    repo.expect_apply()
        .times(1)
        .returning(|_| Err(SourceError::Unavailable("neo4j is down".into())));
    store.expect_write().times(0);
    store.expect_remove().times(0);
    store.expect_seed_version().times(0);
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
    let mut repo = MockRepo::new();
    let mut store = MockStore::new();
    repo.expect_apply().times(0);
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
    let mut repo = MockRepo::new();
    let mut store = MockStore::new();
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

/// A store whose writes with puts wait until released: it holds the
/// write-behind worker on its first task.
struct StuckStore {
    release: Notify,
}

#[async_trait]
impl CacheStore for StuckStore {
    async fn get(&self, _: &CacheKey) -> Result<Option<Vec<u8>>, CacheError> {
        Ok(None)
    }
    async fn write(&self, write: &CacheWrite) -> Result<WriteOutcome, CacheError> {
        if !write.puts.is_empty() {
            self.release.notified().await;
        }
        Ok(WriteOutcome::Applied)
    }
    async fn seed_version(&self, _: &WorldId, v: u64) -> Result<u64, CacheError> {
        Ok(v)
    }
    async fn version(&self, _: &WorldId) -> Result<Option<u64>, CacheError> {
        Ok(None)
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
    let mut repo = MockRepo::new();
    let mut version = 10;
    let e = entity.clone();
    repo.expect_apply().returning(move |_| {
        version += 1;
        Ok(Committed {
            world: world(),
            version,
            change: Change::EventAdded {
                event: TimelineEvent {
                    seq: version,
                    entity: e.clone(),
                    kind: EventKind::new("spoke").unwrap(),
                    at_ms: 0,
                    data: Document::new(),
                },
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

    // The worker takes the first task and is stuck in the store.
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
            let (value, redaction) = policy.redact(&CachedValue::Entity(doc));
            let bytes = codec::encode(&Entry { version: 1, redaction, value });
            prop_assert!(!bytes.windows(6).any(|w| w == b"SECRET"));
        }
    }
}
