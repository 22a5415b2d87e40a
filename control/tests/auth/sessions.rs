//! Sessions, tokens and every request: revocation, expiry, CSRF, step-up, scopes, Host.

use std::net::IpAddr;

use warppool_control::auth::{
    AllowedHosts, Auth, AuthError, Outcome, Principal, SESSION_COOKIE, Scope, action, bearer,
    check_host, clear_cookie, session_cookie,
};
use warppool_core::limits::{SESSION_IDLE_SECS, SESSION_LIFETIME_SECS, STEP_UP_WINDOW_SECS};

use super::{LOOPBACK, PASSWORD, REMOTE, T0, TempDir, at, audit_rows, log_in, open, principal};
use super::{set_up, wrong_code};

#[test]
fn a_read_token_cannot_escalate_to_admin() {
    let dir = TempDir::new("auth-scope");
    let auth = open(&dir);
    let (_, session, _) = set_up(&auth);
    let now = T0 + 10;
    let who = principal(&auth, &session, now);
    let read = auth
        .create_token(&who, "grafana", Scope::Read, at(LOOPBACK, now))
        .unwrap();
    let admin = auth
        .create_token(&who, "ops", Scope::Admin, at(LOOPBACK, now))
        .unwrap();
    assert!(read.text.expose().starts_with("wpt_") && read.text.expose().len() == 68);
    let reader = auth.token(read.text.expose(), now).unwrap();
    assert_eq!(reader.scope(), Scope::Read);
    assert!(auth.require(&reader, Scope::Read, at(REMOTE, now)).is_ok());
    for required in [Scope::Admin, Scope::Metrics] {
        let refused = auth
            .require(&reader, required, at(REMOTE, now))
            .unwrap_err();
        assert_eq!((refused.status(), refused.code()), (403, "auth.scope"));
    }
    let minted = auth.create_token(&reader, "mine", Scope::Admin, at(REMOTE, now));
    assert!(matches!(minted, Err(AuthError::InsufficientScope { .. })));
    assert!(auth.tokens(&reader, at(REMOTE, now)).is_err());
    assert!(auth.audit_log(&reader, None, 10, at(REMOTE, now)).is_err());
    // Even an admin token cannot mint tokens: that needs a session and a step-up.
    let admin = auth.token(admin.text.expose(), now).unwrap();
    let minted = auth.create_token(&admin, "mine", Scope::Admin, at(REMOTE, now));
    assert!(matches!(minted, Err(AuthError::SessionRequired)));
    assert_eq!(
        auth.tokens(&who, at(LOOPBACK, now)).unwrap().len(),
        2,
        "nothing created"
    );
    let forbidden = audit_rows(&auth, &who, now)
        .into_iter()
        .filter(|r| r.0 == action::FORBIDDEN && r.1 == Outcome::Denied)
        .count();
    assert_eq!(forbidden, 6);
    // The lattice: admin includes everything, read and metrics include only themselves.
    for have in Scope::ALL {
        for need in Scope::ALL {
            assert_eq!(have.allows(need), have == need || have == Scope::Admin);
        }
    }
}

#[test]
fn a_revoked_session_or_token_fails_on_the_very_next_call() {
    let dir = TempDir::new("auth-revoke");
    let auth = open(&dir);
    let (secret, first, _) = set_up(&auth);
    let now = T0 + 30;
    let second = log_in(&auth, &secret, REMOTE, now);
    let who = principal(&auth, &first, now);
    let listed = auth.sessions(&who, at(LOOPBACK, now)).unwrap();
    assert_eq!(listed.len(), 2);
    assert!(listed.iter().any(|s| s.current && s.id == first.session_id));
    assert_eq!(
        listed.iter().find(|s| !s.current).unwrap().ip.as_deref(),
        Some("203.0.113.7")
    );
    auth.revoke_session(&who, second.session_id, at(LOOPBACK, now))
        .unwrap();
    let gone = auth.session(second.cookie_value.expose(), now + 1);
    assert!(matches!(gone, Err(AuthError::Unauthenticated)));
    let token = auth
        .create_token(&who, "ci", Scope::Metrics, at(LOOPBACK, now))
        .unwrap();
    assert!(auth.token(token.text.expose(), now + 1).is_ok());
    auth.revoke_token(&who, token.info.id, at(LOOPBACK, now + 1))
        .unwrap();
    let gone = auth.token(token.text.expose(), now + 2);
    assert!(matches!(gone, Err(AuthError::Unauthenticated)));
    // Revoking all others keeps the current one; logout ends it.
    let third = log_in(&auth, &secret, REMOTE, now + 30);
    assert_eq!(
        auth.revoke_other_sessions(&who, at(LOOPBACK, now + 31))
            .unwrap(),
        1
    );
    assert!(auth.session(third.cookie_value.expose(), now + 32).is_err());
    auth.logout(&who, at(LOOPBACK, now + 33)).unwrap();
    assert!(auth.session(first.cookie_value.expose(), now + 34).is_err());
}

