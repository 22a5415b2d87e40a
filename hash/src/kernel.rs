//! Compression kernels and their selection.
//!
//! | kernel | target | lanes per batch step | notes |
//! |---|---|---|---|
//! | [`Kernel::ShaNi`] | x86-64 `sha`+`sse4.1`+`ssse3` | 8 interleaved | fastest if present |
//! | [`Kernel::Avx512`] | x86-64 `avx512f` | 16 | multi-buffer, `vprold` + `vpternlogd` |
//! | [`Kernel::Avx2`] | x86-64 `avx2` | 8 | multi-buffer |
//! | [`Kernel::ArmSha2`] | aarch64 `sha2` | 1 | ARMv8 crypto extension |
//! | [`Kernel::Scalar`] | any | 1 | portable Rust |
//!
//! Every kernel is callable directly (for tests and benchmarks). Calling a kernel that the CPU
//! does not have is safe: it falls back to [`Kernel::Scalar`], so results never depend on the
//! choice. [`Kernel::compress`] (single-stream, used by streaming and midstates) is only
//! accelerated by the SHA-NI and ARMv8 kernels; the multi-buffer kernels use the scalar code for
//! it, as one message cannot fill their lanes.
//!
//! Batches are processed `lanes()` items at a time; a last partial group is copied into a
//! zero-padded stack array, hashed as a full group, and only the real results are copied out.
//! Nothing allocates.
//!
//! [`selected`] picks the fastest available kernel once per process: on x86-64
//! SHA-NI > AVX-512 > AVX2 > scalar (SHA-NI measured about 2–3× faster per item than the best
//! multi-buffer kernel on this project's machine, see `docs/performance.md`), on aarch64 ARMv8
//! SHA2 > scalar.

use core::sync::atomic::{AtomicU8, Ordering};

mod consts;
#[cfg(target_arch = "x86_64")]
#[macro_use]
mod multibuffer;
#[cfg(target_arch = "aarch64")]
mod armv8;
#[cfg(target_arch = "x86_64")]
mod avx2;
#[cfg(target_arch = "x86_64")]
mod avx512;
pub mod scalar;
#[cfg(target_arch = "x86_64")]
mod shani;

/// Streams interleaved by the SHA-NI batch paths. Measured on the project machine (AMD EPYC,
/// thread CPU time per header): 2 ways 87 ns, 4 ways 78 ns, 8 ways 69 ns, 16 ways 78 ns.
#[cfg(target_arch = "x86_64")]
const SHANI_WAYS: usize = 8;

/// Runs a SHA-NI batch body over `min(input.len(), out.len())` items: groups of
/// [`SHANI_WAYS`], then at most one group each of 4, 2 and 1 for the rest, so a short batch (a
/// single header) costs no more than its own streams. `$f` is a closure-like `|i, o| expr`
/// whose body is generic over the group size through inference.
#[cfg(target_arch = "x86_64")]
macro_rules! shani_tiered {
    ($input:expr, $out:expr, |$i:ident, $o:ident| $body:expr) => {{
        let n = $input.len().min($out.len());
        let (input, out) = (&$input[..n], &mut $out[..n]);
        let (groups, rest) = input.as_chunks::<SHANI_WAYS>();
        let (out_groups, out_rest) = out.as_chunks_mut::<SHANI_WAYS>();
        for ($i, $o) in groups.iter().zip(out_groups.iter_mut()) {
            $body
        }
        let (g4, rest) = rest.as_chunks::<4>();
        let (o4, out_rest) = out_rest.as_chunks_mut::<4>();
        for ($i, $o) in g4.iter().zip(o4.iter_mut()) {
            $body
        }
        let (g2, rest) = rest.as_chunks::<2>();
        let (o2, out_rest) = out_rest.as_chunks_mut::<2>();
        for ($i, $o) in g2.iter().zip(o2.iter_mut()) {
            $body
        }
        let (g1, _) = rest.as_chunks::<1>();
        let (o1, _) = out_rest.as_chunks_mut::<1>();
        for ($i, $o) in g1.iter().zip(o1.iter_mut()) {
            $body
        }
    }};
}

/// A SHA-256 implementation strategy.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum Kernel {
    /// Portable scalar Rust.
    Scalar,
    /// x86-64 SHA extensions, with 8-way interleaving in batches.
    ShaNi,
    /// x86-64 AVX2, 8 messages per batch step.
    Avx2,
    /// x86-64 AVX-512F, 16 messages per batch step.
    Avx512,
    /// ARMv8 SHA2 crypto extension (aarch64).
    ArmSha2,
}

