//! The shard's own io_uring ring for plain connections on the io_uring driver: one multishot
//! recv per connection into a provided-buffer ring the shard owns (decision 0006).
//!
//! The ring's completions signal an eventfd registered in the shard's epoll set; the shard
//! loop copies a batch of completions out of the queue and hands each buffer's bytes to the
//! same line path the epoll code uses, then returns the buffer to the ring at once. The kernel
//! never holds a pointer into a connection's memory: every buffer belongs to the shard and
//! outlives the ring (the ring is closed first), and a request holds its own reference to the
//! socket it was issued on. Completions are matched to connections by `user_data` (slot index
//! and generation, [`crate::plain::conn_token`]), so those of a closed or reused slot are
//! recognised, and their buffers returned.

use std::{
    alloc::Layout,
    io,
    os::fd::{AsRawFd, RawFd},
    sync::atomic::{AtomicU16, Ordering},
};

use io_uring::{IoUring, Probe, cqueue, opcode, types};
use warppool_core::limits::{
    RING_BUFFER_BYTES, RING_BUFFERS, RING_COMPLETIONS_PER_TURN_MAX, RING_SUBMISSION_ENTRIES,
};

use crate::plain::Eventfd;

/// `user_data` of cancel requests (their completions are ignored). Connection tokens never
/// have bit 63 set.
const TOKEN_CANCEL: u64 = u64::MAX;

/// The buffer group id of the shard's provided-buffer ring.
const BUFFER_GROUP: u16 = 0;

/// One completion copied out of the queue.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Completion {
    /// The connection token of the request.
    pub(crate) token: u64,
    /// Bytes received (0: end of stream), or a negated errno.
    pub(crate) result: i32,
    /// The provided buffer holding the bytes, if the kernel picked one.
    pub(crate) buffer: Option<u16>,
    /// The multishot recv stays armed (`IORING_CQE_F_MORE`).
    pub(crate) more: bool,
}

/// A page-aligned heap allocation, freed on drop.
struct Region {
    ptr: *mut u8,
    layout: Layout,
}

impl Region {
    fn new(bytes: usize) -> Self {
        let layout = Layout::from_size_align(bytes, 4096).expect("ring region layout");
        // SAFETY: the layout has a non-zero size (asserted by the limits).
        let ptr = unsafe { std::alloc::alloc_zeroed(layout) };
        if ptr.is_null() {
            std::alloc::handle_alloc_error(layout);
        }
        Self { ptr, layout }
    }
}

impl Drop for Region {
    fn drop(&mut self) {
        // SAFETY: allocated in `new` with this layout and not freed since.
        unsafe { std::alloc::dealloc(self.ptr, self.layout) };
    }
}

/// The shard's ring: the io_uring instance first (dropping it closes the ring, so the kernel
/// is done with the buffers before they are freed), then the buffer ring and the buffers.
pub(crate) struct RecvRing {
    ring: IoUring,
    /// `RING_BUFFERS` entries of `io_uring_buf`, shared with the kernel.
    entries: Region,
    /// `RING_BUFFERS * RING_BUFFER_BYTES` bytes the kernel receives into.
    data: Region,
    /// Our copy of the buffer ring's tail (the kernel only reads the shared one).
    tail: u16,
    /// Signalled by the ring on every completion it posts (registered in the shard's epoll).
    completions: Eventfd,
    batch: [Completion; RING_COMPLETIONS_PER_TURN_MAX],
}

impl Drop for RecvRing {
    fn drop(&mut self) {
        // Unregister the buffer group first (synchronously, under the ring's lock): from then
        // on no request can pick one of our buffers, and the kernel copies into user memory
        // only on this thread, which is here. Then the fields drop: the ring (closed, its
        // requests cancelled), the entries and the buffers.
        let _ = self.ring.submitter().unregister_buf_ring(BUFFER_GROUP);
    }
}

impl std::fmt::Debug for RecvRing {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RecvRing").finish_non_exhaustive()
    }
}

