//! Share difficulty and share targets.
//!
//! Difficulty 1 is the target `0x00000000ffff << 208` (Bitcoin's "pool difficulty 1"). A share
//! of difficulty `d` must hash at or below `diff1 / d`.
//!
//! [`Difficulty`] is a fixed-point number with 32 fractional bits, so every whole difficulty is
//! exact and the conversion to a target is an exact integer division: `Difficulty::from_whole(d)
//! .to_target()` is `floor(diff1 / d)`. Conversions that round say `_lossy` in their name.

use core::cmp::Ordering;
use core::fmt;

use thiserror::Error;

use crate::limits::{DIFFICULTY_MAX_LOG2, DIFFICULTY_MIN_BITS, DIFFICULTY_TEXT_BYTES_MAX};

/// Fractional bits of the fixed-point [`Difficulty`].
const FRAC_BITS: u32 = 32;

/// Decimals that write any difficulty below 2^21 exactly (`units / 2^32` has at most 32).
const TEXT_DECIMALS_MAX: usize = FRAC_BITS as usize;

/// Why a difficulty or target was refused.
#[derive(Clone, Copy, Debug, PartialEq, Error)]
#[non_exhaustive]
pub enum DifficultyError {
    /// NaN, infinite, zero or negative.
    #[error("difficulty must be a finite number above zero, got {0}")]
    NotPositive(f64),
    /// Below `2^-DIFFICULTY_MIN_BITS`.
    #[error("difficulty {0} is below the minimum 2^-{DIFFICULTY_MIN_BITS}")]
    TooSmall(f64),
    /// Above `2^DIFFICULTY_MAX_LOG2`.
    #[error("difficulty {0} is above the maximum 2^{DIFFICULTY_MAX_LOG2}")]
    TooLarge(f64),
    /// A compact target with the sign bit set or that does not fit 256 bits.
    #[error("invalid compact target {0:#010x}")]
    Compact(u32),
}

mod encapsulate {
    /// A share difficulty: a fixed-point number, `units / 2^32`, within
    /// `[2^-DIFFICULTY_MIN_BITS, 2^DIFFICULTY_MAX_LOG2]`.
    #[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
    pub struct Difficulty {
        units: u128,
    }

    impl Difficulty {
        /// Builds from raw units; callers check the range.
        pub(super) const fn from_units_unchecked(units: u128) -> Self {
            Self { units }
        }

        /// The raw fixed-point value, `difficulty * 2^32`.
        #[must_use]
        pub const fn units(self) -> u128 {
            self.units
        }
    }
}
pub use encapsulate::Difficulty;

impl Difficulty {
    /// Difficulty 1.
    pub const ONE: Self = Self::from_units_unchecked(1 << FRAC_BITS);
    /// The smallest difficulty accepted.
    pub const MIN: Self = Self::from_units_unchecked(1 << (FRAC_BITS - DIFFICULTY_MIN_BITS));
    /// The largest difficulty accepted.
    pub const MAX: Self = Self::from_units_unchecked(1 << (FRAC_BITS + DIFFICULTY_MAX_LOG2));

    /// A whole difficulty; exact.
    ///
    /// # Errors
    /// Zero or above [`Difficulty::MAX`].
    pub fn from_whole(d: u64) -> Result<Self, DifficultyError> {
        if d == 0 {
            return Err(DifficultyError::NotPositive(0.0));
        }
        let units = u128::from(d) << FRAC_BITS;
        if units > Self::MAX.units() {
            #[allow(clippy::cast_precision_loss, reason = "only for the error message")]
            return Err(DifficultyError::TooLarge(d as f64));
        }
        Ok(Self::from_units_unchecked(units))
    }

