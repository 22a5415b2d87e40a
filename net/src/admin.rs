//! Operator commands from the control plane to the shards (the admin API): kick one
//! connection, kick every connection, and the address ban list enforced at accept.
//!
//! - **Kicks** ride a bounded queue per shard of their own (`SHARD_ADMIN_QUEUE_MAX`), so job
//!   wake-ups never crowd them out and a kick is never lost silently: a full queue refuses it
//!   ([`AdminQueueFull`], counted in [`PlaneAdmin::refused`]). A wake-up on the shard's
//!   control queue follows (coalescing like job wake-ups); the shard drains its admin queue
//!   on every control message and on every tick, so a kick whose wake-up was coalesced still
//!   runs. The shard closes the connection gracefully (queued replies flushed, then FIN) with
//!   [`CloseReason::Kicked`](crate::CloseReason::Kicked). An id the shard no longer holds is
//!   ignored (it closed meanwhile).
//! - **Bans** ([`BanList`]): an immutable list swapped in through an `ArcSwap` that every
//!   shard reads at accept through its own `arc_swap::Cache` (no lock, no allocation); a
//!   banned peer is closed at once and counted (`CountersSnapshot::refused_banned`). When the
//!   list changes, each shard closes the live connections it now bans with
//!   [`CloseReason::Banned`](crate::CloseReason::Banned) (at the wake-up, or at its next tick
//!   at the latest). A ban with an expiry stops applying at that second without any message.

use std::{
    net::IpAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
};

use arc_swap::ArcSwap;
use warppool_core::plane::ConnectionId;

use crate::{
    counters::{CountersSnapshot, ShardCounters},
    plane::{Driver, PlainIo},
    shard::ShardMsg,
};

/// One ban: every address in `addr/prefix` (an IPv4 prefix counts in IPv4 bits, 0..=32; an
/// IPv6 one in IPv6 bits, 0..=128), until `until_unix_s` (exclusive; `None`: for ever).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IpBan {
    /// The banned address (the host bits past `prefix` are ignored).
    pub addr: IpAddr,
    /// The prefix length.
    pub prefix: u8,
    /// When the ban ends, Unix seconds (`None`: never).
    pub until_unix_s: Option<i64>,
}

impl IpBan {
    /// The ban as an IPv6 network (IPv4 as `::ffff:a.b.c.d`, its prefix plus 96), so IPv4
    /// bans also match IPv4-mapped peers of a dual-stack socket; `None` for a prefix longer
    /// than the address.
    fn key(&self) -> Option<(u8, u128)> {
        let (bits, prefix) = match self.addr {
            IpAddr::V4(v4) if self.prefix <= 32 => {
                (u128::from(v4.to_ipv6_mapped()), self.prefix + 96)
            }
            IpAddr::V6(v6) if self.prefix <= 128 => (u128::from(v6), self.prefix),
            _ => return None,
        };
        Some((prefix, bits & mask(prefix)))
    }
}

fn mask(prefix: u8) -> u128 {
    match prefix {
        0 => 0,
        n => u128::MAX << (128 - u32::from(n)),
    }
}

