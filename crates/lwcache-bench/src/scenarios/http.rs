//! The service's own read path, measured from outside as the platform's
//! game services see it: `wrk` against `lwcache serve` (over the same
//! Redis, the in-memory demo world), next to `redis-benchmark` GETs of the
//! same cache key; and a Python client's read through the HTTP API against
//! redis-py's GET of the same key, in the same run.

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::Duration;

use anyhow::{Context, Result, bail, ensure};
use lwcache_bench::report::{HttpRow, LatencyComparison, Measured};
use lwcache_bench::stats::Samples;
use lwcache_demo::DemoSpec;
use lwcache_domain::{CacheKey, WorldId};

use super::CONCURRENCY;
use super::cpu::{output_with_cores, per_request_us_at, process_cpu};
use super::throughput::run_redis_benchmark_cpu;
use crate::args::{Mode, redis_host_port};

/// The world `lwcache serve` loads (and warms) when its source is the
/// in-memory repository.
const DEMO_WORLD: &str = "demo";

/// The near cache of the service's second set of rows.
const NEAR_CACHE_BYTES: &str = "16777216";

/// `lwcache serve` on a free loopback port, killed when dropped.
struct Service {
    child: Child,
    addr: String,
}

impl Drop for Service {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Service {
    /// Starts it over Redis with the in-memory source, whose demo world it
    /// loads and warms before it listens; with `near`, its near cache on;
    /// with `--worker-threads threads` (0: one per core, its default), and
    /// with `sharded`, `--runtime sharded`.
    fn start(binary: &Path, redis_url: &str, near: bool, runtime: Runtime) -> Result<Self> {
        let Runtime { threads, sharded } = runtime;
        let mut command = Command::new(binary);
        for (name, _) in std::env::vars_os() {
            if name.to_string_lossy().starts_with("LWCACHE_") {
                command.env_remove(name);
            }
        }
        let mut child = command
            .env("RUST_LOG", "warn")
            .args(["serve", "--listen", "127.0.0.1:0", "--redis-url", redis_url])
            .args(["--worker-threads", &threads.to_string()])
            .args(if sharded {
                &["--runtime", "sharded"][..]
            } else {
                &[][..]
            })
            .args(if near {
                &["--near-cache-bytes", NEAR_CACHE_BYTES][..]
            } else {
                &[][..]
            })
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .with_context(|| format!("starting {}", binary.display()))?;
        let stdout = child.stdout.take().context("lwcache's stdout")?;
        let mut lines = BufReader::new(stdout).lines();
        let addr = loop {
            match lines.next() {
                Some(line) => {
                    let line = line?;
                    if let Some(addr) = line.strip_prefix("lwcache: listening on http://") {
                        break addr.trim().to_owned();
                    }
                }
                None => {
                    let status = child.wait()?;
                    bail!("lwcache serve exited before it listened ({status})");
                }
            }
        };
        // The service prints after it listens too: its stdout is drained
        // until it exits, so that it never writes into a closed pipe.
        std::thread::spawn(move || for _ in lines {});
        Ok(Self { child, addr })
    }

