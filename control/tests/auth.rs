//! Admin auth on a real SQLite file in a temporary directory; time is passed in.

use std::net::{IpAddr, Ipv4Addr};

use warppool_control::auth::{
    Auth, AuthConfig, AuthError, NewSession, Outcome, Principal, RequestInfo, SetupRequest,
    TotpSecret, action, lockout_secs, verify_totp,
};
use warppool_core::limits::{LOGIN_LOCKOUT_SECS_MAX, LOGIN_LOCKOUT_SECS_MIN};

#[path = "support/temp_dir.rs"]
mod temp_dir;
use temp_dir::TempDir;

// More tests, in one binary with these helpers (files under 800 lines).
#[path = "auth/admin.rs"]
mod admin;
#[path = "auth/secrets.rs"]
mod secrets;
#[path = "auth/sessions.rs"]
mod sessions;

/// A Unix time in 2027, on a TOTP step boundary (a multiple of 30).
const T0: i64 = 1_800_000_000;
const PASSWORD: &str = "correct horse battery";
const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);
const REMOTE: IpAddr = IpAddr::V4(Ipv4Addr::new(203, 0, 113, 7));

fn open(dir: &TempDir) -> Auth {
    Auth::open(AuthConfig::new(dir.db())).unwrap()
}

fn at(ip: IpAddr, now: i64) -> RequestInfo<'static> {
    RequestInfo::new(ip, now).with_user_agent("Mozilla/5.0 (test)")
}

fn secret_of(base32: &str) -> TotpSecret {
    TotpSecret::from_base32(base32).unwrap()
}

/// Creates `alice` from loopback at `T0`; returns her TOTP secret, session and recovery codes.
fn set_up(auth: &Auth) -> (TotpSecret, NewSession, Vec<String>) {
    let request = SetupRequest {
        username: "Alice",
        password: PASSWORD,
        setup_token: None,
    };
    let enrollment = auth.begin_setup(request, at(LOOPBACK, T0)).unwrap();
    let secret = secret_of(enrollment.totp.secret_base32.expose());
    let code = secret.code_at(T0 as u64);
    let done = auth
        .finish_setup(enrollment.ticket.expose(), &code, at(LOOPBACK, T0))
        .unwrap();
    let codes = done
        .recovery_codes
        .codes()
        .iter()
        .map(|c| c.expose().to_owned())
        .collect();
    (secret, done.session, codes)
}

/// A full login of `alice` at `now` (which must be a later TOTP step than any used before).
fn log_in(auth: &Auth, secret: &TotpSecret, ip: IpAddr, now: i64) -> NewSession {
    log_in_as(auth, "alice", secret, ip, now)
}

/// A full login of `username` (password [`PASSWORD`]) at `now`.
fn log_in_as(auth: &Auth, username: &str, secret: &TotpSecret, ip: IpAddr, now: i64) -> NewSession {
    let ticket = auth.login(username, PASSWORD, at(ip, now)).unwrap();
    let code = secret.code_at(now as u64);
    auth.complete_totp(ticket.ticket.expose(), &code, at(ip, now))
        .unwrap()
}

/// A 6-digit code valid at no step within ±1 of `now` (never right by chance).
fn wrong_code(secret: &TotpSecret, now: i64) -> String {
    (0..)
        .map(|n: u32| format!("{n:06}"))
        .find(|code| secret.matching_step(code, now).is_none())
        .unwrap()
}

fn principal(auth: &Auth, session: &NewSession, now: i64) -> Principal {
    auth.session(session.cookie_value.expose(), now).unwrap()
}

/// The audit rows as (action, outcome, reason of `after`), newest first.
fn audit_rows(auth: &Auth, who: &Principal, now: i64) -> Vec<(String, Outcome, String)> {
    let page = auth.audit_log(who, None, 200, at(LOOPBACK, now)).unwrap();
    page.records
        .into_iter()
        .map(|r| {
            let reason = r
                .after
                .as_ref()
                .and_then(|a| a.get("reason"))
                .map(|v| v.to_string());
            (r.action, r.outcome, reason.unwrap_or_default())
        })
        .collect()
}

#[test]
fn rfc6238_test_vectors_give_the_published_codes() {
    // RFC 6238 Appendix B, SHA-1 secret; the 6-digit codes are the last 6 of its 8 digits.
    let secret = TotpSecret::from_bytes(b"12345678901234567890").unwrap();
    for (t, code) in [
        (59, "287082"),
        (1_111_111_109, "081804"),
        (1_111_111_111, "050471"),
        (1_234_567_890, "005924"),
        (2_000_000_000, "279037"),
        (20_000_000_000, "353130"),
    ] {
        assert_eq!(secret.code_at(t), code, "T = {t}");
    }
}

