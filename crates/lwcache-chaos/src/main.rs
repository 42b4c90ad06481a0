//! `lwcache-chaos`: checks lwcache's read-your-writes claim from the
//! outside, as an ordinary client, while faults are injected.
//!
//! It starts its own redis-server and at least two `lwcache serve`
//! processes, each reaching Redis and Neo4j through its own
//! fault-injecting proxy (`lwcache_testkit::proxy`), runs writers and
//! readers over HTTP, injects the faults of a schedule, checks every read
//! against the recorded writes, and at the end compares every entry cached
//! in Redis with what Neo4j holds. `cargo xtask chaos` builds the binaries,
//! starts Neo4j and runs it; see `--help` for running it by hand.
//!
//! Topology: a standalone Redis, or (`--topology cluster`) a Redis Cluster
//! of three masters that the checker creates itself. Cluster clients
//! connect to the addresses the nodes announce, so each node announces its
//! proxy's port, and one proxy per master is shared by every instance: the
//! faults on Redis then reach every instance at once. The partition of one
//! instance from Redis has no such proxy to act on and is replaced by the
//! partition of one master from every instance.

mod converge;
mod declared;
mod procs;
mod workload;

use std::net::{SocketAddr, ToSocketAddrs};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use clap::{Parser, ValueEnum};
use lwcache_chaos::model::{KeyHistory, Outcome, Window};
use lwcache_chaos::render::{Convergence, Report, WriteCounts, to_markdown};
use lwcache_chaos::report::analyse;
use lwcache_testkit::proxy::{Fault, Proxy};
use tokio::sync::watch;

use crate::converge::Comparer;
use crate::declared::{NEAR_CACHE_BYTES, NEAR_MAX_LAG_MS, declared, notes};
use crate::procs::{ClusterProc, Redis, RedisProc, ServiceConfig, ServiceProc};
use crate::workload::Shared;

/// Command-line arguments.
#[derive(Debug, Parser)]
#[command(about = "lwcache's consistency checker under injected faults")]
struct Args {
    /// The `lwcache` binary.
    #[arg(long)]
    lwcache: PathBuf,
    /// Neo4j's Bolt URI (`bolt://127.0.0.1:PORT`); its host and port are
    /// proxied for each instance.
    #[arg(long)]
    neo4j_uri: String,
    /// Neo4j user.
    #[arg(long, default_value = "neo4j")]
    neo4j_user: String,
    /// Neo4j password.
    #[arg(long, default_value = "")]
    neo4j_password: String,
    /// The short run (the default): the schedule once, about 1.5 minutes.
    #[arg(long, conflicts_with = "full")]
    quick: bool,
    /// The long run: the schedule repeated until 1,000,000 reads are checked.
    #[arg(long)]
    full: bool,
    /// The workload's seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Service processes (at least 2).
    #[arg(long, default_value_t = 2)]
    instances: usize,
    /// The Redis topology.
    #[arg(long, value_enum, default_value = "standalone")]
    topology: Topology,
    /// Run every instance with its near cache on: its stale reads within
    /// the near cache's max_lag are declared, in every window, and their
    /// delay is reported.
    #[arg(long)]
    near: bool,
    /// Where `report.json`, `report.md` and the logs go.
    #[arg(long, default_value = "target/chaos")]
    out: PathBuf,
}

/// The Redis topology under the instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Topology {
    /// One redis-server.
    Standalone,
    /// A 3-master Redis Cluster, behind one proxy per master.
    Cluster,
}

impl Topology {
    fn name(self) -> &'static str {
        match self {
            Topology::Standalone => "standalone",
            Topology::Cluster => "cluster",
        }
    }
}

/// Sizes and durations of a mode.
struct Plan {
    mode: &'static str,
    worlds: usize,
    writers: usize,
    readers: usize,
    baseline: Duration,
    hold: Duration,
    gap: Duration,
    converge_bound: Duration,
    quiescence: Duration,
    final_bound: Duration,
    min_reads: u64,
    max_cycles: usize,
}

impl Plan {
    fn quick() -> Plan {
        Plan {
            mode: "quick",
            worlds: 2,
            writers: 6,
            readers: 12,
            baseline: Duration::from_secs(5),
            hold: Duration::from_secs(5),
            gap: Duration::from_secs(3),
            converge_bound: Duration::from_secs(4),
            quiescence: Duration::from_secs(2),
            final_bound: Duration::from_secs(10),
            min_reads: 0,
            max_cycles: 1,
        }
    }

    fn full() -> Plan {
        Plan {
            mode: "full",
            worlds: 4,
            writers: 12,
            readers: 24,
            baseline: Duration::from_secs(20),
            hold: Duration::from_secs(10),
            gap: Duration::from_secs(15),
            converge_bound: Duration::from_secs(10),
            quiescence: Duration::from_secs(5),
            final_bound: Duration::from_secs(30),
            min_reads: 1_000_000,
            max_cycles: 30,
        }
    }
}

