//! The control plane's families: template loop, nodes and their RPC latencies, ZMQ, the block
//! path, storage, and the build.

use std::{collections::BTreeMap, fmt};

use prometheus_client::encoding::DescriptorEncoder;

use super::{
    Sources,
    encode::{HistogramRow, counter, counters, gauge, gauges, histograms, label},
};
use crate::{
    rpc::{LatencyBuckets, RPC_LATENCY_BUCKETS_US},
    templates::GateKind,
};

/// Encodes the control plane's families.
pub(super) fn encode(
    encoder: &mut DescriptorEncoder<'_>,
    sources: &Sources,
    now: i64,
) -> fmt::Result {
    encode_template(encoder, sources, now)?;
    encode_nodes(encoder, sources)?;
    encode_blocks(encoder, sources)?;
    encode_storage(encoder, sources)?;
    encode_https(encoder, sources)?;
    let info = vec![
        label("version", sources.version),
        label("network", sources.network),
    ];
    gauges(
        encoder,
        "warppool_build_info",
        "Always 1; the labels tell WarpPool's version and the pool's network.",
        [(info, 1u64)],
    )?;
    gauge(
        encoder,
        "warppool_start_time_seconds",
        "When the pool started, Unix seconds.",
        sources.started_at,
    )
}

/// Every `SubmitOutcome::label`.
const SUBMIT_RESULTS: [&str; 5] = [
    "accepted",
    "duplicate",
    "inconclusive",
    "rejected",
    "failed",
];

const GATE_KINDS: [(GateKind, &str); 5] = [
    (GateKind::NodeUnreachable, "node_unreachable"),
    (GateKind::NodeSyncing, "node_syncing"),
    (GateKind::TemplateRefused, "template_refused"),
    (GateKind::WorkUnbuildable, "work_unbuildable"),
    (GateKind::TemplateStale, "template_stale"),
];

fn encode_template(
    encoder: &mut DescriptorEncoder<'_>,
    sources: &Sources,
    now: i64,
) -> fmt::Result {
    let status = sources.status.borrow().clone();
    let gated = GATE_KINDS.iter().map(|(kind, name)| {
        let on = status.gate.is_some() && status.gate_kind == Some(*kind);
        (vec![label("kind", name)], u64::from(on))
    });
    gauges(
        encoder,
        "warppool_work_gated",
        "1 while no new work goes out to miners, on the series of the reason; 0 otherwise.",
        gated,
    )?;
    counter(
        encoder,
        "warppool_job_publications",
        "Job sets published to the shards (new templates and gate changes).",
        status.generation,
    )?;
    if let Some(height) = status.height {
        gauge(
            encoder,
            "warppool_template_height",
            "Height of the block the current template builds.",
            u64::from(height),
        )?;
    }
    if let Some(t) = status.template {
        gauge(
            encoder,
            "warppool_template_age_seconds",
            "Seconds since the current template was published to the miners.",
            (now - t.published_at).max(0),
        )?;
        gauge(
            encoder,
            "warppool_network_difficulty",
            "The network difficulty of the current template.",
            t.network_difficulty,
        )?;
        gauge(
            encoder,
            "warppool_template_transactions",
            "Transactions in the current template besides the coinbase.",
            t.tx_count as u64,
        )?;
    }
    encode_template_loop(encoder, sources)
}

fn encode_template_loop(encoder: &mut DescriptorEncoder<'_>, sources: &Sources) -> fmt::Result {
    let Some(template_loop) = sources.pool.template_loop.upgrade() else {
        return Ok(());
    };
    if let Some(ago) = template_loop.refreshed_ago() {
        gauge(
            encoder,
            "warppool_template_refresh_age_seconds",
            "Seconds since a node last answered getblocktemplate with a usable template \
             (unchanged templates included): the staleness the template watchdog gates on.",
            ago.as_secs_f64(),
        )?;
    }
    counter(
        encoder,
        "warppool_templates_unusable",
        "Templates a node sent that could not be turned into work (refused, or a coinbase \
         that cannot be built).",
        template_loop.job_build_failures(),
    )?;
    let zmq = template_loop.zmq_states();
    drop(template_loop);
    gauges(
        encoder,
        "warppool_zmq_subscribed",
        "1 once the ZMQ hashblock subscription to the endpoint is made (the socket reconnects \
         by itself afterwards, so a node that went away shows in warppool_node_up instead).",
        zmq.iter()
            .map(|(e, s)| (vec![label("endpoint", e)], u64::from(s.subscribed))),
    )?;
    counters(
        encoder,
        "warppool_zmq_hashblocks",
        "ZMQ hashblock notifications received, per endpoint.",
        zmq.iter()
            .map(|(e, s)| (vec![label("endpoint", e)], s.hashblocks)),
    )
}

