//! Template parsing (Core and Bitcoin SV shapes, typed errors), payout addresses, coinbase
//! layout and the `mining.notify` fields.

use std::sync::Arc;

use bitcoin::consensus::deserialize;
use bitcoin::{Address, Network, ScriptBuf};
use serde_json::json;
use warppool_core::coinbase::SplitOutput;
use warppool_core::limits::{TEMPLATE_JSON_BYTES_MAX, TEMPLATE_TRANSACTIONS_MAX};
use warppool_core::{
    CoinbaseConfig, CoinbaseError, Extranonce1, Extranonce2, ExtranonceSize, Job, JobBook, JobId,
    Nonce, Ntime, PayoutError, ShareTarget, Submission, Template, TemplateError, Verdict,
    VersionMask, build_coinbase, parse_username, payout_script,
};

/// The shape of a `getblocktemplate` result from Bitcoin SV's regtest node (NODE.md): no
/// `rules`, no `default_witness_commitment`, transactions without `hash`/`weight`.
fn bsv_template(txs: serde_json::Value) -> serde_json::Value {
    json!({
        "capabilities": ["proposal"],
        "version": 536_870_912,
        "previousblockhash": "3c6ba5ae4f8c2f3ff1ff6cce0e58c4b4ba4c1a6e0fd1b7e5e2b5de3c4f3b2a10",
        "transactions": txs,
        "coinbaseaux": {"flags": ""},
        "coinbasevalue": 5_000_000_000u64,
        "longpollid": "3c6ba5ae4f8c2f3ff1ff6cce0e58c4b4ba4c1a6e0fd1b7e5e2b5de3c4f3b2a10103",
        "target": "7fffff0000000000000000000000000000000000000000000000000000000000",
        "mintime": 1_700_000_001u32,
        "mutable": ["time", "transactions", "prevblock"],
        "noncerange": "00000000ffffffff",
        "sizelimit": 10_000_000,
        "curtime": 1_700_000_500u32,
        "bits": "207fffff",
        "height": 102
    })
}

/// A legacy (no witness) regtest transaction: one input, one P2PKH output.
const LEGACY_TX: &str = concat!(
    "0100000001c33ebff2a709f13d9f9a7569ab16a32786af7d7e2de09265e41c61d078294ecf010000",
    "008a4730440220032d30df5ee6f57fa46cddb5eb8d0d9fe8de6b342d27942ae90a3231e0ba333e02",
    "203deee8060fdc70230a7f5b4ad7d7bc3e628cbe219a886b84269eaeb81e26b4fe014104ae31c31b",
    "f91278d99b8377a35bbce5b27d9fff15456839e919453fc7b3f721f0ba403ff96c9deeb680e5fd34",
    "1c0fc3a7b90da4631ee39560639db462e9cb850fffffffff0240420f00000000001976a914b0dcbf",
    "97eabf4404e31d952477ce822dadbe7e1088acc060d211000000001976a9146b1281eec25ab4e1e0",
    "793ff4e08ab1abb3409cd988ac00000000",
);

fn legacy_txid() -> String {
    let tx: bitcoin::Transaction =
        deserialize(&warppool_core::hex::decode(LEGACY_TX).unwrap()).unwrap();
    tx.compute_txid().to_string()
}

fn regtest_p2pkh() -> ScriptBuf {
    let pkh = bitcoin::PubkeyHash::from_raw_hash(bitcoin::hashes::Hash::from_byte_array([9; 20]));
    ScriptBuf::new_p2pkh(&pkh)
}

