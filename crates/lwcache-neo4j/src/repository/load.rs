//! The schema step and bulk loads: a whole seed in one transaction, its
//! entities and events sent in `UNWIND` batches, leaving exactly the world
//! that applying the seed's mutations one by one would. A load records no
//! outbox entry: it bypasses the cache, so it owes the cache nothing.

use std::collections::BTreeMap;

use lwcache_domain::{EntityKind, WorldError, WorldId, WorldSeed};
use neo4rs::{BoltType, Txn, query};

use super::{Fail, Neo4jRepository, WRITE_ATTEMPTS, label, row, to_i64};
use crate::cypher;
use crate::error::Neo4jError;
use crate::json;

/// How many rows one statement of a bulk load sends.
const LOAD_BATCH: usize = 2_000;

impl Neo4jRepository {
    /// Creates the constraints and indexes of the graph model if absent and
    /// waits until they are online. Safe to run any number of times, from
    /// any number of processes at once.
    pub async fn ensure_schema(&self) -> Result<(), Neo4jError> {
        let timeout = self.config.query_timeout() * 12;
        for statement in cypher::SCHEMA {
            let mut last = None;
            for _ in 0..WRITE_ATTEMPTS {
                match self.bounded(timeout, self.run(query(statement))).await {
                    Ok(()) => {
                        last = None;
                        break;
                    }
                    // Two processes creating the same rule at once: the
                    // loser sees it as existing, which is the goal.
                    Err(Neo4jError::Server { code, .. })
                        if code.contains("EquivalentSchemaRuleAlreadyExists")
                            || code.contains("AlreadyExists") =>
                    {
                        last = None;
                        break;
                    }
                    Err(e) if e.is_transient() => last = Some(e),
                    Err(e) => return Err(Neo4jError::Schema(Box::new(e))),
                }
            }
            if let Some(e) = last {
                return Err(Neo4jError::Schema(Box::new(e)));
            }
        }
        self.bounded(timeout, self.run(query(cypher::AWAIT_INDEXES)))
            .await
            .map_err(|e| Neo4jError::Schema(Box::new(e)))
    }

    pub(super) async fn load_once(&self, world: &WorldId, seed: &WorldSeed) -> Result<u64, Fail> {
        self.in_txn(async |repo, txn| repo.load_in(txn, world, seed).await)
            .await
    }

    async fn load_in(&self, txn: &mut Txn, world: &WorldId, seed: &WorldSeed) -> Result<u64, Fail> {
        let w = world.as_str();
        let final_version = seed.len() as u64;
        // Flags are set in order: the last value of a flag given twice wins.
        let mut flags: BTreeMap<&str, String> = BTreeMap::new();
        for (name, value) in &seed.flags {
            flags.insert(name.as_str(), json::encode_value(value));
        }
        let flag_rows: Vec<BoltType> = flags
            .into_iter()
            .map(|(name, value)| row([("name", name.into()), ("value", value.into())]))
            .collect();
        let created = self
            .tx_rows(
                txn,
                query(cypher::LOAD_WORLD)
                    .param("w", w)
                    .param("version", to_i64(final_version)?)
                    .param("snapshot", json::encode(&seed.snapshot))
                    .param("flags", flag_rows),
            )
            .await;
        match created {
            Err(Fail::Driver(Neo4jError::Server { code, .. }))
                if code.ends_with("ConstraintValidationFailed") =>
            {
                return Err(Fail::Domain(WorldError::WorldExists(world.clone())));
            }
            other => other?,
        };
        for kind in EntityKind::ALL {
            let statement = cypher::LOAD_ENTITIES.replace("{label}", label(kind));
            let rows: Vec<BoltType> = seed
                .entities
                .iter()
                .filter(|(e, _)| e.kind() == kind)
                .map(|(e, state)| {
                    row([
                        ("id", e.id_str().into()),
                        ("state", json::encode(state).into()),
                    ])
                })
                .collect();
            for batch in rows.chunks(LOAD_BATCH) {
                self.tx_rows(
                    txn,
                    query(&statement)
                        .param("w", w)
                        .param("kind", kind.as_str())
                        .param("rows", batch.to_vec()),
                )
                .await?;
            }
        }
        let first_seq = 1 + seed.flags.len() + seed.entities.len();
        let mut rows = Vec::with_capacity(LOAD_BATCH);
        for (i, event) in seed.events.iter().enumerate() {
            rows.push(row([
                ("id", event.entity.as_str().into()),
                ("seq", to_i64((first_seq + i + 1) as u64)?.into()),
                ("kind", event.kind.as_str().into()),
                ("at_ms", event.at_ms.into()),
                ("data", json::encode(&event.data).into()),
            ]));
            if rows.len() == LOAD_BATCH || i + 1 == seed.events.len() {
                self.tx_rows(
                    txn,
                    query(cypher::LOAD_EVENTS)
                        .param("w", w)
                        .param("rows", std::mem::take(&mut rows)),
                )
                .await?;
            }
        }
        Ok(final_version)
    }
}
