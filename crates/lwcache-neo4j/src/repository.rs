//! The world repository on Neo4j.

use std::collections::BTreeMap;
use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use lwcache_core::ports::{SourceError, WorldRepository};
use lwcache_domain::{
    CacheKey, CachedValue, Change, Committed, Document, EntityId, EntityKind, EntityRef, EventKind,
    FlagName, Flags, KeyTarget, Mutation, Op, TimelineEvent, Versioned, WorldError, WorldId,
    WorldImage, WorldSeed,
};
use neo4rs::{BoltType, Graph, Query, Row, Txn, query};
use serde::Deserialize;

use crate::config::Neo4jConfig;
use crate::cypher;
use crate::error::Neo4jError;
use crate::json;

/// How many rows one statement of a bulk load sends.
const LOAD_BATCH: usize = 2_000;

/// How often a write is tried when Neo4j reports a transient error (a
/// deadlock between writers of one world, a leader switch), within the
/// call's timeout. Neo4j's guidance for transient errors is to retry.
const WRITE_ATTEMPTS: u32 = 10;

/// The source of truth on Neo4j 5.
///
/// Every write is one transaction whose first statement takes the world
/// node's write lock and bumps its version, so writes to one world are
/// serialized and their versions are consecutive. Every read is one
/// statement that reads the version before the data. Every call is bounded
/// by the configured timeout.
#[derive(Clone)]
pub struct Neo4jRepository {
    graph: Graph,
    config: Neo4jConfig,
}

impl std::fmt::Debug for Neo4jRepository {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Neo4jRepository")
            .field("config", &self.config)
            .finish_non_exhaustive()
    }
}

impl Neo4jRepository {
    /// Connects, checks the credentials with one round trip, and runs the
    /// schema step (constraints and indexes, created only if absent).
    pub async fn connect(config: Neo4jConfig) -> Result<Self, Neo4jError> {
        config.validate()?;
        let mut builder = neo4rs::ConfigBuilder::default()
            .uri(config.uri())
            .user(config.user())
            .password(config.password())
            .max_connections(config.max_connections())
            .connection_timeout(config.connect_timeout());
        if let Some(db) = config.database() {
            builder = builder.db(db);
        }
        let driver_config = builder
            .build()
            .map_err(|e| Neo4jError::InvalidConfig(e.to_string()))?;
        let graph = Graph::connect(driver_config)
            .map_err(|e| Neo4jError::from_driver(e, config.uri(), config.user()))?;
        let repo = Self { graph, config };
        let connect_timeout = repo.config.connect_timeout();
        repo.bounded(connect_timeout, repo.ping_inner()).await?;
        repo.ensure_schema().await?;
        Ok(repo)
    }