/// What a fault does.
#[derive(Debug, Clone, Copy)]
enum Action {
    /// Every instance's Redis proxy.
    RedisProxies(Fault),
    /// One Redis proxy: one instance's (standalone), or one master's, which
    /// every instance goes through (Cluster).
    RedisProxy(usize, Fault),
    /// Every instance's Neo4j proxy.
    Neo4jProxies(Fault),
    /// SIGKILL redis-server (every master of a Cluster), start it again
    /// empty at the heal.
    RedisRestartEmpty,
    /// SIGKILL one instance, start it again at the heal (Redis is up then).
    KillService(usize),
}

/// The faults in order; `master` is the index of the Cluster master that
/// holds the first world, which the one-master partition cuts off.
fn schedule(instances: usize, topology: Topology, master: usize) -> Vec<(&'static str, Action)> {
    let one = match topology {
        Topology::Standalone => (
            "redis-partition-one-instance",
            Action::RedisProxy(0, Fault::Blackhole),
        ),
        Topology::Cluster => (
            "redis-partition-one-master",
            Action::RedisProxy(master, Fault::Blackhole),
        ),
    };
    vec![
        ("redis-partition", Action::RedisProxies(Fault::Blackhole)),
        (
            "redis-delay-150ms",
            Action::RedisProxies(Fault::Delay(Duration::from_millis(150))),
        ),
        ("redis-killed-restarted-empty", Action::RedisRestartEmpty),
        ("lwcache-sigkill", Action::KillService(instances - 1)),
        ("neo4j-partition", Action::Neo4jProxies(Fault::Blackhole)),
        one,
    ]
}

/// Everything the run owns; dropped at the end, which stops it all.
struct Rig {
    redis: Redis,
    /// One per instance (standalone) or one per master (Cluster).
    redis_proxies: Vec<Proxy>,
    neo4j_proxies: Vec<Proxy>,
    services: Vec<ServiceProc>,
    http: reqwest::Client,
}

impl Rig {
    async fn apply(&mut self, action: Action) -> Result<()> {
        match action {
            Action::RedisProxies(f) => self.redis_proxies.iter().for_each(|p| p.set_fault(f)),
            Action::RedisProxy(i, f) => self.redis_proxies[i].set_fault(f),
            Action::Neo4jProxies(f) => self.neo4j_proxies.iter().for_each(|p| p.set_fault(f)),
            Action::RedisRestartEmpty => self.redis.kill().await,
            Action::KillService(i) => self.services[i].kill().await,
        }
        Ok(())
    }

    async fn heal(&mut self, action: Action) -> Result<()> {
        match action {
            Action::RedisProxies(_) | Action::RedisProxy(..) => {
                self.redis_proxies
                    .iter()
                    .for_each(|p| p.set_fault(Fault::None));
            }
            Action::Neo4jProxies(_) => {
                self.neo4j_proxies
                    .iter()
                    .for_each(|p| p.set_fault(Fault::None));
            }
            Action::RedisRestartEmpty => self.redis.restart().await?,
            Action::KillService(i) => self.services[i].restart(&self.http).await?,
        }
        Ok(())
    }
}

fn main() -> ExitCode {
    let args = Args::parse();
    let runtime = match tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
    {
        Ok(r) => r,
        Err(e) => {
            eprintln!("lwcache-chaos: starting the runtime: {e}");
            return ExitCode::from(2);
        }
    };
    match runtime.block_on(run(&args)) {
        Ok(report) if report.passed => ExitCode::SUCCESS,
        Ok(_) => {
            eprintln!(
                "lwcache-chaos: FAILED: see {}",
                args.out.join("report.md").display()
            );
            ExitCode::from(1)
        }
        Err(e) => {
            eprintln!("lwcache-chaos: error: {e:#}");
            ExitCode::from(2)
        }
    }
}

fn socket_addr(uri: &str) -> Result<SocketAddr> {
    let rest = uri.split_once("://").map_or(uri, |(_, r)| r);
    let authority = rest.split(['/', '?']).next().unwrap_or_default();
    authority
        .to_socket_addrs()
        .with_context(|| format!("resolving {authority}"))?
        .next()
        .with_context(|| format!("{authority} resolves to nothing"))
}

