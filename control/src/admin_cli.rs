//! The admin commands of the `warppool` binary: `admin create | reset-totp` and
//! `token create | revoke | list`, on the database of a configuration file. Each prints what
//! the operator must keep (the TOTP secret and recovery codes, a token's text) once, to stdout.
//!
//! The password of `admin create` comes from `WARPPOOL_ADMIN_PASSWORD` or, without it, the first
//! line of stdin (so it never sits in the shell's history or the process list).

use std::io::BufRead;
use std::path::Path;

use anyhow::Context;

use crate::auth::{Auth, AuthConfig, Scope};
use crate::config::Config;

fn open(config: &Path) -> anyhow::Result<Auth> {
    let config = Config::load(config, std::env::vars())?;
    Auth::open(AuthConfig::new(&config.database))
        .with_context(|| format!("cannot open admin auth on {}", config.database.display()))
}

fn now() -> i64 {
    crate::api::now_s()
}

fn password() -> anyhow::Result<String> {
    if let Ok(p) = std::env::var("WARPPOOL_ADMIN_PASSWORD") {
        return Ok(p);
    }
    let mut line = String::new();
    std::io::stdin()
        .lock()
        .read_line(&mut line)
        .context("reading the password from stdin")?;
    Ok(line.trim_end_matches(['\r', '\n']).to_owned())
}

fn print_enrollment(created: &crate::auth::AdminCreated) {
    println!("admin: {}", created.username);
    println!(
        "totp secret (add it to an authenticator app): {}",
        created.totp.secret_base32.expose()
    );
    println!("totp uri: {}", created.totp.otpauth_uri.expose());
    println!("recovery codes (each works once; keep them offline):");
    for code in created.recovery_codes.codes() {
        println!("  {}", code.expose());
    }
}

/// `warppool admin create`.
///
/// # Errors
/// The configuration, the database, a weak password or a taken name.
pub fn admin_create(config: &Path, username: &str) -> anyhow::Result<()> {
    let auth = open(config)?;
    let created = auth.cli_create_admin(username, &password()?, now())?;
    print_enrollment(&created);
    Ok(())
}

/// `warppool admin reset-totp`.
///
/// # Errors
/// The configuration, the database or an unknown admin.
pub fn admin_reset_totp(config: &Path, username: &str) -> anyhow::Result<()> {
    let created = open(config)?.cli_reset_totp(username, now())?;
    print_enrollment(&created);
    Ok(())
}

/// `warppool token create`.
///
/// # Errors
/// The configuration, the database, an unknown admin or scope.
pub fn token_create(config: &Path, username: &str, name: &str, scope: &str) -> anyhow::Result<()> {
    let scope: Scope = scope.parse()?;
    let token = open(config)?.cli_create_token(username, name, scope, now())?;
    println!(
        "token {} ({}, scope {}):",
        token.info.id,
        token.info.name,
        scope.as_str()
    );
    println!("{}", token.text.expose());
    println!("shown once: store it now");
    Ok(())
}

/// `warppool token revoke`.
///
/// # Errors
/// The configuration, the database or an unknown token.
pub fn token_revoke(config: &Path, id: i64) -> anyhow::Result<()> {
    open(config)?.cli_revoke_token(id, now())?;
    println!("token {id} revoked");
    Ok(())
}

/// `warppool token list`.
///
/// # Errors
/// The configuration or the database.
pub fn token_list(config: &Path) -> anyhow::Result<()> {
    for t in open(config)?.cli_tokens()? {
        let used = t
            .last_used_unix_s
            .map_or("never".to_owned(), |s| s.to_string());
        println!(
            "{}\t{}\t{}\t{}\tlast used {used}",
            t.id,
            t.scope.as_str(),
            t.hint,
            t.name
        );
    }
    Ok(())
}

/// `warppool tls fingerprint`: the HTTPS certificate's SHA-256 fingerprint (a self-signed one
/// is generated first if the pool has not made it yet, as the pool itself would).
///
/// # Errors
/// The configuration has no `[http] tls_listen`, or the certificate cannot be loaded.
pub fn tls_fingerprint(config: &Path) -> anyhow::Result<()> {
    let config = Config::load(config, std::env::vars())?;
    let https = config
        .https
        .as_ref()
        .context("no HTTPS listener configured ([http] tls_listen)")?;
    let names = crate::api::tls::machine_names(https.listen.ip(), &config.http_allowed_hosts);
    let source = https.source(&config.database);
    let (cert, _) = source.paths();
    let cert_state = crate::api::tls::HttpsCert::open(source, &names)?;
    println!("{}", cert_state.fingerprint());
    eprintln!("certificate: {}", cert.display());
    Ok(())
}
