//! The simulation's own checks: a seed replays exactly, the protocol passes,
//! every deliberately broken variant is caught within the quick budget, and
//! the known issues of the protocol fail when exposed (ignored until fixed).

mod known;

use lwcache_sim::{RunReport, SimConfig, Variant, run, shrink, sweep};

/// The quick mode's budget: 1,000,000 operations.
const QUICK_OPS: u64 = 1_000_000;

/// The first failing run of `count` seeds from 1 with `base`'s parameters.
fn first_failure(base: &SimConfig, count: u64) -> Option<RunReport> {
    let swept = sweep(base, 1, count, 1, 1).expect("the simulation runs");
    swept.failures.into_iter().next()
}

#[test]
fn a_seed_replays_exactly() {
    let mut config = SimConfig::new(7);
    config.ops = 600;
    config.keep_trace = true;
    let first = run(&config).expect("the simulation runs");
    let second = run(&config).expect("the simulation runs");
    assert!(
        first.trace.len() > 1000,
        "a run of 600 operations traces more"
    );
    assert!(first.stats.faults() > 0, "the default rates inject faults");
    assert_eq!(first.trace, second.trace);
    assert_eq!(first.trace_hash, second.trace_hash);
    assert_eq!(first.stats, second.stats);
    let mut other = config.clone();
    other.seed = 8;
    let third = run(&other).expect("the simulation runs");
    assert_ne!(
        first.trace_hash, third.trace_hash,
        "another seed, another run"
    );
}

#[test]
fn the_protocol_passes_a_few_seeds() {
    let mut base = SimConfig::new(1);
    base.ops = 500;
    let swept = sweep(&base, 1, 8, 2, 0).expect("the simulation runs");
    assert_eq!(swept.seeds, 8);
    assert!(swept.checked > 1000, "reads are checked: {}", swept.checked);
    let failures: Vec<_> = swept
        .failures
        .iter()
        .flat_map(|r| r.violations.iter().map(move |v| (r.seed, v.detail.clone())))
        .collect();
    assert!(failures.is_empty(), "{failures:#?}");
}

/// Every broken variant fails some seed of the quick budget.
fn caught(variant: Variant) -> RunReport {
    let mut base = SimConfig::new(1);
    base.variant = variant;
    let seeds = QUICK_OPS / base.ops;
    first_failure(&base, seeds).unwrap_or_else(|| {
        panic!(
            "{} passed {seeds} seeds: the oracle misses it",
            variant.as_str()
        )
    })
}

#[test]
fn a_store_that_takes_every_fill_is_caught() {
    let report = caught(Variant::FillsIgnoreLeases);
    assert!(report.failed());
}

#[test]
fn serving_a_timeline_behind_an_acknowledged_event_is_caught() {
    let report = caught(Variant::StaleWhileQueued);
    assert!(
        report
            .violations
            .iter()
            .any(|v| v.kind == lwcache_sim::ViolationKind::Stale),
        "{:#?}",
        report.violations
    );
}

#[test]
fn writes_that_owe_nothing_are_caught() {
    let report = caught(Variant::ForgetOwed);
    assert!(
        report
            .violations
            .iter()
            .all(|v| v.kind != lwcache_sim::ViolationKind::OutboxNotDrained),
        "nothing is owed, so nothing is left in the outbox: {:#?}",
        report.violations
    );
}

#[test]
fn shrinking_keeps_the_failure_with_fewer_operations() {
    let report = caught(Variant::StaleWhileQueued);
    let mut config = SimConfig::new(report.seed);
    config.variant = Variant::StaleWhileQueued;
    let (shortest, again) = shrink(&config).expect("the simulation runs");
    assert!(again.failed(), "the shortest run still fails");
    assert!(shortest.ops <= config.ops);
    assert_eq!(
        again.trace.len() as u64,
        again.trace_len,
        "its trace is kept"
    );
}
