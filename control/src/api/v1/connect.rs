//! `GET /api/v1/connect`: how to point a miner at this pool.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::{extract::State, http::HeaderMap};
use serde::Serialize;
use utoipa::ToSchema;

use crate::api::{ApiError, ApiState, Encoded, ErrorBody};

/// One listener, as configured: a Stratum port, or the API/UI's HTTPS listener.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Endpoint {
    /// `stratum+tcp`, `stratum+ssl`, or `https` (the API and UI; compare its fingerprint with
    /// the browser's on first visit).
    pub proto: &'static str,
    /// The host miners use: the configured address, or, for a wildcard listener, the host this
    /// page was reached at.
    pub host: String,
    /// The port.
    pub port: u16,
    /// SHA-256 of the TLS certificate (DER), colon-separated hex, for TLS ports.
    pub tls_fingerprint_sha256: Option<String>,
    /// The URL to paste (`stratum+tcp://host:port`, `https://host:port`).
    pub url: String,
}

impl Endpoint {
    /// A listener at `addr`, TLS with the certificate fingerprint `fingerprint` if any.
    #[must_use]
    pub fn new(addr: std::net::SocketAddr, fingerprint: Option<String>) -> Self {
        let proto = if fingerprint.is_some() {
            "stratum+ssl"
        } else {
            "stratum+tcp"
        };
        let host = if addr.ip().is_unspecified() {
            String::new()
        } else {
            addr.ip().to_string()
        };
        Self {
            proto,
            url: String::new(),
            host,
            port: addr.port(),
            tls_fingerprint_sha256: fingerprint,
        }
    }
}

/// What to type into one firmware's settings.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Recipe {
    /// The firmware (`AxeOS (Bitaxe, NerdAxe)`, `NerdMiner`, …).
    pub firmware: &'static str,
    /// Its field names and what goes in them.
    pub fields: BTreeMap<&'static str, String>,
}

/// `GET /api/v1/connect`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct ConnectResponse {
    /// The Stratum endpoints, then the API/UI's HTTPS listener if it runs.
    pub endpoints: Vec<Endpoint>,
    /// The username format.
    pub username_hint: &'static str,
    /// What the password field may carry.
    pub password_hint: &'static str,
    /// The lowest difficulty any port accepts.
    pub min_difficulty: f64,
    /// Per-firmware settings, for the first plain endpoint.
    pub recipes: Vec<Recipe>,
}

/// The SHA-256 fingerprint of the first certificate in a PEM file, colon-separated upper-case
/// hex (as browsers and `openssl x509 -fingerprint -sha256` show it).
///
/// # Errors
/// The file cannot be read or holds no certificate.
pub fn fingerprint(pem: &std::path::Path) -> std::io::Result<String> {
    use rustls_pki_types::{CertificateDer, pem::PemObject};
    let cert = CertificateDer::pem_file_iter(pem)
        .map_err(std::io::Error::other)?
        .next()
        .ok_or_else(|| std::io::Error::other("no certificate in the file"))?
        .map_err(std::io::Error::other)?;
    Ok(crate::api::tls::sha256_colon_hex(&cert))
}

fn request_host(headers: &HeaderMap) -> String {
    let host = headers
        .get(axum::http::header::HOST)
        .and_then(|h| h.to_str().ok())
        .unwrap_or("127.0.0.1");
    // `[::1]:8080` → `[::1]`; `pool.lan:8080` → `pool.lan`.
    match host.rsplit_once(':') {
        Some((h, port)) if port.bytes().all(|b| b.is_ascii_digit()) && !h.ends_with(':') => {
            h.to_owned()
        }
        _ => host.to_owned(),
    }
}

fn recipes(plain: Option<&Endpoint>) -> Vec<Recipe> {
    let Some(e) = plain else {
        return Vec::new();
    };
    let user = "<your bitcoin address>.<worker name>".to_owned();
    let f = |pairs: &[(&'static str, String)]| pairs.iter().cloned().collect();
    vec![
        Recipe {
            firmware: "AxeOS (Bitaxe, NerdAxe, NerdQAxe)",
            fields: f(&[
                ("Stratum URL", e.host.clone()),
                ("Stratum Port", e.port.to_string()),
                ("Stratum User", user.clone()),
                ("Stratum Password", "x".to_owned()),
            ]),
        },
        Recipe {
            firmware: "NerdMiner",
            fields: f(&[
                ("Pool", e.host.clone()),
                ("Port", e.port.to_string()),
                ("Your BTC address", user.clone()),
            ]),
        },
        Recipe {
            firmware: "Antminer, Whatsminer, Avalon, Braiins OS",
            fields: f(&[
                ("URL", e.url.clone()),
                ("Worker", user.clone()),
                ("Password", "x".to_owned()),
            ]),
        },
        Recipe {
            firmware: "cpuminer",
            fields: f(&[(
                "Command",
                format!("minerd -a sha256d -o {} -u {user} -p x", e.url),
            )]),
        },
    ]
}

/// How to connect a miner.
#[utoipa::path(get, path = "/api/v1/connect", tag = "connect", responses(
    (status = 200, description = "Endpoints and recipes", body = ConnectResponse),
    (status = 503, description = "Busy", body = ErrorBody)))]
