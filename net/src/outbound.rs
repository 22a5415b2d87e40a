//! The bounded per-connection outbound queue.
//!
//! The protocol writes whole messages (each ending in `\n`) into an [`Outbound`]. On a TLS
//! connection the writer task takes everything queued in one swap and sends it in one write;
//! on a plain connection the shard writes it through with a non-blocking `send(2)` after the
//! callbacks of one read, and only what the kernel did not take stays queued (the backlog).
//! Either way replies go out in order and several replies share one syscall.
//! The queue never grows: it is `OUTBOUND_QUEUE_BYTES_MAX` bytes, allocated when a TLS
//! connection is set up, or for a plain connection lent from the shard's spare buffers while a
//! callback runs or a backlog waits, and returned when empty. When a message does not fit,
//! queued job notifications that were
//! pushed with [`Outbound::push_job`] are dropped (oldest first; they are superseded by newer
//! work), and if it still does not fit the connection is marked overflowed and the shard
//! closes it (a slow reader).

use warppool_core::limits::{OUTBOUND_DROPPABLE_MESSAGES_MAX, OUTBOUND_QUEUE_BYTES_MAX};

/// Returned when a message does not fit into the outbound queue even after dropping every
/// superseded job notification. The connection is closed after the current callback.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Overflow;

/// A queued job notification: `start..start + len` of the queue.
#[derive(Debug, Clone, Copy, Default)]
struct Droppable {
    start: u32,
    len: u32,
}

/// Bytes waiting to be written to one connection (see the module docs).
#[derive(Debug)]
pub struct Outbound {
    bytes: Vec<u8>,
    droppable: [Droppable; OUTBOUND_DROPPABLE_MESSAGES_MAX],
    droppable_count: usize,
    dropped_count: u64,
    overflowed: bool,
}

impl Outbound {
    pub(crate) fn new() -> Self {
        Self {
            bytes: Vec::with_capacity(OUTBOUND_QUEUE_BYTES_MAX),
            droppable: [Droppable::default(); OUTBOUND_DROPPABLE_MESSAGES_MAX],
            droppable_count: 0,
            dropped_count: 0,
            overflowed: false,
        }
    }

    /// A queue without a buffer: the shard lends one ([`Outbound::install`]) before any
    /// callback and takes it back ([`Outbound::release`]) when the queue is empty.
    pub(crate) fn new_lazy() -> Self {
        Self {
            bytes: Vec::new(),
            droppable: [Droppable::default(); OUTBOUND_DROPPABLE_MESSAGES_MAX],
            droppable_count: 0,
            dropped_count: 0,
            overflowed: false,
        }
    }

    /// Whether a buffer is installed.
    pub(crate) fn has_buffer(&self) -> bool {
        self.bytes.capacity() > 0
    }

    /// Lends an empty buffer of `OUTBOUND_QUEUE_BYTES_MAX` bytes to a queue without one.
    pub(crate) fn install(&mut self, buffer: Vec<u8>) {
        assert!(!self.has_buffer());
        assert!(buffer.is_empty());
        assert!(buffer.capacity() >= OUTBOUND_QUEUE_BYTES_MAX);
        self.bytes = buffer;
    }

    /// Forgets everything queued (the connection is gone).
    pub(crate) fn clear(&mut self) {
        self.bytes.clear();
        self.droppable_count = 0;
    }

    /// Takes the buffer back from an empty queue.
    pub(crate) fn release(&mut self) -> Vec<u8> {
        assert!(self.bytes.is_empty());
        self.droppable_count = 0;
        std::mem::take(&mut self.bytes)
    }

    /// The queued bytes, oldest first.
    pub(crate) fn pending(&self) -> &[u8] {
        &self.bytes
    }

