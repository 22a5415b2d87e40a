//! Helpers of the chain simulator's tests (`loadgen/tests/chain.rs`): raw HTTP JSON-RPC,
//! templates, the pool's block assembly and nonce grinding.

use std::net::SocketAddr;
use std::sync::Arc;

use bitcoin::hashes::Hash;
use bitcoin::{Block, ScriptBuf};
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::StatusCode;
use hyper::header::HeaderMap;
use hyper_util::rt::TokioIo;
use serde_json::{Value, json};
use warppool_core::block::BlockCandidate;
use warppool_core::coinbase::CoinbaseConfig;
use warppool_core::difficulty::ShareTarget;
use warppool_core::job::Job;
use warppool_core::limits::COINBASE_BYTES_MAX;
use warppool_core::template::Template;
use warppool_core::types::{Extranonce1, Extranonce2, JobId, Nonce};
use warppool_loadgen::chain::{
    ChainSim, ChainSimConfig, ChainSimHandle, PREMINE_BLOCKS_DEFAULT, basic_auth_header,
};

/// The height every simulator starts at (its premine).
pub(crate) const P: u32 = PREMINE_BLOCKS_DEFAULT;

/// One HTTP POST; returns status, headers and body.
pub(crate) async fn post(
    addr: SocketAddr,
    auth: Option<(&str, &str)>,
    body: &Value,
) -> (StatusCode, HeaderMap, Bytes) {
    let stream = tokio::net::TcpStream::connect(addr).await.expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let mut req = hyper::Request::builder()
        .method("POST")
        .uri("/")
        .header("host", addr.to_string())
        .header("content-type", "application/json");
    if let Some((u, p)) = auth {
        req = req.header("authorization", basic_auth_header(u, p));
    }
    let req = req
        .body(Full::new(Bytes::from(body.to_string())))
        .expect("request");
    let resp = sender.send_request(req).await.expect("response");
    let status = resp.status();
    let headers = resp.headers().clone();
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    (status, headers, body)
}

/// A JSON-RPC 1.0 call with the simulator's credentials: (HTTP status, reply object).
pub(crate) async fn rpc(sim: &ChainSimHandle, method: &str, params: Value) -> (StatusCode, Value) {
    let (u, p) = sim.rpc_auth();
    let (status, _, body) = post(
        sim.rpc_addr(),
        Some((&u, &p)),
        &json!({"method": method, "params": params, "id": 7}),
    )
    .await;
    let v: Value = serde_json::from_slice(&body).expect("json reply");
    assert_eq!(v["id"], 7);
    (status, v)
}

pub(crate) async fn result(sim: &ChainSimHandle, method: &str, params: Value) -> Value {
    let (status, v) = rpc(sim, method, params).await;
    assert_eq!(status, StatusCode::OK, "{method}: {v}");
    assert!(v["error"].is_null(), "{method}: {v}");
    v["result"].clone()
}

pub(crate) async fn gbt(sim: &ChainSimHandle) -> (Value, Template) {
    let v = result(sim, "getblocktemplate", json!([{"rules": ["segwit"]}])).await;
    let t = Template::from_json(v.to_string().as_bytes()).expect("template parses");
    (v, t)
}

pub(crate) async fn submit(sim: &ChainSimHandle, block: &Block) -> Value {
    let hex = warppool_core::hex::encode(&bitcoin::consensus::serialize(block));
    result(sim, "submitblock", json!([hex])).await
}

pub(crate) fn payout() -> ScriptBuf {
    ScriptBuf::new_p2wpkh(&bitcoin::WPubkeyHash::from_byte_array([7; 20]))
}

/// A block from the template the way the pool builds one: `build_coinbase` via `Job`, a
/// nonce found at the template's difficulty (or nonce 0 when `solve` is false), assembled by
/// `BlockCandidate`.
pub(crate) fn pool_block(template: Template, solve: bool) -> Block {
    let job = Arc::new(
        Job::new(
            JobId::new(1),
            Arc::new(template),
            payout().as_bytes(),
            &CoinbaseConfig::solo(b"/warppool-test/"),
        )
        .expect("job"),
    );
    let en1 = Extranonce1::from_u32(0x0102_0304);
    let en2 = Extranonce2::from_bytes(&[0, 0, 0, 1]).expect("en2");
    let root = job.merkle_branch().root(&job.coinbase_txid(&en1, &en2));
    let mut nonce = 0u32;
    let header = loop {
        let h = job.header(&root, job.ntime(), Nonce::new(nonce), job.version());
        if !solve
            || job
                .network_target()
                .is_met_by(&warppool_hash::sha256d_header(&h))
        {
            break h;
        }
        nonce += 1;
    };
    let mut cb = [0u8; COINBASE_BYTES_MAX];
    let len = job.write_coinbase(&en1, &en2, &mut cb);
    let bytes = BlockCandidate::new(header, cb, len, job).to_block_bytes();
    bitcoin::consensus::deserialize(&bytes).expect("the pool's block deserializes")
}

/// Recomputes the witness commitment and merkle root after a mutation, then grinds the nonce.
pub(crate) fn fix_and_grind(block: &mut Block) {
    let root = block.witness_root().expect("witness root");
    let commitment = Block::compute_witness_commitment(&root, &[0u8; 32]);
    let cb = &mut block.txdata[0];
    let out = cb
        .output
        .iter_mut()
        .rfind(|o| {
            o.script_pubkey
                .as_bytes()
                .starts_with(&[0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed])
        })
        .expect("commitment output");
    let mut s = vec![0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed];
    s.extend_from_slice(commitment.as_byte_array());
    out.script_pubkey = ScriptBuf::from_bytes(s);
    block.header.merkle_root = block.compute_merkle_root().expect("root");
    grind(block);
}

pub(crate) fn grind(block: &mut Block) {
    let target = ShareTarget::from_compact(block.header.bits.to_consensus()).expect("bits");
    block.header.nonce = 0;
    while !target.is_met_by(&block.block_hash().to_byte_array()) {
        block.header.nonce += 1;
    }
}

pub(crate) async fn start() -> ChainSimHandle {
    ChainSim::start(ChainSimConfig {
        seed: 42,
        ..ChainSimConfig::default()
    })
    .await
    .expect("start")
}
