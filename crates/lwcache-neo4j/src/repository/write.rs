//! Writes: one transaction per mutation whose first statement takes the
//! world node's write lock and bumps its version and whose last records what
//! the write owes the cache, retried as a whole when Neo4j reports a
//! transient error, within the call's timeout.

use std::future::Future;
use std::time::Duration;

use lwcache_core::ports::SourceError;
use lwcache_domain::{
    Change, Committed, Document, EntityKind, EntityRef, EntityWrite, FlagName, Mutation, Op,
    StateWrite, TimelineEvent, WorldError, WorldId,
};
use neo4rs::{Query, Row, Txn, query};

use super::read::{events_of, flags_of};
use super::{
    Fail, Neo4jRepository, WRITE_ATTEMPTS, corrupt, get, get_version, label, parse_kind, to_i64,
};
use crate::cypher;
use crate::json;

impl Neo4jRepository {
    /// Runs one write with retries on transient errors, bounded in total
    /// by `limit`.
    pub(super) async fn write<T, Fut>(
        &self,
        limit: Duration,
        attempt: impl Fn() -> Fut,
    ) -> Result<T, SourceError>
    where
        Fut: Future<Output = Result<T, Fail>>,
    {
        let run = async {
            let mut tries = 0;
            loop {
                tries += 1;
                match attempt().await {
                    Err(Fail::Driver(e)) if e.is_transient() && tries < WRITE_ATTEMPTS => {
                        tracing::debug!(error = %e, tries, "retrying a transient Neo4j failure");
                        tokio::time::sleep(backoff(tries)).await;
                    }
                    other => return other,
                }
            }
        };
        match tokio::time::timeout(limit, run).await {
            Ok(Ok(v)) => Ok(v),
            Ok(Err(Fail::Domain(e))) => Err(SourceError::Rejected(e)),
            Ok(Err(Fail::Driver(e))) => Err(e.into()),
            Err(_) => Err(SourceError::Timeout(limit)),
        }
    }

    /// Runs `body` in a transaction: committed if it succeeds, rolled back
    /// otherwise.
    pub(super) async fn in_txn<T>(
        &self,
        body: impl AsyncFnOnce(&Self, &mut Txn) -> Result<T, Fail>,
    ) -> Result<T, Fail> {
        let mut txn = self
            .graph
            .start_txn()
            .await
            .map_err(|e| Fail::Driver(self.driver_error(e)))?;
        match body(self, &mut txn).await {
            Ok(value) => {
                txn.commit()
                    .await
                    .map_err(|e| Fail::Driver(self.driver_error(e)))?;
                Ok(value)
            }
            Err(e) => {
                // The statement that failed may already have ended the
                // transaction on the server; the rollback's own error adds
                // nothing.
                let _ = txn.rollback().await;
                Err(e)
            }
        }
    }

    pub(super) async fn tx_rows(&self, txn: &mut Txn, q: Query) -> Result<Vec<Row>, Fail> {
        let drv = |e| Fail::Driver(self.driver_error(e));
        let mut stream = txn.execute(q).await.map_err(drv)?;
        let mut rows = Vec::new();
        while let Some(row) = stream.next(txn.handle()).await.map_err(drv)? {
            rows.push(row);
        }
        Ok(rows)
    }

    pub(super) async fn apply_once(&self, mutation: &Mutation) -> Result<Committed, Fail> {
        self.in_txn(async |repo, txn| repo.apply_in(txn, mutation).await)
            .await
    }

