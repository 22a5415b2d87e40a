//! One shard: a thread with its own event loop, compio runtime, listeners, connection slab
//! and protocol.
//!
//! The shard thread waits in one place: its own epoll instance ([`crate::plain`]), which
//! holds the plain listeners, every plain connection (edge-triggered), compio's driver
//! descriptor (its io_uring or its epoll) and an eventfd that compio's io_uring signals on every
//! completion. `run` is that loop: it handles plain I/O
//! itself, and ticks the compio runtime only when compio's descriptor is ready, a compio
//! timer is due or a compio task was woken. compio runs what is not on the plain share path:
//! the control loop (job fan-out, stop), TLS accepts and TLS connections.
//!
//! All shard state sits in one `Rc<RefCell<ShardState>>`. The loop borrows it while it
//! handles events; compio tasks borrow it only between awaits, and the loop never runs compio
//! while it holds the borrow, so no lock is ever taken.
//!
//! A **plain connection** has no task: its input arrives either as completions of its
//! multishot recv on the shard's own io_uring ring ([`crate::uring`]; io_uring driver, probe
//! passed), or by `recv(2)` on epoll readiness; either way the bytes are put in the shard-wide
//! input buffer (after the connection's carry), complete lines are handed to the protocol from
//! there (`plain_lines`, shared by both paths), and only an
//! unfinished line is copied into the connection's carry buffer (lent from the shard's spare
//! buffers while non-empty). Replies are queued in an [`Outbound`] whose buffer is lent only
//! while a callback runs or while the kernel has not taken all of it, and written through
//! with `send(2)` after the lines of one read. While `INFLIGHT_REQUESTS_PER_CONNECTION_MAX`
//! lines wait for their replies to reach the socket, input is paused until the socket takes
//! the backlog (an `EPOLLOUT` edge, or a flush by the tick or a job fan-out); on the ring path
//! the paused connection's recv is cancelled and re-armed on resume.
//!
//! A **TLS connection** keeps two compio tasks:
//! - the **reader task** reads into a fixed input buffer (`LINE_BYTES_MAX + READ_BYTES_MIN`),
//!   hands complete lines to the protocol in place, moves the unfinished tail to the front,
//!   and stops reading while `INFLIGHT_REQUESTS_PER_CONNECTION_MAX` lines wait for their
//!   replies to reach the socket;
//! - the **writer task** waits until the outbound queue has bytes, swaps the queue with its
//!   spare buffer (no copy) and writes everything in one `write_all`.
//!
//! Closing: a close is recorded in the slot (`Closing`). A plain connection closed hard is
//! removed at once; one closed gracefully flushes its backlog, sends FIN and drains input
//! (bounded by `CLOSE_FLUSH_MS_MAX`, checked at each tick, and `CLOSE_DRAIN_BYTES_MAX`). On a
//! TLS connection `shutdown(2)` wakes whatever is blocked: `SHUT_RD` for a graceful close
//! (the writer still flushes), `SHUT_RDWR` for a hard one; the reader task finishes the
//! connection after the writer has exited.

use std::{
    cell::{Cell, RefCell},
    future::poll_fn,
    net::{Shutdown, SocketAddr},
    os::fd::{AsRawFd, RawFd},
    rc::Rc,
    sync::Arc,
    task::{Poll, Waker},
    time::{Duration, Instant},
};

use arc_swap::ArcSwap;
use compio::{
    BufResult,
    io::{AsyncRead, AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};
use rustls::{ServerConfig, ServerConnection};
use warppool_core::limits::{
    ACCEPT_RETRY_MS, CLOSE_DRAIN_BYTES_MAX, CLOSE_FLUSH_MS_MAX,
    INFLIGHT_REQUESTS_PER_CONNECTION_MAX, LINE_BYTES_MAX, OUTBOUND_QUEUE_BYTES_MAX, READ_BYTES_MIN,
    SHARD_EPOLL_EVENTS_MAX, SHARD_READS_PER_EVENT_MAX, SHARD_SPARE_CARRY_BUFFERS,
    SHARD_SPARE_OUTBOUND_BUFFERS, SHUTDOWN_DRAIN_MS_MAX, TLS_READ_BYTES,
};

pub(crate) use self::events::Events;
pub use self::events::StatsBatch;
use self::fatal::{AbortOnUnwind, spawn_fatal};
use crate::{
    admission::{IpTable, Refusal, RefusalLog, TokenBucket},
    config::NetConfig,
    counters::{ShardCounters, bump},
    outbound::Outbound,
    plain::{
        BufferPool, COMPIO_EVENTS, CONN_EVENTS, CONN_EVENTS_RING, Epoll, Eventfd, IoResult,
        LISTENER_EVENTS, TOKEN_COMPIO, TOKEN_COMPLETIONS, TOKEN_LISTENER, TOKEN_RING, conn_token,
        recv_append, send,
    },
    plane::{Driver, PlainIo},
    protocol::{CloseReason, ConnInfo, Ctx, Flow, Protocol, ShardId},
    settings::LiveSettings,
    uring::RecvRing,
};

/// Size of a connection's input (line) buffer, and of the shard-wide one of plain connections.
const INPUT_BYTES: usize = LINE_BYTES_MAX + READ_BYTES_MIN;

/// First byte of a TLS handshake record (a ClientHello on a plain port).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Messages from the control plane to a shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ShardMsg {
    /// New jobs were published.
    Jobs,
    /// New live settings (`crate::settings`).
    Settings,
    /// Operator commands are queued, or the ban list changed (see [`crate::admin`]).
    Admin,
    /// Close listeners and connections, then end the thread.
    Stop,
}

#[derive(Debug, Clone, Copy)]
struct Closing {
    reason: CloseReason,
    hard: bool,
}

/// The I/O side of a plain connection (driven by the shard's loop, no task).
struct PlainConn {
    stream: std::net::TcpStream,
    /// Input not handed to the protocol yet (an unfinished line, or lines held back at the
    /// in-flight bound); lent from the shard's carry buffers while non-empty.
    carry: Vec<u8>,
    /// Distinguishes this connection's epoll events from those of an earlier one in the slot.
    generation: u32,
    first_read: bool,
    /// Input stopped at the in-flight bound: `carry` may hold complete lines and the socket
    /// unread bytes (no new edge will come), so reading resumes when the backlog is written.
    paused: bool,
    /// Graceful close: when flushing and draining give up.
    close_deadline: Option<Instant>,
    /// Graceful close: FIN sent, input is drained.
    lingering: bool,
    drained: usize,
    /// Ring path: a multishot recv is outstanding (until a completion without
    /// `IORING_CQE_F_MORE`).
    armed: bool,
    /// Ring path: the recv reported end of stream or an error (nothing more will arrive).
    peer_eof: bool,
}

enum SlotIo {
    /// TLS: a reader and a writer task; this handle on the socket is for `shutdown(2)`.
    Tasks(TcpStream),
    Plain(PlainConn),
}

struct Slot<C> {
    conn: Option<C>,
    info: ConnInfo,
    out: Outbound,
    /// Boxed: a rustls session is about 1.2 KiB, and most connections are plain.
    tls: Option<Box<ServerConnection>>,
    io: SlotIo,
    ip_bucket: usize,
    connected_at: Instant,
    last_line_at: Instant,
    subscribed: bool,
    /// Lines handed to the protocol whose output has not reached the socket yet.
    inflight: usize,
    writing: bool,
    closing: Option<Closing>,
    writer_waker: Option<Waker>,
    reader_waker: Option<Waker>,
}

impl<C> Slot<C> {
    fn wake_writer(&mut self) {
        if let Some(waker) = self.writer_waker.take() {
            waker.wake();
        }
    }

    fn wake_reader(&mut self) {
        if let Some(waker) = self.reader_waker.take() {
            waker.wake();
        }
    }

    fn is_plain(&self) -> bool {
        matches!(self.io, SlotIo::Plain(_))
    }

    fn raw_fd(&self) -> RawFd {
        match &self.io {
            SlotIo::Tasks(socket) => socket.as_raw_fd(),
            SlotIo::Plain(plain) => plain.stream.as_raw_fd(),
        }
    }

    fn has_output(&self) -> bool {
        match &self.tls {
            Some(session) => {
                session.wants_write() || (!session.is_handshaking() && !self.out.is_empty())
            }
            None => !self.out.is_empty(),
        }
    }

