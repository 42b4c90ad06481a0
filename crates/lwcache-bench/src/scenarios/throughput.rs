//! Throughput: reads per second at several concurrencies, lwcache hits
//! against redis-rs GETs and `redis-benchmark` GETs of the same key.

use std::future::Future;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use lwcache_bench::report::ThroughputRow;
use lwcache_core::CacheManager;
use lwcache_core::ports::{CacheStore, WorldRepository};
use lwcache_domain::{CacheKey, EntityRef, WorldId};

use super::cpu::{output_with_cores, per_request_us_at};
use super::reads::{ReadApi, cached_read};
use super::{CONCURRENCY, Plan};
use crate::args::redis_host_port;

/// Runs `total` reads shared by `c` tasks; returns how many ran and how
/// long they took. Each task makes its next read's future when the last
/// one is done, as a caller does: a future made ahead is as large as its
/// whole state machine, and tens of thousands of them waiting would measure
/// memory traffic, more for the side whose futures are larger.
async fn run_tasks<F, Fut>(c: usize, total: usize, read: F) -> Result<(usize, Duration)>
where
    F: Fn() -> Fut + Clone + Send + 'static,
    Fut: Future<Output = Result<()>> + Send + 'static,
{
    let per_task = (total / c).max(1);
    let started = Instant::now();
    let tasks: Vec<_> = (0..c)
        .map(|_| {
            let read = read.clone();
            tokio::spawn(async move {
                for _ in 0..per_task {
                    read().await?;
                }
                Ok::<_, anyhow::Error>(())
            })
        })
        .collect();
    for t in tasks {
        t.await??;
    }
    Ok((per_task * c, started.elapsed()))
}

/// Throughput is measured in this many alternating rounds per side, so
/// that a change in the machine's load hits both sides alike.
const ROUNDS: usize = 5;

/// Read throughput at 1, 16 and 64 concurrent tasks: lwcache hits, raw
/// redis-rs GETs, and `redis-benchmark` GETs of the same key.
#[allow(
    clippy::too_many_arguments,
    reason = "one scenario's inputs, each named at its two call sites"
)]
pub(crate) async fn throughput<S, R, C: super::Raw>(
    manager: &CacheManager<S, R>,
    raw: &C,
    redis_url: &str,
    redis_benchmark: &std::path::Path,
    world: &WorldId,
    entity: &EntityRef,
    plan: &Plan,
    topology: &str,
) -> Result<(Vec<ThroughputRow>, Option<String>)>
where
    S: CacheStore + 'static,
    R: WorldRepository + 'static,
{
    let key = CacheKey::entity(world, entity).to_string();
    // A cache call that outlives the manager's cache timeout (a scheduling
    // stall on a loaded machine) falls back to the source: counted and
    // reported, not fatal, unless it stops being rare.
    let fallbacks = Arc::new(AtomicU64::new(0));
    let hit = {
        let (m, w, e, f) = (
            manager.clone(),
            world.clone(),
            entity.clone(),
            Arc::clone(&fallbacks),
        );
        move || cached_read(&m, &w, &e, Some(&f), ReadApi::Shared)
    };
    let get = {
        let (raw, key) = (raw.clone(), key.clone());
        move || {
            let (mut c, k) = (raw.clone(), key.clone());
            async move {
                let bytes: Option<Vec<u8>> = redis::cmd("GET").arg(&k).query_async(&mut c).await?;
                ensure!(bytes.is_some(), "{k} is not cached");
                Ok(())
            }
        }
    };
    let mut rows = Vec::new();
    let mut problem = None;
    for c in CONCURRENCY {
        let total = if c == 1 {
            plan.throughput
        } else {
            plan.throughput_concurrent
        };
        // A short untimed round of each first, at the same concurrency.
        run_tasks(c, total / 10, hit.clone()).await?;
        run_tasks(c, total / 10, get.clone()).await?;
        let (mut lw, mut raw_rs) = ((0, Duration::ZERO), (0, Duration::ZERO));
        // redis-benchmark's requests and the time they took at its rate.
        let mut bench = Some((0, Duration::ZERO));
        fallbacks.store(0, Ordering::Relaxed);
        for _ in 0..ROUNDS {
            let (n, t) = run_tasks(c, total / ROUNDS, hit.clone()).await?;
            lw = (lw.0 + n, lw.1 + t);
            let (n, t) = run_tasks(c, total / ROUNDS, get.clone()).await?;
            raw_rs = (raw_rs.0 + n, raw_rs.1 + t);
            if let Some((n, t)) = bench {
                let requests = total / ROUNDS;
                bench = match run_redis_benchmark(redis_benchmark, redis_url, c, requests, &key)
                    .await
                {
                    Ok(ops) => Some((
                        n + requests,
                        t + Duration::from_secs_f64(requests as f64 / ops),
                    )),
                    Err(e) => {
                        problem = Some(format!("{e:#}"));
                        None
                    }
                };
            }
        }
        let fell_back = fallbacks.load(Ordering::Relaxed);
        ensure!(
            fell_back * 100 <= lw.0 as u64,
            "{fell_back} of {} reads at {c} tasks fell back to the source: the cache is not answering",
            lw.0
        );
        let per_s = |(n, t): (usize, Duration)| n as f64 / t.as_secs_f64();
        let benchmark = bench.map(per_s);
        rows.push(ThroughputRow {
            topology: topology.to_owned(),
            concurrency: c,
            requests: lw.0 as u64,
            lwcache_ops_per_s: per_s(lw),
            redis_rs_ops_per_s: per_s(raw_rs),
            lwcache_fallbacks: fell_back,
            redis_benchmark_ops_per_s: benchmark,
        });
    }
    Ok((rows, problem))
}