    /// The nearest representable difficulty to `d` (rounded to 2^-32).
    ///
    /// # Errors
    /// Not finite, not positive, or outside `[MIN, MAX]`.
    pub fn from_f64_lossy(d: f64) -> Result<Self, DifficultyError> {
        if !d.is_finite() || d <= 0.0 {
            return Err(DifficultyError::NotPositive(d));
        }
        let scaled = (d * f64::from(1u32 << 16) * f64::from(1u32 << 16)).round();
        #[allow(clippy::cast_precision_loss, reason = "bounds of an f64 comparison")]
        let (min, max) = (Self::MIN.units() as f64, Self::MAX.units() as f64);
        if scaled < min {
            return Err(DifficultyError::TooSmall(d));
        }
        if scaled > max {
            return Err(DifficultyError::TooLarge(d));
        }
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "range checked"
        )]
        Ok(Self::from_units_unchecked(scaled as u128))
    }

    /// `self` clamped into `[lo, hi]`.
    #[must_use]
    pub fn clamp_to(self, lo: Self, hi: Self) -> Self {
        self.max(lo).min(hi)
    }

    /// The value as an `f64` (exact for whole difficulties below 2^53).
    #[must_use]
    pub fn to_f64_lossy(self) -> f64 {
        #[allow(clippy::cast_precision_loss, reason = "the name says lossy")]
        let v = self.units() as f64;
        v / f64::from(1u32 << 16) / f64::from(1u32 << 16)
    }

    /// The whole value, if the difficulty has no fractional part.
    #[must_use]
    pub fn whole(self) -> Option<u64> {
        let frac_mask = (1u128 << FRAC_BITS) - 1;
        if self.units() & frac_mask == 0 {
            u64::try_from(self.units() >> FRAC_BITS).ok()
        } else {
            None
        }
    }

    /// The whole part, rounded down (0 for difficulties below 1).
    #[must_use]
    pub fn floor(self) -> u64 {
        u64::try_from(self.units() >> FRAC_BITS).unwrap_or(u64::MAX)
    }

    /// The share target: `floor(diff1 * 2^32 / units)`; exact.
    #[must_use]
    pub fn to_target(self) -> ShareTarget {
        // diff1 << 32 = 0xffff << 240.
        let numerator = U256([0, 0, 0, 0xffff << 48]);
        ShareTarget(numerator.div_u128(self.units()))
    }
}

/// A `fmt::Write` into a fixed buffer (no allocation); fails when the buffer is full.
struct TextBuf<'a> {
    buf: &'a mut [u8; DIFFICULTY_TEXT_BYTES_MAX],
    len: usize,
}

impl fmt::Write for TextBuf<'_> {
    fn write_str(&mut self, s: &str) -> fmt::Result {
        let end = self.len + s.len();
        let dst = self.buf.get_mut(self.len..end).ok_or(fmt::Error)?;
        dst.copy_from_slice(s.as_bytes());
        self.len = end;
        Ok(())
    }
}

impl Difficulty {
    /// Reads a decimal difficulty as the Stratum request parser does: the nearest `f64`, then
    /// [`Difficulty::from_f64_lossy`].
    ///
    /// # Errors
    /// Not a number, or as [`Difficulty::from_f64_lossy`].
    pub fn from_text_lossy(text: &str) -> Result<Self, DifficultyError> {
        let v: f64 = text
            .parse()
            .map_err(|_| DifficultyError::NotPositive(f64::NAN))?;
        Self::from_f64_lossy(v)
    }

