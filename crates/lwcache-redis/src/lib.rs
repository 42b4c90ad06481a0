//! The Redis adapter of lwcache's cache store port.
//!
//! [`RedisStore`] implements [`lwcache_core::ports::CacheStore`] on one
//! Redis server (through a multiplexed connection that reconnects by itself)
//! or on a Redis Cluster, as [`RedisConfig`] says.
//!
//! - Keys are exactly the domain's [`lwcache_domain::CacheKey`]s, formatted;
//!   values are the manager's entries, of which the adapter reads only the
//!   header's version. A key's lease is `<key>:lease`, in the key's slot.
//! - A versioned write is one Lua script (`write.lua`), called by SHA1 and
//!   reloaded when a server has lost it: one round trip, atomic on the
//!   server. Taking leases is a second script (`lease.lua`).
//! - A world's highest version is a decimal string under
//!   `lw:world:{<world>}:ver`, which never has a TTL; its epoch (a random
//!   token a commit's values need, made when missing) is under
//!   `lw:world:{<world>}:epoch`, without a TTL either (`epoch.rs`).
//! - Failures become [`lwcache_core::CacheError`]s: connection losses are
//!   `Unavailable`, calls past the response timeout `Timeout`, ACL and
//!   script errors `Refused`.
//!
//! - The connection is made before [`RedisStore::connect`] returns, or in
//!   the background after [`RedisStore::connect_in_background`] returned,
//!   so that a service can start while Redis is down (`link.rs`).
//!
//! - [`ServerProbe`] reads a server's eviction policy and memory use and
//!   judges them against what the protocol keeps (`server_info.rs`).
//!
//! `docs/redis-adapter.md` explains each mapping and the server settings
//! the adapter relies on.

mod config;
mod epoch;
mod failure;
mod feed;
mod gets;
mod link;
mod server_info;
mod store;

pub use config::{
    ClientCert, ConfigError, DEFAULT_CONNECT_TIMEOUT, DEFAULT_RESPONSE_TIMEOUT, Node, RedisConfig,
    Topology,
};
pub use epoch::EPOCH_SUFFIX;
pub use feed::{CHANNEL, DEFAULT_HEARTBEAT, MIN_FEED_REPLY_TIMEOUT, RedisFeed};
pub use server_info::{Eviction, NEARLY_FULL_PERCENT, NodeMemory, ServerProbe};
pub use store::{ConnectError, RedisStore};
