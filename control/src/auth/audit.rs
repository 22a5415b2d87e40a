//! The audit log: one append-only row per security-relevant action (who, what, on what,
//! before/after, from which address, allowed or denied). SQLite triggers refuse `UPDATE` and
//! `DELETE` on the table (schema v7). Read newest first with a cursor (the last row id seen).
//!
//! Secrets never enter it: values are names, scopes, counts and ids. Refusals are written when
//! they were judged (a wrong password, a replayed code, a scope escalation, a missing CSRF
//! header, setup after an admin exists); attempts refused by a running lockout are not (one
//! row records the lockout), so a flood cannot grow the table faster than the lockout allows.

use std::net::IpAddr;

use rusqlite::{Connection, params};
use serde_json::Value;
use warppool_core::limits::{AUDIT_PAGE_MAX, AUDIT_VALUE_BYTES_MAX};

/// The action names the auth core writes (the HTTP layer adds its own, e.g. `payout.change`).
pub mod action {
    /// First-run setup (`begin_setup`/`finish_setup`).
    pub const SETUP: &str = "setup";
    /// A login (password, then TOTP or a recovery code).
    pub const LOGIN: &str = "login";
    /// Failed attempts started a lockout of an address or a username.
    pub const LOCKOUT: &str = "login.lockout";
    /// A logout (the session revoked itself).
    pub const LOGOUT: &str = "logout";
    /// A step-up (TOTP asked again).
    pub const STEP_UP: &str = "step_up";
    /// An operation refused for its scope, a missing step-up or a token where a session is
    /// needed.
    pub const FORBIDDEN: &str = "forbidden";
    /// A request refused for its CSRF header.
    pub const CSRF: &str = "csrf";
    /// A session revoked.
    pub const SESSION_REVOKE: &str = "session.revoke";
    /// An API token created.
    pub const TOKEN_CREATE: &str = "token.create";
    /// An API token revoked.
    pub const TOKEN_REVOKE: &str = "token.revoke";
    /// A TOTP re-enrolment started.
    pub const TOTP_ENROLL: &str = "totp.enroll";
    /// A TOTP re-enrolment confirmed (new secret, new recovery codes).
    pub const TOTP_CONFIRM: &str = "totp.confirm";
    /// Recovery codes replaced.
    pub const RECOVERY_REGENERATE: &str = "recovery.regenerate";
    /// An admin created from the CLI.
    pub const ADMIN_CREATE: &str = "admin.create";
    /// An admin's TOTP reset from the CLI.
    pub const ADMIN_RESET_TOTP: &str = "admin.reset_totp";
}

/// Whether the action was done or refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Done.
    Ok,
    /// Refused (nothing changed).
    Denied,
}

impl Outcome {
    fn as_str(self) -> &'static str {
        match self {
            Outcome::Ok => "ok",
            Outcome::Denied => "denied",
        }
    }
}

/// One row to append.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditEntry {
    /// When, Unix seconds.
    pub time_unix_s: i64,
    /// Who: `admin:<username>`, `token:<id>`, `cli` or `anonymous`.
    pub actor: String,
    /// What (see [`action`]).
    pub action: String,
    /// On what (`admin:<username>`, `session:<id>`, `token:<id>`, a config key), if anything.
    pub target: Option<String>,
    /// The value before, as JSON (no secrets).
    pub before: Option<Value>,
    /// The value after, or why it was refused, as JSON (no secrets).
    pub after: Option<Value>,
    /// The client's address (`None` from the CLI).
    pub ip: Option<IpAddr>,
    /// Done or refused.
    pub outcome: Outcome,
}

/// A change the HTTP layer audits through `Auth::record` (the actor, address and time come
/// from the request).
#[derive(Debug, Clone, PartialEq)]
pub struct Change {
    /// What (`payout.change`, `notifier.update`, `backup.restore`, …).
    pub action: String,
    /// On what, if anything.
    pub target: Option<String>,
    /// The value before, as JSON (no secrets: write `"set"` for a secret field).
    pub before: Option<Value>,
    /// The value after, as JSON (no secrets).
    pub after: Option<Value>,
    /// Done or refused.
    pub outcome: Outcome,
}

