//! One simulated miner: a Tokio task that connects, speaks its firmware's handshake, mines
//! (real or rate mode) and checks every answer of the pool against the expected verdict.

use std::collections::{BTreeMap, VecDeque};
use std::net::IpAddr;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use serde_json::Value;
use tokio::time::{Instant, sleep_until, timeout};
use warppool_core::hex;
use warppool_core::limits::{
    LOADGEN_CONNECT_TIMEOUT_MS, LOADGEN_FLOOD_BURST, LOADGEN_GRIND_NONCES_MAX,
    LOADGEN_GRIND_RETRY_MS, LOADGEN_INFLIGHT_MAX, LOADGEN_JOBS_REMEMBERED, LOADGEN_LINE_BYTES_MAX,
    LOADGEN_MESSAGES_PRINTED_MAX, LOADGEN_NERDMINER_KEEPALIVE_SECS, LOADGEN_NONCES_PER_SLICE,
    LOADGEN_OVERSIZED_LINE_BYTES, LOADGEN_POOL_ERROR_DETAILS_MAX, LOADGEN_RATE_SHARES_PER_EN2,
    LOADGEN_READ_BYTES, LOADGEN_VALID_LEAD_MS, LOADGEN_VALID_STOCK, NTIME_AHEAD_SECS_MAX,
};

use super::grind::{self, GrindJob, GrindResult};
use super::personality::{Method, Personality, Step, VersionBits, Wait};
use super::transport::{self, Transport};
use super::work::{Expect, NotifyJob, Rng, ShareDifficulty, expect_duplicate, expect_fresh};
use super::{Mode, Scenario, Shared};

/// Why a session ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum End {
    /// The run is over.
    Stop,
    /// Reconnect storm: the round changed.
    Round,
    /// The pool closed the connection.
    Closed,
    /// A socket error.
    Io,
    /// The pool broke the protocol (or refused the firmware's handshake).
    Protocol,
}

/// What kind of share a submit was.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Injected {
    Fresh,
    Duplicate,
    Stale,
}

#[derive(Debug, Clone)]
struct SentShare {
    /// The submit's params array as sent (JSON text; re-sent as a duplicate).
    params: Arc<str>,
    expect: Expect,
    epoch: u64,
    injected: Injected,
}

#[derive(Debug)]
enum PendingKind {
    Setup(Method),
    Submit(SentShare),
}

#[derive(Debug)]
struct Pending {
    sent: Instant,
    kind: PendingKind,
}

#[derive(Debug)]
struct JobEntry {
    job: Arc<NotifyJob>,
    /// The difficulty in force when the job arrived.
    diff_at: ShareDifficulty,
    received: Instant,
    en2_counter: u64,
    /// The last share sent on this job (for duplicate injection).
    last_share: Option<SentShare>,
    /// Rate mode: the extranonce2 being rolled through (see `rate_parts`).
    roll: Option<Roll>,
    /// Built on an older tip than the newest job.
    stale: bool,
}

/// Rate mode: one extranonce2 and its merkle root, used for `LOADGEN_RATE_SHARES_PER_EN2`
/// shares with consecutive nonces (as a miner scans a nonce range), so the coinbase and merkle
/// branch are hashed once per window, not once per share.
#[derive(Debug)]
struct Roll {
    en2: Vec<u8>,
    root: [u8; 32],
    next_nonce: u32,
    left: u32,
}

/// Real mode's search state on the newest job.
#[derive(Debug, Default)]
struct Search {
    root: [u8; 32],
    en2: Vec<u8>,
    version_bits: u32,
    nonce: u32,
    done_in_en2: u64,
    hashed: u64,
    since: Option<Instant>,
}

/// The search a connection has out on the grinder threads: what the result's nonces belong to.
#[derive(Debug)]
struct Grinding {
    tag: u64,
    job: Arc<NotifyJob>,
    en2: Vec<u8>,
    ntime: u32,
    bits: u32,
}

/// A share ground until valid, kept for a scheduled valid submit (rate mode).
#[derive(Debug)]
struct Ground {
    job: Arc<NotifyJob>,
    en2: Vec<u8>,
    ntime: u32,
    bits: u32,
    nonce: u32,
    hash: [u8; 32],
}

/// A stocked share is used only on one of the newest jobs (the pool retains
/// `JOBS_RETAINED_MAX` of them; this keeps well inside).
const STOCK_JOB_DEPTH: usize = 2;

/// The source address of connection `idx`.
fn source_of(sh: &Shared, idx: usize) -> Option<IpAddr> {
    if !sh.cfg.target.is_ipv4() || sh.cfg.sources == 0 {
        return None;
    }
    let k = u8::try_from(idx % sh.cfg.sources).unwrap_or(0);
    Some(IpAddr::from([127, 0, 0, 1 + k]))
}

/// The personality of connection `idx`.
pub(crate) fn personality_of(sh: &Shared, idx: usize) -> Personality {
    sh.cfg
        .personality
        .unwrap_or(Personality::ALL[idx % Personality::ALL.len()])
}

/// In the `bad-input` scenario, the ordinal of connection `idx` among the bad ones.
pub(crate) fn bad_ordinal(sh: &Shared, idx: usize) -> Option<usize> {
    if sh.cfg.scenario != Scenario::BadInput || sh.cfg.bad_fraction <= 0.0 {
        return None;
    }
    let every = (1.0 / sh.cfg.bad_fraction).round().max(1.0) as usize;
    (idx % every == every - 1).then_some(idx / every)
}

/// Runs miner `idx` from `start_at` until the run stops.
pub(crate) async fn miner(sh: Arc<Shared>, idx: usize, start_at: Instant) {
    let mut stop = sh.stop.subscribe();
    tokio::select! {
        () = sleep_until(start_at) => {}
        () = stopped(&mut stop) => return,
    }
    if let Some(ordinal) = bad_ordinal(&sh, idx) {
        bad_session(&sh, idx, ordinal).await;
        return;
    }
    let p = personality_of(&sh, idx);
    sh.stats.personalities[p.index()].inc();
    let mut round = 0u32;
    loop {
        let end = session(&sh, idx, p, round).await;
        let is_stopped = *stop.borrow();
        if sh.cfg.scenario != Scenario::ReconnectStorm || end == End::Stop || is_stopped {
            return;
        }
        // Wait for the next round (a session that ended early waits here too).
        let mut rounds = sh.round.subscribe();
        if end != End::Round {
            let r = round;
            tokio::select! {
                _ = round_above(&mut rounds, r) => {}
                () = stopped(&mut stop) => return,
            }
        }
        let now_round = *rounds.borrow();
        round = now_round;
    }
}

/// Resolves once the run is stopping.
async fn stopped(rx: &mut tokio::sync::watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await.map(|g| *g);
}

/// Resolves with the round number once it is above `r`.
async fn round_above(rx: &mut tokio::sync::watch::Receiver<u32>, r: u32) -> u32 {
    match rx.wait_for(|n| *n > r).await.map(|g| *g) {
        Ok(n) => n,
        Err(_) => std::future::pending().await,
    }
}

