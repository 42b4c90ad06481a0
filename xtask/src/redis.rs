//! Real `redis-server` processes for the integration tests that `cargo xtask` runs.
//!
//! Every server binds `127.0.0.1` only, on a port the OS reports free, with
//! persistence switched off (`--save ""`, `--appendonly no`) and its working
//! directory, log file and any generated files (ACL file, TLS certificates) in a
//! fresh temporary directory of its own.
//!
//! Lifetime: each `redis-server` runs in the foreground (`--daemonize no`) as a
//! child of this process, and the [`Child`] handle is kept, so [`Drop`] (which
//! also runs while a panic unwinds) stops it and removes its directory. Two
//! things `Drop` cannot cover: `std::process::exit` (so the caller should return
//! from `main` instead) and a `SIGKILL` of this process. For the latter, the
//! first server started by a later run looks for directories left behind by a
//! process that no longer exists and stops the `redis-server` still running in
//! them (see [`reap_stale`]).
//!
//! Only `std`, `anyhow` and the `redis-server`, `redis-cli`, `openssl` and
//! `kill` programs are used; every program is started with explicit arguments,
//! never through a shell.
//!
//! Items are `pub(crate)` because this is a module of the xtask binary (the
//! workspace warns on unreachable `pub`).

#![allow(
    dead_code,
    reason = "a small toolkit: the xtask uses only part of it at any one time"
)]

use std::ffi::{OsStr, OsString};
use std::fmt::Write as _;
use std::fs::{self, OpenOptions};
use std::io;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Once;
use std::sync::atomic::{AtomicU32, Ordering};
use std::thread;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::{Context as _, Result, bail, ensure};

const REDIS_SERVER: &str = "redis-server";
const REDIS_CLI: &str = "redis-cli";
const OPENSSL: &str = "openssl";
const LOOPBACK: &str = "127.0.0.1";

/// Prefix of every temporary directory made here; [`reap_stale`] looks for it.
const DIR_PREFIX: &str = "lwcache-redis-";
/// In each temporary directory: the pid of the process that made it.
const OWNER_PID_FILE: &str = "owner.pid";
/// In each server's directory: the pid of its `redis-server`.
const SERVER_PID_FILE: &str = "redis.pid";
const LOG_FILE: &str = "redis.log";
/// Catches what `redis-server` prints before it opens its log file.
const STDERR_FILE: &str = "stderr.log";
const ACL_FILE: &str = "users.acl";

/// How long a server may take to answer after it was started.
const READY_TIMEOUT: Duration = Duration::from_secs(10);
/// How long a server may take to exit after SIGTERM before it gets SIGKILL.
const STOP_TIMEOUT: Duration = Duration::from_secs(5);
/// How long a new cluster may take to report `cluster_state:ok` on every node.
const CLUSTER_TIMEOUT: Duration = Duration::from_secs(30);
const POLL_INTERVAL: Duration = Duration::from_millis(20);
/// Fresh ports can be taken by someone else between our probe and the server's
/// bind; a start that fails that way is tried again on other ports.
const PORT_ATTEMPTS: usize = 5;
const CLUSTER_MASTERS: usize = 3;

/// A Redis ACL user, written as one `user <name> <rules>` line of the server's
/// ACL file.
///
/// Users not listed keep Redis' defaults; in particular the `default` user stays
/// `on nopass ~* &* +@all` unless it is listed here, so tooling can still
/// administer the server.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct AclUser {
    /// User name, without spaces.
    pub(crate) name: String,
    /// ACL rules as Redis reads them, e.g.
    /// `on >secret ~lw:* resetchannels -@all +get +set +del`.
    pub(crate) rules: String,
}

impl AclUser {
    /// A user named `name` with the ACL `rules` (everything after
    /// `user <name>` on an ACL file line).
    pub(crate) fn new(name: impl Into<String>, rules: impl Into<String>) -> Self {
        Self {
            name: name.into(),
            rules: rules.into(),
        }
    }

