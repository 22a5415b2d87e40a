//! Opaque server-side sessions (decision 0013): the cookie carries [`SESSION_ID_BYTES`] random
//! bytes as hex; the database keeps only their SHA-256, so a copy of the database opens no
//! session. Every request looks the session up, so a revoked session fails on the very next
//! request. A session ends after [`SESSION_IDLE_SECS`] unused or [`SESSION_LIFETIME_SECS`]
//! after its login; an admin holds at most [`SESSIONS_PER_ADMIN_MAX`] (the least recently used
//! goes first).
//!
//! The CSRF token is derived from the cookie's secret (SHA-256 with a domain tag), so it is
//! never stored and cannot be computed from the stored hash; the client echoes it in the
//! [`CSRF_HEADER`] header on every unsafe method, and the server compares in constant time.
//! With `SameSite=Strict` a cross-site request carries no cookie at all; the header is the
//! second lock.

use rusqlite::{Connection, OptionalExtension, Transaction, params};
use warppool_core::limits::{
    AUTH_USER_AGENT_BYTES_MAX, SESSION_ID_BYTES, SESSION_IDLE_SECS, SESSION_LIFETIME_SECS,
    SESSIONS_PER_ADMIN_MAX,
};

use super::AuthError;
use super::secret::{
    SecretText, elapsed, hex, later, random, sha256, sha256_tagged, truncate, unhex,
};

/// Name of the session cookie.
pub const SESSION_COOKIE: &str = "warppool_session";

/// Header that carries the CSRF token on unsafe methods (`POST`, `PUT`, `PATCH`, `DELETE`).
pub const CSRF_HEADER: &str = "x-csrf-token";

/// Domain tag of the CSRF derivation.
const CSRF_TAG: &[u8] = b"warppool admin session csrf v1";

/// A session just opened: what the login response sends.
#[derive(Debug, Clone)]
pub struct NewSession {
    /// Row id (what the sessions list and revocation name).
    pub session_id: i64,
    /// The cookie's value (64 hex digits); send it with [`NewSession::set_cookie`].
    pub cookie_value: SecretText,
    /// The CSRF token the client must echo in [`CSRF_HEADER`].
    pub csrf_token: SecretText,
    /// When the session ends at the latest, Unix seconds.
    pub expires_unix_s: i64,
}

impl NewSession {
    /// The `Set-Cookie` header value: `HttpOnly`, `SameSite=Strict`, `Path=/`, `Max-Age` of
    /// the session's lifetime, and `Secure` when served over HTTPS. The value holds the secret:
    /// never log it.
    pub fn set_cookie(&self, secure: bool) -> SecretText {
        let secure = if secure { "; Secure" } else { "" };
        SecretText::new(format!(
            "{SESSION_COOKIE}={}; Path=/; HttpOnly; SameSite=Strict; Max-Age={}{secure}",
            self.cookie_value.expose(),
            SESSION_LIFETIME_SECS,
        ))
    }
}

/// The session cookie's value in a `Cookie` request header (`a=1; warppool_session=…`).
pub fn session_cookie(cookie_header: &str) -> Option<&str> {
    cookie_header.split(';').find_map(|pair| {
        let (name, value) = pair.trim().split_once('=')?;
        (name == SESSION_COOKIE).then_some(value)
    })
}

/// The `Set-Cookie` header value that deletes the session cookie (at logout).
pub fn clear_cookie(secure: bool) -> String {
    let secure = if secure { "; Secure" } else { "" };
    format!("{SESSION_COOKIE}=; Path=/; HttpOnly; SameSite=Strict; Max-Age=0{secure}")
}

/// One session as listed on the security page.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionInfo {
    /// Row id.
    pub id: i64,
    /// The browser's user agent at login (cut to `AUTH_USER_AGENT_BYTES_MAX`).
    pub user_agent: Option<String>,
    /// The address it logged in from.
    pub ip: Option<String>,
    /// Login time, Unix seconds.
    pub created_unix_s: i64,
    /// Last request, Unix seconds (to within `AUTH_TOUCH_SECS`).
    pub last_seen_unix_s: i64,
    /// Whether this is the session asking.
    pub current: bool,
}

/// A fresh session secret and what is derived from it.
pub(crate) struct Minted {
    pub(crate) cookie: SecretText,
    pub(crate) csrf: SecretText,
    pub(crate) hash: [u8; 32],
}

pub(crate) fn mint() -> Result<Minted, AuthError> {
    let secret = random::<SESSION_ID_BYTES>()?;
    Ok(Minted {
        cookie: SecretText::new(hex(&secret)),
        csrf: SecretText::new(hex(&csrf_for(&secret))),
        hash: sha256(&secret),
    })
}

/// The secret in a cookie value, or `None` if it is not 64 hex digits.
pub(crate) fn parse_cookie(value: &str) -> Option<[u8; SESSION_ID_BYTES]> {
    unhex::<SESSION_ID_BYTES>(value.trim())
}

/// The CSRF token of the session whose cookie secret is `secret`.
pub(crate) fn csrf_for(secret: &[u8; SESSION_ID_BYTES]) -> [u8; 32] {
    sha256_tagged(CSRF_TAG, secret)
}

/// A stored session.
#[derive(Debug, Clone)]
pub(crate) struct SessionRow {
    pub(crate) id: i64,
    pub(crate) admin_id: i64,
    pub(crate) username: String,
    pub(crate) created_unix_s: i64,
    pub(crate) last_seen_unix_s: i64,
    pub(crate) step_up_unix_s: i64,
}

