//! First-run setup: the first admin is created only while none exists, only from a loopback
//! peer (unless `AuthConfig::setup_trusts_loopback` is off) or with the setup token made at
//! start, and only once a code of the new TOTP secret is confirmed, so no admin ever exists
//! without working TOTP.
//!
//! The setup token lives in memory only ([`SETUP_TOKEN_BYTES`] random bytes as hex), is made
//! by `Auth::open` when no admin exists, and is dropped when setup finishes: the caller prints
//! it in the log at start (it is the one secret that is logged, on purpose, for the operator
//! of a headless machine). One setup is pending at a time; a new `begin_setup` replaces it.

use std::fmt;
use std::net::IpAddr;

use serde_json::json;
use warppool_core::limits::{MFA_TICKET_SECS, SETUP_TOKEN_BYTES};

use super::secret::{SecretText, ct_eq, hex, later, random, sha256, unhex};
use super::totp::{TotpEnrollment, TotpSecret};
use super::{
    Auth, AuthError, NewSession, Outcome, RecoveryCodes, RequestInfo, action, lock, password,
    recovery, store, totp,
};

/// What the setup form sends.
#[derive(Clone, Copy)]
pub struct SetupRequest<'a> {
    /// The new admin's username.
    pub username: &'a str,
    /// The new admin's password.
    pub password: &'a str,
    /// The setup token from the log, if the peer is not loopback.
    pub setup_token: Option<&'a str>,
}

impl fmt::Debug for SetupRequest<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SetupRequest")
            .field("username", &self.username)
            .field("password", &"<redacted>")
            .field("setup_token", &self.setup_token.map(|_| "<redacted>"))
            .finish()
    }
}

/// The first step's answer: the secret to enrol and the ticket that confirms it.
#[derive(Debug, Clone)]
pub struct SetupEnrollment {
    /// Presented with the first code to [`Auth::finish_setup`].
    pub ticket: SecretText,
    /// When the ticket stops being accepted, Unix seconds.
    pub expires_unix_s: i64,
    /// QR / manual key for the authenticator app.
    pub totp: TotpEnrollment,
}

/// The last step's answer: the admin exists and is signed in.
#[derive(Debug, Clone)]
pub struct SetupDone {
    /// Show them once and require "I saved them" (UI.md §8.3).
    pub recovery_codes: RecoveryCodes,
    /// The new admin's session.
    pub session: NewSession,
}

/// A setup between its two steps.
struct Pending {
    ticket_hash: [u8; 32],
    username: String,
    password_hash: String,
    secret: TotpSecret,
    expires_unix_s: i64,
}

/// The setup token and the pending setup.
pub(crate) struct SetupState {
    token: Option<[u8; SETUP_TOKEN_BYTES]>,
    pending: Option<Pending>,
}

impl fmt::Debug for SetupState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SetupState")
            .field("token", &self.token.map(|_| "<redacted>"))
            .field("pending", &self.pending.as_ref().map(|p| &p.username))
            .finish()
    }
}

impl SetupState {
    /// Ends first-run setup: the token and any pending setup are dropped.
    pub(crate) fn close(&mut self) {
        self.token = None;
        self.pending = None;
    }

    /// With a fresh token if `open` (no admin exists).
    pub(crate) fn new(open: bool) -> Result<Self, AuthError> {
        let token = if open { Some(random()?) } else { None };
        Ok(Self {
            token,
            pending: None,
        })
    }
}

impl Auth {
    /// The setup token to print in the log at start, while no admin exists (`None` after).
    pub fn setup_token(&self) -> Option<SecretText> {
        lock(&self.setup).token.map(|t| SecretText::new(hex(&t)))
    }

    /// Whether no admin exists yet (the UI then redirects to setup).
    ///
    /// # Errors
    /// [`AuthError::Sqlite`].
    pub fn needs_setup(&self) -> Result<bool, AuthError> {
        Ok(!self.store.with(|c| Ok(store::admin_exists(c)?))?)
    }

    /// The first step: checks who may set up, the username and the password, and returns a
    /// new TOTP secret to enrol. Nothing is written yet.
    ///
    /// # Errors
    /// [`AuthError::AlreadySetUp`] or [`AuthError::SetupForbidden`] (audited, counted against
    /// the address), [`AuthError::LockedOut`], [`AuthError::InvalidRequest`],
    /// [`AuthError::WeakPassword`].
    pub fn begin_setup(
        &self,
        request: SetupRequest<'_>,
        req: RequestInfo<'_>,
    ) -> Result<SetupEnrollment, AuthError> {
        self.check_lockout(None, req)?;
        self.check_setup_allowed(request.setup_token, req)?;
        let username = password::normalize_username(request.username)?;
        let password_hash = password::hash_password(request.password)?;
        let secret = TotpSecret::generate()?;
        let enrollment = secret.enrollment(&self.config.totp_issuer, &username)?;
        let ticket = random::<32>()?;
        let expires_unix_s = later(req.now_unix_s, MFA_TICKET_SECS);
        lock(&self.setup).pending = Some(Pending {
            ticket_hash: sha256(&ticket),
            username,
            password_hash,
            secret,
            expires_unix_s,
        });
        Ok(SetupEnrollment {
            ticket: SecretText::new(hex(&ticket)),
            expires_unix_s,
            totp: enrollment,
        })
    }

