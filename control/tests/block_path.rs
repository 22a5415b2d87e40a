//! The block path: journal before submit, statuses that mean what they say (in chain only at
//! `confirmations >= 1`, orphaned at `-1`, mature at 100), failover between nodes, rejection
//! by all, resubmission while running after a node outage, and replay at start-up.

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
    journal::{BlockStatus, Finder, FoundBlock, Journal, JournalEntry, JournalFile, JournalSync},
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
        recheck: Duration::from_millis(50),
        recheck_settled: Duration::from_millis(100),
    }
}

fn header_for(hash: String) -> impl Fn(&serde_json::Value) -> Reply {
    header_with(hash, 1)
}

/// `getblockheader` knowing only `hash`, with `confirmations`.
fn header_with(hash: String, confirmations: i64) -> impl Fn(&serde_json::Value) -> Reply {
    move |params| {
        if params[0].as_str() == Some(hash.as_str()) {
            Reply::Result(json!({"hash": hash, "confirmations": confirmations, "height": 102}))
        } else {
            Reply::Error(-5, "Block not found".to_owned())
        }
    }
}

/// A node that knows `hash` (with `confirmations`) only once it was submitted, and answers
/// `submitblock` with `answer`.
fn node_learning_on_submit(
    node: &FakeNode,
    hash: &str,
    answer: serde_json::Value,
    confirmations: i64,
) {
    let known = Arc::new(AtomicBool::new(false));
    let seen = Arc::clone(&known);
    node.on("submitblock", move |_| {
        seen.store(true, Ordering::SeqCst);
        Reply::Result(answer.clone())
    });
    let header = header_with(hash.to_owned(), confirmations);
    node.on("getblockheader", move |p| {
        if known.load(Ordering::SeqCst) {
            header(p)
        } else {
            Reply::Error(-5, "Block not found".to_owned())
        }
    });
}

fn statuses(path: &PathBuf) -> Vec<BlockStatus> {
    std::fs::read_to_string(path)
        .unwrap()
        .lines()
        .map(|l| serde_json::from_str::<JournalEntry>(l).unwrap().status)
        .collect()
}

#[tokio::test]
async fn the_block_is_in_the_journal_before_submitblock() {
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
    assert_eq!(status, BlockStatus::InChain);
    assert!(
        seen_in_journal.load(Ordering::SeqCst),
        "journal written before submitblock"
    );
    assert_eq!(statuses(&path), [BlockStatus::Found, BlockStatus::InChain]);
    let got: Vec<_> = events.drain().map(|e| e.status).collect();
    assert_eq!(got, [BlockStatus::Found, BlockStatus::InChain]);
    assert_eq!(
        Journal::replay(&path).unwrap().len(),
        1,
        "an in-chain block is followed until it is mature"
    );
}

/// A real journal file whose first `fsync` waits until the node has received `submitblock` (an
/// SD card's fsync takes hundreds of milliseconds): at most `SLOW_SYNC_WAIT`, then it reports
/// whether the submission came first. Later syncs (status lines) do not wait.
#[derive(Debug)]
struct SyncAfterSubmit {
    file: std::fs::File,
    submitted: Arc<std::sync::Mutex<Option<flume::Receiver<()>>>>,
    submit_came_first: Arc<AtomicBool>,
}

const SLOW_SYNC_WAIT: Duration = Duration::from_secs(20);

impl JournalSync for SyncAfterSubmit {
    fn sync(&self) -> std::io::Result<()> {
        let first = self.submitted.lock().unwrap().take();
        if let Some(submitted) = first
            && submitted.recv_timeout(SLOW_SYNC_WAIT).is_ok()
        {
            self.submit_came_first.store(true, Ordering::SeqCst);
        }
        self.file.sync_data()
    }
}

impl std::io::Write for SyncAfterSubmit {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.file.write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        self.file.flush()
    }
}

impl JournalFile for SyncAfterSubmit {
    fn size(&self) -> std::io::Result<u64> {
        self.file.metadata().map(|m| m.len())
    }
    fn truncate(&mut self, len: u64) -> std::io::Result<()> {
        self.file.set_len(len)
    }
    fn sync(&mut self) -> std::io::Result<()> {
        JournalSync::sync(self)
    }
    fn syncer(&self) -> std::io::Result<Arc<dyn JournalSync>> {
        Ok(Arc::new(Self {
            file: self.file.try_clone()?,
            submitted: Arc::clone(&self.submitted),
            submit_came_first: Arc::clone(&self.submit_came_first),
        }))
    }
}

