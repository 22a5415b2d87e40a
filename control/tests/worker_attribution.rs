//! Worker attribution over a long uptime: connection → worker entries leave when their
//! connection closes, so a long-lived miner's shares stay named however many connections
//! came and went (before, the whole map was cleared at 65,536 authorizations and every live
//! connection's later shares went unnamed).

use warppool_control::{
    stats::{Recorder, SqliteRecorder},
    storage::{Storage, StorageConfig},
};
use warppool_core::Difficulty;
use warppool_core::plane::{ShareEvent, ShareStat};

fn share(connection: u64) -> ShareEvent {
    ShareEvent::Share(ShareStat {
        connection,
        difficulty: Difficulty::from_whole(1).unwrap(),
        reject: None,
        hash_difficulty: 2.0,
        block: false,
    })
}

fn authorized(connection: u64, username: &str) -> ShareEvent {
    ShareEvent::Authorized {
        connection,
        username: username.into(),
        user_agent: None,
        peer: std::net::SocketAddr::from(([127, 0, 0, 1], 40000)),
        local_port: 3333,
        tls: false,
    }
}

#[test]
fn a_long_lived_miner_keeps_its_name_after_70_000_connections_came_and_went() {
    let dir = std::env::temp_dir().join(format!("warppool-attribution-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let storage = Storage::open(StorageConfig::new(dir.join("pool.sqlite"))).unwrap();
    let recorder = SqliteRecorder::new(storage);
    recorder.on_shares(&[authorized(0, "bcrt1qlonglived.rig")]);
    // 70,000 short connections of another worker: each authorizes, shares once, closes.
    let churn: Vec<ShareEvent> = (1..=70_000u64)
        .flat_map(|c| {
            [
                authorized(c, "bcrt1qchurn.esp"),
                share(c),
                ShareEvent::Closed {
                    connection: c,
                    reason: warppool_core::plane::CloseReason::PeerClosed,
                },
            ]
        })
        .collect();
    for batch in churn.chunks(3_000) {
        recorder.on_shares(batch);
    }
    recorder.on_shares(&[share(0), share(0), share(0)]);
    recorder.flush();
    let reader = recorder.reader().unwrap();
    let minutes = |w: &str| {
        reader
            .share_minutes(w, 0, i64::MAX)
            .unwrap()
            .iter()
            .map(|m| m.accepted_count)
            .sum::<u64>()
    };
    assert_eq!(
        minutes("bcrt1qlonglived.rig"),
        3,
        "the live connection's shares are named"
    );
    assert_eq!(minutes("bcrt1qchurn.esp"), 70_000);
    // A share of a closed connection is not credited to anyone.
    recorder.on_shares(&[share(5)]);
    recorder.flush();
    assert_eq!(minutes("bcrt1qchurn.esp"), 70_000);
}
