//! Shares, hashrate and workers: the recorder's counters and the live table (`crate::live`),
//! which every share the shards report passes through.

use std::fmt;

use prometheus_client::encoding::DescriptorEncoder;
use warppool_core::{
    ShareReject,
    limits::{METRICS_WORKER_SERIES_IDLE_SECS, METRICS_WORKER_SERIES_MAX},
};

use super::{
    Sources,
    encode::{Labels, counter, counters, gauge, gauges, label},
    workers::{Selector, hashrate_10m, last_update},
};
use crate::{
    api::v1::{hashrate::HashrateView, mask_name, pool::Windows, worker_id},
    live::WorkerStatus,
};

/// Encodes the share, hashrate and worker families.
pub(super) fn encode(
    encoder: &mut DescriptorEncoder<'_>,
    sources: &Sources,
    now: i64,
) -> fmt::Result {
    encode_shares(encoder, sources)?;
    encode_hashrate(encoder, sources, now)?;
    encode_workers(encoder, sources, now)
}

fn encode_shares(encoder: &mut DescriptorEncoder<'_>, sources: &Sources) -> fmt::Result {
    let live = sources.recorder.live();
    let (accepted, rejects) = live.with_pool(|p| (p.accepted, p.rejects.clone()));
    let mut rows = vec![(
        vec![label("result", "accepted"), label("reason", "")],
        accepted,
    )];
    for reason in ShareReject::ALL.map(ShareReject::metrics_label) {
        let n = rejects.get(reason).copied().unwrap_or(0);
        rows.push((
            vec![label("result", "rejected"), label("reason", reason)],
            n,
        ));
    }
    counters(
        encoder,
        "warppool_shares",
        "Judged shares since start by result (accepted, rejected) and reject reason (empty for \
         accepted shares), as the shards reported them to the control plane.",
        rows,
    )?;
    let stats = sources.recorder.counters();
    counter(
        encoder,
        "warppool_block_shares",
        "Shares whose hash met the network target (each sent to the block path).",
        stats.block_shares,
    )?;
    counter(
        encoder,
        "warppool_authorizations",
        "Successful mining.authorize requests.",
        stats.authorized,
    )?;
    counter(
        encoder,
        "warppool_difficulty_retargets",
        "Difficulty changes of authorized connections after their first difficulty (vardiff \
         retargets and client suggestions).",
        stats.difficulty_changes,
    )?;
    counter(
        encoder,
        "warppool_workers_untracked",
        "Authorizations of new workers not followed live because the live table was full \
         (LIVE_WORKERS_MAX); they are still stored.",
        live.untracked(),
    )?;
    let hub = sources.recorder.hub();
    gauge(
        encoder,
        "warppool_sse_streams",
        "Live event streams (/api/v1/events) open now (at most SSE_STREAMS_MAX).",
        hub.streams() as f64,
    )?;
    counter(
        encoder,
        "warppool_sse_streams_dropped_slow",
        "Live event streams closed because their client stopped reading (SSE_BEHIND_MAX).",
        hub.dropped_slow(),
    )
}

fn encode_hashrate(
    encoder: &mut DescriptorEncoder<'_>,
    sources: &Sources,
    now: i64,
) -> fmt::Result {
    let live = sources.recorder.live();
    let since = live.started_at();
    let windows = live.with_pool(|p| {
        Windows::of(sources.min_difficulty, |secs| {
            if secs <= 3600 {
                p.minutes.window(now, secs, since)
            } else {
                p.hours.window(now, secs, since)
            }
        })
    });
    let rows = |pick: fn(&HashrateView) -> f64| -> Vec<(Labels, f64)> {
        [
            ("1m", windows.m1),
            ("10m", windows.m10),
            ("1h", windows.h1),
            ("1d", windows.d1),
        ]
        .iter()
        .map(|(name, view)| (vec![label("window", name)], pick(view)))
        .collect()
    };
    gauges(
        encoder,
        "warppool_pool_hashrate_hashes_per_second",
        "Pool hashrate estimated from the accepted shares' difficulty over the window.",
        rows(|v| v.hps),
    )?;
    gauges(
        encoder,
        "warppool_pool_hashrate_low_hashes_per_second",
        "Lower end of the pool hashrate's 95 % confidence interval over the window.",
        rows(|v| v.low_hps),
    )?;
    gauges(
        encoder,
        "warppool_pool_hashrate_high_hashes_per_second",
        "Upper end of the pool hashrate's 95 % confidence interval over the window.",
        rows(|v| v.high_hps),
    )
}

fn encode_workers(encoder: &mut DescriptorEncoder<'_>, sources: &Sources, now: i64) -> fmt::Result {
    let live = sources.recorder.live();
    let mut by_status = [0u64; WorkerStatus::ALL.len()];
    let mut selector = Selector::new(
        now,
        METRICS_WORKER_SERIES_MAX,
        METRICS_WORKER_SERIES_IDLE_SECS,
    );
    live.for_each(|w| {
        let status = w.status(now);
        if let Some(i) = WorkerStatus::ALL.iter().position(|s| *s == status) {
            by_status[i] += 1;
        }
        selector.offer(&w.name, hashrate_10m(w, now), last_update(w, now));
    });
    let series = selector.finish();
    let statuses = WorkerStatus::ALL
        .iter()
        .zip(by_status)
        .map(|(s, n)| (vec![label("status", s.as_str())], n));
    gauges(
        encoder,
        "warppool_workers",
        "Workers in the live table by status (online, degraded, idle, offline).",
        statuses,
    )?;
    // The address is masked as the API masks it for visitors; the id keeps series apart.
    let rows = series.rows.iter().map(|(name, hps)| {
        let labels = vec![
            label("worker_id", worker_id(name)),
            label("worker", mask_name(name)),
        ];
        (labels, *hps)
    });
    gauges(
        encoder,
        "warppool_worker_hashrate_hashes_per_second",
        "A worker's hashrate over the last ten minutes, from its accepted shares (worker: the \
         name with its payout address shortened; worker_id: the API's id). At most \
         METRICS_WORKER_SERIES_MAX workers (the fastest); a worker without an update for 24 h \
         has no series.",
        rows,
    )?;
    gauge(
        encoder,
        "warppool_worker_series_over_cap",
        "Workers updated within 24 h left out of warppool_worker_hashrate_hashes_per_second \
         by its series cap (METRICS_WORKER_SERIES_MAX).",
        series.over_cap as u64,
    )
}
