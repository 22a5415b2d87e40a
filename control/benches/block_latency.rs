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
//! `/api/v1/workers` (1,000 workers, pages of 100 from the live table) in a loop. Prints
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
#[path = "../tests/support/raw_miner.rs"]
mod raw_miner;

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU8, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use fake_node::{FakeNode, Reply, blockchain_info, template};
use hdrhistogram::Histogram;
use raw_miner::Miner;
use tokio::io::AsyncWriteExt;
use warppool_control::{config::Config, run::Daemon, stats::Recorder};

const ADDRESS: &str = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";
const HTTP_CLIENTS: usize = 64;
const WORKERS: u64 = 1_000;
const BLOCKS_PER_TIP: u64 = 50;
const SAMPLE_TIMEOUT: Duration = Duration::from_secs(10);

/// The node double: a tip that moves on demand and the arrival time of each `submitblock`.
struct Node {
    fake: FakeNode,
    tip: Arc<AtomicU8>,
    submitted: Arc<Mutex<Vec<Instant>>>,
    /// Blocks measured so far (the tip moves every `BLOCKS_PER_TIP`).
    mined: AtomicU64,
}

async fn node() -> Node {
    let fake = FakeNode::start().await;
    let tip = Arc::new(AtomicU8::new(0x11));
    let submitted: Arc<Mutex<Vec<Instant>>> = Arc::default();
    fake.reply("getblockchaininfo", Reply::Result(blockchain_info(false)));
    fake.reply(
        "getnetworkinfo",
        Reply::Result(serde_json::json!({"version": 290000, "subversion": "/Satoshi:29.0.0/"})),
    );
    let t = Arc::clone(&tip);
    fake.on("getblocktemplate", move |_| {
        Reply::Result(template(t.load(Ordering::SeqCst), 102))
    });
    let t = Arc::clone(&tip);
    fake.on("getbestblockhash", move |_| {
        Reply::Result(serde_json::json!(
            format!("{:02x}", t.load(Ordering::SeqCst)).repeat(32)
        ))
    });
    let s = Arc::clone(&submitted);
    fake.on("submitblock", move |_| {
        s.lock().unwrap().push(Instant::now());
        Reply::Result(serde_json::Value::Null)
    });
    fake.on("getblockheader", |p| {
        Reply::Result(serde_json::json!({"hash": p[0], "confirmations": 1, "height": 102}))
    });
    Node {
        fake,
        tip,
        submitted,
        mined: AtomicU64::new(0),
    }
}

fn config(node: &Node, dir: &std::path::Path) -> Config {
    let text = format!(
        r#"
version = 1
network = "regtest"
[pool]
shards = 1
[template]
best_block_poll_ms = 50
[storage]
block_journal = "{journal}"
database = "{db}"
[http]
listen = "127.0.0.1:0"
[[node]]
name = "fake"
rpc_url = "{url}"
rpc_user = "user"
rpc_password = "pass"
[[port]]
addr = "127.0.0.1:0"
difficulty_start = 0.0000152587890625
difficulty_min = 0.0000152587890625
fractional = "always"
"#,
        journal = dir.join("blocks.journal").display(),
        db = dir.join("db.sqlite").display(),
        url = node.fake.url(),
    );
    Config::from_toml(&text, Vec::new()).expect("bench config")
}

/// Measures `samples` blocks; returns the latencies in microseconds.
async fn measure(miner: &mut Miner, node: &Node, samples: u64) -> Histogram<u64> {
    let mut h = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds");
    for _ in 0..samples {
        if node.mined.load(Ordering::SeqCst) % BLOCKS_PER_TIP == BLOCKS_PER_TIP - 1 {
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
        node.mined.fetch_add(1, Ordering::SeqCst);
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
    let path = std::env::var("BLOCK_LATENCY_PATH").unwrap_or_else(|_| "/api/v1/workers".into());
    let url = format!("http://{http}{path}");
    (0..HTTP_CLIENTS)
        .map(|_| {
            let (stop, requests) = (Arc::clone(stop), Arc::clone(requests));
            let (client, url) = (client.clone(), url.clone());
            runtime.spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    if let Ok(r) = client.get(&url).send().await {
                        let _ = r.bytes().await;
                        requests.fetch_add(1, Ordering::Relaxed);
                    }
                }
            })
        })
        .collect()
}

