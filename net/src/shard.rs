//! One shard: a thread with its own compio runtime, listeners, connection slab and protocol.
//!
//! All shard state sits in one `Rc<RefCell<ShardState>>`. Tasks (accept loops, the ticker,
//! the control loop, and a reader and a writer per connection) borrow it only between awaits,
//! so a borrow never spans an I/O operation and no lock is ever taken.
//!
//! Per connection:
//! - the **reader task** reads into a fixed input buffer (`LINE_BYTES_MAX + READ_BYTES_MIN`),
//!   hands complete lines to the protocol in place, moves the unfinished tail to the front,
//!   and stops reading while `INFLIGHT_REQUESTS_PER_CONNECTION_MAX` lines wait for their
//!   replies to reach the socket;
//! - the **writer task** waits until the outbound queue has bytes, swaps the queue with its
//!   spare buffer (no copy) and writes everything in one `write_all`.
//!
//! Closing: a close is recorded in the slot (`Closing`), then `shutdown(2)` wakes whatever is
//! blocked: `SHUT_RD` for a graceful close (the writer still flushes), `SHUT_RDWR` for a hard
//! one. The reader task finishes the connection after the writer has exited.

use std::{
    cell::RefCell,
    future::poll_fn,
    net::{Shutdown, SocketAddr},
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
    BLOCK_CANDIDATES_PER_SHARD_MAX, CLOSE_DRAIN_BYTES_MAX, CLOSE_FLUSH_MS_MAX,
    INFLIGHT_REQUESTS_PER_CONNECTION_MAX, LINE_BYTES_MAX, OUTBOUND_QUEUE_BYTES_MAX, READ_BYTES_MIN,
    SHARE_STATS_BATCH_MAX, SHUTDOWN_DRAIN_MS_MAX, TLS_READ_BYTES,
};

use crate::{
    admission::{IpTable, TokenBucket},
    config::NetConfig,
    counters::{ShardCounters, bump},
    outbound::Outbound,
    protocol::{CloseReason, ConnInfo, Ctx, Flow, Protocol, ShardId},
};

/// Size of a connection's input (line) buffer.
const INPUT_BYTES: usize = LINE_BYTES_MAX + READ_BYTES_MIN;

/// First byte of a TLS handshake record (a ClientHello on a plain port).
const TLS_HANDSHAKE_RECORD: u8 = 0x16;

/// Aborts the process when dropped during a panic (see [`Fatal`]).
struct AbortOnUnwind;

impl Drop for AbortOnUnwind {
    fn drop(&mut self) {
        if std::thread::panicking() {
            eprintln!("warppool-net: panic on a shard thread (see above); aborting");
            std::process::abort();
        }
    }
}

/// A future whose panics abort the process. compio catches a panic inside a spawned task
/// and drops the task, which would leave the shard running with a connection slot that is
/// never freed and a violated assertion unnoticed; a shard panic is a programmer error, so
/// it crashes instead (STYLE rules 8 and 9).
struct Fatal<F>(std::pin::Pin<Box<F>>);

impl<F: Future> Future for Fatal<F> {
    type Output = F::Output;

    fn poll(
        mut self: std::pin::Pin<&mut Self>,
        cx: &mut std::task::Context<'_>,
    ) -> Poll<F::Output> {
        let guard = AbortOnUnwind;
        let result = self.0.as_mut().poll(cx);
        std::mem::forget(guard);
        result
    }
}

/// Spawns a task on the shard's runtime; a panic in it aborts the process (see [`Fatal`]).
fn spawn_fatal<F: Future + 'static>(future: F) -> compio::runtime::JoinHandle<F::Output> {
    compio::runtime::spawn(Fatal(Box::pin(future)))
}

/// Runs the shard's main future; a panic in it aborts the process (see [`Fatal`]).
pub(crate) fn block_on_fatal<F: Future>(
    runtime: &compio::runtime::Runtime,
    future: F,
) -> F::Output {
    runtime.block_on(Fatal(Box::pin(future)))
}

/// Messages from the control plane to a shard.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum ShardMsg {
    /// New jobs were published.
    Jobs,
    /// Close listeners and connections, then end the thread.
    Stop,
}