    fn acl_line(&self) -> Result<String> {
        ensure!(
            !self.name.is_empty() && !self.name.contains(char::is_whitespace),
            "ACL user name {:?} must be non-empty and without whitespace",
            self.name
        );
        // One user per line: a line break would smuggle in another directive.
        ensure!(
            !self.rules.contains(['\n', '\r']),
            "ACL rules of user {:?} must fit on one line",
            self.name
        );
        Ok(format!("user {} {}", self.name, self.rules.trim()))
    }
}

/// How to start a standalone server.
#[derive(Debug, Clone, Default)]
pub(crate) struct RedisOptions {
    /// Serve TLS only (`--port 0 --tls-port PORT`), with a throwaway CA and a
    /// server certificate for `127.0.0.1` and `localhost` made by `openssl`.
    /// Clients are not asked for certificates.
    pub(crate) tls: bool,
    /// ACL users to create, through an ACL file in the server's directory.
    pub(crate) acl_users: Vec<AclUser>,
    /// Further `redis-server` arguments, appended as given, e.g.
    /// `["--maxmemory", "10mb"]`.
    pub(crate) extra_args: Vec<String>,
}

/// One `redis-server` on loopback, stopped and cleaned up on drop.
#[derive(Debug)]
pub(crate) struct RedisServer {
    node: Node,
    /// `Some` when serving TLS: the CA certificate that signed the server's.
    ca_cert: Option<PathBuf>,
    /// Declared last so the directory outlives `node` during drop.
    _dir: TempDir,
}

impl RedisServer {
    /// Starts a standalone `redis-server` on `127.0.0.1` and a free port, with
    /// `--save "" --appendonly no` in a fresh temporary directory, and waits
    /// until it answers (`INFO server` names its pid).
    pub(crate) fn start_standalone(opts: &RedisOptions) -> Result<RedisServer> {
        reap_stale();
        let dir = TempDir::new("standalone")?;
        let mut ca_cert = None;
        let mut config = Vec::<OsString>::new();
        let mut cli_tls = Vec::<OsString>::new();
        if opts.tls {
            let tls = TlsFiles::generate(dir.path())?;
            config.extend([
                arg("--tls-cert-file"),
                arg(&tls.server_cert),
                arg("--tls-key-file"),
                arg(&tls.server_key),
                arg("--tls-ca-cert-file"),
                arg(&tls.ca_cert),
                // Tests check server authentication only; no client certificates.
                arg("--tls-auth-clients"),
                arg("no"),
            ]);
            cli_tls.extend([arg("--tls"), arg("--cacert"), arg(&tls.ca_cert)]);
            ca_cert = Some(tls.ca_cert);
        }
        if !opts.acl_users.is_empty() {
            let mut text = String::new();
            for user in &opts.acl_users {
                text.push_str(&user.acl_line()?);
                text.push('\n');
            }
            let acl_file = dir.path().join(ACL_FILE);
            fs::write(&acl_file, text)
                .with_context(|| format!("writing {}", acl_file.display()))?;
            config.push("--aclfile".into());
            config.push(acl_file.into());
        }
        config.extend(opts.extra_args.iter().map(OsString::from));

        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            let port = free_ports(1)?[0];
            let mut node = Node::new(dir.path().to_path_buf(), port, opts.tls, &config, &cli_tls);
            node.clear_logs();
            match node.start() {
                Ok(()) => {
                    return Ok(RedisServer {
                        node,
                        ca_cert,
                        _dir: dir,
                    });
                }
                Err(err) if node.lost_port_race() => last_error = Some(err),
                Err(err) => return Err(err),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("no free port")))
            .context("redis-server kept losing its port to other processes")
    }

    /// `redis://127.0.0.1:PORT`, or `rediss://127.0.0.1:PORT` when serving TLS.
    pub(crate) fn url(&self) -> String {
        self.node.url()
    }

    /// Like [`url`](Self::url), authenticating as `user` with `password`.
    pub(crate) fn url_for_user(&self, user: &str, password: &str) -> String {
        format!(
            "{}://{}:{}@{LOOPBACK}:{}",
            self.node.scheme(),
            encode_userinfo(user),
            encode_userinfo(password),
            self.node.port
        )
    }

    /// `rediss://127.0.0.1:PORT` when the server was started with
    /// [`RedisOptions::tls`], `None` otherwise.
    pub(crate) fn tls_url(&self) -> Option<String> {
        self.ca_cert.as_ref().map(|_| self.node.url())
    }

    /// PEM file of the throwaway CA that signed the server certificate, for the
    /// client to trust; `None` without TLS.
    pub(crate) fn ca_cert_path(&self) -> Option<&Path> {
        self.ca_cert.as_deref()
    }

    /// The port the server listens on (the TLS port when serving TLS).
    pub(crate) fn port(&self) -> u16 {
        self.node.port
    }

    /// The server's log file, worth showing when a test fails.
    pub(crate) fn log_path(&self) -> PathBuf {
        self.node.dir.join(LOG_FILE)
    }

    /// A `redis-cli` command already pointed at this server (host, port, TLS);
    /// add credentials and the command to send, e.g. `.args(["FLUSHALL"])`.
    pub(crate) fn cli(&self) -> Command {
        self.node.cli()
    }

    /// Stops the server (SIGTERM, then SIGKILL after 5 s) and waits for it to
    /// exit. Does nothing when it is not running. Data is not saved.
    pub(crate) fn stop(&mut self) {
        self.node.stop();
    }

    /// Starts the server again on the same port, with the same options and
    /// certificates, and waits until it answers; stops it first if it is
    /// still running. The new server starts empty, since nothing is persisted.
    pub(crate) fn restart(&mut self) -> Result<()> {
        self.node.stop();
        self.node.start()
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.node.stop();
    }
}

