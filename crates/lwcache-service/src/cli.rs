//! The command line: parsing, wiring, and everything the program prints.

#![allow(
    clippy::print_stdout,
    reason = "this module is the program's output: banners and summaries go to stdout"
)]

use std::net::SocketAddr;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Duration;

use anyhow::{Context, Result, bail};
use clap::{Args, Parser, Subcommand};
use lwcache_core::SourceError;
use lwcache_demo::DemoSpec;
use lwcache_domain::{WorldError, WorldId};
use lwcache_service::backend::{Backends, DEMO_WORLD};
use lwcache_service::config::{
    self, ClusterUrls, Layer, RedisUrl, RuntimeModel, Secret, Settings, WriteModes, resolve,
};
use lwcache_service::server::{self, Ready};
use lwcache_service::telemetry::{Telemetry, TelemetryConfig};

mod players;

const ENV_HELP: &str = "\
Every flag can also come from the environment (LWCACHE_ and the flag's name in upper
case: --redis-ca-file is LWCACHE_REDIS_CA_FILE) or a TOML file (--config FILE or
LWCACHE_CONFIG; the flag's name in lower case with underscores: redis_ca_file); flags
beat the environment, which beats the file. LWCACHE_REDIS_CLUSTER is comma-separated,
redis_cluster an array of URLs. serve --print-config prints the resolved settings as
such a file, secrets masked. Privacy: LWCACHE_PRIVACY_SENSITIVE_NAMES,
LWCACHE_PRIVACY_SENSITIVE_PREFIXES, LWCACHE_PRIVACY_PRIVATE_EVENT_KINDS,
LWCACHE_PRIVACY_ALLOW_<KIND> (a [privacy] table in the file).
Logs go to stderr, filtered by RUST_LOG (default info). Metrics are served at /metrics;
OTEL_EXPORTER_OTLP_ENDPOINT (and the other OTEL_* variables) also export metrics and
traces by OTLP/HTTP.";

/// lwcache: the hot state of persistent game worlds, cached in front of
/// their source of truth.
#[derive(Debug, Parser)]
#[command(name = "lwcache", version, after_help = ENV_HELP)]
struct Cli {
    /// A TOML configuration file.
    #[arg(long, global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Serve the HTTP/JSON API. With no backend flags: the in-memory cache
    /// over the in-memory repository, with the demo world loaded.
    Serve(Box<ServeArgs>),
    /// Simulate players in the demo world and print a summary.
    Demo(DemoArgs),
    /// Load the demo world into the repository.
    Seed(SeedArgs),
}

#[derive(Debug, Args)]
struct BackendArgs {
    /// The Redis cache store, e.g. redis://127.0.0.1:6379.
    #[arg(long, value_name = "URL")]
    redis_url: Option<String>,
    /// A Redis Cluster as the cache store, by some of its nodes' URLs:
    /// comma-separated or the flag repeated.
    #[arg(long, value_name = "URL,URL,...", value_delimiter = ',')]
    redis_cluster: Vec<String>,
    /// The Neo4j repository, e.g. bolt://127.0.0.1:7687.
    #[arg(long, value_name = "URI")]
    neo4j_uri: Option<String>,
    /// The Neo4j user.
    #[arg(long, value_name = "USER")]
    neo4j_user: Option<String>,
    /// The Neo4j password.
    #[arg(long, value_name = "PASSWORD")]
    neo4j_password: Option<String>,
    /// The CA certificate(s) to trust for bolt+s:// and neo4j+s://, a PEM
    /// file [default: the system's roots].
    #[arg(long, value_name = "FILE")]
    neo4j_ca_file: Option<PathBuf>,
    /// How writes update the cache: `spec` (write-through, write-behind for
    /// timelines) or `invalidate` (delete, refill on the next read).
    #[arg(long, value_name = "MODE")]
    write_mode: Option<WriteModes>,
    /// The CA certificate(s) to trust for rediss://, a PEM file [default:
    /// the system's roots].
    #[arg(long, value_name = "FILE")]
    redis_ca_file: Option<PathBuf>,
    /// A client certificate chain to present to Redis (mutual TLS), a PEM
    /// file; needs --redis-client-key.
    #[arg(long, value_name = "FILE")]
    redis_client_cert: Option<PathBuf>,
    /// The client certificate's private key, a PEM file.
    #[arg(long, value_name = "FILE")]
    redis_client_key: Option<PathBuf>,
    #[command(flatten)]
    policy: PolicyArgs,
    #[command(flatten)]
    privacy: config::privacy::PrivacyArgs,
}

/// The cache policy and the manager's deadlines.
#[derive(Debug, Args)]
struct PolicyArgs {
    /// The world snapshot's TTL in ms; 0 for none [default: 3600000].
    #[arg(long, value_name = "MS")]
    state_ttl_ms: Option<u64>,
    /// The flags' TTL in ms; 0 for none [default: 0].
    #[arg(long, value_name = "MS")]
    flags_ttl_ms: Option<u64>,
    /// An entity's TTL in ms; 0 for none [default: 3600000].
    #[arg(long, value_name = "MS")]
    entity_ttl_ms: Option<u64>,
    /// A recent timeline's TTL in ms, at least 1 [default: 300000].
    #[arg(long, value_name = "MS")]
    timeline_ttl_ms: Option<u64>,
    /// How many events a recent timeline caches, 1 to 1000 [default: 20].
    #[arg(long, value_name = "K")]
    timeline_top_k: Option<u64>,
    /// The deadline of every cache call, in ms [default: 250].
    #[arg(long, value_name = "MS")]
    cache_timeout_ms: Option<u64>,
    /// The deadline of every source call, in ms [default: 5000].
    #[arg(long, value_name = "MS")]
    source_timeout_ms: Option<u64>,
    /// How many write-behind updates may wait before they become
    /// invalidations [default: 1024].
    #[arg(long, value_name = "N")]
    write_behind_capacity: Option<u64>,
    /// The most keys an activation prefills: the flags, the snapshot, then
    /// the entities read lately or with the newest events; 0 warms every
    /// entity [default: 0].
    #[arg(long, value_name = "KEYS")]
    warm_budget_keys: Option<u64>,
    /// The decode memo's budget: each key's last entry read from Redis is
    /// kept with its decoded value, so that a read of unchanged bytes does
    /// not decode them again; 0 turns it off [default: 8388608].
    #[arg(long, value_name = "BYTES")]
    decode_memo_bytes: Option<u64>,
}

impl BackendArgs {
    fn layer(&self) -> Result<Layer, config::ConfigError> {
        Ok(Layer {
            redis_url: self.redis_url.clone().map(RedisUrl::from),
            redis_cluster: (!self.redis_cluster.is_empty())
                .then(|| ClusterUrls::new(self.redis_cluster.iter().cloned())),
            neo4j_uri: self.neo4j_uri.clone(),
            neo4j_user: self.neo4j_user.clone(),
            neo4j_password: self.neo4j_password.clone().map(Secret::new),
            neo4j_ca_file: self.neo4j_ca_file.clone(),
            write_mode: self.write_mode,
            redis_ca_file: self.redis_ca_file.clone(),
            redis_client_cert: self.redis_client_cert.clone(),
            redis_client_key: self.redis_client_key.clone(),
            state_ttl_ms: self.policy.state_ttl_ms,
            flags_ttl_ms: self.policy.flags_ttl_ms,
            entity_ttl_ms: self.policy.entity_ttl_ms,
            timeline_ttl_ms: self.policy.timeline_ttl_ms,
            timeline_top_k: self.policy.timeline_top_k,
            cache_timeout_ms: self.policy.cache_timeout_ms,
            source_timeout_ms: self.policy.source_timeout_ms,
            write_behind_capacity: self.policy.write_behind_capacity,
            warm_budget_keys: self.policy.warm_budget_keys,
            decode_memo_bytes: self.policy.decode_memo_bytes,
            privacy: self.privacy.layer()?,
            ..Layer::default()
        })
    }
}

#[derive(Debug, Args)]
struct ServeArgs {
    #[command(flatten)]
    backends: BackendArgs,
    /// The address to listen on [default: 127.0.0.1:8080]; port 0 picks a free one.
    #[arg(long, value_name = "ADDR")]
    listen: Option<SocketAddr>,
    /// Require `Authorization: Bearer <TOKEN>` on every /v1 route.
    #[arg(long, value_name = "TOKEN")]
    auth_token: Option<String>,
    /// Require this token, not the --auth-token, on the admin routes.
    #[arg(long, value_name = "TOKEN")]
    admin_token: Option<String>,
    /// The largest request body, in bytes [default: 1048576].
    #[arg(long, value_name = "BYTES")]
    max_body_bytes: Option<usize>,
    /// How many threads run the service's async work: 0 is one per core,
    /// 1 runs it all on one thread [default: 0].
    #[arg(long, value_name = "N")]
    worker_threads: Option<usize>,
    /// How the threads share the work: `work-stealing`, one runtime whose
    /// workers steal tasks, or `sharded`, one single-threaded runtime per
    /// thread, each with its own listening socket (SO_REUSEPORT) and Redis
    /// read connection [default: work-stealing].
    #[arg(long, value_name = "MODEL")]
    runtime: Option<RuntimeModel>,
    /// How many failed cache calls in a row open the circuit breaker, after
    /// which cache calls fail at once and reads go to the source [default: 5].
    #[arg(long, value_name = "N")]
    breaker_failures: Option<u32>,
    /// How long an open circuit breaker waits before it probes the cache
    /// again, in milliseconds [default: 1000].
    #[arg(long, value_name = "MS")]
    breaker_open_ms: Option<u64>,
    /// Serve HTTPS with this PEM certificate chain; needs --tls-key.
    #[arg(long, value_name = "FILE")]
    tls_cert: Option<PathBuf>,
    /// The HTTPS certificate's private key, a PEM file.
    #[arg(long, value_name = "FILE")]
    tls_key: Option<PathBuf>,
    /// Print the resolved configuration as TOML, secrets masked, and exit.
    #[arg(long)]
    print_config: bool,
    #[command(flatten)]
    reads: ReadArgs,
}

/// Fail-safe reads and stampede control.
#[derive(Debug, Args)]
struct ReadArgs {
    /// How long an entry is kept past its TTL, served (marked stale) only
    /// while the source fails; 0 turns fail-safe reads off [default: 600000].
    #[arg(long, value_name = "MS")]
    fail_safe_grace_ms: Option<u64>,
    /// How far each TTL is spread, in percent either way, so that entries
    /// written together expire apart (at most 50) [default: 10].
    #[arg(long, value_name = "PERCENT")]
    ttl_jitter_percent: Option<u32>,
    /// How long the source's "no such entity" is cached; 0 never [default: 5000].
    #[arg(long, value_name = "MS")]
    negative_ttl_ms: Option<u64>,
    /// How long a miss waits for another process's fill of the same key
    /// before reading the source itself [default: 50].
    #[arg(long, value_name = "MS")]
    lease_wait_ms: Option<u64>,
    /// The near cache's byte budget: an in-process tier of decoded values
    /// in front of the store, kept coherent across instances; 0 leaves it
    /// off (at least 65536 when on) [default: 0].
    #[arg(long, value_name = "BYTES")]
    near_cache_bytes: Option<u64>,
    /// The oldest confirmation of the near cache's feed a near hit may rely
    /// on: the bound on how long another instance's write stays unseen
    /// here [default: 500].
    #[arg(long, value_name = "MS")]
    near_max_lag_ms: Option<u64>,
    /// How often the near cache's feed confirms it is live (at most half
    /// of the max lag) [default: 50].
    #[arg(long, value_name = "MS")]
    near_heartbeat_ms: Option<u64>,
}

#[derive(Debug, Args)]
struct DemoArgs {
    #[command(flatten)]
    backends: BackendArgs,
    /// Stop after this many turns, over all players (at least 1).
    #[arg(long, conflicts_with = "duration", value_name = "N", value_parser = clap::value_parser!(u64).range(1..))]
    turns: Option<u64>,
    /// Stop after this long: 30s, 500ms, 2m [default: 10s when no --turns].
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    duration: Option<Duration>,
    /// Players taking turns at once.
    #[arg(long, default_value_t = 4, value_name = "P")]
    players: usize,
    /// The world to play in; loaded from the demo world when absent.
    #[arg(long, default_value = DEMO_WORLD, value_name = "ID")]
    world: String,
    /// The share of turns that write.
    #[arg(long, default_value_t = 0.1, value_name = "RATIO")]
    write_ratio: f64,
    /// The seed of the players' choices.
    #[arg(long, default_value_t = 1)]
    seed: u64,
}

#[derive(Debug, Args)]
struct SeedArgs {
    #[command(flatten)]
    backends: BackendArgs,
    /// The id to load the demo world as.
    #[arg(long, default_value = DEMO_WORLD, value_name = "ID")]
    world: String,
    /// `standard` (400 entities, 4,000 events) or a number of entities.
    #[arg(long, default_value = "standard", value_name = "SIZE", value_parser = parse_size)]
    size: DemoSpec,
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let s = s.trim();
    let split = s
        .find(|c: char| !c.is_ascii_digit() && c != '.')
        .unwrap_or(s.len());
    let (number, unit) = s.split_at(split);
    let n: f64 = number
        .parse()
        .map_err(|_| format!("{s:?} is not a duration like 30s, 500ms or 2m"))?;
    let seconds = match unit {
        "" | "s" => n,
        "ms" => n / 1000.0,
        "m" | "min" => n * 60.0,
        "h" => n * 3600.0,
        _ => return Err(format!("unknown unit {unit:?} in {s:?}: use ms, s, m or h")),
    };
    if !seconds.is_finite() || seconds <= 0.0 || seconds > 365.0 * 86_400.0 {
        return Err(format!(
            "{s:?} is not a positive duration of at most a year"
        ));
    }
    Ok(Duration::from_secs_f64(seconds))
}

fn parse_size(s: &str) -> Result<DemoSpec, String> {
    if s == "standard" {
        return Ok(DemoSpec::standard());
    }
    match s.parse::<usize>() {
        Ok(n) if (1..=1_000_000).contains(&n) => {
            Ok(DemoSpec::sized(n, DemoSpec::standard().events_per_entity))
        }
        _ => Err(format!(
            "{s:?} is neither `standard` nor a number of entities from 1 to 1000000"
        )),
    }
}

/// Parses the command line and runs it; errors go to stderr with exit 1.
pub(crate) fn main() -> ExitCode {
    let cli = Cli::parse();
    match run(cli) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("lwcache: error: {e:#}");
            ExitCode::FAILURE
        }
    }
}

