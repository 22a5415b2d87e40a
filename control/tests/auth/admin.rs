//! First-run setup, recovery codes, TOTP re-enrolment, the CLI and the audit log.

use rusqlite::Connection;
use warppool_control::auth::{
    Auth, AuthConfig, AuthError, Change, Outcome, Scope, SetupRequest, action,
};
use warppool_core::limits::{RECOVERY_CODES_COUNT, STEP_UP_WINDOW_SECS};

use super::{LOOPBACK, PASSWORD, REMOTE, T0, TempDir, at, audit_rows, log_in, open, principal};
use super::{log_in_as, secret_of, set_up, wrong_code};

#[test]
fn setup_is_refused_once_an_admin_exists() {
    let dir = TempDir::new("auth-setup-twice");
    let auth = open(&dir);
    assert!(auth.needs_setup().unwrap() && auth.setup_token().is_some());
    let (_, session, _) = set_up(&auth);
    assert!(!auth.needs_setup().unwrap() && auth.setup_token().is_none());
    let request = SetupRequest {
        username: "eve",
        password: PASSWORD,
        setup_token: None,
    };
    let refused = auth.begin_setup(request, at(LOOPBACK, T0 + 1)).unwrap_err();
    assert_eq!(
        (refused.status(), refused.code()),
        (409, "auth.already_set_up")
    );
    // A restarted pool refuses too, and makes no setup token.
    drop(auth);
    let auth = open(&dir);
    assert!(auth.setup_token().is_none());
    assert!(matches!(
        auth.begin_setup(request, at(LOOPBACK, T0 + 2)),
        Err(AuthError::AlreadySetUp)
    ));
    let who = principal(&auth, &session, T0 + 3);
    let rows = audit_rows(&auth, &who, T0 + 3);
    let refusal = (
        action::SETUP.to_owned(),
        Outcome::Denied,
        "\"admin_exists\"".to_owned(),
    );
    assert_eq!(rows.iter().filter(|r| **r == refusal).count(), 2);
    let conn = Connection::open(dir.db()).unwrap();
    let admins: i64 = conn
        .query_row("SELECT count(*) FROM admins", [], |r| r.get(0))
        .unwrap();
    assert_eq!(admins, 1, "nothing changed");
}

#[test]
fn setup_from_a_non_loopback_peer_needs_the_setup_token() {
    let dir = TempDir::new("auth-setup-remote");
    let auth = open(&dir);
    let token = auth.setup_token().unwrap();
    let mut request = SetupRequest {
        username: "alice",
        password: PASSWORD,
        setup_token: None,
    };
    let refused = auth.begin_setup(request, at(REMOTE, T0)).unwrap_err();
    assert_eq!(
        (refused.status(), refused.code()),
        (403, "auth.setup_forbidden")
    );
    let wrong = "ab".repeat(32);
    request.setup_token = Some(&wrong);
    assert!(matches!(
        auth.begin_setup(request, at(REMOTE, T0)),
        Err(AuthError::SetupForbidden)
    ));
    assert!(auth.needs_setup().unwrap(), "nothing changed");
    request.setup_token = Some(token.expose());
    let enrollment = auth.begin_setup(request, at(REMOTE, T0)).unwrap();
    let secret = secret_of(enrollment.totp.secret_base32.expose());
    let uri = enrollment.totp.otpauth_uri.expose();
    assert!(
        uri.starts_with("otpauth://totp/WarpPool:alice?secret="),
        "{uri}"
    );
    // A wrong first code keeps the setup pending; the right one finishes it.
    let ticket = enrollment.ticket.expose();
    let wrong = wrong_code(&secret, T0);
    let refused = auth.finish_setup(ticket, &wrong, at(REMOTE, T0));
    assert!(
        matches!(refused, Err(AuthError::InvalidTotp)),
        "{refused:?}"
    );
    let code = secret.code_at(T0 as u64);
    let done = auth.finish_setup(ticket, &code, at(REMOTE, T0)).unwrap();
    assert_eq!(done.recovery_codes.codes().len(), RECOVERY_CODES_COUNT);
    assert!(!auth.needs_setup().unwrap());
    // Behind a reverse proxy the operator turns loopback trust off: the token is needed.
    let dir = TempDir::new("auth-setup-proxy");
    let mut config = AuthConfig::new(dir.db());
    config.setup_trusts_loopback = false;
    let auth = Auth::open(config).unwrap();
    request.setup_token = None;
    assert!(matches!(
        auth.begin_setup(request, at(LOOPBACK, T0)),
        Err(AuthError::SetupForbidden)
    ));
}

