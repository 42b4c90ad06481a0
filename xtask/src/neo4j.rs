//! A throwaway Neo4j 5.26 Community server for tests, started from Maven Central only.
//!
//! The machines this project runs on reach package registries and nothing else, so the
//! Neo4j tarball and container images are out of reach. The `neo4j-harness` artifact on
//! Maven Central contains the whole database, and the small Java program in
//! `xtask/neo4j-launcher/` turns it into a server process that speaks Bolt on loopback.
//!
//! [`Neo4jServer::start`] prepares the launcher on first use and caches it under
//! `<workspace>/target/neo4j-launcher/`:
//!
//! * `m2/`: the Maven local repository (Neo4j and its dependencies, about 180 MB);
//! * `classpath.txt`: the resolved runtime class path, written by
//!   `mvn dependency:build-classpath`, pointing into `m2/`;
//! * `classes/`: `Launcher.class`, compiled with plain `javac`.
//!
//! Each step is skipped while its output is newer than its inputs (the pom, the Java
//! source), so later starts neither download nor compile anything. Outputs are written
//! under temporary names and renamed into place, so an interrupted build is redone.
//!
//! Lifetime: the launcher runs as a child of this process and shuts Neo4j down when
//! its stdin reaches EOF, which happens when [`Drop`] closes the pipe and also when this
//! process dies in any way, so no JVM outlives it. A directory left behind by a killed
//! process is removed by the next [`Neo4jServer::start`].
//!
//! Tools: `java` and `javac` 17+ and `mvn` 3.8+ from `PATH`, or `java`/`javac` from
//! `$JAVA_HOME/bin` when `JAVA_HOME` is set. Every program is started with explicit
//! arguments, never through a shell. Items are `pub(crate)` because this is a module
//! of the xtask binary (the workspace warns on unreachable `pub`).

use std::fs::{self, File};
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, mpsc};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context, Result, anyhow, bail};

/// Neo4j 5.26 on 2 cores takes 10–15 s to start; leave room for a loaded machine.
const READY_TIMEOUT: Duration = Duration::from_secs(120);
/// After stdin closes the launcher normally exits within a second or two.
const STOP_TIMEOUT: Duration = Duration::from_secs(30);
/// The one line the launcher prints on stdout, followed by the Bolt URI.
const READY_PREFIX: &str = "NEO4J_READY ";
/// Lines of the launcher log quoted in startup errors.
const LOG_TAIL_LINES: usize = 40;
/// The launcher's main class (default package).
const MAIN_CLASS: &str = "Launcher";
/// The launcher's exit code when the requested Bolt port is taken.
const EXIT_PORT_IN_USE: i32 = 3;

/// How the server is tuned: for tests that share the machine, or for benchmarks.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tuning {
    /// Fast start and a small footprint: a 1 GiB heap, the C1 JIT only and
    /// the harness's 8 MiB page cache. Peak speed does not matter for test data.
    Test,
    /// Peak speed: a fixed 2 GiB heap, the full tiered JIT (C2) and a 512 MiB
    /// page cache that holds the benchmark's whole store.
    Bench,
}

impl Tuning {
    /// The JVM options.
    fn jvm_options(self) -> &'static [&'static str] {
        match self {
            // A dead server is easier to diagnose than a swapping one, hence
            // ExitOnOutOfMemoryError in both.
            Tuning::Test => &[
                "-Xmx1g",
                // C1 only: starts about a third faster.
                "-XX:TieredStopAtLevel=1",
                "-XX:+ExitOnOutOfMemoryError",
            ],
            Tuning::Bench => &["-Xms2g", "-Xmx2g", "-XX:+ExitOnOutOfMemoryError"],
        }
    }

    /// The launcher's own options.
    fn launcher_options(self) -> &'static [&'static str] {
        match self {
            Tuning::Test => &[],
            Tuning::Bench => &["--page-cache-bytes", "536870912"],
        }
    }

    /// The conditions, in words, for reports.
    pub(crate) fn describe(self) -> &'static str {
        match self {
            Tuning::Test => {
                "neo4j-harness's embedded Community server, 1 GiB heap, C1 JIT only, 8 MiB page cache (tuned to start fast)"
            }
            Tuning::Bench => {
                "neo4j-harness's embedded Community server, 2 GiB heap, full tiered JIT, 512 MiB page cache"
            }
        }
    }
}

