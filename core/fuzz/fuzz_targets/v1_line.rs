//! Arbitrary bytes through the Stratum V1 line framer and parser. When a line parses as a
//! `mining.submit`, the zero-allocation fast path must agree with the `serde_json` reference.

#![no_main]

use libfuzzer_sys::fuzz_target;
use warppool_core::stratum::{LineFramer, Request, parse_line, parse_submit_reference};

fuzz_target!(|data: &[u8]| {
    // The first byte picks the read size, so lines are split across reads in many ways.
    let (chunk, data) = match data.split_first() {
        Some((&c, rest)) => (usize::from(c % 64) + 1, rest),
        None => return,
    };
    let mut buf = [0u8; 512];
    let mut framer = LineFramer::new(&mut buf);
    for piece in data.chunks(chunk) {
        let mut rest = piece;
        while !rest.is_empty() {
            let n = framer.feed(rest);
            rest = &rest[n..];
            while let Some(item) = framer.next_line() {
                let Ok(line) = item else { continue };
                assert!(!line.is_empty() && line.len() <= framer_max());
                check_line(line);
            }
            assert!(framer.buffered() <= 512);
        }
    }
    // Each whole input is also one line for the parser.
    check_line(data);
});

fn framer_max() -> usize {
    511
}

fn check_line(line: &[u8]) {
    let Ok(msg) = parse_line(line) else { return };
    if let Request::Submit(submit) = msg.request {
        let reference = parse_submit_reference(line).expect("the reference accepts a fast submit");
        let fast = submit.to_owned_submit(&msg.id);
        assert_eq!(fast.worker, reference.worker);
        assert_eq!(fast.job_id, reference.job_id);
        assert_eq!(fast.extranonce2, reference.extranonce2);
        assert_eq!(fast.ntime, reference.ntime);
        assert_eq!(fast.nonce, reference.nonce);
        assert_eq!(fast.version_bits, reference.version_bits);
    }
}
