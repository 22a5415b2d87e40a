//! The block path: journal before submit, `duplicate` accepted, failover between nodes,
//! rejection by all, and replay of unfinished blocks at start-up.

#[path = "support/fake_node.rs"]
mod fake_node;

use std::{
    path::PathBuf,
    sync::{
        Arc,
        atomic::{AtomicBool, Ordering},
    },
    time::Duration,
};

use fake_node::{FakeNode, Reply, node_config};
use serde_json::json;
use warppool_control::{
    blocks::{BlockPath, RetryPolicy},
    journal::{BlockStatus, Finder, FoundBlock, Journal, JournalEntry},
    rpc::Nodes,
};

fn temp_journal(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("warppool-journal-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir.join("blocks.journal")
}

fn block(n: u8) -> FoundBlock {
    FoundBlock {
        height: 102,
        hash: format!("{n:02x}").repeat(32),
        block_hex: format!("00{n:02x}ff"),
        finder: Some(Finder {
            worker: format!("bcrt1qfinder.rig{n}"),
            extranonce1: format!("0000{n:02x}01"),
            user_agent: Some("cgminer/4.11.1".to_owned()),
        }),
    }
}

fn quick() -> RetryPolicy {
    RetryPolicy {
        attempts_max: 3,
        total_max: Duration::from_secs(5),
        backoff_min: Duration::from_millis(10),
        backoff_max: Duration::from_millis(20),
    }
}

fn header_for(hash: String) -> impl Fn(&serde_json::Value) -> Reply {
    move |params| {
        if params[0].as_str() == Some(hash.as_str()) {
            Reply::Result(json!({"hash": hash, "confirmations": 1, "height": 102}))
        } else {
            Reply::Error(-5, "Block not found".to_owned())
        }
    }
}

fn statuses(path: &PathBuf) -> Vec<BlockStatus> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<JournalEntry>(l).unwrap().status)
        .collect()
}

#[tokio::test]
async fn the_block_is_journaled_and_synced_before_submitblock() {
    let path = temp_journal("order");
    let node = FakeNode::start().await;
    let b = block(1);
    let seen_in_journal = Arc::new(AtomicBool::new(false));
    {
        let path = path.clone();
        let hex = b.block_hex.clone();
        let seen = Arc::clone(&seen_in_journal);
        node.on("submitblock", move |params| {
            assert_eq!(params[0].as_str(), Some(hex.as_str()));
            // At the moment the node sees the block, the journal already holds it.
            let text = std::fs::read_to_string(&path).unwrap();
            seen.store(text.contains(&hex), Ordering::SeqCst);
            Reply::Result(serde_json::Value::Null)
        });
    }
    node.on("getblockheader", header_for(b.hash.clone()));
    let nodes = Arc::new(Nodes::new(&[node_config("a", node.url())]).unwrap());
    let (bp, events) = BlockPath::new(nodes, Journal::open(&path).unwrap());
    let status = bp
        .with_retry(quick())
        .submit_found(b.clone())
        .await
        .unwrap();
    assert_eq!(status, BlockStatus::Confirmed);
    assert!(
        seen_in_journal.load(Ordering::SeqCst),
        "journal written before submitblock"
    );
    assert_eq!(
        statuses(&path),
        [BlockStatus::Found, BlockStatus::Confirmed]
    );
    let got: Vec<_> = events.drain().map(|e| e.status).collect();
    assert_eq!(got, [BlockStatus::Found, BlockStatus::Confirmed]);
    assert!(
        Journal::replay(&path).unwrap().is_empty(),
        "a confirmed block is final"
    );
}

#[tokio::test]
async fn duplicate_counts_as_accepted() {
    let path = temp_journal("duplicate");
    let node = FakeNode::start().await;
    let b = block(2);
    node.reply("submitblock", Reply::Result(json!("duplicate")));
    node.on("getblockheader", header_for(b.hash.clone()));
    let nodes = Arc::new(Nodes::new(&[node_config("a", node.url())]).unwrap());
    let (bp, _events) = BlockPath::new(nodes, Journal::open(&path).unwrap());
    assert_eq!(
        bp.with_retry(quick()).submit_found(b).await.unwrap(),
        BlockStatus::Confirmed
    );
    assert_eq!(node.calls("submitblock"), 1);
}

#[tokio::test]
async fn first_node_fails_second_accepts_and_confirms() {
    let path = temp_journal("failover");
    let bad = FakeNode::start().await;
    bad.reply("submitblock", Reply::Status(503));
    bad.reply("getblockheader", Reply::Status(503));
    bad.reply("getbestblockhash", Reply::Status(503));
    let good = FakeNode::start().await;
    let b = block(3);
    good.reply("submitblock", Reply::Result(serde_json::Value::Null));
    good.on("getblockheader", header_for(b.hash.clone()));
    let nodes = Arc::new(
        Nodes::new(&[
            node_config("bad", bad.url()),
            node_config("good", good.url()),
        ])
        .unwrap(),
    );
    let (bp, _events) = BlockPath::new(nodes, Journal::open(&path).unwrap());
    assert_eq!(
        bp.with_retry(quick()).submit_found(b).await.unwrap(),
        BlockStatus::Confirmed
    );
    assert_eq!(bad.calls("submitblock"), 1, "submitted to every node");
    assert_eq!(good.calls("submitblock"), 1);
}

