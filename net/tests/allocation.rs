//! Heap allocations on the shard thread after connection set-up (STYLE rule 4), counted by a
//! test-only global allocator that counts only on shard threads.
//!
//! Plain connections are served by the shard's own epoll loop with lent buffers and recycled
//! statistics batches, so neither a request/reply round trip (one read, one write) nor
//! pipelined lines allocate. What remains is one-time growth: the statistics queue (flume)
//! grows its internal buffer towards its bound the first times batches are queued (this test
//! never drains it). The bound below allows that handful and nothing per operation.

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
    // Measured: 2 over the round trips and 3 over the pipelined lines under both drivers,
    // all one-time queue growth; anything per operation would be thousands.
    assert!(
        round_trip + pipelined <= 16,
        "{round_trip} allocations for {ROUND_TRIPS} round trips, {pipelined} for {lines} lines"
    );
    plane.stop();
}

#[test]
fn shard_allocations_after_setup_are_bounded() {
    both_drivers(Duration::from_secs(60), measure);
}
