//! The fault-injecting cache store decorator of one instance's
//! incarnation: seeded yields around every call, and the faults drawn for
//! it (a failure, a hang past the cache timeout, a lost reply, a write that
//! lands late, a delay, a crash right after it, a cluster-wide outage).
//!
//! With [`Variant::FillsIgnoreLeases`] it also breaks the protocol on
//! purpose: a fill lands unconditionally.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use async_trait::async_trait;
use lwcache_core::ports::{
    CacheError, CacheStore, CacheWrite, Epoch, Lease, WriteKind, WriteOutcome,
};
use lwcache_domain::{CacheKey, WorldId};

use crate::config::Variant;
use crate::ctx::{CallPlan, Ctx, gate};
use crate::oracle::Reader;
use crate::trace::{Fault, Port};

/// A cache store as one incarnation sees it.
pub struct SimStore<S> {
    ctx: Arc<Ctx>,
    inner: Arc<S>,
    reader: Reader,
    alive: Arc<AtomicBool>,
}

impl<S> SimStore<S> {
    pub(crate) fn new(
        ctx: Arc<Ctx>,
        inner: Arc<S>,
        reader: Reader,
        alive: Arc<AtomicBool>,
    ) -> Self {
        Self {
            ctx,
            inner,
            reader,
            alive,
        }
    }
}

/// What the manager sees of a call past its deadline: nothing, until its
/// own timeout drops the future.
fn past(timeout: Duration) -> Duration {
    timeout + Duration::from_secs(1)
}

impl<S: CacheStore + 'static> SimStore<S> {
    /// Runs one call through its drawn plan.
    async fn call<T, F>(
        &self,
        port: Port,
        key: Option<&CacheKey>,
        perform: impl FnOnce() -> F,
    ) -> Result<T, CacheError>
    where
        F: std::future::Future<Output = Result<T, CacheError>>,
    {
        let plan = self.plan(port, key.map(ToString::to_string)).await;
        self.run(plan, perform).await
    }

    /// Draws a call's plan; a crashed incarnation never gets that far.
    async fn plan(&self, port: Port, key: Option<String>) -> CallPlan {
        gate(&self.alive, 0).await;
        self.ctx.plan_call(self.reader, port, key, true)
    }

    async fn run<T, F>(&self, plan: CallPlan, perform: impl FnOnce() -> F) -> Result<T, CacheError>
    where
        F: std::future::Future<Output = Result<T, CacheError>>,
    {
        let timeout = self.ctx.manager_config.cache_timeout;
        match plan.fault {
            Fault::Fail => return Err(CacheError::Unavailable("connection refused".into())),
            Fault::Outage if !plan.hang => {
                return Err(CacheError::Unavailable("the store is down".into()));
            }
            Fault::Hang | Fault::Outage => {
                tokio::time::sleep(past(timeout)).await;
                return Err(CacheError::Timeout(timeout));
            }
            Fault::Delay(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
            _ => {}
        }
        gate(&self.alive, plan.before).await;
        let result = perform().await;
        match plan.fault {
            Fault::LostReply => {
                tokio::time::sleep(past(timeout)).await;
                return Err(CacheError::Timeout(timeout));
            }
            Fault::Crash => {
                self.ctx.crash(
                    self.reader.0,
                    Some(self.reader.1),
                    "right after a store call",
                );
                std::future::pending::<()>().await;
            }
            _ => {}
        }
        gate(&self.alive, plan.after).await;
        result
    }

    /// A fill made unconditional: whatever the key held goes, and the put
    /// lands as a commit would (the broken variant).
    async fn unconditional(&self, write: &CacheWrite) -> Result<WriteOutcome, CacheError> {
        let keys: Vec<CacheKey> = write.puts.iter().map(|p| p.key.clone()).collect();
        self.inner.remove(&keys).await?;
        // The store's own epoch: the broken fill's values land as values.
        let epoch = self.inner.epoch(&write.world).await?;
        let commit = CacheWrite {
            kind: WriteKind::Commit { epoch: Some(epoch) },
            ..write.clone()
        };
        self.inner.write(&commit).await
    }
}

