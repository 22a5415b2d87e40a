//! The protocol plug-in: what the Stratum session (or a test protocol) implements.
//!
//! The shard owns one `P: Protocol` value (shard-wide state: caches, extranonce counters,
//! per-shard job views) and one `P::Conn` per connection. Every callback runs on the shard's
//! thread with exclusive access to both, and receives a [`Ctx`] through which it queues
//! output, reports statistics and block candidates, and marks the connection subscribed.
//! Dispatch is static (the shard is generic over `P`); no callback may block.

use std::{net::SocketAddr, sync::Arc, time::Instant};

pub use warppool_core::plane::CloseReason;

use crate::{outbound::Outbound, shard::Events};

/// Index of a shard (0-based, below `SHARDS_MAX`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ShardId(pub(crate) u16);

impl ShardId {
    /// The shard's index.
    pub fn index(self) -> usize {
        usize::from(self.0)
    }
}

/// What the shard does with a connection after a callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Flow {
    /// Keep the connection.
    Continue,
    /// Flush what is queued, then close the connection.
    Close,
}

/// Facts about a connection, fixed for its life.
#[derive(Debug, Clone, Copy)]
pub struct ConnInfo {
    /// The peer's address.
    pub peer: SocketAddr,
    /// The local address it connected to.
    pub local: SocketAddr,
    /// Index of the listener (in [`crate::NetConfig::listeners`]) it came in on.
    pub listener: usize,
    /// Whether the connection is TLS.
    pub tls: bool,
    /// The shard it lives on.
    pub shard: ShardId,
}

/// What a callback can do besides returning a [`Flow`].
pub struct Ctx<'a, S, C> {
    pub(crate) out: &'a mut Outbound,
    pub(crate) events: &'a mut Events<S, C>,
    pub(crate) subscribed: &'a mut bool,
    pub(crate) info: &'a ConnInfo,
    pub(crate) now: Instant,
}

impl<S, C> std::fmt::Debug for Ctx<'_, S, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ctx")
            .field("info", self.info)
            .field("now", &self.now)
            .finish()
    }
}

impl<S: Send + 'static, C: Send + 'static> Ctx<'_, S, C> {
    /// The connection's outbound queue.
    pub fn out(&mut self) -> &mut Outbound {
        self.out
    }

    /// The time the shard took when it started this batch of callbacks.
    pub fn now(&self) -> Instant {
        self.now
    }

    /// Facts about the connection.
    pub fn info(&self) -> &ConnInfo {
        self.info
    }

    /// Marks the connection subscribed: from now on the idle timeout applies instead of the
    /// subscribe timeout.
    pub fn mark_subscribed(&mut self) {
        *self.subscribed = true;
    }

    /// Whether [`Ctx::mark_subscribed`] was called for this connection.
    pub fn is_subscribed(&self) -> bool {
        *self.subscribed
    }

    /// Adds a statistics entry to the shard's current batch. Batches are sent when full and
    /// on every tick; when the control plane's queue is full the batch is counted and dropped.
    pub fn stat(&mut self, entry: S) {
        self.events.stat(entry);
    }

    /// Sends a block candidate to the control plane at once (before any reply is written).
    /// Never panics: when the queue is full the candidate waits in the shard's overflow
    /// (`BLOCK_CANDIDATES_OVERFLOW_PER_SHARD_MAX`, retried every tick), and only when that is
    /// full too is it counted as lost (`CountersSnapshot::candidates_lost`) and logged.
    pub fn candidate(&mut self, candidate: C) {
        self.events.candidate(candidate);
    }

    /// Counts a job that could not be built for this connection
    /// (`CountersSnapshot::job_build_failures`); the protocol logs it, rate-limited.
    pub fn job_build_failed(&mut self) {
        self.events.job_build_failed();
    }
}

/// A line protocol plugged into the shards (see the module docs).
pub trait Protocol: 'static {
    /// Per-connection state.
    type Conn: 'static;
    /// What the control plane publishes (later the core `JobSet`).
    type Jobs: Send + Sync + 'static;
    /// A statistics entry sent to the control plane in batches.
    type Stat: Send + 'static;
    /// A block candidate sent to the control plane on its own queue.
    type Candidate: Send + 'static;

    /// A connection was accepted. `ctx.out()` may already be written to (a greeting).
    fn on_connect(&mut self, ctx: &mut Ctx<'_, Self::Stat, Self::Candidate>) -> Self::Conn;

    /// One complete line arrived, without its `\n` (and without a trailing `\r`). Empty lines
    /// are skipped. The bytes are not checked for UTF-8.
    fn on_line(
        &mut self,
        conn: &mut Self::Conn,
        line: &[u8],
        ctx: &mut Ctx<'_, Self::Stat, Self::Candidate>,
    ) -> Flow;

    /// More than `LINE_BYTES_MAX` bytes arrived without a newline. The protocol may queue an
    /// error reply; the connection is then flushed and closed.
    fn on_line_too_long(
        &mut self,
        conn: &mut Self::Conn,
        ctx: &mut Ctx<'_, Self::Stat, Self::Candidate>,
    );

    /// The lines of one read were handed to [`Protocol::on_line`] (called once after the last
    /// of them, before the replies are written; not after a line that closed the connection).
    /// Lets the protocol answer a pipelined batch as a whole (the Stratum session sends a
    /// connection's first work here, so a protocol that wraps it must forward this call).
    fn on_lines_end(
        &mut self,
        conn: &mut Self::Conn,
        ctx: &mut Ctx<'_, Self::Stat, Self::Candidate>,
    ) {
        let _ = (conn, ctx);
    }

    /// New jobs were published; called once per shard before the per-connection calls, to
    /// update shard-wide caches.
    fn on_shard_jobs(&mut self, jobs: &Arc<Self::Jobs>) {
        let _ = jobs;
    }

    /// New jobs were published; called for every connection of the shard.
    fn on_jobs(
        &mut self,
        conn: &mut Self::Conn,
        jobs: &Arc<Self::Jobs>,
        ctx: &mut Ctx<'_, Self::Stat, Self::Candidate>,
    ) -> Flow;

    /// Called for every connection on each shard tick (`NetConfig::tick_interval`).
    fn on_tick(
        &mut self,
        conn: &mut Self::Conn,
        ctx: &mut Ctx<'_, Self::Stat, Self::Candidate>,
    ) -> Flow {
        let _ = (conn, ctx);
        Flow::Continue
    }

    /// A statistics entry announcing that `conn` is closing, sent just before
    /// [`Protocol::on_close`] (so the control plane can forget what it kept per connection).
    /// None by default.
    fn closing_stat(&mut self, conn: &Self::Conn, reason: CloseReason) -> Option<Self::Stat> {
        let _ = (conn, reason);
        None
    }

    /// The connection's id as the control plane knows it (the admin API kicks by it); `None`
    /// (the default) when the protocol has none: such connections are only closed by a kick
    /// of every connection.
    fn connection_id(&self, conn: &Self::Conn) -> Option<warppool_core::plane::ConnectionId> {
        let _ = conn;
        None
    }

    /// The connection is gone; this is the last call for it.
    fn on_close(&mut self, conn: Self::Conn, info: &ConnInfo, reason: CloseReason);
}
