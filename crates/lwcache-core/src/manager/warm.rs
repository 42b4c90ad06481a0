//! Activation: prefilling a world's flags, snapshot, entities and recent
//! timelines from one image read at one version, in batches of one round
//! trip each. Batches are fills, so a write that races with the warming
//! wins under the version protocol.

use lwcache_domain::{WarmPlan, WorldId};
use tracing::Instrument;

use super::{CacheManager, Inner, WarmReport};
use crate::error::Error;
use crate::metrics::MetricEvent;
use crate::ports::{CacheStore, CacheWrite, WorldRepository, WriteOutcome};

/// How many times an activation reads the image when writes keep landing
/// before its first batch.
const IMAGE_ATTEMPTS: u32 = 3;

impl<S, R> CacheManager<S, R>
where
    S: CacheStore + 'static,
    R: WorldRepository + 'static,
{
    /// Activates a world: prefills its flags, snapshot, and each entity's
    /// state and top-k recent events, in batches of one round trip each.
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
        let mut attempt = 0;
        loop {
            attempt += 1;
            let image = self
                .source_call(self.repo.image(world, policy.timeline_top_k))
                .await?;
            let plan = WarmPlan::new(world, image.version, &image.value, policy);
            let mut report = WarmReport {
                version: plan.version,
                keys: 0,
                batches: 0,
                skipped: 0,
            };
            let mut retry = false;
            for (i, batch) in plan.batches.iter().enumerate() {
                let write = CacheWrite::fill(
                    world.clone(),
                    plan.version,
                    batch
                        .iter()
                        .map(|(k, v)| self.put_redacting(k, plan.version, v))
                        .collect(),
                );
                match self.fill_seeding(&write).await {
                    Ok(WriteOutcome::Applied) => {
                        report.keys += batch.len();
                        report.batches += 1;
                        self.metrics.record(MetricEvent::Warmed(batch.len() as u64));
                    }
                    // A write landed between the image read and the first
                    // batch: read the image again rather than warm nothing.
                    Ok(_) if i == 0 && attempt < IMAGE_ATTEMPTS => {
                        retry = true;
                        break;
                    }
                    // Later batches that lose a race are left to fill on
                    // their first read.
                    _ => report.skipped += batch.len(),
                }
            }
            if !retry {
                return Ok(report);
            }
        }
    }
}
