//! The load generator: thousands of simulated miners with real firmware personalities against
//! any Stratum V1 pool on loopback, in scenarios, with latency histograms and a JSON report.
//!
//! - [`personality`]: the firmware families of `shared/MINERS.md`.
//! - `conn`: one miner per Tokio task (handshake, real or rate mode, verdict checks).
//! - `work`: headers from `mining.notify` and the verdict the pool owes each share.
//! - `transport`: plain TCP or rustls driven by hand over Tokio sockets.
//! - `stats`: counters and hdrhistogram latencies.
//!
//! Entry point: [`run`] with a [`RunConfig`] (the CLI `warppool-loadgen run` builds one).

pub mod personality;

mod conn;
mod grind;
mod stats;
mod transport;
pub(crate) mod work;

use std::io::IsTerminal;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::{Arc, Mutex};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use serde_json::{Value, json};
use tokio::sync::watch;
use tokio::time::Instant;
use warppool_core::limits::{
    LOADGEN_DURATION_SECS_MAX, LOADGEN_FD_MARGIN, LOADGEN_HASH_THREADS_MAX, LOADGEN_INFLIGHT_MAX,
    LOADGEN_ROUNDS_MAX, LOADGEN_RPC_TIMEOUT_MS, LOADGEN_SHARES_PER_MIN_MAX, LOADGEN_SOURCES_MAX,
};

pub use personality::Personality;

/// A run's scenario.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Scenario {
    /// N miners for the duration.
    Steady,
    /// N connections opened within the ramp; ends when all are subscribed (or failed).
    ConnectStorm,
    /// N connected miners all drop and reconnect at once, `rounds` times.
    ReconnectStorm,
    /// N connected miners; a block on the node every tip interval; tip → clean_jobs.
    NewTip,
    /// N connections subscribed and authorized, holding without submitting.
    Idle,
    /// A fraction of the connections send bad input while the rest mine.
    BadInput,
}

impl Scenario {
    /// Every scenario.
    pub const ALL: [Self; 6] = [
        Self::Steady,
        Self::ConnectStorm,
        Self::ReconnectStorm,
        Self::NewTip,
        Self::Idle,
        Self::BadInput,
    ];

    /// The CLI and report name.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Steady => "steady",
            Self::ConnectStorm => "connect-storm",
            Self::ReconnectStorm => "reconnect-storm",
            Self::NewTip => "new-tip",
            Self::Idle => "idle",
            Self::BadInput => "bad-input",
        }
    }

    /// Parses a CLI name.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|x| x.name() == s)
    }
}

/// How shares are produced.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Search nonces at the assigned difficulty: every share is genuinely valid.
    Real,
    /// Submit at a set rate with random nonces; the verdict is computed locally.
    Rate,
}

impl Mode {
    /// The CLI and report name.
    #[must_use]
    pub const fn name(self) -> &'static str {
        match self {
            Self::Real => "real",
            Self::Rate => "rate",
        }
    }
}

