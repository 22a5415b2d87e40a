//! What the CLI calls (`warppool admin create | reset-totp`, `warppool token create |
//! revoke | list`). Whoever can run it can read the database file, so it needs no login; its
//! changes are audited with the actor `cli` and no address. It may run while the pool runs
//! (SQLite's busy timeout serialises the writes), and a revocation takes effect on the pool's
//! next request, since sessions and tokens are looked up every time.

use serde_json::json;

use super::store::{self, AdminRow};
use super::totp::{TotpEnrollment, TotpSecret};
use super::{
    Auth, AuthError, NewToken, Outcome, RecoveryCodes, RequestInfo, Scope, TokenInfo, action,
    audit, lock, password, recovery, sessions, tokens,
};

/// The actor of CLI rows.
const CLI: &str = "cli";

/// An admin whose TOTP the CLI set: print both, once.
#[derive(Debug, Clone)]
pub struct AdminCreated {
    /// The admin's username (normalised).
    pub username: String,
    /// The secret to add to an authenticator app (active at once).
    pub totp: TotpEnrollment,
    /// The new recovery codes.
    pub recovery_codes: RecoveryCodes,
}

impl Auth {
    /// Creates an admin with `password` and a fresh TOTP secret, active at once (the operator
    /// adds it from the terminal). Allowed whether or not admins exist; ends first-run setup.
    ///
    /// # Errors
    /// [`AuthError::InvalidRequest`], [`AuthError::WeakPassword`],
    /// [`AuthError::UsernameTaken`], [`AuthError::Sqlite`].
    pub fn cli_create_admin(
        &self,
        username: &str,
        password: &str,
        now_unix_s: i64,
    ) -> Result<AdminCreated, AuthError> {
        let username = password::normalize_username(username)?;
        let password_hash = password::hash_password(password)?;
        let secret = TotpSecret::generate()?;
        let totp = secret.enrollment(&self.config.totp_issuer, &username)?;
        let (codes, hashes) = recovery::generate()?;
        let req = RequestInfo::local(now_unix_s);
        self.store.transaction(|tx| {
            let id = store::insert_admin(tx, &username, &password_hash, &secret, None, now_unix_s)?;
            recovery::replace(tx, id, &hashes)?;
            let target = Some(format!("admin:{username}"));
            let after = json!({ "username": username, "recovery_codes": hashes.len() });
            let entry = Self::entry(
                CLI.to_owned(),
                action::ADMIN_CREATE,
                target,
                after,
                Outcome::Ok,
                req,
            );
            Ok(audit::append(tx, &entry)?)
        })?;
        lock(&self.setup).close();
        Ok(AdminCreated {
            username,
            totp,
            recovery_codes: codes,
        })
    }

    /// Gives `username` a fresh TOTP secret (active at once) and new recovery codes, and
    /// revokes all of its sessions: for an admin who lost the device and the codes.
    ///
    /// # Errors
    /// [`AuthError::NotFound`], [`AuthError::Sqlite`].
    pub fn cli_reset_totp(
        &self,
        username: &str,
        now_unix_s: i64,
    ) -> Result<AdminCreated, AuthError> {
        let admin = self.cli_admin(username)?;
        let secret = TotpSecret::generate()?;
        let totp = secret.enrollment(&self.config.totp_issuer, &admin.username)?;
        let (codes, hashes) = recovery::generate()?;
        let req = RequestInfo::local(now_unix_s);
        self.store.transaction(|tx| {
            store::replace_totp(tx, admin.id, &secret, None, now_unix_s)?;
            recovery::replace(tx, admin.id, &hashes)?;
            let revoked = sessions::delete_all_but(tx, admin.id, None)?;
            let target = Some(format!("admin:{}", admin.username));
            let after = json!({ "sessions_revoked": revoked, "recovery_codes": hashes.len() });
            let entry = Self::entry(
                CLI.to_owned(),
                action::ADMIN_RESET_TOTP,
                target,
                after,
                Outcome::Ok,
                req,
            );
            Ok(audit::append(tx, &entry)?)
        })?;
        Ok(AdminCreated {
            username: admin.username,
            totp,
            recovery_codes: codes,
        })
    }

    /// Creates an API token in the name of `username`; print its text once.
    ///
    /// # Errors
    /// [`AuthError::NotFound`] for the admin, [`AuthError::InvalidRequest`],
    /// [`AuthError::LimitReached`], [`AuthError::Sqlite`].
    pub fn cli_create_token(
        &self,
        username: &str,
        name: &str,
        scope: Scope,
        now_unix_s: i64,
    ) -> Result<NewToken, AuthError> {
        let admin = self.cli_admin(username)?;
        let req = RequestInfo::local(now_unix_s);
        self.insert_token(admin.id, CLI.to_owned(), name, scope, req)
    }

    /// Revokes an API token.
    ///
    /// # Errors
    /// [`AuthError::NotFound`], [`AuthError::Sqlite`].
    pub fn cli_revoke_token(&self, token_id: i64, now_unix_s: i64) -> Result<(), AuthError> {
        self.delete_token(CLI.to_owned(), token_id, RequestInfo::local(now_unix_s))
    }

    /// Every API token, newest first.
    ///
    /// # Errors
    /// [`AuthError::Sqlite`].
    pub fn cli_tokens(&self) -> Result<Vec<TokenInfo>, AuthError> {
        self.store.with(|c| Ok(tokens::list(c)?))
    }

    fn cli_admin(&self, username: &str) -> Result<AdminRow, AuthError> {
        let username = password::normalize_username(username)?;
        self.store
            .with(|c| Ok(store::admin_by_username(c, &username)?))?
            .ok_or(AuthError::NotFound { what: "admin" })
    }
}
