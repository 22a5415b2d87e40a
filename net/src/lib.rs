//! WarpPool's data plane substrate: shards, listeners, line framing, TLS and job fan-out.
//!
//! # The shard model
//!
//! The data plane runs one **shard** per core: a thread pinned to its core that waits in its
//! own epoll instance, which holds the plain listeners and connections and the descriptor of a
//! [compio](https://docs.rs/compio) runtime (the "fusion" driver: io_uring where the kernel
//! allows it, epoll otherwise, or epoll when [`NetConfig::force_polling`] is set; see
//! [`DataPlane::drivers`]). Plain connections are served by the shard loop itself (no task per
//! connection): on the io_uring driver they read through the shard's own io_uring ring (one
//! multishot recv per connection into a provided-buffer ring the shard owns; the ring's eventfd
//! sits in the epoll set), on the polling driver — or when the kernel fails the ring's probe at
//! shard start — with `recv(2)` on edge-triggered readiness ([`DataPlane::plain_io`] says
//! which); replies are written through with `send(2)` on both. compio runs the control task,
//! TLS accepts and TLS connections (decision 0006). Each shard opens its own `SO_REUSEPORT`
//! socket on every configured address, so the kernel spreads incoming connections over the
//! shards, and a connection lives on the shard that accepted it for its whole life. Shard
//! state (connection slab, buffers, the protocol's shard-wide state) is thread-local and
//! `!Send`: no locks on the per-connection path.
//!
//! The only cross-thread traffic is by message or at admission:
//! - control → shards: [`DataPlane::publish`] stores an `Arc<J>` in an `ArcSwap` and sends a
//!   wake-up over each shard's bounded control queue (flume; its async receive runs on compio,
//!   and compio already depends on it). The shard reads the jobs through a per-thread
//!   `arc_swap::Cache` and calls [`Protocol::on_jobs`] for each connection;
//! - control → shards, live settings: [`DataPlane::apply_settings`] the same way (an
//!   `ArcSwap` of [`LiveSettings`] and a coalescing wake-up; each shard copies the value at
//!   every control message); the Stratum port policies new connections read at connect
//!   ([`stratum::PortPolicies`], one `ArcSwap` load);
//! - shards → control: statistics in batches ([`StatsBatch`], whose buffer returns to the
//!   shard when dropped) on per-shard bounded queues (full: counted and dropped), block
//!   candidates on their own bounded queue (full: assertion failure; see
//!   `BLOCK_CANDIDATES_PER_SHARD_MAX`);
//! - admission: the pool-wide per-IP cap is a table of atomic counters touched only at accept
//!   and close (see the `admission` module docs for why and its trade-off).
//!
//! # Responsibilities
//!
//! Everything below the protocol: accept with admission control (accept-rate token bucket
//! per shard, per-IP cap, per-shard connection cap, all refused by closing at once), line
//! framing with a bounded buffer (`LINE_BYTES_MAX`), a bounded outbound queue with
//! coalesced, ordered writes and droppable job notifications ([`Outbound`]), in-flight request
//! bounds, subscribe and idle timeouts, TLS (rustls, ring provider only) with certificate
//! reload, and clean shutdown. The Stratum session implements [`Protocol`].
//!
//! # Allocation
//!
//! At shard start: the slab, the shard-wide input buffer, spare outbound and carry buffers
//! (`SHARD_SPARE_OUTBOUND_BUFFERS`, `SHARD_SPARE_CARRY_BUFFERS`), the statistics buffers and,
//! on the ring path, the provided buffers (`RING_BUFFERS` × `RING_BUFFER_BYTES`, 1 MiB, touched
//! at start so they are resident from the beginning).
//! Per plain connection, at accept: the slot and the protocol's connection state (about
//! 2.6 KiB of RSS per idle Stratum connection on either path, measured by
//! `tests/idle_memory.rs`); its outbound buffer is lent from the shard only while a callback
//! runs or replies wait for the socket, its carry buffer only while an unfinished line waits.
//! Per TLS connection, at accept: the input buffer (`LINE_BYTES_MAX + READ_BYTES_MIN`), two
//! outbound buffers (`OUTBOUND_QUEUE_BYTES_MAX` each), ciphertext read and write buffers, the
//! rustls session (boxed), and the reader and writer tasks.
//! Per line and per I/O operation on a plain connection: nothing — `tests/stratum_allocation.rs`
//! asserts zero allocations on the whole shard thread across 100,000 accepted and rejected
//! shares under both drivers. What can still allocate after start: more spare buffers when
//! more connections than the spare count hold one at once, a replacement statistics buffer
//! when the consumer keeps batches, a connection's duplicate set per job slot at its first
//! share there (see `JobBook::new_lazy`), and on TLS connections compio's per-operation
//! bookkeeping and rustls's record buffers.
//!
//! # Failure model
//!
//! Operating errors (a bad peer, a socket error, a TLS error, a slow reader) close that one
//! connection and show in the counters. A panic on a shard thread (a protocol bug, or a
//! violated assertion such as a full block-candidate queue) aborts the process: compio
//! would otherwise catch it inside the task and keep a half-broken shard running.
//!
//! # Known limitations
//!
//! - A graceful close (`Flow::Close`, an over-long line) flushes the queued replies, sends
//!   FIN and drains input for at most `CLOSE_FLUSH_MS_MAX` / `CLOSE_DRAIN_BYTES_MAX`; a peer
//!   that keeps sending past that gets a reset. On plain connections the deadline is checked
//!   at each tick, so it can run up to one `tick_interval` late.
//! - Accept is single-shot `accept(2)` (plain listeners: edge-triggered, until `EAGAIN`;
//!   TLS listeners: compio's accept), not multishot.
//! - On the ring path only reads go through io_uring; writes stay write-through `send(2)`
//!   (SEND SQEs were not built or measured), output edges still come from epoll.
//!
//! # Usage
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use arc_swap::ArcSwap;
//! # use warppool_net::*;
//! # struct Echo;
//! # impl Protocol for Echo {
//! #     type Conn = (); type Jobs = u64; type Stat = (); type Candidate = ();
//! #     fn on_connect(&mut self, _: &mut Ctx<'_, (), ()>) {}
//! #     fn on_line(&mut self, _: &mut (), l: &[u8], ctx: &mut Ctx<'_, (), ()>) -> Flow {
//! #         let _ = ctx.out().push(l); Flow::Continue }
//! #     fn on_line_too_long(&mut self, _: &mut (), _: &mut Ctx<'_, (), ()>) {}
//! #     fn on_jobs(&mut self, _: &mut (), _: &Arc<u64>, _: &mut Ctx<'_, (), ()>) -> Flow {
//! #         Flow::Continue }
//! #     fn on_close(&mut self, _: (), _: &ConnInfo, _: CloseReason) {}
//! # }
//! let listener = ListenerConfig { addr: "0.0.0.0:3333".parse().unwrap(), tls: None };
//! let config = NetConfig::new(vec![listener]);
//! let jobs = Arc::new(ArcSwap::from_pointee(0u64));
//! let plane = start(config, |_shard| Echo, jobs).unwrap();
//! plane.publish(Arc::new(1));
//! plane.stop();
//! ```

pub mod admin;
mod admission;
mod candidates;
mod config;
mod counters;
mod error;
mod outbound;
mod plain;
mod plane;
mod protocol;
mod ratelog;
mod settings;
mod shard;
pub mod stratum;
mod tls;
mod uring;

pub use admin::{AdminQueueFull, BanList, IpBan, PlaneAdmin, ShardReport};
pub use config::{ListenerConfig, NetConfig, TlsFiles};
pub use counters::CountersSnapshot;
pub use error::NetError;
pub use outbound::{MessageWriter, Outbound, Overflow};
pub use plane::{DataPlane, DataPlaneOf, Driver, PlainIo, start};
pub use protocol::{CloseReason, ConnInfo, Ctx, Flow, Protocol, ShardId};
pub use settings::LiveSettings;
pub use shard::StatsBatch;
