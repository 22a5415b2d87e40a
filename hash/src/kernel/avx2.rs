//! AVX2 8-lane multi-buffer SHA-256: eight independent messages, one per 32-bit lane.
//!
//! AVX2 has no vector rotate, so each rotation is two shifts and an OR. Only called after
//! `avx2` has been detected.

use core::arch::x86_64::{
    __m256i, _mm256_add_epi32, _mm256_and_si256, _mm256_loadu_si256, _mm256_or_si256,
    _mm256_set1_epi32, _mm256_slli_epi32, _mm256_srli_epi32, _mm256_storeu_si256, _mm256_xor_si256,
};

type V = __m256i;
/// Messages per batch.
pub(crate) const LANES: usize = 8;

#[inline]
#[target_feature(enable = "avx2")]
fn splat(x: u32) -> V {
    _mm256_set1_epi32(x as i32)
}

#[inline]
#[target_feature(enable = "avx2")]
fn add(a: V, b: V) -> V {
    _mm256_add_epi32(a, b)
}

#[inline]
#[target_feature(enable = "avx2")]
fn xor3(a: V, b: V, c: V) -> V {
    _mm256_xor_si256(_mm256_xor_si256(a, b), c)
}

#[inline]
#[target_feature(enable = "avx2")]
fn load(x: &[u32; LANES]) -> V {
    // SAFETY: `x` is 32 readable bytes and `loadu` has no alignment requirement.
    unsafe { _mm256_loadu_si256(x.as_ptr().cast()) }
}

#[inline]
#[target_feature(enable = "avx2")]
fn store(v: V) -> [u32; LANES] {
    let mut x = [0u32; LANES];
    // SAFETY: `x` is 32 writable bytes and `storeu` has no alignment requirement.
    unsafe { _mm256_storeu_si256(x.as_mut_ptr().cast(), v) };
    x
}

/// Rotate right by `R` (`L` = 32 - `R`).
#[inline]
#[target_feature(enable = "avx2")]
fn rotr<const R: i32, const L: i32>(x: V) -> V {
    _mm256_or_si256(_mm256_srli_epi32::<R>(x), _mm256_slli_epi32::<L>(x))
}

#[inline]
#[target_feature(enable = "avx2")]
fn bsig0(a: V) -> V {
    xor3(rotr::<2, 30>(a), rotr::<13, 19>(a), rotr::<22, 10>(a))
}

#[inline]
#[target_feature(enable = "avx2")]
fn bsig1(e: V) -> V {
    xor3(rotr::<6, 26>(e), rotr::<11, 21>(e), rotr::<25, 7>(e))
}

#[inline]
#[target_feature(enable = "avx2")]
fn ssig0(x: V) -> V {
    xor3(
        rotr::<7, 25>(x),
        rotr::<18, 14>(x),
        _mm256_srli_epi32::<3>(x),
    )
}

#[inline]
#[target_feature(enable = "avx2")]
fn ssig1(x: V) -> V {
    xor3(
        rotr::<17, 15>(x),
        rotr::<19, 13>(x),
        _mm256_srli_epi32::<10>(x),
    )
}

#[inline]
#[target_feature(enable = "avx2")]
fn ch(e: V, f: V, g: V) -> V {
    _mm256_xor_si256(g, _mm256_and_si256(e, _mm256_xor_si256(f, g)))
}

#[inline]
#[target_feature(enable = "avx2")]
fn maj(a: V, b: V, c: V) -> V {
    _mm256_or_si256(
        _mm256_and_si256(a, b),
        _mm256_and_si256(c, _mm256_or_si256(a, b)),
    )
}

multibuffer_kernel!("avx2");