/// Serialises launcher builds between threads of this process; across processes the
/// write-then-rename steps keep the cache consistent (at worst work is done twice).
static BUILD_LOCK: Mutex<()> = Mutex::new(());

/// A running Neo4j server, owned by this process.
///
/// The database lives in a fresh temporary directory. Dropping the value
/// shuts the server down and removes the directory.
#[derive(Debug)]
pub(crate) struct Neo4jServer {
    child: Child,
    /// Closing it (EOF) tells the launcher to shut down.
    stdin: Option<ChildStdin>,
    bolt_uri: String,
    temp_dir: PathBuf,
    log_path: PathBuf,
    stopped: bool,
}

impl Neo4jServer {
    /// Builds the launcher if needed, starts a server and waits until Bolt accepts connections.
    ///
    /// `workspace_root` is the directory holding `xtask/neo4j-launcher/` and `target/`.
    /// With `Some(password)`, authentication is enabled and the `neo4j` user has that
    /// password (any non-empty string; the length minimum is lifted). With `None`,
    /// authentication is disabled.
    ///
    /// Bolt listens on 127.0.0.1 at a port the OS picks, without TLS; HTTP is disabled.
    /// Fails if the tools are missing, the build fails, or the server is not ready within
    /// 120 s; startup errors quote the end of the launcher's log.
    pub(crate) fn start(workspace_root: &Path, password: Option<&str>) -> Result<Neo4jServer> {
        Self::start_tuned(workspace_root, password, Tuning::Test)
    }

    /// [`Neo4jServer::start`] with the given [`Tuning`].
    pub(crate) fn start_tuned(
        workspace_root: &Path,
        password: Option<&str>,
        tuning: Tuning,
    ) -> Result<Neo4jServer> {
        if password == Some("") {
            bail!("the Neo4j password must not be empty");
        }
        let launcher = Launcher::prepare(workspace_root)?;
        reap_stale_temp_dirs();
        let temp_dir = create_temp_dir()?;
        launcher
            .spawn(temp_dir.clone(), password, tuning)
            .inspect_err(|_| {
                let _ = fs::remove_dir_all(&temp_dir);
            })
    }

    /// The server's Bolt URI, `bolt://127.0.0.1:<port>`.
    pub(crate) fn bolt_uri(&self) -> &str {
        &self.bolt_uri
    }

    fn shutdown(&mut self) -> Result<()> {
        if self.stopped {
            return Ok(());
        }
        self.stopped = true;
        // EOF on stdin asks the launcher to shut Neo4j down cleanly and exit 0.
        drop(self.stdin.take());
        let problem = match wait_timeout(&mut self.child, STOP_TIMEOUT) {
            Ok(Some(status)) if status.success() => None,
            Ok(Some(status)) => Some(format!("Neo4j launcher exited with {status} on shutdown")),
            Ok(None) => Some(format!(
                "Neo4j launcher did not stop within {STOP_TIMEOUT:?}; killed it"
            )),
            Err(err) => Some(format!("{err:#}")),
        };
        let result = match problem {
            None => Ok(()),
            Some(problem) => {
                let _ = self.child.kill();
                let _ = self.child.wait();
                Err(anyhow!(
                    "{problem}; last lines of its log:\n{}",
                    log_tail(&self.log_path)
                ))
            }
        };
        let removed = fs::remove_dir_all(&self.temp_dir)
            .with_context(|| format!("removing {}", self.temp_dir.display()));
        result.and(removed)
    }
}

impl Drop for Neo4jServer {
    /// Closes the launcher's stdin, waits for a clean exit (killing it after 30 s) and
    /// removes the temporary directory. Problems are reported on stderr.
    fn drop(&mut self) {
        if let Err(err) = self.shutdown() {
            eprintln!("warning: stopping Neo4j test server: {err:#}");
        }
    }
}

/// The compiled launcher and the command line pieces to run it.
struct Launcher {
    java: PathBuf,
    /// `classes` directory followed by the dependency jars.
    class_path: String,
}

