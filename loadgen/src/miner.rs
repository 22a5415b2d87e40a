//! A simulated Stratum V1 CPU miner that really mines: it searches nonces with `warppool-hash`
//! at the share difficulty the pool sets, so every share it sends is genuinely valid (or
//! genuinely a block when the network target is easy, as on regtest).
//!
//! One thread per miner, blocking sockets: meant for the demo and end-to-end tests (a handful
//! of miners), not for the thousands of connections of the load scenarios. It speaks the
//! Bitaxe sequence (`mining.configure`, `mining.subscribe`, `mining.authorize`), rolls
//! extranonce2 per job, and throttles itself to a configured hashrate. The pool is a black box:
//! only the wire protocol is used.

use std::io::{self, BufRead, BufReader, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use warppool_core::{Difficulty, ShareTarget, hex};

use crate::load::work::NotifyJob;
use warppool_hash::sha256d_header;

/// Nonces hashed between two looks at the socket.
const NONCES_PER_ROUND: u32 = 4096;
/// How long a read waits for a line before the miner goes back to hashing.
const READ_POLL: Duration = Duration::from_millis(5);
/// Longest line the miner accepts from the pool.
const LINE_BYTES_MAX: usize = 64 * 1024;

/// How a simulated miner behaves.
#[derive(Debug, Clone)]
pub struct MinerConfig {
    /// The pool's Stratum address.
    pub pool: SocketAddr,
    /// `<address>[.<worker>]`.
    pub username: String,
    /// Password field (may carry `d=`).
    pub password: String,
    /// User agent sent in `mining.subscribe`.
    pub user_agent: String,
    /// Hashes per second the miner throttles itself to.
    pub hashrate_hps: f64,
}

/// Live counters of a simulated miner.
#[derive(Debug, Default)]
pub struct MinerStats {
    /// Shares answered `true`.
    pub accepted: AtomicU64,
    /// Shares answered with an error.
    pub rejected: AtomicU64,
    /// Shares sent whose hash met the network target (blocks).
    pub blocks: AtomicU64,
    /// `mining.notify` messages received.
    pub notifies: AtomicU64,
    /// Of those, with `clean_jobs = true`.
    pub clean_notifies: AtomicU64,
    /// Hashes computed.
    pub hashes: AtomicU64,
}

/// A running simulated miner.
#[derive(Debug)]
pub struct MinerHandle {
    stats: Arc<MinerStats>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl MinerHandle {
    /// Its counters.
    #[must_use]
    pub fn stats(&self) -> &Arc<MinerStats> {
        &self.stats
    }

    /// Stops the miner and returns how its session ended.
    ///
    /// # Errors
    /// The I/O error that ended the session early, if any.
    pub fn stop(mut self) -> io::Result<()> {
        self.stop.store(true, Ordering::Relaxed);
        self.join()
    }

    fn join(&mut self) -> io::Result<()> {
        match self.thread.take().map(JoinHandle::join) {
            Some(Ok(result)) => result,
            Some(Err(_)) => Err(io::Error::other("miner thread panicked")),
            None => Ok(()),
        }
    }
}

impl Drop for MinerHandle {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::Relaxed);
        let _ = self.join();
    }
}

/// Connects and starts mining on a new thread.
///
/// # Errors
/// If the connection cannot be made.
pub fn spawn(config: MinerConfig) -> io::Result<MinerHandle> {
    let stream = TcpStream::connect(config.pool)?;
    stream.set_nodelay(true)?;
    stream.set_read_timeout(Some(READ_POLL))?;
    let stats = Arc::new(MinerStats::default());
    let stop = Arc::new(AtomicBool::new(false));
    let (s, st) = (Arc::clone(&stats), Arc::clone(&stop));
    let thread = std::thread::Builder::new()
        .name("sim-miner".into())
        .spawn(move || Session::new(stream, config, s, st)?.run())?;
    Ok(MinerHandle {
        stats,
        stop,
        thread: Some(thread),
    })
}

struct Session {
    stream: TcpStream,
    reader: BufReader<TcpStream>,
    config: MinerConfig,
    stats: Arc<MinerStats>,
    stop: Arc<AtomicBool>,
    en1: Vec<u8>,
    en2_size: usize,
    en2: u64,
    target: ShareTarget,
    job: Option<NotifyJob>,
    nonce: u32,
    next_id: u64,
    line: Vec<u8>,
}

impl Session {
    fn new(
        stream: TcpStream,
        config: MinerConfig,
        stats: Arc<MinerStats>,
        stop: Arc<AtomicBool>,
    ) -> io::Result<Self> {
        let reader = BufReader::new(stream.try_clone()?);
        Ok(Self {
            stream,
            reader,
            config,
            stats,
            stop,
            en1: Vec::new(),
            en2_size: 4,
            en2: 0,
            target: Difficulty::ONE.to_target(),
            job: None,
            nonce: 0,
            next_id: 10,
            line: Vec::new(),
        })
    }

    fn send(&mut self, v: &Value) -> io::Result<()> {
        let mut line = v.to_string();
        line.push('\n');
        self.stream.write_all(line.as_bytes())
    }

