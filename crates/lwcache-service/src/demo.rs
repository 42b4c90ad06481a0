//! `lwcache demo`: simulated players taking turns in the demo world through
//! the cache manager, each turn timed, for a number of turns or a duration.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use lwcache_core::{CounterSnapshot, Fields};
use lwcache_demo::{Action, DemoSpec, Simulation};
use lwcache_domain::{Mutation, WorldId};
use tokio::time::Instant;

use crate::backend::Manager;

/// When the demo stops.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// After this many turns, counted over all players.
    Turns(u64),
    /// After this long.
    After(Duration),
}

/// How the demo runs.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// The world played in.
    pub world: WorldId,
    /// The demo world's shape (the players act on its entities).
    pub spec: DemoSpec,
    /// When to stop.
    pub stop: Stop,
    /// Players taking turns at once, each on its own task.
    pub players: usize,
    /// The share of turns that write.
    pub write_ratio: f64,
    /// The seed of the players' choices.
    pub seed: u64,
}

/// Latencies of one operation.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatencyStats {
    /// How many were timed.
    pub count: usize,
    /// The median.
    pub p50: Duration,
    /// The 99th percentile.
    pub p99: Duration,
    /// How many failed.
    pub errors: usize,
}

/// What a demo run did.
#[derive(Debug, Clone, PartialEq)]
pub struct DemoReport {
    /// Turns taken.
    pub turns: u64,
    /// Reads among them.
    pub reads: u64,
    /// Writes among them.
    pub writes: u64,
    /// Turns that failed.
    pub errors: u64,
    /// Wall time.
    pub elapsed: Duration,
    /// Latencies by operation name (`read_entity`, `set_flag`, ...).
    pub latencies: BTreeMap<&'static str, LatencyStats>,
}

impl DemoReport {
    /// The share of reads served from the cache, `hits / reads`, from the
    /// manager's counters.
    pub fn hit_ratio(counters: &CounterSnapshot) -> f64 {
        let reads = counters.hits + counters.misses + counters.stale + counters.fallbacks;
        if reads == 0 {
            0.0
        } else {
            counters.hits as f64 / reads as f64
        }
    }
}

/// The nearest-rank percentile `p` (0..=100) of sorted durations.
pub fn percentile(sorted: &[Duration], p: usize) -> Duration {
    if sorted.is_empty() {
        return Duration::ZERO;
    }
    let rank = (p * sorted.len()).div_ceil(100).max(1);
    sorted[rank.min(sorted.len()) - 1]
}

#[derive(Default)]
struct Tally {
    samples: BTreeMap<&'static str, (Vec<Duration>, usize)>,
    reads: u64,
    writes: u64,
    errors: u64,
}

/// Runs the players. `done` counts finished turns as they happen, for a
/// progress display.
pub async fn run(manager: &Manager, options: &DemoOptions, done: Arc<AtomicU64>) -> DemoReport {
    let started = Instant::now();
    let deadline = match options.stop {
        Stop::After(d) => Some(started + d),
        Stop::Turns(_) => None,
    };
    let budget = Arc::new(AtomicU64::new(match options.stop {
        Stop::Turns(n) => n,
        Stop::After(_) => u64::MAX,
    }));
    let top_k = manager.config().policy.timeline_top_k;
    let mut tasks = Vec::new();
    for player in 0..options.players.max(1) {
        let manager = manager.clone();
        let world = options.world.clone();
        let budget = Arc::clone(&budget);
        let done = Arc::clone(&done);
        let mut sim = Simulation::new(options.spec, options.seed.wrapping_add(player as u64))
            .with_write_ratio(options.write_ratio);
        tasks.push(tokio::spawn(async move {
            let mut tally = Tally::default();
            loop {
                if deadline.is_some_and(|d| Instant::now() >= d) {
                    break;
                }
                // Take one turn from the shared budget, or stop.
                if budget
                    .fetch_update(Ordering::SeqCst, Ordering::SeqCst, |n| n.checked_sub(1))
                    .is_err()
                {
                    break;
                }
                let action = sim.next_action();
                let name = action.name();
                let t = Instant::now();
                let ok = match action {
                    Action::ReadState => manager.world_state(&world).await.is_ok(),
                    Action::ReadFlags => manager.flags(&world).await.is_ok(),
                    Action::ReadEntity(e) => {
                        manager.entity(&world, &e, Fields::Cacheable).await.is_ok()
                    }
                    Action::ReadRecent(e) => manager.recent(&world, &e, top_k).await.is_ok(),
                    Action::Write(op) => manager
                        .apply(Mutation {
                            world: world.clone(),
                            op,
                        })
                        .await
                        .is_ok(),
                };
                let elapsed = t.elapsed();
                if name.starts_with("read_") {
                    tally.reads += 1;
                } else {
                    tally.writes += 1;
                }
                let entry = tally.samples.entry(name).or_default();
                entry.0.push(elapsed);
                if !ok {
                    entry.1 += 1;
                    tally.errors += 1;
                }
                done.fetch_add(1, Ordering::Relaxed);
            }
            tally
        }));
    }
    let mut total = Tally::default();
    for task in tasks {
        // A player task that panicked took its tally with it; the turns it
        // made still show in the manager's counters.
        if let Ok(tally) = task.await {
            total.reads += tally.reads;
            total.writes += tally.writes;
            total.errors += tally.errors;
            for (name, (samples, errors)) in tally.samples {
                let entry = total.samples.entry(name).or_default();
                entry.0.extend(samples);
                entry.1 += errors;
            }
        }
    }
    // Let the write-behind queue finish, so that the counters are final.
    manager.settle().await;
    let latencies = total
        .samples
        .into_iter()
        .map(|(name, (mut samples, errors))| {
            samples.sort_unstable();
            let stats = LatencyStats {
                count: samples.len(),
                p50: percentile(&samples, 50),
                p99: percentile(&samples, 99),
                errors,
            };
            (name, stats)
        })
        .collect();
    DemoReport {
        turns: total.reads + total.writes,
        reads: total.reads,
        writes: total.writes,
        errors: total.errors,
        elapsed: started.elapsed(),
        latencies,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_use_the_nearest_rank() {
        let ms = |v: &[u64]| {
            v.iter()
                .map(|&m| Duration::from_millis(m))
                .collect::<Vec<_>>()
        };
        let hundred = ms(&(1..=100).collect::<Vec<_>>());
        assert_eq!(percentile(&hundred, 50), Duration::from_millis(50));
        assert_eq!(percentile(&hundred, 99), Duration::from_millis(99));
        assert_eq!(percentile(&ms(&[7]), 99), Duration::from_millis(7));
        assert_eq!(percentile(&ms(&[1, 2]), 50), Duration::from_millis(1));
        assert_eq!(percentile(&[], 50), Duration::ZERO);
    }
}
