//! History, sparklines, worker events and sessions, and "test my connection" over real HTTP
//! against a running daemon with a real SQLite file: a real Stratum miner's shares, and a
//! year of synthetic minutes written through the storage writer and its rollups (decision
//! 0016) as the minutes close.

#[path = "support/api_pool.rs"]
mod api_pool;
#[path = "support/fake_node.rs"]
mod fake_node;
#[path = "support/raw_miner.rs"]
mod raw_miner;
#[path = "support/temp_dir.rs"]
mod temp_dir;

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use raw_miner::Miner;
use serde_json::Value;
use temp_dir::TempDir;
use tokio::io::AsyncWriteExt;
use warppool_control::api::v1::worker_id;
use warppool_control::run::Daemon;
use warppool_control::stats::Recorder;
use warppool_control::storage::{HistoryRow, ShareRecord, Storage, StorageConfig, StorageReader};
use warppool_core::limits::{
    API_SPARKLINE_IDS_MAX, HISTORY_MINUTE_RETENTION_DAYS, HISTORY_ROLLUP_GRACE_SECS,
};
use warppool_core::plane::ShareEvent;

const ADDRESS: &str = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";
const DEADLINE: Duration = Duration::from_secs(30);
/// A minute must close (and pass the rollup's grace) before its shares are history.
const MINUTE_DEADLINE: Duration = Duration::from_secs(100);
const DAY: i64 = 86_400;
const HASHES_PER_DIFFICULTY: f64 = 4_294_967_296.0;

fn now() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

async fn get(http: SocketAddr, path: &str) -> (u16, Value) {
    let r = reqwest::Client::new()
        .get(format!("http://{http}{path}"))
        .send()
        .await
        .expect("GET");
    let status = r.status().as_u16();
    (status, r.json().await.unwrap_or(Value::Null))
}