impl Kernel {
    /// Every kernel, in order of preference (fastest first, scalar last).
    pub const ALL: [Kernel; 5] = [
        Kernel::ShaNi,
        Kernel::ArmSha2,
        Kernel::Avx512,
        Kernel::Avx2,
        Kernel::Scalar,
    ];

    /// A short stable name, for logs and benchmark labels.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Kernel::Scalar => "scalar",
            Kernel::ShaNi => "sha-ni",
            Kernel::Avx2 => "avx2",
            Kernel::Avx512 => "avx512",
            Kernel::ArmSha2 => "armv8-sha2",
        }
    }

    /// Whether this CPU can run the kernel (run-time detection; cached by `std`).
    #[must_use]
    pub fn is_available(self) -> bool {
        match self {
            Kernel::Scalar => true,
            #[cfg(target_arch = "x86_64")]
            Kernel::ShaNi => {
                std::is_x86_feature_detected!("sha")
                    && std::is_x86_feature_detected!("sse2")
                    && std::is_x86_feature_detected!("ssse3")
                    && std::is_x86_feature_detected!("sse4.1")
            }
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => std::is_x86_feature_detected!("avx2"),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => std::is_x86_feature_detected!("avx512f"),
            #[cfg(target_arch = "aarch64")]
            Kernel::ArmSha2 => {
                std::arch::is_aarch64_feature_detected!("neon")
                    && std::arch::is_aarch64_feature_detected!("sha2")
            }
            #[allow(
                unreachable_patterns,
                reason = "the arms that exist depend on the target"
            )]
            _ => false,
        }
    }

    /// The kernel that actually runs for `self`: `self` if available, else scalar.
    fn effective(self) -> Kernel {
        if self.is_available() {
            self
        } else {
            Kernel::Scalar
        }
    }

    /// Messages hashed together by the batch paths.
    #[must_use]
    pub fn lanes(self) -> usize {
        match self.effective() {
            #[cfg(target_arch = "x86_64")]
            Kernel::ShaNi => SHANI_WAYS,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => avx2::LANES,
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => avx512::LANES,
            _ => 1,
        }
    }

    /// Compresses `blocks` into `state` (single stream).
    pub fn compress(self, state: &mut [u32; 8], blocks: &[[u8; 64]]) {
        match self.effective() {
            #[cfg(target_arch = "x86_64")]
            // SAFETY: `effective` returned ShaNi, so its CPU features were detected.
            Kernel::ShaNi => unsafe { shani::compress(state, blocks) },
            #[cfg(target_arch = "aarch64")]
            // SAFETY: `effective` returned ArmSha2, so its CPU features were detected.
            Kernel::ArmSha2 => unsafe { armv8::compress(state, blocks) },
            _ => scalar::compress(state, blocks),
        }
    }

    /// sha256d of many 80-byte headers (`min(headers.len(), out.len())` of them).
    pub fn sha256d_headers(self, headers: &[[u8; 80]], out: &mut [[u8; 32]]) {
        match self.effective() {
            #[cfg(target_arch = "x86_64")]
            Kernel::ShaNi => shani_tiered!(headers, out, |i, o| {
                // SAFETY: `effective` returned ShaNi, so its CPU features were detected.
                unsafe { shani::headers(i, o) }
            }),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => batch::<{ avx2::LANES }, _>(headers, out, [0; 80], |i, o| {
                // SAFETY: `effective` returned Avx2, so its CPU features were detected.
                unsafe { avx2::headers(i, o) }
            }),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => batch::<{ avx512::LANES }, _>(headers, out, [0; 80], |i, o| {
                // SAFETY: `effective` returned Avx512, so its CPU features were detected.
                unsafe { avx512::headers(i, o) }
            }),
            #[cfg(target_arch = "aarch64")]
            Kernel::ArmSha2 => batch::<1, _>(headers, out, [0; 80], |i, o| {
                // SAFETY: `effective` returned ArmSha2, so its CPU features were detected.
                unsafe { armv8::header(&i[0], &mut o[0]) }
            }),
            _ => batch::<1, _>(headers, out, [0; 80], |i, o| o[0] = scalar::header(&i[0])),
        }
    }

    /// sha256d of many 64-byte nodes (`min(nodes.len(), out.len())` of them).
    pub fn sha256d_64(self, nodes: &[[u8; 64]], out: &mut [[u8; 32]]) {
        match self.effective() {
            #[cfg(target_arch = "x86_64")]
            Kernel::ShaNi => shani_tiered!(nodes, out, |i, o| {
                // SAFETY: `effective` returned ShaNi, so its CPU features were detected.
                unsafe { shani::nodes(i, o) }
            }),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => batch::<{ avx2::LANES }, _>(nodes, out, [0; 64], |i, o| {
                // SAFETY: `effective` returned Avx2, so its CPU features were detected.
                unsafe { avx2::nodes(i, o) }
            }),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => batch::<{ avx512::LANES }, _>(nodes, out, [0; 64], |i, o| {
                // SAFETY: `effective` returned Avx512, so its CPU features were detected.
                unsafe { avx512::nodes(i, o) }
            }),
            #[cfg(target_arch = "aarch64")]
            Kernel::ArmSha2 => batch::<1, _>(nodes, out, [0; 64], |i, o| {
                // SAFETY: `effective` returned ArmSha2, so its CPU features were detected.
                unsafe { armv8::node(&i[0], &mut o[0]) }
            }),
            _ => batch::<1, _>(nodes, out, [0; 64], |i, o| o[0] = scalar::node(&i[0])),
        }
    }

    /// sha256d of messages that share the prefix compressed into `mid` and each end in a
    /// 16-byte tail (`min(tails.len(), out.len())` of them). With `mid` made from the first 64
    /// bytes of a header and the tails its last 16 bytes (merkle root end, time, bits, nonce),
    /// this is the sha256d of the header: the miner's inner loop.
    pub fn sha256d_headers_midstate(
        self,
        mid: &Midstate,
        tails: &[[u8; 16]],
        out: &mut [[u8; 32]],
    ) {
        let state = mid.state();
        let bits = mid.bytes().wrapping_add(16).wrapping_mul(8);
        let s = &state;
        match self.effective() {
            #[cfg(target_arch = "x86_64")]
            Kernel::ShaNi => shani_tiered!(tails, out, |i, o| {
                // SAFETY: `effective` returned ShaNi, so its CPU features were detected.
                unsafe { shani::headers_midstate(s, bits, i, o) }
            }),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx2 => batch::<{ avx2::LANES }, _>(tails, out, [0; 16], |i, o| {
                // SAFETY: `effective` returned Avx2, so its CPU features were detected.
                unsafe { avx2::headers_midstate(s, bits, i, o) }
            }),
            #[cfg(target_arch = "x86_64")]
            Kernel::Avx512 => batch::<{ avx512::LANES }, _>(tails, out, [0; 16], |i, o| {
                // SAFETY: `effective` returned Avx512, so its CPU features were detected.
                unsafe { avx512::headers_midstate(s, bits, i, o) }
            }),
            #[cfg(target_arch = "aarch64")]
            Kernel::ArmSha2 => batch::<1, _>(tails, out, [0; 16], |i, o| {
                // SAFETY: `effective` returned ArmSha2, so its CPU features were detected.
                unsafe { armv8::header_midstate(s, bits, &i[0], &mut o[0]) }
            }),
            _ => batch::<1, _>(tails, out, [0; 16], |i, o| {
                o[0] = scalar::header_midstate(s, bits, &i[0]);
            }),
        }
    }
}

