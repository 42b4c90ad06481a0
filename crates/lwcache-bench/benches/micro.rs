//! In-process micro-benchmarks (criterion): key formatting and parsing, the
//! entry codec on a character state and a 20-event timeline, and the
//! invalidation plan of each kind of change.
//!
//! `cargo bench -p lwcache-bench --bench micro`; these need no server.

use std::collections::BTreeMap;
use std::hint::black_box;

use criterion::{Criterion, criterion_group, criterion_main};
use lwcache_core::codec::{self, Entry};
use lwcache_demo::DemoSpec;
use lwcache_domain::{
    CacheKey, CachePolicy, CachedValue, Change, Committed, Document, EventKind, FlagName,
    Redaction, TimelineEvent, Value, WorldId, plan,
};

fn world() -> WorldId {
    WorldId::new("harbor").unwrap_or_else(|e| unreachable!("a valid world id: {e}"))
}

fn keys(c: &mut Criterion) {
    let world = world();
    let spec = DemoSpec::standard();
    let entity = spec.character(spec.players);
    let key = CacheKey::entity(&world, &entity);
    let text = key.to_string();
    let timeline = CacheKey::timeline(&world, &entity.entity_id()).to_string();
    let mut group = c.benchmark_group("key");
    group.bench_function("format character state", |b| {
        b.iter(|| black_box(&key).to_string());
    });
    group.bench_function("parse character state", |b| {
        b.iter(|| CacheKey::parse(black_box(&text)));
    });
    group.bench_function("parse recent timeline", |b| {
        b.iter(|| CacheKey::parse(black_box(&timeline)));
    });
    group.finish();
}

fn character_state() -> Document {
    let spec = DemoSpec::standard();
    let npc = spec.character(spec.players);
    spec.seed()
        .entities
        .into_iter()
        .find(|(e, _)| *e == npc)
        .map(|(_, state)| state)
        .unwrap_or_default()
}

fn timeline(n: u64) -> Vec<TimelineEvent> {
    let spec = DemoSpec::standard();
    let entity = spec.character(spec.players).entity_id();
    let kind = EventKind::new("spoke").unwrap_or_else(|e| unreachable!("a valid kind: {e}"));
    (0..n)
        .rev()
        .map(|i| TimelineEvent {
            seq: 1_000 + i,
            entity: entity.clone(),
            kind: kind.clone(),
            at_ms: lwcache_demo::EPOCH_MS + i as i64 * 1_000,
            data: Document::new()
                .with("round", Value::Int(i as i64))
                .with("note", Value::Text(format!("spoke near loc-{:03}", i % 50))),
        })
        .collect()
}

fn codec_benches(c: &mut Criterion) {
    let entries = [
        ("character state", CachedValue::Entity(character_state())),
        ("20-event timeline", CachedValue::Timeline(timeline(20))),
    ];
    let mut group = c.benchmark_group("codec");
    for (name, value) in entries {
        let entry = Entry {
            version: 4_242,
            redaction: Redaction::Complete,
            value,
        };
        let bytes = codec::encode(&entry);
        group.bench_function(format!("encode {name} ({} bytes)", bytes.len()), |b| {
            b.iter(|| codec::encode(black_box(&entry)));
        });
        group.bench_function(format!("decode {name} ({} bytes)", bytes.len()), |b| {
            b.iter(|| codec::decode(black_box(&bytes)));
        });
    }
    group.finish();
}

fn changes() -> Vec<(&'static str, Change)> {
    let spec = DemoSpec::standard();
    let entity = spec.character(spec.players);
    let state = character_state();
    let flag = FlagName::new("bridge_open").unwrap_or_else(|e| unreachable!("a flag: {e}"));
    let flags: BTreeMap<FlagName, Value> = (0..12u32)
        .map(|i| {
            let name =
                FlagName::new(format!("flag_{i}")).unwrap_or_else(|e| unreachable!("a flag: {e}"));
            (name, Value::Bool(i.is_multiple_of(2)))
        })
        .collect();
    let event = timeline(1).remove(0);
    vec![
        (
            "snapshot replaced",
            Change::SnapshotReplaced {
                snapshot: Document::new().with("day", Value::Int(2)),
                created_world: false,
            },
        ),
        ("flag changed", Change::FlagChanged { name: flag, flags }),
        (
            "entity created",
            Change::EntityCreated {
                entity: entity.clone(),
                state: state.clone(),
            },
        ),
        (
            "entity updated",
            Change::EntityUpdated {
                entity: entity.clone(),
                state,
            },
        ),
        ("entity deleted", Change::EntityDeleted { entity }),
        (
            "event added",
            Change::EventAdded {
                recent: vec![event.clone(); 20],
                event,
            },
        ),
    ]
}

fn invalidation(c: &mut Criterion) {
    let policy = CachePolicy::default();
    let mut group = c.benchmark_group("invalidation plan");
    for (name, change) in changes() {
        let committed = Committed {
            world: world(),
            version: 7,
            change,
        };
        group.bench_function(name, |b| {
            b.iter(|| plan(black_box(&committed), black_box(&policy)));
        });
    }
    group.finish();
}

criterion_group!(benches, keys, codec_benches, invalidation);
criterion_main!(benches);
