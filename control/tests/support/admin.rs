//! An admin for the API tests: first-run setup with TOTP over real HTTP, and the requests
//! the tests make with its cookie, CSRF header or a token. Include with `#[path]`.

#![allow(
    dead_code,
    reason = "each test file uses a different part of the support module"
)]
#![allow(
    unreachable_pub,
    reason = "a test support module included with #[path]"
)]

use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use warppool_control::auth::TotpSecret;

/// The admin's password in every test.
pub const PASSWORD: &str = "correct horse battery staple";

pub fn now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs()
}

/// An admin signed in through the first-run setup: its cookie, CSRF token and TOTP secret.
pub struct Admin {
    pub cookie: String,
    pub csrf: String,
    /// The code setup was confirmed with.
    pub setup_code: String,
    pub recovery: Vec<String>,
}

pub async fn set_up(http: &Client, base: &str) -> Admin {
    let r = http
        .post(format!("{base}/api/v1/setup"))
        .json(&json!({"username": "op", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let started: Value = r.json().await.unwrap();
    assert!(
        started["otpauth_uri"]
            .as_str()
            .unwrap()
            .starts_with("otpauth://totp/")
    );
    let secret = TotpSecret::from_base32(started["secret_base32"].as_str().unwrap()).unwrap();
    let setup_code = secret.code_at(now());
    let r = http
        .post(format!("{base}/api/v1/setup/confirm"))
        .json(&json!({"ticket": started["ticket"], "code": setup_code}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let cookie = r.headers()["set-cookie"].to_str().unwrap().to_owned();
    assert!(
        cookie.contains("HttpOnly") && cookie.contains("SameSite=Strict"),
        "{cookie}"
    );
    let cookie = cookie.split(';').next().unwrap().to_owned();
    let done: Value = r.json().await.unwrap();
    let recovery = done["recovery_codes"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c.as_str().unwrap().to_owned())
        .collect();
    Admin {
        cookie,
        csrf: done["csrf_token"].as_str().unwrap().to_owned(),
        setup_code,
        recovery,
    }
}

pub async fn error_code(r: reqwest::Response) -> (StatusCode, String) {
    let status = r.status();
    let body: Value = r.json().await.unwrap_or(Value::Null);
    (
        status,
        body["error"]["code"].as_str().unwrap_or("").to_owned(),
    )
}

/// `GET url` with a cookie or a bearer token: status and JSON.
pub async fn get(
    http: &Client,
    url: &str,
    cookie: Option<&str>,
    token: Option<&str>,
) -> (u16, Value) {
    let mut r = http.get(url);
    if let Some(c) = cookie {
        r = r.header("cookie", c);
    }
    if let Some(t) = token {
        r = r.bearer_auth(t);
    }
    let r = r.send().await.unwrap();
    (r.status().as_u16(), r.json().await.unwrap_or(Value::Null))
}

/// `POST /api/v1/admin/tokens` of `scope` by `admin`, with or without its CSRF header.
pub async fn make_token(
    http: &Client,
    base: &str,
    admin: &Admin,
    scope: &str,
    csrf: bool,
) -> reqwest::Response {
    let mut r = http
        .post(format!("{base}/api/v1/admin/tokens"))
        .header("cookie", &admin.cookie)
        .json(&json!({"name": format!("{scope} token"), "scope": scope}));
    if csrf {
        r = r.header("x-csrf-token", &admin.csrf);
    }
    r.send().await.unwrap()
}
