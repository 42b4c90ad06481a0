//! The ports: what the cache manager needs from the outside world.
//!
//! Each port is a trait owned here; adapters implement it in their own
//! crates. Every port is object safe and implemented for `Arc<T>`, so a
//! decorator (metrics, fault injection, a near cache) can wrap any adapter.

use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use lwcache_domain::{
    CacheKey, CachedValue, Committed, Mutation, Owed, OwedId, Versioned, WorldError, WorldId,
    WorldImage, WorldSeed,
};

/// What an adapter's failure was, carried inside a port error: either the
/// adapter's own error (kept, so that it stays the port error's `source`) or
/// a plain message when nothing underlies it.
///
/// It stands in for the error it wraps, as `#[error(transparent)]` would:
/// it displays as that error and its `source` is that error's. It is
/// `Clone` (shared) and compares by message, so port errors stay plain
/// values.
#[derive(Clone)]
pub struct Cause {
    message: String,
    error: Option<Arc<dyn std::error::Error + Send + Sync>>,
}

impl Cause {
    /// Wraps an adapter's error.
    pub fn new(error: impl std::error::Error + Send + Sync + 'static) -> Self {
        Self {
            message: error.to_string(),
            error: Some(Arc::new(error)),
        }
    }

    /// The wrapped error, if the cause is one; for downcasting to the
    /// adapter's error type.
    pub fn error(&self) -> Option<&(dyn std::error::Error + Send + Sync + 'static)> {
        self.error.as_deref()
    }
}

impl std::fmt::Debug for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match &self.error {
            Some(e) => std::fmt::Debug::fmt(e, f),
            None => std::fmt::Debug::fmt(&self.message, f),
        }
    }
}

impl std::fmt::Display for Cause {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Cause {
    fn source(&self) -> Option<&(dyn std::error::Error + 'static)> {
        self.error.as_ref().and_then(|e| e.source())
    }
}

impl PartialEq for Cause {
    fn eq(&self, other: &Self) -> bool {
        self.message == other.message
    }
}

impl Eq for Cause {}

impl From<String> for Cause {
    fn from(message: String) -> Self {
        Self {
            message,
            error: None,
        }
    }
}

impl From<&str> for Cause {
    fn from(message: &str) -> Self {
        message.to_owned().into()
    }
}

/// Why a cache store call failed. The cache manager never lets one of these
/// fail a caller's read or an already durable write.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum CacheError {
    /// The store cannot be reached (connection refused, reset, closed).
    #[error("cache store unavailable: {0}")]
    Unavailable(#[source] Cause),
    /// The call did not finish within its time limit.
    #[error("cache store call timed out after {0:?}")]
    Timeout(Duration),
    /// The store refused the call (permissions, wrong type, script error).
    #[error("cache store refused the call: {0}")]
    Refused(#[source] Cause),
    /// The call was not made: the cache manager's circuit breaker is open
    /// after a run of failed calls, and fails calls at once until a probe
    /// finds the store answering again.
    #[error("cache store not called: the circuit breaker is open")]
    CircuitOpen,
}

/// A fill's claim on its keys, taken before the source read (see
/// [`CacheStore::lease`]). Unique per read, so that a fill can tell its own
/// lease from one a later reader took after its own had gone.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Lease(pub u64);

/// How a [`CacheWrite`]'s puts are checked.
///
/// Every put's bytes are an entry (or a tombstone) of the codec, whose
/// header holds the version the value is valid at
/// ([`crate::codec::peek_version`]). Stores compare those versions, key by
/// key, by [`crate::codec::replaces`]: a put never replaces a newer entry,
/// and a tombstone never replaces an entry of its own version. Bytes under
/// a key that are not an entry count as older than any put.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum WriteKind {
    /// Values read from the source. A put lands only while its key's lease
    /// is still `lease` and the cached entry is not newer; the lease is
    /// released either way. A write's commit deletes the leases of its keys,
    /// so a fill whose read may predate that write cannot land after it.
    Fill {
        /// The lease taken before the source read.
        lease: Lease,
    },
    /// The cache step of a write the source committed as the write's
    /// `version`: each put lands unless the cached entry is newer, every
    /// put's lease is deleted, and the world's highest version is raised to
    /// `version`.
    ///
    /// Its values land only while the world's epoch in the store is still
    /// `epoch`, which the writer learned ([`CacheStore::epoch`]) before its
    /// source commit. Otherwise the store lost the world's keys since (a
    /// restart, a flush, [`CacheStore::drop_world`]), perhaps with a newer
    /// write's entry, and each value put lands as a tombstone of its own
    /// version instead, with its TTL: a commit prepared before a restart and
    /// sent after it can then cost a miss, never put back an older value.
    /// With `epoch` `None` every put lands as a tombstone. Tombstones land
    /// as they are either way.
    Commit {
        /// The world's epoch as the writer learned it before its source
        /// commit; `None` when it could not.
        epoch: Option<Epoch>,
    },
}

/// A world's epoch in a cache store: a token the store makes when it holds
/// none for the world, and loses with the world's keys (a restart, a flush,
/// [`CacheStore::drop_world`]), so that a token once lost never comes back.
/// A writer that learned it before its source commit can tell, when its
/// cache step lands, whether the store lost anything meanwhile.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Epoch(pub u64);

impl Epoch {
    /// A token for a new epoch, for a store that makes its own: random
    /// bits from the operating system's seed of the standard library's
    /// hasher keys, over the clock and the process id, so that a token
    /// lost with a restart is not drawn again.
    pub fn random() -> Epoch {
        Epoch(crate::manager::random_u64())
    }
}

/// One value (or tombstone) to put.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Put {
    /// The key.
    pub key: CacheKey,
    /// The encoded entry: its header carries its version.
    pub bytes: Vec<u8>,
    /// Its time to live; `None` for a persistent key.
    pub ttl: Option<Duration>,
}

