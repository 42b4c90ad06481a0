//! The workload: what a client asks an instance, drawn from the seed, and
//! how each answer is handed to the oracle.
//!
//! One world with a fixed pool of entity ids (some created by the seed,
//! some not) and two flags: few keys, so that operations collide often.
//! Every written value carries a number no other write uses, so a stale
//! value can never pass for a fresh one.

use std::sync::Arc;

use lwcache_core::{CacheStep, Error, Fields, Outcome, Read, Written};
use lwcache_domain::{
    CacheKey, CachedValue, Document, EntityKind, EntityRef, EventKind, FlagName, Value, WorldError,
    WorldId, WorldSeed,
};

use crate::ctx::{Ctx, Manager, OP_FAULTS, Shared};
use crate::oracle::{ReadResult, ReadStart};
use crate::trace::What;

/// The entity ids of the world; the first [`SEEDED`] exist at the start.
const ENTITIES: [(EntityKind, &str); 6] = [
    (EntityKind::Character, "c1"),
    (EntityKind::Character, "c2"),
    (EntityKind::Location, "l1"),
    (EntityKind::Object, "o1"),
    (EntityKind::Character, "c3"),
    (EntityKind::Object, "o2"),
];
const SEEDED: usize = 4;
const FLAGS: [&str; 2] = ["alarm", "night"];

/// The timeline top-k of the simulation's policy: small, so that lists
/// are cut often.
pub(crate) const TOP_K: usize = 4;

fn entity(i: usize) -> EntityRef {
    let (kind, id) = ENTITIES[i % ENTITIES.len()];
    EntityRef::parse(kind, id).unwrap_or_else(|_| unreachable_id())
}

#[allow(
    clippy::panic,
    reason = "the ids above are constants known to be valid"
)]
fn unreachable_id() -> ! {
    panic!("a constant id of the simulation is invalid")
}

fn flag(i: usize) -> FlagName {
    FlagName::new(FLAGS[i % FLAGS.len()]).unwrap_or_else(|_| unreachable_id())
}

fn doc(n: i64) -> Document {
    Document::new().with("n", Value::Int(n))
}

/// The world every run starts from.
pub(crate) fn seed() -> WorldSeed {
    WorldSeed {
        snapshot: doc(0),
        flags: vec![(flag(0), Value::Int(0))],
        entities: (0..SEEDED).map(|i| (entity(i), doc(0))).collect(),
        events: Vec::new(),
    }
}

/// How many keys [`keys`] names.
const KEYS: usize = 2 + 2 * ENTITIES.len();

/// Every key the workload can touch.
pub(crate) fn keys(world: &WorldId) -> Vec<CacheKey> {
    let mut keys = vec![CacheKey::state(world), CacheKey::flags(world)];
    for i in 0..ENTITIES.len() {
        let e = entity(i);
        keys.push(CacheKey::entity(world, &e));
        keys.push(CacheKey::timeline(world, &e.entity_id()));
    }
    keys
}

/// One operation.
#[derive(Debug, Clone)]
pub(crate) enum Op {
    State,
    Flags,
    Entity(usize),
    Recent(usize, usize),
    /// A batched read of some of the keys (a bit mask over [`keys`]).
    Batch(u32),
    Snapshot,
    SetFlag(usize),
    ClearFlag(usize),
    Put(usize),
    Update(usize),
    Create(usize),
    Delete(usize),
    Event(usize),
    Activate,
}

impl Op {
    /// Draws an operation: mostly reads, a third writes, now and then an
    /// activation.
    pub(crate) fn draw(shared: &mut Shared) -> Op {
        let rng = &mut shared.rng;
        let e = rng.below(ENTITIES.len());
        match rng.below(100) {
            0..=9 => Op::State,
            10..=19 => Op::Flags,
            20..=39 => Op::Entity(e),
            40..=51 => Op::Recent(e, 1 + rng.below(TOP_K)),
            52..=59 => Op::Batch(rng.next_u64() as u32 & ((1 << KEYS) - 1)),
            60..=63 => Op::Snapshot,
            64..=69 => Op::SetFlag(rng.below(FLAGS.len())),
            70..=71 => Op::ClearFlag(rng.below(FLAGS.len())),
            72..=78 => Op::Put(e),
            79..=81 => Op::Update(e),
            82..=83 => Op::Create(e),
            84..=86 => Op::Delete(e),
            87..=97 => Op::Event(e),
            _ => Op::Activate,
        }
    }

