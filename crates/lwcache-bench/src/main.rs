//! `lwcache-bench`: measures lwcache against its baselines on real servers
//! and writes the JSON report, the markdown page and the SVG chart.
//!
//! `cargo xtask bench` starts the servers and runs this binary with their
//! addresses; see `--help` for running it against servers of your own.

mod args;
mod counting;
mod machine;
mod scenarios;
mod targets;

use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result};
use lwcache_bench::report::{self, NotMeasured, Report};
use lwcache_bench::{date, render};
use lwcache_core::CacheManager;
use lwcache_core::ports::WorldRepository;
use lwcache_demo::DemoSpec;
use lwcache_memory::MemoryRepository;
use lwcache_neo4j::{Neo4jConfig, Neo4jRepository};
use lwcache_redis::{RedisConfig, RedisStore};
use redis::aio::{ConnectionManager, ConnectionManagerConfig};

use crate::args::{Args, Runtime, USAGE};
use crate::scenarios::Plan;

fn main() -> Result<()> {
    let Some(args) = Args::parse(std::env::args().skip(1))? else {
        eprintln!("{USAGE}");
        return Ok(());
    };
    let runtime = match args.runtime {
        Runtime::CurrentThread => tokio::runtime::Builder::new_current_thread(),
        Runtime::MultiThread => tokio::runtime::Builder::new_multi_thread(),
    }
    .enable_all()
    .build()
    .context("starting the tokio runtime")?;
    let report = runtime.block_on(run(&args))?;
    write_outputs(&args, &report)
}

fn write_outputs(args: &Args, report: &Report) -> Result<()> {
    if let Some(dir) = args.out.parent() {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let json = serde_json::to_string_pretty(&render::to_json(report))?;
    std::fs::write(&args.out, json + "\n")
        .with_context(|| format!("writing {}", args.out.display()))?;
    std::fs::create_dir_all(&args.docs)
        .with_context(|| format!("creating {}", args.docs.display()))?;
    let markdown = render::to_markdown(report, &args.out.display().to_string());
    let page = args.docs.join("README.md");
    std::fs::write(&page, &markdown).with_context(|| format!("writing {}", page.display()))?;
    let chart = args.docs.join(render::CHART_FILE);
    std::fs::write(&chart, render::to_svg(report, &subtitle(report)))
        .with_context(|| format!("writing {}", chart.display()))?;
    #[allow(
        clippy::print_stdout,
        reason = "the report is the program's output; progress goes to stderr"
    )]
    {
        println!("{markdown}");
    }
    eprintln!(
        "wrote {}, {} and {}",
        args.out.display(),
        page.display(),
        chart.display()
    );
    Ok(())
}

fn subtitle(report: &Report) -> String {
    let get = |k: &str| {
        report
            .environment
            .iter()
            .find(|(name, _)| name == k)
            .map_or("?", |(_, v)| v.as_str())
    };
    format!(
        "{} mode, {}; {} ({} logical cores); redis-server {} on loopback",
        report.mode,
        get("date"),
        get("CPU"),
        get("logical cores"),
        get("redis-server"),
    )
}