impl Launcher {
    /// Makes sure the dependencies are resolved and the launcher compiled.
    fn prepare(workspace_root: &Path) -> Result<Launcher> {
        let root = workspace_root
            .canonicalize()
            .with_context(|| format!("workspace root {}", workspace_root.display()))?;
        let source_dir = root.join("xtask").join("neo4j-launcher");
        let pom = source_dir.join("pom.xml");
        let java_source = source_dir
            .join("src/main/java")
            .join(format!("{MAIN_CLASS}.java"));
        let cache = root.join("target").join("neo4j-launcher");
        let class_path_file = cache.join("classpath.txt");
        let classes = cache.join("classes");
        if !pom.is_file() || !java_source.is_file() {
            bail!(
                "{} or {} is missing; is {} the workspace root?",
                pom.display(),
                java_source.display(),
                root.display()
            );
        }
        let tools = Tools::find();

        // A poisoned lock only means another thread's build failed; the steps are redone.
        let _guard = BUILD_LOCK
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner());
        fs::create_dir_all(&cache).with_context(|| format!("creating {}", cache.display()))?;

        let dependencies = match read_class_path(&class_path_file, &[&pom])? {
            Some(dependencies) => dependencies,
            None => {
                resolve_dependencies(&tools, &pom, &cache, &class_path_file)?;
                read_class_path(&class_path_file, &[])?.ok_or_else(|| {
                    anyhow!(
                        "Maven wrote no usable class path to {}",
                        class_path_file.display()
                    )
                })?
            }
        };

        let class_file = classes.join(format!("{MAIN_CLASS}.class"));
        if !is_fresh(&class_file, &[&java_source, &class_path_file])? {
            compile(&tools, &java_source, &dependencies, &cache, &classes)?;
        }

        let mut class_path = classes.into_os_string();
        class_path.push(":");
        class_path.push(&dependencies);
        let class_path = class_path
            .into_string()
            .map_err(|_| anyhow!("the launcher class path is not valid UTF-8"))?;
        Ok(Launcher {
            java: tools.java,
            class_path,
        })
    }

    /// Starts the launcher with its data under `temp_dir` and waits for the ready line.
    fn spawn(
        &self,
        temp_dir: PathBuf,
        password: Option<&str>,
        tuning: Tuning,
    ) -> Result<Neo4jServer> {
        let data_dir = temp_dir.join("data");
        fs::create_dir(&data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
        let log_path = temp_dir.join("launcher.log");
        // Append mode: the JVM's stderr and the stdout watcher share this file.
        let log = File::options()
            .create_new(true)
            .append(true)
            .open(&log_path)
            .with_context(|| format!("creating {}", log_path.display()))?;

        let mut command = Command::new(&self.java);
        command
            .args(tuning.jvm_options())
            .arg("-cp")
            .arg(&self.class_path)
            .arg(MAIN_CLASS)
            // Port 0: the OS picks a free port at bind time and the launcher reports it,
            // so there is no window in which another process can take it.
            .args(["--port", "0"])
            .arg("--data-dir")
            .arg(&data_dir)
            .args(tuning.launcher_options());
        if let Some(password) = password {
            command.args(["--password", password]);
        }
        let mut child = command
            // JVM crash files and the like land here and vanish with the directory.
            .current_dir(&temp_dir)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::from(log.try_clone()?))
            .spawn()
            .with_context(|| format!("running {}", self.java.display()))?;

        let stdin = child.stdin.take();
        let stdout = child
            .stdout
            .take()
            .context("launcher stdout is not piped")?;
        let ready = watch_stdout(stdout, log);

        let mut server = Neo4jServer {
            child,
            stdin,
            bolt_uri: String::new(),
            temp_dir,
            log_path,
            stopped: false,
        };
        let what = match ready.recv_timeout(READY_TIMEOUT) {
            Ok(uri) => {
                server.bolt_uri = uri;
                return Ok(server);
            }
            Err(mpsc::RecvTimeoutError::Timeout) => {
                format!("Neo4j was not ready within {READY_TIMEOUT:?}")
            }
            Err(mpsc::RecvTimeoutError::Disconnected) => {
                // Stdout closed without the ready line: the launcher has exited or is exiting.
                match wait_timeout(&mut server.child, STOP_TIMEOUT).ok().flatten() {
                    Some(status) if status.code() == Some(EXIT_PORT_IN_USE) => {
                        "Neo4j launcher could not bind its port".to_owned()
                    }
                    Some(status) => format!("Neo4j launcher exited with {status} before ready"),
                    None => "Neo4j launcher closed stdout before ready".to_owned(),
                }
            }
        };
        // Failed: make sure the JVM is gone and keep Drop from reporting it again. The
        // caller removes the temporary directory, so the log tail goes into the error.
        let _ = server.child.kill();
        let _ = server.child.wait();
        server.stopped = true;
        bail!(
            "{what}; last lines of its log:\n{}",
            log_tail(&server.log_path)
        )
    }
}

