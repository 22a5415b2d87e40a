//! `GET/PUT /api/v1/admin/config` over real HTTP against a running daemon with a real SQLite
//! file and real Stratum connections: every key marked live is changed and its effect seen
//! without a restart (the table test fails if a live key has no row); etags (428, 412),
//! unknown keys and bad values (400 naming the key), non-admins (401/403), step-up for payout
//! keys, restart keys answered in `needs_restart`, and every change surviving a restart.

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

use std::{collections::BTreeSet, net::SocketAddr, time::Duration};

use admin_setup::{Admin, set_up};
use reqwest::Client;
use serde_json::{Value, json};
use tokio::{
    io::{AsyncBufReadExt, AsyncReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
};
use warppool_control::{config::Config, run::Daemon};

const ADDRESS: &str = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";
/// The P2WPKH script of `ADDRESS`.
const ADDRESS_SCRIPT: &str = "0014751e76e8199196d454941c45d1b3a323f1433bd6";

/// No `shards` (the profile decides) and fractional difficulties.
fn config(node: &fake_node::FakeNode, dir: &temp_dir::TempDir) -> Config {
    let text = api_pool::config_toml(node, dir, "", "");
    Config::from_toml(&text, Vec::new()).expect("config")
}

async fn get_config(http: &Client, base: &str, admin: &Admin) -> Value {
    let r = http
        .get(format!("{base}/api/v1/admin/config"))
        .header("cookie", &admin.cookie)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let etag = r.headers()["etag"].to_str().unwrap().to_owned();
    let body: Value = r.json().await.unwrap();
    assert_eq!(body["etag"], etag);
    body
}

/// PUT `changes` with the current etag: status and body.
async fn put(http: &Client, base: &str, admin: &Admin, changes: Value) -> (u16, Value) {
    let etag = get_config(http, base, admin).await["etag"].clone();
    let r = http
        .put(format!("{base}/api/v1/admin/config"))
        .header("cookie", &admin.cookie)
        .header("x-csrf-token", &admin.csrf)
        .header("if-match", etag.as_str().unwrap())
        .json(&json!({ "changes": changes }))
        .send()
        .await
        .unwrap();
    (r.status().as_u16(), r.json().await.unwrap())
}

fn field<'v>(config: &'v Value, key: &str) -> &'v Value {
    config["fields"]
        .as_array()
        .unwrap()
        .iter()
        .find(|f| f["key"] == key)
        .unwrap_or_else(|| panic!("no field {key}"))
}

/// Whether the pool closes a fresh connection within `wait` (a refusal, or a timeout).
async fn closed_within(stream: &mut TcpStream, wait: Duration) -> bool {
    let mut buf = [0u8; 256];
    let deadline = tokio::time::Instant::now() + wait;
    loop {
        match tokio::time::timeout_at(deadline, stream.read(&mut buf)).await {
            Err(_) => return false,
            Ok(Ok(0) | Err(_)) => return true,
            Ok(Ok(_)) => {}
        }
    }
}

/// Subscribes (with `before_authorize` lines first) and returns the first set_difficulty.
async fn first_difficulty(stratum: SocketAddr, before_authorize: &str) -> f64 {
    let stream = TcpStream::connect(stratum).await.unwrap();
    let (read, mut write) = stream.into_split();
    let hello = format!(
        "{{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[\"t\"]}}\n{before_authorize}\
         {{\"id\":2,\"method\":\"mining.authorize\",\"params\":[\"{ADDRESS}.d\",\"x\"]}}\n"
    );
    write.write_all(hello.as_bytes()).await.unwrap();
    let mut lines = BufReader::new(read).lines();
    loop {
        let line = lines.next_line().await.unwrap().unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        if v["method"] == "mining.set_difficulty" {
            return v["params"][0].as_f64().unwrap();
        }
    }
}

/// The next notify's coinbase (coinb1 + coinb2 as hex) on `miner`.
async fn next_coinbase(miner: &mut raw_miner::Miner) -> String {
    loop {
        let line = tokio::time::timeout(Duration::from_secs(10), miner.lines.next_line())
            .await
            .expect("a notify in time")
            .unwrap()
            .unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        if v["method"] == "mining.notify" {
            let p = &v["params"];
            return format!("{}{}", p[2].as_str().unwrap(), p[3].as_str().unwrap());
        }
    }
}