    /// The last step: with a code of the new secret, writes the admin, its recovery codes and
    /// a session in one transaction. A wrong code keeps the setup pending (the QR code need
    /// not be scanned again) and counts against the address.
    ///
    /// # Errors
    /// [`AuthError::TicketInvalid`], [`AuthError::LockedOut`], [`AuthError::InvalidTotp`]
    /// (audited, counted), [`AuthError::AlreadySetUp`] if an admin appeared meanwhile.
    pub fn finish_setup(
        &self,
        ticket: &str,
        code: &str,
        req: RequestInfo<'_>,
    ) -> Result<SetupDone, AuthError> {
        self.check_lockout(None, req)?;
        let pending = self.take_pending(ticket, req.now_unix_s)?;
        let step = match totp::verify(&pending.secret, code, req.now_unix_s, None) {
            Ok(step) => step,
            Err(error) => {
                lock(&self.setup).pending.get_or_insert(pending);
                let actor = "anonymous".to_owned();
                let reason = "totp";
                return Err(self.credential_failure(
                    actor,
                    action::SETUP,
                    None,
                    reason,
                    error,
                    req,
                ));
            }
        };
        let (codes, hashes) = recovery::generate()?;
        let now = req.now_unix_s;
        let admin_id = self.store.transaction(|tx| {
            if store::admin_exists(tx)? {
                return Err(AuthError::AlreadySetUp);
            }
            let (name, hash) = (&pending.username, &pending.password_hash);
            let id = store::insert_admin(tx, name, hash, &pending.secret, Some(step), now)?;
            recovery::replace(tx, id, &hashes)?;
            Ok(id)
        })?;
        lock(&self.setup).close();
        let actor = format!("admin:{}", pending.username);
        let after = json!({ "username": pending.username, "recovery_codes": hashes.len() });
        let session = self.insert_session(admin_id, actor, action::SETUP, after, req)?;
        Ok(SetupDone {
            recovery_codes: codes,
            session,
        })
    }

    /// Refuses setup once an admin exists, and from a peer that is neither trusted loopback
    /// nor holding the setup token; both refusals are audited and counted.
    fn check_setup_allowed(
        &self,
        presented: Option<&str>,
        req: RequestInfo<'_>,
    ) -> Result<(), AuthError> {
        let (reason, error) = if !self.needs_setup()? {
            ("admin_exists", AuthError::AlreadySetUp)
        } else if self.setup_gate_open(presented, req.ip) {
            return Ok(());
        } else if presented.is_some() {
            ("wrong_setup_token", AuthError::SetupForbidden)
        } else {
            ("not_loopback", AuthError::SetupForbidden)
        };
        let lockout = self.limiter().record_failure(req.ip, None, req.now_unix_s);
        let why = json!({ "reason": reason });
        let entry = Self::entry(
            "anonymous".to_owned(),
            action::SETUP,
            None,
            why,
            Outcome::Denied,
            req,
        );
        self.audit_best_effort(&entry);
        match lockout {
            Some(retry_after_secs) => Err(AuthError::LockedOut { retry_after_secs }),
            None => Err(error),
        }
    }

    fn setup_gate_open(&self, presented: Option<&str>, ip: IpAddr) -> bool {
        if self.config.setup_trusts_loopback && ip.to_canonical().is_loopback() {
            return true;
        }
        let token = lock(&self.setup).token;
        match (
            token,
            presented.and_then(|p| unhex::<SETUP_TOKEN_BYTES>(p.trim())),
        ) {
            (Some(token), Some(presented)) => ct_eq(&token, &presented),
            _ => false,
        }
    }

    fn take_pending(&self, ticket: &str, now: i64) -> Result<Pending, AuthError> {
        let presented = unhex::<32>(ticket.trim()).ok_or(AuthError::TicketInvalid)?;
        let mut state = lock(&self.setup);
        let matches = state
            .pending
            .as_ref()
            .is_some_and(|p| ct_eq(&p.ticket_hash, &sha256(&presented)) && p.expires_unix_s > now);
        if !matches {
            return Err(AuthError::TicketInvalid);
        }
        state.pending.take().ok_or(AuthError::TicketInvalid)
    }
}
