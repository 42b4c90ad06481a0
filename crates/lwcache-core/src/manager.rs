//! The cache manager: read-through, write-through, write-behind,
//! invalidation, versioning and warming over the two ports.
//!
//! # The version protocol
//!
//! The source of truth stamps every write with the world's new version. The
//! cache keeps the highest version it has seen in `lw:world:{w}:ver`:
//!
//! - the cache step of a write raises `ver` to the write's version, then puts
//!   or deletes its keys ([`WriteKind::Commit`]);
//! - a fill of a value read from the source at version `r` is stored only if
//!   `ver <= r` ([`WriteKind::Fill`]). A larger `ver` means a write committed
//!   after the read, and the value may be stale: the fill is dropped.
//!
//! A fill that raced with a write therefore either lands before the write's
//! cache step (which then overwrites it) or is rejected: the stale-set race
//! cannot leave the older value behind. When `ver` is missing (the cache was
//! flushed or restarted), a fill is refused until `ver` is seeded from the
//! source's *current* version, read after the loss was seen.

use std::collections::HashMap;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex, Weak};
use std::time::Duration;

use lwcache_domain::{
    Action, CacheKey, CachePlan, CachedValue, Committed, Document, EntityId, EntityRef, EventKind,
    FlagName, Flags, InvalidationCause, KeyKind, Mutation, NewEvent, Op, Redaction, TimelineEvent,
    Timing, Value, Versioned, WarmPlan, WorldId, plan,
};
use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use tokio::time::Instant;
use tracing::Instrument;

use crate::codec::{self, Entry};
use crate::config::{ManagerConfig, StaleReads};
use crate::error::Error;
use crate::metrics::{MetricEvent, MetricsSink, NoMetrics, Stage};
use crate::ports::{
    CacheError, CacheStore, CacheWrite, Clock, Put, SourceError, SystemClock, WorldRepository,
    WriteKind, WriteOutcome,
};

/// How a read was served.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// From the cache.
    Hit,
    /// From the source, after the cache had no usable entry.
    Miss,
    /// From a cache entry older than a write-behind update still queued.
    Stale,
    /// From the source, because the cache failed.
    Fallback,
}

impl Outcome {
    /// `hit`, `miss`, `stale` or `fallback`.
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Hit => "hit",
            Outcome::Miss => "miss",
            Outcome::Stale => "stale",
            Outcome::Fallback => "fallback",
        }
    }
}

/// Which fields a read needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fields {
    /// Only the fields that may be cached: sensitive fields are left out,
    /// whether the read hits or misses, so the answer never depends on the
    /// cache's state.
    #[default]
    Cacheable,
    /// Every field: served by the source whenever the cached copy was
    /// redacted.
    All,
}

/// A value read, with its version and how it was served.
#[derive(Debug, Clone, PartialEq)]
pub struct Read<T> {
    /// The value.
    pub value: T,
    /// The world version the value was read at or written as.
    pub version: u64,
    /// How it was served.
    pub outcome: Outcome,
}

/// What the cache step of a write did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum CacheStep {
    /// The cache was updated before the write was acknowledged.
    Applied,
    /// A later write's cache step ran first; this write's keys were deleted.
    Superseded,
    /// Every update was queued for the write-behind worker.
    Deferred,
    /// The cache failed; its keys were queued for invalidation.
    Failed,
}

/// An acknowledged write.
#[derive(Debug, Clone, PartialEq)]
pub struct Written {
    /// What the source committed.
    pub committed: Committed,
    /// What the cache step did.
    pub cache: CacheStep,
}

/// What an activation warmed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WarmReport {
    /// The version the world was read at.
    pub version: u64,
    /// Keys prefilled.
    pub keys: usize,
    /// Batches written (one round trip each).
    pub batches: usize,
    /// Keys not prefilled because a write raced with the warming; they fill
    /// on their first read.
    pub skipped: usize,
}

/// One unit of write-behind work.
#[derive(Debug)]
enum Task {
    /// Put a key's new value (re-read from the source when `None`).
    Put {
        key: CacheKey,
        version: u64,
        value: Option<CachedValue>,
    },
    /// Delete keys whose synchronous cache step failed.
    Invalidate {
        world: WorldId,
        keys: Vec<CacheKey>,
        version: u64,
    },
}

/// Builds a [`CacheManager`].
pub struct Builder<S, R> {
    store: S,
    repo: R,
    config: ManagerConfig,
    metrics: Arc<dyn MetricsSink>,
    clock: Arc<dyn Clock>,
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