#[test]
fn bitcoin_sv_template_builds_a_non_witness_block() {
    let t = bsv_template(json!([{"data": LEGACY_TX, "txid": legacy_txid(), "fee": 0,
                                 "depends": [], "sigops": 0}]));
    let template = Arc::new(Template::from_json(t.to_string().as_bytes()).unwrap());
    assert!(!template.is_segwit());
    assert_eq!(template.default_witness_commitment(), None);
    assert_eq!(template.height(), 102);
    assert_eq!(template.mintime().secs(), 1_700_000_001);
    assert_eq!(template.transactions().len(), 1);
    assert_eq!(template.longpollid().map(str::len), Some(67));

    let payout = regtest_p2pkh();
    let config = CoinbaseConfig::solo(b"/warppool/");
    let job = Arc::new(
        Job::new(
            JobId::new(5),
            Arc::clone(&template),
            payout.as_bytes(),
            &config,
        )
        .unwrap(),
    );
    assert!(job.coinbase_len() <= 255);
    let mut book = JobBook::new(8);
    book.install(Arc::clone(&job));
    let sub = Submission {
        extranonce2: Extranonce2::from_hex(b"00000001", ExtranonceSize::DEFAULT).unwrap(),
        ntime: job.ntime(),
        nonce: Nonce::new(0),
        version_bits: None,
    };
    let en1 = Extranonce1::from_u32(1);
    let easy = ShareTarget::from_le_bytes([0xff; 32]);
    // Regtest: about every other hash is a block; walk nonces until one is.
    let mut found = None;
    for n in 0..64 {
        let s = Submission {
            nonce: Nonce::new(n),
            ..sub
        };
        if let Verdict::Block { candidate, .. } =
            book.submit(JobId::new(5), &en1, &s, VersionMask::POOL, &easy)
        {
            found = Some(candidate);
            break;
        }
    }
    let candidate = found.expect("a regtest block within 64 nonces");
    let bytes = candidate.to_block_bytes();
    let block: bitcoin::Block = deserialize(&bytes).unwrap();
    assert!(block.check_merkle_root());
    let coinbase = &block.txdata[0];
    assert!(
        coinbase.input[0].witness.is_empty(),
        "no witness in a non-segwit block"
    );
    assert_eq!(coinbase.output.len(), 1, "no witness commitment output");
    assert_eq!(coinbase.output[0].script_pubkey, payout);
    assert_eq!(coinbase.output[0].value.to_sat(), 5_000_000_000);
    assert_eq!(block.bip34_block_height().unwrap(), 102);
    // No segwit marker anywhere: the coinbase bytes follow the header and count directly.
    assert_eq!(&bytes[81..85], &1u32.to_le_bytes());
    assert_ne!(bytes[85], 0);
}

fn expect_err(t: &serde_json::Value) -> TemplateError {
    Template::from_json(t.to_string().as_bytes()).unwrap_err()
}

#[test]
fn template_errors_are_typed() {
    let base = bsv_template(json!([{"data": LEGACY_TX, "txid": legacy_txid()}]));
    assert!(matches!(
        Template::from_json(b"{"),
        Err(TemplateError::Json(_))
    ));
    assert!(matches!(
        Template::from_json(b"[]"),
        Err(TemplateError::Json(_))
    ));
    assert!(matches!(
        Template::from_json(b""),
        Err(TemplateError::Json(_))
    ));

    let mut t = base.clone();
    t["transactions"][0]["txid"] = json!("00".repeat(32));
    assert_eq!(
        expect_err(&t),
        TemplateError::TxidMismatch {
            index: 0,
            field: "txid"
        }
    );
    let mut t = base.clone();
    t["transactions"][0]["hash"] = json!("11".repeat(32));
    assert_eq!(
        expect_err(&t),
        TemplateError::TxidMismatch {
            index: 0,
            field: "hash"
        }
    );
    let mut t = base.clone();
    t["transactions"][0]["data"] = json!("0g");
    assert!(matches!(expect_err(&t), TemplateError::Hex { .. }));
    let mut t = base.clone();
    t["bits"] = json!("1d00ffff");
    assert_eq!(expect_err(&t), TemplateError::Bits(0x1d00_ffff));
    let mut t = base.clone();
    t["bits"] = json!("20800000");
    assert!(matches!(expect_err(&t), TemplateError::Bits(_)));
    let mut t = base.clone();
    t["mintime"] = json!(1_800_000_000u32);
    assert_eq!(expect_err(&t), TemplateError::OutOfRange("mintime"));
    let mut t = base.clone();
    t["height"] = json!(u64::MAX);
    assert_eq!(expect_err(&t), TemplateError::OutOfRange("height"));
    let mut t = base.clone();
    t["transactions"][0]["fee"] = json!(-1);
    assert_eq!(expect_err(&t), TemplateError::OutOfRange("fee"));
    let mut t = base.clone();
    t["coinbasevalue"] = json!(u64::MAX);
    assert_eq!(expect_err(&t), TemplateError::OutOfRange("coinbasevalue"));
    let mut t = base.clone();
    t["default_witness_commitment"] = json!("6a24aa21a9ed");
    assert_eq!(expect_err(&t), TemplateError::WitnessCommitment);
    let mut t = base.clone();
    t["previousblockhash"] = json!("abcd");
    assert!(matches!(
        expect_err(&t),
        TemplateError::Hex {
            field: "previousblockhash",
            ..
        }
    ));
    let mut t = base.clone();
    t["transactions"][0]["data"] = json!("0100000000010000");
    t["transactions"][0].as_object_mut().unwrap().remove("txid");
    assert_eq!(expect_err(&t), TemplateError::Transaction(0));
    let mut t = base.clone();
    t.as_object_mut().unwrap().remove("curtime");
    assert!(matches!(expect_err(&t), TemplateError::Json(_)));
    for msg in [
        expect_err(&t).to_string(),
        TemplateError::Bits(1).to_string(),
    ] {
        assert!(msg.starts_with(|c: char| c.is_lowercase()), "{msg}");
    }
}