    /// Writes the shortest decimal text (digits and at most one `.`, never an exponent) that
    /// [`Difficulty::from_text_lossy`] reads back as exactly this difficulty, and returns it:
    /// whole difficulties as integers, and `0.00015` for what a client asked as `0.00015`
    /// (not `0.00014999997802078724`, the `f64` of the fixed point). No allocation. A
    /// non-whole difficulty from 2^21 up (vardiff sends none: above 1 it sends whole numbers)
    /// may have no such text; it is written as its `f64`'s shortest text.
    pub fn write_shortest(self, out: &mut [u8; DIFFICULTY_TEXT_BYTES_MAX]) -> &str {
        use fmt::Write as _;
        let v = self.to_f64_lossy();
        let mut len = 0;
        let whole = self.whole();
        let decimals_min = usize::from(whole.is_none());
        for decimals in decimals_min..=TEXT_DECIMALS_MAX {
            let mut text = TextBuf { buf: out, len: 0 };
            let written = match whole {
                Some(w) => write!(text, "{w}"),
                None => write!(text, "{v:.decimals$}"),
            };
            debug_assert!(written.is_ok(), "every difficulty text fits the buffer");
            len = text.len;
            let back = core::str::from_utf8(&out[..len]).map(Self::from_text_lossy);
            if whole.is_some() || back == Ok(Ok(self)) {
                return core::str::from_utf8(&out[..len]).unwrap_or("");
            }
        }
        let mut text = TextBuf { buf: out, len: 0 };
        if write!(text, "{v}").is_ok() {
            len = text.len;
        }
        core::str::from_utf8(&out[..len]).unwrap_or("")
    }
}

impl fmt::Debug for Difficulty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Difficulty({})", self.to_f64_lossy())
    }
}

/// The shortest decimal text that reads back as this difficulty
/// ([`Difficulty::write_shortest`]).
impl fmt::Display for Difficulty {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut text = [0u8; DIFFICULTY_TEXT_BYTES_MAX];
        f.write_str(self.write_shortest(&mut text))
    }
}

/// A 256-bit unsigned integer, little-endian limbs. Private: only what targets need.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
struct U256([u64; 4]);

impl U256 {
    fn bit(&self, i: u32) -> bool {
        (self.0[(i / 64) as usize] >> (i % 64)) & 1 == 1
    }

    fn set_bit(&mut self, i: u32) {
        self.0[(i / 64) as usize] |= 1 << (i % 64);
    }

    /// `floor(self / d)` for `0 < d < 2^127`.
    fn div_u128(self, d: u128) -> U256 {
        debug_assert!(d > 0 && d < (1 << 127));
        let mut q = U256([0; 4]);
        let mut rem: u128 = 0;
        for i in (0..256).rev() {
            rem = (rem << 1) | u128::from(self.bit(i));
            if rem >= d {
                rem -= d;
                q.set_bit(i);
            }
        }
        q
    }

    fn to_f64_lossy(self) -> f64 {
        let mut v = 0.0f64;
        for limb in self.0.iter().rev() {
            #[allow(clippy::cast_precision_loss, reason = "the name says lossy")]
            let l = *limb as f64;
            v = v * 18_446_744_073_709_551_616.0 + l;
        }
        v
    }

    fn cmp_limbs(&self, other: &Self) -> Ordering {
        for i in (0..4).rev() {
            match self.0[i].cmp(&other.0[i]) {
                Ordering::Equal => {}
                o => return o,
            }
        }
        Ordering::Equal
    }
}

/// The largest hash (as a little-endian 256-bit number) that meets a difficulty or the network.
#[derive(Clone, Copy, PartialEq, Eq, Hash)]
pub struct ShareTarget(U256);

impl ShareTarget {
    /// The difficulty-1 target, `0x00000000ffff << 208`.
    pub const DIFF1: Self = Self(U256([0, 0, 0, 0x0000_0000_ffff_0000]));

    /// From 32 little-endian bytes (the order of a block hash in memory).
    #[must_use]
    pub fn from_le_bytes(bytes: [u8; 32]) -> Self {
        let mut limbs = [0u64; 4];
        for (limb, chunk) in limbs.iter_mut().zip(bytes.chunks_exact(8)) {
            let mut b = [0u8; 8];
            b.copy_from_slice(chunk);
            *limb = u64::from_le_bytes(b);
        }
        Self(U256(limbs))
    }

    /// As 32 little-endian bytes.
    #[must_use]
    pub fn to_le_bytes(self) -> [u8; 32] {
        let mut out = [0u8; 32];
        for (chunk, limb) in out.chunks_exact_mut(8).zip(self.0.0) {
            chunk.copy_from_slice(&limb.to_le_bytes());
        }
        out
    }

