//! Login (password, then TOTP or a recovery code), step-up and logout.

use std::collections::HashMap;

use serde_json::json;
use warppool_core::limits::{MFA_TICKET_SECS, MFA_TICKETS_MAX};

use super::secret::{SecretText, hex, later, random, sha256, unhex};
use super::store::{self, AdminRow};
use super::{
    Auth, AuthError, NewSession, Outcome, Principal, RequestInfo, action, audit, lock, password,
    recovery, sessions, totp,
};

/// What the password step returns: the ticket the TOTP (or recovery) step presents.
#[derive(Debug, Clone)]
pub struct MfaTicket {
    /// 64 hex digits, single use (the UI's `mfa_token`).
    pub ticket: SecretText,
    /// When it stops being accepted, Unix seconds.
    pub expires_unix_s: i64,
}

/// A ticket as held between the two steps.
#[derive(Debug)]
struct Ticket {
    admin_id: i64,
    expires_unix_s: i64,
}

/// Tickets by the SHA-256 of their secret, at most [`MFA_TICKETS_MAX`].
#[derive(Debug, Default)]
pub(crate) struct Tickets {
    by_hash: HashMap<[u8; 32], Ticket>,
}

impl Tickets {
    fn issue(&mut self, admin_id: i64, now: i64) -> Result<MfaTicket, AuthError> {
        self.by_hash.retain(|_, t| t.expires_unix_s > now);
        if self.by_hash.len() >= MFA_TICKETS_MAX {
            let oldest = self
                .by_hash
                .iter()
                .min_by_key(|(_, t)| t.expires_unix_s)
                .map(|(hash, _)| *hash);
            if let Some(hash) = oldest {
                self.by_hash.remove(&hash);
            }
        }
        let secret = random::<32>()?;
        let expires_unix_s = later(now, MFA_TICKET_SECS);
        let ticket = Ticket {
            admin_id,
            expires_unix_s,
        };
        self.by_hash.insert(sha256(&secret), ticket);
        Ok(MfaTicket {
            ticket: SecretText::new(hex(&secret)),
            expires_unix_s,
        })
    }

    /// Removes and returns the ticket `presented`, if it exists and is still valid.
    fn take(&mut self, presented: &str, now: i64) -> Option<Ticket> {
        let secret = unhex::<32>(presented.trim())?;
        let ticket = self.by_hash.remove(&sha256(&secret))?;
        (ticket.expires_unix_s > now).then_some(ticket)
    }
}

/// The limiter's and the audit log's name for a malformed username (`/` is in no valid one).
const INVALID_NAME: &str = "/invalid";

fn totp_reason(error: &AuthError) -> &'static str {
    match error {
        AuthError::TotpReplayed => "totp_replayed",
        _ => "totp",
    }
}

impl Auth {
    /// The password step. Refused before any hashing while the address or the username is
    /// locked out; an unknown username costs the same hashing as a wrong password and gets
    /// the same answer. A password stored with older argon2 costs is re-hashed.
    ///
    /// # Errors
    /// [`AuthError::LockedOut`], [`AuthError::InvalidCredentials`] (audited, counted; the
    /// failure that starts a lockout answers [`AuthError::LockedOut`]), [`AuthError::Sqlite`].
    pub fn login(
        &self,
        username: &str,
        password: &str,
        req: RequestInfo<'_>,
    ) -> Result<MfaTicket, AuthError> {
        // A malformed name can be no admin's; it is still hashed, counted (under
        // `INVALID_NAME`) and audited like a wrong password, so it tells an attacker nothing.
        let name = password::normalize_username(username).ok();
        let key = name.clone().unwrap_or_else(|| INVALID_NAME.to_owned());
        self.check_lockout(Some(&key), req)?;
        let admin = match &name {
            Some(name) => self
                .store
                .with(|c| Ok(store::admin_by_username(c, name)?))?,
            None => None,
        };
        let verified = match &admin {
            Some(admin) => password::verify_password(password, &admin.password_hash),
            None => {
                let _ = password::verify_password(password, password::dummy_hash());
                false
            }
        };
        let Some(admin) = admin.filter(|_| verified) else {
            let error = AuthError::InvalidCredentials;
            let actor = "anonymous".to_owned();
            let key = Some(key.as_str());
            return Err(self.credential_failure(actor, action::LOGIN, key, "password", error, req));
        };
        if password::needs_rehash(&admin.password_hash) {
            self.rehash(&admin, password, req.now_unix_s);
        }
        lock(&self.tickets).issue(admin.id, req.now_unix_s)
    }

