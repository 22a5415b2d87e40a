//! Address bans (admin API, `/api/v1/admin/bans`): stored in the `bans` table (schema v8) so
//! they survive a restart, loaded at start, and handed to the data plane as a
//! [`warppool_net::BanList`] (enforced at accept, see `warppool_net::admin`).
//!
//! A ban is a network (`203.0.113.7`, `203.0.113.0/24`, `2001:db8::/32`; host bits are
//! cleared), a reason (at most `BAN_REASON_BYTES_MAX` bytes) and an optional end (`until`,
//! Unix seconds, exclusive, in the future). At most `BANS_MAX` bans are in force; one network
//! is banned once. Expired bans stop applying at their second in the data plane and are
//! pruned from the table whenever the list is read or changed.

use std::net::IpAddr;

use rusqlite::{Connection, params};
use warppool_core::limits::{BAN_REASON_BYTES_MAX, BANS_MAX};
use warppool_net::{BanList, IpBan};

/// One stored ban.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BanRecord {
    /// Its id (`DELETE /api/v1/admin/bans/{id}`).
    pub id: i64,
    /// The network's address (host bits cleared).
    pub addr: IpAddr,
    /// The prefix length (32 or 128: one address).
    pub prefix: u8,
    /// Why.
    pub reason: String,
    /// Who (`admin:<name>`, `token:<id>`).
    pub created_by: String,
    /// When, Unix seconds.
    pub created_unix_s: i64,
    /// When it ends, Unix seconds (exclusive; `None`: never).
    pub until_unix_s: Option<i64>,
}

impl BanRecord {
    /// The network as text (`addr/prefix`).
    #[must_use]
    pub fn network(&self) -> String {
        format_network(self.addr, self.prefix)
    }
}

/// A ban asked for, checked ([`NewBan::parse`]).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NewBan {
    /// The network's address (host bits cleared).
    pub addr: IpAddr,
    /// The prefix length.
    pub prefix: u8,
    /// Why.
    pub reason: String,
    /// When it ends.
    pub until_unix_s: Option<i64>,
}

/// Why a ban was refused (the API answers 400 or 409).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BanError {
    /// Bad input: nothing changed.
    #[error("{0}")]
    Invalid(String),
    /// `BANS_MAX` bans are in force.
    #[error("{BANS_MAX} bans are in force (BANS_MAX): lift one first")]
    Full,
    /// The network is banned already (by ban `id`).
    #[error("{network} is banned already (ban {id})")]
    Exists {
        /// The network.
        network: String,
        /// The ban in force.
        id: i64,
    },
}

fn format_network(addr: IpAddr, prefix: u8) -> String {
    format!("{addr}/{prefix}")
}

fn max_prefix(addr: IpAddr) -> u8 {
    if addr.is_ipv4() { 32 } else { 128 }
}

