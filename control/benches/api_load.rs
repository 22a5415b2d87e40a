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
//! Four phases of the same number of shares: idle; with 64 HTTP clients fetching
//! `/api/v1/workers?limit=100` (sorted by 10-minute hashrate over 10,000 rows) in a loop, whose
//! own request latencies are recorded, once all on one URL (the API's one-second answer cache
//! shares their answers, as it does for a wall of dashboards) and once with every request's
//! query text unique (each answer computed: the worst case); with 100 clients on
//! `/api/v1/events?topics=workers`,
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

/// What the `/workers` clients saw: each 200 answer's latency, and the answers that were not
/// 200 (503 busy) or failed.
#[derive(Default)]
struct ApiSeen {
    latencies: Option<Histogram<u64>>,
    not_ok: u64,
}

type ApiLoad = Arc<Mutex<ApiSeen>>;

/// `HTTP_CLIENTS` tasks fetching `/api/v1/workers?limit=100` until `stop`, each request timed.
/// With `unique`, every request's query text differs (leading zeros on `limit`), so the API's
/// one-second answer cache never answers one: every answer is computed over the whole table.
fn workers_load(
    runtime: &tokio::runtime::Runtime,
    http: std::net::SocketAddr,
    stop: &Arc<AtomicBool>,
    seen: &ApiLoad,
    unique: bool,
) -> Vec<tokio::task::JoinHandle<()>> {
    let _guard = runtime.enter();
    let client = reqwest::Client::builder()
        .no_proxy()
        .build()
        .expect("client");
    seen.lock().unwrap().latencies = Some(histogram());
    let counter = Arc::new(AtomicU64::new(0));
    (0..HTTP_CLIENTS)
        .map(|_| {
            let (stop, seen, counter) = (Arc::clone(stop), Arc::clone(seen), Arc::clone(&counter));
            let client = client.clone();
            runtime.spawn(async move {
                while !stop.load(Ordering::Relaxed) {
                    let zeros = if unique {
                        // 0..=999 zeros, then the texts repeat: far apart in time.
                        let n = counter.fetch_add(1, Ordering::Relaxed) % 1000;
                        "0".repeat(usize::try_from(n).unwrap_or(0))
                    } else {
                        String::new()
                    };
                    let url = format!("http://{http}/api/v1/workers?limit={zeros}100");
                    let t0 = Instant::now();
                    let ok = match client.get(&url).send().await {
                        Ok(r) => r.status() == 200 && r.bytes().await.is_ok(),
                        Err(_) => false,
                    };
                    let mut seen = seen.lock().unwrap();
                    if ok {
                        let us = micros(t0.elapsed());
                        let h = seen.latencies.as_mut().expect("set above");
                        h.record(us).expect("in bounds");
                    } else {
                        seen.not_ok += 1;
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

/// One `/workers` load as its clients saw it.
struct ApiPhase<'a> {
    name: &'a str,
    seen: &'a ApiSeen,
    secs: f64,
}

/// The share latencies of the phases (idle, `/workers` one URL, `/workers` computed, event
/// stream) and the `/workers` answers.
fn report(phases: &[&Histogram<u64>; 4], refused: [u64; 4], api: &[ApiPhase<'_>; 2]) {
    println!("| phase | shares | p50 ms | p99 ms | max ms |");
    println!("|---|---|---|---|---|");
    println!("{}", row("idle", phases[0]));
    for (i, a) in api.iter().enumerate() {
        let name = format!(
            "{HTTP_CLIENTS} clients on /workers, {} ({WORKERS} workers)",
            a.name
        );
        println!("{}", row(&name, phases[1 + i]));
    }
    println!(
        "{}",
        row(&format!("{SSE_CLIENTS} event-stream clients"), phases[3])
    );
    println!(
        "share p99 loaded/idle: /workers {} {:.2}, /workers {} {:.2}, event stream {:.2}; \
         shares not accepted: {refused:?}",
        api[0].name,
        ratio(phases[1], phases[0]),
        api[1].name,
        ratio(phases[2], phases[0]),
        ratio(phases[3], phases[0]),
    );
    for a in api {
        let h = a.seen.latencies.as_ref().expect("a load ran");
        println!(
            "/api/v1/workers?limit=100 at {WORKERS} workers, {}: {} answers in {:.1} s \
             ({:.0}/s), p50 {:.2} ms, p99 {:.2} ms, max {:.2} ms; not 200: {}",
            a.name,
            h.len(),
            a.secs,
            h.len() as f64 / a.secs,
            h.value_at_quantile(0.5) as f64 / 1000.0,
            h.value_at_quantile(0.99) as f64 / 1000.0,
            h.max() as f64 / 1000.0,
            a.seen.not_ok
        );
    }
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

/// The runtimes and the instrument miner of a run, phase after phase.
struct Run {
    miner_runtime: tokio::runtime::Runtime,
    load_runtime: tokio::runtime::Runtime,
    http: std::net::SocketAddr,
    miner: Option<Miner>,
    next_id: u64,
    samples: u64,
}

/// One `/workers` phase: the shares' latencies and refusals, what the clients saw, and for how
/// long.
type ApiRun = (Histogram<u64>, u64, ApiSeen, f64);

impl Run {
    /// Grinds the phase's shares (before any load starts: grinding runs on this thread, on the
    /// pool's CPU, and would stall the API's low-priority query threads).
    fn ground(&mut self, n: u64) -> Vec<(u64, String)> {
        let miner = self.miner.as_mut().expect("a miner");
        let shares = grind(miner, self.next_id, n);
        self.next_id += n;
        shares
    }

    /// Sends `shares` and times them.
    fn measured(&mut self, shares: Vec<(u64, String)>) -> (Histogram<u64>, u64) {
        let mut miner = self.miner.take().expect("a miner");
        let (miner, h, refused) = self
            .miner_runtime
            .block_on(self.miner_runtime.spawn(async move {
                let (h, refused) = measure(&mut miner, shares).await;
                (miner, h, refused)
            }))
            .expect("miner task");
        self.miner = Some(miner);
        (h, refused)
    }

    /// A phase of shares with no load.
    fn idle(&mut self) -> (Histogram<u64>, u64) {
        let shares = self.ground(self.samples);
        self.measured(shares)
    }

    /// A phase of shares under the `/workers` load (`unique`: see [`workers_load`]).
    fn api(&mut self, unique: bool) -> ApiRun {
        let shares = self.ground(self.samples);
        let stop = Arc::new(AtomicBool::new(false));
        let seen: ApiLoad = Arc::default();
        let tasks = workers_load(&self.load_runtime, self.http, &stop, &seen, unique);
        std::thread::sleep(Duration::from_secs(1));
        // Answers from the warm-up second (connections opening) are not counted.
        *seen.lock().unwrap() = ApiSeen {
            latencies: Some(histogram()),
            not_ok: 0,
        };
        let started = Instant::now();
        let (h, refused) = self.measured(shares);
        let secs = started.elapsed().as_secs_f64();
        let seen_now = std::mem::take(&mut *seen.lock().unwrap());
        finish(&self.load_runtime, &stop, tasks);
        (h, refused, seen_now, secs)
    }

    /// A phase of shares under the event-stream load; the receipts and connected clients.
    fn sse(&mut self) -> (Histogram<u64>, u64, Receipts, u64) {
        let shares = self.ground(self.samples);
        let stop = Arc::new(AtomicBool::new(false));
        let receipts: Receipts = Arc::default();
        let connected = Arc::new(AtomicU64::new(0));
        let tasks = sse_load(&self.load_runtime, self.http, &stop, &receipts, &connected);
        std::thread::sleep(Duration::from_secs(2));
        let (h, refused) = self.measured(shares);
        finish(&self.load_runtime, &stop, tasks);
        (h, refused, receipts, connected.load(Ordering::Relaxed))
    }
}

fn main() {
    let samples = harness::samples("API_LOAD_SAMPLES", 2_000);
    let dir = harness::bench_dir("api-load");
    let (node_runtime, miner_runtime, load_runtime) = peer_runtimes();
    let node = node_runtime.block_on(node(Some(DIFFICULTY_ONE)));
    let pool_runtime = warppool_control::run::build_runtime().expect("control runtime");
    let daemon = pool_runtime
        .block_on(Daemon::start(config(&node, &dir, "")))
        .expect("daemon");
    register_workers(&daemon, 0, WORKERS);
    let miner = connect(&miner_runtime, daemon.pool().local_addrs()[0]);
    let mut run = Run {
        miner_runtime,
        load_runtime,
        http: daemon.http_addr().expect("http"),
        miner: Some(miner),
        next_id: 100,
        samples: 50,
    };
    run.idle();
    run.samples = samples;
    let (idle, idle_refused) = run.idle();
    let (one_url, one_refused, one_seen, one_secs) = run.api(false);
    let (computed, computed_refused, computed_seen, computed_secs) = run.api(true);
    let (sse, sse_refused, receipts, clients) = run.sse();
    report(
        &[&idle, &one_url, &computed, &sse],
        [idle_refused, one_refused, computed_refused, sse_refused],
        &[
            ApiPhase {
                name: "one URL",
                seen: &one_seen,
                secs: one_secs,
            },
            ApiPhase {
                name: "every answer computed",
                seen: &computed_seen,
                secs: computed_secs,
            },
        ],
    );
    report_fan_out(&receipts, clients);
    pool_runtime
        .block_on(daemon.shutdown())
        .expect("clean shutdown");
    let _ = std::fs::remove_dir_all(&dir);
}
