//! Shared test harness: a line-echo test protocol, blocking clients, and helpers that run a
//! test body under both compio drivers with a deadline.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "a shared test module: each test binary uses a different part of it"
)]

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use arc_swap::ArcSwap;
use warppool_net::{
    CloseReason, ConnInfo, Ctx, DataPlane, Driver, Flow, ListenerConfig, NetConfig, Protocol,
    ShardId, start,
};

/// What the test protocol saw, shared by all shards.
#[derive(Debug, Default)]
pub struct Log {
    pub closes: Mutex<Vec<CloseReason>>,
    pub jobs_calls: AtomicU64,
    pub connects: AtomicU64,
}

impl Log {
    pub fn closes_with(&self, reason: CloseReason) -> usize {
        self.closes
            .lock()
            .unwrap()
            .iter()
            .filter(|r| **r == reason)
            .count()
    }
}

/// Knobs of the test protocol.
#[derive(Debug, Clone, Copy, Default)]
pub struct Options {
    /// Bytes of padding in each job notification (droppable).
    pub job_padding: usize,
    /// Bytes of a non-droppable message queued with each job notification.
    pub job_extra: usize,
}

/// A line-echo protocol: `sub` marks subscribed, `close` says bye and closes, anything else
/// is echoed as `echo:<line>`; jobs are sent as `job <n>`.
pub struct TestProtocol {
    pub log: Arc<Log>,
    pub options: Options,
    pub shard: ShardId,
    pub scratch: Vec<u8>,
}

impl Protocol for TestProtocol {
    type Conn = u64;
    type Jobs = u64;
    type Stat = u64;
    type Candidate = u64;

    fn on_connect(&mut self, _ctx: &mut Ctx<'_, u64, u64>) -> u64 {
        self.log.connects.fetch_add(1, Ordering::Relaxed);
        0
    }

    fn on_line(&mut self, conn: &mut u64, line: &[u8], ctx: &mut Ctx<'_, u64, u64>) -> Flow {
        *conn += 1;
        ctx.stat(*conn);
        match line {
            b"sub" => {
                ctx.mark_subscribed();
                let _ = ctx.out().push(b"subscribed\n");
                Flow::Continue
            }
            b"panic" => panic!("test protocol asked to panic"),
            b"block" => {
                ctx.candidate(*conn);
                let _ = ctx.out().push(b"candidate sent\n");
                Flow::Continue
            }
            b"close" => {
                let _ = ctx.out().push(b"bye\n");
                Flow::Close
            }
            _ => {
                self.scratch.clear();
                self.scratch.extend_from_slice(b"echo:");
                self.scratch.extend_from_slice(line);
                self.scratch.push(b'\n');
                let _ = ctx.out().push(&self.scratch);
                Flow::Continue
            }
        }
    }

    fn on_line_too_long(&mut self, _conn: &mut u64, ctx: &mut Ctx<'_, u64, u64>) {
        let _ = ctx.out().push(b"error:line too long\n");
    }

    fn on_jobs(&mut self, _conn: &mut u64, jobs: &Arc<u64>, ctx: &mut Ctx<'_, u64, u64>) -> Flow {
        self.log.jobs_calls.fetch_add(1, Ordering::Relaxed);
        self.scratch.clear();
        write!(self.scratch, "job {jobs}").unwrap();
        self.scratch.resize(5 + 20 + self.options.job_padding, b' ');
        self.scratch.push(b'\n');
        let _ = ctx.out().push_job(&self.scratch);
        if self.options.job_extra > 0 {
            self.scratch.clear();
            self.scratch.resize(self.options.job_extra, b'x');
            self.scratch.push(b'\n');
            let _ = ctx.out().push(&self.scratch);
        }
        Flow::Continue
    }

    fn on_close(&mut self, _conn: u64, _info: &ConnInfo, reason: CloseReason) {
        self.log.closes.lock().unwrap().push(reason);
    }
}

pub type Plane = DataPlane<u64, u64, u64>;

