//! The chain simulator's blocks against Bitcoin Core's own consensus engine (py-bitcoinkernel,
//! `scripts/kernel-venv`, found through `WARPPOOL_KERNEL_PYTHON`): the network's blocks with
//! real mempool transactions of all four kinds are accepted from genesis, and broken blocks
//! are rejected by the engine with Core's reasons. With `CI` set, a missing engine fails the
//! tests; elsewhere they print a skip note.

use bitcoin::hashes::Hash;
use bitcoin::{Amount, Block, BlockHash, ScriptBuf, Transaction, TxMerkleNode, Witness};
use serde_json::{Value, json};
use warppool_core::coinbase::bip34_height_push;
use warppool_core::difficulty::ShareTarget;
use warppool_loadgen::chain::{
    ChainSim, ChainSimConfig, ChainSimHandle, KERNEL_PYTHON_ENV, kernel_python_from_env,
};

/// What the tests need to run and where it comes from.
const INSTALL: &str = "export WARPPOOL_KERNEL_PYTHON=\"$(scripts/kernel-venv)\" (py-bitcoinkernel \
     0.1.0a5 from PyPI into target/kernel-venv; .ci/run does it)";

/// A simulator with Core's engine, or `None` (off CI) when the engine is not installed.
async fn engine_sim(mempool_target: usize) -> Option<ChainSimHandle> {
    let ci = std::env::var_os("CI").is_some_and(|v| !v.is_empty());
    let Some(python) = kernel_python_from_env() else {
        assert!(!ci, "CI: {KERNEL_PYTHON_ENV} is not set; run {INSTALL}");
        eprintln!("skipped: Core's engine is not installed ({KERNEL_PYTHON_ENV}); run {INSTALL}");
        return None;
    };
    let sim = ChainSim::start(ChainSimConfig {
        seed: 11,
        mempool_target,
        mempool_refill_interval: None,
        kernel_python: Some(python),
        ..ChainSimConfig::default()
    })
    .await
    .expect("start");
    let stats = sim.kernel_stats();
    if !stats.active {
        assert!(
            !ci,
            "CI: Core's engine did not start: {stats:?}; run {INSTALL}"
        );
        eprintln!("skipped: Core's engine did not start: {stats:?}; run {INSTALL}");
        return None;
    }
    Some(sim)
}

async fn rpc(sim: &ChainSimHandle, method: &str, params: Value) -> Value {
    let (user, password) = sim.rpc_auth();
    let reply: Value = reqwest::Client::new()
        .post(sim.rpc_url())
        .basic_auth(user, Some(password))
        .json(&json!({"jsonrpc": "1.0", "id": 1, "method": method, "params": params}))
        .send()
        .await
        .expect("RPC")
        .json()
        .await
        .expect("JSON reply");
    assert!(reply["error"].is_null(), "{method}: {reply}");
    reply["result"].clone()
}

async fn submit(sim: &ChainSimHandle, block: &Block) -> Value {
    let hex = warppool_core::hex::encode(&bitcoin::consensus::serialize(block));
    rpc(sim, "submitblock", json!([hex])).await
}

/// The input kinds of a transaction, by the shape of its spends.
fn input_kinds(tx: &Transaction) -> Vec<&'static str> {
    tx.input
        .iter()
        .map(|i| match (i.script_sig.len(), i.witness.len()) {
            (0, 1) => "p2tr",
            (0, 2) => "p2wpkh",
            (23, 2) => "p2sh-p2wpkh",
            (_, 0) => "p2pkh",
            _ => "other",
        })
        .collect()
}

/// A block from the simulator's template, built here the way a pool does (coinbase with the
/// BIP34 height, the reserved value and `default_witness_commitment`), with proof of work.
async fn template_block(sim: &ChainSimHandle) -> Block {
    let t = rpc(sim, "getblocktemplate", json!([{"rules": ["segwit"]}])).await;
    let height = u32::try_from(t["height"].as_u64().expect("height")).expect("u32");
    let (push, len) = bip34_height_push(height).expect("push");
    let commitment =
        warppool_core::hex::decode(t["default_witness_commitment"].as_str().unwrap()).expect("hex");
    let coinbase = Transaction {
        version: bitcoin::transaction::Version::TWO,
        lock_time: bitcoin::absolute::LockTime::ZERO,
        input: vec![bitcoin::TxIn {
            previous_output: bitcoin::OutPoint::null(),
            script_sig: ScriptBuf::from_bytes([&push[..len], b"\x04test"].concat()),
            sequence: bitcoin::Sequence::MAX,
            witness: Witness::from_slice(&[[0u8; 32]]),
        }],
        output: vec![
            bitcoin::TxOut {
                value: Amount::from_sat(t["coinbasevalue"].as_u64().expect("value")),
                script_pubkey: ScriptBuf::new_p2wpkh(&bitcoin::WPubkeyHash::from_byte_array(
                    [3; 20],
                )),
            },
            bitcoin::TxOut {
                value: Amount::ZERO,
                script_pubkey: ScriptBuf::from_bytes(commitment),
            },
        ],
    };
    let mut txdata = vec![coinbase];
    for tx in t["transactions"].as_array().expect("transactions") {
        let raw = warppool_core::hex::decode(tx["data"].as_str().expect("data")).expect("hex");
        txdata.push(bitcoin::consensus::deserialize(&raw).expect("tx"));
    }
    let prev: BlockHash = t["previousblockhash"]
        .as_str()
        .unwrap()
        .parse()
        .expect("hash");
    let mut block = Block {
        header: bitcoin::block::Header {
            version: bitcoin::block::Version::from_consensus(0x2000_0000),
            prev_blockhash: prev,
            merkle_root: TxMerkleNode::all_zeros(),
            time: u32::try_from(t["curtime"].as_u64().expect("time")).expect("u32"),
            bits: bitcoin::CompactTarget::from_consensus(0x207f_ffff),
            nonce: 0,
        },
        txdata,
    };
    block.header.merkle_root = block.compute_merkle_root().expect("root");
    grind(&mut block);
    block
}

