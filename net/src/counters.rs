//! Per-shard counters. Each is written by its own shard only (relaxed atomics, no contention)
//! and read by the control plane, which sums them.

use std::sync::atomic::{AtomicU64, Ordering};

/// Defined in core (it crosses to the control plane); re-exported where it was.
pub use warppool_core::plane::CountersSnapshot;
use warppool_core::plane::FANOUT_BUCKETS_US;

/// A shard's live counters (see [`CountersSnapshot`] for their meaning).
#[derive(Debug, Default)]
pub(crate) struct ShardCounters {
    pub(crate) accepted: AtomicU64,
    pub(crate) refused_shard_full: AtomicU64,
    pub(crate) refused_ip_cap: AtomicU64,
    pub(crate) refused_rate: AtomicU64,
    pub(crate) refused_banned: AtomicU64,
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
    /// When jobs were last published to this shard ([`mono_ns`] + 1; 0 once the shard has
    /// recorded that publication's fan-out).
    pub(crate) jobs_published_ns: AtomicU64,
    pub(crate) fanout_buckets: [AtomicU64; FANOUT_BUCKETS_US.len() + 1],
    pub(crate) fanout_sum_ns: AtomicU64,
}

/// Nanoseconds on a monotonic clock shared by the control side and every shard.
pub(crate) fn mono_ns() -> u64 {
    static EPOCH: std::sync::OnceLock<std::time::Instant> = std::sync::OnceLock::new();
    let nanos = EPOCH
        .get_or_init(std::time::Instant::now)
        .elapsed()
        .as_nanos();
    u64::try_from(nanos).unwrap_or(u64::MAX)
}

pub(crate) fn bump(counter: &AtomicU64, by: u64) {
    counter.fetch_add(by, Ordering::Relaxed);
}

impl ShardCounters {
    /// A connection accepted on `listener`; `live` are open on the shard now.
    pub(crate) fn accepted_on(&self, listener: usize, live: usize) {
        bump(&self.accepted, 1);
        self.connections.store(live as u64, Ordering::Relaxed);
        bump(&self.connections_by_listener[listener], 1);
    }

    /// A connection of `listener` closed; `live` are open on the shard now.
    pub(crate) fn closed_on(&self, listener: usize, live: usize) {
        bump(&self.closed, 1);
        self.connections.store(live as u64, Ordering::Relaxed);
        self.connections_by_listener[listener].fetch_sub(1, Ordering::Relaxed);
    }

    /// Marks a publication (called by `DataPlane::publish` before it wakes the shard).
    pub(crate) fn published(&self) {
        self.jobs_published_ns
            .store(mono_ns().saturating_add(1), Ordering::Release);
    }

    /// Records the fan-out of the newest publication, once (after the shard's `fan_out`).
    pub(crate) fn fanned_out(&self) {
        let published = self.jobs_published_ns.swap(0, Ordering::Acquire);
        if published == 0 {
            return;
        }
        let ns = mono_ns().saturating_sub(published - 1);
        let us = ns / 1_000;
        let bucket = FANOUT_BUCKETS_US.partition_point(|&bound| bound < us);
        bump(&self.fanout_buckets[bucket], 1);
        bump(&self.fanout_sum_ns, ns);
    }

    pub(crate) fn snapshot(&self) -> CountersSnapshot {
        let get = |c: &AtomicU64| c.load(Ordering::Relaxed);
        CountersSnapshot {
            accepted: get(&self.accepted),
            refused_shard_full: get(&self.refused_shard_full),
            refused_ip_cap: get(&self.refused_ip_cap),
            refused_rate: get(&self.refused_rate),
            refused_banned: get(&self.refused_banned),
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
            fanout_buckets: std::array::from_fn(|i| get(&self.fanout_buckets[i])),
            fanout_sum_ns: get(&self.fanout_sum_ns),
        }
    }
}