#[test]
fn template_limits() {
    let big = vec![b' '; TEMPLATE_JSON_BYTES_MAX + 1];
    assert_eq!(
        Template::from_json(&big),
        Err(TemplateError::TooLarge(big.len()))
    );
    let txs = vec![json!({"data": "00"}); TEMPLATE_TRANSACTIONS_MAX + 1];
    let t = bsv_template(json!(txs));
    assert_eq!(
        expect_err(&t),
        TemplateError::TooManyTransactions(TEMPLATE_TRANSACTIONS_MAX + 1)
    );
}

fn segwit_template(commitment: Option<&str>) -> Template {
    let mut t = bsv_template(json!([{"data": LEGACY_TX, "txid": legacy_txid(),
                                     "hash": legacy_txid(), "weight": 1032, "fee": 1000}]));
    t["rules"] = json!(["csv", "!segwit", "taproot"]);
    if let Some(c) = commitment {
        t["default_witness_commitment"] = json!(c);
    }
    Template::from_json(t.to_string().as_bytes()).unwrap()
}

#[test]
fn witness_commitment_is_cross_checked() {
    let template = segwit_template(None);
    let good = warppool_core::hex::encode(&template.witness_commitment_script(&[0; 32]));
    let with_good = segwit_template(Some(&good));
    let payout = regtest_p2pkh();
    let config = CoinbaseConfig::solo(b"/warppool/");
    let parts = build_coinbase(&with_good, payout.as_bytes(), &config).unwrap();
    let tx: bitcoin::Transaction =
        deserialize(&[parts.coinb1(), &[0; 8], parts.coinb2()].concat()).unwrap();
    assert_eq!(tx.output.len(), 2);
    assert_eq!(
        tx.output[1].script_pubkey.as_bytes(),
        with_good.default_witness_commitment().unwrap()
    );
    assert_eq!(tx.output[1].value.to_sat(), 0);

    let bad = format!("6a24aa21a9ed{}", "00".repeat(32));
    let with_bad = segwit_template(Some(&bad));
    assert_eq!(
        build_coinbase(&with_bad, payout.as_bytes(), &config),
        Err(CoinbaseError::WitnessCommitmentMismatch)
    );
}

