//! The simulator's replies against `corepc-types`' Bitcoin Core 27 result types: every field
//! the type requires is present with the right JSON type, and the simulator sends no field
//! Core 27 does not.

use std::collections::BTreeSet;

use bitcoin::hashes::Hash;
use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde::Serialize;
use serde::de::DeserializeOwned;
use serde_json::{Value, json};
use warppool_loadgen::chain::{ChainSim, ChainSimConfig, ChainSimHandle, basic_auth_header};

async fn result(sim: &ChainSimHandle, method: &str, params: Value) -> Value {
    let (u, p) = sim.rpc_auth();
    let stream = tokio::net::TcpStream::connect(sim.rpc_addr())
        .await
        .expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let body = json!({"method": method, "params": params, "id": 1}).to_string();
    let req = hyper::Request::builder()
        .method("POST")
        .uri("/")
        .header("host", "127.0.0.1")
        .header("authorization", basic_auth_header(&u, &p))
        .body(Full::new(Bytes::from(body)))
        .expect("request");
    let resp = sender.send_request(req).await.expect("response");
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    let v: Value = serde_json::from_slice(&body).expect("json");
    assert!(v["error"].is_null(), "{method}: {v}");
    v["result"].clone()
}

/// Deserializes `ours` as `T` and compares the key sets of both objects.
fn same_shape<T: DeserializeOwned + Serialize>(what: &str, ours: &Value) {
    let typed: T = serde_json::from_value(ours.clone())
        .unwrap_or_else(|e| panic!("{what} does not parse as Core's type: {e}\n{ours}"));
    let theirs = serde_json::to_value(&typed).expect("serialize");
    let keys = |v: &Value, non_null: bool| -> BTreeSet<String> {
        v.as_object()
            .expect("object")
            .iter()
            // `null` and `{}` are what serde writes for absent `Option`s and `#[serde(default)]`
            // maps (such as `softforks`, gone from Core 23's getblockchaininfo).
            .filter(|(_, x)| !non_null || !(x.is_null() || x == &&json!({})))
            .map(|(k, _)| k.clone())
            .collect()
    };
    let extra: Vec<_> = keys(ours, false)
        .difference(&keys(&theirs, false))
        .cloned()
        .collect();
    assert!(
        extra.is_empty(),
        "{what}: fields Core 27 does not send: {extra:?}"
    );
    let missing: Vec<_> = keys(&theirs, true)
        .difference(&keys(ours, false))
        .cloned()
        .collect();
    assert!(missing.is_empty(), "{what}: missing fields: {missing:?}");
}

#[tokio::test]
async fn replies_have_core_27_shapes() {
    use corepc_types::v27;
    let sim = ChainSim::start(ChainSimConfig {
        seed: 11,
        ..ChainSimConfig::default()
    })
    .await
    .expect("start");
    let first = sim.mine_network_block();
    sim.mine_network_block();

    let gbt = result(&sim, "getblocktemplate", json!([{"rules": ["segwit"]}])).await;
    same_shape::<v27::GetBlockTemplate>("getblocktemplate", &gbt);
    for tx in gbt["transactions"].as_array().expect("txs") {
        same_shape::<v27::BlockTemplateTransaction>("getblocktemplate transaction", tx);
    }
    let info = result(&sim, "getblockchaininfo", json!([])).await;
    same_shape::<v27::GetBlockchainInfo>("getblockchaininfo", &info);
    let header = result(&sim, "getblockheader", json!([first.to_string()])).await;
    same_shape::<v27::GetBlockHeaderVerbose>("getblockheader", &header);
    let net = result(&sim, "getnetworkinfo", json!([])).await;
    same_shape::<v27::GetNetworkInfo>("getnetworkinfo", &net);
    let mining = result(&sim, "getmininginfo", json!([])).await;
    same_shape::<v27::GetMiningInfo>("getmininginfo", &mining);
    let addr = bitcoin::Address::from_script(
        &bitcoin::ScriptBuf::new_p2wpkh(&bitcoin::WPubkeyHash::from_byte_array([1; 20])),
        bitcoin::Network::Regtest,
    )
    .expect("address");
    let valid = result(&sim, "validateaddress", json!([addr.to_string()])).await;
    same_shape::<v27::ValidateAddress>("validateaddress", &valid);
}
