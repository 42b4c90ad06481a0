//! The circuit breaker around the cache store, on the paused clock: a store
//! that hangs (every call runs into the cache timeout) opens it after the
//! configured run; then no read reaches the store and reads go to the
//! source until a probe finds the store answering, while a write's step,
//! owed by its commit, is still tried, and closes the breaker when the
//! store answers it.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use lwcache_core::ports::{CacheError, CacheStore, CacheWrite, Epoch, Lease, WriteOutcome};
use lwcache_core::{BreakerState, CacheManager, CacheStep, Counters, ManagerConfig, Outcome};
use lwcache_domain::{CacheKey, CachedValue, Flags, Value, Versioned, WorldId};

use super::{door, flag_committed, repo_with_outbox, world};

/// A store that answers (empty) while healthy and never answers while
/// hung, counting every call that reaches it.
#[derive(Default)]
struct Hanging {
    hung: AtomicBool,
    calls: AtomicUsize,
    /// How long each `get` takes.
    slow_gets: Duration,
    /// What the store claims to bound its reads by.
    claims: Option<Duration>,
}

impl Hanging {
    async fn call<T>(&self, answer: T) -> Result<T, CacheError> {
        self.calls.fetch_add(1, Ordering::SeqCst);
        if self.hung.load(Ordering::SeqCst) {
            std::future::pending::<()>().await;
        }
        Ok(answer)
    }

    fn calls(&self) -> usize {
        self.calls.load(Ordering::SeqCst)
    }
}

#[async_trait]
impl CacheStore for Hanging {
    async fn get(&self, _key: &CacheKey) -> Result<Option<Vec<u8>>, CacheError> {
        tokio::time::sleep(self.slow_gets).await;
        self.call(None).await
    }
    fn read_deadline(&self) -> Option<Duration> {
        self.claims
    }
    async fn write(&self, write: &CacheWrite) -> Result<WriteOutcome, CacheError> {
        let landed = write.puts.len();
        self.call(WriteOutcome {
            landed,
            ..WriteOutcome::default()
        })
        .await
    }
    async fn lease(
        &self,
        _world: &WorldId,
        keys: &[CacheKey],
        _lease: Lease,
        _ttl: Duration,
    ) -> Result<Vec<bool>, CacheError> {
        self.call(vec![true; keys.len()]).await
    }
    async fn version(&self, _world: &WorldId) -> Result<Option<u64>, CacheError> {
        self.call(None).await
    }
    async fn epoch(&self, _world: &WorldId) -> Result<Epoch, CacheError> {
        self.call(Epoch(1)).await
    }
    async fn remove(&self, _keys: &[CacheKey]) -> Result<(), CacheError> {
        self.call(()).await
    }
    async fn drop_world(&self, _world: &WorldId) -> Result<usize, CacheError> {
        self.call(0).await
    }
    async fn ping(&self) -> Result<(), CacheError> {
        self.call(()).await
    }
}

fn config() -> ManagerConfig {
    ManagerConfig {
        breaker_failures: 3,
        breaker_open: Duration::from_secs(1),
        // Far apart, so that the test's own calls make the run.
        replay_interval: Duration::from_secs(60),
        ..ManagerConfig::default()
    }
}

