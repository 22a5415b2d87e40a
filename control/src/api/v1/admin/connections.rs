//! Connections and bans (UI.md §8.3, `/admin/connections`): the live connections from the
//! live table, kick one, kick all (optionally by worker or address), and address bans.
//! Admin only, reads included (they show addresses); writes of a session need CSRF. Every
//! kick, ban and unban is logged and audited.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::{
    Json,
    extract::{ConnectInfo, Path, Query, State, rejection::JsonRejection},
    http::{HeaderMap, StatusCode},
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::{IntoParams, ToSchema};
use warppool_core::limits::API_CONNECTIONS_PAGE_MAX;

use super::{Caller, object_body};
use crate::{
    api::{ApiError, ApiState, Encoded, ErrorBody, now_s},
    auth::{Change, Outcome, Scope},
    live::{ConnectionFilter, ConnectionView},
};

type Peer = ConnectInfo<SocketAddr>;

/// Rows of a page unless `limit` says otherwise.
const PAGE_DEFAULT: usize = 100;

/// Filters and paging of `GET /api/v1/admin/connections`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct ConnectionsQuery {
    /// Worker names containing this (case-insensitive).
    pub worker: Option<String>,
    /// Connections from this address.
    pub ip: Option<String>,
    /// Rows, 1..=1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
}

/// One live (authorized) connection.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionRow {
    /// Its id (decimal text: the shard in the top 16 bits does not fit a JSON number).
    pub id: String,
    /// The shard it lives on.
    pub shard: u16,
    /// The worker it authorized as.
    pub worker: String,
    /// The peer's address.
    pub ip: String,
    /// The peer's port.
    pub port: u16,
    /// The pool port it connected to (its listener).
    pub local_port: u16,
    /// Whether it is TLS.
    pub tls: bool,
    /// Its subscribe user agent.
    pub user_agent: Option<String>,
    /// The difficulty it was last sent (0 until known).
    pub difficulty: f64,
    /// Accepted shares per minute over the last five minutes (or since it connected).
    pub shares_per_min: f64,
    /// Accepted shares since it authorized.
    pub accepted: u64,
    /// When it authorized, Unix seconds.
    pub connected_at: i64,
}

impl From<ConnectionView> for ConnectionRow {
    fn from(c: ConnectionView) -> Self {
        Self {
            id: c.id.to_string(),
            shard: u16::try_from(c.id >> 48).unwrap_or(u16::MAX),
            worker: c.worker,
            ip: c.peer.ip().to_canonical().to_string(),
            port: c.peer.port(),
            local_port: c.local_port,
            tls: c.tls,
            user_agent: c.user_agent,
            difficulty: c.difficulty,
            shares_per_min: c.shares_per_min,
            accepted: c.accepted,
            connected_at: c.connected_at,
        }
    }
}

/// A page of connections, by id.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConnectionsPage {
    /// The rows.
    pub rows: Vec<ConnectionRow>,
    /// Connections that pass the filter, on every page.
    pub total: usize,
    /// Pass as `cursor` for the next page; `null` on the last.
    pub next_cursor: Option<String>,
}

fn parse_ip(text: Option<&str>) -> Result<Option<std::net::IpAddr>, ApiError> {
    text.map(|t| {
        t.trim()
            .parse::<std::net::IpAddr>()
            .map(|ip| ip.to_canonical())
            .map_err(|_| ApiError::bad_request(format!("ip {t:?} is not an IP address")))
    })
    .transpose()
}

fn filter(worker: Option<String>, ip: Option<&str>) -> Result<ConnectionFilter, ApiError> {
    let worker = worker.filter(|w| !w.is_empty());
    if let Some(w) = &worker
        && w.len() > warppool_core::limits::API_QUERY_TEXT_BYTES_MAX
    {
        return Err(ApiError::bad_request(format!(
            "worker is {} bytes; at most {} (API_QUERY_TEXT_BYTES_MAX)",
            w.len(),
            warppool_core::limits::API_QUERY_TEXT_BYTES_MAX
        )));
    }
    Ok(ConnectionFilter {
        worker,
        ip: parse_ip(ip)?,
    })
}

/// The live connections (authorized ones, from the live table), by id, with filters.
#[utoipa::path(get, path = "/api/v1/admin/connections", tag = "admin",
    params(ConnectionsQuery), responses(
        (status = 200, description = "A page", body = ConnectionsPage),
        (status = 400, description = "Bad filter, limit or cursor", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody)))]
