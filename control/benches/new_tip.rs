//! New-tip fan-out latency: from a block mined on the node (the chain simulator publishes ZMQ
//! `hashblock` at once, so t0 upper-bounds "hashblock received") to each connection's
//! `mining.notify` with `clean_jobs = true`, for 1,000 and 10,000 raw Stratum connections.
//! Prints a markdown table (p50/p99/max of the per-connection latency and of the round's last
//! arrival).
//!
//! Two processes: this one runs the chain simulator and the pool; the Stratum clients run in a
//! child process (this binary re-executed with `NEW_TIP_CLIENT=1`), so that each process
//! holds about one descriptor per connection (the container's hard `RLIMIT_NOFILE` is 20,000,
//! too few for 2 × 10,000 in one process). Both sides time with `CLOCK_MONOTONIC`, which is
//! the same clock in every process of the machine. The parent drives the child over its
//! stdin/stdout, one line per step:
//!
//! ```text
//! child → parent  ready                      every connection got its first job
//! parent → child  arm <round>                count the next clean notify as this round's
//! child → parent  armed <round>
//!   (parent: t0 = now, mine a block on the simulator)
//! child → parent  arrivals <round> <ns> …    one CLOCK_MONOTONIC time per connection
//! parent → child  quit
//! ```
//!
//! `cargo bench -p warppool-control --bench new_tip` (`NEW_TIP_ROUNDS`, `NEW_TIP_CONNECTIONS`
//! = comma-separated counts, override the defaults).

#[path = "../tests/support/e2e.rs"]
mod e2e;

use std::{
    net::{Ipv4Addr, SocketAddr},
    process::Stdio,
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::Duration,
};

use hdrhistogram::Histogram;
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::TcpSocket,
    sync::Notify,
};

/// Connections per 127.0.0.x source address (the data plane admits 1,024 per IP).
const PER_SOURCE_IP: usize = 1_000;

/// The environment variable that makes this binary the client process.
const CLIENT_ENV: &str = "NEW_TIP_CLIENT";

/// Longest wait for one round's notifies, and for every connection's first job.
const ROUND_TIMEOUT: Duration = Duration::from_secs(30);
const CONNECT_TIMEOUT: Duration = Duration::from_secs(120);

/// `CLOCK_MONOTONIC` in nanoseconds (shared by all processes of the machine).
fn monotonic_ns() -> u64 {
    let mut now = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: `clock_gettime` writes into a valid, initialised `timespec`.
    let rc = unsafe { libc::clock_gettime(libc::CLOCK_MONOTONIC, &raw mut now) };
    assert_eq!(rc, 0, "clock_gettime(CLOCK_MONOTONIC)");
    let secs = u64::try_from(now.tv_sec).expect("monotonic time is positive");
    let nanos = u64::try_from(now.tv_nsec).expect("nanoseconds are positive");
    secs * 1_000_000_000 + nanos
}

/// Raises the soft descriptor limit to the hard one (or `want`, whichever is lower).
fn raise_nofile(want: u64) -> u64 {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `getrlimit` writes into a valid `rlimit`; `setrlimit` reads one.
    unsafe {
        libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut limit);
        limit.rlim_cur = want.min(limit.rlim_max);
        libc::setrlimit(libc::RLIMIT_NOFILE, &raw const limit);
    }
    limit.rlim_cur
}

// ----------------------------------------------------------------------------------------------
// Client process
// ----------------------------------------------------------------------------------------------

struct Shared {
    round: AtomicU64,
    arrived: AtomicUsize,
    first_jobs: AtomicUsize,
    all_arrived: Notify,
    arrivals: Vec<AtomicU64>,
    n: usize,
}