/// The shard's outgoing event queues (statistics batches and block candidates).
pub(crate) struct Events<S, C> {
    batch: Vec<S>,
    /// An empty batch allocated outside protocol callbacks ([`Events::refill_spare`]), so a
    /// batch sent from inside a callback (it filled up) does not allocate there.
    spare: Option<Vec<S>>,
    stats_tx: flume::Sender<Vec<S>>,
    candidates_tx: flume::Sender<C>,
    counters: Arc<ShardCounters>,
}

impl<S, C> Events<S, C> {
    pub(crate) fn new(
        stats_tx: flume::Sender<Vec<S>>,
        candidates_tx: flume::Sender<C>,
        counters: Arc<ShardCounters>,
    ) -> Self {
        assert!(stats_tx.capacity().is_some(), "stats queue must be bounded");
        assert!(
            candidates_tx.capacity().is_some(),
            "candidate queue must be bounded"
        );
        Self {
            batch: Vec::with_capacity(SHARE_STATS_BATCH_MAX),
            spare: Some(Vec::with_capacity(SHARE_STATS_BATCH_MAX)),
            stats_tx,
            candidates_tx,
            counters,
        }
    }

    pub(crate) fn stat(&mut self, entry: S) {
        debug_assert!(self.batch.len() < SHARE_STATS_BATCH_MAX);
        self.batch.push(entry);
        if self.batch.len() == SHARE_STATS_BATCH_MAX {
            self.flush_stats();
        }
    }

    /// Sends the current batch; when the queue is full the batch is counted and dropped (and
    /// its buffer reused). A batch that is sent takes its buffer along, so one allocation per
    /// sent batch (not per entry) remains.
    pub(crate) fn flush_stats(&mut self) {
        if self.batch.is_empty() {
            return;
        }
        let next = self
            .spare
            .take()
            .unwrap_or_else(|| Vec::with_capacity(SHARE_STATS_BATCH_MAX));
        debug_assert!(next.is_empty());
        let batch = std::mem::replace(&mut self.batch, next);
        match self.stats_tx.try_send(batch) {
            Ok(()) => {}
            Err(
                flume::TrySendError::Full(mut batch) | flume::TrySendError::Disconnected(mut batch),
            ) => {
                bump(&self.counters.stats_dropped, batch.len() as u64);
                batch.clear();
                self.batch = batch;
            }
        }
    }

    /// Allocates the spare batch if the last send used it; called between protocol callbacks.
    pub(crate) fn refill_spare(&mut self) {
        if self.spare.is_none() {
            self.spare = Some(Vec::with_capacity(SHARE_STATS_BATCH_MAX));
        }
    }

    pub(crate) fn candidate(&mut self, candidate: C) {
        match self.candidates_tx.try_send(candidate) {
            Ok(()) => {}
            Err(flume::TrySendError::Full(_)) => panic!(
                "block candidate queue full: more than {BLOCK_CANDIDATES_PER_SHARD_MAX} \
                 undrained candidates on one shard"
            ),
            // The control plane is gone: the pool is shutting down.
            Err(flume::TrySendError::Disconnected(_)) => {}
        }
    }
}

#[derive(Debug, Clone, Copy)]
struct Closing {
    reason: CloseReason,
    hard: bool,
}

struct Slot<C> {
    conn: Option<C>,
    info: ConnInfo,
    out: Outbound,
    tls: Option<ServerConnection>,
    /// A handle on the socket for `shutdown(2)`; the reader and writer own the others.
    socket: TcpStream,
    ip_bucket: usize,
    connected_at: Instant,
    last_line_at: Instant,
    subscribed: bool,
    /// Lines handed to the protocol whose output has not reached the socket yet.
    inflight: usize,
    writing: bool,
    /// Whether the reader task is waiting in a socket read (only then does a graceful close
    /// need `SHUT_RD` to wake it).
    reading: bool,
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

    fn has_output(&self) -> bool {
        match &self.tls {
            Some(session) => {
                session.wants_write() || (!session.is_handshaking() && !self.out.is_empty())
            }
            None => !self.out.is_empty(),
        }
    }

