//! lwcache's build tasks. `cargo xtask ci` is the one command that, when it
//! passes here, passes in CI.

mod bench;
mod chaos;
mod coverage;
mod deps;
mod neo4j;
mod redis;
mod sim;

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

fn main() -> Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let root = workspace_root();
    match args.first().map(String::as_str) {
        Some("ci") => ci(&root, &args[1..]),
        Some("servers") => servers(&root),
        Some("bench") => bench::run(&root, &args[1..]),
        Some("chaos") => chaos::run(&root, &args[1..]),
        Some("sim") => sim::run(&root, &args[1..]),
        Some("deps") => deps::run(&root),
        Some("coverage") => coverage::run(&root, &args[1..]),
        Some("help") | None => {
            eprintln!("{USAGE}");
            Ok(())
        }
        Some(other) => bail!("unknown task {other:?}\n\n{USAGE}"),
    }
}

const USAGE: &str = "usage: cargo xtask <task>

tasks:
  ci     [--no-bench] [--no-chaos] [--no-sim]: fmt --check, the dependency rules (deps),
         clippy with warnings denied, the
         API docs with warnings denied, every test, with real Redis
         servers (standalone, TLS and a 3-master cluster) and a real
         Neo4j 5.26 started on free loopback ports and stopped at the end,
         then the consistency checker in quick mode on standalone Redis
         and on a 3-master Cluster, and on standalone Redis with every
         instance's near cache on (chaos --quick: no violation outside
         the declared windows, full convergence), then the deterministic
         simulation in quick mode (sim --quick: a million operations,
         no violation), then the benchmarks in quick mode (no timing is asserted: they must
         run and write their report)
  servers  start the same servers, print the variables that point the
         tests at them (for `cargo test` by hand), and keep them running
         until Enter or end of input
  bench  [--quick|--full] [--note TEXT]: builds lwcache-bench in release,
         starts redis-server and Neo4j on free loopback ports, measures
         every scenario against its baseline and writes
         target/bench/report.json; the markdown page and SVG chart go to
         target/bench/ in quick mode (the default) and to docs/benchmarks/
         in full mode
  chaos  [--quick|--full] [--seed N] [--topology standalone|cluster] [--near]: builds
         lwcache and lwcache-chaos in release, starts Neo4j, and runs the
         consistency checker (two lwcache serve processes, its own
         redis-server or 3-master Cluster, fault-injecting proxies); writes
         target/chaos/report.json and report.md (target/chaos-cluster/ for
         the Cluster, -near with --near: near caches on) and fails
         on a read-your-writes violation or a cache that does not converge
  sim    [--quick|--full] [--seeds N] [--seed S] [--ops N] [--variant NAME]
         [--expose KNOWN,...]: builds lwcache-sim in release and runs the
         deterministic simulation of the protocol (several managers over
         one in-memory store and repository, seeded interleavings and
         faults on the paused clock): --quick 500 seeds (1,000,000
         operations), --full 50,000 seeds (100,000,000); prints operations,
         reads checked, faults, violations and simulated ops/s; a violation
         prints its seed and shortest trace (target/sim/), which --seed S
         --ops N replays exactly

  deps   checks every crate's dependencies (normal, build and dev, with
         their features) against docs/dependencies.toml, the allow-list
         of docs/ARCHITECTURE.md's rules
  coverage [--unit]: line coverage of the library crates over every
         test, with the same real servers as ci, by cargo-llvm-cov
         (installed if missing, with LLVM's tools of rustc's version);
         prints it per crate and overall and writes target/coverage/all/
         (summary.txt, lcov.info, html/); --unit measures the unit tests
         alone, without servers, into target/coverage/unit/";

fn workspace_root() -> PathBuf {
    // xtask lives one level below the workspace root.
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

fn ci(root: &Path, args: &[String]) -> Result<()> {
    let (mut bench, mut chaos, mut sim) = (true, true, true);
    for arg in args {
        match arg.as_str() {
            "--no-bench" => bench = false,
            "--no-chaos" => chaos = false,
            "--no-sim" => sim = false,
            other => bail!(
                "unknown ci option {other:?}: use --no-bench, --no-chaos, --no-sim or nothing"
            ),
        }
    }
    cargo(root, &["fmt", "--all", "--", "--check"])?;
    deps::run(root)?;
    cargo(
        root,
        &[
            "clippy",
            "--workspace",
            "--all-targets",
            "--locked",
            "--",
            "-D",
            "warnings",
        ],
    )?;
    // The API docs build without a broken link or other warning.
    cargo_with(
        root,
        &["doc", "--workspace", "--no-deps", "--locked"],
        &[("RUSTDOCFLAGS", "-D warnings".to_owned())],
    )?;
    let servers = Servers::start_while(root, || {
        cargo(root, &["test", "--workspace", "--locked", "--no-run"])
    })?;
    cargo_with(root, &["test", "--workspace", "--locked"], &servers.env())?;
    drop(servers);
    if chaos {
        // The consistency checker in quick mode, on servers of its own: it
        // must find no violation outside the declared windows, and the
        // cache must converge.
        chaos::run(root, &["--quick".to_owned()])?;
        // And on the real 3-master Cluster, proxied master by master.
        chaos::run(
            root,
            &[
                "--quick".to_owned(),
                "--topology".to_owned(),
                "cluster".to_owned(),
            ],
        )?;
        // And with every instance's near cache on: a near read may lag by
        // the near cache's bound only.
        chaos::run(root, &["--quick".to_owned(), "--near".to_owned()])?;
    }
    if sim {
        // The protocol under a million seeded interleavings with faults, no
        // server needed: it must find no violation.
        sim::run(root, &["--quick".to_owned()])?;
    }
    if bench {
        // Its own servers, with the benchmark tuning, and nothing else running.
        bench::run(root, &["--quick".to_owned()])?;
    }
    Ok(())
}

/// The ACL rules of the restricted test user: only `lw:*` keys and only
/// the commands the Redis adapter sends.
const ACL_RULES: &str = "on >lwcache-test ~lw:* resetchannels &lw:invalidate -@all +get +set +del +evalsha +script|load +ping +scan +publish +subscribe";

#[allow(
    clippy::print_stdout,
    reason = "the variables are the output of the task"
)]
fn servers(root: &Path) -> Result<()> {
    let servers = Servers::start_all(root)?;
    for (name, value) in servers.env() {
        println!("export {name}='{value}'");
    }
    eprintln!("servers running; press Enter (or close input) to stop them");
    let mut line = String::new();
    let _ = std::io::stdin().read_line(&mut line);
    drop(servers);
    Ok(())
}

