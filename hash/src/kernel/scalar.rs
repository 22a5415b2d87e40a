//! Portable scalar SHA-256 compression (FIPS 180-4 §6.2.2), with the same constant-block
//! shortcuts as the SIMD kernels.

use super::consts::{DIGEST_PAD, HEADER_BITS, K, PAD64_WK, tail_words};
use crate::IV;

#[inline(always)]
fn round(s: &mut [u32; 8], wk: u32) {
    let [a, b, c, d, e, f, g, h] = *s;
    let s1 = e.rotate_right(6) ^ e.rotate_right(11) ^ e.rotate_right(25);
    let ch = (e & f) ^ (!e & g);
    let t1 = h.wrapping_add(s1).wrapping_add(ch).wrapping_add(wk);
    let s0 = a.rotate_right(2) ^ a.rotate_right(13) ^ a.rotate_right(22);
    let maj = (a & b) ^ (a & c) ^ (b & c);
    let t2 = s0.wrapping_add(maj);
    *s = [t1.wrapping_add(t2), a, b, c, d.wrapping_add(t1), e, f, g];
}

/// Compresses one block given as 16 big-endian words.
#[inline]
pub(crate) fn compress_words(state: &mut [u32; 8], w16: [u32; 16]) {
    let mut w = [0u32; 64];
    w[..16].copy_from_slice(&w16);
    for i in 16..64 {
        let s0 = w[i - 15].rotate_right(7) ^ w[i - 15].rotate_right(18) ^ (w[i - 15] >> 3);
        let s1 = w[i - 2].rotate_right(17) ^ w[i - 2].rotate_right(19) ^ (w[i - 2] >> 10);
        w[i] = w[i - 16]
            .wrapping_add(s0)
            .wrapping_add(w[i - 7])
            .wrapping_add(s1);
    }
    let mut s = *state;
    for i in 0..64 {
        round(&mut s, w[i].wrapping_add(K[i]));
    }
    for (x, v) in state.iter_mut().zip(s) {
        *x = x.wrapping_add(v);
    }
}

/// Compresses one block whose `W + K` is known in advance (a constant padding block).
#[inline]
pub(crate) fn compress_wk(state: &mut [u32; 8], wk: &[u32; 64]) {
    let mut s = *state;
    for &x in wk {
        round(&mut s, x);
    }
    for (x, v) in state.iter_mut().zip(s) {
        *x = x.wrapping_add(v);
    }
}

fn block_words(block: &[u8; 64]) -> [u32; 16] {
    let mut w = [0u32; 16];
    let (words, _) = block.as_chunks::<4>();
    for (o, b) in w.iter_mut().zip(words) {
        *o = u32::from_be_bytes(*b);
    }
    w
}

/// Compresses `blocks` into `state`.
pub fn compress(state: &mut [u32; 8], blocks: &[[u8; 64]]) {
    for block in blocks {
        compress_words(state, block_words(block));
    }
}

/// The second SHA-256 of sha256d: the digest of the 32-byte message whose words are `state`.
fn finish(state: &[u32; 8]) -> [u8; 32] {
    let mut w = [0u32; 16];
    w[..8].copy_from_slice(state);
    w[8..].copy_from_slice(&DIGEST_PAD);
    let mut s = IV;
    compress_words(&mut s, w);
    crate::sha256::state_to_bytes(&s)
}

/// Continues from `state` with a final block of 16 data bytes, for a message of `len_bits`.
fn tail(state: &mut [u32; 8], t: &[u8; 16], len_bits: u64) {
    let mut w = [0u32; 16];
    let (words, _) = t.as_chunks::<4>();
    for (o, b) in w.iter_mut().zip(words) {
        *o = u32::from_be_bytes(*b);
    }
    w[4..].copy_from_slice(&tail_words(len_bits));
    compress_words(state, w);
}

pub(crate) fn header(h: &[u8; 80]) -> [u8; 32] {
    let (first, rest) = h.split_at(64);
    let mut block = [0u8; 64];
    block.copy_from_slice(first);
    let mut t = [0u8; 16];
    t.copy_from_slice(rest);
    let mut s = IV;
    compress_words(&mut s, block_words(&block));
    tail(&mut s, &t, HEADER_BITS);
    finish(&s)
}

pub(crate) fn node(n: &[u8; 64]) -> [u8; 32] {
    let mut s = IV;
    compress_words(&mut s, block_words(n));
    compress_wk(&mut s, &PAD64_WK);
    finish(&s)
}

pub(crate) fn header_midstate(mid: &[u32; 8], len_bits: u64, t: &[u8; 16]) -> [u8; 32] {
    let mut s = *mid;
    tail(&mut s, t, len_bits);
    finish(&s)
}
