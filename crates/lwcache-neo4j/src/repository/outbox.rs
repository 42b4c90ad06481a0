//! The outbox: what each write owes the cache, recorded as an `Outbox` node
//! in the write's own transaction, claimed for replay oldest first, and
//! removed once carried out.
//!
//! Ages and claims are measured on the server's clock (`timestamp()`), so
//! processes whose clocks disagree still agree on which entries are old
//! enough and whose claims have lapsed.

use std::time::Duration;

use lwcache_core::ports::{Claim, SourceError};
use lwcache_domain::{CacheKey, Owed, OwedId, WorldId};
use neo4rs::{BoltType, Row, query};

use super::{Fail, Neo4jRepository, get, row, to_i64};
use crate::cypher;

/// The largest duration sent, in milliseconds (about 290,000 years), so
/// that `timestamp() + lease` cannot overflow Neo4j's integers.
const MAX_MS: i64 = i64::MAX / 1_000;

impl Neo4jRepository {
    /// One claim, in one transaction. Two owners claiming one entry at once
    /// may both get it (the second `SET` waits for the first's lock, then
    /// overwrites it): harmless, as replaying an entry is idempotent, and
    /// rare, as each process claims once a second.
    pub(super) async fn claim_once(&self, claim: &Claim) -> Result<Vec<Owed>, Fail> {
        let q = query(cypher::CLAIM_OWED)
            .param("owner", claim.owner.as_str())
            // World ids are never empty: "" stands for every world.
            .param("world", claim.world.as_ref().map_or("", |w| w.as_str()))
            .param("min_age_ms", millis(claim.min_age))
            .param("lease_ms", millis(claim.lease))
            .param("take_held", claim.take_held)
            .param("limit", i64::try_from(claim.limit).unwrap_or(i64::MAX));
        let rows = self
            .in_txn(async |repo, txn| repo.tx_rows(txn, q).await)
            .await?;
        Ok(rows.iter().filter_map(owed_of).collect())
    }

    /// One settle: every named entry removed by one statement in one
    /// transaction.
    pub(super) async fn settle_once(&self, rows: &[BoltType]) -> Result<(), Fail> {
        let q = query(cypher::SETTLE_OWED).param("done", rows.to_vec());
        self.in_txn(async |repo, txn| repo.tx_rows(txn, q).await.map(|_| ()))
            .await
    }
}

/// The `{w, v}` rows that [`cypher::SETTLE_OWED`] unwinds.
pub(super) fn settle_rows(done: &[OwedId]) -> Result<Vec<BoltType>, SourceError> {
    done.iter()
        .map(|id| {
            Ok(row([
                ("w", id.world.as_str().into()),
                ("v", to_i64(id.version)?.into()),
            ]))
        })
        .collect()
}

fn millis(d: Duration) -> i64 {
    i64::try_from(d.as_millis()).map_or(MAX_MS, |ms| ms.min(MAX_MS))
}

/// An entry as claimed. What lwcache did not write is skipped with a
/// warning rather than failing the claim: one bad entry must not stop the
/// replay of every other.
fn owed_of(row: &Row) -> Option<Owed> {
    let entry = || -> Result<(WorldId, u64, Vec<String>), String> {
        let w: String = get(row, "world_id").map_err(|e| e.to_string())?;
        let v: i64 = get(row, "version").map_err(|e| e.to_string())?;
        let keys: Vec<String> = get(row, "keys").map_err(|e| e.to_string())?;
        let world = WorldId::new(w).map_err(|e| e.to_string())?;
        let version = u64::try_from(v).map_err(|_| format!("negative version {v}"))?;
        Ok((world, version, keys))
    };
    let (world, version, texts) = match entry() {
        Ok(entry) => entry,
        Err(problem) => {
            tracing::warn!(%problem, "skipping an outbox entry lwcache did not write");
            return None;
        }
    };
    let keys = texts
        .iter()
        .filter_map(|text| match CacheKey::parse(text) {
            Ok(key) if key.world() == &world => Some(key),
            Ok(key) => {
                tracing::warn!(%world, version, %key, "skipping an outbox key of another world");
                None
            }
            Err(error) => {
                tracing::warn!(%world, version, %error, "skipping an unreadable outbox key");
                None
            }
        })
        .collect();
    Some(Owed {
        world,
        version,
        keys,
    })
}
