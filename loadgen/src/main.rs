//! `warppool-loadgen`: the regtest chain simulator (`node`) as a standalone process.

use std::path::PathBuf;
use std::time::Duration;

use clap::{Parser, Subcommand};
use warppool_loadgen::chain::{ChainSim, ChainSimConfig, RpcAuthConfig};

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
    /// Synthetic mempool size.
    #[arg(long, default_value_t = 16)]
    mempool: usize,
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

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> std::process::ExitCode {
    let Command::Node(args) = Cli::parse().command;
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
