//! `cargo xtask chaos [--quick|--full] [--seed N] [--topology
//! standalone|cluster] [--near]`: builds `lwcache` and `lwcache-chaos` in release,
//! starts Neo4j on a free loopback port, runs the consistency checker
//! against it and stops it.
//!
//! The checker starts and kills its own redis-server (or the three masters
//! of its Redis Cluster) and `lwcache serve` processes, so only Neo4j is
//! started here. It writes `report.json` and `report.md` under
//! `target/chaos` (`target/chaos-cluster` for the Cluster, with `-near`
//! when the instances run their near caches) and exits
//! non-zero on a violation or when the cache does not converge; that exit
//! is this task's.

use std::path::Path;
use std::process::Command;

use anyhow::{Context, Result, bail};

use crate::neo4j;

/// The password of the checker's Neo4j `neo4j` user.
const NEO4J_PASSWORD: &str = "lwcache-chaos";

/// Runs the task with its arguments (after `chaos`).
pub(crate) fn run(root: &Path, args: &[String]) -> Result<()> {
    let mut mode = "--quick";
    let mut seed = "1".to_owned();
    let mut topology = "standalone";
    let mut near = false;
    let mut args = args.iter();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--quick" => mode = "--quick",
            "--full" => mode = "--full",
            "--seed" => seed = args.next().context("--seed needs a value")?.clone(),
            "--near" => near = true,
            "--topology" => {
                topology = match args.next().map(String::as_str) {
                    Some("standalone") => "standalone",
                    Some("cluster") => "cluster",
                    _ => bail!("--topology needs standalone or cluster"),
                }
            }
            other => bail!(
                "unknown chaos option {other:?}: use --quick, --full, --seed N, --topology standalone|cluster or --near"
            ),
        }
    }
    let out = match (topology, near) {
        ("cluster", false) => "target/chaos-cluster",
        ("cluster", true) => "target/chaos-cluster-near",
        (_, false) => "target/chaos",
        (_, true) => "target/chaos-near",
    };

    // Neo4j takes seconds to start: start it while the binaries build.
    let neo4j = {
        let root = root.to_path_buf();
        std::thread::spawn(move || neo4j::Neo4jServer::start(&root, Some(NEO4J_PASSWORD)))
    };
    let built = crate::cargo(
        root,
        &[
            "build",
            "--release",
            "--locked",
            "--package",
            "lwcache-service",
            "--bin",
            "lwcache",
            "--package",
            "lwcache-chaos",
            "--bin",
            "lwcache-chaos",
        ],
    );
    let neo4j = neo4j
        .join()
        .map_err(|_| anyhow::anyhow!("the Neo4j starter thread panicked"))?
        .context("starting Neo4j")?;
    built?;
    eprintln!("neo4j {}", neo4j.bolt_uri());

    let release = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root.join("target"), std::path::PathBuf::from)
        .join("release");
    let binary = release.join("lwcache-chaos");
    let status = Command::new(&binary)
        .current_dir(root)
        .arg("--lwcache")
        .arg(release.join("lwcache"))
        .args(["--neo4j-uri", neo4j.bolt_uri()])
        .args(["--neo4j-user", "neo4j"])
        .args(["--neo4j-password", NEO4J_PASSWORD])
        .args(["--seed", &seed, mode])
        .args(["--topology", topology])
        .args(["--out", out])
        .args(near.then_some("--near"))
        .status()
        .with_context(|| format!("running {}", binary.display()))?;
    drop(neo4j);
    match status.code() {
        Some(0) => Ok(()),
        // The checker's own verdict: a violation or no convergence.
        Some(1) => {
            bail!("lwcache-chaos found violations or no convergence: see {out}/report.md")
        }
        _ => bail!("lwcache-chaos did not complete ({status})"),
    }
}