#[tokio::test]
async fn a_slow_journal_fsync_does_not_delay_submitblock() {
    let path = temp_journal("slow-fsync");
    let node = FakeNode::start().await;
    let b = block(7);
    // The syncer waits for the first submission only; later ones need no room.
    let (tx, rx) = flume::bounded(1);
    node.on("submitblock", move |_| {
        let _ = tx.try_send(());
        Reply::Result(serde_json::Value::Null)
    });
    node.on("getblockheader", header_for(b.hash.clone()));
    let file = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&path)
        .unwrap();
    let submit_came_first = Arc::new(AtomicBool::new(false));
    let slow = SyncAfterSubmit {
        file,
        submitted: Arc::new(std::sync::Mutex::new(Some(rx))),
        submit_came_first: Arc::clone(&submit_came_first),
    };
    let journal = Journal::open(&path)
        .unwrap()
        .with_file(Box::new(slow))
        .unwrap();
    let nodes = Arc::new(Nodes::new(&[node_config("a", node.url())]).unwrap());
    let (bp, _events) = BlockPath::new(nodes, journal);
    let status = bp
        .with_retry(quick())
        .submit_found(b.clone())
        .await
        .unwrap();
    assert_eq!(status, BlockStatus::InChain);
    assert!(
        submit_came_first.load(Ordering::SeqCst),
        "submitblock reached the node while the found line's fsync was still running"
    );
    assert_eq!(
        statuses(&path)[0],
        BlockStatus::Found,
        "and the line is in the file"
    );
}

#[tokio::test]
async fn duplicate_counts_only_when_the_node_has_it_in_its_active_chain() {
    for (confirmations, expected) in [(1, BlockStatus::InChain), (-1, BlockStatus::Orphaned)] {
        let path = temp_journal(&format!("duplicate{confirmations}"));
        let node = FakeNode::start().await;
        let b = block(2);
        node.reply("submitblock", Reply::Result(json!("duplicate")));
        node.on("getblockheader", header_with(b.hash.clone(), confirmations));
        node.reply("getblockhash", Reply::Result(json!("ab".repeat(32))));
        let nodes = Arc::new(Nodes::new(&[node_config("a", node.url())]).unwrap());
        let (bp, _events) = BlockPath::new(nodes, Journal::open(&path).unwrap());
        assert_eq!(
            bp.with_retry(quick()).submit_found(b).await.unwrap(),
            expected,
            "duplicate, then confirmations {confirmations}"
        );
        assert_eq!(node.calls("submitblock"), 1);
    }
}

#[tokio::test]
async fn a_block_the_node_knows_only_on_a_side_branch_is_orphaned_not_confirmed() {
    // Two blocks at one height: the node took both (null, then inconclusive), but only one
    // is in its active chain. Before, both were logged "confirmed".
    let path = temp_journal("two-at-one-height");
    let node = FakeNode::start().await;
    let winner = block(10);
    let loser = block(11);
    let (w, l) = (winner.hash.clone(), loser.hash.clone());
    node.on("submitblock", move |p| {
        let first = p[0].as_str() == Some(&*format!("00{:02x}ff", 10));
        Reply::Result(if first {
            json!(null)
        } else {
            json!("inconclusive")
        })
    });
    node.on("getblockheader", move |p| match p[0].as_str() {
        Some(h) if h == w => Reply::Result(json!({"hash": w, "confirmations": 150, "height": 102})),
        Some(h) if h == l => Reply::Result(json!({"hash": l, "confirmations": -1, "height": 102})),
        _ => Reply::Error(-5, "Block not found".to_owned()),
    });
    node.reply("getblockhash", Reply::Result(json!(winner.hash)));
    let nodes = Arc::new(Nodes::new(&[node_config("a", node.url())]).unwrap());
    let (bp, events) = BlockPath::new(nodes, Journal::open(&path).unwrap());
    let bp = bp.with_retry(quick());
    assert_eq!(bp.submit_found(winner).await.unwrap(), BlockStatus::Mature);
    assert_eq!(
        bp.submit_found(loser.clone()).await.unwrap(),
        BlockStatus::Orphaned
    );
    let orphan: Vec<_> = events
        .drain()
        .filter(|e| e.hash == loser.hash && e.status == BlockStatus::Orphaned)
        .collect();
    assert_eq!(orphan.len(), 1);
    let detail = orphan[0].detail.as_deref().unwrap();
    assert!(
        detail.contains("side branch") && detail.contains("150 confirmations"),
        "{detail}"
    );
    assert!(
        Journal::replay(&path).unwrap().is_empty(),
        "the mature block and the settled orphan (its competitor 150 deep) are final"
    );
}

