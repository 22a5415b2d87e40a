//! Fuzzes `Template::from_json` with arbitrary bytes; when a template parses, builds a job with
//! a fixed payout and judges one share on it, which must not panic either.
#![no_main]

use std::sync::Arc;

use libfuzzer_sys::fuzz_target;
use warppool_core::{
    CoinbaseConfig, Extranonce1, Extranonce2, ExtranonceSize, Job, JobBook, JobId, Nonce,
    ShareTarget, Submission, Template, VersionMask,
};

/// OP_0 <20 bytes>: a P2WPKH payout.
const PAYOUT: [u8; 22] = [
    0x00, 0x14, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20,
];

fuzz_target!(|data: &[u8]| {
    let Ok(template) = Template::from_json(data) else {
        return;
    };
    let config = CoinbaseConfig::solo(b"/fuzz/");
    let Ok(job) = Job::new(JobId::new(1), Arc::new(template), &PAYOUT, &config) else {
        return;
    };
    let mut book = JobBook::new(4);
    let ntime = job.ntime();
    book.install(Arc::new(job));
    let submission = Submission {
        extranonce2: Extranonce2::from_hex(b"00000001", ExtranonceSize::DEFAULT)
            .expect("constant extranonce2 is valid"),
        ntime,
        nonce: Nonce::new(0),
        version_bits: None,
    };
    let target = ShareTarget::from_le_bytes([0xff; 32]);
    let en1 = Extranonce1::from_u32(1);
    let _ = book.submit(JobId::new(1), &en1, &submission, VersionMask::POOL, &target);
});
