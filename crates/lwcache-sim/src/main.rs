//! `lwcache-sim`: runs the simulation over many seeds (or replays one) and
//! prints what it checked; exits 1 on a violation, after printing the
//! failing seed's shortest trace.
//!
//! ```text
//! lwcache-sim [--quick|--full] [--seeds N] [--first S] [--ops N]
//!             [--threads T] [--variant NAME] [--expose KNOWN,...] [--aim KNOWN]
//!             [--out DIR]
//! lwcache-sim --seed S [--ops N] [--variant NAME] [--expose KNOWN,...] [--aim KNOWN]
//!             [--out DIR]
//! ```
//!
//! `--expose` makes known issues fail the run; `--aim` exposes one and
//! raises the faults that meet it, as its regression test does.
//!
//! ```text
//! ```

#![allow(clippy::print_stdout, reason = "the report is the binary's output")]

use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use lwcache_sim::{Known, KnownIssue, RunReport, SimConfig, Variant, shrink, sweep};

/// Seeds of the quick mode: 1,000,000 operations at the default 2,000 per
/// seed.
const QUICK_SEEDS: u64 = 500;
/// Seeds of the full mode: 100,000,000 operations.
const FULL_SEEDS: u64 = 50_000;
/// Failing seeds shrunk and printed at most.
const SHOWN: usize = 3;
/// Trace lines printed before a violation.
const TAIL: usize = 60;

struct Args {
    seeds: u64,
    first: u64,
    one: Option<u64>,
    ops: u64,
    threads: usize,
    variant: Variant,
    known: Known,
    aim: Option<KnownIssue>,
    out: PathBuf,
}

fn parse() -> Result<Args, String> {
    let mut args = Args {
        seeds: QUICK_SEEDS,
        first: 1,
        one: None,
        ops: SimConfig::new(0).ops,
        threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        variant: Variant::Sound,
        known: Known::FIXED,
        aim: None,
        out: PathBuf::from("target/sim"),
    };
    let mut it = std::env::args().skip(1);
    let number = |it: &mut dyn Iterator<Item = String>, name: &str| -> Result<u64, String> {
        it.next()
            .and_then(|v| v.replace('_', "").parse().ok())
            .ok_or_else(|| format!("{name} needs a number"))
    };
    while let Some(arg) = it.next() {
        match arg.as_str() {
            "--quick" => args.seeds = QUICK_SEEDS,
            "--full" => args.seeds = FULL_SEEDS,
            "--seeds" => args.seeds = number(&mut it, "--seeds")?,
            "--first" => args.first = number(&mut it, "--first")?,
            "--seed" => args.one = Some(number(&mut it, "--seed")?),
            "--ops" => args.ops = number(&mut it, "--ops")?,
            "--threads" => args.threads = number(&mut it, "--threads")?.max(1) as usize,
            "--variant" => {
                let name = it.next().unwrap_or_default();
                args.variant = Variant::parse(&name).ok_or_else(|| {
                    format!("--variant: {name:?} is none of sound, fills-ignore-leases, stale-while-queued, forget-owed")
                })?;
            }
            "--expose" => {
                for name in it.next().unwrap_or_default().split(',') {
                    match name {
                        "all" => args.known = Known::ALL,
                        "recreate-after-delete" => args.known.recreate_after_delete = true,
                        "outage-for-everyone" => args.known.outage_for_everyone = true,
                        "commit-across-restart" => args.known.commit_across_restart = true,
                        other => {
                            return Err(format!(
                                "--expose: {other:?} is none of all, recreate-after-delete, outage-for-everyone, commit-across-restart"
                            ));
                        }
                    }
                }
            }
            "--aim" => {
                let name = it.next().unwrap_or_default();
                let issue = KnownIssue::parse(&name).ok_or_else(|| {
                    format!("--aim: {name:?} is none of recreate-after-delete, outage-for-everyone, commit-across-restart")
                })?;
                args.aim = Some(issue);
            }
            "--out" => {
                args.out = it
                    .next()
                    .map(PathBuf::from)
                    .ok_or("--out needs a directory")?
            }
            other => return Err(format!("unknown option {other:?}")),
        }
    }
    Ok(args)
}

