//! The shard's own readiness loop for plain-TCP connections: an epoll instance, spare
//! buffers, and non-blocking socket calls that allocate nothing.
//!
//! compio allocates one operation record per submitted read or write (`Key::new` in
//! compio-driver 0.12), which breaks "no heap allocation after a shard starts" on the share
//! path. Plain connections therefore do not use compio at all: the shard registers their
//! sockets edge-triggered in its own epoll instance, identifies each by `user_data` = slot
//! index + generation (never by a heap object), reads with `recv(2)` into one shard-wide
//! buffer and writes replies through with `send(2)`. compio's driver descriptor (its io_uring
//! or its epoll) is registered in the same epoll instance, so the shard waits in one place for
//! both (see `shard::run_loop` and docs/decisions/0006-own-shard-loop.md).

use std::{
    io,
    os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd},
};

/// `user_data` of compio's driver descriptor.
pub(crate) const TOKEN_COMPIO: u64 = u64::MAX;
/// `user_data` bit of a listener (the low bits are its index in the shard's plain listeners).
pub(crate) const TOKEN_LISTENER: u64 = 1 << 63;

/// `user_data` of a connection: generation in bits 32..63, slot index in bits 0..32.
pub(crate) fn conn_token(index: usize, generation: u32) -> u64 {
    debug_assert!(generation < 1 << 31);
    (u64::from(generation) << 32) | u64::try_from(index).expect("slot index fits u32")
}

/// An epoll instance.
#[derive(Debug)]
pub(crate) struct Epoll(OwnedFd);

