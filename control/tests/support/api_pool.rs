//! A running daemon for the API tests: the whole pool (data plane, block path, a real SQLite
//! file, the HTTP API on 127.0.0.1) on a bitcoind double serving a regtest template whose
//! `curtime` is now, as a node's is. Include with `#[path]` after `fake_node.rs` and
//! `temp_dir.rs` (as `fake_node` and `temp_dir`).

#![allow(
    dead_code,
    reason = "each test file uses a different part of the support module"
)]
#![allow(
    unreachable_pub,
    reason = "a test support module included with #[path]"
)]

use std::net::SocketAddr;

use serde_json::{Value, json};
use warppool_control::{config::Config, run::Daemon};

use super::fake_node::{FakeNode, Reply, blockchain_info, template};
use super::temp_dir::TempDir;

/// The bitcoind double: a fixed tip, a template of now, every `submitblock` accepted and
/// every block one confirmation deep.
pub async fn node() -> FakeNode {
    let fake = FakeNode::start().await;
    fake.reply("getblockchaininfo", Reply::Result(blockchain_info(false)));
    fake.reply(
        "getnetworkinfo",
        Reply::Result(json!({"version": 290000, "subversion": "/Satoshi:29.0.0/"})),
    );
    let mut t = template(0x11, 102);
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs();
    t["curtime"] = json!(now);
    fake.reply("getblocktemplate", Reply::Result(t));
    fake.reply("getbestblockhash", Reply::Result(json!("11".repeat(32))));
    fake.reply("submitblock", Reply::Result(Value::Null));
    fake.on("getblockheader", |p| {
        Reply::Result(json!({"hash": p[0], "confirmations": 1, "height": 102}))
    });
    fake
}

/// One shard, the HTTP API on a free port, one Stratum port at difficulty 2^-16 (nearly every
/// regtest share is a block).
pub fn config(node: &FakeNode, dir: &TempDir) -> Config {
    config_with(node, dir, "")
}

/// [`config`] with `extra` TOML appended (tables such as `[[pool.split]]`).
pub fn config_with(node: &FakeNode, dir: &TempDir, extra: &str) -> Config {
    let text = config_toml(node, dir, "[pool]\nshards = 1\n", extra);
    Config::from_toml(&text, Vec::new()).expect("config")
}

/// The configuration text: `pool` (a `[pool]` table, or nothing for the profile's shard
/// count) after the network, `extra` at the end.
pub fn config_toml(node: &FakeNode, dir: &TempDir, pool: &str, extra: &str) -> String {
    let mut text = format!(
        r#"
version = 1
network = "regtest"
{pool}[storage]
block_journal = "{journal}"
database = "{db}"
[http]
listen = "127.0.0.1:0"
[[node]]
name = "fake"
rpc_url = "{url}"
rpc_user = "user"
rpc_password = "pass"
[[port]]
addr = "127.0.0.1:0"
difficulty_start = 0.0000152587890625
difficulty_min = 0.0000152587890625
fractional = "always"
"#,
        journal = dir.0.join("blocks.journal").display(),
        db = dir.db().display(),
        url = node.url(),
    );
    text.push_str(extra);
    text
}

/// The daemon, its HTTP address, the node double and the directory (both kept alive).
pub struct Pool {
    pub daemon: Daemon,
    pub http: SocketAddr,
    pub base: String,
    pub node: FakeNode,
    pub dir: TempDir,
}

/// Starts a daemon in a fresh directory named after `name`.
pub async fn start(name: &str) -> Pool {
    start_with(name, "").await
}

/// [`start`] with `extra` TOML appended to the configuration.
pub async fn start_with(name: &str, extra: &str) -> Pool {
    let dir = TempDir::new(name);
    let node = node().await;
    let daemon = Daemon::start(config_with(&node, &dir, extra))
        .await
        .expect("daemon");
    let http = daemon.http_addr().expect("http");
    Pool {
        daemon,
        http,
        base: format!("http://{http}"),
        node,
        dir,
    }
}
