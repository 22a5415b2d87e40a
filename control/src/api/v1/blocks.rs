//! `GET /api/v1/blocks`: the blocks the pool found, with their status and every node's answer.

use std::sync::Arc;

use axum::extract::{Extension, Query, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{
    api::{ApiError, ApiState, Encoded, ErrorBody, Viewer},
    block_status::BlockStatus,
};

/// Most blocks one answer lists.
pub const BLOCKS_PAGE_MAX: usize = 100;

/// `limit` of `GET /api/v1/blocks`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BlocksQuery {
    /// Blocks to list, newest first, 1..=100 (default 100).
    #[param(minimum = 1, maximum = 100)]
    pub limit: Option<usize>,
}

/// One node's answer to a submission or a check.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Submission {
    /// The node's name.
    pub node: String,
    /// What it answered (`accepted`, `duplicate`, `rejected: bad-cb-amount`, …).
    pub result: String,
    /// When, Unix seconds.
    pub at: i64,
}

/// One block.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BlockView {
    /// Height.
    pub height: u32,
    /// Hash (display order).
    pub hash: String,
    /// The finder (address masked).
    pub worker: String,
    /// The finder's id.
    pub worker_id: String,
    /// Its status: `found`, `submitted`, `in_chain`, `mature`, `orphaned` or `rejected`.
    pub status: &'static str,
    /// When found, Unix seconds.
    pub found_at: i64,
    /// When the status last changed.
    pub updated_at: i64,
    /// The finding device's user agent.
    pub user_agent: Option<String>,
    /// The finding connection's extranonce1 (hex), when recorded.
    pub extranonce1: Option<String>,
    /// Every node's answers, oldest first.
    pub submissions: Vec<Submission>,
}

/// `GET /api/v1/blocks`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BlocksResponse {
    /// Newest first.
    pub rows: Vec<BlockView>,
    /// Every status a block can have, in its life's order.
    pub statuses: Vec<&'static str>,
}

/// The blocks found.
#[utoipa::path(get, path = "/api/v1/blocks", tag = "blocks", params(BlocksQuery), responses(
    (status = 200, description = "Blocks, newest first", body = BlocksResponse),
    (status = 400, description = "A bad limit", body = ErrorBody),
    (status = 503, description = "Busy or storage unreadable", body = ErrorBody)))]
pub async fn blocks(
    State(state): State<Arc<ApiState>>,
    Extension(viewer): Extension<Viewer>,
    Query(query): Query<BlocksQuery>,
) -> Result<Encoded, ApiError> {
    let limit = query.limit.unwrap_or(BLOCKS_PAGE_MAX);
    if !(1..=BLOCKS_PAGE_MAX).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be 1..={BLOCKS_PAGE_MAX}"
        )));
    }
    state
        .query(move |s| {
            s.with_reader(|r| {
                let mut rows = Vec::new();
                for b in r.blocks(limit)? {
                    let submissions = r
                        .block_submissions(&b.hash)?
                        .into_iter()
                        .map(|s| Submission {
                            node: s.node,
                            result: s.result,
                            at: s.submitted_unix_s,
                        })
                        .collect();
                    rows.push(BlockView {
                        height: b.height,
                        worker_id: super::worker_id(&b.worker),
                        worker: viewer.name(&b.worker),
                        status: b.status.as_str(),
                        found_at: b.found_unix_s,
                        updated_at: b.updated_unix_s,
                        user_agent: b.user_agent,
                        extranonce1: b.extranonce1,
                        hash: b.hash,
                        submissions,
                    });
                }
                Ok(BlocksResponse {
                    rows,
                    statuses: BlockStatus::ALL.iter().map(|s| s.as_str()).collect(),
                })
            })
        })
        .await
}
