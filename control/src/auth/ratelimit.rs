//! The login rate limit: failed attempts counted per client address (IPv6: per /64, as the
//! Stratum side counts connections) and per username, with a lockout that doubles.
//!
//! The first [`LOGIN_FAILURES_FREE`]` - 1` failures cost nothing; the next one locks for
//! [`LOGIN_LOCKOUT_SECS_MIN`], and every failure after a lockout doubles it up to
//! [`LOGIN_LOCKOUT_SECS_MAX`]. Failures are forgotten [`LOGIN_FAILURES_FORGET_SECS`] after the
//! last one, and a complete login clears its address and username. A lockout of either key
//! refuses the attempt before any password is hashed.
//!
//! Time is passed in (`now`, Unix seconds): no clock is read here. Memory is bounded: each
//! table holds at most `capacity` keys ([`LOGIN_LIMITER_ENTRIES_MAX`] in the pool) and forgets
//! the one whose last failure is oldest to make room. State is in memory only: a restart
//! forgets it (an operator locked out by an attacker can restart; the attacker must start
//! over too).
//!
//! A username lockout also locks out its owner: that is the price of stopping a guesser who
//! spreads over many addresses. The owner sees the countdown, and the CLI needs no login.

use std::collections::HashMap;
use std::hash::Hash;
use std::net::IpAddr;

use warppool_core::limits::{
    LOGIN_FAILURES_FORGET_SECS, LOGIN_FAILURES_FREE, LOGIN_LOCKOUT_SECS_MAX, LOGIN_LOCKOUT_SECS_MIN,
};

use super::secret::{elapsed, later};

/// The lockout after `failures` consecutive failures: none below [`LOGIN_FAILURES_FREE`],
/// then [`LOGIN_LOCKOUT_SECS_MIN`] doubled per further failure, at most
/// [`LOGIN_LOCKOUT_SECS_MAX`].
pub fn lockout_secs(failures: u32) -> u64 {
    if failures < LOGIN_FAILURES_FREE {
        return 0;
    }
    let doublings = (failures - LOGIN_FAILURES_FREE).min(32);
    LOGIN_LOCKOUT_SECS_MIN
        .saturating_mul(1 << doublings)
        .min(LOGIN_LOCKOUT_SECS_MAX)
}

/// What one key has failed.
#[derive(Debug, Clone, Copy)]
struct Entry {
    failures: u32,
    last_failure: i64,
    locked_until: i64,
}

impl Entry {
    fn forgotten(&self, now: i64) -> bool {
        elapsed(self.last_failure, now) >= LOGIN_FAILURES_FORGET_SECS
    }

    fn remaining(&self, now: i64) -> u64 {
        if self.forgotten(now) {
            return 0;
        }
        elapsed(now, self.locked_until)
    }
}

/// A bounded map of keys to entries.
#[derive(Debug)]
struct Table<K> {
    entries: HashMap<K, Entry>,
    capacity: usize,
}

impl<K: Hash + Eq + Clone> Table<K> {
    fn new(capacity: usize) -> Self {
        Self {
            entries: HashMap::new(),
            capacity,
        }
    }

    fn remaining(&self, key: &K, now: i64) -> u64 {
        self.entries.get(key).map_or(0, |e| e.remaining(now))
    }

    /// Counts a failure; returns the lockout it starts (0 for none).
    fn fail(&mut self, key: &K, now: i64) -> u64 {
        if !self.entries.contains_key(key) && self.entries.len() >= self.capacity {
            self.evict_oldest();
        }
        let entry = self.entries.entry(key.clone()).or_insert(Entry {
            failures: 0,
            last_failure: now,
            locked_until: now,
        });
        if entry.forgotten(now) {
            entry.failures = 0;
        }
        entry.failures = entry.failures.saturating_add(1);
        entry.last_failure = now;
        let lockout = lockout_secs(entry.failures);
        if lockout > 0 {
            entry.locked_until = later(now, lockout);
        }
        lockout
    }

    fn evict_oldest(&mut self) {
        let oldest = self
            .entries
            .iter()
            .min_by_key(|(_, e)| e.last_failure)
            .map(|(k, _)| k.clone());
        if let Some(key) = oldest {
            self.entries.remove(&key);
        }
    }
}

/// The key of a client address: IPv4 (or IPv4-mapped IPv6) whole, IPv6 by its /64.
fn address_key(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V4(_) => ip,
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => IpAddr::V4(v4),
            None => IpAddr::V6((u128::from(v6) & !u128::from(u64::MAX)).into()),
        },
    }
}

/// Failed logins per address and per username, with lockouts. See the module docs.
#[derive(Debug)]
pub struct LoginLimiter {
    by_address: Table<IpAddr>,
    by_username: Table<String>,
}

impl LoginLimiter {
    /// A limiter remembering at most `capacity` addresses and `capacity` usernames.
    ///
    /// # Panics
    /// If `capacity` is 0.
    pub fn new(capacity: usize) -> Self {
        assert!(capacity > 0);
        Self {
            by_address: Table::new(capacity),
            by_username: Table::new(capacity),
        }
    }

    /// `Err(seconds left)` while `ip` or `username` is locked out at `now`.
    ///
    /// # Errors
    /// The remaining lockout, in seconds (at least 1).
    pub fn check(&self, ip: IpAddr, username: Option<&str>, now: i64) -> Result<(), u64> {
        let by_address = self.by_address.remaining(&address_key(ip), now);
        let by_username = username.map_or(0, |u| self.by_username.remaining(&u.to_owned(), now));
        match by_address.max(by_username) {
            0 => Ok(()),
            left => Err(left),
        }
    }

    /// Counts a failed attempt from `ip` for `username`; returns the lockout it starts, in
    /// seconds (`None` while failures are still free).
    pub fn record_failure(&mut self, ip: IpAddr, username: Option<&str>, now: i64) -> Option<u64> {
        let by_address = self.by_address.fail(&address_key(ip), now);
        let by_username = username.map_or(0, |u| self.by_username.fail(&u.to_owned(), now));
        Some(by_address.max(by_username)).filter(|&secs| secs > 0)
    }

    /// Clears `ip` and `username` after a complete login.
    pub fn record_success(&mut self, ip: IpAddr, username: Option<&str>) {
        self.by_address.entries.remove(&address_key(ip));
        if let Some(username) = username {
            self.by_username.entries.remove(username);
        }
    }

    /// Keys remembered (addresses plus usernames).
    pub fn len(&self) -> usize {
        self.by_address.entries.len() + self.by_username.entries.len()
    }

    /// Whether nothing is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}