#[tokio::test(start_paused = true)]
async fn an_open_breaker_keeps_calls_off_the_store_until_a_probe_is_answered() {
    let mut repo = repo_with_outbox();
    let mut version = 0;
    repo.expect_apply().returning(move |_| {
        version += 1;
        Ok(flag_committed(version))
    });
    let mut flags = Flags::new();
    flags.insert(door(), Value::Bool(true));
    repo.expect_read()
        .returning(move |_, _| Ok(Versioned::new(1, CachedValue::Flags(flags.clone()))));
    repo.expect_ping().returning(|| Ok(()));
    let store = Arc::new(Hanging::default());
    let counters = Arc::new(Counters::new());
    let m = CacheManager::builder(Arc::clone(&store), repo)
        .config(config())
        .metrics(counters.clone())
        .build()
        .unwrap();
    // Let the replay loop's first round (a ping) pass while healthy.
    tokio::time::sleep(Duration::from_millis(10)).await;
    assert_eq!(m.breaker(), BreakerState::Closed);
    // The world's epoch is learned while the store answers: each write
    // below makes one cache call, its step.
    let w = m
        .set_flag(&world(), door(), Value::Bool(true))
        .await
        .unwrap();
    assert_eq!(w.cache, CacheStep::Applied);

    store.hung.store(true, Ordering::SeqCst);
    let limit = m.config().cache_timeout;
    for _ in 0..3 {
        // On the paused clock: the hung store costs the write exactly the
        // cache timeout, no more.
        let started = tokio::time::Instant::now();
        let w = m
            .set_flag(&world(), door(), Value::Bool(true))
            .await
            .unwrap();
        assert_eq!(
            w.cache,
            CacheStep::Failed,
            "timed out, acknowledged all the same"
        );
        assert!(started.elapsed() <= limit, "{:?}", started.elapsed());
    }
    assert_eq!(m.breaker(), BreakerState::Open, "three timeouts in a row");
    assert_eq!(counters.snapshot().breaker_opened, 1);

    // Open: reads go to the source without reaching the store. A write
    // still tries its step, owed by its commit: on the hung store it fails
    // after the cache timeout, and opens the breaker for another interval.
    let reached = store.calls();
    let read = m.flags(&world()).await.unwrap();
    assert_eq!(read.outcome, Outcome::Fallback);
    let (cache, source) = m.health().await;
    assert_eq!(cache, Err(CacheError::CircuitOpen));
    assert!(source.is_ok());
    assert_eq!(
        store.calls(),
        reached,
        "no read reached the store while open"
    );
    assert!(counters.snapshot().breaker_rejected >= 2);
    tokio::time::advance(Duration::from_millis(500)).await;
    let started = tokio::time::Instant::now();
    let w = m
        .set_flag(&world(), door(), Value::Bool(false))
        .await
        .unwrap();
    assert_eq!(w.cache, CacheStep::Failed);
    assert!(started.elapsed() <= limit, "{:?}", started.elapsed());
    assert_eq!(store.calls(), reached + 1, "the write's step was tried");
    assert_eq!(m.breaker(), BreakerState::Open);

    // Its failure opened the breaker anew: a full interval after the
    // opening, the reads are still refused.
    tokio::time::advance(Duration::from_millis(600)).await;
    assert_eq!(m.health().await.0, Err(CacheError::CircuitOpen));
    assert_eq!(store.calls(), reached + 1);

    // Past the new interval, one probe goes through; while it hangs, the
    // other reads still fail at once, and its timeout opens the breaker
    // again.
    tokio::time::advance(Duration::from_millis(500)).await;
    let (probe, other) = tokio::join!(m.health(), async {
        tokio::task::yield_now().await;
        m.health().await
    });
    assert!(
        matches!(probe.0, Err(CacheError::Timeout(_))),
        "{:?}",
        probe.0
    );
    assert_eq!(other.0, Err(CacheError::CircuitOpen));
    assert_eq!(
        store.calls(),
        reached + 2,
        "only the probe reached the store"
    );
    assert_eq!(m.breaker(), BreakerState::Open);
    assert_eq!(counters.snapshot().breaker_opened, 2);

    // The store answers again: the next probe closes the breaker.
    store.hung.store(false, Ordering::SeqCst);
    tokio::time::advance(Duration::from_secs(1)).await;
    assert_eq!(m.health().await.0, Ok(()));
    assert_eq!(m.breaker(), BreakerState::Closed);
    m.shutdown().await;
}

/// Hangs the store under a write whose step then fails, which opens a
/// breaker that opens on one failure.
async fn hang_through_a_write<R: lwcache_core::ports::WorldRepository + 'static>(
    m: &CacheManager<Arc<Hanging>, R>,
    store: &Hanging,
) {
    store.hung.store(true, Ordering::SeqCst);
    let w = m
        .set_flag(&world(), door(), Value::Bool(true))
        .await
        .unwrap();
    assert_eq!(w.cache, CacheStep::Failed);
    assert_eq!(m.breaker(), BreakerState::Open);
}

