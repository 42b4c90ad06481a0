//! Writes: durable in the source first (with what they owe the cache in the
//! same transaction), acknowledged only then, after the cache step the
//! domain's plan asks for: puts and tombstones in one versioned commit, or,
//! with stale reads opted into, work queued for the write-behind worker. Nothing after the
//! source commit can fail a write; a failed cache step stays owed in the
//! outbox and is replayed.

use lwcache_domain::{
    Action, CachePlan, Document, EntityId, EntityRef, EventKind, FlagName, InvalidationCause,
    Mutation, NewEvent, Op, OwedId, Timing, Value, WorldId, plan,
};
use tokio::time::Instant;
use tracing::Instrument;

use super::write_behind::Task;
use super::{CacheManager, CacheStep, Inner, Written};
use crate::config::StaleReads;
use crate::error::Error;
use crate::metrics::{MetricEvent, Stage};
use crate::ports::{CacheStore, CacheWrite, Epoch, WorldRepository};

impl<S, R> CacheManager<S, R>
where
    S: CacheStore + 'static,
    R: WorldRepository + 'static,
{
    /// Applies a mutation: durable in the source first, acknowledged only
    /// then, after the cache step its policy asks for.
    pub async fn apply(&self, mutation: Mutation) -> Result<Written, Error> {
        let span = tracing::info_span!(
            "lwcache.write",
            world = %mutation.world,
            op = mutation.op.name(),
            key_kind = mutation.op.key_kind().as_str(),
            version = tracing::field::Empty,
            cache = tracing::field::Empty,
        );
        let result = self.inner.apply(mutation).instrument(span.clone()).await;
        if let Ok(w) = &result {
            span.record("version", w.committed.version);
            span.record("cache", format!("{:?}", w.cache).as_str());
        }
        result
    }

    async fn write_op(&self, world: &WorldId, op: Op) -> Result<Written, Error> {
        self.apply(Mutation {
            world: world.clone(),
            op,
        })
        .await
    }

    /// Replaces the world snapshot, creating the world when absent.
    pub async fn replace_snapshot(
        &self,
        world: &WorldId,
        snapshot: Document,
    ) -> Result<Written, Error> {
        self.write_op(world, Op::ReplaceSnapshot(snapshot)).await
    }

    /// Sets a flag.
    pub async fn set_flag(
        &self,
        world: &WorldId,
        name: FlagName,
        value: Value,
    ) -> Result<Written, Error> {
        self.write_op(world, Op::SetFlag(name, value)).await
    }

    /// Clears a flag.
    pub async fn clear_flag(&self, world: &WorldId, name: FlagName) -> Result<Written, Error> {
        self.write_op(world, Op::ClearFlag(name)).await
    }

    /// Creates an entity; fails if its id is taken.
    pub async fn create_entity(
        &self,
        world: &WorldId,
        entity: EntityRef,
        state: Document,
    ) -> Result<Written, Error> {
        self.write_op(world, Op::CreateEntity(entity, state)).await
    }

    /// Replaces an existing entity's state.
    pub async fn update_entity(
        &self,
        world: &WorldId,
        entity: EntityRef,
        state: Document,
    ) -> Result<Written, Error> {
        self.write_op(world, Op::UpdateEntity(entity, state)).await
    }

    /// Creates or replaces an entity.
    pub async fn put_entity(
        &self,
        world: &WorldId,
        entity: EntityRef,
        state: Document,
    ) -> Result<Written, Error> {
        self.write_op(world, Op::PutEntity(entity, state)).await
    }

    /// Deletes an entity and its timeline.
    pub async fn delete_entity(
        &self,
        world: &WorldId,
        entity: EntityRef,
    ) -> Result<Written, Error> {
        self.write_op(world, Op::DeleteEntity(entity)).await
    }

    /// Appends an event to an entity's timeline, stamped with the clock.
    pub async fn add_event(
        &self,
        world: &WorldId,
        entity: EntityId,
        kind: EventKind,
        data: Document,
    ) -> Result<Written, Error> {
        let at_ms = self.inner.clock.now_ms();
        let event = NewEvent {
            entity,
            kind,
            at_ms,
            data,
            top_k: self.inner.config.policy.timeline_top_k,
        };
        self.write_op(world, Op::AddEvent(event)).await
    }
}