/// Reads the launcher's stdout on a thread: sends the URI from the ready line, copies
/// every other line to the log, and drops the sender at EOF.
fn watch_stdout(stdout: impl Read + Send + 'static, mut log: File) -> mpsc::Receiver<String> {
    let (sender, receiver) = mpsc::channel();
    thread::spawn(move || {
        let mut sender = Some(sender);
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            match line.strip_prefix(READY_PREFIX) {
                Some(uri) if sender.is_some() => {
                    if let Some(sender) = sender.take() {
                        let _ = sender.send(uri.trim().to_owned());
                    }
                }
                _ => {
                    // Not the protocol line (e.g. a JVM warning): keep it for diagnosis.
                    let _ = writeln!(log, "[stdout] {line}");
                }
            }
        }
    });
    receiver
}

/// The external programs used, from `JAVA_HOME` when set and `PATH` otherwise.
struct Tools {
    java: PathBuf,
    javac: PathBuf,
    mvn: PathBuf,
}

impl Tools {
    fn find() -> Tools {
        let jdk_tool = |name: &str| match std::env::var_os("JAVA_HOME") {
            Some(home) if !home.is_empty() => Path::new(&home).join("bin").join(name),
            _ => PathBuf::from(name),
        };
        Tools {
            java: jdk_tool("java"),
            javac: jdk_tool("javac"),
            mvn: PathBuf::from("mvn"),
        }
    }
}

/// Downloads the launcher's dependencies into `<cache>/m2` and writes their class path.
fn resolve_dependencies(
    tools: &Tools,
    pom: &Path,
    cache: &Path,
    class_path_file: &Path,
) -> Result<()> {
    let partial = cache.join("classpath.txt.partial");
    let mut command = Command::new(&tools.mvn);
    command
        .arg("--batch-mode")
        .arg("--quiet")
        .arg("--file")
        .arg(pom)
        .arg(define("maven.repo.local", &cache.join("m2")))
        .arg(define("mdep.outputFile", &partial))
        .arg("-DincludeScope=runtime")
        .arg("dependency:build-classpath");
    run_tool(
        &mut command,
        "resolving Neo4j with Maven (first run downloads ~180 MB)",
    )?;
    fs::rename(&partial, class_path_file)
        .with_context(|| format!("moving {} into place", partial.display()))
}

/// Compiles the launcher into `classes`, replacing any previous build.
fn compile(
    tools: &Tools,
    source: &Path,
    dependencies: &str,
    cache: &Path,
    classes: &Path,
) -> Result<()> {
    let partial = cache.join(format!("classes.partial-{}", std::process::id()));
    let _ = fs::remove_dir_all(&partial);
    let mut command = Command::new(&tools.javac);
    command
        .args(["--release", "17", "-nowarn", "-encoding", "UTF-8", "-d"])
        .arg(&partial)
        .arg("-cp")
        .arg(dependencies)
        .arg(source);
    run_tool(&mut command, "compiling the Neo4j launcher")?;
    match fs::remove_dir_all(classes) {
        Ok(()) => {}
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => {}
        Err(err) => return Err(err).with_context(|| format!("removing {}", classes.display())),
    }
    fs::rename(&partial, classes)
        .with_context(|| format!("moving {} into place", partial.display()))
}

/// Runs a build tool, returning its combined output in the error when it fails.
fn run_tool(command: &mut Command, what: &str) -> Result<()> {
    let output = command.stdin(Stdio::null()).output().with_context(|| {
        format!(
            "{what}: cannot run {}",
            command.get_program().to_string_lossy()
        )
    })?;
    if output.status.success() {
        return Ok(());
    }
    let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
    text.push_str(&String::from_utf8_lossy(&output.stderr));
    bail!(
        "{what}: {} failed with {}:\n{}",
        command.get_program().to_string_lossy(),
        output.status,
        tail(&text, LOG_TAIL_LINES)
    )
}

/// `-Dname=path`, for a Maven property that takes a path.
fn define(name: &str, path: &Path) -> std::ffi::OsString {
    let mut arg = std::ffi::OsString::from(format!("-D{name}="));
    arg.push(path);
    arg
}