/// Everything a run needs.
#[derive(Clone, Debug)]
pub struct RunConfig {
    /// The pool (loopback only).
    pub target: SocketAddr,
    /// The scenario.
    pub scenario: Scenario,
    /// Connections.
    pub miners: usize,
    /// One personality for all, or `None` for the round-robin mix.
    pub personality: Option<Personality>,
    /// Share mode.
    pub mode: Mode,
    /// Rate mode: shares per minute per connection (0: none).
    pub shares_per_min: f64,
    /// Real mode: hashes per second per connection (default: the personality's nominal
    /// hashrate, which for ASICs means as fast as the CPU allows).
    pub real_hashrate_hps: Option<f64>,
    /// Upper bound of the run.
    pub duration: Duration,
    /// Source addresses 127.0.0.1..127.0.0.K (0: let the kernel choose).
    pub sources: usize,
    /// Speak TLS.
    pub tls: bool,
    /// Accept any certificate.
    pub tls_insecure: bool,
    /// Trusted roots (PEM) when not insecure.
    pub tls_ca: Option<PathBuf>,
    /// Name checked in the certificate (default: the target IP).
    pub tls_server_name: Option<String>,
    /// The node's JSON-RPC URL (new-tip).
    pub node_rpc: Option<String>,
    /// `user:password` for the node.
    pub node_auth: Option<String>,
    /// New-tip: one block this often.
    pub tip_interval: Duration,
    /// New-tip: the regtest address the blocks pay.
    pub tip_address: String,
    /// Connections are opened evenly over this time.
    pub ramp: Duration,
    /// Rate mode: submits outstanding per connection before waiting.
    pub max_inflight: usize,
    /// Rate mode: shares written together (one write) each time the submit timer fires, as a
    /// multi-chip ASIC or a farm proxy reports several nonces at once; the average rate is
    /// unchanged (the next burst is due `burst` intervals later). At most `max_inflight`.
    pub burst: usize,
    /// A reply later than this counts as a timeout.
    pub reply_timeout: Duration,
    /// Rate mode: fraction of fresh shares ground until they meet the share target (each
    /// costs the difficulty's expected work on the loadgen's CPU); the rest carry a random
    /// nonce and are almost all below target at usual difficulties.
    pub valid_fraction: f64,
    /// Grinder threads: the OS threads that search nonces (real mode, `valid_fraction`) off
    /// the I/O threads.
    pub hash_threads: usize,
    /// Rate mode: fraction of submits that re-send the previous share (expected 22).
    pub duplicate_fraction: f64,
    /// Rate mode: fraction of submits on an old or unknown job (expected 21).
    pub stale_fraction: f64,
    /// Bad-input: fraction of connections that misbehave.
    pub bad_fraction: f64,
    /// Reconnect storm: rounds.
    pub rounds: u32,
    /// Username prefix (`<address>`; `.lg<i>` is appended).
    pub user: String,
    /// Password.
    pub password: String,
    /// PRNG seed (nonces, phases).
    pub seed: u64,
    /// Live progress line on stderr.
    pub progress: bool,
}

impl Default for RunConfig {
    fn default() -> Self {
        Self {
            target: SocketAddr::from(([127, 0, 0, 1], 3333)),
            scenario: Scenario::Steady,
            miners: 100,
            personality: None,
            mode: Mode::Rate,
            shares_per_min: 6.0,
            real_hashrate_hps: None,
            duration: Duration::from_secs(60),
            sources: 1,
            tls: false,
            tls_insecure: false,
            tls_ca: None,
            tls_server_name: None,
            node_rpc: None,
            node_auth: None,
            tip_interval: Duration::from_secs(5),
            tip_address: "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080".into(),
            ramp: Duration::from_millis(2000),
            max_inflight: 1,
            burst: 1,
            reply_timeout: Duration::from_secs(10),
            valid_fraction: 0.0,
            hash_threads: 1,
            duplicate_fraction: 0.0,
            stale_fraction: 0.0,
            bad_fraction: 0.1,
            rounds: 3,
            user: "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080".into(),
            password: "x".into(),
            seed: 1,
            progress: false,
        }
    }
}

/// A run's outcome.
#[derive(Debug, Clone)]
pub struct Report {
    /// The JSON report (the perf tooling's contract).
    pub json: Value,
    /// The human summary.
    pub summary: String,
}

/// Shared by every miner task.
#[derive(Debug)]
pub(crate) struct Shared {
    pub(crate) cfg: RunConfig,
    pub(crate) stats: stats::Stats,
    pub(crate) started: Instant,
    pub(crate) tls: Option<transport::TlsClient>,
    /// The grinder threads (nonce search off the I/O threads).
    pub(crate) grinders: grind::Grinders,
    pub(crate) stop: watch::Sender<bool>,
    pub(crate) round: watch::Sender<u32>,
    /// New tips triggered: generation and the time just before the RPC call.
    tip: Mutex<TipClock>,
    /// Reconnect storm: one record per round (bounded by `LOADGEN_ROUNDS_MAX`).
    rounds: Mutex<Vec<Value>>,
}

/// The newest tip loadgen triggered (new-tip scenario).
#[derive(Debug, Clone, Copy, Default)]
pub(crate) struct TipClock {
    /// Tips triggered so far.
    pub(crate) generation: u64,
    /// Just before the RPC call that made the newest one.
    pub(crate) at: Option<Instant>,
}