fn run(cli: Cli) -> Result<()> {
    let (flags, config_path) = match &cli.command {
        Command::Serve(a) => (
            Layer {
                listen: a.listen,
                auth_token: a.auth_token.clone().map(Secret::new),
                admin_token: a.admin_token.clone().map(Secret::new),
                max_body_bytes: a.max_body_bytes,
                worker_threads: a.worker_threads,
                runtime: a.runtime,
                fail_safe_grace_ms: a.reads.fail_safe_grace_ms,
                ttl_jitter_percent: a.reads.ttl_jitter_percent,
                negative_ttl_ms: a.reads.negative_ttl_ms,
                lease_wait_ms: a.reads.lease_wait_ms,
                near_cache_bytes: a.reads.near_cache_bytes,
                near_max_lag_ms: a.reads.near_max_lag_ms,
                near_heartbeat_ms: a.reads.near_heartbeat_ms,
                breaker_failures: a.breaker_failures,
                breaker_open_ms: a.breaker_open_ms,
                tls_cert: a.tls_cert.clone(),
                tls_key: a.tls_key.clone(),
                ..a.backends.layer()?
            },
            cli.config.clone(),
        ),
        Command::Demo(a) => (a.backends.layer()?, cli.config.clone()),
        Command::Seed(a) => (a.backends.layer()?, cli.config.clone()),
    };
    let settings = settings(&flags, config_path)?;
    if let Command::Serve(a) = &cli.command
        && a.print_config
    {
        print!("{}", config::print::to_toml(&settings));
        return Ok(());
    }
    let runtime = settings
        .runtime
        .builder()
        .enable_all()
        .build()
        .context("starting the async runtime")?;
    runtime.block_on(async move {
        let telemetry =
            Telemetry::install(&TelemetryConfig::from_env()).context("installing telemetry")?;
        match cli.command {
            Command::Serve(_) => serve(settings, telemetry).await,
            Command::Demo(args) => players::run_demo(settings, telemetry, args).await,
            Command::Seed(args) => seed(settings, telemetry, args).await,
        }
    })
}

