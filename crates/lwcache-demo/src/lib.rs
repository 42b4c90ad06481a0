//! A demo world and a simulated player workload, deterministic from a seed.
//!
//! The service loads [`DemoSpec::standard`] as the world `demo` when it runs
//! on its embedded default, `lwcache seed` loads it into Neo4j, and the demo
//! and the benchmarks drive a [`Simulation`] against it. Everything here is
//! plain data built from the domain's types: no I/O, no clock, no global
//! random state, so two runs with the same seed see the same world and the
//! same turns.

use lwcache_domain::{
    Document, EntityId, EntityKind, EntityRef, EventKind, FlagName, NewEvent, Op, Value, WorldSeed,
};

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
const FLAGS: &[&str] = &[
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

    fn character_state(&self, i: usize, location: usize, rng: &mut Rng) -> Document {
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
        }
    }
}

/// What a simulated player does on one turn.
#[derive(Debug, Clone, PartialEq)]
pub enum Action {
    /// Reads the world snapshot.
    ReadState,
    /// Reads every flag.
    ReadFlags,
    /// Reads an entity's state.
    ReadEntity(EntityRef),
    /// Reads an entity's recent timeline.
    ReadRecent(EntityId),
    /// Writes to the world.
    Write(Op),
}

impl Action {
    /// A short name for reports: `read_state`, `read_flags`, `read_entity`,
    /// `read_recent`, or the write's operation name.
    pub fn name(&self) -> &'static str {
        match self {
            Action::ReadState => "read_state",
            Action::ReadFlags => "read_flags",
            Action::ReadEntity(_) => "read_entity",
            Action::ReadRecent(_) => "read_recent",
            Action::Write(op) => op.name(),
        }
    }
}

/// Players moving, talking, noticing things and toggling flags in a demo
/// world, one [`Action`] at a time. Reads pick entities by a Zipf law over
/// the entities (a few are hot), writes are a configurable share of turns.
#[derive(Debug, Clone)]
pub struct Simulation {
    spec: DemoSpec,
    rng: Rng,
    popularity: Zipf,
    write_ratio: f64,
    player_locations: Vec<usize>,
    clock_ms: i64,
}

impl Simulation {
    /// A simulation over a world loaded from `spec`, with a Zipf exponent of
    /// 1.0 and 10% writes.
    pub fn new(spec: DemoSpec, seed: u64) -> Self {
        Self {
            spec,
            rng: Rng::new(seed),
            popularity: Zipf::new(spec.entities().max(1), 1.0),
            write_ratio: 0.1,
            player_locations: vec![0; spec.players],
            clock_ms: EPOCH_MS + 86_400_000,
        }
    }

    /// Sets the share of turns that write, clamped to `0.0..=1.0`.
    pub fn with_write_ratio(mut self, ratio: f64) -> Self {
        self.write_ratio = ratio.clamp(0.0, 1.0);
        self
    }

    /// Sets the Zipf exponent of entity popularity.
    pub fn with_zipf_exponent(mut self, s: f64) -> Self {
        self.popularity = Zipf::new(self.spec.entities().max(1), s);
        self
    }

    /// The next turn.
    pub fn next_action(&mut self) -> Action {
        self.clock_ms += 250;
        if self.rng.chance(self.write_ratio) {
            return Action::Write(self.next_write());
        }
        let roll = self.rng.below(10);
        let hot = self.spec.entity(self.popularity.sample(&mut self.rng));
        match roll {
            0 => Action::ReadState,
            1 => Action::ReadFlags,
            2..=6 => Action::ReadEntity(hot),
            _ => Action::ReadRecent(hot.entity_id()),
        }
    }

