//! The fault-injecting repository decorator of one instance's incarnation.
//! Besides its faults (a failure, a hang past the source timeout, a commit
//! whose answer is lost, a crash right after a call, a cluster-wide
//! outage) it tells the oracle every commit, in commit order, and every
//! outbox entry that goes.
//!
//! With [`Variant::ForgetOwed`] it breaks the protocol on purpose: each
//! write's outbox entry is removed in the write's own call, so nothing a
//! write owes survives its cache step's failure.

use std::sync::Arc;
use std::sync::atomic::AtomicBool;
use std::time::Duration;

use async_trait::async_trait;
use lwcache_core::ports::{Claim, SourceError, WorldRepository};
use lwcache_domain::{
    CacheKey, CachedValue, Committed, Mutation, Owed, OwedId, Versioned, WorldError, WorldId,
    WorldImage,
};

use crate::config::Variant;
use crate::ctx::{CallPlan, Ctx, gate};
use crate::oracle::Reader;
use crate::trace::{Fault, Port};

/// A repository as one incarnation sees it.
pub struct SimRepo<R> {
    ctx: Arc<Ctx>,
    inner: Arc<R>,
    reader: Reader,
    alive: Arc<AtomicBool>,
}

impl<R> SimRepo<R> {
    pub(crate) fn new(
        ctx: Arc<Ctx>,
        inner: Arc<R>,
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

impl<R: WorldRepository + 'static> SimRepo<R> {
    async fn call<T, F>(
        &self,
        port: Port,
        key: Option<String>,
        perform: impl FnOnce() -> F,
    ) -> Result<T, SourceError>
    where
        F: std::future::Future<Output = Result<T, SourceError>>,
    {
        gate(&self.alive, 0).await;
        let plan = self.ctx.plan_call(self.reader, port, key, false);
        self.run(plan, perform).await
    }

    async fn run<T, F>(&self, plan: CallPlan, perform: impl FnOnce() -> F) -> Result<T, SourceError>
    where
        F: std::future::Future<Output = Result<T, SourceError>>,
    {
        let timeout = self.ctx.manager_config.source_timeout;
        match plan.fault {
            Fault::Fail => return Err(SourceError::Unavailable("connection refused".into())),
            Fault::Outage if !plan.hang => {
                return Err(SourceError::Unavailable("the source is down".into()));
            }
            Fault::Hang | Fault::Outage => {
                tokio::time::sleep(timeout + Duration::from_secs(1)).await;
                return Err(SourceError::Timeout(timeout));
            }
            Fault::Delay(ms) => tokio::time::sleep(Duration::from_millis(ms)).await,
            _ => {}
        }
        gate(&self.alive, plan.before).await;
        let result = perform().await;
        match plan.fault {
            Fault::LostReply => {
                tokio::time::sleep(timeout + Duration::from_secs(1)).await;
                return Err(SourceError::Timeout(timeout));
            }
            Fault::Crash => {
                self.ctx.crash(
                    self.reader.0,
                    Some(self.reader.1),
                    "right after a source call",
                );
                std::future::pending::<()>().await;
            }
            _ => {}
        }
        gate(&self.alive, plan.after).await;
        result
    }

    /// Applies a mutation and tells the oracle at once, before anything
    /// else can run: the oracle sees commits in the order they happened.
    async fn commit(&self, mutation: &Mutation) -> Result<Committed, SourceError> {
        let committed = self.inner.apply(mutation).await?;
        {
            let mut shared = self.ctx.shared();
            let tick = shared.trace.len();
            shared.oracle.commit(mutation, &committed, tick);
        }
        if self.ctx.config.variant == Variant::ForgetOwed {
            let id = Owed::of(&committed).id();
            self.inner.settle(std::slice::from_ref(&id)).await?;
            self.note_settled(std::slice::from_ref(&id));
        }
        Ok(committed)
    }

    fn note_settled(&self, done: &[OwedId]) {
        let mut shared = self.ctx.shared();
        let tick = shared.trace.len();
        for id in done {
            shared.oracle.settled(id.clone(), tick);
        }
    }

    async fn settle_noting(&self, done: &[OwedId]) -> Result<(), SourceError> {
        self.inner.settle(done).await?;
        self.note_settled(done);
        Ok(())
    }
}

#[async_trait]
impl<R: WorldRepository + 'static> WorldRepository for SimRepo<R> {
    async fn version(&self, world: &WorldId) -> Result<u64, SourceError> {
        self.call(Port::SourceVersion, None, || self.inner.version(world))
            .await
    }

    async fn read(
        &self,
        key: &CacheKey,
        limit: usize,
    ) -> Result<Versioned<CachedValue>, SourceError> {
        self.call(Port::Read, Some(key.to_string()), || {
            self.inner.read(key, limit)
        })
        .await
    }

    async fn read_many(
        &self,
        world: &WorldId,
        keys: &[CacheKey],
        limit: usize,
    ) -> Result<Versioned<Vec<Result<CachedValue, WorldError>>>, SourceError> {
        self.call(
            Port::ReadMany,
            keys.first().map(ToString::to_string),
            || self.inner.read_many(world, keys, limit),
        )
        .await
    }

    async fn image(
        &self,
        world: &WorldId,
        top_k: usize,
    ) -> Result<Versioned<WorldImage>, SourceError> {
        self.call(Port::Image, None, || self.inner.image(world, top_k))
            .await
    }

    async fn apply(&self, mutation: &Mutation) -> Result<Committed, SourceError> {
        self.call(Port::Apply, Some(mutation.op.name().to_owned()), || {
            self.commit(mutation)
        })
        .await
    }

    async fn owed(&self, claim: &Claim) -> Result<Vec<Owed>, SourceError> {
        self.call(Port::Owed, None, || self.inner.owed(claim)).await
    }

    async fn settle(&self, done: &[OwedId]) -> Result<(), SourceError> {
        self.call(Port::Settle, None, || self.settle_noting(done))
            .await
    }

    async fn ping(&self) -> Result<(), SourceError> {
        self.call(Port::SourcePing, None, || self.inner.ping())
            .await
    }
}
