//! Round constants and the precomputed schedules of the constant padding blocks.
//!
//! sha256d of the three shapes this crate serves always ends in blocks that are wholly or partly
//! constant:
//!
//! - a 64-byte merkle node is one data block followed by a padding block that does not depend on
//!   the data at all, so its whole message schedule, with the round constants added
//!   ([`PAD64_WK`]), is computed at compile time;
//! - the second block of an 80-byte header holds 16 data bytes and 48 constant bytes
//!   ([`tail_words`]);
//! - the second SHA-256 of sha256d hashes a 32-byte digest: 8 data words and 8 constant words
//!   ([`DIGEST_PAD`]).

/// The SHA-256 round constants (FIPS 180-4 §4.2.2).
pub(crate) const K: [u32; 64] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
];

/// The full message schedule of a block given as 16 big-endian words.
pub(crate) const fn expand(w16: [u32; 16]) -> [u32; 64] {
    let mut w = [0u32; 64];
    let mut i = 0;
    while i < 16 {
        w[i] = w16[i];
        i += 1;
    }
    while i < 64 {
        let a = w[i - 15];
        let b = w[i - 2];
        let s0 = a.rotate_right(7) ^ a.rotate_right(18) ^ (a >> 3);
        let s1 = b.rotate_right(17) ^ b.rotate_right(19) ^ (b >> 10);
        w[i] = w[i - 16]
            .wrapping_add(s0)
            .wrapping_add(w[i - 7])
            .wrapping_add(s1);
        i += 1;
    }
    w
}

/// `W[i] + K[i]` for a whole schedule.
pub(crate) const fn add_k(w: [u32; 64]) -> [u32; 64] {
    let mut out = [0u32; 64];
    let mut i = 0;
    while i < 64 {
        out[i] = w[i].wrapping_add(K[i]);
        i += 1;
    }
    out
}

/// The padding block that follows exactly one 64-byte block (message length 512 bits).
pub(crate) const PAD64: [u32; 16] = [0x8000_0000, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 512];

/// `W + K` of [`PAD64`], for all 64 rounds: the second compression of a merkle node needs no
/// message schedule at all.
pub(crate) const PAD64_WK: [u32; 64] = add_k(expand(PAD64));

/// Words 8..16 of the block that hashes a 32-byte digest (message length 256 bits).
pub(crate) const DIGEST_PAD: [u32; 8] = [0x8000_0000, 0, 0, 0, 0, 0, 0, 256];

/// Words 4..16 of the last block of a message whose last 16 bytes start a block, for a message
/// of `len_bits` bits (640 for an 80-byte header).
pub(crate) const fn tail_words(len_bits: u64) -> [u32; 12] {
    let mut w = [0u32; 12];
    w[0] = 0x8000_0000;
    w[10] = (len_bits >> 32) as u32;
    w[11] = len_bits as u32;
    w
}

/// Bit length of an 80-byte header.
pub(crate) const HEADER_BITS: u64 = 80 * 8;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pad64_wk_matches_schedule() {
        let w = expand(PAD64);
        for i in 0..64 {
            assert_eq!(PAD64_WK[i], w[i].wrapping_add(K[i]));
        }
        assert_eq!(tail_words(HEADER_BITS)[11], 640);
    }
}
