//! `warppool-loadgen`: the load generator (`run`) and the regtest chain simulator (`node`).

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use warppool_core::limits::LOADGEN_THREADS_MAX;
use warppool_loadgen::chain::{ChainSim, ChainSimConfig, RpcAuthConfig};
use warppool_loadgen::load::{Mode, Personality, RunConfig, Scenario};

#[derive(Parser, Debug)]
#[command(
    name = "warppool-loadgen",
    version,
    about = "WarpPool load generator and chain simulator"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand, Debug)]
enum Command {
    /// Run the regtest chain simulator (a fake bitcoind) until Ctrl-C.
    Node(NodeArgs),
    /// Run a load scenario against a Stratum V1 pool on loopback.
    Run(Box<RunArgs>),
}

#[derive(clap::Args, Debug)]
struct RunArgs {
    /// The pool, host:port (loopback only).
    #[arg(long)]
    target: String,
    /// steady, connect-storm, reconnect-storm, new-tip, idle or bad-input.
    #[arg(long, default_value = "steady", value_parser = parse_scenario)]
    scenario: Scenario,
    /// Connections (at most the file-descriptor limit minus a margin).
    #[arg(long, default_value_t = 100)]
    miners: usize,
    /// A firmware (nerdminer, nerdnos, bitaxe, nerdqaxe, avalon, antminer-s21, whatsminer,
    /// braiins, cpuminer) or `mix` (round-robin over all).
    #[arg(long, default_value = "mix")]
    personality: String,
    /// real (search nonces at the assigned difficulty) or rate (random nonces at a set rate).
    #[arg(long, default_value = "rate", value_parser = parse_mode)]
    mode: Mode,
    /// Rate mode: shares per minute per connection.
    #[arg(long, default_value_t = 6.0)]
    shares_per_min: f64,
    /// Real mode: hashes per second per connection (default: the personality's nominal rate).
    #[arg(long)]
    real_hashrate: Option<f64>,
    /// Length of the run, seconds (at most 3600).
    #[arg(long, default_value_t = 60.0)]
    duration_s: f64,
    /// Source addresses 127.0.0.1..127.0.0.K (about 28k ephemeral ports each).
    #[arg(long, default_value_t = 1)]
    sources: usize,
    /// Speak TLS.
    #[arg(long)]
    tls: bool,
    /// Accept any pool certificate (self-signed).
    #[arg(long)]
    tls_insecure: bool,
    /// Trusted CA certificates (PEM) for --tls.
    #[arg(long)]
    tls_ca: Option<PathBuf>,
    /// Name the certificate must carry (default: the target IP).
    #[arg(long)]
    tls_server_name: Option<String>,
    /// The node's JSON-RPC URL (new-tip), e.g. http://127.0.0.1:18443.
    #[arg(long)]
    node_rpc: Option<String>,
    /// user:password for the node.
    #[arg(long)]
    node_auth: Option<String>,
    /// New-tip: one block every this many milliseconds.
    #[arg(long, default_value_t = 5000)]
    tip_interval_ms: u64,
    /// New-tip: the regtest address the blocks pay.
    #[arg(long, default_value = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080")]
    tip_address: String,
    /// Connections are opened evenly over this many milliseconds.
    #[arg(long, default_value_t = 2000)]
    ramp_ms: u64,
    /// Rate mode: submits outstanding per connection before it waits.
    #[arg(long, default_value_t = 1)]
    max_inflight: usize,
    /// Rate mode: shares written together in one write when the submit timer fires (a
    /// multi-chip ASIC or a farm proxy); the average rate is unchanged. At most --max-inflight.
    #[arg(long, default_value_t = 1)]
    burst: usize,
    /// A reply later than this counts as a timeout, milliseconds.
    #[arg(long, default_value_t = 10_000)]
    reply_timeout_ms: u64,
    /// Rate mode: fraction of shares ground until valid (costs the difficulty's work each).
    #[arg(long, default_value_t = 0.0)]
    valid_fraction: f64,
    /// Grinder threads: OS threads that search nonces (real mode, --valid-fraction) off the
    /// threads that read the pool's replies.
    #[arg(long, default_value_t = 1)]
    hash_threads: usize,
    /// Rate mode: fraction of submits re-sending the previous share (expected 22).
    #[arg(long, default_value_t = 0.0)]
    duplicate_fraction: f64,
    /// Rate mode: fraction of submits on an old or unknown job (expected 21).
    #[arg(long, default_value_t = 0.0)]
    stale_fraction: f64,
    /// Bad-input: fraction of connections sending bad input.
    #[arg(long, default_value_t = 0.1)]
    bad_fraction: f64,
    /// Reconnect storm: rounds.
    #[arg(long, default_value_t = 3)]
    rounds: u32,
    /// Username (an address of the pool's network); `.lg<i>` is appended.
    #[arg(long, default_value = "bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080")]
    user: String,
    /// Password.
    #[arg(long, default_value = "x")]
    password: String,
    /// PRNG seed.
    #[arg(long, default_value_t = 1)]
    seed: u64,
    /// Write the JSON report here.
    #[arg(long)]
    report: Option<PathBuf>,
    /// No live progress line.
    #[arg(long)]
    quiet: bool,
    /// Runtime worker threads (use 1 when the loadgen is pinned to one core).
    #[arg(long, default_value_t = 2)]
    threads: usize,
}