impl RecvRing {
    /// Creates the ring and probes what the data path needs: the RECV opcode, a registered
    /// provided-buffer ring, and a multishot recv that reports `IORING_CQE_F_MORE` on a real
    /// socket pair. Any failure means the shard uses its epoll path.
    pub(crate) fn new() -> io::Result<Self> {
        // A completion queue with room for one completion per provided buffer and as many
        // final ones (end of stream, ENOBUFS, cancelled).
        let ring = IoUring::builder()
            .setup_cqsize(u32::try_from(2 * RING_BUFFERS).expect("queue size fits u32"))
            .build(RING_SUBMISSION_ENTRIES)?;
        let mut probe = Probe::new();
        ring.submitter().register_probe(&mut probe)?;
        if !probe.is_supported(opcode::RecvMulti::CODE)
            || !probe.is_supported(opcode::AsyncCancel::CODE)
        {
            return Err(io::Error::new(
                io::ErrorKind::Unsupported,
                "io_uring RECV or ASYNC_CANCEL not supported",
            ));
        }
        let completions = Eventfd::new()?;
        ring.submitter().register_eventfd(completions.as_raw_fd())?;
        let entries = Region::new(RING_BUFFERS * std::mem::size_of::<types::BufRingEntry>());
        let data = Region::new(RING_BUFFERS * RING_BUFFER_BYTES);
        // Touch every page now, so receiving later does not grow the process's resident set:
        // the ring is a fixed per-shard cost, paid at start.
        // SAFETY: `data` is valid for this many bytes of writes.
        unsafe { std::ptr::write_bytes(data.ptr, 0, RING_BUFFERS * RING_BUFFER_BYTES) };
        let count = u16::try_from(RING_BUFFERS).expect("ring size fits u16");
        // SAFETY: `entries` is page-aligned, zeroed, holds `count` entries and lives as long
        // as the ring (the ring is dropped first; see the field order).
        unsafe {
            ring.submitter().register_buf_ring_with_flags(
                entries.ptr as u64,
                count,
                BUFFER_GROUP,
                0,
            )?;
        }
        let mut this = Self {
            ring,
            entries,
            data,
            tail: 0,
            completions,
            batch: [Completion {
                token: 0,
                result: 0,
                buffer: None,
                more: false,
            }; RING_COMPLETIONS_PER_TURN_MAX],
        };
        for bid in 0..count {
            this.recycle(bid);
        }
        this.probe_multishot()?;
        Ok(this)
    }

