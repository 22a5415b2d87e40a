//! What the nodes say about themselves and the chain, refreshed every
//! `NETWORK_REFRESH_SECS` by one control task (never per API request): each node's
//! reachability, version, IBD, blocks and headers and the latency of that call, and from the
//! first answering node the network hashrate and the next difficulty retarget.

use std::sync::Arc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};
use tokio::sync::watch;
use utoipa::ToSchema;
use warppool_core::limits::NETWORK_REFRESH_SECS;

use crate::rpc::Nodes;

/// Blocks between difficulty retargets.
pub const RETARGET_INTERVAL: u64 = 2016;
/// The block interval the retarget aims at, seconds.
pub const TARGET_SPACING_SECS: f64 = 600.0;

/// One node as last seen.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct NodeView {
    /// Its name in the configuration.
    pub name: String,
    /// `ok`, `syncing` (IBD) or `unreachable`.
    pub status: &'static str,
    /// Its `subversion` (`/Satoshi:29.0.0/`).
    pub version: Option<String>,
    /// In initial block download.
    pub ibd: bool,
    /// Blocks in its active chain.
    pub blocks: Option<u64>,
    /// Headers it knows.
    pub headers: Option<u64>,
    /// The latency of the `getblockchaininfo` call just made, milliseconds.
    pub rpc_latency_ms: Option<f64>,
    /// A ZMQ `hashblock` endpoint is configured.
    pub zmq_configured: bool,
    /// The last error, when unreachable.
    pub error: Option<String>,
}

/// The next difficulty retarget, estimated from the current period's pace.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
pub struct Retarget {
    /// Blocks until it.
    pub blocks_left: u64,
    /// The difficulty change the period's pace so far implies, percent (between −75 % and
    /// +300 %, as consensus clamps a retarget to ÷4 and ×4).
    pub est_change_pct: f64,
    /// When it is expected, Unix seconds.
    pub eta: i64,
}

/// The network as the nodes see it.
#[derive(Debug, Clone, Default, PartialEq, Serialize, ToSchema)]
pub struct NetworkView {
    /// Every node, in failover order.
    pub nodes: Vec<NodeView>,
    /// The network's hashrate (`getmininginfo`'s `networkhashps`), H/s.
    pub network_hashrate: Option<f64>,
    /// The next retarget.
    pub retarget: Option<Retarget>,
    /// When this was refreshed, Unix seconds (0: not yet).
    pub refreshed_at: i64,
}

#[derive(Debug, Deserialize)]
struct ChainInfo {
    blocks: u64,
    headers: u64,
    bestblockhash: String,
    #[serde(default)]
    initialblockdownload: bool,
}

#[derive(Debug, Deserialize)]
struct NetInfo {
    subversion: Option<String>,
}

#[derive(Debug, Deserialize)]
struct MiningInfo {
    networkhashps: Option<f64>,
}

#[derive(Debug, Deserialize)]
struct HeaderTime {
    time: i64,
}

fn now_s() -> i64 {
    crate::api::now_s()
}

/// The retarget estimate at `height` with the period's first block at `start_time` and the
/// tip at `tip_time`; `None` right at a period start.
#[must_use]
pub fn retarget(height: u64, start_time: i64, tip_time: i64, now: i64) -> Option<Retarget> {
    let into = height % RETARGET_INTERVAL;
    let elapsed = (tip_time - start_time) as f64;
    if into == 0 || elapsed <= 0.0 {
        return None;
    }
    let pace = elapsed / into as f64;
    let change = (TARGET_SPACING_SECS / pace - 1.0) * 100.0;
    let blocks_left = RETARGET_INTERVAL - into;
    Some(Retarget {
        blocks_left,
        est_change_pct: change.clamp(-75.0, 300.0),
        eta: now + (blocks_left as f64 * pace) as i64,
    })
}

