//! What one `/api/v1/workers` answer costs as the live table grows: one client, one request at
//! a time (no queueing), against the whole daemon (`Daemon::start`: HTTP API, query threads,
//! SQLite storage, the live table) with 1,000 and then 10,000 registered workers.
//!
//! Each request is timed from send to the last byte of the body. The baseline is
//! `/api/v1/status` in the same run: the same HTTP, query-thread and JSON path with a trivial
//! query, so the ratio is the table's own cost. The queries: the default page (100 rows by
//! 10-minute hashrate), a page sorted by name, a search, the chip counts with `group_by`,
//! 1,000 rows, and the tenth page through cursors. Every request's query text is made unique
//! (leading zeros on `limit`: `limit=00100` is `limit=100`), so the API's one-second answer
//! cache never answers it: these are computed answers. A last row repeats one URL, as many
//! viewers of one page do, and shows the cached answer.
//!
//! `cargo bench -p warppool-control --bench workers_page` (`WORKERS_PAGE_SAMPLES` requests per
//! query, default 200).

#[path = "../tests/support/fake_node.rs"]
mod fake_node;
#[path = "support/harness.rs"]
mod harness;

use std::time::{Duration, Instant};

use harness::{config, node, register_workers};
use hdrhistogram::Histogram;
use warppool_control::run::Daemon;

const QUERIES: [(&str, &str); 5] = [
    (
        "default page (100 by hashrate_m10)",
        "/api/v1/workers?limit=100",
    ),
    (
        "sorted by name",
        "/api/v1/workers?limit=100&sort=name&dir=asc",
    ),
    ("search q=w12", "/api/v1/workers?limit=100&q=w12"),
    ("group_by=model", "/api/v1/workers?limit=100&group_by=model"),
    ("1000 rows", "/api/v1/workers?limit=1000"),
];

/// `url` with `i` leading zeros on its `limit` value: another query text, the same query.
fn unique(url: &str, i: u64) -> String {
    let zeros = "0".repeat(usize::try_from(i).expect("a small count"));
    url.replacen("limit=", &format!("limit={zeros}"), 1)
}

/// `samples` requests of one URL (after a first that fills the cache).
async fn repeated(client: &reqwest::Client, url: &str, samples: u64) -> Histogram<u64> {
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
    client.get(url).send().await.expect("an answer");
    for _ in 0..samples {
        let t0 = Instant::now();
        let r = client.get(url).send().await.expect("an answer");
        assert_eq!(r.status(), 200);
        r.bytes().await.expect("a body");
        h.record(micros(t0.elapsed())).expect("in bounds");
    }
    h
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX)
}

/// `samples` sequential requests of `path`; each must answer 200.
async fn timed(client: &reqwest::Client, base: &str, path: &str, samples: u64) -> Histogram<u64> {
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
    for i in 0..samples {
        let url = unique(&format!("{base}{path}"), i);
        let t0 = Instant::now();
        let r = client.get(&url).send().await.expect("an answer");
        assert_eq!(r.status(), 200, "{path}");
        r.bytes().await.expect("a body");
        h.record(micros(t0.elapsed())).expect("in bounds");
    }
    h
}

/// Walks ten pages with cursors; times the tenth.
async fn tenth_page(client: &reqwest::Client, base: &str, samples: u64) -> Histogram<u64> {
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("histogram");
    let first = format!("{base}/api/v1/workers?limit=100&fields=id");
    let mut cursor: Option<String> = None;
    for _ in 0..9 {
        let url = cursor
            .as_ref()
            .map_or_else(|| first.clone(), |c| format!("{first}&cursor={c}"));
        let page: serde_json::Value = client.get(&url).send().await.unwrap().json().await.unwrap();
        cursor = page["next_cursor"].as_str().map(str::to_owned);
    }
    let cursor = cursor.expect("a tenth page");
    let url = format!("{base}/api/v1/workers?limit=100&cursor={cursor}");
    for i in 0..samples {
        let url = unique(&url, i);
        let t0 = Instant::now();
        let r = client.get(&url).send().await.expect("an answer");
        assert_eq!(r.status(), 200);
        r.bytes().await.expect("a body");
        h.record(micros(t0.elapsed())).expect("in bounds");
    }
    h
}

fn row(name: &str, h: &Histogram<u64>, baseline: &Histogram<u64>) -> String {
    format!(
        "| {name} | {:.2} | {:.2} | {:.1} |",
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.value_at_quantile(0.5) as f64 / baseline.value_at_quantile(0.5).max(1) as f64
    )
}

fn main() {
    let samples = harness::samples("WORKERS_PAGE_SAMPLES", 200);
    let dir = harness::bench_dir("workers-page");
    let runtime = warppool_control::run::build_runtime().expect("control runtime");
    let node = runtime.block_on(node(None));
    let daemon = runtime
        .block_on(Daemon::start(config(&node, &dir, "")))
        .expect("daemon");
    let base = format!("http://{}", daemon.http_addr().expect("http"));
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let mut registered = 0;
    for workers in [1_000, 10_000] {
        register_workers(&daemon, registered, workers - registered);
        registered = workers;
        println!("\n{workers} workers, {samples} sequential requests each");
        println!("| query | p50 ms | p99 ms | p50 / status p50 |");
        println!("|---|---|---|---|");
        runtime.block_on(async {
            let status = timed(&client, &base, "/api/v1/status", samples).await;
            println!("{}", row("/api/v1/status (baseline)", &status, &status));
            for (name, path) in QUERIES {
                let h = timed(&client, &base, path, samples).await;
                println!("{}", row(name, &h, &status));
            }
            let h = tenth_page(&client, &base, samples).await;
            println!("{}", row("tenth page by cursor", &h, &status));
            let url = format!("{base}/api/v1/workers?limit=100");
            let h = repeated(&client, &url, samples).await;
            println!(
                "{}",
                row("default page, one URL repeated (cached)", &h, &status)
            );
        });
    }
    runtime.block_on(daemon.shutdown()).expect("clean shutdown");
    let _ = std::fs::remove_dir_all(&dir);
}