/// Reads the environment and the file, then merges them with the flags.
fn settings(flags: &Layer, config_path: Option<PathBuf>) -> Result<Settings> {
    let env = Layer::from_env(|k| std::env::var(k).ok())?;
    let path = config_path.or_else(|| {
        std::env::var(config::env::CONFIG)
            .ok()
            .filter(|p| !p.trim().is_empty())
            .map(PathBuf::from)
    });
    let file = match path {
        Some(path) => Layer::from_file(&path)?,
        None => Layer::default(),
    };
    Ok(resolve(flags, &env, &file)?)
}

async fn serve(settings: Settings, telemetry: Telemetry) -> Result<()> {
    server::serve(settings, telemetry, |ready: &Ready| {
        let scheme = if ready.https { "https" } else { "http" };
        println!("lwcache: listening on {scheme}://{}", ready.addr);
        println!("  cache:  {}", ready.cache);
        println!("  source: {}", ready.source);
        if let Some(version) = ready.demo_loaded {
            println!(
                "  NOTHING PERSISTS: the repository lives in this process and is lost when it exits."
            );
            println!(
                "  the demo world is loaded (version {version}): curl {scheme}://{}/v1/worlds/{DEMO_WORLD}/state",
                ready.addr
            );
        }
        if ready.auth {
            println!("  every /v1 route requires Authorization: Bearer <token>");
        }
        println!("  API: {scheme}://{}/openapi.json; stop with Ctrl-C or SIGTERM", ready.addr);
    })
    .await?;
    println!("lwcache: stopped");
    Ok(())
}

