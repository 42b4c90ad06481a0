//! The processes the checker owns: its redis-server, or the three masters
//! of its Redis Cluster (so it can kill them and start them again empty on
//! the same ports), and the `lwcache serve` instances (so it can kill one
//! with SIGKILL and start it again).

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

/// A redis-server without persistence, so a restart is empty.
pub(crate) struct RedisProc {
    port: u16,
    dir: PathBuf,
    /// Arguments past the common ones, the same on every (re)start.
    extra: Vec<String>,
    child: Option<Child>,
}

impl RedisProc {
    /// Starts one on a free port, its files under `dir`.
    pub(crate) async fn start(dir: &Path) -> Result<RedisProc> {
        let mut proc = RedisProc::new(dir, free_port()?, Vec::new())?;
        proc.spawn().await?;
        Ok(proc)
    }

    /// One on `port` with `extra` arguments, not started yet.
    fn new(dir: &Path, port: u16, extra: Vec<String>) -> Result<RedisProc> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        // redis-server enters `--dir` before it opens `--logfile`: a
        // relative path would be taken twice.
        let dir =
            std::fs::canonicalize(dir).with_context(|| format!("resolving {}", dir.display()))?;
        Ok(RedisProc {
            port,
            dir,
            extra,
            child: None,
        })
    }

    /// Its port.
    pub(crate) fn port(&self) -> u16 {
        self.port
    }

    /// Its cluster bus port, from its arguments.
    fn bus_port(&self) -> Option<String> {
        let at = self.extra.iter().position(|a| a == "--cluster-port")?;
        self.extra.get(at + 1).cloned()
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
            .args(&self.extra)
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

/// How long a Cluster may take to report `cluster_state:ok` on every node.
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(60);

/// The slots of each of the three masters.
const SLOT_RANGES: [(u16, u16); 3] = [(0, 5460), (5461, 10922), (10923, 16383)];

/// A Redis Cluster of three masters without replicas or persistence.
///
/// Each node announces another port than its own (`cluster-announce-port`:
/// the port of its fault proxy), so that Cluster clients, which connect to
/// the addresses `CLUSTER SLOTS` names, reach it through the proxy. The
/// bus port is announced as it is: node-to-node gossip goes direct, so a
/// fault on the clients' path never splits the Cluster itself.
pub(crate) struct ClusterProc {
    nodes: Vec<RedisProc>,
}

impl ClusterProc {
    /// The client ports of three nodes to be, free now, so that their
    /// proxies can be started before the nodes.
    pub(crate) fn ports() -> Result<Vec<u16>> {
        SLOT_RANGES.iter().map(|_| free_port()).collect()
    }

    /// Starts a node on each of `ports` (from [`ClusterProc::ports`]),
    /// announcing the matching one of `announced`, joins them with CLUSTER
    /// MEET, gives each a third of the slots, and waits for
    /// `cluster_state:ok`.
    pub(crate) async fn start(dir: &Path, ports: &[u16], announced: &[u16]) -> Result<Self> {
        let mut nodes = Vec::new();
        for (i, (&port, &announce)) in ports.iter().zip(announced).enumerate() {
            let bus = free_port()?;
            let extra = [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-port",
                &bus.to_string(),
                "--cluster-announce-ip",
                "127.0.0.1",
                "--cluster-announce-port",
                &announce.to_string(),
                "--cluster-announce-bus-port",
                &bus.to_string(),
                // Long enough that a busy machine does not fail a node.
                "--cluster-node-timeout",
                "5000",
            ]
            .map(str::to_owned)
            .to_vec();
            let mut node = RedisProc::new(&dir.join(format!("node-{i}")), port, extra)?;
            // A nodes.conf left by an earlier run would bring its identity.
            let _ = std::fs::remove_file(node.dir.join("nodes.conf"));
            node.spawn().await?;
            nodes.push(node);
        }
        let cluster = ClusterProc { nodes };
        let mut conns = Vec::new();
        for node in &cluster.nodes {
            let client = redis::Client::open(node.url())?;
            conns.push(client.get_multiplexed_async_connection().await?);
        }
        for (i, (conn, (first, last))) in conns.iter_mut().zip(SLOT_RANGES).enumerate() {
            // Distinct epochs, as `redis-cli --cluster create` sets them, so
            // that no collision has to be resolved before the state is ok.
            let _: () = redis::cmd("CLUSTER")
                .arg("SET-CONFIG-EPOCH")
                .arg(i + 1)
                .query_async(conn)
                .await
                .context("CLUSTER SET-CONFIG-EPOCH")?;
            let _: () = redis::cmd("CLUSTER")
                .arg("ADDSLOTSRANGE")
                .arg(first)
                .arg(last)
                .query_async(conn)
                .await
                .context("CLUSTER ADDSLOTSRANGE")?;
        }
        let bus_ports: Vec<String> = cluster
            .nodes
            .iter()
            .map(|n| n.bus_port().unwrap_or_default())
            .collect();
        for (node, bus) in cluster.nodes.iter().zip(&bus_ports).skip(1) {
            let _: () = redis::cmd("CLUSTER")
                .arg("MEET")
                .arg("127.0.0.1")
                .arg(node.port)
                .arg(bus)
                .query_async(&mut conns[0])
                .await
                .context("CLUSTER MEET")?;
        }
        cluster.wait_ok().await?;
        Ok(cluster)
    }

    /// `redis://127.0.0.1:PORT` of every node, straight to it.
    pub(crate) fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(RedisProc::url).collect()
    }

    /// Waits until every node reports `cluster_state:ok` and knows all the
    /// others.
    async fn wait_ok(&self) -> Result<()> {
        let deadline = Instant::now() + CLUSTER_TIMEOUT;
        for node in &self.nodes {
            let client = redis::Client::open(node.url())?;
            loop {
                let info: String = match client.get_multiplexed_async_connection().await {
                    Ok(mut conn) => redis::cmd("CLUSTER")
                        .arg("INFO")
                        .query_async(&mut conn)
                        .await
                        .unwrap_or_default(),
                    Err(_) => String::new(),
                };
                let ok = info.lines().any(|l| l.trim() == "cluster_state:ok")
                    && info
                        .lines()
                        .any(|l| l.trim() == format!("cluster_known_nodes:{}", self.nodes.len()));
                if ok {
                    break;
                }
                if Instant::now() > deadline {
                    bail!(
                        "Cluster node on port {} is not ok after {CLUSTER_TIMEOUT:?}:\n{info}",
                        node.port
                    );
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
        }
        Ok(())
    }

    /// SIGKILL every master: no shutdown, no save.
    pub(crate) async fn kill(&mut self) {
        for node in &mut self.nodes {
            node.kill().await;
        }
    }

    /// Starts every master again on its port with its nodes.conf, so the
    /// identities and the slots are kept and the data is gone; waits for
    /// `cluster_state:ok`.
    pub(crate) async fn restart(&mut self) -> Result<()> {
        for node in &mut self.nodes {
            node.restart().await?;
        }
        self.wait_ok().await
    }
}

/// The Redis under the instances.
pub(crate) enum Redis {
    /// One redis-server.
    Standalone(Box<RedisProc>),
    /// A 3-master Cluster.
    Cluster(ClusterProc),
}

impl Redis {
    /// URLs of every server, straight to it (not through a proxy).
    pub(crate) fn urls(&self) -> Vec<String> {
        match self {
            Redis::Standalone(r) => vec![r.url()],
            Redis::Cluster(c) => c.urls(),
        }
    }

    /// SIGKILL every server.
    pub(crate) async fn kill(&mut self) {
        match self {
            Redis::Standalone(r) => r.kill().await,
            Redis::Cluster(c) => c.kill().await,
        }
    }

    /// Starts every server again, empty, on the same ports.
    pub(crate) async fn restart(&mut self) -> Result<()> {
        match self {
            Redis::Standalone(r) => r.restart().await,
            Redis::Cluster(c) => c.restart().await,
        }
    }
}

/// How a service instance reaches its backends.
#[derive(Debug, Clone)]
pub(crate) struct ServiceConfig {
    /// The `lwcache` binary.
    pub(crate) binary: PathBuf,
    /// How it names its Redis (through proxies): `--redis-url URL` or
    /// `--redis-cluster URL,URL,...`.
    pub(crate) redis_args: [String; 2],
    /// Its Neo4j (through its proxy).
    pub(crate) neo4j_uri: String,
    /// Neo4j user.
    pub(crate) neo4j_user: String,
    /// Neo4j password.
    pub(crate) neo4j_password: String,
    /// Where its stderr goes.
    pub(crate) log: PathBuf,
    /// More `serve` flags (the near cache's).
    pub(crate) extra_args: Vec<String>,
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
            .args(&c.redis_args)
            .args(["--neo4j-uri", &c.neo4j_uri])
            .args(["--neo4j-user", &c.neo4j_user])
            .args(["--neo4j-password", &c.neo4j_password])
            .args(&c.extra_args)
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

    /// Starts it again on the same port, ready once `/readyz` answers 200
    /// (`degraded` included).
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
