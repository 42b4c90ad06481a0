//! `lwcache demo`: the players' run, its progress bar and its summary.

use std::io::{IsTerminal, Write as _};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::Duration;

use anyhow::{Context, Result, bail};
use lwcache_core::Counters;
use lwcache_core::metrics::Both;
use lwcache_demo::DemoSpec;
use lwcache_domain::WorldId;
use lwcache_service::backend::Backends;
use lwcache_service::config::Settings;
use lwcache_service::demo::{self, DemoOptions, DemoReport, Stop};
use lwcache_service::telemetry::Telemetry;

use super::DemoArgs;

/// Draws a progress bar on stderr while `done` grows, when stderr is a
/// terminal; otherwise stays quiet.
fn progress(
    done: Arc<AtomicU64>,
    stop: Stop,
    finished: Arc<AtomicBool>,
) -> std::thread::JoinHandle<()> {
    std::thread::spawn(move || {
        if !std::io::stderr().is_terminal() {
            return;
        }
        let started = std::time::Instant::now();
        let width = 30usize;
        loop {
            let turns = done.load(Ordering::Relaxed);
            let (fraction, label) = match stop {
                Stop::Turns(n) => (turns as f64 / n.max(1) as f64, format!("{turns}/{n} turns")),
                Stop::After(d) => {
                    let e = started.elapsed();
                    (
                        e.as_secs_f64() / d.as_secs_f64(),
                        format!(
                            "{:.0}/{:.0} s, {turns} turns",
                            e.as_secs_f64(),
                            d.as_secs_f64()
                        ),
                    )
                }
            };
            let filled = ((fraction.clamp(0.0, 1.0)) * width as f64) as usize;
            let mut err = std::io::stderr().lock();
            let _ = write!(
                err,
                "\r[{}{}] {label}   ",
                "#".repeat(filled),
                "-".repeat(width - filled)
            );
            let _ = err.flush();
            if finished.load(Ordering::Relaxed) {
                let _ = writeln!(err);
                return;
            }
            drop(err);
            std::thread::sleep(Duration::from_millis(100));
        }
    })
}

pub(super) async fn run_demo(
    settings: Settings,
    telemetry: Telemetry,
    args: DemoArgs,
) -> Result<()> {
    if args.players == 0 {
        bail!("--players must be at least 1");
    }
    if !(0.0..=1.0).contains(&args.write_ratio) {
        bail!(
            "--write-ratio must be between 0 and 1, not {}",
            args.write_ratio
        );
    }
    let world = WorldId::new(args.world.clone()).context("--world")?;
    let stop = match (args.turns, args.duration) {
        (Some(n), _) => Stop::Turns(n),
        (None, Some(d)) => Stop::After(d),
        (None, None) => Stop::After(Duration::from_secs(10)),
    };
    let backends = Backends::open(&settings.backends).await?;
    let counters = Arc::new(Counters::new());
    let manager = backends.manager(Arc::new(Both(Arc::clone(&counters), telemetry.metrics())))?;
    let spec = DemoSpec::standard();
    if let Some(version) = backends.ensure_demo(&manager, &world, &spec).await? {
        eprintln!("loaded the demo world as {world} (version {version})");
    }
    let warm = manager.activate(&world).await?;
    let done = Arc::new(AtomicU64::new(0));
    let finished = Arc::new(AtomicBool::new(false));
    let bar = progress(Arc::clone(&done), stop, Arc::clone(&finished));
    let options = DemoOptions {
        world,
        spec,
        stop,
        players: args.players,
        write_ratio: args.write_ratio,
        seed: args.seed,
    };
    let report = demo::run(&manager, &options, done).await;
    finished.store(true, Ordering::Relaxed);
    let _ = bar.join();
    manager.shutdown().await;
    print_summary(
        &report,
        &counters.snapshot(),
        &backends,
        args.players,
        warm.keys,
    );
    telemetry.shutdown();
    if report.errors > 0 {
        bail!("{} of {} turns failed", report.errors, report.turns);
    }
    Ok(())
}

fn print_summary(
    report: &DemoReport,
    c: &lwcache_core::CounterSnapshot,
    backends: &Backends,
    players: usize,
    warmed_keys: usize,
) {
    let secs = report.elapsed.as_secs_f64();
    println!(
        "lwcache demo: {} turns by {players} players in {secs:.3} s ({:.0} turns/s) on {} over {}",
        report.turns,
        report.turns as f64 / secs.max(1e-9),
        backends.cache,
        backends.source,
    );
    println!(
        "operations: {} (reads {}, writes {}, errors {})",
        report.turns, report.reads, report.writes, report.errors
    );
    println!(
        "cache: hits {}, misses {}, stale {}, fallbacks {}; hit ratio {:.1}%",
        c.hits,
        c.misses,
        c.stale,
        c.fallbacks,
        DemoReport::hit_ratio(c) * 100.0
    );
    println!("invalidations: {}", c.invalidations);
    println!(
        "warm count: {} ({warmed_keys} keys at activation)",
        c.warm_count
    );
    println!(
        "{:<18} {:>8} {:>7} {:>10} {:>10}",
        "operation", "count", "errors", "p50 ms", "p99 ms"
    );
    for (name, s) in &report.latencies {
        println!(
            "{name:<18} {:>8} {:>7} {:>10.3} {:>10.3}",
            s.count,
            s.errors,
            s.p50.as_secs_f64() * 1000.0,
            s.p99.as_secs_f64() * 1000.0
        );
    }
}
