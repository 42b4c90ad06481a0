//! The world repository of lwcache on Neo4j 5.
//!
//! [`Neo4jRepository`] implements [`lwcache_core::ports::WorldRepository`]
//! with neo4rs over Bolt: one transaction per write that also bumps the
//! world's version and records what the write owes the cache in an outbox,
//! reads that return the version they were read at, recent timelines served
//! newest first by an index, bulk loads in batches inside one transaction,
//! and the outbox's claims and settling. The graph model is described in
//! `docs/neo4j-model.md`; [`cypher`] holds every statement.
//!
//! ```no_run
//! # async fn demo() -> Result<(), lwcache_neo4j::Neo4jError> {
//! use lwcache_neo4j::{Neo4jConfig, Neo4jRepository};
//! let config = Neo4jConfig::new("bolt://127.0.0.1:7687").with_credentials("neo4j", "secret");
//! let repo = Neo4jRepository::connect(config).await?;
//! # let _ = repo; Ok(()) }
//! ```

pub mod config;
pub mod cypher;
pub mod error;
pub mod json;
mod repository;

pub use config::Neo4jConfig;
pub use error::Neo4jError;
pub use repository::Neo4jRepository;