/// The password of the `neo4j` user of the test server (authentication on,
/// so the adapter's credentials are exercised).
const NEO4J_PASSWORD: &str = "lwcache-test";

/// The servers the tests talk to; dropping it stops them.
struct Servers {
    standalone: redis::RedisServer,
    tls: redis::RedisServer,
    cluster: redis::RedisCluster,
    neo4j: neo4j::Neo4jServer,
}

impl Servers {
    /// Starts every server while `build` runs: Neo4j takes seconds to
    /// start (minutes on the first run, which downloads it), so it starts
    /// while the tests build; the Redis servers start once both are done.
    fn start_while(root: &Path, build: impl FnOnce() -> Result<()>) -> Result<Self> {
        let neo4j = {
            let root = root.to_path_buf();
            std::thread::spawn(move || neo4j::Neo4jServer::start(&root, Some(NEO4J_PASSWORD)))
        };
        let built = build();
        let neo4j = neo4j
            .join()
            .map_err(|_| anyhow::anyhow!("the Neo4j starter thread panicked"))?
            .context("starting Neo4j")?;
        built?;
        Self::start(neo4j)
    }

    /// Starts every server, with nothing to do meanwhile.
    fn start_all(root: &Path) -> Result<Self> {
        Self::start_while(root, || Ok(()))
    }

    fn start(neo4j: neo4j::Neo4jServer) -> Result<Self> {
        let opts = redis::RedisOptions {
            acl_users: vec![redis::AclUser::new("lwcache", ACL_RULES)],
            ..Default::default()
        };
        let standalone =
            redis::RedisServer::start_standalone(&opts).context("starting redis-server")?;
        let tls = redis::RedisServer::start_standalone(&redis::RedisOptions {
            tls: true,
            ..Default::default()
        })
        .context("starting redis-server with TLS")?;
        let cluster = redis::RedisCluster::start().context("starting the Redis Cluster")?;
        eprintln!(
            "redis: standalone {} (restricted user lwcache), cluster {}; neo4j {}",
            standalone.url(),
            cluster.urls().join(","),
            neo4j.bolt_uri()
        );
        Ok(Self {
            standalone,
            tls,
            cluster,
            neo4j,
        })
    }

    /// What the test suites read to find the servers; with
    /// `LWCACHE_REQUIRE_SERVERS` they fail instead of skipping.
    fn env(&self) -> Vec<(&'static str, String)> {
        vec![
            ("LWCACHE_REQUIRE_SERVERS", "1".to_owned()),
            ("LWCACHE_TEST_REDIS_URL", self.standalone.url()),
            (
                "LWCACHE_TEST_REDIS_ACL_URL",
                self.standalone.url_for_user("lwcache", "lwcache-test"),
            ),
            (
                "LWCACHE_TEST_REDIS_CLUSTER_URLS",
                self.cluster.urls().join(","),
            ),
            (
                "LWCACHE_TEST_REDIS_TLS_URL",
                self.tls.tls_url().unwrap_or_default(),
            ),
            (
                "LWCACHE_TEST_REDIS_TLS_CA",
                self.tls
                    .ca_cert_path()
                    .map(|p| p.display().to_string())
                    .unwrap_or_default(),
            ),
            ("LWCACHE_TEST_NEO4J_URI", self.neo4j.bolt_uri().to_owned()),
            ("LWCACHE_TEST_NEO4J_USER", "neo4j".to_owned()),
            ("LWCACHE_TEST_NEO4J_PASSWORD", NEO4J_PASSWORD.to_owned()),
        ]
    }
}

fn cargo(root: &Path, args: &[&str]) -> Result<()> {
    cargo_with(root, args, &[])
}

fn cargo_with(root: &Path, args: &[&str], env: &[(&str, String)]) -> Result<()> {
    eprintln!("$ cargo {}", args.join(" "));
    let status = Command::new(std::env::var("CARGO").unwrap_or_else(|_| "cargo".into()))
        .args(args)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .current_dir(root)
        .status()
        .with_context(|| format!("running cargo {}", args.join(" ")))?;
    if !status.success() {
        bail!("cargo {} failed: {status}", args.join(" "));
    }
    Ok(())
}
