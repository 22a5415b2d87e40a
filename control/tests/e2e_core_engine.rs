//! The pool's blocks against Bitcoin Core's own consensus engine: the chain simulator, with a
//! mempool of real signed transactions (P2WPKH, P2TR key path, P2PKH, P2SH-P2WPKH) spending
//! its own matured coinbases, hands its templates to a real pool; simulated CPU miners find
//! blocks through it; the simulator feeds every block of its chain, from genesis and in order,
//! to Core's engine (py-bitcoinkernel, `scripts/kernel-venv`). Every pool block must carry at
//! least 50 mempool transactions, segwit and taproot spends among them, and every block must
//! pass the engine. With `CI` set, a missing engine fails the test; elsewhere it is skipped
//! with a note.

#[path = "support/e2e.rs"]
mod e2e;

use std::time::Duration;

use e2e::{PoolOptions, REGTEST_ADDRESS, start_pool};
use serde_json::{Value, json};
use warppool_loadgen::{
    chain::{ChainSim, ChainSimConfig, ChainSimHandle, KERNEL_PYTHON_ENV, kernel_python_from_env},
    miner::{self, MinerConfig},
};

/// Pool blocks the test waits for.
const POOL_BLOCKS: usize = 3;
/// Mempool transactions each of them must carry.
const TRANSACTIONS_MIN: usize = 50;

async fn engine_sim() -> Option<ChainSimHandle> {
    let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty());
    let install = "export WARPPOOL_KERNEL_PYTHON=\"$(scripts/kernel-venv)\"";
    let Some(python) = kernel_python_from_env() else {
        assert!(!ci, "CI: {KERNEL_PYTHON_ENV} is not set; run {install}");
        eprintln!("skipped: Core's engine is not installed; run {install}");
        return None;
    };
    let sim = ChainSim::start(ChainSimConfig {
        seed: 23,
        mempool_target: 120,
        mempool_refill_interval: None,
        block_interval: None,
        kernel_python: Some(python),
        ..ChainSimConfig::default()
    })
    .await
    .expect("chain simulator starts");
    let stats = sim.kernel_stats();
    assert!(
        stats.active || !ci,
        "CI: Core's engine did not start: {stats:?}"
    );
    stats.active.then_some(sim)
}

async fn raw_block(sim: &ChainSimHandle, hash: &str) -> bitcoin::Block {
    let (user, password) = sim.rpc_auth();
    let reply: Value = reqwest::Client::new()
        .post(sim.rpc_url())
        .basic_auth(user, Some(password))
        .json(&json!({"jsonrpc": "1.0", "id": 1, "method": "getblock", "params": [hash, 0]}))
        .send()
        .await
        .expect("getblock")
        .json()
        .await
        .expect("JSON");
    let bytes = warppool_core::hex::decode(reply["result"].as_str().expect("hex")).expect("hex");
    bitcoin::consensus::deserialize(&bytes).expect("a block")
}

/// The kind of each input, by the shape of its spend.
fn kinds(block: &bitcoin::Block) -> std::collections::BTreeMap<&'static str, usize> {
    let mut out = std::collections::BTreeMap::new();
    for tx in block.txdata.iter().skip(1) {
        for i in &tx.input {
            let kind = match (i.script_sig.len(), i.witness.len()) {
                (0, 1) => "p2tr",
                (0, 2) => "p2wpkh",
                (23, 2) => "p2sh-p2wpkh",
                (_, 0) => "p2pkh",
                _ => "other",
            };
            *out.entry(kind).or_insert(0) += 1;
        }
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pool_blocks_with_fifty_real_transactions_pass_cores_engine_in_order() {
    let Some(sim) = engine_sim().await else {
        return;
    };
    let options = PoolOptions {
        difficulty: 0.000_1,
        ..PoolOptions::default()
    };
    let (pool, _dir) = start_pool(&sim, "core-engine", &options).await;
    let miner = miner::spawn(MinerConfig {
        pool: pool.local_addrs()[0],
        username: format!("{REGTEST_ADDRESS}.core"),
        password: "x".into(),
        user_agent: "e2e-core-engine/1.0".into(),
        hashrate_hps: 200_000.0,
    })
    .expect("miner connects");
    let full = |sim: &ChainSimHandle| {
        sim.submitted_blocks()
            .iter()
            .filter(|b| b.tx_count > TRANSACTIONS_MIN)
            .count()
    };
    let found = e2e::wait_until(Duration::from_secs(120), || full(&sim) >= POOL_BLOCKS).await;
    drop(miner.stop());
    let submitted = sim.submitted_blocks();
    assert!(
        found,
        "{POOL_BLOCKS} pool blocks with more than {TRANSACTIONS_MIN} transactions: {:?}",
        submitted.iter().map(|b| b.tx_count).collect::<Vec<_>>()
    );
    let mut total = std::collections::BTreeMap::new();
    for b in submitted.iter().filter(|b| b.tx_count > TRANSACTIONS_MIN) {
        let block = raw_block(&sim, &b.hash.to_string()).await;
        assert!(
            block.txdata[0]
                .output
                .iter()
                .any(|o| o.script_pubkey.is_p2wpkh()),
            "the coinbase pays the miner"
        );
        for (k, n) in kinds(&block) {
            *total.entry(k).or_insert(0) += n;
        }
    }
    for kind in ["p2tr", "p2wpkh", "p2sh-p2wpkh", "p2pkh"] {
        assert!(
            total.get(kind).copied().unwrap_or(0) > 0,
            "{kind} spends: {total:?}"
        );
    }
    let stats = sim.kernel_stats();
    assert_eq!(stats.rejected, 0, "{stats:?}");
    assert_eq!(stats.disagreements, 0, "{stats:?}");
    assert!(
        stats.accepted >= 101 + submitted.len() as u64,
        "every block of the chain passed Core's engine in order: {stats:?}"
    );
    tokio::time::timeout(Duration::from_secs(20), pool.shutdown())
        .await
        .expect("shutdown within 20 s")
        .expect("clean shutdown");
    sim.stop().await;
}
