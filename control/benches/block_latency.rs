//! Found block → `submitblock` at the node, idle and under HTTP load.
//!
//! The whole daemon (`Daemon::start`: data plane, block path, SQLite storage, HTTP API) runs on
//! the production control-plane runtime against an in-process node double (the tests' fake
//! node, a raw HTTP/1.1 server on its own runtime) serving regtest templates, on which nearly
//! every share is a block. A raw Stratum client submits one share that meets the network
//! target at a time and times from just before its `mining.submit` write to the node's
//! receipt of the `submitblock` request (the whole request read; on loopback the first byte
//! arrives microseconds earlier). Each sample waits for the previous block's `submitblock`;
//! every 50 blocks the node moves its tip, so the per-tip candidate cap never applies.
//!
//! Two phases of the same length: idle, then with 64 concurrent HTTP clients fetching
//! `/api/v1/workers?limit=100` (1,000 workers) in a loop, every request's query text unique
//! so each answer is computed (the API's one-second answer cache never answers). Prints
//! p50/p99/max of each and the loaded/idle p99 ratio.
//!
//! As in `perf/run`, the pool gets CPU 0 and its peers CPU 1: the main thread is pinned to CPU
//! 0 before the daemon starts (every pool thread inherits it; the shard pins itself), the
//! node's, the miner's and the HTTP clients' runtimes pin their threads to CPU 1, so the
//! clients' own JSON parsing is not charged to the pool; the clients run at `SCHED_IDLE` (and
//! nice 19) there, so it does not delay the node double's receipt or the miner either. On a
//! one-CPU machine nothing is pinned.
//!
//! `cargo bench -p warppool-control --bench block_latency` (`BLOCK_LATENCY_SAMPLES` per phase,
//! default 1,000: at 200 the p99 is the second-worst sample, and it moved by 2× between runs).

#[path = "../tests/support/fake_node.rs"]
mod fake_node;
#[path = "support/harness.rs"]
mod harness;
#[path = "../tests/support/raw_miner.rs"]
mod raw_miner;