async fn run(args: &Args) -> Result<Report> {
    let plan = Plan::for_mode(args.mode);
    let started = std::time::Instant::now();
    let run_id = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let load_before = machine::load_average();
    let date = date::now_utc();

    // Both sides wait up to the same 2 s for a reply (instead of 500 ms),
    // like the managers' cache timeout: a stall is measured, not failed.
    let raw = ConnectionManager::new_with_config(
        redis::Client::open(args.redis_url.as_str())?,
        ConnectionManagerConfig::new().set_response_timeout(Some(scenarios::REPLY_TIMEOUT)),
    )
    .await
    .context("connecting to Redis")?;
    let mut store_config = RedisConfig::from_url(&args.redis_url)?;
    store_config.response_timeout = scenarios::REPLY_TIMEOUT;
    let store = RedisStore::connect(&store_config)
        .await
        .context("connecting the Redis store")?;
    let redis_version = scenarios::redis_version(&raw).await?;

    let mut report = Report {
        mode: args.mode.as_str().to_owned(),
        ..Report::default()
    };

    // The Redis tier: the repository is not on the hit path, so an
    // in-memory one holds the world these scenarios read.
    let memory = Arc::new(MemoryRepository::new());
    let manager = CacheManager::builder(store.clone(), Arc::clone(&memory))
        .config(scenarios::config())
        .build()?;
    let read_world = scenarios::world_id("read", "memory", run_id)?;
    let spec = DemoSpec::standard();
    memory.load(&read_world, &spec.seed()).await?;
    manager.activate(&read_world).await?;
    // A character that is not a player: its whole state is cacheable.
    let entity = spec.character(spec.players);

    eprintln!(
        "[{:>5.1} s] cached read vs redis-rs GET",
        started.elapsed().as_secs_f64()
    );
    let read =
        scenarios::read_hit_vs_get(&manager, &raw, &read_world, &entity, &plan, "standalone")
            .await?;
    let decode_us = scenarios::decode_cost_us(
        &raw,
        &lwcache_domain::CacheKey::entity(&read_world, &entity),
    )
    .await?;
    report.targets = targets::read(&read, decode_us, &load_before);
    report.latency.push(read);

    eprintln!(
        "[{:>5.1} s] a 14-key turn: batched vs MGET vs single reads",
        started.elapsed().as_secs_f64()
    );
    let turn =
        scenarios::turn_warm(&manager, &raw, &read_world, &spec, &plan, "standalone").await?;
    report.targets.extend(targets::turn(&turn));
    report.latency.extend(turn);

    // The same rows again with the store's read batching on, as the service
    // runs it: what it saves and what it costs at each concurrency.
    let batched = RedisStore::connect(&store_config.clone().with_read_batching(true))
        .await
        .context("connecting the batching Redis store")?;
    let batched = CacheManager::builder(batched, Arc::clone(&memory))
        .config(scenarios::config())
        .build()?;
    for (m, topology) in [(&manager, "standalone"), (&batched, scenarios::BATCHED)] {
        eprintln!(
            "[{:>5.1} s] throughput at 1, 16, 64 tasks, {topology}",
            started.elapsed().as_secs_f64()
        );
        let (rows, problem) = scenarios::throughput(
            m,
            &raw,
            &args.redis_url,
            &args.redis_benchmark,
            &read_world,
            &entity,
            &plan,
            topology,
        )
        .await?;
        report.throughput.extend(rows);
        if let Some(problem) = problem {
            report.not_measured.push(NotMeasured {
                scenario: format!("redis-benchmark baseline, {topology}"),
                why: problem,
            });
        }
    }

    if let Some(urls) = &args.redis_cluster {
        eprintln!(
            "[{:>5.1} s] the Redis-tier rows on the 3-master Cluster",
            started.elapsed().as_secs_f64()
        );
        let cluster = scenarios::cluster_rows(urls, &args.redis_benchmark, &plan, run_id).await?;
        report.targets.extend(targets::turn(&cluster.latency));
        report.latency.extend(cluster.latency);
        report.throughput.extend(cluster.throughput);
        if let Some(problem) = cluster.problem {
            report.not_measured.push(NotMeasured {
                scenario: "redis-benchmark --cluster baseline".to_owned(),
                why: problem,
            });
        }
    }

    eprintln!(
        "[{:>5.1} s] the near cache: hits and the broadcast delay",
        started.elapsed().as_secs_f64()
    );
    let (near, near_checks) = scenarios::near_reads(&store, &args.redis_url, &plan, run_id).await?;
    report.targets.extend(near_checks);
    report.latency.extend(near);

    report
        .targets
        .extend(targets::throughput(&report.throughput));

    eprintln!(
        "[{:>5.1} s] the service's HTTP read path (wrk, Python)",
        started.elapsed().as_secs_f64()
    );
    let http = scenarios::http_reads(args, args.mode, plan.throughput / 2).await?;
    report.targets.extend(targets::http(
        &http.rows,
        &http.python,
        std::thread::available_parallelism().map_or(0, usize::from),
    ));
    report.http = http.rows;
    report.latency.extend(http.python);
    for (scenario, why) in http.problems {
        report.not_measured.push(NotMeasured { scenario, why });
    }

    eprintln!(
        "[{:>5.1} s] bytes per cached entity",
        started.elapsed().as_secs_f64()
    );
    report.memory = Some(scenarios::memory_per_entity(&raw, &read_world, &spec).await?);

    // The scenarios with a source of truth behind the cache: the in-memory
    // repository (the cache's own cost, with a source that costs next to
    // nothing), then Neo4j when given.
    let mut notes = Vec::new();
    let source = "in-memory source";
    let load = with_source(
        &mut report,
        store.clone(),
        &raw,
        &memory,
        source,
        run_id,
        &plan,
    )
    .await?;
    notes.push(format!(
        "Loading the 1,000 × 100 world into the {source} took {}.",
        render::fmt_us(load.as_secs_f64() * 1e6)
    ));
    match &args.neo4j {
        Some(neo4j) => {
            let config = Neo4jConfig::new(neo4j.uri.as_str())
                .with_credentials(neo4j.user.as_str(), neo4j.password.as_str())
                // A bulk load gets ten times the call timeout: room for the
                // 100,000 events of the activation world on a busy machine.
                .with_timeouts(Duration::from_secs(10), Duration::from_secs(60));
            let repo = Arc::new(
                Neo4jRepository::connect(config)
                    .await
                    .context("connecting to Neo4j")?,
            );
            let source = "Neo4j";
            eprintln!(
                "[{:>5.1} s] cached read vs Neo4j read",
                started.elapsed().as_secs_f64()
            );
            let world = scenarios::world_id("read", source, run_id)?;
            repo.load(&world, &spec.seed()).await?;
            let manager = CacheManager::builder(store.clone(), Arc::clone(&repo))
                .config(scenarios::config())
                .build()?;
            manager.activate(&world).await?;
            report.latency.push(
                scenarios::read_hit_vs_source(&manager, &repo, source, &world, &entity, &plan)
                    .await?,
            );
            eprintln!(
                "[{:>5.1} s] a cold 14-key turn from Neo4j",
                started.elapsed().as_secs_f64()
            );
            report
                .latency
                .push(scenarios::turn_cold(&manager, source, &world, &spec, &plan).await?);
            manager.shutdown().await;
            eprintln!(
                "[{:>5.1} s] availability: Redis blackholed, Redis slow ({source})",
                started.elapsed().as_secs_f64()
            );
            for figure in
                scenarios::availability(&repo, source, &args.redis_url, run_id, &plan).await?
            {
                eprintln!("        {}: {}", figure.title, figure.note);
                report.latency.push(figure);
            }
            let load = with_source(
                &mut report,
                store.clone(),
                &raw,
                &repo,
                source,
                run_id,
                &plan,
            )
            .await?;
            notes.push(format!(
                "Loading the 1,000 × 100 world into Neo4j (WorldRepository::load, batched) took {}.",
                render::fmt_us(load.as_secs_f64() * 1e6)
            ));

        }
        None => report.not_measured.push(NotMeasured {
            scenario: "cached read vs Neo4j read; write path, activation and hit ratio on Neo4j; availability (Redis blackholed or slow)"
                .to_owned(),
            why: "no --neo4j-uri was given".to_owned(),
        }),
    }

    eprintln!(
        "[{:>5.1} s] the refresher off and on; activation within a budget",
        started.elapsed().as_secs_f64()
    );
    notes.extend(
        scenarios::refresh_and_warming(&mut report, store.clone(), &plan, args.mode, run_id)
            .await?,
    );

    let load_after = machine::load_average();
    report.environment = machine::describe();
    report.environment.extend([
        ("redis-server".to_owned(), redis_version),
        (
            "Neo4j".to_owned(),
            match &args.neo4j {
                Some(n) => n
                    .version
                    .clone()
                    .unwrap_or_else(|| "version not given".to_owned()),
                None => "not used".to_owned(),
            },
        ),
        ("date".to_owned(), date),
        ("mode".to_owned(), args.mode.as_str().to_owned()),
        ("iterations".to_owned(), plan.describe()),
        (
            "duration".to_owned(),
            format!(
                "{:.0} s, server start-up and build excluded",
                started.elapsed().as_secs_f64()
            ),
        ),
        (
            "load average (1, 5, 15 min)".to_owned(),
            format!("{load_before} at the start, {load_after} at the end"),
        ),
        (
            "client".to_owned(),
            match args.runtime {
                Runtime::CurrentThread => "tokio current-thread runtime (one thread, like redis-benchmark), on the same machine as the servers".to_owned(),
                Runtime::MultiThread => format!(
                    "tokio multi-thread runtime, {} workers, on the same machine as the servers",
                    std::thread::available_parallelism().map_or(0, usize::from)
                ),
            },
        ),
    ]);
    for (i, note) in args.notes.iter().enumerate() {
        report
            .environment
            .push((format!("condition {}", i + 1), note.clone()));
    }
    report.notes = methodology();
    report.notes.extend(notes);
    Ok(report)
}

