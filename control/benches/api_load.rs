//! The pool's share latency idle and under API load: `/api/v1/workers` at 10,000 workers, and
//! the live event stream fanned out to 100 clients.
//!
//! The whole daemon (`Daemon::start`: data plane, block path, SQLite storage, HTTP API) runs on
//! the production control-plane runtime against the tests' node double, which serves regtest
//! templates with a difficulty-1 compact target, so a share at the port's fixed difficulty
//! 2^-16 is a plain share (a block once in 65,536 shares), not a block as on regtest. 10,000
//! workers are registered in the live table. A raw Stratum client sends one share per packet,
//! waits for its answer and times write → answer; its shares are ground before each phase
//! (not during it), so the grinding never competes with the pool.
//!
//! Three phases of the same number of shares: idle; with 64 HTTP clients fetching
//! `/api/v1/workers?limit=100` (sorted by 10-minute hashrate over 10,000 rows) in a loop, whose
//! own request latencies are recorded; with 100 clients on `/api/v1/events?topics=workers`,
//! whose receipts of each event id are recorded (fan-out spread: from the first client's
//! receipt of an event to the last one's). Prints each phase's share p50/p99/max, the
//! loaded/idle p99 ratios, the `/workers` p50/p99 and rate, and the fan-out figures.
//!
//! Placement as in `block_latency`: the pool on CPU 0, the node double, the miner and the
//! load on CPU 1, the load at `SCHED_IDLE` so it never delays the instruments.
//!
//! `cargo bench -p warppool-control --bench api_load` (`API_LOAD_SAMPLES` shares per phase,
//! default 2,000).

#[path = "../tests/support/fake_node.rs"]
mod fake_node;
#[path = "support/harness.rs"]
mod harness;
#[path = "../tests/support/raw_miner.rs"]
mod raw_miner;

use std::{
    collections::HashMap,
    sync::{
        Arc, Mutex,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use harness::{ADDRESS, config, node, peer_runtimes, register_workers, row};
use hdrhistogram::Histogram;
use raw_miner::Miner;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use warppool_control::run::Daemon;

const WORKERS: u64 = 10_000;
const HTTP_CLIENTS: usize = 64;
const SSE_CLIENTS: usize = 100;
const ANSWER_TIMEOUT: Duration = Duration::from_secs(10);
/// Difficulty 1 (Bitcoin's minimum): regtest's own target would make every share a block.
const DIFFICULTY_ONE: (&str, &str) = (
    "1d00ffff",
    "00000000ffff0000000000000000000000000000000000000000000000000000",
);
/// The pause between one share's answer and the next share (real miners do not send
/// back-to-back; 1 ms keeps a phase short).
const SHARE_GAP: Duration = Duration::from_millis(1);

fn histogram() -> Histogram<u64> {
    Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).expect("bounds")
}

fn micros(d: Duration) -> u64 {
    u64::try_from(d.as_micros()).unwrap_or(u64::MAX).max(1)
}

/// `n` shares of the miner's current job at difficulty 2^-16 (the hash's top 16 bits zero).
fn grind(miner: &mut Miner, first_id: u64, n: u64) -> Vec<(u64, String)> {
    (first_id..first_id + n)
        .map(|id| {
            (
                id,
                miner.share_where(id, 1 << 20, |h| h[31] == 0 && h[30] == 0),
            )
        })
        .collect()
}

/// Sends each share, waits for its answer; returns the write → answer latencies and the
/// number of shares the pool did not accept.
async fn measure(miner: &mut Miner, shares: Vec<(u64, String)>) -> (Histogram<u64>, u64) {
    let mut h = histogram();
    let mut refused = 0;
    for (id, line) in shares {
        let t0 = Instant::now();
        miner
            .write
            .write_all(line.as_bytes())
            .await
            .expect("submit");
        let answer = tokio::time::timeout(ANSWER_TIMEOUT, async {
            loop {
                let line = miner.lines.next_line().await.expect("read").expect("open");
                let v: serde_json::Value = serde_json::from_str(&line).expect("json");
                if v["id"] == id {
                    return v;
                }
            }
        })
        .await
        .expect("an answer to every share");
        h.record(micros(t0.elapsed())).expect("in bounds");
        if answer["result"] != serde_json::Value::Bool(true) {
            refused += 1;
        }
        tokio::time::sleep(SHARE_GAP).await;
    }
    (h, refused)
}

/// `HTTP_CLIENTS` tasks fetching `/api/v1/workers?limit=100` until `stop`, each request timed.
fn workers_load(
    runtime: &tokio::runtime::Runtime,
    http: std::net::SocketAddr,
    stop: &Arc<AtomicBool>,
    latencies: &Arc<Mutex<Histogram<u64>>>,
) -> Vec<tokio::task::JoinHandle<()>> {
    let _guard = runtime.enter();
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    let url = format!("http://{http}/api/v1/workers?limit=100");
    (0..HTTP_CLIENTS)
        .map(|_| {
            let (stop, latencies) = (Arc::clone(stop), Arc::clone(latencies));
            let (client, url) = (client.clone(), url.clone());
            runtime.spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let t0 = Instant::now();
                    if let Ok(r) = client.get(&url).send().await
                        && r.status() == 200
                        && r.bytes().await.is_ok()
                    {
                        let us = micros(t0.elapsed());
                        latencies.lock().unwrap().record(us).expect("in bounds");
                    }
                }
            })
        })
        .collect()
}