    /// The CPU time the service has run for, all its threads.
    fn cpu(&self) -> Option<Duration> {
        process_cpu(self.child.id())
    }
}

/// The CPU time redis-server has used, from `INFO cpu`
/// (`used_cpu_sys` plus `used_cpu_user`, in seconds); `None` without a
/// connection or an answer.
async fn redis_cpu(conn: &mut Option<redis::aio::MultiplexedConnection>) -> Option<Duration> {
    let info: String = redis::cmd("INFO")
        .arg("cpu")
        .query_async(conn.as_mut()?)
        .await
        .ok()?;
    parse_redis_cpu(&info)
}

fn parse_redis_cpu(info: &str) -> Option<Duration> {
    let mut sys = None;
    let mut user = None;
    for line in info.lines().map(str::trim) {
        if let Some(v) = line.strip_prefix("used_cpu_sys:") {
            sys = v.parse::<f64>().ok();
        } else if let Some(v) = line.strip_prefix("used_cpu_user:") {
            user = v.parse::<f64>().ok();
        }
    }
    Duration::try_from_secs_f64(sys? + user?).ok()
}

/// CPU time between two readings, per request, in µs.
fn per_request_us(before: Option<Duration>, after: Option<Duration>, requests: u64) -> Option<f64> {
    let spent = after?.checked_sub(before?)?;
    (requests > 0).then(|| spent.as_secs_f64() * 1e6 / requests as f64)
}

/// What `wrk --latency` reported.
#[derive(Debug, Clone, Copy, PartialEq)]
struct WrkResult {
    requests: u64,
    per_s: f64,
    p50_us: f64,
    p99_us: f64,
    /// wrk's own CPU time per request, in µs, when it could be read.
    cpu_us: Option<f64>,
}

/// A duration as wrk prints it (`154.00us`, `1.20ms`, `2.00s`), in µs.
fn wrk_duration_us(text: &str) -> Option<f64> {
    let text = text.trim();
    let (number, scale) = if let Some(n) = text.strip_suffix("us") {
        (n, 1.0)
    } else if let Some(n) = text.strip_suffix("ms") {
        (n, 1e3)
    } else if let Some(n) = text.strip_suffix('m') {
        (n, 60e6)
    } else if let Some(n) = text.strip_suffix('s') {
        (n, 1e6)
    } else {
        return None;
    };
    number.trim().parse::<f64>().ok().map(|v| v * scale)
}

/// Reads wrk's report: the latency distribution's 50% and 99% lines, the
/// requests, `Requests/sec`, and no non-2xx answer.
fn parse_wrk(text: &str) -> Result<WrkResult> {
    let mut p50 = None;
    let mut p99 = None;
    let mut per_s = None;
    let mut requests = None;
    for line in text.lines().map(str::trim) {
        if let Some(rest) = line.strip_prefix("50%") {
            p50 = wrk_duration_us(rest);
        } else if let Some(rest) = line.strip_prefix("99%") {
            p99 = wrk_duration_us(rest);
        } else if let Some(rest) = line.strip_prefix("Requests/sec:") {
            per_s = rest.trim().parse::<f64>().ok();
        } else if let Some((n, _)) = line.split_once(" requests in ") {
            requests = n.trim().parse::<u64>().ok();
        } else if line.starts_with("Non-2xx or 3xx responses:") {
            bail!("wrk saw answers that were not 200: {line}");
        } else if line.starts_with("Socket errors:") {
            bail!("wrk could not read through every connection: {line}");
        }
    }
    let requests = requests.context("wrk printed no request count")?;
    ensure!(requests > 0, "wrk completed no request");
    Ok(WrkResult {
        requests,
        per_s: per_s.context("wrk printed no Requests/sec")?,
        p50_us: p50.context("wrk printed no 50% latency")?,
        p99_us: p99.context("wrk printed no 99% latency")?,
        cpu_us: None,
    })
}

fn run_wrk(wrk: &Path, connections: usize, seconds: u64, url: &str) -> Result<WrkResult> {
    let threads = connections.min(2);
    let (output, cores) = output_with_cores(Command::new(wrk).args([
        "-t",
        &threads.to_string(),
        "-c",
        &connections.to_string(),
        "-d",
        &format!("{seconds}s"),
        "--latency",
        url,
    ]))
    .with_context(|| format!("running {}", wrk.display()))?;
    ensure!(
        output.status.success(),
        "wrk failed: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    let mut result = parse_wrk(&String::from_utf8_lossy(&output.stdout))?;
    result.cpu_us = per_request_us_at(cores, result.per_s);
    Ok(result)
}

/// The Python client rows: `http.client` on one kept-alive connection
/// against redis-py's `GET`, interleaved in blocks of 100; prints each
/// side's samples in µs, one side per line.
const PYTHON_CLIENT: &str = r#"
import http.client, sys, time
host, port, path, rhost, rport, key, n = sys.argv[1:8]
n = int(n)
import redis
r = redis.Redis(host=rhost, port=int(rport))
c = http.client.HTTPConnection(host, int(port))
def via_http():
    c.request("GET", path)
    a = c.getresponse()
    a.read()
    if a.status != 200 or a.getheader("x-cache") != "hit":
        raise SystemExit("not a hit: %s %s" % (a.status, a.getheader("x-cache")))
def via_redis():
    if r.get(key) is None:
        raise SystemExit("the key is not cached")
for _ in range(200):
    via_http(); via_redis()
h, g = [], []
done = 0
while done < n:
    block = min(100, n - done)
    for _ in range(block):
        t = time.perf_counter_ns(); via_http(); h.append((time.perf_counter_ns() - t) / 1000)
    for _ in range(block):
        t = time.perf_counter_ns(); via_redis(); g.append((time.perf_counter_ns() - t) / 1000)
    done += block
print(" ".join("%.1f" % x for x in h))
print(" ".join("%.1f" % x for x in g))
"#;

fn samples(line: &str) -> Result<Samples> {
    let values: Vec<f64> = line
        .split_whitespace()
        .map(str::parse)
        .collect::<Result<_, _>>()
        .context("the Python client printed something that is not a number")?;
    ensure!(!values.is_empty(), "the Python client printed no samples");
    let mut s = Samples::with_capacity(values.len());
    for us in values {
        s.record(Duration::from_secs_f64(us / 1e6));
    }
    Ok(s)
}

fn python_rows(
    python: &Path,
    service: &str,
    path: &str,
    redis: (&str, u16),
    key: &str,
    n: usize,
    near: bool,
) -> Result<LatencyComparison> {
    let (host, port) = service
        .rsplit_once(':')
        .context("the service's address has no port")?;
    let output = Command::new(python)
        .args(["-c", PYTHON_CLIENT])
        .args([host, port, path, redis.0, &redis.1.to_string(), key])
        .arg(n.to_string())
        .output()
        .with_context(|| format!("running {}", python.display()))?;
    ensure!(
        output.status.success(),
        "the Python client failed: {}",
        String::from_utf8_lossy(&output.stderr).trim()
    );
    let text = String::from_utf8_lossy(&output.stdout);
    let mut lines = text.lines();
    let http = samples(lines.next().unwrap_or_default())?;
    let get = samples(lines.next().unwrap_or_default())?;
    let (id, title, label) = if near {
        (
            "python_http_near_read_vs_redis_py_get",
            "a Python client's read: HTTP API, near cache on, vs redis-py GET",
            "http.client GET /v1/worlds/demo/characters/…, a near hit",
        )
    } else {
        (
            "python_http_read_vs_redis_py_get",
            "a Python client's read: HTTP API vs redis-py GET",
            "http.client GET /v1/worlds/demo/characters/…, a hit",
        )
    };
    Ok(LatencyComparison {
        id: id.to_owned(),
        title: title.to_owned(),
        subject: Measured {
            label: label.to_owned(),
            summary: http.summary(),
        },
        baseline: Measured {
            label: "redis-py GET of the same cache key".to_owned(),
            summary: get.summary(),
        },
        note: "one kept-alive connection each, interleaved in blocks of 100, from one Python process; what a Python game service pays per read".to_owned(),
    })
}

/// What the HTTP scenario measured, and what it could not, with why.
pub(crate) struct HttpFigures {
    pub(crate) rows: Vec<HttpRow>,
    pub(crate) python: Vec<LatencyComparison>,
    pub(crate) problems: Vec<(String, String)>,
}

/// A runtime of the service: `--worker-threads threads`, sharded or not.
#[derive(Debug, Clone, Copy)]
struct Runtime {
    threads: usize,
    sharded: bool,
}

/// The service's runtimes the rows are measured on: its default (one
/// worker per core, stealing work), everything on one thread, then one
/// shard per core.
const RUNTIMES: [Runtime; 3] = [
    Runtime {
        threads: 0,
        sharded: false,
    },
    Runtime {
        threads: 1,
        sharded: false,
    },
    Runtime {
        threads: 0,
        sharded: true,
    },
];

/// Starts `lwcache serve` over `redis_url` and measures its read path,
/// with its near cache off and then on, each on every runtime of
/// [`RUNTIMES`]; the Python rows run on the default runtime.
pub(crate) async fn http_reads(
    args: &crate::args::Args,
    mode: Mode,
    requests: usize,
) -> Result<HttpFigures> {
    let mut figures = HttpFigures {
        rows: Vec::new(),
        python: Vec::new(),
        problems: Vec::new(),
    };
    for near in [false, true] {
        for runtime in RUNTIMES {
            one_service(args, mode, requests, near, runtime, &mut figures).await?;
        }
    }
    Ok(figures)
}

async fn one_service(
    args: &crate::args::Args,
    mode: Mode,
    requests: usize,
    near: bool,
    runtime: Runtime,
    figures: &mut HttpFigures,
) -> Result<()> {
    let binary = args.lwcache.clone();
    let redis_url = args.redis_url.clone();
    let (wrk, python, redis_benchmark) = (
        args.wrk.clone(),
        args.python.clone(),
        args.redis_benchmark.clone(),
    );
    let near_tier = if near { ", near cache on" } else { "" };
    let tier = match (runtime.sharded, runtime.threads) {
        (false, 0) => near_tier.to_owned(),
        (true, 0) => format!("{near_tier}, --runtime sharded"),
        (false, n) => format!("{near_tier}, --worker-threads {n}"),
        (true, n) => format!("{near_tier}, --runtime sharded --worker-threads {n}"),
    };
    let service = match tokio::task::spawn_blocking(move || {
        Service::start(&binary, &redis_url, near, runtime)
    })
    .await?
    {
        Ok(service) => service,
        Err(e) => {
            figures
                .problems
                .push((format!("HTTP read path{tier}"), format!("{e:#}")));
            return Ok(());
        }
    };
    let spec = DemoSpec::standard();
    let world = WorldId::new(DEMO_WORLD)?;
    // A character that is not a player: its whole state is cacheable.
    let entity = spec.character(spec.players);
    let path = format!("/v1/worlds/{world}/characters/{}", entity.id_str());
    let url = format!("http://{}{path}", service.addr);
    let key = CacheKey::entity(&world, &entity).to_string();
    let seconds = match mode {
        Mode::Quick => 2,
        Mode::Full => 10,
    };
    // redis-server's CPU counters, when it answers INFO.
    let mut info = match redis::Client::open(args.redis_url.as_str()) {
        Ok(client) => client.get_multiplexed_async_connection().await.ok(),
        Err(_) => None,
    };
    let healthz = format!("http://{}/healthz", service.addr);
    for c in CONCURRENCY {
        // The ceiling first: the same service answering its liveness route,
        // no cache work, at the same connections.
        let ceiling = if near {
            None
        } else {
            let (wrk, url) = (wrk.clone(), healthz.clone());
            let before = service.cpu();
            match tokio::task::spawn_blocking(move || run_wrk(&wrk, c, seconds, &url)).await? {
                Ok(w) => Some((
                    w.per_s,
                    per_request_us(before, service.cpu(), w.requests),
                    w.cpu_us,
                )),
                Err(e) => {
                    figures
                        .problems
                        .push(("HTTP ceiling (wrk, /healthz)".to_owned(), format!("{e:#}")));
                    None
                }
            }
        };
        let (wrk, url) = (wrk.clone(), url.clone());
        let cpu_before = (service.cpu(), redis_cpu(&mut info).await);
        let measured = tokio::task::spawn_blocking(move || run_wrk(&wrk, c, seconds, &url)).await?;
        let cpu_after = (service.cpu(), redis_cpu(&mut info).await);
        let w = match measured {
            Ok(w) => w,
            Err(e) => {
                figures
                    .problems
                    .push((format!("HTTP read path (wrk){tier}"), format!("{e:#}")));
                break;
            }
        };
        // As many GETs as wrk made reads (at least `requests`), so that
        // redis-benchmark runs about as long as wrk did.
        let gets = usize::try_from(w.requests).map_or(requests, |n| n.max(requests));
        let redis_before = redis_cpu(&mut info).await;
        let bench = run_redis_benchmark_cpu(&redis_benchmark, &args.redis_url, c, gets, &key).await;
        let redis_after = redis_cpu(&mut info).await;
        if let Err(e) = &bench {
            figures
                .problems
                .push(("redis-benchmark beside wrk".to_owned(), format!("{e:#}")));
        }
        figures.rows.push(HttpRow {
            near,
            worker_threads: runtime.threads,
            sharded: runtime.sharded,
            connections: c,
            requests: w.requests,
            http_ops_per_s: w.per_s,
            http_p50_us: w.p50_us,
            http_p99_us: w.p99_us,
            redis_benchmark_redis_cpu_us: bench
                .is_ok()
                .then(|| per_request_us(redis_before, redis_after, gets as u64))
                .flatten(),
            redis_benchmark_cpu_us: bench.as_ref().ok().and_then(|b| b.1),
            redis_benchmark_ops_per_s: bench.ok().map(|b| b.0),
            ceiling_ops_per_s: ceiling.map(|c| c.0),
            ceiling_service_cpu_us: ceiling.and_then(|c| c.1),
            ceiling_wrk_cpu_us: ceiling.and_then(|c| c.2),
            service_cpu_us: per_request_us(cpu_before.0, cpu_after.0, w.requests),
            redis_cpu_us: per_request_us(cpu_before.1, cpu_after.1, w.requests),
            wrk_cpu_us: w.cpu_us,
        });
    }
    if runtime.threads != 0 || runtime.sharded {
        drop(service);
        return Ok(());
    }
    let redis = redis_host_port(&args.redis_url)
        .context("the Python rows need a plain redis://host:port URL")?;
    let n = match mode {
        Mode::Quick => 2_000,
        Mode::Full => 20_000,
    };
    let addr = service.addr.clone();
    let measured = tokio::task::spawn_blocking(move || {
        python_rows(&python, &addr, &path, (&redis.0, redis.1), &key, n, near)
    })
    .await?;
    match measured {
        Ok(c) => figures.python.push(c),
        Err(e) => figures
            .problems
            .push((format!("Python client rows{tier}"), format!("{e:#}"))),
    }
    drop(service);
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "a failed unwrap is a failed test")]