pub async fn connect(
    State(state): State<Arc<ApiState>>,
    headers: HeaderMap,
) -> Result<Encoded, ApiError> {
    let host = request_host(&headers);
    let mut endpoints = state.info.endpoints.clone();
    if let Some(https) = &state.https {
        endpoints.push(Endpoint {
            proto: "https",
            host: String::new(),
            port: https.port.load(std::sync::atomic::Ordering::Relaxed),
            tls_fingerprint_sha256: Some(https.cert.fingerprint()),
            url: String::new(),
        });
    }
    for e in &mut endpoints {
        if e.host.is_empty() {
            e.host.clone_from(&host);
        }
        e.url = format!("{}://{}:{}", e.proto, e.host, e.port);
    }
    let plain = endpoints.iter().find(|e| e.proto == "stratum+tcp");
    let answer = ConnectResponse {
        recipes: recipes(plain),
        endpoints: endpoints.clone(),
        username_hint: "<bitcoin address>[.<worker name>]: the block reward goes to the address",
        password_hint: "anything (x); d=<difficulty> fixes the start difficulty",
        min_difficulty: state.info.min_difficulty,
    };
    Encoded::json(&answer)
}

/// `GET /api/v1/connect/last-seen`: the last miner connection from the caller's IP.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LastSeen {
    /// The caller's IP, as the API sees it (a miner on the same LAN shows the same one).
    pub ip: String,
    /// `connected` (that connection is open), `closed` (it was, and closed: see
    /// `close_reason`) or `none` (no miner authorized from this IP within the sessions'
    /// retention).
    pub result: &'static str,
    /// Its subscribe user agent.
    pub user_agent: Option<String>,
    /// The worker it authorized as (address masked for all but admins).
    pub worker: Option<String>,
    /// The worker's id.
    pub worker_id: Option<String>,
    /// When it authorized, Unix seconds.
    pub at: Option<i64>,
    /// The Stratum port it connected to.
    pub port: Option<u16>,
    /// Whether it was TLS.
    pub tls: Option<bool>,
    /// Why it closed, for `closed` (see the worker sessions' `end_reason`).
    pub close_reason: Option<String>,
}

/// "Test my connection": the last miner handshake seen from the caller's IP.
#[utoipa::path(get, path = "/api/v1/connect/last-seen", tag = "connect", responses(
    (status = 200, description = "The last connection from this IP, if any", body = LastSeen),
    (status = 503, description = "Busy or storage unreadable", body = ErrorBody)))]
pub async fn last_seen(
    State(state): State<Arc<ApiState>>,
    axum::extract::Extension(viewer): axum::extract::Extension<crate::api::Viewer>,
    axum::extract::ConnectInfo(peer): axum::extract::ConnectInfo<std::net::SocketAddr>,
) -> Result<Encoded, ApiError> {
    let ip = peer.ip().to_canonical().to_string();
    state
        .query(move |s| {
            let row = s.with_reader(|r| Ok(r.last_session_from(&ip)?))?;
            Ok(match row {
                None => LastSeen {
                    ip,
                    result: "none",
                    user_agent: None,
                    worker: None,
                    worker_id: None,
                    at: None,
                    port: None,
                    tls: None,
                    close_reason: None,
                },
                Some(r) => LastSeen {
                    ip,
                    result: if r.ended_unix_s.is_some() {
                        "closed"
                    } else {
                        "connected"
                    },
                    user_agent: r.user_agent,
                    worker: Some(viewer.name(&r.worker)),
                    worker_id: Some(super::worker_id(&r.worker)),
                    at: Some(r.started_unix_s),
                    port: Some(r.local_port),
                    tls: Some(r.tls),
                    close_reason: r.end_reason,
                },
            })
        })
        .await
}
