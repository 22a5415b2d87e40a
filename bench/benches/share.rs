//! Full share validation, `mining.submit` line in → verdict and reply out, on one core, with a
//! 12-level merkle branch (a template of 3,000 transactions), against the pure hashing cost of
//! the same work measured in the same run.
//!
//! - `share/full`: frame-free `parse_line` → newtypes from hex → `JobBook::submit` (job lookup,
//!   coinbase from the coinb1 midstate, 12 merkle levels, header, sha256d, target, duplicate
//!   set) → reply written into a fixed buffer.
//! - `share/hashing_only`: exactly the SHA-256 work of one share, on pre-built inputs: the
//!   coinbase tail from the same midstate, the second pass, 12 merkle nodes and the header.
//!
//! The ratio `hashing_only / full` is how much of a share's cost is hashing (target ≥ 0.8).
//! `bench/report.py` prints it.

use std::sync::Arc;

use criterion::measurement::Measurement;
use criterion::{Criterion, Throughput};
use serde_json::json;
use warppool_bench::ThreadCpuTime;
use warppool_core::stratum::{Request, parse_line, write_result_bool};
use warppool_core::{
    CoinbaseConfig, Extranonce1, Extranonce2, ExtranonceSize, Job, JobBook, JobId, Nonce, Ntime,
    ShareTarget, Submission, Template, Verdict, VersionMask,
};
use warppool_hash::{Midstate, Sha256, sha256, sha256d, sha256d_64, sha256d_header};

/// Transactions in the template: 2¹¹ < 3000 + 1 ≤ 2¹², so the coinbase branch has 12 levels.
const TRANSACTIONS: usize = 3000;
/// Distinct submit lines cycled through; twice the duplicate-set capacity, so every share's
/// hash has been forgotten by the time its line comes round again and every verdict is
/// `Accepted` (checked before measuring).
const LINES: usize = 8192;
const DUPLICATES: usize = LINES / 2;

/// A tiny non-witness transaction, distinct per `i`.
fn transaction(i: usize) -> Vec<u8> {
    let mut tx = Vec::with_capacity(64);
    tx.extend_from_slice(&1u32.to_le_bytes()); // version
    tx.push(1); // inputs
    tx.extend_from_slice(&sha256(&(i as u64).to_le_bytes())); // prevout txid
    tx.extend_from_slice(&0u32.to_le_bytes()); // prevout index
    tx.push(0); // empty scriptSig
    tx.extend_from_slice(&u32::MAX.to_le_bytes()); // sequence
    tx.push(1); // outputs
    tx.extend_from_slice(&1000u64.to_le_bytes());
    tx.extend_from_slice(&[1, 0x51]); // OP_TRUE
    tx.extend_from_slice(&0u32.to_le_bytes()); // locktime
    tx
}

fn hex(bytes: &[u8]) -> String {
    warppool_core::hex::encode(bytes)
}

/// Display order (reversed) hex of an internal-order hash, as bitcoind prints txids.
fn rev_hex(hash: &[u8; 32]) -> String {
    let mut r = *hash;
    r.reverse();
    hex(&r)
}

/// A segwit template in Bitcoin Core's format with `TRANSACTIONS` transactions.
fn template() -> Template {
    let txs: Vec<Vec<u8>> = (0..TRANSACTIONS).map(transaction).collect();
    let txids: Vec<[u8; 32]> = txs.iter().map(|t| sha256d(t)).collect();
    // Witness root over wtxids (coinbase = 0; non-witness wtxid = txid), then the commitment.
    let mut wtxids = vec![[0u8; 32]];
    wtxids.extend_from_slice(&txids);
    let root = warppool_core::merkle::merkle_root(&wtxids);
    let mut pre = [0u8; 64];
    pre[..32].copy_from_slice(&root);
    let commitment = sha256d(&pre);
    let transactions: Vec<_> = txs
        .iter()
        .zip(&txids)
        .map(|(t, id)| {
            json!({"data": hex(t), "txid": rev_hex(id), "hash": rev_hex(id), "depends": [],
                   "fee": 1000, "sigops": 4, "weight": 4 * t.len()})
        })
        .collect();
    let t = json!({
        "capabilities": ["proposal"],
        "version": 0x2000_0000u32,
        "rules": ["csv", "!segwit", "taproot"],
        "vbavailable": {},
        "vbrequired": 0,
        "previousblockhash": "00000000000000000001a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f7",
        "transactions": transactions,
        "coinbaseaux": {},
        "coinbasevalue": 312_500_000u64 + 1000 * TRANSACTIONS as u64,
        "longpollid": "00000000000000000001a2b3c4d5e6f708192a3b4c5d6e7f8091a2b3c4d5e6f71",
        "target": "0000000000000000000313510000000000000000000000000000000000000000",
        "mintime": 1_764_000_000u32,
        "mutable": ["time", "transactions", "prevblock"],
        "noncerange": "00000000ffffffff",
        "sigoplimit": 80000,
        "sizelimit": 4_000_000,
        "weightlimit": 4_000_000,
        "curtime": 1_764_001_000u32,
        "bits": "17031351",
        "height": 925_000,
        "default_witness_commitment": format!("6a24aa21a9ed{}", hex(&commitment)),
    });
    Template::from_json(t.to_string().as_bytes()).expect("benchmark template parses")
}