    /// The TOTP step: consumes `ticket` (whatever the outcome) and opens a session.
    ///
    /// # Errors
    /// [`AuthError::TicketInvalid`], [`AuthError::LockedOut`], [`AuthError::InvalidTotp`] or
    /// [`AuthError::TotpReplayed`] (audited, counted), [`AuthError::Sqlite`].
    pub fn complete_totp(
        &self,
        ticket: &str,
        code: &str,
        req: RequestInfo<'_>,
    ) -> Result<NewSession, AuthError> {
        let admin = self.take_ticket(ticket, req)?;
        let verified = totp::verify(
            &admin.totp_secret,
            code,
            req.now_unix_s,
            admin.totp_last_step,
        )
        .and_then(|step| self.accept_step(&admin, step));
        if let Err(error) = verified {
            let reason = totp_reason(&error);
            let (actor, name) = ("anonymous".to_owned(), Some(admin.username.as_str()));
            return Err(self.credential_failure(actor, action::LOGIN, name, reason, error, req));
        }
        self.open_session(&admin, json!({ "method": "totp" }), req)
    }

    /// The recovery step: consumes `ticket` and one unused recovery code, and opens a session
    /// (which counts as stepped up, so the admin can re-enrol TOTP at once).
    ///
    /// # Errors
    /// [`AuthError::TicketInvalid`], [`AuthError::LockedOut`],
    /// [`AuthError::InvalidRecoveryCode`] (audited, counted), [`AuthError::Sqlite`].
    pub fn recover(
        &self,
        ticket: &str,
        recovery_code: &str,
        req: RequestInfo<'_>,
    ) -> Result<NewSession, AuthError> {
        let admin = self.take_ticket(ticket, req)?;
        let used = match recovery::hash_typed(recovery_code) {
            Some(hash) => self
                .store
                .with(|c| Ok(recovery::consume(c, admin.id, &hash, req.now_unix_s)?))?,
            None => false,
        };
        if !used {
            let error = AuthError::InvalidRecoveryCode;
            let (actor, name) = ("anonymous".to_owned(), Some(admin.username.as_str()));
            let reason = "recovery_code";
            return Err(self.credential_failure(actor, action::LOGIN, name, reason, error, req));
        }
        let left = self.store.with(|c| Ok(recovery::unused(c, admin.id)?))?;
        let after = json!({ "method": "recovery_code", "recovery_codes_left": left });
        self.open_session(&admin, after, req)
    }

    /// Asks for TOTP again on a session: for [`super::STEP_UP_WINDOW_SECS`] after it,
    /// [`Auth::require_step_up`] passes. The code's step is used up like a login's.
    ///
    /// # Errors
    /// [`AuthError::SessionRequired`] for a token, [`AuthError::LockedOut`],
    /// [`AuthError::InvalidTotp`] or [`AuthError::TotpReplayed`] (audited, counted),
    /// [`AuthError::Unauthenticated`] if the admin is gone.
    pub fn step_up(
        &self,
        principal: &Principal,
        code: &str,
        req: RequestInfo<'_>,
    ) -> Result<(), AuthError> {
        let Some(session_id) = principal.session_id() else {
            let why = json!({ "required": "session" });
            return Err(self.deny(
                principal,
                action::STEP_UP,
                why,
                AuthError::SessionRequired,
                req,
            ));
        };
        let name = Some(principal.username());
        self.check_lockout(name, req)?;
        let admin = self
            .store
            .with(|c| Ok(store::admin_by_id(c, principal.admin_id)?))?
            .ok_or(AuthError::Unauthenticated)?;
        let verified = totp::verify(
            &admin.totp_secret,
            code,
            req.now_unix_s,
            admin.totp_last_step,
        )
        .and_then(|step| self.accept_step(&admin, step));
        if let Err(error) = verified {
            let reason = totp_reason(&error);
            let actor = principal.actor();
            return Err(self.credential_failure(actor, action::STEP_UP, name, reason, error, req));
        }
        self.limiter().record_success(req.ip, name);
        let target = Some(format!("session:{session_id}"));
        let entry = Self::entry(
            principal.actor(),
            action::STEP_UP,
            target,
            json!({}),
            Outcome::Ok,
            req,
        );
        self.store.transaction(|tx| {
            sessions::set_step_up(tx, session_id, req.now_unix_s)?;
            Ok(audit::append(tx, &entry)?)
        })
    }

