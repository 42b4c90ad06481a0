//! The demo world: its size, its seed, and the entities, flags and
//! history it is drawn with.

use lwcache_domain::{
    Document, EntityKind, EntityRef, EventKind, FlagName, NewEvent, Value, WorldSeed,
};

use crate::random::Rng;

/// When the demo world's history starts: 2026-01-01T00:00:00Z, in ms.
pub const EPOCH_MS: i64 = 1_767_225_600_000;

const MOODS: &[&str] = &["calm", "curious", "wary", "hopeful", "tired", "cheerful"];
const WEATHER: &[&str] = &["fog", "drizzle", "clear", "storm", "wind"];
const REGIONS: &[&str] = &["harbour", "cliffs", "old_town", "forest", "marsh"];
const EVENT_KINDS: &[&str] = &[
    "moved",
    "spoke",
    "noticed",
    "took",
    "rested",
    "mood_changed",
];
pub(crate) const FLAGS: &[&str] = &[
    "bridge_open",
    "lighthouse_lit",
    "storm_active",
    "market_day",
    "ferry_running",
    "bell_rung",
    "tide_high",
    "festival",
    "gate_locked",
    "well_repaired",
    "owl_seen",
    "letters_delivered",
];

/// How big a demo world is and which seed draws it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct DemoSpec {
    /// Characters, players included.
    pub characters: usize,
    /// Of the characters, how many are players (they carry a private
    /// journal, which the cache must never hold).
    pub players: usize,
    /// Locations.
    pub locations: usize,
    /// Objects.
    pub objects: usize,
    /// Timeline events per entity.
    pub events_per_entity: usize,
    /// The seed of every random choice.
    pub seed: u64,
}

impl DemoSpec {
    /// The demo world: 400 entities (150 characters of which 8 players, 50
    /// locations, 200 objects) and 4,000 timeline events.
    pub fn standard() -> Self {
        Self {
            characters: 150,
            players: 8,
            locations: 50,
            objects: 200,
            events_per_entity: 10,
            seed: 0x1a5c_ac4e,
        }
    }

    /// A world of about `entities` entities split like the standard one
    /// (3 characters : 1 location : 4 objects), each with
    /// `events_per_entity` events.
    pub fn sized(entities: usize, events_per_entity: usize) -> Self {
        let characters = (entities * 3 / 8).max(1);
        let locations = (entities / 8).max(1);
        let objects = entities.saturating_sub(characters + locations);
        Self {
            characters,
            players: characters.min(8),
            locations,
            objects,
            events_per_entity,
            ..Self::standard()
        }
    }

    /// How many entities the world has.
    pub fn entities(&self) -> usize {
        self.characters + self.locations + self.objects
    }

    /// The id of the `i`th character; players come first.
    pub fn character(&self, i: usize) -> EntityRef {
        let id = if i < self.players {
            format!("player-{:02}", i + 1)
        } else {
            format!("char-{:04}", i - self.players + 1)
        };
        entity_ref(EntityKind::Character, id)
    }

    /// The id of the `i`th location.
    pub fn location(&self, i: usize) -> EntityRef {
        entity_ref(EntityKind::Location, format!("loc-{:03}", i + 1))
    }

    /// The id of the `i`th object.
    pub fn object(&self, i: usize) -> EntityRef {
        entity_ref(EntityKind::Object, format!("obj-{:04}", i + 1))
    }

    /// The `i`th entity, counting characters, then locations, then objects.
    pub fn entity(&self, i: usize) -> EntityRef {
        let i = i % self.entities().max(1);
        if i < self.characters {
            self.character(i)
        } else if i < self.characters + self.locations {
            self.location(i - self.characters)
        } else {
            self.object(i - self.characters - self.locations)
        }
    }