async fn client(i: usize, pool: SocketAddr, shared: Arc<Shared>) -> std::io::Result<()> {
    let octet = u8::try_from(2 + i / PER_SOURCE_IP).expect("fewer than 253k connections");
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::from((Ipv4Addr::new(127, 0, 0, octet), 0)))?;
    let stream = socket.connect(pool).await?;
    stream.set_nodelay(true)?;
    let (read, mut write) = stream.into_split();
    let hello = format!(
        "{{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[\"bench/1.0\"]}}\n\
         {{\"id\":2,\"method\":\"mining.authorize\",\"params\":[\"{}.c{i}\",\"x\"]}}\n",
        e2e::REGTEST_ADDRESS
    );
    write.write_all(hello.as_bytes()).await?;
    let mut lines = BufReader::new(read).lines();
    let mut seen_round = 0u64;
    let mut first = true;
    while let Some(line) = lines.next_line().await? {
        if !line.contains("\"mining.notify\"") {
            continue;
        }
        let now = monotonic_ns();
        if first {
            first = false;
            shared.first_jobs.fetch_add(1, Ordering::Relaxed);
        }
        if !line.ends_with(",true]}") {
            continue;
        }
        let round = shared.round.load(Ordering::Acquire);
        if round > seen_round {
            seen_round = round;
            shared.arrivals[i].store(now, Ordering::Relaxed);
            if shared.arrived.fetch_add(1, Ordering::AcqRel) + 1 == shared.n {
                shared.all_arrived.notify_one();
            }
        }
    }
    drop(write);
    Ok(())
}

fn say(line: &str) {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    out.write_all(line.as_bytes()).expect("stdout");
    out.write_all(b"\n").expect("stdout");
    out.flush().expect("stdout");
}

/// The client process: connects `NEW_TIP_N` clients to `NEW_TIP_POOL`, then answers the
/// parent's commands (see the module docs) until `quit` or the end of stdin.
fn client_main() {
    let n: usize = std::env::var("NEW_TIP_N")
        .expect("NEW_TIP_N")
        .parse()
        .expect("a count");
    let pool: SocketAddr = std::env::var("NEW_TIP_POOL")
        .expect("NEW_TIP_POOL")
        .parse()
        .expect("an address");
    let limit = raise_nofile(65_536);
    assert!(
        limit > u64::try_from(n).expect("fits") + 64,
        "RLIMIT_NOFILE {limit} is too low for {n} client connections"
    );
    // Commands from the parent, read by a plain thread (stdin has no async reader here).
    let (commands, mut command_rx) = tokio::sync::mpsc::channel::<String>(4);
    std::thread::spawn(move || {
        for line in std::io::stdin().lines() {
            let Ok(line) = line else { break };
            if commands.blocking_send(line).is_err() {
                break;
            }
        }
    });
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    runtime.block_on(async move {
        let shared = Arc::new(Shared {
            round: AtomicU64::new(0),
            arrived: AtomicUsize::new(0),
            first_jobs: AtomicUsize::new(0),
            all_arrived: Notify::new(),
            arrivals: (0..n).map(|_| AtomicU64::new(0)).collect(),
            n,
        });
        let mut tasks = tokio::task::JoinSet::new();
        for i in 0..n {
            tasks.spawn(client(i, pool, Arc::clone(&shared)));
            if i % 100 == 99 {
                // Stay under the data plane's accept rate (1,000 a second per shard).
                tokio::time::sleep(Duration::from_millis(110)).await;
            }
        }
        let ready = e2e::wait_until(CONNECT_TIMEOUT, || {
            shared.first_jobs.load(Ordering::Relaxed) == n
        })
        .await;
        assert!(
            ready,
            "{n} connections: only {} got a first job",
            shared.first_jobs.load(Ordering::Relaxed)
        );
        say("ready");
        while let Some(command) = command_rx.recv().await {
            let mut words = command.split_whitespace();
            match (
                words.next(),
                words.next().and_then(|r| r.parse::<u64>().ok()),
            ) {
                (Some("arm"), Some(round)) => {
                    shared.arrived.store(0, Ordering::Release);
                    shared.round.store(round, Ordering::Release);
                    say(&format!("armed {round}"));
                    tokio::time::timeout(ROUND_TIMEOUT, async {
                        while shared.arrived.load(Ordering::Acquire) < n {
                            shared.all_arrived.notified().await;
                        }
                    })
                    .await
                    .expect("every connection got clean_jobs within 30 s");
                    let mut line = format!("arrivals {round}");
                    for a in &shared.arrivals {
                        line.push(' ');
                        line.push_str(&a.load(Ordering::Relaxed).to_string());
                    }
                    say(&line);
                }
                (Some("quit"), _) => break,
                _ => panic!("unknown command {command:?}"),
            }
        }
        tasks.abort_all();
        while tasks.join_next().await.is_some() {}
    });
}

// ----------------------------------------------------------------------------------------------
// Pool process
// ----------------------------------------------------------------------------------------------