fn mapped(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(v4.to_ipv6_mapped()),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The bans of one prefix length, sorted by network, each with its end (`i64::MAX`: never).
#[derive(Debug, Default)]
struct ByPrefix {
    prefix: u8,
    nets: Vec<(u128, i64)>,
}

/// The address bans, arranged for the accept path: per prefix length a sorted table, so a
/// lookup is one binary search per distinct prefix length in use (at most 129).
#[derive(Debug, Default)]
pub struct BanList {
    tables: Vec<ByPrefix>,
    len: usize,
}

impl BanList {
    /// The list of `bans` (overlapping bans of one network keep the later end; bans with a
    /// prefix longer than their address are skipped).
    #[must_use]
    pub fn new(bans: impl IntoIterator<Item = IpBan>) -> Self {
        let mut tables: Vec<ByPrefix> = Vec::new();
        for ban in bans {
            let Some((prefix, net)) = ban.key() else {
                continue;
            };
            let until = ban.until_unix_s.unwrap_or(i64::MAX);
            let table = match tables.iter_mut().position(|t| t.prefix == prefix) {
                Some(i) => &mut tables[i],
                None => {
                    tables.push(ByPrefix {
                        prefix,
                        nets: Vec::new(),
                    });
                    tables.last_mut().expect("just pushed")
                }
            };
            table.nets.push((net, until));
        }
        let mut len = 0;
        for table in &mut tables {
            table.nets.sort_unstable();
            // Sorted by (net, until): the last of each net has the latest end.
            table.nets.reverse();
            table.nets.dedup_by_key(|(net, _)| *net);
            table.nets.reverse();
            len += table.nets.len();
        }
        Self { tables, len }
    }

    /// Whether `ip` is banned at `now_unix_s` (no allocation, no lock).
    #[must_use]
    pub fn is_banned(&self, ip: IpAddr, now_unix_s: i64) -> bool {
        let bits = mapped(ip);
        self.tables.iter().any(|t| {
            let net = bits & mask(t.prefix);
            t.nets
                .binary_search_by_key(&net, |(n, _)| *n)
                .is_ok_and(|i| t.nets[i].1 > now_unix_s)
        })
    }

    /// Networks in the list.
    #[must_use]
    pub fn len(&self) -> usize {
        self.len
    }

    /// Whether the list is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len == 0
    }
}

/// Unix seconds now (the accept path's clock for ban expiry).
pub(crate) fn unix_now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

/// An operator command for one shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum AdminCmd {
    /// Close the connection with this id (`Protocol::connection_id`).
    Kick(ConnectionId),
    /// Close every connection of the shard.
    KickAll,
}

/// A shard's admin queue was full: the command was not queued.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("shard {shard}'s admin queue is full (SHARD_ADMIN_QUEUE_MAX); try again")]
pub struct AdminQueueFull {
    /// The shard.
    pub shard: usize,
}

/// What a shard needs to take commands ([`PlaneAdmin`] holds the other ends).
pub(crate) struct ShardAdmin {
    pub(crate) commands: flume::Receiver<AdminCmd>,
    pub(crate) bans: Arc<ArcSwap<BanList>>,
}

impl ShardAdmin {
    pub(crate) fn new(commands: flume::Receiver<AdminCmd>, bans: Arc<ArcSwap<BanList>>) -> Self {
        Self { commands, bans }
    }
}

#[derive(Debug, Clone)]
pub(crate) struct ShardLine {
    pub(crate) control: flume::Sender<ShardMsg>,
    pub(crate) commands: flume::Sender<AdminCmd>,
    pub(crate) driver: Driver,
    pub(crate) plain_io: PlainIo,
    pub(crate) counters: Arc<ShardCounters>,
}

/// One shard as [`PlaneAdmin::shards`] reports it (for a diagnostics bundle).
#[derive(Debug, Clone, Copy)]
pub struct ShardReport {
    /// Its runtime's I/O driver.
    pub driver: Driver,
    /// How it reads plain connections.
    pub plain_io: PlainIo,
    /// Its counters now.
    pub counters: CountersSnapshot,
}

/// The control plane's handle for operator commands (see the module docs); cheap to clone,
/// `Send + Sync`, independent of the protocol's types.
#[derive(Debug, Clone)]
pub struct PlaneAdmin {
    shards: Arc<[ShardLine]>,
    bans: Arc<ArcSwap<BanList>>,
    refused: Arc<AtomicU64>,
}

impl PlaneAdmin {
    /// The handle of started shards; `bans` is the list they read at accept.
    pub(crate) fn new(shards: Vec<ShardLine>, bans: Arc<ArcSwap<BanList>>) -> Self {
        Self {
            shards: shards.into(),
            bans,
            refused: Arc::new(AtomicU64::new(0)),
        }
    }