/// A Redis Cluster of three masters without replicas on loopback, stopped and
/// cleaned up on drop.
#[derive(Debug)]
pub(crate) struct RedisCluster {
    nodes: Vec<Node>,
    /// Declared last so the directory outlives `nodes` during drop.
    dir: TempDir,
}

impl RedisCluster {
    /// Starts three cluster-enabled servers on free ports, joins them with
    /// `redis-cli --cluster create ... --cluster-replicas 0 --cluster-yes`, and
    /// waits until `CLUSTER INFO` reports `cluster_state:ok` on every node.
    pub(crate) fn start() -> Result<RedisCluster> {
        reap_stale();
        let dir = TempDir::new("cluster")?;
        let mut cluster = RedisCluster {
            nodes: Vec::with_capacity(CLUSTER_MASTERS),
            dir,
        };
        for index in 0..CLUSTER_MASTERS {
            let node_dir = cluster.dir.path().join(format!("node-{index}"));
            fs::create_dir(&node_dir)
                .with_context(|| format!("creating {}", node_dir.display()))?;
            cluster.nodes.push(Node::start_cluster_node(&node_dir)?);
        }

        let mut create = Command::new(REDIS_CLI);
        create.arg("--cluster").arg("create");
        for node in &cluster.nodes {
            create.arg(format!("{LOOPBACK}:{}", node.port));
        }
        create.args(["--cluster-replicas", "0", "--cluster-yes"]);
        let output = run_redis_cli(&mut create, "redis-cli --cluster create")?;
        ensure!(
            output.status.success(),
            "redis-cli --cluster create failed ({}):\n{}{}",
            output.status,
            String::from_utf8_lossy(&output.stdout),
            String::from_utf8_lossy(&output.stderr)
        );

        // `--cluster create` returns once the nodes agree on the slot map, but a
        // node may flag `cluster_state:ok` a moment later.
        let deadline = Instant::now() + CLUSTER_TIMEOUT;
        for node in &mut cluster.nodes {
            loop {
                let info = node.cli_output(&["CLUSTER", "INFO"])?;
                if info.lines().any(|line| line.trim() == "cluster_state:ok") {
                    break;
                }
                node.ensure_alive()?;
                if Instant::now() >= deadline {
                    bail!(
                        "cluster node on port {} is not ok after {CLUSTER_TIMEOUT:?}:\n{info}",
                        node.port
                    );
                }
                thread::sleep(POLL_INTERVAL);
            }
        }
        Ok(cluster)
    }