    /// Records a close (the first reason wins; a graceful close can become hard). A TLS
    /// connection's blocked tasks are woken through `shutdown(2)`; a plain connection is then
    /// settled by the shard loop ([`plain_settle`]).
    fn close(&mut self, reason: CloseReason, hard: bool) {
        let closing = match self.closing {
            None => Closing { reason, hard },
            Some(previous) => Closing {
                reason: previous.reason,
                hard: previous.hard || hard,
            },
        };
        self.closing = Some(closing);
        let how = match (closing.hard, self.is_plain()) {
            (true, _) => Shutdown::Both,
            (false, false) => Shutdown::Read,
            // A graceful plain close flushes, then sends FIN itself.
            (false, true) => return,
        };
        // Errors mean the socket is already shut down or disconnected: nothing to wake.
        let _ = socket2::SockRef::from(&BorrowedSocket(self.raw_fd())).shutdown(how);
        self.wake_writer();
        self.wake_reader();
    }
}

/// A borrowed socket descriptor for `socket2::SockRef`.
struct BorrowedSocket(RawFd);

impl std::os::fd::AsFd for BorrowedSocket {
    fn as_fd(&self) -> std::os::fd::BorrowedFd<'_> {
        // SAFETY: the descriptor belongs to a live slot for the duration of the borrow.
        unsafe { std::os::fd::BorrowedFd::borrow_raw(self.0) }
    }
}

fn park(slot_waker: &mut Option<Waker>, waker: &Waker) {
    match slot_waker {
        Some(old) if old.will_wake(waker) => {}
        _ => *slot_waker = Some(waker.clone()),
    }
}

/// A plain listening socket in the shard's epoll instance.
struct PlainListener {
    /// Index in [`NetConfig::listeners`].
    index: usize,
    listener: std::net::TcpListener,
}

pub(crate) struct ShardState<P: Protocol> {
    protocol: P,
    slots: Vec<Option<Box<Slot<P::Conn>>>>,
    free: Vec<usize>,
    live: usize,
    events: Events<P::Stat, P::Candidate>,
    config: Arc<NetConfig>,
    /// In force (`crate::settings::apply`).
    pub(crate) settings: LiveSettings,
    ip_table: Arc<IpTable>,
    counters: Arc<ShardCounters>,
    /// Operator commands and the ban list ([`admin`]).
    admin: admin::AdminState,
    stopping: bool,
    drain_waker: Option<Waker>,
    shard: ShardId,
    pub(crate) bucket: TokenBucket,
    /// Rate-limited log lines about refused connections.
    refusals: RefusalLog,
    epoll: Epoll,
    plain_listeners: Vec<PlainListener>,
    /// When accepting on the plain listeners is retried after running out of descriptors.
    accept_retry_at: Option<Instant>,
    next_generation: u32,
    /// The shard-wide input buffer of plain connections (`INPUT_BYTES`).
    scratch: Vec<u8>,
    outbound_pool: BufferPool,
    carry_pool: BufferPool,
    /// The shard's io_uring receive ring: plain connections read through it (on the io_uring
    /// driver, when the kernel supports it), else with `recv(2)` on epoll readiness.
    ring: Option<RecvRing>,
}

impl<P: Protocol> ShardState<P> {
    fn new(
        protocol: P,
        events: Events<P::Stat, P::Candidate>,
        config: Arc<NetConfig>,
        ip_table: Arc<IpTable>,
        counters: Arc<ShardCounters>,
        shard: ShardId,
        epoll: Epoll,
    ) -> Self {
        let cap = config.connections_per_shard_max;
        assert!(cap > 0);
        let mut slots = Vec::with_capacity(cap);
        slots.resize_with(cap, || None);
        // Lowest index first, so a lightly loaded shard uses the front of the slab.
        let free = (0..cap).rev().collect();
        let bucket = TokenBucket::new(
            config.accept_rate_per_sec,
            config.accept_burst,
            Instant::now(),
        );
        Self {
            protocol,
            slots,
            free,
            live: 0,
            events,
            settings: LiveSettings::of(&config),
            config,
            ip_table,
            counters,
            admin: admin::AdminState::idle(),
            stopping: false,
            drain_waker: None,
            shard,
            bucket,
            refusals: RefusalLog::new(),
            epoll,
            plain_listeners: Vec::new(),
            accept_retry_at: None,
            next_generation: 0,
            scratch: Vec::with_capacity(INPUT_BYTES),
            outbound_pool: BufferPool::new(OUTBOUND_QUEUE_BYTES_MAX, SHARD_SPARE_OUTBOUND_BUFFERS),
            carry_pool: BufferPool::new(INPUT_BYTES, SHARD_SPARE_CARRY_BUFFERS),
            ring: None,
        }
    }

    fn slot(&mut self, index: usize) -> &mut Slot<P::Conn> {
        self.slots[index]
            .as_deref_mut()
            .expect("slot of a live connection")
    }
}

/// Runs `f` with the protocol, the connection and a [`Ctx`], then applies the outcome. A
/// plain connection gets an outbound buffer lent for the call (kept while it holds bytes).
fn call<P: Protocol>(
    protocol: &mut P,
    events: &mut Events<P::Stat, P::Candidate>,
    counters: &ShardCounters,
    pool: &mut BufferPool,
    slot: &mut Slot<P::Conn>,
    now: Instant,
    f: impl FnOnce(&mut P, &mut P::Conn, &mut Ctx<'_, P::Stat, P::Candidate>) -> Flow,
) {
    let plain = slot.is_plain();
    if plain && !slot.out.has_buffer() {
        slot.out.install(pool.take());
    }
    let flow = {
        let Slot {
            conn,
            out,
            subscribed,
            info,
            ..
        } = slot;
        let conn = conn
            .as_mut()
            .expect("connection state present until on_close");
        let mut ctx = Ctx {
            out,
            events,
            subscribed,
            info,
            now,
        };
        f(protocol, conn, &mut ctx)
    };
    let dropped = slot.out.take_dropped_count();
    if dropped > 0 {
        bump(&counters.notifies_dropped, dropped);
    }
    if slot.out.is_overflowed() {
        if slot.closing.is_none() {
            bump(&counters.slow_reader_closes, 1);
        }
        slot.close(CloseReason::SlowReader, true);
    } else if flow == Flow::Close {
        slot.close(CloseReason::Protocol, false);
    }
    if plain {
        if slot.out.is_empty() {
            pool.give(slot.out.release());
        }
    } else if slot.has_output() {
        slot.wake_writer();
    }
}

/// Tells the protocol about a read's lines: that one was too long
/// ([`Protocol::on_line_too_long`]; the connection then closes), or that all of the read's
/// lines are handled ([`Protocol::on_lines_end`]).
fn lines_event<P: Protocol>(
    protocol: &mut P,
    events: &mut Events<P::Stat, P::Candidate>,
    counters: &ShardCounters,
    pool: &mut BufferPool,
    slot: &mut Slot<P::Conn>,
    now: Instant,
    too_long: bool,
) {
    call(protocol, events, counters, pool, slot, now, |p, c, ctx| {
        if too_long {
            p.on_line_too_long(c, ctx);
        } else {
            p.on_lines_end(c, ctx);
        }
        Flow::Continue
    });
    if too_long {
        slot.close(CloseReason::LineTooLong, false);
    }
}

enum Progress {
    /// All complete lines were handled; read more bytes.
    NeedBytes,
    /// Too many lines wait for replies; wait for the writer.
    Paused,
    /// The connection is closing.
    Closed,
}

/// Hands the complete lines of `input` to the protocol and keeps the unfinished tail.
fn process_lines<P: Protocol>(
    st: &mut ShardState<P>,
    index: usize,
    input: &mut Vec<u8>,
) -> Progress {
    let now = Instant::now();
    let ShardState {
        protocol,
        slots,
        events,
        counters,
        outbound_pool,
        ..
    } = st;
    let slot = slots[index].as_deref_mut().expect("live slot");
    let mut progress = Progress::NeedBytes;
    let mut start = 0;
    let mut lines = 0;
    while let Some(position) = input[start..].iter().position(|&b| b == b'\n') {
        if slot.closing.is_some() {
            break;
        }
        if slot.inflight >= INFLIGHT_REQUESTS_PER_CONNECTION_MAX {
            progress = Progress::Paused;
            break;
        }
        let end = start + position;
        let line = &input[start..end];
        start = end + 1;
        let line = line.strip_suffix(b"\r").unwrap_or(line);
        if line.is_empty() {
            continue;
        }
        lines += 1;
        slot.last_line_at = now;
        slot.inflight += 1;
        if line.len() > LINE_BYTES_MAX {
            lines_event(protocol, events, counters, outbound_pool, slot, now, true);
            break;
        }
        call(
            protocol,
            events,
            counters,
            outbound_pool,
            slot,
            now,
            |p, c, ctx| p.on_line(c, line, ctx),
        );
    }
    if lines > 0 && slot.closing.is_none() {
        lines_event(protocol, events, counters, outbound_pool, slot, now, false);
    }
    bump(&counters.lines, lines);
    input.copy_within(start.., 0);
    input.truncate(input.len() - start);
    // Paused at the in-flight bound, the buffer still starts with complete lines (a pipelining
    // client can have more than LINE_BYTES_MAX of them buffered): not an over-long line.
    let paused = matches!(progress, Progress::Paused);
    if slot.closing.is_none() && !paused && input.len() > LINE_BYTES_MAX {
        // No newline in more than LINE_BYTES_MAX bytes: memory stays bounded by dropping them.
        lines_event(protocol, events, counters, outbound_pool, slot, now, true);
        input.clear();
    }
    if slot.closing.is_some() {
        return Progress::Closed;
    }
    if slot.out.is_empty() && !slot.writing {
        // Nothing waits to be written: every line handled so far is answered.
        slot.inflight = 0;
    }
    debug_assert!(paused || input.len() <= LINE_BYTES_MAX);
    progress
}

enum Plaintext {
    Got,
    Empty,
    Closed,
}

/// Moves decrypted bytes from the TLS session into the input buffer.
fn pull_plaintext(session: &mut ServerConnection, input: &mut Vec<u8>) -> Plaintext {
    use std::io::Read;
    let len = input.len();
    assert!(len <= LINE_BYTES_MAX);
    input.resize(INPUT_BYTES, 0);
    let result = session.reader().read(&mut input[len..]);
    match result {
        Ok(0) => {
            input.truncate(len);
            Plaintext::Closed
        }
        Ok(n) => {
            input.truncate(len + n);
            Plaintext::Got
        }
        Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
            input.truncate(len);
            Plaintext::Empty
        }
        Err(_) => {
            input.truncate(len);
            Plaintext::Closed
        }
    }
}

