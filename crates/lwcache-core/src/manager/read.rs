//! Reads: from the cache when it holds a usable entry, otherwise from the
//! source, filling the cache under the version protocol. A cache failure
//! never fails a read: the source serves it (`Fallback`).

use lwcache_domain::{
    CacheKey, CachedValue, Document, EntityId, EntityRef, FlagName, Flags, KeyKind, Redaction,
    TimelineEvent, Value, WorldId,
};
use tokio::time::Instant;
use tracing::Instrument;

use super::{CacheManager, Fields, Inner, Outcome, Read, lock};
use crate::codec;
use crate::config::StaleReads;
use crate::error::Error;
use crate::metrics::{MetricEvent, Stage};
use crate::ports::{
    CacheError, CacheStore, CacheWrite, SourceError, WorldRepository, WriteOutcome,
};

/// What a read served by the source does to the cache afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterRead {
    /// Store the value: the cache had no entry for the key.
    Fill,
    /// Leave the cache as it is: it failed, or holds an entry that this read
    /// could not use but that is not known to be wrong (redacted, or older
    /// than a queued write-behind update that will replace it).
    Leave,
}

impl<S, R> CacheManager<S, R>
where
    S: CacheStore + 'static,
    R: WorldRepository + 'static,
{
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
            None => Err(Error::Source(SourceError::Other(
                format!("the source answered {key} with a value of another kind").into(),
            ))),
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
}

impl<S, R> Inner<S, R>
where
    S: CacheStore + 'static,
    R: WorldRepository + 'static,
{
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
                            .serve_from_source(key, fields, Outcome::Miss, AfterRead::Leave)
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
                                    .serve_from_source(key, fields, Outcome::Miss, AfterRead::Leave)
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
                        lwcache_domain::InvalidationCause::DecodeFailure,
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
                    .serve_from_source(key, fields, Outcome::Fallback, AfterRead::Leave)
                    .await;
            }
        }
        self.metrics.record(MetricEvent::Miss(kind));
        self.serve_from_source(key, fields, Outcome::Miss, AfterRead::Fill)
            .await
    }

    /// Serves a read from the source, then fills the cache or leaves it.
    async fn serve_from_source(
        &self,
        key: &CacheKey,
        fields: Fields,
        outcome: Outcome,
        after: AfterRead,
    ) -> Result<Read<CachedValue>, Error> {
        let limit = self.config.policy.timeline_top_k;
        let read = self.source_read(key, limit).await?;
        let (redacted, redaction) = self.config.policy.privacy.redact(&read.value);
        if after == AfterRead::Fill {
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

    /// Stores a value read from the source at `version`, unless a newer
    /// write has been seen. Failures are counted and swallowed.
    async fn fill(&self, key: &CacheKey, version: u64, value: &CachedValue, redaction: Redaction) {
        let write = CacheWrite::fill(
            key.world().clone(),
            version,
            vec![self.put(key, version, value.clone(), redaction)],
        );
        let _ = self.fill_seeding(&write).await;
    }

    /// Writes a fill; when the cache has no version for the world, seeds it
    /// from the source's current version and tries once more.
    pub(super) async fn fill_seeding(
        &self,
        write: &CacheWrite,
    ) -> Result<WriteOutcome, CacheError> {
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

    /// Whether a write-behind update newer than `version` is queued for
    /// `key`: the cached entry is then known to be behind.
    fn pending_newer(&self, key: &CacheKey, version: u64) -> bool {
        lock(&self.pending).get(key).is_some_and(|&v| v > version)
    }
}