async fn open(sh: &Shared, idx: usize) -> Result<Transport, String> {
    let bound = Duration::from_millis(LOADGEN_CONNECT_TIMEOUT_MS);
    let fut = async {
        let sock = transport::connect(source_of(sh, idx), sh.cfg.target)
            .await
            .map_err(|e| format!("connect: {e}"))?;
        match &sh.tls {
            None => Ok(Transport::Plain(sock)),
            Some(tls) => Transport::tls(sock, tls)
                .await
                .map_err(|e| format!("TLS handshake: {e}")),
        }
    };
    match timeout(bound, fut).await {
        Ok(r) => r,
        Err(_) => Err(format!("connect: no connection within {bound:?}")),
    }
}

async fn session(sh: &Shared, idx: usize, p: Personality, round: u32) -> End {
    let first_round = round == 0;
    if !first_round {
        sh.stats.reconnect_attempts.inc();
    }
    let connect_started = Instant::now();
    let t = match open(sh, idx).await {
        Ok(t) => t,
        Err(e) => {
            sh.stats.err_connect.inc();
            if first_round {
                sh.stats.failed.inc();
            } else {
                sh.stats.reconnect_failed.inc();
            }
            if sh.stats.printed.fetch_inc() < LOADGEN_MESSAGES_PRINTED_MAX {
                eprintln!("warppool-loadgen: miner {idx}: {e}");
            }
            return End::Io;
        }
    };
    if first_round {
        sh.stats.established.inc();
    }
    sh.stats.open.inc();
    let mut s = Session::new(sh, idx, p, t, first_round, connect_started);
    let end = s.run(round).await;
    if end == End::Stop {
        let unanswered = s
            .pending
            .values()
            .filter(|p| matches!(p.kind, PendingKind::Submit(_)))
            .count();
        sh.stats.unanswered_at_stop.add(unanswered as u64);
    }
    sh.stats.open.add(u64::MAX); // wrapping decrement
    if first_round && !s.subscribed && matches!(end, End::Closed | End::Io | End::Protocol) {
        // Connected, but dropped before the subscribe reply: a failed connection too.
        sh.stats.failed.inc();
    }
    match end {
        End::Closed => sh.stats.disconnected_by_pool.inc(),
        End::Io => sh.stats.err_io.inc(),
        End::Protocol => sh.stats.err_protocol.inc(),
        End::Stop | End::Round => {}
    }
    end
}

/// The per-share header inputs a miner chooses (see `Session::header_parts`).
struct HeaderParts {
    en2: Vec<u8>,
    bits: u32,
    version: u32,
    ntime: u32,
    root: [u8; 32],
}

struct Session<'a> {
    sh: &'a Shared,
    idx: usize,
    p: Personality,
    /// The worker name this miner authorizes and submits as.
    user: String,
    t: Transport,
    rbuf: Vec<u8>,
    line: Vec<u8>,
    /// Submits queued for one write (`flush_shares`).
    out: Vec<u8>,
    /// When the bytes being handled reached the socket (the kernel's receive stamp, see
    /// `transport::read`), on this process's monotonic clock.
    rx_at: Option<Instant>,
    first_round: bool,
    connect_started: Instant,
    got_notify: bool,
    next_id: u64,
    steps: Vec<Step>,
    step: usize,
    waiting: Option<(u64, Wait)>,
    authorized: bool,
    subscribed: bool,
    en1: Vec<u8>,
    en2_size: usize,
    mask: u32,
    diff: ShareDifficulty,
    jobs: VecDeque<JobEntry>,
    pending: BTreeMap<u64, Pending>,
    epoch: u64,
    last_tip_gen: u64,
    rng: Rng,
    next_submit: Option<Instant>,
    interval: Duration,
    search: Search,
    last_write: Instant,
    last_notify: Instant,
    grind_tx: tokio::sync::mpsc::Sender<GrindResult>,
    grind_rx: tokio::sync::mpsc::Receiver<GrindResult>,
    /// The one search out on the grinder threads.
    grinding: Option<Grinding>,
    next_tag: u64,
    /// After the grinder queue refused a search: when to try again.
    grind_retry_at: Option<Instant>,
    /// Rate mode: shares ground until valid, newest last.
    stock: VecDeque<Ground>,
    /// Rate mode: the next fresh submit is to be a ground valid share.
    /// Rate mode: fresh submits still to go before the next ground valid share (drawn
    /// ahead, geometric with p = `--valid-fraction`).
    until_valid: u64,
}

impl<'a> Session<'a> {
    fn new(
        sh: &'a Shared,
        idx: usize,
        p: Personality,
        t: Transport,
        first_round: bool,
        connect_started: Instant,
    ) -> Self {
        let user = format!("{}.lg{idx}", sh.cfg.user);
        let steps = p.handshake(&user, &sh.cfg.password, &sh.cfg.target.to_string());
        let interval = if sh.cfg.shares_per_min > 0.0 {
            Duration::from_secs_f64(60.0 / sh.cfg.shares_per_min)
        } else {
            Duration::ZERO
        };
        let mut rng = Rng::new(sh.cfg.seed ^ (idx as u64).wrapping_mul(0x1000_0001));
        let phase = interval.mul_f64(rng.unit());
        let (grind_tx, grind_rx) = grind::reply_channel();
        let until_valid = draw_until_valid(&mut rng, sh.cfg.valid_fraction);
        Self {
            sh,
            idx,
            p,
            user,
            t,
            rbuf: vec![0; LOADGEN_READ_BYTES],
            line: Vec::new(),
            out: Vec::new(),
            rx_at: None,
            first_round,
            connect_started,
            got_notify: false,
            next_id: p.first_id(),
            steps,
            step: 0,
            waiting: None,
            authorized: false,
            subscribed: false,
            en1: Vec::new(),
            en2_size: 4,
            mask: if p.version_bits() == VersionBits::NerdNos {
                0x1fff_e000
            } else {
                0
            },
            diff: ShareDifficulty::new(1.0),
            jobs: VecDeque::new(),
            pending: BTreeMap::new(),
            epoch: 0,
            last_tip_gen: sh.tip_clock().generation,
            rng,
            next_submit: (interval > Duration::ZERO).then(|| Instant::now() + phase),
            interval,
            search: Search::default(),
            last_write: Instant::now(),
            last_notify: Instant::now(),
            grind_tx,
            grind_rx,
            grinding: None,
            next_tag: 0,
            grind_retry_at: None,
            stock: VecDeque::new(),
            until_valid,
        }
    }

    fn mining(&self) -> bool {
        self.sh.cfg.scenario != Scenario::Idle && self.subscribed && !self.jobs.is_empty()
    }

