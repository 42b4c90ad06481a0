//! What a committed write owes the cache, as data.
//!
//! A write's cache step runs after its commit, in another system; a process
//! can die between the two, and the cache can be unreachable at that moment.
//! So the source records, in the write's own transaction, an [`Owed`]: the
//! keys the write makes stale, at the write's version. Carrying it out means
//! tombstoning those keys at that version, which is idempotent and never
//! hides a newer write, so any process may replay it, any number of times.

use crate::id::WorldId;
use crate::key::CacheKey;
use crate::world::{Change, Committed, Op};

/// The cache steps a committed write owes: the keys it makes stale.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Owed {
    /// The world written to.
    pub world: WorldId,
    /// The version the write committed as.
    pub version: u64,
    /// The keys whose cached values the write makes stale.
    pub keys: Vec<CacheKey>,
}

impl Owed {
    /// What `committed` owes the cache.
    pub fn of(committed: &Committed) -> Self {
        Self {
            world: committed.world.clone(),
            version: committed.version,
            keys: stale_keys(committed),
        }
    }

    /// The entry's identity: one write per world version.
    pub fn id(&self) -> OwedId {
        OwedId {
            world: self.world.clone(),
            version: self.version,
        }
    }
}

/// Names one [`Owed`] entry: a world and the version of the write.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OwedId {
    /// The world.
    pub world: WorldId,
    /// The write's version.
    pub version: u64,
}

/// The keys whose cached values a committed change makes stale, whatever
/// the policy: the same keys the invalidation plan touches.
pub fn stale_keys(committed: &Committed) -> Vec<CacheKey> {
    let world = &committed.world;
    match &committed.change {
        Change::SnapshotReplaced { .. } => vec![CacheKey::state(world)],
        Change::FlagChanged { .. } => vec![CacheKey::flags(world)],
        Change::EntityCreated { entity, .. } | Change::EntityUpdated { entity, .. } => {
            vec![CacheKey::entity(world, entity)]
        }
        Change::EntityDeleted { entity } => vec![
            CacheKey::entity(world, entity),
            CacheKey::timeline(world, &entity.entity_id()),
        ],
        Change::EventAdded { event, .. } => vec![CacheKey::timeline(world, &event.entity)],
    }
}

impl Op {
    /// The keys this operation makes stale in `world` if it commits: known
    /// before the write, so that a source can record them in the statement
    /// that bumps the version. Equal to [`stale_keys`] of the commit.
    pub fn stale_keys(&self, world: &WorldId) -> Vec<CacheKey> {
        match self {
            Op::ReplaceSnapshot(_) => vec![CacheKey::state(world)],
            Op::SetFlag(..) | Op::ClearFlag(_) => vec![CacheKey::flags(world)],
            Op::CreateEntity(entity, _)
            | Op::UpdateEntity(entity, _)
            | Op::PutEntity(entity, _) => {
                vec![CacheKey::entity(world, entity)]
            }
            Op::DeleteEntity(entity) => vec![
                CacheKey::entity(world, entity),
                CacheKey::timeline(world, &entity.entity_id()),
            ],
            Op::AddEvent(event) => vec![CacheKey::timeline(world, &event.entity)],
        }
    }
}
