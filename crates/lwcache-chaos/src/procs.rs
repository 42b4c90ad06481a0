//! The processes the checker owns: its redis-server (so it can kill it and
//! start it again empty on the same port) and the `lwcache serve`
//! instances (so it can kill one with SIGKILL and start it again).

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use tokio::process::{Child, Command};

/// How long a server has to answer after it was spawned.
const READY_TIMEOUT: Duration = Duration::from_secs(60);

/// A free loopback port (free when asked; the caller binds it soon after).
pub(crate) fn free_port() -> Result<u16> {
    let listener = std::net::TcpListener::bind(("127.0.0.1", 0)).context("finding a free port")?;
    Ok(listener.local_addr()?.port())
}

/// The last lines of a log file, for error messages.
fn tail(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}

/// A standalone redis-server without persistence, so a restart is empty.
pub(crate) struct RedisProc {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl RedisProc {
    /// Starts one on a free port, its files under `dir`.
    pub(crate) async fn start(dir: &Path) -> Result<RedisProc> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        // redis-server enters `--dir` before it opens `--logfile`: a
        // relative path would be taken twice.
        let dir =
            std::fs::canonicalize(dir).with_context(|| format!("resolving {}", dir.display()))?;
        let mut proc = RedisProc {
            port: free_port()?,
            dir,
            child: None,
        };
        proc.spawn().await?;
        Ok(proc)
    }

    /// Its port.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// A URL for the checker's own connections, straight to the server.
    pub(crate) fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    async fn spawn(&mut self) -> Result<()> {
        let log = self.dir.join("redis.log");
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--daemonize", "no", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .kill_on_drop(true)
            .spawn()
            .context("starting redis-server (is it on PATH? apt-get install redis-server)")?;
        self.child = Some(child);
        let client = redis::Client::open(self.url())?;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(mut conn) = client.get_multiplexed_async_connection().await
                && redis::cmd("PING")
                    .query_async::<String>(&mut conn)
                    .await
                    .is_ok()
            {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                bail!("redis-server exited ({status}):\n{}", tail(&log));
            }
            if Instant::now() > deadline {
                bail!("redis-server did not answer on port {}", self.port);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// SIGKILL: no shutdown, no save.
    pub(crate) async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Starts it again on the same port, empty.
    pub(crate) async fn restart(&mut self) -> Result<()> {
        self.kill().await;
        // The port may linger a moment after the kill.
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match self.spawn().await {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(200)).await,
            }
        }
    }
}

/// How a service instance reaches its backends.
#[derive(Debug, Clone)]
pub(crate) struct ServiceConfig {
    /// The `lwcache` binary.
    pub(crate) binary: PathBuf,
    /// Its Redis (through its proxy).
    pub(crate) redis_url: String,
    /// Its Neo4j (through its proxy).
    pub(crate) neo4j_uri: String,
    /// Neo4j user.
    pub(crate) neo4j_user: String,
    /// Neo4j password.
    pub(crate) neo4j_password: String,
    /// Where its stderr goes.
    pub(crate) log: PathBuf,
}

/// One `lwcache serve` process on a fixed port.
pub(crate) struct ServiceProc {
    port: u16,
    config: ServiceConfig,
    child: Option<Child>,
}

impl ServiceProc {
    /// Starts it on a free port and waits until `/readyz` answers 200.
    pub(crate) async fn start(config: ServiceConfig, http: &reqwest::Client) -> Result<Self> {
        let mut proc = ServiceProc {
            port: free_port()?,
            config,
            child: None,
        };
        proc.spawn(http).await?;
        Ok(proc)
    }

    /// `http://127.0.0.1:PORT`.
    pub(crate) fn base(&self) -> String {
        format!("http://127.0.0.1:{}", self.port)
    }

    async fn spawn(&mut self, http: &reqwest::Client) -> Result<()> {
        let c = &self.config;
        let log = std::fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&c.log)
            .with_context(|| format!("opening {}", c.log.display()))?;
        let mut cmd = Command::new(&c.binary);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("LWCACHE_") {
                cmd.env_remove(name);
            }
        }
        let child = cmd
            .env("LWCACHE_LOG", "warn")
            .arg("serve")
            .args(["--listen", &format!("127.0.0.1:{}", self.port)])
            .args(["--redis-url", &c.redis_url])
            .args(["--neo4j-uri", &c.neo4j_uri])
            .args(["--neo4j-user", &c.neo4j_user])
            .args(["--neo4j-password", &c.neo4j_password])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(log)
            .kill_on_drop(true)
            .spawn()
            .with_context(|| format!("starting {}", c.binary.display()))?;
        self.child = Some(child);
        let ready = format!("{}/readyz", self.base());
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(r) = http.get(&ready).send().await
                && r.status().is_success()
            {
                return Ok(());
            }
            if let Some(child) = self.child.as_mut()
                && let Some(status) = child.try_wait()?
            {
                self.child = None;
                bail!(
                    "lwcache serve exited at start ({status}):\n{}",
                    tail(&self.config.log)
                );
            }
            if Instant::now() > deadline {
                bail!("lwcache serve on port {} did not become ready", self.port);
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// SIGKILL, wherever it is.
    pub(crate) async fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill().await;
        }
    }

    /// Starts it again on the same port. Redis must be up: `lwcache serve`
    /// exits at start when it is not.
    pub(crate) async fn restart(&mut self, http: &reqwest::Client) -> Result<()> {
        self.kill().await;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match self.spawn(http).await {
                Ok(()) => return Ok(()),
                Err(e) if Instant::now() > deadline => return Err(e),
                Err(_) => tokio::time::sleep(Duration::from_millis(500)).await,
            }
        }
    }
}