    async fn run(&mut self, round: u32) -> End {
        let mut stop = self.sh.stop.subscribe();
        let mut rounds = self.sh.round.subscribe();
        if let Err(e) = self.send_steps().await {
            return e;
        }
        let reply_timeout = self.sh.cfg.reply_timeout;
        loop {
            let now = Instant::now();
            let mut wake = now + Duration::from_secs(3600);
            if let Some((_, p)) = self.pending.first_key_value() {
                wake = wake.min(p.sent + reply_timeout);
            }
            if let Some(at) = self.keepalive_at() {
                wake = wake.min(at);
            }
            let room = self.pending.len() < self.inflight_max();
            if self.mining() && room {
                match self.sh.cfg.mode {
                    Mode::Rate => {
                        if let Some(at) = self.next_submit {
                            wake = wake.min(at);
                        }
                    }
                    Mode::Real if self.grinding.is_none() && self.grind_retry_at.is_none() => {
                        wake = wake.min(self.next_hash_at(now));
                    }
                    Mode::Real => {}
                }
            }
            if let Some(at) = self.grind_retry_at {
                wake = wake.min(at);
            }
            tokio::select! {
                biased;
                () = stopped(&mut stop) => return End::Stop,
                _ = round_above(&mut rounds, round) => return End::Round,
                Some(r) = self.grind_rx.recv() => {
                    if let Err(e) = self.on_ground(r).await {
                        return e;
                    }
                }
                r = self.t.read(&mut self.rbuf) => match r {
                    Ok((0, _)) => return End::Closed,
                    Ok((n, stamp)) => {
                        self.rx_at = arrival(stamp);
                        if let Err(e) = self.on_bytes(n).await {
                            return e;
                        }
                    }
                    Err(e) => {
                        self.note_io(&e);
                        return End::Io;
                    }
                },
                () = sleep_until(wake) => {
                    if let Err(e) = self.on_timer().await {
                        return e;
                    }
                }
            }
        }
    }

    fn inflight_max(&self) -> usize {
        match self.sh.cfg.mode {
            Mode::Rate => self.sh.cfg.max_inflight.clamp(1, LOADGEN_INFLIGHT_MAX),
            Mode::Real => LOADGEN_INFLIGHT_MAX,
        }
    }

    fn note_io(&self, e: &std::io::Error) {
        if self.sh.stats.printed.fetch_inc() < LOADGEN_MESSAGES_PRINTED_MAX {
            eprintln!("warppool-loadgen: miner {} ({}): {e}", self.idx, self.p);
        }
    }

    fn protocol_error(&self, what: &str) -> End {
        if self.sh.stats.printed.fetch_inc() < LOADGEN_MESSAGES_PRINTED_MAX {
            eprintln!(
                "warppool-loadgen: miner {} ({}): protocol: {what}",
                self.idx, self.p
            );
        }
        End::Protocol
    }

    async fn write(&mut self, line: &str) -> Result<(), End> {
        if let Err(e) = self.t.write_all(line.as_bytes()).await {
            self.note_io(&e);
            return Err(End::Io);
        }
        self.last_write = Instant::now();
        Ok(())
    }

    /// NerdMiner (and NerdNOS) re-send `mining.suggest_difficulty` after 30 s without sending
    /// anything (`KEEPALIVE_TIME_ms`, MINERS.md §2.1).
    fn keepalive_at(&self) -> Option<Instant> {
        let keepalive = Duration::from_secs(LOADGEN_NERDMINER_KEEPALIVE_SECS);
        matches!(self.p, Personality::NerdMiner | Personality::NerdNos)
            .then(|| self.last_write.max(self.last_notify) + keepalive)
    }

    async fn keepalive(&mut self) -> Result<(), End> {
        let Some(step) = self
            .steps
            .iter()
            .find(|s| s.method == Method::SuggestDifficulty)
            .cloned()
        else {
            return Ok(());
        };
        let id = self.next_id;
        self.next_id += 1;
        self.pending.insert(
            id,
            Pending {
                sent: Instant::now(),
                kind: PendingKind::Setup(step.method),
            },
        );
        let line = self.p.request_line(id, step.method.name(), &step.params);
        self.write(&line).await
    }

    /// Sends handshake steps until one must wait.
    async fn send_steps(&mut self) -> Result<(), End> {
        while self.step < self.steps.len() && self.waiting.is_none() {
            let step = self.steps[self.step].clone();
            if step.after_authorized && !self.authorized {
                break;
            }
            let id = self.next_id;
            self.next_id += 1;
            let line = self.p.request_line(id, step.method.name(), &step.params);
            self.pending.insert(
                id,
                Pending {
                    sent: Instant::now(),
                    kind: PendingKind::Setup(step.method),
                },
            );
            self.write(&line).await?;
            self.step += 1;
            if step.wait != Wait::No {
                self.waiting = Some((id, step.wait));
            }
        }
        Ok(())
    }

    async fn on_bytes(&mut self, n: usize) -> Result<(), End> {
        // The read buffer is taken out while its lines are handled (they borrow it).
        let data = std::mem::take(&mut self.rbuf);
        let r = self.on_lines(&data[..n]).await;
        self.rbuf = data;
        r
    }

    /// Handles the complete lines of `data`; keeps a trailing partial line in `self.line`.
    async fn on_lines(&mut self, data: &[u8]) -> Result<(), End> {
        let mut rest = data;
        while let Some(pos) = rest.iter().position(|b| *b == b'\n') {
            let (head, tail) = (&rest[..pos], &rest[pos + 1..]);
            rest = tail;
            if self.line.is_empty() {
                if !head.iter().all(u8::is_ascii_whitespace) {
                    self.on_line(head).await?;
                }
            } else {
                let mut line = std::mem::take(&mut self.line);
                line.extend_from_slice(head);
                let r = if line.iter().all(u8::is_ascii_whitespace) {
                    Ok(())
                } else {
                    self.on_line(&line).await
                };
                line.clear();
                self.line = line;
                r?;
            }
        }
        self.line.extend_from_slice(rest);
        if self.line.len() > LOADGEN_LINE_BYTES_MAX {
            return Err(self.protocol_error("a line longer than the bound"));
        }
        Ok(())
    }

    async fn on_line(&mut self, line: &[u8]) -> Result<(), End> {
        // Most lines are replies to submits: read those without building a `Value`.
        if self.waiting.is_none()
            && let Some(r) = SubmitReply::parse(line)
            && self
                .pending
                .get(&r.id)
                .is_some_and(|p| matches!(p.kind, PendingKind::Submit(_)))
            && let Some(Pending {
                sent,
                kind: PendingKind::Submit(share),
            }) = self.pending.remove(&r.id)
        {
            let accepted = r.result == Some(true) && r.error.is_none();
            self.on_submit_reply(&share, sent, accepted, r.error.map(|e| e.0), line);
            return self.after_reply().await;
        }
        let Ok(v) = serde_json::from_slice::<Value>(line) else {
            let text = String::from_utf8_lossy(&line[..line.len().min(120)]).into_owned();
            return Err(self.protocol_error(&format!("not JSON: {text}")));
        };
        if let Some(method) = v["method"].as_str() {
            if let Some((id, Wait::NextLine)) = self.waiting {
                return Err(self.protocol_error(&format!(
                    "the firmware reads one line as the reply to request {id}, got {method}"
                )));
            }
            return self.on_method(method, &v).await;
        }
        let Some(id) = v["id"].as_u64() else {
            return Err(self.protocol_error("a reply without a numeric id"));
        };
        if let Some((waited, wait)) = self.waiting {
            if waited == id {
                self.waiting = None;
            } else if wait == Wait::NextLine {
                return Err(self.protocol_error(&format!(
                    "the firmware reads one line as the reply to request {waited}, got id {id}"
                )));
            }
        }
        let Some(pending) = self.pending.remove(&id) else {
            // A reply after its timeout, or to a request we never sent.
            return Ok(());
        };
        match pending.kind {
            PendingKind::Setup(m) => self.on_setup_reply(m, &v)?,
            PendingKind::Submit(share) => {
                let accepted = v["result"].as_bool() == Some(true) && v["error"].is_null();
                let code = match &v["error"] {
                    Value::Array(a) => a.first().and_then(Value::as_i64),
                    Value::Object(o) => o.get("code").and_then(Value::as_i64),
                    _ => None,
                };
                self.on_submit_reply(&share, pending.sent, accepted, code, line);
            }
        }
        self.after_reply().await
    }