#[test]
fn a_code_is_accepted_one_step_off_and_refused_two_steps_off() {
    // A fixed secret and time: the outcome is the same on every run.
    let secret = TotpSecret::from_bytes(b"12345678901234567890").unwrap();
    let now = T0 + 10;
    let step = (now / 30) as u64;
    for offset in [-1_i64, 0, 1] {
        let code = secret.code_at((now + 30 * offset) as u64);
        let matched = secret.matching_step(&code, now);
        assert_eq!(
            matched,
            Some(step.wrapping_add_signed(offset)),
            "offset {offset}"
        );
    }
    for offset in [-2_i64, 2] {
        let code = secret.code_at((now + 30 * offset) as u64);
        assert_eq!(secret.matching_step(&code, now), None, "offset {offset}");
        assert!(matches!(
            verify_totp(&secret, &code, now, None),
            Err(AuthError::InvalidTotp)
        ));
    }
    // The replay rule itself: the last accepted step and earlier ones are refused.
    let code = secret.code_at(now as u64);
    let replay = verify_totp(&secret, &code, now, Some(step));
    assert!(matches!(replay, Err(AuthError::TotpReplayed)), "{replay:?}");
    assert_eq!(
        verify_totp(&secret, &code, now, Some(step - 1)).unwrap(),
        step
    );
    assert_eq!(secret.matching_step("12345", now), None);
    assert_eq!(secret.matching_step("abcdef", now), None);
}

#[test]
fn a_replayed_totp_code_is_refused_at_login_and_at_step_up() {
    let dir = TempDir::new("auth-replay");
    let auth = open(&dir);
    let (secret, _, _) = set_up(&auth);
    let now = T0 + 60;
    log_in(&auth, &secret, REMOTE, now);
    // The same code again, within its validity: refused as a replay.
    let ticket = auth.login("alice", PASSWORD, at(REMOTE, now + 5)).unwrap();
    let code = secret.code_at(now as u64);
    let replay = auth.complete_totp(ticket.ticket.expose(), &code, at(REMOTE, now + 5));
    assert!(matches!(replay, Err(AuthError::TotpReplayed)), "{replay:?}");
    // An older step's code is refused too, and so is the login code at step-up.
    let session = log_in(&auth, &secret, REMOTE, now + 30);
    let who = principal(&auth, &session, now + 31);
    let old = secret.code_at((now + 30) as u64);
    let step_up = auth.step_up(&who, &old, at(REMOTE, now + 31));
    assert!(
        matches!(step_up, Err(AuthError::TotpReplayed)),
        "{step_up:?}"
    );
    let rows = audit_rows(&auth, &who, now + 32);
    assert!(rows.contains(&(
        action::LOGIN.into(),
        Outcome::Denied,
        "\"totp_replayed\"".into()
    )));
    assert!(rows.contains(&(
        action::STEP_UP.into(),
        Outcome::Denied,
        "\"totp_replayed\"".into()
    )));
}

#[test]
fn wrong_password_and_wrong_totp_are_refused_and_audited() {
    let dir = TempDir::new("auth-wrong");
    let auth = open(&dir);
    let (secret, session, _) = set_up(&auth);
    let now = T0 + 60;
    let wrong = auth.login("alice", "not the password!", at(REMOTE, now));
    assert!(matches!(wrong, Err(AuthError::InvalidCredentials)));
    let unknown = auth.login("mallory", PASSWORD, at(REMOTE, now));
    assert!(
        matches!(unknown, Err(AuthError::InvalidCredentials)),
        "same answer"
    );
    let ticket = auth.login("alice", PASSWORD, at(REMOTE, now)).unwrap();
    let code = wrong_code(&secret, now);
    let bad = auth.complete_totp(ticket.ticket.expose(), &code, at(REMOTE, now));
    assert!(matches!(bad, Err(AuthError::InvalidTotp)));
    // The ticket was used up by the failure.
    let good = secret.code_at(now as u64);
    let reuse = auth.complete_totp(ticket.ticket.expose(), &good, at(REMOTE, now));
    assert!(matches!(reuse, Err(AuthError::TicketInvalid)));
    let who = principal(&auth, &session, now);
    let rows = audit_rows(&auth, &who, now);
    let denied = |reason: &str| {
        (
            action::LOGIN.to_owned(),
            Outcome::Denied,
            format!("\"{reason}\""),
        )
    };
    assert_eq!(rows.iter().filter(|r| **r == denied("password")).count(), 2);
    assert_eq!(rows.iter().filter(|r| **r == denied("totp")).count(), 1);
    let page = auth.audit_log(&who, None, 10, at(LOOPBACK, now)).unwrap();
    let totp_row = &page.records[0];
    assert_eq!(totp_row.target.as_deref(), Some("admin:alice"));
    assert_eq!(totp_row.ip.as_deref(), Some("203.0.113.7"));
    assert_eq!(totp_row.actor, "anonymous");
}

