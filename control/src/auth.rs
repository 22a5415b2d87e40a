//! Admin authentication: the server-side core the HTTP API's handlers call (UI.md §8.3).
//!
//! # Flows
//! - **First run** ([`Auth::begin_setup`], [`Auth::finish_setup`]): only while no admin exists,
//!   and only from a loopback peer or with the one-time setup token [`Auth::setup_token`] (the
//!   caller prints it in the log at start). The admin is written only once a TOTP code from
//!   the new secret is confirmed; recovery codes and a session come back.
//! - **Login** ([`Auth::login`] → [`MfaTicket`], then [`Auth::complete_totp`] or
//!   [`Auth::recover`] → [`NewSession`]): argon2id password, then a TOTP code (±1 step, a used
//!   step refused) or a one-time recovery code. The ticket between the two is single use and
//!   lives [`MFA_TICKET_SECS`]. Failures count towards a lockout per address and per username
//!   ([`LoginLimiter`]); while locked, nothing is hashed and [`AuthError::LockedOut`] carries
//!   the seconds left.
//! - **Every request**: [`check_host`] first (DNS rebinding), then [`Auth::session`] (cookie)
//!   or [`Auth::token`] (bearer) → [`Principal`]; [`Auth::check_csrf`] on unsafe methods of a
//!   session; [`Auth::require`] for the scope an endpoint needs; [`Auth::require_step_up`]
//!   before a sensitive change (payout address, restore; token and TOTP changes check it
//!   themselves).
//! - **Security page**: sessions ([`Auth::sessions`], [`Auth::revoke_session`],
//!   [`Auth::revoke_other_sessions`]), API tokens ([`Auth::create_token`], shown once,
//!   [`Auth::tokens`], [`Auth::revoke_token`]), TOTP re-enrolment ([`Auth::enroll_totp`],
//!   [`Auth::confirm_totp`]), recovery codes, the audit log ([`Auth::audit_log`]).
//! - **CLI** (`warppool admin create | reset-totp`, `warppool token create | revoke`):
//!   [`Auth::cli_create_admin`], [`Auth::cli_reset_totp`], [`Auth::cli_create_token`],
//!   [`Auth::cli_revoke_token`], [`Auth::cli_tokens`].
//!
//! # Threads and time
//! Every call blocks (SQLite, argon2id): run them on blocking threads. No call reads a clock:
//! the caller passes `now` (Unix seconds) in [`RequestInfo`] or as an argument.
//!
//! # Secrets
//! Secrets leave only as [`SecretText`] (redacted `Debug`, no `Display`) and only to their
//! owner: the cookie and CSRF token at login, a token's text at creation, recovery codes and
//! the TOTP secret at enrolment. The database stores hashes (SHA-256 for random secrets,
//! argon2id for passwords), except TOTP secrets, which the server needs in clear; hence the
//! file permission check of [`AuthStore::open`]. Secrets and hashes are compared in constant
//! time.
//!
//! Sessions are opaque and server-side, not JWTs: decision 0013.

mod audit;
mod cli;
mod error;
mod host;
mod login;
mod manage;
mod password;
mod ratelimit;
mod recovery;
mod secret;
mod sessions;
mod setup;
mod store;
mod tokens;
mod totp;

use std::fmt;
use std::net::IpAddr;
use std::path::PathBuf;
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde_json::{Value, json};
use warppool_core::limits::{AUTH_TOUCH_SECS, LOGIN_LIMITER_ENTRIES_MAX};

pub use audit::{AuditEntry, AuditPage, AuditRecord, Change, Outcome, action};
pub use cli::AdminCreated;
pub use error::AuthError;
pub use host::{AllowedHosts, check_host};
pub use login::MfaTicket;
pub use password::{
    check_password_policy, hash_password, needs_rehash, normalize_username, verify_password,
};
pub use ratelimit::{LoginLimiter, lockout_secs};
pub use recovery::RecoveryCodes;
pub use secret::SecretText;
pub use sessions::{
    CSRF_HEADER, NewSession, SESSION_COOKIE, SessionInfo, clear_cookie, session_cookie,
};
pub use setup::{SetupDone, SetupEnrollment, SetupRequest};
pub use store::AuthStore;
pub use tokens::{NewToken, Scope, TOKEN_PREFIX, TokenInfo, bearer};
pub use totp::{TotpEnrollment, TotpSecret, verify as verify_totp};
/// The bounds the HTTP layer and the UI show (`core::limits` has them all).
pub use warppool_core::limits::{
    AUDIT_PAGE_MAX, MFA_TICKET_SECS, SESSION_IDLE_SECS, SESSION_LIFETIME_SECS, STEP_UP_WINDOW_SECS,
};

