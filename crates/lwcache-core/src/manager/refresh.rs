//! The background refresher: the popular state and timeline keys are read
//! again from the source shortly before their TTL ends, so that their
//! readers do not miss.
//!
//! Every read of a key is counted ([`Inner::note_read`]) in a
//! [`Popularity`]: a count-min sketch of fixed size that halves itself
//! after each sample, and a bounded set of the most popular keys. Every
//! `interval`, the refresher takes the candidates read at least `min_reads`
//! times (as estimated) and read since their last refresh, reads their
//! entries' freshness trailers from the store (one `get_many` per world,
//! only for keys whose known TTL end is near or unknown), and refreshes
//! those with less than `lead_percent` of their TTL left.
//!
//! A refresh is a miss's flight (`flight.rs`, `read.rs`'s `load`): it takes
//! the key's lease before it reads the source, and fills under it at the
//! version it read. A write's cache step deletes the lease, so a refresh
//! whose source read predates a write can never land after it, and a put
//! never replaces a newer version: a refresh can extend an entry's life,
//! never bring an older value back. Concurrent readers of the key in this
//! process join the refresh's flight like any miss.
//!
//! Deactivated worlds ([`CacheManager::deactivate`]) are neither counted,
//! refreshed nor warmed until they are activated again.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use lwcache_domain::{CacheKey, EntityId, KeyTarget, Popularity, WorldId};
use tokio::task::JoinHandle;

use super::{BreakerState, CacheManager, Inner, lock};
use crate::codec::{self, Slot};
use crate::config::{ManagerConfig, RefreshConfig};
use crate::metrics::MetricEvent;
use crate::ports::{CacheStore, WorldRepository};

/// What the manager keeps for the refresher and for warming what is
/// active.
pub(super) struct Refresh {
    /// Reads counted, and the popular keys; `None` when neither the
    /// refresher nor a warming budget asks for them.
    popularity: Option<Mutex<Popularity<CacheKey>>>,
    /// Worlds deactivated: not counted, refreshed nor warmed.
    inactive: Mutex<HashSet<WorldId>>,
    /// Whether `inactive` holds any world: spares the read path its lock.
    any_inactive: AtomicBool,
    /// The refresher task, while it runs.
    task: Mutex<Option<JoinHandle<()>>>,
}

impl Refresh {
    /// Counting reads when the configuration needs popular keys.
    pub(super) fn new(config: &ManagerConfig) -> Self {
        let counts = config.refresh.is_some() || config.warm_budget.is_some();
        let settings = config.refresh.unwrap_or_default();
        Self {
            popularity: counts.then(|| {
                Mutex::new(Popularity::new(
                    settings.sketch_width,
                    settings.sample,
                    settings.candidates,
                ))
            }),
            inactive: Mutex::new(HashSet::new()),
            any_inactive: AtomicBool::new(false),
            task: Mutex::new(None),
        }
    }

    fn is_inactive(&self, world: &WorldId) -> bool {
        self.any_inactive.load(Ordering::Relaxed) && lock(&self.inactive).contains(world)
    }

    /// Marks `world` active again (an activation).
    pub(super) fn reactivate(&self, world: &WorldId) {
        let mut inactive = lock(&self.inactive);
        inactive.remove(world);
        self.any_inactive
            .store(!inactive.is_empty(), Ordering::Relaxed);
    }

    /// Whether `world` was deactivated (an activation running stops).
    pub(super) fn deactivated(&self, world: &WorldId) -> bool {
        self.is_inactive(world)
    }

    /// The entities of `world` read lately, most read first: their state or
    /// timeline keys are among the popular candidates.
    pub(super) fn active_entities(&self, world: &WorldId) -> Vec<EntityId> {
        let Some(popularity) = &self.popularity else {
            return Vec::new();
        };
        let top = lock(popularity).top(1);
        let mut seen = HashSet::new();
        top.into_iter()
            .filter(|(key, _)| key.world() == world)
            .filter_map(|(key, _)| match key.target() {
                KeyTarget::Entity(e) => Some(e.entity_id()),
                KeyTarget::Timeline(id) => Some(id.clone()),
                _ => None,
            })
            .filter(|id| seen.insert(id.clone()))
            .collect()
    }

    /// Stops the refresher task.
    pub(super) fn stop(&self) {
        if let Some(task) = lock(&self.task).take() {
            task.abort();
        }
    }
}

/// Starts the refresher task when the configuration asks for it.
pub(super) fn start<S, R>(inner: &Arc<Inner<S, R>>)
where
    S: CacheStore + 'static,
    R: WorldRepository + 'static,
{
    let Some(settings) = inner.config.refresh else {
        return;
    };
    if let Err(e) = settings.validate(&inner.config.policy) {
        // `Builder::build` keeps its policy-only error; `try_build` refuses
        // this configuration outright.
        tracing::error!(error = %e, "refresher settings are invalid; the refresher is off");
        return;
    }
    let task = tokio::spawn(refresher(Arc::downgrade(inner), settings));
    *lock(&inner.refresh.task) = Some(task);
}

