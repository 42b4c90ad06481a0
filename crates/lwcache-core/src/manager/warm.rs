//! Activation: prefilling a world's flags, snapshot, entities and recent
//! timelines from one image read at one version, in batches of one round
//! trip each. Batches are fills under one lease taken for every key after
//! the image read; the source's version is read again once the lease is
//! held, and the image is read anew if a write committed in between. Any
//! write after that deletes its keys' leases, so it wins over the warming.
//!
//! With a warming budget (`ManagerConfig::warm_budget`) only the active
//! entities are prefilled, within that many keys: the world's entities
//! read lately (the popular keys of `refresh.rs`), then those with the
//! newest events in the image ([`WarmPlan::active`]). An activation makes
//! a deactivated world active again; deactivating a world stops its
//! activation after the batch under way.

use lwcache_domain::{WarmPlan, WorldId};
use tracing::Instrument;

use super::{CacheManager, Inner, WarmReport};
use crate::error::Error;
use crate::metrics::MetricEvent;
use crate::ports::{CacheStore, CacheWrite, WorldRepository};

/// How many times an activation reads the image when writes keep landing
/// between the image read and the lease.
const IMAGE_ATTEMPTS: u32 = 3;

impl<S, R> CacheManager<S, R>
where
    S: CacheStore + 'static,
    R: WorldRepository + 'static,
{
    /// Activates a world: prefills its flags, snapshot, and each entity's
    /// state and top-k recent events, in batches of one round trip each;
    /// with a warming budget, only the most active entities' within it.
    /// Makes the world active again if it was deactivated.
    pub async fn activate(&self, world: &WorldId) -> Result<WarmReport, Error> {
        let span =
            tracing::info_span!("lwcache.activate", world = %world, keys = tracing::field::Empty);
        let result = self.inner.activate(world).instrument(span.clone()).await;
        if let Ok(r) = &result {
            span.record("keys", r.keys);
        }
        result
    }
}

impl<S, R> Inner<S, R>
where
    S: CacheStore + 'static,
    R: WorldRepository + 'static,
{
    async fn activate(&self, world: &WorldId) -> Result<WarmReport, Error> {
        let policy = &self.config.policy;
        self.refresh.reactivate(world);
        let active = self.refresh.active_entities(world);
        let mut attempt = 0;
        // One lease for every attempt: a later attempt holds what an earlier
        // one took.
        let lease = self.next_lease();
        let plan = loop {
            attempt += 1;
            let image = self
                .source_call(self.repo.image(world, policy.timeline_top_k))
                .await?;
            let plan = match self.config.warm_budget {
                Some(budget) => {
                    WarmPlan::active(world, image.version, &image.value, policy, &active, budget)
                }
                None => WarmPlan::new(world, image.version, &image.value, policy),
            };
            let keys: Vec<_> = plan
                .batches
                .iter()
                .flatten()
                .map(|(k, _)| k.clone())
                .collect();
            let leased = self
                .cache_call(self.store.lease(world, &keys, lease, self.config.lease_ttl))
                .await;
            if leased.is_err() {
                // The cache fails: nothing to warm; reads go to the source.
                return Ok(WarmReport {
                    version: plan.version,
                    keys: 0,
                    batches: 0,
                    skipped: keys.len(),
                });
            }
            // A write that committed before the lease but after the image
            // read could not delete it: read the image again then.
            let now = self.source_call(self.repo.version(world)).await?;
            if now == plan.version || attempt >= IMAGE_ATTEMPTS {
                break plan;
            }
        };
        let mut report = WarmReport {
            version: plan.version,
            keys: 0,
            batches: 0,
            skipped: 0,
        };
        for batch in &plan.batches {
            if self.refresh.deactivated(world) {
                // Deactivated meanwhile: what is not warmed fills on its
                // first read.
                report.skipped += batch.len();
                continue;
            }
            let write = CacheWrite::fill(
                world.clone(),
                plan.version,
                lease,
                batch
                    .iter()
                    .map(|(k, v)| self.put_redacting(k, plan.version, v))
                    .collect(),
            );
            match self.cache_call(self.store.write(&write)).await {
                Ok(outcome) => {
                    report.keys += outcome.landed;
                    report.skipped += outcome.skipped;
                    report.batches += 1;
                    self.metrics
                        .record(MetricEvent::Warmed(outcome.landed as u64));
                }
                // Keys that are not warmed fill on their first read.
                Err(_) => report.skipped += batch.len(),
            }
        }
        Ok(report)
    }
}
