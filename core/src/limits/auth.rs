//! Admin authentication (`warppool-control::auth`): passwords, TOTP, sessions, API tokens,
//! recovery codes, the login rate limit, the Host check and the audit log. Re-exported by
//! [`crate::limits`]; `docs/limits.md` lists them with the others.

/// Longest admin username, in bytes (ASCII letters, digits, `.`, `_`, `-`; lower-cased).
pub const ADMIN_USERNAME_BYTES_MAX: usize = 64;

/// Shortest admin password, in characters. TOTP is mandatory, so the password is one of two
/// factors; NIST SP 800-63B asks for at least 8, and 12 keeps a guessing attack far beyond the
/// login rate limit.
pub const ADMIN_PASSWORD_CHARS_MIN: usize = 12;

/// Longest admin password, in bytes: bounds the work one login request can ask of argon2.
pub const ADMIN_PASSWORD_BYTES_MAX: usize = 1024;

/// Argon2id memory cost, in KiB (OWASP's first recommended setting: 19 MiB, 2 passes, 1 lane).
/// Every password check in flight holds this much memory; callers run them on a bounded pool
/// of blocking threads (the API's query threads), which bounds the total.
pub const ARGON2_MEMORY_KIB: u32 = 19 * 1024;

/// Argon2id passes over the memory (the `t` cost).
pub const ARGON2_ITERATIONS: u32 = 2;

/// Argon2id lanes (the `p` cost).
pub const ARGON2_PARALLELISM: u32 = 1;

/// TOTP time step, in seconds (RFC 6238's default; what every authenticator app uses).
pub const TOTP_STEP_SECS: u64 = 30;

/// Digits of a TOTP code (RFC 6238 with HMAC-SHA-1, as authenticator apps expect).
pub const TOTP_DIGITS: u8 = 6;

/// Steps accepted before and after the current one (RFC 6238 §5.2 recommends one), for clock
/// drift and typing time.
pub const TOTP_SKEW_STEPS: u16 = 1;

/// Size of a TOTP secret, in bytes (RFC 4226 §4 recommends 160 bits).
pub const TOTP_SECRET_BYTES: usize = 20;

/// How long the ticket between the password step and the TOTP step of a login is valid, in
/// seconds. It is single use: a wrong code ends it too.
pub const MFA_TICKET_SECS: u64 = 300;

/// Login tickets held at once (each needs a correct password); past it the oldest is dropped.
pub const MFA_TICKETS_MAX: usize = 64;

/// Size of a session id (the cookie's secret), in bytes; stored as its SHA-256.
pub const SESSION_ID_BYTES: usize = 32;

/// A session unused this long ends, in seconds (30 minutes).
pub const SESSION_IDLE_SECS: u64 = 30 * 60;

/// A session ends this long after its login whatever its use, in seconds (12 hours).
pub const SESSION_LIFETIME_SECS: u64 = 12 * 60 * 60;

/// Sessions one admin may hold; a new login past it ends the least recently used one.
pub const SESSIONS_PER_ADMIN_MAX: usize = 16;

/// Smallest change of a session's "last seen" or a token's "last used" that is written, in
/// seconds: at most one write per session or token per interval, whatever the request rate.
/// The idle timeout is exact to within this.
pub const AUTH_TOUCH_SECS: u64 = 60;

/// How long a step-up (TOTP asked again) allows sensitive changes, in seconds. A login counts
/// as one.
pub const STEP_UP_WINDOW_SECS: u64 = 5 * 60;

/// Size of an API token's secret, in bytes; stored as its SHA-256, shown once.
pub const API_TOKEN_BYTES: usize = 32;

/// API tokens that may exist at once (all admins together).
pub const API_TOKENS_MAX: usize = 64;

/// Longest API token name, in bytes.
pub const API_TOKEN_NAME_BYTES_MAX: usize = 64;

/// Recovery codes issued at enrolment (each usable once).
pub const RECOVERY_CODES_COUNT: usize = 10;

/// Characters of a recovery code (base32: 5 bits each, 60 bits in all), shown in groups of 4.
pub const RECOVERY_CODE_CHARS: usize = 12;

