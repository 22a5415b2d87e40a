//! The minimal HTTP API (hyper 1, HTTP/1.1 only, plain TCP: meant for 127.0.0.1 or a reverse
//! proxy).
//!
//! # Endpoints
//! - `GET /health`: 200 `{"status":"ok"|"gated","reason":...}`.
//! - `GET /api/v1/status`: network, height, template age, gate, miners, share counters, blocks,
//!   pool hashrate (1m/5m/1h, from storage).
//! - `GET /api/v1/blocks`: the latest blocks (from storage), each with its exact finder:
//!   `worker` (`address.worker`), `payout_address`, `extranonce1` and `user_agent` of the
//!   connection whose share it was (`null` for blocks recorded before the finder was kept).
//! - `GET /api/v1/workers`: name, last seen, hashrate 5m, best share.
//!
//! # Bounds
//! At most [`HTTP_CONNECTIONS_MAX`] connections at once (more wait in the kernel backlog);
//! request heads at most [`HTTP_REQUEST_HEAD_BYTES_MAX`]; a request with a body is refused
//! (413); each connection lives at most [`HTTP_CONNECTION_SECS_MAX`]. Storage queries run on
//! the API's own niced query threads ([`QueryPool`]), never where the block path or the
//! runtime's workers would wait behind them; a full query queue answers 503.

use std::{
    convert::Infallible,
    net::SocketAddr,
    sync::Arc,
    time::{Duration, Instant},
};

use bytes::Bytes;
use http_body_util::Full;
use hyper::{Method, Request, Response, StatusCode, body::Incoming, service::service_fn};
use hyper_util::rt::{TokioIo, TokioTimer};
use serde::Serialize;
use tokio::{
    net::TcpListener,
    sync::{Semaphore, watch},
};
use warppool_core::limits::API_QUERY_NICE;

mod queries;

pub use self::queries::{QueriesBusy, QueryPool};
use crate::{stats::SqliteRecorder, storage::HashrateWindow, templates::TemplateStatus};

/// Most HTTP connections served at once.
pub const HTTP_CONNECTIONS_MAX: usize = 64;
/// Largest request head (request line and headers), in bytes.
pub const HTTP_REQUEST_HEAD_BYTES_MAX: usize = 16 * 1024;
/// Longest life of one HTTP connection, in seconds.
pub const HTTP_CONNECTION_SECS_MAX: u64 = 30;
/// Most blocks `/api/v1/blocks` returns.
pub const HTTP_BLOCKS_MAX: usize = 100;

/// What the handlers read.
#[derive(Debug, Clone)]
pub struct ApiState {
    /// Storage and counters.
    pub recorder: Arc<SqliteRecorder>,
    /// The template loop's status.
    pub status: watch::Receiver<TemplateStatus>,
    /// The pool's network.
    pub network: bitcoin::Network,
    /// When the current template generation was first seen.
    pub template_seen: Arc<std::sync::Mutex<(u64, Instant)>>,
    /// Where storage queries run.
    pub queries: QueryPool,
}

/// A running HTTP server: its own thread (`warppool-http`) with a current-thread runtime, at
/// the API's lower CPU priority (`API_QUERY_NICE`), so parsing requests and writing responses
/// never competes at equal priority with the data plane, the block path or the template loop.
#[derive(Debug)]
pub struct HttpServer {
    addr: SocketAddr,
    stop: watch::Sender<bool>,
    done: flume::Receiver<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HttpServer {
    /// Binds `addr` and serves until [`HttpServer::shutdown`].
    ///
    /// # Errors
    /// If the address cannot be bound.
    pub async fn start(addr: SocketAddr, state: ApiState) -> std::io::Result<Self> {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (stop, stop_rx) = watch::channel(false);
        let (done_tx, done) = flume::bounded(1);
        let thread = std::thread::Builder::new()
            .name("warppool-http".to_owned())
            .spawn(move || {
                queries::lower_priority(API_QUERY_NICE);
                runtime.block_on(async move {
                    match TcpListener::from_std(listener) {
                        Ok(listener) => serve(listener, state, stop_rx).await,
                        Err(e) => tracing::error!(error = %e, "http listener lost"),
                    }
                });
                let _ = done_tx.send(());
            })?;
        Ok(Self {
            addr,
            stop,
            done,
            thread: Some(thread),
        })
    }

    /// The bound address.
    #[must_use]
    pub const fn local_addr(&self) -> SocketAddr {
        self.addr
    }

    /// Stops accepting and waits for the server's thread (open connections are closed).
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        let _ = self.done.recv_async().await;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve(listener: TcpListener, state: ApiState, mut stop: watch::Receiver<bool>) {
    let permits = Arc::new(Semaphore::new(HTTP_CONNECTIONS_MAX));
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&permits).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = stop.changed() => return,
        };
        let (stream, _) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "http accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let state = state.clone();
        tokio::spawn(async move {
            let _permit = permit;
            let service = service_fn(move |req| handle(req, state.clone()));
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(5))
                .max_buf_size(HTTP_REQUEST_HEAD_BYTES_MAX)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(Duration::from_secs(HTTP_CONNECTION_SECS_MAX), conn).await;
        });
    }
}

