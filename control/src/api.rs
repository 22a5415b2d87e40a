//! The HTTP API (axum on our own hyper connection loop, [`server`]): `/api/v1/…` as
//! `../shared/UI.md` §8.1 names it, documented by an OpenAPI 3.1 document generated from the
//! handlers ([`openapi`], served at `/api/v1/openapi.json` and committed as
//! `docs/api/openapi.json`).
//!
//! # Endpoints
//! - `GET /health`: `{"status":"ok"|"gated","reason"}` (load balancers, `perf/run`).
//! - `GET /api/v1/status`: version, network, uptime, template, gate, health.
//! - `GET /api/v1/pool`: hashrate (1m/10m/1h/1d, each with its 95 % interval), workers by
//!   status, shares by reason, best shares, blocks, expected time to block and odds.
//! - `GET /api/v1/workers`: columnar, filter (`q`, `status`, `model`, `address`), sort on every
//!   column, keyset paging (`limit`, `cursor`), `fields`, `group_by` counts.
//! - `GET /api/v1/pool/history?range=1h|24h|7d|30d|1y`: columnar hashrate (with its interval
//!   and shares), rejects and workers online per bucket, from the rollups
//!   ([`crate::storage::rollup`], decision 0016).
//! - `GET /api/v1/workers/sparklines?ids=…&range=24h|1h`: hourly (minute) hashrates of many
//!   workers from the live table.
//! - `GET /api/v1/workers/{id}`: one worker, with rejects explained.
//! - `GET /api/v1/workers/{id}/history?range=`: its hashrate, difficulty and rejects.
//! - `GET /api/v1/workers/{id}/events`, `/sessions`: its timeline (online/offline, blocks)
//!   and its connections, newest first, with a cursor.
//! - `GET /api/v1/addresses/{address}`: the workers and blocks of one payout address.
//! - `GET /api/v1/best-shares?scope=all|round|day`: the high scores.
//! - `GET /api/v1/blocks`: found blocks with their status and each node's answers.
//! - `GET /api/v1/network`: nodes (version, IBD, blocks, RPC latency), network hashrate, next
//!   retarget, the template, the pool's share.
//! - `GET /api/v1/connect`: Stratum endpoints (TLS fingerprint), the HTTPS listener (its
//!   fingerprint), username and password hints, per-firmware recipes.
//! - `GET /api/v1/connect/last-seen`: the last miner connection from the caller's IP.
//! - `GET /api/v1/events/recent`: the latest pool events.
//! - `GET /api/v1/events`: the live event stream (SSE, [`v1::stream`]).
//! - `GET /umbrel-api`: Umbrel's home-screen widget (hashrate, workers, blocks, best share).
//! - `GET /api/v1/openapi.json`: this API's OpenAPI document.
//! - Admin ([`v1::admin`]): `POST /api/v1/setup` (+ `/confirm`), `POST /api/v1/auth/login`,
//!   `/auth/totp`, `/auth/recovery`, `/auth/logout`, `/auth/step-up`, `GET /api/v1/auth/sessions`,
//!   `DELETE /api/v1/auth/sessions/{id}`, `POST /api/v1/auth/totp/enroll` and `/confirm`,
//!   `GET|POST /api/v1/admin/tokens`, `DELETE /api/v1/admin/tokens/{id}`,
//!   `GET /api/v1/admin/audit`, `GET|PUT /api/v1/admin/config` ([`crate::settings`]),
//!   `GET|PUT /api/v1/admin/nodes`, `POST /api/v1/admin/nodes/{id}/test` ([`v1::nodes`]),
//!   `GET /api/v1/admin/connections`,
//!   `POST /api/v1/admin/connections/{id}/kick`, `POST /api/v1/admin/connections/kick-all`,
//!   `GET|POST /api/v1/admin/bans`, `DELETE /api/v1/admin/bans/{id}`,
//!   `GET /api/v1/admin/diagnostics` ([`v1::diagnostics`]).
//!
//! - `GET /metrics`: Prometheus metrics ([`crate::metrics`]; loopback peers, or a token of the
//!   `metrics` scope).
//!
//! Every request's `Host` is checked first (421 otherwise: DNS rebinding).
//!
//! # Where the work runs
//! Every handler's work (live-table reads, SQLite queries, JSON encoding) runs on the API's own
//! query threads ([`QueryPool`]: `SCHED_IDLE`, nice `API_QUERY_NICE`); a full queue answers 503
//! `BUSY` at once. The server thread only moves bytes. Each query thread keeps one SQLite
//! reader open.

mod error;
pub mod openapi;
pub mod page_cache;
mod queries;
pub mod server;
pub mod tls;
pub mod v1;
pub mod viewer;

use std::{cell::RefCell, sync::Arc, time::Instant};

