//! Starting and stopping the real binary, and a client for it.

use std::collections::BTreeSet;
use std::io::{BufRead as _, BufReader, Write as _};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use reqwest::{Method, RequestBuilder, Response};
use serde_json::Value;

/// The binary under test.
pub(crate) const BIN: &str = env!("CARGO_BIN_EXE_lwcache");

/// A command for the binary with no `LWCACHE_*` variable inherited from
/// the test's environment, so that only what a test passes applies.
pub(crate) fn command() -> Command {
    let mut cmd = Command::new(BIN);
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("LWCACHE_") {
            cmd.env_remove(name);
        }
    }
    cmd.env("LWCACHE_LOG", "warn");
    cmd
}

/// Runs `lwcache serve --listen 127.0.0.1:0 ARGS` with `env`, which must
/// refuse to start: asserts exit code 1 and answers what it printed on
/// stderr.
pub(crate) fn serve_refused(args: &[&str], env: &[(&str, &str)]) -> String {
    let out = command()
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(args)
        .envs(env.iter().copied())
        .output()
        .expect("the binary runs");
    assert_eq!(
        out.status.code(),
        Some(1),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// A running `lwcache serve`.
pub(crate) struct Server {
    child: Child,
    /// `http://127.0.0.1:PORT`
    pub(crate) base: String,
    /// Everything the process printed on stdout.
    pub(crate) stdout: Arc<Mutex<String>>,
    client: reqwest::Client,
}

impl Server {
    /// Starts `lwcache serve --listen 127.0.0.1:0 ARGS` and waits for the
    /// line that names the bound address.
    pub(crate) fn start(args: &[&str]) -> Server {
        Server::start_with_env(args, &[])
    }

    /// Like [`Server::start`], with environment variables for the process.
    pub(crate) fn start_with_env(args: &[&str], env: &[(&str, &str)]) -> Server {
        Server::start_on("127.0.0.1:0", args, env)
    }

    /// Like [`Server::start_with_env`], listening on `listen`.
    pub(crate) fn start_on(listen: &str, args: &[&str], env: &[(&str, &str)]) -> Server {
        Server::start_full(listen, args, env, Stdio::inherit())
    }

    /// Like [`Server::start_with_env`], with the log (stderr) sent to
    /// `stderr`.
    pub(crate) fn start_logging_to(args: &[&str], env: &[(&str, &str)], stderr: Stdio) -> Server {
        Server::start_full("127.0.0.1:0", args, env, stderr)
    }

    fn start_full(listen: &str, args: &[&str], env: &[(&str, &str)], stderr: Stdio) -> Server {
        let mut child = command()
            .arg("serve")
            .args(["--listen", listen])
            .args(args)
            .envs(env.iter().copied())
            .stdout(Stdio::piped())
            .stderr(stderr)
            .spawn()
            .expect("the binary starts");
        let stdout = child.stdout.take().expect("piped stdout");
        let mut lines = BufReader::new(stdout).lines();
        let mut seen = String::new();
        // The banner names the address first and ends with the API line.
        let mut base = None;
        loop {
            match lines.next() {
                Some(Ok(line)) => {
                    seen.push_str(&line);
                    seen.push('\n');
                    if let Some(url) = line.strip_prefix("lwcache: listening on ") {
                        base = Some(url.trim().to_owned());
                    }
                    if base.is_some() && line.trim_start().starts_with("API: ") {
                        break;
                    }
                }
                _ => {
                    let status = child.wait().expect("wait");
                    panic!("lwcache serve exited ({status}) before listening; stdout:\n{seen}");
                }
            }
        }
        let base = base.expect("the address was printed");
        let printed = Arc::new(Mutex::new(seen));
        let sink = Arc::clone(&printed);
        std::thread::spawn(move || {
            for line in lines.map_while(Result::ok) {
                let mut out = sink
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                out.push_str(&line);
                out.push('\n');
            }
        });
        Server {
            child,
            base,
            stdout: printed,
            client: reqwest::Client::new(),
        }
    }

    /// How many threads the process runs now, from `/proc/<pid>/task`;
    /// `None` where there is no such directory.
    pub(crate) fn threads(&self) -> Option<usize> {
        let tasks = std::fs::read_dir(format!("/proc/{}/task", self.child.id())).ok()?;
        Some(tasks.count())
    }

    /// A request to `path`.
    pub(crate) fn request(&self, method: Method, path: &str) -> RequestBuilder {
        self.client.request(method, format!("{}{path}", self.base))
    }

    /// Sends a request with an optional JSON body, answers status, headers
    /// and the body parsed as JSON (`Null` when it is not JSON).
    pub(crate) async fn call(&self, method: Method, path: &str, body: Option<&Value>) -> Reply {
        let mut req = self.request(method, path);
        if let Some(body) = body {
            req = req.json(body);
        }
        Reply::read(req.send().await.expect("the request is answered")).await
    }

    /// Sends raw bytes as the body.
    pub(crate) async fn call_raw(&self, method: Method, path: &str, body: Vec<u8>) -> Reply {
        let req = self
            .request(method, path)
            .header("content-type", "application/json")
            .body(body);
        Reply::read(req.send().await.expect("the request is answered")).await
    }

    /// GET `path`.
    pub(crate) async fn get(&self, path: &str) -> Reply {
        self.call(Method::GET, path, None).await
    }

    /// Sends SIGTERM and waits (bounded) for the process to exit.
    pub(crate) fn terminate(mut self) -> (ExitStatus, String) {
        let status = Command::new("kill")
            .args(["-TERM", &self.child.id().to_string()])
            .status()
            .expect("kill runs");
        assert!(status.success(), "kill -TERM failed");
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().expect("try_wait") {
                // Let the reader thread take the last lines.
                std::thread::sleep(Duration::from_millis(100));
                let out = self.stdout.lock().unwrap().clone();
                return (status, out);
            }
            assert!(
                Instant::now() < deadline,
                "lwcache did not exit after SIGTERM"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// An answer.
#[derive(Debug)]
pub(crate) struct Reply {
    /// The status code.
    pub(crate) status: u16,
    /// The headers.
    pub(crate) headers: reqwest::header::HeaderMap,
    /// The body as JSON, or `Null`.
    pub(crate) json: Value,
    /// The body as text.
    pub(crate) text: String,
}

impl Reply {
    pub(crate) async fn read(r: Response) -> Reply {
        let status = r.status().as_u16();
        let headers = r.headers().clone();
        let text = r.text().await.expect("a body");
        let json = serde_json::from_str(&text).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            json,
            text,
        }
    }

    /// A header's value.
    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    /// `x-cache`.
    pub(crate) fn cache(&self) -> &str {
        self.header("x-cache").unwrap_or("<none>")
    }

    /// `x-world-version`, parsed.
    pub(crate) fn version(&self) -> u64 {
        self.header("x-world-version")
            .and_then(|v| v.parse().ok())
            .unwrap_or_else(|| panic!("no x-world-version in {self:?}"))
    }

    /// The error code of an error answer.
    pub(crate) fn code(&self) -> &str {
        self.json["error"]["code"].as_str().unwrap_or("<none>")
    }

    /// The error message of an error answer.
    pub(crate) fn message(&self) -> &str {
        self.json["error"]["message"].as_str().unwrap_or("<none>")
    }

    /// Asserts the status and, for an error, its code; returns self.
    #[track_caller]
    pub(crate) fn expect(self, status: u16, code: Option<&str>) -> Reply {
        assert_eq!(self.status, status, "unexpected status: {self:?}");
        if let Some(code) = code {
            assert_eq!(self.code(), code, "unexpected error code: {self:?}");
            assert!(
                !self.message().is_empty() && self.message() != "<none>",
                "{self:?}"
            );
        }
        self
    }
}

/// A world id no earlier run used, so that runs against a shared Redis do
/// not meet each other's entries.
pub(crate) fn fresh_world(label: &str) -> String {
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    format!("t-{label}-{}-{nanos}", std::process::id())
}

/// The value of a server variable, or `None` after saying loudly that the
/// test is skipped; panics when `LWCACHE_REQUIRE_SERVERS=1`.
pub(crate) fn server_env(var: &str) -> Option<String> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => Some(v.trim().to_owned()),
        _ => {
            if std::env::var("LWCACHE_REQUIRE_SERVERS").as_deref() == Ok("1") {
                panic!("LWCACHE_REQUIRE_SERVERS=1 but {var} is not set");
            }
            skipped(var);
            None
        }
    }
}

/// Says once per variable, on the real stderr (libtest captures
/// `eprintln!` of passing tests), that tests are skipped.
fn skipped(var: &str) {
    static SAID: Mutex<BTreeSet<String>> = Mutex::new(BTreeSet::new());
    let first = SAID
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
        .insert(var.to_owned());
    if first {
        let _ = writeln!(
            std::io::stderr(),
            "SKIPPED: lwcache-service tests that need {var}; set {var} to run them"
        );
    }
}
