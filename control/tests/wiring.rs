//! `warppool run` end to end against the in-test node: the data plane starts, a miner that
//! subscribes and authorizes gets a `mining.notify` built from the node's template, and the
//! pool shuts down cleanly (journal synced). The binary exits 0 on SIGTERM.

#[path = "support/fake_node.rs"]
mod fake_node;

use std::{sync::Arc, time::Duration};

use fake_node::{FakeNode, Reply, blockchain_info, template};
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use warppool_control::{config::Config, stats::MemoryStats};

fn config_text(node: &FakeNode, dir: &std::path::Path, port: u16) -> String {
    format!(
        r#"
version = 1
network = "regtest"
[pool]
shards = 1
force_polling = true
[storage]
block_journal = "{journal}"
database = "{db}"
[[node]]
name = "fake"
rpc_url = "{url}"
rpc_user = "user"
rpc_password = "pass"
[[port]]
addr = "127.0.0.1:{port}"
difficulty_start = 1
"#,
        journal = dir.join("blocks.journal").display(),
        db = dir.join("db.sqlite").display(),
        url = node.url(),
    )
}

fn temp_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("warppool-wiring-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

fn free_port() -> u16 {
    std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

async fn fake_node() -> FakeNode {
    let node = FakeNode::start().await;
    node.reply("getblockchaininfo", Reply::Result(blockchain_info(false)));
    node.reply("getblocktemplate", Reply::Result(template(0x11, 102)));
    node.reply(
        "getbestblockhash",
        Reply::Result(serde_json::json!("11".repeat(32))),
    );
    node
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_miner_gets_work_from_the_node_template_and_shutdown_is_clean() {
    let node = fake_node().await;
    let dir = temp_dir("miner");
    let port = free_port();
    let config = Config::from_toml(&config_text(&node, &dir, port), Vec::new()).unwrap();
    let (stop_tx, stop_rx) = tokio::sync::oneshot::channel::<()>();
    let stats = Arc::new(MemoryStats::default());
    let pool = tokio::spawn(warppool_control::run::run_async(
        config,
        stats.clone(),
        async move {
            let _ = stop_rx.await;
        },
    ));

    let mut stream = None;
    for _ in 0..100 {
        if let Ok(s) = tokio::net::TcpStream::connect(("127.0.0.1", port)).await {
            stream = Some(s);
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let stream = stream.expect("stratum port open");
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    write
        .write_all(b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[\"test/1.0\"]}\n")
        .await
        .unwrap();
    write
        .write_all(b"{\"id\":2,\"method\":\"mining.authorize\",\"params\":[\"bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080.w1\",\"x\"]}\n")
        .await
        .unwrap();
    let notify = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            if line.contains("\"method\":\"mining.notify\"") {
                return line;
            }
        }
        panic!("connection closed before a notify");
    })
    .await
    .expect("a notify within 10 s");
    let v: serde_json::Value = serde_json::from_str(&notify).unwrap();
    // The previous block hash of the node's template, in Stratum's word-swapped form.
    assert_eq!(v["params"][1].as_str().unwrap(), "11".repeat(32));

    stop_tx.send(()).unwrap();
    tokio::time::timeout(Duration::from_secs(20), pool)
        .await
        .expect("shutdown within 20 s")
        .unwrap()
        .unwrap();
    assert!(dir.join("blocks.journal").exists());
    assert_eq!(stats.snapshot().authorized, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_exits_0_on_sigterm() {
    let node = fake_node().await;
    let dir = temp_dir("sigterm");
    let path = dir.join("warppool.toml");
    std::fs::write(&path, config_text(&node, &dir, free_port())).unwrap();
    let mut child = tokio::process::Command::new(env!("CARGO_BIN_EXE_warppool"))
        .args(["run", "--config"])
        .arg(&path)
        .spawn()
        .unwrap();
    // Wait until the pool has asked the node for a template.
    for _ in 0..200 {
        if node.calls("getblocktemplate") > 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(
        node.calls("getblocktemplate") > 0,
        "the pool asked for a template"
    );
    let pid = child.id().unwrap().to_string();
    let killed = std::process::Command::new("kill")
        .args(["-TERM", &pid])
        .status()
        .unwrap();
    assert!(killed.success());
    let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
        .await
        .expect("exits within 20 s")
        .unwrap();
    assert!(status.success(), "{status:?}");
}

#[test]
fn the_binary_check_command_validates() {
    let examples =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../docs/config-examples/farm.toml");
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_warppool"))
        .args(["check", "--config"])
        .arg(&examples)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let bad = std::process::Command::new(env!("CARGO_BIN_EXE_warppool"))
        .args(["check", "--config", "/nonexistent.toml"])
        .output()
        .unwrap();
    assert!(!bad.status.success());
    assert!(String::from_utf8_lossy(&bad.stderr).contains("/nonexistent.toml"));
}