pub async fn connections(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    Query(q): Query<ConnectionsQuery>,
) -> Result<Encoded, ApiError> {
    let limit = q.limit.unwrap_or(PAGE_DEFAULT);
    if !(1..=API_CONNECTIONS_PAGE_MAX).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be 1..={API_CONNECTIONS_PAGE_MAX}"
        )));
    }
    let after = q
        .cursor
        .as_deref()
        .map(|c| {
            c.parse::<u64>()
                .map_err(|_| ApiError::bad_request("cursor is not one this endpoint gave"))
        })
        .transpose()?;
    let filter = filter(q.worker, q.ip.as_deref())?;
    let caller = Caller::of(peer, &headers);
    state
        .query(move |s| {
            caller.principal(s, Scope::Admin, false)?;
            let (rows, total) = s
                .recorder
                .live()
                .connections(&filter, after, limit, now_s());
            let next_cursor = (rows.len() == limit)
                .then(|| rows.last().map(|r| r.id.to_string()))
                .flatten();
            Ok(ConnectionsPage {
                rows: rows.into_iter().map(ConnectionRow::from).collect(),
                total,
                next_cursor,
            })
        })
        .await
}

/// What a kick did.
#[derive(Debug, Serialize, ToSchema)]
pub struct Kicked {
    /// Connections asked to close (each closes gracefully: queued replies, then FIN).
    pub kicked: usize,
}

fn queue_full(e: &warppool_net::AdminQueueFull) -> ApiError {
    tracing::warn!(error = %e, "kick refused: a shard's admin queue is full");
    ApiError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "ADMIN_QUEUE_FULL",
        e.to_string(),
    )
}

fn audit_kick(
    s: &ApiState,
    p: &crate::auth::Principal,
    caller: &Caller,
    target: String,
    before: serde_json::Value,
    after: serde_json::Value,
) -> Result<(), ApiError> {
    let change = Change {
        action: "connection.kick".to_owned(),
        target: Some(target),
        before: Some(before),
        after: Some(after),
        outcome: Outcome::Ok,
    };
    Ok(s.auth()?.record(Some(p), change, caller.info(now_s()))?)
}

/// Closes one connection (graceful: its queued replies, then FIN).
#[utoipa::path(post, path = "/api/v1/admin/connections/{id}/kick", tag = "admin",
    params(("id" = String, Path, description = "The connection's id")),
    responses(
        (status = 200, description = "Asked to close", body = Kicked),
        (status = 404, description = "No such open connection", body = ErrorBody),
        (status = 503, description = "The shard's admin queue is full", body = ErrorBody)))]
pub async fn kick(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Encoded, ApiError> {
    let caller = Caller::of(peer, &headers);
    state
        .query(move |s| {
            let p = caller.principal(s, Scope::Admin, true)?;
            let not_found = || ApiError::not_found(format!("no open connection {id}"));
            let id_number: u64 = id.parse().map_err(|_| not_found())?;
            let c = s
                .recorder
                .live()
                .connection(id_number, now_s())
                .ok_or_else(not_found)?;
            s.plane()?.kick(id_number).map_err(|e| queue_full(&e))?;
            let ip = c.peer.ip().to_canonical().to_string();
            tracing::info!(actor = %p.actor(), connection = id_number, worker = %c.worker, %ip,
                "connection kicked");
            let before = json!({"worker": c.worker, "ip": ip, "port": c.peer.port()});
            let target = format!("connection:{id_number}");
            audit_kick(s, &p, &caller, target, before, json!({"state": "closing"}))?;
            Ok(Kicked { kicked: 1 })
        })
        .await
}

/// `POST /api/v1/admin/connections/kick-all`: which connections (none set: every one,
/// authorized or not).
#[derive(Debug, Default, Deserialize, ToSchema)]
pub struct KickAllRequest {
    /// Worker names containing this (case-insensitive).
    #[serde(default)]
    pub worker: Option<String>,
    /// Connections from this address.
    #[serde(default)]
    pub ip: Option<String>,
}

/// "Disconnect all": closes every connection, or those of a worker or an address.
#[utoipa::path(post, path = "/api/v1/admin/connections/kick-all", tag = "admin",
    request_body = KickAllRequest, responses(
        (status = 200, description = "Asked to close", body = Kicked),
        (status = 400, description = "Bad filter", body = ErrorBody),
        (status = 503, description = "A shard's admin queue is full", body = ErrorBody)))]
pub async fn kick_all(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    json: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<Encoded, ApiError> {
    let r: KickAllRequest = object_body(json)?;
    let filter = filter(r.worker, r.ip.as_deref())?;
    let caller = Caller::of(peer, &headers);
    state
        .query(move |s| {
            let p = caller.principal(s, Scope::Admin, true)?;
            let plane = s.plane()?;
            let live = s.recorder.live();
            let kicked = if filter.worker.is_none() && filter.ip.is_none() {
                let n = live.connection_count();
                plane.kick_all().map_err(|e| queue_full(&e))?;
                n
            } else {
                let ids = live.connection_ids(&filter);
                for id in &ids {
                    plane.kick(*id).map_err(|e| queue_full(&e))?;
                }
                ids.len()
            };
            let scope = json!({"worker": filter.worker, "ip": filter.ip.map(|i| i.to_string())});
            tracing::info!(actor = %p.actor(), kicked, %scope, "connections kicked");
            let after = json!({"kicked": kicked});
            audit_kick(s, &p, &caller, "connections".to_owned(), scope, after)?;
            Ok(Kicked { kicked })
        })
        .await
}
