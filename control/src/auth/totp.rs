//! TOTP (RFC 6238: HMAC-SHA-1, [`TOTP_DIGITS`] digits, [`TOTP_STEP_SECS`]-second steps) via
//! `totp-rs`, with the replay rule RFC 6238 §5.2 leaves to the caller: a code is accepted only
//! if its step is later than the last step accepted for that admin, so a code seen once (over
//! a shoulder, in a proxy log) never works again, in a login or a step-up alike.

use std::fmt;

use totp_rs::{Algorithm, Builder, Secret, Totp};
use warppool_core::limits::{TOTP_DIGITS, TOTP_SECRET_BYTES, TOTP_SKEW_STEPS, TOTP_STEP_SECS};

use super::AuthError;
use super::secret::{SecretText, random};

/// Shortest secret accepted, in bytes (RFC 4226 §4: at least 128 bits).
const SECRET_BYTES_MIN: usize = 16;

/// A TOTP shared secret. `Debug` is redacted; the base32 form leaves only through
/// [`TotpSecret::to_base32`] (at enrolment).
#[derive(Clone, PartialEq, Eq)]
pub struct TotpSecret(Vec<u8>);

impl fmt::Debug for TotpSecret {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("TotpSecret(<redacted>)")
    }
}

/// What an admin needs to add the secret to an authenticator app: the `otpauth://` URI (for a
/// QR code) and the same secret in base32 (to type in). Shown once, at enrolment.
#[derive(Debug, Clone)]
pub struct TotpEnrollment {
    /// `otpauth://totp/<issuer>:<username>?secret=...&issuer=<issuer>`.
    pub otpauth_uri: SecretText,
    /// The secret in RFC 4648 base32 without padding.
    pub secret_base32: SecretText,
}

impl TotpSecret {
    /// A fresh [`TOTP_SECRET_BYTES`]-byte secret from the OS's CSPRNG.
    ///
    /// # Errors
    /// [`AuthError::Internal`] if the OS refuses.
    pub fn generate() -> Result<Self, AuthError> {
        Ok(Self(random::<TOTP_SECRET_BYTES>()?.to_vec()))
    }

    /// A secret from its bytes (at least 16).
    ///
    /// # Errors
    /// [`AuthError::InvalidRequest`] if shorter.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, AuthError> {
        if bytes.len() < SECRET_BYTES_MIN {
            return Err(AuthError::InvalidRequest {
                field: "totp_secret",
                problem: format!("at least {SECRET_BYTES_MIN} bytes"),
            });
        }
        Ok(Self(bytes.to_vec()))
    }

    /// A secret from its base32 text (as an authenticator app shows it).
    ///
    /// # Errors
    /// [`AuthError::InvalidRequest`] if it is not base32 or too short.
    pub fn from_base32(text: &str) -> Result<Self, AuthError> {
        let secret = Secret::try_from_base32(text).map_err(|_| AuthError::InvalidRequest {
            field: "totp_secret",
            problem: "not RFC 4648 base32".to_owned(),
        })?;
        Self::from_bytes(secret.as_bytes())
    }

    /// The secret in base32 without padding.
    pub fn to_base32(&self) -> SecretText {
        SecretText::new(Secret::from(self.0.clone()).to_base32())
    }

    pub(crate) fn as_bytes(&self) -> &[u8] {
        &self.0
    }

    fn totp(&self, issuer: &str, account: &str) -> Result<Totp, AuthError> {
        Builder::new()
            .with_algorithm(Algorithm::SHA1)
            .with_digits(TOTP_DIGITS)
            .with_skew(TOTP_SKEW_STEPS)
            .with_step_duration(TOTP_STEP_SECS)
            .with_secret(self.0.clone())
            .with_issuer(Some(issuer))
            .with_account_name(account)
            .build()
            .map_err(|e| AuthError::InvalidRequest {
                field: "totp",
                problem: e.to_string(),
            })
    }

    fn plain(&self) -> Totp {
        self.totp("WarpPool", "admin")
            .expect("a secret of 16+ bytes with fixed RFC parameters always builds")
    }

    /// The code for Unix time `unix_s` (what an authenticator app shows then).
    pub fn code_at(&self, unix_s: u64) -> String {
        self.plain().generate(unix_s).to_string()
    }

    /// The step (`unix_s / TOTP_STEP_SECS`) within ±[`TOTP_SKEW_STEPS`] of `now_unix_s`
    /// whose code is `code`, if any. Spaces in `code` are ignored; anything but
    /// [`TOTP_DIGITS`] digits never matches.
    pub fn matching_step(&self, code: &str, now_unix_s: i64) -> Option<u64> {
        let now = u64::try_from(now_unix_s).ok()?;
        let code: String = code.chars().filter(|c| !c.is_whitespace()).collect();
        self.plain().check(&code, now)
    }

    /// The enrolment data for `account` (the username) under `issuer`.
    ///
    /// # Errors
    /// [`AuthError::InvalidRequest`] if `issuer` or `account` contains a `:`.
    pub fn enrollment(&self, issuer: &str, account: &str) -> Result<TotpEnrollment, AuthError> {
        let uri = self
            .totp(issuer, account)?
            .to_url()
            .map_err(|e| AuthError::InvalidRequest {
                field: "totp",
                problem: e.to_string(),
            })?;
        Ok(TotpEnrollment {
            otpauth_uri: SecretText::new(uri),
            secret_base32: self.to_base32(),
        })
    }
}

/// Checks `code` at `now_unix_s` against `secret`, refusing a step at or before
/// `last_step` (the last one accepted for this admin). Returns the step to store as the new
/// last one; the caller must store it atomically (`UPDATE … WHERE totp_last_step < step`), so
/// two requests racing with one code cannot both pass.
///
/// # Errors
/// [`AuthError::InvalidTotp`] or [`AuthError::TotpReplayed`].
pub fn verify(
    secret: &TotpSecret,
    code: &str,
    now_unix_s: i64,
    last_step: Option<u64>,
) -> Result<u64, AuthError> {
    let step = secret
        .matching_step(code, now_unix_s)
        .ok_or(AuthError::InvalidTotp)?;
    if last_step.is_some_and(|last| step <= last) {
        return Err(AuthError::TotpReplayed);
    }
    Ok(step)
}