fn parse_scenario(s: &str) -> Result<Scenario, String> {
    Scenario::parse(s).ok_or_else(|| {
        let all: Vec<_> = Scenario::ALL.iter().map(|x| x.name()).collect();
        format!("unknown scenario {s:?}; one of {}", all.join(", "))
    })
}

fn parse_mode(s: &str) -> Result<Mode, String> {
    match s {
        "real" => Ok(Mode::Real),
        "rate" => Ok(Mode::Rate),
        _ => Err(format!("unknown mode {s:?}; real or rate")),
    }
}

fn run_config(a: RunArgs) -> Result<(RunConfig, Option<PathBuf>), String> {
    use std::net::ToSocketAddrs;
    let addrs: Vec<_> = a
        .target
        .to_socket_addrs()
        .map_err(|e| format!("--target {}: {e}", a.target))?
        .collect();
    let target = *addrs
        .iter()
        .find(|x| x.ip().is_loopback())
        .or(addrs.first())
        .ok_or_else(|| format!("--target {}: no address", a.target))?;
    let personality = match a.personality.as_str() {
        "mix" => None,
        name => Some(Personality::parse(name).ok_or_else(|| {
            let all: Vec<_> = Personality::ALL.iter().map(|p| p.name()).collect();
            format!(
                "unknown personality {name:?}; one of mix, {}",
                all.join(", ")
            )
        })?),
    };
    if !(a.duration_s.is_finite() && a.duration_s > 0.0 && a.duration_s <= 3600.0) {
        return Err("--duration-s must be in (0, 3600]".into());
    }
    let cfg = RunConfig {
        target,
        scenario: a.scenario,
        miners: a.miners,
        personality,
        mode: a.mode,
        shares_per_min: a.shares_per_min,
        real_hashrate_hps: a.real_hashrate,
        duration: Duration::from_secs_f64(a.duration_s),
        sources: a.sources,
        tls: a.tls,
        tls_insecure: a.tls_insecure,
        tls_ca: a.tls_ca,
        tls_server_name: a.tls_server_name,
        node_rpc: a.node_rpc,
        node_auth: a.node_auth,
        tip_interval: Duration::from_millis(a.tip_interval_ms),
        tip_address: a.tip_address,
        ramp: Duration::from_millis(a.ramp_ms),
        max_inflight: a.max_inflight,
        burst: a.burst,
        reply_timeout: Duration::from_millis(a.reply_timeout_ms),
        valid_fraction: a.valid_fraction,
        hash_threads: a.hash_threads,
        duplicate_fraction: a.duplicate_fraction,
        stale_fraction: a.stale_fraction,
        bad_fraction: a.bad_fraction,
        rounds: a.rounds,
        user: a.user,
        password: a.password,
        seed: a.seed,
        progress: !a.quiet,
    };
    Ok((cfg, a.report))
}