#[test]
fn recovery_codes_work_once_each() {
    let dir = TempDir::new("auth-recovery");
    let auth = open(&dir);
    let (_, session, codes) = set_up(&auth);
    assert_eq!(codes.len(), RECOVERY_CODES_COUNT);
    assert!(
        codes
            .iter()
            .all(|c| c.len() == 14 && c.matches('-').count() == 2)
    );
    // Past the setup session's step-up window.
    let now = T0 + STEP_UP_WINDOW_SECS as i64 + 60;
    let ticket = auth.login("alice", PASSWORD, at(REMOTE, now)).unwrap();
    let typed = codes[3].to_uppercase().replace('-', " ");
    let recovered = auth
        .recover(ticket.ticket.expose(), &typed, at(REMOTE, now))
        .unwrap();
    let who = principal(&auth, &recovered, now);
    assert_eq!(
        auth.recovery_codes_left(&who, at(REMOTE, now)).unwrap(),
        RECOVERY_CODES_COUNT - 1
    );
    let ticket = auth.login("alice", PASSWORD, at(REMOTE, now + 1)).unwrap();
    let again = auth.recover(ticket.ticket.expose(), &codes[3], at(REMOTE, now + 1));
    assert!(
        matches!(again, Err(AuthError::InvalidRecoveryCode)),
        "{again:?}"
    );
    // A recovery login counts as a step-up: the admin can re-enrol TOTP at once.
    assert!(auth.enroll_totp(&who, at(REMOTE, now + 2)).is_ok());
    let admin = principal(&auth, &session, now + 2);
    let fresh = auth.regenerate_recovery_codes(&admin, at(LOOPBACK, now + 2));
    assert!(
        matches!(fresh, Err(AuthError::StepUpRequired)),
        "setup session is old: {fresh:?}"
    );
}

#[test]
fn totp_reenrolment_replaces_the_secret_codes_and_other_sessions() {
    let dir = TempDir::new("auth-reenrol");
    let auth = open(&dir);
    let (old, session, old_codes) = set_up(&auth);
    let other = log_in(&auth, &old, REMOTE, T0 + 30);
    let who = principal(&auth, &session, T0 + 31);
    assert!(matches!(
        auth.confirm_totp(&who, "000000", at(LOOPBACK, T0 + 31)),
        Err(AuthError::NoPendingEnrollment)
    ));
    let enrollment = auth.enroll_totp(&who, at(LOOPBACK, T0 + 31)).unwrap();
    let new = secret_of(enrollment.secret_base32.expose());
    assert_ne!(new, old);
    let codes = auth
        .confirm_totp(&who, &new.code_at((T0 + 31) as u64), at(LOOPBACK, T0 + 31))
        .unwrap();
    assert_eq!(codes.codes().len(), RECOVERY_CODES_COUNT);
    assert!(
        auth.session(other.cookie_value.expose(), T0 + 32).is_err(),
        "others revoked"
    );
    assert!(
        auth.session(session.cookie_value.expose(), T0 + 32).is_ok(),
        "current kept"
    );
    // The old secret and the old recovery codes no longer work; the new ones do.
    let now = T0 + 90;
    let ticket = auth.login("alice", PASSWORD, at(REMOTE, now)).unwrap();
    let stale = old.code_at(now as u64);
    // (Two random secrets share a code in this window once in ~300,000 runs: then skip.)
    if new.matching_step(&stale, now).is_none() {
        let refused = auth.complete_totp(ticket.ticket.expose(), &stale, at(REMOTE, now));
        assert!(
            matches!(refused, Err(AuthError::InvalidTotp)),
            "{refused:?}"
        );
    }
    let ticket = auth.login("alice", PASSWORD, at(REMOTE, now)).unwrap();
    assert!(
        auth.recover(ticket.ticket.expose(), &old_codes[0], at(REMOTE, now))
            .is_err()
    );
    log_in(&auth, &new, REMOTE, now + 30);
}

