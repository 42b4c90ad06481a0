//! Reads: from the cache when it holds a usable entry, otherwise from the
//! source, filling the cache under a lease taken before the source read. A
//! cache failure never fails a read: the source serves it (`Fallback`).
//!
//! Stampede control: concurrent misses of one key in one process share one
//! flight (the first reader's; the others wait for its result, and take
//! the lead if it is dropped), and across processes the key's lease: the
//! other processes' misses wait briefly for its fill rather than all
//! reading the source.
//!
//! Fail-safe: an entry past its TTL (kept for the policy's grace) is read
//! again from the source; only if the source fails is the old entry
//! served, as [`Outcome::FailSafe`] with its age. The source's "no such
//! entity" is remembered for a short TTL as a negative entry, which any
//! put of the key (a create's) replaces.

use lwcache_domain::{
    CacheKey, CachedValue, Document, EntityId, EntityRef, FlagName, Flags, KeyKind, KeyTarget,
    Redaction, TimelineEvent, Value, WorldError, WorldId,
};
use tokio::time::Instant;
use tracing::Instrument;

use std::sync::Arc;

use super::flight::{Landed, Loaded, ticket};
use super::memo::{Decode, Decoded, shared};
use super::{CacheManager, Fields, Inner, Outcome, Read, SourceFailure, Staleness, lock};
use crate::codec::{self, Freshness, Slot};
use crate::config::StaleReads;
use crate::error::Error;
use crate::metrics::{MetricEvent, Stage};
use crate::ports::{CacheStore, CacheWrite, Lease, SourceError, WorldRepository};

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
        Ok(read.map(|flags| flags.get(name).cloned()))
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
            let (value, _) = self
                .inner
                .config
                .policy
                .privacy
                .redact(KeyKind::Timeline, &v.value);
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
        let read = self.read_traced(key, fields).await?;
        Ok(read.map(Arc::unwrap_or_clone))
    }

    /// [`read`](Self::read) in its span, answering the shared value.
    pub(super) async fn read_traced(
        &self,
        key: &CacheKey,
        fields: Fields,
    ) -> Result<Read<Arc<CachedValue>>, Error> {
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
    /// Reads any key, answering a shared value: a near hit's or the decode
    /// memo's own, with no copy.
    pub(super) async fn read(
        &self,
        key: &CacheKey,
        fields: Fields,
    ) -> Result<Read<Arc<CachedValue>>, Error> {
        let kind = key.kind();
        if kind == KeyKind::Version {
            return Err(Error::Unreadable(key.clone()));
        }
        self.note_read(key);
        if self.trouble.load(std::sync::atomic::Ordering::SeqCst) != 0 {
            // The cache may lack steps that failed: the source answers until
            // the replay loop has carried them out.
            self.metrics.record(MetricEvent::Fallback(kind));
            return shared(self.serve_from_source(key, fields, Outcome::Fallback).await);
        }
        let ticket = match &self.near {
            Some(near) => {
                if let Some(entry) = self.near_entry(near, key, fields) {
                    self.metrics.record(MetricEvent::NearHit(kind));
                    return Ok(Read {
                        value: Arc::clone(&entry.value),
                        version: entry.version,
                        outcome: Outcome::NearHit,
                    });
                }
                Some(near.ticket(key))
            }
            None => None,
        };
        let started = Instant::now();
        let cached = self.cache_read(self.store.get(key)).await;
        let answered = Instant::now();
        self.metrics.record(MetricEvent::Latency(
            Stage::CacheRead,
            kind,
            answered.saturating_duration_since(started),
        ));
        let bytes = match cached {
            Ok(Some(bytes)) => bytes,
            Ok(None) => return shared(self.miss(key, fields).await),
            Err(_) => {
                self.metrics.record(MetricEvent::Fallback(kind));
                return shared(self.serve_from_source(key, fields, Outcome::Fallback).await);
            }
        };
        let entry = match self.decode(key, &bytes) {
            Ok(Decode::Value(entry)) => entry,
            Ok(Decode::Other(Slot::Absent { entity })) => {
                // A write-behind create still queued makes it wrong already.
                if self.pending_newer(key, 0) {
                    return shared(self.miss(key, fields).await);
                }
                self.metrics.record(MetricEvent::NegativeHit(kind));
                return Err(absent(key, entity));
            }
            Ok(Decode::Other(_)) => return shared(self.miss(key, fields).await),
            Err(e) => {
                tracing::warn!(key = %key, error = %e, "cache entry failed to decode; treating it as a miss");
                self.metrics.record(MetricEvent::Invalidation(
                    kind,
                    lwcache_domain::InvalidationCause::DecodeFailure,
                ));
                let _ = self
                    .cache_call(self.store.remove(std::slice::from_ref(key)))
                    .await;
                return shared(self.miss(key, fields).await);
            }
        };
        if fields == Fields::All && entry.redaction == Redaction::Redacted {
            // The cached copy lacks what the caller needs.
            self.metrics.record(MetricEvent::Miss(kind));
            return shared(self.serve_from_source(key, fields, Outcome::Miss).await);
        }
        if self.pending_newer(key, entry.version) {
            if self.config.stale_reads == StaleReads::WhileQueued {
                self.metrics.record(MetricEvent::Stale(kind));
                return Ok(Read {
                    value: Arc::clone(&entry.value),
                    version: entry.version,
                    outcome: Outcome::Stale,
                });
            }
            // Not opted into stale reads: the entry is known to be behind.
            self.metrics.record(MetricEvent::Miss(kind));
            return shared(self.serve_from_source(key, fields, Outcome::Miss).await);
        }
        if let Some(f) = entry.freshness
            && self.ms_at(answered) >= f.fresh_until_ms
        {
            return self.refresh(key, fields, &entry, f).await;
        }
        self.metrics.record(MetricEvent::Hit(kind));
        if let (Some(near), Some(ticket)) = (&self.near, ticket) {
            self.near_admit(near, key, ticket, &entry);
        }
        Ok(Read {
            value: Arc::clone(&entry.value),
            version: entry.version,
            outcome: Outcome::Hit,
        })
    }

    /// A miss: one flight per key in this process (`flight.rs`).
    async fn miss(&self, key: &CacheKey, fields: Fields) -> Result<Read<CachedValue>, Error> {
        let loaded = self.flight(key, true).await;
        self.answer(key, fields, loaded).await
    }

    /// An entry past its TTL: read again as a miss; served as a fail-safe
    /// answer only when the source fails and the entry is within the grace.
    async fn refresh(
        &self,
        key: &CacheKey,
        fields: Fields,
        entry: &Decoded,
        freshness: Freshness,
    ) -> Result<Read<Arc<CachedValue>>, Error> {
        let loaded = self.flight(key, true).await;
        if let Err(Error::Source(e)) = &loaded
            && let Some(reason) = SourceFailure::of(e)
        {
            let now = self.now_ms();
            let grace =
                i64::try_from(self.config.policy.expiry.grace.as_millis()).unwrap_or(i64::MAX);
            if now.saturating_sub(freshness.fresh_until_ms) < grace {
                let age = u64::try_from(now.saturating_sub(freshness.written_ms)).unwrap_or(0);
                self.metrics.record(MetricEvent::FailSafe(key.kind()));
                tracing::warn!(key = %key, error = %e, age_ms = age, "the source failed; serving the entry past its TTL");
                return Ok(Read {
                    value: Arc::clone(&entry.value),
                    version: entry.version,
                    outcome: Outcome::FailSafe(Staleness {
                        age: std::time::Duration::from_millis(age),
                        reason,
                    }),
                });
            }
        }
        shared(self.answer(key, fields, loaded).await)
    }

    /// Answers a miss from what its flight loaded, with the fields asked.
    async fn answer(
        &self,
        key: &CacheKey,
        fields: Fields,
        loaded: Result<Loaded, Error>,
    ) -> Result<Read<CachedValue>, Error> {
        let kind = key.kind();
        let loaded = match loaded {
            Ok(loaded) => loaded,
            Err(e) => {
                self.metrics.record(MetricEvent::Miss(kind));
                return Err(e);
            }
        };
        self.metrics.record(match loaded.outcome {
            Outcome::Hit => MetricEvent::Hit(kind),
            _ => MetricEvent::Miss(kind),
        });
        let value = match (fields, loaded.full) {
            (Fields::Cacheable, _) => loaded.cacheable,
            (Fields::All, Some(full)) => full,
            // Only a redacted fill came: the source has the rest.
            (Fields::All, None) => {
                return self.serve_from_source(key, fields, Outcome::Miss).await;
            }
        };
        Ok(Read {
            value,
            version: loaded.version,
            outcome: loaded.outcome,
        })
    }

    /// A flight's work: takes the key's lease and reads the source, filling
    /// the cache under the lease. When another process holds the lease,
    /// waits up to `lease_wait` for its fill, then reads the source without
    /// filling. The source's "no such entity" is filled as a negative entry.
    pub(super) async fn load(&self, key: &CacheKey, recheck: bool) -> Landed {
        let lease = self.next_lease();
        let held = self
            .cache_call(self.store.lease(
                key.world(),
                std::slice::from_ref(key),
                lease,
                self.config.lease_ttl,
            ))
            .await;
        let fill = match held.as_deref() {
            Ok([true]) if recheck => {
                // Another process's fill may have landed between this read's
                // miss and its lease (and released that process's lease):
                // its value is current, and reading the source again would
                // be a second read of one cold key. The lease lapses on its
                // own; any write's step deletes it first.
                let asked = ticket();
                if let Ok(Some(bytes)) = self.cache_read(self.store.get(key)).await
                    && let Some(result) = self.usable(key, &bytes)
                {
                    return Landed {
                        current_from: asked,
                        result,
                    };
                }
                Some(lease)
            }
            Ok([true]) => Some(lease),
            Ok(_) => {
                let waited = self.await_fill(key).await;
                self.metrics
                    .record(MetricEvent::LeaseWait(key.kind(), waited.is_some()));
                if let Some(loaded) = waited {
                    return loaded;
                }
                None
            }
            Err(_) => None,
        };
        let limit = self.config.policy.timeline_top_k;
        let read_started = ticket();
        let read = match self.source_read(key, limit).await {
            Ok(read) => read,
            Err(e) => {
                if let Some(lease) = fill {
                    self.remember_absent(key, lease, &e).await;
                }
                return Landed {
                    current_from: read_started,
                    result: Err(e.into()),
                };
            }
        };
        let (redacted, redaction) = self.config.policy.privacy.redact(key.kind(), &read.value);
        let mut current_from = read_started;
        if let Some(lease) = fill {
            let started = Instant::now();
            let filling = ticket();
            // Landed under its lease: no write's step came between the
            // lease and the fill, so the value is current up to the fill.
            if self
                .fill(key, read.version, lease, &redacted, redaction)
                .await
            {
                current_from = filling;
            }
            self.metrics.record(MetricEvent::Latency(
                Stage::Fill,
                key.kind(),
                started.elapsed(),
            ));
        }
        Landed {
            current_from,
            result: Ok(Loaded {
                version: read.version,
                cacheable: redacted,
                full: Some(read.value),
                outcome: Outcome::Miss,
            }),
        }
    }

    /// Fills a negative entry when the source answered that the entity of
    /// an entity key does not exist, under the lease taken before the read:
    /// a create committed since has deleted the lease, so it cannot land
    /// after one, and at version 0 any later put replaces it.
    async fn remember_absent(&self, key: &CacheKey, lease: Lease, error: &SourceError) {
        let Some(ttl) = self.config.policy.expiry.negative_ttl else {
            return;
        };
        let SourceError::Rejected(WorldError::UnknownEntity { entity, .. }) = error else {
            return;
        };
        if !matches!(key.target(), KeyTarget::Entity(_)) {
            return;
        }
        let put = crate::ports::Put {
            key: key.clone(),
            bytes: codec::absent(entity),
            ttl: Some(ttl),
        };
        let write = CacheWrite::fill(key.world().clone(), 0, lease, vec![put]);
        if let Ok(outcome) = self.cache_call(self.store.write(&write)).await
            && outcome.skipped > 0
        {
            self.metrics.record(MetricEvent::FillRejected(key.kind()));
        }
    }

    /// Waits, polling with a growing pause, for another process's fill of
    /// `key` to land, for at most `lease_wait`.
    async fn await_fill(&self, key: &CacheKey) -> Option<Landed> {
        let deadline = Instant::now() + self.config.lease_wait;
        let mut pause = std::time::Duration::from_millis(1);
        while Instant::now() + pause <= deadline {
            tokio::time::sleep(pause).await;
            pause *= 2;
            let asked = ticket();
            let Ok(Some(bytes)) = self.cache_read(self.store.get(key)).await else {
                continue;
            };
            if let Some(result) = self.usable(key, &bytes) {
                return Some(Landed {
                    current_from: asked,
                    result,
                });
            }
        }
        None
    }

    /// What a miss may take from an entry read after it began: a fresh
    /// value (with every field if nothing was redacted) or a negative
    /// entry's answer. Tombstones, entries past their TTL (what a fill
    /// replaces) and entries behind a queued write-behind update are not.
    pub(super) fn usable(&self, key: &CacheKey, bytes: &[u8]) -> Option<Result<Loaded, Error>> {
        match codec::decode_fresh(bytes) {
            Ok((Slot::Value(entry), freshness)) => {
                if freshness.is_some_and(|f| self.now_ms() >= f.fresh_until_ms)
                    || self.pending_newer(key, entry.version)
                {
                    return None;
                }
                let full = (entry.redaction == Redaction::Complete).then(|| entry.value.clone());
                Some(Ok(Loaded {
                    version: entry.version,
                    cacheable: entry.value,
                    full,
                    outcome: Outcome::Hit,
                }))
            }
            Ok((Slot::Absent { entity }, _)) if !self.pending_newer(key, 0) => {
                Some(Err(absent(key, entity)))
            }
            _ => None,
        }
    }

    /// Serves a read from the source and leaves the cache as it is: it
    /// failed, or holds an entry that this read could not use but that is
    /// not known to be wrong (redacted, or older than a queued write-behind
    /// update that will replace it).
    async fn serve_from_source(
        &self,
        key: &CacheKey,
        fields: Fields,
        outcome: Outcome,
    ) -> Result<Read<CachedValue>, Error> {
        let limit = self.config.policy.timeline_top_k;
        let read = self.source_read(key, limit).await?;
        let value = match fields {
            Fields::Cacheable => self.config.policy.privacy.redact(key.kind(), &read.value).0,
            Fields::All => read.value,
        };
        Ok(Read {
            value,
            version: read.version,
            outcome,
        })
    }

    /// Stores a value read from the source at `version`, if `lease` still
    /// holds the key; answers whether it landed. Failures are counted and
    /// swallowed.
    async fn fill(
        &self,
        key: &CacheKey,
        version: u64,
        lease: Lease,
        value: &CachedValue,
        redaction: Redaction,
    ) -> bool {
        let write = CacheWrite::fill(
            key.world().clone(),
            version,
            lease,
            vec![self.put(key, version, value.clone(), redaction)],
        );
        match self.cache_call(self.store.write(&write)).await {
            Ok(outcome) => {
                if outcome.skipped > 0 {
                    self.metrics.record(MetricEvent::FillRejected(key.kind()));
                }
                outcome.landed > 0
            }
            Err(_) => false,
        }
    }

    /// Whether a write-behind update newer than `version` is queued for
    /// `key`: the cached entry is then known to be behind.
    pub(super) fn pending_newer(&self, key: &CacheKey, version: u64) -> bool {
        // Empty unless write-behind updates wait: no lock is taken and no
        // key hashed then. A key is marked before its write is acknowledged.
        if self.pending_keys.load(std::sync::atomic::Ordering::SeqCst) == 0 {
            return false;
        }
        lock(&self.pending).get(key).is_some_and(|&v| v > version)
    }
}

/// The answer of a negative entry: the source's refusal, as it said it.
pub(super) fn absent(key: &CacheKey, entity: String) -> Error {
    Error::Source(SourceError::Rejected(WorldError::UnknownEntity {
        world: key.world().clone(),
        entity,
    }))
}