#[test]
fn splits_and_remainder() {
    let template = segwit_template(None);
    let payout = regtest_p2pkh();
    let split = SplitOutput {
        script: vec![0x51],
        value_sats: 1_000_000,
    };
    let config =
        CoinbaseConfig::new(b"", ExtranonceSize::new(8).unwrap(), vec![split.clone()]).unwrap();
    let parts = build_coinbase(&template, payout.as_bytes(), &config).unwrap();
    let tx: bitcoin::Transaction =
        deserialize(&[parts.coinb1(), &[0; 12], parts.coinb2()].concat()).unwrap();
    assert_eq!(tx.output[0].value.to_sat(), 5_000_000_000 - 1_000_000);
    assert_eq!(tx.output[1].value.to_sat(), 1_000_000);
    assert_eq!(tx.output.len(), 3);
    // scriptSig: height push, then the 12-byte extranonce push; no tag.
    let script = tx.input[0].script_sig.as_bytes();
    assert_eq!(script, &[&[0x01, 102, 12][..], &[0; 12]].concat()[..]);

    let too_much = SplitOutput {
        script: vec![0x51],
        value_sats: 5_000_000_001,
    };
    let config = CoinbaseConfig::new(b"", ExtranonceSize::DEFAULT, vec![too_much]).unwrap();
    assert!(matches!(
        build_coinbase(&template, payout.as_bytes(), &config),
        Err(CoinbaseError::SplitsExceedValue { .. })
    ));
    assert!(CoinbaseConfig::new(&[b'x'; 41], ExtranonceSize::DEFAULT, vec![]).is_err());
    assert!(CoinbaseConfig::new(b"", ExtranonceSize::DEFAULT, vec![split; 7]).is_err());
    assert!(build_coinbase(&template, &[0; 65], &CoinbaseConfig::solo(b"")).is_err());
}

const MAINNET_ADDRESSES: [&str; 5] = [
    "1A1zP1eP5QGefi2DMPTfTL5SLmv7DivfNa",
    "3J98t1WpEZ73CNmQviecrnyiWrnqRhWNLy",
    "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq",
    "bc1qrp33g0q5c5txsp9arysrx4k6zdkfs4nce4xj0gdcccefvpysxf3qccfmv3",
    "bc1p5d7rjq7g6rdk2yhzks9smlaqtedr4dekq08ge8ztwac72sfr9rusxg3297",
];

#[test]
fn payout_types_and_solo_coinbase_size() {
    let template = segwit_template(None);
    let config = CoinbaseConfig::solo(b"/warppool/");
    for address in MAINNET_ADDRESSES {
        let script = payout_script(address, Network::Bitcoin).unwrap();
        let want = address
            .parse::<Address<_>>()
            .unwrap()
            .assume_checked()
            .script_pubkey();
        assert_eq!(script, want);
        let parts = build_coinbase(&template, script.as_bytes(), &config).unwrap();
        assert!(parts.len() <= 255, "{address}: {} bytes", parts.len());
        // The same script as a regtest address is refused on mainnet, naming both networks.
        let regtest = Address::from_script(&script, Network::Regtest)
            .unwrap()
            .to_string();
        let err = payout_script(&regtest, Network::Bitcoin).unwrap_err();
        assert!(matches!(err, PayoutError::WrongNetwork { .. }));
        let msg = err.to_string();
        assert!(msg.contains("regtest") && msg.contains("bitcoin"), "{msg}");
        let err = payout_script(address, Network::Regtest)
            .unwrap_err()
            .to_string();
        assert!(err.contains("bitcoin") && err.contains("regtest"), "{err}");
        assert_eq!(payout_script(&regtest, Network::Regtest).unwrap(), script);
    }
}

#[test]
fn usernames() {
    let a = MAINNET_ADDRESSES[2];
    let (script, worker) = parse_username(a, Network::Bitcoin).unwrap();
    assert_eq!(script.len(), 22);
    assert!(worker.is_none());
    let (_, worker) = parse_username(&format!("{a}.bitaxe.1"), Network::Bitcoin).unwrap();
    assert_eq!(worker.unwrap().as_str(), "bitaxe.1");
    assert_eq!(
        parse_username("", Network::Bitcoin),
        Err(PayoutError::UsernameLength)
    );
    assert_eq!(
        parse_username(&format!("{a}.{}", "w".repeat(200)), Network::Bitcoin),
        Err(PayoutError::UsernameLength)
    );
    assert!(matches!(
        parse_username("x.y", Network::Bitcoin),
        Err(PayoutError::Invalid(_))
    ));
    assert!(matches!(
        parse_username(&format!("{a}."), Network::Bitcoin),
        Err(PayoutError::WorkerName(_))
    ));
}