#[tokio::test]
async fn rejection_by_every_node_is_final() {
    let path = temp_journal("rejected");
    let node = FakeNode::start().await;
    node.reply("submitblock", Reply::Result(json!("high-hash")));
    node.reply(
        "getblockheader",
        Reply::Error(-5, "Block not found".to_owned()),
    );
    node.reply("getbestblockhash", Reply::Result(json!("00".repeat(32))));
    let nodes = Arc::new(Nodes::new(&[node_config("a", node.url())]).unwrap());
    let (bp, _events) = BlockPath::new(nodes, Journal::open(&path).unwrap());
    assert_eq!(
        bp.with_retry(quick()).submit_found(block(4)).await.unwrap(),
        BlockStatus::Rejected
    );
    assert_eq!(statuses(&path), [BlockStatus::Found, BlockStatus::Rejected]);
}

#[tokio::test]
async fn unreachable_nodes_leave_the_block_pending_after_bounded_retries() {
    let path = temp_journal("pending");
    let node = FakeNode::start().await;
    node.reply("submitblock", Reply::Status(503));
    node.reply("getblockheader", Reply::Status(503));
    node.reply("getbestblockhash", Reply::Status(503));
    let nodes = Arc::new(Nodes::new(&[node_config("a", node.url())]).unwrap());
    let (bp, _events) = BlockPath::new(nodes, Journal::open(&path).unwrap());
    assert_eq!(
        bp.with_retry(quick()).submit_found(block(5)).await.unwrap(),
        BlockStatus::Pending
    );
    assert_eq!(node.calls("submitblock"), 3, "attempts_max rounds");
    assert_eq!(Journal::replay(&path).unwrap().len(), 1);
}

#[tokio::test]
async fn a_pending_block_is_replayed_at_start_up() {
    let path = temp_journal("replay");
    let b = block(6);
    let finished = block(7);
    // A previous run crashed after journaling: one block found and never confirmed, one
    // confirmed, and a torn last line.
    {
        let mut journal = Journal::open(&path).unwrap();
        for (blk, status, hex) in [
            (&b, BlockStatus::Found, true),
            (&finished, BlockStatus::Found, true),
            (&finished, BlockStatus::Confirmed, false),
            (&b, BlockStatus::Accepted, false),
        ] {
            journal
                .append(&JournalEntry {
                    height: blk.height,
                    hash: blk.hash.clone(),
                    time: 1,
                    status,
                    block_hex: hex.then(|| blk.block_hex.clone()),
                    detail: None,
                    finder: hex.then(|| blk.finder.clone()).flatten(),
                })
                .unwrap();
        }
        use std::io::Write;
        let mut f = std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap();
        f.write_all(b"{\"height\":102,\"hash\":\"07").unwrap();
    }
    let pending = Journal::replay(&path).unwrap();
    assert_eq!(pending, vec![(b.clone(), BlockStatus::Accepted)]);

    let node = FakeNode::start().await;
    node.reply("submitblock", Reply::Result(json!("duplicate")));
    node.on("getblockheader", header_for(b.hash.clone()));
    let nodes = Arc::new(Nodes::new(&[node_config("a", node.url())]).unwrap());
    let (bp, _events) = BlockPath::new(nodes, Journal::open(&path).unwrap());
    let bp = bp.with_retry(quick());
    assert_eq!(bp.replay().await.unwrap(), 1);
    assert_eq!(
        node.calls("submitblock"),
        1,
        "only the unfinished block is resubmitted"
    );
    assert!(
        Journal::replay(&path).unwrap().is_empty(),
        "confirmed after replay"
    );
}

#[tokio::test]
async fn a_hanging_node_cannot_stretch_the_retry_budget() {
    let path = temp_journal("hang");
    let node = FakeNode::start().await;
    node.reply("submitblock", Reply::Hang);
    let nodes = Arc::new(Nodes::new(&[node_config("a", node.url())]).unwrap());
    let (bp, _events) = BlockPath::new(nodes, Journal::open(&path).unwrap());
    let policy = RetryPolicy {
        total_max: Duration::from_millis(300),
        ..quick()
    };
    let started = std::time::Instant::now();
    let status = bp.with_retry(policy).submit_found(block(8)).await.unwrap();
    assert_eq!(status, BlockStatus::Pending);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(statuses(&path), [BlockStatus::Found, BlockStatus::Pending]);
}
