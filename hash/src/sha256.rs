//! Streaming SHA-256 and midstates, on top of the selected compression kernel.

use crate::IV;
use crate::kernel;

/// The state after compressing a whole number of 64-byte blocks: what a job computes once for
/// its constant prefix (coinb1, or the first 64 bytes of a header) so that each share only pays
/// for the bytes after it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Midstate {
    state: [u32; 8],
    /// Bytes compressed so far; always a multiple of 64.
    bytes: u64,
}

impl Midstate {
    /// The midstate after compressing `blocks` from the IV.
    #[must_use]
    pub fn from_blocks(blocks: &[[u8; 64]]) -> Self {
        let mut state = IV;
        kernel::selected().compress(&mut state, blocks);
        Self {
            state,
            bytes: 64 * blocks.len() as u64,
        }
    }

    /// The midstate of the first 64 bytes of an 80-byte header, for
    /// [`sha256d_headers_midstate`](crate::sha256d_headers_midstate).
    #[must_use]
    pub fn from_header(header: &[u8; 80]) -> Self {
        let (first, _) = header.as_chunks::<64>();
        Self::from_blocks(first)
    }

    /// The midstate of the longest whole-block prefix of `data`, and the rest of `data`.
    #[must_use]
    pub fn from_prefix(data: &[u8]) -> (Self, &[u8]) {
        let whole = data.len() / 64 * 64;
        let (head, rest) = data.split_at(whole);
        let (blocks, _) = head.as_chunks::<64>();
        (Self::from_blocks(blocks), rest)
    }

    /// The raw chaining state.
    #[must_use]
    pub fn state(&self) -> [u32; 8] {
        self.state
    }

    /// Bytes compressed into this state (a multiple of 64).
    #[must_use]
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
}

/// A streaming SHA-256 hasher. `Copy`, fixed size, never allocates.
#[derive(Clone, Copy, Debug)]
pub struct Sha256 {
    state: [u32; 8],
    buf: [u8; 64],
    buf_len: usize,
    total: u64,
}

impl Default for Sha256 {
    fn default() -> Self {
        Self::new()
    }
}

impl Sha256 {
    /// A hasher at the IV.
    #[must_use]
    pub const fn new() -> Self {
        Self {
            state: IV,
            buf: [0; 64],
            buf_len: 0,
            total: 0,
        }
    }

    /// A hasher that continues from `mid`.
    #[must_use]
    pub const fn from_midstate(mid: Midstate) -> Self {
        Self {
            state: mid.state,
            buf: [0; 64],
            buf_len: 0,
            total: mid.bytes,
        }
    }

    /// Feeds `data`.
    pub fn update(&mut self, mut data: &[u8]) {
        self.total = self.total.wrapping_add(data.len() as u64);
        if self.buf_len > 0 {
            let take = (64 - self.buf_len).min(data.len());
            self.buf[self.buf_len..self.buf_len + take].copy_from_slice(&data[..take]);
            self.buf_len += take;
            data = &data[take..];
            if self.buf_len < 64 {
                return;
            }
            kernel::selected().compress(&mut self.state, core::slice::from_ref(&self.buf));
            self.buf_len = 0;
        }
        let (blocks, rest) = data.as_chunks::<64>();
        if !blocks.is_empty() {
            kernel::selected().compress(&mut self.state, blocks);
        }
        self.buf[..rest.len()].copy_from_slice(rest);
        self.buf_len = rest.len();
    }

    /// Pads and returns the digest.
    #[must_use]
    pub fn finalize(mut self) -> [u8; 32] {
        let bit_len = self.total.wrapping_mul(8);
        let mut pad = [0u8; 128];
        let used = self.buf_len;
        pad[..used].copy_from_slice(&self.buf[..used]);
        pad[used] = 0x80;
        let len = if used < 56 { 64 } else { 128 };
        pad[len - 8..len].copy_from_slice(&bit_len.to_be_bytes());
        let (blocks, _) = pad[..len].as_chunks::<64>();
        kernel::selected().compress(&mut self.state, blocks);
        state_to_bytes(&self.state)
    }
}

/// Big-endian serialisation of a chaining state: the digest.
#[must_use]
pub(crate) fn state_to_bytes(state: &[u32; 8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (chunk, word) in out.chunks_exact_mut(4).zip(state) {
        chunk.copy_from_slice(&word.to_be_bytes());
    }
    out
}

/// SHA-256 of `data`.
#[must_use]
pub fn sha256(data: &[u8]) -> [u8; 32] {
    let mut h = Sha256::new();
    h.update(data);
    h.finalize()
}

/// SHA-256 of SHA-256 of `data`.
#[must_use]
pub fn sha256d(data: &[u8]) -> [u8; 32] {
    sha256(&sha256(data))
}