async fn node_view(nodes: &Nodes, i: usize, zmq: bool) -> (NodeView, Option<ChainInfo>) {
    let client = &nodes.clients()[i];
    let mut view = NodeView {
        name: client.name().to_owned(),
        zmq_configured: zmq,
        ..NodeView::default()
    };
    let t = Instant::now();
    match client
        .call::<ChainInfo>("getblockchaininfo", serde_json::json!([]))
        .await
    {
        Ok(info) => {
            view.rpc_latency_ms = Some(t.elapsed().as_secs_f64() * 1000.0);
            view.status = if info.initialblockdownload {
                "syncing"
            } else {
                "ok"
            };
            view.ibd = info.initialblockdownload;
            view.blocks = Some(info.blocks);
            view.headers = Some(info.headers);
            if let Ok(n) = client
                .call::<NetInfo>("getnetworkinfo", serde_json::json!([]))
                .await
            {
                view.version = n.subversion;
            }
            (view, Some(info))
        }
        Err(e) => {
            view.status = "unreachable";
            view.error = Some(e.to_string());
            (view, None)
        }
    }
}

async fn chain_figures(
    nodes: &Nodes,
    i: usize,
    info: &ChainInfo,
) -> (Option<f64>, Option<Retarget>) {
    let client = &nodes.clients()[i];
    let hashrate = client
        .call::<MiningInfo>("getmininginfo", serde_json::json!([]))
        .await
        .ok()
        .and_then(|m| m.networkhashps);
    let start = info.blocks - info.blocks % RETARGET_INTERVAL;
    let header = |hash: String| async move {
        client
            .call::<HeaderTime>("getblockheader", serde_json::json!([hash]))
            .await
            .ok()
            .map(|h| h.time)
    };
    let start_hash = client
        .call::<String>("getblockhash", serde_json::json!([start]))
        .await
        .ok();
    let start_time = match start_hash {
        Some(h) => header(h).await,
        None => None,
    };
    let tip_time = header(info.bestblockhash.clone()).await;
    let estimate = start_time
        .zip(tip_time)
        .and_then(|(s, t)| retarget(info.blocks, s, t, now_s()));
    (hashrate, estimate)
}

/// One refresh of every node.
pub async fn refresh(nodes: &Nodes, zmq: &[bool]) -> NetworkView {
    let mut view = NetworkView::default();
    let mut figures_from = None;
    for i in 0..nodes.clients().len() {
        let (node, info) = node_view(nodes, i, zmq.get(i).copied().unwrap_or(false)).await;
        if figures_from.is_none()
            && let Some(info) = info
        {
            figures_from = Some((i, info));
        }
        view.nodes.push(node);
    }
    if let Some((i, info)) = figures_from {
        (view.network_hashrate, view.retarget) = chain_figures(nodes, i, &info).await;
    }
    view.refreshed_at = now_s();
    view
}

/// Refreshes the view every `NETWORK_REFRESH_SECS` until `stop` changes.
pub async fn watch_task(
    nodes: Arc<Nodes>,
    zmq: Vec<bool>,
    out: watch::Sender<NetworkView>,
    mut stop: watch::Receiver<bool>,
) {
    let mut tick = tokio::time::interval(Duration::from_secs(NETWORK_REFRESH_SECS));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let view = refresh(&nodes, &zmq).await;
        out.send_replace(view);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fast_period_raises_the_difficulty_and_the_clamp_holds() {
        // 1008 blocks in 1008 * 300 s: twice as fast as aimed, so +100 %.
        let r = retarget(2016 * 10 + 1008, 0, 1008 * 300, 1_000).unwrap();
        assert_eq!(r.blocks_left, 1008);
        assert!((r.est_change_pct - 100.0).abs() < 1e-9, "{r:?}");
        assert_eq!(r.eta, 1_000 + 1008 * 300);
        let slow = retarget(2016 + 10, 0, 10 * 6000, 0).unwrap();
        assert_eq!(slow.est_change_pct, -75.0, "clamped like consensus");
        assert!(
            retarget(2016 * 3, 0, 100, 0).is_none(),
            "a period start has no pace yet"
        );
    }
}
