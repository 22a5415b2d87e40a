//! The shard's outgoing event queues: statistics batches that return their buffers, and
//! block candidates.

use std::sync::Arc;

use warppool_core::limits::{SHARE_STATS_BATCH_MAX, STATS_BATCHES_QUEUED_PER_SHARD_MAX};

use crate::{
    candidates::CandidateQueue,
    counters::{ShardCounters, bump},
};

/// A batch of statistics entries from one shard (at most `SHARE_STATS_BATCH_MAX`), read as a
/// slice. Dropping it hands its buffer back to the shard (through a bounded queue), so sending
/// batches allocates nothing once the shard runs.
pub struct StatsBatch<S> {
    pub(super) items: Vec<S>,
    pub(super) home: Option<flume::Sender<Vec<S>>>,
}

impl<S> std::ops::Deref for StatsBatch<S> {
    type Target = [S];

    fn deref(&self) -> &[S] {
        &self.items
    }
}

impl<S: std::fmt::Debug> std::fmt::Debug for StatsBatch<S> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_list().entries(&self.items).finish()
    }
}

impl<S> Drop for StatsBatch<S> {
    fn drop(&mut self) {
        if let Some(home) = self.home.take() {
            self.items.clear();
            // Full or gone: the buffer is freed here instead (the shard allocates a new one
            // only if it ever runs out).
            let _ = home.try_send(std::mem::take(&mut self.items));
        }
    }
}

/// Buffers circulating between a shard and its statistics consumer: one being filled, the
/// queue's worth, one held by the consumer and one on its way back.
const STATS_BUFFERS: usize = STATS_BATCHES_QUEUED_PER_SHARD_MAX + 2;

/// The shard's outgoing event queues (statistics batches and block candidates).
pub(crate) struct Events<S, C> {
    batch: Vec<S>,
    stats_tx: flume::Sender<StatsBatch<S>>,
    /// Buffers of consumed batches, back from the consumer ([`StatsBatch`]'s `Drop`).
    recycled_tx: flume::Sender<Vec<S>>,
    recycled_rx: flume::Receiver<Vec<S>>,
    candidates: CandidateQueue<C>,
    counters: Arc<ShardCounters>,
}

impl<S, C> Events<S, C> {
    pub(crate) fn new(
        stats_tx: flume::Sender<StatsBatch<S>>,
        candidates_tx: flume::Sender<C>,
        counters: Arc<ShardCounters>,
    ) -> Self {
        assert!(stats_tx.capacity().is_some(), "stats queue must be bounded");
        let (recycled_tx, recycled_rx) = flume::bounded(STATS_BUFFERS);
        for _ in 0..STATS_BUFFERS {
            let _ = recycled_tx.try_send(Vec::with_capacity(SHARE_STATS_BATCH_MAX));
        }
        Self {
            batch: Vec::with_capacity(SHARE_STATS_BATCH_MAX),
            stats_tx,
            recycled_tx,
            recycled_rx,
            candidates: CandidateQueue::new(candidates_tx),
            counters,
        }
    }

    pub(crate) fn job_build_failed(&self) {
        bump(&self.counters.job_build_failures, 1);
    }

    pub(crate) fn stat(&mut self, entry: S) {
        debug_assert!(self.batch.len() < SHARE_STATS_BATCH_MAX);
        self.batch.push(entry);
        if self.batch.len() == SHARE_STATS_BATCH_MAX {
            self.flush_stats();
        }
    }

    /// Sends the current batch; when the queue is full the batch is counted and dropped (and
    /// its buffer reused). The next batch is filled in a buffer the consumer handed back, so
    /// nothing is allocated unless the consumer keeps more than `STATS_BUFFERS` batches.
    pub(crate) fn flush_stats(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let next = self
            .recycled_rx
            .try_recv()
            .unwrap_or_else(|_| Vec::with_capacity(SHARE_STATS_BATCH_MAX));
        debug_assert!(next.is_empty());
        let items = std::mem::replace(&mut self.batch, next);
        let batch = StatsBatch {
            items,
            home: Some(self.recycled_tx.clone()),
        };
        match self.stats_tx.try_send(batch) {
            Ok(()) => {}
            Err(
                flume::TrySendError::Full(mut batch) | flume::TrySendError::Disconnected(mut batch),
            ) => {
                bump(&self.counters.stats_dropped, batch.items.len() as u64);
                batch.home = None;
                let mut items = std::mem::take(&mut batch.items);
                items.clear();
                let spare = std::mem::replace(&mut self.batch, items);
                let _ = self.recycled_tx.try_send(spare);
            }
        }
    }

    /// Sends a block candidate, or keeps it in the shard's overflow when the queue is full
    /// (see [`CandidateQueue`]); never panics.
    pub(crate) fn candidate(&mut self, candidate: C) {
        self.candidates.push(candidate, &self.counters);
    }

    /// Retries the candidates waiting in the overflow (every tick).
    pub(crate) fn retry_candidates(&mut self) {
        self.candidates.retry();
    }
}

#[cfg(test)]
mod tests;