/// A versioned, atomic write of keys of one world.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CacheWrite {
    /// The world every key belongs to.
    pub world: WorldId,
    /// The world version the write committed as (for commits) or the
    /// values were read at (for fills).
    pub version: u64,
    /// How the write is checked.
    pub kind: WriteKind,
    /// The values to put.
    pub puts: Vec<Put>,
}

impl CacheWrite {
    /// A fill of values read from the source at `version`, under `lease`.
    pub fn fill(world: WorldId, version: u64, lease: Lease, puts: Vec<Put>) -> Self {
        Self {
            world,
            version,
            kind: WriteKind::Fill { lease },
            puts,
        }
    }

    /// The cache step of a write committed as `version`, by a writer that
    /// learned the world's `epoch` before its source commit.
    pub fn commit(world: WorldId, version: u64, epoch: Option<Epoch>, puts: Vec<Put>) -> Self {
        Self {
            world,
            version,
            kind: WriteKind::Commit { epoch },
            puts,
        }
    }

    /// Whether it is a commit.
    pub fn is_commit(&self) -> bool {
        matches!(self.kind, WriteKind::Commit { .. })
    }

    /// Checks that every key is a data key of the write's world, so that an
    /// adapter's atomic step can neither reach another world (or Cluster
    /// slot) nor overwrite the version. Adapters call it before anything
    /// else and answer its error as it is.
    pub fn check(&self) -> Result<(), CacheError> {
        check_keys(&self.world, self.puts.iter().map(|p| &p.key))
    }
}

/// Checks that every key is a data key of `world`.
pub fn check_keys<'a>(
    world: &WorldId,
    keys: impl IntoIterator<Item = &'a CacheKey>,
) -> Result<(), CacheError> {
    let foreign = keys
        .into_iter()
        .find(|k| k.world() != world || k.kind() == lwcache_domain::KeyKind::Version);
    match foreign {
        Some(key) => Err(CacheError::Refused(
            format!("{key} is not a data key of world {world}").into(),
        )),
        None => Ok(()),
    }
}

/// What a [`CacheWrite`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct WriteOutcome {
    /// Puts that landed.
    pub landed: usize,
    /// Puts that did not: a newer entry was cached, or (for a fill) the
    /// lease was no longer the fill's.
    pub skipped: usize,
    /// The world's highest cached version before the write, if any.
    pub previous: Option<u64>,
    /// A commit whose epoch was not the world's epoch in the store: its
    /// value puts were put as tombstones. The writer learns the epoch anew
    /// before its next write.
    pub epoch_lost: bool,
}