fn encode_nodes(encoder: &mut DescriptorEncoder<'_>, sources: &Sources) -> fmt::Result {
    let [template_nodes, block_nodes] = &sources.pool.nodes;
    let up = template_nodes.clients().iter().enumerate().map(|(i, c)| {
        (
            vec![label("node", c.name())],
            u64::from(template_nodes.is_up(i)),
        )
    });
    gauges(
        encoder,
        "warppool_node_up",
        "1 while the node's RPC calls from the template loop succeed; 0 from a failure \
         until its next success.",
        up,
    )?;
    // Both sets of clients talk to the same nodes: their calls are added up.
    let mut merged: BTreeMap<(String, &'static str), LatencyBuckets> = BTreeMap::new();
    for client in template_nodes.clients().iter().chain(block_nodes.clients()) {
        for (method, buckets) in client.latency_buckets() {
            let sum = merged
                .entry((client.name().to_owned(), method))
                .or_default();
            for (total, n) in sum.counts.iter_mut().zip(buckets.counts) {
                *total += n;
            }
            sum.sum_us = sum.sum_us.saturating_add(buckets.sum_us);
        }
    }
    let rows: Vec<HistogramRow> = merged
        .into_iter()
        .map(|((node, method), b)| HistogramRow {
            labels: vec![label("node", node), label("method", method)],
            buckets: RPC_LATENCY_BUCKETS_US
                .iter()
                .map(|us| *us as f64 / 1e6)
                .chain([f64::INFINITY])
                .zip(b.counts)
                .collect(),
            sum: b.sum_us as f64 / 1e6,
        })
        .collect();
    histograms(
        encoder,
        "warppool_rpc_latency_seconds",
        "bitcoind JSON-RPC call latency by node and method, failures included \
         (getblocktemplate_longpoll: long-polls, which wait for a new template by design).",
        &rows,
    )
}

fn encode_blocks(encoder: &mut DescriptorEncoder<'_>, sources: &Sources) -> fmt::Result {
    let stats = sources.recorder.memory_stats();
    let statuses = stats
        .block_statuses()
        .map(|(status, n)| (vec![label("status", status.as_str())], n));
    counters(
        encoder,
        "warppool_block_events",
        "Block path events by the status they report (found, submitted, in_chain, mature, \
         orphaned, rejected).",
        statuses,
    )?;
    // Every configured node and every result, at zero until it happens (alert rules then
    // watch series that exist); a node name only the journal knows is added as it comes.
    let mut answers: BTreeMap<(String, &'static str), u64> = BTreeMap::new();
    for client in sources.pool.nodes[1].clients() {
        for result in SUBMIT_RESULTS {
            answers.insert((client.name().to_owned(), result), 0);
        }
    }
    for (node, result, n) in stats.block_submissions() {
        answers.insert((node, result), n);
    }
    let submissions = answers
        .into_iter()
        .map(|((node, result), n)| (vec![label("node", node), label("result", result)], n));
    counters(
        encoder,
        "warppool_block_submissions",
        "submitblock answers by node and result (accepted, duplicate, inconclusive, rejected, \
         failed: the call itself failed).",
        submissions,
    )
}

fn encode_storage(encoder: &mut DescriptorEncoder<'_>, sources: &Sources) -> fmt::Result {
    let Some(s) = sources.recorder.storage_stats() else {
        return Ok(());
    };
    gauge(
        encoder,
        "warppool_storage_queue_messages",
        "Messages waiting in the SQLite writer's channel.",
        s.queued_messages,
    )?;
    gauge(
        encoder,
        "warppool_storage_queue_capacity_messages",
        "Capacity of the SQLite writer's channel (STORAGE_CHANNEL_MESSAGES_MAX).",
        s.channel_capacity,
    )?;
    gauge(
        encoder,
        "warppool_storage_pending_share_buckets",
        "Worker-minute share buckets aggregated in memory, waiting for the next commit.",
        s.pending_share_buckets,
    )?;
    let rows: [(&str, &str, u64); 4] = [
        (
            "warppool_storage_batches_committed",
            "SQLite transactions committed by the writer.",
            s.batches_committed,
        ),
        (
            "warppool_storage_dropped_shares",
            "Shares not stored because SHARE_BUCKETS_MAX buckets were pending.",
            s.dropped_shares,
        ),
        (
            "warppool_storage_dropped_messages",
            "Worker updates and events not stored because the writer's channel was full.",
            s.dropped_messages,
        ),
        (
            "warppool_storage_write_errors",
            "Batches that failed to commit.",
            s.write_errors,
        ),
    ];
    for (name, help, value) in rows {
        counter(encoder, name, help, value)?;
    }
    Ok(())
}

fn encode_https(encoder: &mut DescriptorEncoder<'_>, sources: &Sources) -> fmt::Result {
    let Some(cert) = &sources.https else {
        return Ok(());
    };
    counter(
        encoder,
        "warppool_https_cert_reloads",
        "New HTTPS certificates taken from the given files (changed, or SIGHUP).",
        cert.reloads(),
    )?;
    counter(
        encoder,
        "warppool_https_cert_reload_failures",
        "New HTTPS certificate files refused (unreadable, not PEM, a key that does not match); \
         the old certificate stayed in use.",
        cert.reload_failures(),
    )?;
    counter(
        encoder,
        "warppool_https_handshake_failures",
        "TLS handshakes on the HTTPS listener that failed or timed out.",
        crate::api::server::https_handshake_failures(),
    )
}
