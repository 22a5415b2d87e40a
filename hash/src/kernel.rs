//! Compression kernels and their selection.
//!
//! The portable kernel is always present. Faster kernels are added per architecture and chosen
//! once, on first use, by [`selected`].

use crate::IV;
use crate::sha256::state_to_bytes;

/// A SHA-256 implementation strategy.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub enum Kernel {
    /// Portable scalar Rust.
    Scalar,
}

impl Kernel {
    /// A short stable name, for logs and benchmark labels.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Kernel::Scalar => "scalar",
        }
    }

    /// Whether this CPU can run the kernel.
    #[must_use]
    pub fn is_available(self) -> bool {
        match self {
            Kernel::Scalar => true,
        }
    }

    /// Compresses `blocks` into `state`.
    pub fn compress(self, state: &mut [u32; 8], blocks: &[[u8; 64]]) {
        match self {
            Kernel::Scalar => scalar::compress(state, blocks),
        }
    }

    /// sha256d of many 80-byte headers (`min(headers.len(), out.len())` of them).
    pub fn sha256d_headers(self, headers: &[[u8; 80]], out: &mut [[u8; 32]]) {
        for (h, o) in headers.iter().zip(out.iter_mut()) {
            let mut block = [[0u8; 64]; 2];
            block[0].copy_from_slice(&h[..64]);
            block[1][..16].copy_from_slice(&h[64..]);
            block[1][16] = 0x80;
            block[1][56..].copy_from_slice(&(80u64 * 8).to_be_bytes());
            let mut state = IV;
            self.compress(&mut state, &block);
            *o = self.sha256_32(&state_to_bytes(&state));
        }
    }

    /// sha256d of many 64-byte nodes (`min(nodes.len(), out.len())` of them).
    pub fn sha256d_64(self, nodes: &[[u8; 64]], out: &mut [[u8; 32]]) {
        for (n, o) in nodes.iter().zip(out.iter_mut()) {
            let mut pad = [0u8; 64];
            pad[0] = 0x80;
            pad[56..].copy_from_slice(&(64u64 * 8).to_be_bytes());
            let mut state = IV;
            self.compress(&mut state, &[*n, pad]);
            *o = self.sha256_32(&state_to_bytes(&state));
        }
    }

    /// SHA-256 of a 32-byte message (the second pass of sha256d).
    fn sha256_32(self, digest: &[u8; 32]) -> [u8; 32] {
        let mut block = [0u8; 64];
        block[..32].copy_from_slice(digest);
        block[32] = 0x80;
        block[56..].copy_from_slice(&(32u64 * 8).to_be_bytes());
        let mut state = IV;
        self.compress(&mut state, core::slice::from_ref(&block));
        state_to_bytes(&state)
    }
}

/// The kernel used by the crate's free functions: the fastest available on this CPU.
#[must_use]
pub fn selected() -> Kernel {
    Kernel::Scalar
}

/// Portable scalar SHA-256 compression (FIPS 180-4 §6.2.2).
pub mod scalar {
    const K: [u32; 64] = [
        0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4,
        0xab1c5ed5, 0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe,
        0x9bdc06a7, 0xc19bf174, 0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f,
        0x4a7484aa, 0x5cb0a9dc, 0x76f988da, 0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7,
        0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967, 0x27b70a85, 0x2e1b2138, 0x4d2c6dfc,
        0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85, 0xa2bfe8a1, 0xa81a664b,
        0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070, 0x19a4c116,
        0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
        0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7,
        0xc67178f2,
    ];

    /// Compresses `blocks` into `state`.
    pub fn compress(state: &mut [u32; 8], blocks: &[[u8; 64]]) {
        for block in blocks {
            let mut w = [0u32; 64];
            for (i, word) in block.chunks_exact(4).enumerate() {
                w[i] = u32::from_be_bytes([word[0], word[1], word[2], word[3]]);
            }
            for i in 16..64 {
                let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
                let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
                w[i] = w[i - 16]
                    .wrapping_add(s0)
                    .wrapping_add(w[i - 7])
                    .wrapping_add(s1);
            }
            let [mut a, mut b, mut c, mut d, mut e, mut f, mut g, mut h] = *state;
            for i in 0..64 {
                let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
                let ch = (e & f) ^ (!e & g);
                let t1 = h
                    .wrapping_add(s1)
                    .wrapping_add(ch)
                    .wrapping_add(K[i])
                    .wrapping_add(w[i]);
                let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
                let maj = (a & b) ^ (a & c) ^ (b & c);
                let t2 = s0.wrapping_add(maj);
                h = g;
                g = f;
                f = e;
                e = d.wrapping_add(t1);
                d = c;
                c = b;
                b = a;
                a = t1.wrapping_add(t2);
            }
            for (s, v) in state.iter_mut().zip([a, b, c, d, e, f, g, h]) {
                *s = s.wrapping_add(v);
            }
        }
    }
}
