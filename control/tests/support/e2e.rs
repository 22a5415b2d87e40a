//! Shared helpers of the end-to-end tests and the new-tip benchmark: the chain simulator as
//! the node, a real pool on port 0, and a raw Stratum client.

#![allow(dead_code, reason = "each test binary uses a different subset")]

use std::{net::SocketAddr, path::PathBuf, sync::Arc, time::Duration};

use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader, Lines},
    net::{
        TcpStream,
        tcp::{OwnedReadHalf, OwnedWriteHalf},
    },
};
use warppool_control::{config::Config, run::Pool, stats::MemoryStats};
use warppool_loadgen::chain::{ChainSim, ChainSimConfig, ChainSimHandle};

/// A regtest payout address (P2WPKH).
pub(crate) const REGTEST_ADDRESS: &str = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";
/// A mainnet payout address (P2WPKH).
pub(crate) const MAINNET_ADDRESS: &str = "bc1qw508d6qejxtdg4y5r3zarvary0c5xw7kv8f3t4";

/// Pool settings the tests vary.
#[derive(Debug, Clone)]
pub(crate) struct PoolOptions {
    /// `network` of the pool configuration.
    pub(crate) network: &'static str,
    /// Share difficulty (start and minimum; fractional difficulties are always allowed).
    pub(crate) difficulty: f64,
    /// `template.refresh_secs`.
    pub(crate) refresh_secs: u64,
    /// `template.best_block_poll_ms`.
    pub(crate) best_block_poll_ms: u64,
    /// Extra TOML under `[pool]` (e.g. a `[[pool.split]]`), appended verbatim.
    pub(crate) extra: String,
    /// Subscribe to the simulator's ZMQ `hashblock`.
    pub(crate) zmq: bool,
}

impl Default for PoolOptions {
    fn default() -> Self {
        Self {
            network: "regtest",
            difficulty: 1.0,
            refresh_secs: 600,
            best_block_poll_ms: 200,
            extra: String::new(),
            zmq: true,
        }
    }
}

/// A fresh directory for the journal and the database.
pub(crate) fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("warppool-e2e-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// The pool configuration text for `sim` as the only node.
pub(crate) fn config_text(sim: &ChainSimHandle, dir: &std::path::Path, o: &PoolOptions) -> String {
    let (user, password) = sim.rpc_auth();
    let zmq = if o.zmq {
        format!("zmq_hashblock = \"{}\"", sim.zmq_endpoint())
    } else {
        String::new()
    };
    format!(
        r#"
version = 1
network = "{network}"
[pool]
shards = 1
coinbase_tag = "/warppool-e2e/"
{extra}
[template]
refresh_secs = {refresh}
best_block_poll_ms = {poll}
age_secs_max = {age}
[storage]
block_journal = "{journal}"
database = "{db}"
[[node]]
name = "sim"
rpc_url = "{url}"
rpc_user = "{user}"
rpc_password = "{password}"
{zmq}
[[port]]
addr = "127.0.0.1:0"
difficulty_start = {diff}
difficulty_min = {diff}
fractional = "always"
"#,
        network = o.network,
        extra = o.extra,
        refresh = o.refresh_secs,
        poll = o.best_block_poll_ms,
        age = (o.refresh_secs * 2).max(120),
        journal = dir.join("blocks.journal").display(),
        db = dir.join("db.sqlite").display(),
        url = sim.rpc_url(),
        diff = o.difficulty,
    )
}

/// A chain simulator with a segwit mempool and no timers (blocks only on demand).
pub(crate) async fn start_sim() -> ChainSimHandle {
    ChainSim::start(ChainSimConfig {
        mempool_target: 40,
        mempool_refill_interval: None,
        seed: 7,
        ..ChainSimConfig::default()
    })
    .await
    .expect("chain simulator starts")
}

/// A pool on port 0 with `sim` as its node.
pub(crate) async fn start_pool(
    sim: &ChainSimHandle,
    name: &str,
    o: &PoolOptions,
) -> (Pool, PathBuf) {
    let dir = temp_dir(name);
    let config = Config::from_toml(&config_text(sim, &dir, o), Vec::new()).expect("valid config");
    let pool = Pool::start(config, Arc::new(MemoryStats::default()))
        .await
        .expect("pool starts");
    (pool, dir)
}

/// Polls `cond` every 20 ms until it holds or `bound` passes; returns whether it held.
pub(crate) async fn wait_until(bound: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = tokio::time::Instant::now() + bound;
    loop {
        if cond() {
            return true;
        }
        if tokio::time::Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// A raw Stratum V1 client (line-delimited JSON).
#[derive(Debug)]
pub(crate) struct RawClient {
    /// Lines from the pool.
    pub(crate) lines: Lines<BufReader<OwnedReadHalf>>,
    /// To the pool.
    pub(crate) write: OwnedWriteHalf,
}

impl RawClient {
    /// Connects to `addr`.
    pub(crate) async fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).await.expect("connect");
        stream.set_nodelay(true).expect("nodelay");
        let (read, write) = stream.into_split();
        Self {
            lines: BufReader::new(read).lines(),
            write,
        }
    }

    /// Sends one request line.
    pub(crate) async fn send(&mut self, id: u64, method: &str, params: serde_json::Value) {
        let line = serde_json::json!({"id": id, "method": method, "params": params}).to_string();
        self.write
            .write_all(format!("{line}\n").as_bytes())
            .await
            .expect("write");
    }

    /// Reads lines until the reply with `id` (bounded by 10 s).
    pub(crate) async fn reply(&mut self, id: u64) -> serde_json::Value {
        self.line_where("a reply", |v| v["id"] == serde_json::json!(id))
            .await
    }

    /// Reads lines until one (as JSON) satisfies `want`, bounded by 10 s; `what` names it in
    /// the failure.
    pub(crate) async fn line_where(
        &mut self,
        what: &str,
        want: impl Fn(&serde_json::Value) -> bool,
    ) -> serde_json::Value {
        tokio::time::timeout(Duration::from_secs(10), async {
            loop {
                let line = self
                    .lines
                    .next_line()
                    .await
                    .expect("read")
                    .expect("connection open");
                let v: serde_json::Value = serde_json::from_str(&line).expect("JSON line");
                if want(&v) {
                    return v;
                }
            }
        })
        .await
        .unwrap_or_else(|_| panic!("{what} within 10 s"))
    }
}
