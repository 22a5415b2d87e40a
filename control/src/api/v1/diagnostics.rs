//! `GET /api/v1/admin/diagnostics`: one JSON bundle for a bug report (admin only): version,
//! the pool's status and health conditions, a summary of the configuration with every secret
//! left out (RPC passwords, cookie paths' contents, URL credentials), each shard's driver and
//! counters, storage and live-table figures, node status, bans and SSE clients.

use std::sync::Arc;

use axum::extract::{ConnectInfo, State};
use axum::http::HeaderMap;
use serde::Serialize;
use utoipa::ToSchema;

use super::admin::Caller;
use crate::{
    api::{ApiError, ApiState, Encoded, ErrorBody},
    auth::Scope,
    config::{Config, RpcAuth},
};

/// One Stratum port, as configured.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PortSummary {
    /// The listening address.
    pub addr: String,
    /// Whether it is TLS.
    pub tls: bool,
    /// Its lowest difficulty.
    pub difficulty_min: f64,
    /// Its highest difficulty.
    pub difficulty_max: f64,
}

/// One node, as configured (no credentials).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct NodeSummary {
    /// Its name.
    pub name: String,
    /// Its RPC URL, any `user:password@` removed.
    pub rpc_url: String,
    /// `password` or `cookie` (the value itself is never shown).
    pub rpc_auth: &'static str,
    /// Whether a ZMQ `hashblock` endpoint is set.
    pub zmq: bool,
    /// RPC timeout, milliseconds.
    pub rpc_timeout_ms: u64,
}

/// The configuration without its secrets.
#[derive(Debug, Clone, Default, Serialize, ToSchema)]
pub struct ConfigSummary {
    /// Shards asked for (`null`: one per core).
    pub shards: Option<usize>,
    /// Polling forced instead of io_uring.
    pub force_polling: bool,
    /// Stratum ports.
    pub ports: Vec<PortSummary>,
    /// Nodes.
    pub nodes: Vec<NodeSummary>,
    /// `pool.accept_rate_per_sec`.
    pub accept_rate_per_sec: u32,
    /// `pool.accept_burst`.
    pub accept_burst: u32,
    /// `pool.connections_per_ip_max`.
    pub connections_per_ip_max: u32,
    /// `pool.connections_per_shard_max`.
    pub connections_per_shard_max: usize,
    /// The SQLite database.
    pub database: String,
    /// The block journal.
    pub block_journal: String,
    /// Days of per-minute share rows kept.
    pub share_minutes_retention_days: u64,
    /// Days of events kept.
    pub events_retention_days: u64,
    /// The HTTP API's address.
    pub http_listen: Option<String>,
}

/// `scheme://user:pass@host/…` without `user:pass@`.
fn without_credentials(url: &str) -> String {
    let Some((scheme, rest)) = url.split_once("://") else {
        return url.to_owned();
    };
    let authority_end = rest.find('/').unwrap_or(rest.len());
    match rest[..authority_end].rfind('@') {
        Some(at) => format!("{scheme}://{}", &rest[at + 1..]),
        None => url.to_owned(),
    }
}

impl ConfigSummary {
    /// The summary of `config`.
    #[must_use]
    pub fn of(config: &Config) -> Self {
        let ports = config
            .ports
            .iter()
            .map(|p| PortSummary {
                addr: p.listener.addr.to_string(),
                tls: p.listener.tls.is_some(),
                difficulty_min: p.policy.vardiff.difficulty_min.to_f64_lossy(),
                difficulty_max: p.policy.vardiff.difficulty_max.to_f64_lossy(),
            })
            .collect();
        let nodes = config
            .nodes
            .iter()
            .map(|n| NodeSummary {
                name: n.name.clone(),
                rpc_url: without_credentials(&n.rpc_url),
                rpc_auth: match n.auth {
                    RpcAuth::UserPassword { .. } => "password",
                    RpcAuth::Cookie(_) => "cookie",
                },
                zmq: n.zmq_hashblock.is_some(),
                rpc_timeout_ms: u64::try_from(n.rpc_timeout.as_millis()).unwrap_or(u64::MAX),
            })
            .collect();
        let a = &config.admission;
        Self {
            shards: config.shards,
            force_polling: config.force_polling,
            ports,
            nodes,
            accept_rate_per_sec: a.accept_rate_per_sec,
            accept_burst: a.accept_burst,
            connections_per_ip_max: a.connections_per_ip_max,
            connections_per_shard_max: a.connections_per_shard_max,
            database: config.database.display().to_string(),
            block_journal: config.block_journal.display().to_string(),
            share_minutes_retention_days: config.share_minutes_retention_days,
            events_retention_days: config.events_retention_days,
            http_listen: config.http_listen.map(|a| a.to_string()),
        }
    }
}

