//! A redis-server of a test's own, for the tests that must stop it, start it
//! again, or start it only after their client: loopback, a free port,
//! `--save "" --appendonly no`, a temporary directory, killed on drop.
//! Found on `PATH`; a test without it skips loudly, or fails when servers
//! are required.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// A redis-server this process starts and stops.
pub struct OwnRedis {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl OwnRedis {
    /// A server started on a free port; `None` (after saying so, or
    /// panicking when servers are required) without redis-server.
    pub fn start(test: &str) -> Option<Self> {
        let mut server = Self::reserve(test)?;
        if server.spawn() {
            Some(server)
        } else {
            skip(test);
            None
        }
    }

    /// A free port and a directory, with no server yet: nothing listens on
    /// the port until [`spawn`](Self::spawn). `None` (after saying so)
    /// without redis-server on `PATH`.
    pub fn reserve(test: &str) -> Option<Self> {
        let found = Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success());
        let port = TcpListener::bind("127.0.0.1:0")
            .ok()
            .and_then(|l| l.local_addr().ok())
            .map(|a| a.port());
        let (true, Some(port)) = (found, port) else {
            skip(test);
            return None;
        };
        let dir = std::env::temp_dir().join(format!("lwcache-own-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).ok()?;
        Some(Self {
            port,
            dir,
            child: None,
        })
    }

    /// The port.
    pub fn port(&self) -> u16 {
        self.port
    }

    /// `redis://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Starts the server on the port and waits until it accepts
    /// connections; false when it does not come up within 10 s.
    pub fn spawn(&mut self) -> bool {
        let child = Command::new("redis-server")
            .args(["--bind", "127.0.0.1", "--port", &self.port.to_string()])
            .args(["--save", "", "--appendonly", "no", "--daemonize", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn();
        let Ok(child) = child else { return false };
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if std::net::TcpStream::connect(("127.0.0.1", self.port)).is_ok() {
                return true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        false
    }

    /// Kills the server; the port stays reserved for [`spawn`](Self::spawn).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnRedis {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// Says loudly that `test` is skipped, or panics when servers are required.
fn skip(test: &str) {
    assert!(
        crate::servers::optional_var(crate::servers::REQUIRE_VAR).as_deref() != Some("1"),
        "{}=1 but redis-server could not be started for {test}",
        crate::servers::REQUIRE_VAR
    );
    let _ = std::io::Write::write_all(
        &mut std::io::stderr(),
        format!("SKIPPED: {test} needs redis-server on PATH\n").as_bytes(),
    );
}
