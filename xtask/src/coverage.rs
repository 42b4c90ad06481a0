//! `cargo xtask coverage`: line coverage of the library crates
//! (`crates/*/src`) over every test, with the real servers `ci` starts, by
//! cargo-llvm-cov. It installs what is missing (cargo-llvm-cov from
//! crates.io; LLVM's `llvm-cov`/`llvm-profdata` from rustup's `llvm-tools`,
//! or the system's LLVM of rustc's major version) and says so.
//!
//! `--unit` measures the unit tests alone (`--lib`, no server), the figure
//! the spec holds to 85%.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context, Result, bail};

use crate::{Servers, cargo_with};

/// Where the reports go, relative to the workspace root.
const OUT_DIR: &str = "target/coverage";

/// The spec's floors, printed beside the figures.
const OVERALL_FLOOR: f64 = 80.0;
const UNIT_FLOOR: f64 = 85.0;

/// Runs the task.
pub(crate) fn run(root: &Path, args: &[String]) -> Result<()> {
    let unit = match args {
        [] => false,
        [flag] if flag == "--unit" => true,
        other => bail!("unknown coverage options {other:?}: use --unit or nothing"),
    };
    ensure_cargo_llvm_cov(root)?;
    let mut env = llvm_tools()?;
    let out = root.join(OUT_DIR).join(if unit { "unit" } else { "all" });
    std::fs::create_dir_all(&out).with_context(|| format!("creating {}", out.display()))?;

    cargo_with(root, &["llvm-cov", "clean", "--workspace"], &env)?;
    let mut test = vec![
        "llvm-cov",
        "--no-report",
        // Every suite runs even when one fails, so the figures cover the
        // whole suite; the task still fails after reporting.
        "--no-fail-fast",
        "--workspace",
        "--exclude",
        "xtask",
        "--locked",
    ];
    let servers = if unit {
        test.push("--lib");
        None
    } else {
        Some(Servers::start_all(root)?)
    };
    if let Some(servers) = &servers {
        env.extend(servers.env());
    }
    let tested = cargo_with(root, &test, &env);
    drop(servers);

    let lcov = out.join("lcov.info");
    let lcov_arg = lcov.display().to_string();
    let html_arg = out.display().to_string();
    cargo_with(
        root,
        &["llvm-cov", "report", "--lcov", "--output-path", &lcov_arg],
        &env,
    )?;
    cargo_with(
        root,
        &["llvm-cov", "report", "--html", "--output-dir", &html_arg],
        &env,
    )?;

    let text = std::fs::read_to_string(&lcov).with_context(|| format!("reading {lcov_arg}"))?;
    let files = parse_lcov(&text, root);
    let floor = if unit { UNIT_FLOOR } else { OVERALL_FLOOR };
    let what = if unit {
        "unit tests only"
    } else {
        "every test, real servers"
    };
    let summary = render(&files, what, floor);
    let summary_path = out.join("summary.txt");
    std::fs::write(&summary_path, &summary)
        .with_context(|| format!("writing {}", summary_path.display()))?;
    eprintln!("{summary}");
    eprintln!(
        "coverage: {} (lcov.info, html/index.html, summary.txt)",
        out.display()
    );
    tested.context("some tests failed: the figures above count only what ran")
}

