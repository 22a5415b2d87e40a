//! End to end against the chain simulator (`warppool_loadgen::chain`) as the node: real
//! sockets, a real pool (`run::Pool` on port 0), simulated CPU miners that really mine, and
//! the simulator's full block validation. Every wait is bounded; no timing assertions.

#[path = "support/e2e.rs"]
mod e2e;

use std::{sync::atomic::Ordering, time::Duration};

use bitcoin::{Address, ScriptBuf, WPubkeyHash, hashes::Hash};
use e2e::{MAINNET_ADDRESS, PoolOptions, REGTEST_ADDRESS, RawClient, start_pool, start_sim};
use warppool_control::{api::v1, config::Config};
use warppool_loadgen::miner::{self, MinerConfig, MinerHandle};

/// A distinct regtest P2WPKH payout address per miner.
fn miner_address(i: u8) -> (String, ScriptBuf) {
    let script = ScriptBuf::new_p2wpkh(&WPubkeyHash::from_byte_array([i + 1; 20]));
    let address = Address::from_script(&script, bitcoin::Network::Regtest).expect("address");
    (address.to_string(), script)
}

fn spawn_miner(pool: std::net::SocketAddr, i: u8, hashrate_hps: f64) -> (MinerHandle, ScriptBuf) {
    let (address, script) = miner_address(i);
    let handle = miner::spawn(MinerConfig {
        pool,
        username: format!("{address}.w{i}"),
        password: "x".into(),
        user_agent: format!("e2e-miner/{i}"),
        hashrate_hps,
    })
    .expect("miner connects");
    (handle, script)
}

async fn shutdown(pool: warppool_control::run::Pool) {
    tokio::time::timeout(Duration::from_secs(20), pool.shutdown())
        .await
        .expect("shutdown within 20 s")
        .expect("clean shutdown");
}

