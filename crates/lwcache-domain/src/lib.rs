//! The pure domain of lwcache.
//!
//! lwcache keeps the hot state of living game worlds in a cache in front of
//! their source of truth. This crate says *what* is cached and *when* it
//! changes, and does nothing else: no I/O, no async runtime, no serialization
//! library, no Redis or Neo4j types.
//!
//! - [`id`]: validated ids that cannot forge a key.
//! - [`key`]: the keyspace, `lw:world:{<world_id>}:...`, formatted and parsed.
//! - [`document`]: documents, timeline events, and what one cache entry holds.
//! - [`world`]: writes, the changes they commit, and the reference model of a
//!   world.
//! - [`policy`]: write-through, write-behind, TTLs and top-k per key kind.
//! - [`invalidation`]: the pure rules from a committed change to cache steps.
//! - [`outbox`]: what a committed write owes the cache, recorded with it.
//! - [`seed`]: a whole world as data, for bulk loads.
//! - [`popularity`]: how often keys are read, in bounded memory.
//! - [`warming`]: what a world's activation prefills.
//! - [`privacy`]: the fields that never reach the cache.

pub mod document;
pub mod id;
pub mod invalidation;
pub mod key;
pub mod outbox;
pub mod policy;
pub mod popularity;
pub mod privacy;
pub mod seed;
pub mod warming;
pub mod world;

pub use document::{
    CachedValue, Document, DocumentError, DocumentLimits, EventKind, Flags, TimelineEvent, Value,
    Versioned,
};
pub use id::{
    CharacterId, EntityId, EntityKind, EntityRef, FlagName, IdError, IdKind, LocationId, ObjectId,
    WorldId,
};
pub use invalidation::{Action, CachePlan, InvalidationCause, Step, Timing, plan};
pub use key::{CacheKey, KeyKind, KeyParseError, KeyTarget};
pub use outbox::{Owed, OwedId, stale_keys};
pub use policy::{
    CachePolicy, DEFAULT_TOP_K, ExpiryPolicy, KeyPolicy, MAX_JITTER_PERCENT, PolicyError,
    WarmPolicy, WriteMode,
};
pub use popularity::{Candidate, FrequencySketch, Popularity};
pub use privacy::{Redaction, SensitivityPolicy};
pub use warming::WarmPlan;
pub use world::{
    Change, Committed, EntityWrite, Mutation, NewEvent, Op, StateWrite, WorldError, WorldImage,
    WorldModel, WorldSeed,
};