use axum::{
    Router,
    extract::DefaultBodyLimit,
    http::{HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
    routing::get,
};
use serde::Serialize;
use tokio::sync::watch;

pub use self::error::{ApiError, ErrorBody, ErrorDetail};
pub use self::queries::{QueriesBusy, QueryPool};
pub use self::server::{HttpServer, Listeners, Scheme};
pub use self::viewer::{UiPolicy, Viewer};
use crate::{stats::SqliteRecorder, storage::StorageReader, templates::TemplateStatus};

/// Largest request body accepted, in bytes (the API's writes are small JSON documents).
pub const HTTP_REQUEST_BODY_BYTES_MAX: usize = 64 * 1024;

/// What the pool tells the API about itself at start.
#[derive(Debug, Clone)]
pub struct PoolInfo {
    /// `CARGO_PKG_VERSION`.
    pub version: &'static str,
    /// The pool's network.
    pub network: bitcoin::Network,
    /// Unix seconds at start.
    pub started_at: i64,
    /// Started by `warppool demo`.
    pub demo: bool,
    /// The Stratum listeners.
    pub endpoints: Vec<v1::connect::Endpoint>,
    /// The lowest difficulty any port accepts.
    pub min_difficulty: f64,
    /// `[ui]`: who reads the public pages, who sees full addresses.
    pub ui: UiPolicy,
    /// The configuration without its secrets (the diagnostics bundle).
    pub config: v1::diagnostics::ConfigSummary,
}

/// What the handlers read.
#[derive(Debug, Clone)]
pub struct ApiState {
    /// Storage, counters and the live table.
    pub recorder: Arc<SqliteRecorder>,
    /// The template loop's status.
    pub status: watch::Receiver<TemplateStatus>,
    /// When the current template generation was first seen.
    pub template_seen: Arc<std::sync::Mutex<(u64, Instant)>>,
    /// Where handler work runs.
    pub queries: QueryPool,
    /// Facts fixed at start.
    pub info: Arc<PoolInfo>,
    /// When each health condition began.
    pub health: Arc<crate::health::Health>,
    /// What the nodes say (refreshed by the pool's network task).
    pub network: watch::Receiver<crate::network::NetworkView>,
    /// Admin authentication (`None` if it could not be opened: admin endpoints answer 503).
    pub auth: Option<Arc<crate::auth::Auth>>,
    /// The `Host` headers the API answers (DNS rebinding guard).
    pub allowed_hosts: Arc<crate::auth::AllowedHosts>,
    /// The Prometheus registry (`/metrics`).
    pub metrics: Arc<crate::metrics::Metrics>,
    /// The job set published last (the payout check).
    pub jobs: Arc<crate::payout::LastJobs>,
    /// The running configuration (`/api/v1/admin/config`; `None`: the endpoints answer 503).
    pub config: Option<Arc<crate::settings::LiveConfig>>,
    /// The HTTPS listener's certificate and port, when it runs (`/api/v1/connect`).
    pub https: Option<HttpsInfo>,
    /// The nodes for `/api/v1/admin/nodes` (`None`: those endpoints answer 503).
    pub nodes: Option<Arc<crate::node_admin::NodeAdmin>>,
    /// The data plane's operator commands: kicks and bans (`None`: the admin connection
    /// endpoints answer 503).
    pub plane: Option<warppool_net::PlaneAdmin>,
    /// `/api/v1/workers` answers shared within a second.
    pub pages: Arc<page_cache::PageCache>,
}

/// The HTTPS listener as the connect page shows it.
#[derive(Debug, Clone)]
pub struct HttpsInfo {
    /// Its bound port (set once it is bound).
    pub port: Arc<std::sync::atomic::AtomicU16>,
    /// Its certificate (the fingerprint changes on a reload).
    pub cert: Arc<tls::HttpsCert>,
}

thread_local! {
    /// The query thread's SQLite reader (opened on first use, kept).
    static READER: RefCell<Option<StorageReader>> = const { RefCell::new(None) };
}

impl ApiState {
    /// Admin authentication.
    ///
    /// # Errors
    /// 503 when it could not be opened at start (the log says why).
    pub fn auth(&self) -> Result<&crate::auth::Auth, ApiError> {
        self.auth.as_deref().ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "AUTH_UNAVAILABLE",
                "admin authentication is not available (see the log)",
            )
        })
    }

    /// The data plane's operator commands.
    ///
    /// # Errors
    /// 503 when the API runs without a data plane.
    pub fn plane(&self) -> Result<&warppool_net::PlaneAdmin, ApiError> {
        self.plane.as_ref().ok_or_else(|| {
            ApiError::new(
                StatusCode::SERVICE_UNAVAILABLE,
                "PLANE_UNAVAILABLE",
                "the data plane is not reachable from this API",
            )
        })
    }

    /// Runs `f` with this query thread's storage reader.
    ///
    /// # Errors
    /// The reader could not be opened, or `f`'s error.
    pub fn with_reader<T>(
        &self,
        f: impl FnOnce(&StorageReader) -> Result<T, ApiError>,
    ) -> Result<T, ApiError> {
        READER.with(|cell| {
            let mut cell = cell.borrow_mut();
            if cell.is_none() {
                *cell = Some(self.recorder.reader()?);
            }
            let reader = cell
                .as_ref()
                .ok_or_else(|| ApiError::internal("no reader"))?;
            f(reader)
        })
    }

    /// Runs `f` on a query thread and encodes its answer there.
    ///
    /// # Errors
    /// [`ApiError::busy`] when the queue is full; `f`'s error; 500 if it panicked.
    pub async fn query<T: Serialize + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Self) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<Encoded, ApiError> {
        self.run(move |state| f(state).and_then(|value| Encoded::json(&value)))
            .await
    }

    /// Runs `f` on a query thread and hands back its answer.
    ///
    /// # Errors
    /// [`ApiError::busy`] when the queue is full; `f`'s error; 500 if it panicked.
    pub async fn run<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Self) -> Result<T, ApiError> + Send + 'static,
    ) -> Result<T, ApiError> {
        let state = Arc::clone(self);
        let result = self
            .queries
            .run(move || std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&state))))
            .await;
        match result {
            Ok(Ok(answer)) => answer,
            Ok(Err(_)) => Err(ApiError::internal("the handler panicked")),
            Err(busy) => Err(ApiError::busy(busy.to_string())),
        }
    }
}

