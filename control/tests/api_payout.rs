//! The payout check of `GET /api/v1/workers/{id}` against the coinbase a real Stratum miner
//! received in its `mining.notify`, with a `[[pool.split]]` configured: the API's decoded
//! outputs must be exactly the outputs of the coinbase the miner hashes.

#[path = "support/api_pool.rs"]
mod api_pool;
#[path = "support/fake_node.rs"]
mod fake_node;
#[path = "support/raw_miner.rs"]
mod raw_miner;
#[path = "support/temp_dir.rs"]
mod temp_dir;

use std::time::Duration;

use bitcoin::{Address, Network, Transaction, consensus::Decodable};
use raw_miner::Miner;
use serde_json::Value;
use warppool_control::api::v1::{mask_address, worker_id};

const ADDRESS: &str = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";
/// A P2TR regtest address for the split (another script type than the worker's P2WPKH).
const SPLIT_ADDRESS: &str = "bcrt1p0xlxvlhemja6c4dqv22uapctqupfhlxm9h8z3k2e72q4k9hcz7vqc8gma6";
const SPLIT_SATS: u64 = 25_000_000;
const DEADLINE: Duration = Duration::from_secs(30);

/// The coinbase of the miner's current job, as firmware assembles it.
fn notified_coinbase(miner: &Miner) -> Transaction {
    let p = &miner.job;
    let hex = |v: &Value| warppool_core::hex::decode(v.as_str().unwrap()).unwrap();
    let bytes = [
        hex(&p[2]),
        warppool_core::hex::decode(&miner.extranonce1).unwrap(),
        vec![0u8; 4],
        hex(&p[3]),
    ]
    .concat();
    Transaction::consensus_decode(&mut bytes.as_slice()).expect("the notify's coinbase decodes")
}

async fn worker(http: std::net::SocketAddr, id: &str) -> Value {
    let deadline = tokio::time::Instant::now() + DEADLINE;
    loop {
        let r = reqwest::get(format!("http://{http}/api/v1/workers/{id}"))
            .await
            .unwrap();
        if r.status() == 200 {
            let body: Value = r.json().await.unwrap();
            if body["payout"].is_object() {
                return body;
            }
        }
        assert!(tokio::time::Instant::now() < deadline, "no payout check");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_payout_check_shows_the_outputs_of_the_coinbase_the_miner_received() {
    let split =
        format!("\n[[pool.split]]\naddress = \"{SPLIT_ADDRESS}\"\nvalue_sats = {SPLIT_SATS}\n");
    let p = api_pool::start_with("api-payout", &split).await;
    let stratum = p.daemon.pool().local_addrs()[0];
    let name = format!("{ADDRESS}.axe1");
    let miner = Miner::connect(stratum, &name, "bitaxe/BM1370/v2.4.0").await;
    let tx = notified_coinbase(&miner);
    let detail = worker(p.http, &worker_id(&name)).await;
    let payout = &detail["payout"];
    assert_eq!(detail["payout_error"], Value::Null, "{detail}");

    let outputs = payout["outputs"].as_array().unwrap();
    assert_eq!(outputs.len(), tx.output.len(), "{payout}");
    let worker_script = Address::from_str_checked(ADDRESS).script_pubkey();
    let value: u64 = payout["value_sats"].as_u64().unwrap();
    let mut to_worker = 0;
    for (api, real) in outputs.iter().zip(&tx.output) {
        assert_eq!(api["sats"].as_u64().unwrap(), real.value.to_sat(), "{api}");
        let address = Address::from_script(&real.script_pubkey, Network::Regtest).ok();
        assert_eq!(
            api["address"].as_str().map(str::to_owned),
            address.map(|a| mask_address(&a.to_string())),
            "{api}"
        );
        let mine = real.script_pubkey == worker_script;
        assert_eq!(api["to_worker"], Value::Bool(mine), "{api}");
        if mine {
            to_worker += real.value.to_sat();
        }
    }
    let types: Vec<&str> = outputs
        .iter()
        .map(|o| o["script_type"].as_str().unwrap())
        .collect();
    assert!(
        types.contains(&"p2wpkh") && types.contains(&"p2tr"),
        "{types:?}"
    );
    assert!(types.contains(&"witness_commitment"), "{types:?}");
    let split_output = outputs.iter().find(|o| o["script_type"] == "p2tr").unwrap();
    assert_eq!(split_output["sats"].as_u64(), Some(SPLIT_SATS));
    assert_eq!(
        split_output["address"].as_str(),
        Some(mask_address(SPLIT_ADDRESS).as_str())
    );
    // The whole value is paid: the worker gets all of it but the split.
    let paid: u64 = tx.output.iter().map(|o| o.value.to_sat()).sum();
    assert_eq!(paid, value);
    assert_eq!(to_worker, value - SPLIT_SATS);
    let pct = payout["to_worker_pct"].as_f64().unwrap();
    #[expect(clippy::cast_precision_loss, reason = "satoshi amounts are below 2^53")]
    let expected = to_worker as f64 * 100.0 / value as f64;
    assert!((pct - expected).abs() < 1e-9, "{pct} vs {expected}");
    assert!(pct < 100.0 && pct > 50.0, "{pct}");
}

trait FromStrChecked {
    fn from_str_checked(s: &str) -> Address;
}

impl FromStrChecked for Address {
    fn from_str_checked(s: &str) -> Address {
        s.parse::<Address<bitcoin::address::NetworkUnchecked>>()
            .unwrap()
            .require_network(Network::Regtest)
            .unwrap()
    }
}
