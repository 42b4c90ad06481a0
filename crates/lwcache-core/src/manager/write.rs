//! Writes: durable in the source first, acknowledged only then, after the
//! cache step the domain's plan asks for (puts and deletes now, a re-read
//! from the source, or work queued for the write-behind worker). Nothing
//! after the source commit can fail a write.

use lwcache_domain::{
    Action, CacheKey, CachePlan, Document, EntityId, EntityRef, EventKind, FlagName,
    InvalidationCause, Mutation, NewEvent, Op, Timing, Value, WorldId, plan,
};
use tokio::time::Instant;
use tracing::Instrument;

use super::write_behind::Task;
use super::{CacheManager, CacheStep, Inner, Written};
use crate::error::Error;
use crate::metrics::{MetricEvent, Stage};
use crate::ports::{CacheStore, CacheWrite, WorldRepository, WriteOutcome};

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
        };
        self.write_op(world, Op::AddEvent(event)).await
    }
}

impl<S, R> Inner<S, R>
where
    S: CacheStore + 'static,
    R: WorldRepository + 'static,
{
    async fn apply(&self, mutation: Mutation) -> Result<Written, Error> {
        mutation.op.check(&self.config.policy.limits)?;
        let started = Instant::now();
        let committed = self.source_call(self.repo.apply(&mutation)).await?;
        self.metrics.record(MetricEvent::Latency(
            Stage::SourceWrite,
            mutation.op.key_kind(),
            started.elapsed(),
        ));
        // The write is durable from here on: nothing below may fail it.
        let plan = plan(&committed, &self.config.policy);
        let cache = self.run_plan(&plan).await;
        Ok(Written { committed, cache })
    }

    /// Carries out a plan's cache steps.
    async fn run_plan(&self, plan: &CachePlan) -> CacheStep {
        let mut puts = Vec::new();
        let mut deletes = Vec::new();
        let mut refresh_now = Vec::new();
        let mut deferred = 0usize;
        for step in &plan.steps {
            self.metrics
                .record(MetricEvent::Invalidation(step.key.kind(), step.cause));
            match &step.action {
                Action::Invalidate => deletes.push(step.key.clone()),
                Action::Put {
                    value: Some(v),
                    timing: Timing::Now,
                } => {
                    puts.push(self.put_redacting(&step.key, plan.version, v));
                }
                Action::Put {
                    value: None,
                    timing: Timing::Now,
                } => refresh_now.push(step.key.clone()),
                Action::Put {
                    value,
                    timing: Timing::Behind,
                } => {
                    if self.enqueue(Task::Put {
                        key: step.key.clone(),
                        version: plan.version,
                        value: value.clone(),
                    }) {
                        deferred += 1;
                    } else {
                        self.metrics.record(MetricEvent::WriteBehindDropped);
                        self.metrics.record(MetricEvent::Invalidation(
                            step.key.kind(),
                            InvalidationCause::WriteBehindOverflow,
                        ));
                        deletes.push(step.key.clone());
                    }
                }
            }
        }
        if puts.is_empty() && deletes.is_empty() && refresh_now.is_empty() {
            return if deferred > 0 {
                CacheStep::Deferred
            } else {
                CacheStep::Applied
            };
        }
        let mut step = CacheStep::Applied;
        if !puts.is_empty() || !deletes.is_empty() {
            let keys: Vec<CacheKey> = puts
                .iter()
                .map(|p| p.key.clone())
                .chain(deletes.iter().cloned())
                .collect();
            let write = CacheWrite::commit(plan.world.clone(), plan.version, puts, deletes);
            step = match self.cache_call(self.store.write(&write)).await {
                Ok(WriteOutcome::Superseded { .. }) => CacheStep::Superseded,
                Ok(_) => CacheStep::Applied,
                Err(_) => {
                    self.enqueue(Task::Invalidate {
                        world: plan.world.clone(),
                        keys,
                        version: plan.version,
                    });
                    CacheStep::Failed
                }
            };
        }
        for key in refresh_now {
            if !self.refresh(&key, plan.version).await {
                step = CacheStep::Failed;
            }
        }
        step
    }

    /// Re-reads a key from the source and commits it at the version read.
    /// Returns whether the cache took it.
    pub(super) async fn refresh(&self, key: &CacheKey, version: u64) -> bool {
        let write = match self
            .source_read(key, self.config.policy.timeline_top_k)
            .await
        {
            Ok(read) => CacheWrite::commit(
                key.world().clone(),
                read.version,
                vec![self.put_redacting(key, read.version, &read.value)],
                Vec::new(),
            ),
            // Gone from the source (deleted since), or the source failed:
            // the safe step is to delete the key.
            Err(_) => CacheWrite::invalidate(key.world().clone(), version, vec![key.clone()]),
        };
        if self.cache_call(self.store.write(&write)).await.is_ok() {
            return true;
        }
        self.enqueue(Task::Invalidate {
            world: key.world().clone(),
            keys: vec![key.clone()],
            version,
        });
        false
    }
}