    async fn apply_in(&self, txn: &mut Txn, mutation: &Mutation) -> Result<Committed, Fail> {
        let world = &mutation.world;
        let w = world.as_str();
        // What the write owes the cache, recorded by its first statement.
        let owed: Vec<String> = mutation
            .op
            .stale_keys(world)
            .iter()
            .map(ToString::to_string)
            .collect();
        let committed = |version: u64, change: Change| Committed {
            world: world.clone(),
            version,
            change,
        };
        if let Op::ReplaceSnapshot(snapshot) = &mutation.op {
            let rows = self
                .tx_rows(
                    txn,
                    query(cypher::REPLACE_SNAPSHOT)
                        .param("w", w)
                        .param("snapshot", json::encode(snapshot))
                        .param("keys", owed),
                )
                .await?;
            let row = rows
                .first()
                .ok_or_else(|| corrupt("MERGE returned no row"))?;
            let version = get_version(row)?;
            let created: bool = get(row, "created")?;
            return Ok(committed(
                version,
                Change::SnapshotReplaced {
                    snapshot: snapshot.clone(),
                    created_world: created,
                },
            ));
        }

        let rows = self
            .tx_rows(txn, query(cypher::BUMP).param("w", w).param("keys", owed))
            .await?;
        let version = match rows.first() {
            Some(row) => get_version(row)?,
            None => return Err(Fail::Domain(WorldError::UnknownWorld(world.clone()))),
        };
        let unknown = |entity: String| {
            Fail::Domain(WorldError::UnknownEntity {
                world: world.clone(),
                entity,
            })
        };
        let change = match &mutation.op {
            Op::ReplaceSnapshot(_) => unreachable!("handled above"),
            Op::SetFlag(name, value) => {
                let q = query(cypher::SET_FLAG)
                    .param("w", w)
                    .param("name", name.as_str())
                    .param("value", json::encode_value(value));
                self.flag_changed(txn, name, q).await?
            }
            Op::ClearFlag(name) => {
                let q = query(cypher::CLEAR_FLAG)
                    .param("w", w)
                    .param("name", name.as_str());
                self.flag_changed(txn, name, q).await?
            }
            Op::CreateEntity(entity, state) => {
                self.write_entity(txn, world, StateWrite::Create, entity, state)
                    .await?
            }
            Op::UpdateEntity(entity, state) => {
                self.write_entity(txn, world, StateWrite::Update, entity, state)
                    .await?
            }
            Op::PutEntity(entity, state) => {
                self.write_entity(txn, world, StateWrite::Put, entity, state)
                    .await?
            }
            Op::DeleteEntity(entity) => {
                match self.kind_of(txn, world, entity.id_str()).await? {
                    Some(kind) if kind == entity.kind() => {}
                    _ => return Err(unknown(entity.to_string())),
                }
                self.tx_rows(
                    txn,
                    query(cypher::DELETE_ENTITY)
                        .param("w", w)
                        .param("id", entity.id_str()),
                )
                .await?;
                Change::EntityDeleted {
                    entity: entity.clone(),
                }
            }
            Op::AddEvent(new) => {
                let rows = self
                    .tx_rows(
                        txn,
                        query(cypher::ADD_EVENT)
                            .param("w", w)
                            .param("id", new.entity.as_str())
                            .param("seq", to_i64(version)?)
                            .param("kind", new.kind.as_str())
                            .param("at_ms", new.at_ms)
                            .param("data", json::encode(&new.data))
                            // More than Neo4j's integers hold is as good as no limit.
                            .param("k", i64::try_from(new.top_k).unwrap_or(i64::MAX)),
                    )
                    .await?;
                let Some(row) = rows.first() else {
                    return Err(unknown(format!("entity {}", new.entity)));
                };
                Change::EventAdded {
                    event: TimelineEvent {
                        seq: version,
                        entity: new.entity.clone(),
                        kind: new.kind.clone(),
                        at_ms: new.at_ms,
                        data: new.data.clone(),
                    },
                    recent: events_of(&new.entity, get(row, "events")?)?,
                }
            }
        };
        Ok(committed(version, change))
    }

    /// Runs a statement that sets or clears a flag and returns the world's
    /// flags after it.
    async fn flag_changed(&self, txn: &mut Txn, name: &FlagName, q: Query) -> Result<Change, Fail> {
        let rows = self.tx_rows(txn, q).await?;
        Ok(Change::FlagChanged {
            name: name.clone(),
            flags: flags_of(rows.first())?,
        })
    }

    /// Creates or replaces an entity as the domain's rule on the id's
    /// current holder decides.
    async fn write_entity(
        &self,
        txn: &mut Txn,
        world: &WorldId,
        how: StateWrite,
        entity: &EntityRef,
        state: &Document,
    ) -> Result<Change, Fail> {
        let existing = self.kind_of(txn, world, entity.id_str()).await?;
        let write = how.resolve(world, entity, existing)?;
        match write {
            EntityWrite::Insert => self.create_entity(txn, world, entity, state).await?,
            EntityWrite::Replace => self.update_entity(txn, world, entity, state).await?,
        }
        Ok(write.change(entity.clone(), state.clone()))
    }

    /// The kind of the entity holding `id` in the world, if any.
    async fn kind_of(
        &self,
        txn: &mut Txn,
        world: &WorldId,
        id: &str,
    ) -> Result<Option<EntityKind>, Fail> {
        let rows = self
            .tx_rows(
                txn,
                query(cypher::ENTITY_KIND)
                    .param("w", world.as_str())
                    .param("id", id),
            )
            .await?;
        match rows.first() {
            None => Ok(None),
            Some(row) => Ok(Some(parse_kind(&get::<String>(row, "kind")?)?)),
        }
    }

    async fn create_entity(
        &self,
        txn: &mut Txn,
        world: &WorldId,
        entity: &EntityRef,
        state: &Document,
    ) -> Result<(), Fail> {
        let statement = cypher::CREATE_ENTITY.replace("{label}", label(entity.kind()));
        self.tx_rows(
            txn,
            query(&statement)
                .param("w", world.as_str())
                .param("id", entity.id_str())
                .param("kind", entity.kind().as_str())
                .param("state", json::encode(state)),
        )
        .await
        .map(|_| ())
    }

    async fn update_entity(
        &self,
        txn: &mut Txn,
        world: &WorldId,
        entity: &EntityRef,
        state: &Document,
    ) -> Result<(), Fail> {
        self.tx_rows(
            txn,
            query(cypher::UPDATE_ENTITY)
                .param("w", world.as_str())
                .param("id", entity.id_str())
                .param("state", json::encode(state)),
        )
        .await
        .map(|_| ())
    }
}

/// Exponential backoff from 5 ms, capped at 200 ms, with jitter so that
/// writers that collided do not collide again.
fn backoff(tries: u32) -> Duration {
    let base = (5u64 << tries.min(6)).min(200);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| u64::from(d.subsec_nanos()));
    Duration::from_millis(base / 2 + nanos % (base / 2 + 1))
}