/// Activation, the write path and the hit ratio over one source of truth.
async fn with_source<R: WorldRepository + 'static>(
    report: &mut Report,
    store: RedisStore,
    raw: &ConnectionManager,
    repo: &Arc<R>,
    source: &str,
    run_id: u64,
    plan: &Plan,
) -> Result<Duration> {
    let started = std::time::Instant::now();
    eprintln!("        activation of 1,000 entities × 100 events ({source})");
    let (row, load) = scenarios::activation(store.clone(), raw, repo, source, run_id, plan).await?;
    report.activation.push(row);

    eprintln!(
        "  +{:>4.1} s write path ({source})",
        started.elapsed().as_secs_f64()
    );
    let world = scenarios::world_id("write", source, run_id)?;
    let spec = DemoSpec::standard();
    repo.load(&world, &spec.seed()).await?;
    let manager = CacheManager::builder(store.clone(), Arc::clone(repo))
        .config(scenarios::config())
        .build()?;
    manager.activate(&world).await?;
    let entity = spec.character(spec.players);
    report
        .latency
        .extend(scenarios::write_path(&manager, repo, source, &world, &entity, plan).await?);
    manager.shutdown().await;

    eprintln!(
        "  +{:>4.1} s hit ratio ({source})",
        started.elapsed().as_secs_f64()
    );
    report
        .hit_ratio
        .push(scenarios::hit_ratio(store.clone(), repo, source, run_id, plan).await?);

    eprintln!(
        "  +{:>4.1} s players in one world ({source})",
        started.elapsed().as_secs_f64()
    );
    let rows = scenarios::players(store, repo, source, run_id, plan).await?;
    report.targets.extend(report::players_target(&rows));
    report.players.extend(rows);
    Ok(load)
}

