//! WarpPool's data plane substrate: shards, listeners, line framing, TLS and job fan-out.
//!
//! # The shard model
//!
//! The data plane runs one **shard** per core: a thread pinned to its core with its own
//! [compio](https://docs.rs/compio) runtime (the "fusion" driver: io_uring where the kernel
//! allows it, epoll otherwise, or epoll when [`NetConfig::force_polling`] is set; see
//! [`DataPlane::drivers`]). Each shard opens its own `SO_REUSEPORT` socket on every configured
//! address, so the kernel spreads incoming connections over the shards, and a connection
//! lives on the shard that accepted it for its whole life. Shard state (connection slab,
//! buffers, the protocol's shard-wide state) is thread-local and `!Send`: no locks on the
//! per-connection path.
//!
//! The only cross-thread traffic is by message or at admission:
//! - control → shards: [`DataPlane::publish`] stores an `Arc<J>` in an `ArcSwap` and sends a
//!   wake-up over each shard's bounded control queue (flume; its async receive runs on compio,
//!   and compio already depends on it). The shard reads the jobs through a per-thread
//!   `arc_swap::Cache` and calls [`Protocol::on_jobs`] for each connection;
//! - shards → control: statistics in batches on per-shard bounded queues (full: counted and
//!   dropped), block candidates on their own bounded queue (full: assertion failure; see
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
//! Per connection, at accept: the slot, the input buffer (`LINE_BYTES_MAX + READ_BYTES_MIN`),
//! two outbound buffers (`OUTBOUND_QUEUE_BYTES_MAX` each: the queue and the one being
//! written, swapped without copying), for TLS a ciphertext read buffer and write buffer and the
//! rustls session, and the reader and writer tasks. Per line: nothing in this crate. What
//! remains after set-up: compio's per-operation bookkeeping inside the driver, rustls's
//! internal record buffers on TLS connections, one `Vec` per statistics batch sent, and a
//! waker clone when a task parks on a new waker.
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
//!   that keeps sending past that gets a reset.
//! - Accept is single-shot `accept(2)`/`IORING_OP_ACCEPT` in a loop, not multishot.
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

mod admission;
mod config;
mod counters;
mod error;
mod outbound;
mod plain;
mod plane;
mod protocol;
mod shard;
pub mod stratum;
mod tls;

pub use config::{ListenerConfig, NetConfig, TlsFiles};
pub use counters::CountersSnapshot;
pub use error::NetError;
pub use outbound::{MessageWriter, Outbound, Overflow};
pub use plane::{DataPlane, DataPlaneOf, Driver, start};
pub use protocol::{CloseReason, ConnInfo, Ctx, Flow, Protocol, ShardId};
pub use shard::StatsBatch;
