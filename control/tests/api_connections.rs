//! Connections and bans over real HTTP against a running daemon with a real SQLite file and
//! real Stratum connections: the list shows each connection's real peer and worker; a kick
//! closes exactly that connection (the miner sees EOF) while the others keep working; kick
//! of an unknown id is 404; kick-all closes the rest; a ban closes the live connection of its
//! address and refuses new ones (counted in `/metrics`), survives a restart, stops applying
//! when it expires, and unban lets the address in again; no session is 401, a read token
//! 403, a session without CSRF 403, bad input 400; every action is in the audit log.

#[path = "support/admin.rs"]
mod admin_setup;
#[path = "support/api_pool.rs"]
mod api_pool;
#[path = "support/fake_node.rs"]
mod fake_node;
#[path = "support/raw_miner.rs"]
mod raw_miner;
#[path = "support/temp_dir.rs"]
mod temp_dir;

use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use admin_setup::{Admin as Session, set_up};
use raw_miner::Miner;
use reqwest::{Client, StatusCode};
use serde_json::{Value, json};
use warppool_control::run::Daemon;

const ADDRESS: &str = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

/// A request as the admin session (with its CSRF header when `csrf`).
fn admin(
    http: &Client,
    s: &Session,
    method: reqwest::Method,
    url: String,
    csrf: bool,
) -> reqwest::RequestBuilder {
    let r = http.request(method, url).header("cookie", &s.cookie);
    if csrf {
        r.header("x-csrf-token", &s.csrf)
    } else {
        r
    }
}

async fn status_code(r: reqwest::RequestBuilder) -> (StatusCode, Value) {
    let r = r.send().await.unwrap();
    let status = r.status();
    (status, r.json().await.unwrap_or(Value::Null))
}

async fn list(http: &Client, base: &str, s: &Session, query: &str) -> Value {
    let url = format!("{base}/api/v1/admin/connections{query}");
    let (status, body) = status_code(admin(http, s, reqwest::Method::GET, url, false)).await;
    assert_eq!(status, 200, "{body}");
    body
}

