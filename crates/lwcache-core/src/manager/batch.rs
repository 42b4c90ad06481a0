//! Batched reads: many keys of one world at once, as a player's turn needs
//! them. The hits come in one round trip to the store; the misses are
//! leased in one call, read from the source in one batched read and filled
//! in one versioned write; every item keeps its own outcome. The rules are
//! those of a single read (`read.rs`): a tombstone or an entry known to be
//! behind is a miss, a redacted entry cannot serve [`Fields::All`], and
//! while the cache is in trouble or failing the source serves everything.

use lwcache_domain::{CacheKey, CachedValue, KeyKind, Redaction, WorldId};
use tracing::Instrument;

use std::sync::Arc;

use super::memo::Decode;
use super::{CacheManager, Fields, Inner, Outcome, Read};
use crate::codec::Slot;
use crate::config::StaleReads;
use crate::error::Error;
use crate::metrics::MetricEvent;
use crate::near::Ticket;
use crate::ports::{CacheStore, CacheWrite, Lease, SourceError, WorldRepository};

/// What a batched read answers for one key: its read, or why that key
/// alone could not be served (an unknown entity, the source failing for a
/// key the cache could not serve). [`CacheManager::read_many_shared`]
/// answers shared values (`ItemRead<Arc<CachedValue>>`).
pub type ItemRead<T = CachedValue> = Result<Read<T>, Error>;

/// A batch's item as the manager holds it: a shared value.
type Shared = ItemRead<Arc<CachedValue>>;

/// What a batch may fill once the source answered: the version read and,
/// for each key whose lease the batch holds, its redacted value.
type Fills = (u64, Vec<(CacheKey, CachedValue, Redaction)>);

/// A key the cache could not serve, on its way to the source.
struct Pending {
    /// Its place in the answer.
    at: usize,
    /// Whether its fill may land: the read holds its lease.
    fill: bool,
    /// How the answer is marked.
    outcome: Outcome,
}

impl<S, R> CacheManager<S, R>
where
    S: CacheStore + 'static,
    R: WorldRepository + 'static,
{
    /// Reads many keys of one world at once, answering each in order. Hits
    /// cost one round trip to the cache store in all; misses one lease
    /// call, one batched source read and one fill. Timelines hold the
    /// policy's top-k. A key of another world or the version key fails the
    /// whole call, before anything is read.
    pub async fn read_many(
        &self,
        world: &WorldId,
        keys: &[CacheKey],
        fields: Fields,
    ) -> Result<Vec<ItemRead>, Error> {
        let items = self.read_many_shared(world, keys, fields).await?;
        Ok(items
            .into_iter()
            .map(|item| item.map(|read| read.map(Arc::unwrap_or_clone)))
            .collect())
    }

    /// [`read_many`](Self::read_many), answering shared values with no copy
    /// where a near hit or the decode memo has one, as
    /// [`read_shared`](Self::read_shared) does.
    pub async fn read_many_shared(
        &self,
        world: &WorldId,
        keys: &[CacheKey],
        fields: Fields,
    ) -> Result<Vec<ItemRead<Arc<CachedValue>>>, Error> {
        if let Some(key) = keys
            .iter()
            .find(|k| k.world() != world || k.kind() == KeyKind::Version)
        {
            return Err(Error::Unreadable(key.clone()));
        }
        let span = tracing::info_span!(
            "lwcache.read_many",
            world = %world,
            keys = keys.len(),
            hits = tracing::field::Empty,
        );
        let items = self
            .inner
            .read_many(world, keys, fields)
            .instrument(span.clone())
            .await;
        let hits = items
            .iter()
            .filter(|i| matches!(i, Ok(r) if matches!(r.outcome, Outcome::Hit | Outcome::NearHit)))
            .count();
        span.record("hits", hits);
        Ok(items)
    }
}

