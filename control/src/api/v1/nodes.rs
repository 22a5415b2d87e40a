//! `GET|PUT /api/v1/admin/nodes` and `POST /api/v1/admin/nodes/{id}/test`: the bitcoind nodes
//! for admins ([`crate::node_admin`]). An admin session (CSRF on the unsafe methods) or an
//! `admin` token; the PUT and every test leave an audit row. Passwords never leave: a node
//! shows `password: "set"`.

use std::net::SocketAddr;
use std::sync::Arc;

use axum::{
    Json,
    extract::{ConnectInfo, Path, State, rejection::JsonRejection},
    http::{HeaderMap, StatusCode},
};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use super::admin::{Caller, blocking, body};
use crate::{
    api::{ApiError, ApiState, Encoded, ErrorBody, now_s},
    auth::{Change, Outcome, Scope},
    config::{NodeConfig, NodeEntry, RpcAuth},
    node_admin::{NodeAdmin, SaveError},
};

/// What the pool last saw of a node (the network view and the ZMQ subscription).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NodeLive {
    /// The node answered its last `getblockchaininfo`.
    pub reachable: bool,
    /// `ok`, `syncing`, `unreachable`, or `unknown` (not refreshed yet, or not running).
    pub status: String,
    /// The latency of that call, milliseconds.
    pub rpc_latency_ms: Option<f64>,
    /// `subscribed`, `not_subscribed`, or `not_configured`.
    pub zmq: &'static str,
    /// `hashblock` notifications received since start.
    pub zmq_hashblocks: u64,
}

/// One node, in priority (failover) order.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NodeRow {
    /// Its id: the node's name.
    pub id: String,
    /// 0 is tried first.
    pub priority: usize,
    /// `http://host:port`.
    pub rpc_url: String,
    /// `user_password` or `cookie`.
    pub auth: &'static str,
    /// The RPC user (`user_password`).
    pub rpc_user: Option<String>,
    /// `set` when a password is stored; never the password.
    pub password: Option<&'static str>,
    /// The cookie file (`cookie`).
    pub rpc_cookie: Option<String>,
    /// `tcp://host:port`, if any.
    pub zmq_hashblock: Option<String>,
    /// Per-request timeout, milliseconds.
    pub rpc_timeout_ms: u64,
    /// Live state (the running pool's view).
    pub live: NodeLive,
}

/// `GET /api/v1/admin/nodes`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NodesView {
    /// The nodes the next start uses (the running ones unless a list was saved since).
    pub nodes: Vec<NodeRow>,
    /// A list was saved since start: the pool runs the old one until restarted.
    pub restart_required: bool,
}

/// One node of `PUT /api/v1/admin/nodes`, as a `[[node]]` table.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NodeInput {
    /// Its id (name), unique.
    pub id: String,
    /// `http://host:port`.
    pub rpc_url: String,
    /// With a password: omitted keeps the stored one of this id.
    pub rpc_user: Option<String>,
    /// A new password (stored in the secrets file, never shown).
    pub rpc_password: Option<String>,
    /// Or the node's cookie file.
    pub rpc_cookie: Option<String>,
    /// `tcp://host:port`.
    pub zmq_hashblock: Option<String>,
    /// Per-request timeout, milliseconds.
    pub rpc_timeout_ms: Option<u64>,
}

/// `PUT /api/v1/admin/nodes`: the whole list, in priority order.
#[derive(Debug, Clone, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NodesPut {
    /// Every node, first tried first.
    pub nodes: Vec<NodeInput>,
}

/// One step of a node test.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct TestStep {
    /// `rpc` (reachable, auth, chain), `network` (version), `getblocktemplate` (the pool's
    /// rules), `zmq` (connect).
    pub step: &'static str,
    /// Passed.
    pub ok: bool,
    /// How long it took, milliseconds.
    pub latency_ms: f64,
    /// What was seen, or why it failed.
    pub detail: String,
}

