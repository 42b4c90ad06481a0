//! A world's epoch ([`lwcache_core::ports::Epoch`]) in Redis: a random
//! token under `lw:world:{<world>}:epoch`, without a TTL, made by the first
//! writer that asks for it and gone with the world's keys (a restart without
//! persistence, a flush, [`CacheStore::drop_world`]). `write.lua` reads it
//! in the same atomic step as a commit's puts: a commit whose writer learned
//! another token lands tombstones.
//!
//! [`CacheStore::drop_world`]: lwcache_core::ports::CacheStore::drop_world

use std::sync::LazyLock;

use lwcache_core::ports::{CacheError, Epoch};
use lwcache_domain::WorldId;
use redis::Script;

use crate::store::{Failure, RedisStore};

/// What follows a world's prefix (`lw:world:{<world>}:`) to name its epoch:
/// a name no key kind of the domain takes, in the world's hash tag, so that
/// a commit's script reaches it on the slot of the world's keys.
pub const EPOCH_SUFFIX: &str = "epoch";

/// Makes the key with the given token unless it exists, and answers the
/// token it holds: one round trip, atomic.
static EPOCH_SCRIPT: LazyLock<Script> = LazyLock::new(|| {
    Script::new("redis.call('SET', KEYS[1], ARGV[1], 'NX')\nreturn redis.call('GET', KEYS[1])")
});

/// The world's epoch key.
pub(crate) fn epoch_key(world: &WorldId) -> String {
    format!("{}{EPOCH_SUFFIX}", lwcache_domain::key::world_prefix(world))
}

impl RedisStore {
    /// The world's epoch, made when missing.
    pub(crate) async fn learn_epoch(&self, world: &WorldId) -> Result<Epoch, CacheError> {
        let key = epoch_key(world);
        let mut invocation = EPOCH_SCRIPT.prepare_invoke();
        invocation.key(&key).arg(Epoch::random().0.to_string());
        self.call(|mut conn| async move {
            let raw: String = invocation.invoke_async(&mut conn).await?;
            raw.parse::<u64>()
                .map(Epoch)
                .map_err(|_| Failure::Refused(format!("{key} holds {raw:?}, not an epoch")))
        })
        .await
    }
}