use secret::{ct_eq, elapsed, hex};

/// How the auth core is set up.
#[derive(Debug, Clone)]
pub struct AuthConfig {
    /// The pool's SQLite database (`storage.database`).
    pub database: PathBuf,
    /// The issuer shown by authenticator apps (no `:`).
    pub totp_issuer: String,
    /// Whether a loopback peer may run the first-run setup without the setup token. Set it to
    /// false behind a reverse proxy on the same host: every client then arrives from loopback.
    pub setup_trusts_loopback: bool,
}

impl AuthConfig {
    /// The database at `database`, issuer `WarpPool`, loopback trusted for setup.
    pub fn new(database: impl Into<PathBuf>) -> Self {
        Self {
            database: database.into(),
            totp_issuer: "WarpPool".to_owned(),
            setup_trusts_loopback: true,
        }
    }
}

/// What the HTTP layer knows about a request: the TCP peer's address, the user agent, and
/// the time.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RequestInfo<'a> {
    /// The TCP peer (not a forwarded header: those are the client's to write). The
    /// unspecified address means no network peer ([`RequestInfo::local`]): the audit log then
    /// records no address.
    pub ip: IpAddr,
    /// The `User-Agent` header, if any.
    pub user_agent: Option<&'a str>,
    /// Now, Unix seconds.
    pub now_unix_s: i64,
}

impl<'a> RequestInfo<'a> {
    /// A request from `ip` at `now_unix_s`, without a user agent.
    pub fn new(ip: IpAddr, now_unix_s: i64) -> Self {
        Self {
            ip,
            user_agent: None,
            now_unix_s,
        }
    }

    /// No network peer (the CLI) at `now_unix_s`.
    pub fn local(now_unix_s: i64) -> Self {
        Self::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), now_unix_s)
    }

    /// The address to audit: none for [`RequestInfo::local`].
    fn audited_ip(&self) -> Option<IpAddr> {
        (!self.ip.is_unspecified()).then_some(self.ip)
    }

    /// The same with a user agent.
    pub fn with_user_agent(self, user_agent: &'a str) -> Self {
        Self {
            user_agent: Some(user_agent),
            ..self
        }
    }
}

/// Who is asking: an admin through a session, or an API token. Only [`Auth`] makes one.
#[derive(Clone)]
pub struct Principal {
    admin_id: i64,
    username: String,
    via: Via,
}

#[derive(Clone)]
enum Via {
    Session { id: i64, csrf: [u8; 32] },
    Token { id: i64, scope: Scope },
}

impl Principal {
    /// The admin (for a token: the admin who created it).
    pub fn admin_id(&self) -> i64 {
        self.admin_id
    }

    /// The admin's username.
    pub fn username(&self) -> &str {
        &self.username
    }

    /// What it may do: `admin` for a session, the token's scope for a token.
    pub fn scope(&self) -> Scope {
        match self.via {
            Via::Session { .. } => Scope::Admin,
            Via::Token { scope, .. } => scope,
        }
    }

    /// Whether it may do what needs `required`.
    pub fn allows(&self, required: Scope) -> bool {
        self.scope().allows(required)
    }

    /// The session's id, for a session.
    pub fn session_id(&self) -> Option<i64> {
        match self.via {
            Via::Session { id, .. } => Some(id),
            Via::Token { .. } => None,
        }
    }

    /// The token's id, for a token.
    pub fn token_id(&self) -> Option<i64> {
        match self.via {
            Via::Token { id, .. } => Some(id),
            Via::Session { .. } => None,
        }
    }