/// The cached class path, if it is newer than `inputs` and every jar it names exists.
fn read_class_path(file: &Path, inputs: &[&Path]) -> Result<Option<String>> {
    if !is_fresh(file, inputs)? {
        return Ok(None);
    }
    let class_path =
        fs::read_to_string(file).with_context(|| format!("reading {}", file.display()))?;
    let class_path = class_path.trim().to_owned();
    let complete =
        !class_path.is_empty() && class_path.split(':').all(|jar| Path::new(jar).is_file());
    Ok(complete.then_some(class_path))
}

/// Whether `output` exists and is at least as new as every one of `inputs`.
fn is_fresh(output: &Path, inputs: &[&Path]) -> Result<bool> {
    let Some(built) = modified(output)? else {
        return Ok(false);
    };
    for input in inputs {
        let changed = modified(input)?.ok_or_else(|| anyhow!("{} is missing", input.display()))?;
        if changed > built {
            return Ok(false);
        }
    }
    Ok(true)
}

/// The modification time of `path`, or `None` if it does not exist.
fn modified(path: &Path) -> Result<Option<SystemTime>> {
    match fs::metadata(path) {
        Ok(metadata) => Ok(Some(metadata.modified()?)),
        Err(err) if err.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(err) => Err(err).with_context(|| format!("reading metadata of {}", path.display())),
    }
}

/// Prefix of the temporary directories, followed by the owning process id.
const TEMP_DIR_PREFIX: &str = "lwcache-neo4j-";

/// Removes temporary directories left by processes that no longer exist (killed with
/// `SIGKILL`, or ended by `std::process::exit`, so `Drop` never ran). Their launchers
/// have already exited on their own when stdin reached EOF; only the directory is left.
/// Linux only (process liveness is read from `/proc`); best effort.
fn reap_stale_temp_dirs() {
    if !Path::new("/proc/self").exists() {
        return;
    }
    let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name();
        let Some(pid) = name
            .to_str()
            .and_then(|name| name.strip_prefix(TEMP_DIR_PREFIX))
            .and_then(|rest| rest.split('-').next())
            .filter(|pid| !pid.is_empty() && pid.bytes().all(|b| b.is_ascii_digit()))
        else {
            continue;
        };
        if !Path::new("/proc").join(pid).exists() {
            let _ = fs::remove_dir_all(entry.path());
        }
    }
}

/// Creates a new, uniquely named directory under the system temporary directory.
fn create_temp_dir() -> Result<PathBuf> {
    static COUNTER: AtomicU64 = AtomicU64::new(0);
    let nanos = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let name = format!(
        "{TEMP_DIR_PREFIX}{}-{nanos:08x}-{}",
        std::process::id(),
        COUNTER.fetch_add(1, Ordering::Relaxed)
    );
    let dir = std::env::temp_dir().join(name);
    fs::create_dir(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}

/// Waits for `child` to exit, polling, for at most `timeout`. `Ok(None)` on timeout.
fn wait_timeout(child: &mut Child, timeout: Duration) -> Result<Option<ExitStatus>> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(status) = child.try_wait().context("waiting for the Neo4j launcher")? {
            return Ok(Some(status));
        }
        if Instant::now() >= deadline {
            return Ok(None);
        }
        thread::sleep(Duration::from_millis(50));
    }
}

/// The last lines of the log file (at most the last 64 KiB of it).
fn log_tail(path: &Path) -> String {
    const MAX_BYTES: u64 = 64 * 1024;
    let read = || -> std::io::Result<String> {
        let mut file = File::open(path)?;
        let len = file.metadata()?.len();
        file.seek(SeekFrom::Start(len.saturating_sub(MAX_BYTES)))?;
        let mut bytes = Vec::new();
        file.read_to_end(&mut bytes)?;
        Ok(String::from_utf8_lossy(&bytes).into_owned())
    };
    match read() {
        Ok(text) => tail(&text, LOG_TAIL_LINES),
        Err(err) => format!("(cannot read {}: {err})", path.display()),
    }
}

/// The last `lines` lines of `text`.
fn tail(text: &str, lines: usize) -> String {
    let all: Vec<&str> = text.lines().collect();
    all[all.len().saturating_sub(lines)..].join("\n")
}
