//! Storage wiring: `run::Daemon` on a real SQLite file in a temporary directory, the chain
//! simulator as the node and a simulated miner; after a flush the miner's shares are in the
//! database.

use std::time::Duration;

use warppool_control::{config::Config, run::Daemon, storage::StorageReader};
use warppool_loadgen::{
    chain::{ChainSim, ChainSimConfig},
    miner::{self, MinerConfig},
};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shares_from_a_simulated_miner_land_in_sqlite() {
    let dir = std::env::temp_dir().join(format!("warppool-storage-wiring-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let chain = ChainSim::start(ChainSimConfig::default()).await.unwrap();
    let (user, password) = chain.rpc_auth();
    let db = dir.join("pool.sqlite");
    let text = format!(
        r#"
version = 1
network = "regtest"
[pool]
shards = 1
[storage]
block_journal = "{journal}"
database = "{db}"
[[node]]
name = "sim"
rpc_url = "{url}"
rpc_user = "{user}"
rpc_password = "{password}"
zmq_hashblock = "{zmq}"
[[port]]
addr = "127.0.0.1:0"
difficulty_start = 0.0002
difficulty_min = 0.0001
fractional = "always"
"#,
        journal = dir.join("blocks.journal").display(),
        db = db.display(),
        url = chain.rpc_url().trim_end_matches('/'),
        zmq = chain.zmq_endpoint(),
    );
    let config = Config::from_toml(&text, std::iter::empty::<(String, String)>()).unwrap();
    let daemon = Daemon::start(config).await.unwrap();
    let pool = daemon.pool().local_addrs()[0];
    let worker = format!("{}.rig1", warppool_control::demo::demo_address(0));
    let miner = {
        let worker = worker.clone();
        tokio::task::spawn_blocking(move || {
            miner::spawn(MinerConfig {
                pool,
                username: worker,
                password: "x".into(),
                user_agent: "cgminer/4.11.1".into(),
                hashrate_hps: 200_000.0,
            })
        })
        .await
        .unwrap()
        .unwrap()
    };
    let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
    while miner
        .stats()
        .accepted
        .load(std::sync::atomic::Ordering::Relaxed)
        < 3
    {
        assert!(tokio::time::Instant::now() < deadline, "no accepted shares");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    tokio::task::spawn_blocking(move || miner.stop())
        .await
        .unwrap()
        .ok();
    daemon.shutdown().await.unwrap(); // flushes storage

    let reader = StorageReader::open(&db).unwrap();
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let minutes = reader.share_minutes(&worker, now - 600, now + 60).unwrap();
    let accepted: u64 = minutes.iter().map(|m| m.accepted_count).sum();
    assert!(accepted >= 3, "{minutes:?}");
    let row = reader.worker(&worker).unwrap().expect("worker recorded");
    assert_eq!(row.user_agent.as_deref(), Some("cgminer/4.11.1"));
    // The current minute counts once it is complete.
    let rate = reader
        .hashrate(
            None,
            warppool_control::storage::HashrateWindow::OneMinute,
            now + 60,
        )
        .unwrap();
    assert!(rate > 0.0);
    assert!(reader.best_share(&worker).unwrap().is_some());
    let _ = std::fs::remove_dir_all(&dir);
}
