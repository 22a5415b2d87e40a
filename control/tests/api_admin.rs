//! The admin API over real HTTP against a running daemon with a real SQLite file: first-run
//! setup with TOTP, sessions, CSRF, scoped tokens, the audit log, and the attacks: a replayed
//! TOTP code, a missing CSRF header, token scope escalation, setup after an admin exists, a
//! DNS-rebinding Host, an oversized body, brute force lockout. Each a clear 4xx.

#[path = "support/admin.rs"]
mod admin;
#[path = "support/api_pool.rs"]
mod api_pool;
#[path = "support/fake_node.rs"]
mod fake_node;
#[path = "support/temp_dir.rs"]
mod temp_dir;

use admin::{PASSWORD, error_code, get, make_token, set_up};

use fake_node::FakeNode;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use temp_dir::TempDir;
use warppool_control::run::Daemon;

async fn daemon(name: &str) -> (Daemon, String, FakeNode, TempDir) {
    let p = api_pool::start(name).await;
    (p.daemon, p.base, p.node, p.dir)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn setup_is_refused_once_an_admin_exists_and_the_session_lists_itself() {
    let (daemon, base, _node, _dir) = daemon("admin-setup").await;
    let http = Client::new();
    let admin = set_up(&http, &base).await;
    assert_eq!(admin.recovery.len(), 10);
    let r = http
        .post(format!("{base}/api/v1/setup"))
        .json(&json!({"username": "eve", "password": PASSWORD}))
        .send()
        .await
        .unwrap();
    assert_eq!(
        error_code(r).await,
        (StatusCode::CONFLICT, "auth.already_set_up".into())
    );
    let url = format!("{base}/api/v1/auth/sessions");
    let (status, sessions) = get(&http, &url, Some(&admin.cookie), None).await;
    assert_eq!(status, 200);
    assert_eq!(sessions[0]["current"], true, "{sessions}");
    daemon.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tokens_need_csrf_keep_their_scope_and_die_when_revoked() {
    let (daemon, base, _node, _dir) = daemon("admin-tokens").await;
    let http = Client::new();
    let admin = set_up(&http, &base).await;
    let (status, _) = error_code(make_token(&http, &base, &admin, "read", false).await).await;
    assert_eq!(status, StatusCode::FORBIDDEN, "no CSRF header");
    let read: Value = make_token(&http, &base, &admin, "read", true)
        .await
        .json()
        .await
        .unwrap();
    let read_text = read["text"].as_str().unwrap().to_owned();
    assert!(read_text.starts_with("wpt_"), "{read}");
    let tokens = format!("{base}/api/v1/admin/tokens");
    let (status, _) = get(&http, &tokens, None, Some(&read_text)).await;
    assert_eq!(status, 403, "a read token cannot act as an admin");
    let admin_token: Value = make_token(&http, &base, &admin, "admin", true)
        .await
        .json()
        .await
        .unwrap();
    let admin_text = admin_token["text"].as_str().unwrap().to_owned();
    let (_, listed) = get(&http, &tokens, None, Some(&admin_text)).await;
    assert_eq!(listed.as_array().unwrap().len(), 2);
    assert!(
        !listed.to_string().contains(&read_text),
        "secrets never come back"
    );
    let id = read["token"]["id"].as_i64().unwrap();
    let r = http
        .delete(format!("{tokens}/{id}"))
        .bearer_auth(&admin_text)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    let audit = format!("{base}/api/v1/admin/audit?limit=200");
    assert_eq!(
        get(&http, &audit, None, Some(&read_text)).await.0,
        401,
        "revoked at once"
    );
    let (_, log) = get(&http, &audit, None, Some(&admin_text)).await;
    let actions: Vec<&str> = log["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r["action"].as_str().unwrap())
        .collect();
    assert!(actions.iter().any(|a| a.contains("token")), "{actions:?}");
    assert!(actions.iter().any(|a| a.contains("csrf")), "{actions:?}");
    daemon.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn logout_clears_the_cookie_and_ends_the_session_at_once() {
    let (daemon, base, _node, _dir) = daemon("admin-logout").await;
    let http = Client::new();
    let admin = set_up(&http, &base).await;
    let r = http
        .post(format!("{base}/api/v1/auth/logout"))
        .header("cookie", &admin.cookie)
        .header("x-csrf-token", &admin.csrf)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 204);
    assert!(
        r.headers()["set-cookie"]
            .to_str()
            .unwrap()
            .contains("Max-Age=0")
    );
    let url = format!("{base}/api/v1/auth/sessions");
    assert_eq!(get(&http, &url, Some(&admin.cookie), None).await.0, 401);
    daemon.shutdown().await.unwrap();
}

async fn login(http: &Client, base: &str, password: &str) -> reqwest::Response {
    http.post(format!("{base}/api/v1/auth/login"))
        .json(&json!({"username": "op", "password": password}))
        .send()
        .await
        .unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_replayed_totp_code_and_a_reused_recovery_code_are_refused() {
    let (daemon, base, _node, _dir) = daemon("admin-replay").await;
    let http = Client::new();
    let admin = set_up(&http, &base).await;
    // The code setup used, again (still inside the ±1 step window): its step is spent.
    let ticket: Value = login(&http, &base, PASSWORD).await.json().await.unwrap();
    let r = http
        .post(format!("{base}/api/v1/auth/totp"))
        .json(&json!({"mfa_token": ticket["mfa_token"], "code": admin.setup_code}))
        .send()
        .await
        .unwrap();
    let (status, code) = error_code(r).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert_eq!(code, "auth.totp_replayed");
    let recover = |ticket: Value| {
        http.post(format!("{base}/api/v1/auth/recovery"))
            .json(&json!({"mfa_token": ticket["mfa_token"], "code": admin.recovery[0]}))
            .send()
    };
    let ticket: Value = login(&http, &base, PASSWORD).await.json().await.unwrap();
    assert_eq!(recover(ticket).await.unwrap().status(), 200);
    let ticket: Value = login(&http, &base, PASSWORD).await.json().await.unwrap();
    assert_eq!(
        recover(ticket).await.unwrap().status(),
        401,
        "used once already"
    );
    daemon.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_rebinding_host_an_oversized_body_and_bad_json_get_4xx() {
    let (daemon, base, _node, _dir) = daemon("admin-bad-input").await;
    let http = Client::new();
    let r = http
        .get(format!("{base}/api/v1/pool"))
        .header("host", "evil.example:8080")
        .send()
        .await
        .unwrap();
    let expected = (
        StatusCode::MISDIRECTED_REQUEST,
        "auth.host_not_allowed".to_owned(),
    );
    assert_eq!(error_code(r).await, expected);
    // On its own connection: the server closes it after a 413, the rest of the body unread.
    let r = Client::new()
        .post(format!("{base}/api/v1/auth/login"))
        .header("content-type", "application/json")
        .body(format!(
            "{{\"username\":\"op\",\"password\":\"{}\"}}",
            "x".repeat(100_000)
        ))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), StatusCode::PAYLOAD_TOO_LARGE);
    let r = http
        .post(format!("{base}/api/v1/auth/login"))
        .header("content-type", "application/json")
        .body("{\"user\":1}")
        .send()
        .await
        .unwrap();
    assert_eq!(error_code(r).await.0, StatusCode::BAD_REQUEST);
    daemon.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn brute_force_locks_out_with_a_retry_after() {
    let (daemon, base, _node, _dir) = daemon("admin-lockout").await;
    let http = Client::new();
    let _admin = set_up(&http, &base).await;
    let mut locked = None;
    for _ in 0..10 {
        let r = login(&http, &base, "not the password at all").await;
        if r.status() == StatusCode::TOO_MANY_REQUESTS {
            locked = r
                .headers()
                .get("retry-after")
                .map(|v| v.to_str().unwrap().to_owned());
            break;
        }
        assert_eq!(r.status(), StatusCode::UNAUTHORIZED);
    }
    let retry: u64 = locked.expect("locked out within 10 tries").parse().unwrap();
    assert!(retry > 0);
    let r = login(&http, &base, PASSWORD).await;
    assert_eq!(
        r.status(),
        StatusCode::TOO_MANY_REQUESTS,
        "even the right password waits"
    );
    daemon.shutdown().await.unwrap();
}