    /// Decodes a compact target (`nBits`).
    ///
    /// # Errors
    /// [`DifficultyError::Compact`] if the sign bit is set, the mantissa is zero, or the value
    /// does not fit 256 bits.
    pub fn from_compact(bits: u32) -> Result<Self, DifficultyError> {
        let exponent = bits >> 24;
        let mantissa = bits & 0x007f_ffff;
        if bits & 0x0080_0000 != 0 || mantissa == 0 {
            return Err(DifficultyError::Compact(bits));
        }
        let mut bytes = [0u8; 32];
        let m = mantissa.to_le_bytes(); // m[0..3] little-endian mantissa
        for (k, &byte) in m[..3].iter().enumerate() {
            // The mantissa's byte k sits at byte position exponent - 3 + k.
            let pos = i64::from(exponent) - 3 + k as i64;
            if byte == 0 {
                continue;
            }
            if !(0..32).contains(&pos) {
                if pos >= 32 {
                    return Err(DifficultyError::Compact(bits));
                }
                continue; // shifted out to the right
            }
            #[allow(clippy::cast_sign_loss, reason = "checked to be in 0..32")]
            {
                bytes[pos as usize] = byte;
            }
        }
        Ok(Self::from_le_bytes(bytes))
    }

    /// Whether `hash` (32 bytes in internal, little-endian order) meets this target.
    #[inline]
    #[must_use]
    pub fn is_met_by(&self, hash: &[u8; 32]) -> bool {
        let h = Self::from_le_bytes(*hash);
        h.0.cmp_limbs(&self.0) != Ordering::Greater
    }

    /// The difficulty this target stands for, `diff1 / target`, as an `f64`.
    #[must_use]
    pub fn to_difficulty_lossy(self) -> f64 {
        let t = self.0.to_f64_lossy();
        if t == 0.0 {
            f64::INFINITY
        } else {
            Self::DIFF1.0.to_f64_lossy() / t
        }
    }

    /// The difficulty a hash achieved, `diff1 / hash` (the "share difficulty" miners display).
    #[must_use]
    pub fn hash_difficulty_lossy(hash: &[u8; 32]) -> f64 {
        Self::from_le_bytes(*hash).to_difficulty_lossy()
    }
}

