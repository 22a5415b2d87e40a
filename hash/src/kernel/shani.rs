//! x86-64 SHA extensions (SHA-NI): `sha256rnds2`, `sha256msg1`, `sha256msg2`.
//!
//! `sha256rnds2` has a latency of several cycles and each round depends on the previous one, so
//! a single stream leaves the unit idle most of the time. The batch entry points are generic
//! over `N` independent messages whose instructions are interleaved, four rounds at a time, so
//! the CPU overlaps their dependency chains.
//!
//! Every function here is compiled with `sha,sse2,ssse3,sse4.1` enabled and must only be called
//! once [`super::Kernel::ShaNi`] has been detected.

// The interleaved loops index several per-stream arrays by the same stream number; iterator
// zips of three arrays would hide that.
#![allow(
    clippy::needless_range_loop,
    reason = "per-stream arrays are indexed by the same stream number"
)]

use core::arch::x86_64::{
    __m128i, _mm_add_epi32, _mm_alignr_epi8, _mm_blend_epi16, _mm_loadu_si128, _mm_set_epi64x,
    _mm_setzero_si128, _mm_sha256msg1_epu32, _mm_sha256msg2_epu32, _mm_sha256rnds2_epu32,
    _mm_shuffle_epi8, _mm_shuffle_epi32, _mm_storeu_si128,
};

use super::consts::{DIGEST_PAD, HEADER_BITS, K, PAD64_WK, tail_words};
use crate::IV;

/// A chaining state in the layout `sha256rnds2` wants: `[ABEF, CDGH]`.
type State = [__m128i; 2];
/// Sixteen message words, four per vector, word `4 * i` in lane 0 of vector `i`.
type Msg = [__m128i; 4];

#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn load_u32x4(words: &[u32; 4]) -> __m128i {
    // SAFETY: `words` is 16 readable bytes and `loadu` has no alignment requirement.
    unsafe { _mm_loadu_si128(words.as_ptr().cast()) }
}

/// Shuffle mask that byte-swaps each 32-bit lane.
#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn bswap_mask() -> __m128i {
    _mm_set_epi64x(0x0c0d_0e0f_0809_0a0b, 0x0405_0607_0001_0203)
}

/// Loads 16 bytes as four big-endian words.
#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn load_be(bytes: &[u8; 16]) -> __m128i {
    // SAFETY: `bytes` is 16 readable bytes and `loadu` has no alignment requirement.
    let v = unsafe { _mm_loadu_si128(bytes.as_ptr().cast()) };
    _mm_shuffle_epi8(v, bswap_mask())
}

/// Stores four words big-endian.
#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn store_be(v: __m128i, out: &mut [u8; 16]) {
    let v = _mm_shuffle_epi8(v, bswap_mask());
    // SAFETY: `out` is 16 writable bytes and `storeu` has no alignment requirement.
    unsafe { _mm_storeu_si128(out.as_mut_ptr().cast(), v) }
}

/// `[a,b,c,d,e,f,g,h]` → `[ABEF, CDGH]`.
#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn to_sha(state: &[u32; 8]) -> State {
    let (c, _) = state.as_chunks::<4>();
    from_words([load_u32x4(&c[0]), load_u32x4(&c[1])])
}

/// `[abcd, efgh]` vectors (lane 0 = a, e) → `[ABEF, CDGH]`.
#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn from_words([dcba, hgfe]: [__m128i; 2]) -> State {
    let cdab = _mm_shuffle_epi32::<0xB1>(dcba);
    let efgh = _mm_shuffle_epi32::<0x1B>(hgfe);
    let abef = _mm_alignr_epi8::<8>(cdab, efgh);
    let cdgh = _mm_blend_epi16::<0xF0>(efgh, cdab);
    [abef, cdgh]
}

/// `[ABEF, CDGH]` → `[abcd, efgh]` vectors (lane 0 = a, e): the state as message words.
#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn to_words([abef, cdgh]: State) -> [__m128i; 2] {
    let feba = _mm_shuffle_epi32::<0x1B>(abef);
    let dchg = _mm_shuffle_epi32::<0xB1>(cdgh);
    let dcba = _mm_blend_epi16::<0xF0>(feba, dchg);
    let hgef = _mm_alignr_epi8::<8>(dchg, feba);
    [dcba, hgef]
}

/// Four rounds with `wk = W + K` for them.
#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn rounds4(st: &mut State, wk: __m128i) {
    st[1] = _mm_sha256rnds2_epu32(st[1], st[0], wk);
    st[0] = _mm_sha256rnds2_epu32(st[0], st[1], _mm_shuffle_epi32::<0x0E>(wk));
}

/// The next four schedule words from the previous sixteen.
#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn schedule(w0: __m128i, w1: __m128i, w2: __m128i, w3: __m128i) -> __m128i {
    let t1 = _mm_sha256msg1_epu32(w0, w1);
    let t2 = _mm_alignr_epi8::<4>(w3, w2);
    _mm_sha256msg2_epu32(_mm_add_epi32(t1, t2), w3)
}

#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn k4(group: usize) -> __m128i {
    let mut k = [0u32; 4];
    k.copy_from_slice(&K[4 * group..4 * group + 4]);
    load_u32x4(&k)
}