    /// Arms a multishot recv on one end of a socket pair, sends a byte from the other and
    /// expects a completion with the byte in a provided buffer and `IORING_CQE_F_MORE`.
    fn probe_multishot(&mut self) -> io::Result<()> {
        let (a, b) = std::os::unix::net::UnixStream::pair()?;
        // Bit 63 set: never a connection's token, so a late completion of the probe (its end
        // of stream after the pair is closed) is treated as stale and its buffer returned.
        const PROBE: u64 = (1 << 63) | 1;
        self.arm(a.as_raw_fd(), PROBE)?;
        let sent = std::io::Write::write(&mut &b, b"p")?;
        assert_eq!(sent, 1);
        self.ring.submit_and_wait(1)?;
        let mut outcome = Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "io_uring multishot recv not supported",
        ));
        let n = self.reap();
        for i in 0..n {
            let c = self.batch[i];
            if let Some(bid) = c.buffer {
                self.recycle(bid);
            }
            if c.token == PROBE && c.result == 1 && c.more {
                outcome = Ok(());
            }
        }
        // Closing the pair ends the recv (end of stream); that last completion is read by the
        // shard loop like any stale one.
        drop(b);
        drop(a);
        outcome
    }

    /// The eventfd the ring signals on every completion.
    pub(crate) fn completions_fd(&self) -> RawFd {
        self.completions.as_raw_fd()
    }

    /// Resets the eventfd before the completion queue is read.
    pub(crate) fn clear_signal(&self) {
        self.completions.clear();
    }

    /// Submits one entry now (so the kernel resolves the descriptor before the shard can
    /// close it and reuse its number).
    fn push(&mut self, entry: &io_uring::squeue::Entry) -> io::Result<()> {
        // SAFETY: the entry refers to no user memory (a multishot recv picks provided
        // buffers, which live as long as the ring; a cancel carries only a token).
        let pushed = unsafe { self.ring.submission().push(entry) };
        if pushed.is_err() {
            self.ring.submit()?;
            // SAFETY: as above.
            unsafe { self.ring.submission().push(entry) }
                .map_err(|_| io::Error::other("io_uring submission queue full"))?;
        }
        self.ring.submit()?;
        Ok(())
    }

    /// Starts a multishot recv on `fd` whose completions carry `token`.
    pub(crate) fn arm(&mut self, fd: RawFd, token: u64) -> io::Result<()> {
        debug_assert!(token != TOKEN_CANCEL);
        let entry = opcode::RecvMulti::new(types::Fd(fd), BUFFER_GROUP)
            .build()
            .user_data(token);
        self.push(&entry)
    }

    /// Asks the kernel to end the multishot recv of `token` (its last completion follows).
    pub(crate) fn cancel(&mut self, token: u64) -> io::Result<()> {
        let entry = opcode::AsyncCancel::new(token)
            .build()
            .user_data(TOKEN_CANCEL);
        self.push(&entry)
    }

    /// Copies up to `RING_COMPLETIONS_PER_TURN_MAX` completions (cancel results skipped) into
    /// the batch; returns how many. Read them with [`RecvRing::completion`].
    pub(crate) fn reap(&mut self) -> usize {
        let mut n = 0;
        let mut queue = self.ring.completion();
        queue.sync();
        while n < RING_COMPLETIONS_PER_TURN_MAX {
            let Some(entry) = queue.next() else { break };
            if entry.user_data() == TOKEN_CANCEL {
                continue;
            }
            self.batch[n] = Completion {
                token: entry.user_data(),
                result: entry.result(),
                buffer: cqueue::buffer_select(entry.flags()),
                more: cqueue::more(entry.flags()),
            };
            n += 1;
        }
        n
    }

    /// The `i`-th completion of the last [`RecvRing::reap`].
    pub(crate) fn completion(&self, i: usize) -> Completion {
        self.batch[i]
    }

    /// Whether completions are waiting (the loop then does not block).
    pub(crate) fn has_completions(&mut self) -> bool {
        // Completions that overflowed the queue are held by the kernel until an enter with
        // GETEVENTS flushes them (`submit` does when the overflow flag is set); the eventfd is
        // not signalled again for them.
        let _ = self.ring.submit();
        let mut queue = self.ring.completion();
        queue.sync();
        !queue.is_empty()
    }

    /// The first `len` bytes of provided buffer `bid`, which the kernel handed to us in a
    /// completion and will not write until it is recycled.
    pub(crate) fn bytes(&self, bid: u16, len: usize) -> &[u8] {
        let bid = usize::from(bid);
        assert!(bid < RING_BUFFERS && len <= RING_BUFFER_BYTES);
        // SAFETY: buffer `bid` lies within `data`; a buffer handed out in a completion is not
        // in the ring, so the kernel does not write it until `recycle` puts it back.
        unsafe { std::slice::from_raw_parts(self.data.ptr.add(bid * RING_BUFFER_BYTES), len) }
    }

    /// Puts buffer `bid` back at the tail of the provided-buffer ring.
    pub(crate) fn recycle(&mut self, bid: u16) {
        let index = usize::from(self.tail) & (RING_BUFFERS - 1);
        let entries = self.entries.ptr.cast::<types::BufRingEntry>();
        // SAFETY: `index` < RING_BUFFERS entries; the slot at the tail is not read by the
        // kernel until the tail is published below.
        let entry = unsafe { &mut *entries.add(index) };
        // SAFETY: as in `bytes`, the buffer lies within `data`.
        let addr = unsafe { self.data.ptr.add(usize::from(bid) * RING_BUFFER_BYTES) };
        entry.set_addr(addr as u64);
        entry.set_len(RING_BUFFER_BYTES as u32);
        entry.set_bid(bid);
        self.tail = self.tail.wrapping_add(1);
        // SAFETY: the tail field is the `resv` field of entry 0, a u16 the kernel reads
        // concurrently; it is aligned for an atomic u16 and only written here.
        let tail = unsafe { &*types::BufRingEntry::tail(entries).cast::<AtomicU16>() };
        tail.store(self.tail, Ordering::Release);
    }
}