impl<S, R> Inner<S, R>
where
    S: CacheStore + 'static,
    R: WorldRepository + 'static,
{
    async fn read_many(&self, world: &WorldId, keys: &[CacheKey], fields: Fields) -> Vec<Shared> {
        keys.iter().for_each(|key| self.note_read(key));
        let mut items: Vec<Option<Shared>> = vec![None; keys.len()];
        let mut pending = Vec::new();
        let trouble = self.trouble.load(std::sync::atomic::Ordering::SeqCst) != 0;
        // The near cache answers what it can; the rest is asked of the
        // store, each with the ticket its near fill needs.
        let mut tickets: Vec<Option<Ticket>> = vec![None; keys.len()];
        let mut rest: Vec<usize> = Vec::with_capacity(keys.len());
        for (at, key) in keys.iter().enumerate() {
            match &self.near {
                Some(near) if !trouble => {
                    if let Some(entry) = self.near_entry(near, key, fields) {
                        self.metrics.record(MetricEvent::NearHit(key.kind()));
                        items[at] = Some(Ok(Read {
                            value: Arc::clone(&entry.value),
                            version: entry.version,
                            outcome: Outcome::NearHit,
                        }));
                        continue;
                    }
                    tickets[at] = Some(near.ticket(key));
                }
                _ => {}
            }
            rest.push(at);
        }
        if rest.is_empty() {
            return items.into_iter().flatten().collect();
        }
        let asked: Vec<CacheKey> = rest.iter().map(|&at| keys[at].clone()).collect();
        let cached = if trouble {
            None
        } else {
            self.cache_read(self.store.get_many(world, &asked))
                .await
                .ok()
        };
        let Some(cached) = cached else {
            // In trouble, or the store failed: the source answers the rest.
            for &at in &rest {
                let key = &keys[at];
                self.metrics.record(MetricEvent::Fallback(key.kind()));
                pending.push(Pending {
                    at,
                    fill: false,
                    outcome: Outcome::Fallback,
                });
            }
            self.read_pending(world, keys, fields, pending, &mut items)
                .await;
            return items.into_iter().flatten().collect();
        };
        let mut misses = Vec::new();
        let mut singles = Vec::new();
        for (&at, bytes) in rest.iter().zip(cached) {
            let key = &keys[at];
            match self.classify(key, bytes, fields, tickets[at]) {
                Classified::Serve(read) => items[at] = Some(Ok(read)),
                Classified::Fail(e) => items[at] = Some(Err(e)),
                Classified::Single => singles.push(at),
                Classified::Miss => misses.push(at),
                Classified::Source => pending.push(Pending {
                    at,
                    fill: false,
                    outcome: Outcome::Miss,
                }),
            }
        }
        if !misses.is_empty() {
            let lease = self.next_lease();
            let miss_keys: Vec<CacheKey> = misses.iter().map(|&at| keys[at].clone()).collect();
            let held = self
                .cache_call(
                    self.store
                        .lease(world, &miss_keys, lease, self.config.lease_ttl),
                )
                .await
                .ok()
                .filter(|held| held.len() == miss_keys.len());
            for (i, &at) in misses.iter().enumerate() {
                self.metrics.record(MetricEvent::Miss(keys[at].kind()));
                pending.push(Pending {
                    at,
                    fill: held.as_ref().is_some_and(|h| h[i]),
                    outcome: Outcome::Miss,
                });
            }
            if !pending.is_empty() {
                let filled = self
                    .read_pending(world, keys, fields, pending, &mut items)
                    .await;
                self.fill_many(world, lease, filled).await;
            }
        } else if !pending.is_empty() {
            self.read_pending(world, keys, fields, pending, &mut items)
                .await;
        }
        for at in singles {
            items[at] = Some(self.read(&keys[at], fields).await);
        }
        items
            .into_iter()
            .map(|item| {
                item.unwrap_or_else(|| {
                    Err(Error::Source(SourceError::Other(
                        "the batched read left an item unanswered".into(),
                    )))
                })
            })
            .collect()
    }

    /// What a cached entry of a batch does: serve, miss (fill it), go to
    /// the source without filling (it is not known to be wrong), or take
    /// the single read's path (an entry past its TTL, which may become a
    /// fail-safe answer).
    fn classify(
        &self,
        key: &CacheKey,
        bytes: Option<Vec<u8>>,
        fields: Fields,
        ticket: Option<Ticket>,
    ) -> Classified {
        let kind = key.kind();
        let Some(bytes) = bytes else {
            return Classified::Miss;
        };
        let entry = match self.decode(key, &bytes) {
            Ok(Decode::Value(entry)) => entry,
            Ok(Decode::Other(Slot::Absent { entity })) => {
                // A write-behind create still queued makes it wrong already.
                if self.pending_newer(key, 0) {
                    return Classified::Miss;
                }
                self.metrics.record(MetricEvent::NegativeHit(kind));
                return Classified::Fail(super::read::absent(key, entity));
            }
            Ok(Decode::Other(_)) => return Classified::Miss,
            Err(e) => {
                // Left for the fill to replace: a put of the source's value
                // at its version overwrites what cannot be decoded.
                tracing::warn!(key = %key, error = %e, "cache entry failed to decode; treating it as a miss");
                self.metrics.record(MetricEvent::Invalidation(
                    kind,
                    lwcache_domain::InvalidationCause::DecodeFailure,
                ));
                return Classified::Miss;
            }
        };
        if fields == Fields::All && entry.redaction == Redaction::Redacted {
            self.metrics.record(MetricEvent::Miss(kind));
            return Classified::Source;
        }
        if self.pending_newer(key, entry.version) {
            if self.config.stale_reads == StaleReads::WhileQueued {
                self.metrics.record(MetricEvent::Stale(kind));
                return Classified::Serve(Read {
                    value: Arc::clone(&entry.value),
                    version: entry.version,
                    outcome: Outcome::Stale,
                });
            }
            self.metrics.record(MetricEvent::Miss(kind));
            return Classified::Source;
        }
        if entry
            .freshness
            .is_some_and(|f| self.now_ms() >= f.fresh_until_ms)
        {
            return Classified::Single;
        }
        self.metrics.record(MetricEvent::Hit(kind));
        if let (Some(near), Some(ticket)) = (&self.near, ticket) {
            self.near_admit(near, key, ticket, &entry);
        }
        Classified::Serve(Read {
            value: Arc::clone(&entry.value),
            version: entry.version,
            outcome: Outcome::Hit,
        })
    }

    /// Reads the pending keys from the source in one batched read and
    /// answers their items; returns what may be filled, at the version
    /// read: `(key, value, redaction)` of each key whose lease is held.
    async fn read_pending(
        &self,
        world: &WorldId,
        keys: &[CacheKey],
        fields: Fields,
        pending: Vec<Pending>,
        items: &mut [Option<Shared>],
    ) -> Option<Fills> {
        let wanted: Vec<CacheKey> = pending.iter().map(|p| keys[p.at].clone()).collect();
        let top_k = self.config.policy.timeline_top_k;
        let read = self
            .source_call(self.repo.read_many(world, &wanted, top_k))
            .await;
        let read = match read.and_then(|r| {
            if r.value.len() == wanted.len() {
                Ok(r)
            } else {
                Err(SourceError::Other(
                    "the source answered a batched read with another number of items".into(),
                ))
            }
        }) {
            Ok(read) => read,
            Err(e) => {
                for p in &pending {
                    items[p.at] = Some(Err(Error::Source(e.clone())));
                }
                return None;
            }
        };
        let version = read.version;
        let mut fills = Vec::new();
        for (p, value) in pending.into_iter().zip(read.value) {
            let value = match value {
                Ok(value) => value,
                Err(rejected) => {
                    items[p.at] = Some(Err(Error::Source(SourceError::Rejected(rejected))));
                    continue;
                }
            };
            let (redacted, redaction) =
                self.config.policy.privacy.redact(keys[p.at].kind(), &value);
            if p.fill {
                fills.push((keys[p.at].clone(), redacted.clone(), redaction));
            }
            let value = match fields {
                Fields::Cacheable => redacted,
                Fields::All => value,
            };
            items[p.at] = Some(Ok(Read {
                value: Arc::new(value),
                version,
                outcome: p.outcome,
            }));
        }
        Some((version, fills))
    }

    /// Fills a batch's misses in one versioned write under its lease.
    async fn fill_many(&self, world: &WorldId, lease: Lease, filled: Option<Fills>) {
        let Some((version, fills)) = filled.filter(|(_, f)| !f.is_empty()) else {
            return;
        };
        let kind = fills[0].0.kind();
        let puts = fills
            .into_iter()
            .map(|(key, value, redaction)| self.put(&key, version, value, redaction))
            .collect();
        let write = CacheWrite::fill(world.clone(), version, lease, puts);
        if let Ok(outcome) = self.cache_call(self.store.write(&write)).await
            && outcome.skipped > 0
        {
            self.metrics.record(MetricEvent::FillRejected(kind));
        }
    }
}

/// What a batch does with one cached entry.
enum Classified {
    /// Served from the cache.
    Serve(Read<Arc<CachedValue>>),
    /// Answered from the cache with an error: a negative entry.
    Fail(Error),
    /// Read on its own, as a single read would.
    Single,
    /// A miss: leased, read from the source and filled.
    Miss,
    /// Read from the source without filling.
    Source,
}
