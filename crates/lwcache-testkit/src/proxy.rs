//! A fault-injecting TCP proxy for tests against real servers.
//!
//! [`Proxy::start`] listens on `127.0.0.1:0` and forwards every connection
//! to one upstream address. [`Proxy::set_fault`] changes what it does, for
//! the connections already open and for new ones alike:
//!
//! - [`Fault::None`]: forward both ways.
//! - [`Fault::Blackhole`]: accept and read, forward nothing, never answer: a
//!   network partition as the client sees it (unlike `SIGSTOP`, the server
//!   stays up for everyone else). Bytes read meanwhile are lost, so a
//!   connection that lost any is reset when the fault is lifted: its stream
//!   can no longer be trusted, as after a real partition long enough for
//!   the peers to give up.
//! - [`Fault::Delay`]: forward each chunk after a delay, both ways.
//! - [`Fault::Reset`]: abort connections with a TCP RST (linger 0).
//! - [`Fault::Cut`]: close connections; new ones are accepted and closed at
//!   once, as a stopped server behind a live load balancer would.
//!
//! Dropping the proxy stops it and closes every connection it holds.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::watch;
use tokio::task::JoinHandle;

/// What the proxy does to the traffic.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fault {
    /// Forward both ways.
    #[default]
    None,
    /// Read and discard both ways, answer nothing.
    Blackhole,
    /// Forward each chunk after this delay, both ways.
    Delay(Duration),
    /// Abort every connection with a reset.
    Reset,
    /// Close every connection and every new one.
    Cut,
}

/// Counters since the proxy started.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct ProxyStats {
    /// Connections accepted.
    pub accepted: u64,
    /// Connections open now.
    pub open: u64,
    /// Bytes forwarded from clients to the upstream.
    pub bytes_up: u64,
    /// Bytes forwarded from the upstream to clients.
    pub bytes_down: u64,
    /// Bytes read and dropped under [`Fault::Blackhole`].
    pub bytes_dropped: u64,
}

#[derive(Debug, Default)]
struct Counters {
    accepted: AtomicU64,
    open: AtomicU64,
    bytes_up: AtomicU64,
    bytes_down: AtomicU64,
    bytes_dropped: AtomicU64,
}

/// What every connection task watches: the fault, and whether to stop.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct State {
    fault: Fault,
    stopped: bool,
}

/// A running proxy; dropping it stops it.
#[derive(Debug)]
pub struct Proxy {
    addr: SocketAddr,
    upstream: SocketAddr,
    state: watch::Sender<State>,
    counters: Arc<Counters>,
    accept: JoinHandle<()>,
}

impl Proxy {
    /// Listens on a free loopback port and forwards to `upstream`. Must be
    /// called inside a tokio runtime.
    pub async fn start(upstream: SocketAddr) -> io::Result<Proxy> {
        let listener = TcpListener::bind(("127.0.0.1", 0)).await?;
        let addr = listener.local_addr()?;
        let (state, watcher) = watch::channel(State {
            fault: Fault::None,
            stopped: false,
        });
        let counters = Arc::new(Counters::default());
        let accept = tokio::spawn(accept_loop(
            listener,
            upstream,
            watcher,
            Arc::clone(&counters),
        ));
        Ok(Proxy {
            addr,
            upstream,
            state,
            counters,
            accept,
        })
    }

    /// The address clients connect to.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// The address traffic is forwarded to.
    pub fn upstream(&self) -> SocketAddr {
        self.upstream
    }

    /// Applies `fault` to open connections and new ones.
    pub fn set_fault(&self, fault: Fault) {
        self.state.send_modify(|s| s.fault = fault);
    }

    /// The fault in force.
    pub fn fault(&self) -> Fault {
        self.state.borrow().fault
    }

