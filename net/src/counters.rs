//! Per-shard counters. Each is written by its own shard only (relaxed atomics, no contention)
//! and read by the control plane, which sums them.

use std::sync::atomic::{AtomicU64, Ordering};

/// A shard's live counters (see [`CountersSnapshot`] for their meaning).
#[derive(Debug, Default)]
pub(crate) struct ShardCounters {
    pub(crate) accepted: AtomicU64,
    pub(crate) refused_shard_full: AtomicU64,
    pub(crate) refused_ip_cap: AtomicU64,
    pub(crate) refused_rate: AtomicU64,
    pub(crate) closed: AtomicU64,
    pub(crate) connections: AtomicU64,
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
        }
    }
}

/// A copy of one shard's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CountersSnapshot {
    /// Connections accepted and handed to the protocol.
    pub accepted: u64,
    /// Connections closed at accept because the shard was full
    /// (`pool.connections_per_shard_max`; logged, rate-limited).
    pub refused_shard_full: u64,
    /// Connections closed at accept because their address was at its cap
    /// (`pool.connections_per_ip_max`; logged, rate-limited).
    pub refused_ip_cap: u64,
    /// Connections closed at accept because the accept rate was exceeded
    /// (`pool.accept_rate_per_sec`, `pool.accept_burst`; logged, rate-limited).
    pub refused_rate: u64,
    /// Accepted connections that have been closed.
    pub closed: u64,
    /// Connections open now.
    pub connections: u64,
    /// Lines handed to the protocol.
    pub lines: u64,
    /// Job notifications dropped from outbound queues because newer ones superseded them.
    pub notifies_dropped: u64,
    /// Statistics entries dropped because the control plane's queue was full.
    pub stats_dropped: u64,
    /// Connections closed because their outbound queue overflowed.
    pub slow_reader_closes: u64,
    /// Connections closed by the subscribe or idle timeout.
    pub timeout_closes: u64,
    /// Connections closed by a TLS error (including plain text on a TLS port).
    pub tls_errors: u64,
    /// Multishot-recv completions with bytes on the shard's io_uring ring (plain connections
    /// on the io_uring driver; always 0 on the epoll path).
    pub ring_recv_completions: u64,
    /// Multishot recvs the kernel ended because the provided-buffer ring was empty
    /// (`ENOBUFS`); each was re-armed.
    pub ring_no_buffers: u64,
    /// Block candidates that found the candidate queue full and waited in the shard's
    /// overflow (sent later, in order, as the control plane drains the queue).
    pub candidates_deferred: u64,
    /// Block candidates dropped because the queue and the shard's overflow were both full
    /// (logged at error level, rate-limited). Should stay 0: alert on it.
    pub candidates_lost: u64,
}

impl std::ops::AddAssign for CountersSnapshot {
    fn add_assign(&mut self, o: Self) {
        self.accepted += o.accepted;
        self.refused_shard_full += o.refused_shard_full;
        self.refused_ip_cap += o.refused_ip_cap;
        self.refused_rate += o.refused_rate;
        self.closed += o.closed;
        self.connections += o.connections;
        self.lines += o.lines;
        self.notifies_dropped += o.notifies_dropped;
        self.stats_dropped += o.stats_dropped;
        self.slow_reader_closes += o.slow_reader_closes;
        self.timeout_closes += o.timeout_closes;
        self.tls_errors += o.tls_errors;
        self.ring_recv_completions += o.ring_recv_completions;
        self.ring_no_buffers += o.ring_no_buffers;
        self.candidates_deferred += o.candidates_deferred;
        self.candidates_lost += o.candidates_lost;
    }
}
