//! The store's connection, made at once or in the background.
//!
//! [`RedisStore::connect`](crate::RedisStore::connect) makes it before it
//! returns; [`RedisStore::connect_in_background`](crate::RedisStore::connect_in_background)
//! returns at once and leaves a task trying until the server or Cluster
//! answers, so that a service can start while Redis is down. Until then every
//! call fails at once with `CacheError::Unavailable`, naming the last
//! attempt's error; once made, the connection repairs itself as usual.

use std::sync::{Arc, Mutex, OnceLock, Weak};
use std::time::Duration;

use lwcache_core::ports::{CacheError, Cause};

use crate::config::RedisConfig;
use crate::store::{Conn, open};

/// The first pause between two attempts; it doubles up to
/// [`MAX_PAUSE`].
const FIRST_PAUSE: Duration = Duration::from_millis(100);
/// The longest pause between two attempts: how late, at most, the store
/// notices a server that came up.
const MAX_PAUSE: Duration = Duration::from_secs(2);

/// The connection once it is made; shared by the store's clones and, weakly,
/// by the task that makes it.
#[derive(Clone, Default)]
pub(crate) struct Link(Arc<Shared>);

#[derive(Default)]
struct Shared {
    conn: OnceLock<Conn>,
    /// Why the last attempt failed, for the error of calls made meanwhile.
    last_error: Mutex<Option<String>>,
}

impl Link {
    /// A link over a connection already made.
    pub(crate) fn made(conn: Conn) -> Self {
        let link = Self::default();
        let _ = link.0.conn.set(conn);
        link
    }

    /// A link whose connection a task on `runtime` makes, trying again
    /// until it succeeds or every clone of the link is gone.
    pub(crate) fn in_background(config: RedisConfig, runtime: &tokio::runtime::Handle) -> Self {
        let link = Self::default();
        runtime.spawn(keep_trying(Arc::downgrade(&link.0), config));
        link
    }

    /// The connection, or the error of a call made before it exists.
    pub(crate) fn conn(&self) -> Result<Conn, CacheError> {
        match self.0.conn.get() {
            Some(conn) => Ok(conn.clone()),
            None => {
                let last = self
                    .0
                    .last_error
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .clone();
                let why = match last {
                    Some(e) => format!(
                        "not connected yet, connecting in the background (last attempt: {e})"
                    ),
                    None => "not connected yet, connecting in the background".to_owned(),
                };
                Err(CacheError::Unavailable(Cause::from(why)))
            }
        }
    }

    /// Whether the connection is made (it may be down again since).
    pub(crate) fn is_made(&self) -> bool {
        self.0.conn.get().is_some()
    }
}

async fn keep_trying(link: Weak<Shared>, config: RedisConfig) {
    let limit = config.connect_timeout;
    let mut pause = FIRST_PAUSE;
    let mut attempts = 0u64;
    loop {
        attempts += 1;
        let error = match tokio::time::timeout(limit, open(&config)).await {
            Ok(Ok(conn)) => {
                let Some(shared) = link.upgrade() else { return };
                let _ = shared.conn.set(conn);
                tracing::info!(attempts, "connected to Redis");
                return;
            }
            Ok(Err(e)) => e.to_string(),
            Err(_) => format!("no answer within the connect timeout of {limit:?}"),
        };
        let Some(shared) = link.upgrade() else { return };
        {
            let mut last = shared
                .last_error
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            // Said once per distinct error, so that a refusal (a wrong
            // password) after a refused connection is seen in the log too.
            if last.as_deref() != Some(error.as_str()) {
                tracing::warn!(error = %error, attempts, "Redis is not reachable; connecting in the background");
            } else {
                tracing::debug!(error = %error, attempts, "Redis still not reachable");
            }
            *last = Some(error);
        }
        drop(shared);
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(MAX_PAUSE);
    }
}
