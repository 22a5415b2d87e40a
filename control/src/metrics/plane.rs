//! The data plane's families: each shard's `CountersSnapshot` (relaxed atomics each shard
//! writes for itself), read through `StratumPlane::counters()`.

use std::fmt;

use prometheus_client::encoding::DescriptorEncoder;
use warppool_core::plane::{CountersSnapshot, FANOUT_BUCKETS_US};

use super::{
    Sources,
    encode::{HistogramRow, Labels, counters, gauges, histograms, label},
};

/// A per-shard counter: its family name (without `_total`), help, and how to read it.
type ShardCounter = (&'static str, &'static str, fn(&CountersSnapshot) -> u64);

const SHARD_COUNTERS: &[ShardCounter] = &[
    (
        "warppool_connections_accepted",
        "Stratum connections accepted and handed to the protocol, per shard.",
        |c| c.accepted,
    ),
    (
        "warppool_connections_closed",
        "Accepted Stratum connections that have closed, for any reason, per shard.",
        |c| c.closed,
    ),
    (
        "warppool_stratum_lines",
        "Stratum lines handed to the protocol, per shard.",
        |c| c.lines,
    ),
    (
        "warppool_notifies_dropped",
        "Job notifications dropped from outbound queues because newer ones superseded them.",
        |c| c.notifies_dropped,
    ),
    (
        "warppool_share_stats_dropped",
        "Share statistics entries dropped because the control plane's queue was full (those \
         shares are missing from every share figure).",
        |c| c.stats_dropped,
    ),
    (
        "warppool_ring_recv_completions",
        "Multishot-recv completions with bytes on the shard's io_uring ring.",
        |c| c.ring_recv_completions,
    ),
    (
        "warppool_ring_no_buffers",
        "Multishot recvs ended because the provided-buffer ring was empty (re-armed).",
        |c| c.ring_no_buffers,
    ),
    (
        "warppool_block_candidates_deferred",
        "Block candidates that found the candidate queue full and waited in the shard.",
        |c| c.candidates_deferred,
    ),
    (
        "warppool_block_candidates_lost",
        "Block candidates dropped because the queue and the shard's overflow were full. \
         Should stay 0.",
        |c| c.candidates_lost,
    ),
    (
        "warppool_job_build_failures",
        "Jobs that could not be built for a connection (the miner kept its old work).",
        |c| c.job_build_failures,
    ),
];

fn shard(index: usize) -> Labels {
    vec![label("shard", index)]
}

/// Encodes the data plane's families (nothing once the plane has stopped).
pub(super) fn encode(encoder: &mut DescriptorEncoder<'_>, sources: &Sources) -> fmt::Result {
    let Some(plane) = sources.pool.plane.upgrade() else {
        return Ok(());
    };
    let shards = plane.counters();
    drop(plane);
    encode_connections(encoder, sources, &shards)?;
    for (name, help, read) in SHARD_COUNTERS {
        let rows = shards.iter().enumerate().map(|(i, c)| (shard(i), read(c)));
        counters(encoder, name, help, rows)?;
    }
    encode_fanout(encoder, &shards)
}

fn encode_connections(
    encoder: &mut DescriptorEncoder<'_>,
    sources: &Sources,
    shards: &[CountersSnapshot],
) -> fmt::Result {
    let mut open = Vec::new();
    for (index, counters) in shards.iter().enumerate() {
        for (listener, labels) in sources.pool.listeners.iter().enumerate() {
            let rows = vec![
                label("protocol", labels.protocol),
                label("port", labels.port),
                label("shard", index),
            ];
            open.push((rows, counters.connections_by_listener[listener]));
        }
    }
    gauges(
        encoder,
        "warppool_connections",
        "Open Stratum connections by protocol, listening port and shard.",
        open,
    )?;
    let refused = shards.iter().enumerate().flat_map(|(index, c)| {
        [
            ("shard_full", c.refused_shard_full),
            ("ip_cap", c.refused_ip_cap),
            ("rate", c.refused_rate),
            ("banned", c.refused_banned),
        ]
        .map(|(limit, n)| (vec![label("limit", limit), label("shard", index)], n))
    });
    counters(
        encoder,
        "warppool_connections_refused",
        "Stratum connections closed at accept, by the limit that refused them \
         (shard_full: connections_per_shard_max, ip_cap: connections_per_ip_max, rate: \
         accept_rate_per_sec and accept_burst, banned: an address ban of the admin API), per \
         shard.",
        refused,
    )?;
    let causes = shards.iter().enumerate().flat_map(|(index, c)| {
        [
            ("slow_reader", c.slow_reader_closes),
            ("timeout", c.timeout_closes),
            ("tls_error", c.tls_errors),
        ]
        .map(|(cause, n)| (vec![label("cause", cause), label("shard", index)], n))
    });
    counters(
        encoder,
        "warppool_connection_closes",
        "Stratum connections closed by the pool, by cause (slow_reader: outbound queue \
         overflow, timeout: subscribe or idle timeout, tls_error: TLS failure), per shard.",
        causes,
    )
}

fn encode_fanout(encoder: &mut DescriptorEncoder<'_>, shards: &[CountersSnapshot]) -> fmt::Result {
    let fanouts: Vec<HistogramRow> = shards
        .iter()
        .enumerate()
        .map(|(i, c)| HistogramRow {
            labels: shard(i),
            buckets: FANOUT_BUCKETS_US
                .iter()
                .map(|us| *us as f64 / 1e6)
                .chain([f64::INFINITY])
                .zip(c.fanout_buckets)
                .collect(),
            sum: c.fanout_sum_ns as f64 / 1e9,
        })
        .collect();
    histograms(
        encoder,
        "warppool_job_fanout_seconds",
        "Time from a job publication to the shard having handed the new jobs to every one of \
         its connections, per shard (publications that coalesce into one wake-up count once).",
        &fanouts,
    )
}