    /// After a reply: the next handshake step, or a due submit that waited for a free slot.
    async fn after_reply(&mut self) -> Result<(), End> {
        self.send_steps().await?;
        // A freed inflight slot may let a due submit go now.
        if self.sh.cfg.mode == Mode::Rate && self.next_submit.is_some_and(|at| at <= Instant::now())
        {
            self.on_timer().await?;
        }
        Ok(())
    }

    async fn on_method(&mut self, method: &str, v: &Value) -> Result<(), End> {
        let params = &v["params"];
        match method {
            "mining.notify" => self.on_notify(params)?,
            "mining.set_difficulty" => {
                let Some(d) = params[0].as_f64().filter(|d| *d > 0.0 && d.is_finite()) else {
                    return Err(self.protocol_error("set_difficulty without a positive number"));
                };
                self.diff = ShareDifficulty::new(d);
            }
            "mining.set_version_mask" => {
                if let Some(m) = params[0]
                    .as_str()
                    .and_then(|s| hex::parse_u32(s.as_bytes()).ok())
                {
                    self.mask = m;
                }
            }
            "mining.set_extranonce" => {
                if let Some(en1) = params[0].as_str().and_then(|s| hex::decode(s).ok()) {
                    self.en1 = en1;
                }
                if let Some(n) = params[1].as_u64() {
                    self.en2_size = usize::try_from(n).unwrap_or(4).clamp(1, 8);
                }
            }
            "mining.ping" => {
                let id = v["id"].to_string();
                let line = match self.p {
                    Personality::Bitaxe => {
                        format!("{{\"id\":{id},\"method\":\"pong\",\"params\":[]}}\n")
                    }
                    Personality::Avalon | Personality::AntminerS21 | Personality::Whatsminer => {
                        format!("{{\"id\": {id}, \"result\": \"pong\", \"error\": null}}\n")
                    }
                    _ => return Ok(()),
                };
                self.write(&line).await?;
            }
            _ => {}
        }
        Ok(())
    }

    fn on_setup_reply(&mut self, m: Method, v: &Value) -> Result<(), End> {
        let result = &v["result"];
        match m {
            Method::Configure => {
                let granted = result["version-rolling"].as_bool() == Some(true);
                let mask = result["version-rolling.mask"]
                    .as_str()
                    .and_then(|s| hex::parse_u32(s.as_bytes()).ok());
                match (granted, mask) {
                    (true, Some(mask)) if mask != 0 => self.mask = mask & 0x1fff_e000,
                    _ if self.p == Personality::Avalon => {
                        return Err(self.protocol_error(
                            "configure reply without version-rolling: Avalon marks the pool dead",
                        ));
                    }
                    _ => self.mask = 0,
                }
            }
            Method::Subscribe => {
                let en1 = result[1].as_str().and_then(|s| hex::decode(s).ok());
                let size = result[2].as_u64();
                let (Some(en1), Some(size)) = (en1, size) else {
                    return Err(self.protocol_error(&format!("subscribe reply {v}")));
                };
                if en1.is_empty() || !(1..=8).contains(&size) {
                    return Err(self.protocol_error(&format!(
                        "subscribe reply with an unusable extranonce ({v})"
                    )));
                }
                self.en1 = en1;
                self.en2_size = usize::try_from(size).unwrap_or(4);
                self.subscribed = true;
                self.sh.stats.round_subscribed.inc();
                if self.first_round {
                    self.sh.stats.subscribed.inc();
                    let us = u64::try_from(self.sh.started.elapsed().as_micros()).unwrap_or(0);
                    self.sh.stats.last_subscribed_us.max(us);
                }
            }
            Method::Authorize => {
                if result.as_bool() == Some(true) {
                    self.authorized = true;
                    if self.first_round {
                        self.sh.stats.authorized.inc();
                    }
                } else {
                    // NerdMiner does not check; every other firmware stops here.
                    let _ = self.protocol_error(&format!("authorize refused: {v}"));
                    self.sh.stats.err_protocol.inc();
                }
            }
            Method::SuggestDifficulty => {}
        }
        Ok(())
    }

    /// Checks a submit's answer (`accepted`, or the error `code`) against its expected verdict;
    /// `line` is the pool's reply, printed with a pool error.
    fn on_submit_reply(
        &mut self,
        share: &SentShare,
        sent: Instant,
        accepted: bool,
        code: Option<i64>,
        line: &[u8],
    ) {
        let st = &self.sh.stats;
        let now = Instant::now();
        st.submit_to_reply_handled
            .record(now.saturating_duration_since(sent));
        // Arrival at the socket; without a stamp, now.
        st.submit_to_reply
            .record(self.rx_at.unwrap_or(now).saturating_duration_since(sent));
        if accepted {
            st.accepted.inc();
            st.accepted_by[self.p.index()].inc();
        } else {
            st.count_rejection(code);
            st.rejected_by[self.p.index()].inc();
        }
        let pool_error = match (share.expect, accepted) {
            (Expect::Either, _) => {
                st.unchecked.inc();
                None
            }
            (Expect::Accept, true) => None,
            (Expect::Reject(_), true) => {
                st.invalid_accepted.inc();
                Some("an invalid share was accepted")
            }
            (Expect::Accept, false) => {
                if code == Some(21) && share.epoch != self.epoch {
                    // A new tip reached the pool while the share was in flight.
                    st.stale_races.inc();
                    None
                } else {
                    st.valid_rejected.inc();
                    Some("a valid share was rejected")
                }
            }
            (Expect::Reject(want), false) => {
                if code == Some(21) && want != 21 && share.epoch != self.epoch {
                    // Judged stale first: a new tip reached the pool while it was in flight.
                    st.stale_races.inc();
                } else if code != Some(want) {
                    st.reason_mismatch.inc();
                }
                None
            }
        };
        if let Some(what) = pool_error {
            let n = st.pool_error_details.fetch_inc();
            if n < LOADGEN_POOL_ERROR_DETAILS_MAX as u64 {
                eprintln!(
                    "warppool-loadgen: POOL ERROR: {what}: miner {} ({}), {:?} share, expected \
                     {:?}, en1 {}, sent params {} got {}",
                    self.idx,
                    self.p,
                    share.injected,
                    share.expect,
                    hex::encode(&self.en1),
                    share.params,
                    String::from_utf8_lossy(line)
                );
            }
        }
    }