/// Opens `n` connections; how many the pool closed at once.
async fn refused_of(stratum: SocketAddr, n: usize) -> (usize, Vec<TcpStream>) {
    let mut streams = Vec::new();
    for _ in 0..n {
        streams.push(TcpStream::connect(stratum).await.unwrap());
    }
    let mut refused = 0;
    for s in &mut streams {
        if closed_within(s, Duration::from_millis(300)).await {
            refused += 1;
        }
    }
    (refused, streams)
}

fn hex(text: &str) -> String {
    text.bytes().map(|b| format!("{b:02x}")).collect()
}

type Row = Vec<&'static str>;

/// Every live key: changed through the API, its effect seen without a restart.
async fn live_rows(http: &Client, base: &str, admin: &Admin, stratum: SocketAddr) -> Row {
    let mut covered = Vec::new();
    row_0(http, base, admin, stratum, &mut covered).await;
    row_1(http, base, admin, stratum, &mut covered).await;
    row_2(http, base, admin, stratum, &mut covered).await;
    row_3(http, base, admin, stratum, &mut covered).await;
    row_4(http, base, admin, stratum, &mut covered).await;
    row_5(http, base, admin, stratum, &mut covered).await;
    row_6(http, base, admin, stratum, &mut covered).await;
    covered
}

