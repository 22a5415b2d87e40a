//! The chain simulator against WarpPool's own template parsing, coinbase building and block
//! assembly, and against Bitcoin Core's RPC and ZMQ conventions.

use std::sync::Arc;
use std::time::Duration;

use bitcoin::hashes::Hash;
use bitcoin::{Amount, Block, BlockHash, ScriptBuf, TxMerkleNode, TxOut};
use bytes::Bytes;
use http_body_util::Full;
use hyper::StatusCode;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use warppool_core::coinbase::{CoinbaseConfig, bip34_height_push};
use warppool_core::template::Template;
use warppool_loadgen::chain::{
    ChainSim, ChainSimConfig, ChainSimHandle, RpcAuthConfig, basic_auth_header, block_subsidy,
};
use zeromq::{Socket, SocketRecv};

#[path = "support/chain.rs"]
mod support;

use support::*;

/// Checks that every template entry's `depends` lists (1-based) exactly the earlier entries it
/// spends from; returns how many entries have any.
fn template_depends_are_cores(raw: &Value) -> usize {
    let entries = raw["transactions"].as_array().expect("array");
    let txids: Vec<&str> = entries
        .iter()
        .map(|e| e["txid"].as_str().unwrap())
        .collect();
    let mut chained = 0;
    for (i, e) in entries.iter().enumerate() {
        let raw_tx = warppool_core::hex::decode(e["data"].as_str().unwrap()).unwrap();
        let tx: bitcoin::Transaction = bitcoin::consensus::deserialize(&raw_tx).expect("tx");
        let mut want: Vec<u64> = tx
            .input
            .iter()
            .filter_map(|x| {
                let parent = x.previous_output.txid.to_string();
                txids.iter().position(|t| *t == parent)
            })
            .inspect(|j| assert!(*j < i, "a parent comes before its child"))
            .map(|j| j as u64 + 1)
            .collect();
        want.sort_unstable();
        want.dedup();
        let mut got: Vec<u64> = e["depends"]
            .as_array()
            .expect("depends")
            .iter()
            .map(|d| d.as_u64().expect("index"))
            .collect();
        got.sort_unstable();
        assert_eq!(got, want, "depends of entry {i}");
        chained += usize::from(!want.is_empty());
    }
    chained
}

#[tokio::test]
async fn template_parses_has_witness_txs_and_core_commitment() {
    let sim = start().await;
    let (raw, t) = gbt(&sim).await;
    for field in [
        "capabilities",
        "version",
        "rules",
        "vbavailable",
        "vbrequired",
        "previousblockhash",
        "transactions",
        "coinbaseaux",
        "coinbasevalue",
        "longpollid",
        "target",
        "mintime",
        "mutable",
        "noncerange",
        "sigoplimit",
        "sizelimit",
        "weightlimit",
        "curtime",
        "bits",
        "height",
        "default_witness_commitment",
    ] {
        assert!(raw.get(field).is_some(), "missing {field}");
    }
    assert_eq!(raw["version"], 0x2000_0000);
    assert_eq!(raw["rules"], json!(["csv", "!segwit", "taproot"]));
    assert_eq!(raw["bits"], "207fffff");
    assert!(t.is_segwit());
    assert_eq!(t.height(), P + 1);
    assert_eq!(t.prevhash(), &sim.tip().to_byte_array());
    let witness_txs = t
        .transactions()
        .iter()
        .filter(|tx| tx.txid() != tx.wtxid())
        .count();
    assert!(witness_txs > 0, "the mempool has witness transactions");
    for tx in raw["transactions"].as_array().expect("array") {
        let decoded: bitcoin::Transaction = bitcoin::consensus::deserialize(
            &warppool_core::hex::decode(tx["data"].as_str().unwrap()).unwrap(),
        )
        .expect("tx decodes");
        assert_eq!(tx["txid"], decoded.compute_txid().to_string());
        assert_eq!(tx["hash"], decoded.compute_wtxid().to_string());
        assert_eq!(tx["weight"], decoded.weight().to_wu());
        assert!(tx["fee"].as_u64().expect("fee") > 0);
    }
    assert!(
        template_depends_are_cores(&raw) > 0,
        "the mempool chains transactions"
    );
    let fees: u64 = t.transactions().iter().map(|x| x.fee_sats()).sum();
    assert_eq!(t.coinbase_value_sats(), block_subsidy(P + 1) + fees);
    // The commitment warppool_core computes is Core's default_witness_commitment.
    assert_eq!(
        Some(&t.witness_commitment_script(&[0u8; 32])[..]),
        t.default_witness_commitment()
    );
    warppool_core::coinbase::build_coinbase(&t, payout().as_bytes(), &CoinbaseConfig::solo(b"x"))
        .expect("build_coinbase agrees with the node's commitment");
}