#[test]
fn a_session_expires_when_idle_and_at_the_end_of_its_lifetime() {
    let dir = TempDir::new("auth-expiry");
    let auth = open(&dir);
    let (secret, session, _) = set_up(&auth);
    let idle = SESSION_IDLE_SECS as i64;
    assert!(
        auth.session(session.cookie_value.expose(), T0 + idle)
            .is_ok()
    );
    let expired = auth.session(session.cookie_value.expose(), T0 + 2 * idle + 1);
    assert!(
        matches!(expired, Err(AuthError::SessionExpired)),
        "{expired:?}"
    );
    let again = auth.session(session.cookie_value.expose(), T0 + 2 * idle + 2);
    assert!(
        matches!(again, Err(AuthError::Unauthenticated)),
        "deleted when found expired"
    );
    // Used every 10 minutes, a session still ends after its lifetime.
    let start = T0 + 60;
    let busy = log_in(&auth, &secret, REMOTE, start);
    let lifetime = SESSION_LIFETIME_SECS as i64;
    let mut now = start;
    while now + 600 <= start + lifetime {
        now += 600;
        assert!(
            auth.session(busy.cookie_value.expose(), now).is_ok(),
            "at {now}"
        );
    }
    let ended = auth.session(busy.cookie_value.expose(), start + lifetime + 1);
    assert!(matches!(ended, Err(AuthError::SessionExpired)));
    assert_eq!(busy.expires_unix_s, start + lifetime);
}

#[test]
fn a_missing_or_wrong_csrf_header_is_refused_and_audited() {
    let dir = TempDir::new("auth-csrf");
    let auth = open(&dir);
    let (_, session, _) = set_up(&auth);
    let who = principal(&auth, &session, T0);
    let req = at(REMOTE, T0);
    let missing = auth.check_csrf(&who, None, req).unwrap_err();
    assert_eq!((missing.status(), missing.code()), (403, "auth.csrf"));
    let other = "0".repeat(64);
    assert!(matches!(
        auth.check_csrf(&who, Some(&other), req),
        Err(AuthError::CsrfMismatch)
    ));
    assert!(
        auth.check_csrf(&who, Some(session.csrf_token.expose()), req)
            .is_ok()
    );
    assert_eq!(
        who.csrf_token().unwrap(),
        session.csrf_token,
        "the same after a reload"
    );
    let token = auth.create_token(&who, "t", Scope::Read, req).unwrap();
    let bearer = auth.token(token.text.expose(), T0).unwrap();
    assert!(
        auth.check_csrf(&bearer, None, req).is_ok(),
        "tokens need none"
    );
    let rows = audit_rows(&auth, &who, T0);
    let csrf = rows
        .iter()
        .filter(|r| r.0 == action::CSRF && r.1 == Outcome::Denied);
    assert_eq!(csrf.count(), 2);
}

#[test]
fn the_host_header_check_refuses_rebinding_names() {
    let any: IpAddr = "0.0.0.0".parse().unwrap();
    let lan: IpAddr = "192.168.1.10".parse().unwrap();
    let on_lan = AllowedHosts::new(lan, &["Pool.Home.Arpa."]).unwrap();
    for ok in [
        "localhost",
        "localhost:8080",
        "127.0.0.1:8080",
        "127.9.9.9",
        "[::1]:8080",
        "192.168.1.10:8080",
        "pool.home.arpa",
        "POOL.home.arpa.:443",
    ] {
        assert!(check_host(Some(ok), &on_lan).is_ok(), "{ok}");
    }
    for refused in [
        "attacker.example",
        "attacker.example:8080",
        "localhost.attacker.example",
        "sub.localhost",
        "192.168.1.11",
        "pool.home.arpa.evil",
        "",
        "[::1",
        "localhost:99999",
        "2130706433",
    ] {
        let error = check_host(Some(refused), &on_lan).unwrap_err();
        assert_eq!(
            (error.status(), error.code()),
            (421, "auth.host_not_allowed"),
            "{refused}"
        );
    }
    assert!(check_host(None, &on_lan).is_err(), "no Host header");
    let everywhere = AllowedHosts::new(any, &[] as &[&str]).unwrap();
    assert!(
        check_host(Some("10.1.2.3:8080"), &everywhere).is_ok(),
        "any address literal"
    );
    assert!(check_host(Some("attacker.example"), &everywhere).is_err());
    assert!(AllowedHosts::new(lan, &["bad name"]).is_err());
}

