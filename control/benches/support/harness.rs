//! What the control-plane benches share: CPU placement of the pool and its peers, the node
//! double's replies, the daemon's configuration, registered workers and the result rows.
//! Include with `#[path]` (after `fake_node.rs` as `fake_node`).

#![allow(
    dead_code,
    reason = "each bench uses a different part of the support module"
)]
#![allow(
    unreachable_pub,
    reason = "a bench support module included with #[path]"
)]

use std::sync::{
    Arc, Mutex,
    atomic::{AtomicU8, Ordering},
};
use std::time::Instant;

use hdrhistogram::Histogram;
use warppool_control::{config::Config, run::Daemon, stats::Recorder};

use super::fake_node::{FakeNode, Reply, blockchain_info, template};

/// The payout address of every bench worker.
pub const ADDRESS: &str = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080";

/// The node double: a tip that moves on demand and the arrival time of each `submitblock`.
pub struct Node {
    pub fake: FakeNode,
    pub tip: Arc<AtomicU8>,
    pub submitted: Arc<Mutex<Vec<Instant>>>,
}

/// The node double serving regtest templates on the current tip; `bits` replaces the
/// template's compact target (with the matching `target`) when given.
pub async fn node(bits: Option<(&'static str, &'static str)>) -> Node {
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
        let mut gbt = template(t.load(Ordering::SeqCst), 102);
        if let Some((bits, target)) = bits {
            gbt["bits"] = serde_json::json!(bits);
            gbt["target"] = serde_json::json!(target);
        }
        Reply::Result(gbt)
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
    }
}

/// One shard, the HTTP API on a free port, one Stratum port at difficulty 2^-16 (fixed: no
/// vardiff step), tips polled every 50 ms; `extra` TOML is appended.
pub fn config(node: &Node, dir: &std::path::Path, extra: &str) -> Config {
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
difficulty_max = 0.0000152587890625
fractional = "always"
{extra}"#,
        journal = dir.join("blocks.journal").display(),
        db = dir.join("db.sqlite").display(),
        url = node.fake.url(),
    );
    Config::from_toml(&text, Vec::new()).expect("bench config")
}

/// The sample count from the environment variable `var`, else `default`.
pub fn samples(var: &str, default: u64) -> u64 {
    std::env::var(var)
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(default)
}

/// A fresh temporary directory for bench `name` (this process's own).
pub fn bench_dir(name: &str) -> std::path::PathBuf {
    let dir = std::env::temp_dir().join(format!("warppool-{name}-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// Pins the calling thread to `cpu`.
pub fn pin_to_cpu(cpu: usize) {
    // SAFETY: a zeroed cpu_set_t is a valid empty set; CPU_SET and sched_setaffinity only
    // read and write that local set.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &raw const set);
    }
}

/// A result row: count, p50, p99 and max in milliseconds of microsecond samples.
pub fn row(name: &str, h: &Histogram<u64>) -> String {
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
pub fn peer_runtimes() -> (
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

/// `n` authorized workers (`w{first}`…), so `/api/v1/workers` has something to read.
pub fn register_workers(daemon: &Daemon, first: u64, n: u64) {
    let names: Vec<_> = (first..first + n)
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