/// A JSON body encoded on a query thread.
#[derive(Debug)]
pub struct Encoded(axum::body::Bytes);

impl Encoded {
    /// Encodes `value`.
    ///
    /// # Errors
    /// 500 if it cannot be encoded.
    pub fn json(value: &impl Serialize) -> Result<Self, ApiError> {
        serde_json::to_vec(value)
            .map(|v| Self(v.into()))
            .map_err(|e| ApiError::internal(e.to_string()))
    }

    /// An encoded body as it is (a kept answer).
    #[must_use]
    pub const fn from_bytes(body: axum::body::Bytes) -> Self {
        Self(body)
    }

    /// The encoded bytes.
    #[must_use]
    pub fn into_bytes(self) -> axum::body::Bytes {
        self.0
    }
}

impl IntoResponse for Encoded {
    fn into_response(self) -> Response {
        (
            [(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )],
            self.0,
        )
            .into_response()
    }
}

/// The router of every endpoint (see the module docs).
pub fn router(state: Arc<ApiState>) -> Router {
    Router::new()
        .route("/health", get(v1::status::health))
        .merge(public_routes(&state))
        .route("/api/v1/openapi.json", get(openapi::serve))
        .merge(admin_routes())
        .route("/metrics", get(crate::metrics::scrape::metrics))
        .fallback(not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(HTTP_REQUEST_BODY_BYTES_MAX))
        .layer(axum::middleware::map_response(json_errors))
        .layer(axum::middleware::from_fn_with_state(
            Arc::clone(&state),
            host_guard,
        ))
        .with_state(state)
}

/// The read endpoints of the public pages (behind `ui.public`; see [`viewer`]).
fn public_routes(state: &Arc<ApiState>) -> Router<Arc<ApiState>> {
    Router::new()
        .route("/api/v1/status", get(v1::status::status))
        .route("/api/v1/pool", get(v1::pool::pool))
        .route("/api/v1/workers", get(v1::workers::list))
        .route("/api/v1/pool/history", get(v1::history::pool_history))
        .route("/api/v1/workers/sparklines", get(v1::history::sparklines))
        .route("/api/v1/workers/{id}", get(v1::workers::detail))
        .route(
            "/api/v1/workers/{id}/history",
            get(v1::history::worker_history),
        )
        .route(
            "/api/v1/workers/{id}/events",
            get(v1::worker_log::worker_events),
        )
        .route(
            "/api/v1/workers/{id}/sessions",
            get(v1::worker_log::worker_sessions),
        )
        .route("/api/v1/addresses/{address}", get(v1::workers::address))
        .route("/api/v1/blocks", get(v1::blocks::blocks))
        .route("/api/v1/best-shares", get(v1::best::best_shares))
        .route("/api/v1/network", get(v1::network::network))
        .route("/api/v1/connect", get(v1::connect::connect))
        .route("/api/v1/connect/last-seen", get(v1::connect::last_seen))
        .route("/api/v1/events/recent", get(v1::events::recent))
        .route("/api/v1/events", get(v1::stream::events))
        .route("/umbrel-api", get(v1::pool::umbrel))
        .route_layer(axum::middleware::from_fn_with_state(
            Arc::clone(state),
            viewer::viewer,
        ))
}

