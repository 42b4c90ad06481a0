//! The command line: server addresses, mode, output paths.

use std::path::PathBuf;

use anyhow::{Context, Result, bail};

pub(crate) const USAGE: &str = "usage: lwcache-bench --redis-url URL [options]

options (each also read from the environment variable named after it):
  --redis-url URL          redis://host:port of a standalone server  LWCACHE_BENCH_REDIS_URL
  --redis-cluster URLS     a Redis Cluster's seed URLs, comma-separated: the Redis-tier rows
                           again on it                              LWCACHE_BENCH_REDIS_CLUSTER
  --neo4j-uri URI          bolt://host:port; the Neo4j scenarios need it  LWCACHE_BENCH_NEO4J_URI
  --neo4j-user NAME        default neo4j                              LWCACHE_BENCH_NEO4J_USER
  --neo4j-password SECRET                                             LWCACHE_BENCH_NEO4J_PASSWORD
  --neo4j-version TEXT     stated in the report                       LWCACHE_BENCH_NEO4J_VERSION
  --mode quick|full        iteration counts; default quick            LWCACHE_BENCH_MODE
  --out FILE               the JSON report; default target/bench/report.json
  --docs DIR               markdown and SVG; default docs/benchmarks
  --runtime current-thread|multi-thread
                           the client's tokio runtime; default multi-thread
  --redis-benchmark PATH   default redis-benchmark (from PATH)
  --lwcache PATH           the lwcache binary of the HTTP rows; default the one beside this binary
  --wrk PATH               the HTTP load generator; default wrk (from PATH)
  --python PATH            runs the Python client rows (needs redis-py); default /usr/bin/python3, else python3
  --note TEXT              a condition to state in the report (repeatable)";

/// How many iterations each scenario runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Mode {
    /// Small counts: the whole run in under two minutes, for CI.
    Quick,
    /// Counts for reports.
    Full,
}

impl Mode {
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            Mode::Quick => "quick",
            Mode::Full => "full",
        }
    }
}

/// The client's tokio runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Runtime {
    /// One thread, like `redis-benchmark`: the other core is left to the
    /// servers.
    CurrentThread,
    /// One worker per core, as a service runs.
    MultiThread,
}

/// Neo4j's address and credentials.
#[derive(Debug, Clone)]
pub(crate) struct Neo4jArgs {
    pub(crate) uri: String,
    pub(crate) user: String,
    pub(crate) password: String,
    pub(crate) version: Option<String>,
}

/// Everything the binary is told.
#[derive(Debug, Clone)]
pub(crate) struct Args {
    pub(crate) redis_url: String,
    pub(crate) redis_cluster: Option<Vec<String>>,
    pub(crate) neo4j: Option<Neo4jArgs>,
    pub(crate) mode: Mode,
    pub(crate) runtime: Runtime,
    pub(crate) out: PathBuf,
    pub(crate) docs: PathBuf,
    pub(crate) redis_benchmark: PathBuf,
    /// The `lwcache` binary the HTTP rows start.
    pub(crate) lwcache: PathBuf,
    pub(crate) wrk: PathBuf,
    pub(crate) python: PathBuf,
    pub(crate) notes: Vec<String>,
}

