//! `[ui]` over real HTTP against a running daemon: who reads the public pages
//! (`ui.public`) and who sees full payout addresses (admins, or everyone with
//! `ui.show_addresses`), with a real miner's worker in the tables.

#[path = "support/admin.rs"]
mod admin;
#[path = "support/api_pool.rs"]
mod api_pool;
#[path = "support/fake_node.rs"]
mod fake_node;
#[path = "support/raw_miner.rs"]
mod raw_miner;
#[path = "support/temp_dir.rs"]
mod temp_dir;

use std::time::Duration;

use admin::{get, make_token, set_up};
use raw_miner::Miner;
use reqwest::Client;
use serde_json::Value;
use warppool_control::api::v1::{mask_name, worker_id};

const ADDRESS: &str = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";
const DEADLINE: Duration = Duration::from_secs(30);

/// The worker's name in `/workers` and `/workers/{id}` as the caller sees them.
async fn names(
    http: &Client,
    base: &str,
    id: &str,
    cookie: Option<&str>,
    token: Option<&str>,
) -> (String, String) {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let (status, page) = get(
            http,
            &format!("{base}/api/v1/workers?fields=id,name"),
            cookie,
            token,
        )
        .await;
        assert_eq!(status, 200, "{page}");
        if let Some(row) = page["rows"].as_array().and_then(|r| r.first()) {
            let (status, detail) =
                get(http, &format!("{base}/api/v1/workers/{id}"), cookie, token).await;
            assert_eq!(status, 200, "{detail}");
            return (
                row[1].as_str().unwrap().to_owned(),
                detail["name"].as_str().unwrap().to_owned(),
            );
        }
        assert!(tokio::time::Instant::now() < deadline, "no worker: {page}");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn addresses_are_masked_for_visitors_and_read_tokens_and_shown_to_admins() {
    let p = api_pool::start("ui-mask").await;
    let http = Client::new();
    let name = format!("{ADDRESS}.axe1");
    let _miner = Miner::connect(p.daemon.pool().local_addrs()[0], &name, "bitaxe/v2.4.0").await;
    let id = worker_id(&name);
    let masked = mask_name(&name);
    assert_ne!(masked, name);
    assert_eq!(
        names(&http, &p.base, &id, None, None).await,
        (masked.clone(), masked.clone())
    );

    let admin = set_up(&http, &p.base).await;
    let r = make_token(&http, &p.base, &admin, "read", true).await;
    let read: Value = r.json().await.unwrap();
    let read = read["text"].as_str().unwrap().to_owned();
    let r = make_token(&http, &p.base, &admin, "admin", true).await;
    let full: Value = r.json().await.unwrap();
    let full = full["text"].as_str().unwrap().to_owned();

    let session = names(&http, &p.base, &id, Some(&admin.cookie), None).await;
    assert_eq!(session, (name.clone(), name.clone()));
    assert_eq!(
        names(&http, &p.base, &id, None, Some(&full)).await,
        (name.clone(), name.clone())
    );
    assert_eq!(
        names(&http, &p.base, &id, None, Some(&read)).await,
        (masked.clone(), masked.clone())
    );
    // A dead cookie on a public pool reads as a visitor, not as an error.
    let stale = names(&http, &p.base, &id, Some("warppool_session=00"), None).await;
    assert_eq!(stale, (masked.clone(), masked));
    // The payout check shows the admin the worker's own address in full.
    let (_, detail) = get(
        &http,
        &format!("{}/api/v1/workers/{id}", p.base),
        Some(&admin.cookie),
        None,
    )
    .await;
    let outputs = detail["payout"]["outputs"].as_array().unwrap();
    assert!(outputs.iter().any(|o| o["address"] == ADDRESS), "{detail}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn show_addresses_shows_them_to_everyone() {
    let p = api_pool::start_with("ui-show", "\n[ui]\nshow_addresses = true\n").await;
    let http = Client::new();
    let name = format!("{ADDRESS}.axe1");
    let _miner = Miner::connect(p.daemon.pool().local_addrs()[0], &name, "bitaxe/v2.4.0").await;
    assert_eq!(
        names(&http, &p.base, &worker_id(&name), None, None).await,
        (name.clone(), name)
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_private_pool_answers_only_admins_and_read_tokens() {
    let p = api_pool::start_with("ui-private", "\n[ui]\npublic = false\n").await;
    let http = Client::new();
    let pages = [
        "/api/v1/status",
        "/api/v1/pool",
        "/api/v1/workers",
        "/api/v1/blocks",
        "/api/v1/best-shares",
        "/api/v1/network",
        "/api/v1/connect",
        "/api/v1/events/recent",
        "/api/v1/pool/history?range=1h",
        "/api/v1/workers/sparklines?ids=0123456789abcdef",
        "/api/v1/connect/last-seen",
        "/umbrel-api",
    ];
    for page in pages {
        let (status, body) = get(&http, &format!("{}{page}", p.base), None, None).await;
        assert_eq!(status, 401, "{page}: {body}");
        assert_eq!(body["error"]["code"], "AUTH_REQUIRED", "{page}: {body}");
    }
    // Liveness, the API description and the admin flows stay reachable.
    assert_eq!(
        get(&http, &format!("{}/health", p.base), None, None)
            .await
            .0,
        200
    );
    let openapi = get(
        &http,
        &format!("{}/api/v1/openapi.json", p.base),
        None,
        None,
    )
    .await;
    assert_eq!(openapi.0, 200);
    let admin = set_up(&http, &p.base).await;
    let r = make_token(&http, &p.base, &admin, "read", true).await;
    let read: Value = r.json().await.unwrap();
    let read = read["text"].as_str().unwrap().to_owned();
    let r = make_token(&http, &p.base, &admin, "metrics", true).await;
    let metrics: Value = r.json().await.unwrap();
    let metrics = metrics["text"].as_str().unwrap().to_owned();
    for page in pages {
        let url = format!("{}{page}", p.base);
        assert_eq!(
            get(&http, &url, None, Some(&read)).await.0,
            200,
            "{page} with read"
        );
        assert_eq!(
            get(&http, &url, Some(&admin.cookie), None).await.0,
            200,
            "{page} as admin"
        );
        let (status, body) = get(&http, &url, None, Some(&metrics)).await;
        assert_eq!(
            (status, &body["error"]["code"]),
            (401, &Value::from("AUTH_REQUIRED")),
            "{page}"
        );
    }
}