/// One stored row.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditRecord {
    /// Row id, increasing: the cursor.
    pub id: i64,
    /// When, Unix seconds.
    pub time_unix_s: i64,
    /// Who.
    pub actor: String,
    /// What.
    pub action: String,
    /// On what.
    pub target: Option<String>,
    /// Before.
    pub before: Option<Value>,
    /// After.
    pub after: Option<Value>,
    /// The client's address.
    pub ip: Option<String>,
    /// `ok` or `denied`.
    pub outcome: Outcome,
}

/// One page of the log, newest first.
#[derive(Debug, Clone, PartialEq)]
pub struct AuditPage {
    /// The rows.
    pub records: Vec<AuditRecord>,
    /// Pass it as `cursor` for the next (older) page; `None` on the last page.
    pub next_cursor: Option<i64>,
}

/// The JSON text stored for `value`: itself, or a note of its size past
/// [`AUDIT_VALUE_BYTES_MAX`].
fn bounded(value: Option<&Value>) -> Option<String> {
    let text = value?.to_string();
    if text.len() <= AUDIT_VALUE_BYTES_MAX {
        return Some(text);
    }
    Some(serde_json::json!({ "omitted_bytes": text.len() }).to_string())
}

/// Appends `entry`.
pub(crate) fn append(connection: &Connection, entry: &AuditEntry) -> rusqlite::Result<()> {
    connection
        .prepare_cached(
            "INSERT INTO audit_log (time_unix_s, actor, action, target, before, after, ip,
                 outcome) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            entry.time_unix_s,
            entry.actor,
            entry.action,
            entry.target,
            bounded(entry.before.as_ref()),
            bounded(entry.after.as_ref()),
            entry.ip.map(|ip| ip.to_string()),
            entry.outcome.as_str(),
        ])?;
    Ok(())
}

fn json(row: &rusqlite::Row<'_>, index: usize) -> rusqlite::Result<Option<Value>> {
    let text: Option<String> = row.get(index)?;
    text.map(|t| {
        serde_json::from_str(&t).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(index, rusqlite::types::Type::Text, e.into())
        })
    })
    .transpose()
}

fn record(row: &rusqlite::Row<'_>) -> rusqlite::Result<AuditRecord> {
    let outcome: String = row.get(8)?;
    Ok(AuditRecord {
        id: row.get(0)?,
        time_unix_s: row.get(1)?,
        actor: row.get(2)?,
        action: row.get(3)?,
        target: row.get(4)?,
        before: json(row, 5)?,
        after: json(row, 6)?,
        ip: row.get(7)?,
        outcome: if outcome == "ok" {
            Outcome::Ok
        } else {
            Outcome::Denied
        },
    })
}

/// Up to `limit` (at most [`AUDIT_PAGE_MAX`]) rows older than `cursor`, newest first.
pub(crate) fn page(
    connection: &Connection,
    cursor: Option<i64>,
    limit: usize,
) -> rusqlite::Result<AuditPage> {
    let limit = limit.clamp(1, AUDIT_PAGE_MAX);
    let mut records: Vec<AuditRecord> = connection
        .prepare_cached(
            "SELECT id, time_unix_s, actor, action, target, before, after, ip, outcome
             FROM audit_log WHERE id < ?1 ORDER BY id DESC LIMIT ?2",
        )?
        .query_map(
            params![cursor.unwrap_or(i64::MAX), limit as i64 + 1],
            record,
        )?
        .collect::<rusqlite::Result<_>>()?;
    let more = records.len() > limit;
    records.truncate(limit);
    let next_cursor = more.then(|| records.last().map(|r| r.id)).flatten();
    Ok(AuditPage {
        records,
        next_cursor,
    })
}