    /// The session's CSRF token (for a `GET` that hands it to a reloaded page), for a session.
    pub fn csrf_token(&self) -> Option<SecretText> {
        match &self.via {
            Via::Session { csrf, .. } => Some(SecretText::new(hex(csrf))),
            Via::Token { .. } => None,
        }
    }

    /// How the audit log names it: `admin:<username>` or `token:<id>`.
    pub fn actor(&self) -> String {
        match self.via {
            Via::Session { .. } => format!("admin:{}", self.username),
            Via::Token { id, .. } => format!("token:{id}"),
        }
    }
}

impl fmt::Debug for Principal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut out = f.debug_struct("Principal");
        out.field("admin_id", &self.admin_id)
            .field("username", &self.username);
        match self.via {
            Via::Session { id, .. } => out.field("session", &id).field("csrf", &"<redacted>"),
            Via::Token { id, scope } => out.field("token", &id).field("scope", &scope),
        };
        out.finish()
    }
}

/// The auth core. `Send + Sync`: share one behind an `Arc` between blocking threads.
#[derive(Debug)]
pub struct Auth {
    store: AuthStore,
    config: AuthConfig,
    limiter: Mutex<LoginLimiter>,
    tickets: Mutex<login::Tickets>,
    setup: Mutex<setup::SetupState>,
}

fn lock<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

impl Auth {
    /// Opens the store ([`AuthStore::open`]: permission check, migrations) and, while no
    /// admin exists, makes a setup token.
    ///
    /// # Errors
    /// As [`AuthStore::open`]; [`AuthError::InvalidRequest`] for an issuer with a `:`.
    pub fn open(config: AuthConfig) -> Result<Self, AuthError> {
        let issuer = &config.totp_issuer;
        if issuer.is_empty() || issuer.contains(':') {
            return Err(AuthError::InvalidRequest {
                field: "totp_issuer",
                problem: "not empty, no `:`".to_owned(),
            });
        }
        let store = AuthStore::open(&config.database)?;
        // Computed once now, so the first unknown username costs no more than a wrong password.
        let _ = password::dummy_hash();
        let admin_exists = store.with(|c| Ok(store::admin_exists(c)?))?;
        let setup = setup::SetupState::new(!admin_exists)?;
        Ok(Self {
            store,
            config,
            limiter: Mutex::new(LoginLimiter::new(LOGIN_LIMITER_ENTRIES_MAX)),
            tickets: Mutex::new(login::Tickets::default()),
            setup: Mutex::new(setup),
        })
    }

    /// The store (its path, for messages).
    pub fn store(&self) -> &AuthStore {
        &self.store
    }

    /// The session whose cookie value is `cookie`, at `now_unix_s`. Looked up in the
    /// database every time, so a revoked session fails at once; an expired one is deleted.
    ///
    /// # Errors
    /// [`AuthError::Unauthenticated`] (malformed, unknown or revoked),
    /// [`AuthError::SessionExpired`], [`AuthError::Sqlite`].
    pub fn session(&self, cookie: &str, now_unix_s: i64) -> Result<Principal, AuthError> {
        let secret = sessions::parse_cookie(cookie).ok_or(AuthError::Unauthenticated)?;
        let hash = secret::sha256(&secret);
        self.store.with(|c| {
            let row = sessions::by_hash(c, &hash)?.ok_or(AuthError::Unauthenticated)?;
            if row.expired(now_unix_s) {
                sessions::delete(c, row.admin_id, row.id)?;
                return Err(AuthError::SessionExpired);
            }
            if elapsed(row.last_seen_unix_s, now_unix_s) >= AUTH_TOUCH_SECS {
                sessions::touch(c, row.id, now_unix_s)?;
            }
            Ok(Principal {
                admin_id: row.admin_id,
                username: row.username,
                via: Via::Session {
                    id: row.id,
                    csrf: sessions::csrf_for(&secret),
                },
            })
        })
    }

