//! Profiles: named sets of defaults for the size of the pool (`profile = "small" | "medium" |
//! "large" | "enterprise"`, default `medium`). A key the file (or an environment override, or
//! an admin API override) sets explicitly wins over its profile's value. The table is
//! documented in `docs/configuration.md` ("Profiles"); `medium` is the built-in default of
//! every key, so a file without `profile` behaves as before profiles existed.

use super::ConfigError;
use warppool_core::limits::{
    ACCEPT_BURST_DEFAULT, ACCEPT_RATE_PER_SEC_DEFAULT, CONNECTIONS_PER_IP_DEFAULT,
    CONNECTIONS_PER_SHARD_MAX, EVENTS_RETENTION_DAYS, SHARE_MINUTES_RETENTION_DAYS,
};

/// One profile's defaults.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Profile {
    /// Its name in the file.
    pub name: &'static str,
    /// `pool.shards` (`None`: one per core).
    pub shards: Option<usize>,
    /// `pool.connections_per_shard_max`.
    pub connections_per_shard_max: u64,
    /// `pool.accept_rate_per_sec`.
    pub accept_rate_per_sec: u64,
    /// `pool.accept_burst`.
    pub accept_burst: u64,
    /// `pool.connections_per_ip_max`.
    pub connections_per_ip_max: u64,
    /// `port[i].shares_per_min_target` (the vardiff target).
    pub shares_per_min_target: u32,
    /// `storage.share_minutes_retention_days`.
    pub share_minutes_retention_days: u64,
    /// `storage.events_retention_days`.
    pub events_retention_days: u64,
}

/// Every profile, smallest first.
pub const PROFILES: [Profile; 4] = [
    // A home pool: a few miners on one machine; one shard, more shares per miner for a
    // steadier hashrate, a long history.
    Profile {
        name: "small",
        shards: Some(1),
        connections_per_shard_max: 4_096,
        accept_rate_per_sec: 100,
        accept_burst: 200,
        connections_per_ip_max: 64,
        shares_per_min_target: 30,
        share_minutes_retention_days: 90,
        events_retention_days: EVENTS_RETENTION_DAYS,
    },
    // The built-in defaults.
    Profile {
        name: "medium",
        shards: None,
        connections_per_shard_max: CONNECTIONS_PER_SHARD_MAX as u64,
        accept_rate_per_sec: ACCEPT_RATE_PER_SEC_DEFAULT as u64,
        accept_burst: ACCEPT_BURST_DEFAULT as u64,
        connections_per_ip_max: CONNECTIONS_PER_IP_DEFAULT as u64,
        shares_per_min_target: 18,
        share_minutes_retention_days: SHARE_MINUTES_RETENTION_DAYS,
        events_retention_days: EVENTS_RETENTION_DAYS,
    },
    // A farm: thousands of miners behind a few NAT addresses, reconnect storms after a power
    // cut; fewer shares per miner, a shorter per-minute history.
    Profile {
        name: "large",
        shards: None,
        connections_per_shard_max: CONNECTIONS_PER_SHARD_MAX as u64,
        accept_rate_per_sec: 5_000,
        accept_burst: 10_000,
        connections_per_ip_max: 4_096,
        shares_per_min_target: 12,
        share_minutes_retention_days: 14,
        events_retention_days: 60,
    },
    // Many farms: tens of thousands of miners per address range.
    Profile {
        name: "enterprise",
        shards: None,
        connections_per_shard_max: CONNECTIONS_PER_SHARD_MAX as u64,
        accept_rate_per_sec: 20_000,
        accept_burst: 40_000,
        connections_per_ip_max: 16_384,
        shares_per_min_target: 6,
        share_minutes_retention_days: 7,
        events_retention_days: 30,
    },
];

/// The profile of a file without `profile`.
pub const PROFILE_DEFAULT: &str = "medium";

impl Profile {
    /// The profile `name` names (`None`: [`PROFILE_DEFAULT`]).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] for an unknown name.
    pub fn resolve(name: Option<&str>) -> Result<Self, ConfigError> {
        let name = name.unwrap_or(PROFILE_DEFAULT);
        Self::named(name).ok_or_else(|| {
            super::invalid(
                "profile",
                format!("unknown profile {name:?}"),
                "\"small\", \"medium\", \"large\", \"enterprise\"",
            )
        })
    }

    /// The profile called `name`.
    #[must_use]
    pub fn named(name: &str) -> Option<Self> {
        PROFILES.iter().find(|p| p.name == name).copied()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn medium_is_the_built_in_defaults() {
        let medium = Profile::named(PROFILE_DEFAULT).unwrap();
        let defaults = warppool_core::vardiff::VardiffConfig::default();
        assert_eq!(medium.shares_per_min_target, defaults.shares_per_min_target);
        assert_eq!(medium.shards, None);
        assert!(Profile::named("huge").is_none());
    }
}