/// A plain listener on 127.0.0.1 with a free port.
pub fn plain_v4() -> ListenerConfig {
    ListenerConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        tls: None,
    }
}

/// A configuration for tests: `shards` shards, not pinned, generous limits, short ticks.
pub fn test_config(
    listeners: Vec<ListenerConfig>,
    shards: usize,
    force_polling: bool,
) -> NetConfig {
    let mut config = NetConfig::new(listeners);
    config.shards = Some(shards);
    config.pin_shards = false;
    config.force_polling = force_polling;
    config.tick_interval = Duration::from_millis(50);
    config.tls_reload_interval = Duration::from_millis(100);
    config
}

/// Starts a plane with the test protocol.
pub fn start_test(config: NetConfig, options: Options) -> (Plane, Arc<Log>) {
    let log = Arc::new(Log::default());
    let factory_log = Arc::clone(&log);
    let jobs = Arc::new(ArcSwap::from_pointee(0u64));
    let plane = start(
        config,
        move |shard| TestProtocol {
            log: Arc::clone(&factory_log),
            options,
            shard,
            scratch: Vec::with_capacity(1 << 16),
        },
        jobs,
    )
    .expect("data plane starts");
    (plane, log)
}

/// Checks the driver the shards of any plane (test protocol or Stratum) report for the
/// requested mode.
pub fn check_drivers<J, S, C>(plane: &DataPlane<J, S, C>, force_polling: bool) {
    for driver in plane.drivers() {
        if force_polling {
            assert_eq!(driver, Driver::Poll);
        } else if std::env::var_os("WARPPOOL_NO_IO_URING").is_none() {
            assert_eq!(
                driver,
                Driver::IoUring,
                "io_uring expected (set WARPPOOL_NO_IO_URING if unavailable)"
            );
        }
    }
}

/// Runs `body` under io_uring and then under forced polling, each within `deadline`.
pub fn both_drivers(deadline: Duration, body: fn(bool)) {
    for force_polling in [false, true] {
        let (done_tx, done_rx) = std::sync::mpsc::sync_channel(1);
        let thread = std::thread::spawn(move || {
            body(force_polling);
            let _ = done_tx.send(());
        });
        match done_rx.recv_timeout(deadline) {
            Ok(()) => thread.join().unwrap(),
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => {
                let payload = thread.join().unwrap_err();
                eprintln!("failed with force_polling={force_polling}");
                std::panic::resume_unwind(payload);
            }
            Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {
                panic!("test body exceeded {deadline:?} with force_polling={force_polling}")
            }
        }
    }
}

/// Polls `condition` every 10 ms until it holds or `timeout` passes.
pub fn wait_until(timeout: Duration, mut condition: impl FnMut() -> bool) -> bool {
    let start = Instant::now();
    while start.elapsed() < timeout {
        if condition() {
            return true;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
    condition()
}

/// A blocking line client.
pub struct Client {
    pub reader: BufReader<TcpStream>,
}

impl Client {
    pub fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        Self {
            reader: BufReader::new(stream),
        }
    }

    pub fn send(&mut self, bytes: &[u8]) {
        self.reader.get_mut().write_all(bytes).expect("send");
    }

    pub fn read_line(&mut self) -> Vec<u8> {
        let mut line = Vec::new();
        self.reader.read_until(b'\n', &mut line).expect("read line");
        line
    }

    pub fn request(&mut self, line: &str) -> String {
        self.send(format!("{line}\n").as_bytes());
        String::from_utf8(self.read_line()).unwrap()
    }

    /// Whether the server closed the connection (EOF or reset) within the read timeout.
    pub fn is_closed_by_server(&mut self) -> bool {
        let mut buf = [0u8; 4096];
        loop {
            match self.reader.read(&mut buf) {
                Ok(0) => return true,
                Ok(_) => continue,
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
                Err(_) => return false,
            }
        }
    }
}

/// The process's resident set size, in KiB.
pub fn rss_kib() -> u64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status.lines().find(|l| l.starts_with("VmRSS:")).unwrap();
    line.split_whitespace().nth(1).unwrap().parse().unwrap()
}