    /// `redis://127.0.0.1:PORT` of every node, usable as cluster seeds.
    pub(crate) fn urls(&self) -> Vec<String> {
        self.nodes.iter().map(Node::url).collect()
    }

    /// The client port of every node.
    pub(crate) fn ports(&self) -> Vec<u16> {
        self.nodes.iter().map(|node| node.port).collect()
    }

    /// A `redis-cli -c` command pointed at the first node; `-c` follows
    /// MOVED/ASK redirections, so any key can be used.
    pub(crate) fn cli(&self) -> Command {
        let mut cli = self.nodes[0].cli();
        cli.arg("-c");
        cli
    }
}

impl Drop for RedisCluster {
    fn drop(&mut self) {
        // Signal every node before waiting for any, so they exit in parallel.
        for node in &mut self.nodes {
            node.request_stop();
        }
        for node in &mut self.nodes {
            node.wait_stopped();
        }
    }
}

/// One `redis-server` process: how to start it, and the running child.
#[derive(Debug)]
struct Node {
    /// Working directory: log, pid file, and for cluster nodes `nodes.conf`.
    dir: PathBuf,
    port: u16,
    tls: bool,
    /// Every `redis-server` argument; the same on each (re)start.
    args: Vec<OsString>,
    /// Arguments that make `redis-cli` speak TLS to this server, if needed.
    cli_tls: Vec<OsString>,
    child: Option<Child>,
}

impl Node {
    fn new(dir: PathBuf, port: u16, tls: bool, config: &[OsString], cli_tls: &[OsString]) -> Self {
        let port_arg = port.to_string();
        let (plain_port, tls_port): (&str, Option<&str>) = if tls {
            // TLS only: a plain port would let a client skip TLS unnoticed.
            ("0", Some(&port_arg))
        } else {
            (&port_arg, None)
        };
        let mut args: Vec<OsString> = [
            "--bind",
            LOOPBACK,
            "--port",
            plain_port,
            // Foreground, so the child handle is the server and can be reaped.
            "--daemonize",
            "no",
            // Tests must start from empty servers and leave nothing behind.
            "--save",
            "",
            "--appendonly",
            "no",
        ]
        .map(OsString::from)
        .to_vec();
        if let Some(tls_port) = tls_port {
            args.extend(["--tls-port", tls_port].map(OsString::from));
        }
        args.push("--dir".into());
        args.push(dir.clone().into());
        args.push("--logfile".into());
        args.push(dir.join(LOG_FILE).into());
        args.extend_from_slice(config);
        Node {
            dir,
            port,
            tls,
            args,
            cli_tls: cli_tls.to_vec(),
            child: None,
        }
    }

    /// A cluster node with a client port and a cluster bus port, both free;
    /// retried on other ports if another process takes one first.
    ///
    /// The bus port is set with `--cluster-port` rather than left at Redis'
    /// default of port + 10000, which may be taken or, for ports above 55535,
    /// does not exist; `redis-cli --cluster create` learns it from the node.
    fn start_cluster_node(dir: &Path) -> Result<Node> {
        let mut last_error = None;
        for _ in 0..PORT_ATTEMPTS {
            let ports = free_ports(2)?;
            let (port, bus_port) = (ports[0], ports[1]);
            let config: Vec<OsString> = [
                "--cluster-enabled",
                "yes",
                "--cluster-config-file",
                "nodes.conf",
                "--cluster-port",
                &bus_port.to_string(),
                // Short, so a test that stops a node sees it flagged failed soon.
                "--cluster-node-timeout",
                "2000",
            ]
            .map(OsString::from)
            .to_vec();
            let mut node = Node::new(dir.to_path_buf(), port, false, &config, &[]);
            node.clear_logs();
            match node.start() {
                Ok(()) => return Ok(node),
                Err(err) if node.lost_port_race() => {
                    // A failed node may have left nodes.conf with its identity.
                    let _ = fs::remove_file(dir.join("nodes.conf"));
                    last_error = Some(err);
                }
                Err(err) => return Err(err),
            }
        }
        Err(last_error.unwrap_or_else(|| anyhow::anyhow!("no free port")))
            .context("cluster node kept losing its ports to other processes")
    }