impl SessionRow {
    /// Whether the session has ended at `now`: unused too long, or too old.
    pub(crate) fn expired(&self, now: i64) -> bool {
        elapsed(self.last_seen_unix_s, now) > SESSION_IDLE_SECS
            || elapsed(self.created_unix_s, now) > SESSION_LIFETIME_SECS
    }
}

/// The latest end of a session opened at `now`.
pub(crate) fn expires(now: i64) -> i64 {
    later(now, SESSION_LIFETIME_SECS)
}

/// Inserts a session (its step-up time is its login: the login just checked TOTP or a
/// recovery code) and ends the admin's least recently used sessions beyond
/// [`SESSIONS_PER_ADMIN_MAX`]; returns its id.
pub(crate) fn insert(
    tx: &Transaction<'_>,
    admin_id: i64,
    hash: &[u8; 32],
    user_agent: Option<&str>,
    ip: &str,
    now: i64,
) -> rusqlite::Result<i64> {
    let user_agent = user_agent.map(|ua| truncate(ua, AUTH_USER_AGENT_BYTES_MAX));
    tx.execute(
        "INSERT INTO admin_sessions (admin_id, secret_hash, user_agent, ip, created_unix_s,
             last_seen_unix_s, step_up_unix_s) VALUES (?1, ?2, ?3, ?4, ?5, ?5, ?5)",
        params![admin_id, hash, user_agent, ip, now],
    )?;
    let id = tx.last_insert_rowid();
    tx.execute(
        "DELETE FROM admin_sessions WHERE admin_id = ?1 AND id NOT IN (
             SELECT id FROM admin_sessions WHERE admin_id = ?1
             ORDER BY last_seen_unix_s DESC, id DESC LIMIT ?2)",
        params![admin_id, SESSIONS_PER_ADMIN_MAX as i64],
    )?;
    Ok(id)
}

const SESSION_COLUMNS: &str = "SELECT s.id, s.admin_id, a.username, s.created_unix_s,
    s.last_seen_unix_s, s.step_up_unix_s FROM admin_sessions s
    JOIN admins a ON a.id = s.admin_id";

fn session_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<SessionRow> {
    Ok(SessionRow {
        id: row.get(0)?,
        admin_id: row.get(1)?,
        username: row.get(2)?,
        created_unix_s: row.get(3)?,
        last_seen_unix_s: row.get(4)?,
        step_up_unix_s: row.get(5)?,
    })
}

pub(crate) fn by_hash(
    connection: &Connection,
    hash: &[u8; 32],
) -> rusqlite::Result<Option<SessionRow>> {
    connection
        .prepare_cached(&format!("{SESSION_COLUMNS} WHERE s.secret_hash = ?1"))?
        .query_row([hash], session_row)
        .optional()
}

pub(crate) fn by_id(connection: &Connection, id: i64) -> rusqlite::Result<Option<SessionRow>> {
    connection
        .prepare_cached(&format!("{SESSION_COLUMNS} WHERE s.id = ?1"))?
        .query_row([id], session_row)
        .optional()
}

pub(crate) fn touch(connection: &Connection, id: i64, now: i64) -> rusqlite::Result<()> {
    connection
        .prepare_cached("UPDATE admin_sessions SET last_seen_unix_s = ?2 WHERE id = ?1")?
        .execute(params![id, now])?;
    Ok(())
}

pub(crate) fn set_step_up(connection: &Connection, id: i64, now: i64) -> rusqlite::Result<()> {
    connection.execute(
        "UPDATE admin_sessions SET step_up_unix_s = ?2 WHERE id = ?1",
        params![id, now],
    )?;
    Ok(())
}

/// Deletes one session of `admin_id`; whether it existed.
pub(crate) fn delete(connection: &Connection, admin_id: i64, id: i64) -> rusqlite::Result<bool> {
    let deleted = connection.execute(
        "DELETE FROM admin_sessions WHERE id = ?1 AND admin_id = ?2",
        params![id, admin_id],
    )?;
    Ok(deleted == 1)
}

/// Deletes every session of `admin_id` but `keep`; how many.
pub(crate) fn delete_all_but(
    connection: &Connection,
    admin_id: i64,
    keep: Option<i64>,
) -> rusqlite::Result<usize> {
    connection.execute(
        "DELETE FROM admin_sessions WHERE admin_id = ?1 AND id IS NOT ?2",
        params![admin_id, keep],
    )
}

/// The sessions of `admin_id`, most recently used first, `current` marked.
pub(crate) fn list(
    connection: &Connection,
    admin_id: i64,
    current: Option<i64>,
) -> rusqlite::Result<Vec<SessionInfo>> {
    connection
        .prepare_cached(
            "SELECT id, user_agent, ip, created_unix_s, last_seen_unix_s FROM admin_sessions
             WHERE admin_id = ?1 ORDER BY last_seen_unix_s DESC, id DESC",
        )?
        .query_map([admin_id], |row| {
            let id: i64 = row.get(0)?;
            Ok(SessionInfo {
                id,
                user_agent: row.get(1)?,
                ip: row.get(2)?,
                created_unix_s: row.get(3)?,
                last_seen_unix_s: row.get(4)?,
                current: current == Some(id),
            })
        })?
        .collect()
}
