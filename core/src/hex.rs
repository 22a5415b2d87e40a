//! Hex encoding and decoding without allocation.
//!
//! Decoding accepts both cases, so `"ABCD"` and `"abcd"` are the same bytes (a share resent
//! with another hex case is the same share). Encoding is lowercase.

use thiserror::Error;

/// Why a hex string was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum HexError {
    /// The input has the wrong number of digits for the target.
    #[error("expected {expected} hex digits, got {got}")]
    Length {
        /// Digits expected.
        expected: usize,
        /// Digits given.
        got: usize,
    },
    /// A byte that is not a hex digit.
    #[error("invalid hex digit at offset {0}")]
    Digit(usize),
}

const DIGITS: &[u8; 16] = b"0123456789abcdef";

/// The value of one hex digit, or `None`.
#[inline]
#[must_use]
pub const fn digit(c: u8) -> Option<u8> {
    match c {
        b'0'..=b'9' => Some(c - b'0'),
        b'a'..=b'f' => Some(c - b'a' + 10),
        b'A'..=b'F' => Some(c - b'A' + 10),
        _ => None,
    }
}

/// Decodes `src` (exactly `2 * out.len()` digits) into `out`.
///
/// # Errors
/// [`HexError::Length`] on a wrong length, [`HexError::Digit`] on a non-hex byte.
pub fn decode_to_slice(src: &[u8], out: &mut [u8]) -> Result<(), HexError> {
    if src.len() != out.len() * 2 {
        return Err(HexError::Length {
            expected: out.len() * 2,
            got: src.len(),
        });
    }
    for (i, (pair, o)) in src.chunks_exact(2).zip(out.iter_mut()).enumerate() {
        let hi = digit(pair[0]).ok_or(HexError::Digit(2 * i))?;
        let lo = digit(pair[1]).ok_or(HexError::Digit(2 * i + 1))?;
        *o = (hi << 4) | lo;
    }
    Ok(())
}

/// Decodes exactly `2 * N` digits into an array.
///
/// # Errors
/// As [`decode_to_slice`].
pub fn decode_array<const N: usize>(src: &[u8]) -> Result<[u8; N], HexError> {
    let mut out = [0u8; N];
    decode_to_slice(src, &mut out)?;
    Ok(out)
}

/// Parses 1 to 8 hex digits as a big-endian `u32` (Stratum's nonce, ntime and version bits;
/// NerdMiner sends nonces without leading zeros).
///
/// # Errors
/// [`HexError::Length`] for 0 or more than 8 digits, [`HexError::Digit`] on a non-hex byte.
pub fn parse_u32(src: &[u8]) -> Result<u32, HexError> {
    if src.is_empty() || src.len() > 8 {
        return Err(HexError::Length {
            expected: 8,
            got: src.len(),
        });
    }
    let mut v = 0u32;
    for (i, &c) in src.iter().enumerate() {
        v = (v << 4) | u32::from(digit(c).ok_or(HexError::Digit(i))?);
    }
    Ok(v)
}

/// Parses 1 to 16 hex digits as a big-endian `u64`.
///
/// # Errors
/// As [`parse_u32`], with 16 digits at most.
pub fn parse_u64(src: &[u8]) -> Result<u64, HexError> {
    if src.is_empty() || src.len() > 16 {
        return Err(HexError::Length {
            expected: 16,
            got: src.len(),
        });
    }
    let mut v = 0u64;
    for (i, &c) in src.iter().enumerate() {
        v = (v << 4) | u64::from(digit(c).ok_or(HexError::Digit(i))?);
    }
    Ok(v)
}

/// Writes the lowercase hex of `src` into `out` (which must be `2 * src.len()` long) and returns
/// it as `&str`.
///
/// # Panics
/// If `out` has the wrong length (a programming error).
pub fn encode_to_slice<'a>(src: &[u8], out: &'a mut [u8]) -> &'a str {
    assert_eq!(
        out.len(),
        src.len() * 2,
        "hex output buffer has the wrong length"
    );
    for (b, pair) in src.iter().zip(out.chunks_exact_mut(2)) {
        pair[0] = DIGITS[usize::from(b >> 4)];
        pair[1] = DIGITS[usize::from(b & 0x0f)];
    }
    // Only ASCII hex digits were written.
    core::str::from_utf8(out).unwrap_or_default()
}

/// Lowercase hex of `src` as a `String` (slow path: job building, logs, RPC).
#[must_use]
pub fn encode(src: &[u8]) -> String {
    let mut out = vec![0u8; src.len() * 2];
    encode_to_slice(src, &mut out);
    String::from_utf8(out).unwrap_or_default()
}

/// Decodes a hex string of any even length into a `Vec` (slow path).
///
/// # Errors
/// [`HexError::Length`] on an odd length, [`HexError::Digit`] on a non-hex byte.
pub fn decode(src: &str) -> Result<Vec<u8>, HexError> {
    if src.len() % 2 != 0 {
        return Err(HexError::Length {
            expected: src.len() + 1,
            got: src.len(),
        });
    }
    let mut out = vec![0u8; src.len() / 2];
    decode_to_slice(src.as_bytes(), &mut out)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn round_trip(bytes in proptest::collection::vec(any::<u8>(), 0..64)) {
            let s = encode(&bytes);
            prop_assert_eq!(decode(&s).unwrap(), bytes.clone());
            prop_assert_eq!(decode(&s.to_uppercase()).unwrap(), bytes);
        }

        #[test]
        fn u32_unpadded_equals_padded(v in any::<u32>()) {
            let unpadded = format!("{v:x}");
            let padded = format!("{v:08X}");
            prop_assert_eq!(parse_u32(unpadded.as_bytes()).unwrap(), v);
            prop_assert_eq!(parse_u32(padded.as_bytes()).unwrap(), v);
        }
    }

    #[test]
    fn rejects() {
        assert_eq!(
            parse_u32(b""),
            Err(HexError::Length {
                expected: 8,
                got: 0
            })
        );
        assert_eq!(
            parse_u32(b"123456789"),
            Err(HexError::Length {
                expected: 8,
                got: 9
            })
        );
        assert_eq!(parse_u32(b"12g4"), Err(HexError::Digit(2)));
        assert!(decode("abc").is_err());
        assert_eq!(decode_array::<2>(b"zz00"), Err(HexError::Digit(0)));
    }
}