fn main() -> ExitCode {
    let args = match parse() {
        Ok(a) => a,
        Err(e) => {
            eprintln!("lwcache-sim: {e}");
            return ExitCode::from(2);
        }
    };
    let mut base = args.aim.map_or_else(
        || SimConfig::new(args.first),
        |i| SimConfig::aimed_at(args.first, i),
    );
    base.ops = args.ops;
    base.variant = args.variant;
    base.known = args.aim.map_or(args.known, |i| args.known.with(i));
    let started = Instant::now();
    if let Some(seed) = args.one {
        return replay(&args, base, seed);
    }
    let swept = match sweep(&base, args.first, args.seeds, args.threads, SHOWN) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("lwcache-sim: {e}");
            return ExitCode::from(2);
        }
    };
    let wall = started.elapsed().as_secs_f64();
    let s = &swept.stats;
    println!(
        "lwcache-sim: {} seeds ({} to {}), {} instances, variant {}",
        swept.seeds,
        args.first,
        args.first + swept.seeds.saturating_sub(1),
        base.instances,
        base.variant.as_str()
    );
    println!(
        "operations {} ({} reads, {} writes acknowledged, {} refused, {} failed, {} activations, {} dropped by crashes)",
        s.ops,
        s.reads,
        s.writes_acked,
        s.writes_refused,
        s.writes_failed,
        s.activations,
        s.ops_dropped
    );
    println!(
        "reads checked {} ({} failed; {} stale inside the declared window of a failed cache step)",
        swept.checked, s.failed_reads, swept.declared
    );
    println!(
        "faults injected {}: {} store calls, {} source calls, {} crashes, {} store restarts, {} store outages, {} source outages; {} acknowledged writes' cache steps failed",
        s.faults(),
        s.store_faults,
        s.source_faults,
        s.crashes,
        s.store_restarts,
        s.store_outages,
        s.source_outages,
        s.steps_failed
    );
    println!(
        "violations {} (in {} seeds)",
        swept
            .failures
            .iter()
            .map(|r| r.violations.iter().filter(|v| v.known.is_none()).count())
            .sum::<usize>(),
        swept.failures.len()
    );
    if !swept.known.is_empty() {
        let known: Vec<String> = swept
            .known
            .iter()
            .map(|(k, n)| format!("{k} {n}"))
            .collect();
        println!(
            "known issues matched (reported, not failing; --expose NAME makes them fail): {}",
            known.join(", ")
        );
    }
    println!(
        "wall {wall:.1} s on {} threads: {:.0} simulated ops/s; {:.0} s simulated",
        args.threads,
        s.ops as f64 / wall.max(1e-9),
        swept.sim_ms as f64 / 1000.0
    );
    if swept.failures.is_empty() {
        return ExitCode::SUCCESS;
    }
    for failure in swept.failures.iter().take(SHOWN) {
        let mut config = base.clone();
        config.seed = failure.seed;
        show(&args, config);
    }
    ExitCode::from(1)
}

/// Replays one seed with its trace kept: prints the verdict and writes the
/// trace.
fn replay(args: &Args, mut config: SimConfig, seed: u64) -> ExitCode {
    config.seed = seed;
    config.keep_trace = true;
    let report = match lwcache_sim::run(&config) {
        Ok(r) => r,
        Err(e) => {
            eprintln!("lwcache-sim: {e}");
            return ExitCode::from(2);
        }
    };
    println!(
        "seed {seed}: {} operations, {} reads checked, {} faults, {} violations; trace of {} events, hash {:016x}",
        report.ops,
        report.checked,
        report.stats.faults(),
        report.violations.len(),
        report.trace_len,
        report.trace_hash
    );
    let path = write_trace(args, &config, &report);
    if report.failed() {
        print_violations(&report, path.as_deref());
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

/// Shrinks a failing seed and prints its shortest trace's end.
fn show(args: &Args, config: SimConfig) {
    let seed = config.seed;
    let (shortest, report) = match shrink(&config) {
        Ok(s) => s,
        Err(e) => {
            eprintln!("lwcache-sim: shrinking seed {seed}: {e}");
            return;
        }
    };
    println!();
    println!(
        "seed {seed} fails; shortest: {} operations (replay: cargo xtask sim --seed {seed} --ops {}{})",
        shortest.ops,
        shortest.ops,
        match args.aim {
            Some(issue) => format!(" --aim {}", issue.as_str()),
            None => flags(&shortest),
        }
    );
    let path = write_trace(args, &shortest, &report);
    print_violations(&report, path.as_deref());
}

/// The options that replay a configuration besides its seed and ops.
fn flags(config: &SimConfig) -> String {
    let mut out = String::new();
    if config.variant != Variant::Sound {
        out.push_str(&format!(" --variant {}", config.variant.as_str()));
    }
    let k = config.known;
    let exposed: Vec<&str> = [
        (k.recreate_after_delete, "recreate-after-delete"),
        (k.outage_for_everyone, "outage-for-everyone"),
        (k.commit_across_restart, "commit-across-restart"),
    ]
    .into_iter()
    .filter_map(|(on, name)| on.then_some(name))
    .collect();
    if !exposed.is_empty() {
        out.push_str(&format!(" --expose {}", exposed.join(",")));
    }
    out
}

fn print_violations(report: &RunReport, path: Option<&std::path::Path>) {
    let Some(first) = report
        .violations
        .iter()
        .find(|v| v.known.is_none())
        .or(report.violations.first())
    else {
        return;
    };
    for v in &report.violations {
        let known = v
            .known
            .map_or(String::new(), |k| format!(" (known: {})", k.as_str()));
        println!(
            "  violation {:?}{known} at event {}: {}",
            v.kind, v.at_event, v.detail
        );
    }
    let end = usize::try_from(first.at_event)
        .unwrap_or(usize::MAX)
        .min(report.trace.len());
    println!("  the trace's last {TAIL} events up to the first violation:");
    for event in &report.trace[end.saturating_sub(TAIL)..end] {
        println!("    {event}");
    }
    if let Some(path) = path {
        println!("  whole trace: {}", path.display());
    }
}

fn write_trace(args: &Args, config: &SimConfig, report: &RunReport) -> Option<PathBuf> {
    let path = args.out.join(format!(
        "seed-{}-{}-ops-{}.trace",
        config.seed,
        config.variant.as_str(),
        config.ops
    ));
    let text: String = report.trace.iter().map(|e| format!("{e}\n")).collect();
    let written = std::fs::create_dir_all(&args.out).and_then(|()| std::fs::write(&path, text));
    match written {
        Ok(()) => Some(path),
        Err(e) => {
            eprintln!("lwcache-sim: writing {}: {e}", path.display());
            None
        }
    }
}
