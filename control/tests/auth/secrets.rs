//! Secrets at rest and in output: argon2id hashes, redacted `Debug`, hashed storage, file
//! permissions, error codes.

use std::os::unix::fs::PermissionsExt;

use rusqlite::Connection;
use warppool_control::auth::{
    Auth, AuthConfig, AuthError, Scope, SetupRequest, check_password_policy, hash_password,
    needs_rehash, verify_password,
};

use super::{LOOPBACK, PASSWORD, REMOTE, T0, TempDir, at, open, principal, secret_of, set_up};

#[test]
fn password_hashes_are_argon2id_phc_strings() {
    let dir = TempDir::new("auth-argon2");
    let auth = open(&dir);
    set_up(&auth);
    let conn = Connection::open(dir.db()).unwrap();
    let stored: String = conn
        .query_row(
            "SELECT password_hash FROM admins WHERE username = 'alice'",
            [],
            |r| r.get(0),
        )
        .unwrap();
    assert!(
        stored.starts_with("$argon2id$v=19$m=19456,t=2,p=1$"),
        "{stored}"
    );
    assert_eq!(
        stored.split('$').count(),
        6,
        "id, version, params, salt, hash"
    );
    assert!(
        verify_password(PASSWORD, &stored) && !verify_password("Correct horse battery", &stored)
    );
    assert!(!needs_rehash(&stored));
    let other = hash_password(PASSWORD).unwrap();
    assert_ne!(other, stored, "a fresh salt every time");
    let weak = check_password_policy("short").unwrap_err();
    assert_eq!((weak.status(), weak.code()), (400, "auth.weak_password"));
    assert!(verify_password(PASSWORD, &other) && !verify_password(PASSWORD, "$argon2id$junk"));
}

#[test]
fn no_secret_appears_in_debug_output() {
    let dir = TempDir::new("auth-debug");
    let auth = open(&dir);
    let setup_token = auth.setup_token().unwrap();
    let request = SetupRequest {
        username: "alice",
        password: PASSWORD,
        setup_token: Some(setup_token.expose()),
    };
    let enrollment = auth.begin_setup(request, at(REMOTE, T0)).unwrap();
    let secret = secret_of(enrollment.totp.secret_base32.expose());
    let code = secret.code_at(T0 as u64);
    let done = auth
        .finish_setup(enrollment.ticket.expose(), &code, at(REMOTE, T0))
        .unwrap();
    let who = principal(&auth, &done.session, T0);
    let token = auth
        .create_token(&who, "t", Scope::Read, at(REMOTE, T0))
        .unwrap();
    let ticket = auth.login("alice", PASSWORD, at(REMOTE, T0 + 30)).unwrap();
    let debug = format!(
        "{request:?} {enrollment:?} {done:?} {who:?} {token:?} {ticket:?} {auth:?} {secret:?}"
    );
    let mut secrets = vec![
        PASSWORD.to_owned(),
        setup_token.expose().to_owned(),
        enrollment.ticket.expose().to_owned(),
        enrollment.totp.secret_base32.expose().to_owned(),
        done.session.cookie_value.expose().to_owned(),
        done.session.csrf_token.expose().to_owned(),
        token.text.expose()[4..].to_owned(),
        ticket.ticket.expose().to_owned(),
    ];
    secrets.extend(
        done.recovery_codes
            .codes()
            .iter()
            .map(|c| c.expose().to_owned()),
    );
    for secret in &secrets {
        assert!(
            !debug.contains(secret.as_str()),
            "{secret} leaked in {debug}"
        );
    }
    assert!(debug.contains("<redacted>"));
}

#[test]
fn secrets_are_stored_hashed() {
    let dir = TempDir::new("auth-hashed");
    let auth = open(&dir);
    let (_, session, codes) = set_up(&auth);
    let who = principal(&auth, &session, T0);
    let token = auth
        .create_token(&who, "t", Scope::Read, at(LOOPBACK, T0))
        .unwrap();
    drop(auth);
    let mut bytes = std::fs::read(dir.db()).unwrap();
    for suffix in ["-wal", "-shm"] {
        let mut path = dir.db().into_os_string();
        path.push(suffix);
        bytes.extend(std::fs::read(path).unwrap_or_default());
    }
    let text = String::from_utf8_lossy(&bytes);
    let token_hex = &token.text.expose()[4..];
    for secret in [
        session.cookie_value.expose(),
        session.csrf_token.expose(),
        token_hex,
    ] {
        assert!(!text.contains(secret), "{secret} stored in clear");
    }
    for code in &codes {
        assert!(
            !text.contains(&code.replace('-', "")),
            "{code} stored in clear"
        );
    }
}

#[test]
fn the_database_is_owner_only_and_refused_when_open_to_others_with_secrets() {
    let mode = |path: &std::path::Path| std::fs::metadata(path).unwrap().permissions().mode();
    let dir = TempDir::new("auth-perms");
    let auth = open(&dir);
    assert_eq!(mode(&dir.db()) & 0o777, 0o600, "created owner-only");
    set_up(&auth);
    drop(auth);
    std::fs::set_permissions(dir.db(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let refused = Auth::open(AuthConfig::new(dir.db())).unwrap_err();
    let message = refused.to_string();
    assert!(
        matches!(refused, AuthError::Permissions { mode: 0o644, .. }),
        "{refused:?}"
    );
    let path = dir.db().display().to_string();
    assert!(message.contains(&format!("chmod 600 {path}")), "{message}");
    assert_eq!(mode(&dir.db()) & 0o777, 0o644, "left as it was");
    // Without an admin (a pre-auth database) the pool tightens the file itself.
    let fresh = TempDir::new("auth-perms-fresh");
    Connection::open(fresh.db())
        .unwrap()
        .execute_batch("CREATE TABLE t (x)")
        .unwrap();
    std::fs::set_permissions(fresh.db(), std::fs::Permissions::from_mode(0o644)).unwrap();
    open(&fresh);
    assert_eq!(mode(&fresh.db()) & 0o777, 0o600);
}

#[test]
fn every_error_has_a_status_and_a_stable_code() {
    let errors = [
        (
            AuthError::InvalidCredentials,
            401,
            "auth.invalid_credentials",
        ),
        (AuthError::Unauthenticated, 401, "auth.unauthenticated"),
        (AuthError::SessionExpired, 401, "auth.session_expired"),
        (AuthError::SessionRequired, 403, "auth.session_required"),
        (AuthError::NotFound { what: "token" }, 404, "auth.not_found"),
        (
            AuthError::NoPendingEnrollment,
            409,
            "auth.no_pending_enrollment",
        ),
        (AuthError::Internal("x".into()), 500, "auth.internal"),
    ];
    for (error, status, code) in errors {
        assert_eq!((error.status(), error.code()), (status, code), "{error}");
        assert_eq!(error.is_client_error(), status < 500);
    }
}