impl Shared {
    pub(crate) fn tip_clock(&self) -> TipClock {
        *self
            .tip
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

/// Raises the soft `RLIMIT_NOFILE` to the hard limit; returns the new soft limit.
///
/// # Errors
/// The limit cannot be read or set.
pub fn raise_fd_limit() -> std::io::Result<u64> {
    let mut lim = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: getrlimit writes one `rlimit` into the struct we own and pass by pointer.
    if unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &raw mut lim) } != 0 {
        return Err(std::io::Error::last_os_error());
    }
    if lim.rlim_cur < lim.rlim_max {
        lim.rlim_cur = lim.rlim_max;
        // SAFETY: setrlimit reads the struct we own; raising soft up to hard is always allowed.
        if unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &raw const lim) } != 0 {
            return Err(std::io::Error::last_os_error());
        }
    }
    Ok(lim.rlim_cur)
}

fn is_loopback_host(host: &str) -> bool {
    host == "localhost"
        || host
            .trim_start_matches('[')
            .trim_end_matches(']')
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback())
}

/// Checks a configuration against the bounds; the message says what to change.
///
/// # Errors
/// The first problem found.
pub fn validate(cfg: &RunConfig, fd_limit: u64) -> Result<(), String> {
    if !cfg.target.ip().is_loopback() {
        return Err(format!(
            "--target {}: only loopback targets (127.0.0.0/8, ::1) are allowed",
            cfg.target
        ));
    }
    if cfg.miners == 0 {
        return Err("--miners must be at least 1".into());
    }
    let usable = fd_limit.saturating_sub(LOADGEN_FD_MARGIN);
    if cfg.miners as u64 > usable {
        return Err(format!(
            "--miners {} needs one file descriptor each, but the limit is {fd_limit} \
             (soft raised to hard) and {LOADGEN_FD_MARGIN} are kept free: at most {usable} \
             connections here (raise the hard limit with `ulimit -Hn` as root, or lower --miners)",
            cfg.miners
        ));
    }
    if cfg.duration.is_zero() || cfg.duration.as_secs() > LOADGEN_DURATION_SECS_MAX {
        return Err(format!(
            "--duration-s must be in 1..={LOADGEN_DURATION_SECS_MAX}"
        ));
    }
    if cfg.sources > LOADGEN_SOURCES_MAX {
        return Err(format!("--sources must be at most {LOADGEN_SOURCES_MAX}"));
    }
    if !(0.0..=LOADGEN_SHARES_PER_MIN_MAX).contains(&cfg.shares_per_min) {
        return Err(format!(
            "--shares-per-min must be in 0..={LOADGEN_SHARES_PER_MIN_MAX}"
        ));
    }
    if cfg.max_inflight == 0 || cfg.max_inflight > LOADGEN_INFLIGHT_MAX {
        return Err(format!(
            "--max-inflight must be in 1..={LOADGEN_INFLIGHT_MAX}"
        ));
    }
    if cfg.burst == 0 || cfg.burst > cfg.max_inflight {
        return Err(format!(
            "--burst must be in 1..=--max-inflight ({})",
            cfg.max_inflight
        ));
    }
    for (name, f) in [
        ("--valid-fraction", cfg.valid_fraction),
        ("--duplicate-fraction", cfg.duplicate_fraction),
        ("--stale-fraction", cfg.stale_fraction),
        ("--bad-fraction", cfg.bad_fraction),
    ] {
        if !(0.0..=1.0).contains(&f) {
            return Err(format!("{name} must be in 0..=1"));
        }
    }
    if cfg.duplicate_fraction + cfg.stale_fraction > 1.0 {
        return Err("--duplicate-fraction + --stale-fraction must be at most 1".into());
    }
    if cfg.hash_threads == 0 || cfg.hash_threads > LOADGEN_HASH_THREADS_MAX {
        return Err(format!(
            "--hash-threads must be in 1..={LOADGEN_HASH_THREADS_MAX}"
        ));
    }
    if cfg.rounds == 0 || cfg.rounds > LOADGEN_ROUNDS_MAX {
        return Err(format!("--rounds must be in 1..={LOADGEN_ROUNDS_MAX}"));
    }
    if cfg
        .real_hashrate_hps
        .is_some_and(|h| !(h.is_finite() && h >= 1.0))
    {
        return Err("--real-hashrate must be at least 1 hash per second".into());
    }
    if cfg.reply_timeout.is_zero() {
        return Err("--reply-timeout-ms must be positive".into());
    }
    if cfg.tls && !cfg.tls_insecure && cfg.tls_ca.is_none() {
        return Err("--tls needs --tls-insecure or --tls-ca FILE".into());
    }
    if cfg.scenario == Scenario::NewTip {
        let url = cfg
            .node_rpc
            .as_deref()
            .ok_or("--scenario new-tip needs --node-rpc URL (and --node-auth user:pass)")?;
        let parsed = reqwest::Url::parse(url).map_err(|e| format!("--node-rpc {url}: {e}"))?;
        if !parsed.host_str().is_some_and(is_loopback_host) {
            return Err(format!("--node-rpc {url}: only a loopback node is allowed"));
        }
        if cfg.tip_interval.is_zero() {
            return Err("--tip-interval-ms must be positive".into());
        }
    }
    Ok(())
}