impl Args {
    /// Parses arguments, falling back to the environment.
    pub(crate) fn parse(mut argv: impl Iterator<Item = String>) -> Result<Option<Self>> {
        let env = |name: &str| std::env::var(name).ok().filter(|v| !v.is_empty());
        let mut redis_url = env("LWCACHE_BENCH_REDIS_URL");
        let mut redis_cluster = env("LWCACHE_BENCH_REDIS_CLUSTER");
        let mut neo4j_uri = env("LWCACHE_BENCH_NEO4J_URI");
        let mut neo4j_user = env("LWCACHE_BENCH_NEO4J_USER");
        let mut neo4j_password = env("LWCACHE_BENCH_NEO4J_PASSWORD");
        let mut neo4j_version = env("LWCACHE_BENCH_NEO4J_VERSION");
        let mut mode = env("LWCACHE_BENCH_MODE");
        let mut runtime = env("LWCACHE_BENCH_RUNTIME");
        let mut out = PathBuf::from("target/bench/report.json");
        let mut docs = PathBuf::from("docs/benchmarks");
        let mut redis_benchmark = PathBuf::from("redis-benchmark");
        let mut lwcache = None;
        let mut wrk = PathBuf::from("wrk");
        // Debian's Python, which sees the modules apt installs (redis-py),
        // before whichever python3 comes first on the PATH.
        let mut python = ["/usr/bin/python3", "python3"]
            .into_iter()
            .map(PathBuf::from)
            .find(|p| p.is_absolute() && p.exists())
            .unwrap_or_else(|| PathBuf::from("python3"));
        let mut notes = Vec::new();
        while let Some(flag) = argv.next() {
            if flag == "--help" || flag == "-h" {
                return Ok(None);
            }
            let value = argv
                .next()
                .with_context(|| format!("{flag} needs a value\n\n{USAGE}"))?;
            match flag.as_str() {
                "--redis-url" => redis_url = Some(value),
                "--redis-cluster" => redis_cluster = Some(value),
                "--neo4j-uri" => neo4j_uri = Some(value),
                "--neo4j-user" => neo4j_user = Some(value),
                "--neo4j-password" => neo4j_password = Some(value),
                "--neo4j-version" => neo4j_version = Some(value),
                "--mode" => mode = Some(value),
                "--runtime" => runtime = Some(value),
                "--out" => out = value.into(),
                "--docs" => docs = value.into(),
                "--redis-benchmark" => redis_benchmark = value.into(),
                "--lwcache" => lwcache = Some(PathBuf::from(value)),
                "--wrk" => wrk = value.into(),
                "--python" => python = value.into(),
                "--note" => notes.push(value),
                other => bail!("unknown option {other:?}\n\n{USAGE}"),
            }
        }
        let mode = match mode.as_deref() {
            None | Some("quick") => Mode::Quick,
            Some("full") => Mode::Full,
            Some(other) => bail!("--mode is quick or full, not {other:?}"),
        };
        let runtime = match runtime.as_deref() {
            Some("current-thread") => Runtime::CurrentThread,
            None | Some("multi-thread") => Runtime::MultiThread,
            Some(other) => bail!("--runtime is current-thread or multi-thread, not {other:?}"),
        };
        let redis_url = redis_url.with_context(|| format!("--redis-url is required\n\n{USAGE}"))?;
        let neo4j = neo4j_uri.map(|uri| Neo4jArgs {
            uri,
            user: neo4j_user.unwrap_or_else(|| "neo4j".to_owned()),
            password: neo4j_password.unwrap_or_default(),
            version: neo4j_version,
        });
        let lwcache = match lwcache {
            Some(path) => path,
            None => std::env::current_exe()
                .context("finding this binary's directory")?
                .with_file_name("lwcache"),
        };
        let redis_cluster = redis_cluster.map(|list| {
            list.split(',')
                .map(str::trim)
                .filter(|u| !u.is_empty())
                .map(str::to_owned)
                .collect()
        });
        Ok(Some(Self {
            redis_url,
            redis_cluster,
            neo4j,
            mode,
            runtime,
            out,
            docs,
            redis_benchmark,
            lwcache,
            wrk,
            python,
            notes,
        }))
    }
}

/// Host and port of a `redis://[user[:pass]@]host:port[/db]` URL, for
/// `redis-benchmark`.
pub(crate) fn redis_host_port(url: &str) -> Option<(String, u16)> {
    let rest = url.strip_prefix("redis://")?;
    let rest = rest.rsplit_once('@').map_or(rest, |(_, r)| r);
    let authority = rest.split('/').next()?;
    let (host, port) = authority.rsplit_once(':')?;
    Some((host.to_owned(), port.parse().ok()?))
}