    /// The API token `bearer` (its text, see [`bearer`]), at `now_unix_s`; looked up every
    /// time, so a revoked token fails at once.
    ///
    /// # Errors
    /// [`AuthError::Unauthenticated`], [`AuthError::Sqlite`].
    pub fn token(&self, bearer: &str, now_unix_s: i64) -> Result<Principal, AuthError> {
        let hash = tokens::hash_presented(bearer).ok_or(AuthError::Unauthenticated)?;
        self.store.with(|c| {
            let (info, admin_id) = tokens::by_hash(c, &hash)?.ok_or(AuthError::Unauthenticated)?;
            let stale = info
                .last_used_unix_s
                .is_none_or(|t| elapsed(t, now_unix_s) >= AUTH_TOUCH_SECS);
            if stale {
                tokens::touch(c, info.id, now_unix_s)?;
            }
            Ok(Principal {
                admin_id,
                username: info.created_by,
                via: Via::Token {
                    id: info.id,
                    scope: info.scope,
                },
            })
        })
    }

    /// Checks the [`CSRF_HEADER`] value of an unsafe request (`None` if absent). A token
    /// needs none (a browser never attaches one by itself). A refusal is audited.
    ///
    /// # Errors
    /// [`AuthError::CsrfMismatch`].
    pub fn check_csrf(
        &self,
        principal: &Principal,
        header: Option<&str>,
        req: RequestInfo<'_>,
    ) -> Result<(), AuthError> {
        let Via::Session { csrf, .. } = &principal.via else {
            return Ok(());
        };
        let expected = hex(csrf);
        if header.is_some_and(|h| ct_eq(h.trim().as_bytes(), expected.as_bytes())) {
            return Ok(());
        }
        let why = if header.is_none() {
            "missing"
        } else {
            "mismatch"
        };
        Err(self.deny(
            principal,
            action::CSRF,
            json!({ "csrf": why }),
            AuthError::CsrfMismatch,
            req,
        ))
    }

    /// Refuses, and audits, a principal without `required`.
    ///
    /// # Errors
    /// [`AuthError::InsufficientScope`].
    pub fn require(
        &self,
        principal: &Principal,
        required: Scope,
        req: RequestInfo<'_>,
    ) -> Result<(), AuthError> {
        if principal.allows(required) {
            return Ok(());
        }
        let error = AuthError::InsufficientScope {
            required,
            have: principal.scope(),
        };
        let why = json!({ "required": required.as_str(), "scope": principal.scope().as_str() });
        Err(self.deny(principal, action::FORBIDDEN, why, error, req))
    }

    /// Refuses a sensitive change unless `principal` is a session whose last TOTP check
    /// (login or [`Auth::step_up`]) is at most [`STEP_UP_WINDOW_SECS`] old. Tokens never pass
    /// (they cannot step up). The step-up time is read from the database, so a step-up earlier
    /// in the same request counts.
    ///
    /// # Errors
    /// [`AuthError::SessionRequired`] (audited), [`AuthError::StepUpRequired`] (not audited:
    /// the UI asks for a code), [`AuthError::Unauthenticated`] if the session is gone.
    pub fn require_step_up(
        &self,
        principal: &Principal,
        req: RequestInfo<'_>,
    ) -> Result<(), AuthError> {
        let Some(id) = principal.session_id() else {
            let why = json!({ "required": "session" });
            return Err(self.deny(
                principal,
                action::FORBIDDEN,
                why,
                AuthError::SessionRequired,
                req,
            ));
        };
        let row = self
            .store
            .with(|c| Ok(sessions::by_id(c, id)?))?
            .ok_or(AuthError::Unauthenticated)?;
        if elapsed(row.step_up_unix_s, req.now_unix_s) > STEP_UP_WINDOW_SECS {
            return Err(AuthError::StepUpRequired);
        }
        Ok(())
    }

    /// Appends an audit row for a change the HTTP layer made (payout address, notifiers, a
    /// ban, a restore, …), with `principal` as the actor (`None`: `anonymous`).
    ///
    /// # Errors
    /// [`AuthError::Sqlite`].
    pub fn record(
        &self,
        principal: Option<&Principal>,
        change: Change,
        req: RequestInfo<'_>,
    ) -> Result<(), AuthError> {
        let entry = AuditEntry {
            time_unix_s: req.now_unix_s,
            actor: principal.map_or_else(|| "anonymous".to_owned(), Principal::actor),
            action: change.action,
            target: change.target,
            before: change.before,
            after: change.after,
            ip: req.audited_ip(),
            outcome: change.outcome,
        };
        self.store.with(|c| Ok(audit::append(c, &entry)?))
    }

