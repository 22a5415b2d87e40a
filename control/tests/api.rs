//! The HTTP API over real HTTP against a running daemon (data plane, block path, a real SQLite
//! file) on a bitcoind double serving regtest templates, with a real Stratum miner whose
//! shares are blocks.

#[path = "support/api_pool.rs"]
mod api_pool;
#[path = "support/fake_node.rs"]
mod fake_node;
#[path = "support/raw_miner.rs"]
mod raw_miner;
#[path = "support/temp_dir.rs"]
mod temp_dir;

use api_pool::Pool;

use std::time::Duration;

use raw_miner::Miner;
use serde_json::{Value, json};
use tokio::io::AsyncWriteExt;
use warppool_control::{run::Daemon, stats::Recorder};
use warppool_core::plane::ShareEvent;

const ADDRESS: &str = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";
const DEADLINE: Duration = Duration::from_secs(30);

async fn get(http: std::net::SocketAddr, path: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .get(format!("http://{http}{path}"))
        .send()
        .await
        .expect("GET");
    let status = r.status().as_u16();
    let body = r.json().await.unwrap_or(Value::Null);
    (status, body)
}

/// Polls `path` until `ok` holds for its body.
async fn until(http: std::net::SocketAddr, path: &str, ok: impl Fn(&Value) -> bool) -> Value {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let (status, body) = get(http, path).await;
        if status == 200 && ok(&body) {
            return body;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "{path}: {status} {body}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

async fn pool(name: &str) -> Pool {
    let p = api_pool::start(name).await;
    until(p.http, "/health", |b| b["status"] == "ok").await;
    p
}

fn column(page: &Value, name: &str) -> usize {
    page["columns"]
        .as_array()
        .unwrap()
        .iter()
        .position(|c| c == name)
        .unwrap_or_else(|| panic!("no column {name}: {page}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miners_shares_show_in_pool_workers_blocks_and_the_umbrel_widget() {
    let p = pool("api-miner").await;
    let stratum = p.daemon.pool().local_addrs()[0];
    let worker = format!("{ADDRESS}.axe1");
    let mut miner = Miner::connect(stratum, &worker, "bitaxe/BM1370/v2.4.0").await;
    for _ in 0..5 {
        let line = miner.block_share();
        miner.write.write_all(line.as_bytes()).await.unwrap();
    }
    let pool = until(p.http, "/api/v1/pool", |b| b["shares"]["accepted"] == 5).await;
    let m10 = &pool["hashrate"]["m10"];
    assert_eq!(m10["shares"], 5);
    let (hps, low, high) = (
        m10["hps"].as_f64().unwrap(),
        m10["low_hps"].as_f64().unwrap(),
        m10["high_hps"].as_f64().unwrap(),
    );
    assert!(low < hps && hps < high, "{m10}");
    // Five shares: a wide interval, and the API says how wide.
    assert!(m10["relative_error"].as_f64().unwrap() > 0.5, "{m10}");
    assert_eq!(pool["workers"]["online"], 1);
    let page = until(p.http, "/api/v1/workers", |b| b["total"] == 1).await;
    let row = &page["rows"][0];
    assert_eq!(row[column(&page, "status")], "online");
    assert_eq!(row[column(&page, "model")], "bitaxe");
    assert_eq!(row[column(&page, "asic")], "BM1370");
    assert_eq!(row[column(&page, "firmware")], "v2.4.0");
    let name = row[column(&page, "name")].as_str().unwrap();
    assert_eq!(name, "bcrt1q…t080.axe1", "the address is masked");
    assert!(
        !page.to_string().contains(ADDRESS),
        "the full address never leaves"
    );
    let id = row[column(&page, "id")].as_str().unwrap().to_owned();
    let (status, detail) = get(p.http, &format!("/api/v1/workers/{id}")).await;
    assert_eq!(status, 200, "{detail}");
    assert_eq!(detail["shares"]["accepted"], 5);
    assert_eq!(detail["hourly_hashrate"].as_array().unwrap().len(), 25);
    let blocks = until(p.http, "/api/v1/blocks", |b| {
        b["rows"].as_array().is_some_and(|r| r.len() == 5)
            && b["rows"][0]["submissions"]
                .as_array()
                .is_some_and(|s| !s.is_empty())
    })
    .await;
    assert_eq!(blocks["rows"][0]["submissions"][0]["node"], "fake");
    assert_eq!(blocks["rows"][0]["worker_id"], id.as_str());
    records_and_widgets(&p, &id, stratum).await;
    comings_and_goings_are_in_the_next_answer(&p, stratum).await;
    p.daemon.shutdown().await.unwrap();
}

/// `/api/v1/workers` answers are shared for a second, but a worker that connects or leaves is
/// in the very next answer of the same URL (no waiting loop on `/workers` itself).
async fn comings_and_goings_are_in_the_next_answer(p: &Pool, stratum: std::net::SocketAddr) {
    let url = "/api/v1/workers?fields=id,status";
    let (_, before) = get(p.http, url).await;
    assert_eq!(before["total"], 1, "{before}");
    let second = Miner::connect(stratum, &format!("{ADDRESS}.axe2"), "bitaxe/BM1370/v2.4.0").await;
    until(p.http, "/api/v1/pool", |b| b["workers"]["online"] == 2).await;
    let (_, with) = get(p.http, url).await;
    assert_eq!(with["total"], 2, "{with}");
    assert_eq!(with["counts"]["by_status"]["online"], 2, "{with}");
    drop(second);
    until(p.http, "/api/v1/pool", |b| b["workers"]["online"] == 1).await;
    let (_, after) = get(p.http, url).await;
    assert_eq!(after["counts"]["by_status"]["online"], 1, "{after}");
    assert_eq!(after["counts"]["by_status"]["offline"], 1, "{after}");
}

/// Best shares, the Umbrel widget, the address lookup and the connect page after the first
/// test's five blocks by worker `id`.
async fn records_and_widgets(p: &Pool, id: &str, stratum: std::net::SocketAddr) {
    let best = until(p.http, "/api/v1/best-shares?scope=all", |b| {
        b["rows"].as_array().is_some_and(|r| !r.is_empty())
    })
    .await;
    assert_eq!(best["rows"][0]["worker_id"], id);
    assert_eq!(best["rows"][0]["model"], "bitaxe");
    let (status, day) = get(p.http, "/api/v1/best-shares?scope=day").await;
    assert_eq!((status, day["scope"].clone()), (200, json!("day")));
    let (status, _) = get(p.http, "/api/v1/best-shares?scope=week").await;
    assert_eq!(status, 400);
    let (_, umbrel) = get(p.http, "/umbrel-api").await;
    assert_eq!(umbrel["type"], "four-stats");
    assert_eq!(umbrel["refresh"], "30s");
    assert_eq!(umbrel["items"].as_array().unwrap().len(), 4);
    assert_eq!(umbrel["items"][2]["text"], "5");
    let (_, address) = get(p.http, &format!("/api/v1/addresses/{ADDRESS}")).await;
    assert_eq!(address["workers"][0]["worker"], "axe1");
    assert_eq!(address["blocks"].as_array().unwrap().len(), 5);
    let (_, connect) = get(p.http, "/api/v1/connect").await;
    assert_eq!(connect["endpoints"][0]["port"], stratum.port());
    assert_eq!(
        connect["endpoints"][0]["url"],
        format!("stratum+tcp://127.0.0.1:{}", stratum.port())
    );
}

/// `n` authorized workers of two models, through the recorder as the shards report them.
fn seed_workers(daemon: &Daemon, n: u64) {
    let events: Vec<ShareEvent> = (0..n)
        .map(|i| ShareEvent::Authorized {
            connection: 1_000_000 + i,
            username: format!("{ADDRESS}.w{i:04}"),
            user_agent: Some(if i % 3 == 0 {
                "NerdMinerV2/V1.8.3".to_owned()
            } else {
                "bitaxe/BM1370/v2.4.0".to_owned()
            }),
            peer: std::net::SocketAddr::from(([127, 0, 0, 1], 40000)),
            local_port: 3333,
            tls: false,
        })
        .collect();
    daemon.recorder().on_shares(&events);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_workers_table_pages_filters_sorts_and_groups() {
    let p = pool("api-table").await;
    seed_workers(&p.daemon, 250);
    let mut seen = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let mut path = "/api/v1/workers?sort=name&dir=asc&limit=100&fields=id,name".to_owned();
        if let Some(c) = &cursor {
            path.push_str(&format!("&cursor={c}"));
        }
        let (status, page) = get(p.http, &path).await;
        assert_eq!(status, 200, "{page}");
        assert_eq!(page["columns"], json!(["id", "name"]));
        assert_eq!(page["total"], 250);
        for row in page["rows"].as_array().unwrap() {
            seen.push(row[1].as_str().unwrap().to_owned());
        }
        match page["next_cursor"].as_str() {
            Some(c) => cursor = Some(c.to_owned()),
            None => break,
        }
    }
    let mut sorted = seen.clone();
    sorted.sort_by_key(|s| s.to_lowercase());
    sorted.dedup();
    assert_eq!(seen, sorted, "three pages, sorted, no row twice");
    assert_eq!(seen.len(), 250);
    let (_, nerd) = get(p.http, "/api/v1/workers?model=NerdMinerV2&group_by=model").await;
    assert_eq!(nerd["total"], 84);
    assert_eq!(
        nerd["counts"]["by_model"]["bitaxe"], 166,
        "chips count past the model filter"
    );
    assert_eq!(nerd["groups"][0]["key"], "NerdMinerV2");
    let (_, search) = get(p.http, "/api/v1/workers?q=W012&fields=name").await;
    assert_eq!(search["total"], 10, "w0120..w0129: {search}");
    let (_, online) = get(p.http, "/api/v1/workers?status=offline").await;
    assert_eq!(online["total"], 0, "every seeded worker is connected");
    p.daemon.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_a_clear_4xx_with_a_code() {
    let p = pool("api-errors").await;
    let long = "x".repeat(200);
    for (path, status, code) in [
        ("/api/v1/workers?limit=0", 400, "BAD_REQUEST"),
        ("/api/v1/workers?limit=100000", 400, "BAD_REQUEST"),
        ("/api/v1/workers?sort=nope", 400, "BAD_REQUEST"),
        ("/api/v1/workers?dir=up", 400, "BAD_REQUEST"),
        ("/api/v1/workers?status=asleep", 400, "BAD_REQUEST"),
        ("/api/v1/workers?cursor=zz", 400, "BAD_REQUEST"),
        ("/api/v1/workers?group_by=colour", 400, "BAD_REQUEST"),
        (&format!("/api/v1/workers?q={long}"), 400, "BAD_REQUEST"),
        ("/api/v1/workers/0123456789abcdef", 404, "NOT_FOUND"),
        ("/api/v1/addresses/bcrt1qnobody", 404, "NOT_FOUND"),
        ("/api/v1/blocks?limit=101", 400, "BAD_REQUEST"),
        ("/api/v1/nothing-here", 404, "NOT_FOUND"),
        ("/../../etc/passwd", 404, "NOT_FOUND"),
    ] {
        let (got, body) = get(p.http, path).await;
        assert_eq!(got, status, "{path}: {body}");
        assert_eq!(body["error"]["code"], code, "{path}: {body}");
        assert!(
            body["error"]["message"]
                .as_str()
                .is_some_and(|m| !m.is_empty())
        );
    }
    // A cursor of one sort is refused for another.
    seed_workers(&p.daemon, 3);
    let (_, page) = get(p.http, "/api/v1/workers?sort=name&limit=1").await;
    let cursor = page["next_cursor"].as_str().unwrap().to_owned();
    let (got, _) = get(
        p.http,
        &format!("/api/v1/workers?sort=difficulty&limit=1&cursor={cursor}"),
    )
    .await;
    assert_eq!(got, 400);
    let r = reqwest::Client::new()
        .post(format!("http://{}/api/v1/pool", p.http))
        .send()
        .await
        .unwrap();
    assert_eq!(r.status().as_u16(), 405);
    p.daemon.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_reports_the_template_and_health() {
    let p = pool("api-status").await;
    // The first template may land a moment after /health answers on a loaded machine.
    let body = until(p.http, "/api/v1/status", |b| b["template"]["height"] == 102).await;
    assert_eq!(body["network"], "regtest");
    assert_eq!(body["demo"], false);
    let codes: Vec<&str> = body["health"]["conditions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["code"].as_str().unwrap())
        .collect();
    assert!(codes.contains(&"NO_MINERS"), "{body}");
    assert_eq!(body["health"]["level"], "info", "{body}");
    let network = until(p.http, "/api/v1/network", |b| b["refreshed_at"] != 0).await;
    assert_eq!(network["nodes"][0]["name"], "fake");
    assert_eq!(network["nodes"][0]["status"], "ok");
    assert_eq!(network["nodes"][0]["version"], "/Satoshi:29.0.0/");
    assert_eq!(network["nodes"][0]["blocks"], 101);
    assert_eq!(network["template"]["height"], 102);
    assert!(
        network["nodes"][0]["rpc_latency_ms"].as_f64().is_some(),
        "{network}"
    );
    let (_, doc) = get(p.http, "/api/v1/openapi.json").await;
    assert_eq!(doc["openapi"], "3.1.0");
    p.daemon.shutdown().await.unwrap();
}