    /// Validates the configuration and starts the write-behind worker on the
    /// current tokio runtime.
    pub fn build(self) -> Result<CacheManager<S, R>, lwcache_domain::PolicyError> {
        self.config.policy.validate()?;
        let (tx, rx) = mpsc::channel(self.config.write_behind_capacity.max(1));
        let inner = Arc::new(Inner {
            store: self.store,
            repo: self.repo,
            config: self.config,
            metrics: self.metrics,
            clock: self.clock,
            queue: Mutex::new(Some(tx)),
            pending: Mutex::new(HashMap::new()),
            in_flight: AtomicUsize::new(0),
            worker: Mutex::new(None),
        });
        // The worker holds a weak reference, so that dropping the last
        // manager drops the queue's sender and ends the worker.
        let handle = tokio::spawn(worker(Arc::downgrade(&inner), rx));
        *lock(&inner.worker) = Some(handle);
        Ok(CacheManager { inner })
    }
}

/// The cache manager. Cheap to clone; clones share everything.
pub struct CacheManager<S, R> {
    inner: Arc<Inner<S, R>>,
}

impl<S, R> Clone for CacheManager<S, R> {
    fn clone(&self) -> Self {
        Self {
            inner: Arc::clone(&self.inner),
        }
    }
}

struct Inner<S, R> {
    store: S,
    repo: R,
    config: ManagerConfig,
    metrics: Arc<dyn MetricsSink>,
    clock: Arc<dyn Clock>,
    queue: Mutex<Option<mpsc::Sender<Task>>>,
    /// The newest version queued for each key with pending write-behind work.
    pending: Mutex<HashMap<CacheKey, u64>>,
    /// Tasks queued or running.
    in_flight: AtomicUsize,
    worker: Mutex<Option<JoinHandle<()>>>,
}

