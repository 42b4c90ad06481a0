//! The invalidation feed on Redis: every commit's script publishes its
//! version and the keys that landed on [`CHANNEL`], in the same atomic step
//! as the write (`write.lua`); a dropped world publishes `world` and its id.
//! [`RedisFeed`] subscribes over its own RESP3 connection and hands each
//! message to the near cache from the connection's reader, in order.
//!
//! Liveness is shown, not assumed: every heartbeat a PING goes down the same
//! connection, and its answer comes behind every message the server sent
//! before it, so once it is back everything published before the PING was
//! sent has been delivered ([`InvalidationSink::confirmed`]). A PING that
//! fails or outlives the response timeout, or the connection's end, reports
//! the feed lost ([`InvalidationSink::lost`]), and the feed reconnects (to
//! the next seed node on a Cluster, where a publish reaches every node over
//! the cluster bus).
//!
//! Server-assisted client-side caching (`CLIENT TRACKING`) was the other
//! way: its default mode tracks the keys each connection read, which the
//! multiplexed connection shares with every other reader of this process,
//! and on a Cluster every node must be tracked over a connection of its own.
//! A publish from the write's own script reaches every instance through one
//! connection, carries the write's version, and cannot be separated from
//! the write it describes.

use std::sync::Arc;
use std::time::Duration;

use lwcache_core::near::{FeedGuard, InvalidationFeed, InvalidationSink};
use lwcache_domain::{CacheKey, WorldId};
use redis::{AsyncConnectionConfig, ProtocolVersion, PushInfo, PushKind, Value};
use tokio::time::Instant;

use crate::config::{ConfigError, Node, RedisConfig, Topology};

/// The channel commits and world drops are published on.
pub const CHANNEL: &str = "lw:invalidate";

/// The default pause between two liveness checks of the feed.
pub const DEFAULT_HEARTBEAT: Duration = Duration::from_millis(50);

/// How long a heartbeat's PING waits for its answer at the least, whatever
/// the configuration's (shorter) response timeout: a PING given up on ends
/// the feed's session, and every near cache following it empties.
pub const MIN_FEED_REPLY_TIMEOUT: Duration = Duration::from_millis(500);

/// Follows [`CHANNEL`] for near caches.
#[derive(Debug, Clone)]
pub struct RedisFeed {
    config: RedisConfig,
    heartbeat: Duration,
}

impl RedisFeed {
    /// A feed on the server or Cluster `config` names (its credentials and
    /// TLS settings too), checking liveness every [`DEFAULT_HEARTBEAT`], each
    /// check waiting for the response timeout, at least
    /// [`MIN_FEED_REPLY_TIMEOUT`].
    pub fn new(config: &RedisConfig) -> Result<Self, ConfigError> {
        config.validate()?;
        Ok(Self {
            config: config.clone(),
            heartbeat: DEFAULT_HEARTBEAT,
        })
    }

    /// Sets the pause between liveness checks (at least 1 ms).
    pub fn with_heartbeat(mut self, heartbeat: Duration) -> Self {
        self.heartbeat = heartbeat.max(Duration::from_millis(1));
        self
    }

    /// The pause between liveness checks.
    pub fn heartbeat(&self) -> Duration {
        self.heartbeat
    }
}

impl InvalidationFeed for RedisFeed {
    fn follow(&self, sink: Arc<dyn InvalidationSink>) -> FeedGuard {
        let (config, heartbeat) = (self.config.clone(), self.heartbeat);
        FeedGuard::new(tokio::spawn(run(config, heartbeat, sink)))
    }
}

/// Subscribes, beats and reconnects until aborted.
async fn run(config: RedisConfig, heartbeat: Duration, sink: Arc<dyn InvalidationSink>) {
    let nodes: Vec<Node> = match &config.topology {
        Topology::Standalone(node) => vec![node.clone()],
        Topology::Cluster(nodes) => nodes.clone(),
    };
    let mut pause = Duration::from_millis(20);
    for node in nodes.iter().cycle() {
        let result = session(&config, node, heartbeat, &sink).await;
        sink.lost();
        if let Err(e) = result {
            tracing::warn!(node = %format!("{}:{}", node.host, node.port), error = %e, "the invalidation feed lost its connection; the near cache is bypassed until it is back");
        }
        tokio::time::sleep(pause).await;
        pause = (pause * 2).min(Duration::from_secs(1));
    }
}