/// Feeds ciphertext to the session; returns how much was consumed, or `None` on a TLS error.
fn feed_ciphertext(session: &mut ServerConnection, cipher: &[u8]) -> Option<usize> {
    let mut reader = cipher;
    let consumed = session.read_tls(&mut reader).ok()?;
    session.process_new_packets().ok()?;
    Some(consumed)
}

async fn wait_for_room<P: Protocol>(state: &RefCell<ShardState<P>>, index: usize) -> bool {
    poll_fn(|cx| {
        let mut st = state.borrow_mut();
        let slot = st.slot(index);
        if slot.closing.is_some() {
            Poll::Ready(false)
        } else if slot.inflight < INFLIGHT_REQUESTS_PER_CONNECTION_MAX {
            Poll::Ready(true)
        } else {
            park(&mut slot.reader_waker, cx.waker());
            Poll::Pending
        }
    })
    .await
}

enum TlsStep {
    /// Plaintext and ciphertext are used up: read from the socket.
    Read,
    /// Progress was made: handle lines, then come back.
    Again,
    /// The connection is closing.
    Stop,
}

/// Moves decrypted bytes into `input`, or feeds the next unfed ciphertext to the session.
fn tls_step<P: Protocol>(
    st: &mut ShardState<P>,
    index: usize,
    input: &mut Vec<u8>,
    cipher: &[u8],
    cipher_fed: &mut usize,
) -> TlsStep {
    let ShardState {
        slots, counters, ..
    } = st;
    let slot = slots[index].as_deref_mut().expect("live slot");
    let session = slot.tls.as_mut().expect("tls session");
    match pull_plaintext(session, input) {
        Plaintext::Got => return TlsStep::Again,
        Plaintext::Closed => {
            slot.close(CloseReason::PeerClosed, false);
            return TlsStep::Stop;
        }
        Plaintext::Empty => {}
    }
    if *cipher_fed == cipher.len() {
        return TlsStep::Read;
    }
    let Some(consumed) = feed_ciphertext(session, &cipher[*cipher_fed..]) else {
        bump(&counters.tls_errors, 1);
        slot.close(CloseReason::TlsError, true);
        return TlsStep::Stop;
    };
    *cipher_fed += consumed;
    assert!(*cipher_fed <= cipher.len());
    if slot.has_output() {
        slot.wake_writer(); // handshake messages
    }
    TlsStep::Again
}

async fn reader_loop<P: Protocol>(
    state: &RefCell<ShardState<P>>,
    index: usize,
    stream: &mut TcpStream,
    input: &mut Vec<u8>,
    tls: bool,
) {
    let mut cipher: Vec<u8> = Vec::with_capacity(if tls { TLS_READ_BYTES } else { 0 });
    let mut cipher_fed = 0;
    let mut first_read = true;
    loop {
        if !wait_for_room(state, index).await {
            return;
        }
        {
            let mut st = state.borrow_mut();
            match process_lines(&mut st, index, input) {
                Progress::NeedBytes => {}
                Progress::Paused => continue,
                Progress::Closed => return,
            }
            if tls {
                match tls_step(&mut st, index, input, &cipher, &mut cipher_fed) {
                    TlsStep::Read => {}
                    TlsStep::Again => continue,
                    TlsStep::Stop => return,
                }
            }
        }
        let result = if tls {
            cipher.clear();
            cipher_fed = 0;
            let BufResult(result, buffer) = stream.read(std::mem::take(&mut cipher)).await;
            cipher = buffer;
            result
        } else {
            let BufResult(result, buffer) = stream.append(std::mem::take(input)).await;
            *input = buffer;
            result
        };
        let mut st = state.borrow_mut();
        let slot = st.slot(index);
        match result {
            Ok(0) => {
                slot.close(CloseReason::PeerClosed, false);
                return;
            }
            Ok(_) => {}
            Err(_) => {
                slot.close(CloseReason::SocketError, true);
                return;
            }
        }
        if slot.closing.is_some() {
            return;
        }
        if first_read && !tls && input.first() == Some(&TLS_HANDSHAKE_RECORD) {
            slot.close(CloseReason::TlsOnPlainPort, true);
            return;
        }
        first_read = false;
        debug_assert!(input.capacity() == INPUT_BYTES || tls);
    }
}

enum WriterStep {
    /// Write the prepared buffer; `answered` lines are answered once it is written.
    Write {
        answered: usize,
    },
    Exit,
}

/// Prepares the next write: swaps the queue out (and encrypts it on TLS connections).
fn writer_prepare<C>(
    slot: &mut Slot<C>,
    plain: &mut Vec<u8>,
    cipher: &mut Vec<u8>,
) -> Option<WriterStep> {
    use std::io::Write;
    if slot.closing.is_some_and(|c| c.hard) {
        return Some(WriterStep::Exit);
    }
    if !slot.has_output() {
        return slot.closing.is_some().then_some(WriterStep::Exit);
    }
    let answered = slot.inflight;
    match &mut slot.tls {
        None => slot.out.swap_out(plain),
        Some(session) => {
            if !session.is_handshaking() && !slot.out.is_empty() {
                slot.out.swap_out(plain);
                if session.writer().write_all(plain).is_err() {
                    plain.clear();
                    slot.close(CloseReason::TlsError, true);
                    return Some(WriterStep::Exit);
                }
                plain.clear();
            }
            if slot.closing.is_some() {
                session.send_close_notify();
            }
            while session.wants_write() {
                if session.write_tls(cipher).is_err() {
                    break;
                }
            }
        }
    }
    slot.writing = true;
    Some(WriterStep::Write { answered })
}