    /// The configuration.
    pub fn config(&self) -> &Neo4jConfig {
        &self.config
    }

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
                    Err(e) => return Err(Neo4jError::Schema(e.to_string())),
                }
            }
            if let Some(e) = last {
                return Err(Neo4jError::Schema(e.to_string()));
            }
        }
        self.bounded(timeout, self.run(query(cypher::AWAIT_INDEXES)))
            .await
            .map_err(|e| Neo4jError::Schema(e.to_string()))
    }

    fn driver_error(&self, e: neo4rs::Error) -> Neo4jError {
        Neo4jError::from_driver(e, self.config.uri(), self.config.user())
    }

    async fn bounded<T>(
        &self,
        limit: Duration,
        call: impl Future<Output = Result<T, Neo4jError>>,
    ) -> Result<T, Neo4jError> {
        tokio::time::timeout(limit, call)
            .await
            .unwrap_or(Err(Neo4jError::Timeout(limit)))
    }

    async fn run(&self, q: Query) -> Result<(), Neo4jError> {
        self.graph
            .run(q)
            .await
            .map(|_| ())
            .map_err(|e| self.driver_error(e))
    }

    async fn rows(&self, q: Query) -> Result<Vec<Row>, Neo4jError> {
        let mut stream = self
            .graph
            .execute(q)
            .await
            .map_err(|e| self.driver_error(e))?;
        let mut rows = Vec::new();
        while let Some(row) = stream.next().await.map_err(|e| self.driver_error(e))? {
            rows.push(row);
        }
        Ok(rows)
    }

    async fn ping_inner(&self) -> Result<(), Neo4jError> {
        self.rows(query(cypher::PING)).await.map(|_| ())
    }

    /// Runs one write with retries on transient errors, bounded in total
    /// by `limit`.
    async fn write<T, Fut>(
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
    async fn in_txn<T>(
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

    async fn tx_rows(&self, txn: &mut Txn, q: Query) -> Result<Vec<Row>, Fail> {
        let drv = |e| Fail::Driver(self.driver_error(e));
        let mut stream = txn.execute(q).await.map_err(drv)?;
        let mut rows = Vec::new();
        while let Some(row) = stream.next(txn.handle()).await.map_err(drv)? {
            rows.push(row);
        }
        Ok(rows)
    }

    async fn apply_once(&self, mutation: &Mutation) -> Result<Committed, Fail> {
        self.in_txn(async |repo, txn| repo.apply_in(txn, mutation).await)
            .await
    }

    async fn apply_in(&self, txn: &mut Txn, mutation: &Mutation) -> Result<Committed, Fail> {
        let world = &mutation.world;
        let w = world.as_str();
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
                        .param("snapshot", json::encode(snapshot)),
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

        let rows = self.tx_rows(txn, query(cypher::BUMP).param("w", w)).await?;
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
                let rows = self
                    .tx_rows(
                        txn,
                        query(cypher::SET_FLAG)
                            .param("w", w)
                            .param("name", name.as_str())
                            .param("value", json::encode_value(value)),
                    )
                    .await?;
                Change::FlagChanged {
                    name: name.clone(),
                    flags: flags_of(rows.first())?,
                }
            }
            Op::ClearFlag(name) => {
                let rows = self
                    .tx_rows(
                        txn,
                        query(cypher::CLEAR_FLAG)
                            .param("w", w)
                            .param("name", name.as_str()),
                    )
                    .await?;
                Change::FlagChanged {
                    name: name.clone(),
                    flags: flags_of(rows.first())?,
                }
            }
            Op::CreateEntity(entity, state) => {
                if let Some(existing) = self.kind_of(txn, world, entity.id_str()).await? {
                    return Err(Fail::Domain(WorldError::EntityExists {
                        world: world.clone(),
                        id: entity.entity_id(),
                        existing,
                    }));
                }
                self.create_entity(txn, world, entity, state).await?;
                Change::EntityCreated {
                    entity: entity.clone(),
                    state: state.clone(),
                }
            }
            Op::UpdateEntity(entity, state) => {
                match self.kind_of(txn, world, entity.id_str()).await? {
                    Some(kind) if kind == entity.kind() => {
                        self.update_entity(txn, world, entity, state).await?;
                    }
                    _ => return Err(unknown(entity.to_string())),
                }
                Change::EntityUpdated {
                    entity: entity.clone(),
                    state: state.clone(),
                }
            }
            Op::PutEntity(entity, state) => {
                match self.kind_of(txn, world, entity.id_str()).await? {
                    Some(kind) if kind == entity.kind() => {
                        self.update_entity(txn, world, entity, state).await?;
                        Change::EntityUpdated {
                            entity: entity.clone(),
                            state: state.clone(),
                        }
                    }
                    Some(existing) => {
                        return Err(Fail::Domain(WorldError::EntityExists {
                            world: world.clone(),
                            id: entity.entity_id(),
                            existing,
                        }));
                    }
                    None => {
                        self.create_entity(txn, world, entity, state).await?;
                        Change::EntityCreated {
                            entity: entity.clone(),
                            state: state.clone(),
                        }
                    }
                }
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
                if self
                    .kind_of(txn, world, new.entity.as_str())
                    .await?
                    .is_none()
                {
                    return Err(unknown(format!("entity {}", new.entity)));
                }
                self.tx_rows(
                    txn,
                    query(cypher::ADD_EVENT)
                        .param("w", w)
                        .param("id", new.entity.as_str())
                        .param("seq", to_i64(version)?)
                        .param("kind", new.kind.as_str())
                        .param("at_ms", new.at_ms)
                        .param("data", json::encode(&new.data)),
                )
                .await?;
                Change::EventAdded {
                    event: TimelineEvent {
                        seq: version,
                        entity: new.entity.clone(),
                        kind: new.kind.clone(),
                        at_ms: new.at_ms,
                        data: new.data.clone(),
                    },
                }
            }
        };
        Ok(committed(version, change))
    }

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

    async fn read_rows(&self, q: Query) -> Result<Vec<Row>, SourceError> {
        let limit = self.config.query_timeout();
        Ok(self.bounded(limit, self.rows(q)).await?)
    }

    async fn load_once(&self, world: &WorldId, seed: &WorldSeed) -> Result<u64, Fail> {
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

#[async_trait]
impl WorldRepository for Neo4jRepository {
    async fn version(&self, world: &WorldId) -> Result<u64, SourceError> {
        let rows = self
            .read_rows(query(cypher::VERSION).param("w", world.as_str()))
            .await?;
        match rows.first() {
            Some(row) => Ok(get_version(row)?),
            None => Err(WorldError::UnknownWorld(world.clone()).into()),
        }
    }

    async fn read(
        &self,
        key: &CacheKey,
        limit: usize,
    ) -> Result<Versioned<CachedValue>, SourceError> {
        let world = key.world();
        let w = world.as_str();
        let q = match key.target() {
            KeyTarget::State => query(cypher::READ_SNAPSHOT).param("w", w),
            KeyTarget::Flags => query(cypher::READ_FLAGS).param("w", w),
            KeyTarget::Entity(e) => query(cypher::READ_ENTITY)
                .param("w", w)
                .param("id", e.id_str()),
            KeyTarget::Timeline(e) => query(cypher::RECENT)
                .param("w", w)
                .param("id", e.as_str())
                .param("k", i64::try_from(limit).unwrap_or(i64::MAX)),
            KeyTarget::Version => {
                return Err(SourceError::Invalid(format!("{key} is not a readable key")));
            }
        };
        let rows = self.read_rows(q).await?;
        let Some(row) = rows.first() else {
            return Err(WorldError::UnknownWorld(world.clone()).into());
        };
        let version = get_version(row)?;
        let value = match key.target() {
            KeyTarget::State => {
                CachedValue::Snapshot(json::decode(&get::<String>(row, "snapshot")?)?)
            }
            KeyTarget::Flags => CachedValue::Flags(flags_of(Some(row))?),
            KeyTarget::Entity(e) => {
                let kind: Option<String> = get(row, "kind")?;
                match kind.as_deref().map(parse_kind).transpose()? {
                    Some(kind) if kind == e.kind() => {
                        CachedValue::Entity(json::decode(&get::<String>(row, "state")?)?)
                    }
                    _ => {
                        return Err(WorldError::UnknownEntity {
                            world: world.clone(),
                            entity: e.to_string(),
                        }
                        .into());
                    }
                }
            }
            KeyTarget::Timeline(e) => {
                if !get::<bool>(row, "found")? {
                    return Err(WorldError::UnknownEntity {
                        world: world.clone(),
                        entity: format!("entity {e}"),
                    }
                    .into());
                }
                CachedValue::Timeline(events_of(e, get(row, "events")?)?)
            }
            KeyTarget::Version => unreachable!("refused above"),
        };
        Ok(Versioned::new(version, value))
    }

    async fn image(
        &self,
        world: &WorldId,
        top_k: usize,
    ) -> Result<Versioned<WorldImage>, SourceError> {
        let q = query(cypher::IMAGE)
            .param("w", world.as_str())
            .param("k", i64::try_from(top_k).unwrap_or(i64::MAX));
        // An image reads the whole world: give it the time of a load.
        let rows = self
            .bounded(self.config.query_timeout() * 10, self.rows(q))
            .await?;
        let Some(row) = rows.first() else {
            return Err(WorldError::UnknownWorld(world.clone()).into());
        };
        let version = get_version(row)?;
        let snapshot = json::decode(&get::<String>(row, "snapshot")?)?;
        let flags = flags_of(Some(row))?;
        let mut entities = BTreeMap::new();
        let mut recent = BTreeMap::new();
        for e in get::<Vec<EntityRow>>(row, "entities")? {
            let kind = parse_kind(&e.kind)?;
            let entity =
                EntityRef::parse(kind, &e.id).map_err(|err| corrupt_err(err.to_string()))?;
            let events = events_of(&entity.entity_id(), e.events)?;
            if !events.is_empty() {
                recent.insert(entity.entity_id(), events);
            }
            entities.insert(entity, json::decode(&e.state)?);
        }
        Ok(Versioned::new(
            version,
            WorldImage {
                snapshot,
                flags,
                entities,
                recent,
            },
        ))
    }

    async fn apply(&self, mutation: &Mutation) -> Result<Committed, SourceError> {
        mutation
            .op
            .check(&self.config.limits())
            .map_err(WorldError::from)?;
        self.write(self.config.query_timeout(), || self.apply_once(mutation))
            .await
    }

    async fn load(&self, world: &WorldId, seed: &WorldSeed) -> Result<u64, SourceError> {
        seed.validate(world)?;
        seed.check(&self.config.limits())
            .map_err(WorldError::from)?;
        self.write(self.config.query_timeout() * 10, || {
            self.load_once(world, seed)
        })
        .await
    }

    async fn ping(&self) -> Result<(), SourceError> {
        let limit = self.config.query_timeout();
        Ok(self.bounded(limit, self.ping_inner()).await?)
    }
}

/// A failure inside a transaction: the caller's fault, or the server's.
#[derive(Debug)]
enum Fail {
    Domain(WorldError),
    Driver(Neo4jError),
}

impl From<Neo4jError> for Fail {
    fn from(e: Neo4jError) -> Self {
        Fail::Driver(e)
    }
}

#[derive(Deserialize)]
struct EntityRow {
    id: String,
    kind: String,
    state: String,
    events: Vec<EventRow>,
}

#[derive(Deserialize)]
struct EventRow {
    seq: i64,
    kind: String,
    at_ms: i64,
    data: String,
}

fn row<const N: usize>(fields: [(&str, BoltType); N]) -> BoltType {
    let map: std::collections::HashMap<String, BoltType> =
        fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    map.into()
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

fn label(kind: EntityKind) -> &'static str {
    match kind {
        EntityKind::Character => "Character",
        EntityKind::Location => "Location",
        EntityKind::Object => "Object",
    }
}

fn parse_kind(text: &str) -> Result<EntityKind, Neo4jError> {
    EntityKind::ALL
        .into_iter()
        .find(|k| k.as_str() == text)
        .ok_or_else(|| corrupt_err(format!("unknown entity kind {text:?}")))
}

fn get<'a, T: Deserialize<'a>>(row: &'a Row, field: &str) -> Result<T, Neo4jError> {
    row.get(field)
        .map_err(|e| corrupt_err(format!("field {field}: {e}")))
}

fn get_version(row: &Row) -> Result<u64, Neo4jError> {
    let v: i64 = get(row, "version")?;
    u64::try_from(v).map_err(|_| corrupt_err(format!("negative version {v}")))
}

fn to_i64(v: u64) -> Result<i64, Neo4jError> {
    i64::try_from(v).map_err(|_| corrupt_err(format!("version {v} exceeds Neo4j's integers")))
}

fn flags_of(row: Option<&Row>) -> Result<Flags, Neo4jError> {
    let row = row.ok_or_else(|| corrupt_err("no row for the flags".to_owned()))?;
    let pairs: Vec<(String, String)> = get(row, "flags")?;
    pairs
        .into_iter()
        .map(|(name, value)| {
            let name = FlagName::new(name).map_err(|e| corrupt_err(e.to_string()))?;
            Ok((name, json::decode_value(&value)?))
        })
        .collect()
}

fn events_of(entity: &EntityId, rows: Vec<EventRow>) -> Result<Vec<TimelineEvent>, Neo4jError> {
    rows.into_iter()
        .map(|r| {
            Ok(TimelineEvent {
                seq: u64::try_from(r.seq).map_err(|_| corrupt_err(format!("seq {}", r.seq)))?,
                entity: entity.clone(),
                kind: EventKind::new(r.kind).map_err(|e| corrupt_err(e.to_string()))?,
                at_ms: r.at_ms,
                data: json::decode(&r.data)?,
            })
        })
        .collect()
}

fn corrupt_err(problem: String) -> Neo4jError {
    Neo4jError::Corrupt(problem)
}

fn corrupt(problem: &str) -> Fail {
    Fail::Driver(corrupt_err(problem.to_owned()))
}
