//! `warppool`: the pool binary. See `warppool --help`.

use std::path::PathBuf;

use clap::{Parser, Subcommand};

#[derive(Debug, Parser)]
#[command(
    name = "warppool",
    version,
    about = "WarpPool: a Bitcoin solo mining pool"
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Debug, Subcommand)]
enum Command {
    /// Runs the pool with a configuration file (`WARPPOOL__SECTION__KEY=value` overrides keys).
    Run {
        /// The TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// Runs a self-contained demo: a regtest chain simulator, the pool and simulated miners.
    Demo {
        /// Number of simulated miners.
        #[arg(long, default_value_t = warppool_control::demo::DEMO_MINERS)]
        miners: usize,
        /// Stratum port on 127.0.0.1 (0 = any free port).
        #[arg(long, default_value_t = warppool_control::demo::DEMO_STRATUM_PORT)]
        stratum_port: u16,
        /// HTTP API port on 127.0.0.1 (0 = any free port).
        #[arg(long, default_value_t = warppool_control::demo::DEMO_HTTP_PORT)]
        http_port: u16,
        /// Directory for the database and block journal (default: a temporary one, removed at exit).
        #[arg(long)]
        data_dir: Option<PathBuf>,
        /// Stop by itself after this many seconds.
        #[arg(long)]
        duration_secs: Option<u64>,
        /// Seconds between the simulator's own ("network") blocks.
        #[arg(long, default_value_t = warppool_control::demo::DEMO_BLOCK_INTERVAL_SECS)]
        block_interval_secs: u64,
        /// Hashrate of each simulated miner, hashes per second.
        #[arg(long, default_value_t = warppool_control::demo::DEMO_MINER_HASHRATE_HPS)]
        hashrate: f64,
    },
    /// Loads and validates a configuration file, then exits.
    Check {
        /// The TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
}

/// The first node's chain height (for `check`), within its RPC timeout.
fn node_height(config: &warppool_control::config::Config) -> anyhow::Result<u32> {
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()?;
    let client = warppool_control::rpc::RpcClient::new(&config.nodes[0])?;
    let info: warppool_control::rpc::BlockchainInfo =
        runtime.block_on(client.call("getblockchaininfo", serde_json::json!([])))?;
    Ok(u32::try_from(info.blocks)?)
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_env("WARPPOOL_LOG")
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let cli = Cli::parse();
    match cli.command {
        Command::Run { config } => {
            let config = warppool_control::config::Config::load(&config, std::env::vars())?;
            warppool_control::run::run(config)
        }
        Command::Demo {
            miners,
            stratum_port,
            http_port,
            data_dir,
            duration_secs,
            block_interval_secs,
            hashrate,
        } => warppool_control::demo::run(warppool_control::demo::DemoOptions {
            miners,
            stratum_port,
            http_port,
            data_dir,
            duration: duration_secs.map(std::time::Duration::from_secs),
            block_interval: std::time::Duration::from_secs(block_interval_secs.max(1)),
            hashrate_hps: hashrate,
        }),
        Command::Check { config } => {
            let config = warppool_control::config::Config::load(&config, std::env::vars())?;
            println!(
                "configuration ok: {} node(s), {} port(s), network {}",
                config.nodes.len(),
                config.ports.len(),
                config.network
            );
            if config.splits_total_sats > 0 {
                match node_height(&config) {
                    Ok(height) => {
                        for w in config.split_warnings(height) {
                            println!("warning: {w}");
                        }
                    }
                    Err(e) => println!(
                        "warning: [[pool.split]] not checked against the subsidy: cannot read \
                         the chain height from node {} ({e})",
                        config.nodes[0].name
                    ),
                }
            }
            Ok(())
        }
    }
}