async fn writer_loop<P: Protocol>(
    state: Rc<RefCell<ShardState<P>>>,
    index: usize,
    mut stream: TcpStream,
    tls: bool,
) {
    let mut plain: Vec<u8> = Vec::with_capacity(OUTBOUND_QUEUE_BYTES_MAX);
    let mut cipher: Vec<u8> = Vec::with_capacity(if tls {
        OUTBOUND_QUEUE_BYTES_MAX + TLS_READ_BYTES
    } else {
        0
    });
    loop {
        let step = poll_fn(|cx| {
            let mut st = state.borrow_mut();
            let slot = st.slot(index);
            match writer_prepare(slot, &mut plain, &mut cipher) {
                Some(step) => Poll::Ready(step),
                None => {
                    park(&mut slot.writer_waker, cx.waker());
                    Poll::Pending
                }
            }
        })
        .await;
        let WriterStep::Write { answered } = step else {
            return;
        };
        let buffer = if tls {
            std::mem::take(&mut cipher)
        } else {
            std::mem::take(&mut plain)
        };
        let BufResult(result, mut buffer) = stream.write_all(buffer).await;
        buffer.clear();
        if tls {
            cipher = buffer;
        } else {
            plain = buffer;
        }
        let mut st = state.borrow_mut();
        let slot = st.slot(index);
        slot.writing = false;
        assert!(slot.inflight >= answered);
        slot.inflight -= answered;
        slot.wake_reader();
        if result.is_err() {
            slot.close(CloseReason::SocketError, true);
            return;
        }
    }
}

async fn connection_task<P: Protocol>(
    state: Rc<RefCell<ShardState<P>>>,
    index: usize,
    stream: TcpStream,
    tls: bool,
) {
    let (mut reader, writer) = stream.into_split();
    let mut writer = spawn_fatal(writer_loop(Rc::clone(&state), index, writer, tls));
    let mut input: Vec<u8> = Vec::with_capacity(INPUT_BYTES);
    reader_loop(&state, index, &mut reader, &mut input, tls).await;
    let hard = {
        let mut st = state.borrow_mut();
        let slot = st.slot(index);
        let closing = slot.closing.expect("reader ends only after a close");
        slot.wake_writer();
        closing.hard
    };
    if !hard {
        let deadline = Instant::now() + Duration::from_millis(CLOSE_FLUSH_MS_MAX);
        if compio::time::timeout_at(deadline, &mut writer)
            .await
            .is_ok()
        {
            linger(&state, index, &mut reader, input, deadline).await;
            return finish(&state, index);
        }
        state
            .borrow_mut()
            .slot(index)
            .close(CloseReason::SocketError, true);
    }
    let _ = writer.await;
    finish(&state, index);
}

/// After a graceful close has flushed: sends FIN and reads and discards what the peer still
/// sends (bounded in bytes and time), so unread input does not turn the close into a reset
/// that could destroy the final reply before the peer reads it.
async fn linger<P: Protocol>(
    state: &RefCell<ShardState<P>>,
    index: usize,
    reader: &mut TcpStream,
    mut buffer: Vec<u8>,
    deadline: Instant,
) {
    {
        let mut st = state.borrow_mut();
        let fd = st.slot(index).raw_fd();
        let _ = socket2::SockRef::from(&BorrowedSocket(fd)).shutdown(Shutdown::Write);
    }
    let mut drained = 0;
    let drain = async {
        while drained < CLOSE_DRAIN_BYTES_MAX {
            buffer.clear();
            let BufResult(result, returned) = reader.read(buffer).await;
            buffer = returned;
            match result {
                Ok(n) if n > 0 => drained += n,
                _ => return,
            }
        }
    };
    let _ = compio::time::timeout_at(deadline, drain).await;
}

/// Removes a closed connection from the shard and tells the protocol (TLS connection tasks).
fn finish<P: Protocol>(state: &RefCell<ShardState<P>>, index: usize) {
    finish_in(&mut state.borrow_mut(), index);
}

/// Removes a closed connection from the shard and tells the protocol.
fn finish_in<P: Protocol>(st: &mut ShardState<P>, index: usize) {
    let mut slot = *st.slots[index].take().expect("finished slot was live");
    let closing = slot.closing.expect("finished slot was closing");
    let _ = socket2::SockRef::from(&BorrowedSocket(slot.raw_fd())).shutdown(Shutdown::Both);
    // The shutdown ends an outstanding multishot recv (end of stream); cancel it as well. Its
    // last completions carry this slot's old generation and are ignored (their buffers
    // returned); the kernel holds no pointer into the slot, and the request holds its own
    // reference to the socket, so the slot and the descriptor number can be reused at once.
    if let (SlotIo::Plain(plain), Some(ring)) = (&slot.io, st.ring.as_mut())
        && plain.armed
    {
        let _ = ring.cancel(conn_token(index, plain.generation));
    }
    if slot.is_plain() && slot.out.has_buffer() {
        slot.out.clear();
        st.outbound_pool.give(slot.out.release());
    }
    if let SlotIo::Plain(plain) = &mut slot.io
        && plain.carry.capacity() > 0
    {
        st.carry_pool.give(std::mem::take(&mut plain.carry));
    }
    st.free.push(index);
    assert!(st.live > 0);
    st.live -= 1;
    st.ip_table.release(slot.ip_bucket);
    st.counters.closed_on(slot.info.listener, st.live);
    let conn = slot
        .conn
        .take()
        .expect("connection state present until on_close");
    if let Some(stat) = st.protocol.closing_stat(&conn, closing.reason) {
        st.events.stat(stat);
    }
    st.protocol.on_close(conn, &slot.info, closing.reason);
    // Dropping the slot closes a plain socket, which also removes it from the epoll set.
    drop(slot);
    if st.live == 0
        && let Some(waker) = st.drain_waker.take()
    {
        waker.wake();
    }
}

/// One listener of a shard.
pub(crate) struct ShardListener {
    pub(crate) index: usize,
    pub(crate) listener: std::net::TcpListener,
    pub(crate) tls: Option<Arc<ArcSwap<ServerConfig>>>,
}

enum Admission {
    Admit(usize),
    Refuse,
}

fn admit<P: Protocol>(st: &mut ShardState<P>, peer: SocketAddr) -> Admission {
    let now = Instant::now();
    if st.stopping {
        return Admission::Refuse;
    }
    let shard = st.shard.index();
    if st.admin.is_banned(peer.ip()) {
        bump(&st.counters.refused_banned, 1);
        st.refusals.refused(Refusal::Banned, now, shard);
        return Admission::Refuse;
    }
    if !st.bucket.try_take(now) {
        bump(&st.counters.refused_rate, 1);
        st.refusals.refused(Refusal::Rate, now, shard);
        return Admission::Refuse;
    }
    if st.free.is_empty() {
        bump(&st.counters.refused_shard_full, 1);
        st.refusals.refused(Refusal::ShardFull, now, shard);
        return Admission::Refuse;
    }
    let ip_bucket = st.ip_table.bucket(peer.ip());
    if !st.ip_table.try_acquire(ip_bucket) {
        bump(&st.counters.refused_ip_cap, 1);
        st.refusals.refused(Refusal::IpCap, now, shard);
        return Admission::Refuse;
    }
    Admission::Admit(ip_bucket)
}

/// Puts an admitted connection into a free slot and calls `on_connect`; returns the slot.
fn install<P: Protocol>(
    st: &mut ShardState<P>,
    io: SlotIo,
    info: ConnInfo,
    ip_bucket: usize,
    session: Option<ServerConnection>,
) -> usize {
    let now = Instant::now();
    let index = st.free.pop().expect("admit checked for a free slot");
    let out = match io {
        SlotIo::Plain(_) => Outbound::new_lazy(),
        SlotIo::Tasks(_) => Outbound::new(),
    };
    let mut slot = Box::new(Slot {
        conn: None,
        info,
        out,
        tls: session.map(Box::new),
        io,
        ip_bucket,
        connected_at: now,
        last_line_at: now,
        subscribed: false,
        inflight: 0,
        writing: false,
        closing: None,
        writer_waker: None,
        reader_waker: None,
    });
    {
        // Best effort: a socket that refuses these options still works.
        let socket = BorrowedSocket(slot.raw_fd());
        let socket = socket2::SockRef::from(&socket);
        let _ = socket.set_tcp_nodelay(true);
        if let Some(bytes) = st.config.socket_send_buffer_bytes {
            let _ = socket.set_send_buffer_size(bytes as usize);
        }
    }
    {
        let ShardState {
            protocol,
            events,
            outbound_pool,
            ..
        } = &mut *st;
        if slot.is_plain() {
            slot.out.install(outbound_pool.take());
        }
        let Slot {
            out,
            subscribed,
            info,
            ..
        } = &mut *slot;
        let mut ctx = Ctx {
            out,
            events,
            subscribed,
            info,
            now,
        };
        slot.conn = Some(protocol.on_connect(&mut ctx));
        if slot.is_plain() && slot.out.is_empty() {
            outbound_pool.give(slot.out.release());
        }
    }
    assert!(st.slots[index].is_none());
    st.slots[index] = Some(slot);
    st.live += 1;
    assert!(st.live <= st.config.connections_per_shard_max);
    st.counters.accepted_on(info.listener, st.live);
    index
}