    fn run(mut self) -> io::Result<()> {
        let (ua, user, pass) = (
            self.config.user_agent.clone(),
            self.config.username.clone(),
            self.config.password.clone(),
        );
        self.send(&json!({"id": 1, "method": "mining.configure", "params": [
            ["version-rolling"], {"version-rolling.mask": "1fffe000",
            "version-rolling.min-bit-count": 16}]}))?;
        self.send(&json!({"id": 2, "method": "mining.subscribe", "params": [ua]}))?;
        self.send(&json!({"id": 3, "method": "mining.authorize", "params": [user, pass]}))?;
        let started = Instant::now();
        let mut hashed: u64 = 0;
        while !self.stop.load(Ordering::Relaxed) {
            self.read_lines()?;
            if self.job.is_none() {
                continue;
            }
            hashed += u64::from(self.mine_round()?);
            // Throttle to the configured hashrate.
            let due = Duration::from_secs_f64(hashed as f64 / self.config.hashrate_hps.max(1.0));
            if let Some(ahead) = due.checked_sub(started.elapsed()) {
                std::thread::sleep(ahead.min(Duration::from_millis(200)));
            }
        }
        Ok(())
    }

    /// Reads every line available now (waits at most `READ_POLL`).
    fn read_lines(&mut self) -> io::Result<()> {
        loop {
            match self.reader.read_until(b'\n', &mut self.line) {
                Ok(0) => return Err(io::Error::new(io::ErrorKind::UnexpectedEof, "pool closed")),
                Ok(_) if self.line.ends_with(b"\n") => {
                    let line = std::mem::take(&mut self.line);
                    self.handle(&line);
                }
                Ok(_) => {}
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
                    ) =>
                {
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
            if self.line.len() > LINE_BYTES_MAX {
                return Err(io::Error::new(io::ErrorKind::InvalidData, "line too long"));
            }
        }
    }

    fn handle(&mut self, line: &[u8]) {
        let Ok(msg) = serde_json::from_slice::<Value>(line) else {
            return;
        };
        match msg["method"].as_str() {
            Some("mining.notify") => {
                self.stats.notifies.fetch_add(1, Ordering::Relaxed);
                if msg["params"][8].as_bool() == Some(true) {
                    self.stats.clean_notifies.fetch_add(1, Ordering::Relaxed);
                }
                if let Some(job) = NotifyJob::from_params(&msg["params"]) {
                    self.job = Some(job);
                    self.en2 = self.en2.wrapping_add(1);
                    self.nonce = 0;
                }
            }
            Some("mining.set_difficulty") => {
                let d = msg["params"][0].as_f64().map(Difficulty::from_f64_lossy);
                if let Some(Ok(d)) = d {
                    self.target = d.to_target();
                }
            }
            Some(_) => {}
            None => self.reply(&msg),
        }
    }

    fn reply(&mut self, msg: &Value) {
        match msg["id"].as_u64() {
            Some(2) => {
                if let Some(en1) = msg["result"][1].as_str().and_then(|h| hex::decode(h).ok()) {
                    self.en1 = en1;
                }
                if let Some(size) = msg["result"][2].as_u64() {
                    self.en2_size = usize::try_from(size).unwrap_or(4).clamp(1, 8);
                }
            }
            Some(id) if id >= 10 => {
                let counter = if msg["result"].as_bool() == Some(true) {
                    &self.stats.accepted
                } else {
                    &self.stats.rejected
                };
                counter.fetch_add(1, Ordering::Relaxed);
            }
            _ => {}
        }
    }

    /// Hashes one round of nonces on the current job; submits every share found.
    fn mine_round(&mut self) -> io::Result<u32> {
        let Some(job) = self.job.clone() else {
            return Ok(0);
        };
        let en2 = self.en2.to_be_bytes();
        let en2 = &en2[8 - self.en2_size..];
        let network = ShareTarget::from_compact(job.nbits).ok();
        let root = job.merkle_root(&self.en1, en2);
        let mut header = job.header(&root, job.version, job.ntime, 0);
        for _ in 0..NONCES_PER_ROUND {
            let nonce = self.nonce;
            self.nonce = self.nonce.wrapping_add(1);
            header[76..].copy_from_slice(&nonce.to_le_bytes());
            let hash = sha256d_header(&header);
            if self.target.is_met_by(&hash) {
                if network.is_some_and(|t| t.is_met_by(&hash)) {
                    self.stats.blocks.fetch_add(1, Ordering::Relaxed);
                }
                let id = self.next_id;
                self.next_id += 1;
                let submit = json!({"id": id, "method": "mining.submit", "params": [
                    self.config.username, job.id, hex::encode(en2),
                    format!("{:08x}", job.ntime), format!("{nonce:08x}")]});
                self.send(&submit)?;
            }
        }
        self.stats
            .hashes
            .fetch_add(u64::from(NONCES_PER_ROUND), Ordering::Relaxed);
        Ok(NONCES_PER_ROUND)
    }
}