async fn seed(settings: Settings, telemetry: Telemetry, args: SeedArgs) -> Result<()> {
    let world = WorldId::new(args.world.clone()).context("--world")?;
    let backends = Backends::open(&settings.backends).await?;
    let seed = args.size.seed();
    match backends.repository.load(&world, &seed).await {
        Ok(version) => {
            println!(
                "loaded world {world} into the {}: {} entities, {} events, version {version}",
                backends.source,
                seed.entities.len(),
                seed.events.len()
            );
            if !backends.persistent() {
                println!(
                    "note: the in-memory repository keeps nothing; pass --neo4j-uri to keep the world"
                );
            }
            if backends.cache != lwcache_service::backend::CacheKind::Memory {
                println!(
                    "note: seeding writes to the source only; the cache ({}) fills as the world is read or activated",
                    backends.cache
                );
            }
        }
        Err(SourceError::Rejected(WorldError::WorldExists(_))) => {
            bail!(
                "world {world} already exists in the {}; nothing was written",
                backends.source
            )
        }
        Err(e) => return Err(e).context(format!("loading world {world}")),
    }
    telemetry.shutdown();
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

    use super::*;

    #[test]
    fn durations_parse_with_units() {
        assert_eq!(parse_duration("30s").unwrap(), Duration::from_secs(30));
        assert_eq!(parse_duration("500ms").unwrap(), Duration::from_millis(500));
        assert_eq!(parse_duration("2m").unwrap(), Duration::from_secs(120));
        assert_eq!(parse_duration("3").unwrap(), Duration::from_secs(3));
        for bad in ["", "s", "-1s", "0s", "5 parsecs", "1e9999s"] {
            assert!(parse_duration(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn sizes_are_standard_or_a_count() {
        assert_eq!(parse_size("standard").unwrap(), DemoSpec::standard());
        assert_eq!(parse_size("80").unwrap().entities(), 80);
        assert!(parse_size("0").is_err());
        assert!(parse_size("huge").is_err());
    }

    #[test]
    fn the_command_line_is_consistent() {
        use clap::CommandFactory;
        Cli::command().debug_assert();
    }
}