    /// Every entity, in the order of [`DemoSpec::entity`].
    pub fn entity_refs(&self) -> impl Iterator<Item = EntityRef> + '_ {
        (0..self.entities()).map(|i| self.entity(i))
    }

    /// The world's full contents.
    pub fn seed(&self) -> WorldSeed {
        let mut rng = Rng::new(self.seed);
        let snapshot = Document::new()
            .with("name", text("The Lantern Coast"))
            .with("chapter", Value::Int(1))
            .with("day", Value::Int(1))
            .with("weather", text(rng.pick(WEATHER)))
            .with(
                "players",
                Value::List(
                    (0..self.players)
                        .map(|i| text(self.character(i).id_str()))
                        .collect(),
                ),
            );
        let flags = FLAGS
            .iter()
            .map(|f| (flag_name(f), Value::Bool(rng.chance(0.5))))
            .chain([(flag_name("chapter"), Value::Int(1))])
            .collect();
        let entities = (0..self.entities())
            .map(|i| {
                let entity = self.entity(i);
                let state = self.state_of(&entity, i, &mut rng);
                (entity, state)
            })
            .collect();
        let mut events = Vec::with_capacity(self.entities() * self.events_per_entity);
        let mut at_ms = EPOCH_MS;
        for round in 0..self.events_per_entity {
            for i in 0..self.entities() {
                at_ms += 1_000;
                events.push(self.event(&self.entity(i), round, at_ms, &mut rng));
            }
        }
        WorldSeed {
            snapshot,
            flags,
            entities,
            events,
        }
    }

    fn state_of(&self, entity: &EntityRef, i: usize, rng: &mut Rng) -> Document {
        match entity.kind() {
            EntityKind::Character => self.character_state(i, rng.below(self.locations), rng),
            EntityKind::Location => {
                let exits = (0..3)
                    .map(|_| text(self.location(rng.below(self.locations)).id_str()))
                    .collect();
                Document::new()
                    .with("name", text(&format!("Place {}", i + 1)))
                    .with("region", text(rng.pick(REGIONS)))
                    .with("exits", Value::List(exits))
                    .with("lit", Value::Bool(rng.chance(0.5)))
            }
            EntityKind::Object => Document::new()
                .with("name", text(&format!("Thing {}", i + 1)))
                .with(
                    "at",
                    text(self.location(rng.below(self.locations)).id_str()),
                )
                .with("weight", Value::Int(rng.below(20) as i64 + 1)),
        }
    }

    pub(crate) fn character_state(&self, i: usize, location: usize, rng: &mut Rng) -> Document {
        let state = Document::new()
            .with("name", text(&format!("Character {}", i + 1)))
            .with("location", text(self.location(location).id_str()))
            .with("mood", text(rng.pick(MOODS)))
            .with("hp", Value::Int(rng.below(100) as i64 + 1))
            .with(
                "inventory",
                Value::List(
                    (0..rng.below(4))
                        .map(|_| text(self.object(rng.below(self.objects.max(1))).id_str()))
                        .collect(),
                ),
            );
        if i < self.players {
            state.with("kind", text("player")).with(
                "journal",
                text(&format!("private reflections of player {}", i + 1)),
            )
        } else {
            state.with("kind", text("npc"))
        }
    }

    fn event(&self, entity: &EntityRef, round: usize, at_ms: i64, rng: &mut Rng) -> NewEvent {
        let kind = rng.pick(EVENT_KINDS);
        NewEvent {
            entity: entity.entity_id(),
            kind: event_kind(kind),
            at_ms,
            data: Document::new()
                .with("round", Value::Int(round as i64))
                .with(
                    "note",
                    text(&format!(
                        "{kind} near loc-{:03}",
                        rng.below(self.locations) + 1
                    )),
                ),
            top_k: lwcache_domain::DEFAULT_TOP_K,
        }
    }
}

pub(crate) fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

pub(crate) fn entity_ref(kind: EntityKind, id: String) -> EntityRef {
    // The formats above use only safe characters and stay short.
    EntityRef::parse(kind, &id).unwrap_or_else(|e| unreachable!("demo id {id}: {e}"))
}

pub(crate) fn flag_name(name: &str) -> FlagName {
    FlagName::new(name).unwrap_or_else(|e| unreachable!("demo flag {name}: {e}"))
}

pub(crate) fn event_kind(name: &str) -> EventKind {
    EventKind::new(name).unwrap_or_else(|e| unreachable!("demo event kind {name}: {e}"))
}