    fn scheme(&self) -> &'static str {
        if self.tls { "rediss" } else { "redis" }
    }

    fn url(&self) -> String {
        format!("{}://{LOOPBACK}:{}", self.scheme(), self.port)
    }

    fn cli(&self) -> Command {
        let mut cli = Command::new(REDIS_CLI);
        cli.args(["-h", LOOPBACK, "-p", &self.port.to_string()])
            .args(&self.cli_tls)
            .stdin(Stdio::null());
        cli
    }

    /// Runs `redis-cli` with `args`, returning stdout and stderr together.
    fn cli_output(&self, args: &[&str]) -> Result<String> {
        let output = run_redis_cli(self.cli().args(args), "redis-cli")?;
        let mut text = String::from_utf8_lossy(&output.stdout).into_owned();
        text.push_str(&String::from_utf8_lossy(&output.stderr));
        Ok(text)
    }

    /// Spawns `redis-server` and waits until it answers.
    fn start(&mut self) -> Result<()> {
        ensure!(
            self.child.is_none(),
            "redis-server on port {} is already running",
            self.port
        );
        // Appending keeps the output of earlier runs of this node for diagnosis.
        let stderr = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.dir.join(STDERR_FILE))
            .with_context(|| format!("opening {STDERR_FILE} in {}", self.dir.display()))?;
        let child = Command::new(REDIS_SERVER)
            .args(&self.args)
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(stderr)
            .spawn()
            .map_err(|err| missing_program(err, REDIS_SERVER, "redis-server"))?;
        let pid = child.id();
        self.child = Some(child);
        fs::write(self.dir.join(SERVER_PID_FILE), pid.to_string())
            .with_context(|| format!("writing {SERVER_PID_FILE} in {}", self.dir.display()))?;

        // Ready once the server on our port is this child: another process may
        // have bound the port first, and it may be a Redis as well.
        let ours = format!("process_id:{pid}");
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            let reply = self.cli_output(&["INFO", "server"])?;
            if let Err(err) = self.ensure_alive() {
                self.stop();
                return Err(err);
            }
            // NOAUTH: the ACL options gave the `default` user a password, so
            // the reply cannot say whose server it is; a live child has to do.
            if reply.lines().any(|line| line.trim() == ours) || reply.contains("NOAUTH") {
                return Ok(());
            }
            if Instant::now() >= deadline {
                self.stop();
                bail!(
                    "redis-server on port {} did not answer within {READY_TIMEOUT:?}; last reply: {}\n{}",
                    self.port,
                    reply.trim(),
                    self.log_tail()
                );
            }
            thread::sleep(POLL_INTERVAL);
        }
    }

    /// An error with the log's tail if the server process has exited.
    fn ensure_alive(&mut self) -> Result<()> {
        let Some(child) = self.child.as_mut() else {
            bail!("redis-server on port {} is not running", self.port);
        };
        match child.try_wait().context("checking on redis-server")? {
            None => Ok(()),
            Some(status) => {
                self.child = None;
                bail!(
                    "redis-server on port {} exited ({status})\n{}",
                    self.port,
                    self.log_tail()
                )
            }
        }
    }

    /// Forgets the output of an earlier failed attempt, so that
    /// [`lost_port_race`](Self::lost_port_race) judges only the next one.
    fn clear_logs(&self) {
        for name in [LOG_FILE, STDERR_FILE] {
            let _ = fs::remove_file(self.dir.join(name));
        }
    }

    /// Whether the last start failed because the port was taken in the
    /// meantime, which a start on other ports can cure.
    fn lost_port_race(&self) -> bool {
        self.log_tail().contains("Address already in use")
    }

    /// Stops the server and waits for it; see [`RedisServer::stop`].
    fn stop(&mut self) {
        self.request_stop();
        self.wait_stopped();
    }

    /// Sends SIGTERM, which lets Redis close its clients' connections itself
    /// (std can only send SIGKILL). Returns at once; see
    /// [`wait_stopped`](Self::wait_stopped).
    fn request_stop(&mut self) {
        let Some(child) = self.child.as_mut() else {
            return;
        };
        if !matches!(child.try_wait(), Ok(None)) {
            return;
        }
        // The pid cannot have been recycled: the child is not reaped yet.
        let asked = Command::new("kill")
            .args(["-TERM", &child.id().to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|status| status.success());
        if !asked {
            // No usable `kill` program: fall back to SIGKILL right away.
            let _ = child.kill();
        }
    }

    /// Waits for the server to exit, sending SIGKILL after [`STOP_TIMEOUT`].
    fn wait_stopped(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        let deadline = Instant::now() + STOP_TIMEOUT;
        loop {
            match child.try_wait() {
                Ok(Some(_)) => break,
                Ok(None) if Instant::now() < deadline => thread::sleep(POLL_INTERVAL),
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break;
                }
            }
        }
        let _ = fs::remove_file(self.dir.join(SERVER_PID_FILE));
    }

    /// The last lines of the server's log and stderr, for error messages.
    fn log_tail(&self) -> String {
        let mut tail = String::new();
        for name in [LOG_FILE, STDERR_FILE] {
            let path = self.dir.join(name);
            let Ok(text) = fs::read_to_string(&path) else {
                continue;
            };
            let lines: Vec<&str> = text.lines().collect();
            if lines.is_empty() {
                continue;
            }
            let _ = writeln!(tail, "--- {} (last lines) ---", path.display());
            for line in &lines[lines.len().saturating_sub(15)..] {
                tail.push_str(line);
                tail.push('\n');
            }
        }
        tail
    }
}