/// Locks a std mutex, recovering from poisoning: every critical section
/// here leaves the data consistent, so a panic elsewhere cannot corrupt it.
fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
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
        }
    }

    /// The configuration.
    pub fn config(&self) -> &ManagerConfig {
        &self.inner.config
    }

    /// The cache store.
    pub fn store(&self) -> &S {
        &self.inner.store
    }

    /// The repository.
    pub fn repository(&self) -> &R {
        &self.inner.repo
    }

    // ---- reads ------------------------------------------------------------

    /// The world snapshot.
    pub async fn world_state(&self, world: &WorldId) -> Result<Read<Document>, Error> {
        self.read_as(CacheKey::state(world), Fields::Cacheable, |v| match v {
            CachedValue::Snapshot(d) => Some(d),
            _ => None,
        })
        .await
    }

    /// The world flags.
    pub async fn flags(&self, world: &WorldId) -> Result<Read<Flags>, Error> {
        self.read_as(CacheKey::flags(world), Fields::Cacheable, |v| match v {
            CachedValue::Flags(f) => Some(f),
            _ => None,
        })
        .await
    }

    /// One flag; `None` when it is not set.
    pub async fn flag(
        &self,
        world: &WorldId,
        name: &FlagName,
    ) -> Result<Read<Option<Value>>, Error> {
        let read = self.flags(world).await?;
        Ok(Read {
            value: read.value.get(name).cloned(),
            version: read.version,
            outcome: read.outcome,
        })
    }

    /// The state of a character, location or object.
    pub async fn entity(
        &self,
        world: &WorldId,
        entity: &EntityRef,
        fields: Fields,
    ) -> Result<Read<Document>, Error> {
        self.read_as(CacheKey::entity(world, entity), fields, |v| match v {
            CachedValue::Entity(d) => Some(d),
            _ => None,
        })
        .await
    }

    /// The `limit` newest events of an entity, newest first. Up to the
    /// policy's top-k they are served by the cache; a longer list is read
    /// from the source.
    pub async fn recent(
        &self,
        world: &WorldId,
        entity: &EntityId,
        limit: usize,
    ) -> Result<Read<Vec<TimelineEvent>>, Error> {
        let key = CacheKey::timeline(world, entity);
        let top_k = self.inner.config.policy.timeline_top_k;
        let as_timeline = |v| match v {
            CachedValue::Timeline(events) => Some(events),
            _ => None,
        };
        if limit > top_k {
            let span = tracing::info_span!(
                "lwcache.read",
                world = %world,
                key_kind = KeyKind::Timeline.as_str(),
                outcome = Outcome::Miss.as_str(),
            );
            let v = self.inner.source_read(&key, limit).instrument(span).await?;
            self.inner
                .metrics
                .record(MetricEvent::Miss(KeyKind::Timeline));
            let (value, _) = self.inner.config.policy.privacy.redact(&v.value);
            return Ok(Read {
                value: as_timeline(value).unwrap_or_default(),
                version: v.version,
                outcome: Outcome::Miss,
            });
        }
        let mut read = self.read_as(key, Fields::Cacheable, as_timeline).await?;
        read.value.truncate(limit);
        Ok(read)
    }

    async fn read_as<T>(
        &self,
        key: CacheKey,
        fields: Fields,
        pick: impl Fn(CachedValue) -> Option<T>,
    ) -> Result<Read<T>, Error> {
        let read = self.read(&key, fields).await?;
        match pick(read.value) {
            Some(value) => Ok(Read {
                value,
                version: read.version,
                outcome: read.outcome,
            }),
            // A repository that answers a key with another kind of value is
            // broken; say so rather than guess.
            None => Err(Error::Source(SourceError::Other(format!(
                "the source answered {key} with a value of another kind"
            )))),
        }
    }

    /// Reads any key: from the cache when it holds a usable entry, otherwise
    /// from the source, filling the cache.
    pub async fn read(&self, key: &CacheKey, fields: Fields) -> Result<Read<CachedValue>, Error> {
        let span = tracing::info_span!(
            "lwcache.read",
            world = %key.world(),
            key_kind = key.kind().as_str(),
            outcome = tracing::field::Empty,
        );
        let result = self.inner.read(key, fields).instrument(span.clone()).await;
        if let Ok(read) = &result {
            span.record("outcome", read.outcome.as_str());
        }
        result
    }

    // ---- writes -----------------------------------------------------------

    /// Applies a mutation: durable in the source first, acknowledged only
    /// then, after the cache step its policy asks for.
    pub async fn apply(&self, mutation: Mutation) -> Result<Written, Error> {
        let span = tracing::info_span!(
            "lwcache.write",
            world = %mutation.world,
            op = mutation.op.name(),
            key_kind = match &mutation.op {
                Op::ReplaceSnapshot(_) => KeyKind::State,
                Op::SetFlag(..) | Op::ClearFlag(_) => KeyKind::Flags,
                Op::CreateEntity(e, _)
                | Op::UpdateEntity(e, _)
                | Op::PutEntity(e, _)
                | Op::DeleteEntity(e) => KeyKind::of_entity(e.kind()),
                Op::AddEvent(_) => KeyKind::Timeline,
            }
            .as_str(),
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

    // ---- warming ----------------------------------------------------------

    /// Activates a world: prefills its flags, snapshot, and each entity's
    /// state and top-k recent events, in batches of one round trip each.
    pub async fn activate(&self, world: &WorldId) -> Result<WarmReport, Error> {
        let span =
            tracing::info_span!("lwcache.activate", world = %world, keys = tracing::field::Empty);
        let result = self.inner.activate(world).instrument(span.clone()).await;
        if let Ok(r) = &result {
            span.record("keys", r.keys);
        }
        result
    }

    // ---- lifecycle --------------------------------------------------------

    /// How many write-behind updates are waiting.
    pub fn write_behind_depth(&self) -> usize {
        lock(&self.inner.queue)
            .as_ref()
            .map_or(0, |tx| tx.max_capacity() - tx.capacity())
    }

    /// Waits until every write-behind task queued so far has run. For tests
    /// and orderly hand-overs; the service never needs it.
    pub async fn settle(&self) {
        while self.inner.in_flight.load(Ordering::SeqCst) > 0 {
            tokio::time::sleep(Duration::from_millis(1)).await;
        }
    }

    /// Stops taking write-behind work and waits until the queue is drained.
    /// Writes made after this invalidate synchronously.
    pub async fn shutdown(&self) {
        drop(lock(&self.inner.queue).take());
        let handle = lock(&self.inner.worker).take();
        if let Some(handle) = handle {
            let _ = handle.await;
        }
    }

    /// Checks both ports: `(cache, source)`.
    pub async fn health(&self) -> (Result<(), CacheError>, Result<(), SourceError>) {
        let cache = self.inner.cache_call(self.inner.store.ping()).await;
        let source = self.inner.source_call(self.inner.repo.ping()).await;
        (cache, source)
    }
}

impl<S, R> Inner<S, R>
where
    S: CacheStore + 'static,
    R: WorldRepository + 'static,
{
    async fn cache_call<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, CacheError>>,
    ) -> Result<T, CacheError> {
        let limit = self.config.cache_timeout;
        let result = match tokio::time::timeout(limit, fut).await {
            Ok(r) => r,
            Err(_) => Err(CacheError::Timeout(limit)),
        };
        if let Err(e) = &result {
            self.metrics.record(MetricEvent::CacheError);
            tracing::warn!(error = %e, "cache store call failed");
        }
        result
    }

    async fn source_call<T>(
        &self,
        fut: impl std::future::Future<Output = Result<T, SourceError>>,
    ) -> Result<T, SourceError> {
        let limit = self.config.source_timeout;
        match tokio::time::timeout(limit, fut).await {
            Ok(r) => r,
            Err(_) => Err(SourceError::Timeout(limit)),
        }
    }

    async fn source_read(
        &self,
        key: &CacheKey,
        limit: usize,
    ) -> Result<Versioned<CachedValue>, SourceError> {
        let started = Instant::now();
        let result = self.source_call(self.repo.read(key, limit)).await;
        self.metrics.record(MetricEvent::Latency(
            Stage::SourceRead,
            key.kind(),
            started.elapsed(),
        ));
        result
    }

    async fn read(&self, key: &CacheKey, fields: Fields) -> Result<Read<CachedValue>, Error> {
        let kind = key.kind();
        if kind == KeyKind::Version {
            return Err(Error::Unreadable(key.clone()));
        }
        let started = Instant::now();
        let cached = self.cache_call(self.store.get(key)).await;
        self.metrics.record(MetricEvent::Latency(
            Stage::CacheRead,
            kind,
            started.elapsed(),
        ));
        match cached {
            Ok(Some(bytes)) => match codec::decode(&bytes) {
                Ok(entry) => {
                    if fields == Fields::All && entry.redaction == Redaction::Redacted {
                        // The cached copy lacks what the caller needs.
                        self.metrics.record(MetricEvent::Miss(kind));
                        return self
                            .serve_from_source(key, fields, Outcome::Miss, false)
                            .await;
                    }
                    if self.pending_newer(key, entry.version) {
                        match self.config.stale_reads {
                            StaleReads::Serve => {
                                self.metrics.record(MetricEvent::Stale(kind));
                                return Ok(Read {
                                    value: entry.value,
                                    version: entry.version,
                                    outcome: Outcome::Stale,
                                });
                            }
                            StaleReads::Bypass => {
                                self.metrics.record(MetricEvent::Miss(kind));
                                return self
                                    .serve_from_source(key, fields, Outcome::Miss, false)
                                    .await;
                            }
                        }
                    }
                    self.metrics.record(MetricEvent::Hit(kind));
                    return Ok(Read {
                        value: entry.value,
                        version: entry.version,
                        outcome: Outcome::Hit,
                    });
                }
                Err(e) => {
                    tracing::warn!(key = %key, error = %e, "cache entry failed to decode; treating it as a miss");
                    self.metrics.record(MetricEvent::Invalidation(
                        kind,
                        InvalidationCause::DecodeFailure,
                    ));
                    let _ = self
                        .cache_call(self.store.remove(std::slice::from_ref(key)))
                        .await;
                }
            },
            Ok(None) => {}
            Err(_) => {
                self.metrics.record(MetricEvent::Fallback(kind));
                return self
                    .serve_from_source(key, fields, Outcome::Fallback, false)
                    .await;
            }
        }
        self.metrics.record(MetricEvent::Miss(kind));
        self.serve_from_source(key, fields, Outcome::Miss, true)
            .await
    }

    /// Serves a read from the source, filling the cache if asked.
    async fn serve_from_source(
        &self,
        key: &CacheKey,
        fields: Fields,
        outcome: Outcome,
        fill: bool,
    ) -> Result<Read<CachedValue>, Error> {
        let limit = self.config.policy.timeline_top_k;
        let read = self.source_read(key, limit).await?;
        let (redacted, redaction) = self.config.policy.privacy.redact(&read.value);
        if fill {
            let started = Instant::now();
            self.fill(key, read.version, &redacted, redaction).await;
            self.metrics.record(MetricEvent::Latency(
                Stage::Fill,
                key.kind(),
                started.elapsed(),
            ));
        }
        let value = match fields {
            Fields::Cacheable => redacted,
            Fields::All => read.value,
        };
        Ok(Read {
            value,
            version: read.version,
            outcome,
        })
    }

    fn put(&self, key: &CacheKey, version: u64, value: CachedValue, redaction: Redaction) -> Put {
        let bytes = codec::encode(&Entry {
            version,
            redaction,
            value,
        });
        Put {
            ttl: self.config.policy.ttl(key.kind()),
            key: key.clone(),
            bytes,
        }
    }

    /// Redacts and encodes a value for the cache: the single place where
    /// values become bytes, so nothing sensitive can reach the store.
    fn put_redacting(&self, key: &CacheKey, version: u64, value: &CachedValue) -> Put {
        let (value, redaction) = self.config.policy.privacy.redact(value);
        self.put(key, version, value, redaction)
    }

    /// Stores a value read from the source at `version`, unless a newer
    /// write has been seen. Failures are counted and swallowed.
    async fn fill(&self, key: &CacheKey, version: u64, value: &CachedValue, redaction: Redaction) {
        let write = CacheWrite {
            world: key.world().clone(),
            version,
            kind: WriteKind::Fill,
            puts: vec![self.put(key, version, value.clone(), redaction)],
            deletes: Vec::new(),
        };
        let _ = self.fill_seeding(&write).await;
    }

    /// Writes a fill; when the cache has no version for the world, seeds it
    /// from the source's current version and tries once more.
    async fn fill_seeding(&self, write: &CacheWrite) -> Result<WriteOutcome, CacheError> {
        let mut outcome = self.cache_call(self.store.write(write)).await?;
        if outcome == WriteOutcome::NoVersion {
            // Read the source's version *after* seeing the loss: every write
            // committed before now is at or below it.
            let Ok(current) = self.source_call(self.repo.version(&write.world)).await else {
                return Ok(outcome);
            };
            self.cache_call(self.store.seed_version(&write.world, current))
                .await?;
            outcome = self.cache_call(self.store.write(write)).await?;
        }
        if let WriteOutcome::Rejected { .. } | WriteOutcome::NoVersion = outcome {
            for put in &write.puts {
                self.metrics
                    .record(MetricEvent::FillRejected(put.key.kind()));
            }
        }
        Ok(outcome)
    }

    fn pending_newer(&self, key: &CacheKey, version: u64) -> bool {
        lock(&self.pending).get(key).is_some_and(|&v| v > version)
    }

    async fn apply(&self, mutation: Mutation) -> Result<Written, Error> {
        mutation.op.check(&self.config.policy.limits)?;
        let started = Instant::now();
        let committed = self.source_call(self.repo.apply(&mutation)).await?;
        let kind = match &mutation.op {
            Op::ReplaceSnapshot(_) => KeyKind::State,
            Op::SetFlag(..) | Op::ClearFlag(_) => KeyKind::Flags,
            Op::AddEvent(_) => KeyKind::Timeline,
            Op::CreateEntity(e, _)
            | Op::UpdateEntity(e, _)
            | Op::PutEntity(e, _)
            | Op::DeleteEntity(e) => KeyKind::of_entity(e.kind()),
        };
        self.metrics.record(MetricEvent::Latency(
            Stage::SourceWrite,
            kind,
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
            let write = CacheWrite {
                world: plan.world.clone(),
                version: plan.version,
                kind: WriteKind::Commit,
                puts,
                deletes,
            };
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
    async fn refresh(&self, key: &CacheKey, version: u64) -> bool {
        let write = match self
            .source_read(key, self.config.policy.timeline_top_k)
            .await
        {
            Ok(read) => CacheWrite {
                world: key.world().clone(),
                version: read.version,
                kind: WriteKind::Commit,
                puts: vec![self.put_redacting(key, read.version, &read.value)],
                deletes: Vec::new(),
            },
            // Gone from the source (deleted since), or the source failed:
            // the safe step is to delete the key.
            Err(_) => CacheWrite {
                world: key.world().clone(),
                version,
                kind: WriteKind::Commit,
                puts: Vec::new(),
                deletes: vec![key.clone()],
            },
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

    /// Queues write-behind work without waiting; false when the queue is
    /// full or closed.
    fn enqueue(&self, task: Task) -> bool {
        let key_version = match &task {
            Task::Put { key, version, .. } => Some((key.clone(), *version)),
            Task::Invalidate { .. } => None,
        };
        let queue = lock(&self.queue);
        let Some(tx) = queue.as_ref() else {
            return false;
        };
        // Mark the key pending before the worker can see the task, so that
        // the worker's clear never races ahead of the mark.
        if let Some((key, version)) = &key_version {
            let mut pending = lock(&self.pending);
            let v = pending.entry(key.clone()).or_insert(0);
            *v = (*v).max(*version);
        }
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        match tx.try_send(task) {
            Ok(()) => {
                self.metrics.record(MetricEvent::WriteBehindDepth(
                    tx.max_capacity() - tx.capacity(),
                ));
                true
            }
            Err(_) => {
                self.in_flight.fetch_sub(1, Ordering::SeqCst);
                if let Some((key, version)) = key_version {
                    self.clear_pending(&key, version);
                }
                false
            }
        }
    }

    fn clear_pending(&self, key: &CacheKey, version: u64) {
        let mut pending = lock(&self.pending);
        if pending.get(key) == Some(&version) {
            pending.remove(key);
        }
    }

    /// Runs one write-behind task, retrying a failed cache write a few
    /// times.
    async fn run_task(&self, task: Task) {
        match task {
            Task::Put {
                key,
                version,
                value,
            } => {
                let newest = lock(&self.pending).get(&key).copied().unwrap_or(version);
                if newest > version {
                    // A later update of the same key is queued: it will do.
                    return;
                }
                match value {
                    Some(value) => {
                        let write = CacheWrite {
                            world: key.world().clone(),
                            version,
                            kind: WriteKind::Commit,
                            puts: vec![self.put_redacting(&key, version, &value)],
                            deletes: Vec::new(),
                        };
                        self.write_with_retries(&write).await;
                    }
                    None => {
                        self.refresh(&key, version).await;
                    }
                }
                self.clear_pending(&key, version);
            }
            Task::Invalidate {
                world,
                keys,
                version,
            } => {
                let write = CacheWrite {
                    world,
                    version,
                    kind: WriteKind::Commit,
                    puts: Vec::new(),
                    deletes: keys,
                };
                self.write_with_retries(&write).await;
            }
        }
    }

    async fn write_with_retries(&self, write: &CacheWrite) {
        let mut delay = Duration::from_millis(50);
        for _ in 0..4 {
            if self.cache_call(self.store.write(write)).await.is_ok() {
                return;
            }
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
        tracing::error!(world = %write.world, version = write.version, "gave up a cache step after retries; entries may stay stale until their TTL");
    }

    async fn activate(&self, world: &WorldId) -> Result<WarmReport, Error> {
        let policy = &self.config.policy;
        let mut attempt = 0;
        loop {
            attempt += 1;
            let image = self
                .source_call(self.repo.image(world, policy.timeline_top_k))
                .await?;
            let plan = WarmPlan::new(world, image.version, &image.value, policy);
            let mut report = WarmReport {
                version: plan.version,
                keys: 0,
                batches: 0,
                skipped: 0,
            };
            let mut retry = false;
            for (i, batch) in plan.batches.iter().enumerate() {
                let write = CacheWrite {
                    world: world.clone(),
                    version: plan.version,
                    kind: WriteKind::Fill,
                    puts: batch
                        .iter()
                        .map(|(k, v)| self.put_redacting(k, plan.version, v))
                        .collect(),
                    deletes: Vec::new(),
                };
                match self.fill_seeding(&write).await {
                    Ok(WriteOutcome::Applied) => {
                        report.keys += batch.len();
                        report.batches += 1;
                        self.metrics.record(MetricEvent::Warmed(batch.len() as u64));
                    }
                    // A write landed between the image read and the first
                    // batch: read the image again rather than warm nothing.
                    Ok(_) if i == 0 && attempt < 3 => {
                        retry = true;
                        break;
                    }
                    // Later batches that lose a race are left to fill on
                    // their first read.
                    _ => report.skipped += batch.len(),
                }
            }
            if !retry {
                return Ok(report);
            }
        }
    }
}

async fn worker<S, R>(inner: Weak<Inner<S, R>>, mut rx: mpsc::Receiver<Task>)
where
    S: CacheStore + 'static,
    R: WorldRepository + 'static,
{
    while let Some(task) = rx.recv().await {
        let Some(inner) = inner.upgrade() else { break };
        inner.run_task(task).await;
        inner.in_flight.fetch_sub(1, Ordering::SeqCst);
        inner
            .metrics
            .record(MetricEvent::WriteBehindDepth(rx.len()));
    }
}
