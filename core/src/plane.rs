//! The messages that cross between the data plane (`warppool-net`) and the control plane
//! (`warppool-control`): statistics entries from the shards, the device family that keys
//! stored difficulties, and each shard's counters. Plain values: the data plane builds them
//! without knowing the control plane, and the control plane reads them without knowing the
//! data plane's internals.

use std::net::SocketAddr;

use crate::{Difficulty, ShareReject};

/// A connection's identity in statistics: the shard index in the top 16 bits, a shard-local
/// counter below (never reused in one run).
pub type ConnectionId = u64;

/// A statistics entry sent to the control plane (in batches, see
/// `DataPlane::stats_receivers` in `warppool-net`).
#[derive(Debug, Clone)]
pub enum ShareEvent {
    /// A connection authorized a user (allocates; not on the share path).
    Authorized {
        /// The connection.
        connection: ConnectionId,
        /// `address[.worker]` as sent.
        username: String,
        /// The subscribe user agent, if any.
        user_agent: Option<String>,
        /// The peer's address.
        peer: SocketAddr,
        /// The local port it connected to (which listener).
        local_port: u16,
        /// Whether the connection is TLS.
        tls: bool,
    },
    /// One judged share.
    Share(ShareStat),
    /// An authorized connection closed: what was kept for it can go (sent once, only for
    /// connections that sent [`ShareEvent::Authorized`]).
    Closed {
        /// The connection.
        connection: ConnectionId,
        /// Why it closed.
        reason: CloseReason,
    },
    /// The difficulty of an authorized connection changed (vardiff retarget or a client's
    /// suggestion), sent once per change, never per share. The control plane stores it under
    /// `family.key(username)` so that a reconnecting worker on the same kind of device starts
    /// there (`WorkerDifficulties` in `warppool-net`). Like every
    /// statistics entry it is dropped (and counted) when the shard's statistics queue is full;
    /// the stored value then stays at the previous change until the next one.
    Difficulty {
        /// The connection (see [`ShareEvent::Authorized`] for its user).
        connection: ConnectionId,
        /// The new difficulty, as sent in `mining.set_difficulty`.
        difficulty: Difficulty,
        /// The connection's device family (from its subscribe user agent).
        family: UserAgentFamily,
    },
}

/// Why a connection was closed (passed to `Protocol::on_close` in `warppool-net`, and carried
/// to the control plane in [`ShareEvent::Closed`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The peer closed the connection (EOF or TLS close_notify).
    PeerClosed,
    /// A socket error (reset, broken pipe, ...).
    SocketError,
    /// A protocol callback asked to close (`Flow::Close` in `warppool-net`).
    Protocol,
    /// A line longer than `LINE_BYTES_MAX` arrived (after `on_line_too_long`).
    LineTooLong,
    /// The outbound queue overflowed: the peer does not read.
    SlowReader,
    /// Not subscribed within the subscribe timeout.
    SubscribeTimeout,
    /// Subscribed but silent for the idle timeout.
    IdleTimeout,
    /// A TLS handshake or record error (including plain text on a TLS port).
    TlsError,
    /// A TLS ClientHello arrived on a plain port.
    TlsOnPlainPort,
    /// The data plane is stopping.
    Shutdown,
    /// An operator closed it (admin API kick, or "disconnect all").
    Kicked,
    /// An operator banned its address while it was connected.
    Banned,
}

/// One judged share (compact, no heap).
#[derive(Debug, Clone, Copy)]
pub struct ShareStat {
    /// The connection (see [`ShareEvent::Authorized`] for its user).
    pub connection: ConnectionId,
    /// The difficulty the share was judged at (credited when accepted).
    pub difficulty: Difficulty,
    /// `None` when accepted, else why not.
    pub reject: Option<ShareReject>,
    /// The share's own difficulty (diff-1 target / hash), for best-share tracking; 0 when the
    /// share was rejected before hashing.
    pub hash_difficulty: f64,
    /// The hash met the network target (a block candidate was sent).
    pub block: bool,
}

/// The device class of a connection, from its subscribe user agent: the first word (up to
/// the first `/` or space), lower-cased, ASCII letters, digits, `-` and `_` only, at most
/// [`UserAgentFamily::BYTES_MAX`] bytes (`NerdMinerV2/V1.8.3` → `nerdminerv2`,
/// `bitaxe/BM1370/v2.4.0` → `bitaxe`, `Antminer S21/...` → `antminer`; none → empty).
/// Stored difficulties are keyed by username *and* family ([`UserAgentFamily::key`]), so
/// devices of different classes under one username do not inherit each other's difficulty.
/// A plain value (no heap): it rides in [`ShareEvent::Difficulty`].
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct UserAgentFamily {
    bytes: [u8; UserAgentFamily::BYTES_MAX],
    len: u8,
}

impl UserAgentFamily {
    /// Longest family kept, in bytes (longer first words are cut).
    pub const BYTES_MAX: usize = 24;

    /// The family of a user agent (empty for none).
    #[must_use]
    pub fn from_user_agent(user_agent: Option<&str>) -> Self {
        let mut family = Self {
            bytes: [0; Self::BYTES_MAX],
            len: 0,
        };
        let word = user_agent
            .unwrap_or("")
            .split(['/', ' '])
            .next()
            .unwrap_or("");
        let kept = word
            .bytes()
            .filter(|b| b.is_ascii_alphanumeric() || *b == b'-' || *b == b'_');
        for (slot, byte) in family.bytes.iter_mut().zip(kept) {
            *slot = byte.to_ascii_lowercase();
            family.len += 1;
        }
        family
    }

