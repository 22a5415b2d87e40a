//! `GET /api/v1/network`: the nodes, the chain and the pool's share of it.

use std::sync::Arc;

use axum::extract::State;
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    api::{ApiError, ApiState, Encoded, ErrorBody, now_s},
    network::{NodeView, Retarget},
};

/// The template being mined.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TemplateFigures {
    /// Height.
    pub height: u32,
    /// Seconds since it was published.
    pub age_s: i64,
    /// Transactions besides the coinbase.
    pub tx_count: usize,
    /// Their serialized size, bytes.
    pub tx_bytes: usize,
    /// Their fees, satoshis.
    pub fees_sats: u64,
    /// The block subsidy, satoshis.
    pub subsidy_sats: u64,
}

/// `GET /api/v1/network`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NetworkResponse {
    /// Height of the template being mined.
    pub height: Option<u32>,
    /// Network difficulty of the current template.
    pub difficulty: Option<f64>,
    /// The network's hashrate per the first answering node, H/s.
    pub network_hashrate: Option<f64>,
    /// The next retarget.
    pub retarget: Option<Retarget>,
    /// The current template.
    pub template: Option<TemplateFigures>,
    /// The pool's last-hour hashrate over the network's, 0..1.
    pub pool_share: Option<f64>,
    /// Every node.
    pub nodes: Vec<NodeView>,
    /// When the node figures were refreshed (every `NETWORK_REFRESH_SECS`; 0: not yet).
    pub refreshed_at: i64,
}

/// The nodes and the chain.
#[utoipa::path(get, path = "/api/v1/network", tag = "network", responses(
    (status = 200, description = "Nodes, chain, template", body = NetworkResponse),
    (status = 503, description = "Busy", body = ErrorBody)))]
pub async fn network(State(state): State<Arc<ApiState>>) -> Result<Encoded, ApiError> {
    state.query(network_of).await
}

/// The answer of `/api/v1/network` (the diagnostics bundle holds it too).
///
/// # Errors
/// None today; the signature of a query.
pub(crate) fn network_of(s: &ApiState) -> Result<NetworkResponse, ApiError> {
    let now = now_s();
    let view = s.network.borrow().clone();
    let status = s.status.borrow().clone();
    let template = status
        .template
        .zip(status.height)
        .map(|(t, height)| TemplateFigures {
            height,
            age_s: now - t.published_at,
            tx_count: t.tx_count,
            tx_bytes: t.tx_bytes,
            fees_sats: t.fees_sats,
            subsidy_sats: t.coinbase_value_sats.saturating_sub(t.fees_sats),
        });
    let live = s.recorder.live();
    let hour = live.with_pool(|p| p.minutes.window(now, 3600, live.started_at()));
    let pool = crate::live::hashes_per_second(hour.difficulty_sum, hour.secs);
    let pool_share = view
        .network_hashrate
        .filter(|n| *n > 0.0)
        .map(|n| (pool / n).min(1.0));
    Ok(NetworkResponse {
        height: status.height,
        difficulty: status.template.map(|t| t.network_difficulty),
        network_hashrate: view.network_hashrate,
        retarget: view.retarget,
        template,
        pool_share,
        nodes: view.nodes,
        refreshed_at: view.refreshed_at,
    })
}
