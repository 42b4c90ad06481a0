//! Running the service: open the backends, load the demo world on the
//! embedded default, listen (plain HTTP, or HTTPS with rustls), and shut
//! down in order on SIGTERM or Ctrl-C.
//!
//! Over HTTPS each TLS handshake runs in a task of its own, bounded by
//! [`HANDSHAKE_TIMEOUT`]: a client that never completes one (a plain-HTTP
//! request, a silent socket) holds up no other connection.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use tokio::net::{TcpListener, TcpStream};
use tokio_rustls::TlsAcceptor;
use tokio_rustls::rustls;
use tokio_rustls::rustls::pki_types::pem::PemObject as _;
use tokio_rustls::rustls::pki_types::{CertificateDer, PrivateKeyDer};
use tokio_rustls::server::TlsStream;

use lwcache_demo::DemoSpec;
use lwcache_domain::WorldId;

use crate::backend::{BackendError, Backends, CacheKind, DEMO_WORLD, SourceKind};
use crate::config::{HttpsSettings, Names, Settings, tls};
use crate::readiness::EvictionCheck;
use crate::routes::{ApiConfig, router};
use crate::telemetry::Telemetry;

/// What the service is running on, once it listens.
#[derive(Debug, Clone)]
pub struct Ready {
    /// The bound address.
    pub addr: SocketAddr,
    /// The cache store.
    pub cache: CacheKind,
    /// The repository.
    pub source: SourceKind,
    /// The demo world's version, if it was loaded at start.
    pub demo_loaded: Option<u64>,
    /// Whether `/v1` requires a bearer token.
    pub auth: bool,
    /// Whether the listener serves HTTPS.
    pub https: bool,
}