async fn accept_loop<P: Protocol>(
    state: Rc<RefCell<ShardState<P>>>,
    listener: TcpListener,
    listener_index: usize,
    tls: Arc<ArcSwap<ServerConfig>>,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(_) if state.borrow().stopping => return,
            Err(e) => {
                if is_resource_error(&e) {
                    compio::time::sleep(Duration::from_millis(ACCEPT_RETRY_MS)).await;
                }
                continue;
            }
        };
        let mut st = state.borrow_mut();
        let ip_bucket = match admit(&mut st, peer) {
            Admission::Admit(ip_bucket) => ip_bucket,
            Admission::Refuse => continue, // dropping the stream closes it
        };
        let session = match ServerConnection::new(tls.load_full()) {
            Ok(session) => session,
            Err(_) => {
                st.ip_table.release(ip_bucket);
                continue;
            }
        };
        let info = ConnInfo {
            peer,
            local: stream.local_addr().unwrap_or(peer),
            listener: listener_index,
            tls: true,
            shard: st.shard,
        };
        let index = install(
            &mut st,
            SlotIo::Tasks(stream.clone()),
            info,
            ip_bucket,
            Some(session),
        );
        drop(st);
        spawn_fatal(connection_task(Rc::clone(&state), index, stream, true)).detach();
    }
}

/// EMFILE/ENFILE/ENOBUFS/ENOMEM: accept backs off instead of spinning; other errors are
/// about one connection.
fn is_resource_error(e: &std::io::Error) -> bool {
    e.raw_os_error().is_some_and(|n| {
        n == libc::EMFILE || n == libc::ENFILE || n == libc::ENOBUFS || n == libc::ENOMEM
    })
}

/// Accepts on a plain listener until it would block (it is registered edge-triggered).
fn accept_plain<P: Protocol>(st: &mut ShardState<P>, which: usize) {
    loop {
        if st.stopping {
            return;
        }
        let Some(listener) = st.plain_listeners.get(which) else {
            return;
        };
        let listener_index = listener.index;
        let (stream, peer) = match listener.listener.accept() {
            Ok(accepted) => accepted,
            Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => return,
            Err(e) if is_resource_error(&e) => {
                st.accept_retry_at = Some(Instant::now() + Duration::from_millis(ACCEPT_RETRY_MS));
                return;
            }
            // About the one connection that was aborted: accept the next one.
            Err(e)
                if e.raw_os_error().is_some_and(|n| {
                    n == libc::ECONNABORTED || n == libc::EPROTO || n == libc::EPERM
                }) =>
            {
                continue;
            }
            // Anything else would repeat: wait for the next edge.
            Err(_) => return,
        };
        let ip_bucket = match admit(st, peer) {
            Admission::Admit(ip_bucket) => ip_bucket,
            Admission::Refuse => continue, // dropping the stream closes it
        };
        if stream.set_nonblocking(true).is_err() {
            st.ip_table.release(ip_bucket);
            continue;
        }
        let info = ConnInfo {
            peer,
            local: stream.local_addr().unwrap_or(peer),
            listener: listener_index,
            tls: false,
            shard: st.shard,
        };
        let generation = st.next_generation;
        st.next_generation = (generation + 1) & 0x7fff_ffff;
        let fd = stream.as_raw_fd();
        let plain = PlainConn {
            stream,
            carry: Vec::new(),
            generation,
            first_read: true,
            paused: false,
            close_deadline: None,
            lingering: false,
            drained: 0,
            armed: false,
            peer_eof: false,
        };
        let index = install(st, SlotIo::Plain(plain), info, ip_bucket, None);
        let token = conn_token(index, generation);
        // On the ring path epoll reports only output edges (and errors); input comes as ring
        // completions.
        let events = if st.ring.is_some() {
            CONN_EVENTS_RING
        } else {
            CONN_EVENTS
        };
        if st.epoll.add(fd, events, token).is_err() {
            st.slot(index).close(CloseReason::SocketError, true);
        } else if st.slot(index).closing.is_none() {
            ring_arm(st, index);
        }
        // Edge-triggered registration reports input that is already there; `on_connect` may
        // have queued output or closed.
        plain_flush(st, index);
        plain_settle(st, index);
    }
}

/// Writes a plain connection's queued replies through with `send(2)`; what the kernel does
/// not take stays queued until the next `EPOLLOUT` edge. When everything is written, the
/// buffer goes back to the shard and every line handled so far is answered.
fn plain_flush<P: Protocol>(st: &mut ShardState<P>, index: usize) {
    let ShardState {
        slots,
        outbound_pool,
        ..
    } = st;
    let Some(slot) = slots[index].as_deref_mut() else {
        return;
    };
    let SlotIo::Plain(plain) = &slot.io else {
        return;
    };
    let fd = plain.stream.as_raw_fd();
    if slot.closing.is_some_and(|c| c.hard) {
        slot.out.clear();
    }
    while !slot.out.is_empty() {
        match send(fd, slot.out.pending()) {
            IoResult::Done(0) | IoResult::WouldBlock => break,
            IoResult::Done(n) => slot.out.consume(n),
            IoResult::Failed => {
                slot.out.clear();
                slot.close(CloseReason::SocketError, true);
            }
        }
    }
    if slot.out.is_empty() {
        if slot.out.has_buffer() {
            outbound_pool.give(slot.out.release());
        }
        slot.inflight = 0;
    }
}

/// Hands the lines of `input` (the shard-wide buffer, taken) to the protocol, writes the
/// replies through, keeps what is left in the connection's carry buffer and puts the shard-wide
/// buffer back. Shared by the epoll and the ring paths. Returns (closing, paused); a paused
/// connection has `paused` set and resumes when its backlog is written.
fn plain_lines<P: Protocol>(
    st: &mut ShardState<P>,
    index: usize,
    mut input: Vec<u8>,
) -> (bool, bool) {
    let mut paused = false;
    loop {
        match process_lines(st, index, &mut input) {
            Progress::NeedBytes | Progress::Closed => break,
            Progress::Paused => {
                plain_flush(st, index);
                let slot = st.slot(index);
                if slot.closing.is_none() && slot.inflight < INFLIGHT_REQUESTS_PER_CONNECTION_MAX {
                    continue;
                }
                paused = true;
                break;
            }
        }
    }
    plain_flush(st, index);
    let ShardState {
        slots,
        carry_pool,
        scratch,
        ..
    } = &mut *st;
    let slot = slots[index].as_deref_mut().expect("live slot");
    let closing = slot.closing.is_some();
    let SlotIo::Plain(plain) = &mut slot.io else {
        unreachable!("plain slot");
    };
    if !closing && !input.is_empty() {
        let mut carry = carry_pool.take();
        carry.extend_from_slice(&input);
        plain.carry = carry;
    }
    input.clear();
    *scratch = input;
    plain.paused = paused && !closing;
    (closing, paused)
}