/// Starts the Redis of `topology` and its proxies: one per instance in front
/// of a standalone server, one per master of a Cluster, started first so
/// that each master can announce its proxy's port.
async fn start_redis(
    topology: Topology,
    dir: &std::path::Path,
    instances: usize,
) -> Result<(Redis, Vec<Proxy>)> {
    match topology {
        Topology::Standalone => {
            let redis = RedisProc::start(dir).await?;
            let addr: SocketAddr = ([127, 0, 0, 1], redis.port()).into();
            let mut proxies = Vec::new();
            for _ in 0..instances {
                proxies.push(Proxy::start(addr).await?);
            }
            Ok((Redis::Standalone(Box::new(redis)), proxies))
        }
        Topology::Cluster => {
            let ports = ClusterProc::ports()?;
            let mut proxies = Vec::new();
            for &port in &ports {
                proxies.push(Proxy::start(([127, 0, 0, 1], port).into()).await?);
            }
            let announced: Vec<u16> = proxies.iter().map(|p| p.addr().port()).collect();
            let cluster = ClusterProc::start(dir, &ports, &announced).await?;
            Ok((Redis::Cluster(cluster), proxies))
        }
    }
}

/// The `lwcache serve` arguments that name instance `i`'s Redis.
fn redis_args(topology: Topology, proxies: &[Proxy], i: usize) -> [String; 2] {
    match topology {
        Topology::Standalone => [
            "--redis-url".to_owned(),
            format!("redis://{}", proxies[i].addr()),
        ],
        Topology::Cluster => [
            "--redis-cluster".to_owned(),
            proxies
                .iter()
                .map(|p| format!("redis://{}", p.addr()))
                .collect::<Vec<_>>()
                .join(","),
        ],
    }
}