    fn on_notify(&mut self, params: &Value) -> Result<(), End> {
        let Some(job) = NotifyJob::from_params(params) else {
            return Err(self.protocol_error(&format!("malformed mining.notify {params}")));
        };
        let now = Instant::now();
        self.last_notify = now;
        let st = &self.sh.stats;
        st.notifies.inc();
        if !self.got_notify {
            self.got_notify = true;
            st.connect_to_first_notify
                .record(now.duration_since(self.connect_started));
        }
        let new_tip = self
            .jobs
            .front()
            .is_some_and(|j| j.job.prevhash != job.prevhash);
        if job.clean {
            st.clean_notifies.inc();
        }
        if new_tip {
            self.epoch += 1;
            for j in &mut self.jobs {
                j.stale = true;
            }
        }
        if job.clean && new_tip {
            let tip = self.sh.tip_clock();
            if tip.generation > self.last_tip_gen {
                self.last_tip_gen = tip.generation;
                if let Some(t0) = tip.at {
                    st.new_tip_to_clean_jobs_handled
                        .record(now.saturating_duration_since(t0));
                    // Arrival at the miner's socket; without a stamp, when this task handled it.
                    let arrived = self.rx_at.unwrap_or(now);
                    st.new_tip_to_clean_jobs
                        .record(arrived.saturating_duration_since(t0));
                }
            }
        }
        self.jobs.push_front(JobEntry {
            job: Arc::new(job),
            diff_at: self.diff,
            received: now,
            en2_counter: 0,
            last_share: None,
            roll: None,
            stale: false,
        });
        self.jobs.truncate(LOADGEN_JOBS_REMEMBERED);
        self.search = Search::default();
        if self.jobs.front().is_some_and(|j| j.job.clean) {
            self.stock.clear();
        }
        self.refill_stock();
        Ok(())
    }

    /// The harder and easier of the job's difficulty and the current one.
    fn difficulties(&self, entry: &JobEntry) -> (ShareDifficulty, ShareDifficulty) {
        if entry.diff_at.value >= self.diff.value {
            (entry.diff_at, self.diff)
        } else {
            (self.diff, entry.diff_at)
        }
    }

    /// What this miner puts in a header for `job`: extranonce2 from `counter`, its version
    /// bits (XOR or OR per personality, inside the mask), ntime (rolled forward by the time
    /// since the job arrived if the firmware rolls it) and the merkle root.
    fn header_parts(
        &mut self,
        job: &NotifyJob,
        counter: u64,
        received: Instant,
        now: Instant,
    ) -> HeaderParts {
        let en2 = super::work::extranonce2(self.p.en2_scheme(), counter, self.en2_size);
        let (bits, version, ntime) = self.rolled(job, received, now);
        let root = job.merkle_root(&self.en1, &en2);
        HeaderParts {
            en2,
            bits,
            version,
            ntime,
            root,
        }
    }

    /// The header inputs and nonce of the next rate-mode share on job `i`: the next nonce of
    /// the current extranonce2 window, or a new window (new extranonce2, random start nonce)
    /// every `LOADGEN_RATE_SHARES_PER_EN2` shares. Version bits and ntime roll per share.
    fn rate_parts(&mut self, i: usize, now: Instant) -> (HeaderParts, u32) {
        let entry = &mut self.jobs[i];
        let job = Arc::clone(&entry.job);
        let received = entry.received;
        let window = match entry.roll.as_mut().filter(|r| r.left > 0) {
            Some(r) => {
                r.left -= 1;
                let nonce = r.next_nonce;
                r.next_nonce = nonce.wrapping_add(1);
                Some((r.en2.clone(), r.root, nonce))
            }
            None => None,
        };
        if let Some((en2, root, nonce)) = window {
            let (bits, version, ntime) = self.rolled(&job, received, now);
            let parts = HeaderParts {
                en2,
                bits,
                version,
                ntime,
                root,
            };
            return (parts, nonce);
        }
        entry.en2_counter += 1;
        let counter = entry.en2_counter;
        let parts = self.header_parts(&job, counter, received, now);
        let nonce = self.rng.next_u32();
        self.jobs[i].roll = Some(Roll {
            en2: parts.en2.clone(),
            root: parts.root,
            next_nonce: nonce.wrapping_add(1),
            left: LOADGEN_RATE_SHARES_PER_EN2 - 1,
        });
        (parts, nonce)
    }

    /// Version bits, version and ntime of a share on `job` (rolled as the firmware does).
    fn rolled(&mut self, job: &NotifyJob, received: Instant, now: Instant) -> (u32, u32, u32) {
        let bits = self.version_bits();
        let version = if self.p.version_bits() == VersionBits::None {
            job.version
        } else {
            (job.version & !self.mask) | (bits & self.mask)
        };
        let ntime = if self.p.rolls_ntime() {
            let ahead = u32::try_from(now.duration_since(received).as_secs()).unwrap_or(0);
            job.ntime + ahead.min(NTIME_AHEAD_SECS_MAX / 2)
        } else {
            job.ntime
        };
        (bits, version, ntime)
    }

    fn version_bits(&mut self) -> u32 {
        let mask = self.mask;
        match self.p.version_bits() {
            VersionBits::None => 0,
            VersionBits::NerdNos => (self.rng.next_u32() & 3) << 13,
            VersionBits::Xor => self.rng.next_u32() & mask,
            VersionBits::Or => {
                // cgminer's table: [0, mask, each single bit of the mask].
                let singles: Vec<u32> = (0..32)
                    .map(|b| 1u32 << b)
                    .filter(|b| mask & b != 0)
                    .collect();
                match self.rng.next_u64() % (2 + singles.len() as u64) {
                    0 => 0,
                    1 => mask,
                    k => singles[(k - 2) as usize],
                }
            }
        }
    }

    fn submit_fields(
        &self,
        job: &NotifyJob,
        en2: &[u8],
        ntime: u32,
        nonce: u32,
        bits: u32,
    ) -> Vec<String> {
        let user = self.user.clone();
        let ntime = if self.p == Personality::NerdMiner {
            job.ntime_text.clone()
        } else {
            format!("{ntime:08x}")
        };
        let nonce = if self.p.unpadded_nonce() {
            format!("{nonce:x}")
        } else {
            format!("{nonce:08x}")
        };
        let mut fields = vec![user, job.id.clone(), hex::encode(en2), ntime, nonce];
        let six = match self.p.version_bits() {
            VersionBits::None => false,
            VersionBits::Or => self.mask != 0,
            VersionBits::Xor | VersionBits::NerdNos => true,
        };
        if six {
            fields.push(format!("{bits:08x}"));
        }
        fields
    }

    /// Writes the queued submits in one write.
    async fn flush_shares(&mut self) -> Result<(), End> {
        if self.out.is_empty() {
            return Ok(());
        }
        let r = self.t.write_all(&self.out).await;
        self.out.clear();
        if let Err(e) = r {
            self.note_io(&e);
            return Err(End::Io);
        }
        self.last_write = Instant::now();
        Ok(())
    }

