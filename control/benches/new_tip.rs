//! New-tip fan-out latency: from a block mined on the node (the chain simulator publishes ZMQ
//! `hashblock` at once, so t0 upper-bounds "hashblock received") to each connection's
//! `mining.notify` with `clean_jobs = true`, for 1,000 and 10,000 raw Stratum connections.
//! Prints a markdown table (p50/p99/max of the per-connection latency and of the round's last
//! arrival). Clients, the pool and the simulator share this process and the machine's cores.
//!
//! `cargo bench -p warppool-control --bench new_tip` (`NEW_TIP_ROUNDS`, `NEW_TIP_CONNECTIONS`
//! = comma-separated counts, override the defaults).

#[path = "../tests/support/e2e.rs"]
mod e2e;

use std::{
    net::{Ipv4Addr, SocketAddr},
    sync::{
        Arc,
        atomic::{AtomicU64, AtomicUsize, Ordering},
    },
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::TcpSocket,
    sync::Notify,
};

/// Connections per 127.0.0.x source address (the data plane admits 1,024 per IP).
const PER_SOURCE_IP: usize = 1_000;

struct Shared {
    base: Instant,
    round: AtomicU64,
    arrived: AtomicUsize,
    first_jobs: AtomicUsize,
    all_arrived: Notify,
    arrivals: Vec<AtomicU64>,
    n: usize,
}

fn raise_nofile(want: u64) {
    let limit = libc::rlimit {
        rlim_cur: want,
        rlim_max: want,
    };
    // SAFETY: `setrlimit` reads a valid, initialised `rlimit` for the duration of the call.
    if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const limit) } != 0 {
        let error = std::io::Error::last_os_error();
        let mut current = libc::rlimit {
            rlim_cur: 0,
            rlim_max: 0,
        };
        // SAFETY: `getrlimit` writes into a valid `rlimit`; `setrlimit` reads one.
        unsafe {
            libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut current);
            current.rlim_cur = current.rlim_max;
            libc::setrlimit(libc::RLIMIT_NOFILE, &raw const current);
        }
        eprintln!(
            "setrlimit(RLIMIT_NOFILE, {want}) failed ({error}); using the hard limit {}: \
             each connection costs 2 descriptors in this process",
            current.rlim_max
        );
    }
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
        let now = u64::try_from(shared.base.elapsed().as_nanos()).expect("fits");
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

struct Row {
    n: usize,
    rounds: u64,
    per_conn: Histogram<u64>,
    last: Histogram<u64>,
}

async fn measure(n: usize, rounds: u64) -> Row {
    let sim = e2e::start_sim().await;
    let (pool, _dir) =
        e2e::start_pool(&sim, &format!("bench-{n}"), &e2e::PoolOptions::default()).await;
    let addr = pool.local_addrs()[0];
    let shared = Arc::new(Shared {
        base: Instant::now(),
        round: AtomicU64::new(0),
        arrived: AtomicUsize::new(0),
        first_jobs: AtomicUsize::new(0),
        all_arrived: Notify::new(),
        arrivals: (0..n).map(|_| AtomicU64::new(0)).collect(),
        n,
    });
    let mut tasks = tokio::task::JoinSet::new();
    for i in 0..n {
        tasks.spawn(client(i, addr, Arc::clone(&shared)));
        if i % 100 == 99 {
            // Stay under the data plane's accept rate (1,000 a second per shard).
            tokio::time::sleep(Duration::from_millis(110)).await;
        }
    }
    let ready = e2e::wait_until(Duration::from_secs(60), || {
        shared.first_jobs.load(Ordering::Relaxed) == n
    })
    .await;
    assert!(
        ready,
        "{n} connections: only {} got a first job",
        shared.first_jobs.load(Ordering::Relaxed)
    );
    tokio::time::sleep(Duration::from_millis(500)).await;

    let mut per_conn = Histogram::<u64>::new(3).expect("histogram");
    let mut last = Histogram::<u64>::new(3).expect("histogram");
    for _ in 0..rounds {
        shared.arrived.store(0, Ordering::Release);
        shared.round.fetch_add(1, Ordering::AcqRel);
        let t0 = u64::try_from(shared.base.elapsed().as_nanos()).expect("fits");
        sim.mine_network_block();
        tokio::time::timeout(Duration::from_secs(30), async {
            while shared.arrived.load(Ordering::Acquire) < n {
                shared.all_arrived.notified().await;
            }
        })
        .await
        .expect("every connection got clean_jobs within 30 s");
        let mut max = 0;
        for a in &shared.arrivals {
            let us = a.load(Ordering::Relaxed).saturating_sub(t0) / 1_000;
            per_conn.record(us).expect("record");
            max = max.max(us);
        }
        last.record(max).expect("record");
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    tasks.abort_all();
    while tasks.join_next().await.is_some() {}
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
    raise_nofile(65_536);
    let rounds: u64 = std::env::var("NEW_TIP_ROUNDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(20);
    let counts: Vec<usize> = std::env::var("NEW_TIP_CONNECTIONS")
        .ok()
        .map(|s| s.split(',').filter_map(|c| c.trim().parse().ok()).collect())
        .unwrap_or_else(|| vec![1_000, 10_000]);
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