#[tokio::test]
async fn pool_block_is_accepted_becomes_tip_and_duplicate_after() {
    let sim = start().await;
    let (_, t) = gbt(&sim).await;
    let txids: Vec<[u8; 32]> = t.transactions().iter().map(|x| *x.txid()).collect();
    let value = t.coinbase_value_sats();
    let block = pool_block(t, true);
    assert!(block.txdata.len() > 1);
    assert_eq!(submit(&sim, &block).await, Value::Null);
    assert_eq!(sim.tip(), block.block_hash());
    assert_eq!(sim.height(), P + 1);
    let found = sim.submitted_blocks();
    assert_eq!(found.len(), 1);
    assert_eq!(found[0].hash, block.block_hash());
    assert_eq!(found[0].payouts, vec![(payout(), value)]);
    assert_eq!(submit(&sim, &block).await, json!("duplicate"));
    // The block's transactions left the mempool.
    let (_, next) = gbt(&sim).await;
    assert_eq!(next.height(), P + 2);
    assert!(
        next.transactions()
            .iter()
            .all(|x| !txids.contains(x.txid()))
    );
    assert_eq!(
        result(&sim, "getbestblockhash", json!([])).await,
        json!(block.block_hash().to_string())
    );
}

#[tokio::test]
async fn each_broken_block_gets_cores_reject_reason() {
    let sim = start().await;
    let (_, t) = gbt(&sim).await;
    let good = pool_block(t, true);

    let mut b = good.clone();
    b.header.prev_blockhash = BlockHash::from_byte_array([9; 32]);
    grind(&mut b);
    assert_eq!(submit(&sim, &b).await, json!("prev-blk-not-found"));

    let mut b = good.clone();
    b.header.merkle_root = TxMerkleNode::all_zeros();
    grind(&mut b);
    assert_eq!(submit(&sim, &b).await, json!("bad-txnmrklroot"));

    let mut b = good.clone();
    let out = b.txdata[0].output.last_mut().expect("commitment");
    let mut s = out.script_pubkey.to_bytes();
    s[10] ^= 1;
    out.script_pubkey = ScriptBuf::from_bytes(s);
    b.header.merkle_root = b.compute_merkle_root().expect("root");
    grind(&mut b);
    assert_eq!(submit(&sim, &b).await, json!("bad-witness-merkle-match"));

    let mut b = good.clone();
    let mut script = b.txdata[0].input[0].script_sig.to_bytes();
    let (push, len) = bip34_height_push(P + 2).expect("push");
    script[..len].copy_from_slice(&push[..len]);
    b.txdata[0].input[0].script_sig = ScriptBuf::from_bytes(script);
    fix_and_grind(&mut b);
    assert_eq!(submit(&sim, &b).await, json!("bad-cb-height"));

    let mut b = good.clone();
    b.txdata[0].output[0].value += Amount::from_sat(1);
    fix_and_grind(&mut b);
    assert_eq!(submit(&sim, &b).await, json!("bad-cb-amount"));

    let mut b = good.clone();
    let mut stranger = b.txdata[1].clone();
    stranger.output.push(TxOut {
        value: Amount::from_sat(1_000),
        script_pubkey: payout(),
    });
    b.txdata.push(stranger);
    fix_and_grind(&mut b);
    assert_eq!(
        submit(&sim, &b).await,
        json!("bad-txns-inputs-missingorspent")
    );

    // Nothing above moved the tip; the good block still connects.
    assert_eq!(sim.height(), P);
    assert_eq!(submit(&sim, &good).await, Value::Null);

    // A valid block on the old tip: stored on a side branch, not connected.
    let mut stale = good.clone();
    stale.txdata[0].output[0].value -= Amount::from_sat(1);
    fix_and_grind(&mut stale);
    assert_eq!(submit(&sim, &stale).await, json!("inconclusive"));
    assert_eq!(sim.tip(), good.block_hash());

    // Not hex / not a block.
    let (status, v) = rpc(&sim, "submitblock", json!(["00ff"])).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(v["error"]["code"], -22);
    assert_eq!(v["error"]["message"], "Block decode failed");
}