    fn describe(&self) -> String {
        match self {
            Op::State => "read state".to_owned(),
            Op::Flags => "read flags".to_owned(),
            Op::Entity(e) => format!("read {}", entity(*e)),
            Op::Recent(e, n) => format!("read recent {} limit {n}", entity(*e)),
            Op::Batch(mask) => format!("read many {mask:#06x}"),
            Op::Snapshot => "replace snapshot".to_owned(),
            Op::SetFlag(f) => format!("set flag {}", flag(*f)),
            Op::ClearFlag(f) => format!("clear flag {}", flag(*f)),
            Op::Put(e) => format!("put {}", entity(*e)),
            Op::Update(e) => format!("update {}", entity(*e)),
            Op::Create(e) => format!("create {}", entity(*e)),
            Op::Delete(e) => format!("delete {}", entity(*e)),
            Op::Event(e) => format!("add event to {}", entity(*e)),
            Op::Activate => "activate".to_owned(),
        }
    }

    fn key(&self, world: &WorldId) -> Option<(CacheKey, usize)> {
        match self {
            Op::State => Some((CacheKey::state(world), TOP_K)),
            Op::Flags => Some((CacheKey::flags(world), TOP_K)),
            Op::Entity(e) => Some((CacheKey::entity(world, &entity(*e)), TOP_K)),
            Op::Recent(e, n) => Some((CacheKey::timeline(world, &entity(*e).entity_id()), *n)),
            _ => None,
        }
    }
}

/// A typed read as the oracle sees it.
fn seen<T>(
    read: Result<Read<T>, Error>,
    wrap: impl Fn(T) -> CachedValue,
) -> Result<ReadResult, Error> {
    match read {
        Ok(r) => Ok(ReadResult::Value {
            value: wrap(r.value),
            version: r.version,
            from_source: matches!(r.outcome, Outcome::Miss | Outcome::Fallback),
            outcome: r.outcome.as_str(),
        }),
        Err(e) if matches!(e.rejection(), Some(WorldError::UnknownEntity { .. })) => {
            Ok(ReadResult::Absent)
        }
        Err(e) => Err(e),
    }
}

