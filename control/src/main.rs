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
    /// Loads and validates a configuration file, then exits (also `config check`).
    Check {
        /// The TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
    /// The configuration file.
    #[command(subcommand)]
    Config(ConfigCommand),
    /// Admin accounts (on the configuration's database).
    #[command(subcommand)]
    Admin(AdminCommand),
    /// API tokens (on the configuration's database).
    #[command(subcommand)]
    Token(TokenCommand),
    /// The HTTPS listener's certificate.
    #[command(subcommand)]
    Tls(TlsCommand),
}

#[derive(Debug, Subcommand)]
enum TlsCommand {
    /// Prints the SHA-256 fingerprint of the API/UI's HTTPS certificate (colon hex, as
    /// browsers show it).
    Fingerprint {
        /// The TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum ConfigCommand {
    /// Loads and validates a configuration file, then exits.
    Check {
        /// The TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
enum AdminCommand {
    /// Creates an admin (password from WARPPOOL_ADMIN_PASSWORD or stdin); prints its TOTP
    /// secret and recovery codes once.
    Create {
        /// The TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// The admin's name.
        #[arg(long)]
        username: String,
    },
    /// Gives an admin a new TOTP secret and recovery codes (a lost device).
    ResetTotp {
        /// The TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// The admin's name.
        #[arg(long)]
        username: String,
    },
}

#[derive(Debug, Subcommand)]
enum TokenCommand {
    /// Creates an API token (shown once).
    Create {
        /// The TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// The admin it acts for.
        #[arg(long)]
        username: String,
        /// A name for it.
        #[arg(long)]
        name: String,
        /// `read`, `metrics` or `admin`.
        #[arg(long)]
        scope: String,
    },
    /// Revokes an API token.
    Revoke {
        /// The TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
        /// Its id (`token list`).
        #[arg(long)]
        id: i64,
    },
    /// Lists the API tokens (never their secrets).
    List {
        /// The TOML configuration file.
        #[arg(long, short)]
        config: PathBuf,
    },
}

/// `warppool check` / `warppool config check`.
fn check(config: &std::path::Path) -> anyhow::Result<()> {
    let config = warppool_control::config::Config::load(config, std::env::vars())?;
    println!(
        "configuration ok: {} node(s), {} port(s), network {}",
        config.nodes.len(),
        config.ports.len(),
        config.network
    );
    for w in &config.warnings {
        println!("warning: {w}");
    }
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

fn admin_command(command: AdminCommand) -> anyhow::Result<()> {
    use warppool_control::admin_cli as a;
    match command {
        AdminCommand::Create { config, username } => a::admin_create(&config, &username),
        AdminCommand::ResetTotp { config, username } => a::admin_reset_totp(&config, &username),
    }
}

fn token_command(command: TokenCommand) -> anyhow::Result<()> {
    use warppool_control::admin_cli as a;
    match command {
        TokenCommand::Create {
            config,
            username,
            name,
            scope,
        } => a::token_create(&config, &username, &name, &scope),
        TokenCommand::Revoke { config, id } => a::token_revoke(&config, id),
        TokenCommand::List { config } => a::token_list(&config),
    }
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
        Command::Check { config } | Command::Config(ConfigCommand::Check { config }) => {
            check(&config)
        }
        Command::Admin(command) => admin_command(command),
        Command::Token(command) => token_command(command),
        Command::Tls(TlsCommand::Fingerprint { config }) => {
            warppool_control::admin_cli::tls_fingerprint(&config)
        }
    }
}
