//! The near cache's side of the manager: shared reads that a near hit
//! answers without a copy, the rules by which a near entry may answer a
//! read or be kept, and a write's forgetting of its keys before its
//! acknowledgement (`crate::near` holds the tier itself).

use lwcache_domain::{CacheKey, CachedValue, Redaction};

use super::memo::Decoded;
use super::{CacheManager, Fields, Inner, Read};
use crate::error::Error;
use crate::near::{Fill, NearCache, NearEntry, Ticket};
use crate::ports::{CacheStore, WorldRepository};

impl<S, R> CacheManager<S, R>
where
    S: CacheStore + 'static,
    R: WorldRepository + 'static,
{
    /// Reads any key as [`read`](Self::read) does, answering a shared value
    /// with no copy: a near hit hands out the near cache's own decoded
    /// value, and a store hit whose bytes the decode memo knows its value
    /// (`memo.rs`); the other answers are wrapped.
    pub async fn read_shared(
        &self,
        key: &CacheKey,
        fields: Fields,
    ) -> Result<Read<std::sync::Arc<CachedValue>>, Error> {
        self.read_traced(key, fields).await
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
        entry: &Decoded,
    ) {
        // The value is shared with the read's answer, not copied.
        if !near.coherent()
            || self.trouble.load(std::sync::atomic::Ordering::SeqCst) != 0
            || self.pending_newer(key, entry.version)
        {
            return;
        }
        let fill = Fill {
            value: std::sync::Arc::clone(&entry.value),
            version: entry.version,
            redaction: entry.redaction,
            fresh_until_ms: entry.freshness.map(|f| f.fresh_until_ms),
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
