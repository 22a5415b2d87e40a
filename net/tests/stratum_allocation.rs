//! Zero heap allocations on the Stratum share path (STYLE rule 4), measured with a counting
//! global allocator across 100,000 shares (accepted, duplicate, low difficulty, stale, unknown
//! job) under both drivers: on the whole shard thread (reads, writes, statistics batches, the
//! shard loop and compio), and separately inside `Protocol::on_line` for submit lines, via a
//! wrapper protocol that flags its delegation to the real one. The measuring window starts
//! after the connection is set up and the jobs are out.

#[path = "support/counting.rs"]
mod counting;
#[path = "support/harness.rs"]
mod harness;
#[path = "support/stratum.rs"]
mod stratum;

use std::{
    cell::Cell,
    io::{BufRead, BufReader, Write},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use arc_swap::ArcSwap;
use counting::Counting;
use harness::both_drivers;
use serde_json::Value;
use stratum::*;
use warppool_net::{
    CloseReason, ConnInfo, Ctx, Flow, Protocol,
    stratum::{Candidate, JobSet, Session, ShareEvent, Stratum, StratumConfig, stratum_factory},
};

/// Allocations inside the real protocol's `on_line` for submit lines.
static ON_LINE: AtomicU64 = AtomicU64::new(0);
/// Allocations on the shard thread while `MEASURING`.
static SHARD_TOTAL: AtomicU64 = AtomicU64::new(0);
static MEASURING: AtomicBool = AtomicBool::new(false);

thread_local! {
    static IN_SUBMIT: Cell<bool> = const { Cell::new(false) };
    static ON_SHARD: Cell<bool> = const { Cell::new(false) };
}

/// The allocator hook: touches only atomics and const thread-locals without destructors,
/// none of which allocates.
fn count() {
    if IN_SUBMIT.try_with(Cell::get).unwrap_or(false) {
        ON_LINE.fetch_add(1, Ordering::Relaxed);
    }
    if ON_SHARD.try_with(Cell::get).unwrap_or(false) && MEASURING.load(Ordering::Relaxed) {
        SHARD_TOTAL.fetch_add(1, Ordering::Relaxed);
    }
}

#[global_allocator]
static GLOBAL: Counting = Counting(count);

/// Delegates to the real protocol, flagging `on_line` calls for submit lines.
struct Counted(Stratum);

type C<'a> = Ctx<'a, ShareEvent, Candidate>;

impl Protocol for Counted {
    type Conn = Session;
    type Jobs = JobSet;
    type Stat = ShareEvent;
    type Candidate = Candidate;

    fn on_connect(&mut self, ctx: &mut C<'_>) -> Session {
        self.0.on_connect(ctx)
    }

    fn on_line(&mut self, conn: &mut Session, line: &[u8], ctx: &mut C<'_>) -> Flow {
        let submit = line.windows(13).any(|w| w == b"mining.submit");
        IN_SUBMIT.with(|c| c.set(submit));
        let flow = self.0.on_line(conn, line, ctx);
        IN_SUBMIT.with(|c| c.set(false));
        flow
    }

    fn on_line_too_long(&mut self, conn: &mut Session, ctx: &mut C<'_>) {
        self.0.on_line_too_long(conn, ctx);
    }

    fn on_lines_end(&mut self, conn: &mut Session, ctx: &mut C<'_>) {
        self.0.on_lines_end(conn, ctx);
    }

    fn on_shard_jobs(&mut self, jobs: &Arc<JobSet>) {
        self.0.on_shard_jobs(jobs);
    }

    fn on_jobs(&mut self, conn: &mut Session, jobs: &Arc<JobSet>, ctx: &mut C<'_>) -> Flow {
        self.0.on_jobs(conn, jobs, ctx)
    }

    fn on_tick(&mut self, conn: &mut Session, ctx: &mut C<'_>) -> Flow {
        self.0.on_tick(conn, ctx)
    }

    fn on_close(&mut self, conn: Session, info: &ConnInfo, reason: CloseReason) {
        self.0.on_close(conn, info, reason);
    }
}

const SHARES: usize = 100_000;

/// Sends `lines` pipelined (500 per write) from a thread and counts the replies by verdict.
fn exchange(
    reader: &mut BufReader<std::net::TcpStream>,
    mut writer: std::net::TcpStream,
    lines: Vec<String>,
) -> std::collections::BTreeMap<String, u64> {
    let count = lines.len();
    let sender = std::thread::spawn(move || {
        for chunk in lines.chunks(500) {
            let mut bytes = chunk.join("\n");
            bytes.push('\n');
            writer.write_all(bytes.as_bytes()).unwrap();
        }
    });
    let mut verdicts = std::collections::BTreeMap::<String, u64>::new();
    let mut line = String::new();
    let mut replies = 0;
    while replies < count {
        line.clear();
        reader.read_line(&mut line).unwrap();
        let v: Value = serde_json::from_str(&line).unwrap();
        if v.get("method").is_some() {
            continue;
        }
        let key = match error_code(&v) {
            None => "accepted".to_owned(),
            Some(code) => format!("error {code}"),
        };
        *verdicts.entry(key).or_default() += 1;
        replies += 1;
    }
    sender.join().unwrap();
    verdicts
}
const VALID_PER_JOB: usize = 100;

fn measure(force_polling: bool) {
    let listeners = vec![warppool_net::ListenerConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        tls: None,
    }];
    let net = net_config(listeners, force_polling);
    let jobs = Arc::new(ArcSwap::from_pointee(job_set(
        template(BITS_DIFF1, 1, 20),
        1,
        true,
    )));
    let inner = stratum_factory(1, StratumConfig::new(pinned_port(tiny())), &jobs).unwrap();
    let plane = warppool_net::start(
        net,
        move |shard| {
            ON_SHARD.with(|c| c.set(true));
            Counted(inner(shard))
        },
        jobs,
    )
    .unwrap();
    let mut m = Miner::connect(plane.local_addrs()[0]);
    m.setup(ADDRESS);
    let job_a = m.newest().clone();
    let valid_a: Vec<Share> = (0..VALID_PER_JOB).map(|_| m.mine(None)).collect();
    plane.publish(Arc::new(job_set(template(BITS_DIFF1, 2, 20), 2, true)));
    m.wait_jobs(2);
    let job_b = m.newest().clone();
    assert_ne!(job_a.id, job_b.id);
    let valid_b: Vec<Share> = (0..VALID_PER_JOB).map(|_| m.mine(Some(0x2000))).collect();
    let d = job_b.difficulty;
    let low: Vec<Share> = (0..64)
        .map(|i| job_b.search(&m.en1, 1_000 + i, None, 0, |h| !meets(h, d)))
        .collect();

    // The run: each valid B share once (accepted), then a mix cycling through duplicates,
    // low difficulty, stale (job A, previous tip) and unknown job ids.
    let mut lines = Vec::with_capacity(SHARES);
    for (i, share) in valid_b.iter().enumerate() {
        lines.push(share.line(100 + i as u64, ADDRESS));
    }
    let mut i = 0;
    while lines.len() < SHARES {
        let id = 100 + lines.len() as u64;
        let line = match i % 4 {
            0 => valid_b[i % 32].line(id, ADDRESS),
            1 => low[i % low.len()].line(id, ADDRESS),
            2 => valid_a[i % VALID_PER_JOB].line(id, ADDRESS),
            _ => {
                let mut unknown = valid_b[i % VALID_PER_JOB].clone();
                unknown.job_id = "fffff".to_owned();
                unknown.line(id, ADDRESS)
            }
        };
        lines.push(line);
        i += 1;
    }

    // Warm-up (not measured): enough statistics entries to fill the shard's bounded queue
    // once, so flume has grown its internal buffer to the bound; from then on neither a full
    // queue (batches dropped) nor a drained one (the buffer keeps its capacity) allocates.
    // One accepted share on job B first: a connection's duplicate set for a job slot is
    // allocated at the first share that reaches the duplicate check in that slot (once per
    // slot and connection, kept when the slot is reused; see `JobBook::new_lazy`).
    let first_b = m.mine(Some(0x2000));
    let mut warm_up = vec![first_b.line(999_999, ADDRESS)];
    warm_up.extend((0..20_000).map(|i| match i % 2 {
        0 => low[i % low.len()].line(1_000_000 + i as u64, ADDRESS),
        _ => valid_a[i % VALID_PER_JOB].line(1_000_000 + i as u64, ADDRESS),
    }));
    let stream = m.reader.into_inner();
    let mut reader = BufReader::new(stream.try_clone().unwrap());
    let warm = exchange(&mut reader, stream.try_clone().unwrap(), warm_up);
    eprintln!("warm-up verdicts {warm:?}");
    // The control plane drains statistics while the run goes on.
    let receiver = plane.stats_receivers()[0].clone();
    let drained = Arc::new(AtomicU64::new(0));
    let drained_count = Arc::clone(&drained);
    let drainer = std::thread::spawn(move || {
        while let Ok(batch) = receiver.recv_timeout(Duration::from_secs(2)) {
            drained_count.fetch_add(batch.len() as u64, Ordering::Relaxed);
        }
    });
    let on_line_before = ON_LINE.load(Ordering::Relaxed);
    MEASURING.store(true, Ordering::Relaxed);
    let started = Instant::now();
    let verdicts = exchange(&mut reader, stream, lines);
    let elapsed = started.elapsed();
    MEASURING.store(false, Ordering::Relaxed);
    let on_line = ON_LINE.load(Ordering::Relaxed) - on_line_before;
    let total = SHARD_TOTAL.swap(0, Ordering::Relaxed);
    eprintln!(
        "force_polling={force_polling}: {SHARES} shares in {elapsed:?} ({:.0}/s), verdicts \
         {verdicts:?}; allocations inside on_line for submits: {on_line}; all shard-thread \
         allocations over the run: {total} ({:.3} per share)",
        SHARES as f64 / elapsed.as_secs_f64(),
        total as f64 / SHARES as f64,
    );
    assert!(verdicts.get("accepted").copied().unwrap_or(0) >= VALID_PER_JOB as u64);
    for key in ["error 21", "error 22", "error 23"] {
        assert!(
            verdicts.get(key).copied().unwrap_or(0) > 10_000,
            "{key}: {verdicts:?}"
        );
    }
    assert_eq!(on_line, 0, "the share path allocated");
    assert_eq!(total, 0, "the shard thread allocated during the run");
    // Under io_uring (when the kernel passes the ring's probe) plain reads went through the
    // shard's own ring; under forced polling they never do.
    let counters = plane.counters_total();
    let plain_io = plane.plain_io();
    eprintln!(
        "force_polling={force_polling}: plain I/O {plain_io:?}, ring recv completions {}, \
         ring ENOBUFS {}",
        counters.ring_recv_completions, counters.ring_no_buffers
    );
    if force_polling {
        assert_eq!(plain_io, vec![warppool_net::PlainIo::Epoll]);
        assert_eq!(counters.ring_recv_completions, 0);
    } else if plain_io == vec![warppool_net::PlainIo::Ring] {
        assert!(counters.ring_recv_completions > 0, "{counters:?}");
    }
    plane.stop();
    drainer.join().unwrap();
    eprintln!(
        "statistics entries drained: {}",
        drained.load(Ordering::Relaxed)
    );
}

#[test]
fn share_path_allocates_nothing() {
    both_drivers(Duration::from_secs(120), measure);
}
