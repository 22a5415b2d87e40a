//! Admin usernames and passwords: argon2id hashes as PHC strings
//! (`$argon2id$v=19$m=19456,t=2,p=1$<salt>$<hash>`) with the costs of `limits`, the password
//! policy, and the username rules.
//!
//! Hashing and verifying take tens of milliseconds and [`ARGON2_MEMORY_KIB`] of memory: call
//! them from a bounded pool of blocking threads, never on an async runtime's workers.

use std::sync::OnceLock;

use argon2::password_hash::phc::PasswordHash;
use argon2::{Algorithm, Argon2, Params, PasswordHasher, PasswordVerifier, Version};

use warppool_core::limits::{
    ADMIN_PASSWORD_BYTES_MAX, ADMIN_PASSWORD_CHARS_MIN, ADMIN_USERNAME_BYTES_MAX,
    ARGON2_ITERATIONS, ARGON2_MEMORY_KIB, ARGON2_PARALLELISM,
};

use super::AuthError;

/// The hasher with this build's costs.
fn hasher() -> Argon2<'static> {
    let params = Params::new(
        ARGON2_MEMORY_KIB,
        ARGON2_ITERATIONS,
        ARGON2_PARALLELISM,
        None,
    )
    .expect("the argon2 costs in limits are valid (checked there at compile time)");
    Argon2::new(Algorithm::Argon2id, Version::V0x13, params)
}

/// Refuses a new password outside the policy: at least [`ADMIN_PASSWORD_CHARS_MIN`]
/// characters, at most [`ADMIN_PASSWORD_BYTES_MAX`] bytes. Nothing else is imposed (NIST SP
/// 800-63B: length, not composition rules).
///
/// # Errors
/// [`AuthError::WeakPassword`].
pub fn check_password_policy(password: &str) -> Result<(), AuthError> {
    let chars = password.chars().count();
    if chars < ADMIN_PASSWORD_CHARS_MIN || password.len() > ADMIN_PASSWORD_BYTES_MAX {
        return Err(AuthError::WeakPassword {
            min: ADMIN_PASSWORD_CHARS_MIN,
            max_bytes: ADMIN_PASSWORD_BYTES_MAX,
        });
    }
    Ok(())
}

/// Hashes `password` with argon2id and a fresh 16-byte salt, as a PHC string. Checks the
/// policy first.
///
/// # Errors
/// [`AuthError::WeakPassword`]; [`AuthError::Internal`] if the salt or the hash fails.
pub fn hash_password(password: &str) -> Result<String, AuthError> {
    check_password_policy(password)?;
    hash_unchecked(password)
}

/// [`hash_password`] without the policy: for re-hashing a password that verified (the
/// policy may have changed since it was set).
pub(crate) fn hash_unchecked(password: &str) -> Result<String, AuthError> {
    let hash = hasher()
        .hash_password(password.as_bytes())
        .map_err(|e| AuthError::Internal(format!("argon2: {e}")))?;
    Ok(hash.to_string())
}

/// Whether `password` matches the PHC string `phc` (its own costs and salt are used). A
/// malformed `phc` or a password over [`ADMIN_PASSWORD_BYTES_MAX`] never matches.
pub fn verify_password(password: &str, phc: &str) -> bool {
    if password.len() > ADMIN_PASSWORD_BYTES_MAX {
        return false;
    }
    let Ok(parsed) = PasswordHash::new(phc) else {
        return false;
    };
    hasher()
        .verify_password(password.as_bytes(), &parsed)
        .is_ok()
}

/// Whether `phc` was made with other costs or another algorithm than this build's: a login
/// that verified it stores a new hash.
pub fn needs_rehash(phc: &str) -> bool {
    let Ok(parsed) = PasswordHash::new(phc) else {
        return true;
    };
    let Ok(params) = Params::try_from(&parsed) else {
        return true;
    };
    parsed.algorithm.as_str() != "argon2id"
        || params.m_cost() != ARGON2_MEMORY_KIB
        || params.t_cost() != ARGON2_ITERATIONS
        || params.p_cost() != ARGON2_PARALLELISM
}

/// A hash of a password nobody knows, verified when the username is unknown, so an unknown
/// user costs the same time as a wrong password (no username enumeration by timing).
pub(crate) fn dummy_hash() -> &'static str {
    static DUMMY: OnceLock<String> = OnceLock::new();
    DUMMY.get_or_init(|| {
        let salt = [0x5a; 16];
        hasher()
            .hash_password_with_salt(b"warppool: no such admin", &salt)
            .map(|hash| hash.to_string())
            .unwrap_or_default()
    })
}

/// The stored form of a username: ASCII letters (lower-cased), digits, `.`, `_` and `-`, 1 to
/// [`ADMIN_USERNAME_BYTES_MAX`] bytes. Lower-casing makes `Alice` and `alice` one admin; the
/// character set keeps the name safe in an `otpauth://` label (no `:`) and in logs.
///
/// # Errors
/// [`AuthError::InvalidRequest`] naming `username`.
pub fn normalize_username(username: &str) -> Result<String, AuthError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '.' | '_' | '-');
    if username.is_empty()
        || username.len() > ADMIN_USERNAME_BYTES_MAX
        || !username.chars().all(allowed)
    {
        return Err(AuthError::InvalidRequest {
            field: "username",
            problem: format!(
                "1 to {ADMIN_USERNAME_BYTES_MAX} ASCII letters, digits, `.`, `_` or `-`"
            ),
        });
    }
    Ok(username.to_ascii_lowercase())
}