#[tokio::test]
async fn high_hash_with_harder_bits_and_network_blocks_skip_pow() {
    let sim = ChainSim::start(ChainSimConfig {
        bits: 0x1d00_ffff,
        skip_own_pow: true,
        seed: 3,
        ..ChainSimConfig::default()
    })
    .await
    .expect("start");
    let (raw, t) = gbt(&sim).await;
    assert_eq!(raw["bits"], "1d00ffff");
    assert_eq!(
        raw["target"],
        "00000000ffff0000000000000000000000000000000000000000000000000000"
    );
    let block = pool_block(t, false);
    assert_eq!(submit(&sim, &block).await, json!("high-hash"));
    // The simulator's own blocks need no proof of work with skip_own_pow.
    let h = sim.mine_network_block();
    assert_eq!(sim.tip(), h);
    assert_eq!(sim.height(), P + 1);
    assert!(sim.submitted_blocks().is_empty());
}

#[tokio::test]
async fn hashblock_arrives_over_zmq_for_a_network_block() {
    let sim = start().await;
    let mut sub = zeromq::SubSocket::new();
    sub.connect(&sim.zmq_endpoint()).await.expect("connect");
    sub.subscribe("hashblock").await.expect("subscribe");
    // A SUB socket joins a little after connect: mine until the first notification arrives
    // (Core's sequence counts every notification, heard or not).
    let check = |msg: zeromq::ZmqMessage, hash: BlockHash| -> u32 {
        let frames = msg.into_vec();
        assert_eq!(frames.len(), 3);
        assert_eq!(&frames[0][..], b"hashblock");
        let mut display = hash.to_byte_array();
        display.reverse();
        assert_eq!(&frames[1][..], &display[..]);
        u32::from_le_bytes(frames[2][..].try_into().expect("4-byte sequence"))
    };
    let mut first = None;
    for attempt in 0..50 {
        let hash = sim.mine_network_block();
        if let Ok(msg) = tokio::time::timeout(Duration::from_millis(200), sub.recv()).await {
            first = Some((check(msg.expect("recv"), hash), hash, attempt));
            break;
        }
    }
    let (seq, first_hash, attempts) = first.expect("a hashblock within 50 blocks");
    assert_eq!(seq, attempts, "one sequence number per block, from 0");
    let hash = sim.mine_network_block();
    let msg = tokio::time::timeout(Duration::from_secs(10), sub.recv())
        .await
        .expect("hashblock in time")
        .expect("recv");
    assert_eq!(check(msg, hash), seq + 1);
    let seen = [first_hash, hash];
    let base = sim.height() - 2;
    // getblockheader / getblockhash agree with the chain.
    let hdr = result(&sim, "getblockheader", json!([seen[0].to_string()])).await;
    assert_eq!(hdr["height"], base + 1);
    assert_eq!(hdr["confirmations"], 2);
    assert_eq!(hdr["nextblockhash"], json!(seen[1].to_string()));
    assert_eq!(
        result(&sim, "getblockhash", json!([base + 2])).await,
        json!(seen[1].to_string())
    );
    let raw = result(&sim, "getblockheader", json!([seen[1].to_string(), false])).await;
    assert_eq!(raw.as_str().map(str::len), Some(160));
    let (status, v) = rpc(
        &sim,
        "getblockheader",
        json!([BlockHash::all_zeros().to_string()]),
    )
    .await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(v["error"]["code"], -5);
    assert_eq!(v["error"]["message"], "Block not found");
    let (_, v) = rpc(&sim, "getblockhash", json!([base + 3])).await;
    assert_eq!(v["error"]["code"], -8);
}

