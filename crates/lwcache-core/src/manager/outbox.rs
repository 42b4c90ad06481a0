//! The outbox's two background tasks.
//!
//! The source records, in each write's own transaction, the cache steps the
//! write owes ([`Owed`]). Here:
//!
//! - the **settler** removes the entries whose step is done, in batches (at
//!   most `settle_batch` ids, at least every `settle_interval`): one source
//!   transaction per batch of writes, never one per write. An entry that is
//!   never removed (the process died first) is merely replayed once more;
//! - the **replayer** claims entries left owed (by a process that died
//!   between its commit and its cache step, or a step that failed while the
//!   cache was unreachable), at start and every `replay_interval`, carries
//!   each out as tombstones at its version, and removes them. A tombstone at
//!   version v never replaces an entry at v or newer, so replaying is
//!   idempotent and cannot hide a newer write;
//! - the same loop checks the worlds whose cache has seen a version above a
//!   write's own: if the source's current version is lower still, the world
//!   went back in time (restored from a backup, or deleted and made again),
//!   and every key of it is dropped (owed until it is: `drop.rs`). So is a
//!   world whose owed steps the store refuses (its keys hold what no write
//!   leaves: a version key that is not a version), before its steps are
//!   carried out again.

use std::collections::BTreeMap;
use std::sync::Weak;
use std::sync::atomic::Ordering;
use std::time::Duration;

use lwcache_domain::{Owed, OwedId, WorldId};
use tokio::sync::mpsc;
use tokio::time::Instant;

use super::{Inner, lock};
use crate::metrics::MetricEvent;
use crate::ports::{CacheError, CacheStore, CacheWrite, Claim, WorldRepository, WriteOutcome};

/// What one replay round found.
#[derive(Debug, Clone, Copy)]
pub(super) struct Round {
    /// The claim came back full: more is owed.
    full: bool,
    /// Both ports answered and every claimed step was carried out.
    whole: bool,
}

/// How long a replayer's claim keeps other processes off its entries: long
/// enough for one round (milliseconds), short enough that a replayer that
/// died or lost the cache mid-round delays its entries only briefly.
const CLAIM_LEASE: Duration = Duration::from_secs(2);

impl<S, R> Inner<S, R>
where
    S: CacheStore + 'static,
    R: WorldRepository + 'static,
{
    /// Hands a done entry to the settler, without waiting. A full or closed
    /// queue loses nothing that matters: the entry is replayed instead.
    pub(super) fn mark_done(&self, id: OwedId) {
        if let Some(tx) = lock(&self.done).as_ref() {
            let _ = tx.try_send(id);
        }
    }

    /// Removes a batch of done entries in one source call. A failure is
    /// logged: those entries are replayed later, which is harmless.
    async fn settle_done(&self, batch: &mut Vec<OwedId>) {
        if batch.is_empty() {
            return;
        }
        if let Err(e) = self.source_call(self.repo.settle(batch)).await {
            tracing::warn!(error = %e, entries = batch.len(), "could not remove done outbox entries; they will be replayed");
        }
        batch.clear();
    }

    /// Notes that the cache of `world` has seen version `seen`, above a
    /// write's own: the next replay round compares it with the source.
    pub(super) fn suspect(&self, world: &WorldId, seen: u64) {
        let mut suspects = lock(&self.suspects);
        let v = suspects.entry(world.clone()).or_insert(0);
        *v = (*v).max(seen);
    }

    /// Drops the cache of every suspected world whose source version is
    /// below what the cache has seen.
    async fn check_suspects(&self) {
        let suspects = std::mem::take(&mut *lock(&self.suspects));
        for (world, seen) in suspects {
            let Ok(current) = self.source_call(self.repo.version(&world)).await else {
                continue;
            };
            if current >= seen {
                continue;
            }
            tracing::warn!(world = %world, cached = seen, source = current, "the source's version went back; dropping the world's cache");
            // A drop that fails is owed (`drop.rs`): made again by this loop,
            // reads going to the source meanwhile.
            let _ = self.drop_world(&world).await;
        }
    }

    /// Drops the cache of `world`, whose store refused `write`, and makes
    /// the write again on the empty world.
    async fn drop_refused_world(
        &self,
        world: &WorldId,
        write: &CacheWrite,
    ) -> Result<WriteOutcome, CacheError> {
        self.drop_world(world).await?;
        self.cache_call(self.store.write(write)).await
    }

    /// One replay round: claims a batch of owed entries at least `min_age`
    /// old, tombstones their keys, removes them. Answers whether the batch
    /// was full (the caller goes on at once) and whether the round reached
    /// both ports and did everything it claimed.
    pub(super) async fn replay_once(
        &self,
        world: Option<WorldId>,
        min_age: Duration,
        take_held: bool,
    ) -> Round {
        self.check_suspects().await;
        let claim = Claim {
            owner: self.owner.clone(),
            world,
            limit: self.config.replay_batch.max(1),
            min_age,
            lease: CLAIM_LEASE,
            take_held,
        };
        let failed = Round {
            full: false,
            whole: false,
        };
        // A process that cannot reach the cache claims nothing: its claims
        // would keep the entries from the processes that can.
        if self.cache_call(self.store.ping()).await.is_err() {
            return failed;
        }
        let owed = match self.source_call(self.repo.owed(&claim)).await {
            Ok(owed) => owed,
            Err(e) => {
                tracing::debug!(error = %e, "could not read the outbox; replay waits");
                return failed;
            }
        };
        if owed.is_empty() {
            return Round {
                full: false,
                whole: true,
            };
        }
        let full = owed.len() >= claim.limit;
        let mut by_world: BTreeMap<WorldId, Vec<Owed>> = BTreeMap::new();
        for entry in owed {
            by_world.entry(entry.world.clone()).or_default().push(entry);
        }
        let mut done = Vec::new();
        for (world, entries) in by_world {
            let version = entries.iter().map(|e| e.version).max().unwrap_or(0);
            let puts = entries
                .iter()
                .flat_map(|e| e.keys.iter().map(|k| self.tombstone(k, e.version)))
                .collect();
            // Tombstones only: they land whatever the store's epoch.
            let write = CacheWrite::commit(world.clone(), version, None, puts);
            let mut written = self.cache_call(self.store.write(&write)).await;
            if let Err(CacheError::Refused(e)) = &written {
                // The store answers but will not take the world's write: its
                // keys hold what no write of ours leaves (a version key that
                // is not a version). Left alone, the
                // step would stay owed and keep the cache in trouble for
                // every world; dropped, the world's cache starts again from
                // the source, which is always safe.
                tracing::warn!(world = %world, error = %e, "the cache refused the world's owed steps; dropping the world's cache");
                written = self.drop_refused_world(&world, &write).await;
            }
            match written {
                Ok(_) => {
                    self.near_forget(write.puts.iter().map(|p| &p.key), version);
                    self.metrics
                        .record(MetricEvent::Replayed(entries.len() as u64));
                    tracing::info!(world = %world, entries = entries.len(), "replayed owed cache steps");
                    done.extend(entries.iter().map(Owed::id));
                }
                // The cache is still unreachable: the claim lapses and the
                // entries are tried again.
                Err(_) => return failed,
            }
        }
        self.settle_done(&mut done).await;
        Round { full, whole: true }
    }
}

