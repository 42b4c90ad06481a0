//! The in-memory cache store.

use std::borrow::Cow;
use std::collections::HashMap;
use std::sync::{Mutex, MutexGuard, PoisonError};
use std::time::Duration;

use async_trait::async_trait;
use lwcache_core::codec;
use lwcache_core::near::{FeedGuard, InvalidationFeed, InvalidationSink};
use lwcache_core::ports::{
    CacheError, CacheStore, CacheWrite, Epoch, Lease, WriteKind, WriteOutcome, check_keys,
};
use lwcache_domain::{CacheKey, KeyKind, WorldId};
use tokio::time::Instant;

/// A cache store in process memory.
///
/// TTLs follow tokio's clock, so tests can pause and advance time instead
/// of sleeping. One mutex guards everything: a write is atomic with respect
/// to every other call, as the port requires, and no lock is held across an
/// `.await`.
#[derive(Debug, Default)]
pub struct MemoryStore {
    state: Mutex<State>,
    followers: std::sync::Arc<crate::feed::Followers>,
}

#[derive(Debug, Default)]
struct State {
    entries: HashMap<CacheKey, (Vec<u8>, Option<Instant>)>,
    leases: HashMap<CacheKey, (Lease, Instant)>,
    versions: HashMap<WorldId, u64>,
    epochs: HashMap<WorldId, Epoch>,
    /// The next epoch made: no epoch is made twice by one store.
    next_epoch: u64,
}

impl State {
    fn live(&mut self, key: &CacheKey) -> Option<&Vec<u8>> {
        let expired = matches!(self.entries.get(key), Some((_, Some(at))) if *at <= Instant::now());
        if expired {
            self.entries.remove(key);
        }
        self.entries.get(key).map(|(bytes, _)| bytes)
    }

    fn lease_of(&mut self, key: &CacheKey) -> Option<Lease> {
        match self.leases.get(key) {
            Some((_, until)) if *until <= Instant::now() => {
                self.leases.remove(key);
                None
            }
            Some((lease, _)) => Some(*lease),
            None => None,
        }
    }

    /// Whether `bytes` may replace what `key` holds ([`codec::replaces`]).
    fn may_put(&mut self, key: &CacheKey, bytes: &[u8]) -> bool {
        let current = self.live(key).map(Vec::as_slice);
        codec::replaces(current, bytes)
    }
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> MutexGuard<'_, State> {
        // Every critical section leaves the maps consistent.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every live key, formatted, sorted: what a SCAN of Redis would show.
    pub fn keys(&self) -> Vec<String> {
        let mut state = self.state();
        let now = Instant::now();
        state
            .entries
            .retain(|_, (_, at)| at.is_none_or(|at| at > now));
        let mut keys: Vec<String> = state
            .entries
            .keys()
            .map(ToString::to_string)
            .chain(
                state
                    .versions
                    .keys()
                    .map(|w| CacheKey::version(w).to_string()),
            )
            .collect();
        keys.sort();
        keys
    }

    /// The remaining time to live of a key; `None` for a persistent or
    /// absent key.
    pub fn ttl(&self, key: &CacheKey) -> Option<Duration> {
        let mut state = self.state();
        state.live(key)?;
        state
            .entries
            .get(key)
            .and_then(|(_, at)| at.map(|at| at.saturating_duration_since(Instant::now())))
    }

    /// Puts raw bytes under a key, bypassing every check: for tests that
    /// plant corrupt or foreign entries.
    pub fn put_raw(&self, key: &CacheKey, bytes: Vec<u8>) {
        self.state().entries.insert(key.clone(), (bytes, None));
    }

    /// Forgets everything, as a restarted cache server without persistence;
    /// its feed's followers hear that the connection was lost.
    pub fn flush(&self) {
        {
            let mut state = self.state();
            state.entries.clear();
            state.leases.clear();
            state.versions.clear();
            state.epochs.clear();
        }
        self.followers.lost();
    }

    /// Forgets every key of one world, its version and leases included.
    pub fn forget(&self, world: &WorldId) -> usize {
        let forgotten = {
            let mut state = self.state();
            let before = state.entries.len() + state.leases.len();
            state.entries.retain(|k, _| k.world() != world);
            state.leases.retain(|k, _| k.world() != world);
            state.epochs.remove(world);
            let version = usize::from(state.versions.remove(world).is_some());
            before - state.entries.len() - state.leases.len() + version
        };
        self.followers.invalidate_world(world);
        forgotten
    }
}

