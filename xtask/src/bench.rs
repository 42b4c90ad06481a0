//! `cargo xtask bench [--quick|--full]`: builds `lwcache-bench` in release,
//! starts a standalone redis-server and Neo4j on free loopback ports, runs
//! the benchmarks against them and stops them.
//!
//! The binary writes `target/bench/report.json` and a markdown page
//! (`README.md`) and chart (`latency.svg`): under `target/bench/` in quick
//! mode, so that CI and trial runs leave the published figures alone, and
//! under `docs/benchmarks/` in full mode, the one reports come from.

use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::{neo4j, redis};

/// The password of the benchmark's Neo4j `neo4j` user.
const NEO4J_PASSWORD: &str = "lwcache-bench";

/// Runs the task with its arguments (after `bench`).
pub(crate) fn run(root: &Path, args: &[String]) -> Result<()> {
    let mut mode = "quick";
    let mut notes = Vec::new();
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => mode = "quick",
            "--full" => mode = "full",
            "--note" => notes.push(args.next().context("--note needs a value")?.clone()),
            other => bail!("unknown bench option {other:?}: use --quick, --full or --note TEXT"),
        }
    }

    // Neo4j takes seconds to start: start it while the benchmark builds.
    let neo4j = {
        let root = root.to_path_buf();
        std::thread::spawn(move || {
            neo4j::Neo4jServer::start_tuned(&root, Some(NEO4J_PASSWORD), neo4j::Tuning::Bench)
        })
    };
    let built = crate::cargo(
        root,
        &[
            "build",
            "--release",
            "--locked",
            "--package",
            "lwcache-bench",
            "--bin",
            "lwcache-bench",
            // The HTTP rows start the service beside the benchmark.
            "--package",
            "lwcache-service",
            "--bin",
            "lwcache",
        ],
    );
    let neo4j = neo4j
        .join()
        .map_err(|_| anyhow::anyhow!("the Neo4j starter thread panicked"))?
        .context("starting Neo4j")?;
    built?;
    let redis = redis::RedisServer::start_standalone(&redis::RedisOptions::default())
        .context("starting redis-server")?;
    // The Redis-tier rows run again on a real 3-master Cluster.
    let cluster = redis::RedisCluster::start().context("starting the Redis Cluster")?;
    eprintln!(
        "redis {}; cluster {}; neo4j {}",
        redis.url(),
        cluster.urls().join(","),
        neo4j.bolt_uri()
    );

    let binary = target_dir(root).join("release").join("lwcache-bench");
    let mut command = Command::new(&binary);
    command
        .current_dir(root)
        .args(["--redis-url", &redis.url()])
        .args(["--redis-cluster", &cluster.urls().join(",")])
        .args(["--neo4j-uri", neo4j.bolt_uri()])
        .args(["--neo4j-user", "neo4j"])
        .args(["--neo4j-password", NEO4J_PASSWORD])
        .args(["--neo4j-version", &neo4j_version(root)])
        .args(["--mode", mode])
        .args(["--out", "target/bench/report.json"])
        .args([
            "--docs",
            if mode == "full" {
                "docs/benchmarks"
            } else {
                "target/bench"
            },
        ]);
    command.args([
        "--note",
        &format!("Neo4j: {}", neo4j::Tuning::Bench.describe()),
    ]);
    for note in &notes {
        command.args(["--note", note]);
    }
    let status = command
        .status()
        .with_context(|| format!("running {}", binary.display()))?;
    drop(redis);
    drop(cluster);
    drop(neo4j);
    if !status.success() {
        bail!("lwcache-bench failed: {status}");
    }
    Ok(())
}

fn target_dir(root: &Path) -> PathBuf {
    std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from)
}

/// The Neo4j version the launcher's pom pins, e.g. `5.26.30 Community
/// (neo4j-harness)`.
fn neo4j_version(root: &Path) -> String {
    let pom =
        std::fs::read_to_string(root.join("xtask/neo4j-launcher/pom.xml")).unwrap_or_default();
    pom.split_once("<neo4j.version>")
        .and_then(|(_, rest)| rest.split_once("</neo4j.version>"))
        .map_or_else(
            || "5.26".to_owned(),
            |(v, _)| format!("{} Community (neo4j-harness)", v.trim()),
        )
}
