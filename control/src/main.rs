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
    /// Loads and validates a configuration file, then exits.
    Check {
        /// The TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
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
        Command::Check { config } => {
            let config = warppool_control::config::Config::load(&config, std::env::vars())?;
            println!(
                "configuration ok: {} node(s), {} port(s), network {}",
                config.nodes.len(),
                config.ports.len(),
                config.network
            );
            Ok(())
        }
    }
}