#[tokio::test]
async fn an_in_chain_block_is_followed_to_mature_as_the_chain_grows() {
    let path = temp_journal("mature");
    let node = FakeNode::start().await;
    let b = block(12);
    let confirmations = Arc::new(std::sync::atomic::AtomicI64::new(1));
    node.reply("submitblock", Reply::Result(json!(null)));
    {
        let (hash, c) = (b.hash.clone(), Arc::clone(&confirmations));
        node.on("getblockheader", move |_| {
            let n = c.load(Ordering::SeqCst);
            Reply::Result(json!({"hash": hash, "confirmations": n, "height": 102}))
        });
    }
    let nodes = Arc::new(Nodes::new(&[node_config("a", node.url())]).unwrap());
    let (bp, events) = BlockPath::new(nodes, Journal::open(&path).unwrap());
    let bp = Arc::new(bp.with_retry(quick()));
    assert_eq!(
        bp.submit_found(b.clone()).await.unwrap(),
        BlockStatus::InChain
    );
    confirmations.store(99, Ordering::SeqCst);
    bp.wake();
    bp.pass().await;
    assert_eq!(bp.tracked(), vec![(b.hash.clone(), BlockStatus::InChain)]);
    confirmations.store(100, Ordering::SeqCst);
    bp.wake();
    bp.pass().await;
    assert!(bp.tracked().is_empty(), "mature is final");
    let got: Vec<_> = events.drain().map(|e| e.status).collect();
    assert_eq!(
        got,
        [
            BlockStatus::Found,
            BlockStatus::InChain,
            BlockStatus::Mature
        ]
    );
    assert!(Journal::replay(&path).unwrap().is_empty());
}

#[tokio::test(start_paused = true)]
async fn a_block_left_pending_by_a_ten_minute_outage_is_resubmitted_within_30_s_of_the_return() {
    let path = temp_journal("outage");
    let node = FakeNode::start().await;
    let b = block(13);
    node_learning_on_submit(&node, &b.hash, json!(null), 1);
    node.set_down(true);
    let nodes = Arc::new(Nodes::new(&[node_config("a", node.url())]).unwrap());
    let (bp, _events) = BlockPath::new(nodes, Journal::open(&path).unwrap());
    // The production pacing: fast rounds for 5 minutes, then a re-check every 10 s.
    let bp = Arc::new(bp);
    let (_tx, candidates) = flume::bounded(1);
    let runner = tokio::spawn(Arc::clone(&bp).run(candidates));
    let found = Arc::clone(&bp);
    let first = b.clone();
    tokio::spawn(async move { found.submit_found(first).await });
    tokio::time::sleep(Duration::from_secs(600)).await;
    assert_eq!(node.calls("submitblock"), 0, "the node was down");
    assert_eq!(bp.tracked(), vec![(b.hash.clone(), BlockStatus::Found)]);
    node.set_down(false);
    let back = tokio::time::Instant::now();
    tokio::time::sleep(Duration::from_secs(30)).await;
    let resubmitted = node
        .first_call_since("submitblock", back)
        .expect("resubmitted after the node's return");
    assert!(
        resubmitted - back <= Duration::from_secs(30),
        "{:?}",
        resubmitted - back
    );
    assert_eq!(bp.tracked(), vec![(b.hash.clone(), BlockStatus::InChain)]);
    runner.abort();
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
        BlockStatus::InChain
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
async fn unreachable_nodes_leave_the_block_found_and_tracked_after_bounded_rounds() {
    let path = temp_journal("pending");
    let node = FakeNode::start().await;
    node.reply("submitblock", Reply::Status(503));
    node.reply("getblockheader", Reply::Status(503));
    node.reply("getbestblockhash", Reply::Status(503));
    let nodes = Arc::new(Nodes::new(&[node_config("a", node.url())]).unwrap());
    let (bp, _events) = BlockPath::new(nodes, Journal::open(&path).unwrap());
    assert_eq!(
        bp.with_retry(quick()).submit_found(block(5)).await.unwrap(),
        BlockStatus::Found
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
            (&finished, BlockStatus::Mature, false),
            (&b, BlockStatus::Submitted, false),
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
                    settled: false,
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
    assert_eq!(pending.len(), 1);
    assert_eq!(
        (&pending[0].block, pending[0].status),
        (&b, BlockStatus::Submitted)
    );

    let node = FakeNode::start().await;
    node_learning_on_submit(&node, &b.hash, json!("duplicate"), 100);
    let nodes = Arc::new(Nodes::new(&[node_config("a", node.url())]).unwrap());
    let (bp, _events) = BlockPath::new(nodes, Journal::open(&path).unwrap());
    let bp = Arc::new(bp.with_retry(quick()));
    assert_eq!(bp.replay().await.unwrap(), 1);
    assert_eq!(
        node.calls("submitblock"),
        0,
        "replay only tracks; the tracker checks"
    );
    bp.pass().await;
    assert_eq!(
        node.calls("submitblock"),
        1,
        "only the unfinished block is resubmitted"
    );
    assert!(
        Journal::replay(&path).unwrap().is_empty(),
        "mature after replay"
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
    assert_eq!(status, BlockStatus::Found);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "{:?}",
        started.elapsed()
    );
    assert_eq!(statuses(&path), [BlockStatus::Found]);
}