    /// The counters so far.
    pub fn stats(&self) -> ProxyStats {
        let c = &self.counters;
        ProxyStats {
            accepted: c.accepted.load(Ordering::Relaxed),
            open: c.open.load(Ordering::Relaxed),
            bytes_up: c.bytes_up.load(Ordering::Relaxed),
            bytes_down: c.bytes_down.load(Ordering::Relaxed),
            bytes_dropped: c.bytes_dropped.load(Ordering::Relaxed),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.state.send_modify(|s| s.stopped = true);
        self.accept.abort();
    }
}

async fn accept_loop(
    listener: TcpListener,
    upstream: SocketAddr,
    state: watch::Receiver<State>,
    counters: Arc<Counters>,
) {
    loop {
        let Ok((client, _)) = listener.accept().await else {
            // Out of file descriptors and the like: pause rather than spin.
            tokio::time::sleep(Duration::from_millis(10)).await;
            continue;
        };
        counters.accepted.fetch_add(1, Ordering::Relaxed);
        let conn = Connection {
            client,
            upstream: None,
            upstream_addr: upstream,
            poisoned: false,
            state: state.clone(),
            counters: Arc::clone(&counters),
        };
        tokio::spawn(conn.run());
    }
}

/// One client connection and, once forwarding, its upstream connection.
struct Connection {
    client: TcpStream,
    /// Connected lazily: a connection accepted under a blackhole has none
    /// until the fault is lifted.
    upstream: Option<TcpStream>,
    upstream_addr: SocketAddr,
    /// Bytes were dropped: the stream is broken for good.
    poisoned: bool,
    state: watch::Receiver<State>,
    counters: Arc<Counters>,
}

/// How a connection ends.
enum End {
    /// A FIN to both sides.
    Close,
    /// A reset to both sides.
    Reset,
}

impl Connection {
    #[allow(
        deprecated,
        reason = "linger 0 resets at once and never blocks the thread on drop; only a nonzero linger does"
    )]
    async fn run(mut self) {
        self.counters.open.fetch_add(1, Ordering::Relaxed);
        let end = self.pump().await;
        if matches!(end, End::Reset) {
            let _ = self.client.set_linger(Some(Duration::ZERO));
            if let Some(up) = &self.upstream {
                let _ = up.set_linger(Some(Duration::ZERO));
            }
        }
        self.counters.open.fetch_sub(1, Ordering::Relaxed);
        // Dropping the streams sends the FIN or, with linger 0, the RST.
    }

    async fn pump(&mut self) -> End {
        let mut from_client = vec![0u8; 16 * 1024];
        let mut from_upstream = vec![0u8; 16 * 1024];
        loop {
            let state = *self.state.borrow_and_update();
            if state.stopped {
                return End::Close;
            }
            let fault = state.fault;
            match fault {
                Fault::Cut => return End::Close,
                Fault::Reset => return End::Reset,
                Fault::None | Fault::Delay(_) if self.poisoned => return End::Reset,
                Fault::None | Fault::Delay(_) if self.upstream.is_none() => {
                    match TcpStream::connect(self.upstream_addr).await {
                        Ok(up) => {
                            let _ = up.set_nodelay(true);
                            self.upstream = Some(up);
                        }
                        // The client sees what it would see from the server.
                        Err(_) => return End::Reset,
                    }
                }
                _ => {}
            }
            let read = tokio::select! {
                changed = self.state.changed() => {
                    if changed.is_err() {
                        return End::Close;
                    }
                    continue;
                }
                r = self.client.read(&mut from_client) => (true, r),
                r = read_opt(self.upstream.as_mut(), &mut from_upstream) => (false, r),
            };
            let (up, n) = match read {
                (_, Err(_)) => return End::Reset,
                (_, Ok(0)) => return End::Close,
                (up, Ok(n)) => (up, n),
            };
            // The fault may have changed while the read was pending.
            let fault = self.state.borrow().fault;
            match fault {
                Fault::Cut => return End::Close,
                Fault::Reset => return End::Reset,
                _ => {}
            }
            if let Fault::Delay(d) = fault {
                tokio::time::sleep(d).await;
            }
            let (buf, counter) = if up {
                (&from_client[..n], &self.counters.bytes_up)
            } else {
                (&from_upstream[..n], &self.counters.bytes_down)
            };
            let target = if up {
                self.upstream.as_mut()
            } else {
                Some(&mut self.client)
            };
            match (fault, target) {
                (Fault::Blackhole, _) | (_, None) => {
                    self.poisoned = true;
                    self.counters
                        .bytes_dropped
                        .fetch_add(n as u64, Ordering::Relaxed);
                }
                (_, Some(target)) => {
                    if target.write_all(buf).await.is_err() {
                        return End::Reset;
                    }
                    counter.fetch_add(n as u64, Ordering::Relaxed);
                }
            }
        }
    }
}

/// Reads from the upstream if there is one; never completes otherwise.
async fn read_opt(stream: Option<&mut TcpStream>, buf: &mut [u8]) -> io::Result<usize> {
    match stream {
        Some(s) => s.read(buf).await,
        None => std::future::pending().await,
    }
}
