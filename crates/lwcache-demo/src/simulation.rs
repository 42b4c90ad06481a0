//! The simulated players: one [`Action`] per turn, reads by a Zipf law
//! over the entities and a share of writes.

use lwcache_domain::{Document, EntityId, EntityRef, NewEvent, Op, Value};

use crate::random::{Rng, Zipf};
use crate::world::{DemoSpec, EPOCH_MS, FLAGS, event_kind, flag_name, text};

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
                    top_k: lwcache_domain::DEFAULT_TOP_K,
                })
            }
        }
    }
}