    /// Records a close (the first reason wins; a graceful close can become hard) and wakes
    /// the blocked tasks through `shutdown(2)`.
    fn close(&mut self, reason: CloseReason, hard: bool) {
        let closing = match self.closing {
            None => Closing { reason, hard },
            Some(previous) => Closing {
                reason: previous.reason,
                hard: previous.hard || hard,
            },
        };
        self.closing = Some(closing);
        let how = if closing.hard {
            Shutdown::Both
        } else {
            Shutdown::Read
        };
        // Errors mean the socket is already shut down or disconnected: nothing to wake.
        let _ = socket2::SockRef::from(&self.socket).shutdown(how);
        self.wake_writer();
        self.wake_reader();
    }
}

fn park(slot_waker: &mut Option<Waker>, waker: &Waker) {
    match slot_waker {
        Some(old) if old.will_wake(waker) => {}
        _ => *slot_waker = Some(waker.clone()),
    }
}

pub(crate) struct ShardState<P: Protocol> {
    protocol: P,
    slots: Vec<Option<Box<Slot<P::Conn>>>>,
    free: Vec<usize>,
    live: usize,
    events: Events<P::Stat, P::Candidate>,
    config: Arc<NetConfig>,
    ip_table: Arc<IpTable>,
    counters: Arc<ShardCounters>,
    stopping: bool,
    drain_waker: Option<Waker>,
}

impl<P: Protocol> ShardState<P> {
    pub(crate) fn new(
        protocol: P,
        events: Events<P::Stat, P::Candidate>,
        config: Arc<NetConfig>,
        ip_table: Arc<IpTable>,
        counters: Arc<ShardCounters>,
    ) -> Self {
        let cap = config.connections_per_shard_max;
        assert!(cap > 0);
        let mut slots = Vec::with_capacity(cap);
        slots.resize_with(cap, || None);
        // Lowest index first, so a lightly loaded shard uses the front of the slab.
        let free = (0..cap).rev().collect();
        Self {
            protocol,
            slots,
            free,
            live: 0,
            events,
            config,
            ip_table,
            counters,
            stopping: false,
            drain_waker: None,
        }
    }

    fn slot(&mut self, index: usize) -> &mut Slot<P::Conn> {
        self.slots[index]
            .as_deref_mut()
            .expect("slot of a live connection")
    }
}