/// The loadgen's error.
#[derive(Debug, thiserror::Error)]
pub enum LoadError {
    /// Bad configuration.
    #[error("{0}")]
    Config(String),
    /// The file-descriptor limit could not be read or raised.
    #[error("RLIMIT_NOFILE: {0}")]
    FdLimit(std::io::Error),
}

/// Calls `generatetoaddress 1 <address>` on the node.
async fn trigger_block(client: &reqwest::Client, cfg: &RunConfig) -> Result<(), String> {
    let url = cfg.node_rpc.as_deref().unwrap_or_default();
    let mut req = client.post(url).json(&json!({
        "jsonrpc": "1.0", "id": "loadgen", "method": "generatetoaddress",
        "params": [1, cfg.tip_address],
    }));
    if let Some((user, pass)) = cfg.node_auth.as_deref().and_then(|a| a.split_once(':')) {
        req = req.basic_auth(user, Some(pass));
    }
    let reply = req.send().await.map_err(|e| format!("node RPC: {e}"))?;
    let status = reply.status();
    let v: Value = reply
        .json()
        .await
        .map_err(|e| format!("node RPC: HTTP {status}: {e}"))?;
    if v["error"].is_null() {
        Ok(())
    } else {
        Err(format!("node RPC: generatetoaddress: {}", v["error"]))
    }
}

/// Runs a load scenario to its end (or Ctrl-C) and returns the report.
///
/// # Errors
/// [`LoadError`] for a configuration outside the bounds.
pub async fn run(cfg: RunConfig) -> Result<Report, LoadError> {
    let fd_limit = raise_fd_limit().map_err(LoadError::FdLimit)?;
    validate(&cfg, fd_limit).map_err(LoadError::Config)?;
    if cfg.progress {
        eprintln!(
            "warppool-loadgen: RLIMIT_NOFILE {fd_limit}; {} {} miners against {}",
            cfg.scenario.name(),
            cfg.miners,
            cfg.target
        );
    }
    let tls = if cfg.tls {
        Some(
            transport::TlsClient::new(
                cfg.tls_insecure,
                cfg.tls_ca.as_deref(),
                cfg.tls_server_name.as_deref(),
                cfg.target,
            )
            .map_err(LoadError::Config)?,
        )
    } else {
        None
    };
    let started_unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(0));
    let started = Instant::now();
    let deadline = started + cfg.duration;
    let grinders = grind::Grinders::start(cfg.hash_threads)
        .map_err(|e| LoadError::Config(format!("cannot start the grinder threads: {e}")))?;
    let sh = Arc::new(Shared {
        grinders,
        stats: stats::Stats::new(),
        started,
        tls,
        stop: watch::Sender::new(false),
        round: watch::Sender::new(0),
        tip: Mutex::new(TipClock::default()),
        rounds: Mutex::new(Vec::new()),
        cfg,
    });
    let cfg = &sh.cfg;
    let good = (0..cfg.miners)
        .filter(|i| conn::bad_ordinal(&sh, *i).is_none())
        .count() as u64;

    let mut tasks = tokio::task::JoinSet::new();
    for idx in 0..cfg.miners {
        let at = started + cfg.ramp.mul_f64(idx as f64 / cfg.miners as f64);
        tasks.spawn(conn::miner(Arc::clone(&sh), idx, at));
    }
    let progress = cfg
        .progress
        .then(|| tokio::spawn(progress_loop(Arc::clone(&sh), good)));

    let ctrl_c = tokio::signal::ctrl_c();
    tokio::pin!(ctrl_c);
    let interrupted = tokio::select! {
        () = control(&sh, good, deadline) => false,
        _ = &mut ctrl_c => true,
    };
    let elapsed = started.elapsed();
    sh.stop.send_replace(true);
    // Miners stop at once; a write blocked on a pool that stopped reading is aborted.
    let _ = tokio::time::timeout(Duration::from_secs(5), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.abort_all();
    if let Some(p) = progress {
        p.abort();
        if std::io::stderr().is_terminal() {
            eprintln!();
        }
    }
    Ok(report(&sh, good, started_unix_ms, elapsed, interrupted))
}