/// Reads a plain connection until the socket would block (or `SHARD_READS_PER_EVENT_MAX`
/// reads, then it is re-armed), handing complete lines to the protocol and writing the replies
/// through (see the module docs).
fn plain_input<P: Protocol>(st: &mut ShardState<P>, index: usize) {
    if st.ring.is_some() {
        return ring_resume(st, index);
    }
    for _ in 0..SHARD_READS_PER_EVENT_MAX {
        let slot = st.slots[index].as_deref_mut().expect("live slot");
        if slot.closing.is_some() {
            return;
        }
        let inflight_full = slot.inflight >= INFLIGHT_REQUESTS_PER_CONNECTION_MAX;
        let SlotIo::Plain(plain) = &mut slot.io else {
            return;
        };
        if inflight_full {
            plain.paused = true;
            return;
        }
        let mut input = std::mem::take(&mut st.scratch);
        debug_assert!(input.is_empty() && input.capacity() >= INPUT_BYTES);
        input.extend_from_slice(&plain.carry);
        if plain.carry.capacity() > 0 {
            st.carry_pool.give(std::mem::take(&mut plain.carry));
        }
        // Resuming after a pause: `carry` may hold complete lines; hand them over first.
        let resumed = std::mem::take(&mut plain.paused);
        let mut would_block = false;
        if !resumed {
            let fd = plain.stream.as_raw_fd();
            let room = INPUT_BYTES - input.len();
            let failure = match recv_append(fd, &mut input, room) {
                IoResult::Done(0) => Some((CloseReason::PeerClosed, false)),
                IoResult::Done(_) => None,
                IoResult::WouldBlock => {
                    would_block = true;
                    None
                }
                IoResult::Failed => Some((CloseReason::SocketError, true)),
            };
            let failure = failure.or_else(|| {
                if !plain.first_read || input.is_empty() {
                    return None;
                }
                plain.first_read = false;
                (input[0] == TLS_HANDSHAKE_RECORD).then_some((CloseReason::TlsOnPlainPort, true))
            });
            if let Some((reason, hard)) = failure {
                slot.close(reason, hard);
                input.clear();
                st.scratch = input;
                return;
            }
        }
        let (closing, paused) = plain_lines(st, index, input);
        if closing || would_block || paused {
            return;
        }
    }
    // Budget used up with input perhaps still waiting: ask for another event.
    let slot = st.slots[index].as_deref_mut().expect("live slot");
    let SlotIo::Plain(plain) = &slot.io else {
        unreachable!("plain slot");
    };
    let token = conn_token(index, plain.generation);
    if st
        .epoll
        .rearm(plain.stream.as_raw_fd(), CONN_EVENTS, token)
        .is_err()
    {
        slot.close(CloseReason::SocketError, true);
    }
}

/// Moves a closing plain connection along: a hard close removes it; a graceful one flushes
/// the backlog, sends FIN and drains input until end of stream, an error,
/// `CLOSE_DRAIN_BYTES_MAX` bytes or the deadline (checked at each tick).
fn plain_settle<P: Protocol>(st: &mut ShardState<P>, index: usize) {
    let Some(slot) = st.slots[index].as_deref_mut() else {
        return;
    };
    let Some(closing) = slot.closing else {
        return;
    };
    if !slot.is_plain() {
        return;
    }
    if closing.hard {
        return finish_in(st, index);
    }
    plain_flush(st, index);
    let slot = st.slots[index].as_deref_mut().expect("live slot");
    if slot.closing.is_some_and(|c| c.hard) {
        return finish_in(st, index);
    }
    let flushed = slot.out.is_empty();
    let SlotIo::Plain(plain) = &mut slot.io else {
        unreachable!("plain slot");
    };
    if plain.close_deadline.is_none() {
        plain.close_deadline = Some(Instant::now() + Duration::from_millis(CLOSE_FLUSH_MS_MAX));
    }
    if !flushed {
        return; // the next EPOLLOUT edge, or the deadline
    }
    let fd = plain.stream.as_raw_fd();
    if !plain.lingering {
        plain.lingering = true;
        let _ = socket2::SockRef::from(&BorrowedSocket(fd)).shutdown(Shutdown::Write);
    }
    if st.ring.is_some() {
        // The ring path drains through the connection's multishot recv (`ring_completion`).
        let slot = st.slots[index].as_deref_mut().expect("live slot");
        let SlotIo::Plain(plain) = &slot.io else {
            unreachable!("plain slot");
        };
        if plain.peer_eof || plain.drained >= CLOSE_DRAIN_BYTES_MAX {
            return finish_in(st, index);
        }
        return ring_arm(st, index);
    }
    let ShardState { slots, scratch, .. } = &mut *st;
    let slot = slots[index].as_deref_mut().expect("live slot");
    let SlotIo::Plain(plain) = &mut slot.io else {
        unreachable!("plain slot");
    };
    loop {
        if plain.drained >= CLOSE_DRAIN_BYTES_MAX {
            return finish_in(st, index);
        }
        let result = recv_append(fd, scratch, INPUT_BYTES);
        scratch.clear();
        match result {
            IoResult::Done(0) | IoResult::Failed => return finish_in(st, index),
            IoResult::Done(n) => plain.drained += n,
            IoResult::WouldBlock => return,
        }
    }
}

/// Starts the connection's multishot recv on the shard's ring, unless one is outstanding, the
/// peer has finished sending, or input is paused. A failed submission closes the connection.
fn ring_arm<P: Protocol>(st: &mut ShardState<P>, index: usize) {
    let ShardState { slots, ring, .. } = &mut *st;
    let Some(ring) = ring.as_mut() else {
        return;
    };
    let slot = slots[index].as_deref_mut().expect("live slot");
    let closing = slot.closing.is_some();
    let SlotIo::Plain(plain) = &mut slot.io else {
        return;
    };
    if plain.armed || plain.peer_eof || (plain.paused && !closing) {
        return;
    }
    let token = conn_token(index, plain.generation);
    if ring.arm(plain.stream.as_raw_fd(), token).is_ok() {
        plain.armed = true;
    } else {
        slot.close(CloseReason::SocketError, true);
    }
}

/// Ring path, on an output edge: once the backlog of a paused connection is written, hands
/// it the lines held in its carry buffer and re-arms its recv.
fn ring_resume<P: Protocol>(st: &mut ShardState<P>, index: usize) {
    let slot = st.slots[index].as_deref_mut().expect("live slot");
    if slot.closing.is_some() || slot.inflight >= INFLIGHT_REQUESTS_PER_CONNECTION_MAX {
        return;
    }
    let SlotIo::Plain(plain) = &mut slot.io else {
        return;
    };
    if plain.paused {
        plain.paused = false;
        let mut input = std::mem::take(&mut st.scratch);
        input.extend_from_slice(&plain.carry);
        if plain.carry.capacity() > 0 {
            st.carry_pool.give(std::mem::take(&mut plain.carry));
        }
        let (closing, paused) = plain_lines(st, index, input);
        if closing || paused {
            return;
        }
    }
    ring_arm(st, index);
}

/// Handles one completion of the shard's ring: hands the bytes to the connection's line path
/// (or, while it is paused, to its carry buffer; while it closes, to the drain count), returns
/// the buffer to the ring and re-arms the recv when the kernel ended it.
fn ring_completion<P: Protocol>(st: &mut ShardState<P>, c: crate::uring::Completion) {
    let index = usize::try_from(c.token & 0xffff_ffff).expect("index fits usize");
    let generation = u32::try_from(c.token >> 32).expect("generation fits u32");
    let ShardState {
        slots,
        ring,
        scratch,
        carry_pool,
        counters,
        ..
    } = &mut *st;
    let ring = ring.as_mut().expect("ring completions come from the ring");
    let len = usize::try_from(c.result).unwrap_or(0);
    let slot = slots
        .get_mut(index)
        .and_then(|s| s.as_deref_mut())
        .filter(|slot| matches!(&slot.io, SlotIo::Plain(p) if p.generation == generation));
    let Some(slot) = slot else {
        // A connection that is gone (or an earlier one in this slot).
        if let Some(bid) = c.buffer {
            ring.recycle(bid);
        }
        return;
    };
    let closing = slot.closing.is_some();
    let SlotIo::Plain(plain) = &mut slot.io else {
        unreachable!("filtered on plain");
    };
    if !c.more {
        plain.armed = false;
    }
    if len > 0 {
        bump(&counters.ring_recv_completions, 1);
    }
    let mut input = None;
    if let Some(bid) = c.buffer {
        let bytes = ring.bytes(bid, len);
        if closing {
            plain.drained += len;
        } else if plain.paused {
            // Received before the cancel took effect: held with the paused input.
            if plain.carry.capacity() == 0 {
                plain.carry = carry_pool.take();
            }
            plain.carry.extend_from_slice(bytes);
        } else {
            let mut buffer = std::mem::take(scratch);
            buffer.extend_from_slice(&plain.carry);
            if plain.carry.capacity() > 0 {
                carry_pool.give(std::mem::take(&mut plain.carry));
            }
            buffer.extend_from_slice(bytes);
            input = Some(buffer);
        }
        ring.recycle(bid);
    }
    let failure = match c.result {
        n if n > 0 => None,
        0 => {
            plain.peer_eof = true;
            Some((CloseReason::PeerClosed, false))
        }
        e if e == -libc::ENOBUFS => {
            bump(&counters.ring_no_buffers, 1);
            None
        }
        // The pause (or the close) cancelled the recv.
        e if e == -libc::ECANCELED => None,
        _ => {
            plain.peer_eof = true;
            Some((CloseReason::SocketError, true))
        }
    };
    if closing {
        return plain_settle(st, index);
    }
    if let Some((reason, hard)) = failure {
        if let Some(buffer) = input {
            st.scratch = buffer;
            st.scratch.clear();
        }
        st.slot(index).close(reason, hard);
        return plain_settle(st, index);
    }
    if let Some(input) = input {
        let first = std::mem::replace(&mut plain.first_read, false);
        if first && input.first() == Some(&TLS_HANDSHAKE_RECORD) {
            st.scratch = input;
            st.scratch.clear();
            st.slot(index).close(CloseReason::TlsOnPlainPort, true);
            return plain_settle(st, index);
        }
        let (closing, paused) = plain_lines(st, index, input);
        if closing {
            return plain_settle(st, index);
        }
        if paused {
            let ShardState { slots, ring, .. } = &mut *st;
            let slot = slots[index].as_deref_mut().expect("live slot");
            let SlotIo::Plain(plain) = &mut slot.io else {
                unreachable!("plain slot");
            };
            if plain.armed
                && let Some(ring) = ring.as_mut()
                && ring.cancel(c.token).is_err()
            {
                slot.close(CloseReason::SocketError, true);
                return plain_settle(st, index);
            }
            return;
        }
    }
    // Also resumes paused input when a flush elsewhere made room (the tick, a job fan-out).
    ring_resume(st, index);
}