#[tokio::test]
async fn long_poll_returns_on_a_new_block_and_times_out_otherwise() {
    let sim = Arc::new(
        ChainSim::start(ChainSimConfig {
            longpoll_timeout: Duration::from_millis(500),
            mempool_refill_interval: None,
            seed: 5,
            ..ChainSimConfig::default()
        })
        .await
        .expect("start"),
    );
    let (raw, _) = gbt(&sim).await;
    let id = raw["longpollid"].as_str().expect("id").to_owned();
    // Nothing changes: the wait ends at the timeout with the same template.
    let t0 = std::time::Instant::now();
    let same = result(
        &sim,
        "getblocktemplate",
        json!([{"rules": ["segwit"], "longpollid": id}]),
    )
    .await;
    assert!(t0.elapsed() >= Duration::from_millis(450));
    assert_eq!(same["longpollid"], json!(id));
    // A block arrives during the wait: the call returns the new template.
    let sim2 = Arc::clone(&sim);
    let waiter = tokio::spawn(async move {
        result(
            &sim2,
            "getblocktemplate",
            json!([{"rules": ["segwit"], "longpollid": id}]),
        )
        .await
    });
    tokio::time::sleep(Duration::from_millis(100)).await;
    let h = sim.mine_network_block();
    let fresh = tokio::time::timeout(Duration::from_secs(5), waiter)
        .await
        .expect("in time")
        .expect("task");
    assert_eq!(fresh["previousblockhash"], json!(h.to_string()));
    assert_eq!(fresh["height"], P + 2);
}

