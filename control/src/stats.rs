//! Share statistics drained from the data plane, and the seam the storage module plugs into.
//!
//! # Responsibilities
//!
//! - [`Recorder`]: what the control plane hands to storage (share batches, block events, a
//!   flush at shutdown). Small on purpose: the storage module implements it at merge.
//! - [`MemoryStats`]: the in-memory counters used until then (and kept for metrics).
//! - [`drain_stats`]: one task per shard queue, feeding a recorder until the queue closes.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use warppool_net::stratum::ShareEvent;

use crate::blocks::BlockEvent;

/// The storage seam: receives share batches and block events; flushed at shutdown.
pub trait Recorder: Send + Sync + 'static {
    /// One batch of share events from a shard (called from the control plane; must not block
    /// for long: queue the work to the storage thread).
    fn on_shares(&self, batch: &[ShareEvent]);
    /// A block event.
    fn on_block(&self, event: &BlockEvent);
    /// Writes out everything queued (shutdown).
    fn flush(&self);
}

/// Simple counters.
#[derive(Debug, Default)]
pub struct MemoryStats {
    /// Accepted shares.
    pub shares_accepted: AtomicU64,
    /// Rejected shares.
    pub shares_rejected: AtomicU64,
    /// Shares that met the network target.
    pub block_shares: AtomicU64,
    /// Authorizations.
    pub authorized: AtomicU64,
    /// Block events seen.
    pub block_events: AtomicU64,
}

/// A snapshot of [`MemoryStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Accepted shares.
    pub shares_accepted: u64,
    /// Rejected shares.
    pub shares_rejected: u64,
    /// Shares that met the network target.
    pub block_shares: u64,
    /// Authorizations.
    pub authorized: u64,
    /// Block events seen.
    pub block_events: u64,
}

impl MemoryStats {
    /// The counters now.
    #[must_use]
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            shares_accepted: self.shares_accepted.load(Ordering::Relaxed),
            shares_rejected: self.shares_rejected.load(Ordering::Relaxed),
            block_shares: self.block_shares.load(Ordering::Relaxed),
            authorized: self.authorized.load(Ordering::Relaxed),
            block_events: self.block_events.load(Ordering::Relaxed),
        }
    }
}

impl Recorder for MemoryStats {
    fn on_shares(&self, batch: &[ShareEvent]) {
        for event in batch {
            match event {
                ShareEvent::Authorized { .. } => {
                    self.authorized.fetch_add(1, Ordering::Relaxed);
                }
                ShareEvent::Share(s) => {
                    if s.reject.is_none() {
                        self.shares_accepted.fetch_add(1, Ordering::Relaxed);
                    } else {
                        self.shares_rejected.fetch_add(1, Ordering::Relaxed);
                    }
                    if s.block {
                        self.block_shares.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }

    fn on_block(&self, _event: &BlockEvent) {
        self.block_events.fetch_add(1, Ordering::Relaxed);
    }

    fn flush(&self) {
        let s = self.snapshot();
        tracing::info!(
            accepted = s.shares_accepted,
            rejected = s.shares_rejected,
            blocks = s.block_shares,
            "share statistics at shutdown"
        );
    }
}

/// Feeds every batch of `queue` to `recorder` until the data plane closes the queue.
pub async fn drain_stats(queue: flume::Receiver<Vec<ShareEvent>>, recorder: Arc<dyn Recorder>) {
    while let Ok(batch) = queue.recv_async().await {
        recorder.on_shares(&batch);
    }
}

/// Feeds block events to `recorder` until the block path closes the queue.
pub async fn drain_block_events(queue: flume::Receiver<BlockEvent>, recorder: Arc<dyn Recorder>) {
    while let Ok(event) = queue.recv_async().await {
        recorder.on_block(&event);
    }
}
