//! Vardiff persistence in the Stratum session, over real sockets under both drivers: a
//! worker's stored difficulty (published by the control plane in
//! `StratumConfig::stored_difficulties`, keyed by username and user-agent family) is its first
//! `mining.set_difficulty`, clamped to the
//! port's range; a miner's own request (`d=`, suggest_difficulty) wins over it; and a
//! difficulty change is reported to the control plane as `ShareEvent::Difficulty`.

#[path = "support/harness.rs"]
mod harness;
#[path = "support/stratum.rs"]
mod stratum;

use std::{collections::HashMap, time::Duration};

use harness::both_drivers;
use serde_json::Value;
use stratum::*;
use warppool_core::{Difficulty, plane::CloseReason};
use warppool_net::stratum::{
    ShareEvent, StratumConfig, StratumPlane, UserAgentFamily, start_stratum,
};

const DEADLINE: Duration = Duration::from_secs(60);

fn d(value: f64) -> Difficulty {
    Difficulty::from_f64_lossy(value).unwrap()
}

/// A pool whose port runs 1..=4096 (start 8), with stored difficulties for three workers.
fn pool(force_polling: bool) -> StratumPlane {
    let listeners = vec![warppool_net::ListenerConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        tls: None,
    }];
    let config = StratumConfig::new(range_port(d(8.0), d(1.0), d(4096.0)));
    // Keyed by username and device family (the clients below subscribe as `test/1.0`).
    let key = |user: &str| {
        UserAgentFamily::from_user_agent(Some("test/1.0"))
            .key(user)
            .into_boxed_str()
    };
    let stored: HashMap<Box<str>, Difficulty> = [
        (key(&format!("{ADDRESS}.stored")), d(512.0)),
        (key(&format!("{ADDRESS}.huge")), d(1_000_000.0)),
        (key(&format!("{ADDRESS}.asks")), d(512.0)),
    ]
    .into_iter()
    .collect();
    config.stored_difficulties.publish(stored);
    assert_eq!(config.stored_difficulties.len(), 3);
    let jobs = job_set(template(BITS_DIFF1, 1, 20), 1, true);
    start_stratum(net_config(listeners, force_polling), config, jobs).expect("plane starts")
}

/// subscribe + authorize with `password`; returns the first set_difficulty's value.
fn first_difficulty(plane: &StratumPlane, user: &str, password: &str) -> f64 {
    let mut m = Miner::connect(plane.local_addrs()[0]);
    let r = m.request(
        1,
        r#"{"id":1,"method":"mining.subscribe","params":["test/1.0"]}"#,
    );
    m.take_subscribe(&r);
    let line =
        format!(r#"{{"id":2,"method":"mining.authorize","params":["{user}","{password}"]}}"#);
    let r = m.request(2, &line);
    assert_eq!(r["result"], Value::Bool(true), "{r}");
    m.wait_jobs(1);
    let first = m
        .received
        .iter()
        .map(|l| serde_json::from_str::<Value>(l).unwrap())
        .find(|v| v["method"] == "mining.set_difficulty")
        .expect("a set_difficulty before the first notify");
    first["params"][0].as_f64().unwrap()
}

#[test]
fn stored_difficulty_is_the_start_unless_the_miner_asks() {
    both_drivers(DEADLINE, |force_polling| {
        let plane = pool(force_polling);
        // Stored: the first set_difficulty is the stored value.
        assert_eq!(
            first_difficulty(&plane, &format!("{ADDRESS}.stored"), "x"),
            512.0
        );
        // Stored above the port's maximum: clamped.
        assert_eq!(
            first_difficulty(&plane, &format!("{ADDRESS}.huge"), "x"),
            4096.0
        );
        // The miner's own start difficulty wins over the stored one.
        assert_eq!(
            first_difficulty(&plane, &format!("{ADDRESS}.asks"), "d=64"),
            64.0
        );
        // The client's minimum is a floor under the stored value.
        assert_eq!(
            first_difficulty(&plane, &format!("{ADDRESS}.stored"), "md=1024"),
            1024.0
        );
        // Unknown worker, and the bare address (another key): the port's start.
        assert_eq!(
            first_difficulty(&plane, &format!("{ADDRESS}.new"), "x"),
            8.0
        );
        assert_eq!(first_difficulty(&plane, ADDRESS, "x"), 8.0);
        plane.stop();
    });
}

#[test]
fn a_suggest_before_authorize_wins_and_changes_are_reported() {
    both_drivers(DEADLINE, |force_polling| {
        let plane = pool(force_polling);
        let user = format!("{ADDRESS}.stored");
        let mut m = Miner::connect(plane.local_addrs()[0]);
        let r = m.request(
            1,
            r#"{"id":1,"method":"mining.subscribe","params":["test/1.0"]}"#,
        );
        m.take_subscribe(&r);
        let r = m.request(
            3,
            r#"{"id":3,"method":"mining.suggest_difficulty","params":[32]}"#,
        );
        assert_eq!(r["result"], Value::Bool(true), "{r}");
        let line = format!(r#"{{"id":2,"method":"mining.authorize","params":["{user}","x"]}}"#);
        let r = m.request(2, &line);
        assert_eq!(r["result"], Value::Bool(true), "{r}");
        m.wait_jobs(1);
        assert_eq!(m.difficulty, 32.0);
        // A change while working is reported once, with the new value.
        let r = m.request(
            4,
            r#"{"id":4,"method":"mining.suggest_difficulty","params":[256]}"#,
        );
        assert_eq!(r["result"], Value::Bool(true), "{r}");
        m.wait_jobs(2);
        assert_eq!(m.difficulty, 256.0);
        let mut reported = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while reported.is_empty() && std::time::Instant::now() < deadline {
            for queue in plane.stats_receivers() {
                while let Ok(batch) = queue.try_recv() {
                    for event in batch.iter() {
                        if let ShareEvent::Difficulty { difficulty, .. } = event {
                            reported.push(difficulty.to_f64_lossy());
                        }
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(reported, vec![256.0]);
        plane.stop();
    });
}

#[test]
fn an_authorized_connection_that_closes_is_reported_closed_once_with_its_peer_and_reason() {
    both_drivers(DEADLINE, |force_polling| {
        let plane = pool(force_polling);
        first_difficulty(&plane, &format!("{ADDRESS}.closes"), "x");
        // A connection that never authorized is not reported.
        drop(Miner::connect(plane.local_addrs()[0]));
        let mut authorized = Vec::new();
        let mut closed = Vec::new();
        let deadline = std::time::Instant::now() + Duration::from_secs(10);
        while closed.is_empty() && std::time::Instant::now() < deadline {
            for queue in plane.stats_receivers() {
                while let Ok(batch) = queue.try_recv() {
                    for event in batch.iter() {
                        match event {
                            ShareEvent::Authorized {
                                connection,
                                peer,
                                local_port,
                                tls,
                                ..
                            } => {
                                assert!(peer.ip().is_loopback() && peer.port() != 0, "{peer}");
                                assert_eq!(*local_port, plane.local_addrs()[0].port());
                                assert!(!tls);
                                authorized.push(*connection);
                            }
                            ShareEvent::Closed { connection, reason } => {
                                assert_eq!(*reason, CloseReason::PeerClosed);
                                closed.push(*connection);
                            }
                            _ => {}
                        }
                    }
                }
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        assert_eq!(authorized.len(), 1);
        assert_eq!(closed, authorized, "the authorized connection, once");
        plane.stop();
    });
}
