//! Fresh ids and small documents for the checks.

use std::sync::atomic::{AtomicU64, Ordering};

use lwcache_core::ports::WorldRepository;
use lwcache_domain::{
    Document, EntityKind, EntityRef, EventKind, FlagName, Mutation, Op, Value, WorldId,
};

static NEXT: AtomicU64 = AtomicU64::new(0);

/// A world id no other check uses, even in another process sharing the same
/// server.
pub fn fresh_world() -> WorldId {
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    WorldId::new(format!("t{}-{nanos:x}-{n}", std::process::id()))
        .expect("the format holds only safe characters")
}

/// A reference to an entity.
pub fn entity(kind: EntityKind, id: &str) -> EntityRef {
    EntityRef::parse(kind, id).expect("fixture ids are valid")
}

/// A character reference.
pub fn character(id: &str) -> EntityRef {
    entity(EntityKind::Character, id)
}

/// A flag name.
pub fn flag(name: &str) -> FlagName {
    FlagName::new(name).expect("fixture flag names are valid")
}

/// An event kind.
pub fn event_kind(name: &str) -> EventKind {
    EventKind::new(name).expect("fixture event kinds are valid")
}

/// A document with one text field.
pub fn doc(field: &str, text: &str) -> Document {
    Document::new().with(field, Value::Text(text.to_owned()))
}

/// A fresh world made directly in the source, past any cache: `ops` applied
/// in order, each as a write of its own (so each takes its own version).
/// A refused write fails the check.
pub async fn seed_ops<R>(repo: &R, ops: impl IntoIterator<Item = Op>) -> WorldId
where
    R: WorldRepository + ?Sized,
{
    let world = fresh_world();
    let mut done = Vec::new();
    for op in ops {
        let committed = repo
            .apply(&Mutation {
                world: world.clone(),
                op,
            })
            .await
            .expect("seed write");
        done.push(lwcache_domain::Owed::of(&committed).id());
    }
    // Past any cache: the world owes the cache nothing, as after a load, so
    // that no replay loop of a check sharing the source acts on it.
    repo.settle(&done)
        .await
        .expect("settling the seed's outbox");
    world
}