    fn next_write(&mut self) -> Op {
        let players = self.spec.players.max(1);
        let player = self.rng.below(players);
        match self.rng.below(4) {
            0 if self.spec.players > 0 => {
                let to = self.rng.below(self.spec.locations);
                self.player_locations[player] = to;
                let mut rng = self.rng.clone();
                let state = self.spec.character_state(player, to, &mut rng);
                self.rng = rng;
                Op::PutEntity(self.spec.character(player), state)
            }
            1 => {
                let name = self.rng.pick(FLAGS);
                Op::SetFlag(flag_name(name), Value::Bool(self.rng.chance(0.5)))
            }
            _ => {
                let speaker = self.spec.character(player);
                let kind = if self.rng.chance(0.5) {
                    "spoke"
                } else {
                    "noticed"
                };
                let about = self.spec.entity(self.popularity.sample(&mut self.rng));
                Op::AddEvent(NewEvent {
                    entity: speaker.entity_id(),
                    kind: event_kind(kind),
                    at_ms: self.clock_ms,
                    data: Document::new().with("about", text(about.id_str())).with(
                        "at",
                        text(self.spec.location(self.player_locations[player]).id_str()),
                    ),
                })
            }
        }
    }
}

/// A small, fast, deterministic generator (SplitMix64). Not for secrets.
#[derive(Debug, Clone)]
pub struct Rng(u64);

impl Rng {
    /// A generator from a seed.
    pub fn new(seed: u64) -> Self {
        Self(seed)
    }

    /// The next 64 random bits.
    pub fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// A uniform float in `[0, 1)`.
    pub fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }

    /// A number in `0..n`; 0 when `n` is 0.
    pub fn below(&mut self, n: usize) -> usize {
        if n == 0 {
            return 0;
        }
        (self.next_u64() % n as u64) as usize
    }

    /// True with probability `p`.
    pub fn chance(&mut self, p: f64) -> bool {
        self.unit() < p
    }

    /// One element of a non-empty slice.
    pub fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items
            .get(self.below(items.len()))
            .copied()
            .unwrap_or_default()
    }
}

/// Ranks `0..n` drawn with probability proportional to `1 / (rank + 1)^s`.
#[derive(Debug, Clone)]
pub struct Zipf {
    cumulative: Vec<f64>,
}

impl Zipf {
    /// The law over `n` ranks (at least one) with exponent `s`.
    pub fn new(n: usize, s: f64) -> Self {
        let mut total = 0.0;
        let mut cumulative: Vec<f64> = (1..=n.max(1))
            .map(|rank| {
                total += 1.0 / (rank as f64).powf(s);
                total
            })
            .collect();
        for c in &mut cumulative {
            *c /= total;
        }
        Self { cumulative }
    }

    /// How many ranks the law draws from.
    pub fn len(&self) -> usize {
        self.cumulative.len()
    }

    /// Always false: a law has at least one rank.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// One rank, 0 being the most likely.
    pub fn sample(&self, rng: &mut Rng) -> usize {
        let u = rng.unit();
        self.cumulative
            .partition_point(|&c| c <= u)
            .min(self.cumulative.len() - 1)
    }
}

fn text(s: &str) -> Value {
    Value::Text(s.to_owned())
}

fn entity_ref(kind: EntityKind, id: String) -> EntityRef {
    // The formats above use only safe characters and stay short.
    EntityRef::parse(kind, &id).unwrap_or_else(|e| unreachable!("demo id {id}: {e}"))
}

fn flag_name(name: &str) -> FlagName {
    FlagName::new(name).unwrap_or_else(|e| unreachable!("demo flag {name}: {e}"))
}

fn event_kind(name: &str) -> EventKind {
    EventKind::new(name).unwrap_or_else(|e| unreachable!("demo event kind {name}: {e}"))
}

#[cfg(test)]
mod tests {
    use lwcache_domain::{
        CachedValue, Mutation, Redaction, SensitivityPolicy, WorldId, WorldModel,
    };

    use lwcache_domain::world::apply_to;

    use super::*;

    fn load(spec: &DemoSpec) -> (WorldId, WorldModel) {
        let world = WorldId::new("demo").unwrap();
        let mut slot = None;
        for m in spec.seed().mutations(&world) {
            apply_to(&mut slot, m).unwrap();
        }
        (world, slot.unwrap())
    }

    #[test]
    fn the_standard_world_has_what_it_says() {
        let spec = DemoSpec::standard();
        let seed = spec.seed();
        assert_eq!(seed.entities.len(), 400);
        assert_eq!(seed.events.len(), 4_000);
        assert_eq!(seed, spec.seed(), "the same seed draws the same world");
        let (_, model) = load(&spec);
        assert_eq!(model.version(), seed.len() as u64);
        assert_eq!(model.entity_refs().count(), 400);
        let recent = model.recent(&spec.character(0).entity_id(), 100).unwrap();
        assert_eq!(recent.len(), 10);
        assert!(recent.windows(2).all(|w| w[0].seq > w[1].seq));
    }