impl<S, R> Inner<S, R>
where
    S: CacheStore + 'static,
    R: WorldRepository + 'static,
{
    async fn apply(&self, mut mutation: Mutation) -> Result<Written, Error> {
        mutation.op.check(&self.config.policy.limits)?;
        if let Op::AddEvent(event) = &mut mutation.op {
            // The commit returns the timeline the cache keeps.
            event.top_k = self.config.policy.timeline_top_k;
        }
        // Learned before the source commit: the cache step's values land
        // only if the store lost nothing of the world since.
        let epoch = self.store_epoch(&mutation.world).await;
        let started = Instant::now();
        let committed = self.source_call(self.repo.apply(&mutation)).await?;
        self.metrics.record(MetricEvent::Latency(
            Stage::SourceWrite,
            mutation.op.key_kind(),
            started.elapsed(),
        ));
        // The write is durable from here on: nothing below may fail it.
        let plan = plan(&committed, &self.config.policy);
        let cache = self.run_plan(&plan, epoch).await;
        Ok(Written { committed, cache })
    }

    /// A cache step that failed: owed in the outbox, the replay loop
    /// carries it out, first thing while the cache is in trouble.
    fn step_failed(&self, plan: &CachePlan) -> CacheStep {
        super::lock(&self.failed_worlds).insert(plan.world.clone());
        self.near_forget(plan.steps.iter().map(|s| &s.key), plan.version);
        CacheStep::Failed
    }

    /// The store's epoch of `world`: the one last learned, or the store's
    /// answer now; `None` when the store does not answer.
    async fn store_epoch(&self, world: &WorldId) -> Option<Epoch> {
        if let Some(epoch) = super::lock(&self.store_epochs).get(world) {
            return Some(*epoch);
        }
        let epoch = self.owed_cache_call(self.store.epoch(world)).await.ok()?;
        super::lock(&self.store_epochs).insert(world.clone(), epoch);
        Some(epoch)
    }

    /// Forgets `world`'s epoch after a commit found the store's another:
    /// the next write learns it anew. A newer one learned meanwhile stays.
    pub(super) fn epoch_lost(&self, world: &WorldId, used: Option<Epoch>) {
        let mut epochs = super::lock(&self.store_epochs);
        if epochs.get(world).copied() == used {
            epochs.remove(world);
        }
    }

    /// Carries out a plan's cache steps: one versioned commit of puts and
    /// tombstones, then the work the plan leaves for the write-behind
    /// worker. Once the commit landed, the write's outbox entry is done.
    ///
    /// Without `epoch` (the store did not give it before the commit), every
    /// key gets a tombstone at the write's version, as a replay would carry
    /// the step out: it lands whatever the store's epoch, where an epoch
    /// learned only now could hide a restart that lost a newer write. The
    /// step is tried all the same, since the commit may land well after
    /// that failure, when every other instance reads the cache again.
    async fn run_plan(&self, plan: &CachePlan, epoch: Option<Epoch>) -> CacheStep {
        let mut puts = Vec::new();
        let mut deferred = 0usize;
        for step in &plan.steps {
            self.metrics
                .record(MetricEvent::Invalidation(step.key.kind(), step.cause));
            let action = match epoch {
                Some(_) => &step.action,
                None => &Action::Invalidate,
            };
            match action {
                Action::Invalidate => puts.push(self.tombstone(&step.key, plan.version)),
                Action::Put {
                    value,
                    timing: Timing::Now,
                } => puts.push(self.put_redacting(&step.key, plan.version, value)),
                Action::Put {
                    value,
                    timing: Timing::Behind,
                } => match self.config.stale_reads {
                    // No instance may serve the old value once the write is
                    // acknowledged, and the change carries the new one: it
                    // goes in the same round trip a tombstone would take.
                    StaleReads::Never => {
                        puts.push(self.put_redacting(&step.key, plan.version, value));
                    }
                    StaleReads::WhileQueued => {
                        let task = Task::Put {
                            key: step.key.clone(),
                            version: plan.version,
                            epoch,
                            value: value.clone(),
                        };
                        if self.enqueue(task) {
                            deferred += 1;
                        } else {
                            // The queue is full: the key goes now and its
                            // next read fills it.
                            self.overflowed(&step.key);
                            puts.push(self.tombstone(&step.key, plan.version));
                        }
                    }
                },
            }
        }
        let mut step = if deferred > 0 {
            CacheStep::Deferred
        } else {
            CacheStep::Applied
        };
        if !puts.is_empty() {
            let write = CacheWrite::commit(plan.world.clone(), plan.version, epoch, puts);
            match self.owed_cache_call(self.store.write(&write)).await {
                Ok(outcome) => {
                    if outcome.epoch_lost {
                        self.epoch_lost(&plan.world, epoch);
                    }
                    if outcome.skipped > 0 {
                        step = CacheStep::Superseded;
                    }
                    if let Some(seen) = outcome.previous.filter(|&p| p > plan.version) {
                        // Usual when writers race; a sign of a restored or
                        // recreated world when the source is behind too.
                        self.suspect(&plan.world, seen);
                    }
                }
                Err(_) => return self.step_failed(plan),
            }
        }
        self.near_forget(plan.steps.iter().map(|s| &s.key), plan.version);
        // A deferred put is the only step that replaces the old value: the
        // entry stays owed until the replay loop has made sure of it.
        if deferred == 0 {
            self.mark_done(OwedId {
                world: plan.world.clone(),
                version: plan.version,
            });
        }
        step
    }

    /// Counts a write-behind update that found its queue full.
    fn overflowed(&self, key: &lwcache_domain::CacheKey) {
        self.metrics.record(MetricEvent::WriteBehindDropped);
        self.metrics.record(MetricEvent::Invalidation(
            key.kind(),
            InvalidationCause::WriteBehindOverflow,
        ));
    }
}
