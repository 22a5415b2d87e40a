//! Domain newtypes. Each is built only through a validating constructor.

use core::fmt;
use core::ops::Sub;

use thiserror::Error;

use crate::hex::{self, HexError};
use crate::limits::{
    EXTRANONCE1_BYTES, EXTRANONCE2_SIZE_MAX, EXTRANONCE2_SIZE_MIN, JOB_ID_HEX_MAX,
    WORKER_NAME_BYTES_MAX,
};

/// Why a value was refused by a newtype constructor.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TypeError {
    /// Malformed hex.
    #[error("bad hex: {0}")]
    Hex(#[from] HexError),
    /// An extranonce2 size outside the configured range.
    #[error("extranonce2 size {0} is outside {EXTRANONCE2_SIZE_MIN}..={EXTRANONCE2_SIZE_MAX}")]
    ExtranonceSize(usize),
    /// An extranonce2 of the wrong length for its connection.
    #[error("extranonce2 has {got} bytes, expected {expected}")]
    Extranonce2Length {
        /// Bytes the connection was told to use.
        expected: usize,
        /// Bytes sent.
        got: usize,
    },
    /// A worker name that is too long or has characters outside the allowed set.
    #[error("worker name must be 1 to {WORKER_NAME_BYTES_MAX} bytes of letters, digits and -_.:@+")]
    WorkerName,
}

/// A job identifier as sent in `mining.notify` and echoed in `mining.submit`: a `u64`, written
/// as lowercase hex without leading zeros.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct JobId(u64);

impl JobId {
    /// A job id from a counter value.
    #[must_use]
    pub const fn new(v: u64) -> Self {
        Self(v)
    }

    /// The counter value.
    #[must_use]
    pub const fn get(self) -> u64 {
        self.0
    }

    /// Parses the hex a client sent back (either case; 1 to 16 digits).
    ///
    /// # Errors
    /// [`TypeError::Hex`] on anything else.
    pub fn from_hex(src: &[u8]) -> Result<Self, TypeError> {
        if src.len() > JOB_ID_HEX_MAX {
            return Err(HexError::Length {
                expected: JOB_ID_HEX_MAX,
                got: src.len(),
            }
            .into());
        }
        Ok(Self(hex::parse_u64(src)?))
    }
}

impl fmt::Display for JobId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:x}", self.0)
    }
}

/// The per-connection extranonce1: [`EXTRANONCE1_BYTES`] bytes, unique per connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Extranonce1([u8; EXTRANONCE1_BYTES]);

impl Extranonce1 {
    /// From raw bytes.
    #[must_use]
    pub const fn from_bytes(b: [u8; EXTRANONCE1_BYTES]) -> Self {
        Self(b)
    }

    /// From a connection counter (big-endian, so hex shows the counter).
    #[must_use]
    pub const fn from_u32(v: u32) -> Self {
        Self(v.to_be_bytes())
    }

    /// The bytes.
    #[must_use]
    pub const fn as_bytes(&self) -> &[u8; EXTRANONCE1_BYTES] {
        &self.0
    }
}

impl fmt::Display for Extranonce1 {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut buf = [0u8; 2 * EXTRANONCE1_BYTES];
        f.write_str(hex::encode_to_slice(&self.0, &mut buf))
    }
}

/// The extranonce2 size a connection is told to use.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExtranonceSize(u8);

impl ExtranonceSize {
    /// The default, 4 bytes.
    pub const DEFAULT: Self = Self(crate::limits::EXTRANONCE2_SIZE_DEFAULT as u8);
    /// The largest, 8 bytes.
    pub const MAX: Self = Self(EXTRANONCE2_SIZE_MAX as u8);

    /// Validates a size.
    ///
    /// # Errors
    /// [`TypeError::ExtranonceSize`] outside `EXTRANONCE2_SIZE_MIN..=EXTRANONCE2_SIZE_MAX`.
    pub fn new(bytes: usize) -> Result<Self, TypeError> {
        if (EXTRANONCE2_SIZE_MIN..=EXTRANONCE2_SIZE_MAX).contains(&bytes) {
            Ok(Self(bytes as u8))
        } else {
            Err(TypeError::ExtranonceSize(bytes))
        }
    }