fn bench<M: Measurement>(c: &mut Criterion<M>) {
    let template = Arc::new(template());
    let payout: Vec<u8> = [0x00, 0x14].into_iter().chain([7u8; 20]).collect();
    let config = CoinbaseConfig::solo(b"/warppool/");
    let job = Arc::new(Job::new(JobId::new(0x2a), template, &payout, &config).expect("job"));
    assert_eq!(job.merkle_branch().steps().len(), 12, "a 12-level branch");
    let en1 = Extranonce1::from_u32(0x0102_0304);
    // Every share passes: the point is the cost of judging it, not of rejecting it early.
    let share_target = ShareTarget::from_le_bytes([0xff; 32]);

    // Bitaxe-style 6-param submits with lowercase hex and rolled version bits.
    let lines: Vec<Vec<u8>> = (0..LINES)
        .map(|i| {
            format!(
                "{{\"id\": {id}, \"method\": \"mining.submit\", \"params\": [\"bc1qworker.bitaxe\", \
                 \"2a\", \"{en2:08x}\", \"{ntime:08x}\", \"{nonce:08x}\", \"{bits:08x}\"]}}",
                id = 100 + i,
                en2 = i / 64,
                ntime = 1_764_001_000 + (i % 64) as u32,
                nonce = (i as u32).wrapping_mul(2_654_435_761),
                bits = ((i % 4096) as u32) << 13,
            )
            .into_bytes()
        })
        .collect();

    let mut book = JobBook::new(DUPLICATES);
    book.install(Arc::clone(&job));
    let mut reply = [0u8; 256];
    let judge = |line: &[u8], book: &mut JobBook, reply: &mut [u8]| -> (bool, usize) {
        let Ok(msg) = parse_line(line) else {
            return (false, 0);
        };
        let Request::Submit(s) = msg.request else {
            return (false, 0);
        };
        let parsed = (
            JobId::from_hex(s.job_id),
            Extranonce2::from_hex(s.extranonce2, ExtranonceSize::DEFAULT),
            Ntime::from_hex(s.ntime),
            Nonce::from_hex(s.nonce),
        );
        let (Ok(job_id), Ok(extranonce2), Ok(ntime), Ok(nonce)) = parsed else {
            return (false, 0);
        };
        let version_bits = match s.version_bits.map(warppool_core::hex::parse_u32) {
            None => None,
            Some(Ok(b)) => Some(b),
            Some(Err(_)) => return (false, 0),
        };
        let submission = Submission {
            extranonce2,
            ntime,
            nonce,
            version_bits,
        };
        let verdict = book.submit(job_id, &en1, &submission, VersionMask::POOL, &share_target);
        let ok = matches!(verdict, Verdict::Accepted { .. });
        let n = write_result_bool(reply, &msg.id, ok).unwrap_or(0);
        (ok, n)
    };
    // Warm up and check: every line is accepted, twice round.
    for _ in 0..2 {
        for line in &lines {
            assert!(
                judge(line, &mut book, &mut reply).0,
                "every benchmark share is accepted"
            );
        }
    }

    // The same hashing work on pre-built inputs.
    let (mid, tail_start) = {
        let (m, rest) = Midstate::from_prefix(job.coinb1());
        (m, job.coinb1().len() - rest.len())
    };
    let mut coinbase_tail = job.coinb1()[tail_start..].to_vec();
    coinbase_tail.extend_from_slice(en1.as_bytes());
    coinbase_tail.extend_from_slice(&[0, 0, 0, 1]);
    coinbase_tail.extend_from_slice(job.coinb2());
    let steps: Vec<[u8; 32]> = job.merkle_branch().steps().to_vec();
    let header = job.header(
        &[9; 32],
        Ntime::from_secs(1_764_001_000),
        Nonce::new(7),
        0x2000_0000,
    );
    let hash_only = |salt: u8| -> [u8; 32] {
        let mut h = Sha256::from_midstate(mid);
        h.update(&coinbase_tail);
        let mut node = sha256(&h.finalize());
        node[0] ^= salt;
        for step in &steps {
            let mut pair = [0u8; 64];
            pair[..32].copy_from_slice(&node);
            pair[32..].copy_from_slice(step);
            node = sha256d_64(&pair);
        }
        let mut hd = header;
        hd[36..68].copy_from_slice(&node);
        sha256d_header(&hd)
    };

    let mut g = c.benchmark_group("share");
    g.throughput(Throughput::Elements(1));
    let mut i = 0usize;
    g.bench_function("full", |b| {
        b.iter(|| {
            i = (i + 1) % LINES;
            judge(std::hint::black_box(&lines[i]), &mut book, &mut reply)
        });
    });
    let mut salt = 0u8;
    g.bench_function("hashing_only", |b| {
        b.iter(|| {
            salt = salt.wrapping_add(1);
            hash_only(std::hint::black_box(salt))
        });
    });
    g.finish();
}

fn configure<M: Measurement>(c: Criterion<M>) -> Criterion<M> {
    c.warm_up_time(std::time::Duration::from_secs(1))
        .measurement_time(std::time::Duration::from_secs(4))
        .sample_size(30)
        .configure_from_args()
}

fn main() {
    if std::env::var_os("WARPPOOL_BENCH_WALL").is_some() {
        let mut c = configure(Criterion::default());
        bench(&mut c);
        c.final_summary();
    } else {
        let mut c = configure(Criterion::default().with_measurement(ThreadCpuTime));
        bench(&mut c);
        c.final_summary();
    }
}
