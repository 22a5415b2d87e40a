//! Configuration of the data plane: listeners, shards, admission control and timeouts.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use warppool_core::limits::{
    ACCEPT_BURST_DEFAULT, ACCEPT_RATE_PER_SEC_DEFAULT, CONNECTIONS_PER_IP_DEFAULT,
    CONNECTIONS_PER_SHARD_MAX, IDLE_TIMEOUT_SECS_DEFAULT, LISTENERS_MAX, SHARDS_MAX,
    SUBSCRIBE_TIMEOUT_SECS_DEFAULT,
};

use crate::error::NetError;

/// Certificate chain and private key of a TLS port, both PEM files. They are re-read when
/// their modification time changes (see [`NetConfig::tls_reload_interval`]).
#[derive(Debug, Clone)]
pub struct TlsFiles {
    /// PEM file with the certificate chain, leaf first.
    pub cert_path: PathBuf,
    /// PEM file with the private key (PKCS#8, PKCS#1 or SEC1).
    pub key_path: PathBuf,
}

/// One listening address. Every shard opens its own `SO_REUSEPORT` socket on it.
#[derive(Debug, Clone)]
pub struct ListenerConfig {
    /// IPv4 or IPv6 address; port 0 picks a free port (the same one for every shard), see
    /// [`crate::DataPlane::local_addrs`]. IPv6 sockets are `IPV6_V6ONLY`: configure
    /// `0.0.0.0` and `[::]` separately to serve both.
    pub addr: SocketAddr,
    /// `Some` for a TLS port, `None` for plain text.
    pub tls: Option<TlsFiles>,
}

/// Everything the data plane needs to start.
#[derive(Debug, Clone)]
pub struct NetConfig {
    /// Listening addresses (at most `LISTENERS_MAX`).
    pub listeners: Vec<ListenerConfig>,
    /// Number of shards (threads); `None` means one per available core.
    pub shards: Option<usize>,
    /// Pin shard `i` to core `i % cores` (Linux `sched_setaffinity` through compio).
    pub pin_shards: bool,
    /// Use the polling (epoll) driver even where io_uring is available.
    pub force_polling: bool,
    /// Connections accepted per second per shard (token bucket refill rate).
    pub accept_rate_per_sec: u32,
    /// Token bucket size: connections a shard accepts in a burst.
    pub accept_burst: u32,
    /// Connections one client address may hold across the whole pool (IPv6: per /64). See
    /// the crate docs for how this is counted across shards.
    pub connections_per_ip_max: u32,
    /// Connections one shard holds; further connections are closed at accept.
    pub connections_per_shard_max: usize,
    /// A connection the protocol has not marked subscribed is closed this long after connect.
    pub subscribe_timeout: Duration,
    /// A subscribed connection is closed when it sends nothing for this long.
    pub idle_timeout: Duration,
    /// How often each shard checks timeouts, calls `on_tick` and flushes statistics.
    pub tick_interval: Duration,
    /// How often certificate and key files are checked for changes.
    pub tls_reload_interval: Duration,
    /// `SO_SNDBUF` of accepted sockets, if set (tests use small values to provoke slow readers).
    pub socket_send_buffer_bytes: Option<u32>,
}

impl NetConfig {
    /// A configuration with the production defaults for the given listeners.
    pub fn new(listeners: Vec<ListenerConfig>) -> Self {
        Self {
            listeners,
            shards: None,
            pin_shards: true,
            force_polling: false,
            accept_rate_per_sec: ACCEPT_RATE_PER_SEC_DEFAULT,
            accept_burst: ACCEPT_BURST_DEFAULT,
            connections_per_ip_max: CONNECTIONS_PER_IP_DEFAULT,
            connections_per_shard_max: CONNECTIONS_PER_SHARD_MAX,
            subscribe_timeout: Duration::from_secs(SUBSCRIBE_TIMEOUT_SECS_DEFAULT),
            idle_timeout: Duration::from_secs(IDLE_TIMEOUT_SECS_DEFAULT),
            tick_interval: Duration::from_secs(1),
            tls_reload_interval: Duration::from_secs(5),
            socket_send_buffer_bytes: None,
        }
    }

    /// The shard count this configuration resolves to.
    pub fn shard_count(&self) -> usize {
        self.shards.unwrap_or_else(|| {
            std::thread::available_parallelism()
                .map_or(1, |n| n.get())
                .min(SHARDS_MAX)
        })
    }

    pub(crate) fn validate(&self) -> Result<(), NetError> {
        let shards = self.shard_count();
        if self.listeners.is_empty() {
            return Err(NetError::Config("no listeners"));
        }
        if self.listeners.len() > LISTENERS_MAX {
            return Err(NetError::Config("more than LISTENERS_MAX listeners"));
        }
        if shards == 0 || shards > SHARDS_MAX {
            return Err(NetError::Config("shard count must be in 1..=SHARDS_MAX"));
        }
        if self.connections_per_shard_max == 0
            || self.connections_per_shard_max > CONNECTIONS_PER_SHARD_MAX
        {
            return Err(NetError::Config(
                "connections_per_shard_max must be in 1..=CONNECTIONS_PER_SHARD_MAX",
            ));
        }
        if self.accept_burst == 0 || self.accept_rate_per_sec == 0 {
            return Err(NetError::Config("accept rate and burst must be positive"));
        }
        if self.connections_per_ip_max == 0 {
            return Err(NetError::Config("connections_per_ip_max must be positive"));
        }
        if self.tick_interval.is_zero() || self.tls_reload_interval.is_zero() {
            return Err(NetError::Config("intervals must be positive"));
        }
        Ok(())
    }
}