/// Recomputes the witness commitment and the merkle root, then grinds.
fn fix_and_grind(block: &mut Block) {
    let root = block.witness_root().expect("witness root");
    let commitment = Block::compute_witness_commitment(&root, &[0u8; 32]);
    let mut script = vec![0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed];
    script.extend_from_slice(commitment.as_byte_array());
    block.txdata[0].output[1].script_pubkey = ScriptBuf::from_bytes(script);
    block.header.merkle_root = block.compute_merkle_root().expect("root");
    grind(block);
}

fn grind(block: &mut Block) {
    let target = ShareTarget::from_compact(block.header.bits.to_consensus()).expect("bits");
    block.header.nonce = 0;
    while !target.is_met_by(&block.block_hash().to_byte_array()) {
        block.header.nonce += 1;
    }
}

#[tokio::test]
async fn network_blocks_with_fifty_real_transactions_of_four_kinds_pass_cores_engine() {
    let Some(sim) = engine_sim(80).await else {
        return;
    };
    let premined = sim.kernel_stats();
    let started = std::time::Instant::now();
    let mut kinds = std::collections::BTreeSet::new();
    let mut biggest = 0;
    for _ in 0..4 {
        let hash = sim.mine_network_block();
        let block = rpc(&sim, "getblock", json!([hash.to_string(), 0])).await;
        let raw = warppool_core::hex::decode(block.as_str().expect("hex")).expect("hex");
        let block: Block = bitcoin::consensus::deserialize(&raw).expect("block");
        biggest = biggest.max(block.txdata.len() - 1);
        for tx in &block.txdata[1..] {
            kinds.extend(input_kinds(tx));
        }
        assert_eq!(sim.tip(), hash, "Core's engine accepted the block");
    }
    let elapsed = started.elapsed();
    assert!(
        biggest >= 50,
        "a block carried {biggest} mempool transactions"
    );
    assert_eq!(
        kinds.into_iter().collect::<Vec<_>>(),
        vec!["p2pkh", "p2sh-p2wpkh", "p2tr", "p2wpkh"]
    );
    let stats = sim.kernel_stats();
    assert_eq!(stats.rejected, 0, "{stats:?}");
    assert_eq!(stats.disagreements, 0, "{stats:?}");
    assert_eq!(
        stats.accepted,
        u64::from(sim.height()),
        "every block from genesis: {stats:?}"
    );
    let full_micros = stats.check_micros_total - premined.check_micros_total;
    eprintln!(
        "engine: {} premined blocks at {:.2} ms each; 4 blocks of up to {biggest} transactions \
         at {:.2} ms each (mined and checked in {elapsed:?})",
        premined.accepted,
        premined.check_micros_total as f64 / 1e3 / premined.accepted as f64,
        full_micros as f64 / 1e3 / 4.0
    );
}

/// Submits `block`, expects `reason` from the simulator and a rejection by the engine.
async fn expect_rejected(sim: &ChainSimHandle, block: &Block, reason: &str, engine: &str) {
    let before = sim.kernel_stats();
    let tip = sim.tip();
    assert_eq!(submit(sim, block).await, json!(reason));
    let after = sim.kernel_stats();
    assert_eq!(after.rejected, before.rejected + 1, "{after:?}");
    let said = after.last_rejection.expect("a rejection");
    assert!(
        said.starts_with(engine),
        "the engine said {said:?}, expected {engine:?}"
    );
    eprintln!("{reason}: the engine said {said:?}");
    assert_eq!(sim.tip(), tip);
}

