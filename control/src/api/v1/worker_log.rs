//! `GET /api/v1/workers/{id}/events` (its timeline: online/offline changes and the blocks it
//! found) and `GET /api/v1/workers/{id}/sessions` (its connections), newest first, paged with
//! a cursor.

use std::sync::Arc;

use axum::extract::{Extension, Path, Query, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use warppool_core::limits::API_WORKER_PAGE_ROWS_MAX;

use super::events::{EventView, view};
use super::history::{bounded_id, resolve};
use crate::api::{ApiError, ApiState, Encoded, ErrorBody, Viewer};

/// Rows of a page when `limit` is not given.
const PAGE_ROWS_DEFAULT: usize = 50;

/// `limit` and `cursor` of a worker's events or sessions.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct PageQuery {
    /// Rows, 1..=200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    #[param(max_length = 20)]
    pub cursor: Option<String>,
}

/// The parsed page: how many rows, and the id they must be below.
fn page(query: &PageQuery) -> Result<(usize, Option<i64>), ApiError> {
    let limit = query.limit.unwrap_or(PAGE_ROWS_DEFAULT);
    if !(1..=API_WORKER_PAGE_ROWS_MAX).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be 1..={API_WORKER_PAGE_ROWS_MAX} (API_WORKER_PAGE_ROWS_MAX)"
        )));
    }
    let before = query
        .cursor
        .as_deref()
        .map(|c| {
            c.parse::<i64>()
                .ok()
                .filter(|v| *v > 0)
                .ok_or_else(|| ApiError::bad_request("cursor is not one this API gave"))
        })
        .transpose()?;
    Ok((limit, before))
}

/// One page of a worker's events.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WorkerEvents {
    /// Newest first. `worker` events have `status` (`online`, `offline`) and, going offline,
    /// `reason` (why its last connection closed); `block` events are the blocks it found.
    pub rows: Vec<EventView>,
    /// Pass as `cursor` for the next (older) page; `null` on the last one.
    pub next_cursor: Option<String>,
}

/// A worker's event timeline.
#[utoipa::path(get, path = "/api/v1/workers/{id}/events", tag = "workers",
    params(("id" = String, Path, description = "The worker's id"), PageQuery),
    responses(
        (status = 200, description = "Its events, newest first", body = WorkerEvents),
        (status = 400, description = "A bad limit or cursor", body = ErrorBody),
        (status = 404, description = "No worker has that id", body = ErrorBody),
        (status = 503, description = "Busy or storage unreadable", body = ErrorBody)))]
pub async fn worker_events(
    State(state): State<Arc<ApiState>>,
    Extension(viewer): Extension<Viewer>,
    Path(id): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<Encoded, ApiError> {
    bounded_id(&id)?;
    let (limit, before) = page(&query)?;
    state
        .query(move |s| {
            let name = resolve(s, &id)?;
            let mut rows = s.with_reader(|r| Ok(r.worker_events(&name, before, limit + 1)?))?;
            let more = rows.len() > limit;
            rows.truncate(limit);
            let next_cursor = rows.last().filter(|_| more).map(|e| e.id.to_string());
            Ok(WorkerEvents {
                rows: rows.into_iter().map(|e| view(e, viewer)).collect(),
                next_cursor,
            })
        })
        .await
}

/// One connection session of a worker.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SessionView {
    /// When it authorized, Unix seconds.
    pub start: i64,
    /// When it closed; `null` while open.
    pub end: Option<i64>,
    /// Why it closed: `peer_closed`, `socket_error`, `protocol`, `line_too_long`,
    /// `slow_reader`, `subscribe_timeout`, `idle_timeout`, `tls_error`, `tls_on_plain_port`,
    /// `shutdown`, `kicked`, `banned`, `reauthorized` (the connection authorized as another
    /// worker) or `pool_stopped` (open when the pool stopped; `end` is its last activity).
    pub end_reason: Option<String>,
    /// The subscribe user agent.
    pub user_agent: Option<String>,
    /// The Stratum port it connected to.
    pub port: u16,
    /// Whether it was TLS.
    pub tls: bool,
}

/// One page of a worker's sessions.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WorkerSessions {
    /// Newest first.
    pub rows: Vec<SessionView>,
    /// Pass as `cursor` for the next (older) page; `null` on the last one.
    pub next_cursor: Option<String>,
}

/// A worker's connection sessions.
#[utoipa::path(get, path = "/api/v1/workers/{id}/sessions", tag = "workers",
    params(("id" = String, Path, description = "The worker's id"), PageQuery),
    responses(
        (status = 200, description = "Its sessions, newest first", body = WorkerSessions),
        (status = 400, description = "A bad limit or cursor", body = ErrorBody),
        (status = 404, description = "No worker has that id", body = ErrorBody),
        (status = 503, description = "Busy or storage unreadable", body = ErrorBody)))]
pub async fn worker_sessions(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    Query(query): Query<PageQuery>,
) -> Result<Encoded, ApiError> {
    bounded_id(&id)?;
    let (limit, before) = page(&query)?;
    state
        .query(move |s| {
            let name = resolve(s, &id)?;
            let mut rows = s.with_reader(|r| Ok(r.worker_sessions(&name, before, limit + 1)?))?;
            let more = rows.len() > limit;
            rows.truncate(limit);
            let next_cursor = rows.last().filter(|_| more).map(|e| e.id.to_string());
            Ok(WorkerSessions {
                rows: rows
                    .into_iter()
                    .map(|r| SessionView {
                        start: r.started_unix_s,
                        end: r.ended_unix_s,
                        end_reason: r.end_reason,
                        user_agent: r.user_agent,
                        port: r.local_port,
                        tls: r.tls,
                    })
                    .collect(),
                next_cursor,
            })
        })
        .await
}
