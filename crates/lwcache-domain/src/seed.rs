//! A world's whole contents as plain data, for bulk loads: what loading one
//! means (the mutations it stands for) and the checks that come first.

use crate::document::{Document, DocumentError, DocumentLimits, Value};
use crate::id::{EntityRef, FlagName, WorldId};
use crate::world::{Mutation, NewEvent, Op, WorldError};

/// A world's whole contents as plain data, to load in bulk into a source of
/// truth (a demo world, a benchmark world, an import).
///
/// Loading a seed creates a world that must not exist yet, and means exactly
/// applying [`WorldSeed::mutations`] in order, one version each: the
/// snapshot, then each flag, each entity and each event. A repository may
/// load it faster (in batches), but the world it leaves, versions and event
/// sequence numbers included, must be the same. A seed that
/// [`WorldSeed::validate`] refuses writes nothing.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct WorldSeed {
    /// The world snapshot.
    pub snapshot: Document,
    /// Flags, set in order.
    pub flags: Vec<(FlagName, Value)>,
    /// Entities, created in order; ids are unique across kinds.
    pub entities: Vec<(EntityRef, Document)>,
    /// Timeline events, appended in order; each names an entity of
    /// [`WorldSeed::entities`].
    pub events: Vec<NewEvent>,
}

impl WorldSeed {
    /// How many versions loading the seed takes.
    pub fn len(&self) -> usize {
        1 + self.flags.len() + self.entities.len() + self.events.len()
    }

    /// Always false: a seed holds at least its snapshot.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// The mutations that loading the seed means, in order.
    pub fn mutations<'a>(&'a self, world: &'a WorldId) -> impl Iterator<Item = Mutation> + 'a {
        let op = move |op| Mutation {
            world: world.clone(),
            op,
        };
        std::iter::once(op(Op::ReplaceSnapshot(self.snapshot.clone())))
            .chain(
                self.flags
                    .iter()
                    .map(move |(f, v)| op(Op::SetFlag(f.clone(), v.clone()))),
            )
            .chain(
                self.entities
                    .iter()
                    .map(move |(e, d)| op(Op::CreateEntity(e.clone(), d.clone()))),
            )
            .chain(self.events.iter().map(move |e| op(Op::AddEvent(e.clone()))))
    }

    /// Checks that the seed can load into an empty world: entity ids are
    /// unique and every event names one of the seed's entities.
    pub fn validate(&self, world: &WorldId) -> Result<(), WorldError> {
        let mut ids = std::collections::BTreeMap::new();
        for (entity, _) in &self.entities {
            if let Some(existing) = ids.insert(entity.id_str(), entity.kind()) {
                return Err(WorldError::InvalidSeed {
                    world: world.clone(),
                    problem: format!(
                        "entity id {} is given twice (a {existing} and a {})",
                        entity.id_str(),
                        entity.kind()
                    ),
                });
            }
        }
        if let Some(event) = self
            .events
            .iter()
            .find(|e| !ids.contains_key(e.entity.as_str()))
        {
            return Err(WorldError::InvalidSeed {
                world: world.clone(),
                problem: format!("an event names {}, which the seed lacks", event.entity),
            });
        }
        Ok(())
    }

    /// Checks every document of the seed against `limits`.
    pub fn check(&self, limits: &DocumentLimits) -> Result<(), DocumentError> {
        self.snapshot.check(limits)?;
        for (_, value) in &self.flags {
            Document::new().with("value", value.clone()).check(limits)?;
        }
        for (_, doc) in &self.entities {
            doc.check(limits)?;
        }
        for event in &self.events {
            event.data.check(limits)?;
        }
        Ok(())
    }
}