/// `POST /api/v1/admin/nodes/{id}/test`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NodeTest {
    /// The node.
    pub id: String,
    /// Every step passed.
    pub ok: bool,
    /// The steps, in order.
    pub steps: Vec<TestStep>,
}

fn admin(state: &ApiState) -> Result<&NodeAdmin, ApiError> {
    state.nodes.as_deref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "NODES_UNAVAILABLE",
            "node management is not available",
        )
    })
}

fn row(state: &ApiState, admin: &NodeAdmin, priority: usize, n: &NodeConfig) -> NodeRow {
    let view = state.network.borrow();
    let seen = view.nodes.iter().find(|v| v.name == n.name);
    let zmq = n.zmq_hashblock.as_deref().map(|e| admin.zmq_state(e));
    let (zmq_state, hashblocks) = match zmq {
        None => ("not_configured", 0),
        Some(Some((true, h))) => ("subscribed", h),
        Some(Some((false, h))) => ("not_subscribed", h),
        Some(None) => ("not_subscribed", 0),
    };
    let (auth, rpc_user, password, rpc_cookie) = match &n.auth {
        RpcAuth::UserPassword { user, .. } => {
            ("user_password", Some(user.clone()), Some("set"), None)
        }
        RpcAuth::Cookie(p) => ("cookie", None, None, Some(p.display().to_string())),
    };
    NodeRow {
        id: n.name.clone(),
        priority,
        rpc_url: n.rpc_url.clone(),
        auth,
        rpc_user,
        password,
        rpc_cookie,
        zmq_hashblock: n.zmq_hashblock.clone(),
        rpc_timeout_ms: u64::try_from(n.rpc_timeout.as_millis()).unwrap_or(u64::MAX),
        live: NodeLive {
            reachable: seen.is_some_and(|v| v.status != "unreachable" && !v.status.is_empty()),
            status: seen
                .map(|v| v.status)
                .filter(|s| !s.is_empty())
                .unwrap_or("unknown")
                .to_owned(),
            rpc_latency_ms: seen.and_then(|v| v.rpc_latency_ms),
            zmq: zmq_state,
            zmq_hashblocks: hashblocks,
        },
    }
}

fn view(state: &ApiState, admin: &NodeAdmin) -> NodesView {
    NodesView {
        nodes: admin
            .current()
            .iter()
            .enumerate()
            .map(|(i, n)| row(state, admin, i, n))
            .collect(),
        restart_required: admin.restart_required(),
    }
}

/// What the audit log keeps of a node list (no secrets).
fn audited(state: &ApiState, admin: &NodeAdmin) -> serde_json::Value {
    let rows = view(state, admin).nodes;
    serde_json::json!(rows.iter().map(|r| serde_json::json!({
        "id": r.id, "rpc_url": r.rpc_url, "auth": r.auth, "rpc_user": r.rpc_user,
        "password": r.password, "rpc_cookie": r.rpc_cookie, "zmq_hashblock": r.zmq_hashblock,
        "rpc_timeout_ms": r.rpc_timeout_ms,
    })).collect::<Vec<_>>())
}

/// The nodes, their settings (never a password) and live state.
#[utoipa::path(get, path = "/api/v1/admin/nodes", tag = "admin", responses(
    (status = 200, description = "The nodes in priority order", body = NodesView),
    (status = 401, description = "Not signed in", body = ErrorBody),
    (status = 403, description = "Not an admin", body = ErrorBody)))]