struct Row {
    n: usize,
    rounds: u64,
    per_conn: Histogram<u64>,
    last: Histogram<u64>,
}

/// Reads the child's next line (bounded), panicking on EOF.
async fn expect_line(
    lines: &mut tokio::io::Lines<BufReader<tokio::process::ChildStdout>>,
    bound: Duration,
) -> String {
    tokio::time::timeout(bound, lines.next_line())
        .await
        .expect("the client process answers in time")
        .expect("read from the client process")
        .expect("the client process is alive")
}

async fn measure(n: usize, rounds: u64) -> Row {
    let sim = e2e::start_sim().await;
    let (pool, _dir) =
        e2e::start_pool(&sim, &format!("bench-{n}"), &e2e::PoolOptions::default()).await;
    let addr = pool.local_addrs()[0];
    let mut child = tokio::process::Command::new(std::env::current_exe().expect("own path"))
        .env(CLIENT_ENV, "1")
        .env("NEW_TIP_N", n.to_string())
        .env("NEW_TIP_POOL", addr.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true)
        .spawn()
        .expect("client process starts");
    let mut to_child = child.stdin.take().expect("stdin");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    assert_eq!(expect_line(&mut lines, CONNECT_TIMEOUT * 2).await, "ready");
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut per_conn = Histogram::<u64>::new(3).expect("histogram");
    let mut last = Histogram::<u64>::new(3).expect("histogram");
    for round in 1..=rounds {
        to_child
            .write_all(format!("arm {round}\n").as_bytes())
            .await
            .expect("write to the client process");
        assert_eq!(
            expect_line(&mut lines, ROUND_TIMEOUT).await,
            format!("armed {round}")
        );
        let t0 = monotonic_ns();
        sim.mine_network_block();
        let line = expect_line(&mut lines, ROUND_TIMEOUT * 2).await;
        let mut words = line.split(' ');
        assert_eq!(words.next(), Some("arrivals"));
        assert_eq!(words.next(), Some(round.to_string().as_str()));
        let mut max = 0;
        let mut count = 0;
        for word in words {
            let at: u64 = word.parse().expect("a time");
            let us = at.saturating_sub(t0) / 1_000;
            per_conn.record(us).expect("record");
            max = max.max(us);
            count += 1;
        }
        assert_eq!(count, n, "one arrival per connection");
        last.record(max).expect("record");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    to_child
        .write_all(b"quit\n")
        .await
        .expect("write to the client process");
    drop(to_child);
    let status = tokio::time::timeout(Duration::from_secs(60), child.wait())
        .await
        .expect("the client process exits")
        .expect("wait");
    assert!(status.success(), "client process: {status}");
    tokio::time::timeout(Duration::from_secs(20), pool.shutdown())
        .await
        .expect("shutdown within 20 s")
        .expect("clean shutdown");
    sim.stop().await;
    Row {
        n,
        rounds,
        per_conn,
        last,
    }
}

fn ms(us: u64) -> String {
    format!("{:.2}", us as f64 / 1_000.0)
}

fn main() {
    if std::env::var_os(CLIENT_ENV).is_some() {
        client_main();
        return;
    }
    let limit = raise_nofile(65_536);
    let rounds: u64 = std::env::var("NEW_TIP_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let counts: Vec<usize> = std::env::var("NEW_TIP_CONNECTIONS")
        .ok()
        .map(|s| s.split(',').filter_map(|c| c.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 10_000]);
    for &n in &counts {
        assert!(
            limit > u64::try_from(n).expect("fits") + 256,
            "RLIMIT_NOFILE {limit} is too low for a pool with {n} connections"
        );
    }
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("runtime");
    let rows: Vec<Row> = counts
        .iter()
        .map(|&n| runtime.block_on(measure(n, rounds)))
        .collect();
    println!(
        "| connections | rounds | per-connection p50 (ms) | p99 (ms) | max (ms) | last arrival p50 (ms) | p99 (ms) | max (ms) |"
    );
    println!("|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        println!(
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            r.n,
            r.rounds,
            ms(r.per_conn.value_at_quantile(0.5)),
            ms(r.per_conn.value_at_quantile(0.99)),
            ms(r.per_conn.max()),
            ms(r.last.value_at_quantile(0.5)),
            ms(r.last.value_at_quantile(0.99)),
            ms(r.last.max()),
        );
    }
}
