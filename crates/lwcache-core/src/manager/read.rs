//! Reads: from the cache when it holds a usable entry, otherwise from the
//! source, filling the cache under a lease taken before the source read. A
//! cache failure never fails a read: the source serves it (`Fallback`).
//! Concurrent misses of one key share the first one's lease: the others
//! wait briefly for its fill rather than all reading the source.

use lwcache_domain::{
    CacheKey, CachedValue, Document, EntityId, EntityRef, FlagName, Flags, KeyKind, Redaction,
    TimelineEvent, Value, WorldId,
};
use tokio::time::Instant;
use tracing::Instrument;

use super::{CacheManager, Fields, Inner, Outcome, Read, lock};
use crate::codec::{self, Slot};
use crate::config::StaleReads;
use crate::error::Error;
use crate::metrics::{MetricEvent, Stage};
use crate::ports::{CacheStore, CacheWrite, Lease, SourceError, WorldRepository};

/// What a read served by the source does to the cache afterwards.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterRead {
    /// Store the value under the lease taken before the read.
    Fill(Lease),
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
        if self.trouble.load(std::sync::atomic::Ordering::SeqCst) != 0 {
            // The cache may lack steps that failed: the source answers until
            // the replay loop has carried them out.
            self.metrics.record(MetricEvent::Fallback(kind));
            return self
                .serve_from_source(key, fields, Outcome::Fallback, AfterRead::Leave)
                .await;
        }
        let started = Instant::now();
        let cached = self.cache_call(self.store.get(key)).await;
        self.metrics.record(MetricEvent::Latency(
            Stage::CacheRead,
            kind,
            started.elapsed(),
        ));
        let bytes = match cached {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return self.miss(key, fields).await,
            Err(_) => {
                self.metrics.record(MetricEvent::Fallback(kind));
                return self
                    .serve_from_source(key, fields, Outcome::Fallback, AfterRead::Leave)
                    .await;
            }
        };
        let entry = match codec::decode_slot(&bytes) {
            Ok(Slot::Value(entry)) => entry,
            Ok(Slot::Tombstone { .. }) => return self.miss(key, fields).await,
            Err(e) => {
                tracing::warn!(key = %key, error = %e, "cache entry failed to decode; treating it as a miss");
                self.metrics.record(MetricEvent::Invalidation(
                    kind,
                    lwcache_domain::InvalidationCause::DecodeFailure,
                ));
                let _ = self
                    .cache_call(self.store.remove(std::slice::from_ref(key)))
                    .await;
                return self.miss(key, fields).await;
            }
        };
        if fields == Fields::All && entry.redaction == Redaction::Redacted {
            // The cached copy lacks what the caller needs.
            self.metrics.record(MetricEvent::Miss(kind));
            return self
                .serve_from_source(key, fields, Outcome::Miss, AfterRead::Leave)
                .await;
        }
        if self.pending_newer(key, entry.version) {
            if self.config.stale_reads == StaleReads::WhileQueued {
                self.metrics.record(MetricEvent::Stale(kind));
                return Ok(Read {
                    value: entry.value,
                    version: entry.version,
                    outcome: Outcome::Stale,
                });
            }
            // Not opted into stale reads: the entry is known to be behind.
            self.metrics.record(MetricEvent::Miss(kind));
            return self
                .serve_from_source(key, fields, Outcome::Miss, AfterRead::Leave)
                .await;
        }
        self.metrics.record(MetricEvent::Hit(kind));
        Ok(Read {
            value: entry.value,
            version: entry.version,
            outcome: Outcome::Hit,
        })
    }

    /// A miss: takes the key's lease and reads the source, filling the cache
    /// under the lease. When another read holds the lease, waits up to
    /// `lease_wait` for its fill (a hit, once it lands), then reads the
    /// source without filling.
    async fn miss(&self, key: &CacheKey, fields: Fields) -> Result<Read<CachedValue>, Error> {
        let lease = self.next_lease();
        let held = self
            .cache_call(self.store.lease(
                key.world(),
                std::slice::from_ref(key),
                lease,
                self.config.lease_ttl,
            ))
            .await;
        let after = match held.as_deref() {
            Ok([true]) => AfterRead::Fill(lease),
            // Served by the cache after all, by another read's fill: the
            // source was read once for both.
            Ok(_) => match self.await_fill(key, fields).await {
                Some(read) => {
                    self.metrics.record(MetricEvent::Hit(key.kind()));
                    return Ok(read);
                }
                None => AfterRead::Leave,
            },
            Err(_) => AfterRead::Leave,
        };
        self.metrics.record(MetricEvent::Miss(key.kind()));
        self.serve_from_source(key, fields, Outcome::Miss, after)
            .await
    }

    /// Waits, polling with a growing pause, for another read's fill of `key`
    /// to land, for at most `lease_wait`.
    async fn await_fill(&self, key: &CacheKey, fields: Fields) -> Option<Read<CachedValue>> {
        let deadline = Instant::now() + self.config.lease_wait;
        let mut pause = std::time::Duration::from_millis(1);
        while Instant::now() + pause <= deadline {
            tokio::time::sleep(pause).await;
            pause *= 2;
            let Ok(Some(bytes)) = self.cache_call(self.store.get(key)).await else {
                continue;
            };
            if let Ok(Slot::Value(entry)) = codec::decode_slot(&bytes) {
                if fields == Fields::All && entry.redaction == Redaction::Redacted {
                    return None;
                }
                return Some(Read {
                    value: entry.value,
                    version: entry.version,
                    outcome: Outcome::Hit,
                });
            }
        }
        None
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
        if let AfterRead::Fill(lease) = after {
            let started = Instant::now();
            self.fill(key, read.version, lease, &redacted, redaction)
                .await;
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

    /// Stores a value read from the source at `version`, if `lease` still
    /// holds the key. Failures are counted and swallowed.
    async fn fill(
        &self,
        key: &CacheKey,
        version: u64,
        lease: Lease,
        value: &CachedValue,
        redaction: Redaction,
    ) {
        let write = CacheWrite::fill(
            key.world().clone(),
            version,
            lease,
            vec![self.put(key, version, value.clone(), redaction)],
        );
        if let Ok(outcome) = self.cache_call(self.store.write(&write)).await
            && outcome.skipped > 0
        {
            self.metrics.record(MetricEvent::FillRejected(key.kind()));
        }
    }

    /// Whether a write-behind update newer than `version` is queued for
    /// `key`: the cached entry is then known to be behind.
    pub(super) fn pending_newer(&self, key: &CacheKey, version: u64) -> bool {
        lock(&self.pending).get(key).is_some_and(|&v| v > version)
    }
}