/// Waits until the list (with `query`) holds `n` rows.
async fn wait_rows(http: &Client, base: &str, s: &Session, query: &str, n: usize) -> Value {
    for _ in 0..200 {
        let body = list(http, base, s, query).await;
        if body["rows"].as_array().unwrap().len() == n {
            return body;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!(
        "the list never held {n} rows: {}",
        list(http, base, s, query).await
    );
}

fn stratum(daemon: &Daemon) -> SocketAddr {
    daemon.pool().local_addrs()[0]
}

fn loopback(last: u8) -> IpAddr {
    IpAddr::from([127, 0, 0, last])
}

async fn still_works(m: &mut Miner, id: u64) {
    let line = format!(r#"{{"id":{id},"method":"mining.suggest_difficulty","params":[1]}}"#);
    let reply = m.request(id, &line).await.expect("still connected");
    assert_eq!(reply["id"], id);
}

async fn audit_actions(http: &Client, base: &str, s: &Session) -> Vec<(String, String)> {
    let url = format!("{base}/api/v1/admin/audit?limit=200");
    let (status, body) = status_code(admin(http, s, reqwest::Method::GET, url, false)).await;
    assert_eq!(status, 200);
    body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            let action = r["action"].as_str().unwrap().to_owned();
            (action, r["target"].as_str().unwrap_or("").to_owned())
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_kick_and_kick_all_over_real_connections() {
    let p = api_pool::start("api-connections-kick").await;
    let (base, http) = (p.base.clone(), Client::new());
    let s = set_up(&http, &base).await;
    let addr = stratum(&p.daemon);
    let mut a = Miner::connect_from(loopback(1), addr, &format!("{ADDRESS}.a"), "bitaxe/1").await;
    let mut b = Miner::connect_from(loopback(1), addr, &format!("{ADDRESS}.b"), "nerd/2").await;
    let a_port = a.write.local_addr().unwrap().port();
    let row_a = check_list(&http, &base, &s, addr, a_port).await;
    let id = row_a["id"].as_str().unwrap().to_owned();
    check_kicks(&http, &base, &s, &id, &mut a, &mut b).await;
    check_access(&http, &base, &p.dir).await;
    check_diagnostics(&http, &base, &s).await;
    let actions = audit_actions(&http, &base, &s).await;
    let kicks: Vec<_> = actions
        .iter()
        .filter(|(a, _)| a == "connection.kick")
        .collect();
    assert_eq!(kicks.len(), 2, "{actions:?}");
    assert!(kicks.iter().any(|(_, t)| *t == format!("connection:{id}")));
    p.daemon.shutdown().await.unwrap();
}

/// The list shows both miners with their real peer; filters, paging and bad queries.
async fn check_list(
    http: &Client,
    base: &str,
    s: &Session,
    addr: SocketAddr,
    a_port: u16,
) -> Value {
    let body = wait_rows(http, base, s, "", 2).await;
    assert_eq!(body["total"], 2);
    let row_a = body["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["worker"] == format!("{ADDRESS}.a"))
        .expect("a listed")
        .clone();
    assert_eq!(row_a["ip"], "127.0.0.1");
    assert_eq!(row_a["port"], a_port, "the real peer port");
    assert_eq!(row_a["local_port"], addr.port());
    assert_eq!(row_a["tls"], false);
    assert_eq!(row_a["user_agent"], "bitaxe/1");
    assert!(row_a["connected_at"].as_i64().unwrap() >= now() - 60);
    // Filters and paging.
    let only_b = list(http, base, s, "?worker=.B").await;
    assert_eq!(only_b["rows"].as_array().unwrap().len(), 1);
    assert_eq!(only_b["rows"][0]["worker"], format!("{ADDRESS}.b"));
    assert_eq!(list(http, base, s, "?ip=127.0.0.9").await["total"], 0);
    let first = list(http, base, s, "?limit=1").await;
    let cursor = first["next_cursor"].as_str().unwrap().to_owned();
    let second = list(http, base, s, &format!("?limit=1&cursor={cursor}")).await;
    assert_ne!(first["rows"][0]["id"], second["rows"][0]["id"]);
    for bad in ["?limit=0", "?limit=1001", "?ip=nope", "?cursor=x"] {
        let url = format!("{base}/api/v1/admin/connections{bad}");
        let (status, _) = status_code(admin(http, s, reqwest::Method::GET, url, false)).await;
        assert_eq!(status, 400, "{bad}");
    }
    row_a
}

/// Kick `a` (id `id`): it sees EOF, `b` keeps working, the list drops `a`; then kick-all.
async fn check_kicks(
    http: &Client,
    base: &str,
    s: &Session,
    id: &str,
    a: &mut Miner,
    b: &mut Miner,
) {
    let kick = |id: &str| format!("{base}/api/v1/admin/connections/{id}/kick");
    let (status, _) = status_code(admin(http, s, reqwest::Method::POST, kick(id), false)).await;
    assert_eq!(status, 403, "a session's write needs its CSRF header");
    let (status, body) = status_code(admin(http, s, reqwest::Method::POST, kick(id), true)).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["kicked"], 1);
    assert!(a.closed_within(5).await, "the kicked miner sees EOF");
    still_works(b, 50).await;
    wait_rows(http, base, s, "", 1).await;
    let (status, body) = status_code(admin(http, s, reqwest::Method::POST, kick(id), true)).await;
    assert_eq!(status, 404, "{body}");
    let (status, _) = status_code(admin(
        http,
        s,
        reqwest::Method::POST,
        kick("12345678"),
        true,
    ))
    .await;
    assert_eq!(status, 404);

    // Disconnect all.
    let url = format!("{base}/api/v1/admin/connections/kick-all");
    let r = admin(http, s, reqwest::Method::POST, url, true).json(&json!({}));
    let (status, body) = status_code(r).await;
    assert_eq!(status, 200, "{body}");
    assert_eq!(body["kicked"], 1);
    assert!(b.closed_within(5).await);
    wait_rows(http, base, s, "", 0).await;
}

/// Not signed in: 401; a read token: 403.
async fn check_access(http: &Client, base: &str, dir: &temp_dir::TempDir) {
    let r = http
        .get(format!("{base}/api/v1/admin/connections"))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 401);
    let auth =
        warppool_control::auth::Auth::open(warppool_control::auth::AuthConfig::new(dir.db()))
            .unwrap();
    let scope = warppool_control::auth::Scope::Read;
    let token = auth.cli_create_token("op", "reader", scope, now()).unwrap();
    let r = http
        .get(format!("{base}/api/v1/admin/connections"))
        .bearer_auth(token.text.expose())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}

/// The diagnostics bundle: admin only, the shards' counters, the configuration without its
/// secrets (the test config's RPC password is `pass`).
async fn check_diagnostics(http: &Client, base: &str, s: &Session) {
    let url = format!("{base}/api/v1/admin/diagnostics");
    let r = http.get(&url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = admin(http, s, reqwest::Method::GET, url, false)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let text = r.text().await.unwrap();
    let d: Value = serde_json::from_str(&text).unwrap();
    assert!(d["status"]["version"].is_string(), "{d}");
    assert_eq!(d["shards"].as_array().unwrap().len(), 1);
    assert!(d["shards"][0]["accepted"].as_u64().unwrap() >= 2, "{d}");
    assert!(d["shards"][0]["driver"].is_string());
    assert_eq!(d["config"]["nodes"][0]["name"], "fake");
    assert_eq!(d["config"]["nodes"][0]["rpc_auth"], "password");
    assert!(
        !text.contains("\"pass\""),
        "no secret in the bundle: {text}"
    );
    assert_eq!(d["storage"]["live_connections"], 0);
    assert!(d["storage"]["database_bytes"].as_u64().unwrap() > 0);
}

async fn post_ban(http: &Client, base: &str, s: &Session, ban: Value) -> (StatusCode, Value) {
    let url = format!("{base}/api/v1/admin/bans");
    status_code(admin(http, s, reqwest::Method::POST, url, true).json(&ban)).await
}

async fn refused_banned(http: &Client, base: &str) -> u64 {
    let text = http
        .get(format!("{base}/metrics"))
        .send()
        .await
        .unwrap()
        .text()
        .await
        .unwrap();
    text.lines()
        .filter(|l| l.starts_with("warppool_connections_refused") && l.contains("limit=\"banned\""))
        .map(|l| l.rsplit(' ').next().unwrap().parse::<f64>().unwrap() as u64)
        .sum()
}

/// Whether a connection from `from` is closed at once (refused at accept).
async fn refused_at_accept(from: IpAddr, addr: SocketAddr) -> bool {
    let mut stream = raw_miner::connect_from(from, addr).await.unwrap();
    let mut buf = [0u8; 64];
    let read = tokio::io::AsyncReadExt::read(&mut stream, &mut buf);
    match tokio::time::timeout(Duration::from_secs(5), read).await {
        Ok(n) => matches!(n, Ok(0) | Err(_)),
        Err(_) => false,
    }
}

async fn bans_of(http: &Client, base: &str, s: &Session) -> Value {
    let url = format!("{base}/api/v1/admin/bans");
    let (status, body) = status_code(admin(http, s, reqwest::Method::GET, url, false)).await;
    assert_eq!(status, 200, "{body}");
    body["bans"].clone()
}

/// Bad input is 400, no CSRF header 403; nothing is stored.
async fn check_bad_bans(http: &Client, base: &str, s: &Session) {
    for bad in [
        json!({"ip": "not an ip"}),
        json!({"ip": "127.0.0.2/33"}),
        json!({"ip": "0.0.0.0/0"}),
        json!({"ip": "127.0.0.2", "until": now() - 10}),
        json!({"ip": "127.0.0.2", "reason": "x".repeat(257)}),
        json!({"ip": "127.0.0.2", "colour": "red"}),
    ] {
        let (status, body) = post_ban(http, base, s, bad.clone()).await;
        assert_eq!(status, 400, "{bad}: {body}");
    }
    let url = format!("{base}/api/v1/admin/bans");
    let r = admin(http, s, reqwest::Method::POST, url, false).json(&json!({"ip": "127.0.0.2"}));
    assert_eq!(status_code(r).await.0, 403, "no CSRF header");
    assert_eq!(bans_of(http, base, s).await, json!([]), "nothing changed");
}

/// Bans 127.0.0.2: its live connection closes, `other` keeps working, a new connection is
/// refused and counted; returns the ban's id.
async fn ban_live(http: &Client, base: &str, s: &Session, addr: SocketAddr) -> i64 {
    let mut banned = Miner::connect_from(loopback(2), addr, &format!("{ADDRESS}.x"), "t/1").await;
    let mut other = Miner::connect_from(loopback(1), addr, &format!("{ADDRESS}.y"), "t/1").await;
    wait_rows(http, base, s, "", 2).await;
    let (status, ban) =
        post_ban(http, base, s, json!({"ip": "127.0.0.2", "reason": "abuse"})).await;
    assert_eq!(status, 201, "{ban}");
    assert_eq!(ban["network"], "127.0.0.2/32");
    assert_eq!(ban["reason"], "abuse");
    assert_eq!(ban["created_by"], "admin:op");
    let (status, body) = post_ban(http, base, s, json!({"ip": "127.0.0.2"})).await;
    assert_eq!(status, 409, "{body}");
    assert!(
        banned.closed_within(5).await,
        "the banned address's connection is closed"
    );
    still_works(&mut other, 60).await;
    assert!(
        refused_at_accept(loopback(2), addr).await,
        "refused at accept"
    );
    assert!(
        refused_banned(http, base).await >= 1,
        "counted in warppool_connections_refused{{limit=\"banned\"}}"
    );
    ban["id"].as_i64().unwrap()
}

/// A ban that expires refuses until its second, then not, without a restart; returns its id.
async fn ban_expires(http: &Client, base: &str, s: &Session, addr: SocketAddr) -> i64 {
    let until = now() + 2;
    let (status, ban) = post_ban(http, base, s, json!({"ip": "127.0.0.3", "until": until})).await;
    assert_eq!(status, 201, "{ban}");
    assert!(
        refused_at_accept(loopback(3), addr).await,
        "refused before it expires"
    );
    while now() < until {
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    let mut late = Miner::connect_from(loopback(3), addr, &format!("{ADDRESS}.z"), "t/1").await;
    still_works(&mut late, 80).await;
    assert_eq!(
        bans_of(http, base, s).await,
        json!([]),
        "the expired ban was pruned"
    );
    ban["id"].as_i64().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bans_close_refuse_persist_expire_and_lift() {
    let p = api_pool::start("api-connections-bans").await;
    let (base, http) = (p.base.clone(), Client::new());
    let s = set_up(&http, &base).await;
    check_bad_bans(&http, &base, &s).await;
    let ban_id = ban_live(&http, &base, &s, stratum(&p.daemon)).await;

    // It survives a restart.
    p.daemon.shutdown().await.unwrap();
    let daemon = Daemon::start(api_pool::config(&p.node, &p.dir))
        .await
        .unwrap();
    let base = format!("http://{}", daemon.http_addr().unwrap());
    let addr = stratum(&daemon);
    assert_eq!(bans_of(&http, &base, &s).await[0]["id"], ban_id);
    assert!(
        refused_at_accept(loopback(2), addr).await,
        "still refused after the restart"
    );

    // Unban: the address gets in.
    let del = format!("{base}/api/v1/admin/bans/{ban_id}");
    let r = admin(&http, &s, reqwest::Method::DELETE, del.clone(), true);
    assert_eq!(status_code(r).await.0, 204);
    let r = admin(&http, &s, reqwest::Method::DELETE, del, true);
    assert_eq!(status_code(r).await.0, 404);
    let mut back = Miner::connect_from(loopback(2), addr, &format!("{ADDRESS}.x"), "t/1").await;
    still_works(&mut back, 70).await;

    let expiring = ban_expires(&http, &base, &s, addr).await;
    let actions = audit_actions(&http, &base, &s).await;
    let has = |action: &str, id: i64| {
        let target = format!("ban:{id}");
        actions.iter().any(|(a, t)| a == action && *t == target)
    };
    assert!(has("ban.create", ban_id), "{actions:?}");
    assert!(has("ban.delete", ban_id), "{actions:?}");
    assert!(has("ban.create", expiring), "{actions:?}");
    daemon.shutdown().await.unwrap();
}
