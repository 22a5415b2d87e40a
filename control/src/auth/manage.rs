//! The security page's operations: sessions, API tokens, TOTP re-enrolment, recovery codes
//! and the audit log. Each checks its own scope and, for changes that widen access (a token,
//! a new TOTP secret, new recovery codes), a recent step-up.

use serde_json::json;
use warppool_core::limits::API_TOKENS_MAX;

use super::store::{self, AdminRow};
use super::totp::{TotpEnrollment, TotpSecret};
use super::{
    AuditPage, Auth, AuthError, NewToken, Outcome, Principal, RecoveryCodes, RequestInfo, Scope,
    SessionInfo, TokenInfo, action, audit, recovery, sessions, tokens, totp,
};

impl Auth {
    /// The sessions of `principal`'s admin, most recently used first (`admin` scope).
    ///
    /// # Errors
    /// [`AuthError::InsufficientScope`] (audited), [`AuthError::Sqlite`].
    pub fn sessions(
        &self,
        principal: &Principal,
        req: RequestInfo<'_>,
    ) -> Result<Vec<SessionInfo>, AuthError> {
        self.require(principal, Scope::Admin, req)?;
        let current = principal.session_id();
        self.store
            .with(|c| Ok(sessions::list(c, principal.admin_id, current)?))
    }

    /// Revokes one session of `principal`'s admin (`admin` scope); it fails on its next
    /// request.
    ///
    /// # Errors
    /// [`AuthError::InsufficientScope`] (audited), [`AuthError::NotFound`], [`AuthError::Sqlite`].
    pub fn revoke_session(
        &self,
        principal: &Principal,
        session_id: i64,
        req: RequestInfo<'_>,
    ) -> Result<(), AuthError> {
        self.require(principal, Scope::Admin, req)?;
        let target = Some(format!("session:{session_id}"));
        let entry = Self::entry(
            principal.actor(),
            action::SESSION_REVOKE,
            target,
            json!({}),
            Outcome::Ok,
            req,
        );
        self.store.transaction(|tx| {
            if !sessions::delete(tx, principal.admin_id, session_id)? {
                return Err(AuthError::NotFound { what: "session" });
            }
            Ok(audit::append(tx, &entry)?)
        })
    }

    /// Revokes every session of `principal`'s admin but the current one (`admin` scope; from
    /// a token: all of them); returns how many.
    ///
    /// # Errors
    /// [`AuthError::InsufficientScope`] (audited), [`AuthError::Sqlite`].
    pub fn revoke_other_sessions(
        &self,
        principal: &Principal,
        req: RequestInfo<'_>,
    ) -> Result<usize, AuthError> {
        self.require(principal, Scope::Admin, req)?;
        let keep = principal.session_id();
        let actor = principal.actor();
        self.store.transaction(|tx| {
            let revoked = sessions::delete_all_but(tx, principal.admin_id, keep)?;
            let after = json!({ "sessions_revoked": revoked });
            let entry = Self::entry(actor, action::SESSION_REVOKE, None, after, Outcome::Ok, req);
            audit::append(tx, &entry)?;
            Ok(revoked)
        })
    }

    /// Every API token, newest first (`admin` scope).
    ///
    /// # Errors
    /// [`AuthError::InsufficientScope`] (audited), [`AuthError::Sqlite`].
    pub fn tokens(
        &self,
        principal: &Principal,
        req: RequestInfo<'_>,
    ) -> Result<Vec<TokenInfo>, AuthError> {
        self.require(principal, Scope::Admin, req)?;
        self.store.with(|c| Ok(tokens::list(c)?))
    }

    /// Creates an API token; its text is in the answer only (`admin` scope, a session, a
    /// recent step-up: no token can mint a token).
    ///
    /// # Errors
    /// [`AuthError::InsufficientScope`] and [`AuthError::SessionRequired`] (audited),
    /// [`AuthError::StepUpRequired`], [`AuthError::InvalidRequest`] for the name,
    /// [`AuthError::LimitReached`] at `API_TOKENS_MAX`.
    pub fn create_token(
        &self,
        principal: &Principal,
        name: &str,
        scope: Scope,
        req: RequestInfo<'_>,
    ) -> Result<NewToken, AuthError> {
        self.require(principal, Scope::Admin, req)?;
        self.require_step_up(principal, req)?;
        self.insert_token(principal.admin_id, principal.actor(), name, scope, req)
    }

