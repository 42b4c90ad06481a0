//! Players in one world: the hit ratio with 1, 16 and 64 concurrent
//! players taking turns in the same world, through one manager, measured
//! in the same run, with every read checked against the writes of its key
//! acknowledged before it started.
//!
//! Per-key versions are what this shows: with a single world-wide version
//! gate, a write by one player made the fills of every other key of the
//! world lose, so the hit ratio fell as players were added.

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

use anyhow::{Context, Result};
use lwcache_bench::freshness::Freshness;
use lwcache_bench::report::PlayersRow;
use lwcache_core::ports::{CacheStore, WorldRepository};
use lwcache_core::{CacheManager, Counters, Fields, MetricsSink, Outcome};
use lwcache_demo::{Action, DemoSpec, Simulation};
use lwcache_domain::{CacheKey, KeyKind, Mutation, WorldId};
use tokio::task::JoinSet;

use super::{CONCURRENCY, Plan, RECENT_LIMIT, config, world_id};

/// What one player's turns found.
#[derive(Debug, Default, Clone)]
struct Tally {
    reads: u64,
    hits: u64,
    writes: u64,
    stale: u64,
    misses: BTreeMap<KeyKind, u64>,
    unwritten_misses: u64,
}

impl Tally {
    fn add(&mut self, other: Tally) {
        self.reads += other.reads;
        self.hits += other.hits;
        self.writes += other.writes;
        self.stale += other.stale;
        for (kind, n) in other.misses {
            *self.misses.entry(kind).or_default() += n;
        }
        self.unwritten_misses += other.unwritten_misses;
    }

    fn misses_by_kind(&self) -> Vec<(String, u64)> {
        let mut kinds: Vec<_> = self
            .misses
            .iter()
            .map(|(k, &n)| (k.as_str().to_owned(), n))
            .collect();
        kinds.sort_by_key(|&(_, n)| std::cmp::Reverse(n));
        kinds
    }
}

type Record = Arc<Mutex<Freshness<CacheKey, Instant>>>;

/// One row per concurrency level, each measured after a warm-up at that
/// level, all in one world of the standard demo spec, activated first.
pub(crate) async fn players<S, R>(
    store: S,
    repo: &Arc<R>,
    source: &str,
    run: u64,
    plan: &Plan,
) -> Result<Vec<PlayersRow>>
where
    S: CacheStore + 'static,
    R: WorldRepository + 'static,
{
    let world = world_id("players", source, run)?;
    let spec = DemoSpec::standard();
    repo.load(&world, &spec.seed()).await?;
    let counters = Arc::new(Counters::new());
    let manager = CacheManager::builder(store, Arc::clone(repo))
        .config(config())
        .metrics(Arc::clone(&counters) as Arc<dyn MetricsSink>)
        .build()?;
    manager.activate(&world).await?;
    // Every acknowledged write of the run, warm-ups included: a counted
    // read must not be older than a write made during a warm-up either.
    let record: Record = Arc::new(Mutex::new(Freshness::new()));
    let turns = plan.player_turns as u64;
    let warmup = turns / 10;
    let mut rows = Vec::new();
    for (level, &players) in CONCURRENCY.iter().enumerate() {
        let seed = 0x91a7_e125 + 1_000 * level as u64;
        play(&manager, &world, &spec, &record, players, warmup, seed).await?;
        manager.settle().await;
        let before = counters.snapshot();
        let tally = play(&manager, &world, &spec, &record, players, turns, seed + 500).await?;
        manager.settle().await;
        let after = counters.snapshot();
        rows.push(PlayersRow {
            source: source.to_owned(),
            players,
            turns,
            warmup_turns: warmup,
            reads: tally.reads,
            hits: tally.hits,
            writes: tally.writes,
            fills_rejected: after.fills_rejected - before.fills_rejected,
            fallbacks: after.fallbacks - before.fallbacks,
            stale_reads: tally.stale,
            misses_by_kind: tally.misses_by_kind(),
            unwritten_key_misses: tally.unwritten_misses,
        });
    }
    manager.shutdown().await;
    Ok(rows)
}

/// `turns` turns shared by `players` concurrent tasks, each with its own
/// simulated player (Zipf(1.0) reads, 10% writes).
async fn play<S, R>(
    manager: &CacheManager<S, Arc<R>>,
    world: &WorldId,
    spec: &DemoSpec,
    record: &Record,
    players: usize,
    turns: u64,
    seed: u64,
) -> Result<Tally>
where
    S: CacheStore + 'static,
    R: WorldRepository + 'static,
{
    let mut tasks = JoinSet::new();
    let players_u64 = players.max(1) as u64;
    for p in 0..players_u64 {
        // The turns split as evenly as they go: the first ones take one
        // more when they do not divide.
        let mine = turns / players_u64 + u64::from(p < turns % players_u64);
        let sim = Simulation::new(*spec, seed + p).with_write_ratio(0.1);
        let (m, w, r) = (manager.clone(), world.clone(), Arc::clone(record));
        tasks.spawn(async move { player(m, w, r, sim, mine).await });
    }
    let mut total = Tally::default();
    while let Some(done) = tasks.join_next().await {
        total.add(done.context("a player task panicked")??);
    }
    Ok(total)
}

async fn player<S, R>(
    manager: CacheManager<S, Arc<R>>,
    world: WorldId,
    record: Record,
    mut sim: Simulation,
    turns: u64,
) -> Result<Tally>
where
    S: CacheStore + 'static,
    R: WorldRepository + 'static,
{
    let mut tally = Tally::default();
    for _ in 0..turns {
        let started = Instant::now();
        let (key, read) = match sim.next_action() {
            Action::ReadState => {
                let r = manager.world_state(&world).await?;
                (CacheKey::state(&world), (r.outcome, r.version))
            }
            Action::ReadFlags => {
                let r = manager.flags(&world).await?;
                (CacheKey::flags(&world), (r.outcome, r.version))
            }
            Action::ReadEntity(e) => {
                let r = manager.entity(&world, &e, Fields::Cacheable).await?;
                (CacheKey::entity(&world, &e), (r.outcome, r.version))
            }
            Action::ReadRecent(e) => {
                let r = manager.recent(&world, &e, RECENT_LIMIT).await?;
                (CacheKey::timeline(&world, &e), (r.outcome, r.version))
            }
            Action::Write(op) => {
                let written = manager
                    .apply(Mutation {
                        world: world.clone(),
                        op,
                    })
                    .await?;
                let acked = Instant::now();
                // The keys the commit changed (a put that replaced an
                // entity owes its timeline too, but did not change it).
                let keys = lwcache_domain::stale_keys(&written.committed);
                let mut record = record.lock().unwrap_or_else(PoisonError::into_inner);
                for key in keys {
                    record.acknowledged(key, acked, written.committed.version);
                }
                tally.writes += 1;
                continue;
            }
        };
        let (outcome, version) = read;
        let hit = matches!(outcome, Outcome::Hit | Outcome::Stale);
        tally.reads += 1;
        tally.hits += u64::from(hit);
        let record = record.lock().unwrap_or_else(PoisonError::into_inner);
        tally.stale += u64::from(record.is_stale(&key, started, version));
        if !hit {
            *tally.misses.entry(key.kind()).or_default() += 1;
            tally.unwritten_misses += u64::from(!record.was_written(&key));
        }
    }
    Ok(tally)
}
