//! The share path allocates nothing: a counting global allocator watches `JobBook::submit` over
//! accepted, rejected and block shares (STYLE rule 4).

use std::alloc::{GlobalAlloc, Layout, System};
use std::cell::Cell;
use std::sync::Arc;

use serde_json::json;
use warppool_core::{
    CoinbaseConfig, Extranonce1, Extranonce2, ExtranonceSize, Job, JobBook, JobId, Nonce, Ntime,
    ShareTarget, Submission, Template, Verdict, VersionMask,
};

struct Counting;

thread_local! {
    static WATCHING: Cell<bool> = const { Cell::new(false) };
    static ALLOCATIONS: Cell<u64> = const { Cell::new(0) };
}

// SAFETY: every call is forwarded unchanged to the system allocator; the counters are
// thread-local cells that never allocate.
unsafe impl GlobalAlloc for Counting {
    unsafe fn alloc(&self, layout: Layout) -> *mut u8 {
        if WATCHING.with(Cell::get) {
            ALLOCATIONS.with(|a| a.set(a.get() + 1));
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.alloc(layout) }
    }
    unsafe fn dealloc(&self, ptr: *mut u8, layout: Layout) {
        // SAFETY: same contract as the caller's.
        unsafe { System.dealloc(ptr, layout) }
    }
    unsafe fn realloc(&self, ptr: *mut u8, layout: Layout, new_size: usize) -> *mut u8 {
        if WATCHING.with(Cell::get) {
            ALLOCATIONS.with(|a| a.set(a.get() + 1));
        }
        // SAFETY: same contract as the caller's.
        unsafe { System.realloc(ptr, layout, new_size) }
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting;

fn job(id: u64, bits: &str, prev: u8) -> Arc<Job> {
    let t = json!({
        "version": 0x2000_0000u32,
        "rules": ["csv", "!segwit"],
        "previousblockhash": format!("{prev:02x}").repeat(32),
        "transactions": [],
        "coinbasevalue": 312_500_000u64,
        "bits": bits,
        "curtime": 1_700_000_000u32,
        "mintime": 1_699_999_000u32,
        "height": 900_000,
    });
    let template = Arc::new(Template::from_json(t.to_string().as_bytes()).unwrap());
    let payout: Vec<u8> = [0x00, 0x14].into_iter().chain([7u8; 20]).collect();
    let config = CoinbaseConfig::solo(b"/warppool/");
    Arc::new(Job::new(JobId::new(id), template, &payout, &config).unwrap())
}

#[test]
fn submit_never_allocates() {
    let mut book = JobBook::new(1024);
    book.install(job(1, "207fffff", 1)); // regtest: about half the hashes are blocks
    book.install(job(2, "1d00ffff", 1));
    book.install(job(3, "1d00ffff", 2)); // new tip: 1 and 2 are stale
    let en1 = Extranonce1::from_u32(5);
    let mid = ShareTarget::from_le_bytes({
        let mut t = [0xff; 32];
        t[31] = 0x80;
        t
    });
    let mut counts = [0u32; 3];
    WATCHING.with(|w| w.set(true));
    for i in 0..4000u32 {
        let submission = Submission {
            extranonce2: Extranonce2::from_hex(b"00000001", ExtranonceSize::DEFAULT).unwrap(),
            ntime: Ntime::from_secs(1_700_000_000 + (i % 3)),
            nonce: Nonce::new(i / 2), // every share twice: duplicates too
            version_bits: Some((i % 7) << 13),
        };
        let id = JobId::new(u64::from(i % 5));
        match book.submit(id, &en1, &submission, VersionMask::POOL, &mid) {
            Verdict::Accepted { .. } => counts[0] += 1,
            Verdict::Block { .. } => counts[1] += 1,
            Verdict::Rejected(_) => counts[2] += 1,
        }
    }
    WATCHING.with(|w| w.set(false));
    assert_eq!(ALLOCATIONS.with(Cell::get), 0, "the share path allocated");
    assert!(
        counts.iter().all(|c| *c > 0),
        "all verdict kinds were exercised: {counts:?}"
    );
}
