//! Vardiff persistence end to end (DESIGN §4: "a reconnecting miner starts where it was"):
//! `run::Daemon` on a real SQLite file, the chain simulator as the node, real sockets. One
//! worker's difficulty is ramped up by vardiff (a simulated CPU miner), another is set by
//! `mining.suggest_difficulty`; both disconnect, the daemon stops, a new daemon starts on the
//! same database, and each worker's first `mining.set_difficulty` on reconnect is its stored
//! difficulty. A new worker gets the port's start, and `d=` still wins over the stored value.
//! Every wait is bounded; no timing assertions.

#[path = "support/e2e.rs"]
mod e2e;

use std::time::Duration;

use e2e::{PoolOptions, REGTEST_ADDRESS, RawClient, config_text, start_sim, temp_dir};
use warppool_control::{config::Config, run::Daemon, stats::Recorder, storage::StorageReader};
use warppool_loadgen::miner::{self, MinerConfig};

/// The port's start and minimum difficulty (fractions always sent).
const START: f64 = 0.000_02;

/// The raw client's user agent (its device family keys its stored difficulty).
const RAW_AGENT: &str = "persist-test/1.0";
/// The simulated miner's user agent.
const MINER_AGENT: &str = "cgminer/4.11.1";

/// The key a difficulty of `username` sent from `agent` is stored under.
fn key(agent: &str, username: &str) -> String {
    warppool_net::stratum::UserAgentFamily::from_user_agent(Some(agent)).key(username)
}

/// A raw client that has sent subscribe and authorize (`username`, `password`).
async fn handshake(pool: std::net::SocketAddr, username: &str, password: &str) -> RawClient {
    handshake_as(pool, RAW_AGENT, username, password).await
}

/// As [`handshake`], subscribing as `agent`.
async fn handshake_as(
    pool: std::net::SocketAddr,
    agent: &str,
    username: &str,
    password: &str,
) -> RawClient {
    let mut client = RawClient::connect(pool).await;
    client
        .send(1, "mining.subscribe", serde_json::json!([agent]))
        .await;
    client
        .send(
            2,
            "mining.authorize",
            serde_json::json!([username, password]),
        )
        .await;
    client
}

/// Subscribes and authorizes `username` with `password`; returns the first
/// `mining.set_difficulty` value (it precedes the first notify).
async fn first_difficulty(pool: std::net::SocketAddr, username: &str, password: &str) -> f64 {
    next_difficulty(&mut handshake(pool, username, password).await).await
}

/// Reads lines until a `mining.set_difficulty` (bounded by 10 s) and returns its value.
async fn next_difficulty(client: &mut RawClient) -> f64 {
    let v = client
        .line_where("a set_difficulty", |v| {
            v["method"] == "mining.set_difficulty"
        })
        .await;
    v["params"][0].as_f64().expect("a number")
}

fn close_enough(a: f64, b: f64) -> bool {
    (a - b).abs() <= b * 1e-4
}

/// First run: vardiff ramps `ramped` up (a simulated CPU miner); `suggested` asks for 0.5
/// after authorize; both are published to the data plane's lookup under their device keys,
/// then the daemon stops.
async fn first_run(text: &str, ramped: &str, suggested: &str) {
    let daemon = Daemon::start(Config::from_toml(text, Vec::new()).expect("config"))
        .await
        .expect("daemon starts");
    let pool = daemon.pool().local_addrs()[0];
    let miner = {
        let username = ramped.to_owned();
        tokio::task::spawn_blocking(move || {
            miner::spawn(MinerConfig {
                pool,
                username,
                password: "x".into(),
                user_agent: MINER_AGENT.into(),
                hashrate_hps: 200_000.0,
            })
        })
        .await
        .expect("spawn")
        .expect("miner connects")
    };
    let mut client = handshake(pool, suggested, "x").await;
    assert!(close_enough(next_difficulty(&mut client).await, START));
    client
        .send(3, "mining.suggest_difficulty", serde_json::json!([0.5]))
        .await;
    assert_eq!(client.reply(3).await["result"], true);
    assert_eq!(next_difficulty(&mut client).await, 0.5);

    // The recorder publishes both to the data plane's lookup (and storage) within its period.
    let lookup = daemon
        .recorder()
        .worker_difficulties()
        .expect("the SQLite recorder keeps worker difficulties");
    let published = e2e::wait_until(Duration::from_secs(60), || {
        lookup
            .get(&key(MINER_AGENT, ramped))
            .is_some_and(|d| d.to_f64_lossy() > START * 2.0)
            && lookup.get(&key(RAW_AGENT, suggested)).is_some()
    })
    .await;
    assert!(
        published,
        "vardiff ramped the miner up and both difficulties were published"
    );
    tokio::task::spawn_blocking(move || miner.stop())
        .await
        .expect("join")
        .ok();
    drop(client);
    tokio::time::timeout(Duration::from_secs(20), daemon.shutdown())
        .await
        .expect("shutdown within 20 s")
        .expect("clean shutdown");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnecting_worker_starts_at_its_stored_difficulty_after_a_restart() {
    let sim = start_sim().await;
    let dir = temp_dir("vardiff-persistence");
    let options = PoolOptions {
        difficulty: START,
        ..PoolOptions::default()
    };
    let text = config_text(&sim, &dir, &options);
    let ramped = format!("{REGTEST_ADDRESS}.ramped");
    let suggested = format!("{REGTEST_ADDRESS}.suggested");

    first_run(&text, &ramped, &suggested).await;

    // What the database holds after the first run.
    let (ramped_stored, suggested_stored) = {
        let reader = StorageReader::open(&dir.join("db.sqlite")).expect("reader");
        let ramped_stored = reader
            .last_difficulty(&key(MINER_AGENT, &ramped))
            .unwrap()
            .expect("stored");
        let suggested_stored = reader
            .last_difficulty(&key(RAW_AGENT, &suggested))
            .unwrap()
            .expect("stored");
        (ramped_stored, suggested_stored)
    };
    assert!(
        ramped_stored > START * 2.0,
        "ramped up from {START}: {ramped_stored}"
    );
    assert_eq!(suggested_stored, 0.5);

    // Second run: new process state, same SQLite file.
    let daemon = Daemon::start(Config::from_toml(&text, Vec::new()).expect("config"))
        .await
        .expect("daemon restarts");
    let pool = daemon.pool().local_addrs()[0];
    // The same device family reconnecting gets its stored difficulty; another device under
    // the same name does not inherit it.
    let got = next_difficulty(&mut handshake_as(pool, MINER_AGENT, &ramped, "x").await).await;
    assert!(
        close_enough(got, ramped_stored),
        "first set_difficulty {got}, stored {ramped_stored}"
    );
    assert!(close_enough(
        first_difficulty(pool, &ramped, "x").await,
        START
    ));
    assert_eq!(first_difficulty(pool, &suggested, "x").await, 0.5);
    // The miner's own start difficulty wins over the stored one.
    assert_eq!(first_difficulty(pool, &suggested, "d=0.25").await, 0.25);
    // A worker never seen starts at the port's start difficulty.
    let new = format!("{REGTEST_ADDRESS}.new");
    assert!(close_enough(first_difficulty(pool, &new, "x").await, START));
    tokio::time::timeout(Duration::from_secs(20), daemon.shutdown())
        .await
        .expect("shutdown within 20 s")
        .expect("clean shutdown");
    sim.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}