impl Epoll {
    pub(crate) fn new() -> io::Result<Self> {
        // SAFETY: plain syscall without pointers.
        let fd = unsafe { libc::epoll_create1(libc::EPOLL_CLOEXEC) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a new descriptor that nothing else owns.
        Ok(Self(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Registers `fd` for `events` with `token` as its `user_data`.
    pub(crate) fn add(&self, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        let mut event = libc::epoll_event { events, u64: token };
        // SAFETY: `event` is a valid epoll_event for the duration of the call.
        let rc =
            unsafe { libc::epoll_ctl(self.0.as_raw_fd(), libc::EPOLL_CTL_ADD, fd, &mut event) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Re-arms an edge-triggered registration: if `fd` is ready now, an event is reported by
    /// the next wait although no new edge happened.
    pub(crate) fn rearm(&self, fd: RawFd, events: u32, token: u64) -> io::Result<()> {
        let mut event = libc::epoll_event { events, u64: token };
        // SAFETY: `event` is a valid epoll_event for the duration of the call.
        let rc =
            unsafe { libc::epoll_ctl(self.0.as_raw_fd(), libc::EPOLL_CTL_MOD, fd, &mut event) };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(())
    }

    /// Waits up to `timeout_ms` (-1: forever) and fills `events`; returns how many. An
    /// interrupted wait returns 0.
    pub(crate) fn wait(&self, events: &mut [libc::epoll_event], timeout_ms: i32) -> usize {
        let max = i32::try_from(events.len()).expect("event array fits i32");
        // SAFETY: `events` is valid for `max` entries for the duration of the call.
        let n =
            unsafe { libc::epoll_wait(self.0.as_raw_fd(), events.as_mut_ptr(), max, timeout_ms) };
        if n < 0 {
            let error = io::Error::last_os_error();
            // EINTR: a signal or io_uring task work interrupted the wait; the caller loops.
            assert_eq!(
                error.kind(),
                io::ErrorKind::Interrupted,
                "epoll_wait failed: {error}"
            );
            return 0;
        }
        usize::try_from(n).expect("non-negative")
    }
}

/// A non-blocking eventfd (compio's io_uring signals it on every completion it posts).
#[derive(Debug)]
pub(crate) struct Eventfd(OwnedFd);

impl Eventfd {
    pub(crate) fn new() -> io::Result<Self> {
        // SAFETY: plain syscall without pointers.
        let fd = unsafe { libc::eventfd(0, libc::EFD_CLOEXEC | libc::EFD_NONBLOCK) };
        if fd < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `fd` is a new descriptor that nothing else owns.
        Ok(Self(unsafe { OwnedFd::from_raw_fd(fd) }))
    }

    /// Resets the counter (a no-op if it is zero).
    pub(crate) fn clear(&self) {
        let mut value = [0u8; 8];
        // SAFETY: `value` is valid for 8 bytes of writes; EAGAIN (zero counter) is fine.
        let _ = unsafe { libc::read(self.0.as_raw_fd(), value.as_mut_ptr().cast(), 8) };
    }
}

impl AsRawFd for Eventfd {
    fn as_raw_fd(&self) -> RawFd {
        self.0.as_raw_fd()
    }
}

/// `user_data` of the eventfd compio's io_uring signals.
pub(crate) const TOKEN_COMPLETIONS: u64 = u64::MAX - 1;

/// Events a plain connection is registered for: edge-triggered input, output and hang-ups.
pub(crate) const CONN_EVENTS: u32 =
    (libc::EPOLLIN | libc::EPOLLOUT | libc::EPOLLRDHUP | libc::EPOLLET) as u32;

/// Events a plain connection is registered for when it reads through the shard's io_uring
/// ring: edge-triggered output only (errors and hang-ups are always reported).
pub(crate) const CONN_EVENTS_RING: u32 = (libc::EPOLLOUT | libc::EPOLLET) as u32;

/// `user_data` of the eventfd the shard's own io_uring receive ring signals.
pub(crate) const TOKEN_RING: u64 = u64::MAX - 2;

/// Events a plain listener is registered for (edge-triggered: accept until `EAGAIN`).
pub(crate) const LISTENER_EVENTS: u32 = (libc::EPOLLIN | libc::EPOLLET) as u32;

/// Events compio's driver descriptor is registered for (level-triggered).
pub(crate) const COMPIO_EVENTS: u32 = libc::EPOLLIN as u32;

/// Empty buffers of one size kept for reuse, so lending a buffer to a connection allocates
/// only when more than the spare count are lent at once.
#[derive(Debug)]
pub(crate) struct BufferPool {
    size: usize,
    spare: Vec<Vec<u8>>,
}

impl BufferPool {
    /// A pool of `count` buffers of `size` bytes, all allocated now.
    pub(crate) fn new(size: usize, count: usize) -> Self {
        let mut spare = Vec::with_capacity(count);
        spare.resize_with(count, || Vec::with_capacity(size));
        Self { size, spare }
    }

    /// An empty buffer of at least `size` bytes.
    pub(crate) fn take(&mut self) -> Vec<u8> {
        self.spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(self.size))
    }

    /// Returns a buffer; it is kept if fewer than the spare count are, else freed.
    pub(crate) fn give(&mut self, mut buffer: Vec<u8>) {
        debug_assert!(buffer.capacity() >= self.size);
        buffer.clear();
        if self.spare.len() < self.spare.capacity() {
            self.spare.push(buffer);
        }
    }
}

/// The outcome of a non-blocking socket call.
pub(crate) enum IoResult {
    /// Bytes transferred (0 from `recv`: end of stream).
    Done(usize),
    /// The socket is not ready (`EAGAIN`).
    WouldBlock,
    /// A socket error.
    Failed,
}

/// `recv(2)` into the spare capacity of `buffer`, at most `max` bytes; appends what was read.
pub(crate) fn recv_append(fd: RawFd, buffer: &mut Vec<u8>, max: usize) -> IoResult {
    let len = buffer.len();
    let room = (buffer.capacity() - len).min(max);
    assert!(room > 0);
    loop {
        // SAFETY: the pointer and length describe the spare capacity of `buffer`, which the
        // kernel may write; only the bytes it reports written are then marked initialised.
        let n = unsafe {
            libc::recv(
                fd,
                buffer.as_mut_ptr().add(len).cast(),
                room,
                libc::MSG_DONTWAIT,
            )
        };
        if n >= 0 {
            let n = usize::try_from(n).expect("non-negative");
            assert!(n <= room);
            // SAFETY: the kernel initialised `n` bytes after `len`, within capacity.
            unsafe { buffer.set_len(len + n) };
            return IoResult::Done(n);
        }
        match io::Error::last_os_error().raw_os_error() {
            Some(libc::EINTR) => {}
            Some(libc::EAGAIN) => return IoResult::WouldBlock,
            _ => return IoResult::Failed,
        }
    }
}

/// `send(2)` without blocking and without `SIGPIPE`.
pub(crate) fn send(fd: RawFd, bytes: &[u8]) -> IoResult {
    loop {
        // SAFETY: the pointer and length describe `bytes`, which the kernel only reads.
        let n = unsafe {
            libc::send(
                fd,
                bytes.as_ptr().cast(),
                bytes.len(),
                libc::MSG_DONTWAIT | libc::MSG_NOSIGNAL,
            )
        };
        if n >= 0 {
            return IoResult::Done(usize::try_from(n).expect("non-negative"));
        }
        match io::Error::last_os_error().raw_os_error() {
            Some(libc::EINTR) => {}
            Some(libc::EAGAIN) => return IoResult::WouldBlock,
            _ => return IoResult::Failed,
        }
    }
}