/// Runs `redis-benchmark -c <c> -n <total> -q --csv GET <key>` and returns
/// its requests per second.
pub(super) async fn run_redis_benchmark(
    program: &std::path::Path,
    redis_url: &str,
    c: usize,
    total: usize,
    key: &str,
) -> Result<f64> {
    Ok(run_redis_benchmark_cpu(program, redis_url, c, total, key)
        .await?
        .0)
}

/// Like [`run_redis_benchmark`], with the CPU time redis-benchmark itself
/// spent per GET, in µs, when it could be read.
pub(super) async fn run_redis_benchmark_cpu(
    program: &std::path::Path,
    redis_url: &str,
    c: usize,
    total: usize,
    key: &str,
) -> Result<(f64, Option<f64>)> {
    let (host, port) = redis_host_port(redis_url)
        .context("redis-benchmark needs a plain redis://host:port URL")?;
    let mut command = Command::new(program);
    command.args([
        "-h",
        &host,
        "-p",
        &port.to_string(),
        "-c",
        &c.to_string(),
        "-n",
        &total.to_string(),
        "-q",
        "--csv",
        "GET",
        key,
    ]);
    let (output, cores) = tokio::task::spawn_blocking(move || output_with_cores(&mut command))
        .await?
        .with_context(|| format!("running {}", program.display()))?;
    ensure!(
        output.status.success(),
        "redis-benchmark failed: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    let per_s = parse_redis_benchmark_csv(&String::from_utf8_lossy(&output.stdout))?;
    Ok((per_s, per_request_us_at(cores, per_s)))
}

/// The requests per second of the first data row of `redis-benchmark
/// --csv` output (`"test","rps",...` then `"GET ...","12345.67",...`).
fn parse_redis_benchmark_csv(text: &str) -> Result<f64> {
    let row = text
        .lines()
        .map(str::trim)
        .find(|l| !l.is_empty() && !l.starts_with("\"test\""))
        .context("redis-benchmark printed no result row")?;
    let rps = row
        .split(',')
        .nth(1)
        .map(|f| f.trim_matches('"'))
        .context("redis-benchmark's row has no rps column")?;
    let value: f64 = rps
        .parse()
        .with_context(|| format!("redis-benchmark's rps {rps:?}"))?;
    ensure!(
        value.is_finite() && value > 0.0,
        "redis-benchmark's rps {rps:?} is not a positive rate"
    );
    Ok(value)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn redis_benchmark_csv_is_read() {
        let out = "\"test\",\"rps\",\"avg_latency_ms\"\n\"GET lw:world:{x}:state\",\"30911.90\",\"0.343\"\n";
        assert!((parse_redis_benchmark_csv(out).unwrap() - 30_911.9).abs() < 1e-6);
        assert!(parse_redis_benchmark_csv("\"test\",\"rps\"\n").is_err());
        assert!(parse_redis_benchmark_csv("\"GET\",\"0.00\"\n").is_err());
    }
}
