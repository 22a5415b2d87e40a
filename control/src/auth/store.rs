//! [`AuthStore`]: the auth tables of the pool's SQLite database (schema v7) on a connection of
//! their own.
//!
//! The stats writer owns the database's batching connection; auth writes are rare and must be
//! confirmed before the answer (a login must know its session exists), so they go through this
//! second connection to the same file: WAL, `busy_timeout`, `synchronous=FULL`, one statement
//! or transaction at a time behind a mutex. Its calls block: run them on blocking threads.
//!
//! # File permissions
//! TOTP secrets and password hashes live in this database (no separate secrets file), so it
//! must be readable by the pool's user only. At open, the database and its `-wal`/`-shm`
//! files are checked: a file open to group or others (`mode & 0o077 != 0`) is
//! - tightened to owner-only, with a warning, while no admin exists and the file belongs to
//!   the pool's user (a fresh or pre-auth database: nothing secret has been in it yet);
//! - refused otherwise ([`AuthError::Permissions`], naming the file and the `chmod 600` that
//!   fixes it): secrets may already have been readable, which the operator must know about.
//!
//! A database the pool creates is created 0600 (`storage::create_private`).

use std::fs;
use std::os::unix::fs::{MetadataExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use rusqlite::{Connection, OptionalExtension, Transaction, TransactionBehavior, params};
use warppool_core::limits::STORAGE_BUSY_TIMEOUT_MS;

use super::AuthError;
use super::totp::TotpSecret;
use crate::storage::{create_private, schema};

/// The auth tables of one database file. See the module docs.
#[derive(Debug)]
pub struct AuthStore {
    connection: Mutex<Connection>,
    path: PathBuf,
}

/// An admin as stored.
pub(crate) struct AdminRow {
    pub(crate) id: i64,
    pub(crate) username: String,
    pub(crate) password_hash: String,
    pub(crate) totp_secret: TotpSecret,
    pub(crate) totp_last_step: Option<u64>,
    pub(crate) totp_pending: Option<TotpSecret>,
}

impl AuthStore {
    /// Opens (creating it 0600 if missing) and migrates the database at `path`, after the
    /// permission check of the module docs.
    ///
    /// # Errors
    /// [`AuthError::Permissions`]; [`AuthError::Storage`] for a file from a newer build or a
    /// failed migration; [`AuthError::Sqlite`]; [`AuthError::Internal`] if the file cannot be
    /// created or tightened.
    pub fn open(path: &Path) -> Result<Self, AuthError> {
        create_private(path)
            .map_err(|e| AuthError::Internal(format!("cannot create {}: {e}", path.display())))?;
        let mut connection = Connection::open(path)?;
        connection.busy_timeout(Duration::from_millis(STORAGE_BUSY_TIMEOUT_MS))?;
        connection.pragma_update(None, "foreign_keys", "ON")?;
        schema::check_version(&connection)?;
        check_permissions(path, &connection)?;
        let mode: String =
            connection.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        if !mode.eq_ignore_ascii_case("wal") {
            return Err(AuthError::Internal(format!(
                "journal_mode is {mode}, not wal"
            )));
        }
        connection.pragma_update(None, "synchronous", "FULL")?;
        schema::migrate(&mut connection)?;
        Ok(Self {
            connection: Mutex::new(connection),
            path: path.to_path_buf(),
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Runs `f` in an immediate transaction, committed if `f` succeeds: a change and its audit
    /// row are written together or not at all.
    pub(crate) fn transaction<T>(
        &self,
        f: impl FnOnce(&Transaction<'_>) -> Result<T, AuthError>,
    ) -> Result<T, AuthError> {
        self.with(|connection| {
            let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
            let value = f(&tx)?;
            tx.commit()?;
            Ok(value)
        })
    }

    /// Runs `f` on the connection (one caller at a time), with SQLite's own errors.
    ///
    /// # Errors
    /// `f`'s.
    pub fn with_connection<T>(
        &self,
        f: impl FnOnce(&Connection) -> rusqlite::Result<T>,
    ) -> rusqlite::Result<T> {
        let connection = self
            .connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        f(&connection)
    }

    /// Runs `f` on the connection (one caller at a time).
    pub(crate) fn with<T>(
        &self,
        f: impl FnOnce(&mut Connection) -> Result<T, AuthError>,
    ) -> Result<T, AuthError> {
        let mut connection = self
            .connection
            .lock()
            .unwrap_or_else(PoisonError::into_inner);
        f(&mut connection)
    }
}

/// The pool's effective user id.
fn effective_uid() -> u32 {
    // SAFETY: geteuid takes no arguments, cannot fail and touches no memory of ours.
    unsafe { libc::geteuid() }
}

/// Whether an admin exists (false before schema v7 too).
fn holds_admins(connection: &Connection) -> rusqlite::Result<bool> {
    let has_table: bool = connection.query_row(
        "SELECT count(*) > 0 FROM sqlite_master WHERE type = 'table' AND name = 'admins'",
        [],
        |row| row.get(0),
    )?;
    if !has_table {
        return Ok(false);
    }
    connection.query_row("SELECT count(*) > 0 FROM admins", [], |row| row.get(0))
}

/// The check of the module docs, on the database and its `-wal`/`-shm` files.
fn check_permissions(path: &Path, connection: &Connection) -> Result<(), AuthError> {
    let holds_secrets = holds_admins(connection)?;
    let sibling = |suffix: &str| {
        let mut name = path.as_os_str().to_owned();
        name.push(suffix);
        PathBuf::from(name)
    };
    for file in [path.to_path_buf(), sibling("-wal"), sibling("-shm")] {
        let Ok(meta) = fs::metadata(&file) else {
            continue;
        };
        let mode = meta.permissions().mode() & 0o7777;
        if mode & 0o077 == 0 {
            continue;
        }
        if holds_secrets || meta.uid() != effective_uid() {
            return Err(AuthError::Permissions { path: file, mode });
        }
        fs::set_permissions(&file, fs::Permissions::from_mode(mode & 0o700)).map_err(|e| {
            AuthError::Internal(format!("cannot chmod 600 {}: {e}", file.display()))
        })?;
        tracing::warn!(
            file = %file.display(),
            was = format!("{mode:04o}"),
            "database made owner-only: it will hold admin secrets"
        );
    }
    Ok(())
}

const ADMIN_COLUMNS: &str = "SELECT id, username, password_hash, totp_secret, totp_last_step,
    totp_pending_secret FROM admins";

fn admin_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<AdminRow> {
    let secret = |index: usize, bytes: Vec<u8>| {
        TotpSecret::from_bytes(&bytes).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(
                index,
                rusqlite::types::Type::Blob,
                e.to_string().into(),
            )
        })
    };
    let last_step: i64 = row.get(4)?;
    let pending: Option<Vec<u8>> = row.get(5)?;
    Ok(AdminRow {
        id: row.get(0)?,
        username: row.get(1)?,
        password_hash: row.get(2)?,
        totp_secret: secret(3, row.get(3)?)?,
        totp_last_step: u64::try_from(last_step).ok(),
        totp_pending: pending.map(|p| secret(5, p)).transpose()?,
    })
}

pub(crate) fn admin_exists(connection: &Connection) -> rusqlite::Result<bool> {
    connection.query_row("SELECT count(*) > 0 FROM admins", [], |row| row.get(0))
}

pub(crate) fn admin_by_username(
    connection: &Connection,
    username: &str,
) -> rusqlite::Result<Option<AdminRow>> {
    connection
        .prepare_cached(&format!("{ADMIN_COLUMNS} WHERE username = ?1"))?
        .query_row([username], admin_row)
        .optional()
}

pub(crate) fn admin_by_id(connection: &Connection, id: i64) -> rusqlite::Result<Option<AdminRow>> {
    connection
        .prepare_cached(&format!("{ADMIN_COLUMNS} WHERE id = ?1"))?
        .query_row([id], admin_row)
        .optional()
}

/// Inserts an admin; returns its id.
///
/// # Errors
/// [`AuthError::UsernameTaken`] if the name exists.
pub(crate) fn insert_admin(
    tx: &Transaction<'_>,
    username: &str,
    password_hash: &str,
    secret: &TotpSecret,
    last_step: Option<u64>,
    now: i64,
) -> Result<i64, AuthError> {
    let taken: bool = tx.query_row(
        "SELECT count(*) > 0 FROM admins WHERE username = ?1",
        [username],
        |row| row.get(0),
    )?;
    if taken {
        return Err(AuthError::UsernameTaken(username.to_owned()));
    }
    tx.execute(
        "INSERT INTO admins (username, password_hash, totp_secret, totp_last_step,
             created_unix_s, updated_unix_s) VALUES (?1, ?2, ?3, ?4, ?5, ?5)",
        params![
            username,
            password_hash,
            secret.as_bytes(),
            step_value(last_step),
            now
        ],
    )?;
    Ok(tx.last_insert_rowid())
}

fn step_value(step: Option<u64>) -> i64 {
    step.and_then(|s| i64::try_from(s).ok()).unwrap_or(-1)
}

/// Stores `step` as the admin's last accepted TOTP step if it is later than the stored one;
/// whether it was (false: another request used this step or a later one first).
pub(crate) fn accept_step(connection: &Connection, id: i64, step: u64) -> rusqlite::Result<bool> {
    let changed = connection.execute(
        "UPDATE admins SET totp_last_step = ?2 WHERE id = ?1 AND totp_last_step < ?2",
        params![id, step_value(Some(step))],
    )?;
    Ok(changed == 1)
}

pub(crate) fn set_password_hash(
    connection: &Connection,
    id: i64,
    hash: &str,
    now: i64,
) -> rusqlite::Result<()> {
    connection.execute(
        "UPDATE admins SET password_hash = ?2, updated_unix_s = ?3 WHERE id = ?1",
        params![id, hash, now],
    )?;
    Ok(())
}

pub(crate) fn set_pending_totp(
    connection: &Connection,
    id: i64,
    pending: &TotpSecret,
    now: i64,
) -> rusqlite::Result<()> {
    connection.execute(
        "UPDATE admins SET totp_pending_secret = ?2, updated_unix_s = ?3 WHERE id = ?1",
        params![id, pending.as_bytes(), now],
    )?;
    Ok(())
}

/// Makes `secret` the admin's TOTP secret, `last_step` its last accepted step, and clears a
/// pending enrolment.
pub(crate) fn replace_totp(
    tx: &Transaction<'_>,
    id: i64,
    secret: &TotpSecret,
    last_step: Option<u64>,
    now: i64,
) -> rusqlite::Result<()> {
    tx.execute(
        "UPDATE admins SET totp_secret = ?2, totp_last_step = ?3, totp_pending_secret = NULL,
             updated_unix_s = ?4 WHERE id = ?1",
        params![id, secret.as_bytes(), step_value(last_step), now],
    )?;
    Ok(())
}