    /// Runs `f` in one transaction with the audit row of the change it reports: `Ok(Ok)`
    /// commits both; `Ok(Err(refusal))` commits what `f` wrote (nothing, for a refusal that
    /// checks first) and no row.
    ///
    /// # Errors
    /// [`AuthError::Sqlite`], or `f`'s.
    pub fn audited<T, E>(
        &self,
        principal: &Principal,
        req: RequestInfo<'_>,
        f: impl FnOnce(&rusqlite::Transaction<'_>) -> Result<Result<(T, Change), E>, AuthError>,
    ) -> Result<Result<T, E>, AuthError> {
        self.store.transaction(|tx| {
            let (value, change) = match f(tx)? {
                Ok(done) => done,
                Err(refusal) => return Ok(Err(refusal)),
            };
            let entry = AuditEntry {
                time_unix_s: req.now_unix_s,
                actor: principal.actor(),
                action: change.action,
                target: change.target,
                before: change.before,
                after: change.after,
                ip: req.audited_ip(),
                outcome: change.outcome,
            };
            audit::append(tx, &entry)?;
            Ok(Ok(value))
        })
    }

    /// An audit row of `req` by `actor`.
    fn entry(
        actor: String,
        action: &str,
        target: Option<String>,
        after: Value,
        outcome: Outcome,
        req: RequestInfo<'_>,
    ) -> AuditEntry {
        AuditEntry {
            time_unix_s: req.now_unix_s,
            actor,
            action: action.to_owned(),
            target,
            before: None,
            after: Some(after),
            ip: req.audited_ip(),
            outcome,
        }
    }

    /// Appends `entry`; a failure is logged, not returned (used on refusal paths, whose answer
    /// must not change because the log could not be written).
    fn audit_best_effort(&self, entry: &AuditEntry) {
        if let Err(error) = self.store.with(|c| Ok(audit::append(c, entry)?)) {
            tracing::warn!(%error, action = %entry.action, "cannot write an audit row");
        }
    }

    /// Audits a refusal of `principal` and returns `error`.
    fn deny(
        &self,
        principal: &Principal,
        action: &str,
        why: Value,
        error: AuthError,
        req: RequestInfo<'_>,
    ) -> AuthError {
        let entry = Self::entry(principal.actor(), action, None, why, Outcome::Denied, req);
        self.audit_best_effort(&entry);
        error
    }

    fn limiter(&self) -> MutexGuard<'_, LoginLimiter> {
        lock(&self.limiter)
    }

    /// Refuses while `ip` or `username` is locked out (nothing is audited: the lockout was).
    fn check_lockout(&self, username: Option<&str>, req: RequestInfo<'_>) -> Result<(), AuthError> {
        self.limiter()
            .check(req.ip, username, req.now_unix_s)
            .map_err(|retry_after_secs| AuthError::LockedOut { retry_after_secs })
    }

    /// Counts a failed credential of `username` from `req`, audits it as `action` by `actor`,
    /// and returns `error`, or [`AuthError::LockedOut`] if this failure started a lockout
    /// (audited as [`action::LOCKOUT`]).
    fn credential_failure(
        &self,
        actor: String,
        action: &str,
        username: Option<&str>,
        reason: &str,
        error: AuthError,
        req: RequestInfo<'_>,
    ) -> AuthError {
        let lockout = self
            .limiter()
            .record_failure(req.ip, username, req.now_unix_s);
        let target = username.map(|u| format!("admin:{u}"));
        let why = json!({ "reason": reason });
        let entry = Self::entry(
            actor.clone(),
            action,
            target.clone(),
            why,
            Outcome::Denied,
            req,
        );
        self.audit_best_effort(&entry);
        let Some(retry_after_secs) = lockout else {
            return error;
        };
        let why = json!({ "retry_after_secs": retry_after_secs });
        let entry = Self::entry(actor, action::LOCKOUT, target, why, Outcome::Denied, req);
        self.audit_best_effort(&entry);
        AuthError::LockedOut { retry_after_secs }
    }
}