/// One connection's life: subscribe, then confirm every heartbeat until a
/// PING fails.
async fn session(
    config: &RedisConfig,
    node: &Node,
    heartbeat: Duration,
    sink: &Arc<dyn InvalidationSink>,
) -> Result<(), redis::RedisError> {
    let info = config.connection_info(node)?;
    let settings = info
        .redis_settings()
        .clone()
        .set_protocol(ProtocolVersion::RESP3);
    let info = info.set_redis_settings(settings);
    let client = match config.tls_certificates() {
        Some(certs) => redis::Client::build_with_tls(info, certs)?,
        None => redis::Client::open(info)?,
    };
    let messages = Arc::clone(sink);
    let push = move |msg: PushInfo| {
        deliver(messages.as_ref(), msg);
        Ok::<(), redis::aio::SendError>(())
    };
    let settings = AsyncConnectionConfig::new()
        .set_connection_timeout(Some(config.connect_timeout))
        .set_response_timeout(Some(config.response_timeout.max(MIN_FEED_REPLY_TIMEOUT)))
        .set_push_sender(push);
    let mut conn = client
        .get_multiplexed_async_connection_with_config(&settings)
        .await?;
    conn.subscribe(CHANNEL).await?;
    loop {
        let sent = Instant::now();
        let _: Value = redis::cmd("PING").query_async(&mut conn).await?;
        sink.confirmed(sent);
        tokio::time::sleep(heartbeat).await;
    }
}

/// Hands one push message to the sink.
fn deliver(sink: &dyn InvalidationSink, msg: PushInfo) {
    match msg.kind {
        PushKind::Message => {
            if let Some(payload) = msg.data.get(1).and_then(text) {
                apply(sink, payload);
            }
        }
        PushKind::Disconnection => sink.lost(),
        _ => {}
    }
}

/// A message's payload as text, borrowed from the push.
fn text(value: &Value) -> Option<&str> {
    match value {
        Value::BulkString(bytes) => std::str::from_utf8(bytes).ok(),
        Value::SimpleString(s) => Some(s),
        _ => None,
    }
}

/// What one message says, applied: `<version>\n<key>\n<key>...` for a
/// commit, `world\n<world id>` for a dropped world. A message that does not
/// parse empties the near cache: it may have named anything.
pub(crate) fn apply(sink: &dyn InvalidationSink, payload: &str) {
    let mut lines = payload.split('\n');
    let head = lines.next().unwrap_or_default();
    if head == "world" {
        match lines.next().map(WorldId::new) {
            Some(Ok(world)) => sink.invalidate_world(&world),
            _ => sink.lost(),
        }
        return;
    }
    let parsed: Option<(u64, Vec<CacheKey>)> = head.parse().ok().and_then(|version| {
        lines
            .map(|l| CacheKey::parse(l).ok())
            .collect::<Option<Vec<_>>>()
            .map(|keys| (version, keys))
    });
    match parsed {
        Some((version, keys)) => sink.invalidate(&keys, version),
        None => {
            tracing::warn!(payload = %payload.chars().take(200).collect::<String>(), "an invalidation message did not parse; emptying the near cache");
            sink.lost();
        }
    }
}

/// The message removed keys publish: a commit's, at the highest version,
/// which every near cache drops whatever version it holds.
pub(crate) fn removed_message(keys: &[String]) -> String {
    let mut message = u64::MAX.to_string();
    for key in keys {
        message.push('\n');
        message.push_str(key);
    }
    message
}

/// The message a dropped world publishes.
pub(crate) fn world_message(world: &WorldId) -> String {
    format!("world\n{world}")
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    #[derive(Default)]
    struct Seen(Mutex<Vec<String>>);

    impl InvalidationSink for Seen {
        fn invalidate(&self, keys: &[CacheKey], version: u64) {
            let keys: Vec<String> = keys.iter().map(ToString::to_string).collect();
            self.0
                .lock()
                .unwrap()
                .push(format!("{version}:{}", keys.join(",")));
        }
        fn invalidate_world(&self, world: &WorldId) {
            self.0.lock().unwrap().push(format!("world:{world}"));
        }
        fn confirmed(&self, _as_of: Instant) {}
        fn lost(&self) {
            self.0.lock().unwrap().push("lost".into());
        }
    }

    #[test]
    fn messages_parse_or_empty_the_near_cache() {
        let seen = Seen::default();
        apply(&seen, "7\nlw:world:{w}:flags\nlw:world:{w}:state");
        let world = WorldId::new("w").unwrap();
        apply(&seen, &world_message(&world));
        apply(&seen, "seven\nlw:world:{w}:flags");
        apply(&seen, "7\nnot a key");
        apply(&seen, "world\n{bad}");
        assert_eq!(
            *seen.0.lock().unwrap(),
            vec![
                "7:lw:world:{w}:flags,lw:world:{w}:state".to_owned(),
                "world:w".into(),
                "lost".into(),
                "lost".into(),
                "lost".into(),
            ]
        );
    }
}