#[test]
fn brute_force_locks_out_with_a_retry_after_that_grows() {
    let dir = TempDir::new("auth-lockout");
    let auth = open(&dir);
    set_up(&auth);
    let mut now = T0 + 60;
    for _ in 0..4 {
        let refused = auth.login("alice", "guess guess guess", at(REMOTE, now));
        assert!(matches!(refused, Err(AuthError::InvalidCredentials)));
    }
    let mut expected = LOGIN_LOCKOUT_SECS_MIN;
    for round in 0..3 {
        let refused = auth.login("alice", "guess guess guess", at(REMOTE, now));
        let error = refused.unwrap_err();
        assert_eq!(error.retry_after_secs(), Some(expected), "round {round}");
        assert_eq!((error.status(), error.code()), (429, "auth.locked_out"));
        // While locked, even the right password is refused, from another address too (the
        // username is locked), and the countdown runs.
        let right = auth.login("alice", PASSWORD, at(LOOPBACK, now + 10));
        assert_eq!(right.unwrap_err().retry_after_secs(), Some(expected - 10));
        now += expected as i64;
        expected *= 2;
    }
    assert_eq!(lockout_secs(4), 0);
    assert_eq!(lockout_secs(5), LOGIN_LOCKOUT_SECS_MIN);
    assert_eq!(lockout_secs(6), 2 * LOGIN_LOCKOUT_SECS_MIN);
    assert_eq!(lockout_secs(1000), LOGIN_LOCKOUT_SECS_MAX);
    // After the lockout, the right password works and clears the failures.
    let ticket = auth.login("alice", PASSWORD, at(REMOTE, now));
    assert!(ticket.is_ok(), "{ticket:?}");
}

#[test]
fn the_login_limiter_forgets_the_oldest_key_when_full() {
    use warppool_control::auth::LoginLimiter;
    let mut limiter = LoginLimiter::new(2);
    let ip = |n: u8| IpAddr::V4(Ipv4Addr::new(198, 51, 100, n));
    for _ in 0..5 {
        limiter.record_failure(ip(1), None, T0);
    }
    assert_eq!(limiter.check(ip(1), None, T0), Err(LOGIN_LOCKOUT_SECS_MIN));
    limiter.record_failure(ip(2), None, T0 + 1);
    limiter.record_failure(ip(3), None, T0 + 2);
    assert_eq!(limiter.len(), 2, "bounded");
    assert_eq!(
        limiter.check(ip(1), None, T0 + 3),
        Ok(()),
        "the oldest was forgotten"
    );
    // IPv6 addresses count by their /64.
    let a: IpAddr = "2001:db8:1:2::1".parse().unwrap();
    let b: IpAddr = "2001:db8:1:2:ffff::9".parse().unwrap();
    let mut limiter = LoginLimiter::new(8);
    for _ in 0..5 {
        limiter.record_failure(a, None, T0);
    }
    assert!(limiter.check(b, None, T0).is_err());
}

#[test]
fn a_login_ticket_is_single_use_and_expires() {
    let dir = TempDir::new("auth-ticket");
    let auth = open(&dir);
    let (secret, _, _) = set_up(&auth);
    let now = T0 + 60;
    let ticket = auth.login("alice", PASSWORD, at(REMOTE, now)).unwrap();
    let late = now + warppool_control::auth::MFA_TICKET_SECS as i64;
    let code = secret.code_at(late as u64);
    let expired = auth.complete_totp(ticket.ticket.expose(), &code, at(REMOTE, late));
    assert!(matches!(expired, Err(AuthError::TicketInvalid)));
    let forged = auth.complete_totp(&"1".repeat(64), &code, at(REMOTE, late));
    assert_eq!(forged.unwrap_err().code(), "auth.ticket_expired");
}