    /// Revokes an API token (`admin` scope); it fails on its next request.
    ///
    /// # Errors
    /// [`AuthError::InsufficientScope`] (audited), [`AuthError::NotFound`], [`AuthError::Sqlite`].
    pub fn revoke_token(
        &self,
        principal: &Principal,
        token_id: i64,
        req: RequestInfo<'_>,
    ) -> Result<(), AuthError> {
        self.require(principal, Scope::Admin, req)?;
        self.delete_token(principal.actor(), token_id, req)
    }

    /// Starts a TOTP re-enrolment: a new secret, pending until [`Auth::confirm_totp`]; the
    /// current one keeps working meanwhile (a session and a recent step-up).
    ///
    /// # Errors
    /// [`AuthError::SessionRequired`] (audited), [`AuthError::StepUpRequired`],
    /// [`AuthError::Sqlite`].
    pub fn enroll_totp(
        &self,
        principal: &Principal,
        req: RequestInfo<'_>,
    ) -> Result<TotpEnrollment, AuthError> {
        self.require_step_up(principal, req)?;
        let secret = TotpSecret::generate()?;
        let enrollment = secret.enrollment(&self.config.totp_issuer, principal.username())?;
        let target = Some(format!("admin:{}", principal.username()));
        let entry = Self::entry(
            principal.actor(),
            action::TOTP_ENROLL,
            target,
            json!({}),
            Outcome::Ok,
            req,
        );
        self.store.transaction(|tx| {
            store::set_pending_totp(tx, principal.admin_id, &secret, req.now_unix_s)?;
            Ok(audit::append(tx, &entry)?)
        })?;
        Ok(enrollment)
    }

    /// Confirms the pending secret with one of its codes: it replaces the old secret, the
    /// recovery codes are replaced, and every other session of the admin is revoked (a
    /// session and a recent step-up).
    ///
    /// # Errors
    /// [`AuthError::SessionRequired`] (audited), [`AuthError::StepUpRequired`],
    /// [`AuthError::NoPendingEnrollment`], [`AuthError::LockedOut`], [`AuthError::InvalidTotp`]
    /// (audited, counted).
    pub fn confirm_totp(
        &self,
        principal: &Principal,
        code: &str,
        req: RequestInfo<'_>,
    ) -> Result<RecoveryCodes, AuthError> {
        self.require_step_up(principal, req)?;
        let name = Some(principal.username());
        self.check_lockout(name, req)?;
        let admin = self.admin_of(principal)?;
        let pending = admin.totp_pending.ok_or(AuthError::NoPendingEnrollment)?;
        let step = totp::verify(&pending, code, req.now_unix_s, None).map_err(|error| {
            let actor = principal.actor();
            self.credential_failure(actor, action::TOTP_CONFIRM, name, "totp", error, req)
        })?;
        let (codes, hashes) = recovery::generate()?;
        let now = req.now_unix_s;
        self.store.transaction(|tx| {
            store::replace_totp(tx, admin.id, &pending, Some(step), now)?;
            recovery::replace(tx, admin.id, &hashes)?;
            let revoked = sessions::delete_all_but(tx, admin.id, principal.session_id())?;
            let target = Some(format!("admin:{}", admin.username));
            let after = json!({ "sessions_revoked": revoked, "recovery_codes": hashes.len() });
            let entry = Self::entry(
                principal.actor(),
                action::TOTP_CONFIRM,
                target,
                after,
                Outcome::Ok,
                req,
            );
            Ok(audit::append(tx, &entry)?)
        })?;
        Ok(codes)
    }

