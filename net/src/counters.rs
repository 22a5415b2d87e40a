//! Per-shard counters. Each is written by its own shard only (relaxed atomics, no contention)
//! and read by the control plane, which sums them.

use std::sync::atomic::{AtomicU64, Ordering};

/// Defined in core (it crosses to the control plane); re-exported where it was.
pub use warppool_core::plane::CountersSnapshot;

/// A shard's live counters (see [`CountersSnapshot`] for their meaning).
#[derive(Debug, Default)]
pub(crate) struct ShardCounters {
    pub(crate) accepted: AtomicU64,
    pub(crate) refused_shard_full: AtomicU64,
    pub(crate) refused_ip_cap: AtomicU64,
    pub(crate) refused_rate: AtomicU64,
    pub(crate) closed: AtomicU64,
    pub(crate) connections: AtomicU64,
    /// Open connections by listener index (accept and close only, never the share path).
    pub(crate) connections_by_listener: [AtomicU64; warppool_core::limits::LISTENERS_MAX],
    pub(crate) lines: AtomicU64,
    pub(crate) notifies_dropped: AtomicU64,
    pub(crate) stats_dropped: AtomicU64,
    pub(crate) slow_reader_closes: AtomicU64,
    pub(crate) timeout_closes: AtomicU64,
    pub(crate) tls_errors: AtomicU64,
    pub(crate) ring_recv_completions: AtomicU64,
    pub(crate) ring_no_buffers: AtomicU64,
    pub(crate) candidates_deferred: AtomicU64,
    pub(crate) candidates_lost: AtomicU64,
    pub(crate) job_build_failures: AtomicU64,
}

pub(crate) fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

impl ShardCounters {
    pub(crate) fn snapshot(&self) -> CountersSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CountersSnapshot {
            accepted: get(&self.accepted),
            refused_shard_full: get(&self.refused_shard_full),
            refused_ip_cap: get(&self.refused_ip_cap),
            refused_rate: get(&self.refused_rate),
            closed: get(&self.closed),
            connections: get(&self.connections),
            connections_by_listener: std::array::from_fn(|i| get(&self.connections_by_listener[i])),
            lines: get(&self.lines),
            notifies_dropped: get(&self.notifies_dropped),
            stats_dropped: get(&self.stats_dropped),
            slow_reader_closes: get(&self.slow_reader_closes),
            timeout_closes: get(&self.timeout_closes),
            tls_errors: get(&self.tls_errors),
            ring_recv_completions: get(&self.ring_recv_completions),
            ring_no_buffers: get(&self.ring_no_buffers),
            candidates_deferred: get(&self.candidates_deferred),
            candidates_lost: get(&self.candidates_lost),
            job_build_failures: get(&self.job_build_failures),
        }
    }
}
