//! One-time recovery codes: [`RECOVERY_CODES_COUNT`] codes of [`RECOVERY_CODE_CHARS`]
//! base32 characters (60 random bits each), shown once as `abcd-efgh-ijkl`, stored as SHA-256,
//! each usable once in place of a TOTP code at login. A new set replaces the old one whole.

use std::fmt;

use rusqlite::{Connection, Transaction, params};
use warppool_core::limits::{RECOVERY_CODE_CHARS, RECOVERY_CODES_COUNT};

use super::AuthError;
use super::secret::{SecretText, random, sha256};

/// RFC 4648 base32, lower case: no `0`/`1`/`8`/`9` to mistake for letters.
const ALPHABET: &[u8; 32] = b"abcdefghijklmnopqrstuvwxyz234567";

/// Characters between two dashes in the shown form.
const GROUP_CHARS: usize = 4;

/// A fresh set of recovery codes, to show once. `Debug` is redacted.
#[derive(Clone)]
pub struct RecoveryCodes(Vec<SecretText>);

impl RecoveryCodes {
    /// The codes, as shown (`abcd-efgh-ijkl`).
    pub fn codes(&self) -> &[SecretText] {
        &self.0
    }
}

impl fmt::Debug for RecoveryCodes {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "RecoveryCodes({} codes, <redacted>)", self.0.len())
    }
}

/// A new set and the hashes to store.
pub(crate) fn generate() -> Result<(RecoveryCodes, Vec<[u8; 32]>), AuthError> {
    let mut codes = Vec::with_capacity(RECOVERY_CODES_COUNT);
    let mut hashes = Vec::with_capacity(RECOVERY_CODES_COUNT);
    for _ in 0..RECOVERY_CODES_COUNT {
        // 256 is a multiple of 32: every character is uniform.
        let bytes = random::<RECOVERY_CODE_CHARS>()?;
        let plain: String = bytes
            .iter()
            .map(|b| char::from(ALPHABET[usize::from(b % 32)]))
            .collect();
        hashes.push(sha256(plain.as_bytes()));
        let groups: Vec<&str> = plain
            .as_bytes()
            .chunks(GROUP_CHARS)
            .map(|g| std::str::from_utf8(g).expect("ASCII"))
            .collect();
        codes.push(SecretText::new(groups.join("-")));
    }
    Ok((RecoveryCodes(codes), hashes))
}

/// The stored hash of a typed code: case, spaces and dashes ignored. `None` if what is left
/// is not [`RECOVERY_CODE_CHARS`] characters of the alphabet.
pub(crate) fn hash_typed(typed: &str) -> Option<[u8; 32]> {
    let plain: String = typed
        .chars()
        .filter(|c| !c.is_whitespace() && *c != '-')
        .map(|c| c.to_ascii_lowercase())
        .collect();
    let valid = plain.len() == RECOVERY_CODE_CHARS && plain.bytes().all(|b| ALPHABET.contains(&b));
    valid.then(|| sha256(plain.as_bytes()))
}

/// Replaces every code of `admin_id` with `hashes`.
pub(crate) fn replace(
    tx: &Transaction<'_>,
    admin_id: i64,
    hashes: &[[u8; 32]],
) -> rusqlite::Result<()> {
    tx.execute(
        "DELETE FROM admin_recovery_codes WHERE admin_id = ?1",
        [admin_id],
    )?;
    let mut insert = tx.prepare_cached(
        "INSERT OR IGNORE INTO admin_recovery_codes (admin_id, code_hash) VALUES (?1, ?2)",
    )?;
    for hash in hashes {
        insert.execute(params![admin_id, hash])?;
    }
    Ok(())
}

/// Marks the unused code `hash` of `admin_id` used; whether there was one. One statement, so
/// two requests racing with one code cannot both pass.
pub(crate) fn consume(
    connection: &Connection,
    admin_id: i64,
    hash: &[u8; 32],
    now: i64,
) -> rusqlite::Result<bool> {
    let used = connection.execute(
        "UPDATE admin_recovery_codes SET used_unix_s = ?3
         WHERE admin_id = ?1 AND code_hash = ?2 AND used_unix_s IS NULL",
        params![admin_id, hash, now],
    )?;
    Ok(used == 1)
}

/// Unused codes of `admin_id`.
pub(crate) fn unused(connection: &Connection, admin_id: i64) -> rusqlite::Result<usize> {
    let count: i64 = connection.query_row(
        "SELECT count(*) FROM admin_recovery_codes WHERE admin_id = ?1 AND used_unix_s IS NULL",
        [admin_id],
        |row| row.get(0),
    )?;
    Ok(usize::try_from(count).unwrap_or(0))
}
