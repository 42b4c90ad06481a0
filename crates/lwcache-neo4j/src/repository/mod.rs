//! The world repository on Neo4j: the connection and the port.
//!
//! The port's methods are thin here; what they do is split by mechanism:
//! `read.rs` (reads that project the version first, and decoding rows),
//! `write.rs` (one transaction per mutation, retried on transient errors),
//! `load.rs` (the schema step and bulk loads in batches), `outbox.rs` (what
//! writes owe the cache: recorded, claimed, settled).

mod load;
mod outbox;
mod read;
mod write;

use std::future::Future;
use std::time::Duration;

use async_trait::async_trait;
use lwcache_core::ports::{Claim, SourceError, WorldRepository};
use lwcache_domain::{
    CacheKey, CachedValue, Committed, EntityKind, Mutation, Owed, OwedId, Versioned, WorldError,
    WorldId, WorldImage, WorldSeed,
};
use neo4rs::{BoltType, Graph, Query, Row, query};
use serde::Deserialize;

use crate::config::Neo4jConfig;
use crate::cypher;
use crate::error::Neo4jError;

/// How often a write is tried when Neo4j reports a transient error (a
/// deadlock between writers of one world, a leader switch), within the
/// call's timeout. Neo4j's guidance for transient errors is to retry.
const WRITE_ATTEMPTS: u32 = 10;

/// The source of truth on Neo4j 5.
///
/// Every write is one transaction whose first statement takes the world
/// node's write lock and bumps its version, so writes to one world are
/// serialized and their versions are consecutive, and whose last records
/// the write's outbox entry. Every read is one
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
        if let Some(ca) = config.ca_file() {
            builder = builder.with_client_certificate(ca);
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
}

#[async_trait]
impl WorldRepository for Neo4jRepository {
    async fn version(&self, world: &WorldId) -> Result<u64, SourceError> {
        self.read_version(world).await
    }

    async fn read(
        &self,
        key: &CacheKey,
        limit: usize,
    ) -> Result<Versioned<CachedValue>, SourceError> {
        self.read_key(key, limit).await
    }

    async fn read_many(
        &self,
        world: &WorldId,
        keys: &[CacheKey],
        limit: usize,
    ) -> Result<Versioned<Vec<Result<CachedValue, WorldError>>>, SourceError> {
        self.read_keys(world, keys, limit).await
    }

    async fn image(
        &self,
        world: &WorldId,
        top_k: usize,
    ) -> Result<Versioned<WorldImage>, SourceError> {
        self.read_image(world, top_k).await
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

    async fn owed(&self, claim: &Claim) -> Result<Vec<Owed>, SourceError> {
        self.write(self.config.query_timeout(), || self.claim_once(claim))
            .await
    }

    async fn settle(&self, done: &[OwedId]) -> Result<(), SourceError> {
        if done.is_empty() {
            return Ok(());
        }
        let rows = outbox::settle_rows(done)?;
        self.write(self.config.query_timeout(), || self.settle_once(&rows))
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

impl From<WorldError> for Fail {
    fn from(e: WorldError) -> Self {
        Fail::Domain(e)
    }
}

/// One row of an `UNWIND` batch, as a Bolt map.
fn row<const N: usize>(fields: [(&str, BoltType); N]) -> BoltType {
    let map: std::collections::HashMap<String, BoltType> =
        fields.into_iter().map(|(k, v)| (k.to_owned(), v)).collect();
    map.into()
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

fn corrupt_err(problem: String) -> Neo4jError {
    Neo4jError::Corrupt(problem)
}

fn corrupt(problem: &str) -> Fail {
    Fail::Driver(corrupt_err(problem.to_owned()))
}
