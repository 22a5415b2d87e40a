//! `warppool demo`: the chain simulator, the pool and a few simulated CPU miners in one
//! process, nothing else installed.
//!
//! # What runs
//! - The regtest chain simulator (`warppool-loadgen`'s `ChainSim`, bits `207fffff`, a network
//!   block every 30 s by default, a synthetic mempool of witness and legacy transactions) on
//!   random loopback ports, JSON-RPC and ZMQ `hashblock`.
//! - The pool ([`Daemon`]) with a configuration built here: regtest, one Stratum port on
//!   127.0.0.1, the HTTP API on 127.0.0.1, the database and journal in a temporary directory
//!   (or `--data-dir`), a tiny minimum difficulty so CPU miners find shares.
//! - `--miners` simulated miners, each paying to its own regtest P2WPKH address (derived
//!   deterministically from a fixed key), with a familiar user agent. On regtest nearly every
//!   share meets the network target, so miners find blocks every few seconds.
//!
//! Ctrl-C (SIGINT) or SIGTERM, or `--duration-secs`, stops miners, pool (storage flushed) and
//! simulator in that order; the process exits 0.

use std::{io::Write as _, net::SocketAddr, path::PathBuf, sync::atomic::Ordering, time::Duration};

use anyhow::Context;
use bitcoin::{Address, CompressedPublicKey, Network, secp256k1};
use warppool_loadgen::{
    chain::{ChainSim, ChainSimConfig, REGTEST_BITS},
    miner::{self, MinerConfig, MinerHandle},
};

use crate::{
    config::Config,
    run::{Daemon, build_runtime, shutdown_signal},
};

/// Default Stratum port.
pub const DEMO_STRATUM_PORT: u16 = 3333;
/// Default HTTP port.
pub const DEMO_HTTP_PORT: u16 = 8080;
/// Default number of miners.
pub const DEMO_MINERS: usize = 3;
/// Most simulated miners.
pub const DEMO_MINERS_MAX: usize = 64;
/// Default hashrate of each simulated miner, hashes per second.
pub const DEMO_MINER_HASHRATE_HPS: f64 = 200_000.0;
/// Default interval between the simulator's own ("network") blocks.
pub const DEMO_BLOCK_INTERVAL_SECS: u64 = 30;
/// Interval between two summary lines.
pub const DEMO_SUMMARY_INTERVAL_SECS: u64 = 5;

/// User agents of the simulated miners, in turn.
const USER_AGENTS: [&str; 4] = [
    "bitaxe/BM1370/v2.15.0",
    "NerdMinerV2",
    "cgminer/4.11.1",
    "bmminer/2.0.0",
];
/// Worker names of the simulated miners, in turn.
const WORKER_NAMES: [&str; 4] = ["bitaxe", "nerdminer", "antminer", "s9"];

/// The demo's options (the `warppool demo` flags).
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Number of simulated miners.
    pub miners: usize,
    /// Stratum port on 127.0.0.1 (0 = any free port).
    pub stratum_port: u16,
    /// HTTP port on 127.0.0.1 (0 = any free port).
    pub http_port: u16,
    /// Where the database and journal live; `None` = a temporary directory removed at exit.
    pub data_dir: Option<PathBuf>,
    /// Stop by itself after this long.
    pub duration: Option<Duration>,
    /// Interval of the simulator's own blocks.
    pub block_interval: Duration,
    /// Hashrate of each miner.
    pub hashrate_hps: f64,
}

impl Default for DemoOptions {
    fn default() -> Self {
        Self {
            miners: DEMO_MINERS,
            stratum_port: DEMO_STRATUM_PORT,
            http_port: DEMO_HTTP_PORT,
            data_dir: None,
            duration: None,
            block_interval: Duration::from_secs(DEMO_BLOCK_INTERVAL_SECS),
            hashrate_hps: DEMO_MINER_HASHRATE_HPS,
        }
    }
}

/// The regtest P2WPKH address of demo miner `index`: the key is `index + 1` in every byte, so
/// the addresses are the same on every run.
///
/// # Panics
/// Never for `index < 255` (the key is then a valid secp256k1 secret key).
#[must_use]
pub fn demo_address(index: usize) -> Address {
    let byte = u8::try_from(index % 255).unwrap_or(0) + 1;
    let secp = secp256k1::Secp256k1::signing_only();
    let secret = secp256k1::SecretKey::from_slice(&[byte; 32]).expect("1..=255 repeated is < n");
    let public = CompressedPublicKey(secp256k1::PublicKey::from_secret_key(&secp, &secret));
    Address::p2wpkh(&public, Network::Regtest)
}

/// Runs the demo on its own runtime until SIGINT/SIGTERM or the duration.
///
/// # Errors
/// Start-up failures (ports in use, data directory).
pub fn run(options: DemoOptions) -> anyhow::Result<()> {
    let runtime = build_runtime()?;
    runtime.block_on(async { run_async(options, shutdown_signal()).await })
}

fn config_text(
    options: &DemoOptions,
    dir: &std::path::Path,
    rpc_url: &str,
    auth: &(String, String),
    zmq: &str,
) -> String {
    let quote = |s: &str| toml::Value::String(s.to_owned()).to_string();
    format!(
        r#"
version = 1
network = "regtest"
[pool]
coinbase_tag = "/warppool-demo/"
shards = 1
[template]
refresh_secs = 10
[storage]
block_journal = {journal}
database = {db}
[http]
listen = "127.0.0.1:{http}"
[[node]]
name = "chainsim"
rpc_url = {rpc_url}
rpc_user = {user}
rpc_password = {password}
zmq_hashblock = {zmq}
[[port]]
addr = "127.0.0.1:{stratum}"
difficulty_start = 0.0002
difficulty_min = 0.0001
fractional = "always"
shares_per_min_target = 12
"#,
        journal = quote(&dir.join("blocks.journal").display().to_string()),
        db = quote(&dir.join("warppool.sqlite").display().to_string()),
        http = options.http_port,
        rpc_url = quote(rpc_url.trim_end_matches('/')),
        user = quote(&auth.0),
        password = quote(&auth.1),
        zmq = quote(zmq),
        stratum = options.stratum_port,
    )
}