#[test]
fn notify_fields() {
    let template = Arc::new(segwit_template(None));
    let config = CoinbaseConfig::solo(b"/warppool/");
    let job = Job::new(
        JobId::new(0xab),
        Arc::clone(&template),
        regtest_p2pkh().as_bytes(),
        &config,
    )
    .unwrap();
    assert_eq!(job.notify_job_id(), "ab");
    assert_eq!(job.notify_version(), "20000000");
    assert_eq!(job.notify_nbits(), "207fffff");
    assert_eq!(job.notify_ntime(), format!("{:08x}", 1_700_000_500u32));
    assert_eq!(
        job.notify_coinb1(),
        warppool_core::hex::encode(job.coinb1())
    );
    assert_eq!(
        job.notify_coinb2(),
        warppool_core::hex::encode(job.coinb2())
    );
    assert_eq!(job.notify_branch().len(), 1);
    assert_eq!(
        job.notify_branch()[0],
        warppool_core::hex::encode(template.transactions()[0].txid())
    );
    // Stratum prevhash: the internal bytes with each 4-byte word reversed.
    let display = "3c6ba5ae4f8c2f3ff1ff6cce0e58c4b4ba4c1a6e0fd1b7e5e2b5de3c4f3b2a10";
    let words: Vec<&str> = (0..8).map(|i| &display[i * 8..i * 8 + 8]).rev().collect();
    assert_eq!(job.notify_prevhash(), words.concat());
    // coinb1 ends right before en1: its last byte is the extranonce push of 4 + 4 bytes.
    assert_eq!(*job.coinb1().last().unwrap(), 8);
    assert_eq!(job.ntime(), Ntime::from_secs(1_700_000_500));
}

#[test]
fn version_bits_in_template_are_kept_out_of_the_mask() {
    let mut t = bsv_template(json!([]));
    t["version"] = json!(0x2000_6004u32);
    let template = Arc::new(Template::from_json(t.to_string().as_bytes()).unwrap());
    let config = CoinbaseConfig::solo(b"");
    let job = Job::new(JobId::new(1), template, regtest_p2pkh().as_bytes(), &config).unwrap();
    assert_eq!(job.version(), 0x2000_0004);
    assert_eq!(
        VersionMask::POOL.apply(job.version(), 0x0000_6000),
        0x2000_6004
    );
}

/// A small non-witness transaction, distinct per `i` (raw bytes as hex).
fn distinct_transaction(i: u32) -> String {
    let mut tx = Vec::with_capacity(64);
    tx.extend_from_slice(&1u32.to_le_bytes());
    tx.push(1);
    tx.extend_from_slice(&[0x11; 28]);
    tx.extend_from_slice(&i.to_le_bytes());
    tx.extend_from_slice(&0u32.to_le_bytes());
    tx.push(0);
    tx.extend_from_slice(&u32::MAX.to_le_bytes());
    tx.push(1);
    tx.extend_from_slice(&1000u64.to_le_bytes());
    tx.extend_from_slice(&[1, 0x51]);
    tx.extend_from_slice(&0u32.to_le_bytes());
    warppool_core::hex::encode(&tx)
}

// See: issue 9, defect 5 (the witness merkle root is computed once per template, not once per
// payout script per shard).
#[test]
fn issue_9_witness_root_is_computed_once_per_template() {
    // 20,000 transactions: recomputing the witness root is 20,000 `sha256d` per coinbase,
    // about a second for these 500 coinbases; reusing it is one per coinbase.
    let txs: Vec<serde_json::Value> = (0..20_000)
        .map(|i| json!({"data": distinct_transaction(i)}))
        .collect();
    let mut t = bsv_template(json!(txs));
    t["rules"] = json!(["csv", "!segwit", "taproot"]);
    let template = Arc::new(Template::from_json(t.to_string().as_bytes()).unwrap());
    assert!(template.is_segwit());
    let config = CoinbaseConfig::solo(b"/warppool/");
    let started = std::time::Instant::now();
    for i in 0..500u32 {
        let script: Vec<u8> = [0x00, 0x14]
            .into_iter()
            .chain([0; 16])
            .chain(i.to_le_bytes())
            .collect();
        let parts = build_coinbase(&template, &script, &config).unwrap();
        let job = Job::from_parts(
            JobId::new(u64::from(i) + 1),
            Arc::clone(&template),
            &parts,
            template.curtime(),
        );
        assert!(job.is_ok());
    }
    let elapsed = started.elapsed();
    assert!(
        elapsed < std::time::Duration::from_millis(300),
        "500 coinbases and jobs took {elapsed:?}"
    );
}