/// `getblocktemplate` straight from the simulator, as the pool asks for it.
async fn fetch_template(sim: &warppool_loadgen::chain::ChainSimHandle) -> serde_json::Value {
    let (user, password) = sim.rpc_auth();
    let reply: serde_json::Value = reqwest::Client::new()
        .post(sim.rpc_url())
        .basic_auth(user, Some(password))
        .json(&serde_json::json!({
            "jsonrpc": "1.0", "id": 1, "method": "getblocktemplate",
            "params": [{"rules": ["segwit"]}],
        }))
        .send()
        .await
        .expect("RPC")
        .json()
        .await
        .expect("JSON reply");
    reply["result"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn segwit_blocks_found_by_miners_pass_full_validation_and_pay_the_finder() {
    let sim = start_sim().await;
    let template = fetch_template(&sim).await;
    let txs = template["transactions"].as_array().expect("transactions");
    let witness_txs = txs.iter().filter(|t| t["txid"] != t["hash"]).count();
    assert!(
        witness_txs > 0,
        "the simulator's template carries witness transactions"
    );
    assert!(template["default_witness_commitment"].is_string());
    let height_before = sim.height();

    // Share difficulty far above regtest's network difficulty: every share is a block.
    let options = PoolOptions {
        difficulty: 0.000_1,
        ..PoolOptions::default()
    };
    let (pool, _dir) = start_pool(&sim, "blocks", &options).await;
    let addr = pool.local_addrs()[0];
    let miners: Vec<_> = (0..2).map(|i| spawn_miner(addr, i, 1_000_000.0)).collect();

    let found = e2e::wait_until(Duration::from_secs(60), || {
        sim.submitted_blocks().len() >= 3
    })
    .await;
    let blocks = sim.submitted_blocks();
    assert!(
        found,
        "at least 3 miner blocks accepted within 60 s, got {}",
        blocks.len()
    );
    assert!(sim.height() >= height_before + 3, "the chain grew");
    let subsidy = warppool_loadgen::chain::block_subsidy(blocks[0].height);
    for block in &blocks {
        // The whole coinbase goes to one miner's payout script (no split configured).
        assert_eq!(block.payouts.len(), 1, "{block:?}");
        let (script, value) = &block.payouts[0];
        assert!(
            miners.iter().any(|(_, s)| s == script),
            "block {} pays a miner: {block:?}",
            block.hash
        );
        assert_eq!(*value, block.coinbase_value_sats);
        assert!(*value >= subsidy, "subsidy plus fees");
    }
    // The pool's templates included the mempool's (witness) transactions.
    assert!(
        blocks.iter().any(|b| b.tx_count > 1),
        "blocks carry mempool transactions: {blocks:?}"
    );
    assert!(
        blocks[0].tx_count > witness_txs,
        "the first block carries the witness transactions of the template"
    );
    // Each accepted block pays the miner that sent it: never more blocks paid to a miner
    // than block candidates it sent.
    for (handle, script) in &miners {
        let paid = blocks.iter().filter(|b| &b.payouts[0].0 == script).count() as u64;
        let sent = handle.stats().blocks.load(Ordering::Relaxed);
        assert!(
            paid <= sent,
            "paid {paid} blocks to a miner that sent {sent}"
        );
    }
    for (handle, _) in miners {
        drop(handle);
    }
    shutdown(pool).await;
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_network_block_sends_clean_jobs_to_every_miner() {
    let sim = start_sim().await;
    let (pool, _dir) = start_pool(&sim, "clean", &PoolOptions::default()).await;
    let addr = pool.local_addrs()[0];
    // Difficulty 1 at 1 kH/s: the miners never find a block themselves.
    let miners: Vec<_> = (0..5).map(|i| spawn_miner(addr, i, 1_000.0)).collect();
    assert!(
        e2e::wait_until(Duration::from_secs(10), || miners.iter().all(|(m, _)| m
            .stats()
            .notifies
            .load(Ordering::Relaxed)
            >= 1))
        .await,
        "every miner got a first job"
    );
    for round in 0..3 {
        let before: Vec<u64> = miners
            .iter()
            .map(|(m, _)| m.stats().clean_notifies.load(Ordering::Relaxed))
            .collect();
        sim.mine_network_block();
        let all = e2e::wait_until(Duration::from_secs(10), || {
            miners
                .iter()
                .zip(&before)
                .all(|((m, _), b)| m.stats().clean_notifies.load(Ordering::Relaxed) > *b)
        })
        .await;
        assert!(
            all,
            "round {round}: every miner got clean_jobs=true within 10 s"
        );
    }
    for (m, _) in &miners {
        assert_eq!(m.stats().rejected.load(Ordering::Relaxed), 0);
    }
    drop(miners);
    shutdown(pool).await;
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_payout_address_of_another_network_is_refused_at_authorize() {
    let sim = start_sim().await;
    let (pool, _dir) = start_pool(&sim, "authorize", &PoolOptions::default()).await;
    let mut client = RawClient::connect(pool.local_addrs()[0]).await;
    client
        .send(1, "mining.subscribe", serde_json::json!(["e2e/1.0"]))
        .await;
    assert!(client.reply(1).await["error"].is_null());
    client
        .send(
            2,
            "mining.authorize",
            serde_json::json!([format!("{MAINNET_ADDRESS}.w1"), "x"]),
        )
        .await;
    let refused = client.reply(2).await;
    assert_eq!(refused["error"][0], 24, "{refused}");
    assert_ne!(refused["result"], true, "{refused}");
    // The connection is kept: a regtest address is accepted on it.
    client
        .send(
            3,
            "mining.authorize",
            serde_json::json!([format!("{REGTEST_ADDRESS}.w1"), "x"]),
        )
        .await;
    let accepted = client.reply(3).await;
    assert_eq!(accepted["result"], true, "{accepted}");
    drop(client);
    shutdown(pool).await;
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_split_address_of_another_network_is_refused_at_start() {
    let sim = start_sim().await;
    let dir = e2e::temp_dir("split");
    let options = PoolOptions {
        extra: format!("[[pool.split]]\naddress = \"{MAINNET_ADDRESS}\"\nvalue_sats = 1000\n"),
        ..PoolOptions::default()
    };
    let err = Config::from_toml(&e2e::config_text(&sim, &dir, &options), Vec::new())
        .expect_err("a mainnet split address on a regtest pool is refused");
    let message = err.to_string();
    assert!(message.contains("pool.split[0].address"), "{message}");
    assert!(
        message.contains("regtest"),
        "names the configured network: {message}"
    );
    assert!(
        message.contains("bitcoin") || message.contains("mainnet"),
        "names the address's network: {message}"
    );
    // The same split with a regtest address is accepted.
    let options = PoolOptions {
        extra: format!("[[pool.split]]\naddress = \"{REGTEST_ADDRESS}\"\nvalue_sats = 1000\n"),
        ..PoolOptions::default()
    };
    Config::from_toml(&e2e::config_text(&sim, &dir, &options), Vec::new())
        .expect("a regtest split address is accepted");
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_node_of_another_network_is_refused_at_start() {
    let sim = start_sim().await; // chain = "regtest"
    let dir = e2e::temp_dir("node-network");
    let options = PoolOptions {
        network: "testnet",
        ..PoolOptions::default()
    };
    let config = Config::from_toml(&e2e::config_text(&sim, &dir, &options), Vec::new())
        .expect("valid config");
    let started = warppool_control::run::Pool::start(
        config,
        std::sync::Arc::new(warppool_control::stats::MemoryStats::default()),
    )
    .await;
    match started {
        Ok(pool) => {
            shutdown(pool).await;
            panic!("a testnet pool started on a regtest node");
        }
        Err(e) => {
            let message = format!("{e:#}");
            assert!(
                message.contains("regtest") && message.contains("testnet"),
                "{message}"
            );
        }
    }
    sim.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn gating_on_ibd_stops_new_work_and_work_resumes_by_itself() {
    let sim = start_sim().await;
    let (pool, _dir) = start_pool(&sim, "gating", &PoolOptions::default()).await;
    let addr = pool.local_addrs()[0];
    let miners: Vec<_> = (0..2).map(|i| spawn_miner(addr, i, 1_000.0)).collect();
    let notifies = |miners: &[(MinerHandle, ScriptBuf)]| -> Vec<u64> {
        miners
            .iter()
            .map(|(m, _)| m.stats().notifies.load(Ordering::Relaxed))
            .collect()
    };
    assert!(
        e2e::wait_until(Duration::from_secs(10), || notifies(&miners)
            .iter()
            .all(|n| *n >= 1))
        .await,
        "every miner got a first job"
    );

    // The node falls into initial block download; the next new tip gates the pool.
    let status = pool.template_loop().status();
    sim.set_ibd(true);
    sim.mine_network_block();
    assert!(
        e2e::wait_until(Duration::from_secs(10), || status.borrow().gate.is_some()).await,
        "the pool gates work while the node is in IBD"
    );
    let gated = notifies(&miners);
    for _ in 0..3 {
        sim.mine_network_block();
        tokio::time::sleep(Duration::from_millis(300)).await;
    }
    assert_eq!(notifies(&miners), gated, "no new work while gated");
    assert!(status.borrow().gate.is_some());

    // The node leaves IBD: work resumes without any new block or manual trigger.
    sim.set_ibd(false);
    assert!(
        e2e::wait_until(Duration::from_secs(10), || notifies(&miners)
            .iter()
            .zip(&gated)
            .all(|(n, g)| n > g))
        .await,
        "work resumed by itself within 10 s"
    );
    assert!(status.borrow().gate.is_none());
    assert_eq!(status.borrow().height, Some(sim.height() + 1));
    drop(miners);
    shutdown(pool).await;
    sim.stop().await;
}

/// `GET /api/v1/blocks` once it lists every one of `hashes` (at most 20 s).
async fn api_blocks_listing(http: std::net::SocketAddr, hashes: &[String]) -> serde_json::Value {
    let url = format!("http://{http}/api/v1/blocks");
    let deadline = tokio::time::Instant::now() + Duration::from_secs(20);
    loop {
        let reply: serde_json::Value = reqwest::get(&url)
            .await
            .expect("GET /api/v1/blocks")
            .json()
            .await
            .expect("JSON");
        let listed: Vec<&str> = reply["rows"]
            .as_array()
            .expect("blocks")
            .iter()
            .map(|b| b["hash"].as_str().unwrap_or_default())
            .collect();
        if hashes.iter().all(|h| listed.contains(&h.as_str())) {
            return reply;
        }
        assert!(
            tokio::time::Instant::now() < deadline,
            "accepted blocks missing from the API: {reply}"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn blocks_record_their_exact_finder_in_sqlite_and_the_http_api() {
    let sim = start_sim().await;
    // Every share is a block; the daemon records blocks in SQLite and serves the HTTP API.
    let options = PoolOptions {
        difficulty: 0.000_1,
        extra: "[http]\nlisten = \"127.0.0.1:0\"".to_owned(),
        ..PoolOptions::default()
    };
    let dir = e2e::temp_dir("finder");
    let text = e2e::config_text(&sim, &dir, &options);
    let daemon =
        warppool_control::run::Daemon::start(Config::from_toml(&text, Vec::new()).unwrap())
            .await
            .expect("daemon starts");
    let addr = daemon.pool().local_addrs()[0];
    let http = daemon.http_addr().expect("http api");
    let miners: Vec<_> = (0..2)
        .map(|i| {
            let (handle, script) = spawn_miner(addr, i, 1_000_000.0);
            (handle, script, miner_address(i).0)
        })
        .collect();
    let found = e2e::wait_until(Duration::from_secs(60), || {
        sim.submitted_blocks().len() >= 3
    })
    .await;
    assert!(found, "at least 3 miner blocks accepted within 60 s");
    // Stop mining first, so the API's newest-first list (at most 100) still holds these.
    let scripts: Vec<(ScriptBuf, String)> = miners
        .into_iter()
        .map(|(handle, script, address)| {
            drop(handle);
            (script, address)
        })
        .collect();
    let accepted = sim.submitted_blocks();

    // The API lists every accepted block with the worker whose coinbase it pays (by id).
    let hashes: Vec<String> = accepted.iter().map(|b| b.hash.to_string()).collect();
    let listed = api_blocks_listing(http, &hashes).await;
    let mut extranonce1_by_worker = std::collections::HashMap::new();
    for block in &accepted {
        let row = listed["rows"]
            .as_array()
            .unwrap()
            .iter()
            .find(|b| b["hash"] == block.hash.to_string())
            .expect("listed");
        let (i, (_, address)) = scripts
            .iter()
            .enumerate()
            .find(|(_, (script, _))| *script == block.payouts[0].0)
            .expect("the block pays one of the miners");
        // The public API masks the address; the id is the exact finder's (a hash of its full
        // name), and the database below holds the name itself.
        let finder = format!("{address}.w{i}");
        assert_eq!(row["worker_id"], v1::worker_id(&finder), "{row}");
        assert_eq!(row["worker"], v1::mask_name(&finder), "{row}");
        assert_eq!(row["user_agent"], format!("e2e-miner/{i}"), "{row}");
        let extranonce1 = row["extranonce1"].as_str().expect("extranonce1").to_owned();
        assert_eq!(extranonce1.len(), 8, "{row}");
        assert!(extranonce1.bytes().all(|b| b.is_ascii_hexdigit()), "{row}");
        // One connection per miner: one extranonce1 per worker.
        let first = extranonce1_by_worker
            .entry(i)
            .or_insert_with(|| extranonce1.clone());
        assert_eq!(*first, extranonce1, "{row}");
    }
    if extranonce1_by_worker.len() == 2 {
        assert_ne!(extranonce1_by_worker[&0], extranonce1_by_worker[&1]);
    }
    tokio::time::timeout(Duration::from_secs(20), daemon.shutdown())
        .await
        .expect("shutdown within 20 s")
        .expect("clean shutdown");

    // The same in the database, read after the daemon stopped.
    let reader = warppool_control::storage::StorageReader::open(&dir.join("db.sqlite")).unwrap();
    for block in &accepted {
        let row = reader
            .block(&block.hash.to_string())
            .unwrap()
            .expect("recorded");
        let address = &miners_address_of(&block.payouts[0].0);
        assert_eq!(row.payout_address, *address);
        assert!(row.worker.starts_with(&format!("{address}.w")), "{row:?}");
        assert!(row.extranonce1.is_some(), "{row:?}");
        assert!(row.user_agent.is_some(), "{row:?}");
    }
    sim.stop().await;
    let _ = std::fs::remove_dir_all(&dir);
}

/// The regtest address of a payout script.
fn miners_address_of(script: &ScriptBuf) -> String {
    Address::from_script(script, bitcoin::Network::Regtest)
        .expect("address")
        .to_string()
}

/// The statuses the journal in `dir` gives `hash`, in order, repeats folded.
fn journal_walk(dir: &std::path::Path, hash: &str) -> Vec<warppool_control::journal::BlockStatus> {
    let text = std::fs::read_to_string(dir.join("blocks.journal")).unwrap_or_default();
    let mut out = Vec::new();
    for entry in text
        .lines()
        .filter_map(|l| serde_json::from_str::<warppool_control::journal::JournalEntry>(l).ok())
        .filter(|e| e.hash == hash)
    {
        if out.last() != Some(&entry.status) {
            out.push(entry.status);
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_simulators_invalidateblock_walks_a_pool_block_in_chain_orphaned_in_chain() {
    use warppool_control::journal::BlockStatus::{Found, InChain, Orphaned};
    let sim = start_sim().await;
    let options = PoolOptions {
        difficulty: 0.000_1,
        ..PoolOptions::default()
    };
    let (pool, dir) = start_pool(&sim, "reorg-walk", &options).await;
    let (miner, _script) = spawn_miner(pool.local_addrs()[0], 7, 200_000.0);
    let first = || sim.submitted_blocks().first().map(|b| b.hash.to_string());
    let in_chain = e2e::wait_until(Duration::from_secs(60), || {
        first().is_some_and(|h| journal_walk(&dir, &h).contains(&InChain))
    })
    .await;
    // No more blocks: a competitor at the same height would keep the block orphaned.
    drop(miner.stop());
    assert!(in_chain, "a pool block in chain");
    let hash = first().unwrap();
    let block_hash: bitcoin::BlockHash = hash.parse().unwrap();
    sim.invalidate_block(&block_hash).expect("invalidateblock");
    let orphaned = e2e::wait_until(Duration::from_secs(40), || {
        journal_walk(&dir, &hash).last() == Some(&Orphaned)
    })
    .await;
    assert!(orphaned, "orphaned: {:?}", journal_walk(&dir, &hash));
    sim.reconsider_block(&block_hash).expect("reconsiderblock");
    let back = e2e::wait_until(Duration::from_secs(40), || {
        journal_walk(&dir, &hash).last() == Some(&InChain)
    })
    .await;
    let steps = journal_walk(&dir, &hash);
    assert!(back, "in chain again: {steps:?}");
    assert_eq!(steps, [Found, InChain, Orphaned, InChain]);
    shutdown(pool).await;
    sim.stop().await;
}