/// Waits until `cond` holds or the deadline passes.
async fn wait_until(deadline: Instant, mut cond: impl FnMut() -> bool) -> bool {
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The scenario's own driving, until it is over.
async fn control(sh: &Shared, good: u64, deadline: Instant) {
    let st = &sh.stats;
    let all_in = || st.subscribed.get() + st.failed.get() >= good;
    match sh.cfg.scenario {
        Scenario::Steady | Scenario::Idle | Scenario::BadInput => {
            tokio::time::sleep_until(deadline).await;
        }
        Scenario::ConnectStorm => {
            wait_until(deadline, all_in).await;
        }
        Scenario::ReconnectStorm => {
            if !wait_until(deadline, all_in).await {
                return;
            }
            for r in 1..=sh.cfg.rounds {
                st.round_subscribed.set(0);
                let failed_before = st.reconnect_failed.get();
                let t = Instant::now();
                sh.round.send_replace(r);
                let established = st.established.get();
                let done = wait_until(deadline, || {
                    st.round_subscribed.get() + (st.reconnect_failed.get() - failed_before)
                        >= established
                })
                .await;
                let ms = t.elapsed().as_secs_f64() * 1000.0;
                sh.round_times()
                    .push(json!({"round": r, "ms": ms, "complete": done}));
                if !done {
                    return;
                }
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
        }
        Scenario::NewTip => {
            if !wait_until(deadline, all_in).await {
                return;
            }
            let client = reqwest::Client::builder()
                .timeout(Duration::from_millis(LOADGEN_RPC_TIMEOUT_MS))
                .build()
                .unwrap_or_default();
            loop {
                let t0 = Instant::now();
                if t0 + sh.cfg.tip_interval > deadline {
                    break;
                }
                {
                    let mut tip = sh
                        .tip
                        .lock()
                        .unwrap_or_else(std::sync::PoisonError::into_inner);
                    *tip = TipClock {
                        generation: tip.generation + 1,
                        at: Some(t0),
                    };
                }
                st.tips_triggered.inc();
                if let Err(e) = trigger_block(&client, &sh.cfg).await {
                    eprintln!("warppool-loadgen: {e}");
                    st.err_protocol.inc();
                }
                tokio::time::sleep_until(t0 + sh.cfg.tip_interval).await;
            }
        }
    }
}

impl Shared {
    fn round_times(&self) -> std::sync::MutexGuard<'_, Vec<Value>> {
        self.rounds
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn progress_text(sh: &Shared, good: u64) -> String {
    let st = &sh.stats;
    format!(
        "[{:>5.0}s] conn {}/{} open {} sub {} auth {} | sub'd {} acc {} rej {} timeout {} | \
         pool errors {} | err c{} io{} p{}",
        sh.started.elapsed().as_secs_f64(),
        st.established.get(),
        good,
        st.open.get(),
        st.subscribed.get(),
        st.authorized.get(),
        st.submitted.get(),
        st.accepted.get(),
        st.rejected(),
        st.timeouts.get(),
        st.pool_errors(),
        st.err_connect.get(),
        st.err_io.get(),
        st.err_protocol.get(),
    )
}

async fn progress_loop(sh: Arc<Shared>, good: u64) {
    let tty = std::io::stderr().is_terminal();
    let every = if tty { 1 } else { 5 };
    let mut tick = tokio::time::interval(Duration::from_secs(every));
    tick.tick().await;
    loop {
        tick.tick().await;
        let line = progress_text(&sh, good);
        if tty {
            eprint!("\r{line}\x1b[K");
        } else {
            eprintln!("{line}");
        }
    }
}

fn report(
    sh: &Shared,
    good: u64,
    started_unix_ms: u64,
    elapsed: Duration,
    interrupted: bool,
) -> Report {
    let cfg = &sh.cfg;
    let st = &sh.stats;
    let secs = elapsed.as_secs_f64().max(1e-9);
    let all_subscribed = st.subscribed.get() >= good && good > 0;
    let time_to_all = all_subscribed.then(|| st.last_subscribed_us.get() as f64 / 1000.0);
    let mut personalities = serde_json::Map::new();
    let mut by_personality = serde_json::Map::new();
    for p in Personality::ALL {
        let i = p.index();
        personalities.insert(p.name().into(), json!(st.personalities[i].get()));
        by_personality.insert(
            p.name().into(),
            json!({"accepted": st.accepted_by[i].get(), "rejected": st.rejected_by[i].get()}),
        );
    }
    let json = json!({
        "tool": "warppool-loadgen",
        "version": env!("CARGO_PKG_VERSION"),
        "scenario": cfg.scenario.name(),
        "target": cfg.target.to_string(),
        "tls": cfg.tls,
        "mode": cfg.mode.name(),
        "personality": cfg.personality.map_or("mix", Personality::name),
        "started_unix_ms": started_unix_ms,
        "duration_s": elapsed.as_secs_f64(),
        "interrupted": interrupted,
        "settings": {
            "miners": cfg.miners, "shares_per_min": cfg.shares_per_min,
            "sources": cfg.sources, "ramp_ms": cfg.ramp.as_millis() as u64,
            "max_inflight": cfg.max_inflight, "burst": cfg.burst,
            "reply_timeout_ms": cfg.reply_timeout.as_millis() as u64,
            "valid_fraction": cfg.valid_fraction, "hash_threads": cfg.hash_threads,
            "duplicate_fraction": cfg.duplicate_fraction, "stale_fraction": cfg.stale_fraction,
            "tip_interval_ms": cfg.tip_interval.as_millis() as u64,
        },
        "connections": {
            "requested": cfg.miners,
            "established": st.established.get(),
            "failed": st.failed.get(),
            "subscribed": st.subscribed.get(),
            "authorized": st.authorized.get(),
            "time_to_all_subscribed_ms": time_to_all,
            "disconnected_by_pool": st.disconnected_by_pool.get(),
        },
        "shares": {
            "submitted": st.submitted.get(),
            "accepted": st.accepted.get(),
            "rejected": {
                "21": st.rejected_21.get(), "22": st.rejected_22.get(),
                "23": st.rejected_23.get(), "other": st.rejected_other.get(),
            },
            "accepted_per_s": st.accepted.get() as f64 / secs,
            "submitted_per_s": st.submitted.get() as f64 / secs,
            "timeouts": st.timeouts.get(),
            "unanswered_at_stop": st.unanswered_at_stop.get(),
            "pool_errors": {
                "valid_rejected": st.valid_rejected.get(),
                "invalid_accepted": st.invalid_accepted.get(),
            },
            "reason_mismatch": st.reason_mismatch.get(),
            "stale_races": st.stale_races.get(),
            "unchecked": st.unchecked.get(),
            "injected": {
                "duplicates": st.injected_duplicates.get(), "stale": st.injected_stale.get(),
            },
            "blocks": st.blocks.get(),
            "hashes": st.hashes.get(),
            "valid_shortfall": st.valid_shortfall.get(),
            "grind_queue_full": st.grind_queue_full.get(),
        },
        "latency_us": {
            "connect_to_first_notify": st.connect_to_first_notify.to_json(),
            "submit_to_reply": st.submit_to_reply.to_json(),
            "submit_to_reply_handled": st.submit_to_reply_handled.to_json(),
            "new_tip_to_clean_jobs": st.new_tip_to_clean_jobs.to_json(),
            "new_tip_to_clean_jobs_handled": st.new_tip_to_clean_jobs_handled.to_json(),
        },
        "errors": {
            "connect": st.err_connect.get(),
            "io": st.err_io.get(),
            "protocol": st.err_protocol.get(),
        },
        "notifies": {"total": st.notifies.get(), "clean": st.clean_notifies.get()},
        "new_tip": {"triggered": st.tips_triggered.get()},
        "reconnect": {
            "rounds": sh.round_times().clone(),
            "attempts": st.reconnect_attempts.get(),
            "failed": st.reconnect_failed.get(),
        },
        "bad_input": {
            "connections": st.bad_connections.get(),
            "disconnected_by_pool": st.bad_disconnected.get(),
            "lines_sent": st.bad_lines.get(),
            "reply_lines": st.bad_replies.get(),
        },
        "personalities": personalities,
        "shares_by_personality": by_personality,
    });
    let summary = summary_text(&json);
    Report { json, summary }
}

fn lat(v: &Value) -> String {
    if v["count"].as_u64().unwrap_or(0) == 0 {
        return "not measured".into();
    }
    format!(
        "n={} p50={}µs p90={}µs p99={}µs p99.9={}µs max={}µs",
        v["count"], v["p50"], v["p90"], v["p99"], v["p999"], v["max"]
    )
}

fn summary_text(r: &Value) -> String {
    let c = &r["connections"];
    let s = &r["shares"];
    let l = &r["latency_us"];
    let e = &r["errors"];
    let mut out = format!(
        "warppool-loadgen {} against {} ({}, {} mode, {}, tls {}) for {:.1} s{}\n",
        r["scenario"].as_str().unwrap_or(""),
        r["target"].as_str().unwrap_or(""),
        r["personality"].as_str().unwrap_or(""),
        r["mode"].as_str().unwrap_or(""),
        format_args!("{} miners", r["settings"]["miners"]),
        r["tls"],
        r["duration_s"].as_f64().unwrap_or(0.0),
        if r["interrupted"] == true {
            " (interrupted)"
        } else {
            ""
        },
    );
    out += &format!(
        "connections: {} established, {} failed, {} subscribed, {} authorized, all subscribed \
         after {} ms, {} closed by the pool\n",
        c["established"],
        c["failed"],
        c["subscribed"],
        c["authorized"],
        c["time_to_all_subscribed_ms"],
        c["disconnected_by_pool"]
    );
    out += &format!(
        "shares: {} submitted ({:.1}/s), {} accepted ({:.1}/s), rejected 21:{} 22:{} 23:{} \
         other:{}, {} timeouts\n",
        s["submitted"],
        s["submitted_per_s"].as_f64().unwrap_or(0.0),
        s["accepted"],
        s["accepted_per_s"].as_f64().unwrap_or(0.0),
        s["rejected"]["21"],
        s["rejected"]["22"],
        s["rejected"]["23"],
        s["rejected"]["other"],
        s["timeouts"]
    );
    out += &format!(
        "pool errors: {} valid rejected, {} invalid accepted ({} reason mismatches, {} stale \
         races, {} unchecked)\n",
        s["pool_errors"]["valid_rejected"],
        s["pool_errors"]["invalid_accepted"],
        s["reason_mismatch"],
        s["stale_races"],
        s["unchecked"]
    );
    if s["valid_shortfall"].as_u64().unwrap_or(0) > 0 {
        out += &format!(
            "valid-share shortfall: {} valid submits went out as random shares (the grinder \
             threads did not keep up with --valid-fraction; raise --hash-threads)\n",
            s["valid_shortfall"]
        );
    }
    out += &format!(
        "connect → first notify: {}\nsubmit → reply: {}\nnew tip → clean_jobs: {}\n\
         new tip → clean_jobs handled by loadgen: {}\n",
        lat(&l["connect_to_first_notify"]),
        lat(&l["submit_to_reply"]),
        lat(&l["new_tip_to_clean_jobs"]),
        lat(&l["new_tip_to_clean_jobs_handled"])
    );
    out += &format!(
        "errors: connect {}, io {}, protocol {}\n",
        e["connect"], e["io"], e["protocol"]
    );
    if r["scenario"] == "bad-input" {
        let b = &r["bad_input"];
        out += &format!(
            "bad input: {} connections, {} closed by the pool, {} lines sent, {} reply lines\n",
            b["connections"], b["disconnected_by_pool"], b["lines_sent"], b["reply_lines"]
        );
    }
    if r["scenario"] == "reconnect-storm" {
        out += &format!("reconnect rounds: {}\n", r["reconnect"]["rounds"]);
    }
    out
}