impl InvalidationFeed for MemoryStore {
    fn follow(&self, sink: std::sync::Arc<dyn InvalidationSink>) -> FeedGuard {
        self.followers.follow(sink)
    }
}

#[async_trait]
impl CacheStore for MemoryStore {
    async fn get(&self, key: &CacheKey) -> Result<Option<Vec<u8>>, CacheError> {
        if key.kind() == KeyKind::Version {
            return Err(CacheError::Refused(
                format!("{key} is the version key").into(),
            ));
        }
        Ok(self.state().live(key).cloned())
    }

    async fn get_many(
        &self,
        world: &WorldId,
        keys: &[CacheKey],
    ) -> Result<Vec<Option<Vec<u8>>>, CacheError> {
        check_keys(world, keys)?;
        let mut state = self.state();
        Ok(keys.iter().map(|k| state.live(k).cloned()).collect())
    }

    async fn write(&self, write: &CacheWrite) -> Result<WriteOutcome, CacheError> {
        write.check()?;
        let mut state = self.state();
        let mut outcome = WriteOutcome {
            previous: state.versions.get(&write.world).copied(),
            ..WriteOutcome::default()
        };
        let now = Instant::now();
        let mut landed = Vec::new();
        // A commit whose epoch is not the world's puts tombstones.
        let demoted = match write.kind {
            WriteKind::Commit { epoch } => {
                let lost = epoch.is_none() || state.epochs.get(&write.world) != epoch.as_ref();
                outcome.epoch_lost = lost;
                lost
            }
            WriteKind::Fill { .. } => false,
        };
        for put in &write.puts {
            let bytes = match codec::peek_version(&put.bytes) {
                Ok(version) if demoted => Cow::Owned(codec::tombstone(version)),
                _ => Cow::Borrowed(put.bytes.as_slice()),
            };
            let lands = match write.kind {
                WriteKind::Fill { lease } => {
                    let ours = state.lease_of(&put.key) == Some(lease);
                    if ours {
                        state.leases.remove(&put.key);
                    }
                    ours && state.may_put(&put.key, &bytes)
                }
                WriteKind::Commit { .. } => {
                    state.leases.remove(&put.key);
                    state.may_put(&put.key, &bytes)
                }
            };
            if lands {
                if write.is_commit() {
                    landed.push(put.key.clone());
                }
                let expires = put.ttl.map(|ttl| now + ttl);
                state
                    .entries
                    .insert(put.key.clone(), (bytes.into_owned(), expires));
                outcome.landed += 1;
            } else {
                outcome.skipped += 1;
            }
        }
        if write.is_commit() {
            let ver = state.versions.entry(write.world.clone()).or_insert(0);
            *ver = (*ver).max(write.version);
            drop(state);
            // As the Redis script publishes: the commit's keys that landed,
            // before the write returns.
            self.followers.invalidate(&landed, write.version);
        }
        Ok(outcome)
    }

    async fn lease(
        &self,
        world: &WorldId,
        keys: &[CacheKey],
        lease: Lease,
        ttl: Duration,
    ) -> Result<Vec<bool>, CacheError> {
        check_keys(world, keys)?;
        let mut state = self.state();
        let until = Instant::now() + ttl;
        Ok(keys
            .iter()
            .map(|key| match state.lease_of(key) {
                Some(held) => held == lease,
                None => {
                    state.leases.insert(key.clone(), (lease, until));
                    true
                }
            })
            .collect())
    }

    async fn version(&self, world: &WorldId) -> Result<Option<u64>, CacheError> {
        Ok(self.state().versions.get(world).copied())
    }

    async fn epoch(&self, world: &WorldId) -> Result<Epoch, CacheError> {
        let mut state = self.state();
        if let Some(epoch) = state.epochs.get(world) {
            return Ok(*epoch);
        }
        state.next_epoch += 1;
        let epoch = Epoch(state.next_epoch);
        state.epochs.insert(world.clone(), epoch);
        Ok(epoch)
    }

    async fn remove(&self, keys: &[CacheKey]) -> Result<(), CacheError> {
        {
            let mut state = self.state();
            for key in keys {
                state.entries.remove(key);
            }
        }
        // As the Redis store publishes: near caches drop the keys whatever
        // version they hold.
        self.followers.invalidate(keys, u64::MAX);
        Ok(())
    }

    async fn drop_world(&self, world: &WorldId) -> Result<usize, CacheError> {
        Ok(self.forget(world))
    }

    async fn ping(&self) -> Result<(), CacheError> {
        Ok(())
    }
}
