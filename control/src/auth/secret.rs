//! The primitives every auth module shares: random secrets from the OS, SHA-256, constant-time
//! comparison, and [`SecretText`], the redacting holder of every secret handed to a caller.

use std::fmt;

use sha2::{Digest, Sha256};
use subtle::ConstantTimeEq;

use super::AuthError;

/// Text of a secret that is shown to its owner and nowhere else: a session cookie value, a
/// CSRF token, an API token, a recovery code, a TOTP secret or `otpauth://` URI, the setup
/// token. `Debug` prints `SecretText(<redacted>)` and there is no `Display`, so it cannot
/// reach a log by accident; read it with [`SecretText::expose`]. Equality is constant-time.
#[derive(Clone)]
pub struct SecretText(String);

impl SecretText {
    pub(crate) fn new(text: String) -> Self {
        Self(text)
    }

    /// The secret itself, to send to its owner (a response body, a `Set-Cookie` header, the
    /// terminal of `warppool admin create`).
    pub fn expose(&self) -> &str {
        &self.0
    }
}

impl fmt::Debug for SecretText {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SecretText(<redacted>)")
    }
}

impl PartialEq for SecretText {
    fn eq(&self, other: &Self) -> bool {
        ct_eq(self.0.as_bytes(), other.0.as_bytes())
    }
}

impl Eq for SecretText {}

/// `N` bytes from the operating system's CSPRNG.
///
/// # Errors
/// [`AuthError::Internal`] if the OS refuses (never seen on Linux after boot).
pub(crate) fn random<const N: usize>() -> Result<[u8; N], AuthError> {
    let mut bytes = [0; N];
    getrandom::fill(&mut bytes).map_err(|e| AuthError::Internal(format!("getrandom: {e}")))?;
    Ok(bytes)
}

/// SHA-256 of `bytes`: how session ids, API tokens and recovery codes are stored. They carry
/// 60 to 256 random bits, so a fast hash suffices (a password needs argon2id).
pub(crate) fn sha256(bytes: &[u8]) -> [u8; 32] {
    Sha256::digest(bytes).into()
}

/// SHA-256 of a domain tag and `bytes`, for values derived from one secret that must not be
/// computable from each other's stored form (a session's CSRF token from its cookie).
pub(crate) fn sha256_tagged(tag: &[u8], bytes: &[u8]) -> [u8; 32] {
    let mut hasher = Sha256::new();
    hasher.update(tag);
    hasher.update([0]);
    hasher.update(bytes);
    hasher.finalize().into()
}

/// Constant-time equality (the time depends on the lengths only).
pub(crate) fn ct_eq(a: &[u8], b: &[u8]) -> bool {
    a.ct_eq(b).into()
}

/// Lower-case hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    warppool_core::hex::encode(bytes)
}

/// The `N` bytes of a lower-case or upper-case hex text of exactly `2 * N` digits.
pub(crate) fn unhex<const N: usize>(text: &str) -> Option<[u8; N]> {
    if text.len() != 2 * N {
        return None;
    }
    warppool_core::hex::decode_array::<N>(text.as_bytes()).ok()
}

/// Cuts `text` to at most `max` bytes at a character boundary.
pub(crate) fn truncate(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut end = max;
    while !text.is_char_boundary(end) {
        end -= 1;
    }
    &text[..end]
}

/// Seconds from `since` to `now`, 0 if the clock went back.
pub(crate) fn elapsed(since: i64, now: i64) -> u64 {
    u64::try_from(now.saturating_sub(since)).unwrap_or(0)
}

/// `now + secs` as Unix seconds, saturating.
pub(crate) fn later(now: i64, secs: u64) -> i64 {
    now.saturating_add(i64::try_from(secs).unwrap_or(i64::MAX))
}