/// Size of the first-run setup token printed in the log, in bytes.
pub const SETUP_TOKEN_BYTES: usize = 32;

/// Failed logins from one address (IPv6: one /64) or for one username before a lockout
/// (UI.md §8.3: "5 failures → backoff").
pub const LOGIN_FAILURES_FREE: u32 = 5;

/// First lockout, in seconds; each further failure doubles it.
pub const LOGIN_LOCKOUT_SECS_MIN: u64 = 30;

/// Longest lockout, in seconds (one hour).
pub const LOGIN_LOCKOUT_SECS_MAX: u64 = 60 * 60;

/// Failures are forgotten after this long without a new one, in seconds (one day).
pub const LOGIN_FAILURES_FORGET_SECS: u64 = 24 * 60 * 60;

/// Addresses, and separately usernames, the login limiter remembers; past it the one whose
/// last failure is oldest is forgotten. Bounds its memory whatever an attacker sends.
pub const LOGIN_LIMITER_ENTRIES_MAX: usize = 4096;

/// Longest user agent kept with a session, in bytes (longer ones are cut).
pub const AUTH_USER_AGENT_BYTES_MAX: usize = 256;

/// Longest `Host` header checked, in bytes: a 253-byte DNS name, `:` and a 5-digit port.
pub const HOST_HEADER_BYTES_MAX: usize = 253 + 6;

/// Host names an operator may allow besides loopback and the bind address.
pub const ALLOWED_HOSTS_MAX: usize = 32;

/// Most audit rows one read returns.
pub const AUDIT_PAGE_MAX: usize = 200;

/// Longest `before` or `after` value of one audit row, in bytes of JSON; a longer one is
/// stored as a note of its size.
pub const AUDIT_VALUE_BYTES_MAX: usize = 4096;

const _: () = assert!(ADMIN_PASSWORD_CHARS_MIN >= 8);
const _: () = assert!(ADMIN_PASSWORD_CHARS_MIN <= ADMIN_PASSWORD_BYTES_MAX);
const _: () = assert!(ARGON2_MEMORY_KIB >= 8 * ARGON2_PARALLELISM);
const _: () = assert!(ARGON2_ITERATIONS >= 1 && ARGON2_PARALLELISM >= 1);
const _: () = assert!(TOTP_DIGITS >= 6 && TOTP_DIGITS <= 8);
const _: () = assert!(TOTP_SECRET_BYTES >= 16);
const _: () = assert!(TOTP_STEP_SECS > 0);
// A login ticket outlives a whole TOTP window, so a code read at its end still finds it.
const _: () = assert!(MFA_TICKET_SECS > (2 * TOTP_SKEW_STEPS as u64 + 1) * TOTP_STEP_SECS);
const _: () = assert!(SESSION_ID_BYTES >= 16 && API_TOKEN_BYTES >= 16);
const _: () = assert!(SESSION_IDLE_SECS <= SESSION_LIFETIME_SECS);
const _: () = assert!(AUTH_TOUCH_SECS < SESSION_IDLE_SECS);
const _: () = assert!(STEP_UP_WINDOW_SECS <= SESSION_IDLE_SECS);
const _: () = assert!(SESSIONS_PER_ADMIN_MAX >= 1 && MFA_TICKETS_MAX >= 1);
const _: () = assert!(RECOVERY_CODES_COUNT >= 1 && RECOVERY_CODE_CHARS.is_multiple_of(4));
const _: () = assert!(LOGIN_LOCKOUT_SECS_MIN > 0);
const _: () = assert!(LOGIN_LOCKOUT_SECS_MIN <= LOGIN_LOCKOUT_SECS_MAX);
const _: () = assert!(LOGIN_LOCKOUT_SECS_MAX <= LOGIN_FAILURES_FORGET_SECS);
const _: () = assert!(LOGIN_LIMITER_ENTRIES_MAX >= 1 && ALLOWED_HOSTS_MAX >= 1);
const _: () = assert!(AUDIT_PAGE_MAX >= 1 && AUDIT_VALUE_BYTES_MAX >= 64);