#[test]
fn token_creation_needs_a_recent_step_up() {
    let dir = TempDir::new("auth-step-up");
    let auth = open(&dir);
    let (secret, session, _) = set_up(&auth);
    let now = T0 + STEP_UP_WINDOW_SECS as i64 + 1;
    let who = principal(&auth, &session, now);
    let refused = auth
        .create_token(&who, "late", Scope::Read, at(LOOPBACK, now))
        .unwrap_err();
    assert_eq!(
        (refused.status(), refused.code()),
        (403, "auth.step_up_required")
    );
    let wrong = wrong_code(&secret, now);
    let refused = auth.step_up(&who, &wrong, at(LOOPBACK, now));
    assert!(
        matches!(refused, Err(AuthError::InvalidTotp)),
        "{refused:?}"
    );
    auth.step_up(&who, &secret.code_at(now as u64), at(LOOPBACK, now))
        .unwrap();
    assert!(
        auth.create_token(&who, "late", Scope::Read, at(LOOPBACK, now + 1))
            .is_ok()
    );
    assert!(auth.require_step_up(&who, at(LOOPBACK, now + 1)).is_ok());
    let after = now + STEP_UP_WINDOW_SECS as i64 + 1;
    assert!(matches!(
        auth.require_step_up(&who, at(LOOPBACK, after)),
        Err(AuthError::StepUpRequired)
    ));
}

#[test]
fn the_cookie_is_httponly_samesite_strict_and_headers_parse() {
    let dir = TempDir::new("auth-cookie");
    let auth = open(&dir);
    let (_, session, _) = set_up(&auth);
    let plain = session.set_cookie(false);
    let cookie = plain.expose();
    assert!(cookie.starts_with(&format!(
        "{SESSION_COOKIE}={}",
        session.cookie_value.expose()
    )));
    for attribute in [
        "; HttpOnly",
        "; SameSite=Strict",
        "; Path=/",
        "; Max-Age=43200",
    ] {
        assert!(cookie.contains(attribute), "{attribute} missing");
    }
    assert!(!cookie.contains("Secure") && session.set_cookie(true).expose().ends_with("; Secure"));
    assert!(clear_cookie(false).contains("Max-Age=0"));
    let header = format!(
        "theme=dark; {SESSION_COOKIE}={}; lang=de",
        session.cookie_value.expose()
    );
    let value = session_cookie(&header).unwrap();
    assert!(auth.session(value, T0).is_ok());
    assert_eq!(session_cookie("theme=dark"), None);
    assert_eq!(bearer("Bearer wpt_abc"), Some("wpt_abc"));
    assert_eq!(bearer("bearer  wpt_abc "), Some("wpt_abc"));
    assert_eq!(bearer("Basic dXNlcjpwYXNz"), None);
    assert!(matches!(
        auth.token("wpt_not-hex", T0),
        Err(AuthError::Unauthenticated)
    ));
}

#[test]
fn two_logins_racing_with_one_code_let_only_one_in() {
    let dir = TempDir::new("auth-race");
    let auth = open(&dir);
    let (secret, _, _) = set_up(&auth);
    let now = T0 + 60;
    let tickets: Vec<String> = (0..2)
        .map(|_| {
            auth.login("alice", PASSWORD, at(REMOTE, now))
                .unwrap()
                .ticket
                .expose()
                .to_owned()
        })
        .collect();
    let code = secret.code_at(now as u64);
    let results: Vec<Result<_, AuthError>> = std::thread::scope(|scope| {
        let handles: Vec<_> = tickets
            .iter()
            .map(|ticket| scope.spawn(|| auth.complete_totp(ticket, &code, at(REMOTE, now))))
            .collect();
        handles.into_iter().map(|h| h.join().unwrap()).collect()
    });
    assert_eq!(
        results.iter().filter(|r| r.is_ok()).count(),
        1,
        "{results:?}"
    );
    let refused = results.iter().find_map(|r| r.as_ref().err()).unwrap();
    assert!(matches!(refused, AuthError::TotpReplayed), "{refused:?}");
}

#[test]
fn auth_and_principals_can_be_shared_between_blocking_threads() {
    fn shared<T: Send + Sync>() {}
    shared::<Auth>();
    shared::<Principal>();
    shared::<AllowedHosts>();
}