    /// The family as text.
    #[must_use]
    pub fn as_str(&self) -> &str {
        // Only ASCII bytes are kept.
        std::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or("")
    }

    /// The key of `username` on a device of this family in the stored difficulties
    /// (`WorkerDifficulties` in `warppool-net`): `username`, `#`, the family
    /// (`bc1q….rig#bitaxe`; `bc1q….rig#` without a user agent).
    #[must_use]
    pub fn key(&self, username: &str) -> String {
        let mut key = String::with_capacity(username.len() + 1 + usize::from(self.len));
        key.push_str(username);
        key.push('#');
        key.push_str(self.as_str());
        key
    }
}

impl std::fmt::Debug for UserAgentFamily {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "UserAgentFamily({:?})", self.as_str())
    }
}

/// Upper bounds of the buckets of each shard's job fan-out latency histogram, in microseconds
/// (time from `DataPlane::publish` to the shard having handed the new jobs to every one of its
/// connections); one more bucket takes the slower fan-outs.
pub const FANOUT_BUCKETS_US: [u64; 12] = [
    50, 100, 250, 500, 1_000, 2_500, 5_000, 10_000, 25_000, 100_000, 250_000, 1_000_000,
];

/// A copy of one shard's counters.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct CountersSnapshot {
    /// Connections accepted and handed to the protocol.
    pub accepted: u64,
    /// Connections closed at accept because the shard was full
    /// (`pool.connections_per_shard_max`; logged, rate-limited).
    pub refused_shard_full: u64,
    /// Connections closed at accept because their address was at its cap
    /// (`pool.connections_per_ip_max`; logged, rate-limited).
    pub refused_ip_cap: u64,
    /// Connections closed at accept because the accept rate was exceeded
    /// (`pool.accept_rate_per_sec`, `pool.accept_burst`; logged, rate-limited).
    pub refused_rate: u64,
    /// Connections closed at accept because their address is banned (admin API bans;
    /// logged, rate-limited).
    pub refused_banned: u64,
    /// Accepted connections that have been closed.
    pub closed: u64,
    /// Connections open now.
    pub connections: u64,
    /// Connections open now, by listener index (`NetConfig::listeners` order; the entries past
    /// the configured listeners stay 0).
    pub connections_by_listener: [u64; crate::limits::LISTENERS_MAX],
    /// Lines handed to the protocol.
    pub lines: u64,
    /// Job notifications dropped from outbound queues because newer ones superseded them.
    pub notifies_dropped: u64,
    /// Statistics entries dropped because the control plane's queue was full.
    pub stats_dropped: u64,
    /// Connections closed because their outbound queue overflowed.
    pub slow_reader_closes: u64,
    /// Connections closed by the subscribe or idle timeout.
    pub timeout_closes: u64,
    /// Connections closed by a TLS error (including plain text on a TLS port).
    pub tls_errors: u64,
    /// Multishot-recv completions with bytes on the shard's io_uring ring (plain connections
    /// on the io_uring driver; always 0 on the epoll path).
    pub ring_recv_completions: u64,
    /// Multishot recvs the kernel ended because the provided-buffer ring was empty
    /// (`ENOBUFS`); each was re-armed.
    pub ring_no_buffers: u64,
    /// Block candidates that found the candidate queue full and waited in the shard's
    /// overflow (sent later, in order, as the control plane drains the queue).
    pub candidates_deferred: u64,
    /// Block candidates dropped because the queue and the shard's overflow were both full
    /// (logged at error level, rate-limited). Should stay 0: alert on it.
    pub candidates_lost: u64,
    /// Jobs that could not be built for a connection (no coinbase for its payout script, or
    /// its job variants exhausted; logged, rate-limited): the miner keeps the work it has.
    pub job_build_failures: u64,
    /// Job fan-outs by latency (publish → every connection of the shard handed its jobs), per
    /// bucket of [`FANOUT_BUCKETS_US`] then the slower ones (not cumulative). At most one per
    /// publication; publications that coalesce into one wake-up count once.
    pub fanout_buckets: [u64; FANOUT_BUCKETS_US.len() + 1],
    /// Sum of the recorded fan-out latencies, nanoseconds.
    pub fanout_sum_ns: u64,
}

impl std::ops::AddAssign for CountersSnapshot {
    fn add_assign(&mut self, o: Self) {
        self.accepted += o.accepted;
        self.refused_shard_full += o.refused_shard_full;
        self.refused_ip_cap += o.refused_ip_cap;
        self.refused_rate += o.refused_rate;
        self.refused_banned += o.refused_banned;
        self.closed += o.closed;
        self.connections += o.connections;
        for (mine, theirs) in self
            .connections_by_listener
            .iter_mut()
            .zip(o.connections_by_listener)
        {
            *mine += theirs;
        }
        self.lines += o.lines;
        self.notifies_dropped += o.notifies_dropped;
        self.stats_dropped += o.stats_dropped;
        self.slow_reader_closes += o.slow_reader_closes;
        self.timeout_closes += o.timeout_closes;
        self.tls_errors += o.tls_errors;
        self.ring_recv_completions += o.ring_recv_completions;
        self.ring_no_buffers += o.ring_no_buffers;
        self.candidates_deferred += o.candidates_deferred;
        self.candidates_lost += o.candidates_lost;
        self.job_build_failures += o.job_build_failures;
        for (mine, theirs) in self.fanout_buckets.iter_mut().zip(o.fanout_buckets) {
            *mine += theirs;
        }
        self.fanout_sum_ns += o.fanout_sum_ns;
    }
}
