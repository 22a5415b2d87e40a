//! Heap allocations on the shard thread after connection set-up (STYLE rule 4), counted by a
//! test-only global allocator that counts only on shard threads.
//!
//! Line handling in `warppool-net` allocates nothing; what remains per I/O operation is
//! compio's own operation bookkeeping (measured: about 2 allocations per operation on
//! io_uring, 4-5 on the polling driver). The test pins both facts down: pipelined lines (many per
//! read) must cost far less than one allocation per line, and a request/reply round trip
//! (one read and one write) must stay within a small constant.

#[path = "support/counting.rs"]
mod counting;
#[path = "support/harness.rs"]
mod harness;

use std::{
    cell::Cell,
    io::{BufRead, Write},
    sync::{Arc, atomic::AtomicU64, atomic::Ordering},
    time::Duration,
};

use arc_swap::ArcSwap;
use counting::Counting;
use harness::*;

static ALLOCATIONS: AtomicU64 = AtomicU64::new(0);

thread_local! {
    static COUNTING: Cell<bool> = const { Cell::new(false) };
}

/// The allocator hook: touches only an atomic and a const thread-local without destructor,
/// neither of which allocates.
fn count() {
    if COUNTING.try_with(Cell::get).unwrap_or(false) {
        ALLOCATIONS.fetch_add(1, Ordering::Relaxed);
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting(count);

const ROUND_TRIPS: u64 = 2_000;
const BATCHES: u64 = 50;
const LINES_PER_BATCH: u64 = 200;

fn measure(force_polling: bool) {
    let log = Arc::new(Log::default());
    let factory_log = Arc::clone(&log);
    let config = test_config(vec![plain_v4()], 1, force_polling);
    let jobs = Arc::new(ArcSwap::from_pointee(0u64));
    let plane: Plane = warppool_net::start(
        config,
        move |shard| {
            COUNTING.with(|c| c.set(true));
            TestProtocol {
                log: Arc::clone(&factory_log),
                options: Options::default(),
                shard,
                scratch: Vec::with_capacity(1 << 16),
            }
        },
        jobs,
    )
    .unwrap();
    check_drivers(&plane, force_polling);
    let mut client = Client::connect(plane.local_addrs()[0]);
    for _ in 0..100 {
        assert_eq!(client.request("warm"), "echo:warm\n");
    }

    let before = ALLOCATIONS.load(Ordering::Relaxed);
    for _ in 0..ROUND_TRIPS {
        assert_eq!(client.request("ping"), "echo:ping\n");
    }
    let round_trip = ALLOCATIONS.load(Ordering::Relaxed) - before;

    let batch: Vec<u8> = (0..LINES_PER_BATCH)
        .flat_map(|_| b"x\n".iter().copied())
        .collect();
    let before = ALLOCATIONS.load(Ordering::Relaxed);
    let mut line = Vec::new();
    for _ in 0..BATCHES {
        client.reader.get_mut().write_all(&batch).unwrap();
        for _ in 0..LINES_PER_BATCH {
            line.clear();
            client.reader.read_until(b'\n', &mut line).unwrap();
        }
    }
    let pipelined = ALLOCATIONS.load(Ordering::Relaxed) - before;
    let lines = BATCHES * LINES_PER_BATCH;
    eprintln!(
        "force_polling={force_polling}: {round_trip} allocations over {ROUND_TRIPS} round \
         trips ({:.2} each); {pipelined} over {lines} pipelined lines ({:.3} per line)",
        round_trip as f64 / ROUND_TRIPS as f64,
        pipelined as f64 / lines as f64,
    );
    // The statistics batches (one `Vec` per 256 lines sent) are the only per-line-ish cost.
    assert!(
        pipelined * 4 < lines,
        "{pipelined} allocations for {lines} pipelined lines"
    );
    // Measured on compio 0.19.2: about 4-5 per round trip on io_uring and 9 on the polling
    // driver, all inside compio (operation records of 128-511 bytes, one read and one write
    // per round trip). The bounds catch regressions, not compio's baseline.
    let per_round_trip_max = if force_polling { 12 } else { 6 };
    assert!(
        round_trip <= ROUND_TRIPS * per_round_trip_max,
        "{round_trip} allocations for {ROUND_TRIPS} round trips"
    );
    plane.stop();
}

#[test]
fn shard_allocations_after_setup_are_bounded() {
    both_drivers(Duration::from_secs(60), measure);
}