    use super::*;

    #[test]
    fn redis_cpu_reads_info() {
        let info = "# CPU\r\nused_cpu_sys:1.250000\r\nused_cpu_user:0.750000\r\nused_cpu_sys_children:9.0\r\n";
        assert_eq!(parse_redis_cpu(info), Some(Duration::from_secs(2)));
        assert_eq!(parse_redis_cpu("used_cpu_sys:1.0\r\n"), None);
        assert_eq!(
            per_request_us(
                Some(Duration::from_millis(1)),
                Some(Duration::from_millis(3)),
                1_000
            ),
            Some(2.0)
        );
        assert_eq!(
            per_request_us(
                Some(Duration::from_millis(3)),
                Some(Duration::from_millis(1)),
                10
            ),
            None
        );
        assert_eq!(
            per_request_us(None, Some(Duration::from_millis(1)), 10),
            None
        );
    }

    #[test]
    fn wrk_reports_parse() {
        let text = "Running 2s test @ http://127.0.0.1:1/x
  1 threads and 1 connections
  Thread Stats   Avg      Stdev     Max   +/- Stdev
    Latency   160.00us   50.00us   2.00ms   90.00%
  Latency Distribution
     50%  154.00us
     75%  170.00us
     90%  200.00us
     99%    1.20ms
  12200 requests in 2.00s, 3.00MB read
Requests/sec:   6100.00
Transfer/sec:      1.50MB
";
        let r = parse_wrk(text).unwrap();
        assert_eq!(r.requests, 12_200);
        assert!((r.per_s - 6100.0).abs() < 1e-9);
        assert!((r.p50_us - 154.0).abs() < 1e-9);
        assert!((r.p99_us - 1200.0).abs() < 1e-9);
        let bad = text.replace("Transfer/sec", "Non-2xx or 3xx responses: 3\nTransfer/sec");
        assert!(parse_wrk(&bad).is_err());
        assert!(parse_wrk("nothing").is_err());
        assert_eq!(wrk_duration_us("2.00s"), Some(2e6));
        assert_eq!(wrk_duration_us("12"), None);
    }
}
