//! [`Builder`]: how a [`CacheManager`] is configured and started. Starting
//! means spawning the write-behind worker and the outbox's settler and
//! replay loop, so it needs a tokio runtime.

use std::collections::HashMap;
use std::sync::atomic::{AtomicU64, AtomicUsize};
use std::sync::{Arc, Mutex};

use tokio::sync::{Notify, mpsc};

use super::{CacheManager, Inner, lock, outbox, refresh, write_behind};
use crate::config::{ConfigError, ManagerConfig};
use crate::metrics::{MetricsSink, NoMetrics};
use crate::near::{InvalidationFeed, InvalidationSink, NearCache, NearConfig, NearConfigError};
use crate::ports::{CacheStore, Clock, SystemClock, WorldRepository};

/// Builds a [`CacheManager`].
pub struct Builder<S, R> {
    store: S,
    repo: R,
    config: ManagerConfig,
    metrics: Arc<dyn MetricsSink>,
    clock: Arc<dyn Clock>,
    near: Option<(NearConfig, Arc<dyn InvalidationFeed>)>,
}

impl<S, R> CacheManager<S, R>
where
    S: CacheStore + 'static,
    R: WorldRepository + 'static,
{
    /// Starts building a manager over a cache store and a repository.
    pub fn builder(store: S, repo: R) -> Builder<S, R> {
        Builder {
            store,
            repo,
            config: ManagerConfig::default(),
            metrics: Arc::new(NoMetrics),
            clock: Arc::new(SystemClock),
            near: None,
        }
    }
}

impl<S, R> Builder<S, R>
where
    S: CacheStore + 'static,
    R: WorldRepository + 'static,
{
    /// Sets the configuration.
    pub fn config(mut self, config: ManagerConfig) -> Self {
        self.config = config;
        self
    }

    /// Sets the metrics sink.
    pub fn metrics(mut self, metrics: Arc<dyn MetricsSink>) -> Self {
        self.metrics = metrics;
        self
    }

    /// Sets the clock that stamps events.
    pub fn clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    /// Puts a near cache in front of the store, kept coherent by `feed`
    /// (the store's broadcast of committed writes). Off unless called.
    pub fn near_cache(
        mut self,
        config: NearConfig,
        feed: Arc<dyn InvalidationFeed>,
    ) -> Result<Self, NearConfigError> {
        config.validate()?;
        self.near = Some((config, feed));
        Ok(self)
    }

    /// Validates the whole configuration ([`ManagerConfig::validate`]) and
    /// starts the manager as [`build`](Self::build) does.
    pub fn try_build(self) -> Result<CacheManager<S, R>, ConfigError> {
        self.config.validate()?;
        Ok(self.build()?)
    }

    /// Validates the policy and starts the write-behind worker, the
    /// outbox's tasks and, when configured, the refresher on the current
    /// tokio runtime. Invalid refresher settings leave the refresher off
    /// (logged); [`try_build`](Self::try_build) refuses them.
    pub fn build(self) -> Result<CacheManager<S, R>, lwcache_domain::PolicyError> {
        self.config.policy.validate()?;
        let refresh = refresh::Refresh::new(&self.config);
        let (tx, rx) = mpsc::channel(self.config.write_behind_capacity.max(1));
        let (done_tx, done_rx) = mpsc::channel(self.config.settle_batch.max(1) * 16);
        let epoch = (self.clock.now_ms(), tokio::time::Instant::now());
        let breaker =
            super::breaker::Breaker::new(self.config.breaker_failures, self.config.breaker_open);
        let (near, feed) = match self.near {
            Some((config, feed)) => {
                let near = Arc::new(NearCache::new(config));
                let sink: Arc<dyn InvalidationSink> = near.clone();
                (Some(near), Some(feed.follow(sink)))
            }
            None => (None, None),
        };
        let memo = super::memo::DecodeMemo::new(self.config.decode_memo_bytes);
        // A store that bounds its reads within the cache timeout needs no
        // second timer around them.
        let read_timer = self
            .store
            .read_deadline()
            .is_none_or(|bound| bound > self.config.cache_timeout);
        let inner = Arc::new(Inner {
            store: self.store,
            repo: self.repo,
            config: self.config,
            metrics: self.metrics,
            clock: self.clock,
            queue: Mutex::new(Some(tx)),
            pending: Mutex::new(HashMap::new()),
            pending_keys: AtomicUsize::new(0),
            in_flight: AtomicUsize::new(0),
            settled: Notify::new(),
            worker: Mutex::new(None),
            owner: format!("lwcache-{:016x}", super::random_u64()),
            lease_base: super::random_u64(),
            lease_seq: AtomicU64::new(0),
            done: Mutex::new(Some(done_tx)),
            suspects: Mutex::new(HashMap::new()),
            trouble: AtomicU64::new(0),
            store_epochs: Mutex::new(HashMap::new()),
            failed_worlds: Mutex::new(std::collections::HashSet::new()),
            owed_drops: Mutex::new(std::collections::BTreeSet::new()),
            wake: Arc::new(Notify::new()),
            housekeeping: Mutex::new(None),
            flights: Mutex::new(HashMap::new()),
            epoch,
            breaker,
            breaker_said_open: std::sync::atomic::AtomicBool::new(false),
            near,
            _feed: feed,
            refresh,
            memo,
            read_timer,
        });
        // The tasks hold weak references, so that dropping the last manager
        // drops the queues' senders and ends them.
        let handle = tokio::spawn(write_behind::worker(Arc::downgrade(&inner), rx));
        *lock(&inner.worker) = Some(handle);
        let settler = tokio::spawn(outbox::settler(Arc::downgrade(&inner), done_rx));
        let replay = tokio::spawn(outbox::replayer(Arc::downgrade(&inner)));
        *lock(&inner.housekeeping) = Some((settler, replay));
        refresh::start(&inner);
        Ok(CacheManager { inner })
    }
}