#[test]
fn the_cli_creates_admins_resets_totp_and_manages_tokens() {
    let dir = TempDir::new("auth-cli");
    let auth = open(&dir);
    let created = auth.cli_create_admin("Bob", PASSWORD, T0).unwrap();
    assert_eq!(created.username, "bob");
    assert!(auth.setup_token().is_none() && !auth.needs_setup().unwrap());
    assert!(matches!(
        auth.cli_create_admin("bob", PASSWORD, T0),
        Err(AuthError::UsernameTaken(_))
    ));
    let secret = secret_of(created.totp.secret_base32.expose());
    let session = log_in_as(&auth, "bob", &secret, REMOTE, T0);
    let token = auth
        .cli_create_token("bob", "prometheus", Scope::Metrics, T0)
        .unwrap();
    let metrics = auth.token(token.text.expose(), T0).unwrap();
    assert_eq!(metrics.scope(), Scope::Metrics);
    assert_eq!(
        auth.cli_tokens().unwrap()[0].hint,
        token.text.expose()[..12]
    );
    auth.cli_revoke_token(token.info.id, T0 + 1).unwrap();
    assert!(auth.token(token.text.expose(), T0 + 1).is_err());
    let reset = auth.cli_reset_totp("bob", T0 + 2).unwrap();
    let revoked = auth.session(session.cookie_value.expose(), T0 + 3);
    assert!(revoked.is_err(), "sessions revoked");
    let fresh = secret_of(reset.totp.secret_base32.expose());
    let now = T0 + 30;
    let session = log_in_as(&auth, "bob", &fresh, REMOTE, now);
    let who = principal(&auth, &session, now);
    let page = auth.audit_log(&who, None, 200, at(REMOTE, now)).unwrap();
    let cli: Vec<&str> = page
        .records
        .iter()
        .filter(|r| r.actor == "cli")
        .map(|r| r.action.as_str())
        .collect();
    assert_eq!(
        cli,
        [
            action::ADMIN_RESET_TOTP,
            action::TOKEN_REVOKE,
            action::TOKEN_CREATE,
            action::ADMIN_CREATE
        ]
    );
    assert!(
        page.records
            .iter()
            .filter(|r| r.actor == "cli")
            .all(|r| r.ip.is_none())
    );
}

#[test]
fn the_audit_log_pages_newest_first_and_refuses_changes() {
    let dir = TempDir::new("auth-audit");
    let auth = open(&dir);
    let (_, session, _) = set_up(&auth);
    let who = principal(&auth, &session, T0);
    for i in 0..5 {
        let change = Change {
            action: "payout.change".to_owned(),
            target: Some("pool.payout_address".to_owned()),
            before: Some(serde_json::json!({ "n": i })),
            after: Some(serde_json::json!({ "n": i + 1 })),
            outcome: Outcome::Ok,
        };
        auth.record(Some(&who), change, at(LOOPBACK, T0 + i))
            .unwrap();
    }
    let first = auth.audit_log(&who, None, 2, at(LOOPBACK, T0)).unwrap();
    assert_eq!(first.records.len(), 2);
    assert_eq!(first.records[0].after, Some(serde_json::json!({ "n": 5 })));
    assert_eq!(first.records[0].actor, "admin:alice");
    let second = auth
        .audit_log(&who, first.next_cursor, 2, at(LOOPBACK, T0))
        .unwrap();
    assert_eq!(
        second.records[0].before,
        Some(serde_json::json!({ "n": 2 }))
    );
    assert!(second.records[0].id < first.records[1].id);
    let mut cursor = second.next_cursor;
    let mut rest = 0;
    while let Some(c) = cursor {
        let page = auth.audit_log(&who, Some(c), 2, at(LOOPBACK, T0)).unwrap();
        rest += page.records.len();
        cursor = page.next_cursor;
    }
    assert_eq!(rest, 2, "one payout row and the setup row");
    let conn = Connection::open(dir.db()).unwrap();
    assert!(
        conn.execute("UPDATE audit_log SET actor = 'nobody'", [])
            .is_err()
    );
    assert!(conn.execute("DELETE FROM audit_log", []).is_err());
}
