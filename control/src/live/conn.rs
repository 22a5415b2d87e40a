//! The live table's connections: per authorized connection the peer, the listener port, TLS,
//! user agent, difficulty, when it connected and a per-minute ring of its accepted shares
//! (the last `CONNECTION_RATE_WINDOW_SECS`), for `/api/v1/admin/connections`.

use std::net::{IpAddr, SocketAddr};

use warppool_core::limits::CONNECTION_RATE_WINDOW_SECS;
use warppool_core::plane::ConnectionId;

/// Minutes in the share-rate ring.
const RATE_MINUTES: usize = (CONNECTION_RATE_WINDOW_SECS / 60) as usize;

/// What `ShareEvent::Authorized` tells about the socket.
#[derive(Debug, Clone, Copy)]
pub(super) struct Facts {
    pub(super) peer: SocketAddr,
    pub(super) local_port: u16,
    pub(super) tls: bool,
}

/// A connection the table knows.
#[derive(Debug, Clone)]
pub(super) struct Conn {
    /// Its worker (an index into the slots).
    pub(super) worker: usize,
    facts: Facts,
    user_agent: Option<Box<str>>,
    connected_at: i64,
    /// The difficulty it was last sent (0 until known).
    pub(super) difficulty: f64,
    /// Accepted shares per minute: (minute, count), slot `minute % RATE_MINUTES`.
    recent: [(i64, u32); RATE_MINUTES],
    accepted: u64,
}

impl Conn {
    pub(super) fn new(worker: usize, facts: Facts, user_agent: Option<&str>, now: i64) -> Self {
        Self {
            worker,
            facts,
            user_agent: user_agent.map(Into::into),
            connected_at: now,
            difficulty: 0.0,
            recent: [(i64::MIN, 0); RATE_MINUTES],
            accepted: 0,
        }
    }

    /// One judged share at `now`.
    pub(super) fn share(&mut self, now: i64, difficulty: f64, accepted: bool) {
        if self.difficulty == 0.0 {
            self.difficulty = difficulty;
        }
        if !accepted {
            return;
        }
        self.accepted += 1;
        let minute = now.div_euclid(60);
        let slot = &mut self.recent[minute.rem_euclid(RATE_MINUTES as i64) as usize];
        if slot.0 == minute {
            slot.1 = slot.1.saturating_add(1);
        } else {
            *slot = (minute, 1);
        }
    }

    /// Accepted shares per minute over the window ending `now`.
    fn shares_per_min(&self, now: i64) -> f64 {
        let minute = now.div_euclid(60);
        let first = minute - RATE_MINUTES as i64 + 1;
        let count: u64 = self
            .recent
            .iter()
            .filter(|(m, _)| (first..=minute).contains(m))
            .map(|(_, n)| u64::from(*n))
            .sum();
        // From the start of the oldest minute in the ring, or the connect if later.
        let since = (first * 60).max(self.connected_at);
        let secs = (now - since).max(1);
        count as f64 * 60.0 / secs as f64
    }

    pub(super) fn view(&self, id: ConnectionId, worker: &str, now: i64) -> ConnectionView {
        ConnectionView {
            id,
            worker: worker.to_owned(),
            peer: self.facts.peer,
            local_port: self.facts.local_port,
            tls: self.facts.tls,
            user_agent: self.user_agent.as_deref().map(str::to_owned),
            difficulty: self.difficulty,
            shares_per_min: self.shares_per_min(now),
            accepted: self.accepted,
            connected_at: self.connected_at,
        }
    }
}

/// One authorized connection, copied out of the table.
#[derive(Debug, Clone, PartialEq)]
pub struct ConnectionView {
    /// Its id (the shard in the top 16 bits).
    pub id: ConnectionId,
    /// The worker it authorized as (`address.worker`).
    pub worker: String,
    /// The peer's address.
    pub peer: SocketAddr,
    /// The port it connected to (its listener).
    pub local_port: u16,
    /// Whether it is TLS.
    pub tls: bool,
    /// Its subscribe user agent.
    pub user_agent: Option<String>,
    /// The difficulty it was last sent.
    pub difficulty: f64,
    /// Accepted shares per minute, recently (`CONNECTION_RATE_WINDOW_SECS`).
    pub shares_per_min: f64,
    /// Accepted shares since it authorized.
    pub accepted: u64,
    /// When it authorized, Unix seconds.
    pub connected_at: i64,
}

/// Which connections a listing or a kick covers (every field that is set must match).
#[derive(Debug, Clone, Default)]
pub struct ConnectionFilter {
    /// The worker name contains this (ASCII case-insensitive).
    pub worker: Option<String>,
    /// The peer's address is this one.
    pub ip: Option<IpAddr>,
}

impl ConnectionFilter {
    pub(super) fn passes(&self, name: &str, c: &Conn) -> bool {
        if let Some(ip) = self.ip
            && canonical(c.facts.peer.ip()) != canonical(ip)
        {
            return false;
        }
        match &self.worker {
            None => true,
            Some(part) => name
                .to_ascii_lowercase()
                .contains(&part.to_ascii_lowercase()),
        }
    }
}

/// An IPv4-mapped IPv6 address as IPv4.
fn canonical(ip: IpAddr) -> IpAddr {
    match ip {
        IpAddr::V6(v6) => v6.to_ipv4_mapped().map_or(ip, IpAddr::V4),
        v4 => v4,
    }
}
