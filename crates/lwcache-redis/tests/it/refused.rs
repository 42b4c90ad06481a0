//! A world whose keys hold what no write leaves. A version key that is not
//! a version: the store refuses its writes, and the replay drops that
//! world's cache instead of keeping every world's reads on the source for
//! good. A value of another Redis type under an entry's key: a miss, which
//! the next fill or commit replaces; under a lease key, a lease free to take.

use std::sync::Arc;
use std::time::{Duration, Instant};

use lwcache_core::ports::{CacheError, CacheStore, CacheWrite, Put, WorldRepository};
use lwcache_core::{CacheManager, CacheStep, Counters, Fields, ManagerConfig, Outcome};
use lwcache_domain::{CacheKey, FlagName, Value, WorldId};
use lwcache_memory::MemoryRepository;
use lwcache_redis::RedisStore;
use lwcache_testkit::fixtures::character;
use redis::AsyncCommands;

use crate::support::{connect_one, seed_world, standalone_store, standalone_url};

type Manager = CacheManager<RedisStore, Arc<dyn WorldRepository>>;

/// Reads `world`'s flag `name` until the cache serves `want`.
async fn until_cached(m: &Manager, world: &WorldId, name: &FlagName, want: &Value) {
    let deadline = Instant::now() + Duration::from_secs(15);
    loop {
        let read = m.flag(world, name).await.unwrap();
        if read.outcome == Outcome::Hit && read.value.as_ref() == Some(want) {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{world}: still {:?} {:?}",
            read.outcome,
            read.value
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_world_whose_keys_the_store_refuses_is_dropped_and_every_world_is_cached_again() {
    let Some(url) = standalone_url() else { return };
    let repo: Arc<dyn WorldRepository> = Arc::new(MemoryRepository::new());
    let broken = seed_world(repo.as_ref(), 2).await;
    let other = seed_world(repo.as_ref(), 2).await;
    let counters = Arc::new(Counters::new());
    let m: Manager = CacheManager::builder(standalone_store(&url).await, repo)
        .config(ManagerConfig {
            replay_interval: Duration::from_millis(100),
            ..ManagerConfig::default()
        })
        .metrics(counters.clone())
        .build()
        .unwrap();
    m.activate(&broken).await.unwrap();
    m.activate(&other).await.unwrap();
    let name = FlagName::new("door_open").unwrap();
    let c0 = character("c0");
    let mut raw = connect_one(&url).await;
    let version_key = CacheKey::version(&broken).render();
    // One past u64::MAX (20 digits, as a version may have), then no
    // number at all.
    let cases = [
        "a version above 2^64 - 1",
        "a version key that is no number",
    ];
    for (i, case) in cases.into_iter().enumerate() {
        let dropped = counters.snapshot().worlds_dropped;
        let corrupt = match i {
            0 => redis::Cmd::set(&version_key, "18446744073709551616"),
            _ => redis::Cmd::set(&version_key, "not-a-version"),
        };
        let _: redis::Value = corrupt.query_async(&mut raw).await.unwrap();
        let value = Value::Int(i as i64);
        let written = m
            .set_flag(&broken, name.clone(), value.clone())
            .await
            .unwrap();
        assert_eq!(
            written.cache,
            CacheStep::Failed,
            "{case}: the store refused the step"
        );
        // Acknowledged, and owed: the replay drops the world's cache and
        // carries the step out on the empty world. Then both worlds are
        // served by the cache again, the written value included.
        until_cached(&m, &broken, &name, &value).await;
        until_cached(&m, &other, &name, &Value::Bool(false)).await;
        assert!(
            counters.snapshot().worlds_dropped > dropped,
            "{case}: the world was dropped"
        );
        let version: Option<String> = raw.get(&version_key).await.unwrap();
        if let Some(v) = version {
            v.parse::<u64>()
                .unwrap_or_else(|_| panic!("{case}: the version key holds {v:?}"));
        }
        let deadline = Instant::now() + Duration::from_secs(15);
        loop {
            let read = m
                .entity(&broken, &c0, lwcache_core::Fields::Cacheable)
                .await
                .unwrap();
            if read.outcome == Outcome::Hit {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "{case}: c0 still {:?}",
                read.outcome
            );
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }
    m.shutdown().await;
}

/// The write script takes a version for what Rust reads as one, a u64: a
/// version key of 20 digits above 2^64 - 1 is refused before any put
/// lands, not written through and then failed on the way back.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_version_key_above_u64_is_refused_before_anything_is_written() {
    let Some(url) = standalone_url() else { return };
    let store = standalone_store(&url).await;
    let mut raw = connect_one(&url).await;
    let world = lwcache_testkit::fixtures::fresh_world();
    let state = CacheKey::state(&world);
    for (held, refused) in [
        ("18446744073709551616", true),
        ("99999999999999999999", true),
        ("18446744073709551615", false),
    ] {
        let _: () = raw
            .set(CacheKey::version(&world).render(), held)
            .await
            .unwrap();
        let _: () = raw.del(state.render()).await.unwrap();
        let write = CacheWrite::commit(
            world.clone(),
            7,
            None,
            vec![Put {
                key: state.clone(),
                bytes: lwcache_testkit::store::entry(7, "x"),
                ttl: None,
            }],
        );
        let answer = store.write(&write).await;
        let landed: Option<Vec<u8>> = raw.get(state.render()).await.unwrap();
        if refused {
            assert!(
                matches!(answer, Err(CacheError::Refused(_))),
                "{held}: {answer:?}"
            );
            assert_eq!(landed, None, "{held}: nothing written");
        } else {
            let outcome = answer.unwrap();
            assert_eq!(outcome.previous, Some(u64::MAX), "{held}");
            assert!(landed.is_some(), "{held}: the put landed");
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_key_of_another_type_is_a_miss_that_the_next_fill_or_commit_replaces() {
    let Some(url) = standalone_url() else { return };
    for batched in [false, true] {
        let repo: Arc<dyn WorldRepository> = Arc::new(MemoryRepository::new());
        let world = seed_world(repo.as_ref(), 2).await;
        let mut config = lwcache_redis::RedisConfig::from_url(&url).unwrap();
        config.batch_reads = batched;
        let counters = Arc::new(Counters::new());
        let m: Manager = CacheManager::builder(RedisStore::connect(&config).await.unwrap(), repo)
            .metrics(counters.clone())
            .build()
            .unwrap();
        let mut raw = connect_one(&url).await;
        let (c0, c1) = (character("c0"), character("c1"));
        for c in [&c0, &c1] {
            let key = CacheKey::entity(&world, c).render();
            let _: () = raw.rpush(&key, "not an entry").await.unwrap();
        }
        // And a list under c0's lease key, which its miss takes first.
        let lease = format!("{}:lease", CacheKey::entity(&world, &c0).render());
        let _: () = raw.rpush(&lease, "not a lease").await.unwrap();
        // A read: a miss served by the source, whose fill takes the key.
        let read = m.entity(&world, &c0, Fields::Cacheable).await.unwrap();
        assert_eq!(read.outcome, Outcome::Miss, "batched {batched}");
        let read = m.entity(&world, &c0, Fields::Cacheable).await.unwrap();
        assert_eq!(read.outcome, Outcome::Hit, "batched {batched}");
        // A commit: its step replaces the key.
        let doc = lwcache_domain::Document::new().with("mood", Value::Int(7));
        let written = m.update_entity(&world, c1.clone(), doc).await.unwrap();
        assert_eq!(written.cache, CacheStep::Applied, "batched {batched}");
        let read = m.entity(&world, &c1, Fields::Cacheable).await.unwrap();
        assert_eq!(
            (read.outcome, read.value.get("mood")),
            (Outcome::Hit, Some(&Value::Int(7))),
            "batched {batched}"
        );
        assert_eq!(counters.snapshot().cache_errors, 0, "batched {batched}");
        assert!(!m.in_trouble());
        m.shutdown().await;
    }
}
