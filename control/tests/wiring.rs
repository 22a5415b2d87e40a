//! `warppool run` end to end against the in-test node (`run::Pool` on port 0): the data plane
//! starts, a miner that subscribes and authorizes gets a `mining.notify` built from the node's template, and the
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
    let config = Config::from_toml(&config_text(&node, &dir, 0), Vec::new()).unwrap();
    let stats = Arc::new(MemoryStats::default());
    let pool = warppool_control::run::Pool::start(config, stats.clone())
        .await
        .unwrap();
    let stream = tokio::net::TcpStream::connect(pool.local_addrs()[0])
        .await
        .unwrap();
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

    tokio::time::timeout(Duration::from_secs(20), pool.shutdown())
        .await
        .expect("shutdown within 20 s")
        .unwrap();
    assert!(dir.join("blocks.journal").exists());
    assert_eq!(stats.snapshot().authorized, 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_binary_exits_0_on_sigterm() {
    let node = fake_node().await;
    let dir = temp_dir("sigterm");
    let path = dir.join("warppool.toml");
    std::fs::write(&path, config_text(&node, &dir, 0)).unwrap();
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

/// Builds the 80-byte header of a share from `mining.notify` params, as a miner does.
fn header_from_notify(
    params: &serde_json::Value,
    extranonce1: &str,
    extranonce2: &str,
    nonce: u32,
) -> [u8; 80] {
    use bitcoin::hashes::{Hash, sha256d};
    let hex = |s: &serde_json::Value| warppool_core::hex::decode(s.as_str().unwrap()).unwrap();
    let mut coinbase = hex(&params[2]);
    coinbase.extend(warppool_core::hex::decode(extranonce1).unwrap());
    coinbase.extend(warppool_core::hex::decode(extranonce2).unwrap());
    coinbase.extend(hex(&params[3]));
    let mut root = sha256d::Hash::hash(&coinbase).to_byte_array();
    for branch in params[4].as_array().unwrap() {
        let mut pair = root.to_vec();
        pair.extend(hex(branch));
        root = sha256d::Hash::hash(&pair).to_byte_array();
    }
    // Stratum's previous block hash: internal order with every 4-byte word byte-swapped.
    let mut prev = hex(&params[1]);
    for word in prev.chunks_mut(4) {
        word.reverse();
    }
    let word = |v: &serde_json::Value| u32::from_str_radix(v.as_str().unwrap(), 16).unwrap();
    let mut header = [0u8; 80];
    header[..4].copy_from_slice(&word(&params[5]).to_le_bytes());
    header[4..36].copy_from_slice(&prev);
    header[36..68].copy_from_slice(&root);
    header[68..72].copy_from_slice(&word(&params[7]).to_le_bytes());
    header[72..76].copy_from_slice(&word(&params[6]).to_le_bytes());
    header[76..].copy_from_slice(&nonce.to_le_bytes());
    header
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_found_by_a_miner_is_journaled_submitted_and_confirmed() {
    use bitcoin::hashes::{Hash, sha256d};
    let node = fake_node().await;
    let submitted: Arc<std::sync::Mutex<Option<String>>> = Arc::default();
    {
        let submitted = Arc::clone(&submitted);
        node.on("submitblock", move |params| {
            // Decode the block as the node would and remember its hash.
            let bytes = warppool_core::hex::decode(params[0].as_str().unwrap()).unwrap();
            let block: bitcoin::Block = bitcoin::consensus::deserialize(&bytes).unwrap();
            assert!(
                block.check_merkle_root(),
                "merkle root matches the transactions"
            );
            *submitted.lock().unwrap() = Some(block.block_hash().to_string());
            Reply::Result(serde_json::Value::Null)
        });
    }
    {
        let submitted = Arc::clone(&submitted);
        node.on("getblockheader", move |params| {
            let known = submitted.lock().unwrap().clone();
            if known.as_deref() == params[0].as_str() {
                Reply::Result(serde_json::json!({"hash": known, "confirmations": 1, "height": 102}))
            } else {
                Reply::Error(-5, "Block not found".to_owned())
            }
        });
    }
    let dir = temp_dir("block");
    // The lowest share difficulty (2^-16) on a regtest target: every share is a block.
    let text = config_text(&node, &dir, 0).replace(
        "difficulty_start = 1",
        "difficulty_start = 0.0000152587890625\ndifficulty_min = 0.0000152587890625\nfractional = \"always\"",
    );
    let config = Config::from_toml(&text, Vec::new()).unwrap();
    let pool = warppool_control::run::Pool::start(config, Arc::new(MemoryStats::default()))
        .await
        .unwrap();
    let stream = tokio::net::TcpStream::connect(pool.local_addrs()[0])
        .await
        .unwrap();
    let (read, mut write) = stream.into_split();
    let mut lines = BufReader::new(read).lines();
    write
        .write_all(b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[]}\n")
        .await
        .unwrap();
    write
        .write_all(b"{\"id\":2,\"method\":\"mining.authorize\",\"params\":[\"bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080\",\"x\"]}\n")
        .await
        .unwrap();
    let mut extranonce1 = String::new();
    let mut extranonce2_size = 0usize;
    let notify = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            if v["id"] == 1 {
                extranonce1 = v["result"][1].as_str().unwrap().to_owned();
                extranonce2_size = v["result"][2].as_u64().unwrap() as usize;
            }
            if v["method"] == "mining.notify" {
                return v["params"].clone();
            }
        }
        panic!("closed");
    })
    .await
    .expect("notify");
    let extranonce2 = "00".repeat(extranonce2_size);
    // Grind a nonce meeting difficulty 2^-16: its target is about 0xffff << 224, so a hash below
    // 2^239 (top 17 bits zero) meets it.
    let (nonce, hash) = (0u32..)
        .find_map(|n| {
            let h =
                sha256d::Hash::hash(&header_from_notify(&notify, &extranonce1, &extranonce2, n))
                    .to_byte_array();
            (h[31] == 0 && h[30] == 0 && h[29] < 0x80).then_some((n, h))
        })
        .unwrap();
    let mut display = hash;
    display.reverse();
    let hash_hex = warppool_core::hex::encode(&display);
    let submit = serde_json::json!({"id": 3, "method": "mining.submit", "params": [
        "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080", notify[0], extranonce2, notify[7],
        format!("{nonce:08x}")]});
    write
        .write_all(format!("{submit}\n").as_bytes())
        .await
        .unwrap();
    let reply = tokio::time::timeout(Duration::from_secs(10), async {
        while let Some(line) = lines.next_line().await.unwrap() {
            let v: serde_json::Value = serde_json::from_str(&line).unwrap();
            if v["id"] == 3 {
                return v;
            }
        }
        panic!("closed");
    })
    .await
    .expect("submit reply");
    assert_eq!(reply["result"], true, "{reply}");

    // The block path journals, submits and confirms it.
    let journal = dir.join("blocks.journal");
    for _ in 0..200 {
        if std::fs::read_to_string(&journal)
            .unwrap_or_default()
            .contains("\"in_chain\"")
        {
            break;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    assert_eq!(
        submitted.lock().unwrap().as_deref(),
        Some(hash_hex.as_str())
    );
    let text = std::fs::read_to_string(&journal).unwrap();
    let entries: Vec<warppool_control::journal::JournalEntry> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(entries.len(), 2, "{text}");
    assert_eq!(
        entries[0].status,
        warppool_control::journal::BlockStatus::Found
    );
    assert_eq!(entries[0].hash, hash_hex);
    assert_eq!(entries[0].height, 102);
    assert_eq!(
        entries[1].status,
        warppool_control::journal::BlockStatus::InChain
    );

    tokio::time::timeout(Duration::from_secs(20), pool.shutdown())
        .await
        .expect("shutdown within 20 s")
        .unwrap();
}
