//! Splits a byte stream into newline-terminated lines inside a caller-provided buffer.

use crate::limits::LINE_BYTES_MAX;
use crate::stratum::error::FrameError;

/// A line framer over a fixed buffer. Bytes go in (by [`LineFramer::spare_mut`] +
/// [`LineFramer::commit`], or by copying with [`LineFramer::feed`]); complete lines come out of
/// [`LineFramer::next_line`] without their `\n` (and without a trailing `\r`). Empty lines are
/// skipped. A line longer than the limit is reported once and then discarded up to its newline,
/// so memory stays bounded by the buffer and each byte is scanned once.
#[derive(Debug)]
pub struct LineFramer<'b> {
    buf: &'b mut [u8],
    /// Start of unconsumed data.
    start: usize,
    /// End of data.
    end: usize,
    /// Bytes from `start` already searched for a newline.
    scanned: usize,
    /// Dropping the rest of an over-long line.
    discarding: bool,
    line_bytes_max: usize,
}

impl<'b> LineFramer<'b> {
    /// A framer over `buf`; lines may be up to `min(buf.len() - 1, LINE_BYTES_MAX)` bytes.
    ///
    /// # Panics
    /// If `buf` is shorter than 2 bytes (a programming error).
    #[must_use]
    pub fn new(buf: &'b mut [u8]) -> Self {
        assert!(buf.len() >= 2, "line framer buffer too small");
        let line_bytes_max = (buf.len() - 1).min(LINE_BYTES_MAX);
        Self {
            buf,
            start: 0,
            end: 0,
            scanned: 0,
            discarding: false,
            line_bytes_max,
        }
    }

    /// The longest line delivered, in bytes.
    #[must_use]
    pub fn line_bytes_max(&self) -> usize {
        self.line_bytes_max
    }

    /// Bytes buffered and not yet delivered.
    #[must_use]
    pub fn buffered(&self) -> usize {
        self.end - self.start
    }

    /// Free space to read into; call [`LineFramer::commit`] with the bytes written. Call
    /// [`LineFramer::next_line`] until it returns `None` first, so that space is available.
    pub fn spare_mut(&mut self) -> &mut [u8] {
        if self.start > 0 {
            self.buf.copy_within(self.start..self.end, 0);
            self.end -= self.start;
            self.start = 0;
        }
        &mut self.buf[self.end..]
    }

    /// Marks `n` bytes written into [`LineFramer::spare_mut`] as received.
    ///
    /// # Panics
    /// If `n` is more than the spare space (a programming error).
    pub fn commit(&mut self, n: usize) {
        assert!(
            n <= self.buf.len() - self.end,
            "commit beyond the spare space"
        );
        self.end += n;
    }

    /// Copies as much of `input` as fits; returns the bytes taken. Drain lines with
    /// [`LineFramer::next_line`] and call again with the rest.
    pub fn feed(&mut self, input: &[u8]) -> usize {
        let spare = self.spare_mut();
        let n = spare.len().min(input.len());
        spare[..n].copy_from_slice(&input[..n]);
        self.commit(n);
        n
    }

    /// The next complete line, an error for an over-long one, or `None` when more bytes are
    /// needed.
    pub fn next_line(&mut self) -> Option<Result<&[u8], FrameError>> {
        loop {
            let from = self.start + self.scanned;
            let Some(offset) = self.buf[from..self.end].iter().position(|&b| b == b'\n') else {
                return self.no_newline();
            };
            let newline = from + offset;
            let line_start = self.start;
            self.start = newline + 1;
            self.scanned = 0;
            if self.discarding {
                self.discarding = false;
                continue;
            }
            let mut line_end = newline;
            if line_end > line_start && self.buf[line_end - 1] == b'\r' {
                line_end -= 1;
            }
            if line_end == line_start {
                continue;
            }
            if line_end - line_start > self.line_bytes_max {
                return Some(Err(FrameError::LineTooLong {
                    max: self.line_bytes_max,
                }));
            }
            return Some(Ok(&self.buf[line_start..line_end]));
        }
    }

    fn no_newline(&mut self) -> Option<Result<&[u8], FrameError>> {
        let pending = self.end - self.start;
        if self.discarding {
            self.start = 0;
            self.end = 0;
            self.scanned = 0;
            return None;
        }
        // A line of exactly `line_bytes_max` bytes may still be followed by `\r\n`.
        if pending > self.line_bytes_max + 1 || pending == self.buf.len() {
            self.start = 0;
            self.end = 0;
            self.scanned = 0;
            self.discarding = true;
            return Some(Err(FrameError::LineTooLong {
                max: self.line_bytes_max,
            }));
        }
        self.scanned = pending;
        None
    }
}