async fn run(args: RunArgs) -> std::process::ExitCode {
    let (cfg, report_path) = match run_config(args) {
        Ok(x) => x,
        Err(e) => {
            eprintln!("warppool-loadgen run: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    let report = match warppool_loadgen::load::run(cfg).await {
        Ok(r) => r,
        Err(e) => {
            eprintln!("warppool-loadgen run: {e}");
            return std::process::ExitCode::from(2);
        }
    };
    print!("{}", report.summary);
    if let Some(path) = report_path {
        let text = serde_json::to_string_pretty(&report.json).unwrap_or_default();
        if let Err(e) = std::fs::write(&path, text + "\n") {
            eprintln!("warppool-loadgen run: --report {}: {e}", path.display());
            return std::process::ExitCode::FAILURE;
        }
        println!("report: {}", path.display());
    }
    std::process::ExitCode::SUCCESS
}

#[derive(clap::Args, Debug)]
struct NodeArgs {
    /// JSON-RPC port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 18443)]
    rpc_port: u16,
    /// ZMQ hashblock PUB port on 127.0.0.1 (0: any free port).
    #[arg(long, default_value_t = 28332)]
    zmq_port: u16,
    /// Mine a network block this often, seconds (0: never on a timer).
    #[arg(long, default_value_t = 30)]
    block_interval_secs: u64,
    /// nBits in hex, e.g. 207fffff (regtest) or 1d00ffff.
    #[arg(long, default_value = "207fffff", value_parser = parse_bits)]
    bits: u32,
    /// Do not grind nonces for the simulator's own blocks (needed with hard bits).
    #[arg(long)]
    skip_own_pow: bool,
    /// RPC user (with --password).
    #[arg(long, requires = "password", conflicts_with = "cookie")]
    user: Option<String>,
    /// RPC password (with --user).
    #[arg(long, requires = "user")]
    password: Option<String>,
    /// Write a Core-style cookie file (`__cookie__:<random>`) here instead of user/password.
    #[arg(long)]
    cookie: Option<PathBuf>,
    /// Mempool size: real signed transactions of the simulator's wallet (at most 2000).
    #[arg(long, default_value_t = 16)]
    mempool: usize,
    /// Blocks mined at start (101 matures the first coinbase, so the mempool has coins).
    #[arg(long, default_value_t = warppool_loadgen::chain::PREMINE_BLOCKS_DEFAULT)]
    premine_blocks: u32,
    /// Longest long-poll wait, seconds.
    #[arg(long, default_value_t = 30)]
    longpoll_secs: u64,
    /// Send replies with chunked transfer encoding.
    #[arg(long)]
    chunked: bool,
    /// Start in initial block download.
    #[arg(long)]
    ibd: bool,
}

fn parse_bits(s: &str) -> Result<u32, String> {
    u32::from_str_radix(s.trim_start_matches("0x"), 16).map_err(|e| e.to_string())
}

fn main() -> std::process::ExitCode {
    let command = Cli::parse().command;
    let threads = match &command {
        Command::Run(a) => a.threads,
        Command::Node(_) => 2,
    };
    if !(1..=LOADGEN_THREADS_MAX).contains(&threads) {
        eprintln!("warppool-loadgen: --threads must be in 1..={LOADGEN_THREADS_MAX}");
        return std::process::ExitCode::from(2);
    }
    // One thread: the current-thread scheduler (no work-stealing bookkeeping per wake-up).
    let built = if threads == 1 {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
    } else {
        tokio::runtime::Builder::new_multi_thread()
            .worker_threads(threads)
            .enable_all()
            .build()
    };
    let runtime = match built {
        Ok(r) => r,
        Err(e) => {
            eprintln!("warppool-loadgen: cannot start the runtime: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    runtime.block_on(async move {
        match command {
            Command::Node(args) => node(args).await,
            Command::Run(args) => run(*args).await,
        }
    })
}

async fn node(args: NodeArgs) -> std::process::ExitCode {
    let auth = match (args.cookie, args.user, args.password) {
        (Some(path), _, _) => RpcAuthConfig::Cookie(path),
        (None, Some(user), Some(password)) => RpcAuthConfig::UserPassword { user, password },
        _ => ChainSimConfig::default().auth,
    };
    let config = ChainSimConfig {
        rpc_port: args.rpc_port,
        zmq_port: args.zmq_port,
        auth,
        bits: args.bits,
        block_interval: (args.block_interval_secs > 0)
            .then(|| Duration::from_secs(args.block_interval_secs)),
        skip_own_pow: args.skip_own_pow,
        mempool_target: args.mempool,
        premine_blocks: args.premine_blocks,
        longpoll_timeout: Duration::from_secs(args.longpoll_secs),
        chunked_replies: args.chunked,
        initial_block_download: args.ibd,
        ..ChainSimConfig::default()
    };
    let sim = match ChainSim::start(config).await {
        Ok(s) => s,
        Err(e) => {
            eprintln!("warppool-loadgen node: {e}");
            return std::process::ExitCode::FAILURE;
        }
    };
    let (user, password) = sim.rpc_auth();
    println!("rpc  {}", sim.rpc_url());
    match sim.cookie_path() {
        Some(p) => println!("auth cookie {}", p.display()),
        None => println!("auth {user}:{password}"),
    }
    println!("zmq  {} (hashblock)", sim.zmq_endpoint());
    println!("tip  {} height {}", sim.tip(), sim.height());
    let _ = tokio::signal::ctrl_c().await;
    sim.stop().await;
    std::process::ExitCode::SUCCESS
}