/// Runs `f` with the protocol, the connection and a [`Ctx`], then applies the outcome.
fn call<P: Protocol>(
    protocol: &mut P,
    events: &mut Events<P::Stat, P::Candidate>,
    counters: &ShardCounters,
    slot: &mut Slot<P::Conn>,
    now: Instant,
    f: impl FnOnce(&mut P, &mut P::Conn, &mut Ctx<'_, P::Stat, P::Candidate>) -> Flow,
) {
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
    if slot.has_output() {
        slot.wake_writer();
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
            call(protocol, events, counters, slot, now, |p, c, ctx| {
                p.on_line_too_long(c, ctx);
                Flow::Continue
            });
            slot.close(CloseReason::LineTooLong, false);
            break;
        }
        call(protocol, events, counters, slot, now, |p, c, ctx| {
            p.on_line(c, line, ctx)
        });
    }
    bump(&counters.lines, lines);
    // At most INFLIGHT_REQUESTS_PER_CONNECTION_MAX (< SHARE_STATS_BATCH_MAX) lines per call, so
    // at most one batch is sent per call and the spare is always there inside `on_line`.
    events.refill_spare();
    input.copy_within(start.., 0);
    input.truncate(input.len() - start);
    // Paused at the in-flight bound, the buffer still starts with complete lines (a pipelining
    // client can have more than LINE_BYTES_MAX of them buffered): not an over-long line.
    let paused = matches!(progress, Progress::Paused);
    if slot.closing.is_none() && !paused && input.len() > LINE_BYTES_MAX {
        // No newline in more than LINE_BYTES_MAX bytes: memory stays bounded by dropping them.
        call(protocol, events, counters, slot, now, |p, c, ctx| {
            p.on_line_too_long(c, ctx);
            Flow::Continue
        });
        slot.close(CloseReason::LineTooLong, false);
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
            // No await since `wait_for_room` saw no close, so none can have happened since.
            st.slot(index).reading = true;
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
        slot.reading = false;
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
        let _ = socket2::SockRef::from(&st.slot(index).socket).shutdown(Shutdown::Write);
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

/// Removes a closed connection from the shard and tells the protocol.
fn finish<P: Protocol>(state: &RefCell<ShardState<P>>, index: usize) {
    let mut st = state.borrow_mut();
    let mut slot = st.slots[index].take().expect("finished slot was live");
    let closing = slot.closing.expect("finished slot was closing");
    let _ = socket2::SockRef::from(&slot.socket).shutdown(Shutdown::Both);
    st.free.push(index);
    assert!(st.live > 0);
    st.live -= 1;
    st.ip_table.release(slot.ip_bucket);
    bump(&st.counters.closed, 1);
    st.counters
        .connections
        .store(st.live as u64, std::sync::atomic::Ordering::Relaxed);
    let conn = slot
        .conn
        .take()
        .expect("connection state present until on_close");
    st.protocol.on_close(conn, &slot.info, closing.reason);
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

fn admit<P: Protocol>(
    st: &mut ShardState<P>,
    bucket: &mut TokenBucket,
    peer: SocketAddr,
) -> Admission {
    let now = Instant::now();
    if st.stopping {
        return Admission::Refuse;
    }
    if !bucket.try_take(now) {
        bump(&st.counters.refused_rate, 1);
        return Admission::Refuse;
    }
    if st.free.is_empty() {
        bump(&st.counters.refused_shard_full, 1);
        return Admission::Refuse;
    }
    let ip_bucket = st.ip_table.bucket(peer.ip());
    if !st.ip_table.try_acquire(ip_bucket) {
        bump(&st.counters.refused_ip_cap, 1);
        return Admission::Refuse;
    }
    Admission::Admit(ip_bucket)
}

/// Puts an admitted connection into a free slot and calls `on_connect`; returns the slot.
fn install<P: Protocol>(
    st: &mut ShardState<P>,
    stream: &TcpStream,
    info: ConnInfo,
    ip_bucket: usize,
    session: Option<ServerConnection>,
) -> usize {
    // Best effort: a socket that refuses these options still works.
    let _ = stream.set_nodelay(true);
    if let Some(bytes) = st.config.socket_send_buffer_bytes {
        let _ = socket2::SockRef::from(stream).set_send_buffer_size(bytes as usize);
    }
    let now = Instant::now();
    let index = st.free.pop().expect("admit checked for a free slot");
    let mut slot = Box::new(Slot {
        conn: None,
        info,
        out: Outbound::new(),
        tls: session,
        socket: stream.clone(),
        ip_bucket,
        connected_at: now,
        last_line_at: now,
        subscribed: false,
        inflight: 0,
        writing: false,
        reading: false,
        closing: None,
        writer_waker: None,
        reader_waker: None,
    });
    {
        let ShardState {
            protocol, events, ..
        } = &mut *st;
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
    }
    assert!(st.slots[index].is_none());
    st.slots[index] = Some(slot);
    st.live += 1;
    assert!(st.live <= st.config.connections_per_shard_max);
    bump(&st.counters.accepted, 1);
    st.counters
        .connections
        .store(st.live as u64, std::sync::atomic::Ordering::Relaxed);
    index
}

async fn accept_loop<P: Protocol>(
    state: Rc<RefCell<ShardState<P>>>,
    bucket: Rc<RefCell<TokenBucket>>,
    shard: ShardId,
    listener: TcpListener,
    listener_index: usize,
    tls: Option<Arc<ArcSwap<ServerConfig>>>,
) {
    loop {
        let (stream, peer) = match listener.accept().await {
            Ok(accepted) => accepted,
            Err(_) if state.borrow().stopping => return,
            Err(e) => {
                // EMFILE/ENFILE/ENOBUFS: back off instead of spinning; others are per-connection.
                if e.raw_os_error().is_some_and(|n| {
                    n == libc::EMFILE
                        || n == libc::ENFILE
                        || n == libc::ENOBUFS
                        || n == libc::ENOMEM
                }) {
                    compio::time::sleep(Duration::from_millis(10)).await;
                }
                continue;
            }
        };
        let mut st = state.borrow_mut();
        let ip_bucket = match admit(&mut st, &mut bucket.borrow_mut(), peer) {
            Admission::Admit(ip_bucket) => ip_bucket,
            Admission::Refuse => continue, // dropping the stream closes it
        };
        let session = match &tls {
            None => None,
            Some(config) => match ServerConnection::new(config.load_full()) {
                Ok(session) => Some(session),
                Err(_) => {
                    st.ip_table.release(ip_bucket);
                    continue;
                }
            },
        };
        let info = ConnInfo {
            peer,
            local: stream.local_addr().unwrap_or(peer),
            listener: listener_index,
            tls: tls.is_some(),
            shard,
        };
        let index = install(&mut st, &stream, info, ip_bucket, session);
        let is_tls = tls.is_some();
        drop(st);
        spawn_fatal(connection_task(Rc::clone(&state), index, stream, is_tls)).detach();
    }
}

/// Timeouts, `on_tick` for every connection, and the statistics flush.
fn tick<P: Protocol>(state: &RefCell<ShardState<P>>) {
    let now = Instant::now();
    let mut st = state.borrow_mut();
    let ShardState {
        protocol,
        slots,
        events,
        config,
        counters,
        live,
        ..
    } = &mut *st;
    // `take(live)`: stop after the last live slot instead of scanning the whole slab.
    for slot in slots
        .iter_mut()
        .filter_map(|s| s.as_deref_mut())
        .take(*live)
    {
        if slot.closing.is_some() {
            continue;
        }
        let expired = if slot.subscribed {
            now.saturating_duration_since(slot.last_line_at) >= config.idle_timeout
        } else {
            now.saturating_duration_since(slot.connected_at) >= config.subscribe_timeout
        };
        if expired {
            let reason = if slot.subscribed {
                CloseReason::IdleTimeout
            } else {
                CloseReason::SubscribeTimeout
            };
            bump(&counters.timeout_closes, 1);
            slot.close(reason, true);
            continue;
        }
        call(protocol, events, counters, slot, now, |p, c, ctx| {
            p.on_tick(c, ctx)
        });
    }
    events.flush_stats();
}

/// Calls `on_jobs` for every connection of the shard.
fn fan_out<P: Protocol>(state: &RefCell<ShardState<P>>, jobs: &Arc<P::Jobs>) {
    let now = Instant::now();
    let mut st = state.borrow_mut();
    let ShardState {
        protocol,
        slots,
        events,
        counters,
        live,
        ..
    } = &mut *st;
    protocol.on_shard_jobs(jobs);
    for slot in slots
        .iter_mut()
        .filter_map(|s| s.as_deref_mut())
        .take(*live)
    {
        if slot.closing.is_some() {
            continue;
        }
        call(protocol, events, counters, slot, now, |p, c, ctx| {
            p.on_jobs(c, jobs, ctx)
        });
    }
}

/// Everything a shard thread needs.
pub(crate) struct ShardSetup<P: Protocol> {
    pub(crate) id: ShardId,
    pub(crate) config: Arc<NetConfig>,
    pub(crate) listeners: Vec<ShardListener>,
    pub(crate) jobs: Arc<ArcSwap<P::Jobs>>,
    pub(crate) control_rx: flume::Receiver<ShardMsg>,
    pub(crate) events: Events<P::Stat, P::Candidate>,
    pub(crate) counters: Arc<ShardCounters>,
    pub(crate) ip_table: Arc<IpTable>,
}

/// The shard's main future: starts the accept loops and the ticker, then serves control
/// messages until stopped.
pub(crate) async fn shard_main<P: Protocol, D: Send + 'static>(
    setup: ShardSetup<P>,
    protocol: P,
    ready: flume::Sender<std::io::Result<D>>,
    driver: D,
) {
    let ShardSetup {
        id,
        config,
        listeners,
        jobs,
        control_rx,
        events,
        counters,
        ip_table,
    } = setup;
    let mut compio_listeners = Vec::with_capacity(listeners.len());
    // Second handles on the listening sockets: `shutdown(2)` on them wakes pending accepts
    // at stop, under both drivers, and refuses new connections at once.
    let mut listener_handles = Vec::with_capacity(listeners.len());
    for l in listeners {
        match l.listener.try_clone() {
            Ok(handle) => listener_handles.push(handle),
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        }
        match TcpListener::from_std(l.listener) {
            Ok(listener) => compio_listeners.push((l.index, listener, l.tls)),
            Err(e) => {
                let _ = ready.send(Err(e));
                return;
            }
        }
    }
    let _ = ready.send(Ok(driver));
    drop(ready);
    let mut cache = arc_swap::Cache::new(Arc::clone(&jobs));
    let state = Rc::new(RefCell::new(ShardState::new(
        protocol,
        events,
        Arc::clone(&config),
        ip_table,
        counters,
    )));
    state.borrow_mut().protocol.on_shard_jobs(cache.load());
    let bucket = Rc::new(RefCell::new(TokenBucket::new(
        config.accept_rate_per_sec,
        config.accept_burst,
        Instant::now(),
    )));
    let accepts: Vec<_> = compio_listeners
        .into_iter()
        .map(|(index, listener, tls)| {
            spawn_fatal(accept_loop(
                Rc::clone(&state),
                Rc::clone(&bucket),
                id,
                listener,
                index,
                tls,
            ))
        })
        .collect();
    let ticker = {
        let state = Rc::clone(&state);
        let period = config.tick_interval;
        spawn_fatal(async move {
            loop {
                compio::time::sleep(period).await;
                tick(&state);
            }
        })
    };
    // Ends on `Stop`, or when the handle is gone (its sender dropped).
    while let Ok(ShardMsg::Jobs) = control_rx.recv_async().await {
        let current = Arc::clone(cache.load());
        fan_out(&state, &current);
    }
    {
        let mut st = state.borrow_mut();
        st.stopping = true;
        for handle in &listener_handles {
            let _ = socket2::SockRef::from(handle).shutdown(Shutdown::Both);
        }
        for slot in st.slots.iter_mut().filter_map(|s| s.as_deref_mut()) {
            slot.close(CloseReason::Shutdown, true);
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
    drop(ticker);
    state.borrow_mut().events.flush_stats();
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn full_stats_queue_counts_and_drops_whole_batches() {
        let (stats_tx, stats_rx) = flume::bounded(1);
        let (candidates_tx, _candidates_rx) = flume::bounded::<u8>(1);
        let counters = Arc::new(ShardCounters::default());
        let mut events = Events::new(stats_tx, candidates_tx, Arc::clone(&counters));
        for i in 0..SHARE_STATS_BATCH_MAX * 2 + 5 {
            events.stat(i);
        }
        events.flush_stats();
        let sent = stats_rx.try_recv().unwrap();
        assert_eq!(sent.len(), SHARE_STATS_BATCH_MAX);
        assert_eq!(sent[0], 0);
        assert!(stats_rx.try_recv().is_err());
        let dropped = counters.snapshot().stats_dropped;
        assert_eq!(dropped, (SHARE_STATS_BATCH_MAX + 5) as u64);
        // The queue has room again: the next batch goes through.
        events.stat(1);
        events.flush_stats();
        assert_eq!(stats_rx.try_recv().unwrap(), vec![1]);
    }

    #[test]
    #[should_panic(expected = "block candidate queue full")]
    fn full_candidate_queue_is_an_assertion_failure() {
        let (stats_tx, _stats_rx) = flume::bounded::<Vec<u8>>(1);
        let (candidates_tx, _candidates_rx) = flume::bounded(1);
        let mut events = Events::new(stats_tx, candidates_tx, Arc::default());
        events.candidate(1u8);
        events.candidate(2u8);
    }
}