#[async_trait]
impl<S: CacheStore + 'static> CacheStore for SimStore<S> {
    async fn get(&self, key: &CacheKey) -> Result<Option<Vec<u8>>, CacheError> {
        self.call(Port::Get, Some(key), || self.inner.get(key))
            .await
    }

    async fn get_many(
        &self,
        world: &WorldId,
        keys: &[CacheKey],
    ) -> Result<Vec<Option<Vec<u8>>>, CacheError> {
        self.call(Port::GetMany, keys.first(), || {
            self.inner.get_many(world, keys)
        })
        .await
    }

    async fn write(&self, write: &CacheWrite) -> Result<WriteOutcome, CacheError> {
        let port = match write.kind {
            WriteKind::Fill { .. } => Port::Fill,
            WriteKind::Commit { .. } => Port::Commit,
        };
        let plan = self
            .plan(port, write.puts.first().map(|p| p.key.to_string()))
            .await;
        let broken = self.ctx.config.variant == Variant::FillsIgnoreLeases && port == Port::Fill;
        if let Fault::Late(ms) = plan.fault {
            // Sent, and the caller gives up; it lands later all the same,
            // as a command already in the socket does.
            let inner = Arc::clone(&self.inner);
            let write = write.clone();
            let ctx = Arc::clone(&self.ctx);
            let epoch = ctx.shared().store_epoch;
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                if ctx.shared().store_epoch == epoch {
                    let _ = inner.write(&write).await;
                }
            });
            let timeout = self.ctx.manager_config.cache_timeout;
            tokio::time::sleep(past(timeout)).await;
            return Err(CacheError::Timeout(timeout));
        }
        if broken {
            self.run(plan, || self.unconditional(write)).await
        } else {
            self.run(plan, || self.inner.write(write)).await
        }
    }

    async fn lease(
        &self,
        world: &WorldId,
        keys: &[CacheKey],
        lease: Lease,
        ttl: Duration,
    ) -> Result<Vec<bool>, CacheError> {
        let plan = self
            .plan(Port::Lease, keys.first().map(ToString::to_string))
            .await;
        if let Fault::Late(ms) = plan.fault {
            let inner = Arc::clone(&self.inner);
            let (world, keys) = (world.clone(), keys.to_vec());
            let ctx = Arc::clone(&self.ctx);
            let epoch = ctx.shared().store_epoch;
            tokio::spawn(async move {
                tokio::time::sleep(Duration::from_millis(ms)).await;
                if ctx.shared().store_epoch == epoch {
                    let _ = inner.lease(&world, &keys, lease, ttl).await;
                }
            });
            let timeout = self.ctx.manager_config.cache_timeout;
            tokio::time::sleep(past(timeout)).await;
            return Err(CacheError::Timeout(timeout));
        }
        self.run(plan, || self.inner.lease(world, keys, lease, ttl))
            .await
    }

    async fn version(&self, world: &WorldId) -> Result<Option<u64>, CacheError> {
        self.call(Port::StoreVersion, None, || self.inner.version(world))
            .await
    }

    async fn epoch(&self, world: &WorldId) -> Result<Epoch, CacheError> {
        self.call(Port::Epoch, None, || self.inner.epoch(world))
            .await
    }

    async fn remove(&self, keys: &[CacheKey]) -> Result<(), CacheError> {
        self.call(Port::Remove, keys.first(), || self.inner.remove(keys))
            .await
    }

    async fn drop_world(&self, world: &WorldId) -> Result<usize, CacheError> {
        self.call(Port::DropWorld, None, || self.inner.drop_world(world))
            .await
    }

    async fn ping(&self) -> Result<(), CacheError> {
        self.call(Port::StorePing, None, || self.inner.ping()).await
    }
}