/// The cache store port: a key-value store with per-key versions, leases
/// for fills, and a per-world highest version.
///
/// Implementations MUST make [`CacheStore::write`] and
/// [`CacheStore::lease`] atomic with respect to every other call on keys of
/// the same world (a Redis script, a lock), MUST keep the version key free
/// of any TTL, MUST read an entry only through its header's version, and
/// MUST lose leases and epochs whenever they lose entries (a restart).
#[async_trait]
pub trait CacheStore: Send + Sync {
    /// The entry under `key`, if any. Reading the version key is an error.
    async fn get(&self, key: &CacheKey) -> Result<Option<Vec<u8>>, CacheError>;

    /// The entries under `keys`, all of `world`, in order: one round trip
    /// where the store can make it one (all keys of a world share one Redis
    /// Cluster slot). A key of another world, or the version key, is an
    /// error and nothing is read. This default asks for each key in turn.
    async fn get_many(
        &self,
        world: &WorldId,
        keys: &[CacheKey],
    ) -> Result<Vec<Option<Vec<u8>>>, CacheError> {
        check_keys(world, keys)?;
        let mut entries = Vec::with_capacity(keys.len());
        for key in keys {
            entries.push(self.get(key).await?);
        }
        Ok(entries)
    }

    /// Applies a versioned write atomically; see [`WriteKind`].
    async fn write(&self, write: &CacheWrite) -> Result<WriteOutcome, CacheError>;

    /// Takes the lease of each key for `lease`, for `ttl`, unless another
    /// lease holds it, and answers per key whether `lease` holds it now.
    async fn lease(
        &self,
        world: &WorldId,
        keys: &[CacheKey],
        lease: Lease,
        ttl: Duration,
    ) -> Result<Vec<bool>, CacheError>;

    /// The world's highest cached version, if any: the highest version a
    /// commit raised it to.
    async fn version(&self, world: &WorldId) -> Result<Option<u64>, CacheError>;

    /// The world's epoch ([`Epoch`]), made when the store holds none. Two
    /// calls answer the same token until the store loses the world's keys;
    /// after that, never that token again.
    async fn epoch(&self, world: &WorldId) -> Result<Epoch, CacheError>;

    /// Deletes keys unconditionally, and tells the near caches that follow
    /// the store's feed to drop them, whatever version they hold. Deleting
    /// is always safe.
    async fn remove(&self, keys: &[CacheKey]) -> Result<(), CacheError>;

    /// Deletes every key of `world`, its version and leases included, and
    /// answers how many keys went.
    async fn drop_world(&self, world: &WorldId) -> Result<usize, CacheError>;

    /// Checks that the store answers.
    async fn ping(&self) -> Result<(), CacheError>;

    /// How long, at most, one [`get`](Self::get) or
    /// [`get_many`](Self::get_many) takes before it fails with
    /// [`CacheError::Timeout`], when the store bounds them itself. A caller
    /// whose own deadline is no shorter needs no timer of its own around
    /// them: the cache manager then arms none on its read path, one timer
    /// a read instead of two. `None`, the default, promises nothing, and
    /// the caller bounds every call. A store that returns `Some` MUST keep
    /// the bound in every state, reconnecting included.
    fn read_deadline(&self) -> Option<Duration> {
        None
    }
}

