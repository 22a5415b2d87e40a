//! Why an auth operation was refused, with the HTTP status and the stable machine code the
//! API answers with (the UI translates the code; the message is for logs and the CLI).

use std::path::PathBuf;

use super::tokens::Scope;

/// Why an auth operation was refused or failed. Each variant documents the HTTP status the
/// API answers with ([`AuthError::status`]) and its stable code ([`AuthError::code`]). A
/// refusal changes nothing, except that a failed credential counts towards a lockout.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum AuthError {
    /// A field is malformed or out of its bounds (a username with a `:`, a token name too
    /// long). 400 `auth.invalid_request`.
    #[error("invalid {field}: {problem}")]
    InvalidRequest {
        /// The field.
        field: &'static str,
        /// What is wrong with it.
        problem: String,
    },
    /// A new password is shorter than `ADMIN_PASSWORD_CHARS_MIN` or longer than
    /// `ADMIN_PASSWORD_BYTES_MAX`. 400 `auth.weak_password`.
    #[error("a password needs at least {min} characters and at most {max_bytes} bytes")]
    WeakPassword {
        /// Fewest characters.
        min: usize,
        /// Most bytes.
        max_bytes: usize,
    },
    /// Unknown username or wrong password (the two are not told apart). 401
    /// `auth.invalid_credentials`.
    #[error("wrong username or password")]
    InvalidCredentials,
    /// The TOTP code is not valid within ±`TOTP_SKEW_STEPS` steps. 401 `auth.invalid_totp`.
    #[error("wrong TOTP code")]
    InvalidTotp,
    /// The TOTP code is valid but its step was already used (RFC 6238 §5.2): wait for the
    /// next code. 401 `auth.totp_replayed`.
    #[error("this TOTP code was already used; wait for the next one")]
    TotpReplayed,
    /// The recovery code is unknown or already used. 401 `auth.invalid_recovery_code`.
    #[error("wrong or used recovery code")]
    InvalidRecoveryCode,
    /// The login (or setup) ticket is unknown, used or older than `MFA_TICKET_SECS`: start
    /// again with the password. 401 `auth.ticket_expired`.
    #[error("the login ticket is unknown, used or expired; sign in again")]
    TicketInvalid,
    /// No valid session cookie or API token. 401 `auth.unauthenticated`.
    #[error("not signed in")]
    Unauthenticated,
    /// The session passed its idle timeout or its absolute lifetime (it is deleted). 401
    /// `auth.session_expired`.
    #[error("the session has expired; sign in again")]
    SessionExpired,
    /// The CSRF header is missing or does not match the session's token. 403 `auth.csrf`.
    #[error("missing or wrong CSRF token")]
    CsrfMismatch,
    /// The token's scope does not include the one the operation needs. 403 `auth.scope`.
    #[error("this needs the `{}` scope; the token has `{}`", required.as_str(), have.as_str())]
    InsufficientScope {
        /// What the operation needs.
        required: Scope,
        /// What the caller has.
        have: Scope,
    },
    /// The operation needs a signed-in session (step-up, TOTP and token management), not an
    /// API token. 403 `auth.session_required`.
    #[error("this needs a signed-in session, not an API token")]
    SessionRequired,
    /// The operation is sensitive and the session's last TOTP check is older than
    /// `STEP_UP_WINDOW_SECS`: ask for a code and call `Auth::step_up`. 403
    /// `auth.step_up_required`.
    #[error("confirm with a TOTP code first")]
    StepUpRequired,
    /// First-run setup from a non-loopback peer without the right setup token. 403
    /// `auth.setup_forbidden`.
    #[error("first-run setup is allowed from loopback or with the setup token from the log")]
    SetupForbidden,
    /// The `Host` header names neither a loopback name or address, the bind address nor a
    /// configured name (DNS rebinding). 421 `auth.host_not_allowed`.
    #[error("host {host:?} is not allowed")]
    HostNotAllowed {
        /// The header as received (cut to `HOST_HEADER_BYTES_MAX`).
        host: String,
    },
    /// The session or token to revoke does not exist (or belongs to another admin). 404
    /// `auth.not_found`.
    #[error("{what} not found")]
    NotFound {
        /// What was looked up.
        what: &'static str,
    },
    /// Setup was asked for but an admin exists. 409 `auth.already_set_up`.
    #[error("an admin already exists")]
    AlreadySetUp,
    /// The username is taken. 409 `auth.username_taken`.
    #[error("username {0:?} is taken")]
    UsernameTaken(String),
    /// `confirm_totp` without an `enroll_totp` first. 409 `auth.no_pending_enrollment`.
    #[error("no TOTP enrolment is waiting for confirmation")]
    NoPendingEnrollment,
    /// A count limit is reached (`API_TOKENS_MAX`). 409 `auth.limit_reached`.
    #[error("at most {max} {what}")]
    LimitReached {
        /// What is counted.
        what: &'static str,
        /// The limit.
        max: usize,
    },
    /// Too many failures from this address or for this username: retry after the given
    /// seconds (the UI counts down). 429 `auth.locked_out`, with `Retry-After`.
    #[error("too many failed attempts; retry in {retry_after_secs} s")]
    LockedOut {
        /// Seconds until the lockout ends.
        retry_after_secs: u64,
    },
    /// The database file (or its `-wal`/`-shm` file) is open to group or others while it
    /// holds admin secrets. Only at start. 500 `auth.internal`.
    #[error(
        "{} is open to group or others (mode {mode:04o}) and holds admin secrets; \
         run `chmod 600 {}`", path.display(), path.display()
    )]
    Permissions {
        /// The file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// SQLite failed. 500 `auth.internal` (the detail is logged, not sent).
    #[error("auth storage: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database could not be migrated or is from a newer build. 500 `auth.internal`.
    #[error("auth storage: {0}")]
    Storage(#[from] crate::storage::StorageError),
    /// The OS random generator or the password hasher failed. 500 `auth.internal`.
    #[error("auth: {0}")]
    Internal(String),
}

impl AuthError {
    /// The HTTP status the API answers with.
    pub fn status(&self) -> u16 {
        match self {
            Self::InvalidRequest { .. } | Self::WeakPassword { .. } => 400,
            Self::InvalidCredentials
            | Self::InvalidTotp
            | Self::TotpReplayed
            | Self::InvalidRecoveryCode
            | Self::TicketInvalid
            | Self::Unauthenticated
            | Self::SessionExpired => 401,
            Self::CsrfMismatch
            | Self::InsufficientScope { .. }
            | Self::SessionRequired
            | Self::StepUpRequired
            | Self::SetupForbidden => 403,
            Self::NotFound { .. } => 404,
            Self::AlreadySetUp
            | Self::UsernameTaken(_)
            | Self::NoPendingEnrollment
            | Self::LimitReached { .. } => 409,
            Self::HostNotAllowed { .. } => 421,
            Self::LockedOut { .. } => 429,
            Self::Permissions { .. } | Self::Sqlite(_) | Self::Storage(_) | Self::Internal(_) => {
                500
            }
        }
    }

    /// The stable machine code (`auth.*`) the UI translates.
    pub fn code(&self) -> &'static str {
        match self {
            Self::InvalidRequest { .. } => "auth.invalid_request",
            Self::WeakPassword { .. } => "auth.weak_password",
            Self::InvalidCredentials => "auth.invalid_credentials",
            Self::InvalidTotp => "auth.invalid_totp",
            Self::TotpReplayed => "auth.totp_replayed",
            Self::InvalidRecoveryCode => "auth.invalid_recovery_code",
            Self::TicketInvalid => "auth.ticket_expired",
            Self::Unauthenticated => "auth.unauthenticated",
            Self::SessionExpired => "auth.session_expired",
            Self::CsrfMismatch => "auth.csrf",
            Self::InsufficientScope { .. } => "auth.scope",
            Self::SessionRequired => "auth.session_required",
            Self::StepUpRequired => "auth.step_up_required",
            Self::SetupForbidden => "auth.setup_forbidden",
            Self::HostNotAllowed { .. } => "auth.host_not_allowed",
            Self::NotFound { .. } => "auth.not_found",
            Self::AlreadySetUp => "auth.already_set_up",
            Self::UsernameTaken(_) => "auth.username_taken",
            Self::NoPendingEnrollment => "auth.no_pending_enrollment",
            Self::LimitReached { .. } => "auth.limit_reached",
            Self::LockedOut { .. } => "auth.locked_out",
            Self::Permissions { .. } | Self::Sqlite(_) | Self::Storage(_) | Self::Internal(_) => {
                "auth.internal"
            }
        }
    }

    /// The `Retry-After` seconds of a [`AuthError::LockedOut`].
    pub fn retry_after_secs(&self) -> Option<u64> {
        match self {
            Self::LockedOut { retry_after_secs } => Some(*retry_after_secs),
            _ => None,
        }
    }

    /// Whether the client may see the message: false for the 500s, whose detail stays in
    /// the log (the client gets the code only).
    pub fn is_client_error(&self) -> bool {
        self.status() < 500
    }
}