    /// Each shard's driver and counters, by shard index.
    #[must_use]
    pub fn shards(&self) -> Vec<ShardReport> {
        self.shards
            .iter()
            .map(|s| ShardReport {
                driver: s.driver,
                plain_io: s.plain_io,
                counters: s.counters.snapshot(),
            })
            .collect()
    }

    /// Asks the shard of `connection` (its top 16 bits) to close it gracefully
    /// ([`crate::CloseReason::Kicked`]).
    ///
    /// # Errors
    /// [`AdminQueueFull`] (counted); an id of no shard is refused the same way.
    pub fn kick(&self, connection: ConnectionId) -> Result<(), AdminQueueFull> {
        let shard = usize::try_from(connection >> 48).unwrap_or(usize::MAX);
        self.send(shard, AdminCmd::Kick(connection))
    }

    /// Asks every shard to close all its connections ([`crate::CloseReason::Kicked`]).
    ///
    /// # Errors
    /// [`AdminQueueFull`] for the first shard whose queue was full (the others got it).
    pub fn kick_all(&self) -> Result<(), AdminQueueFull> {
        let mut result = Ok(());
        for shard in 0..self.shards.len() {
            if let Err(e) = self.send(shard, AdminCmd::KickAll) {
                result = result.and(Err(e));
            }
        }
        result
    }

    fn send(&self, shard: usize, cmd: AdminCmd) -> Result<(), AdminQueueFull> {
        let refuse = || {
            self.refused.fetch_add(1, Ordering::Relaxed);
            AdminQueueFull { shard }
        };
        let line = self.shards.get(shard).ok_or_else(refuse)?;
        line.commands.try_send(cmd).map_err(|_| refuse())?;
        // Full: a message is pending, and the shard drains its admin queue on each one.
        let _ = line.control.try_send(ShardMsg::Admin);
        Ok(())
    }

    /// Replaces the ban list: new connections are checked against it at once, and every
    /// shard closes the live connections it bans ([`crate::CloseReason::Banned`]).
    pub fn set_bans(&self, bans: BanList) {
        self.bans.store(Arc::new(bans));
        for line in self.shards.iter() {
            // Full: a message is pending; the tick catches the change in any case.
            let _ = line.control.try_send(ShardMsg::Admin);
        }
    }

    /// The ban list in force.
    #[must_use]
    pub fn bans(&self) -> Arc<BanList> {
        self.bans.load_full()
    }

    /// Commands refused because a shard's admin queue was full.
    #[must_use]
    pub fn refused(&self) -> u64 {
        self.refused.load(Ordering::Relaxed)
    }

    /// Number of shards.
    #[must_use]
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ban(addr: &str, prefix: u8, until: Option<i64>) -> IpBan {
        IpBan {
            addr: addr.parse().unwrap(),
            prefix,
            until_unix_s: until,
        }
    }

    #[test]
    fn exact_prefix_mapped_and_expired_bans() {
        let list = BanList::new([
            ban("127.0.0.2", 32, None),
            ban("10.1.0.0", 16, Some(100)),
            ban("2001:db8::", 32, None),
            ban("10.1.0.0", 16, Some(50)),
            ban("1.2.3.4", 33, None),
        ]);
        assert_eq!(list.len(), 3, "duplicates merged, a bad prefix skipped");
        let ip = |s: &str| s.parse::<IpAddr>().unwrap();
        assert!(list.is_banned(ip("127.0.0.2"), 0));
        assert!(list.is_banned(ip("::ffff:127.0.0.2"), 0));
        assert!(!list.is_banned(ip("127.0.0.1"), 0));
        assert!(list.is_banned(ip("10.1.200.3"), 99), "the later end wins");
        assert!(!list.is_banned(ip("10.1.200.3"), 100), "expired at `until`");
        assert!(!list.is_banned(ip("10.2.0.1"), 0));
        assert!(list.is_banned(ip("2001:db8:ffff::1"), 0));
        assert!(!list.is_banned(ip("2001:db9::1"), 0));
        assert!(!BanList::default().is_banned(ip("127.0.0.2"), 0));
    }
}