impl Drop for Node {
    /// Safety net for a node whose owner never finished building: no process
    /// may outlive its handle.
    fn drop(&mut self) {
        self.stop();
    }
}

/// Paths of the throwaway TLS material made for one server.
struct TlsFiles {
    ca_cert: PathBuf,
    server_cert: PathBuf,
    server_key: PathBuf,
}

/// Our own `openssl` configuration, so the certificates do not depend on the
/// system's `openssl.cnf`. rustls/webpki insist on a v3 CA with `CA:TRUE` and
/// on the server name being in `subjectAltName`, hence the explicit extensions.
const OPENSSL_CONFIG: &str = "\
[req]
distinguished_name = dn
prompt = no

[dn]
CN = lwcache test

[ca_ext]
basicConstraints = critical, CA:TRUE
keyUsage = critical, keyCertSign, cRLSign
subjectKeyIdentifier = hash

[server_ext]
basicConstraints = critical, CA:FALSE
keyUsage = critical, digitalSignature
extendedKeyUsage = serverAuth
subjectAltName = IP:127.0.0.1, DNS:localhost
subjectKeyIdentifier = hash
authorityKeyIdentifier = keyid
";

impl TlsFiles {
    /// Makes a CA and a server certificate for `127.0.0.1`/`localhost` signed by
    /// it in `dir`, with P-256 keys (quick to generate), valid for 7 days.
    fn generate(dir: &Path) -> Result<TlsFiles> {
        let config = dir.join("openssl.cnf");
        fs::write(&config, OPENSSL_CONFIG)
            .with_context(|| format!("writing {}", config.display()))?;
        let files = TlsFiles {
            ca_cert: dir.join("ca.crt"),
            server_cert: dir.join("server.crt"),
            server_key: dir.join("server.key"),
        };
        let ca_key = dir.join("ca.key");
        let csr = dir.join("server.csr");
        let key_args = [
            "-newkey",
            "ec",
            "-pkeyopt",
            "ec_paramgen_curve:prime256v1",
            "-nodes",
        ];

        openssl(
            Command::new(OPENSSL)
                .args(["req", "-x509", "-config"])
                .arg(&config)
                .args([
                    "-extensions",
                    "ca_ext",
                    "-subj",
                    "/CN=lwcache test CA",
                    "-days",
                    "7",
                ])
                .args(key_args)
                .arg("-keyout")
                .arg(&ca_key)
                .arg("-out")
                .arg(&files.ca_cert),
        )?;
        openssl(
            Command::new(OPENSSL)
                .args(["req", "-new", "-config"])
                .arg(&config)
                .args(["-subj", "/CN=localhost"])
                .args(key_args)
                .arg("-keyout")
                .arg(&files.server_key)
                .arg("-out")
                .arg(&csr),
        )?;
        // A fresh serial per certificate, so no client can mistake one for another.
        let serial = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(1, |elapsed| elapsed.as_nanos());
        openssl(
            Command::new(OPENSSL)
                .args(["x509", "-req", "-in"])
                .arg(&csr)
                .arg("-CA")
                .arg(&files.ca_cert)
                .arg("-CAkey")
                .arg(&ca_key)
                .args(["-set_serial", &serial.to_string(), "-days", "7", "-extfile"])
                .arg(&config)
                .args(["-extensions", "server_ext", "-out"])
                .arg(&files.server_cert),
        )?;
        Ok(files)
    }
}