use std::{
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use harness::{ADDRESS, Node, config, node, peer_runtimes, register_workers, row};
use hdrhistogram::Histogram;
use raw_miner::Miner;
use tokio::io::AsyncWriteExt;
use warppool_control::run::Daemon;

const HTTP_CLIENTS: usize = 64;
const WORKERS: u64 = 1_000;
const BLOCKS_PER_TIP: u64 = 50;
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(10);

/// Blocks measured so far (the tip moves every `BLOCKS_PER_TIP`).
static MINED: AtomicU64 = AtomicU64::new(0);

/// Measures `samples` blocks; returns the latencies in microseconds.
async fn measure(miner: &mut Miner, node: &Node, samples: u64) -> Histogram<u64> {
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
    for _ in 0..samples {
        if MINED.load(Ordering::SeqCst) % BLOCKS_PER_TIP == BLOCKS_PER_TIP - 1 {
            node.tip.fetch_add(1, Ordering::SeqCst);
            tokio::time::timeout(SAMPLE_TIMEOUT, miner.wait_new_tip())
                .await
                .expect("a clean job after the tip moved");
        }
        let line = miner.block_share();
        let before = node.submitted.lock().unwrap().len();
        let t0 = Instant::now();
        miner
            .write
            .write_all(line.as_bytes())
            .await
            .expect("submit");
        let deadline = t0 + SAMPLE_TIMEOUT;
        let arrived = loop {
            if let Some(t) = node.submitted.lock().unwrap().get(before).copied() {
                break t;
            }
            assert!(
                Instant::now() < deadline,
                "no submitblock within {SAMPLE_TIMEOUT:?}: {line}"
            );
            tokio::time::sleep(Duration::from_micros(200)).await;
        };
        MINED.fetch_add(1, Ordering::SeqCst);
        let us = u64::try_from(arrived.duration_since(t0).as_micros()).unwrap_or(u64::MAX);
        h.record(us.max(1)).expect("in bounds");
    }
    h
}

/// `HTTP_CLIENTS` tasks on `runtime` fetching `/api/v1/workers` from `http` until `stop`.
fn hammer(
    runtime: &tokio::runtime::Runtime,
    http: std::net::SocketAddr,
    stop: &Arc<AtomicBool>,
    requests: &Arc<AtomicU64>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let _guard = runtime.enter();
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    // BLOCK_LATENCY_PATH: another endpoint to load (e.g. /health, which reads no storage).
    // The default load is the worst case: every request's query text unique (leading zeros
    // on `limit`), so the API's one-second answer cache never answers and every answer is a
    // pass over the live table.
    let path = std::env::var("BLOCK_LATENCY_PATH").ok();
    let counter = Arc::new(AtomicU64::new(0));
    (0..HTTP_CLIENTS)
        .map(|_| {
            let (stop, requests) = (Arc::clone(stop), Arc::clone(requests));
            let (client, path, counter) = (client.clone(), path.clone(), Arc::clone(&counter));
            runtime.spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let url = path.as_ref().map_or_else(
                        || {
                            let n = counter.fetch_add(1, Ordering::Relaxed) % 1000;
                            let zeros = "0".repeat(usize::try_from(n).unwrap_or(0));
                            format!("http://{http}/api/v1/workers?limit={zeros}100")
                        },
                        |p| format!("http://{http}{p}"),
                    );
                    if let Ok(r) = client.get(&url).send().await {
                        let _ = r.bytes().await;
                        requests.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect()
}

fn print(idle: &Histogram<u64>, loaded: &Histogram<u64>, requests: u64) {
    println!("| phase | blocks | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|");
    println!("{}", row("idle", idle));
    let name = format!("{HTTP_CLIENTS} clients on /api/v1/workers");
    println!("{}", row(&name, loaded));
    println!(
        "loaded/idle p99: {:.2}; HTTP requests answered during the loaded phase: {requests}",
        loaded.value_at_quantile(0.99) as f64 / idle.value_at_quantile(0.99).max(1) as f64
    );
}

fn main() {
    let samples = harness::samples("BLOCK_LATENCY_SAMPLES", 1_000);
    let dir = harness::bench_dir("block-latency");
    let (node_runtime, miner_runtime, http_runtime) = peer_runtimes();
    let node = Arc::new(node_runtime.block_on(node(None)));
    // The daemon on the production control-plane runtime.
    let pool_runtime = warppool_control::run::build_runtime().expect("control runtime");
    let config = config(&node, &dir, "");
    let daemon = pool_runtime
        .block_on(Daemon::start(config))
        .expect("daemon");
    let stratum = daemon.pool().local_addrs()[0];
    let http = daemon.http_addr().expect("http");
    register_workers(&daemon, 0, WORKERS);

    // The miner's work runs on its runtime's (pinned) worker, not on this thread.
    let on_miner = |miner: Miner, samples: u64| {
        let node = Arc::clone(&node);
        miner_runtime
            .block_on(miner_runtime.spawn(async move {
                let mut miner = miner;
                let h = measure(&mut miner, &node, samples).await;
                (miner, h)
            }))
            .expect("miner task")
    };
    let worker = format!("{ADDRESS}.bench");
    let miner = miner_runtime
        .block_on(
            miner_runtime
                .spawn(async move { Miner::connect(stratum, &worker, "cpuminer/2.5.1").await }),
        )
        .expect("connect task");
    let (miner, _warm) = on_miner(miner, 10);
    let (miner, idle) = on_miner(miner, samples);
    let stop = Arc::new(AtomicBool::new(false));
    let requests = Arc::new(AtomicU64::new(0));
    let hammer = hammer(&http_runtime, http, &stop, &requests);
    std::thread::sleep(Duration::from_secs(1));
    let (_miner, loaded) = on_miner(miner, samples);
    stop.store(true, Ordering::Relaxed);
    for h in hammer {
        let _ = http_runtime.block_on(h);
    }
    print(&idle, &loaded, requests.load(Ordering::Relaxed));
    pool_runtime
        .block_on(daemon.shutdown())
        .expect("clean shutdown");
    let _ = std::fs::remove_dir_all(&dir);
}