/// An epoll event for a plain connection.
fn plain_event<P: Protocol>(st: &mut ShardState<P>, token: u64) {
    let index = usize::try_from(token & 0xffff_ffff).expect("index fits usize");
    let generation = u32::try_from(token >> 32).expect("generation fits u32");
    let Some(slot) = st.slots.get(index).and_then(|s| s.as_deref()) else {
        return;
    };
    match &slot.io {
        SlotIo::Plain(plain) if plain.generation == generation => {}
        _ => return, // an event of an earlier connection in this slot
    }
    if slot.closing.is_none() {
        plain_flush(st, index);
        plain_input(st, index);
    }
    plain_settle(st, index);
}

/// After a shard-initiated callback (tick, job fan-out) on a plain connection: writes what it
/// queued, resumes paused ring input if the flush made room, and settles the slot.
fn plain_after_callback<P: Protocol>(st: &mut ShardState<P>, index: usize) {
    plain_flush(st, index);
    if st.ring.is_some() {
        // The flush may have written a paused connection's backlog: no output edge will
        // follow, so resume here.
        ring_resume(st, index);
    }
    plain_settle(st, index);
}

/// Timeouts, `on_tick` for every connection, close deadlines, and the statistics flush.
fn tick<P: Protocol>(st: &mut ShardState<P>) {
    let now = Instant::now();
    // `remaining`: stop after the last live slot instead of scanning the whole slab.
    let mut remaining = st.live;
    for index in 0..st.slots.len() {
        if remaining == 0 {
            break;
        }
        let ShardState {
            protocol,
            slots,
            events,
            settings,
            counters,
            outbound_pool,
            ..
        } = &mut *st;
        let Some(slot) = slots[index].as_deref_mut() else {
            continue;
        };
        remaining -= 1;
        if slot.closing.is_some() {
            if let SlotIo::Plain(plain) = &slot.io
                && plain.close_deadline.is_some_and(|d| now >= d)
            {
                finish_in(st, index);
            }
            continue;
        }
        let expired = if slot.subscribed {
            now.saturating_duration_since(slot.last_line_at) >= settings.idle_timeout
        } else {
            now.saturating_duration_since(slot.connected_at) >= settings.subscribe_timeout
        };
        if expired {
            let reason = if slot.subscribed {
                CloseReason::IdleTimeout
            } else {
                CloseReason::SubscribeTimeout
            };
            bump(&counters.timeout_closes, 1);
            slot.close(reason, true);
        } else {
            call(
                protocol,
                events,
                counters,
                outbound_pool,
                slot,
                now,
                |p, c, ctx| p.on_tick(c, ctx),
            );
        }
        if slot.is_plain() {
            plain_after_callback(st, index);
        }
    }
    st.events.flush_stats();
    st.events.retry_candidates();
    st.refusals.flush(now, st.shard.index());
    admin::serve(st);
}

/// Calls `on_jobs` for every connection of the shard (plain ones get the notify written
/// through at once), then records the fan-out's latency.
fn fan_out<P: Protocol>(st: &mut ShardState<P>, jobs: &Arc<P::Jobs>) {
    let now = Instant::now();
    st.protocol.on_shard_jobs(jobs);
    let mut remaining = st.live;
    for index in 0..st.slots.len() {
        if remaining == 0 {
            break;
        }
        let ShardState {
            protocol,
            slots,
            events,
            counters,
            outbound_pool,
            ..
        } = &mut *st;
        let Some(slot) = slots[index].as_deref_mut() else {
            continue;
        };
        remaining -= 1;
        if slot.closing.is_some() {
            continue;
        }
        call(
            protocol,
            events,
            counters,
            outbound_pool,
            slot,
            now,
            |p, c, ctx| p.on_jobs(c, jobs, ctx),
        );
        if slot.is_plain() {
            plain_after_callback(st, index);
        }
    }
    st.counters.fanned_out();
}

/// Everything a shard thread needs.
pub(crate) struct ShardSetup<P: Protocol> {
    pub(crate) id: ShardId,
    pub(crate) config: Arc<NetConfig>,
    pub(crate) listeners: Vec<ShardListener>,
    pub(crate) jobs: Arc<ArcSwap<P::Jobs>>,
    pub(crate) settings: Arc<ArcSwap<LiveSettings>>,
    pub(crate) control_rx: flume::Receiver<ShardMsg>,
    pub(crate) events: Events<P::Stat, P::Candidate>,
    pub(crate) counters: Arc<ShardCounters>,
    pub(crate) ip_table: Arc<IpTable>,
    pub(crate) admin: crate::admin::ShardAdmin,
}

/// Milliseconds until `deadline`, rounded up, for `epoll_wait`.
fn timeout_ms(now: Instant, deadline: Instant) -> i32 {
    let wait = deadline.saturating_duration_since(now);
    let ms = wait.as_millis() + u128::from(!wait.subsec_nanos().is_multiple_of(1_000_000));
    i32::try_from(ms).unwrap_or(i32::MAX)
}

/// The shard's io_uring receive ring, registered with `epoll`: plain connections read
/// through it when the runtime is on io_uring (the fusion driver's decision) and the kernel
/// passes the ring's probe.
fn shard_ring(driver: Driver, epoll: &Epoll) -> std::io::Result<(Option<RecvRing>, PlainIo)> {
    let ring = match driver {
        Driver::IoUring => RecvRing::new().ok(),
        Driver::Poll => None,
    };
    let Some(ring) = ring else {
        return Ok((None, PlainIo::Epoll));
    };
    epoll.add(ring.completions_fd(), COMPIO_EVENTS, TOKEN_RING)?;
    Ok((Some(ring), PlainIo::Ring))
}

/// Runs a shard on this thread until it is stopped: sets up its listeners, reports
/// readiness on `ready`, then runs the shard loop (see the module docs). A panic aborts the
/// process (see [`fatal::Fatal`]).
pub(crate) fn run<P: Protocol>(
    runtime: &compio::runtime::Runtime,
    completions: &Eventfd,
    setup: ShardSetup<P>,
    protocol: P,
    ready: &flume::Sender<std::io::Result<(Driver, PlainIo)>>,
    driver: Driver,
) {
    let guard = AbortOnUnwind;
    runtime.enter(|| run_inner(runtime, completions, setup, protocol, ready, driver));
    std::mem::forget(guard);
}