/// One shard's driver and counters.
#[derive(Debug, Serialize, ToSchema)]
pub struct ShardDiagnostics {
    /// Its index.
    pub shard: usize,
    /// `io_uring` or `poll`.
    pub driver: &'static str,
    /// `ring` or `epoll` (how plain connections are read).
    pub plain_io: &'static str,
    /// Connections open.
    pub connections: u64,
    /// Connections accepted since start.
    pub accepted: u64,
    /// Closed at accept: shard full.
    pub refused_shard_full: u64,
    /// Closed at accept: per-address cap.
    pub refused_ip_cap: u64,
    /// Closed at accept: accept rate.
    pub refused_rate: u64,
    /// Closed at accept: banned address.
    pub refused_banned: u64,
    /// Lines handed to the protocol.
    pub lines: u64,
    /// Statistics entries dropped (queue full).
    pub stats_dropped: u64,
    /// Job notifications dropped (slow readers).
    pub notifies_dropped: u64,
    /// Closed as slow readers.
    pub slow_reader_closes: u64,
    /// Closed on a timeout.
    pub timeout_closes: u64,
    /// Block candidates lost (queue and overflow full).
    pub candidates_lost: u64,
}

/// Storage and live-table figures.
#[derive(Debug, Serialize, ToSchema)]
pub struct StoreDiagnostics {
    /// The database file's size, bytes (`null`: unreadable).
    pub database_bytes: Option<u64>,
    /// Accepted shares counted since start.
    pub shares_accepted: u64,
    /// Rejected shares counted since start.
    pub shares_rejected: u64,
    /// Authorizations since start.
    pub authorized: u64,
    /// Workers in the live table.
    pub live_workers: usize,
    /// Authorized connections in the live table.
    pub live_connections: usize,
    /// New workers not followed because the live table was full.
    pub live_untracked: u64,
}

/// The bundle.
#[derive(Debug, Serialize, ToSchema)]
pub struct Diagnostics {
    /// The pool's status: version, network, uptime, template, gate, health conditions.
    pub status: super::status::StatusResponse,
    /// The crate version this build was made from.
    pub build: String,
    /// When the bundle was made, Unix seconds.
    pub generated_at: i64,
    /// The configuration, secrets left out.
    pub config: ConfigSummary,
    /// The data plane's shards.
    pub shards: Vec<ShardDiagnostics>,
    /// Operator commands refused because a shard's admin queue was full.
    pub admin_commands_refused: u64,
    /// Address bans in force in the data plane.
    pub bans: usize,
    /// Storage and the live table.
    pub storage: StoreDiagnostics,
    /// The nodes as last seen.
    pub network: super::network::NetworkResponse,
    /// Open SSE event streams.
    pub sse_clients: usize,
}

fn shard_row(shard: usize, r: &warppool_net::ShardReport) -> ShardDiagnostics {
    let c = &r.counters;
    ShardDiagnostics {
        shard,
        driver: match r.driver {
            warppool_net::Driver::IoUring => "io_uring",
            warppool_net::Driver::Poll => "poll",
        },
        plain_io: match r.plain_io {
            warppool_net::PlainIo::Ring => "ring",
            warppool_net::PlainIo::Epoll => "epoll",
        },
        connections: c.connections,
        accepted: c.accepted,
        refused_shard_full: c.refused_shard_full,
        refused_ip_cap: c.refused_ip_cap,
        refused_rate: c.refused_rate,
        refused_banned: c.refused_banned,
        lines: c.lines,
        stats_dropped: c.stats_dropped,
        notifies_dropped: c.notifies_dropped,
        slow_reader_closes: c.slow_reader_closes,
        timeout_closes: c.timeout_closes,
        candidates_lost: c.candidates_lost,
    }
}

/// The diagnostics bundle.
#[utoipa::path(get, path = "/api/v1/admin/diagnostics", tag = "admin", responses(
    (status = 200, description = "The bundle", body = Diagnostics),
    (status = 401, description = "Not signed in", body = ErrorBody)))]
pub async fn diagnostics(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(peer): ConnectInfo<std::net::SocketAddr>,
    headers: HeaderMap,
) -> Result<Encoded, ApiError> {
    let caller = Caller::of(peer, &headers);
    state
        .query(move |s| {
            caller.principal(s, Scope::Admin, false)?;
            let plane = s.plane()?;
            let live = s.recorder.live();
            let counters = s.recorder.counters();
            let shards = plane.shards();
            Ok(Diagnostics {
                status: super::status::status_of(s)?,
                build: format!("warppool {}", env!("CARGO_PKG_VERSION")),
                generated_at: crate::api::now_s(),
                config: s.info.config.clone(),
                shards: shards
                    .iter()
                    .enumerate()
                    .map(|(i, r)| shard_row(i, r))
                    .collect(),
                admin_commands_refused: plane.refused(),
                bans: plane.bans().len(),
                storage: StoreDiagnostics {
                    database_bytes: std::fs::metadata(s.recorder.path()).ok().map(|m| m.len()),
                    shares_accepted: counters.shares_accepted,
                    shares_rejected: counters.shares_rejected,
                    authorized: counters.authorized,
                    live_workers: live.len(),
                    live_connections: live.connection_count(),
                    live_untracked: live.untracked(),
                },
                network: super::network::network_of(s)?,
                sse_clients: s.recorder.hub().streams(),
            })
        })
        .await
}

#[cfg(test)]
mod tests {
    use super::without_credentials;

    #[test]
    fn url_credentials_are_removed() {
        assert_eq!(
            without_credentials("http://u:secret@127.0.0.1:8332/wallet"),
            "http://127.0.0.1:8332/wallet"
        );
        assert_eq!(
            without_credentials("http://127.0.0.1:8332"),
            "http://127.0.0.1:8332"
        );
    }
}