/// The settler: collects done entries and removes them in batches until its
/// queue closes (at shutdown, after one last batch).
pub(super) async fn settler<S, R>(inner: Weak<Inner<S, R>>, mut rx: mpsc::Receiver<OwedId>)
where
    S: CacheStore + 'static,
    R: WorldRepository + 'static,
{
    let Some((max, interval)) = inner
        .upgrade()
        .map(|i| (i.config.settle_batch.max(1), i.config.settle_interval))
    else {
        return;
    };
    let mut batch = Vec::with_capacity(max);
    while let Some(first) = rx.recv().await {
        batch.push(first);
        let deadline = Instant::now() + interval;
        while batch.len() < max {
            match tokio::time::timeout_at(deadline, rx.recv()).await {
                Ok(Some(id)) => batch.push(id),
                Ok(None) | Err(_) => break,
            }
        }
        let Some(inner) = inner.upgrade() else { return };
        inner.settle_done(&mut batch).await;
    }
}

/// The replayer: one round at start, then one every `replay_interval` (at
/// once again while rounds come back full), until the manager goes. While
/// the cache is in trouble (a call failed), rounds take every owed step,
/// however young, and the first whole round that leaves nothing owed ends
/// the trouble, unless another call failed meanwhile.
pub(super) async fn replayer<S, R>(inner: Weak<Inner<S, R>>)
where
    S: CacheStore + 'static,
    R: WorldRepository + 'static,
{
    loop {
        let Some(this) = inner.upgrade() else { return };
        let trouble = this.trouble.load(Ordering::SeqCst);
        // In trouble, the worlds whose steps failed here first, however
        // young their entries: those are this process's own writes. Other
        // writers' young entries are left to them.
        let failed: Vec<WorldId> = if trouble == 0 {
            Vec::new()
        } else {
            lock(&this.failed_worlds).iter().cloned().collect()
        };
        // Owed drops first: while one is owed the trouble does not end.
        let mut whole = this.make_owed_drops().await;
        for world in &failed {
            let round = this
                .replay_once(Some(world.clone()), Duration::ZERO, false)
                .await;
            whole &= round.whole && !round.full;
        }
        // In trouble, every world's entries, however young and whoever
        // holds them: the trouble ends only on a round that leaves nothing
        // owed that was recorded before it, or an outage that every
        // process saw could end it while another's failed replay still
        // holds a step the cache lacks.
        let round = if trouble == 0 {
            this.replay_once(None, this.config.replay_min_age, false)
                .await
        } else {
            this.replay_once(None, Duration::ZERO, true).await
        };
        if trouble != 0 && whole && round.whole && !round.full {
            let mut worlds = lock(&this.failed_worlds);
            for world in &failed {
                worlds.remove(world);
            }
        }
        if trouble != 0 && whole && round.whole && !round.full {
            let ended = this
                .trouble
                .compare_exchange(trouble, 0, Ordering::SeqCst, Ordering::SeqCst)
                .is_ok();
            if ended {
                this.metrics.record(MetricEvent::Trouble(false));
                tracing::info!("the cache answers again and owes nothing: reads use it again");
            }
        }
        let interval = this.config.replay_interval;
        let calm = this.trouble.load(Ordering::SeqCst) == 0;
        if round.full {
            continue;
        }
        if calm {
            // Trouble starting wakes the loop at once (a permit is kept if
            // it starts before the wait does).
            let wake = std::sync::Arc::clone(&this.wake);
            drop(this);
            let _ = tokio::time::timeout(interval, wake.notified()).await;
        } else {
            drop(this);
            tokio::time::sleep(interval).await;
        }
    }
}