fn openssl(command: &mut Command) -> Result<()> {
    let output = command
        .stdin(Stdio::null())
        .output()
        .map_err(|err| missing_program(err, OPENSSL, "openssl"))?;
    ensure!(
        output.status.success(),
        "{command:?} failed ({}):\n{}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    Ok(())
}

/// Runs a `redis-cli` command to completion, naming it in errors.
fn run_redis_cli(command: &mut Command, what: &str) -> Result<std::process::Output> {
    command
        .stdin(Stdio::null())
        .output()
        .map_err(|err| missing_program(err, REDIS_CLI, "redis-tools"))
        .with_context(|| format!("running {what}"))
}

/// Turns "not found" into a hint about which Debian package to install.
fn missing_program(err: io::Error, program: &str, package: &str) -> anyhow::Error {
    if err.kind() == io::ErrorKind::NotFound {
        anyhow::anyhow!("`{program}` is not on PATH; install it with `apt-get install {package}`")
    } else {
        anyhow::Error::new(err).context(format!("starting {program}"))
    }
}

/// `count` distinct ports that are free on loopback right now.
fn free_ports(count: usize) -> Result<Vec<u16>> {
    // Holding every listener until all are picked keeps the ports distinct.
    let listeners = (0..count)
        .map(|_| TcpListener::bind((LOOPBACK, 0)).context("binding 127.0.0.1:0"))
        .collect::<Result<Vec<_>>>()?;
    listeners
        .iter()
        .map(|listener| Ok(listener.local_addr()?.port()))
        .collect()
}

fn arg(value: impl AsRef<OsStr>) -> OsString {
    value.as_ref().to_os_string()
}

/// Percent-encodes a user name or password for the userinfo part of a URL.
fn encode_userinfo(text: &str) -> String {
    let mut encoded = String::with_capacity(text.len());
    for byte in text.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            encoded.push(char::from(byte));
        } else {
            let _ = write!(encoded, "%{byte:02X}");
        }
    }
    encoded
}

/// A fresh directory under the system's temporary directory, removed on drop.
#[derive(Debug)]
struct TempDir {
    path: PathBuf,
}

