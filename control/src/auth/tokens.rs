//! Scoped API tokens: `wpt_` and 64 hex digits ([`API_TOKEN_BYTES`] random bytes), shown once
//! at creation, stored as the SHA-256 of the bytes with a short hint (`wpt_1a2b3c4d…`) for the
//! listing. A token is sent as `Authorization: Bearer wpt_…` and checked against the database on
//! every request, so a revoked token fails on the very next one.
//!
//! # Scopes
//! `read` (the JSON API's reads: pool, workers, blocks, …), `metrics` (Prometheus
//! `/metrics`), `admin` (everything a signed-in admin may do without a step-up). `admin`
//! includes the other two; `read` and `metrics` do not include each other: a scraper's token
//! that leaks does not open the API, and a dashboard's token does not open the metrics (which
//! carry per-worker series). Least privilege, and either can be granted alone.
//! Creating tokens needs a session with a recent step-up, so no token can mint another.

use std::fmt;
use std::str::FromStr;

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use warppool_core::limits::{API_TOKEN_BYTES, API_TOKEN_NAME_BYTES_MAX};

use super::AuthError;
use super::secret::{SecretText, hex, random, sha256, unhex};

/// What an API token (or a session) may do. See the module docs for the lattice.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Scope {
    /// The JSON API's reads.
    Read,
    /// Prometheus `/metrics`.
    Metrics,
    /// Everything; every session has it.
    Admin,
}

impl Scope {
    /// Every scope, narrowest first.
    pub const ALL: [Scope; 3] = [Scope::Read, Scope::Metrics, Scope::Admin];

    /// The scope's name in the API and the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Scope::Read => "read",
            Scope::Metrics => "metrics",
            Scope::Admin => "admin",
        }
    }

    /// Whether a holder of `self` may do what needs `required`: the same scope, or `admin`.
    pub fn allows(self, required: Scope) -> bool {
        self == required || self == Scope::Admin
    }
}

impl fmt::Display for Scope {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for Scope {
    type Err = AuthError;

    fn from_str(text: &str) -> Result<Self, AuthError> {
        Scope::ALL
            .into_iter()
            .find(|scope| scope.as_str() == text)
            .ok_or_else(|| AuthError::InvalidRequest {
                field: "scope",
                problem: "one of `read`, `metrics`, `admin`".to_owned(),
            })
    }
}

/// The text every API token starts with, so secret scanners and people recognise one.
pub const TOKEN_PREFIX: &str = "wpt_";

/// Hex digits of the secret kept as the listing's hint.
const HINT_HEX_DIGITS: usize = 8;

/// An API token as listed (no secret).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TokenInfo {
    /// Row id: what revocation names.
    pub id: i64,
    /// The name given at creation.
    pub name: String,
    /// What it may do.
    pub scope: Scope,
    /// `wpt_` and the first 8 hex digits, to tell tokens apart.
    pub hint: String,
    /// The admin who created it.
    pub created_by: String,
    /// When it was created, Unix seconds.
    pub created_unix_s: i64,
    /// When it was last used (to within `AUTH_TOUCH_SECS`), if ever.
    pub last_used_unix_s: Option<i64>,
}

/// A token just created: its listing and its text, shown once and never stored.
#[derive(Debug, Clone)]
pub struct NewToken {
    /// Its listing.
    pub info: TokenInfo,
    /// `wpt_` and 64 hex digits; give it to the client now, it cannot be shown again.
    pub text: SecretText,
}

/// A fresh token: its text, the hash to store and the hint.
pub(crate) struct Generated {
    pub(crate) text: SecretText,
    pub(crate) hash: [u8; 32],
    pub(crate) hint: String,
}

pub(crate) fn generate() -> Result<Generated, AuthError> {
    let bytes = random::<API_TOKEN_BYTES>()?;
    let digits = hex(&bytes);
    Ok(Generated {
        hint: format!("{TOKEN_PREFIX}{}", &digits[..HINT_HEX_DIGITS]),
        text: SecretText::new(format!("{TOKEN_PREFIX}{digits}")),
        hash: sha256(&bytes),
    })
}

/// The stored hash of a presented token, or `None` if it is not shaped like one (then it is
/// refused without a database lookup).
pub(crate) fn hash_presented(text: &str) -> Option<[u8; 32]> {
    let digits = text.trim().strip_prefix(TOKEN_PREFIX)?;
    let bytes = unhex::<API_TOKEN_BYTES>(digits)?;
    Some(sha256(&bytes))
}