    #[test]
    fn another_seed_draws_another_world() {
        let a = DemoSpec::standard();
        let b = DemoSpec { seed: 7, ..a };
        assert_ne!(a.seed(), b.seed());
    }

    #[test]
    fn sized_worlds_have_the_requested_size() {
        for (entities, events) in [(1_000, 100), (8, 1), (1, 0)] {
            let spec = DemoSpec::sized(entities, events);
            assert_eq!(spec.entities(), entities.max(2), "{entities}");
            let seed = spec.seed();
            assert_eq!(seed.events.len(), spec.entities() * events);
            let ids: std::collections::BTreeSet<_> =
                seed.entities.iter().map(|(e, _)| e.entity_id()).collect();
            assert_eq!(ids.len(), spec.entities(), "entity ids are unique");
        }
    }

    #[test]
    fn players_carry_a_journal_that_the_default_policy_redacts() {
        let spec = DemoSpec::standard();
        let (_, model) = load(&spec);
        let player = model.entity(&spec.character(0)).unwrap().clone();
        assert!(player.get("journal").is_some());
        let (redacted, redaction) =
            SensitivityPolicy::default().redact(&CachedValue::Entity(player));
        assert_eq!(redaction, Redaction::Redacted);
        let CachedValue::Entity(redacted) = redacted else {
            panic!("redaction changed the value's kind")
        };
        assert!(redacted.get("journal").is_none());
        assert!(redacted.get("mood").is_some());
        let npc = model.entity(&spec.character(spec.players)).unwrap().clone();
        assert!(npc.get("journal").is_none());
    }

    #[test]
    fn every_simulated_write_applies_to_the_demo_world() {
        let spec = DemoSpec::standard();
        let (world, mut model) = load(&spec);
        let mut sim = Simulation::new(spec, 42).with_write_ratio(0.5);
        let mut writes = 0;
        let mut names = std::collections::BTreeSet::new();
        for _ in 0..5_000 {
            let action = sim.next_action();
            names.insert(action.name());
            match action {
                Action::Write(op) => {
                    let m = Mutation {
                        world: world.clone(),
                        op,
                    };
                    model.apply(&m.world, m.op).unwrap();
                    writes += 1;
                }
                Action::ReadEntity(e) => assert!(model.entity(&e).is_some()),
                Action::ReadRecent(e) => assert!(model.recent(&e, 20).is_some()),
                Action::ReadState | Action::ReadFlags => {}
            }
        }
        assert!((2_000..3_000).contains(&writes), "{writes} writes");
        for name in [
            "read_state",
            "read_flags",
            "read_entity",
            "read_recent",
            "put_entity",
            "set_flag",
            "add_event",
        ] {
            assert!(names.contains(name), "{name} never drawn");
        }
    }

    #[test]
    fn zipf_favours_low_ranks_by_the_law() {
        let zipf = Zipf::new(1_000, 1.0);
        let mut rng = Rng::new(1);
        let mut counts = vec![0u32; zipf.len()];
        let n = 200_000;
        for _ in 0..n {
            counts[zipf.sample(&mut rng)] += 1;
        }
        // P(rank 0) = 1 / H(1000) ≈ 0.1336; P(rank 1) is half of it.
        let p0 = f64::from(counts[0]) / f64::from(n);
        assert!((p0 - 0.1336).abs() < 0.005, "p0 = {p0}");
        let ratio = f64::from(counts[0]) / f64::from(counts[1]);
        assert!((ratio - 2.0).abs() < 0.1, "ratio = {ratio}");
        assert!(counts[999] < counts[0] / 100);
    }

    #[test]
    fn rng_bounds_hold() {
        let mut rng = Rng::new(3);
        assert_eq!(rng.below(0), 0);
        for _ in 0..10_000 {
            assert!(rng.below(7) < 7);
            let u = rng.unit();
            assert!((0.0..1.0).contains(&u));
        }
        assert_eq!(rng.pick(&[]), "");
    }
}