/// Receipt times of each event id, over all clients.
type Receipts = Arc<Mutex<HashMap<u64, Vec<Instant>>>>;

/// `SSE_CLIENTS` raw clients on the event stream until `stop`; returns how many got the
/// stream's `200`.
fn sse_load(
    runtime: &tokio::runtime::Runtime,
    http: std::net::SocketAddr,
    stop: &Arc<AtomicBool>,
    receipts: &Receipts,
    connected: &Arc<AtomicU64>,
) -> Vec<tokio::task::JoinHandle<()>> {
    (0..SSE_CLIENTS)
        .map(|_| {
            let (stop, receipts) = (Arc::clone(stop), Arc::clone(receipts));
            let connected = Arc::clone(connected);
            runtime.spawn(async move {
                let Ok(stream) = tokio::net::TcpStream::connect(http).await else {
                    return;
                };
                let (read, mut write) = stream.into_split();
                let head = format!(
                    "GET /api/v1/events?topics=workers HTTP/1.1\r\nHost: {http}\r\n\
                     Accept: text/event-stream\r\n\r\n"
                );
                if write.write_all(head.as_bytes()).await.is_err() {
                    return;
                }
                let mut lines = BufReader::new(read).lines();
                if let Ok(Some(status)) = lines.next_line().await
                    && status.contains(" 200 ")
                {
                    connected.fetch_add(1, Ordering::Relaxed);
                }
                while !stop.load(Ordering::Relaxed) {
                    let next = tokio::time::timeout(Duration::from_millis(200), lines.next_line());
                    match next.await {
                        Ok(Ok(Some(line))) => {
                            if let Some(id) = line.strip_prefix("id: ")
                                && let Ok(id) = id.trim().parse::<u64>()
                            {
                                let now = Instant::now();
                                receipts.lock().unwrap().entry(id).or_default().push(now);
                            }
                        }
                        Ok(_) => return,
                        Err(_) => {}
                    }
                }
            })
        })
        .collect()
}

/// Events, deliveries, and the first-to-last receipt spread of the events every client got.
fn fan_out(receipts: &Receipts, clients: u64) -> (usize, usize, Histogram<u64>) {
    let receipts = receipts.lock().unwrap();
    let mut spread = histogram();
    let mut deliveries = 0;
    for times in receipts.values() {
        deliveries += times.len();
        if times.len() as u64 == clients {
            let first = times.iter().min().expect("non-empty");
            let last = times.iter().max().expect("non-empty");
            spread
                .record(micros(last.duration_since(*first)))
                .expect("in bounds");
        }
    }
    (receipts.len(), deliveries, spread)
}

fn ratio(loaded: &Histogram<u64>, idle: &Histogram<u64>) -> f64 {
    loaded.value_at_quantile(0.99) as f64 / idle.value_at_quantile(0.99).max(1) as f64
}

/// The share latencies of the three phases (idle, `/workers`, event stream) and the
/// `/workers` answers.
fn report(phases: &[&Histogram<u64>; 3], refused: [u64; 3], api: &Histogram<u64>, api_secs: f64) {
    println!("| phase | shares | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|");
    println!("{}", row("idle", phases[0]));
    println!(
        "{}",
        row(
            &format!("{HTTP_CLIENTS} clients on /workers ({WORKERS} workers)"),
            phases[1]
        )
    );
    println!(
        "{}",
        row(&format!("{SSE_CLIENTS} event-stream clients"), phases[2])
    );
    println!(
        "share p99 loaded/idle: /workers {:.2}, event stream {:.2}; shares not accepted: {} {} {}",
        ratio(phases[1], phases[0]),
        ratio(phases[2], phases[0]),
        refused[0],
        refused[1],
        refused[2]
    );
    println!(
        "/api/v1/workers?limit=100 at {WORKERS} workers: {} answers in {api_secs:.1} s \
         ({:.0}/s), p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms",
        api.len(),
        api.len() as f64 / api_secs,
        api.value_at_quantile(0.5) as f64 / 1000.0,
        api.value_at_quantile(0.99) as f64 / 1000.0,
        api.max() as f64 / 1000.0
    );
}