fn run_inner<P: Protocol>(
    runtime: &compio::runtime::Runtime,
    completions: &Eventfd,
    setup: ShardSetup<P>,
    protocol: P,
    ready: &flume::Sender<std::io::Result<(Driver, PlainIo)>>,
    driver: Driver,
) {
    let ShardSetup {
        id,
        config,
        listeners,
        jobs,
        settings,
        control_rx,
        events,
        counters,
        ip_table,
        admin,
    } = setup;
    let fail = |e: std::io::Error| {
        let _ = ready.send(Err(e));
    };
    let Ok(epoll) = Epoll::new().map_err(fail) else {
        return;
    };
    // compio's driver descriptor (the polling driver's epoll; io_uring's ring), and the
    // eventfd io_uring signals on every completion it posts, which also covers completions
    // posted while the ring's own poll wake-ups do not reach a nested wait.
    if let Err(e) = epoll
        .add(runtime.as_raw_fd(), COMPIO_EVENTS, TOKEN_COMPIO)
        .and_then(|()| epoll.add(completions.as_raw_fd(), COMPIO_EVENTS, TOKEN_COMPLETIONS))
    {
        return fail(e);
    }
    let mut plain_listeners = Vec::new();
    let mut tls_listeners = Vec::new();
    // Second handles on the TLS listening sockets: `shutdown(2)` on them wakes pending
    // accepts at stop, under both drivers, and refuses new connections at once.
    let mut listener_handles = Vec::new();
    for l in listeners {
        match l.tls {
            None => {
                let token = TOKEN_LISTENER | plain_listeners.len() as u64;
                if let Err(e) = epoll.add(l.listener.as_raw_fd(), LISTENER_EVENTS, token) {
                    return fail(e);
                }
                plain_listeners.push(PlainListener {
                    index: l.index,
                    listener: l.listener,
                });
            }
            Some(tls) => {
                match l.listener.try_clone() {
                    Ok(handle) => listener_handles.push(handle),
                    Err(e) => return fail(e),
                }
                match TcpListener::from_std(l.listener) {
                    Ok(listener) => tls_listeners.push((l.index, listener, tls)),
                    Err(e) => return fail(e),
                }
            }
        }
    }
    let Ok((ring, plain_io)) = shard_ring(driver, &epoll).map_err(fail) else {
        return;
    };
    let mut state = ShardState::new(
        protocol,
        events,
        Arc::clone(&config),
        ip_table,
        counters,
        id,
        epoll,
    );
    state.admin = admin::AdminState::new(admin);
    state.plain_listeners = plain_listeners;
    state.ring = ring;
    let mut cache = arc_swap::Cache::new(Arc::clone(&jobs));
    state.protocol.on_shard_jobs(cache.load());
    let state = Rc::new(RefCell::new(state));
    let accepts: Vec<_> = tls_listeners
        .into_iter()
        .map(|(index, listener, tls)| {
            spawn_fatal(accept_loop(Rc::clone(&state), listener, index, tls))
        })
        .collect();
    let done = Rc::new(Cell::new(false));
    spawn_fatal(shard_main(
        Rc::clone(&state),
        control_rx,
        cache,
        arc_swap::Cache::new(settings),
        accepts,
        listener_handles,
        Rc::clone(&done),
    ))
    .detach();
    let _ = ready.send(Ok((driver, plain_io)));

    let mut events = [libc::epoll_event { events: 0, u64: 0 }; SHARD_EPOLL_EVENTS_MAX];
    let period = config.tick_interval;
    let mut next_tick = Instant::now() + period;
    // Whether compio has work: run its ready tasks and reap its completions before waiting.
    let mut compio_due = true;
    // Whether the ring's completion queue still holds completions (not all were handled).
    let mut ring_due = false;
    loop {
        if compio_due {
            runtime.poll_with(Some(Duration::ZERO));
            let more = runtime.run();
            if done.get() {
                return;
            }
            // Submits what the tasks queued and re-arms compio's wake-up through its
            // descriptor; true if a task was woken meanwhile.
            let notified = runtime.flush();
            compio_due = more || notified;
        }
        let now = Instant::now();
        let mut deadline = next_tick;
        if let Some(wait) = runtime.current_timeout() {
            deadline = deadline.min(now + wait);
        }
        if let Some(retry) = state.borrow().accept_retry_at {
            deadline = deadline.min(retry);
        }
        let wait_ms = if compio_due || ring_due {
            0
        } else {
            timeout_ms(now, deadline)
        };
        let n = state.borrow().epoll.wait(&mut events, wait_ms);
        if n == 0 {
            // A timeout (perhaps a compio timer's), or an interruption: io_uring runs the task
            // work that posts completions by interrupting the wait, so look at compio now
            // rather than after one more wait.
            compio_due = true;
        }
        let mut st = state.borrow_mut();
        for event in &events[..n] {
            let token = event.u64;
            if token == TOKEN_COMPIO {
                compio_due = true;
            } else if token == TOKEN_COMPLETIONS {
                completions.clear();
                compio_due = true;
            } else if token == TOKEN_RING {
                if let Some(ring) = &st.ring {
                    ring.clear_signal();
                }
                ring_due = true;
            } else if token & TOKEN_LISTENER != 0 {
                let which = usize::try_from(token & !TOKEN_LISTENER).expect("listener index");
                accept_plain(&mut st, which);
            } else {
                plain_event(&mut st, token);
            }
        }
        if ring_due {
            ring_due = ring_turn(&mut st);
        }
        let now = Instant::now();
        if st.accept_retry_at.is_some_and(|at| now >= at) {
            st.accept_retry_at = None;
            for which in 0..st.plain_listeners.len() {
                accept_plain(&mut st, which);
            }
        }
        if now >= next_tick {
            tick(&mut st);
            next_tick = now + period;
        }
        drop(st);
        if runtime.current_timeout().is_some_and(|t| t.is_zero()) {
            compio_due = true; // a compio timer is due
        }
    }
}

/// Handles up to `RING_COMPLETIONS_PER_TURN_MAX` completions of the shard's ring; returns
/// whether more are waiting.
fn ring_turn<P: Protocol>(st: &mut ShardState<P>) -> bool {
    let Some(ring) = st.ring.as_mut() else {
        return false;
    };
    let n = ring.reap();
    for i in 0..n {
        let completion = st.ring.as_ref().expect("ring").completion(i);
        ring_completion(st, completion);
    }
    st.ring.as_mut().expect("ring").has_completions()
}

/// The shard's control task: serves control messages until stopped, then closes listeners
/// and connections and ends the shard loop (`done`).
async fn shard_main<P: Protocol>(
    state: Rc<RefCell<ShardState<P>>>,
    control_rx: flume::Receiver<ShardMsg>,
    mut cache: arc_swap::Cache<Arc<ArcSwap<P::Jobs>>, Arc<P::Jobs>>,
    mut settings: crate::settings::SettingsCache,
    accepts: Vec<compio::runtime::JoinHandle<()>>,
    listener_handles: Vec<std::net::TcpListener>,
    done: Rc<Cell<bool>>,
) {
    // Ends on `Stop`, or when the handle is gone (its sender dropped).
    loop {
        match control_rx.recv_async().await {
            Ok(msg @ (ShardMsg::Jobs | ShardMsg::Settings | ShardMsg::Admin)) => {
                // Every message: a settings wake-up may have coalesced with another one.
                crate::settings::apply(&mut state.borrow_mut(), **settings.load());
                if msg == ShardMsg::Jobs {
                    let current = Arc::clone(cache.load());
                    fan_out(&mut state.borrow_mut(), &current);
                }
            }
            Ok(ShardMsg::Stop) | Err(_) => break,
        }
        // Every message: a wake-up for commands may have coalesced with a job wake-up.
        admin::serve(&mut state.borrow_mut());
    }
    {
        let mut st = state.borrow_mut();
        st.stopping = true;
        for handle in &listener_handles {
            let _ = socket2::SockRef::from(handle).shutdown(Shutdown::Both);
        }
        // Closing the plain listening sockets also removes them from the epoll set.
        st.plain_listeners.clear();
        for index in 0..st.slots.len() {
            let Some(slot) = st.slots[index].as_deref_mut() else {
                continue;
            };
            slot.close(CloseReason::Shutdown, true);
            if slot.is_plain() {
                finish_in(&mut st, index);
            }
        }
    }
    for accept in accepts {
        // The accept loops end on the error the shutdown causes; the timeout is a backstop
        // (dropping the handle cancels the task).
        let _ = compio::time::timeout(Duration::from_millis(CLOSE_FLUSH_MS_MAX), accept).await;
    }
    drop(listener_handles);
    let drained = poll_fn(|cx| {
        let mut st = state.borrow_mut();
        if st.live == 0 {
            Poll::Ready(())
        } else {
            st.drain_waker = Some(cx.waker().clone());
            Poll::Pending
        }
    });
    let _ = compio::time::timeout(Duration::from_millis(SHUTDOWN_DRAIN_MS_MAX), drained).await;
    state.borrow_mut().events.flush_stats();
    done.set(true);
}

mod admin;
mod events;
mod fatal;