/// Runs one operation on `manager` (incarnation `(slot, life)`) and hands
/// its answer to the oracle. Runs in a task of its own, inside
/// [`OP_FAULTS`], so that a crash can drop it.
pub(crate) async fn run(ctx: Arc<Ctx>, manager: Manager, slot: usize, life: u32, n: u64, op: Op) {
    let world = ctx.world.clone();
    let (start, value) = {
        let mut shared = ctx.shared();
        let value = shared.next_value;
        shared.next_value += 1;
        let tick = ctx.log(
            &mut shared,
            What::Start {
                op: n,
                slot,
                life,
                desc: op.describe(),
            },
        );
        let start = ReadStart {
            tick,
            at_us: ctx.now_us(),
            source_version: shared.oracle.version(),
            reader: (slot, life),
        };
        (start, value)
    };
    if let Op::Batch(mask) = op {
        let keys: Vec<CacheKey> = keys(&world)
            .into_iter()
            .enumerate()
            .filter(|(i, _)| mask & (1 << i) != 0)
            .map(|(_, k)| k)
            .collect();
        let answer = manager.read_many(&world, &keys, Fields::Cacheable).await;
        let mut shared = ctx.shared();
        shared.stats.reads += 1;
        let result = match &answer {
            Ok(items) => {
                let parts: Vec<String> = items
                    .iter()
                    .map(|item| match item {
                        Ok(r) => format!("{} v{}", r.outcome.as_str(), r.version),
                        Err(e) if e.rejection().is_some() => "absent".to_owned(),
                        Err(_) => "error".to_owned(),
                    })
                    .collect();
                parts.join(", ")
            }
            Err(e) => format!("error: {e}"),
        };
        let tick = ctx.log(&mut shared, What::End { op: n, result });
        match answer {
            Ok(items) => {
                for (key, item) in keys.iter().zip(items) {
                    match seen(item, |v| v) {
                        Ok(result) => shared.oracle.check_read(key, TOP_K, start, result, tick),
                        Err(_) => shared.stats.failed_reads += 1,
                    }
                }
            }
            Err(_) => shared.stats.failed_reads += 1,
        }
        return;
    }
    if let Some((key, limit)) = op.key(&world) {
        let read = match &op {
            Op::State => seen(manager.world_state(&world).await, CachedValue::Snapshot),
            Op::Flags => seen(manager.flags(&world).await, CachedValue::Flags),
            Op::Entity(e) => seen(
                manager.entity(&world, &entity(*e), Fields::Cacheable).await,
                CachedValue::Entity,
            ),
            Op::Recent(e, n) => seen(
                manager.recent(&world, &entity(*e).entity_id(), *n).await,
                CachedValue::Timeline,
            ),
            _ => return,
        };
        let mut shared = ctx.shared();
        shared.stats.reads += 1;
        let result = match &read {
            Ok(ReadResult::Value {
                version, outcome, ..
            }) => format!("{outcome} v{version}"),
            Ok(ReadResult::Absent) => "absent".to_owned(),
            Err(e) => format!("error: {e}"),
        };
        let tick = ctx.log(&mut shared, What::End { op: n, result });
        match read {
            Ok(result) => shared.oracle.check_read(&key, limit, start, result, tick),
            Err(_) => shared.stats.failed_reads += 1,
        }
        return;
    }
    let e = |i: &usize| entity(*i);
    let written: Result<Written, Error> = match &op {
        Op::Snapshot => manager.replace_snapshot(&world, doc(value)).await,
        Op::SetFlag(f) => manager.set_flag(&world, flag(*f), Value::Int(value)).await,
        Op::ClearFlag(f) => manager.clear_flag(&world, flag(*f)).await,
        Op::Put(i) => manager.put_entity(&world, e(i), doc(value)).await,
        Op::Update(i) => manager.update_entity(&world, e(i), doc(value)).await,
        Op::Create(i) => manager.create_entity(&world, e(i), doc(value)).await,
        Op::Delete(i) => manager.delete_entity(&world, e(i)).await,
        Op::Event(i) => {
            let kind = EventKind::new("moved").unwrap_or_else(|_| unreachable_id());
            manager
                .add_event(&world, e(i).entity_id(), kind, doc(value))
                .await
        }
        Op::Activate => {
            let warmed = manager.activate(&world).await;
            let mut shared = ctx.shared();
            shared.stats.activations += 1;
            let result = match warmed {
                Ok(r) => format!("warmed {} keys at v{}", r.keys, r.version),
                Err(e) => format!("error: {e}"),
            };
            ctx.log(&mut shared, What::End { op: n, result });
            return;
        }
        _ => return,
    };
    let faults = OP_FAULTS
        .try_with(|f| f.borrow().clone())
        .unwrap_or_default();
    let mut shared = ctx.shared();
    match written {
        Ok(w) => {
            let result = format!("acked v{} {:?}", w.committed.version, w.cache);
            let tick = ctx.log(&mut shared, What::End { op: n, result });
            shared.stats.writes_acked += 1;
            let failed = (w.cache == CacheStep::Failed).then_some(faults);
            if failed.is_some() {
                shared.stats.steps_failed += 1;
            }
            shared.oracle.ack(&w.committed, failed, tick);
        }
        Err(e) => {
            if e.rejection().is_some() {
                shared.stats.writes_refused += 1;
            } else {
                shared.stats.writes_failed += 1;
            }
            ctx.log(
                &mut shared,
                What::End {
                    op: n,
                    result: format!("error: {e}"),
                },
            );
        }
    }
}
