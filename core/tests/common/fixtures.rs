//! Real mainnet blocks turned into templates, shared by the integration tests.

use bitcoin::consensus::{deserialize, serialize};
use bitcoin::hashes::Hash;
use bitcoin::{Block, Target, Transaction, Witness};
use serde_json::json;

/// The pool's version-rolling mask.
pub(crate) const MASK: u32 = 0x1fff_e000;

/// A fixture: its raw bytes, the reference decoding and its known hash.
pub(crate) struct Fixture {
    pub(crate) name: &'static str,
    pub(crate) bytes: Vec<u8>,
    pub(crate) block: Block,
    pub(crate) height: u32,
}

fn fixture_path(file: &str) -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures")
        .join(file)
}

/// Loads a fixture (`.raw` bytes or `.hex` text) and checks its hash and merkle root.
pub(crate) fn load(name: &'static str, file: &str, hash: &str, height: u32) -> Fixture {
    let raw = std::fs::read(fixture_path(file)).expect("fixture file is committed");
    let bytes = if file.ends_with(".hex") {
        warppool_core::hex::decode(std::str::from_utf8(&raw).unwrap().trim()).unwrap()
    } else {
        raw
    };
    let block: Block = deserialize(&bytes).expect("fixture is a valid block");
    assert_eq!(block.block_hash().to_string(), hash, "{name}: header hash");
    assert!(
        block.header.validate_pow(block.header.target()).is_ok(),
        "{name}: proof of work"
    );
    assert!(block.check_merkle_root(), "{name}: merkle root");
    assert!(
        block.check_witness_commitment(),
        "{name}: witness commitment"
    );
    let header_hash = warppool_hash::sha256d_header(
        &serialize(&block.header)
            .try_into()
            .expect("a header is 80 bytes"),
    );
    assert_eq!(
        header_hash,
        block.block_hash().to_byte_array(),
        "{name}: our header hash"
    );
    if let Ok(h) = block.bip34_block_height() {
        assert_eq!(h, u64::from(height), "{name}: BIP34 height");
    }
    Fixture {
        name,
        bytes,
        block,
        height,
    }
}

pub(crate) fn block_100000() -> Fixture {
    load(
        "100000",
        "mainnet_block_100000.hex",
        "000000000003ba27aa200b1cecaad478d2b00432346c3f1f3986da1afd33e506",
        100_000,
    )
}

pub(crate) fn block_200000() -> Fixture {
    load(
        "200000",
        "mainnet_block_200000.raw",
        "000000000000034a7dedef4a161fa058a2d67a173a90155f3a2fe6fc132e0ebf",
        200_000,
    )
}

pub(crate) fn block_347032() -> Fixture {
    load(
        "347032",
        "mainnet_block_347032.raw",
        "00000000000000000e799818cd5c2fb7a222c5e4b62ae78350875e1026ead3b3",
        347_032,
    )
}

pub(crate) fn block_481824() -> Fixture {
    load(
        "481824",
        "mainnet_block_481824.raw",
        "0000000000000000001c8018d9cb3b742ef25114f27563e3fc4a1902167f9893",
        481_824,
    )
}

pub(crate) fn block_702861() -> Fixture {
    load(
        "702861",
        "mainnet_block_702861.raw",
        "000000000000000000000c835b2adcaedc20fdf6ee440009c249452c726dafae",
        702_861,
    )
}

impl Fixture {
    pub(crate) fn coinbase(&self) -> &Transaction {
        &self.block.txdata[0]
    }

    /// Whether the block commits to witnesses (segwit template).
    pub(crate) fn is_segwit(&self) -> bool {
        self.commitment_script().is_some()
    }

    /// The coinbase's witness commitment output script, if any (the last one counts).
    pub(crate) fn commitment_script(&self) -> Option<Vec<u8>> {
        self.coinbase()
            .output
            .iter()
            .rev()
            .map(|o| o.script_pubkey.as_bytes())
            .find(|s| s.len() >= 38 && s[..6] == [0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed])
            .map(|s| s[..38].to_vec())
    }

    /// The coinbase witness reserved value (zeros when absent).
    pub(crate) fn witness_reserved(&self) -> [u8; 32] {
        match self.coinbase().input[0].witness.nth(0) {
            Some(item) => item.try_into().expect("reserved value is 32 bytes"),
            None => [0; 32],
        }
    }

    /// The coinbase without witness (what miners hash).
    pub(crate) fn coinbase_stripped(&self) -> Vec<u8> {
        let mut tx = self.coinbase().clone();
        tx.input[0].witness = Witness::new();
        serialize(&tx)
    }

    /// The `getblocktemplate` result the node would have given for this block. The version
    /// has the rolling mask cleared (the block's rolled bits come back as share version bits).
    pub(crate) fn template_json(&self) -> String {
        let h = &self.block.header;
        let value: u64 = self
            .coinbase()
            .output
            .iter()
            .map(|o| o.value.to_sat())
            .sum();
        let txs: Vec<_> = self.block.txdata[1..]
            .iter()
            .map(|tx| {
                json!({
                    "data": warppool_core::hex::encode(&serialize(tx)),
                    "txid": tx.compute_txid().to_string(),
                    "hash": tx.compute_wtxid().to_string(),
                    "depends": [],
                    "fee": 0,
                    "sigops": 0,
                    "weight": tx.weight().to_wu(),
                })
            })
            .collect();
        let target = Target::from_compact(h.bits).to_be_bytes();
        let mut t = json!({
            "capabilities": ["proposal"],
            "version": h.version.to_consensus() as u32 & !MASK,
            "rules": if self.is_segwit() {
                json!(["csv", "!segwit", "taproot"])
            } else {
                json!([])
            },
            "vbavailable": {},
            "vbrequired": 0,
            "previousblockhash": h.prev_blockhash.to_string(),
            "transactions": txs,
            "coinbaseaux": {},
            "coinbasevalue": value,
            "longpollid": format!("{}1", h.prev_blockhash),
            "target": warppool_core::hex::encode(&target),
            "mintime": h.time - 600,
            "mutable": ["time", "transactions", "prevblock"],
            "noncerange": "00000000ffffffff",
            "sigoplimit": 80000,
            "sizelimit": 4_000_000,
            "weightlimit": 4_000_000,
            "curtime": h.time,
            "bits": format!("{:08x}", h.bits.to_consensus()),
            "height": self.height,
        });
        if let Some(c) = self.commitment_script() {
            t["default_witness_commitment"] = json!(warppool_core::hex::encode(&c));
        }
        t.to_string()
    }
}