/// Compresses one data block per stream into `st` (with the feed-forward).
#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn compress_n<const N: usize>(st: &mut [State; N], w: &mut [Msg; N]) {
    let save = *st;
    for g in 0..4 {
        let k = k4(g);
        for j in 0..N {
            rounds4(&mut st[j], _mm_add_epi32(w[j][g], k));
        }
    }
    for g in 4..16 {
        let k = k4(g);
        let i = g % 4;
        for j in 0..N {
            let m = &mut w[j];
            m[i] = schedule(m[i], m[(i + 1) % 4], m[(i + 2) % 4], m[(i + 3) % 4]);
            rounds4(&mut st[j], _mm_add_epi32(m[i], k));
        }
    }
    for j in 0..N {
        st[j][0] = _mm_add_epi32(st[j][0], save[j][0]);
        st[j][1] = _mm_add_epi32(st[j][1], save[j][1]);
    }
}

/// Compresses a block whose `W + K` is a compile-time constant (no schedule work).
#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn compress_const_n<const N: usize>(st: &mut [State; N], wk: &[u32; 64]) {
    let save = *st;
    for g in 0..16 {
        let mut c = [0u32; 4];
        c.copy_from_slice(&wk[4 * g..4 * g + 4]);
        let v = load_u32x4(&c);
        for s in st.iter_mut() {
            rounds4(s, v);
        }
    }
    for j in 0..N {
        st[j][0] = _mm_add_epi32(st[j][0], save[j][0]);
        st[j][1] = _mm_add_epi32(st[j][1], save[j][1]);
    }
}

#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn load_block(block: &[u8; 64]) -> Msg {
    let (c, _) = block.as_chunks::<16>();
    let mut m = [_mm_setzero_si128(); 4];
    for (v, b) in m.iter_mut().zip(c) {
        *v = load_be(b);
    }
    m
}

/// The message of a final block with 16 data bytes (words 4..16 constant).
#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn tail_msg(tail: &[u8; 16], pad: &[u32; 12]) -> Msg {
    let (c, _) = pad.as_chunks::<4>();
    [
        load_be(tail),
        load_u32x4(&c[0]),
        load_u32x4(&c[1]),
        load_u32x4(&c[2]),
    ]
}

/// Second SHA-256 over the digests in `st`, written to `out`.
#[inline]
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
fn finish_n<const N: usize>(st: &[State; N], out: &mut [[u8; 32]; N]) {
    let (pad, _) = DIGEST_PAD.as_chunks::<4>();
    let p0 = load_u32x4(&pad[0]);
    let p1 = load_u32x4(&pad[1]);
    let iv = to_sha(&IV);
    let mut w = [[p0; 4]; N];
    for j in 0..N {
        let [abcd, efgh] = to_words(st[j]);
        w[j] = [abcd, efgh, p0, p1];
    }
    let mut st2 = [iv; N];
    compress_n(&mut st2, &mut w);
    for j in 0..N {
        let [abcd, efgh] = to_words(st2[j]);
        let (o, _) = out[j].as_chunks_mut::<16>();
        store_be(abcd, &mut o[0]);
        store_be(efgh, &mut o[1]);
    }
}

/// Single-stream compression of `blocks` into `state`.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
pub(crate) fn compress(state: &mut [u32; 8], blocks: &[[u8; 64]]) {
    let mut st = [to_sha(state)];
    for block in blocks {
        let mut w = [load_block(block)];
        compress_n(&mut st, &mut w);
    }
    let [abcd, efgh] = to_words(st[0]);
    let (s, _) = state.as_chunks_mut::<4>();
    // SAFETY: each destination is 16 writable bytes; `storeu` has no alignment requirement.
    unsafe {
        _mm_storeu_si128(s[0].as_mut_ptr().cast(), abcd);
        _mm_storeu_si128(s[1].as_mut_ptr().cast(), efgh);
    }
}

/// sha256d of `N` headers, interleaved.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
pub(crate) fn headers<const N: usize>(h: &[[u8; 80]; N], out: &mut [[u8; 32]; N]) {
    let iv = to_sha(&IV);
    let zero = _mm_setzero_si128();
    let mut st = [iv; N];
    let mut w = [[zero; 4]; N];
    for j in 0..N {
        let (c, _) = h[j].as_chunks::<16>();
        w[j] = [
            load_be(&c[0]),
            load_be(&c[1]),
            load_be(&c[2]),
            load_be(&c[3]),
        ];
    }
    compress_n(&mut st, &mut w);
    let pad = tail_words(HEADER_BITS);
    for j in 0..N {
        let (c, _) = h[j].as_chunks::<16>();
        w[j] = tail_msg(&c[4], &pad);
    }
    compress_n(&mut st, &mut w);
    finish_n(&st, out);
}

/// sha256d of `N` 64-byte nodes, interleaved.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
pub(crate) fn nodes<const N: usize>(n: &[[u8; 64]; N], out: &mut [[u8; 32]; N]) {
    let iv = to_sha(&IV);
    let mut st = [iv; N];
    let mut w = [[_mm_setzero_si128(); 4]; N];
    for j in 0..N {
        w[j] = load_block(&n[j]);
    }
    compress_n(&mut st, &mut w);
    compress_const_n(&mut st, &PAD64_WK);
    finish_n(&st, out);
}

/// sha256d of `N` messages that share the midstate `mid` and end in a 16-byte tail.
#[target_feature(enable = "sha,sse2,ssse3,sse4.1")]
pub(crate) fn headers_midstate<const N: usize>(
    mid: &[u32; 8],
    len_bits: u64,
    tails: &[[u8; 16]; N],
    out: &mut [[u8; 32]; N],
) {
    let m = to_sha(mid);
    let mut st = [m; N];
    let pad = tail_words(len_bits);
    let mut w = [[_mm_setzero_si128(); 4]; N];
    for j in 0..N {
        w[j] = tail_msg(&tails[j], &pad);
    }
    compress_n(&mut st, &mut w);
    finish_n(&st, out);
}