/// Polls `path` until `ok` holds for its body, for at most `deadline`.
async fn until(
    http: SocketAddr,
    path: &str,
    deadline: Duration,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    let end = tokio::time::Instant::now() + deadline;
    loop {
        let (status, body) = get(http, path).await;
        if status == 200 && ok(&body) {
            return body;
        }
        assert!(tokio::time::Instant::now() < end, "{path}: {status} {body}");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

fn col(history: &Value, name: &str) -> usize {
    history["columns"]
        .as_array()
        .unwrap()
        .iter()
        .position(|c| c == name)
        .unwrap_or_else(|| panic!("no column {name}: {}", history["columns"]))
}

/// The sum of column `name` over every row.
fn total(history: &Value, name: &str) -> u64 {
    let i = col(history, name);
    history["rows"]
        .as_array()
        .unwrap()
        .iter()
        .map(|r| r[i].as_u64().unwrap())
        .sum()
}

/// The rows with shares in them.
fn busy_rows(history: &Value) -> Vec<Value> {
    let i = col(history, "shares");
    history["rows"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| r[i].as_u64().unwrap() > 0)
        .cloned()
        .collect()
}

fn assert_error(status: u16, body: &Value, expected: u16, words: &str) {
    assert_eq!(status, expected, "{body}");
    let message = body["error"]["message"].as_str().unwrap_or_default();
    assert!(message.contains(words), "{body}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miners_shares_show_in_its_history_timeline_sessions_and_last_seen() {
    let p = api_pool::start("history-miner").await;
    until(p.http, "/health", DEADLINE, |b| b["status"] == "ok").await;
    let stratum = p.daemon.pool().local_addrs()[0];
    let worker = format!("{ADDRESS}.axe1");
    let id = worker_id(&worker);
    let mut miner = Miner::connect(stratum, &worker, "bitaxe/BM1370/v2.4.0").await;
    let mut last = String::new();
    for _ in 0..5 {
        last = miner.block_share();
        miner.write.write_all(last.as_bytes()).await.unwrap();
    }
    // The same share again: rejected as a duplicate.
    miner.write.write_all(last.as_bytes()).await.unwrap();
    let path = format!("/api/v1/workers/{id}/history?range=1h");
    let history = until(p.http, &path, MINUTE_DEADLINE, |b| {
        b["rows"].as_array().is_some_and(|r| r.len() == 60)
            && total(b, "shares") == 5
            && total(b, "rejects") == 1
    })
    .await;
    assert_eq!(history["step_s"], 60);
    let rows = busy_rows(&history);
    let row = rows.last().unwrap();
    let (hps, low, high) = (
        row[col(&history, "hashrate")].as_f64().unwrap(),
        row[col(&history, "hashrate_low")].as_f64().unwrap(),
        row[col(&history, "hashrate_high")].as_f64().unwrap(),
    );
    assert!(
        low < hps && hps < high,
        "an interval around the estimate: {row:?}"
    );
    let difficulty = row[col(&history, "difficulty")].as_f64().unwrap();
    assert_eq!(
        difficulty, 0.000_015_258_789_062_5,
        "the port's difficulty: {row:?}"
    );
    let pool = until(
        p.http,
        "/api/v1/pool/history?range=1h",
        MINUTE_DEADLINE,
        |b| total(b, "shares") == 5,
    )
    .await;
    assert_eq!(pool["rows"].as_array().unwrap().len(), 60);
    let online = col(&pool, "workers_online");
    assert!(busy_rows(&pool).iter().all(|r| r[online] == 1), "{pool}");
    let rate: f64 = busy_rows(&pool)
        .iter()
        .map(|r| r[col(&pool, "reject_rate")].as_f64().unwrap())
        .fold(0.0, f64::max);
    assert!(rate > 0.0, "the duplicate shows as a reject rate: {pool}");
    for (range, points) in [("24h", 288), ("7d", 168), ("30d", 120), ("1y", 365)] {
        let (status, h) = get(p.http, &format!("/api/v1/pool/history?range={range}")).await;
        assert_eq!(status, 200, "{h}");
        assert_eq!(h["rows"].as_array().unwrap().len(), points, "{range}");
    }
    sparkline_of(&p, &id).await;
    sessions_and_events(&p, &id, miner, stratum).await;
    refusals(&p, &id).await;
    p.daemon.shutdown().await.unwrap();
}

async fn sparkline_of(p: &api_pool::Pool, id: &str) {
    let path = format!("/api/v1/workers/sparklines?ids={id},ffffffffffffffff&range=24h");
    let (status, s) = get(p.http, &path).await;
    assert_eq!(status, 200, "{s}");
    assert_eq!(s["step_s"], 3600);
    assert_eq!(s["series"][id].as_array().unwrap().len(), 24);
    assert_eq!(s["unknown"], serde_json::json!(["ffffffffffffffff"]));
    let (_, m) = get(
        p.http,
        &format!("/api/v1/workers/sparklines?ids={id}&range=1h"),
    )
    .await;
    assert_eq!(m["series"][id].as_array().unwrap().len(), 60);
    assert_eq!(m["step_s"], 60);
}

/// The first connection closes and two more come and go: three sessions, paged by two; the
/// timeline says online and offline with the reason; last-seen names the last one.
async fn sessions_and_events(p: &api_pool::Pool, id: &str, miner: Miner, stratum: SocketAddr) {
    let worker = miner.worker.clone();
    drop(miner);
    let events = format!("/api/v1/workers/{id}/events");
    until(p.http, &events, DEADLINE, |b| {
        b["rows"][0]["kind"] == "worker" && b["rows"][0]["fields"]["status"] == "offline"
    })
    .await;
    for agent in ["cgminer/4.12.1", "NerdMinerV2/V1.8.3"] {
        let m = Miner::connect(stratum, &worker, agent).await;
        let seen = until(p.http, "/api/v1/connect/last-seen", DEADLINE, |b| {
            b["user_agent"] == agent
        })
        .await;
        assert_eq!(seen["result"], "connected");
        assert_eq!(seen["ip"], "127.0.0.1");
        assert_eq!(seen["worker"], "bcrt1q…t080.axe1");
        assert_eq!(seen["worker_id"], id);
        assert_eq!(seen["port"], stratum.port());
        drop(m);
        until(p.http, "/api/v1/connect/last-seen", DEADLINE, |b| {
            b["result"] == "closed"
        })
        .await;
    }
    let first = format!("/api/v1/workers/{id}/sessions?limit=2");
    let page = until(p.http, &first, DEADLINE, |b| {
        b["rows"][0]["end"].is_i64() && b["rows"][0]["user_agent"] == "NerdMinerV2/V1.8.3"
    })
    .await;
    assert_eq!(page["rows"].as_array().unwrap().len(), 2);
    assert_eq!(page["rows"][0]["end_reason"], "peer_closed");
    assert_eq!(page["rows"][0]["tls"], false);
    assert_eq!(page["rows"][0]["port"], stratum.port());
    assert_eq!(page["rows"][1]["user_agent"], "cgminer/4.12.1");
    let cursor = page["next_cursor"].as_str().unwrap();
    let (_, older) = get(p.http, &format!("{first}&cursor={cursor}")).await;
    assert_eq!(older["rows"].as_array().unwrap().len(), 1);
    assert_eq!(older["rows"][0]["user_agent"], "bitaxe/BM1370/v2.4.0");
    assert!(older["next_cursor"].is_null());
    let timeline = until(p.http, &format!("{events}?limit=200"), DEADLINE, |b| {
        let statuses: Vec<&Value> = b["rows"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|e| e["kind"] == "worker")
            .map(|e| &e["fields"]["status"])
            .collect();
        statuses.len() == 6
    })
    .await;
    let rows = timeline["rows"].as_array().unwrap();
    let worker_rows: Vec<&Value> = rows.iter().filter(|e| e["kind"] == "worker").collect();
    assert_eq!(worker_rows[0]["fields"]["status"], "offline");
    assert_eq!(worker_rows[0]["fields"]["reason"], "peer_closed");
    assert_eq!(worker_rows[5]["fields"]["status"], "online", "oldest last");
    assert!(
        rows.iter().any(|e| e["kind"] == "block"),
        "the blocks it found are on its timeline: {timeline}"
    );
    assert!(!timeline.to_string().contains(ADDRESS), "addresses masked");
}

async fn refusals(p: &api_pool::Pool, id: &str) {
    let (s, b) = get(p.http, "/api/v1/pool/history?range=2h").await;
    assert_error(s, &b, 400, "1h, 24h, 7d, 30d, 1y");
    let (s, b) = get(p.http, &format!("/api/v1/workers/{id}/history?range=1w")).await;
    assert_error(s, &b, 400, "1h, 24h, 7d, 30d, 1y");
    for tail in ["history", "events", "sessions"] {
        let (s, b) = get(p.http, &format!("/api/v1/workers/0123456789abcdef/{tail}")).await;
        assert_error(s, &b, 404, "no worker");
    }
    let (s, b) = get(p.http, &format!("/api/v1/workers/{id}/events?cursor=x")).await;
    assert_error(s, &b, 400, "cursor");
    let (s, b) = get(p.http, &format!("/api/v1/workers/{id}/sessions?limit=0")).await;
    assert_error(s, &b, 400, "API_WORKER_PAGE_ROWS_MAX");
    let (s, b) = get(p.http, "/api/v1/workers/sparklines?ids=").await;
    assert_error(s, &b, 400, "API_SPARKLINE_IDS_MAX");
    let many: Vec<String> = (0..=API_SPARKLINE_IDS_MAX)
        .map(|i| format!("{i:016x}"))
        .collect();
    let path = format!("/api/v1/workers/sparklines?ids={}", many.join(","));
    let (s, b) = get(p.http, &path).await;
    assert_error(s, &b, 400, "API_SPARKLINE_IDS_MAX");
    let (s, b) = get(
        p.http,
        &format!("/api/v1/workers/sparklines?ids={id}&range=7d"),
    )
    .await;
    assert_error(s, &b, 400, "1h, 24h");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sparklines_of_ten_thousand_workers_come_from_memory() {
    let p = api_pool::start("history-sparklines").await;
    until(p.http, "/health", DEADLINE, |b| b["status"] == "ok").await;
    let names: Vec<String> = (0..10_000).map(|i| format!("{ADDRESS}.s{i:05}")).collect();
    let events: Vec<ShareEvent> = names
        .iter()
        .enumerate()
        .map(|(i, name)| ShareEvent::Authorized {
            connection: 2_000_000 + i as u64,
            username: name.clone(),
            user_agent: Some("bitaxe/BM1370/v2.4.0".to_owned()),
            peer: SocketAddr::from(([127, 0, 0, 1], 40_000)),
            local_port: 3333,
            tls: false,
        })
        .collect();
    p.daemon.recorder().on_shares(&events);
    let ids: Vec<String> = names.iter().step_by(50).map(|n| worker_id(n)).collect();
    assert_eq!(ids.len(), API_SPARKLINE_IDS_MAX);
    let path = format!("/api/v1/workers/sparklines?ids={}", ids.join(","));
    let started = Instant::now();
    let (status, s) = get(p.http, &path).await;
    let took = started.elapsed();
    assert_eq!(status, 200, "{s}");
    assert_eq!(
        s["series"].as_object().unwrap().len(),
        API_SPARKLINE_IDS_MAX
    );
    assert!(s["unknown"].as_array().unwrap().is_empty());
    assert!(
        s["series"]
            .as_object()
            .unwrap()
            .values()
            .all(|v| v.as_array().unwrap().len() == 24)
    );
    // A scan of the live table, no SQLite: well under a second even on a loaded machine.
    assert!(took < Duration::from_secs(2), "{took:?}");
    p.daemon.shutdown().await.unwrap();
}

/// The synthetic shares of worker `k` in the minute starting at `t`: (accepted, difficulty of
/// each, rejected). Worker k mines in minutes whose number ends in k; a few are rejected.
fn synthetic(k: i64, t: i64) -> (u64, f64, u64) {
    let m = t / 60;
    if m % 10 != k {
        return (0, 0.0, 0);
    }
    let accepted = 1 + (m / 10 % 3) as u64;
    let rejected = u64::from(m % 70 == k);
    (accepted, (k + 1) as f64, rejected)
}

const SYNTHETIC_WORKERS: i64 = 3;

fn synthetic_name(k: i64) -> String {
    format!("{ADDRESS}.y{k}")
}

/// Writes worker `k`'s synthetic shares of `[from, until)` through the storage API.
fn feed(storage: &Storage, from: i64, until: i64) {
    let mut t = from;
    while t < until {
        for k in 0..SYNTHETIC_WORKERS {
            let (accepted, difficulty, rejected) = synthetic(k, t);
            let name = synthetic_name(k);
            for i in 0..accepted + rejected {
                let reject = (i >= accepted).then_some("stale");
                assert!(storage.record_share(&ShareRecord {
                    worker: &name,
                    time_unix_s: t + 7,
                    difficulty,
                    hash_difficulty: difficulty * 2.0,
                    reject,
                }));
            }
        }
        t += 60;
    }
}

/// Runs rollup passes at `at` until every level is caught up.
fn roll_up(storage: &Storage, at: i64) {
    let mut passes = 0;
    while storage.roll_up(at).unwrap() > 0 {
        passes += 1;
        assert!(passes < 10_000, "a rollup that never catches up");
    }
}

/// The expected (accepted, difficulty sum, rejected, workers online) of `[t, t + step)` for
/// the workers `ks`, counting only minutes in `[fed_from, fed_until)`.
fn expected(ks: &[i64], t: i64, step: i64, fed: (i64, i64)) -> (u64, f64, u64, u64) {
    let (mut acc, mut sum, mut rej, mut online) = (0, 0.0, 0, 0);
    for &k in ks {
        let mut any = false;
        let mut m = t.max(fed.0);
        while m < (t + step).min(fed.1) {
            let (a, d, r) = synthetic(k, m);
            acc += a;
            sum += a as f64 * d;
            rej += r;
            any |= a > 0;
            m += 60;
        }
        online += u64::from(any);
    }
    (acc, sum, rej, online)
}

/// Every rolled-up row of a history answer equals the raw minutes it sums.
fn check_history(h: &Value, ks: &[i64], fed: (i64, i64), points: usize) {
    let rows = h["rows"].as_array().unwrap();
    assert_eq!(rows.len(), points, "{}", h["range"]);
    let step = h["step_s"].as_i64().unwrap();
    let rolled = h["rolled_until"].as_i64().unwrap();
    let pool = h["columns"]
        .as_array()
        .unwrap()
        .iter()
        .any(|c| c == "workers_online");
    let mut checked = 0;
    for row in rows {
        let t = row[0].as_i64().unwrap();
        if t + step > rolled {
            continue;
        }
        let (acc, sum, rej, online) = expected(ks, t, step, fed);
        assert_eq!(
            row[col(h, "shares")].as_u64().unwrap(),
            acc,
            "{} {row:?}",
            h["range"]
        );
        assert_eq!(row[col(h, "rejects")].as_u64().unwrap(), rej, "{row:?}");
        let hps = sum * HASHES_PER_DIFFICULTY / step as f64;
        let got = row[col(h, "hashrate")].as_f64().unwrap();
        assert!(
            (got - hps).abs() <= hps * 1e-9,
            "{} {row:?}: {hps}",
            h["range"]
        );
        if pool {
            assert_eq!(
                row[col(h, "workers_online")].as_u64().unwrap(),
                online,
                "{row:?}"
            );
        }
        checked += 1;
    }
    assert!(
        checked + 2 >= points,
        "{} rows checked of {points}: {h}",
        checked
    );
    assert!(total(h, "shares") > 0, "{}", h["range"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_year_of_minutes_rolls_up_into_every_range_and_old_rows_expire() {
    let dir = TempDir::new("history-year");
    let real_now = now();
    let fed = ((real_now - 366 * DAY) / DAY * DAY, real_now / 60 * 60);
    let mut config = StorageConfig::new(dir.db());
    // Only the passes this test asks for, at the simulated times it names.
    config.rollup_interval = Duration::from_secs(DAY as u64);
    // A day of minutes a pass: the year is caught up in fewer passes (the bound is the
    // restart test's business).
    config.rollup_source_slots_per_pass = 1440;
    let storage = Storage::open(config).unwrap();
    let mut day = fed.0;
    while day < fed.1 {
        let end = (day + DAY).min(fed.1);
        feed(&storage, day, end);
        roll_up(&storage, end + HISTORY_ROLLUP_GRACE_SECS);
        storage.run_retention(end).unwrap();
        day = end;
    }
    storage.shutdown().unwrap();
    retained_rows(&dir, real_now);
    let node = api_pool::node().await;
    let daemon = Daemon::start(api_pool::config(&node, &dir)).await.unwrap();
    let http = daemon.http_addr().unwrap();
    until(http, "/health", DEADLINE, |b| b["status"] == "ok").await;
    let all: Vec<i64> = (0..SYNTHETIC_WORKERS).collect();
    for (range, points) in [
        ("1h", 60),
        ("24h", 288),
        ("7d", 168),
        ("30d", 120),
        ("1y", 365),
    ] {
        let (status, h) = get(http, &format!("/api/v1/pool/history?range={range}")).await;
        assert_eq!(status, 200, "{h}");
        check_history(&h, &all, fed, points);
        let id = worker_id(&synthetic_name(1));
        let path = format!("/api/v1/workers/{id}/history?range={range}");
        let (status, h) = get(http, &path).await;
        assert_eq!(status, 200, "{h}");
        check_history(&h, &[1], fed, points);
    }
    daemon.shutdown().await.unwrap();
    // A year and a bit later, every rollup has expired.
    let storage = Storage::open(StorageConfig::new(dir.db())).unwrap();
    storage.run_retention(real_now + 401 * DAY).unwrap();
    storage.shutdown().unwrap();
    let reader = StorageReader::open(&dir.db()).unwrap();
    for level in [60, 300, 3600, 21_600, DAY] {
        assert!(reader.pool_history(level, 0, i64::MAX).unwrap().is_empty());
    }
    let name = synthetic_name(0);
    assert!(
        reader
            .worker_history(&name, DAY, DAY, 0, i64::MAX)
            .unwrap()
            .is_empty()
    );
}

/// After the year's feed: the minutes are kept 30 days, the 1-minute history two, the daily
/// history the whole year.
fn retained_rows(dir: &TempDir, now: i64) {
    let reader = StorageReader::open(&dir.db()).unwrap();
    let name = synthetic_name(0);
    assert!(
        reader
            .share_minutes(&name, 0, now - 31 * DAY)
            .unwrap()
            .is_empty()
    );
    assert!(
        !reader
            .share_minutes(&name, now - 29 * DAY, now)
            .unwrap()
            .is_empty()
    );
    let minute_horizon = now - (HISTORY_MINUTE_RETENTION_DAYS as i64 + 1) * DAY;
    assert!(
        reader
            .pool_history(60, 0, minute_horizon)
            .unwrap()
            .is_empty()
    );
    assert!(
        !reader
            .pool_history(60, minute_horizon, now)
            .unwrap()
            .is_empty()
    );
    assert!(
        reader
            .pool_history(3600, 0, now - 33 * DAY)
            .unwrap()
            .is_empty()
    );
    let days = reader.pool_history(DAY, 0, now).unwrap();
    assert!(days.len() >= 365, "{}", days.len());
}

/// Every level's stored rows, for comparing two states of a database.
fn snapshot(reader: &StorageReader, now: i64) -> Vec<Vec<HistoryRow>> {
    let mut out: Vec<Vec<HistoryRow>> = [60, 300, 3600, 21_600, DAY]
        .iter()
        .map(|&l| reader.pool_history(l, 0, now).unwrap())
        .collect();
    for k in 0..SYNTHETIC_WORKERS {
        for level in [3600, DAY] {
            let name = synthetic_name(k);
            out.push(reader.worker_history(&name, level, level, 0, now).unwrap());
        }
    }
    out
}

#[test]
fn a_restart_mid_rollup_neither_double_counts_nor_loses_and_late_shares_are_rolled_again() {
    let dir = TempDir::new("history-restart");
    let real_now = now();
    let fed = ((real_now - 3 * DAY) / DAY * DAY, real_now / 60 * 60);
    let mut config = StorageConfig::new(dir.db());
    config.rollup_interval = Duration::from_secs(DAY as u64);
    config.rollup_source_slots_per_pass = 7;
    let storage = Storage::open(config.clone()).unwrap();
    feed(&storage, fed.0, fed.1);
    assert!(storage.roll_up(real_now).unwrap() > 0);
    assert!(
        storage.roll_up(real_now).unwrap() > 0,
        "seven buckets a pass: not done"
    );
    // Stopped mid-rollup: the marks say how far each level got.
    storage.shutdown().unwrap();
    let reader = StorageReader::open(&dir.db()).unwrap();
    let hour_mark = reader.rollup_mark(false, 3600).unwrap().unwrap();
    assert!(hour_mark < fed.1 - DAY, "{hour_mark}");
    let storage = Storage::open(config).unwrap();
    roll_up(&storage, real_now);
    let done = snapshot(&reader, real_now);
    check_levels(&reader, real_now, fed, &[]);
    roll_up(&storage, real_now);
    assert_eq!(
        snapshot(&reader, real_now),
        done,
        "a pass more changes nothing"
    );
    // A late share for a minute two days back, already rolled up at every level.
    let late = fed.0 + 60 * 9 + 7;
    assert!(storage.record_share(&ShareRecord {
        worker: &synthetic_name(2),
        time_unix_s: late,
        difficulty: 3.0,
        hash_difficulty: 6.0,
        reject: None,
    }));
    roll_up(&storage, real_now);
    check_levels(&reader, real_now, fed, &[late]);
    storage.shutdown().unwrap();
}

/// Every pool and worker level equals the raw synthetic minutes (plus `late` shares of
/// worker 2 at difficulty 3), bucket by bucket, over the closed buckets.
fn check_levels(reader: &StorageReader, now: i64, fed: (i64, i64), late: &[i64]) {
    let closed = (now - HISTORY_ROLLUP_GRACE_SECS) / 60 * 60;
    let extra = |t: i64, step: i64| late.iter().filter(|&&l| l >= t && l < t + step).count();
    for level in [60, 300, 3600, 21_600, DAY] {
        let horizon = now - if level <= 300 { 2 * DAY } else { 32 * DAY };
        let rows = reader.pool_history(level, 0, now).unwrap();
        let mut t = (horizon + level - 1) / level * level;
        let mut n = 0;
        while t + level <= closed / level * level {
            let (acc, sum, rej, online) = expected(&[0, 1, 2], t, level, fed);
            let more = extra(t, level) as u64;
            let row = rows.iter().find(|r| r.start_unix_s == t);
            let got = row.map_or((0, 0.0, 0), |r| {
                (
                    r.accepted_count,
                    r.accepted_difficulty_sum,
                    r.rejected_count,
                )
            });
            assert_eq!(
                got,
                (acc + more, sum + 3.0 * more as f64, rej),
                "pool {level} {t}"
            );
            if let Some(r) = row {
                let late_online = u64::from(more > 0 && expected(&[2], t, level, fed).3 == 0);
                assert_eq!(r.workers_online, Some(online + late_online), "{level} {t}");
            }
            n += 1;
            t += level;
        }
        assert!(n > 0, "level {level} has closed buckets");
    }
    for k in 0..SYNTHETIC_WORKERS {
        let name = synthetic_name(k);
        let rows = reader.worker_history(&name, 3600, 3600, 0, now).unwrap();
        let mut t = fed.0;
        while t + 3600 <= closed {
            let (acc, _, rej, _) = expected(&[k], t, 3600, fed);
            let more = if k == 2 { extra(t, 3600) as u64 } else { 0 };
            let got = rows
                .iter()
                .find(|r| r.start_unix_s == t)
                .map_or((0, 0), |r| (r.accepted_count, r.rejected_count));
            assert_eq!(got, (acc + more, rej), "worker {k} hour {t}");
            t += 3600;
        }
    }
}