    /// Removes the first `n` queued bytes (they were written). A job notification written in
    /// part is no longer droppable.
    pub(crate) fn consume(&mut self, n: usize) {
        assert!(n <= self.bytes.len());
        if n == self.bytes.len() {
            self.bytes.clear();
            self.droppable_count = 0;
            return;
        }
        self.bytes.drain(..n);
        let sent = u32::try_from(n).expect("queue offset fits u32");
        let kept = self.droppable[..self.droppable_count]
            .iter()
            .position(|d| d.start >= sent)
            .unwrap_or(self.droppable_count);
        self.droppable.copy_within(kept..self.droppable_count, 0);
        self.droppable_count -= kept;
        for later in &mut self.droppable[..self.droppable_count] {
            later.start -= sent;
        }
    }

    /// Queues a message that must be delivered (a reply, `set_difficulty`, ...).
    ///
    /// # Errors
    ///
    /// [`Overflow`] when it does not fit even after dropping superseded job notifications;
    /// the connection is then closed.
    pub fn push(&mut self, message: &[u8]) -> Result<(), Overflow> {
        self.make_room(message.len(), false)?;
        self.append(message);
        Ok(())
    }

    /// Queues a job notification that may be dropped, while it is still queued, when the
    /// queue is full: a newer job supersedes it.
    ///
    /// # Errors
    ///
    /// [`Overflow`] as for [`Outbound::push`].
    pub fn push_job(&mut self, message: &[u8]) -> Result<(), Overflow> {
        self.make_room(message.len(), true)?;
        if self.droppable_count == OUTBOUND_DROPPABLE_MESSAGES_MAX {
            // Too many notifications queued: the oldest is superseded by this one.
            self.drop_droppable(0);
        }
        let start = self.bytes.len();
        self.append(message);
        assert!(self.droppable_count < OUTBOUND_DROPPABLE_MESSAGES_MAX);
        self.droppable[self.droppable_count] = Droppable {
            start: u32::try_from(start).expect("queue offset fits u32"),
            len: u32::try_from(message.len()).expect("message length fits u32"),
        };
        self.droppable_count += 1;
        Ok(())
    }

    /// Starts a message written in place (for example by a JSON serializer) through
    /// [`std::io::Write`]; nothing is queued until [`MessageWriter::finish`]. A writer dropped
    /// without `finish` leaves the queue as it was. `job` marks a droppable job notification
    /// as for [`Outbound::push_job`].
    pub fn message(&mut self, job: bool) -> MessageWriter<'_> {
        let start = self.bytes.len();
        MessageWriter {
            out: self,
            start,
            job,
            failed: false,
            finished: false,
        }
    }

    /// Bytes queued.
    pub fn len(&self) -> usize {
        self.bytes.len()
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> bool {
        self.bytes.is_empty()
    }

    /// Bytes that can still be queued without dropping anything.
    pub fn remaining(&self) -> usize {
        OUTBOUND_QUEUE_BYTES_MAX - self.bytes.len()
    }

    /// Whether a message did not fit; the shard closes the connection.
    pub fn is_overflowed(&self) -> bool {
        self.overflowed
    }

    /// Job notifications dropped since the last call (the shard sums them in its counters).
    pub(crate) fn take_dropped_count(&mut self) -> u64 {
        std::mem::take(&mut self.dropped_count)
    }

    /// Swaps the queued bytes with `spare` (an empty buffer of the same capacity), so the
    /// writer can send them while the protocol queues more. Nothing is copied.
    pub(crate) fn swap_out(&mut self, spare: &mut Vec<u8>) {
        assert!(spare.is_empty());
        assert!(spare.capacity() >= OUTBOUND_QUEUE_BYTES_MAX);
        std::mem::swap(&mut self.bytes, spare);
        self.droppable_count = 0;
        debug_assert!(self.bytes.is_empty());
    }

    fn append(&mut self, message: &[u8]) {
        let capacity = self.bytes.capacity();
        assert!(
            capacity >= OUTBOUND_QUEUE_BYTES_MAX,
            "no outbound buffer installed"
        );
        assert!(self.bytes.len() + message.len() <= OUTBOUND_QUEUE_BYTES_MAX);
        self.bytes.extend_from_slice(message);
        debug_assert_eq!(
            self.bytes.capacity(),
            capacity,
            "outbound queue reallocated"
        );
    }

    fn make_room(&mut self, needed: usize, incoming_is_job: bool) -> Result<(), Overflow> {
        if self.overflowed {
            return Err(Overflow);
        }
        // Drop superseded notifications, oldest first. The newest one is kept unless the
        // incoming message is itself a newer notification.
        while needed > self.remaining() {
            let keep = usize::from(!incoming_is_job);
            if self.droppable_count <= keep {
                break;
            }
            self.drop_droppable(0);
        }
        if needed > self.remaining() {
            self.overflowed = true;
            return Err(Overflow);
        }
        Ok(())
    }

    fn drop_droppable(&mut self, index: usize) {
        assert!(index < self.droppable_count);
        let victim = self.droppable[index];
        let start = victim.start as usize;
        let len = victim.len as usize;
        self.bytes.drain(start..start + len);
        self.droppable
            .copy_within(index + 1..self.droppable_count, index);
        self.droppable_count -= 1;
        for later in &mut self.droppable[index..self.droppable_count] {
            debug_assert!(later.start as usize >= start + len);
            later.start -= victim.len;
        }
        self.dropped_count += 1;
    }
}