/// Installs cargo-llvm-cov from crates.io unless it is there.
fn ensure_cargo_llvm_cov(root: &Path) -> Result<()> {
    let found = Command::new(cargo_bin())
        .args(["llvm-cov", "--version"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok_and(|s| s.success());
    if !found {
        eprintln!("coverage: cargo-llvm-cov is missing; installing it from crates.io");
        cargo_with(root, &["install", "cargo-llvm-cov", "--locked"], &[])?;
    }
    Ok(())
}

/// Finds LLVM's coverage tools of rustc's LLVM version; returns the
/// variables that point cargo-llvm-cov at them (none when it finds
/// rustup's own). Tries, in order: rustup's `llvm-tools` component, the
/// system's LLVM of the same major version, `rustup component add
/// llvm-tools`, then the distribution's `llvm-<major>` package (apt-get).
fn llvm_tools() -> Result<Vec<(&'static str, String)>> {
    let version = capture("rustc", &["-vV"])?;
    let field = |name: &str| {
        version
            .lines()
            .find_map(|l| l.strip_prefix(name))
            .map(|v| v.trim().to_owned())
    };
    let host = field("host:").context("rustc -vV shows no host")?;
    let llvm = field("LLVM version:").context("rustc -vV shows no LLVM version")?;
    let major = llvm.split('.').next().unwrap_or(&llvm).to_owned();
    let sysroot = PathBuf::from(capture("rustc", &["--print", "sysroot"])?.trim());
    let rustup_tools = sysroot.join("lib/rustlib").join(&host).join("bin");
    if rustup_tools.join("llvm-profdata").is_file() {
        return Ok(Vec::new());
    }
    if let Some(env) = system_llvm(&major) {
        return Ok(env);
    }
    eprintln!("coverage: no llvm-tools for LLVM {llvm}; trying `rustup component add llvm-tools`");
    let added = Command::new("rustup")
        .args(["component", "add", "llvm-tools"])
        .status()
        .is_ok_and(|s| s.success());
    if added && rustup_tools.join("llvm-profdata").is_file() {
        return Ok(Vec::new());
    }
    let package = format!("llvm-{major}");
    eprintln!("coverage: trying the distribution's {package} (apt-get install {package})");
    let installed = Command::new("apt-get")
        .args(["install", "-y", "--no-install-recommends", &package])
        .status()
        .is_ok_and(|s| s.success());
    if installed && let Some(env) = system_llvm(&major) {
        return Ok(env);
    }
    bail!(
        "no llvm-cov/llvm-profdata for rustc's LLVM {llvm}: run `rustup component add \
         llvm-tools` or install LLVM {major} (Debian: apt-get install {package})"
    )
}

/// The system's `llvm-cov` and `llvm-profdata` of LLVM `major`, Debian's
/// layout first.
fn system_llvm(major: &str) -> Option<Vec<(&'static str, String)>> {
    let dir = PathBuf::from(format!("/usr/lib/llvm-{major}/bin"));
    let (cov, profdata) = if dir.join("llvm-profdata").is_file() {
        (dir.join("llvm-cov"), dir.join("llvm-profdata"))
    } else {
        let on_path = |name: String| {
            std::env::var_os("PATH").and_then(|paths| {
                std::env::split_paths(&paths)
                    .map(|p| p.join(&name))
                    .find(|p| p.is_file())
            })
        };
        (
            on_path(format!("llvm-cov-{major}"))?,
            on_path(format!("llvm-profdata-{major}"))?,
        )
    };
    if !cov.is_file() {
        return None;
    }
    eprintln!(
        "coverage: using LLVM {major}'s {} and {}",
        cov.display(),
        profdata.display()
    );
    Some(vec![
        ("LLVM_COV", cov.display().to_string()),
        ("LLVM_PROFDATA", profdata.display().to_string()),
    ])
}

fn cargo_bin() -> String {
    std::env::var("CARGO").unwrap_or_else(|_| "cargo".into())
}

fn capture(program: &str, args: &[&str]) -> Result<String> {
    let out = Command::new(program)
        .args(args)
        .output()
        .with_context(|| format!("running {program} {}", args.join(" ")))?;
    if !out.status.success() {
        bail!("{program} {} failed: {}", args.join(" "), out.status);
    }
    String::from_utf8(out.stdout).with_context(|| format!("{program}'s output is not UTF-8"))
}

/// Lines found and hit in one source file.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub(crate) struct Lines {
    pub(crate) found: u64,
    pub(crate) hit: u64,
}

impl Lines {
    fn add(&mut self, other: Lines) {
        self.found += other.found;
        self.hit += other.hit;
    }

    fn percent(self) -> f64 {
        if self.found == 0 {
            100.0
        } else {
            // Line counts stay far below 2^52: the conversion is exact.
            self.hit as f64 * 100.0 / self.found as f64
        }
    }
}

/// The library files of an lcov report (`crates/<crate>/src/...`), by
/// path relative to `root`, with their line counts.
pub(crate) fn parse_lcov(text: &str, root: &Path) -> BTreeMap<String, Lines> {
    let mut files = BTreeMap::new();
    let mut current: Option<(String, Lines)> = None;
    for line in text.lines() {
        if let Some(path) = line.strip_prefix("SF:") {
            let path = Path::new(path);
            let relative = path.strip_prefix(root).unwrap_or(path);
            current = Some((relative.display().to_string(), Lines::default()));
        } else if let Some((_, lines)) = current.as_mut() {
            if let Some(n) = line.strip_prefix("LF:") {
                lines.found = n.trim().parse().unwrap_or(0);
            } else if let Some(n) = line.strip_prefix("LH:") {
                lines.hit = n.trim().parse().unwrap_or(0);
            } else if line == "end_of_record"
                && let Some((path, lines)) = current.take()
                && crate_of(&path).is_some()
            {
                files.insert(path, lines);
            }
        }
    }
    files
}

/// `crates/<name>/src/...` → `<name>`.
fn crate_of(path: &str) -> Option<&str> {
    let rest = path.strip_prefix("crates/")?;
    let (name, rest) = rest.split_once('/')?;
    rest.starts_with("src/").then_some(name)
}

/// The report: per crate and overall, then each crate's least-covered
/// files.
pub(crate) fn render(files: &BTreeMap<String, Lines>, what: &str, floor: f64) -> String {
    let mut crates: BTreeMap<&str, Lines> = BTreeMap::new();
    let mut total = Lines::default();
    for (path, lines) in files {
        if let Some(name) = crate_of(path) {
            crates.entry(name).or_default().add(*lines);
            total.add(*lines);
        }
    }
    let mut out = format!("line coverage of crates/*/src ({what}; the spec asks {floor:.0}%)\n");
    for (name, lines) in &crates {
        out += &row(name, *lines, floor);
    }
    out += &row("overall", total, floor);
    out += "\nleast-covered files (up to 3 per crate under the floor):\n";
    for name in crates
        .iter()
        .filter(|(_, l)| l.percent() < floor)
        .map(|(n, _)| *n)
    {
        let mut own: Vec<(&String, &Lines)> = files
            .iter()
            .filter(|(p, _)| crate_of(p) == Some(name))
            .collect();
        own.sort_by(|a, b| a.1.percent().total_cmp(&b.1.percent()));
        for (path, lines) in own.into_iter().take(3) {
            out += &row(path, *lines, floor);
        }
    }
    out
}

fn row(name: &str, lines: Lines, floor: f64) -> String {
    let mark = if lines.percent() < floor {
        "  < floor"
    } else {
        ""
    };
    format!(
        "  {name:<44} {:>6.2}%  {:>6}/{:<6}{mark}\n",
        lines.percent(),
        lines.hit,
        lines.found
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    const LCOV: &str = "\
SF:/ws/crates/lwcache-core/src/manager.rs
DA:1,1
LF:10
LH:9
end_of_record
SF:/ws/crates/lwcache-core/src/codec.rs
LF:10
LH:5
end_of_record
SF:/ws/crates/lwcache-otel/src/lib.rs
LF:4
LH:4
end_of_record
SF:/ws/crates/lwcache-otel/tests/it/main.rs
LF:100
LH:0
end_of_record
SF:/ws/xtask/src/main.rs
LF:50
LH:0
end_of_record
";

    #[test]
    fn only_library_sources_are_counted() {
        let files = parse_lcov(LCOV, Path::new("/ws"));
        let paths: Vec<&str> = files.keys().map(String::as_str).collect();
        assert_eq!(
            paths,
            [
                "crates/lwcache-core/src/codec.rs",
                "crates/lwcache-core/src/manager.rs",
                "crates/lwcache-otel/src/lib.rs",
            ]
        );
        assert_eq!(
            files["crates/lwcache-core/src/codec.rs"],
            Lines { found: 10, hit: 5 }
        );
    }

    #[test]
    fn crates_and_the_total_add_their_files_lines() {
        let report = render(&parse_lcov(LCOV, Path::new("/ws")), "test", 80.0);
        let line = |name: &str| {
            report
                .lines()
                .find(|l| l.trim_start().starts_with(name))
                .unwrap_or_else(|| panic!("no line for {name} in\n{report}"))
                .to_owned()
        };
        assert!(line("lwcache-core").contains("70.00%"), "{report}");
        assert!(line("lwcache-core").contains("< floor"), "{report}");
        assert!(line("lwcache-otel").contains("100.00%"), "{report}");
        assert!(!line("lwcache-otel").contains("< floor"), "{report}");
        assert!(line("overall").contains("18/24"), "{report}");
        // The least-covered file of the crate under the floor comes first.
        let codec = report.find("crates/lwcache-core/src/codec.rs").unwrap();
        let manager = report.find("crates/lwcache-core/src/manager.rs").unwrap();
        assert!(codec < manager, "{report}");
    }
}