/// Why the source of truth failed a call.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[non_exhaustive]
pub enum SourceError {
    /// The source refused the request: unknown world or entity, a taken id,
    /// an invalid document. The caller's input is at fault.
    #[error(transparent)]
    Rejected(#[from] WorldError),
    /// The request itself is not one the source serves (the version key).
    #[error("invalid request to the source: {0}")]
    Invalid(String),
    /// The source cannot be reached.
    #[error("source of truth unavailable: {0}")]
    Unavailable(#[source] Cause),
    /// The call did not finish within its time limit.
    #[error("source of truth call timed out after {0:?}")]
    Timeout(Duration),
    /// Anything else the source reported.
    #[error("source of truth error: {0}")]
    Other(#[source] Cause),
}

/// The world repository port: the source of truth.
///
/// Implementations MUST apply each mutation in one transaction that also
/// increments the world's version by exactly one and returns it, MUST order
/// a timeline by `seq` (the version of the event's commit), and MUST answer
/// reads with the version they were read at, read in the same transaction.
#[async_trait]
pub trait WorldRepository: Send + Sync {
    /// The world's current version; [`WorldError::UnknownWorld`] if absent.
    async fn version(&self, world: &WorldId) -> Result<u64, SourceError>;

    /// What `key` holds in the source, with the version read at. Timelines
    /// hold the `limit` newest events, newest first; `limit` is ignored for
    /// other keys. An absent world or entity is a [`WorldError`].
    async fn read(
        &self,
        key: &CacheKey,
        limit: usize,
    ) -> Result<Versioned<CachedValue>, SourceError>;

    /// What `keys`, all of `world`, hold in the source, in order, labelled
    /// with a version they were all read at or after: one statement where
    /// the source can make it one. An absent entity fails its own item
    /// only; an absent world, a key of another world or the version key
    /// fails the call. This default reads each key in turn and labels the
    /// batch with the lowest version it saw.
    async fn read_many(
        &self,
        world: &WorldId,
        keys: &[CacheKey],
        limit: usize,
    ) -> Result<Versioned<Vec<Result<CachedValue, WorldError>>>, SourceError> {
        check_keys(world, keys).map_err(|e| SourceError::Invalid(e.to_string()))?;
        let mut version = None::<u64>;
        let mut items = Vec::with_capacity(keys.len());
        for key in keys {
            match self.read(key, limit).await {
                Ok(read) => {
                    version = Some(version.map_or(read.version, |v| v.min(read.version)));
                    items.push(Ok(read.value));
                }
                Err(SourceError::Rejected(e @ WorldError::UnknownEntity { .. })) => {
                    items.push(Err(e));
                }
                Err(e) => return Err(e),
            }
        }
        let version = match version {
            Some(v) => v,
            None => self.version(world).await?,
        };
        Ok(Versioned::new(version, items))
    }

    /// Everything warming prefills, read at one version, with the `top_k`
    /// newest events of each entity.
    async fn image(
        &self,
        world: &WorldId,
        top_k: usize,
    ) -> Result<Versioned<WorldImage>, SourceError>;

    /// Applies a mutation durably and returns what it committed. The same
    /// transaction MUST record [`Owed::of`] the commit in the outbox, so
    /// that its cache step survives a crash of the caller.
    async fn apply(&self, mutation: &Mutation) -> Result<Committed, SourceError>;

    /// Creates `world` from a seed and returns its version afterwards;
    /// [`WorldError::WorldExists`] if it exists, [`WorldError::InvalidSeed`]
    /// (and nothing written) if the seed is invalid. The result must be the
    /// world that applying [`WorldSeed::mutations`] one by one leaves, which
    /// is what this default does; adapters override it to load in batches.
    /// The load bypasses the cache, so it MUST record nothing in the
    /// outbox (this default records what each write owes; adapters override
    /// it): activate the world afterwards.
    async fn load(&self, world: &WorldId, seed: &WorldSeed) -> Result<u64, SourceError> {
        seed.validate(world)?;
        match self.version(world).await {
            Ok(_) => return Err(WorldError::WorldExists(world.clone()).into()),
            Err(SourceError::Rejected(WorldError::UnknownWorld(_))) => {}
            Err(other) => return Err(other),
        }
        let mut version = 0;
        for mutation in seed.mutations(world) {
            version = self.apply(&mutation).await?.version;
        }
        Ok(version)
    }

    /// Claims up to `claim.limit` outbox entries for replay: entries
    /// recorded at least `claim.min_age` ago and not claimed by another
    /// owner within its lease, oldest first. They stay claimed by
    /// `claim.owner` for `claim.lease`; after that anyone may claim them
    /// again. Two owners claiming one entry at once is harmless (replaying
    /// is idempotent), but implementations SHOULD make it rare.
    async fn owed(&self, claim: &Claim) -> Result<Vec<Owed>, SourceError>;

    /// Removes the named outbox entries, in one transaction; names without
    /// an entry are ignored.
    async fn settle(&self, done: &[OwedId]) -> Result<(), SourceError>;

    /// Checks that the source answers.
    async fn ping(&self) -> Result<(), SourceError>;
}

/// What [`WorldRepository::owed`] claims.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Claim {
    /// Who claims: one id per process.
    pub owner: String,
    /// Only this world's entries, or every world's (what replay loops ask).
    pub world: Option<WorldId>,
    /// At most this many entries.
    pub limit: usize,
    /// Only entries at least this old: younger ones belong to writes whose
    /// own cache step is probably still running.
    pub min_age: Duration,
    /// How long the claim keeps other owners away.
    pub lease: Duration,
    /// Whether to take entries other owners hold a live claim on too:
    /// replaying is idempotent, and a process whose cache was in trouble
    /// must not go back to it while another's replay, which may have
    /// failed, still holds a step the cache lacks.
    pub take_held: bool,
}

/// A wall clock, in milliseconds since the Unix epoch. Injected so that
/// tests control time.
pub trait Clock: Send + Sync {
    /// Now.
    fn now_ms(&self) -> i64;
}

/// The system's wall clock.
#[derive(Debug, Clone, Copy, Default)]
pub struct SystemClock;

impl Clock for SystemClock {
    fn now_ms(&self) -> i64 {
        std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
    }
}

#[async_trait]
impl<T: CacheStore + ?Sized> CacheStore for Arc<T> {
    async fn get(&self, key: &CacheKey) -> Result<Option<Vec<u8>>, CacheError> {
        (**self).get(key).await
    }
    fn read_deadline(&self) -> Option<Duration> {
        (**self).read_deadline()
    }
    async fn get_many(
        &self,
        world: &WorldId,
        keys: &[CacheKey],
    ) -> Result<Vec<Option<Vec<u8>>>, CacheError> {
        (**self).get_many(world, keys).await
    }
    async fn write(&self, write: &CacheWrite) -> Result<WriteOutcome, CacheError> {
        (**self).write(write).await
    }
    async fn lease(
        &self,
        world: &WorldId,
        keys: &[CacheKey],
        lease: Lease,
        ttl: Duration,
    ) -> Result<Vec<bool>, CacheError> {
        (**self).lease(world, keys, lease, ttl).await
    }
    async fn version(&self, world: &WorldId) -> Result<Option<u64>, CacheError> {
        (**self).version(world).await
    }
    async fn epoch(&self, world: &WorldId) -> Result<Epoch, CacheError> {
        (**self).epoch(world).await
    }
    async fn remove(&self, keys: &[CacheKey]) -> Result<(), CacheError> {
        (**self).remove(keys).await
    }
    async fn drop_world(&self, world: &WorldId) -> Result<usize, CacheError> {
        (**self).drop_world(world).await
    }
    async fn ping(&self) -> Result<(), CacheError> {
        (**self).ping().await
    }
}

#[async_trait]
impl<T: WorldRepository + ?Sized> WorldRepository for Arc<T> {
    async fn version(&self, world: &WorldId) -> Result<u64, SourceError> {
        (**self).version(world).await
    }
    async fn read(
        &self,
        key: &CacheKey,
        limit: usize,
    ) -> Result<Versioned<CachedValue>, SourceError> {
        (**self).read(key, limit).await
    }
    async fn read_many(
        &self,
        world: &WorldId,
        keys: &[CacheKey],
        limit: usize,
    ) -> Result<Versioned<Vec<Result<CachedValue, WorldError>>>, SourceError> {
        (**self).read_many(world, keys, limit).await
    }
    async fn image(
        &self,
        world: &WorldId,
        top_k: usize,
    ) -> Result<Versioned<WorldImage>, SourceError> {
        (**self).image(world, top_k).await
    }
    async fn apply(&self, mutation: &Mutation) -> Result<Committed, SourceError> {
        (**self).apply(mutation).await
    }
    async fn load(&self, world: &WorldId, seed: &WorldSeed) -> Result<u64, SourceError> {
        (**self).load(world, seed).await
    }
    async fn owed(&self, claim: &Claim) -> Result<Vec<Owed>, SourceError> {
        (**self).owed(claim).await
    }
    async fn settle(&self, done: &[OwedId]) -> Result<(), SourceError> {
        (**self).settle(done).await
    }
    async fn ping(&self) -> Result<(), SourceError> {
        (**self).ping().await
    }
}