/// The token of an `Authorization` header value (`Bearer <token>`, scheme case-insensitive).
pub fn bearer(header: &str) -> Option<&str> {
    let (scheme, token) = header.trim().split_once(' ')?;
    scheme.eq_ignore_ascii_case("bearer").then(|| token.trim())
}

/// Refuses an empty name, one over [`API_TOKEN_NAME_BYTES_MAX`] or one with control
/// characters.
pub(crate) fn check_name(name: &str) -> Result<(), AuthError> {
    let name = name.trim();
    if name.is_empty()
        || name.len() > API_TOKEN_NAME_BYTES_MAX
        || name.chars().any(char::is_control)
    {
        return Err(AuthError::InvalidRequest {
            field: "name",
            problem: format!("1 to {API_TOKEN_NAME_BYTES_MAX} bytes, no control characters"),
        });
    }
    Ok(())
}

const TOKEN_COLUMNS: &str = "SELECT t.id, t.name, t.scope, t.hint, a.username,
    t.created_unix_s, t.last_used_unix_s, t.admin_id FROM api_tokens t
    JOIN admins a ON a.id = t.admin_id";

fn token_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<(TokenInfo, i64)> {
    let scope: String = row.get(2)?;
    let scope = scope.parse().map_err(|_| {
        rusqlite::Error::FromSqlConversionFailure(2, rusqlite::types::Type::Text, scope.into())
    })?;
    let info = TokenInfo {
        id: row.get(0)?,
        name: row.get(1)?,
        scope,
        hint: row.get(3)?,
        created_by: row.get(4)?,
        created_unix_s: row.get(5)?,
        last_used_unix_s: row.get(6)?,
    };
    Ok((info, row.get(7)?))
}

/// Inserts a token unless `max` exist already; returns its row id.
pub(crate) fn insert(
    tx: &Transaction<'_>,
    admin_id: i64,
    name: &str,
    scope: Scope,
    token: &Generated,
    now: i64,
    max: usize,
) -> Result<i64, AuthError> {
    let count: i64 = tx.query_row("SELECT count(*) FROM api_tokens", [], |r| r.get(0))?;
    if usize::try_from(count).unwrap_or(usize::MAX) >= max {
        return Err(AuthError::LimitReached {
            what: "API tokens",
            max,
        });
    }
    tx.execute(
        "INSERT INTO api_tokens (admin_id, name, scope, secret_hash, hint, created_unix_s)
         VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
        params![
            admin_id,
            name.trim(),
            scope.as_str(),
            token.hash,
            token.hint,
            now
        ],
    )?;
    Ok(tx.last_insert_rowid())
}

/// The token stored under `hash` and the id of the admin who created it.
pub(crate) fn by_hash(
    connection: &Connection,
    hash: &[u8; 32],
) -> rusqlite::Result<Option<(TokenInfo, i64)>> {
    connection
        .prepare_cached(&format!("{TOKEN_COLUMNS} WHERE t.secret_hash = ?1"))?
        .query_row([hash], token_row)
        .optional()
}

/// The token with row id `id`.
pub(crate) fn by_id(connection: &Connection, id: i64) -> rusqlite::Result<Option<TokenInfo>> {
    connection
        .prepare_cached(&format!("{TOKEN_COLUMNS} WHERE t.id = ?1"))?
        .query_row([id], token_row)
        .optional()
        .map(|found| found.map(|(info, _)| info))
}

/// Every token, newest first.
pub(crate) fn list(connection: &Connection) -> rusqlite::Result<Vec<TokenInfo>> {
    connection
        .prepare_cached(&format!("{TOKEN_COLUMNS} ORDER BY t.id DESC"))?
        .query_map([], token_row)?
        .map(|row| row.map(|(info, _)| info))
        .collect()
}

/// Records a use.
pub(crate) fn touch(connection: &Connection, id: i64, now: i64) -> rusqlite::Result<()> {
    connection
        .prepare_cached("UPDATE api_tokens SET last_used_unix_s = ?2 WHERE id = ?1")?
        .execute(params![id, now])?;
    Ok(())
}

/// Deletes a token; whether it existed.
pub(crate) fn delete(connection: &Connection, id: i64) -> rusqlite::Result<bool> {
    Ok(connection.execute("DELETE FROM api_tokens WHERE id = ?1", [id])? == 1)
}