/// Pins the calling thread to `cpu`.
fn pin_to_cpu(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET and sched_setaffinity only
    // read and write that local set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &raw const set);
    }
}

fn row(name: &str, h: &Histogram<u64>) -> String {
    format!(
        "| {name} | {} | {:.2} | {:.2} | {:.2} |",
        h.len(),
        h.value_at_quantile(0.5) as f64 / 1000.0,
        h.value_at_quantile(0.99) as f64 / 1000.0,
        h.max() as f64 / 1000.0
    )
}

/// The node's, the miner's and the HTTP clients' runtimes, one thread each, as separate
/// processes would be (no one's work queues behind another's), pinned to CPU 1 while this
/// thread, and so the daemon it starts, is pinned to CPU 0.
fn peer_runtimes() -> (
    tokio::runtime::Runtime,
    tokio::runtime::Runtime,
    tokio::runtime::Runtime,
) {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    if cpus > 1 {
        pin_to_cpu(0);
    }
    let one_thread = |nice: i32| {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .on_thread_start(move || {
                if cpus > 1 {
                    pin_to_cpu(1);
                }
                // SAFETY: setpriority and sched_setscheduler on the calling thread (its tid)
                // with plain integers and a pointer to a local struct that outlives the call.
                unsafe {
                    let tid = libc::gettid();
                    libc::setpriority(libc::PRIO_PROCESS, tid as libc::id_t, nice);
                    if nice > 0 {
                        // The load (the HTTP clients) never delays the instruments (the node
                        // double's receipt, the miner): SCHED_IDLE is preempted at once,
                        // where a nice-19 thread may run out its slice first.
                        let param = libc::sched_param { sched_priority: 0 };
                        libc::sched_setscheduler(tid, libc::SCHED_IDLE, &raw const param);
                    }
                }
            })
            .enable_all()
            .build()
            .expect("runtime")
    };
    // The HTTP clients' own JSON parsing yields to the node double and the miner (the
    // instruments) on their shared CPU.
    (one_thread(0), one_thread(0), one_thread(19))
}

/// `WORKERS` authorized workers, so `/api/v1/workers` has something to read.
fn register_workers(daemon: &Daemon) {
    let names: Vec<_> = (0..WORKERS)
        .map(|i| warppool_net::stratum::ShareEvent::Authorized {
            connection: 1_000_000 + i,
            username: format!("{ADDRESS}.w{i}"),
            user_agent: Some("bitaxe/BM1370/v2.9.0".to_owned()),
            peer: std::net::SocketAddr::from(([127, 0, 0, 1], 40000)),
            local_port: 3333,
            tls: false,
        })
        .collect();
    daemon.recorder().on_shares(&names);
    daemon.recorder().flush();
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
    let samples: u64 = std::env::var("BLOCK_LATENCY_SAMPLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(1_000);
    let dir = std::env::temp_dir().join(format!("warppool-block-latency-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (node_runtime, miner_runtime, http_runtime) = peer_runtimes();
    let node = Arc::new(node_runtime.block_on(node()));
    // The daemon on the production control-plane runtime.
    let pool_runtime = warppool_control::run::build_runtime().expect("control runtime");
    let config = config(&node, &dir);
    let daemon = pool_runtime
        .block_on(Daemon::start(config))
        .expect("daemon");
    let stratum = daemon.pool().local_addrs()[0];
    let http = daemon.http_addr().expect("http");
    register_workers(&daemon);

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