/// How long a client may take to complete its TLS handshake.
pub const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Why the service stopped with an error; what failed underneath is the
/// [`source`](std::error::Error::source).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ServeError {
    /// A backend could not be opened.
    #[error(transparent)]
    Backend(#[from] BackendError),
    /// The demo world could not be loaded.
    #[error("loading the demo world")]
    Demo(#[source] Box<dyn std::error::Error + Send + Sync>),
    /// The listen address could not be bound.
    #[error("cannot listen on {addr}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The server failed.
    #[error("the server failed")]
    Serve(#[source] std::io::Error),
    /// The HTTPS certificate or key is unusable.
    #[error("{setting}: {problem}")]
    Https {
        /// The setting, in every source's spelling.
        setting: String,
        /// What is wrong.
        problem: String,
    },
}

/// Runs the service until SIGTERM or Ctrl-C: then in-flight requests
/// finish, the write-behind queue drains, and telemetry shuts down.
pub async fn serve(
    settings: Settings,
    telemetry: Telemetry,
    on_ready: impl FnOnce(&Ready),
) -> Result<(), ServeError> {
    let backends = Backends::open(&settings.backends).await?;
    let eviction = backends.redis.as_ref().map(EvictionCheck::new);
    if let Some(check) = &eviction {
        check.log().await;
    }
    let telemetry = Arc::new(telemetry);
    let manager = backends.manager(telemetry.metrics())?;
    let demo_loaded = if backends.persistent() {
        None
    } else {
        let world = WorldId::new(DEMO_WORLD).map_err(|e| ServeError::Demo(e.into()))?;
        let version = backends
            .ensure_demo(&manager, &world, &DemoSpec::standard())
            .await
            .map_err(|e| ServeError::Demo(e.into()))?;
        if let Err(e) = manager.activate(&world).await {
            tracing::warn!(error = %e, "could not warm the demo world");
        }
        version
    };
    let tls = settings.https.as_ref().map(tls_acceptor).transpose()?;
    let (listener, others) = listen(settings.listen, settings.runtime.shards()).await?;
    let addr = listener.local_addr().map_err(ServeError::Serve)?;
    let text_source = Arc::clone(&telemetry);
    let app = router(
        manager.clone(),
        ApiConfig {
            auth_token: settings.auth_token.clone(),
            max_body_bytes: settings.max_body_bytes,
            cache: backends.cache.clone(),
            source: backends.source.clone(),
            metrics_text: Box::new(move || text_source.prometheus_text()),
            admin: crate::routes::AdminConfig::new(
                settings.admin_token.clone(),
                settings.auth_token.clone(),
                addr,
                &opentelemetry::metrics::MeterProvider::meter(
                    telemetry.meter_provider(),
                    crate::telemetry::SCOPE,
                ),
            ),
            eviction,
        },
    );
    on_ready(&Ready {
        addr,
        cache: backends.cache.clone(),
        source: backends.source.clone(),
        demo_loaded,
        auth: settings.auth_token.is_some(),
        https: tls.is_some(),
    });
    tracing::info!(%addr, https = tls.is_some(), shards = others.len() + 1, "listening");
    let (stop, stopping) = tokio::sync::watch::channel(false);
    let mut shards = Vec::with_capacity(others.len());
    for (i, listener) in others.into_iter().enumerate() {
        let shard = start_shard(i + 1, listener, tls.clone(), app.clone(), stopping.clone());
        shards.push(shard.map_err(ServeError::Serve)?);
    }
    let served = serve_on(listener, tls, app, shutdown_signal()).await;
    let _ = stop.send(true);
    for (i, shard) in shards.into_iter().enumerate() {
        match shard.await {
            Ok(Ok(())) => {}
            Ok(Err(e)) => tracing::warn!(shard = i + 1, error = %e, "a shard failed"),
            Err(_) => tracing::warn!(shard = i + 1, "a shard's thread ended without an answer"),
        }
    }
    tracing::info!("no longer accepting requests; draining the write-behind queue");
    manager.shutdown().await;
    drop(manager);
    // Connections dropped at the grace's end may still hold the router and
    // its handle on telemetry: the providers are shut down all the same,
    // flushing what was recorded (a late recording is then a no-op).
    telemetry.shutdown();
    served.map_err(ServeError::Serve)
}

/// The listener of this thread and, for a sharded service, those of the
/// other shards: every one bound to the same address with `SO_REUSEPORT`,
/// so that the kernel spreads the connections over them. All are bound
/// before the service says it listens.
async fn listen(
    addr: SocketAddr,
    shards: usize,
) -> Result<(TcpListener, Vec<std::net::TcpListener>), ServeError> {
    let failed = |source| ServeError::Bind { addr, source };
    if shards <= 1 {
        return Ok((TcpListener::bind(addr).await.map_err(failed)?, Vec::new()));
    }
    let first = shared_port_listener(addr).map_err(failed)?;
    // A port of 0 is chosen by the first bind; the others share it.
    let bound = first.local_addr().map_err(failed)?;
    let mut others = Vec::with_capacity(shards - 1);
    for _ in 1..shards {
        let listener = shared_port_listener(bound).and_then(TcpListener::into_std);
        others.push(listener.map_err(failed)?);
    }
    Ok((first, others))
}

/// A listener on `addr` that other sockets of this user may bind too.
fn shared_port_listener(addr: SocketAddr) -> std::io::Result<TcpListener> {
    let socket = if addr.is_ipv4() {
        tokio::net::TcpSocket::new_v4()?
    } else {
        tokio::net::TcpSocket::new_v6()?
    };
    socket.set_reuseaddr(true)?;
    #[cfg(unix)]
    socket.set_reuseport(true)?;
    #[cfg(not(unix))]
    return Err(std::io::Error::new(
        std::io::ErrorKind::Unsupported,
        "a sharded runtime needs SO_REUSEPORT",
    ));
    socket.bind(addr)?;
    socket.listen(LISTEN_BACKLOG)
}

/// The queue of connections not yet accepted, per listener.
const LISTEN_BACKLOG: u32 = 1024;

/// Starts shard `index` on a thread of its own, with a single-threaded
/// runtime serving `app` on `listener` until `stopping` turns true; the
/// answer says how it ended.
fn start_shard(
    index: usize,
    listener: std::net::TcpListener,
    tls: Option<TlsAcceptor>,
    app: axum::Router,
    mut stopping: tokio::sync::watch::Receiver<bool>,
) -> std::io::Result<tokio::sync::oneshot::Receiver<std::io::Result<()>>> {
    let (done, ended) = tokio::sync::oneshot::channel();
    std::thread::Builder::new()
        .name(format!("lwcache-shard-{index}"))
        .spawn(move || {
            let served = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()
                .and_then(|runtime| {
                    runtime.block_on(async move {
                        let listener = TcpListener::from_std(listener)?;
                        let stop = async move {
                            let _ = stopping.wait_for(|stop| *stop).await;
                        };
                        serve_on(listener, tls, app, stop).await
                    })
                });
            let _ = done.send(served);
        })?;
    Ok(ended)
}

/// Sends each answer as soon as it is written (no Nagle delay behind an
/// unacknowledged segment: an answer is one write, and a client waits for
/// it).
fn no_delay(tcp: &mut TcpStream) {
    if let Err(e) = tcp.set_nodelay(true) {
        tracing::debug!(error = %e, "setting TCP_NODELAY on a connection failed");
    }
}

/// Serves `app` on `listener`, over TLS with `tls`, until `shutdown`
/// resolves and the requests in flight are answered, or [`SHUTDOWN_GRACE`]
/// has passed since it resolved.
async fn serve_on(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    let (asked, told) = tokio::sync::oneshot::channel::<()>();
    let shutdown = async move {
        shutdown.await;
        let _ = asked.send(());
    };
    let serving = serve_until(listener, tls, app, shutdown);
    tokio::pin!(serving);
    let grace_over = async {
        if told.await.is_err() {
            std::future::pending::<()>().await;
        }
        tokio::time::sleep(SHUTDOWN_GRACE).await;
    };
    tokio::select! {
        served = &mut serving => served,
        () = grace_over => {
            tracing::warn!(grace_s = SHUTDOWN_GRACE.as_secs(), "requests still in flight after the shutdown grace; stopping without them");
            Ok(())
        }
    }
}

/// How long a shutdown waits for the requests in flight (a client reading
/// its answer slowly, a handler waiting on a backend) before it stops
/// without them.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(15);

/// Serves `app` on `listener` until `shutdown` resolves and every request
/// in flight is answered.
async fn serve_until(
    listener: TcpListener,
    tls: Option<TlsAcceptor>,
    app: axum::Router,
    shutdown: impl std::future::Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    match tls {
        None => {
            let listener = axum::serve::ListenerExt::tap_io(listener, no_delay);
            axum::serve(listener, app)
                .with_graceful_shutdown(shutdown)
                .await
        }
        Some(acceptor) => {
            axum::serve(TlsListener::start(listener, acceptor), app)
                .with_graceful_shutdown(shutdown)
                .await
        }
    }
}

/// The server's TLS configuration from the PEM files `https` names.
fn tls_acceptor(https: &HttpsSettings) -> Result<TlsAcceptor, ServeError> {
    let unusable = |names: Names, problem: String| ServeError::Https {
        setting: names.spelled(),
        problem,
    };
    let cert_pem = crate::backend::read_setting_file(&https.cert, tls::TLS_CERT)?;
    let key_pem = crate::backend::read_setting_file(&https.key, tls::TLS_KEY)?;
    let chain = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| unusable(tls::TLS_CERT, format!("not a PEM certificate chain: {e}")))?;
    if chain.is_empty() {
        return Err(unusable(
            tls::TLS_CERT,
            format!("{} holds no certificate", https.cert.display()),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| unusable(tls::TLS_KEY, format!("not a PEM private key: {e}")))?;
    let mut config = rustls::ServerConfig::builder()
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| unusable(tls::TLS_KEY, format!("does not fit the certificate: {e}")))?;
    config.alpn_protocols = vec![b"http/1.1".to_vec()];
    Ok(TlsAcceptor::from(Arc::new(config)))
}

/// The HTTPS listener axum serves from: a task accepts TCP connections and
/// runs each handshake in a task of its own; finished ones wait here.
struct TlsListener {
    local: SocketAddr,
    ready: tokio::sync::mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
}

impl TlsListener {
    /// Accepts on `tcp` until this listener is dropped.
    fn start(tcp: TcpListener, acceptor: TlsAcceptor) -> Self {
        let local = tcp
            .local_addr()
            .unwrap_or_else(|_| SocketAddr::from(([0, 0, 0, 0], 0)));
        let (tx, ready) = tokio::sync::mpsc::channel(64);
        tokio::spawn(async move {
            loop {
                let (stream, peer) = tokio::select! {
                    () = tx.closed() => return,
                    accepted = tcp.accept() => match accepted {
                        Ok(pair) => pair,
                        Err(e) => {
                            // Out of descriptors and the like: pause, as
                            // axum's own listener does.
                            tracing::warn!(error = %e, "accepting a connection failed");
                            tokio::time::sleep(Duration::from_millis(100)).await;
                            continue;
                        }
                    },
                };
                let mut stream = stream;
                no_delay(&mut stream);
                let acceptor = acceptor.clone();
                let tx = tx.clone();
                tokio::spawn(async move {
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) => {
                            tracing::debug!(%peer, error = %e, "TLS handshake failed");
                        }
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Self { local, ready }
    }
}

impl axum::serve::Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.ready.recv().await {
            Some(pair) => pair,
            // The accepting task ends only once this listener is dropped.
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<Self::Addr> {
        Ok(self.local)
    }
}

/// Resolves on Ctrl-C (SIGINT) or SIGTERM.
pub async fn shutdown_signal() {
    let ctrl_c = async {
        if tokio::signal::ctrl_c().await.is_err() {
            std::future::pending::<()>().await;
        }
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut signal) => {
                signal.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        () = ctrl_c => tracing::info!("Ctrl-C: shutting down"),
        () = term => tracing::info!("SIGTERM: shutting down"),
    }
}
