//! SHA-256 and double SHA-256 (sha256d) for Bitcoin mining.
//!
//! The hot paths of a pool hash three shapes of input: 80-byte block headers, 64-byte merkle
//! nodes (two concatenated 32-byte hashes) and the coinbase transaction (variable length, with a
//! long constant prefix per job). This crate serves each of them without allocation:
//!
//! - [`sha256d_header`] / [`sha256d_headers`]: one or many 80-byte headers;
//! - [`sha256d_headers_midstate`]: many headers sharing their first 64 bytes (a miner's
//!   nonce/time/merkle-root-tail loop), from a [`Midstate`] computed once;
//! - [`sha256d_64`] / [`sha256d_64_batch`]: one or many merkle nodes;
//! - [`Midstate`]: compress a constant prefix once and finish many messages from it;
//! - [`Sha256`]: a streaming hasher that can start from a midstate.
//!
//! Digests are raw SHA-256 output bytes (internal byte order: a block hash as stored in memory;
//! reverse it for the usual hex display).
//!
//! # Kernels
//!
//! [`kernel::Kernel`] lists the implementations:
//!
//! - **SHA-NI** (x86-64 `sha` + `sse4.1` + `ssse3`): the SHA extension instructions. Single
//!   stream for [`Sha256`] and midstates; batches interleave 8 independent messages so the
//!   latency of `sha256rnds2` is hidden (leftovers in exact groups of 4, 2 and 1).
//! - **AVX-512** (x86-64 `avx512f`): 16 messages at once, one per 32-bit lane, with `vprold`
//!   rotations and `vpternlogd` for the three-input functions.
//! - **AVX2** (x86-64 `avx2`): 8 messages at once, one per lane.
//! - **ARMv8 SHA2** (aarch64 `sha2`): the crypto extension instructions, one stream.
//! - **Scalar**: portable Rust, always available, and the fallback of every other kernel.
//!
//! All kernels exploit the constant parts of the three shapes: the padding block after a
//! 64-byte node is entirely constant, so its message schedule plus round constants is a
//! compile-time table and its compression does no schedule work; the second block of a header
//! and the 32-byte second hash have constant padding words baked in. Multi-buffer batches whose
//! length is not a multiple of the lane count pad the last group in a stack array.
//!
//! # Selection
//!
//! [`kernel::selected`] runs CPU detection once (cached in an atomic) and returns the first
//! available of SHA-NI, ARMv8 SHA2, AVX-512, AVX2, scalar. SHA-NI comes before the multi-buffer
//! kernels because it measured faster on the project machine (AMD EPYC with SHA-NI and
//! AVX-512: about 62 vs 89 ns per header, 51 vs 76 ns per merkle node; see
//! `docs/performance.md`). The multi-buffer kernels are for CPUs without SHA extensions.
//!
//! Every kernel can also be called directly (`Kernel::Avx2.sha256d_headers(..)`); calling one
//! the CPU lacks is safe and silently uses the scalar code. All batch functions hash
//! `min(input.len(), out.len())` items and never panic on lengths.

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
