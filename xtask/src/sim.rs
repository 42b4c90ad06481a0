//! `cargo xtask sim [--quick|--full] [--seeds N] [--seed S] [...]`: builds
//! `lwcache-sim` in release (the simulation runs several times faster than
//! in a debug build) and runs it from the workspace root, so that traces
//! land in `target/sim/`. Every other option goes to the binary as it is
//! (`--first S`, `--ops N`, `--threads T`, `--variant NAME`, `--expose
//! KNOWN,...`); its exit is this task's: 1 on a violation, after printing
//! the failing seed's shortest trace.

use std::path::Path;
use std::process::Command;
use std::time::Instant;

use anyhow::{Context, Result, bail};

/// Runs the task with its arguments (after `sim`).
pub(crate) fn run(root: &Path, args: &[String]) -> Result<()> {
    let started = Instant::now();
    crate::cargo(
        root,
        &[
            "build",
            "--release",
            "--locked",
            "--package",
            "lwcache-sim",
            "--bin",
            "lwcache-sim",
        ],
    )?;
    eprintln!(
        "lwcache-sim built in {:.1} s",
        started.elapsed().as_secs_f64()
    );
    let binary = std::env::var_os("CARGO_TARGET_DIR")
        .map_or_else(|| root.join("target"), std::path::PathBuf::from)
        .join("release")
        .join("lwcache-sim");
    let ran = Instant::now();
    let status = Command::new(&binary)
        .current_dir(root)
        .args(args)
        .status()
        .with_context(|| format!("running {}", binary.display()))?;
    eprintln!("lwcache-sim ran in {:.1} s", ran.elapsed().as_secs_f64());
    match status.code() {
        Some(0) => Ok(()),
        Some(1) => bail!("lwcache-sim found violations: the seeds and traces are printed above"),
        Some(2) => bail!("lwcache-sim refused its options: {}", args.join(" ")),
        _ => bail!("lwcache-sim did not complete ({status})"),
    }
}
