//! End to end against a REAL regtest node pair (Bitcoin SV 1.0.13's bitcoind, see
//! `scripts/regtest-node` and `/work/shared/NODE.md`): a simulated CPU miner mines through the
//! pool and an independent consensus implementation accepts the blocks; ZMQ brings new work;
//! a node outage gates work and its return resumes it; `submitblock` fails over to the second
//! node; a block journaled before a SIGKILL is replayed and confirmed after the restart.
//!
//! Start the nodes with `scripts/regtest-node start DIR` and `source DIR/env`. Without the
//! `WARPPOOL_REGTEST_*` variables the tests are skipped, except in CI (`CI` set) where they fail.

#[path = "support/regtest.rs"]
mod regtest;

use std::{
    str::FromStr,
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use regtest::{Proxy, Regtest, SERIAL, journal, node_entry, pool_config, temp_dir, wait_until};
use warppool_control::{config::Config, journal::BlockStatus, run::Pool, stats::MemoryStats};
use warppool_loadgen::miner::{self, MinerConfig, MinerHandle};

/// Every test ends within this.
const TEST_TIME_MAX: Duration = Duration::from_secs(240);

async fn start_pool(text: &str) -> Pool {
    let config = Config::from_toml(text, Vec::new()).expect("config");
    Pool::start(config, Arc::new(MemoryStats::default()))
        .await
        .expect("pool starts")
}

fn spawn_miner(rt: &Regtest, pool: std::net::SocketAddr, hashrate_hps: f64) -> MinerHandle {
    miner::spawn(MinerConfig {
        pool,
        username: format!("{}.e2e", rt.address),
        password: "x".to_owned(),
        user_agent: "warppool-e2e/1.0".to_owned(),
        hashrate_hps,
    })
    .expect("miner connects")
}

/// The first confirmed block of the journal.
fn confirmed(dir: &std::path::Path) -> Option<warppool_control::journal::JournalEntry> {
    journal(dir)
        .into_iter()
        .find(|e| e.status == BlockStatus::InChain)
}

/// The block `hash` is known to the node at `url`, and its coinbase pays the test address.
async fn assert_block_pays_the_miner(rt: &Regtest, url: &str, hash: &str) {
    let header = rt
        .rpc_at(url, "getblockheader", serde_json::json!([hash]))
        .await
        .expect("the node knows the block");
    assert_eq!(header["hash"], hash);
    let raw = rt
        .rpc_at(url, "getblock", serde_json::json!([hash, 0]))
        .await
        .expect("getblock");
    let bytes = warppool_core::hex::decode(raw.as_str().unwrap()).unwrap();
    let block: bitcoin::Block = bitcoin::consensus::deserialize(&bytes).expect("a block");
    let expected =
        warppool_core::payout::payout_script(&rt.address, bitcoin::Network::Regtest).unwrap();
    assert_eq!(
        expected,
        bitcoin::Address::from_str(&rt.address)
            .unwrap()
            .require_network(bitcoin::Network::Regtest)
            .unwrap()
            .script_pubkey()
    );
    assert!(
        block.txdata[0]
            .output
            .iter()
            .any(|o| o.script_pubkey == expected && o.value.to_sat() > 0),
        "the coinbase of {hash} pays {}",
        rt.address
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shares_from_a_miner_become_blocks_the_node_accepts() {
    let Some(rt) = Regtest::from_env("shares_become_blocks") else {
        return;
    };
    let _serial = SERIAL.lock().await;
    tokio::time::timeout(TEST_TIME_MAX, async {
        // The address of the node's wallet is a payout the pool accepts on regtest.
        warppool_core::payout::payout_script(&rt.address, bitcoin::Network::Regtest)
            .expect("a legacy P2PKH regtest address is a valid payout");
        let dir = temp_dir("blocks");
        let nodes = node_entry("node1", &rt.url, &rt, true);
        let pool = start_pool(&pool_config(&dir, 0, "refresh_secs = 5", &nodes)).await;
        let start = rt.height().await;
        let miner = spawn_miner(&rt, pool.local_addrs()[0], 100_000.0);
        let stats = Arc::clone(miner.stats());
        // The miner's counters too: the pool may confirm a block before its share reply lands.
        let mined = wait_until(Duration::from_secs(90), || async {
            confirmed(&dir).is_some()
                && rt.height().await > start
                && stats.accepted.load(Ordering::Relaxed) >= 1
                && stats.blocks.load(Ordering::Relaxed) >= 1
        })
        .await;
        let (accepted, blocks) = (
            stats.accepted.load(Ordering::Relaxed),
            stats.blocks.load(Ordering::Relaxed),
        );
        drop(miner.stop());
        assert!(
            mined,
            "a block confirmed and the height rose from {start}: accepted {accepted}, blocks {blocks}, journal {:?}",
            journal(&dir)
        );
        assert!(accepted >= 1 && blocks >= 1);
        let block = confirmed(&dir).unwrap();
        assert!(u64::from(block.height) > start);
        assert_block_pays_the_miner(&rt, &rt.url, &block.hash).await;
        pool.shutdown().await.unwrap();
    })
    .await
    .expect("within the time bound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn zmq_hashblock_brings_new_work_at_once() {
    let Some(rt) = Regtest::from_env("zmq_new_work") else {
        return;
    };
    let _serial = SERIAL.lock().await;
    tokio::time::timeout(TEST_TIME_MAX, async {
        let dir = temp_dir("zmq");
        let nodes = node_entry("node1", &rt.url, &rt, true);
        // Refresh and watchdog far slower than the bound below: only ZMQ can explain a notify.
        let template = "refresh_secs = 120\nbest_block_poll_ms = 60000\nage_secs_max = 600";
        let pool = start_pool(&pool_config(&dir, 0, template, &nodes)).await;
        // A miner so slow that it finds no block (a share takes ~65k hashes).
        let miner = spawn_miner(&rt, pool.local_addrs()[0], 10.0);
        let stats = Arc::clone(miner.stats());
        assert!(
            wait_until(Duration::from_secs(20), || async {
                stats.notifies.load(Ordering::Relaxed) >= 1
            })
            .await,
            "a first notify"
        );
        // Let the ZMQ subscription settle (the first template may also be re-fetched once).
        tokio::time::sleep(Duration::from_secs(2)).await;
        for round in 0..3 {
            let clean = stats.clean_notifies.load(Ordering::Relaxed);
            rt.rpc("generate", serde_json::json!([1])).await.unwrap();
            let fast = wait_until(Duration::from_secs(5), || async {
                stats.clean_notifies.load(Ordering::Relaxed) > clean
            })
            .await;
            assert!(
                fast,
                "round {round}: a clean_jobs notify within 5 s of a new block"
            );
        }
        drop(miner.stop());
        pool.shutdown().await.unwrap();
    })
    .await
    .expect("within the time bound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_outage_gates_work_and_its_return_resumes_it() {
    let Some(rt) = Regtest::from_env("node_outage") else {
        return;
    };
    let _serial = SERIAL.lock().await;
    tokio::time::timeout(TEST_TIME_MAX, async {
        let dir = temp_dir("outage");
        let nodes = node_entry("node1", &rt.url, &rt, true);
        let template = "refresh_secs = 1\nbest_block_poll_ms = 500\nage_secs_max = 5";
        let pool = start_pool(&pool_config(&dir, 0, template, &nodes)).await;
        let miner = spawn_miner(&rt, pool.local_addrs()[0], 10.0);
        let stats = Arc::clone(miner.stats());
        assert!(
            wait_until(Duration::from_secs(20), || async {
                stats.notifies.load(Ordering::Relaxed) >= 1
            })
            .await,
            "a first notify"
        );

        rt.script("stop-node1");
        // Refreshes fail from now on: the pool gates within a refresh or two.
        tokio::time::sleep(Duration::from_secs(4)).await;
        let gated_at = stats.notifies.load(Ordering::Relaxed);
        tokio::time::sleep(Duration::from_secs(6)).await;
        let after = stats.notifies.load(Ordering::Relaxed);
        let health = rt.rpc("getblockcount", serde_json::json!([])).await;

        rt.script("start-node1");
        let resumed = wait_until(Duration::from_secs(40), || async {
            stats.notifies.load(Ordering::Relaxed) > after
        })
        .await;
        assert!(health.is_err(), "node1 was down: {health:?}");
        assert_eq!(after, gated_at, "no new work while the node is down");
        assert!(resumed, "a fresh notify once the node is back");
        // The miner's session never ended: stopping it reports a clean session.
        miner
            .stop()
            .expect("the miner stayed connected through the outage");
        pool.shutdown().await.unwrap();
    })
    .await
    .expect("within the time bound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn submitblock_failing_on_the_first_node_is_confirmed_through_the_second() {
    let Some(rt) = Regtest::from_env("submit_failover") else {
        return;
    };
    let _serial = SERIAL.lock().await;
    tokio::time::timeout(TEST_TIME_MAX, async {
        let dir = temp_dir("failover");
        // The first node: node1 behind a proxy that answers submitblock with HTTP 500; its
        // templates come through. The second: node2, directly.
        let proxy = Proxy::start(rt.url.clone()).await;
        let nodes = format!(
            "{}{}",
            node_entry("refusing", &proxy.url(), &rt, true),
            node_entry("node2", &rt.url2, &rt, false)
        );
        let pool = start_pool(&pool_config(&dir, 0, "refresh_secs = 5", &nodes)).await;
        let start = rt.height().await;
        let miner = spawn_miner(&rt, pool.local_addrs()[0], 100_000.0);
        let done = wait_until(Duration::from_secs(90), || async {
            confirmed(&dir).is_some()
        })
        .await;
        drop(miner.stop());
        assert!(done, "a block confirmed: journal {:?}", journal(&dir));
        assert!(
            proxy.submits_refused.load(Ordering::SeqCst) >= 1,
            "the first node refused submitblock"
        );
        let block = confirmed(&dir).unwrap();
        assert!(u64::from(block.height) > start);
        // node2 accepted it, and node1 learnt it from node2 over P2P.
        assert_block_pays_the_miner(&rt, &rt.url2, &block.hash).await;
        assert!(
            wait_until(Duration::from_secs(20), || async {
                rt.rpc("getblockheader", serde_json::json!([block.hash]))
                    .await
                    .is_ok()
            })
            .await,
            "node1 learns the block from node2"
        );
        pool.shutdown().await.unwrap();
    })
    .await
    .expect("within the time bound");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_journaled_before_sigkill_is_replayed_and_confirmed_after_restart() {
    let Some(rt) = Regtest::from_env("sigkill_replay") else {
        return;
    };
    let _serial = SERIAL.lock().await;
    tokio::time::timeout(TEST_TIME_MAX, async {
        let dir = temp_dir("sigkill");
        let proxy = Proxy::start(rt.url.clone()).await;
        let nodes = node_entry("node1-via-proxy", &proxy.url(), &rt, false);
        let port = {
            let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            l.local_addr().unwrap().port()
        };
        let path = dir.join("warppool.toml");
        std::fs::write(&path, pool_config(&dir, port, "refresh_secs = 5", &nodes)).unwrap();
        let spawn_pool = || {
            tokio::process::Command::new(env!("CARGO_BIN_EXE_warppool"))
                .args(["run", "--config"])
                .arg(&path)
                .stdout(std::process::Stdio::null())
                .kill_on_drop(true)
                .spawn()
                .expect("warppool runs")
        };

        // First run: blocks are found and journaled, but node1 never gets them.
        let mut child = spawn_pool();
        let addr: std::net::SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
        assert!(
            wait_until(Duration::from_secs(20), || async {
                tokio::net::TcpStream::connect(addr).await.is_ok()
            })
            .await,
            "the pool listens"
        );
        let miner = spawn_miner(&rt, addr, 100_000.0);
        let found = wait_until(Duration::from_secs(60), || async {
            journal(&dir).iter().any(|e| e.status == BlockStatus::Found)
        })
        .await;
        assert!(found, "a block candidate journaled");
        let pid = child.id().unwrap().to_string();
        let killed = std::process::Command::new("kill")
            .args(["-KILL", &pid])
            .status()
            .unwrap();
        assert!(killed.success());
        let _ = child.wait().await;
        drop(miner.stop());
        let entries = journal(&dir);
        let block = entries
            .iter()
            .find(|e| e.status == BlockStatus::Found)
            .unwrap()
            .clone();
        assert!(
            !entries
                .iter()
                .any(|e| e.hash == block.hash && e.status == BlockStatus::InChain),
            "not confirmed before the kill"
        );
        assert!(
            rt.rpc("getblockheader", serde_json::json!([block.hash]))
                .await
                .is_err(),
            "the node does not know the block before the restart"
        );

        // The obstruction goes; the restarted pool replays the journal.
        proxy.refuse_submit.store(false, Ordering::SeqCst);
        let mut child = spawn_pool();
        let replayed = wait_until(Duration::from_secs(60), || async {
            journal(&dir)
                .iter()
                .any(|e| e.hash == block.hash && e.status == BlockStatus::InChain)
        })
        .await;
        assert!(
            replayed,
            "replayed and confirmed: journal {:?}",
            journal(&dir)
        );
        let header = rt
            .rpc("getblockheader", serde_json::json!([block.hash]))
            .await
            .expect("node1 knows the replayed block");
        assert_eq!(header["hash"], block.hash.as_str());
        assert_eq!(header["height"], block.height);
        let pid = child.id().unwrap().to_string();
        let _ = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status();
        let status = tokio::time::timeout(Duration::from_secs(20), child.wait())
            .await
            .expect("exits within 20 s")
            .unwrap();
        assert!(status.success(), "{status:?}");
    })
    .await
    .expect("within the time bound");
}

/// The statuses `hash` went through in the journal, in order, repeats folded.
fn walk(dir: &std::path::Path, hash: &str) -> Vec<BlockStatus> {
    let mut out: Vec<BlockStatus> = Vec::new();
    for e in journal(dir).into_iter().filter(|e| e.hash == hash) {
        if out.last() != Some(&e.status) {
            out.push(e.status);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalidateblock_walks_a_block_in_chain_to_orphaned_and_back() {
    let Some(rt) = Regtest::from_env("reorg_walk") else {
        return;
    };
    let _serial = SERIAL.lock().await;
    tokio::time::timeout(TEST_TIME_MAX, async {
        let dir = temp_dir("reorg");
        let nodes = node_entry("node1", &rt.url, &rt, true);
        let pool = start_pool(&pool_config(&dir, 0, "refresh_secs = 5", &nodes)).await;
        let miner = spawn_miner(&rt, pool.local_addrs()[0], 100_000.0);
        assert!(
            wait_until(Duration::from_secs(60), || async {
                confirmed(&dir).is_some()
            })
            .await,
            "a block in chain: {:?}",
            journal(&dir)
        );
        // No more blocks: a competing block at the same height would win the reorg back.
        drop(miner.stop());
        let hash = confirmed(&dir).unwrap().hash;
        rt.rpc_at(&rt.url, "invalidateblock", serde_json::json!([hash]))
            .await
            .expect("invalidateblock");
        let orphaned = wait_until(Duration::from_secs(40), || async {
            walk(&dir, &hash).last() == Some(&BlockStatus::Orphaned)
        })
        .await;
        assert!(
            orphaned,
            "orphaned after invalidateblock: {:?}",
            walk(&dir, &hash)
        );
        rt.rpc_at(&rt.url, "reconsiderblock", serde_json::json!([hash]))
            .await
            .expect("reconsiderblock");
        // A share of the stopped miner still in flight can have been a block at the same
        // height on the old parent: the node then holds that competitor, which has the same
        // work and stays the tip. Invalidating it lets the reconsidered block win, as a longer
        // chain would on a real network.
        set_aside_competitor(&rt, &hash).await;
        let back = wait_until(Duration::from_secs(40), || async {
            walk(&dir, &hash).last() == Some(&BlockStatus::InChain)
        })
        .await;
        let steps = walk(&dir, &hash);
        assert!(back, "in chain again after reconsiderblock: {steps:?}");
        assert_eq!(
            steps,
            [
                BlockStatus::Found,
                BlockStatus::InChain,
                BlockStatus::Orphaned,
                BlockStatus::InChain
            ]
        );
        pool.shutdown().await.unwrap();
    })
    .await
    .expect("within the time bound");
}

/// Invalidates the node's block at `hash`'s height when it is not `hash` (a competitor).
async fn set_aside_competitor(rt: &Regtest, hash: &str) {
    let header = rt
        .rpc_at(&rt.url, "getblockheader", serde_json::json!([hash]))
        .await
        .expect("getblockheader");
    let height = header["height"].as_u64().expect("a height");
    let at_height = rt
        .rpc_at(&rt.url, "getblockhash", serde_json::json!([height]))
        .await
        .ok()
        .and_then(|v| v.as_str().map(str::to_owned));
    if let Some(other) = at_height.filter(|other| other != hash) {
        eprintln!("a competitor {other} holds height {height}: invalidating it");
        rt.rpc_at(&rt.url, "invalidateblock", serde_json::json!([other]))
            .await
            .expect("invalidateblock of the competitor");
    }
}