#[tokio::test(start_paused = true)]
async fn a_write_does_not_skip_its_step_while_the_breaker_is_open() {
    let mut repo = repo_with_outbox();
    let mut version = 0;
    repo.expect_apply().returning(move |_| {
        version += 1;
        Ok(flag_committed(version))
    });
    let store = Arc::new(Hanging::default());
    let counters = Arc::new(Counters::new());
    let m = CacheManager::builder(Arc::clone(&store), repo)
        .config(ManagerConfig {
            breaker_failures: 1,
            ..config()
        })
        .metrics(counters.clone())
        .build()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    let w = m
        .set_flag(&world(), door(), Value::Bool(true))
        .await
        .unwrap();
    assert_eq!(w.cache, CacheStep::Applied);
    hang_through_a_write(&m, &store).await;

    // The store answers again well before the breaker would probe. Another
    // process may be reading the cache already: this write's step must
    // reach it rather than be owed until a replay.
    store.hung.store(false, Ordering::SeqCst);
    tokio::time::advance(Duration::from_millis(100)).await;
    let reached = store.calls();
    let w = m
        .set_flag(&world(), door(), Value::Bool(false))
        .await
        .unwrap();
    assert_eq!(w.cache, CacheStep::Applied, "the step landed");
    assert_eq!(store.calls(), reached + 1);
    assert_eq!(
        m.breaker(),
        BreakerState::Closed,
        "the store's answer to the step closed the breaker"
    );
    m.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn the_replay_loop_probes_and_ends_the_trouble_once_the_store_answers() {
    let mut repo = repo_with_outbox();
    repo.expect_apply().returning(|_| Ok(flag_committed(1)));
    let mut flags = Flags::new();
    flags.insert(door(), Value::Bool(true));
    repo.expect_read()
        .returning(move |_, _| Ok(Versioned::new(1, CachedValue::Flags(flags.clone()))));
    let store = Arc::new(Hanging::default());
    let m = CacheManager::builder(Arc::clone(&store), repo)
        .config(ManagerConfig {
            breaker_failures: 1,
            ..config()
        })
        .build()
        .unwrap();
    tokio::time::sleep(Duration::from_millis(10)).await;
    hang_through_a_write(&m, &store).await;

    // Nobody calls; the replay loop's pings (every interval while in
    // trouble) are refused until the breaker's interval has passed, then
    // one probes and is answered.
    store.hung.store(false, Ordering::SeqCst);
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(m.breaker(), BreakerState::Closed);
    // Out of trouble: the read asks the cache again (a miss, then a fill).
    let before = store.calls();
    let read = m.flags(&world()).await.unwrap();
    assert_eq!(read.outcome, Outcome::Miss);
    assert!(store.calls() > before);
    m.shutdown().await;
}

#[tokio::test(start_paused = true)]
async fn reads_are_timed_by_the_manager_unless_the_store_bounds_them_within_its_timeout() {
    let limit = ManagerConfig::default().cache_timeout;
    // A store claiming a bound within the cache timeout is trusted: no
    // second timer; a longer bound, or none, and the manager times reads.
    for (claims, timed) in [(None, true), (Some(limit), false), (Some(limit * 2), true)] {
        let mut repo = repo_with_outbox();
        let mut flags = Flags::new();
        flags.insert(door(), Value::Bool(true));
        repo.expect_read()
            .returning(move |_, _| Ok(Versioned::new(1, CachedValue::Flags(flags.clone()))));
        let store = Arc::new(Hanging {
            slow_gets: limit * 3,
            claims,
            ..Hanging::default()
        });
        let m = CacheManager::builder(Arc::clone(&store), repo)
            .config(config())
            .build()
            .unwrap();
        let started = tokio::time::Instant::now();
        let read = m.flags(&world()).await.unwrap();
        let took = started.elapsed();
        if timed {
            assert_eq!(read.outcome, Outcome::Fallback, "{claims:?}");
            assert_eq!(took, limit, "{claims:?}: the manager's timer fired");
        } else {
            assert_ne!(read.outcome, Outcome::Fallback, "{claims:?}");
            assert!(took >= limit * 3, "{claims:?}: no timer cut it: {took:?}");
        }
        m.shutdown().await;
    }
}