    /// Queues a submit (written by `flush_shares`).
    fn send_share(&mut self, fields: &[String], expect: Expect, injected: Injected) -> SentShare {
        let id = self.next_id;
        self.next_id += 1;
        let params: Arc<str> = self.p.submit_params(fields).into();
        self.queue_submit(id, &params);
        let share = SentShare {
            params,
            expect,
            epoch: self.epoch,
            injected,
        };
        self.pending.insert(
            id,
            Pending {
                sent: Instant::now(),
                kind: PendingKind::Submit(share.clone()),
            },
        );
        self.sh.stats.submitted.inc();
        share
    }

    /// Appends a `mining.submit` request with `params` to the queued submits.
    fn queue_submit(&mut self, id: u64, params: &str) {
        let line = self.p.request_line(id, "mining.submit", params);
        self.out.extend_from_slice(line.as_bytes());
    }

    /// Builds a fresh share on the newest job with a random nonce and queues it (rate mode).
    fn rate_share(&mut self) {
        let roll = self.rng.unit();
        let (dup, stale) = (self.sh.cfg.duplicate_fraction, self.sh.cfg.stale_fraction);
        if roll < dup
            && let Some(prev) = self.jobs.front().and_then(|j| j.last_share.clone())
        {
            self.sh.stats.injected_duplicates.inc();
            let id = self.next_id;
            self.next_id += 1;
            self.queue_submit(id, &prev.params);
            let share = SentShare {
                params: prev.params,
                expect: expect_duplicate(prev.expect),
                epoch: self.epoch,
                injected: Injected::Duplicate,
            };
            self.pending.insert(
                id,
                Pending {
                    sent: Instant::now(),
                    kind: PendingKind::Submit(share),
                },
            );
            self.sh.stats.submitted.inc();
            return;
        }
        let stale_pick = roll >= dup && roll < dup + stale;
        if !stale_pick && self.sh.cfg.valid_fraction > 0.0 {
            // A valid share comes from the stock the grinder threads fill; never ground here.
            // The valid submits are drawn ahead, so the stock is ground before one is due.
            let valid = self.until_valid == 0;
            self.until_valid = if valid {
                draw_until_valid(&mut self.rng, self.sh.cfg.valid_fraction)
            } else {
                self.until_valid - 1
            };
            if valid {
                if let Some(g) = self.take_stock() {
                    self.send_ground(g);
                    return;
                }
                self.sh.stats.valid_shortfall.inc();
            }
            self.refill_stock();
        }
        let entry_idx = if stale_pick {
            self.jobs.iter().position(|j| j.stale)
        } else {
            None
        };
        let now = Instant::now();
        let Some(entry) = self.jobs.get(entry_idx.unwrap_or(0)) else {
            return;
        };
        let job = Arc::clone(&entry.job);
        let is_stale_job = entry.stale;
        let (hard, easy) = self.difficulties(entry);
        let (
            HeaderParts {
                en2,
                bits,
                version,
                ntime,
                root,
            },
            nonce,
        ) = self.rate_parts(entry_idx.unwrap_or(0), now);
        let hash = job.hash(&root, version, ntime, nonce);
        let mut fields = self.submit_fields(&job, &en2, ntime, nonce, bits);
        let (expect, injected) = if stale_pick && is_stale_job {
            self.sh.stats.injected_stale.inc();
            (Expect::Reject(21), Injected::Stale)
        } else if stale_pick {
            // No job from an older tip yet: a job id the pool never sent.
            self.sh.stats.injected_stale.inc();
            fields[1] = format!("{:x}", self.rng.next_u64() | (1 << 63));
            (Expect::Reject(21), Injected::Stale)
        } else {
            if job.is_block(&hash) {
                self.sh.stats.blocks.inc();
            }
            (expect_fresh(&job, &hash, &hard, &easy), Injected::Fresh)
        };
        let share = self.send_share(&fields, expect, injected);
        if injected == Injected::Fresh
            && let Some(e) = self.jobs.front_mut()
            && Arc::ptr_eq(&e.job, &job)
        {
            e.last_share = Some(share);
        }
    }

    /// When real mode may hash next (throttled to the personality's nominal hashrate).
    fn next_hash_at(&self, now: Instant) -> Instant {
        match self.search.since {
            None => now,
            Some(since) => {
                let rate = self
                    .sh
                    .cfg
                    .real_hashrate_hps
                    .unwrap_or(self.p.hashrate_hps());
                let due = Duration::from_secs_f64(self.search.hashed as f64 / rate.max(1.0));
                (since + due).max(now)
            }
        }
    }

    /// The next stocked share still usable (on one of the newest jobs of the current tip).
    fn take_stock(&mut self) -> Option<Ground> {
        while let Some(g) = self.stock.pop_front() {
            let usable = self
                .jobs
                .iter()
                .take(STOCK_JOB_DEPTH)
                .any(|e| !e.stale && Arc::ptr_eq(&e.job, &g.job));
            if usable {
                return Some(g);
            }
        }
        None
    }

    /// Submits a ground share with the verdict the pool owes now (the difficulty may have
    /// changed since it was ground).
    fn send_ground(&mut self, g: Ground) {
        let Some(entry) = self.jobs.iter().find(|e| Arc::ptr_eq(&e.job, &g.job)) else {
            return;
        };
        let (hard, easy) = self.difficulties(entry);
        if g.job.is_block(&g.hash) {
            self.sh.stats.blocks.inc();
        }
        let expect = expect_fresh(&g.job, &g.hash, &hard, &easy);
        let fields = self.submit_fields(&g.job, &g.en2, g.ntime, g.nonce, g.bits);
        let share = self.send_share(&fields, expect, Injected::Fresh);
        if let Some(e) = self.jobs.front_mut()
            && Arc::ptr_eq(&e.job, &g.job)
        {
            e.last_share = Some(share);
        }
        self.refill_stock();
    }

    /// Hands a search to the grinder threads; when their queue is full, retries later.
    fn dispatch(&mut self, job: GrindJob, ctx: Grinding) -> bool {
        if self.sh.grinders.try_submit(job) {
            self.grinding = Some(ctx);
            self.grind_retry_at = None;
            true
        } else {
            self.sh.stats.grind_queue_full.inc();
            self.grind_retry_at =
                Some(Instant::now() + Duration::from_millis(LOADGEN_GRIND_RETRY_MS));
            false
        }
    }

    fn next_tag(&mut self) -> u64 {
        self.next_tag += 1;
        self.next_tag
    }

    /// Ground shares to keep: none unless a valid submit is due within
    /// `LOADGEN_VALID_LEAD_MS`, then a share of `LOADGEN_VALID_STOCK` in proportion to
    /// `--valid-fraction` (at least one), so shares are not ground only to be dropped at the
    /// next clean job.
    fn stock_wanted(&self) -> usize {
        let lead = Duration::from_millis(LOADGEN_VALID_LEAD_MS);
        let lead_submits = if self.interval.is_zero() {
            0
        } else {
            (lead.as_secs_f64() / self.interval.as_secs_f64()).ceil() as u64
        };
        if self.until_valid > lead_submits {
            return 0;
        }
        let n = (self.sh.cfg.valid_fraction * LOADGEN_VALID_STOCK as f64).ceil() as usize;
        n.clamp(1, LOADGEN_VALID_STOCK)
    }