fn json_response(status: StatusCode, value: &impl Serialize) -> Response<Full<Bytes>> {
    let body = serde_json::to_vec(value).unwrap_or_else(|_| b"{}".to_vec());
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("application/json"),
    );
    response
}

fn error(status: StatusCode, message: &str) -> Response<Full<Bytes>> {
    json_response(status, &serde_json::json!({ "error": message }))
}

async fn handle(
    req: Request<Incoming>,
    state: ApiState,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if req.method() != Method::GET {
        return Ok(error(StatusCode::METHOD_NOT_ALLOWED, "GET only"));
    }
    let has_body = req
        .headers()
        .get(hyper::header::CONTENT_LENGTH)
        .is_some_and(|v| v.as_bytes() != b"0")
        || req.headers().contains_key(hyper::header::TRANSFER_ENCODING);
    if has_body {
        return Ok(error(
            StatusCode::PAYLOAD_TOO_LARGE,
            "no request body allowed",
        ));
    }
    let path = req.uri().path().to_owned();
    let response = match path.as_str() {
        "/health" => {
            let gate = state.status.borrow().gate.clone();
            let status = if gate.is_some() { "gated" } else { "ok" };
            json_response(
                StatusCode::OK,
                &serde_json::json!({ "status": status, "reason": gate }),
            )
        }
        "/api/v1/status" => blocking(state, status_json).await,
        "/api/v1/blocks" => blocking(state, blocks_json).await,
        "/api/v1/workers" => blocking(state, workers_json).await,
        _ => error(StatusCode::NOT_FOUND, "not found"),
    };
    Ok(response)
}

type Handler = fn(&ApiState) -> Result<serde_json::Value, crate::storage::StorageError>;

async fn blocking(state: ApiState, f: Handler) -> Response<Full<Bytes>> {
    let queries = state.queries.clone();
    // The query and its JSON encoding both run on the query thread: the runtime's workers
    // only move bytes.
    let result = queries
        .run(move || {
            std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| match f(&state) {
                Ok(value) => json_response(StatusCode::OK, &value),
                Err(e) => error(StatusCode::SERVICE_UNAVAILABLE, &e.to_string()),
            }))
        })
        .await;
    match result {
        Ok(Ok(response)) => response,
        Ok(Err(_)) => error(StatusCode::INTERNAL_SERVER_ERROR, "handler panicked"),
        Err(busy) => error(StatusCode::SERVICE_UNAVAILABLE, &busy.to_string()),
    }
}

fn now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

fn status_json(state: &ApiState) -> Result<serde_json::Value, crate::storage::StorageError> {
    let status = state.status.borrow().clone();
    let template_age_s = {
        let mut seen = state
            .template_seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.0 != status.generation {
            *seen = (status.generation, Instant::now());
        }
        status.height.map(|_| seen.1.elapsed().as_secs())
    };
    let counters = state.recorder.counters();
    let reader = state.recorder.reader()?;
    let now = now_s();
    let rate = |w| reader.hashrate(None, w, now);
    Ok(serde_json::json!({
        "network": state.network.to_string(),
        "height": status.height,
        "template_generation": status.generation,
        "template_age_s": template_age_s,
        "gate": status.gate,
        "miners_authorized": counters.authorized,
        "shares_accepted": counters.shares_accepted,
        "shares_rejected": counters.shares_rejected,
        "block_shares": counters.block_shares,
        "block_events": counters.block_events,
        "blocks_found": reader.blocks(HTTP_BLOCKS_MAX)?.len(),
        "hashrate_hps": {
            "1m": rate(HashrateWindow::OneMinute)?,
            "5m": rate(HashrateWindow::FiveMinutes)?,
            "1h": rate(HashrateWindow::OneHour)?,
        },
    }))
}

fn blocks_json(state: &ApiState) -> Result<serde_json::Value, crate::storage::StorageError> {
    let reader = state.recorder.reader()?;
    let blocks: Vec<_> = reader
        .blocks(HTTP_BLOCKS_MAX)?
        .into_iter()
        .map(|b| {
            serde_json::json!({
                "height": b.height,
                "hash": b.hash,
                "worker": b.worker,
                "payout_address": b.payout_address,
                "extranonce1": b.extranonce1,
                "user_agent": b.user_agent,
                "status": b.status.as_str(),
                "found_unix_s": b.found_unix_s,
                "updated_unix_s": b.updated_unix_s,
            })
        })
        .collect();
    Ok(serde_json::json!({ "blocks": blocks }))
}

fn workers_json(state: &ApiState) -> Result<serde_json::Value, crate::storage::StorageError> {
    let reader = state.recorder.reader()?;
    let now = now_s();
    let mut workers = Vec::new();
    for name in state.recorder.workers() {
        let row = reader.worker(&name)?;
        let best = reader.best_share(&name)?;
        workers.push(serde_json::json!({
            "name": name,
            "user_agent": row.as_ref().and_then(|r| r.user_agent.clone()),
            "last_seen_unix_s": row.as_ref().map(|r| r.last_seen_unix_s),
            "hashrate_5m_hps": reader.hashrate(Some(&name), HashrateWindow::FiveMinutes, now)?,
            "best_share": best.map(|b| b.all_time),
        }));
    }
    Ok(serde_json::json!({ "workers": workers }))
}