async fn run(args: &Args) -> Result<Report> {
    if args.instances < 2 {
        bail!("--instances must be at least 2");
    }
    let plan = if args.full {
        Plan::full()
    } else {
        Plan::quick()
    };
    let logs = args.out.join("logs");
    std::fs::create_dir_all(&logs).with_context(|| format!("creating {}", logs.display()))?;
    let http = reqwest::Client::builder()
        .timeout(Duration::from_secs(3))
        .pool_idle_timeout(Duration::from_secs(5))
        .build()?;

    let (redis, redis_proxies) =
        start_redis(args.topology, &args.out.join("redis"), args.instances).await?;
    let neo4j_addr = socket_addr(&args.neo4j_uri)?;
    let mut rig = Rig {
        redis,
        redis_proxies,
        neo4j_proxies: Vec::new(),
        services: Vec::new(),
        http: http.clone(),
    };
    for i in 0..args.instances {
        let np = Proxy::start(neo4j_addr).await?;
        let config = ServiceConfig {
            binary: args.lwcache.clone(),
            redis_args: redis_args(args.topology, &rig.redis_proxies, i),
            neo4j_uri: format!("bolt://{}", np.addr()),
            neo4j_user: args.neo4j_user.clone(),
            neo4j_password: args.neo4j_password.clone(),
            log: logs.join(format!("lwcache-{i}.log")),
            extra_args: if args.near {
                vec![
                    "--near-cache-bytes".to_owned(),
                    NEAR_CACHE_BYTES.to_string(),
                    "--near-max-lag-ms".to_owned(),
                    NEAR_MAX_LAG_MS.to_string(),
                ]
            } else {
                Vec::new()
            },
        };
        rig.neo4j_proxies.push(np);
        rig.services.push(ServiceProc::start(config, &http).await?);
    }
    eprintln!(
        "lwcache-chaos: {} instances up: {}",
        rig.services.len(),
        rig.services
            .iter()
            .map(ServiceProc::base)
            .collect::<Vec<_>>()
            .join(", ")
    );
    let mut comparer = Comparer::connect(
        &rig.redis.urls(),
        &args.neo4j_uri,
        &args.neo4j_user,
        &args.neo4j_password,
    )
    .await?;

    let run_id = format!(
        "chaos-{}-{}",
        args.seed,
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs())
    );
    let keys = workload::keys(&run_id, plan.worlds);
    let bases: Vec<String> = rig.services.iter().map(ServiceProc::base).collect();
    workload::setup(&http, &bases[0], &keys).await?;
    // A checker that cannot see a wrong entry would pass everything.
    let probe = format!("lw:world:{{{run_id}-w0}}:character:c0:state");
    comparer.self_check(&probe).await?;
    let master = comparer.owner_index(&probe).await?;

    let (paused, _) = watch::channel(false);
    let shared = Arc::new(Shared {
        http: http.clone(),
        bases,
        keys,
        epoch: Instant::now(),
        stop: AtomicBool::new(false),
        paused,
        reads_ok: AtomicU64::new(0),
    });
    let mut writers = Vec::new();
    for w in 0..plan.writers {
        let mine: Vec<usize> = (0..shared.keys.len())
            .filter(|k| k % plan.writers == w)
            .collect();
        let seed = args.seed.wrapping_mul(1_000).wrapping_add(w as u64);
        writers.push(tokio::spawn(workload::writer(
            Arc::clone(&shared),
            mine,
            seed,
        )));
    }
    let mut readers = Vec::new();
    for r in 0..plan.readers {
        let seed = args.seed.wrapping_mul(1_000).wrapping_add(500 + r as u64);
        readers.push(tokio::spawn(workload::reader(Arc::clone(&shared), seed)));
    }

    tokio::time::sleep(plan.baseline).await;
    let mut windows: Vec<Window> = Vec::new();
    let mut converged_after: Vec<(Option<u64>, Vec<String>)> = Vec::new();
    'cycles: for cycle in 0..plan.max_cycles {
        for (name, action) in schedule(args.instances, args.topology, master) {
            let name = if plan.max_cycles > 1 {
                format!("{name}#{}", cycle + 1)
            } else {
                name.to_owned()
            };
            eprintln!("lwcache-chaos: {name}");
            let start_us = shared.now_us();
            rig.apply(action).await?;
            tokio::time::sleep(plan.hold).await;
            rig.heal(action).await?;
            if matches!(action, Action::RedisRestartEmpty) {
                comparer.reconnect_redis(&rig.redis.urls()).await?;
            }
            let heal_us = shared.now_us();
            // Convergence with the writers paused: what the cache still
            // gets wrong once the fault is gone and nothing new is written.
            shared.paused.send_replace(true);
            let (took, last) = comparer.until_equal(plan.converge_bound).await;
            shared.paused.send_replace(false);
            converged_after.push((
                took.map(|_| (shared.now_us() - heal_us) / 1000),
                last.mismatches.into_iter().take(5).collect(),
            ));
            windows.push(Window {
                name,
                start_us,
                heal_us,
                end_us: u64::MAX,
            });
            tokio::time::sleep(plan.gap).await;
        }
        if shared.reads_ok.load(Ordering::Relaxed) >= plan.min_reads {
            break 'cycles;
        }
    }
    eprintln!("lwcache-chaos: quiescence and the final comparison");
    shared.paused.send_replace(true);
    tokio::time::sleep(plan.quiescence).await;
    let (took, last) = comparer.until_equal(plan.final_bound).await;
    shared.stop.store(true, Ordering::Relaxed);
    let run_end_us = shared.now_us();
    for i in 0..windows.len() {
        windows[i].end_us = windows.get(i + 1).map_or(run_end_us, |w| w.start_us);
    }

    let mut histories = vec![KeyHistory::default(); shared.keys.len()];
    for w in writers {
        for (k, h) in w.await? {
            histories[k] = h;
        }
    }
    let mut reads = Vec::new();
    for r in readers {
        reads.extend(r.await?);
    }
    let specs: Vec<_> = shared.keys.iter().map(|k| k.spec.clone()).collect();
    let mut analysis = analyse(
        &specs,
        &histories,
        &reads,
        &windows,
        run_end_us,
        &declared(args.topology),
        args.near.then_some(NEAR_MAX_LAG_MS),
    );
    for (w, (took, different)) in analysis.windows.iter_mut().skip(1).zip(converged_after) {
        w.converged_after_heal_ms = took;
        w.still_different = different;
    }
    let mut writes = WriteCounts::default();
    for h in &histories {
        for w in h.writes() {
            writes.attempted += 1;
            match w.outcome {
                Outcome::Acked { .. } => writes.acked += 1,
                Outcome::Unknown => writes.unknown += 1,
            }
        }
    }
    let mut report = Report {
        mode: plan.mode.to_owned(),
        seed: args.seed,
        topology: args.topology.name().to_owned(),
        instances: args.instances,
        duration_ms: run_end_us / 1000,
        writes,
        reads: reads.len() as u64,
        analysis,
        convergence: Convergence {
            converged: took.is_some(),
            after_ms: took.map(|d| d.as_millis() as u64),
            bound_ms: plan.final_bound.as_millis() as u64,
            keys_compared: last.compared,
            mismatch_count: last.mismatches.len() as u64,
            mismatches: last.mismatches.into_iter().take(10).collect(),
        },
        notes: notes(&plan, args.topology, args.near),
        passed: false,
    };
    report.judge();
    drop(rig);
    write_outputs(&args.out, &report)?;
    Ok(report)
}

fn write_outputs(out: &std::path::Path, report: &Report) -> Result<()> {
    std::fs::create_dir_all(out).with_context(|| format!("creating {}", out.display()))?;
    let json = serde_json::to_string_pretty(report)?;
    std::fs::write(out.join("report.json"), json + "\n")?;
    let markdown = to_markdown(report);
    std::fs::write(out.join("report.md"), &markdown)?;
    #[allow(
        clippy::print_stdout,
        reason = "the report is the program's output; progress goes to stderr"
    )]
    {
        println!("{markdown}");
    }
    Ok(())
}
