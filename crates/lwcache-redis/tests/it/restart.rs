//! Redis stopped in the middle of a session and started again: no caller
//! error, reads keep being served, and the cache refills after the restart.
//!
//! This test owns its redis-server (found on `PATH`), because only the
//! process that started a server can stop it: loopback, a free port,
//! `--save "" --appendonly no`, a temporary directory, killed on drop.

use std::net::TcpListener;
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use lwcache_core::ports::WorldRepository;
use lwcache_core::{CacheManager, CacheStep, Counters, Fields, ManagerConfig, Outcome};
use lwcache_memory::MemoryRepository;
use lwcache_redis::{RedisConfig, RedisStore};
use lwcache_testkit::fixtures::{character, doc};

use crate::support::seed_world;

pub(crate) struct OwnServer {
    pub(crate) port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

impl OwnServer {
    fn start() -> Option<Self> {
        let mut server = Self::reserve()?;
        server.spawn().then_some(server)
    }

    /// A free port and a directory, with no server started yet: nothing
    /// listens on the port until [`spawn`](Self::spawn).
    pub(crate) fn reserve() -> Option<Self> {
        let port = TcpListener::bind("127.0.0.1:0")
            .ok()?
            .local_addr()
            .ok()?
            .port();
        let dir =
            std::env::temp_dir().join(format!("lwcache-restart-{}-{port}", std::process::id()));
        std::fs::create_dir_all(&dir).ok()?;
        Some(Self {
            port,
            dir,
            child: None,
        })
    }

    /// Starts redis-server on the port; false when it does not come up.
    pub(crate) fn spawn(&mut self) -> bool {
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

    fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for OwnServer {
    fn drop(&mut self) {
        self.stop();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn redis_stopped_and_restarted_mid_session() {
    let Some(mut server) = OwnServer::start() else {
        if std::env::var("LWCACHE_REQUIRE_SERVERS").as_deref() == Ok("1") {
            panic!("LWCACHE_REQUIRE_SERVERS=1 but redis-server could not be started");
        }
        eprintln!("SKIPPED: redis_stopped_and_restarted_mid_session needs redis-server on PATH");
        return;
    };
    let config = RedisConfig::from_url(&format!("redis://127.0.0.1:{}", server.port))
        .unwrap()
        .with_connect_timeout(Duration::from_millis(200))
        .with_response_timeout(Duration::from_millis(200));
    let store = RedisStore::connect(&config).await.expect("connect");
    let repo: Arc<dyn WorldRepository> = Arc::new(MemoryRepository::new());
    let world = seed_world(repo.as_ref(), 1).await;
    let counters = Arc::new(Counters::new());
    let mut mc = ManagerConfig::default();
    mc.cache_timeout = Duration::from_millis(300);
    let m = CacheManager::builder(store, repo)
        .config(mc)
        .metrics(counters.clone())
        .build()
        .unwrap();
    let c0 = character("c0");
    m.activate(&world).await.expect("activate");
    assert_eq!(
        m.entity(&world, &c0, Fields::Cacheable)
            .await
            .unwrap()
            .outcome,
        Outcome::Hit
    );

    server.stop();
    for _ in 0..3 {
        let r = m
            .entity(&world, &c0, Fields::Cacheable)
            .await
            .expect("reads survive");
        assert_eq!(
            (r.outcome, r.value),
            (Outcome::Fallback, doc("mood", "calm"))
        );
    }
    let w = m
        .update_entity(&world, c0.clone(), doc("mood", "steady"))
        .await
        .expect("writes survive");
    assert_eq!(w.cache, CacheStep::Failed);
    let r = m.entity(&world, &c0, Fields::Cacheable).await.unwrap();
    assert_eq!(
        (r.outcome, r.value),
        (Outcome::Fallback, doc("mood", "steady"))
    );

    assert!(server.spawn(), "redis-server restarts on the same port");
    // The connection manager reconnects by itself; until it has, reads are
    // still served by the source.
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut outcomes = Vec::new();
    loop {
        let r = m
            .entity(&world, &c0, Fields::Cacheable)
            .await
            .expect("reads survive");
        assert_eq!(
            r.value,
            doc("mood", "steady"),
            "never a stale or lost value"
        );
        outcomes.push(r.outcome);
        if r.outcome == Outcome::Hit {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the cache never refilled: {outcomes:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        outcomes.contains(&Outcome::Miss),
        "refilled by a miss: {outcomes:?}"
    );
    assert!(counters.snapshot().fallbacks >= 4);
}
