//! Running the service: open the backends, load the demo world on the
//! embedded default, listen, and shut down in order on SIGTERM or Ctrl-C.

use std::net::SocketAddr;
use std::sync::Arc;

use lwcache_demo::DemoSpec;
use lwcache_domain::WorldId;

use crate::backend::{BackendError, Backends, CacheKind, DEMO_WORLD, SourceKind};
use crate::config::Settings;
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
}

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
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        source: std::io::Error,
    },
    /// The server failed.
    #[error("the server failed")]
    Serve(#[source] std::io::Error),
}

/// Runs the service until SIGTERM or Ctrl-C: then in-flight requests
/// finish, the write-behind queue drains, and telemetry shuts down.
pub async fn serve(
    settings: Settings,
    telemetry: Telemetry,
    on_ready: impl FnOnce(&Ready),
) -> Result<(), ServeError> {
    let backends = Backends::open(&settings.backends).await?;
    let telemetry = Arc::new(telemetry);
    let manager = backends.manager(telemetry.metrics())?;
    let demo_loaded = if backends.persistent() {
        None
    } else {
        let world = WorldId::new(DEMO_WORLD).map_err(|e| ServeError::Demo(e.into()))?;
        let version = backends
            .ensure_demo(&world, &DemoSpec::standard())
            .await
            .map_err(|e| ServeError::Demo(e.into()))?;
        if let Err(e) = manager.activate(&world).await {
            tracing::warn!(error = %e, "could not warm the demo world");
        }
        version
    };
    let listener = tokio::net::TcpListener::bind(settings.listen)
        .await
        .map_err(|source| ServeError::Bind {
            addr: settings.listen,
            source,
        })?;
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
        },
    );
    on_ready(&Ready {
        addr,
        cache: backends.cache.clone(),
        source: backends.source.clone(),
        demo_loaded,
        auth: settings.auth_token.is_some(),
    });
    tracing::info!(%addr, "listening");
    let served = axum::serve(listener, app)
        .with_graceful_shutdown(shutdown_signal())
        .await;
    tracing::info!("no longer accepting requests; draining the write-behind queue");
    manager.shutdown().await;
    drop(manager);
    match Arc::try_unwrap(telemetry) {
        Ok(telemetry) => telemetry.shutdown(),
        Err(_) => tracing::warn!("telemetry still in use at exit; not flushed"),
    }
    served.map_err(ServeError::Serve)
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