impl TempDir {
    fn new(kind: &str) -> Result<TempDir> {
        static COUNTER: AtomicU32 = AtomicU32::new(0);
        let base = std::env::temp_dir();
        let pid = std::process::id();
        loop {
            let n = COUNTER.fetch_add(1, Ordering::Relaxed);
            ensure!(
                n < 10_000,
                "could not create a temporary directory in {}",
                base.display()
            );
            let path = base.join(format!("{DIR_PREFIX}{pid}-{n}-{kind}"));
            match fs::create_dir(&path) {
                Ok(()) => {
                    let dir = TempDir { path };
                    fs::write(dir.path.join(OWNER_PID_FILE), pid.to_string())
                        .with_context(|| format!("writing {OWNER_PID_FILE}"))?;
                    return Ok(dir);
                }
                // Left over by an earlier process that had our pid: pick another.
                Err(err) if err.kind() == io::ErrorKind::AlreadyExists => {}
                Err(err) => {
                    return Err(err).with_context(|| format!("creating {}", path.display()));
                }
            }
        }
    }

    fn path(&self) -> &Path {
        &self.path
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.path);
    }
}

/// Once per process: stops the servers and removes the directories that an
/// earlier process left behind when it died without running its destructors
/// (SIGKILL, `std::process::exit`). Best effort, Linux only (uses `/proc`).
///
/// A directory is stale when the process in its `owner.pid` is gone. A
/// `redis-server` is only killed when `/proc/PID/cwd` is that very directory,
/// so a recycled pid never hits an unrelated process.
fn reap_stale() {
    static ONCE: Once = Once::new();
    ONCE.call_once(|| {
        let proc = Path::new("/proc");
        if !proc.is_dir() {
            return;
        }
        let Ok(entries) = fs::read_dir(std::env::temp_dir()) else {
            return;
        };
        for entry in entries.flatten() {
            if !entry.file_name().to_string_lossy().starts_with(DIR_PREFIX) {
                continue;
            }
            let root = entry.path();
            let Ok(owner) = fs::read_to_string(root.join(OWNER_PID_FILE)) else {
                continue;
            };
            if process_alive(proc, owner.trim()) {
                continue;
            }
            // The standalone layout keeps the server in the root, the cluster
            // layout in one subdirectory per node.
            let mut server_dirs = vec![root.clone()];
            if let Ok(children) = fs::read_dir(&root) {
                server_dirs.extend(children.flatten().map(|child| child.path()));
            }
            for dir in server_dirs {
                let Ok(pid) = fs::read_to_string(dir.join(SERVER_PID_FILE)) else {
                    continue;
                };
                let pid = pid.trim();
                if !is_pid(pid) {
                    continue;
                }
                let cwd = fs::read_link(proc.join(pid).join("cwd"));
                if cwd.is_ok_and(|cwd| cwd == dir) {
                    let _ = Command::new("kill")
                        .args(["-KILL", pid])
                        .stdin(Stdio::null())
                        .stdout(Stdio::null())
                        .stderr(Stdio::null())
                        .status();
                }
            }
            let _ = fs::remove_dir_all(&root);
        }
    });
}

/// Whether `/proc` shows a live process `pid`. A zombie counts as gone: a killed
/// owner stays one until its parent reaps it, and it runs no destructors.
fn process_alive(proc: &Path, pid: &str) -> bool {
    if !is_pid(pid) {
        return false;
    }
    let Ok(stat) = fs::read_to_string(proc.join(pid).join("stat")) else {
        return false;
    };
    // `pid (comm) state ...`; comm may itself contain spaces and parentheses.
    let state = stat
        .rsplit_once(')')
        .and_then(|(_, rest)| rest.split_whitespace().next());
    !matches!(state, Some("Z" | "X") | None)
}

/// Whether `text` looks like a pid, so joining it to `/proc` stays in `/proc`.
fn is_pid(text: &str) -> bool {
    !text.is_empty() && text.bytes().all(|byte| byte.is_ascii_digit())
}