/// The pool's configuration for the demo (marked `demo`: the API and health say so).
fn demo_config(
    options: &DemoOptions,
    dir: &std::path::Path,
    chain: &warppool_loadgen::chain::ChainSimHandle,
) -> anyhow::Result<Config> {
    let text = config_text(
        options,
        dir,
        &chain.rpc_url(),
        &chain.rpc_auth(),
        &chain.zmq_endpoint(),
    );
    Ok(Config {
        demo: true,
        ..Config::from_toml(&text, std::iter::empty::<(String, String)>())
            .context("demo configuration")?
    })
}

/// Runs the demo until `stop` resolves or the duration passes.
///
/// # Errors
/// Start-up failures (ports in use, data directory).
pub async fn run_async(
    options: DemoOptions,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    anyhow::ensure!(
        (1..=DEMO_MINERS_MAX).contains(&options.miners),
        "--miners must be 1..={DEMO_MINERS_MAX}"
    );
    let (dir, temporary) = match &options.data_dir {
        Some(dir) => (dir.clone(), false),
        None => (
            std::env::temp_dir().join(format!("warppool-demo-{}", std::process::id())),
            true,
        ),
    };
    std::fs::create_dir_all(&dir)
        .with_context(|| format!("cannot create the data directory {}", dir.display()))?;

    let chain = ChainSim::start(ChainSimConfig {
        bits: REGTEST_BITS,
        block_interval: Some(options.block_interval),
        mempool_target: 32,
        mempool_refill_interval: Some(Duration::from_secs(2)),
        ..ChainSimConfig::default()
    })
    .await
    .context("cannot start the chain simulator")?;
    let daemon = Daemon::start(demo_config(&options, &dir, &chain)?).await?;
    let stratum = *daemon
        .pool()
        .local_addrs()
        .first()
        .context("no stratum port")?;
    let http = daemon.http_addr().context("no http api")?;
    {
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "warppool demo: regtest chain simulator, pool and {} simulated miners",
            options.miners
        );
        let _ = writeln!(out, "stratum: stratum+tcp://{stratum}");
        let _ = writeln!(out, "http: http://{http}/api/v1/status");
        let _ = writeln!(out, "chain simulator rpc: {}", chain.rpc_url());
        let _ = writeln!(out, "data directory: {}", dir.display());
        let _ = writeln!(out, "press Ctrl-C to stop");
        let _ = out.flush();
    }

    let miners = start_miners(&options, stratum).await?;
    let start_height = chain.height();
    let summary = |final_line: bool| {
        let (mut accepted, mut rejected, mut found) = (0, 0, 0);
        for m in &miners {
            let s = m.stats();
            accepted += s.accepted.load(Ordering::Relaxed);
            rejected += s.rejected.load(Ordering::Relaxed);
            found += s.blocks.load(Ordering::Relaxed);
        }
        let submitted = chain.submitted_blocks().len();
        let label = if final_line { "demo final" } else { "demo" };
        let mut out = std::io::stdout().lock();
        let _ = writeln!(
            out,
            "{label}: height={} (start {start_height}) shares accepted={accepted} rejected={rejected} \
             blocks found by miners={found} accepted by the node={submitted}",
            chain.height()
        );
        let _ = out.flush();
    };

    let deadline = async {
        match options.duration {
            Some(d) => tokio::time::sleep(d).await,
            None => std::future::pending().await,
        }
    };
    tokio::pin!(stop);
    tokio::pin!(deadline);
    let mut ticker = tokio::time::interval(Duration::from_secs(DEMO_SUMMARY_INTERVAL_SECS));
    ticker.tick().await;
    loop {
        tokio::select! {
            () = &mut stop => break,
            () = &mut deadline => break,
            _ = ticker.tick() => summary(false),
        }
    }
    summary(true);

    let stopped = tokio::task::spawn_blocking(move || {
        for m in miners {
            if let Err(e) = m.stop() {
                tracing::debug!(error = %e, "miner session ended");
            }
        }
    });
    let _ = stopped.await;
    let result = daemon.shutdown().await;
    drop(chain);
    if temporary {
        let _ = std::fs::remove_dir_all(&dir);
    }
    result?;
    println!("demo stopped");
    Ok(())
}

async fn start_miners(options: &DemoOptions, pool: SocketAddr) -> anyhow::Result<Vec<MinerHandle>> {
    let mut miners = Vec::with_capacity(options.miners);
    for index in 0..options.miners {
        let name = WORKER_NAMES[index % WORKER_NAMES.len()];
        let username = format!("{}.{name}{}", demo_address(index), index + 1);
        let config = MinerConfig {
            pool,
            username: username.clone(),
            password: "x".into(),
            user_agent: USER_AGENTS[index % USER_AGENTS.len()].into(),
            hashrate_hps: options.hashrate_hps,
        };
        let miner = tokio::task::spawn_blocking(move || miner::spawn(config))
            .await
            .context("miner start panicked")?
            .with_context(|| format!("cannot start miner {username}"))?;
        println!(
            "miner {username} ({}) connected",
            USER_AGENTS[index % USER_AGENTS.len()]
        );
        miners.push(miner);
    }
    Ok(miners)
}
