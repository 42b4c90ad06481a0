//! The near cache's side of the manager: shared reads that a near hit
//! answers without a copy, the rules by which a near entry may answer a
//! read or be kept, and a write's forgetting of its keys before its
//! acknowledgement (`crate::near` holds the tier itself).

use lwcache_domain::{CacheKey, CachedValue, KeyKind, Redaction};

use super::{CacheManager, Fields, Inner, Outcome, Read};
use crate::codec::{Entry, Freshness};
use crate::error::Error;
use crate::metrics::MetricEvent;
use crate::near::{Fill, NearCache, NearEntry, Ticket};
use crate::ports::{CacheStore, WorldRepository};

impl<S, R> CacheManager<S, R>
where
    S: CacheStore + 'static,
    R: WorldRepository + 'static,
{
    /// Reads any key as [`read`](Self::read) does, answering a shared value:
    /// a near-cache hit hands out the near cache's own decoded value, with
    /// no copy (the other tiers wrap their answer).
    pub async fn read_shared(
        &self,
        key: &CacheKey,
        fields: Fields,
    ) -> Result<Read<std::sync::Arc<CachedValue>>, Error> {
        let inner = &self.inner;
        if let Some(near) = &inner.near
            && key.kind() != KeyKind::Version
            && inner.trouble.load(std::sync::atomic::Ordering::SeqCst) == 0
            && let Some(entry) = inner.near_entry(near, key, fields)
        {
            inner.metrics.record(MetricEvent::NearHit(key.kind()));
            return Ok(Read {
                value: std::sync::Arc::clone(&entry.value),
                version: entry.version,
                outcome: Outcome::NearHit,
            });
        }
        let read = self.read(key, fields).await?;
        Ok(Read {
            value: std::sync::Arc::new(read.value),
            version: read.version,
            outcome: read.outcome,
        })
    }
}

impl<S, R> Inner<S, R>
where
    S: CacheStore + 'static,
    R: WorldRepository + 'static,
{
    /// The near cache's entry of `key`, if it may answer this read: with
    /// every field asked for, and not behind a queued write-behind update.
    pub(super) fn near_entry(
        &self,
        near: &NearCache,
        key: &CacheKey,
        fields: Fields,
    ) -> Option<std::sync::Arc<NearEntry>> {
        let entry = near.get(key, self.now_ms())?;
        if fields == Fields::All && entry.redaction == Redaction::Redacted {
            return None;
        }
        if self.pending_newer(key, entry.version) {
            return None;
        }
        Some(entry)
    }

    /// Keeps an entry just read from the store near, under the ticket taken
    /// before the store was asked (`near.rs`): not while the cache is in
    /// trouble, nor behind a queued write-behind update.
    pub(super) fn near_admit(
        &self,
        near: &NearCache,
        key: &CacheKey,
        ticket: Ticket,
        entry: &Entry,
        freshness: Option<Freshness>,
    ) {
        // Checked before the value is copied: a fill the near cache would
        // refuse costs nothing.
        if !near.coherent()
            || self.trouble.load(std::sync::atomic::Ordering::SeqCst) != 0
            || self.pending_newer(key, entry.version)
        {
            return;
        }
        let fill = Fill {
            value: std::sync::Arc::new(entry.value.clone()),
            version: entry.version,
            redaction: entry.redaction,
            fresh_until_ms: freshness.map(|f| f.fresh_until_ms),
        };
        near.admit(key, ticket, fill, self.now_ms());
    }

    /// Drops this process's near copies of keys a write has just changed,
    /// before the write is acknowledged, and refuses every near fill of
    /// them that began before.
    pub(super) fn near_forget<'a>(
        &self,
        keys: impl IntoIterator<Item = &'a CacheKey>,
        version: u64,
    ) {
        if let Some(near) = &self.near {
            for key in keys {
                near.drop_key(key, version);
            }
        }
    }
}