/// `addr` with the bits past `prefix` cleared.
fn network_of(addr: IpAddr, prefix: u8) -> IpAddr {
    match addr {
        IpAddr::V4(v4) => {
            let mask = u32::MAX.checked_shl(32 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V4((u32::from(v4) & mask).into())
        }
        IpAddr::V6(v6) => {
            let mask = u128::MAX.checked_shl(128 - u32::from(prefix)).unwrap_or(0);
            IpAddr::V6((u128::from(v6) & mask).into())
        }
    }
}

/// Parses `203.0.113.7`, `203.0.113.0/24`, `2001:db8::1`, `2001:db8::/32`.
///
/// # Errors
/// [`BanError::Invalid`] saying what is wrong.
pub fn parse_network(text: &str) -> Result<(IpAddr, u8), BanError> {
    let bad = || {
        BanError::Invalid(format!(
            "ip {text:?} is not an IPv4 or IPv6 address, optionally with a /prefix"
        ))
    };
    let (addr, prefix) = match text.split_once('/') {
        None => (text, None),
        Some((addr, prefix)) => (addr, Some(prefix)),
    };
    let addr: IpAddr = addr.trim().parse().map_err(|_| bad())?;
    let addr = match addr {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(addr, IpAddr::V4),
        v4 => v4,
    };
    let max = max_prefix(addr);
    let prefix = match prefix {
        None => max,
        Some(p) => p.trim().parse::<u8>().map_err(|_| bad())?,
    };
    if prefix > max || prefix == 0 {
        return Err(BanError::Invalid(format!(
            "prefix /{prefix} of {text:?}: 1..={max} (a /0 would ban everyone)"
        )));
    }
    Ok((network_of(addr, prefix), prefix))
}

impl NewBan {
    /// Checks a request at `now`: the network, the reason's length, `until` in the future.
    ///
    /// # Errors
    /// [`BanError::Invalid`].
    pub fn parse(
        ip: &str,
        reason: Option<String>,
        until_unix_s: Option<i64>,
        now: i64,
    ) -> Result<Self, BanError> {
        let (addr, prefix) = parse_network(ip)?;
        let reason = reason.unwrap_or_default();
        if reason.len() > BAN_REASON_BYTES_MAX {
            return Err(BanError::Invalid(format!(
                "reason is {} bytes; at most {BAN_REASON_BYTES_MAX} (BAN_REASON_BYTES_MAX)",
                reason.len()
            )));
        }
        if reason.chars().any(char::is_control) {
            return Err(BanError::Invalid("reason holds control characters".into()));
        }
        if let Some(until) = until_unix_s
            && until <= now
        {
            return Err(BanError::Invalid(format!(
                "until {until} is not in the future (now {now})"
            )));
        }
        Ok(Self {
            addr,
            prefix,
            reason,
            until_unix_s,
        })
    }
}

/// Deletes the bans expired at `now`; returns how many.
///
/// # Errors
/// SQLite.
pub fn prune(c: &Connection, now: i64) -> rusqlite::Result<usize> {
    c.execute(
        "DELETE FROM bans WHERE until_unix_s IS NOT NULL AND until_unix_s <= ?1",
        [now],
    )
}

/// The bans in force at `now` (expired ones pruned first), oldest first.
///
/// # Errors
/// SQLite.
pub fn load(c: &Connection, now: i64) -> rusqlite::Result<Vec<BanRecord>> {
    prune(c, now)?;
    let mut statement = c.prepare(
        "SELECT id, network, reason, created_by, created_unix_s, until_unix_s
         FROM bans ORDER BY id LIMIT ?1",
    )?;
    let rows = statement.query_map([BANS_MAX as i64], |row| {
        let network: String = row.get(1)?;
        Ok((network, row_record(row)?))
    })?;
    let mut out = Vec::new();
    for row in rows {
        let (network, mut record) = row?;
        // Written by `insert`; a row edited by hand into nonsense is skipped, and said so.
        match parse_network(&network) {
            Ok((addr, prefix)) => {
                record.addr = addr;
                record.prefix = prefix;
                out.push(record);
            }
            Err(e) => tracing::warn!(id = record.id, %network, error = %e, "bad ban row skipped"),
        }
    }
    Ok(out)
}

fn row_record(row: &rusqlite::Row<'_>) -> rusqlite::Result<BanRecord> {
    Ok(BanRecord {
        id: row.get(0)?,
        addr: IpAddr::from([0, 0, 0, 0]),
        prefix: 0,
        reason: row.get(2)?,
        created_by: row.get(3)?,
        created_unix_s: row.get(4)?,
        until_unix_s: row.get(5)?,
    })
}

/// Adds `ban` by `by` at `now` unless [`BANS_MAX`] are in force or its network is banned
/// already; returns the stored record.
///
/// # Errors
/// SQLite; the refusal inside.
pub fn insert(
    c: &Connection,
    ban: &NewBan,
    by: &str,
    now: i64,
) -> rusqlite::Result<Result<BanRecord, BanError>> {
    let current = load(c, now)?;
    let network = format_network(ban.addr, ban.prefix);
    if let Some(existing) = current.iter().find(|b| b.network() == network) {
        return Ok(Err(BanError::Exists {
            network,
            id: existing.id,
        }));
    }
    if current.len() >= BANS_MAX {
        return Ok(Err(BanError::Full));
    }
    c.execute(
        "INSERT INTO bans (network, reason, created_by, created_unix_s, until_unix_s)
         VALUES (?1, ?2, ?3, ?4, ?5)",
        params![network, ban.reason, by, now, ban.until_unix_s],
    )?;
    Ok(Ok(BanRecord {
        id: c.last_insert_rowid(),
        addr: ban.addr,
        prefix: ban.prefix,
        reason: ban.reason.clone(),
        created_by: by.to_owned(),
        created_unix_s: now,
        until_unix_s: ban.until_unix_s,
    }))
}

/// Deletes ban `id`; returns it if it was in force at `now`.
///
/// # Errors
/// SQLite.
pub fn remove(c: &Connection, id: i64, now: i64) -> rusqlite::Result<Option<BanRecord>> {
    let found = load(c, now)?.into_iter().find(|b| b.id == id);
    if found.is_some() {
        c.execute("DELETE FROM bans WHERE id = ?1", [id])?;
    }
    Ok(found)
}

/// The data plane's list of `records`.
#[must_use]
pub fn ban_list(records: &[BanRecord]) -> BanList {
    BanList::new(records.iter().map(|b| IpBan {
        addr: b.addr,
        prefix: b.prefix,
        until_unix_s: b.until_unix_s,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_parse_and_clear_host_bits() {
        let p = |s: &str| parse_network(s).map(|(a, n)| format_network(a, n));
        assert_eq!(p("203.0.113.7").unwrap(), "203.0.113.7/32");
        assert_eq!(p("203.0.113.7/24").unwrap(), "203.0.113.0/24");
        assert_eq!(p("::ffff:127.0.0.2").unwrap(), "127.0.0.2/32");
        assert_eq!(p("2001:db8::1/32").unwrap(), "2001:db8::/32");
        for bad in [
            "",
            "1.2.3",
            "1.2.3.4/33",
            "1.2.3.4/0",
            "x/8",
            "::1/129",
            "1.2.3.4/-1",
        ] {
            assert!(matches!(p(bad), Err(BanError::Invalid(_))), "{bad}");
        }
    }
}