/// A message being written into an [`Outbound`] in place (see [`Outbound::message`]).
#[derive(Debug)]
pub struct MessageWriter<'a> {
    out: &'a mut Outbound,
    start: usize,
    job: bool,
    failed: bool,
    finished: bool,
}

impl MessageWriter<'_> {
    /// Queues the message written so far.
    ///
    /// # Errors
    ///
    /// [`Overflow`] when a write did not fit; nothing of this message is queued and the
    /// connection is closed after the current callback.
    pub fn finish(mut self) -> Result<(), Overflow> {
        self.finished = true;
        if self.failed {
            return Err(Overflow);
        }
        let len = self.out.bytes.len() - self.start;
        if self.job && len > 0 {
            if self.out.droppable_count == OUTBOUND_DROPPABLE_MESSAGES_MAX {
                self.out.drop_droppable(0);
                self.start = self.out.bytes.len() - len;
            }
            assert!(self.out.droppable_count < OUTBOUND_DROPPABLE_MESSAGES_MAX);
            self.out.droppable[self.out.droppable_count] = Droppable {
                start: u32::try_from(self.start).expect("queue offset fits u32"),
                len: u32::try_from(len).expect("message length fits u32"),
            };
            self.out.droppable_count += 1;
        }
        Ok(())
    }
}