    /// Bytes.
    #[must_use]
    pub const fn bytes(self) -> usize {
        self.0 as usize
    }
}

/// A miner's extranonce2: exactly the size its connection was given.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Extranonce2 {
    bytes: [u8; EXTRANONCE2_SIZE_MAX],
    len: ExtranonceSize,
}

impl Extranonce2 {
    /// Parses hex of exactly `2 * size` digits (either case).
    ///
    /// # Errors
    /// [`TypeError::Extranonce2Length`] on another length, [`TypeError::Hex`] on bad digits.
    pub fn from_hex(src: &[u8], size: ExtranonceSize) -> Result<Self, TypeError> {
        if src.len() != 2 * size.bytes() {
            return Err(TypeError::Extranonce2Length {
                expected: size.bytes(),
                got: src.len() / 2,
            });
        }
        let mut bytes = [0u8; EXTRANONCE2_SIZE_MAX];
        hex::decode_to_slice(src, &mut bytes[..size.bytes()])?;
        Ok(Self { bytes, len: size })
    }

    /// From raw bytes of a valid size.
    ///
    /// # Errors
    /// [`TypeError::ExtranonceSize`] if `src` has an invalid length.
    pub fn from_bytes(src: &[u8]) -> Result<Self, TypeError> {
        let len = ExtranonceSize::new(src.len())?;
        let mut bytes = [0u8; EXTRANONCE2_SIZE_MAX];
        bytes[..src.len()].copy_from_slice(src);
        Ok(Self { bytes, len })
    }

    /// The bytes.
    #[must_use]
    pub fn as_bytes(&self) -> &[u8] {
        &self.bytes[..self.len.bytes()]
    }

    /// The size.
    #[must_use]
    pub const fn size(&self) -> ExtranonceSize {
        self.len
    }
}

/// A block header timestamp (seconds since the Unix epoch, as a `u32`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Ntime(u32);

/// The signed distance between two [`Ntime`]s, in seconds.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct NtimeDelta(i64);

impl Ntime {
    /// From seconds.
    #[must_use]
    pub const fn from_secs(v: u32) -> Self {
        Self(v)
    }

    /// Seconds.
    #[must_use]
    pub const fn secs(self) -> u32 {
        self.0
    }

    /// Parses 1 to 8 hex digits (big-endian, as Stratum sends it).
    ///
    /// # Errors
    /// [`TypeError::Hex`].
    pub fn from_hex(src: &[u8]) -> Result<Self, TypeError> {
        Ok(Self(hex::parse_u32(src)?))
    }
}

impl Sub for Ntime {
    type Output = NtimeDelta;
    fn sub(self, rhs: Self) -> NtimeDelta {
        NtimeDelta(i64::from(self.0) - i64::from(rhs.0))
    }
}

impl NtimeDelta {
    /// Seconds (negative when the left side is earlier).
    #[must_use]
    pub const fn secs(self) -> i64 {
        self.0
    }
}

/// A header nonce.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct Nonce(u32);

impl Nonce {
    /// From a value.
    #[must_use]
    pub const fn new(v: u32) -> Self {
        Self(v)
    }

    /// The value.
    #[must_use]
    pub const fn get(self) -> u32 {
        self.0
    }

    /// Parses 1 to 8 hex digits, big-endian; unpadded nonces (NerdMiner) are accepted.
    ///
    /// # Errors
    /// [`TypeError::Hex`].
    pub fn from_hex(src: &[u8]) -> Result<Self, TypeError> {
        Ok(Self(hex::parse_u32(src)?))
    }
}

/// A BIP310 version-rolling mask.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct VersionMask(u32);

impl VersionMask {
    /// The mask the pool offers: bits 13 to 28 (BIP320).
    pub const POOL: Self = Self(0x1fff_e000);
    /// No rolling.
    pub const NONE: Self = Self(0);

    /// From raw bits.
    #[must_use]
    pub const fn from_bits(v: u32) -> Self {
        Self(v)
    }

    /// The raw bits.
    #[must_use]
    pub const fn bits(self) -> u32 {
        self.0
    }