/// The peer of a request (unspecified when served without our connection loop, as in tests
/// that call the router directly).
fn peer_of(req: &axum::extract::Request) -> std::net::SocketAddr {
    req.extensions()
        .get::<axum::extract::ConnectInfo<std::net::SocketAddr>>()
        .map_or_else(|| ([0, 0, 0, 0], 0).into(), |c| c.0)
}

fn admin_routes() -> Router<Arc<ApiState>> {
    use axum::routing::{delete, post};
    use v1::admin as a;
    Router::new()
        .route("/api/v1/setup", post(a::setup))
        .route("/api/v1/setup/confirm", post(a::setup_confirm))
        .route("/api/v1/auth/login", post(a::login))
        .route("/api/v1/auth/totp", post(a::totp))
        .route("/api/v1/auth/recovery", post(a::recovery))
        .route("/api/v1/auth/logout", post(a::logout))
        .route("/api/v1/auth/step-up", post(a::step_up))
        .route("/api/v1/auth/sessions", get(a::sessions))
        .route("/api/v1/auth/sessions/{id}", delete(a::revoke_session))
        .route("/api/v1/auth/totp/enroll", post(a::totp_enroll))
        .route("/api/v1/auth/totp/confirm", post(a::totp_confirm))
        .route("/api/v1/admin/tokens", get(a::tokens).post(a::create_token))
        .route("/api/v1/admin/tokens/{id}", delete(a::revoke_token))
        .route("/api/v1/admin/audit", get(a::audit))
        .route(
            "/api/v1/admin/config",
            get(a::config::config_get).put(a::config::config_put),
        )
        .route(
            "/api/v1/admin/nodes",
            get(v1::nodes::list).put(v1::nodes::replace),
        )
        .route("/api/v1/admin/nodes/{id}/test", post(v1::nodes::test))
        .route("/api/v1/admin/connections", get(a::connections))
        .route("/api/v1/admin/connections/{id}/kick", post(a::kick))
        .route("/api/v1/admin/connections/kick-all", post(a::kick_all))
        .route("/api/v1/admin/bans", get(a::bans).post(a::create_ban))
        .route("/api/v1/admin/bans/{id}", delete(a::delete_ban))
        .route(
            "/api/v1/admin/diagnostics",
            get(v1::diagnostics::diagnostics),
        )
}

/// Bytes of a plain-text refusal kept as the JSON error's message.
const REFUSAL_TEXT_BYTES_MAX: usize = 1024;

/// Turns the plain-text refusals of axum's extractors (a query, path or body that does not
/// parse) into the API's JSON error, so every 4xx has one shape.
async fn json_errors(response: Response) -> Response {
    let status = response.status();
    let json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|c| c.starts_with("application/json"));
    if !status.is_client_error() || json {
        return response;
    }
    let (parts, body) = response.into_parts();
    let text = axum::body::to_bytes(body, REFUSAL_TEXT_BYTES_MAX)
        .await
        .unwrap_or_default();
    let text = String::from_utf8_lossy(&text).trim().to_owned();
    let code = match status {
        StatusCode::NOT_FOUND => "NOT_FOUND",
        StatusCode::METHOD_NOT_ALLOWED => "METHOD_NOT_ALLOWED",
        StatusCode::PAYLOAD_TOO_LARGE => "PAYLOAD_TOO_LARGE",
        StatusCode::UNSUPPORTED_MEDIA_TYPE => "UNSUPPORTED_MEDIA_TYPE",
        _ => "BAD_REQUEST",
    };
    let message = if text.is_empty() {
        status.canonical_reason().unwrap_or("refused").to_owned()
    } else {
        text
    };
    let mut out = ApiError::new(status, code, message).into_response();
    for name in [header::WWW_AUTHENTICATE, header::RETRY_AFTER, header::ALLOW] {
        if let Some(v) = parts.headers.get(&name) {
            out.headers_mut().insert(name, v.clone());
        }
    }
    out
}

/// Refuses a request whose `Host` the API does not answer to (421, DNS rebinding).
async fn host_guard(
    axum::extract::State(state): axum::extract::State<Arc<ApiState>>,
    request: axum::extract::Request,
    next: axum::middleware::Next,
) -> Response {
    let host = request
        .headers()
        .get(header::HOST)
        .and_then(|h| h.to_str().ok());
    if let Err(e) = crate::auth::check_host(host, &state.allowed_hosts) {
        return ApiError::from(e).into_response();
    }
    next.run(request).await
}

async fn not_found() -> ApiError {
    ApiError::not_found("no such endpoint (see /api/v1/openapi.json)")
}

async fn method_not_allowed() -> ApiError {
    ApiError::new(
        StatusCode::METHOD_NOT_ALLOWED,
        "METHOD_NOT_ALLOWED",
        "this endpoint does not take that method",
    )
}

/// Unix seconds now.
#[must_use]
pub fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}