impl<S, R> CacheManager<S, R>
where
    S: CacheStore + 'static,
    R: WorldRepository + 'static,
{
    /// Deactivates a world: its reads are no longer counted, its keys are
    /// no longer refreshed, an activation of it in progress stops after
    /// its current batch. What is cached stays, and is read as before.
    /// [`activate`](Self::activate) makes it active again.
    pub fn deactivate(&self, world: &WorldId) {
        let refresh = &self.inner.refresh;
        {
            let mut inactive = lock(&refresh.inactive);
            inactive.insert(world.clone());
            refresh.any_inactive.store(true, Ordering::Relaxed);
        }
        if let Some(popularity) = &refresh.popularity {
            lock(popularity).forget(|key| key.world() == world);
        }
    }

    /// Whether `world` is active: not deactivated since its last
    /// activation (every world is, until deactivated).
    pub fn is_active(&self, world: &WorldId) -> bool {
        !self.inner.refresh.is_inactive(world)
    }
}

impl<S, R> Inner<S, R>
where
    S: CacheStore + 'static,
    R: WorldRepository + 'static,
{
    /// Counts a read of `key` for the refresher and for warming. Cheap: a
    /// no-op when neither is configured; otherwise one short lock, four
    /// counter increments and a lookup.
    pub(super) fn note_read(&self, key: &CacheKey) {
        let Some(popularity) = &self.refresh.popularity else {
            return;
        };
        if self.refresh.is_inactive(key.world()) {
            return;
        }
        lock(popularity).record(key);
    }

    /// The candidates worth a look this round: refreshable, read enough
    /// and read since their last refresh, of active worlds.
    fn due_candidates(&self, settings: &RefreshConfig) -> Vec<CacheKey> {
        let Some(popularity) = &self.refresh.popularity else {
            return Vec::new();
        };
        let top = lock(popularity).top(settings.min_reads);
        top.into_iter()
            .filter(|(key, c)| {
                c.reads > 0
                    && RefreshConfig::KINDS.contains(&key.kind())
                    && self.config.policy.ttl(key.kind()).is_some()
                    && !self.refresh.is_inactive(key.world())
            })
            .map(|(key, _)| key)
            .collect()
    }

    /// One round: looks at the candidates whose TTL end is near or not
    /// known, and refreshes those inside their lead window. `ends` keeps
    /// the TTL ends seen, by key, from round to round.
    async fn refresh_round(&self, settings: &RefreshConfig, ends: &mut HashMap<CacheKey, i64>) {
        if self.trouble.load(Ordering::SeqCst) != 0 || self.breaker.state() != BreakerState::Closed
        {
            // The source serves every read now; the replay loop mends the
            // cache first.
            return;
        }
        let candidates = self.due_candidates(settings);
        let kept: HashSet<&CacheKey> = candidates.iter().collect();
        ends.retain(|key, _| kept.contains(key));
        let now = self.now_ms();
        let mut by_world: HashMap<&WorldId, Vec<CacheKey>> = HashMap::new();
        for key in &candidates {
            let window = self.window_ms(settings, key);
            // Looked at again only once its known end is within the window
            // by the next round.
            let soon = now
                .saturating_add(window)
                .saturating_add(ms(settings.interval));
            if ends.get(key).is_none_or(|&end| end <= soon) {
                by_world.entry(key.world()).or_default().push(key.clone());
            }
        }
        let mut due = Vec::new();
        for (world, keys) in by_world {
            let Ok(entries) = self.cache_read(self.store.get_many(world, &keys)).await else {
                return;
            };
            for (key, bytes) in keys.into_iter().zip(entries) {
                let fresh_until = bytes.as_deref().and_then(|b| match codec::decode_fresh(b) {
                    Ok((Slot::Value(_), Some(f))) => Some(f.fresh_until_ms),
                    _ => None,
                });
                // Missing, a tombstone or a negative entry: the next read
                // fills it, as any miss.
                let Some(end) = fresh_until else {
                    ends.remove(&key);
                    continue;
                };
                if end.saturating_sub(now) <= self.window_ms(settings, &key) {
                    due.push(key);
                } else {
                    ends.insert(key, end);
                }
            }
        }
        // `candidates` is most popular first; keep that order.
        let order: HashMap<&CacheKey, usize> =
            candidates.iter().enumerate().map(|(i, k)| (k, i)).collect();
        due.sort_by_key(|k| order.get(k).copied().unwrap_or(usize::MAX));
        for key in due.into_iter().take(settings.per_round) {
            if self.refresh.is_inactive(key.world()) {
                continue;
            }
            // The entry is still fresh: it must not answer its own refresh.
            match self.flight(&key, false).await {
                Ok(_) => {
                    self.metrics.record(MetricEvent::Refreshed(key.kind()));
                    if let Some(popularity) = &self.refresh.popularity {
                        lock(popularity).refreshed(&key);
                    }
                }
                Err(e) => {
                    tracing::debug!(key = %key, error = %e, "refresh failed; the key fills on its next miss")
                }
            }
            ends.remove(&key);
        }
    }

    /// The lead window of `key`'s kind, in milliseconds.
    fn window_ms(&self, settings: &RefreshConfig, key: &CacheKey) -> i64 {
        self.config
            .policy
            .ttl(key.kind())
            .map_or(0, |ttl| ms(settings.window(ttl)))
    }
}

fn ms(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).unwrap_or(i64::MAX)
}

/// The refresher: a round every `interval` until the last manager is
/// dropped or the task is stopped.
async fn refresher<S, R>(inner: Weak<Inner<S, R>>, settings: RefreshConfig)
where
    S: CacheStore + 'static,
    R: WorldRepository + 'static,
{
    let mut tick = tokio::time::interval(settings.interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut ends = HashMap::new();
    loop {
        tick.tick().await;
        let Some(inner) = inner.upgrade() else { break };
        inner.refresh_round(&settings, &mut ends).await;
    }
}
