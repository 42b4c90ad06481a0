//! Write-behind: cache updates that run after the write was acknowledged,
//! for write-behind keys when stale reads are opted into (otherwise the
//! write's own step puts them before the acknowledgement). A bounded queue
//! feeds one worker task, which retries a failed cache write a few times; a
//! full queue never blocks a caller (the write tombstones the key instead). `pending` remembers the newest
//! version queued per key, so that reads know a cached entry is behind and
//! the worker skips superseded work.

use std::sync::Weak;
use std::sync::atomic::Ordering;
use std::time::Duration;

use lwcache_domain::{CacheKey, CachedValue};
use tokio::sync::mpsc;

use super::{CacheManager, Inner, lock};
use crate::metrics::MetricEvent;
use crate::ports::{CacheStore, CacheWrite, Epoch, WorldRepository, WriteKind};

/// One unit of write-behind work.
#[derive(Debug)]
pub(super) enum Task {
    /// Put a key's new value.
    Put {
        key: CacheKey,
        version: u64,
        /// The world's epoch, learned before the source commit.
        epoch: Option<Epoch>,
        value: CachedValue,
    },
}

impl<S, R> CacheManager<S, R>
where
    S: CacheStore + 'static,
    R: WorldRepository + 'static,
{
    /// How many write-behind updates are waiting.
    pub fn write_behind_depth(&self) -> usize {
        lock(&self.inner.queue)
            .as_ref()
            .map_or(0, |tx| tx.max_capacity() - tx.capacity())
    }

    /// Waits until every write-behind task queued so far has run. For tests
    /// and orderly hand-overs; the service never needs it.
    pub async fn settle(&self) {
        loop {
            // Register for the wake-up before reading the counter: a task
            // that finishes between the read and the wait still wakes us.
            let mut settled = std::pin::pin!(self.inner.settled.notified());
            settled.as_mut().enable();
            if self.inner.in_flight.load(Ordering::SeqCst) == 0 {
                return;
            }
            settled.await;
        }
    }

    /// Stops taking write-behind work, waits until the queue is drained,
    /// removes the outbox entries already done and stops the replay loop
    /// and the refresher.
    /// Writes made after this invalidate synchronously and leave their
    /// outbox entries to another process's replay.
    pub async fn shutdown(&self) {
        self.inner.refresh.stop();
        drop(lock(&self.inner.queue).take());
        let handle = lock(&self.inner.worker).take();
        if let Some(handle) = handle {
            let _ = handle.await;
        }
        drop(lock(&self.inner.done).take());
        let tasks = lock(&self.inner.housekeeping).take();
        if let Some((settler, replayer)) = tasks {
            // The replay loop would go on forever; the settler ends once its
            // closed queue is drained, after one last batch.
            replayer.abort();
            let _ = replayer.await;
            let _ = settler.await;
        }
    }
}

impl<S, R> Inner<S, R>
where
    S: CacheStore + 'static,
    R: WorldRepository + 'static,
{
    /// Queues write-behind work without waiting; false when the queue is
    /// full or closed.
    pub(super) fn enqueue(&self, task: Task) -> bool {
        let Task::Put { key, version, .. } = &task;
        let key_version = Some((key.clone(), *version));
        let queue = lock(&self.queue);
        let Some(tx) = queue.as_ref() else {
            return false;
        };
        // Mark the key pending before the worker can see the task, so that
        // the worker's clear never races ahead of the mark.
        if let Some((key, version)) = &key_version {
            let mut pending = lock(&self.pending);
            let v = pending.entry(key.clone()).or_insert(0);
            *v = (*v).max(*version);
            self.pending_keys.store(pending.len(), Ordering::SeqCst);
        }
        self.in_flight.fetch_add(1, Ordering::SeqCst);
        match tx.try_send(task) {
            Ok(()) => {
                self.metrics.record(MetricEvent::WriteBehindDepth(
                    tx.max_capacity() - tx.capacity(),
                ));
                true
            }
            Err(_) => {
                self.task_done();
                if let Some((key, version)) = key_version {
                    self.clear_pending(&key, version);
                }
                false
            }
        }
    }

    /// Counts a task as finished, waking `settle` when none is left.
    fn task_done(&self) {
        if self.in_flight.fetch_sub(1, Ordering::SeqCst) == 1 {
            self.settled.notify_waiters();
        }
    }

    fn clear_pending(&self, key: &CacheKey, version: u64) {
        let mut pending = lock(&self.pending);
        if pending.get(key) == Some(&version) {
            pending.remove(key);
            self.pending_keys.store(pending.len(), Ordering::SeqCst);
        }
    }

    /// Runs one write-behind task, retrying a failed cache write a few
    /// times.
    async fn run_task(&self, task: Task) {
        match task {
            Task::Put {
                key,
                version,
                epoch,
                value,
            } => {
                let newest = lock(&self.pending).get(&key).copied().unwrap_or(version);
                if newest > version {
                    // A later update of the same key is queued: it will do.
                    return;
                }
                let write = CacheWrite::commit(
                    key.world().clone(),
                    version,
                    epoch,
                    vec![self.put_redacting(&key, version, &value)],
                );
                self.write_with_retries(&write).await;
                // Before the key stops being pending: a near fill read from
                // the store before this put landed must not be kept.
                self.near_forget([&key], version);
                self.clear_pending(&key, version);
            }
        }
    }

    async fn write_with_retries(&self, write: &CacheWrite) {
        let mut delay = Duration::from_millis(50);
        for _ in 0..4 {
            if let Ok(outcome) = self.cache_call(self.store.write(write)).await {
                if let WriteKind::Commit { epoch } = write.kind
                    && outcome.epoch_lost
                {
                    self.epoch_lost(&write.world, epoch);
                }
                return;
            }
            tokio::time::sleep(delay).await;
            delay *= 2;
        }
        tracing::error!(world = %write.world, version = write.version, "gave up a cache step after retries; entries may stay stale until their TTL");
    }
}

/// The write-behind worker: runs queued tasks one at a time until the queue
/// closes or the last manager is dropped.
pub(super) async fn worker<S, R>(inner: Weak<Inner<S, R>>, mut rx: mpsc::Receiver<Task>)
where
    S: CacheStore + 'static,
    R: WorldRepository + 'static,
{
    while let Some(task) = rx.recv().await {
        let Some(inner) = inner.upgrade() else { break };
        inner.run_task(task).await;
        inner.task_done();
        inner
            .metrics
            .record(MetricEvent::WriteBehindDepth(rx.len()));
    }
}
