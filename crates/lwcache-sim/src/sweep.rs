//! Many seeds at once, one runtime per seed, on a few threads; and the
//! shrinking of a failing seed: the same seed re-run with fewer operations
//! until it no longer fails, so that the trace printed is the shortest
//! found.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::config::SimConfig;
use crate::{RunReport, SimError, Stats, run};

/// The totals of a sweep.
#[derive(Debug, Clone, Default)]
pub struct Sweep {
    /// Seeds run.
    pub seeds: u64,
    /// Counts over every seed.
    pub stats: Stats,
    /// Reads checked.
    pub checked: u64,
    /// Reads stale inside the declared window.
    pub declared: u64,
    /// Violations matching a known issue (not exposed), by issue.
    pub known: std::collections::BTreeMap<&'static str, u64>,
    /// Simulated milliseconds, summed over seeds.
    pub sim_ms: u64,
    /// The runs that failed, by seed.
    pub failures: Vec<RunReport>,
}

/// Runs `count` seeds from `first` with the parameters of `base`, on
/// `threads` threads. `stop_at` failures end it early (0: never).
pub fn sweep(
    base: &SimConfig,
    first: u64,
    count: u64,
    threads: usize,
    stop_at: usize,
) -> Result<Sweep, SimError> {
    let next = AtomicU64::new(0);
    let total = Mutex::new(Sweep::default());
    let error: Mutex<Option<SimError>> = Mutex::new(None);
    std::thread::scope(|scope| {
        for _ in 0..threads.max(1) {
            scope.spawn(|| {
                loop {
                    let i = next.fetch_add(1, Ordering::SeqCst);
                    if i >= count {
                        return;
                    }
                    let mut config = base.clone();
                    config.seed = first + i;
                    let report = match run(&config) {
                        Ok(r) => r,
                        Err(e) => {
                            *error
                                .lock()
                                .unwrap_or_else(std::sync::PoisonError::into_inner) = Some(e);
                            next.store(count, Ordering::SeqCst);
                            return;
                        }
                    };
                    let mut t = total
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    t.seeds += 1;
                    t.stats.add(&report.stats);
                    t.checked += report.checked;
                    t.declared += report.declared;
                    t.sim_ms += report.sim_ms;
                    for v in &report.violations {
                        if let Some(k) = v.known {
                            *t.known.entry(k.as_str()).or_default() += 1;
                        }
                    }
                    if report.failed() {
                        t.failures.push(report);
                        if stop_at > 0 && t.failures.len() >= stop_at {
                            next.store(count, Ordering::SeqCst);
                        }
                    }
                }
            });
        }
    });
    if let Some(e) = error
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
    {
        return Err(e);
    }
    let mut sweep = total
        .into_inner()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    sweep.failures.sort_by_key(|r| r.seed);
    Ok(sweep)
}

/// Re-runs a failing configuration with fewer operations until it no
/// longer fails, and answers the failing run with the fewest operations,
/// its trace kept. A configuration that does not fail is answered as it
/// ran.
pub fn shrink(config: &SimConfig) -> Result<(SimConfig, RunReport), SimError> {
    let fails = |ops: u64| -> Result<bool, SimError> {
        let mut c = config.clone();
        c.ops = ops;
        c.keep_trace = false;
        Ok(run(&c)?.failed())
    };
    let mut hi = config.ops;
    if fails(hi)? {
        let mut lo = 0;
        // Halve while it still fails, then bisect the last step.
        while hi > 1 {
            let half = hi / 2;
            if fails(half)? {
                hi = half;
            } else {
                lo = half;
                break;
            }
        }
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if fails(mid)? {
                hi = mid;
            } else {
                lo = mid;
            }
        }
    }
    let mut shortest = config.clone();
    shortest.ops = hi;
    shortest.keep_trace = true;
    let report = run(&shortest)?;
    Ok((shortest, report))
}