impl PartialOrd for ShareTarget {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for ShareTarget {
    fn cmp(&self, other: &Self) -> Ordering {
        self.0.cmp_limbs(&other.0)
    }
}

impl fmt::Debug for ShareTarget {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut be = self.to_le_bytes();
        be.reverse();
        let mut buf = [0u8; 64];
        write!(
            f,
            "ShareTarget({})",
            crate::hex::encode_to_slice(&be, &mut buf)
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    fn target_hex(t: ShareTarget) -> String {
        let mut be = t.to_le_bytes();
        be.reverse();
        crate::hex::encode(&be)
    }

    #[test]
    fn diff1_is_ffff_shifted_208() {
        assert_eq!(Difficulty::ONE.to_target(), ShareTarget::DIFF1);
        assert_eq!(
            target_hex(ShareTarget::DIFF1),
            "00000000ffff0000000000000000000000000000000000000000000000000000"
        );
        assert_eq!(
            ShareTarget::from_compact(0x1d00_ffff).unwrap(),
            ShareTarget::DIFF1
        );
    }

    #[test]
    fn compact_decoding_matches_known_values() {
        let regtest = ShareTarget::from_compact(0x207f_ffff).unwrap();
        assert_eq!(
            target_hex(regtest),
            "7fffff0000000000000000000000000000000000000000000000000000000000"
        );
        let t = ShareTarget::from_compact(0x1b04_04cb).unwrap();
        assert_eq!(
            target_hex(t),
            "00000000000404cb000000000000000000000000000000000000000000000000"
        );
        let t = ShareTarget::from_compact(0x1814_dd04).unwrap();
        assert_eq!(
            target_hex(t),
            "000000000000000014dd04000000000000000000000000000000000000000000"
        );
        assert!(ShareTarget::from_compact(0x0180_0001).is_err()); // sign bit
        assert!(ShareTarget::from_compact(0x2201_0000).is_err()); // overflow
        assert!(ShareTarget::from_compact(0x1d00_0000).is_err()); // zero mantissa
    }

    #[test]
    fn difficulty_range() {
        assert!(Difficulty::from_whole(0).is_err());
        assert!(Difficulty::from_f64_lossy(f64::NAN).is_err());
        assert!(Difficulty::from_f64_lossy(-1.0).is_err());
        assert!(Difficulty::from_f64_lossy(1e-9).is_err());
        assert!(Difficulty::from_f64_lossy(1e30).is_err());
        assert_eq!(Difficulty::from_f64_lossy(0.5).unwrap().to_f64_lossy(), 0.5);
        assert_eq!(
            Difficulty::from_whole(65_536).unwrap().whole(),
            Some(65_536)
        );
        assert_eq!(Difficulty::from_f64_lossy(0.5).unwrap().whole(), None);
        assert_eq!(Difficulty::from_f64_lossy(0.5).unwrap().to_string(), "0.5");
        assert_eq!(Difficulty::from_whole(512).unwrap().to_string(), "512");
    }

    fn diff1_over(d: u64) -> [u8; 32] {
        // floor(diff1 / d) with u128 arithmetic on the top 128 bits: diff1 = 0xffff << 208,
        // so diff1 / d = ((0xffff << 80) / d) << 128 + remainder part. Compute exactly by long
        // division on bytes as a reference independent of U256.
        let mut be = [0u8; 32];
        be[4] = 0xff;
        be[5] = 0xff;
        let mut out = [0u8; 32];
        let mut rem: u128 = 0;
        for i in 0..32 {
            let cur = (rem << 8) | u128::from(be[i]);
            out[i] = (cur / u128::from(d)) as u8;
            rem = cur % u128::from(d);
        }
        out.reverse();
        out
    }

    proptest! {
        #[test]
        fn whole_difficulty_target_is_exact(d in 1u64..(1 << 60)) {
            let t = Difficulty::from_whole(d).unwrap().to_target();
            prop_assert_eq!(t.to_le_bytes(), diff1_over(d));
        }

        #[test]
        fn target_is_monotone_in_difficulty(a in 1u64..(1<<60), b in 1u64..(1<<60)) {
            let (da, db) = (Difficulty::from_whole(a).unwrap(), Difficulty::from_whole(b).unwrap());
            if a <= b { prop_assert!(da.to_target() >= db.to_target()); }
        }

        #[test]
        fn fractional_target_is_monotone(a in 1e-4f64..1e12, b in 1e-4f64..1e12) {
            let (da, db) = (Difficulty::from_f64_lossy(a).unwrap(),
                Difficulty::from_f64_lossy(b).unwrap());
            if da <= db { prop_assert!(da.to_target() >= db.to_target()); }
        }

        #[test]
        fn round_trip_through_target(d in 1u64..(1 << 40)) {
            let back = Difficulty::from_whole(d).unwrap().to_target().to_difficulty_lossy();
            #[allow(clippy::cast_precision_loss, reason = "d < 2^40 is exact in f64")]
            let rel = (back - d as f64).abs() / d as f64;
            prop_assert!(rel < 1e-9, "d={} back={}", d, back);
        }

        #[test]
        fn is_met_by_agrees_with_ordering(h in any::<[u8; 32]>(), d in 1u64..(1 << 20)) {
            let t = Difficulty::from_whole(d).unwrap().to_target();
            prop_assert_eq!(t.is_met_by(&h), ShareTarget::from_le_bytes(h) <= t);
        }
    }
}