impl std::io::Write for MessageWriter<'_> {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        if self.failed {
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        let written = self.out.bytes.len() - self.start;
        // Superseded notifications are all before `start`; dropping them moves this message.
        let room = self.out.make_room(buf.len(), self.job);
        self.start = self.out.bytes.len() - written;
        if room.is_err() {
            self.failed = true;
            self.out.bytes.truncate(self.start);
            return Err(std::io::ErrorKind::WriteZero.into());
        }
        self.out.append(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

impl Drop for MessageWriter<'_> {
    fn drop(&mut self) {
        if !self.finished {
            self.out.bytes.truncate(self.start);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn drops_oldest_notification_then_overflows() {
        let mut out = Outbound::new();
        let job = vec![b'j'; OUTBOUND_QUEUE_BYTES_MAX / 4];
        let reply = vec![b'r'; OUTBOUND_QUEUE_BYTES_MAX / 4];
        out.push_job(&job).unwrap();
        out.push(&reply).unwrap();
        out.push_job(&job).unwrap();
        out.push(&reply).unwrap();
        assert_eq!(out.remaining(), 0);
        // A reply needs room: the oldest job goes, the newest is kept.
        out.push(&reply).unwrap();
        assert_eq!(out.take_dropped_count(), 1);
        assert!(!out.is_overflowed());
        // Another reply: only the newest job is left and it is kept, so this overflows.
        assert_eq!(out.push(&reply), Err(Overflow));
        assert!(out.is_overflowed());
        assert_eq!(out.push(b"x"), Err(Overflow));
    }

    #[test]
    fn newer_job_supersedes_the_newest_queued_job() {
        let mut out = Outbound::new();
        let job = vec![b'j'; OUTBOUND_QUEUE_BYTES_MAX / 2];
        out.push_job(&job).unwrap();
        out.push_job(&job).unwrap();
        out.push_job(&job).unwrap();
        assert_eq!(out.take_dropped_count(), 1);
        assert_eq!(out.len(), OUTBOUND_QUEUE_BYTES_MAX);
    }

    #[test]
    fn message_writer_commits_or_leaves_nothing() {
        use std::io::Write;
        let mut out = Outbound::new();
        let mut message = out.message(false);
        writeln!(message, "{{\"id\":{}}}", 1).unwrap();
        message.finish().unwrap();
        let mut abandoned = out.message(false);
        abandoned.write_all(b"half").unwrap();
        drop(abandoned);
        assert_eq!(out.len(), 9);
        // A job written in place is droppable like `push_job`.
        for _ in 0..2 {
            let mut job = out.message(true);
            job.write_all(&vec![b'j'; OUTBOUND_QUEUE_BYTES_MAX / 4])
                .unwrap();
            job.finish().unwrap();
        }
        let mut big = out.message(false);
        big.write_all(&vec![b'r'; OUTBOUND_QUEUE_BYTES_MAX / 2])
            .unwrap();
        big.finish().unwrap();
        assert_eq!(out.take_dropped_count(), 1);
        let mut spare = Vec::with_capacity(OUTBOUND_QUEUE_BYTES_MAX);
        out.swap_out(&mut spare);
        assert!(spare.starts_with(b"{\"id\":1}\njjj"));
        assert_eq!(
            spare.len(),
            9 + OUTBOUND_QUEUE_BYTES_MAX / 4 + OUTBOUND_QUEUE_BYTES_MAX / 2
        );
        assert!(spare.ends_with(b"rrr"));
        // Too big for an empty queue: overflow, nothing queued.
        let mut huge = out.message(false);
        assert!(
            huge.write_all(&vec![b'h'; OUTBOUND_QUEUE_BYTES_MAX + 1])
                .is_err()
        );
        assert_eq!(huge.finish(), Err(Overflow));
        assert!(out.is_empty());
        assert!(out.is_overflowed());
    }

    #[test]
    fn consume_keeps_later_notifications_droppable() {
        let mut out = Outbound::new_lazy();
        assert!(!out.has_buffer());
        out.install(Vec::with_capacity(OUTBOUND_QUEUE_BYTES_MAX));
        out.push_job(b"j1\n").unwrap();
        out.push(b"r\n").unwrap();
        out.push_job(b"j2\n").unwrap();
        out.push_job(b"j3\n").unwrap();
        // "j1\n" and half of "r\n" were written: j1 is gone, j2 and j3 are still droppable.
        out.consume(4);
        assert_eq!(out.pending(), b"\nj2\nj3\n");
        out.push(&vec![b'x'; OUTBOUND_QUEUE_BYTES_MAX - 4]).unwrap();
        assert_eq!(out.take_dropped_count(), 1);
        assert_eq!(out.len(), OUTBOUND_QUEUE_BYTES_MAX);
        assert!(out.pending().starts_with(b"\nj3\nxx"));
        out.consume(out.len());
        assert!(out.is_empty());
        assert_eq!(out.release().capacity(), OUTBOUND_QUEUE_BYTES_MAX);
        assert!(!out.has_buffer());
    }

    #[test]
    fn order_is_kept_when_dropping_from_the_middle() {
        let mut out = Outbound::new();
        out.push(b"a\n").unwrap();
        out.push_job(&vec![b'j'; OUTBOUND_QUEUE_BYTES_MAX - 4])
            .unwrap();
        out.push(b"b\n").unwrap();
        assert_eq!(out.take_dropped_count(), 0);
        out.push_job(b"k\n").unwrap();
        assert_eq!(out.take_dropped_count(), 1);
        let mut spare = Vec::with_capacity(OUTBOUND_QUEUE_BYTES_MAX);
        out.swap_out(&mut spare);
        assert_eq!(spare, b"a\nb\nk\n");
        assert!(out.is_empty());
    }
}
