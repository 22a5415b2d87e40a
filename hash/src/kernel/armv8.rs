//! ARMv8 SHA2 crypto extension (`sha256h`, `sha256h2`, `sha256su0`, `sha256su1`).
//!
//! Single stream; the batch entry points hash one message at a time. Only called after the
//! `sha2` feature has been detected.
//!
//! Not executed on the development machine (x86-64); see the crate documentation.

use core::arch::aarch64::{
    uint32x4_t, vaddq_u32, vld1q_u8, vld1q_u32, vreinterpretq_u8_u32, vreinterpretq_u32_u8,
    vrev32q_u8, vsha256h2q_u32, vsha256hq_u32, vsha256su0q_u32, vsha256su1q_u32, vst1q_u8,
    vst1q_u32,
};

use super::consts::{DIGEST_PAD, HEADER_BITS, K, PAD64_WK, tail_words};
use crate::IV;

/// `[abcd, efgh]`, lane 0 = a, e.
type State = [uint32x4_t; 2];
type Msg = [uint32x4_t; 4];

#[inline]
#[target_feature(enable = "neon,sha2")]
fn load_u32x4(w: &[u32; 4]) -> uint32x4_t {
    // SAFETY: `w` is four readable `u32`s.
    unsafe { vld1q_u32(w.as_ptr()) }
}

#[inline]
#[target_feature(enable = "neon,sha2")]
fn load_be(b: &[u8; 16]) -> uint32x4_t {
    // SAFETY: `b` is 16 readable bytes.
    let v = unsafe { vld1q_u8(b.as_ptr()) };
    vreinterpretq_u32_u8(vrev32q_u8(v))
}

#[inline]
#[target_feature(enable = "neon,sha2")]
fn store_be(v: uint32x4_t, out: &mut [u8; 16]) {
    let b = vrev32q_u8(vreinterpretq_u8_u32(v));
    // SAFETY: `out` is 16 writable bytes.
    unsafe { vst1q_u8(out.as_mut_ptr(), b) }
}

#[inline]
#[target_feature(enable = "neon,sha2")]
fn load_state(s: &[u32; 8]) -> State {
    let (c, _) = s.as_chunks::<4>();
    [load_u32x4(&c[0]), load_u32x4(&c[1])]
}

#[inline]
#[target_feature(enable = "neon,sha2")]
fn rounds4(st: &mut State, wk: uint32x4_t) {
    let abcd = st[0];
    st[0] = vsha256hq_u32(abcd, st[1], wk);
    st[1] = vsha256h2q_u32(st[1], abcd, wk);
}

/// Compresses one block (with the feed-forward).
#[inline]
#[target_feature(enable = "neon,sha2")]
fn compress_msg(st: &mut State, w: &mut Msg) {
    let save = *st;
    for g in 0..16 {
        let mut k = [0u32; 4];
        k.copy_from_slice(&K[4 * g..4 * g + 4]);
        let i = g % 4;
        let wk = vaddq_u32(w[i], load_u32x4(&k));
        if g < 12 {
            let t = vsha256su0q_u32(w[i], w[(i + 1) % 4]);
            w[i] = vsha256su1q_u32(t, w[(i + 2) % 4], w[(i + 3) % 4]);
        }
        rounds4(st, wk);
    }
    st[0] = vaddq_u32(st[0], save[0]);
    st[1] = vaddq_u32(st[1], save[1]);
}

#[inline]
#[target_feature(enable = "neon,sha2")]
fn compress_const(st: &mut State, wk: &[u32; 64]) {
    let save = *st;
    for g in 0..16 {
        let mut c = [0u32; 4];
        c.copy_from_slice(&wk[4 * g..4 * g + 4]);
        rounds4(st, load_u32x4(&c));
    }
    st[0] = vaddq_u32(st[0], save[0]);
    st[1] = vaddq_u32(st[1], save[1]);
}

#[inline]
#[target_feature(enable = "neon,sha2")]
fn load_block(b: &[u8; 64]) -> Msg {
    let (c, _) = b.as_chunks::<16>();
    [
        load_be(&c[0]),
        load_be(&c[1]),
        load_be(&c[2]),
        load_be(&c[3]),
    ]
}

#[inline]
#[target_feature(enable = "neon,sha2")]
fn tail_msg(t: &[u8; 16], len_bits: u64) -> Msg {
    let pad = tail_words(len_bits);
    let (c, _) = pad.as_chunks::<4>();
    [
        load_be(t),
        load_u32x4(&c[0]),
        load_u32x4(&c[1]),
        load_u32x4(&c[2]),
    ]
}

#[inline]
#[target_feature(enable = "neon,sha2")]
fn finish(st: State, out: &mut [u8; 32]) {
    let (pad, _) = DIGEST_PAD.as_chunks::<4>();
    let mut w = [st[0], st[1], load_u32x4(&pad[0]), load_u32x4(&pad[1])];
    let mut s2 = load_state(&IV);
    compress_msg(&mut s2, &mut w);
    let (o, _) = out.as_chunks_mut::<16>();
    store_be(s2[0], &mut o[0]);
    store_be(s2[1], &mut o[1]);
}

/// Compresses `blocks` into `state`.
#[target_feature(enable = "neon,sha2")]
pub(crate) fn compress(state: &mut [u32; 8], blocks: &[[u8; 64]]) {
    let mut st = load_state(state);
    for b in blocks {
        let mut w = load_block(b);
        compress_msg(&mut st, &mut w);
    }
    let (s, _) = state.as_chunks_mut::<4>();
    // SAFETY: each destination is four writable `u32`s.
    unsafe {
        vst1q_u32(s[0].as_mut_ptr(), st[0]);
        vst1q_u32(s[1].as_mut_ptr(), st[1]);
    }
}

/// sha256d of one header.
#[target_feature(enable = "neon,sha2")]
pub(crate) fn header(h: &[u8; 80], out: &mut [u8; 32]) {
    let (c, _) = h.as_chunks::<16>();
    let mut st = load_state(&IV);
    let mut w = [
        load_be(&c[0]),
        load_be(&c[1]),
        load_be(&c[2]),
        load_be(&c[3]),
    ];
    compress_msg(&mut st, &mut w);
    let mut w = tail_msg(&c[4], HEADER_BITS);
    compress_msg(&mut st, &mut w);
    finish(st, out);
}

/// sha256d of one 64-byte node.
#[target_feature(enable = "neon,sha2")]
pub(crate) fn node(n: &[u8; 64], out: &mut [u8; 32]) {
    let mut st = load_state(&IV);
    let mut w = load_block(n);
    compress_msg(&mut st, &mut w);
    compress_const(&mut st, &PAD64_WK);
    finish(st, out);
}

/// sha256d of a message continuing from `mid` with a 16-byte tail.
#[target_feature(enable = "neon,sha2")]
pub(crate) fn header_midstate(mid: &[u32; 8], len_bits: u64, t: &[u8; 16], out: &mut [u8; 32]) {
    let mut st = load_state(mid);
    let mut w = tail_msg(t, len_bits);
    compress_msg(&mut st, &mut w);
    finish(st, out);
}