async fn row_0(http: &Client, base: &str, admin: &Admin, stratum: SocketAddr, covered: &mut Row) {
    // profile: "small" caps connections per address at 64 (medium: 1024), live; shards wait.
    let (refused, held) = refused_of(stratum, 65).await;
    assert_eq!(refused, 0, "medium admits 65 connections of one address");
    drop(held);
    tokio::time::sleep(Duration::from_millis(500)).await;
    let (status, r) = put(http, base, admin, json!({"profile": "small"})).await;
    assert_eq!(status, 200, "{r}");
    let live: Vec<&str> = r["applied_live"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(
        live.contains(&"profile") && live.contains(&"pool.connections_per_ip_max"),
        "{r}"
    );
    let restart: Vec<&str> = r["needs_restart"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_str().unwrap())
        .collect();
    assert!(restart.contains(&"pool.shards"), "{r}");
    let status: Value = http
        .get(format!("{base}/api/v1/status"))
        .send()
        .await
        .unwrap()
        .json()
        .await
        .unwrap();
    assert_eq!(status["profile"], "small");
    let (refused, held) = refused_of(stratum, 65).await;
    assert_eq!(
        refused, 1,
        "small refuses the 65th connection of one address"
    );
    drop(held);
    covered.push("profile");
    tokio::time::sleep(Duration::from_millis(500)).await;
}

async fn row_1(http: &Client, base: &str, admin: &Admin, stratum: SocketAddr, covered: &mut Row) {
    // pool.connections_per_ip_max: 2 admits two and refuses the third.
    assert_eq!(
        put(http, base, admin, json!({"pool.connections_per_ip_max": 2}))
            .await
            .0,
        200
    );
    let (refused, held) = refused_of(stratum, 3).await;
    assert_eq!(refused, 1);
    drop(held);
    covered.push("pool.connections_per_ip_max");
    assert_eq!(
        put(
            http,
            base,
            admin,
            json!({"pool.connections_per_ip_max": 100})
        )
        .await
        .0,
        200
    );
    tokio::time::sleep(Duration::from_millis(500)).await;
}

async fn row_2(http: &Client, base: &str, admin: &Admin, stratum: SocketAddr, covered: &mut Row) {
    // pool.accept_rate_per_sec and pool.accept_burst: one a second, no burst; of 8 quick
    // connections each shard admits one.
    let (status, _) = put(
        http,
        base,
        admin,
        json!({"pool.accept_rate_per_sec": 1, "pool.accept_burst": 1}),
    )
    .await;
    assert_eq!(status, 200);
    let (refused, held) = refused_of(stratum, 8).await;
    assert!(refused >= 8 - 2, "{refused} of 8 refused");
    drop(held);
    covered.extend(["pool.accept_rate_per_sec", "pool.accept_burst"]);
    let (status, _) = put(
        http,
        base,
        admin,
        json!({"pool.accept_rate_per_sec": 1000, "pool.accept_burst": 2000}),
    )
    .await;
    assert_eq!(status, 200);
    tokio::time::sleep(Duration::from_secs(1)).await;
}

async fn row_3(http: &Client, base: &str, admin: &Admin, stratum: SocketAddr, covered: &mut Row) {
    // pool.subscribe_timeout_secs: 1 s closes a silent connection (default 30 s).
    let mut silent = TcpStream::connect(stratum).await.unwrap();
    assert_eq!(
        put(http, base, admin, json!({"pool.subscribe_timeout_secs": 1}))
            .await
            .0,
        200
    );
    assert!(closed_within(&mut silent, Duration::from_secs(4)).await);
    covered.push("pool.subscribe_timeout_secs");
}

async fn row_4(http: &Client, base: &str, admin: &Admin, stratum: SocketAddr, covered: &mut Row) {
    // pool.idle_timeout_secs: 1 s closes a subscribed miner that says nothing (default 600 s).
    let mut miner = raw_miner::Miner::connect(stratum, &format!("{ADDRESS}.idle"), "t").await;
    assert_eq!(
        put(http, base, admin, json!({"pool.idle_timeout_secs": 1}))
            .await
            .0,
        200
    );
    let closed = tokio::time::timeout(Duration::from_secs(5), async {
        while let Ok(Some(_)) = miner.lines.next_line().await {}
    })
    .await;
    assert!(closed.is_ok(), "the idle miner was closed");
    covered.push("pool.idle_timeout_secs");
    assert_eq!(
        put(http, base, admin, json!({"pool.idle_timeout_secs": 600}))
            .await
            .0,
        200
    );
}

async fn row_5(http: &Client, base: &str, admin: &Admin, stratum: SocketAddr, covered: &mut Row) {
    // port[0].difficulty_start: a new connection starts at it.
    assert_eq!(
        put(http, base, admin, json!({"port[0].difficulty_start": 0.5}))
            .await
            .0,
        200
    );
    assert_eq!(first_difficulty(stratum, "").await, 0.5);
    covered.push("port[0].difficulty_start");

    // port[0].difficulty_min / max: a suggestion is clamped to them.
    let suggest = |d: f64| {
        format!("{{\"id\":3,\"method\":\"mining.suggest_difficulty\",\"params\":[{d}]}}\n")
    };
    assert_eq!(
        put(http, base, admin, json!({"port[0].difficulty_min": 0.25}))
            .await
            .0,
        200
    );
    assert_eq!(first_difficulty(stratum, &suggest(0.001)).await, 0.25);
    covered.push("port[0].difficulty_min");
    assert_eq!(
        put(http, base, admin, json!({"port[0].difficulty_max": 2.0}))
            .await
            .0,
        200
    );
    assert_eq!(first_difficulty(stratum, &suggest(100.0)).await, 2.0);
    covered.push("port[0].difficulty_max");
}

async fn row_6(http: &Client, base: &str, admin: &Admin, stratum: SocketAddr, covered: &mut Row) {
    // pool.coinbase_tag and pool.split: in the next notify's coinbase.
    let mut miner = raw_miner::Miner::connect(stratum, &format!("{ADDRESS}.cb"), "t").await;
    assert_eq!(
        put(http, base, admin, json!({"pool.coinbase_tag": "/cfgtest/"}))
            .await
            .0,
        200
    );
    assert!(next_coinbase(&mut miner).await.contains(&hex("/cfgtest/")));
    covered.push("pool.coinbase_tag");
    let split = json!({"pool.split": [{"address": ADDRESS, "value_sats": 1000}]});
    assert_eq!(put(http, base, admin, split).await.0, 200);
    assert!(
        next_coinbase(&mut miner)
            .await
            .contains(&format!("e803000000000000{}{ADDRESS_SCRIPT}", "16"))
    );
    covered.push("pool.split");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_live_key_applies_without_a_restart_and_everything_survives_one() {
    let dir = temp_dir::TempDir::new("api-config");
    let node = api_pool::node().await;
    let daemon = Daemon::start(config(&node, &dir)).await.unwrap();
    let base = format!("http://{}", daemon.http_addr().unwrap());
    let stratum = daemon.pool().local_addrs()[0];
    let http = Client::new();
    let admin = set_up(&http, &base).await;

    let before = get_config(&http, &base, &admin).await;
    assert_eq!(before["profile"], "medium");
    assert_eq!(field(&before, "pool.accept_burst")["source"], "profile");
    assert_eq!(field(&before, "network")["source"], "file");
    let live: BTreeSet<String> = before["fields"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|f| f["live"] == true)
        .map(|f| f["key"].as_str().unwrap().to_owned())
        .collect();

    let covered: BTreeSet<String> = live_rows(&http, &base, &admin, stratum)
        .await
        .into_iter()
        .map(str::to_owned)
        .collect();
    assert_eq!(
        covered, live,
        "every live key has a row, and only live keys"
    );

    // A restart key is stored and answered in needs_restart.
    let (status, r) = put(&http, &base, &admin, json!({"template.refresh_secs": 45})).await;
    assert_eq!(status, 200);
    assert_eq!(r["needs_restart"], json!(["template.refresh_secs"]));
    assert_eq!(r["applied_live"], json!([]));
    let after = get_config(&http, &base, &admin).await;
    assert!(
        after["restart_pending"]
            .as_array()
            .unwrap()
            .contains(&json!("template.refresh_secs"))
    );

    // The audit log has each change with before and after.
    let r = http
        .get(format!("{base}/api/v1/admin/audit?limit=200"))
        .header("cookie", &admin.cookie)
        .send()
        .await
        .unwrap();
    let audit: Value = r.json().await.unwrap();
    let tag = audit["rows"]
        .as_array()
        .unwrap()
        .iter()
        .find(|r| r["action"] == "config.change" && r["target"] == "pool.coinbase_tag")
        .expect("audited");
    assert!(tag["before"].as_str().unwrap().contains("/warppool/"));
    assert!(tag["after"].as_str().unwrap().contains("/cfgtest/"));

    // Everything survives a restart of the daemon (same file, same database).
    let token = admin_token(&http, &base, &admin).await;
    daemon.shutdown().await.unwrap();
    survives_a_restart(&http, &node, &dir, &token).await;
}

async fn survives_a_restart(
    http: &Client,
    node: &fake_node::FakeNode,
    dir: &temp_dir::TempDir,
    token: &str,
) {
    let daemon = Daemon::start(config(node, dir)).await.unwrap();
    let base = format!("http://{}", daemon.http_addr().unwrap());
    let r = http
        .get(format!("{base}/api/v1/admin/config"))
        .bearer_auth(token)
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let after: Value = r.json().await.unwrap();
    assert_eq!(after["profile"], "small");
    assert_eq!(
        field(&after, "pool.shards")["value"],
        1,
        "the restart key applied at start"
    );
    assert_eq!(field(&after, "template.refresh_secs")["value"], 45);
    assert_eq!(field(&after, "template.refresh_secs")["source"], "override");
    assert_eq!(field(&after, "pool.coinbase_tag")["value"], "/cfgtest/");
    assert_eq!(after["restart_pending"], json!([]));
    let stratum = daemon.pool().local_addrs()[0];
    assert_eq!(
        first_difficulty(stratum, "").await,
        0.5,
        "difficulty_start kept"
    );
    daemon.shutdown().await.unwrap();
}

async fn admin_token(http: &Client, base: &str, admin: &Admin) -> String {
    let r = http
        .post(format!("{base}/api/v1/admin/tokens"))
        .header("cookie", &admin.cookie)
        .header("x-csrf-token", &admin.csrf)
        .json(&json!({"name": "cfg", "scope": "admin"}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200);
    let v: Value = r.json().await.unwrap();
    v["text"].as_str().unwrap().to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn etags_keys_values_and_callers_are_checked_and_nothing_changes() {
    let dir = temp_dir::TempDir::new("api-config-refusals");
    let node = api_pool::node().await;
    let daemon = Daemon::start(config(&node, &dir)).await.unwrap();
    let base = format!("http://{}", daemon.http_addr().unwrap());
    let http = Client::new();
    let admin = set_up(&http, &base).await;
    let url = format!("{base}/api/v1/admin/config");
    let etag = get_config(&http, &base, &admin).await["etag"]
        .as_str()
        .unwrap()
        .to_owned();
    let send = |if_match: Option<&str>, changes: Value| {
        let mut r = http
            .put(&url)
            .header("cookie", &admin.cookie)
            .header("x-csrf-token", &admin.csrf)
            .json(&json!({ "changes": changes }));
        if let Some(m) = if_match {
            r = r.header("if-match", m.to_owned());
        }
        r.send()
    };
    let r = send(None, json!({"pool.idle_timeout_secs": 60}))
        .await
        .unwrap();
    assert_eq!(r.status(), 428);
    let r = send(
        Some("\"0000000000000000\""),
        json!({"pool.idle_timeout_secs": 60}),
    )
    .await
    .unwrap();
    assert_eq!(r.status(), 412);
    assert_eq!(
        r.headers()["etag"].to_str().unwrap(),
        etag,
        "412 names the current etag"
    );
    let r = send(Some(&etag), json!({"pool.no_such_key": 1}))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let message = r.json::<Value>().await.unwrap()["error"]["message"].to_string();
    assert!(message.contains("pool.no_such_key"), "{message}");
    let r = send(Some(&etag), json!({"pool.accept_burst": 0}))
        .await
        .unwrap();
    assert_eq!(r.status(), 400);
    let body: Value = r.json().await.unwrap();
    let message = body["error"]["message"].as_str().unwrap();
    assert!(
        message.contains("pool.accept_burst") && message.contains("1..="),
        "{message}"
    );
    let r = send(Some(&etag), json!({"port[5].difficulty_start": 1}))
        .await
        .unwrap();
    assert_eq!(r.status(), 400, "a port that does not exist");
    // Nothing changed: the same etag, the same value.
    let now = get_config(&http, &base, &admin).await;
    assert_eq!(now["etag"], etag);
    assert_eq!(field(&now, "pool.accept_burst")["value"], 2000);

    callers_are_checked(&http, &base, &admin, &url, &etag).await;
    daemon.shutdown().await.unwrap();
}

async fn callers_are_checked(http: &Client, base: &str, admin: &Admin, url: &str, etag: &str) {
    // No caller: 401; a read token: 403; an admin token cannot change payout keys (step-up).
    let r = http.get(url).send().await.unwrap();
    assert_eq!(r.status(), 401);
    let r = http
        .post(format!("{base}/api/v1/admin/tokens"))
        .header("cookie", &admin.cookie)
        .header("x-csrf-token", &admin.csrf)
        .json(&json!({"name": "reader", "scope": "read"}))
        .send()
        .await
        .unwrap();
    let read: Value = r.json().await.unwrap();
    let r = http
        .get(url)
        .bearer_auth(read["text"].as_str().unwrap())
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
    let token = admin_token(http, base, admin).await;
    let split = json!({"changes": {"pool.split": [{"address": ADDRESS, "value_sats": 1000}]}});
    let r = http
        .put(url)
        .bearer_auth(&token)
        .header("if-match", etag)
        .json(&split)
        .send()
        .await
        .unwrap();
    assert_eq!(
        r.status(),
        403,
        "payout changes need a session with a recent step-up"
    );
    let r = http
        .put(url)
        .bearer_auth(&token)
        .header("if-match", etag)
        .json(&json!({"changes": {"pool.coinbase_tag": "/tok/"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 200, "other keys take an admin token");
    // A session without CSRF header: 403.
    let r = http
        .put(url)
        .header("cookie", &admin.cookie)
        .header("if-match", "*")
        .json(&json!({"changes": {"pool.coinbase_tag": "/x/"}}))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status(), 403);
}
