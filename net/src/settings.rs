//! Settings the control plane changes while the pool runs (the admin API's live keys):
//! admission numbers and connection timeouts ([`LiveSettings`]).
//!
//! The same pattern as job publication: [`crate::DataPlane::apply_settings`] validates the new
//! value, stores it in an `ArcSwap` and sends each shard a coalescing `Settings` wake-up on
//! its bounded control queue. A shard reads the value through an `arc_swap::Cache` whenever
//! any control message arrives (so a wake-up dropped on a full queue is covered by the
//! message that filled it) and copies it into its own state: the accept path and the tick
//! read plain fields, never the `ArcSwap`, never a lock. The per-IP cap is one atomic in the
//! pool-wide table, set at once for every shard.
//!
//! Connections already open keep being judged by the new timeouts from the next tick; the
//! token bucket keeps its tokens (clamped to the new burst).

use std::time::Duration;

use warppool_core::limits::{
    ACCEPT_RATE_PER_SEC_MAX, CONNECTION_TIMEOUT_SECS_MAX, CONNECTIONS_PER_SHARD_MAX, SHARDS_MAX,
};

use crate::{NetConfig, NetError, Protocol, shard::ShardState};

/// What a shard reads the settings through.
pub(crate) type SettingsCache =
    arc_swap::Cache<std::sync::Arc<arc_swap::ArcSwap<LiveSettings>>, std::sync::Arc<LiveSettings>>;

/// Copies new live settings into a shard (no allocation; nothing if unchanged). Called at
/// every control message, so a `Settings` wake-up dropped on a full queue is covered by the
/// message that filled it.
pub(crate) fn apply<P: Protocol>(st: &mut ShardState<P>, settings: LiveSettings) {
    if st.settings != settings {
        st.bucket
            .reconfigure(settings.accept_rate_per_sec, settings.accept_burst);
        st.settings = settings;
    }
}

/// The data plane's settings that apply while it runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LiveSettings {
    /// Connections accepted per second per shard (token bucket refill rate).
    pub accept_rate_per_sec: u32,
    /// Token bucket size: connections a shard accepts in a burst.
    pub accept_burst: u32,
    /// Connections one client address may hold across the whole pool (IPv6: per /64).
    pub connections_per_ip_max: u32,
    /// A connection not yet subscribed is closed this long after connect.
    pub subscribe_timeout: Duration,
    /// A subscribed connection is closed when it sends nothing for this long.
    pub idle_timeout: Duration,
}

impl LiveSettings {
    /// The live part of `config`.
    #[must_use]
    pub fn of(config: &NetConfig) -> Self {
        Self {
            accept_rate_per_sec: config.accept_rate_per_sec,
            accept_burst: config.accept_burst,
            connections_per_ip_max: config.connections_per_ip_max,
            subscribe_timeout: config.subscribe_timeout,
            idle_timeout: config.idle_timeout,
        }
    }

    pub(crate) fn validate(&self) -> Result<(), NetError> {
        let rate = 1..=ACCEPT_RATE_PER_SEC_MAX;
        if !rate.contains(&self.accept_rate_per_sec) || !rate.contains(&self.accept_burst) {
            return Err(NetError::Config(
                "accept rate and burst must be in 1..=ACCEPT_RATE_PER_SEC_MAX",
            ));
        }
        let per_ip_max = CONNECTIONS_PER_SHARD_MAX as u64 * SHARDS_MAX as u64;
        if self.connections_per_ip_max == 0 || u64::from(self.connections_per_ip_max) > per_ip_max {
            return Err(NetError::Config(
                "connections_per_ip_max must be positive and at most the pool's capacity",
            ));
        }
        let timeouts = Duration::from_secs(1)..=Duration::from_secs(CONNECTION_TIMEOUT_SECS_MAX);
        if !timeouts.contains(&self.subscribe_timeout) || !timeouts.contains(&self.idle_timeout) {
            return Err(NetError::Config(
                "timeouts must be within 1 s..=CONNECTION_TIMEOUT_SECS_MAX",
            ));
        }
        Ok(())
    }
}