    /// Rate mode with `--valid-fraction`: asks the grinders for one more valid share on the
    /// newest job when the stock is short and no search is out.
    fn refill_stock(&mut self) {
        if self.sh.cfg.mode != Mode::Rate
            || self.sh.cfg.valid_fraction <= 0.0
            || !self.mining()
            || self.grinding.is_some()
            || self.grind_retry_at.is_some()
            || self.stock.len() >= self.stock_wanted()
        {
            return;
        }
        let now = Instant::now();
        let Some(entry) = self.jobs.front_mut() else {
            return;
        };
        entry.en2_counter += 1;
        let counter = entry.en2_counter;
        let job = Arc::clone(&entry.job);
        let received = entry.received;
        let easy = {
            let e = &self.jobs[0];
            self.difficulties(e).1
        };
        let HeaderParts {
            en2,
            bits,
            version,
            ntime,
            root,
        } = self.header_parts(&job, counter, received, now);
        let tag = self.next_tag();
        // Ground to the difficulty the pool last sent: a job that arrived before the first
        // set_difficulty carries the client's placeholder (1), 2^16 times the work at 2^-16.
        // The verdict is worked out again when the share is sent.
        let gj = GrindJob {
            tag,
            header: job.header(&root, version, ntime, 0),
            start_nonce: self.rng.next_u32(),
            nonces: LOADGEN_GRIND_NONCES_MAX,
            hard: self.diff,
            easy,
            block: warppool_core::ShareTarget::from_compact(job.nbits).ok(),
            search: grind::Search::First,
            reply: self.grind_tx.clone(),
        };
        let ctx = Grinding {
            tag,
            job,
            en2,
            ntime,
            bits,
        };
        self.dispatch(gj, ctx);
    }

    /// A search came back from the grinder threads.
    async fn on_ground(&mut self, r: GrindResult) -> Result<(), End> {
        let Some(g) = self.grinding.take_if(|g| g.tag == r.tag) else {
            return Ok(());
        };
        self.sh.stats.hashes.add(r.hashed);
        match self.sh.cfg.mode {
            Mode::Rate => {
                if let Some(&(nonce, hash)) = r.found.first() {
                    self.stock.push_back(Ground {
                        job: g.job,
                        en2: g.en2,
                        ntime: g.ntime,
                        bits: g.bits,
                        nonce,
                        hash,
                    });
                    while self.stock.len() > LOADGEN_VALID_STOCK {
                        self.stock.pop_front();
                    }
                }
                self.refill_stock();
            }
            Mode::Real => {
                // Shares of a job that is no longer the newest are dropped, as firmware does.
                let Some(entry) = self.jobs.front().filter(|e| Arc::ptr_eq(&e.job, &g.job)) else {
                    return Ok(());
                };
                let (hard, easy) = self.difficulties(entry);
                for (nonce, hash) in r.found {
                    if g.job.is_block(&hash) {
                        self.sh.stats.blocks.inc();
                    }
                    let fields = self.submit_fields(&g.job, &g.en2, g.ntime, nonce, g.bits);
                    let expect = expect_fresh(&g.job, &hash, &hard, &easy);
                    self.send_share(&fields, expect, Injected::Fresh);
                }
                self.flush_shares().await?;
            }
        }
        Ok(())
    }

    /// Hands one slice of nonces on the newest job to the grinder threads (real mode); the
    /// shares found are submitted when the result comes back (`on_ground`).
    fn real_slice(&mut self) {
        if self.grinding.is_some() || self.grind_retry_at.is_some() {
            return;
        }
        let Some(entry) = self.jobs.front() else {
            return;
        };
        let job = Arc::clone(&entry.job);
        let (hard, easy) = self.difficulties(entry);
        if self.search.since.is_none() || self.search.done_in_en2 >= 1 << 32 {
            let counter = {
                let e = self.jobs.front_mut().expect("checked above");
                e.en2_counter += 1;
                e.en2_counter
            };
            self.search.en2 = super::work::extranonce2(self.p.en2_scheme(), counter, self.en2_size);
            self.search.root = job.merkle_root(&self.en1, &self.search.en2);
            self.search.version_bits = self.version_bits();
            self.search.nonce = if self.p == Personality::NerdMiner {
                0xDA54_E700
            } else {
                self.rng.next_u32()
            };
            self.search.done_in_en2 = 0;
            self.search.since.get_or_insert_with(Instant::now);
        }
        let bits = self.search.version_bits;
        let version = if self.p.version_bits() == VersionBits::None {
            job.version
        } else {
            (job.version & !self.mask) | (bits & self.mask)
        };
        let n = u64::from(LOADGEN_NONCES_PER_SLICE);
        let tag = self.next_tag();
        let gj = GrindJob {
            tag,
            header: job.header(&self.search.root, version, job.ntime, 0),
            start_nonce: self.search.nonce,
            nonces: n,
            hard,
            easy,
            block: warppool_core::ShareTarget::from_compact(job.nbits).ok(),
            search: grind::Search::All,
            reply: self.grind_tx.clone(),
        };
        let ctx = Grinding {
            tag,
            en2: self.search.en2.clone(),
            ntime: job.ntime,
            bits,
            job,
        };
        if self.dispatch(gj, ctx) {
            self.search.nonce = self.search.nonce.wrapping_add(LOADGEN_NONCES_PER_SLICE);
            self.search.hashed += n;
            self.search.done_in_en2 += n;
        }
    }

    async fn on_timer(&mut self) -> Result<(), End> {
        let now = Instant::now();
        if self.grind_retry_at.is_some_and(|at| at <= now) {
            self.grind_retry_at = None;
            self.refill_stock();
        }
        if self.keepalive_at().is_some_and(|at| at <= now) && self.subscribed {
            self.keepalive().await?;
        }
        let reply_timeout = self.sh.cfg.reply_timeout;
        while let Some(entry) = self.pending.first_entry() {
            if entry.get().sent + reply_timeout > now {
                break;
            }
            let (id, p) = entry.remove_entry();
            self.sh.stats.timeouts.inc();
            if self.waiting.is_some_and(|(w, _)| w == id) {
                return Err(self.protocol_error(&format!(
                    "no reply to the blocking handshake request {id} ({:?})",
                    matches!(p.kind, PendingKind::Setup(_))
                )));
            }
        }
        if !self.mining() || self.pending.len() >= self.inflight_max() {
            return Ok(());
        }
        match self.sh.cfg.mode {
            Mode::Rate => {
                if let Some(at) = self.next_submit
                    && at <= now
                {
                    let room = self.inflight_max() - self.pending.len();
                    let burst = self.sh.cfg.burst.clamp(1, room);
                    for _ in 0..burst {
                        self.rate_share();
                    }
                    self.flush_shares().await?;
                    // Keep the schedule; after a long stall, do not burst to catch up.
                    let next = at + self.interval * u32::try_from(burst).unwrap_or(1);
                    self.next_submit = Some(if next < now {
                        now + self.interval
                    } else {
                        next
                    });
                }
            }
            Mode::Real => {
                if self.next_hash_at(now) <= now {
                    self.real_slice();
                }
            }
        }
        Ok(())
    }
}

