//! SHA-256 and double SHA-256 (sha256d) for Bitcoin mining.
//!
//! The hot paths of a pool hash three shapes of input: 80-byte block headers, 64-byte merkle
//! nodes (two concatenated 32-byte hashes) and the coinbase transaction (variable length, with a
//! long constant prefix per job). This crate serves each of them without allocation:
//!
//! - [`sha256d_header`] / [`sha256d_headers`]: one or many 80-byte headers;
//! - [`sha256d_64`] / [`sha256d_64_batch`]: one or many merkle nodes;
//! - [`Midstate`]: compress a constant prefix once and finish many messages from it;
//! - [`Sha256`]: a streaming hasher that can start from a midstate.
//!
//! The compression kernel is chosen once, on first use, from CPU detection (see
//! [`kernel::selected`]); each kernel is also callable directly for tests and benchmarks.

pub mod kernel;
mod sha256;

pub use sha256::{Midstate, Sha256, sha256, sha256d};

/// The initial SHA-256 state (FIPS 180-4 §5.3.3).
pub const IV: [u32; 8] = [
    0x6a09_e667,
    0xbb67_ae85,
    0x3c6e_f372,
    0xa54f_f53a,
    0x510e_527f,
    0x9b05_688c,
    0x1f83_d9ab,
    0x5be0_cd19,
];

/// sha256d of one 80-byte block header. The result is in internal byte order (the order in which
/// it is compared with a target as a little-endian 256-bit number).
#[must_use]
pub fn sha256d_header(header: &[u8; 80]) -> [u8; 32] {
    let mut out = [[0u8; 32]; 1];
    sha256d_headers(core::slice::from_ref(header), &mut out);
    out[0]
}

/// sha256d of one 64-byte merkle node.
#[must_use]
pub fn sha256d_64(node: &[u8; 64]) -> [u8; 32] {
    let mut out = [[0u8; 32]; 1];
    sha256d_64_batch(core::slice::from_ref(node), &mut out);
    out[0]
}

/// sha256d of many headers. Hashes `min(headers.len(), out.len())` items.
pub fn sha256d_headers(headers: &[[u8; 80]], out: &mut [[u8; 32]]) {
    kernel::selected().sha256d_headers(headers, out);
}

/// sha256d of many headers that share their first 64 bytes, compressed once into `mid`
/// (see [`Midstate::from_header`]); `tails` are the last 16 bytes of each header (end of the
/// merkle root, time, bits, nonce). Hashes `min(tails.len(), out.len())` items.
pub fn sha256d_headers_midstate(mid: &Midstate, tails: &[[u8; 16]], out: &mut [[u8; 32]]) {
    kernel::selected().sha256d_headers_midstate(mid, tails, out);
}

/// sha256d of many 64-byte merkle nodes. Hashes `min(nodes.len(), out.len())` items.
pub fn sha256d_64_batch(nodes: &[[u8; 64]], out: &mut [[u8; 32]]) {
    kernel::selected().sha256d_64(nodes, out);
}
