//! The HTTP API's start: its listeners (plain and HTTPS), its state and its server.

use std::{net::SocketAddr, sync::Arc};

use anyhow::Context;
use tokio::sync::watch;

use super::Pool;
use crate::{
    api::{ApiState, HttpServer},
    config::{Config, NodeConfig},
    stats::SqliteRecorder,
};

/// Where the API listens.
pub(super) struct HttpSettings {
    pub(super) plain: Option<SocketAddr>,
    pub(super) https: Option<crate::config::HttpsSettings>,
    pub(super) database: std::path::PathBuf,
    /// The running nodes, the secrets file and the saved node list.
    pub(super) nodes: (Vec<NodeConfig>, std::path::PathBuf, std::path::PathBuf),
    /// The configuration as it runs (`/api/v1/admin/config`).
    pub(super) live_config: Config,
    /// Admin authentication (opened once: it also holds the stored bans).
    pub(super) auth: Option<Arc<crate::auth::Auth>>,
}

/// The HTTPS listener's address, certificate and rustls configuration.
type OpenedHttps = (
    std::net::SocketAddr,
    (Arc<crate::api::tls::HttpsCert>, Arc<rustls::ServerConfig>),
);

/// The HTTPS certificate (generated or loaded) and the rustls configuration.
fn open_https(
    https: &crate::config::HttpsSettings,
    database: &std::path::Path,
    allowed: &[String],
) -> anyhow::Result<OpenedHttps> {
    let names = crate::api::tls::machine_names(https.listen.ip(), allowed);
    let cert = crate::api::tls::HttpsCert::open(https.source(database), &names)
        .context("the HTTPS certificate")?;
    let config = cert.server_config().context("the HTTPS configuration")?;
    Ok((https.listen, (cert, config)))
}

/// The address the `Host` check takes as the bind address: the one listener's, or the
/// unspecified address when the two listen on different addresses (any IP literal passes).
fn host_check_bind(listen: &HttpSettings) -> std::net::IpAddr {
    let https = listen.https.as_ref().map(|h| h.listen.ip());
    match (listen.plain.map(|a| a.ip()), https) {
        (Some(p), Some(h)) if p != h => std::net::IpAddr::from([0u8; 4]),
        (Some(ip), _) | (None, Some(ip)) => ip,
        (None, None) => std::net::IpAddr::from([127, 0, 0, 1]),
    }
}

/// The configured names and the machine's host name (which a generated certificate names
/// too): `https://<hostname>:<port>` from a phone on the LAN passes the `Host` check.
fn allowed_host_names(configured: &[String]) -> Vec<String> {
    let mut names = configured.to_vec();
    if let Some(host) = crate::api::tls::host_name()
        && !names.contains(&host)
        && names.len() < warppool_core::limits::ALLOWED_HOSTS_MAX
    {
        names.push(host);
    }
    names
}

/// Starts the HTTP API (plain, HTTPS or both) on the pool.
pub(super) async fn start_http(
    listen: HttpSettings,
    mut info: crate::api::PoolInfo,
    pool: &Pool,
    recorder: &Arc<SqliteRecorder>,
) -> anyhow::Result<HttpServer> {
    // Port 0 in the file: the API shows the ports the listeners got.
    for (endpoint, addr) in info.endpoints.iter_mut().zip(pool.local_addrs()) {
        endpoint.port = addr.port();
    }
    let https = listen
        .https
        .as_ref()
        .map(|h| open_https(h, &listen.database, &listen.live_config.http_allowed_hosts))
        .transpose()?;
    let metrics = crate::metrics::Metrics::new(crate::metrics::Sources {
        recorder: Arc::clone(recorder),
        status: pool.template_loop().status(),
        pool: pool.metrics_sources().clone(),
        version: info.version,
        network: info.network,
        started_at: info.started_at,
        min_difficulty: info.min_difficulty,
        https: https.as_ref().map(|(_, (cert, _))| Arc::clone(cert)),
    });
    let allowed_hosts = crate::auth::AllowedHosts::new(
        host_check_bind(&listen),
        &allowed_host_names(&listen.live_config.http_allowed_hosts),
    )
    .context("the HTTP API's allowed hosts")?;
    let listeners = crate::api::Listeners {
        plain: listen.plain,
        tls: https
            .as_ref()
            .map(|(addr, (_, config))| (*addr, Arc::clone(config))),
    };
    let mut state = ApiState {
        metrics: Arc::new(metrics),
        recorder: Arc::clone(recorder),
        status: pool.template_loop().status(),
        template_seen: Arc::new(std::sync::Mutex::new((0, std::time::Instant::now()))),
        queries: crate::api::QueryPool::start().context("cannot start the API query threads")?,
        info: Arc::new(info),
        health: Arc::default(),
        network: pool.network(),
        jobs: Arc::clone(pool.jobs()),
        auth: listen.auth.clone(),
        plane: Some(pool.admin().clone()),
        pages: Arc::default(),
        allowed_hosts: Arc::new(allowed_hosts),
        config: Some(Arc::new(crate::settings::LiveConfig::new(
            listen.live_config,
            pool.live_targets(),
        ))),
        https: None,
        nodes: Some(Arc::new(crate::node_admin::NodeAdmin::new(
            listen.nodes.0.clone(),
            listen.nodes.1.clone(),
            listen.nodes.2.clone(),
            Arc::downgrade(pool.template_loop()),
        ))),
    };
    let cert = https.as_ref().map(|(_, (cert, _))| Arc::clone(cert));
    state.https = cert.as_ref().map(|cert| crate::api::HttpsInfo {
        cert: Arc::clone(cert),
        port: Arc::default(),
    });
    let state = Arc::new(state);
    serve_api(state, listeners, cert).await
}

/// Binds the listeners and serves the router of `state`, the certificate watch and the event
/// ticker beside it.
async fn serve_api(
    state: Arc<ApiState>,
    listeners: crate::api::Listeners,
    cert: Option<Arc<crate::api::tls::HttpsCert>>,
) -> anyhow::Result<HttpServer> {
    let router = crate::api::router(Arc::clone(&state));
    let watch_cert = cert.clone();
    let ticker_state = Arc::clone(&state);
    let background = move |stop: watch::Receiver<bool>| async move {
        if let Some(cert) = watch_cert {
            tokio::spawn(cert.watch(stop.clone()));
        }
        crate::api::v1::stream::ticker(ticker_state, stop).await;
    };
    let server = HttpServer::start_with(listeners, router, background)
        .await
        .context("cannot bind the HTTP API")?;
    if let (Some(info), Some(addr)) = (&state.https, server.tls_addr()) {
        info.port
            .store(addr.port(), std::sync::atomic::Ordering::Relaxed);
    }
    if let Some(addr) = server.local_addr() {
        tracing::info!(%addr, "http api listening");
    }
    if let (Some(addr), Some(cert)) = (server.tls_addr(), &cert) {
        tracing::info!(%addr, fingerprint_sha256 = %cert.fingerprint(), "https api listening");
    }
    Ok(server)
}