pub async fn list(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Encoded, ApiError> {
    let caller = Caller::of(peer, &headers);
    state
        .query(move |s| {
            caller.principal(s, Scope::Admin, false)?;
            Ok(view(s, admin(s)?))
        })
        .await
}

fn entry(n: NodeInput) -> NodeEntry {
    NodeEntry {
        name: n.id,
        rpc_url: n.rpc_url,
        rpc_user: n.rpc_user,
        rpc_password: n.rpc_password,
        rpc_cookie: n.rpc_cookie.map(Into::into),
        zmq_hashblock: n.zmq_hashblock,
        rpc_timeout_ms: n.rpc_timeout_ms,
    }
}

/// Replaces the node list (validated like `[[node]]`; saved for the next start).
#[utoipa::path(put, path = "/api/v1/admin/nodes", tag = "admin", request_body = NodesPut,
    responses(
        (status = 200, description = "Saved; restart_required until the pool restarts",
            body = NodesView),
        (status = 400, description = "Refused by the validation; nothing changed",
            body = ErrorBody),
        (status = 403, description = "Not an admin, or no CSRF header", body = ErrorBody)))]
pub async fn replace(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    json: Result<Json<NodesPut>, JsonRejection>,
) -> Result<Encoded, ApiError> {
    let put = body(json)?;
    let caller = Caller::of(peer, &headers);
    state
        .query(move |s| {
            let p = caller.principal(s, Scope::Admin, true)?;
            let admin = admin(s)?;
            let before = audited(s, admin);
            let saved = admin.save(put.nodes.into_iter().map(entry).collect());
            let (outcome, after) = match &saved {
                Ok(_) => (Outcome::Ok, audited(s, admin)),
                Err(e) => (
                    Outcome::Denied,
                    serde_json::json!({"refused": e.to_string()}),
                ),
            };
            let change = Change {
                action: "node.update".to_owned(),
                target: Some("nodes".to_owned()),
                before: Some(before),
                after: Some(after),
                outcome,
            };
            s.auth()?.record(Some(&p), change, caller.info(now_s()))?;
            match saved {
                Ok(_) => Ok(view(s, admin)),
                Err(SaveError::Invalid(m)) => {
                    tracing::info!(problem = %m, "node list refused");
                    Err(ApiError::new(StatusCode::BAD_REQUEST, "INVALID_NODES", m))
                }
                Err(SaveError::Storage(m)) => Err(ApiError::internal(m)),
            }
        })
        .await
}

/// Tests one node now: RPC and auth, version, `getblocktemplate` with the pool's rules, ZMQ.
#[utoipa::path(post, path = "/api/v1/admin/nodes/{id}/test", tag = "admin",
    params(("id" = String, Path, description = "The node's id (name)")),
    responses(
        (status = 200, description = "Each step's outcome (a failing node is a 200 too)",
            body = NodeTest),
        (status = 404, description = "No such node", body = ErrorBody),
        (status = 403, description = "Not an admin, or no CSRF header", body = ErrorBody)))]
pub async fn test(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    Path(id): Path<String>,
) -> Result<Encoded, ApiError> {
    let caller = Caller::of(peer, &headers);
    let check = caller.clone();
    let wanted = id.clone();
    let (principal, node) = blocking(&state, move |s| {
        let p = check.principal(s, Scope::Admin, true)?;
        let node = admin(s)?.current().into_iter().find(|n| n.name == wanted);
        Ok((p, node))
    })
    .await?;
    let Some(node) = node else {
        return Err(ApiError::not_found(format!("no node {id:?}")));
    };
    let steps: Vec<TestStep> = crate::node_admin::test_node(&node)
        .await
        .into_iter()
        .map(|o| TestStep {
            step: o.step,
            ok: o.ok,
            latency_ms: o.latency_ms,
            detail: o.detail,
        })
        .collect();
    let answer = NodeTest {
        ok: steps.iter().all(|s| s.ok),
        id,
        steps,
    };
    state
        .query(move |s| {
            let change = Change {
                action: "node.test".to_owned(),
                target: Some(format!("node:{}", answer.id)),
                before: None,
                after: Some(serde_json::json!({
                    "ok": answer.ok,
                    "failed": answer.steps.iter().filter(|s| !s.ok).map(|s| s.step)
                        .collect::<Vec<_>>(),
                })),
                outcome: Outcome::Ok,
            };
            s.auth()?
                .record(Some(&principal), change, caller.info(now_s()))?;
            Ok(answer)
        })
        .await
}
