//! `GET /api/v1/best-shares?scope=all|round|day`: the high scores.

use std::sync::Arc;

use axum::extract::{Extension, Query, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::{
    api::{ApiError, ApiState, Encoded, ErrorBody, Viewer, now_s},
    live::device,
    storage::BestScope,
};

/// Rows of the high-score table.
pub const BEST_SHARES_ROWS: usize = 20;

/// `scope` of `GET /api/v1/best-shares`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct BestQuery {
    /// `all` (ever, default), `round` (since the pool's last block) or `day` (24 hours).
    #[param(pattern = "^(all|round|day)$")]
    pub scope: Option<String>,
}

/// One high score.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BestRow {
    /// The share's difficulty.
    pub difficulty: f64,
    /// Who (address masked).
    pub worker: String,
    /// Its id.
    pub worker_id: String,
    /// Its device, as its user agent names it.
    pub model: String,
    /// The minute it was found in, while that minute is stored.
    pub at: Option<i64>,
}

/// `GET /api/v1/best-shares`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BestShareTable {
    /// The scope asked for.
    pub scope: &'static str,
    /// Best first, at most 20.
    pub rows: Vec<BestRow>,
}

/// The best shares of all time, this round or today, one per worker.
#[utoipa::path(get, path = "/api/v1/best-shares", tag = "pool", params(BestQuery), responses(
    (status = 200, description = "High scores", body = BestShareTable),
    (status = 400, description = "An unknown scope", body = ErrorBody),
    (status = 503, description = "Busy or storage unreadable", body = ErrorBody)))]
pub async fn best_shares(
    State(state): State<Arc<ApiState>>,
    Extension(viewer): Extension<Viewer>,
    Query(query): Query<BestQuery>,
) -> Result<Encoded, ApiError> {
    let (scope, name) = match query.scope.as_deref().unwrap_or("all") {
        "all" => (BestScope::AllTime, "all"),
        "round" => (BestScope::Round, "round"),
        "day" => (BestScope::Day, "day"),
        other => {
            return Err(ApiError::bad_request(format!(
                "scope must be all, round or day: {other:?}"
            )));
        }
    };
    state
        .query(move |s| {
            s.with_reader(|r| {
                let rows = r
                    .best_shares(scope, BEST_SHARES_ROWS, now_s())?
                    .into_iter()
                    .map(|b| BestRow {
                        difficulty: b.difficulty,
                        worker_id: super::worker_id(&b.worker),
                        worker: viewer.name(&b.worker),
                        model: device::parse(b.user_agent.as_deref()).model.to_owned(),
                        at: b.minute_unix_s,
                    })
                    .collect();
                Ok(BestShareTable { scope: name, rows })
            })
        })
        .await
}
