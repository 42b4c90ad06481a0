//! A small scripted workload over the in-memory adapters, and a stub OTLP
//! receiver on a loopback port.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use lwcache_core::{CacheManager, Fields, MetricsSink, Outcome};
use lwcache_domain::{CacheKey, KeyKind, Op, Value, WorldId, plan};
use lwcache_memory::{MemoryRepository, MemoryStore};
use lwcache_testkit::fixtures::{doc, flag, seed_ops};

/// What the workload did, by series.
#[derive(Debug, Default)]
pub(crate) struct Workload {
    /// The world it used.
    pub(crate) world: Option<WorldId>,
    /// `key_kind` → hits.
    pub(crate) hits: BTreeMap<&'static str, u64>,
    /// `key_kind` → misses.
    pub(crate) misses: BTreeMap<&'static str, u64>,
    /// `(key_kind, cause)` → invalidations.
    pub(crate) invalidations: BTreeMap<(&'static str, &'static str), u64>,
    /// `key_kind` → cache reads measured.
    pub(crate) cache_reads: BTreeMap<&'static str, u64>,
}

/// Reads the snapshot and the flags of a fresh world once (misses), then
/// `hits` times each (hits), then sets a flag.
///
/// Runs one at a time in this process, and first makes every `tracing`
/// callsite ask the caller's subscriber again. A callsite's interest is
/// cached process-wide by whichever thread reaches it first: a test running
/// the workload with no subscriber would otherwise switch the spans off for
/// a test that runs it under an exporting one.
pub(crate) async fn run(metrics: Arc<dyn MetricsSink>, hits: u64) -> Workload {
    static ONE_AT_A_TIME: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());
    let _turn = ONE_AT_A_TIME.lock().await;
    tracing::callsite::rebuild_interest_cache();
    let repo = Arc::new(MemoryRepository::new());
    let world = seed_ops(
        repo.as_ref(),
        [
            Op::ReplaceSnapshot(doc("name", "Harbor")),
            Op::SetFlag(flag("door_open"), Value::Bool(false)),
        ],
    )
    .await;
    let m = CacheManager::builder(Arc::new(MemoryStore::new()), repo)
        .metrics(metrics)
        .build()
        .unwrap();
    let mut w = Workload::default();
    let keys = [CacheKey::state(&world), CacheKey::flags(&world)];
    for round in 0..=hits {
        for key in &keys {
            let read = m.read(key, Fields::Cacheable).await.unwrap();
            let kind = key.kind().as_str();
            *w.cache_reads.entry(kind).or_default() += 1;
            let want = if round == 0 {
                *w.misses.entry(kind).or_default() += 1;
                Outcome::Miss
            } else {
                *w.hits.entry(kind).or_default() += 1;
                Outcome::Hit
            };
            assert_eq!(read.outcome, want, "{key}");
        }
    }
    let written = m
        .set_flag(&world, flag("door_open"), Value::Bool(true))
        .await
        .unwrap();
    for step in plan(&written.committed, &m.config().policy).steps {
        *w.invalidations
            .entry((step.key.kind().as_str(), step.cause.as_str()))
            .or_default() += 1;
    }
    assert!(
        w.invalidations
            .keys()
            .all(|(k, _)| *k == KeyKind::Flags.as_str())
    );
    m.shutdown().await;
    w.world = Some(world);
    w
}

/// One request the stub received.
#[derive(Debug, Clone)]
pub(crate) struct Received {
    /// `POST`, ...
    pub(crate) method: String,
    /// `/v1/metrics`, ...
    pub(crate) path: String,
    /// Lowercased header names → values.
    pub(crate) headers: BTreeMap<String, String>,
    /// The body.
    pub(crate) body: Vec<u8>,
}

/// An HTTP stub on 127.0.0.1 that answers every request with 200 and
/// reports it. It stops when dropped, or after a minute on its own.
pub(crate) struct Stub {
    pub(crate) addr: SocketAddr,
    pub(crate) received: mpsc::Receiver<Received>,
    stop: Arc<AtomicBool>,
}

impl Drop for Stub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
    }
}

impl Stub {
    pub(crate) fn start() -> Stub {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let addr = listener.local_addr().unwrap();
        let (tx, received) = mpsc::channel();
        let stop = Arc::new(AtomicBool::new(false));
        let stopped = stop.clone();
        std::thread::spawn(move || {
            let deadline = Instant::now() + Duration::from_secs(60);
            let mut served = 0;
            while !stopped.load(Ordering::Relaxed) && Instant::now() < deadline && served < 64 {
                match listener.accept() {
                    Ok((stream, _)) => {
                        served += 1;
                        serve(stream, &tx);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Stub {
            addr,
            received,
            stop,
        }
    }

    /// Requests received until `want` says enough, or nothing more comes
    /// for a while, plus any already queued behind them.
    pub(crate) fn collect(&self, want: impl Fn(&[Received]) -> bool) -> Vec<Received> {
        let mut got = Vec::new();
        while !want(&got) {
            match self.received.recv_timeout(Duration::from_secs(20)) {
                Ok(r) => got.push(r),
                Err(_) => break,
            }
        }
        got.extend(self.received.try_iter());
        got
    }
}

/// Reads one request, hands it to `tx`, then answers 200: a client that has
/// its answer knows its request is in the channel.
fn serve(stream: TcpStream, tx: &mpsc::Sender<Received>) -> Option<()> {
    stream.set_nonblocking(false).ok()?;
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .ok()?;
    let mut reader = BufReader::new(stream.try_clone().ok()?);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        reader.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
    }
    let len: usize = headers.get("content-length")?.parse().ok()?;
    let mut body = vec![0; len];
    reader.read_exact(&mut body).ok()?;
    tx.send(Received {
        method,
        path,
        headers,
        body,
    })
    .ok()?;
    let mut stream = stream;
    stream
        .write_all(
            b"HTTP/1.1 200 OK\r\nContent-Type: application/x-protobuf\r\nContent-Length: 0\r\n\r\n",
        )
        .ok()
}