#[tokio::test]
async fn broken_blocks_are_rejected_by_cores_engine_with_cores_reasons() {
    let Some(sim) = engine_sim(30).await else {
        return;
    };
    let good = template_block(&sim).await;
    assert!(good.txdata.len() > 10);

    let mut b = good.clone();
    b.txdata[0].output[0].value += Amount::from_sat(1);
    fix_and_grind(&mut b);
    expect_rejected(&sim, &b, "bad-cb-amount", "bad-cb-amount CONSENSUS").await;

    let mut b = good.clone();
    let mut s = b.txdata[0].output[1].script_pubkey.to_bytes();
    s[10] ^= 1;
    b.txdata[0].output[1].script_pubkey = ScriptBuf::from_bytes(s);
    b.header.merkle_root = b.compute_merkle_root().expect("root");
    grind(&mut b);
    let reason = "bad-witness-merkle-match";
    expect_rejected(&sim, &b, reason, "bad-witness-merkle-match MUTATED").await;

    let mut b = good.clone();
    let mut script = b.txdata[0].input[0].script_sig.to_bytes();
    let (push, len) = bip34_height_push(sim.height() + 2).expect("push");
    script[..len].copy_from_slice(&push[..len]);
    b.txdata[0].input[0].script_sig = ScriptBuf::from_bytes(script);
    fix_and_grind(&mut b);
    expect_rejected(&sim, &b, "bad-cb-height", "bad-cb-height CONSENSUS").await;

    // The segwit block serialized without witnesses: the commitment is there, the coinbase's
    // reserved value is not.
    let mut stripped = good.clone();
    for tx in &mut stripped.txdata {
        for input in &mut tx.input {
            input.witness = Witness::new();
        }
    }
    assert_eq!(
        stripped.block_hash(),
        good.block_hash(),
        "the header does not change"
    );
    let reason = "bad-witness-nonce-size";
    expect_rejected(&sim, &stripped, reason, "bad-witness-nonce-size MUTATED").await;

    // The good block is still fine (a mutated block does not poison its hash).
    assert_eq!(submit(&sim, &good).await, Value::Null);
    assert_eq!(sim.tip(), good.block_hash());
    assert_eq!(sim.kernel_stats().disagreements, 0);
}

#[tokio::test]
async fn a_taproot_spend_with_a_corrupted_signature_is_rejected_by_cores_scripts() {
    let Some(sim) = engine_sim(40).await else {
        return;
    };
    let tip = sim.tip();
    let mut b = template_block(&sim).await;
    let i = b
        .txdata
        .iter()
        .position(|t| input_kinds(t).contains(&"p2tr"))
        .expect("a taproot spend in the template");
    let input = b.txdata[i]
        .input
        .iter_mut()
        .find(|x| x.script_sig.is_empty() && x.witness.len() == 1)
        .expect("the taproot input");
    let mut sig = input.witness.nth(0).expect("signature").to_vec();
    sig[5] ^= 0x01;
    input.witness = Witness::from_slice(&[sig]);
    fix_and_grind(&mut b);
    // The simulator does not run scripts: only the engine can see this.
    let reply = submit(&sim, &b).await;
    let reply = reply.as_str().expect("a reject reason").to_owned();
    eprintln!(
        "corrupted Schnorr signature: {reply:?}, {:?}",
        sim.kernel_stats()
    );
    assert!(reply.contains("script-verify-flag-failed"), "{reply}");
    assert!(reply.contains("Schnorr"), "{reply}");
    assert_eq!(sim.tip(), tip, "the block was taken back");
    assert_eq!(sim.confirmations(&b.block_hash()), Some(-1));
    // The chain goes on, and the engine agrees with it.
    let next = sim.mine_network_block();
    assert_eq!(sim.tip(), next);
    assert_eq!(sim.kernel_stats().disagreements, 0);
}

#[tokio::test]
async fn reorgs_and_invalidations_keep_cores_engine_in_step() {
    let Some(sim) = engine_sim(30).await else {
        return;
    };
    let a = sim.mine_network_block(); // with the mempool's transactions
    let b = sim.mine_network_block();
    sim.invalidate_block(&a).expect("invalidate");
    assert_eq!(sim.confirmations(&a), Some(-1));
    assert_eq!(sim.confirmations(&b), Some(-1));
    // The transactions of a and b are back in the mempool; a new block confirms them again.
    let c = sim.mine_network_block();
    let d = sim.mine_network_block();
    assert_eq!(sim.tip(), d);
    sim.reconsider_block(&a).expect("reconsider");
    // a..b has the same work as c..d and was seen first: it wins, as in Core's candidate
    // order (a reorg of two blocks).
    assert_eq!(sim.tip(), b);
    assert_eq!(sim.confirmations(&c), Some(-1));
    // One more block on d gives c..d the most work: a reorg back.
    let e = sim.mine_network_block_on(&d);
    assert_eq!(sim.tip(), e);
    assert_eq!(sim.confirmations(&a), Some(-1));
    assert_eq!(sim.confirmations(&c), Some(3));
    let g = sim.mine_network_block();
    assert_eq!(sim.tip(), g);
    let stats = sim.kernel_stats();
    assert_eq!(stats.disagreements, 0, "{stats:?}");
    assert_eq!(stats.rejected, 0, "{stats:?}");
}