    /// Replaces the admin's recovery codes with a new set (a session and a recent step-up).
    ///
    /// # Errors
    /// [`AuthError::SessionRequired`] (audited), [`AuthError::StepUpRequired`],
    /// [`AuthError::Sqlite`].
    pub fn regenerate_recovery_codes(
        &self,
        principal: &Principal,
        req: RequestInfo<'_>,
    ) -> Result<RecoveryCodes, AuthError> {
        self.require_step_up(principal, req)?;
        let (codes, hashes) = recovery::generate()?;
        let target = Some(format!("admin:{}", principal.username()));
        let after = json!({ "recovery_codes": hashes.len() });
        let entry = Self::entry(
            principal.actor(),
            action::RECOVERY_REGENERATE,
            target,
            after,
            Outcome::Ok,
            req,
        );
        self.store.transaction(|tx| {
            recovery::replace(tx, principal.admin_id, &hashes)?;
            Ok(audit::append(tx, &entry)?)
        })?;
        Ok(codes)
    }

    /// Unused recovery codes of `principal`'s admin (`admin` scope).
    ///
    /// # Errors
    /// [`AuthError::InsufficientScope`] (audited), [`AuthError::Sqlite`].
    pub fn recovery_codes_left(
        &self,
        principal: &Principal,
        req: RequestInfo<'_>,
    ) -> Result<usize, AuthError> {
        self.require(principal, Scope::Admin, req)?;
        self.store
            .with(|c| Ok(recovery::unused(c, principal.admin_id)?))
    }

    /// A page of the audit log, newest first, older than `cursor` (`admin` scope); `limit` is
    /// clamped to `1..=AUDIT_PAGE_MAX`.
    ///
    /// # Errors
    /// [`AuthError::InsufficientScope`] (audited), [`AuthError::Sqlite`].
    pub fn audit_log(
        &self,
        principal: &Principal,
        cursor: Option<i64>,
        limit: usize,
        req: RequestInfo<'_>,
    ) -> Result<AuditPage, AuthError> {
        self.require(principal, Scope::Admin, req)?;
        self.store.with(|c| Ok(audit::page(c, cursor, limit)?))
    }

    fn admin_of(&self, principal: &Principal) -> Result<AdminRow, AuthError> {
        self.store
            .with(|c| Ok(store::admin_by_id(c, principal.admin_id)?))?
            .ok_or(AuthError::Unauthenticated)
    }

    /// Creates a token for `admin_id` and audits it as by `actor` (the caller checked who
    /// may).
    pub(super) fn insert_token(
        &self,
        admin_id: i64,
        actor: String,
        name: &str,
        scope: Scope,
        req: RequestInfo<'_>,
    ) -> Result<NewToken, AuthError> {
        tokens::check_name(name)?;
        let generated = tokens::generate()?;
        let now = req.now_unix_s;
        let info = self.store.transaction(|tx| {
            let id = tokens::insert(tx, admin_id, name, scope, &generated, now, API_TOKENS_MAX)?;
            let target = Some(format!("token:{id}"));
            let after = json!({ "name": name.trim(), "scope": scope.as_str() });
            let entry = Self::entry(actor, action::TOKEN_CREATE, target, after, Outcome::Ok, req);
            audit::append(tx, &entry)?;
            tokens::by_id(tx, id)?.ok_or(AuthError::NotFound { what: "token" })
        })?;
        Ok(NewToken {
            info,
            text: generated.text,
        })
    }

    /// Deletes token `token_id` and audits it as by `actor` (the caller checked who may).
    pub(super) fn delete_token(
        &self,
        actor: String,
        token_id: i64,
        req: RequestInfo<'_>,
    ) -> Result<(), AuthError> {
        self.store.transaction(|tx| {
            let info = tokens::by_id(tx, token_id)?.ok_or(AuthError::NotFound { what: "token" })?;
            tokens::delete(tx, token_id)?;
            let target = Some(format!("token:{token_id}"));
            let before = json!({ "name": info.name, "scope": info.scope.as_str() });
            let mut entry = Self::entry(
                actor,
                action::TOKEN_REVOKE,
                target,
                json!({}),
                Outcome::Ok,
                req,
            );
            entry.before = Some(before);
            entry.after = None;
            Ok(audit::append(tx, &entry)?)
        })
    }
}
