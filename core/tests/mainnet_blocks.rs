//! Real mainnet blocks rebuilt through the pool's own template → job → share → block path.
//!
//! For each fixture: a `getblocktemplate` result is made from the block's own data, the real
//! coinbase is cut around an extranonce position inside its scriptSig, and the block's own
//! nonce is submitted as a share. It must come back as a block with the real hash, and the
//! serialized candidate must equal the fixture byte for byte.

#[path = "common/fixtures.rs"]
#[allow(dead_code, reason = "shared by several test files")]
mod fixtures;

use std::sync::Arc;

use fixtures::{Fixture, MASK};
use warppool_core::{
    CoinbaseConfig, CoinbaseParts, Difficulty, Extranonce1, Extranonce2, ExtranonceSize, Job,
    JobBook, JobId, Nonce, Ntime, Submission, Template, Verdict, VersionMask, build_coinbase,
};

/// Offset of the scriptSig in a coinbase whose scriptSig is shorter than 0xfd bytes.
const SCRIPT_SIG_OFFSET: usize = 4 + 1 + 36 + 1;

fn rebuild(f: &Fixture, template: &Arc<Template>, offset_in_script: usize, en2_size: usize) {
    let coinbase = f.coinbase_stripped();
    let script_len = usize::from(coinbase[SCRIPT_SIG_OFFSET - 1]);
    assert!(offset_in_script + 4 + en2_size <= script_len);
    let at = SCRIPT_SIG_OFFSET + offset_in_script;
    let size = ExtranonceSize::new(en2_size).unwrap();
    let parts = CoinbaseParts::from_coinbase(&coinbase, at, size, f.witness_reserved()).unwrap();
    let h = &f.block.header;
    let id = JobId::new(0x1000 + offset_in_script as u64);
    let job = Arc::new(
        Job::from_parts(id, Arc::clone(template), &parts, Ntime::from_secs(h.time)).unwrap(),
    );
    let mut book = JobBook::new(64);
    book.install(Arc::clone(&job));

    let en1 = Extranonce1::from_bytes(coinbase[at..at + 4].try_into().unwrap());
    let en2 = Extranonce2::from_bytes(&coinbase[at + 4..at + 4 + en2_size]).unwrap();
    let version = h.version.to_consensus() as u32;
    let submission = Submission {
        extranonce2: en2,
        ntime: Ntime::from_secs(h.time),
        nonce: Nonce::new(h.nonce),
        version_bits: Some(version & MASK),
    };
    let share_target = Difficulty::ONE.to_target();
    let verdict = book.submit(id, &en1, &submission, VersionMask::POOL, &share_target);
    let Verdict::Block {
        hash,
        candidate,
        accounting,
    } = verdict
    else {
        panic!(
            "{}: the block's own nonce must be a block, got {verdict:?}",
            f.name
        );
    };
    let mut display = hash;
    display.reverse();
    assert_eq!(
        warppool_core::hex::encode(&display),
        f.block.block_hash().to_string()
    );
    assert_eq!(accounting, None, "{}: also a valid share", f.name);
    assert_eq!(candidate.coinbase(), &coinbase[..]);
    let rebuilt = candidate.to_block_bytes();
    assert_eq!(rebuilt.len(), f.bytes.len(), "{}: block length", f.name);
    assert!(
        rebuilt == f.bytes,
        "{}: serialized block differs from the fixture",
        f.name
    );
    assert_eq!(
        candidate.to_block_hex(),
        warppool_core::hex::encode(&f.bytes)
    );

    // The same share again is a duplicate (still a block: submitted whatever its bookkeeping).
    let again = book.submit(id, &en1, &submission, VersionMask::POOL, &share_target);
    assert!(matches!(
        again,
        Verdict::Block {
            accounting: Some(warppool_core::ShareReject::Duplicate),
            ..
        }
    ));
}

fn check_fixture(f: &Fixture) {
    let template = Arc::new(Template::from_json(f.template_json().as_bytes()).unwrap());
    assert_eq!(template.is_segwit(), f.is_segwit());
    assert_eq!(template.transactions().len(), f.block.txdata.len() - 1);
    assert_eq!(template.height(), f.height);

    // The witness commitment computed from the transactions equals the block's.
    if let Some(real) = f.commitment_script() {
        assert_eq!(
            template
                .witness_commitment_script(&f.witness_reserved())
                .to_vec(),
            real
        );
    }

    // Real coinbase, extranonce at the start, middle and end of the scriptSig.
    let coinbase = f.coinbase_stripped();
    let script_len = usize::from(coinbase[SCRIPT_SIG_OFFSET - 1]);
    for en2_size in [4, 2, 8] {
        if script_len < 4 + en2_size {
            continue;
        }
        let last = script_len - 4 - en2_size;
        for offset in [0, last / 2, last] {
            rebuild(f, &template, offset, en2_size);
        }
    }

    // The pool's own coinbase builder on the same transactions: its witness commitment
    // (reserved value zero) must equal the node's, and the default solo coinbase with the
    // longest payout script (P2WSH/P2TR, 34 bytes) stays within 255 bytes.
    let payout = [0x51, 0x20]
        .iter()
        .copied()
        .chain([7u8; 32])
        .collect::<Vec<u8>>();
    let config = CoinbaseConfig::solo(b"/warppool/");
    assert_eq!(
        f.witness_reserved(),
        [0; 32],
        "{}: mainnet miners commit to zero",
        f.name
    );
    let parts = build_coinbase(&template, &payout, &config).unwrap();
    assert!(
        parts.len() <= 255,
        "{}: solo coinbase is {} bytes",
        f.name,
        parts.len()
    );
    let commitment = template.witness_commitment_script(&[0; 32]);
    let has = parts.coinb2().windows(38).any(|w| w == commitment);
    assert_eq!(has, f.is_segwit());
    if let Some(real) = f.commitment_script() {
        assert_eq!(commitment.to_vec(), real, "{}: builder commitment", f.name);
    }
    let job = Job::new(JobId::new(1), Arc::clone(&template), &payout, &config).unwrap();
    assert_eq!(job.coinbase_len(), parts.len());
}

#[test]
fn block_100000_pre_segwit() {
    let f = fixtures::block_100000();
    assert_eq!(f.block.txdata.len(), 4);
    check_fixture(&f);
}

#[test]
fn block_702861_segwit() {
    let f = fixtures::block_702861();
    assert!(f.block.txdata.len() > 1000);
    let witnesses = f.block.txdata[1..]
        .iter()
        .filter(|t| t.input.iter().any(|i| !i.witness.is_empty()));
    assert!(
        witnesses.count() > 1000,
        "most transactions carry witnesses"
    );
    assert!(f.is_segwit());
    check_fixture(&f);
}

#[test]
fn block_200000_pre_segwit_many_transactions() {
    let f = fixtures::block_200000();
    assert_eq!(f.block.txdata.len(), 388);
    assert!(!f.is_segwit());
    check_fixture(&f);
}

#[test]
fn block_347032_pre_segwit_bip34() {
    let f = fixtures::block_347032();
    assert_eq!(f.block.txdata.len(), 162);
    assert_eq!(f.block.bip34_block_height().unwrap(), 347_032);
    check_fixture(&f);
}

#[test]
fn block_481824_first_segwit_block() {
    let f = fixtures::block_481824();
    assert_eq!(f.block.txdata.len(), 1866);
    assert!(f.is_segwit());
    let witnesses = f.block.txdata[1..]
        .iter()
        .filter(|t| t.input.iter().any(|i| !i.witness.is_empty()));
    assert!(witnesses.count() > 0, "some transactions carry witnesses");
    check_fixture(&f);
}
