//! In-memory adapters of lwcache's ports.
//!
//! [`MemoryStore`] is a cache store with TTLs and per-world versions;
//! [`MemoryRepository`] is a source of truth built on the domain's
//! reference model. Both pass the same conformance suite as the Redis and
//! Neo4j adapters, which is what makes them fit to stand in for those in
//! tests and in the embedded mode of the service.

mod feed;
mod repository;
mod store;

pub use repository::MemoryRepository;
pub use store::MemoryStore;