use crate::Midstate;

/// Runs `f` over `min(input.len(), out.len())` items, `L` at a time; a last partial group is
/// padded with `zero` items in a stack array.
#[inline(always)]
fn batch<const L: usize, T: Copy>(
    input: &[T],
    out: &mut [[u8; 32]],
    zero: T,
    mut f: impl FnMut(&[T; L], &mut [[u8; 32]; L]),
) {
    let n = input.len().min(out.len());
    let (input, out) = (&input[..n], &mut out[..n]);
    let (in_groups, in_rest) = input.as_chunks::<L>();
    let (out_groups, out_rest) = out.as_chunks_mut::<L>();
    for (i, o) in in_groups.iter().zip(out_groups.iter_mut()) {
        f(i, o);
    }
    if !in_rest.is_empty() {
        let mut tmp_in = [zero; L];
        tmp_in[..in_rest.len()].copy_from_slice(in_rest);
        let mut tmp_out = [[0u8; 32]; L];
        f(&tmp_in, &mut tmp_out);
        out_rest.copy_from_slice(&tmp_out[..out_rest.len()]);
    }
}

const UNSET: u8 = u8::MAX;
static SELECTED: AtomicU8 = AtomicU8::new(UNSET);

/// The kernel used by the crate's free functions: the fastest available on this CPU, detected
/// once and cached.
#[must_use]
pub fn selected() -> Kernel {
    let cached = SELECTED.load(Ordering::Relaxed);
    if let Some(&k) = Kernel::ALL.get(usize::from(cached)) {
        return k;
    }
    let (idx, k) = Kernel::ALL
        .iter()
        .enumerate()
        .find(|(_, k)| k.is_available())
        .map_or((Kernel::ALL.len() - 1, Kernel::Scalar), |(i, k)| (i, *k));
    SELECTED.store(u8::try_from(idx).unwrap_or(UNSET), Ordering::Relaxed);
    k
}
