//! A demo world and a simulated player workload, deterministic from a seed.
//!
//! The service loads [`DemoSpec::standard`] as the world `demo` when it runs
//! on its embedded default, `lwcache seed` loads it into Neo4j, and the demo
//! and the benchmarks drive a [`Simulation`] against it. Everything here is
//! plain data built from the domain's types: no I/O, no clock, no global
//! random state, so two runs with the same seed see the same world and the
//! same turns.

mod random;
mod simulation;
mod world;

pub use random::{Rng, Zipf};
pub use simulation::{Action, Simulation};
pub use world::{DemoSpec, EPOCH_MS};

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
        let (redacted, redaction) = SensitivityPolicy::default().redact(
            lwcache_domain::KeyKind::Character,
            &CachedValue::Entity(player),
        );
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