fn methodology() -> Vec<String> {
    vec![
        "Latency pairs are measured interleaved in blocks of 100 calls after untimed warm-up calls of each side; percentiles are nearest-rank over every recorded sample.".to_owned(),
        "The cached read is CacheManager::entity on a warm entry (every call checked to be a hit), through RedisStore; its baseline is a GET of the same key (same bytes) through its own redis-rs ConnectionManager to the same server.".to_owned(),
        format!(
            "Throughput: N tokio tasks share one multiplexed connection (one RedisStore, or one ConnectionManager for the raw GETs), as a service would; lwcache's reads are CacheManager::read_shared hits (the decoded value shared, as the service's handlers read; the decode memo on, its default); each task makes its next read when the last is answered, on both sides; in 5 alternating rounds per side (the requests of each level, in the table, are shared by the rounds: five times as many at 16 and 64 tasks as at one in full mode, so that a round lasts long enough for its start and its tail to weigh little); each round also runs redis-benchmark, which opens N connections (-c N) to GET the same key (`redis-benchmark -c N -n <requests / 5> -q --csv GET <key>`), and its rate is taken over the 5 rounds. On the 3-master Cluster the store and the raw GETs use a Cluster connection each, and redis-benchmark runs against the master that holds the key's slot (its --cluster mode spreads keys by a tag of its own). Everything runs on the same {} cores as redis-server.",
            std::thread::available_parallelism().map_or(0, usize::from)
        ),
        format!(
            "Throughput, {}: the same rows through a second RedisStore with read batching on (RedisConfig::with_read_batching, as lwcache serve runs it): a read made while others are in flight joins the next MGET, up to two on their way at once. These rows have no target: the goal is the default's.",
            scenarios::BATCHED
        ),
        "Activation round trips are cache store port calls counted by a decorator around RedisStore (each call is one command or one EVALSHA): the batched versioned writes, plus one refused fill and one version seed on a cold cache. The naive baseline writes the very bytes the activation wrote with one awaited SET … PX per key, not pipelined; the pipelined row sends the same SETs as one redis-rs pipeline. Neither baseline checks versions or reads the source; the activation's time includes reading the world's image from the source, shown on its own.".to_owned(),
        "Memory: MEMORY USAGE <key> SAMPLES 0 of lwcache's entry against the same (redacted) document as compact JSON, SET under a scratch key of the same length (lw:plain: for lw:world:) without a TTL. lwcache's entry carries a 12-byte header (magic, format, flags, world version) that the JSON lacks.".to_owned(),
        "Every CacheManager runs with the default configuration and policy, except a source timeout of 120 s instead of 5 s, so that reading the 1,000-entity world's image from Neo4j is not cut off, and a cache timeout of 2 s instead of 250 ms (the Redis clients of both sides wait 2 s for a reply instead of 500 ms), so that a stall of the shared cores is measured as latency instead of turning a hit into a fallback to the source.".to_owned(),
        "A turn: the snapshot, the flags, 8 entities (3 non-player characters, 3 locations, 2 objects) and the recent timelines of 4 of them, read through CacheManager::read_many_shared (every item checked to be a hit; the decode memo on, its default), against one redis-rs MGET of the same 14 keys on its own ConnectionManager and against 14 CacheManager::read calls one after another; the cold turn removes the 14 keys from Redis, untimed, before every call of either side.".to_owned(),
        "Write path: the write through CacheManager against the same mutation applied to the repository directly, interleaved; queued write-behind work is let finish, untimed, after every sample.".to_owned(),
        "Hit ratio: one simulated player (lwcache-demo's Simulation, seed 0x5eed) from a cold cache; warm-up is the first 10% of turns. Served by the cache counts hits and stale hits (entries older than a queued write-behind update, served only when stale reads are opted into; the manager here keeps the default, never).".to_owned(),
        "Players in one world: one world of the standard demo spec per source, activated, then 1, 16 and 64 concurrent players (tokio tasks, each its own Simulation: Zipf(1.0) reads over the entities, the flags, the snapshot and the timelines, 10% writes) through one CacheManager, one level after the other; each level plays 10% of its turns as warm-up at the same concurrency before the counted turns. A hit is a read served by the cache; a read is stale when its version is lower than that of a write of the same key acknowledged (CacheManager::apply returned) before the read started, tracked in the bench process per key from Written.committed.version; fills rejected are the manager's counter over the counted turns.".to_owned(),
    ]
}