    /// The mask granted for a `mining.configure` request: `requested & pool`.
    #[must_use]
    pub const fn negotiate(self, requested: u32) -> Self {
        Self(self.0 & requested)
    }

    /// Whether `bits` sets only bits inside the mask.
    #[must_use]
    pub const fn allows(self, bits: u32) -> bool {
        bits & !self.0 == 0
    }

    /// `(version & !mask) | (bits & mask)`.
    #[must_use]
    pub const fn apply(self, version: u32, bits: u32) -> u32 {
        (version & !self.0) | (bits & self.0)
    }
}

/// The worker part of a username (`<address>.<worker>`).
#[derive(Clone, PartialEq, Eq, Hash)]
pub struct WorkerName {
    bytes: [u8; WORKER_NAME_BYTES_MAX],
    len: u8,
}

impl WorkerName {
    /// Validates a worker name: 1 to [`WORKER_NAME_BYTES_MAX`] bytes of ASCII letters, digits and
    /// `-_.:@+`.
    ///
    /// # Errors
    /// [`TypeError::WorkerName`].
    pub fn new(s: &str) -> Result<Self, TypeError> {
        let ok = |c: u8| c.is_ascii_alphanumeric() || b"-_.:@+".contains(&c);
        if s.is_empty() || s.len() > WORKER_NAME_BYTES_MAX || !s.bytes().all(ok) {
            return Err(TypeError::WorkerName);
        }
        let mut bytes = [0u8; WORKER_NAME_BYTES_MAX];
        bytes[..s.len()].copy_from_slice(s.as_bytes());
        Ok(Self {
            bytes,
            len: s.len() as u8,
        })
    }

    /// The name.
    #[must_use]
    pub fn as_str(&self) -> &str {
        // Only ASCII was accepted by `new`.
        core::str::from_utf8(&self.bytes[..usize::from(self.len)]).unwrap_or_default()
    }
}

impl fmt::Debug for WorkerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "WorkerName({:?})", self.as_str())
    }
}

impl fmt::Display for WorkerName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn job_id_round_trip_and_case() {
        let id = JobId::new(0x1a2b);
        assert_eq!(id.to_string(), "1a2b");
        assert_eq!(JobId::from_hex(b"1A2B").unwrap(), id);
        assert_eq!(JobId::from_hex(b"00001a2b").unwrap(), id);
        assert!(JobId::from_hex(b"").is_err());
        assert!(JobId::from_hex(b"11111111111111111").is_err());
    }

    #[test]
    fn extranonce2_sizes() {
        let size = ExtranonceSize::new(4).unwrap();
        assert_eq!(
            Extranonce2::from_hex(b"DEADbeef", size).unwrap().as_bytes(),
            &[0xde, 0xad, 0xbe, 0xef]
        );
        assert_eq!(
            Extranonce2::from_hex(b"deadbe", size),
            Err(TypeError::Extranonce2Length {
                expected: 4,
                got: 3
            })
        );
        assert!(ExtranonceSize::new(1).is_err());
        assert!(ExtranonceSize::new(9).is_err());
    }

    #[test]
    fn version_mask() {
        let m = VersionMask::POOL.negotiate(0xffff_ffff);
        assert_eq!(m.bits(), 0x1fff_e000);
        assert_eq!(VersionMask::POOL.negotiate(0x0000_4000).bits(), 0x4000);
        assert!(m.allows(0x0000_2000));
        assert!(!m.allows(0x2000_0000));
        assert_eq!(m.apply(0x2000_0000, 0x1fff_e000), 0x3fff_e000);
    }

    #[test]
    fn ntime_delta() {
        assert_eq!((Ntime::from_secs(10) - Ntime::from_secs(15)).secs(), -5);
        assert_eq!(Nonce::from_hex(b"1").unwrap().get(), 1);
    }

    #[test]
    fn worker_names() {
        assert_eq!(WorkerName::new("bitaxe-1").unwrap().as_str(), "bitaxe-1");
        assert!(WorkerName::new("").is_err());
        assert!(WorkerName::new("a b").is_err());
        assert!(WorkerName::new(&"x".repeat(65)).is_err());
    }
}