#[tokio::test]
async fn auth_errors_methods_ibd_and_outages() {
    let sim = start().await;
    let body = json!({"method": "getblockcount", "params": [], "id": 1});
    let (status, headers, _) = post(sim.rpc_addr(), Some(("warppool", "wrong")), &body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);
    assert!(headers.contains_key("www-authenticate"));
    let (status, _, _) = post(sim.rpc_addr(), None, &body).await;
    assert_eq!(status, StatusCode::UNAUTHORIZED);

    let (status, v) = rpc(&sim, "nosuchmethod", json!([])).await;
    assert_eq!(status, StatusCode::NOT_FOUND);
    assert_eq!(v["error"]["code"], -32601);
    assert!(v["result"].is_null());

    // JSON-RPC 2.0: HTTP 200, no "error" on success; batches.
    let (u, p) = sim.rpc_auth();
    let (status, _, b) = post(
        sim.rpc_addr(),
        Some((&u, &p)),
        &json!([
            {"jsonrpc": "2.0", "method": "getblockcount", "id": 1},
            {"jsonrpc": "2.0", "method": "nosuchmethod", "id": 2},
        ]),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    let v: Value = serde_json::from_slice(&b).expect("json");
    assert_eq!(v[0]["result"], P);
    assert!(v[0].get("error").is_none());
    assert_eq!(v[1]["error"]["code"], -32601);

    let (status, v) = rpc(&sim, "getblocktemplate", json!([{}])).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    assert_eq!(v["error"]["code"], -8);
    assert!(
        v["error"]["message"]
            .as_str()
            .unwrap()
            .starts_with("getblocktemplate must be called with the segwit rule set")
    );

    sim.set_ibd(true);
    let (_, v) = rpc(&sim, "getblocktemplate", json!([{"rules": ["segwit"]}])).await;
    assert_eq!(v["error"]["code"], -10);
    assert_eq!(
        result(&sim, "getblockchaininfo", json!([])).await["initialblockdownload"],
        true
    );
    sim.set_ibd(false);
    let info = result(&sim, "getblockchaininfo", json!([])).await;
    assert_eq!(info["chain"], "regtest");
    assert_eq!(info["initialblockdownload"], false);

    sim.set_rpc_failing(true);
    let (u, p) = sim.rpc_auth();
    let (status, _, _) = post(sim.rpc_addr(), Some((&u, &p)), &body).await;
    assert_eq!(status, StatusCode::INTERNAL_SERVER_ERROR);
    sim.set_rpc_failing(false);
    assert_eq!(result(&sim, "getblockcount", json!([])).await, P);

    let addr = bitcoin::Address::from_script(&payout(), bitcoin::Network::Regtest).expect("addr");
    let v = result(&sim, "validateaddress", json!([addr.to_string()])).await;
    assert_eq!(v["isvalid"], true);
    assert_eq!(v["iswitness"], true);
    assert_eq!(
        v["scriptPubKey"],
        warppool_core::hex::encode(payout().as_bytes())
    );
    let mainnet = bitcoin::Address::from_script(&payout(), bitcoin::Network::Bitcoin).expect("a");
    let v = result(&sim, "validateaddress", json!([mainnet.to_string()])).await;
    assert_eq!(v["isvalid"], false);
    let net = result(&sim, "getnetworkinfo", json!([])).await;
    assert!(net["version"].as_u64().unwrap() >= 270_000);
    let mining = result(&sim, "getmininginfo", json!([])).await;
    assert_eq!(mining["chain"], "regtest");
}

#[tokio::test]
async fn cookie_auth_chunked_replies_and_block_timer() {
    let path = std::env::temp_dir().join(format!("chainsim-cookie-{}", std::process::id()));
    let sim = ChainSim::start(ChainSimConfig {
        auth: RpcAuthConfig::Cookie(path.clone()),
        chunked_replies: true,
        block_interval: Some(Duration::from_millis(200)),
        seed: 9,
        ..ChainSimConfig::default()
    })
    .await
    .expect("start");
    let cookie = std::fs::read_to_string(&path).expect("cookie written");
    let (user, password) = cookie.split_once(':').expect("user:password");
    assert_eq!(user, "__cookie__");
    assert_eq!(sim.rpc_auth(), (user.to_owned(), password.to_owned()));
    let (status, headers, body) = post(
        sim.rpc_addr(),
        Some((user, password)),
        &json!({"method": "getblocktemplate", "params": [{"rules": ["segwit"]}], "id": 1}),
    )
    .await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(
        headers.get("transfer-encoding").map(|v| v.as_bytes()),
        Some(&b"chunked"[..])
    );
    let v: Value = serde_json::from_slice(&body).expect("json");
    Template::from_json(v["result"].to_string().as_bytes()).expect("template");
    tokio::time::timeout(Duration::from_secs(10), async {
        while sim.height() < P + 2 {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .expect("the timer mines blocks");
    sim.stop().await;
    assert!(!path.exists(), "the cookie is removed at stop");
}

#[test]
fn regtest_halving_schedule() {
    assert_eq!(block_subsidy(0), 5_000_000_000);
    assert_eq!(block_subsidy(149), 5_000_000_000);
    assert_eq!(block_subsidy(150), 2_500_000_000);
    assert_eq!(block_subsidy(300), 1_250_000_000);
    assert_eq!(block_subsidy(150 * 64), 0);
}

#[tokio::test]
async fn proposal_mode_checks_without_storing() {
    let sim = start().await;
    let (_, t) = gbt(&sim).await;
    let good = pool_block(t, false); // proposals skip proof of work
    let hex = |b: &Block| warppool_core::hex::encode(&bitcoin::consensus::serialize(b));
    let propose = |b: &Block| json!([{"mode": "proposal", "data": hex(b), "rules": ["segwit"]}]);
    assert_eq!(
        result(&sim, "getblocktemplate", propose(&good)).await,
        Value::Null
    );
    assert_eq!(sim.height(), P, "a proposal is not stored");
    let mut bad = good.clone();
    bad.txdata[0].output[0].value += Amount::from_sat(1);
    bad.header.merkle_root = bad.compute_merkle_root().expect("root");
    assert_eq!(
        result(&sim, "getblocktemplate", propose(&bad)).await,
        json!("bad-cb-amount")
    );
    sim.mine_network_block();
    assert_eq!(
        result(&sim, "getblocktemplate", propose(&good)).await,
        json!("inconclusive-not-best-prevblk")
    );
}

#[tokio::test]
async fn dropped_connections_and_hard_bits_without_skip_are_refused() {
    let sim = start().await;
    sim.set_rpc_dropping(true);
    let stream = tokio::net::TcpStream::connect(sim.rpc_addr()).await;
    if let Ok(stream) = stream {
        // Accepted, then closed without a response.
        let res = async {
            let (mut sender, conn) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(conn);
            let req = hyper::Request::builder()
                .method("POST")
                .uri("/")
                .body(Full::new(Bytes::from_static(b"{}")))
                .expect("request");
            sender.send_request(req).await
        }
        .await;
        assert!(res.is_err(), "no response while dropping");
    }
    sim.set_rpc_dropping(false);
    assert_eq!(result(&sim, "getblockcount", json!([])).await, P);

    let err = ChainSim::start(ChainSimConfig {
        bits: 0x1d00_ffff,
        skip_own_pow: false,
        ..ChainSimConfig::default()
    })
    .await
    .expect_err("hard bits need skip_own_pow");
    assert_eq!(err.kind(), std::io::ErrorKind::InvalidInput);
}

#[tokio::test]
async fn witness_and_header_context_rejects() {
    let sim = start().await;
    let (_, t) = gbt(&sim).await;
    let good = pool_block(t, true);

    let mut b = good.clone();
    b.txdata[0].input[0].witness = bitcoin::Witness::new();
    assert_eq!(submit(&sim, &b).await, json!("bad-witness-nonce-size"));

    let mut b = good.clone();
    b.txdata[0].output.pop(); // the commitment
    b.txdata[0].input[0].witness = bitcoin::Witness::new();
    b.header.merkle_root = b.compute_merkle_root().expect("root");
    grind(&mut b);
    assert_eq!(submit(&sim, &b).await, json!("unexpected-witness"));

    let mut b = good.clone();
    b.header.bits = bitcoin::CompactTarget::from_consensus(0x1f7f_ffff);
    grind(&mut b);
    assert_eq!(submit(&sim, &b).await, json!("bad-diffbits"));

    let mut b = good.clone();
    b.header.time = 1_000;
    grind(&mut b);
    assert_eq!(submit(&sim, &b).await, json!("time-too-old"));

    assert_eq!(submit(&sim, &good).await, Value::Null);
}

#[test]
fn own_runtime_serves_without_a_caller_runtime() {
    use std::io::{Read, Write};
    let sim = ChainSim::start_in_own_runtime(ChainSimConfig {
        seed: 13,
        ..ChainSimConfig::default()
    })
    .expect("start");
    let hash = sim.mine_network_block();
    assert_eq!(sim.tip(), hash);
    let (u, p) = sim.rpc_auth();
    let body = r#"{"method":"getblockcount","params":[],"id":1}"#;
    let mut s = std::net::TcpStream::connect(sim.rpc_addr()).expect("connect");
    write!(
        s,
        "POST / HTTP/1.1\r\nHost: x\r\nAuthorization: {}\r\nConnection: close\r\n\
         Content-Type: application/json\r\nContent-Length: {}\r\n\r\n{body}",
        basic_auth_header(&u, &p),
        body.len()
    )
    .expect("write");
    let mut reply = String::new();
    s.read_to_string(&mut reply).expect("read");
    assert!(reply.starts_with("HTTP/1.1 200"), "{reply}");
    assert!(reply.contains(r#""result":1"#), "{reply}");
}

#[tokio::test]
async fn generatetoaddress_mines_blocks_paying_the_address_and_refuses_bad_input() {
    let sim = start().await;
    let height = sim.height();
    let addr = bitcoin::Address::from_script(&payout(), bitcoin::Network::Regtest).expect("addr");
    let hashes = result(&sim, "generatetoaddress", json!([2, addr.to_string()])).await;
    let hashes = hashes.as_array().expect("an array of hashes");
    assert_eq!(hashes.len(), 2);
    assert_eq!(sim.height(), height + 2);
    assert_eq!(hashes[1], json!(sim.tip().to_string()));
    let block = result(&sim, "getblockheader", json!([hashes[0]])).await;
    assert_eq!(block["height"], json!(height + 1));

    let mainnet = bitcoin::Address::from_script(&payout(), bitcoin::Network::Bitcoin).expect("a");
    let (_, v) = rpc(&sim, "generatetoaddress", json!([1, mainnet.to_string()])).await;
    assert_eq!(v["error"]["code"], -5, "{v}");
    let (_, v) = rpc(
        &sim,
        "generatetoaddress",
        json!([1_000_000, addr.to_string()]),
    )
    .await;
    assert_eq!(v["error"]["code"], -8, "{v}");
    let (_, v) = rpc(&sim, "generatetoaddress", json!(["x", addr.to_string()])).await;
    assert_eq!(v["error"]["code"], -3, "{v}");
    assert_eq!(sim.height(), height + 2);
}

/// `confirmations` of `getblockheader <hash> true`.
async fn confirmations(sim: &ChainSimHandle, hash: &BlockHash) -> Value {
    result(sim, "getblockheader", json!([hash.to_string(), true])).await["confirmations"].clone()
}

#[tokio::test]
async fn invalidate_and_reconsider_move_the_tip_as_in_core() {
    let sim = start().await;
    let mut zmq = zeromq::SubSocket::new();
    zmq.connect(&sim.zmq_endpoint()).await.expect("zmq connect");
    zmq.subscribe("hashblock").await.expect("subscribe");
    tokio::time::sleep(Duration::from_millis(200)).await; // the subscription reaches the PUB
    let base = sim.tip();
    let a = sim.mine_network_block();
    let b = sim.mine_network_block();
    assert_eq!(confirmations(&sim, &a).await, 2);

    // invalidateblock: a and b leave the active chain; the tip is a's parent, announced.
    let (status, v) = rpc(&sim, "invalidateblock", json!([a.to_string()])).await;
    assert_eq!(status, StatusCode::OK, "{v}");
    assert!(v["result"].is_null() && v["error"].is_null(), "{v}");
    assert_eq!(sim.tip(), base);
    assert_eq!(confirmations(&sim, &a).await, -1);
    assert_eq!(confirmations(&sim, &b).await, -1);
    let (raw, t) = gbt(&sim).await;
    assert_eq!(
        t.prevhash(),
        &base.to_byte_array(),
        "the template follows the tip"
    );
    // The disconnected blocks' transactions are back in the mempool, in the template.
    let in_template: Vec<Value> = raw["transactions"]
        .as_array()
        .expect("transactions")
        .iter()
        .map(|e| e["txid"].clone())
        .collect();
    let a_txs = result(&sim, "getblock", json!([a.to_string(), 1])).await["tx"].clone();
    let a_txs = a_txs.as_array().expect("tx ids");
    assert!(a_txs.len() > 1, "a carried mempool transactions");
    for txid in &a_txs[1..] {
        assert!(in_template.contains(txid), "{txid} is back in the template");
    }
    assert!(template_depends_are_cores(&raw) > 0);
    let mut announced = Vec::new();
    for _ in 0..3 {
        let msg = tokio::time::timeout(Duration::from_secs(5), zmq.recv())
            .await
            .expect("hashblock in time")
            .expect("message");
        let mut hash = msg.get(1).expect("body").to_vec();
        hash.reverse();
        announced.push(BlockHash::from_slice(&hash).expect("hash"));
    }
    assert_eq!(announced, vec![a, b, base]);

    // reconsiderblock: b's branch has the most work again.
    assert!(
        result(&sim, "reconsiderblock", json!([b.to_string()]))
            .await
            .is_null()
    );
    assert_eq!(sim.tip(), b);
    assert_eq!(confirmations(&sim, &a).await, 2);
    let (_, v) = rpc(&sim, "invalidateblock", json!(["00".repeat(32)])).await;
    assert_eq!(v["error"]["code"], -5);
}

#[tokio::test]
async fn a_competing_branch_with_more_work_takes_over_as_in_core() {
    let sim = start().await;
    let a = sim.mine_network_block();
    let b = sim.mine_network_block();

    // A competing branch from a: x1 has equal work (stays a side branch, inconclusive for a
    // submitted block), x2 gives it more and it takes over.
    let x1 = sim.mine_network_block_on(&a);
    assert_eq!(sim.tip(), b);
    assert_eq!(confirmations(&sim, &x1).await, -1);
    let x2 = sim.mine_network_block_on(&x1);
    assert_eq!(sim.tip(), x2);
    assert_eq!(confirmations(&sim, &b).await, -1);
    assert_eq!(confirmations(&sim, &a).await, 3);
    assert_eq!(sim.confirmations(&x1), Some(2));

    // A miner's block on b (the old branch) is valid but has less work: inconclusive.
    let (_, t) = gbt(&sim).await;
    let mut stale = pool_block(t, false);
    stale.header.prev_blockhash = b;
    stale.header.time = sim_time(&sim, &b).await + 1;
    let height = P + 3;
    let mut script = stale.txdata[0].input[0].script_sig.to_bytes();
    let (push, len) = bip34_height_push(height).expect("push");
    let (old, old_len) = bip34_height_push(P + 4).expect("push");
    assert_eq!(len, old_len);
    assert_eq!(&script[..len], &old[..len]);
    script[..len].copy_from_slice(&push[..len]);
    stale.txdata[0].input[0].script_sig = ScriptBuf::from_bytes(script);
    stale.txdata.truncate(1); // the mempool's transactions belong to the other branch
    stale.txdata[0].output[0].value = Amount::from_sat(block_subsidy(height));
    fix_and_grind(&mut stale);
    assert_eq!(submit(&sim, &stale).await, json!("inconclusive"));
    assert_eq!(confirmations(&sim, &stale.block_hash()).await, -1);
    // getblock verbosity 1: the minimal fields.
    let g = result(&sim, "getblock", json!([x2.to_string(), 1])).await;
    assert_eq!(g["hash"], json!(x2.to_string()));
    assert_eq!(g["confirmations"], 1);
    assert_eq!(g["height"], P + 3);
    assert_eq!(g["tx"].as_array().map(Vec::len), Some(1));
}

async fn sim_time(sim: &ChainSimHandle, hash: &BlockHash) -> u32 {
    let h = result(sim, "getblockheader", json!([hash.to_string(), true])).await;
    u32::try_from(h["mediantime"].as_u64().expect("time"))
        .expect("u32")
        .max(u32::try_from(h["time"].as_u64().expect("time")).expect("u32"))
}