/// The event stream's deliveries and fan-out spread.
fn report_fan_out(receipts: &Receipts, clients: u64) {
    let (events, deliveries, spread) = fan_out(receipts, clients);
    println!(
        "event stream: {clients}/{SSE_CLIENTS} clients connected, {events} events, {deliveries} \
         deliveries; first-to-last receipt over the {} events every client got: p50 {:.2} ms, \
         p99 {:.2} ms, max {:.2} ms",
        spread.len(),
        spread.value_at_quantile(0.5) as f64 / 1000.0,
        spread.value_at_quantile(0.99) as f64 / 1000.0,
        spread.max() as f64 / 1000.0
    );
}

/// The instrument miner, connected and holding work.
fn connect(runtime: &tokio::runtime::Runtime, stratum: std::net::SocketAddr) -> Miner {
    let worker = format!("{ADDRESS}.bench");
    runtime
        .block_on(
            runtime.spawn(async move { Miner::connect(stratum, &worker, "cpuminer/2.5.1").await }),
        )
        .expect("connect task")
}

/// Stops a load and waits for its tasks.
fn finish(
    runtime: &tokio::runtime::Runtime,
    stop: &AtomicBool,
    tasks: Vec<tokio::task::JoinHandle<()>>,
) {
    stop.store(true, Ordering::Relaxed);
    for t in tasks {
        let _ = runtime.block_on(t);
    }
}

fn main() {
    let samples: u64 = std::env::var("API_LOAD_SAMPLES")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(2_000);
    let dir = std::env::temp_dir().join(format!("warppool-api-load-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (node_runtime, miner_runtime, load_runtime) = peer_runtimes();
    let node = node_runtime.block_on(node(Some(DIFFICULTY_ONE)));
    let pool_runtime = warppool_control::run::build_runtime().expect("control runtime");
    let daemon = pool_runtime
        .block_on(Daemon::start(config(&node, &dir, "")))
        .expect("daemon");
    let stratum = daemon.pool().local_addrs()[0];
    let http = daemon.http_addr().expect("http");
    register_workers(&daemon, WORKERS);

    let miner = connect(&miner_runtime, stratum);
    let mut next_id = 100;
    let mut phase = |miner: Miner, n: u64| -> (Miner, Histogram<u64>, u64) {
        let mut miner = miner;
        let shares = grind(&mut miner, next_id, n);
        next_id += n;
        miner_runtime
            .block_on(miner_runtime.spawn(async move {
                let (h, refused) = measure(&mut miner, shares).await;
                (miner, h, refused)
            }))
            .expect("miner task")
    };
    let (m, _, _) = phase(miner, 50);
    let (m, idle, idle_refused) = phase(m, samples);

    let stop = Arc::new(AtomicBool::new(false));
    let api: Arc<Mutex<Histogram<u64>>> = Arc::new(Mutex::new(histogram()));
    let tasks = workers_load(&load_runtime, http, &stop, &api);
    std::thread::sleep(Duration::from_secs(1));
    let started = Instant::now();
    let (m, workers, workers_refused) = phase(m, samples);
    let api_secs = started.elapsed().as_secs_f64();
    finish(&load_runtime, &stop, tasks);

    let stop = Arc::new(AtomicBool::new(false));
    let receipts: Receipts = Arc::default();
    let connected = Arc::new(AtomicU64::new(0));
    let tasks = sse_load(&load_runtime, http, &stop, &receipts, &connected);
    std::thread::sleep(Duration::from_secs(2));
    let (_m, sse, sse_refused) = phase(m, samples);
    finish(&load_runtime, &stop, tasks);

    let api = api.lock().unwrap();
    report(
        &[&idle, &workers, &sse],
        [idle_refused, workers_refused, sse_refused],
        &api,
        api_secs,
    );
    let clients = connected.load(Ordering::Relaxed);
    report_fan_out(&receipts, clients);
    pool_runtime
        .block_on(daemon.shutdown())
        .expect("clean shutdown");
    let _ = std::fs::remove_dir_all(&dir);
}