    /// Ends the session `principal` came with.
    ///
    /// # Errors
    /// [`AuthError::SessionRequired`] for a token, [`AuthError::Sqlite`].
    pub fn logout(&self, principal: &Principal, req: RequestInfo<'_>) -> Result<(), AuthError> {
        let Some(session_id) = principal.session_id() else {
            return Err(AuthError::SessionRequired);
        };
        let target = Some(format!("session:{session_id}"));
        let entry = Self::entry(
            principal.actor(),
            action::LOGOUT,
            target,
            json!({}),
            Outcome::Ok,
            req,
        );
        self.store.transaction(|tx| {
            sessions::delete(tx, principal.admin_id, session_id)?;
            Ok(audit::append(tx, &entry)?)
        })
    }

    /// Stores `password` (just verified) with this build's argon2 costs; a failure is logged,
    /// the login goes on.
    fn rehash(&self, admin: &AdminRow, password: &str, now: i64) {
        let stored = password::hash_unchecked(password).and_then(|hash| {
            self.store
                .with(|c| Ok(store::set_password_hash(c, admin.id, &hash, now)?))
        });
        if let Err(error) = stored {
            tracing::warn!(%error, admin = %admin.username, "cannot re-hash a password");
        }
    }

    /// Takes the ticket and loads its admin, then checks the lockout (the ticket is used up
    /// either way).
    fn take_ticket(&self, ticket: &str, req: RequestInfo<'_>) -> Result<AdminRow, AuthError> {
        let ticket = lock(&self.tickets)
            .take(ticket, req.now_unix_s)
            .ok_or(AuthError::TicketInvalid)?;
        let admin = self
            .store
            .with(|c| Ok(store::admin_by_id(c, ticket.admin_id)?))?
            .ok_or(AuthError::TicketInvalid)?;
        self.check_lockout(Some(&admin.username), req)?;
        Ok(admin)
    }

    /// Stores `step` as used; [`AuthError::TotpReplayed`] if a racing request used it first.
    pub(super) fn accept_step(&self, admin: &AdminRow, step: u64) -> Result<(), AuthError> {
        if self
            .store
            .with(|c| Ok(store::accept_step(c, admin.id, step)?))?
        {
            Ok(())
        } else {
            Err(AuthError::TotpReplayed)
        }
    }

    /// Clears the failures of the login and opens a session (audited with `after`).
    fn open_session(
        &self,
        admin: &AdminRow,
        after: serde_json::Value,
        req: RequestInfo<'_>,
    ) -> Result<NewSession, AuthError> {
        self.limiter().record_success(req.ip, Some(&admin.username));
        let actor = format!("admin:{}", admin.username);
        self.insert_session(admin.id, actor, action::LOGIN, after, req)
    }

    /// Inserts a new session of `admin_id` and its audit row (`action` by `actor`).
    pub(super) fn insert_session(
        &self,
        admin_id: i64,
        actor: String,
        action: &str,
        after: serde_json::Value,
        req: RequestInfo<'_>,
    ) -> Result<NewSession, AuthError> {
        let minted = sessions::mint()?;
        let ip = req.ip.to_string();
        let session_id = self.store.transaction(|tx| {
            let id = sessions::insert(
                tx,
                admin_id,
                &minted.hash,
                req.user_agent,
                &ip,
                req.now_unix_s,
            )?;
            let target = Some(format!("session:{id}"));
            let entry = Self::entry(actor, action, target, after, Outcome::Ok, req);
            audit::append(tx, &entry)?;
            Ok(id)
        })?;
        Ok(NewSession {
            session_id,
            cookie_value: minted.cookie,
            csrf_token: minted.csrf,
            expires_unix_s: sessions::expires(req.now_unix_s),
        })
    }
}