/// The kernel's receive stamp (wall clock) as an instant of this process's monotonic clock:
/// now minus its age. `None` without a stamp (or a stamp from the future).
fn arrival(stamp: Option<SystemTime>) -> Option<Instant> {
    let age = SystemTime::now().duration_since(stamp?).ok()?;
    Instant::now().checked_sub(age)
}

/// Fresh submits before the next valid one: geometric with success probability `p` (0 when
/// every share is to be valid, never when none is).
fn draw_until_valid(rng: &mut Rng, p: f64) -> u64 {
    if p >= 1.0 {
        0
    } else if p <= 0.0 {
        u64::MAX
    } else {
        // 1 - unit() is in (0, 1]: the logarithm is finite.
        ((1.0 - rng.unit()).ln() / (1.0 - p).ln()).floor() as u64
    }
}

/// The four kinds of bad input, assigned round-robin over the bad connections.
#[derive(Debug, Clone, Copy)]
enum Bad {
    Malformed,
    Oversized,
    Slowloris,
    Flood,
}

const MALFORMED: [&str; 5] = [
    "{\"id\": 5, \"method\": \"mining.submit\", \"params\": [\n",
    "this is not json at all\n",
    "{\"id\":1,\"method\":12,\"params\":{}}\n",
    "[1,2,3]\n",
    "\u{1}\u{7f}{}}}{{\n",
];

/// A connection that sends bad input until the run stops or the pool closes it.
async fn bad_session(sh: &Shared, idx: usize, ordinal: usize) {
    let kind = match ordinal % 4 {
        0 => Bad::Malformed,
        1 => Bad::Oversized,
        2 => Bad::Slowloris,
        _ => Bad::Flood,
    };
    let mut stop = sh.stop.subscribe();
    let mut t = match open(sh, idx).await {
        Ok(t) => t,
        Err(_) => {
            sh.stats.err_connect.inc();
            return;
        }
    };
    sh.stats.bad_connections.inc();
    let period = match kind {
        Bad::Malformed => Duration::from_millis(200),
        Bad::Oversized => Duration::from_millis(50),
        Bad::Slowloris | Bad::Flood => Duration::from_secs(1),
    };
    let mut buf = vec![0u8; LOADGEN_READ_BYTES];
    let mut sent_bytes = 0usize;
    let mut n = 0usize;
    if matches!(kind, Bad::Slowloris) {
        let start = b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[";
        if t.write_all(start).await.is_err() {
            sh.stats.bad_disconnected.inc();
            return;
        }
    }
    let mut next = Instant::now();
    loop {
        tokio::select! {
            biased;
            () = stopped(&mut stop) => return,
            r = t.read(&mut buf) => match r {
                Ok((0, _)) | Err(_) => {
                    sh.stats.bad_disconnected.inc();
                    return;
                }
                Ok((k, _)) => sh.stats.bad_replies.add(buf[..k].iter().filter(|b| **b == b'\n').count() as u64),
            },
            () = sleep_until(next) => {
                next += period;
                let data: Vec<u8> = match kind {
                    Bad::Malformed => MALFORMED[n % MALFORMED.len()].as_bytes().to_vec(),
                    Bad::Oversized => {
                        if sent_bytes >= LOADGEN_OVERSIZED_LINE_BYTES {
                            sent_bytes = 0;
                            b"\n".to_vec()
                        } else {
                            sent_bytes += 16 * 1024;
                            vec![b'a'; 16 * 1024]
                        }
                    }
                    Bad::Slowloris => b" ".to_vec(),
                    Bad::Flood => {
                        let mut v = Vec::with_capacity(LOADGEN_FLOOD_BURST * 48);
                        for i in 0..LOADGEN_FLOOD_BURST {
                            v.extend_from_slice(
                                format!("{{\"id\":{i},\"method\":\"mining.flood\",\"params\":[]}}\n")
                                    .as_bytes(),
                            );
                        }
                        v
                    }
                };
                n += 1;
                sh.stats.bad_lines.add(data.iter().filter(|b| **b == b'\n').count() as u64);
                if t.write_all(&data).await.is_err() {
                    sh.stats.bad_disconnected.inc();
                    return;
                }
            }
        }
    }
}

/// A pool's answer to a submit, read without building a `serde_json::Value`: `{"id": n,
/// "result": true|false|null, "error": null|[code, message, data]}` in any key order.
/// Anything else (a notification, another error shape) is left to the general path.
#[derive(Debug, serde::Deserialize)]
struct SubmitReply {
    id: u64,
    #[serde(default)]
    result: Option<bool>,
    #[serde(default)]
    error: Option<(i64, serde::de::IgnoredAny, serde::de::IgnoredAny)>,
    #[serde(default)]
    method: Option<serde::de::IgnoredAny>,
}

impl SubmitReply {
    fn parse(line: &[u8]) -> Option<Self> {
        serde_json::from_slice::<Self>(line)
            .ok()
            .filter(|r| r.method.is_none())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn submit_replies_are_read_in_any_key_order_and_everything_else_is_left_alone() {
        let r = SubmitReply::parse(br#"{"id":5,"result":true,"error":null}"#).expect("reply");
        assert_eq!(
            (r.id, r.result, r.error.map(|e| e.0)),
            (5, Some(true), None)
        );
        let r = SubmitReply::parse(
            br#"{"error": [23, "Low difficulty share", null], "id": 7, "result": null}"#,
        )
        .expect("reply");
        assert_eq!((r.id, r.result, r.error.map(|e| e.0)), (7, None, Some(23)));
        for other in [
            // A notification (null id), a server request (method), a reply that is not a
            // boolean, an error object, and not JSON: the general path handles them.
            &br#"{"id":null,"method":"mining.set_difficulty","params":[1]}"#[..],
            br#"{"id":4,"method":"mining.ping","params":[]}"#,
            br#"{"id":3,"result":"pong","error":null}"#,
            br#"{"id":2,"result":null,"error":{"code":21,"message":"stale"}}"#,
            b"not json",
        ] {
            assert!(
                SubmitReply::parse(other).is_none(),
                "{}",
                String::from_utf8_lossy(other)
            );
        }
    }

    #[test]
    fn valid_submits_are_drawn_geometrically() {
        let mut rng = Rng::new(7);
        assert_eq!(draw_until_valid(&mut rng, 1.0), 0);
        assert_eq!(draw_until_valid(&mut rng, 0.0), u64::MAX);
        // Mean of a geometric count of failures before a success: (1 - p) / p = 9 at p = 0.1.
        let n = 20_000u32;
        let sum: u64 = (0..n).map(|_| draw_until_valid(&mut rng, 0.1)).sum();
        let mean = sum as f64 / f64::from(n);
        assert!((8.0..10.0).contains(&mean), "mean {mean}");
    }
}
