//! The load generator against the real pool (`warppool_control::run::Pool` on port 0, data
//! plane included) and the chain simulator: real sockets throughout. Every wait is bounded and
//! no assertion is about timing. A tiny fake pool that accepts everything shows that a wrong
//! verdict is caught.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;
use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};
use tokio::net::TcpListener;
use warppool_control::{config::Config, run::Pool, stats::MemoryStats};
use warppool_loadgen::chain::{ChainSim, ChainSimConfig, ChainSimHandle};
use warppool_loadgen::load::{self, Mode, Personality, RunConfig, Scenario};

/// The lowest share difficulty WarpPool represents (2^-16): ~65k hashes per share.
const DIFFICULTY: f64 = 1.0 / 65536.0;

/// A simulator with a mainnet-like target: random nonces never make blocks, so the tip moves
/// only when a test asks.
async fn start_sim() -> ChainSimHandle {
    ChainSim::start(ChainSimConfig {
        bits: 0x1d00_ffff,
        skip_own_pow: true,
        mempool_refill_interval: None,
        seed: 11,
        ..ChainSimConfig::default()
    })
    .await
    .expect("chain simulator starts")
}

fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("warppool-loadgen-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    dir
}

/// A self-signed certificate for 127.0.0.1, written as PEM files.
fn self_signed(dir: &Path) -> (PathBuf, PathBuf) {
    let cert = rcgen::generate_simple_self_signed(vec!["127.0.0.1".into(), "localhost".into()])
        .expect("certificate");
    let (c, k) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&c, cert.cert.pem()).expect("write cert");
    std::fs::write(&k, cert.signing_key.serialize_pem()).expect("write key");
    (c, k)
}

/// The pool at a fixed difficulty (vardiff pinned), plain, and TLS when `tls` is set.
async fn start_pool(sim: &ChainSimHandle, name: &str, tls: bool) -> (Pool, PathBuf) {
    let dir = temp_dir(name);
    let (user, password) = sim.rpc_auth();
    let tls_port = if tls {
        let (c, k) = self_signed(&dir);
        format!(
            "[[port]]\naddr = \"127.0.0.1:0\"\ndifficulty_start = {DIFFICULTY}\n\
             difficulty_min = {DIFFICULTY}\ndifficulty_max = {DIFFICULTY}\n\
             fractional = \"always\"\ntls_cert = \"{}\"\ntls_key = \"{}\"\n",
            c.display(),
            k.display()
        )
    } else {
        String::new()
    };
    let text = format!(
        r#"
version = 1
network = "regtest"
[pool]
shards = 1
coinbase_tag = "/loadgen-test/"
[template]
refresh_secs = 600
best_block_poll_ms = 200
age_secs_max = 1200
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
difficulty_start = {DIFFICULTY}
difficulty_min = {DIFFICULTY}
difficulty_max = {DIFFICULTY}
fractional = "always"
{tls_port}
"#,
        journal = dir.join("blocks.journal").display(),
        db = dir.join("db.sqlite").display(),
        url = sim.rpc_url(),
        zmq = sim.zmq_endpoint(),
    );
    let config = Config::from_toml(&text, Vec::new()).expect("valid config");
    let pool = Pool::start(config, Arc::new(MemoryStats::default()))
        .await
        .expect("pool starts");
    (pool, dir)
}

async fn shutdown(pool: Pool, dir: PathBuf) {
    tokio::time::timeout(Duration::from_secs(20), pool.shutdown())
        .await
        .expect("shutdown within 20 s")
        .expect("clean shutdown");
    let _ = std::fs::remove_dir_all(dir);
}

fn config(target: std::net::SocketAddr, scenario: Scenario, miners: usize) -> RunConfig {
    RunConfig {
        target,
        scenario,
        miners,
        duration: Duration::from_secs(4),
        ramp: Duration::from_millis(200),
        sources: 2,
        reply_timeout: Duration::from_secs(5),
        ..RunConfig::default()
    }
}

/// Every field of the report contract (perf/ relies on it), with its JSON type.
fn assert_contract(r: &Value) {
    let text = serde_json::to_string(r).expect("serialises");
    let r: Value = serde_json::from_str(&text).expect("the report parses");
    for (k, ty) in [
        ("tool", "s"),
        ("version", "s"),
        ("scenario", "s"),
        ("target", "s"),
        ("tls", "b"),
        ("mode", "s"),
        ("personality", "s"),
        ("started_unix_ms", "n"),
        ("duration_s", "n"),
    ] {
        let v = &r[k];
        let ok = match ty {
            "s" => v.is_string(),
            "b" => v.is_boolean(),
            _ => v.is_number(),
        };
        assert!(ok, "{k} is {v}");
    }
    assert_eq!(r["tool"], "warppool-loadgen");
    let c = &r["connections"];
    for k in [
        "requested",
        "established",
        "failed",
        "subscribed",
        "disconnected_by_pool",
    ] {
        assert!(c[k].is_u64(), "connections.{k}: {c}");
    }
    let t = &c["time_to_all_subscribed_ms"];
    assert!(t.is_number() || t.is_null(), "{c}");
    let s = &r["shares"];
    for k in [
        "submitted",
        "accepted",
        "timeouts",
        "valid_shortfall",
        "grind_queue_full",
    ] {
        assert!(s[k].is_u64(), "shares.{k}: {s}");
    }
    for k in ["21", "22", "23", "other"] {
        assert!(s["rejected"][k].is_u64(), "shares.rejected.{k}: {s}");
    }
    for k in ["accepted_per_s", "submitted_per_s"] {
        assert!(s[k].is_number(), "shares.{k}: {s}");
    }
    for k in ["valid_rejected", "invalid_accepted"] {
        assert!(s["pool_errors"][k].is_u64(), "shares.pool_errors.{k}: {s}");
    }
    for h in [
        "connect_to_first_notify",
        "submit_to_reply",
        "submit_to_reply_handled",
        "new_tip_to_clean_jobs",
        "new_tip_to_clean_jobs_handled",
    ] {
        let h = &r["latency_us"][h];
        assert!(h["count"].is_u64(), "{h}");
        for k in ["p50", "p90", "p99", "p999", "max"] {
            assert!(h[k].is_u64() || h[k].is_null(), "{k} in {h}");
            assert_eq!(h[k].is_null(), h["count"] == 0, "{k} in {h}");
        }
    }
    for k in ["connect", "io", "protocol"] {
        assert!(r["errors"][k].is_u64(), "errors.{k}");
    }
    for p in Personality::ALL {
        assert!(r["personalities"][p.name()].is_u64(), "personalities.{p}");
    }
}

fn u(v: &Value) -> u64 {
    v.as_u64().unwrap_or_else(|| panic!("not a count: {v}"))
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_personality_handshakes_and_gets_real_shares_accepted() {
    let sim = start_sim().await;
    let (pool, dir) = start_pool(&sim, "real", false).await;
    let target = pool.local_addrs()[0];
    let cfg = RunConfig {
        mode: Mode::Real,
        real_hashrate_hps: Some(400_000.0),
        duration: Duration::from_secs(6),
        ..config(target, Scenario::Steady, 18)
    };
    let report = load::run(cfg).await.expect("run").json;
    print!("{}", serde_json::to_string_pretty(&report).expect("json"));
    assert_contract(&report);
    let c = &report["connections"];
    assert_eq!(u(&c["subscribed"]), 18, "{c}");
    assert_eq!(u(&c["authorized"]), 18, "{c}");
    assert_eq!(u(&report["errors"]["protocol"]), 0);
    let s = &report["shares"];
    assert_eq!(u(&s["pool_errors"]["valid_rejected"]), 0, "{s}");
    assert_eq!(u(&s["pool_errors"]["invalid_accepted"]), 0, "{s}");
    assert_eq!(
        // A share sent just before a block found in the run changed the tip is rejected as
        // stale (21) and counted as a stale race, not as a pool error.
        u(&s["accepted"]) + u(&s["stale_races"]),
        u(&s["submitted"]) - u(&s["timeouts"]) - u(&s["unanswered_at_stop"]),
        "{s}"
    );
    for p in Personality::ALL {
        assert_eq!(u(&report["personalities"][p.name()]), 2, "{p}");
        let by = &report["shares_by_personality"][p.name()];
        assert!(u(&by["accepted"]) > 0, "{p}: {by}");
        assert_eq!(u(&by["rejected"]), 0, "{p}: {by}");
    }
    shutdown(pool, dir).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn rate_mode_verdicts_match_the_pool_including_injected_duplicates_and_stale_shares() {
    let sim = start_sim().await;
    let (pool, dir) = start_pool(&sim, "rate", false).await;
    let target = pool.local_addrs()[0];
    // Bursts of 3 submits per write (the pool answers them from one read).
    let cfg = RunConfig {
        shares_per_min: 600.0,
        max_inflight: 4,
        burst: 3,
        valid_fraction: 0.1,
        duplicate_fraction: 0.15,
        stale_fraction: 0.15,
        ..config(target, Scenario::Steady, 27)
    };
    // A new tip mid-run gives the stale injection jobs from an older tip.
    let run = tokio::spawn(load::run(cfg));
    tokio::time::sleep(Duration::from_secs(2)).await;
    sim.mine_network_block();
    let report = run.await.expect("joined").expect("run").json;
    print!("{}", serde_json::to_string_pretty(&report).expect("json"));
    assert_contract(&report);
    assert_eq!(report["settings"]["burst"], 3);
    let s = &report["shares"];
    assert!(u(&s["submitted"]) > 200, "{s}");
    assert_eq!(u(&s["pool_errors"]["valid_rejected"]), 0, "{s}");
    assert_eq!(u(&s["pool_errors"]["invalid_accepted"]), 0, "{s}");
    assert_eq!(u(&s["reason_mismatch"]), 0, "{s}");
    assert_eq!(u(&s["timeouts"]), 0, "{s}");
    for code in ["21", "22", "23"] {
        assert!(u(&s["rejected"][code]) > 0, "no {code} in {s}");
    }
    assert!(u(&s["accepted"]) > 0, "{s}");
    assert_eq!(u(&report["errors"]["protocol"]), 0);
    shutdown(pool, dir).await;
}

/// Grinding runs on the dedicated grinder threads (`--hash-threads 2`): real mode's slices
/// and rate mode's stock of valid shares still get every verdict right against the real pool.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn valid_shares_ground_on_the_grinder_threads_get_the_right_verdicts() {
    let sim = start_sim().await;
    let (pool, dir) = start_pool(&sim, "grinders", false).await;
    let target = pool.local_addrs()[0];

    let real = RunConfig {
        mode: Mode::Real,
        real_hashrate_hps: Some(300_000.0),
        hash_threads: 2,
        ..config(target, Scenario::Steady, 9)
    };
    let report = load::run(real).await.expect("real run").json;
    assert_contract(&report);
    assert_eq!(report["settings"]["hash_threads"], 2);
    let s = &report["shares"];
    assert!(u(&s["hashes"]) > 0, "{s}");
    assert!(u(&s["accepted"]) > 0, "{s}");
    assert_eq!(u(&s["pool_errors"]["valid_rejected"]), 0, "{s}");
    assert_eq!(u(&s["pool_errors"]["invalid_accepted"]), 0, "{s}");
    assert_eq!(
        // A share sent just before a block found in the run changed the tip is rejected as
        // stale (21) and counted as a stale race, not as a pool error.
        u(&s["accepted"]) + u(&s["stale_races"]),
        u(&s["submitted"]) - u(&s["timeouts"]) - u(&s["unanswered_at_stop"]),
        "{s}"
    );
    assert_eq!(u(&report["errors"]["protocol"]), 0);

    let rate = RunConfig {
        shares_per_min: 300.0,
        max_inflight: 2,
        valid_fraction: 1.0,
        hash_threads: 2,
        ..config(target, Scenario::Steady, 12)
    };
    let report = load::run(rate).await.expect("rate run").json;
    print!("{}", serde_json::to_string_pretty(&report).expect("json"));
    assert_contract(&report);
    let s = &report["shares"];
    assert!(u(&s["submitted"]) > 50, "{s}");
    assert!(u(&s["accepted"]) > 0, "{s}");
    assert_eq!(u(&s["pool_errors"]["valid_rejected"]), 0, "{s}");
    assert_eq!(u(&s["pool_errors"]["invalid_accepted"]), 0, "{s}");
    assert_eq!(u(&s["reason_mismatch"]), 0, "{s}");
    assert_eq!(u(&s["timeouts"]), 0, "{s}");
    // Every submit is either a stocked valid share or a counted shortfall (random nonce).
    let explained =
        u(&s["accepted"]) + u(&s["valid_shortfall"]) + u(&s["unchecked"]) + u(&s["stale_races"]);
    assert!(explained >= u(&s["submitted"]), "{s}");
    assert!(u(&s["rejected"]["23"]) <= u(&s["valid_shortfall"]), "{s}");
    assert_eq!(u(&report["errors"]["protocol"]), 0);
    shutdown(pool, dir).await;
}

/// A pool that sends one job at difficulty 1 and accepts every share.
async fn accept_everything_pool() -> std::net::SocketAddr {
    let listener = TcpListener::bind("127.0.0.1:0").await.expect("bind");
    let addr = listener.local_addr().expect("addr");
    tokio::spawn(async move {
        while let Ok((sock, _)) = listener.accept().await {
            tokio::spawn(async move {
                let (read, mut write) = sock.into_split();
                let mut lines = BufReader::new(read).lines();
                while let Ok(Some(line)) = lines.next_line().await {
                    let Ok(v) = serde_json::from_str::<Value>(&line) else {
                        return;
                    };
                    let id = &v["id"];
                    let out = match v["method"].as_str().unwrap_or("") {
                        "mining.configure" => format!(
                            "{{\"id\":{id},\"result\":{{\"version-rolling\":true,\
                             \"version-rolling.mask\":\"1fffe000\"}},\"error\":null}}\n"
                        ),
                        "mining.subscribe" => format!(
                            "{{\"id\":{id},\"result\":[[[\"mining.notify\",\"1\"]],\"0a0b0c0d\",4],\
                             \"error\":null}}\n{{\"id\":null,\"method\":\"mining.set_difficulty\",\
                             \"params\":[1]}}\n{{\"id\":null,\"method\":\"mining.notify\",\
                             \"params\":[\"1\",\"{}\",\"01000000\",\"ffffffff\",[],\"20000000\",\
                             \"1d00ffff\",\"6700000a\",true]}}\n",
                            "00".repeat(32)
                        ),
                        _ => format!("{{\"id\":{id},\"result\":true,\"error\":null}}\n"),
                    };
                    if write.write_all(out.as_bytes()).await.is_err() {
                        return;
                    }
                }
            });
        }
    });
    addr
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pool_accepting_invalid_shares_is_reported_as_pool_errors() {
    let target = accept_everything_pool().await;
    let cfg = RunConfig {
        shares_per_min: 600.0,
        duration: Duration::from_secs(2),
        ..config(target, Scenario::Steady, 9)
    };
    let report = load::run(cfg).await.expect("run").json;
    assert_contract(&report);
    let s = &report["shares"];
    assert!(u(&s["submitted"]) > 0, "{s}");
    // Random nonces at difficulty 1: every share is below the target.
    assert_eq!(
        u(&s["pool_errors"]["invalid_accepted"]),
        u(&s["accepted"]),
        "{s}"
    );
    assert!(u(&s["pool_errors"]["invalid_accepted"]) > 0, "{s}");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn storms_new_tips_idle_and_bad_input_against_the_pool() {
    let sim = start_sim().await;
    let (pool, dir) = start_pool(&sim, "storms", false).await;
    let target = pool.local_addrs()[0];

    // Connect storm: 300 connections within half a second.
    let cfg = RunConfig {
        ramp: Duration::from_millis(500),
        duration: Duration::from_secs(20),
        ..config(target, Scenario::ConnectStorm, 300)
    };
    let r = load::run(cfg).await.expect("run").json;
    assert_contract(&r);
    let c = &r["connections"];
    assert_eq!(u(&c["established"]), 300, "{c}");
    assert_eq!(u(&c["failed"]), 0, "{c}");
    assert_eq!(u(&c["subscribed"]), 300, "{c}");
    assert!(c["time_to_all_subscribed_ms"].is_number(), "{c}");
    assert_eq!(u(&r["latency_us"]["connect_to_first_notify"]["count"]), 300);

    // Reconnect storm: 100 miners, two rounds.
    let cfg = RunConfig {
        rounds: 2,
        duration: Duration::from_secs(20),
        ..config(target, Scenario::ReconnectStorm, 100)
    };
    let r = load::run(cfg).await.expect("run").json;
    assert_contract(&r);
    let rounds = r["reconnect"]["rounds"].as_array().expect("rounds");
    assert_eq!(rounds.len(), 2, "{}", r["reconnect"]);
    assert!(rounds.iter().all(|x| x["complete"] == true), "{rounds:?}");
    assert_eq!(u(&r["reconnect"]["attempts"]), 200);
    assert_eq!(u(&r["latency_us"]["connect_to_first_notify"]["count"]), 300);

    // New tips: a block every 700 ms; every connection sees clean_jobs for each.
    let (user, password) = sim.rpc_auth();
    let cfg = RunConfig {
        node_rpc: Some(sim.rpc_url()),
        node_auth: Some(format!("{user}:{password}")),
        tip_interval: Duration::from_millis(700),
        shares_per_min: 0.0,
        ..config(target, Scenario::NewTip, 50)
    };
    let height = sim.height();
    let r = load::run(cfg).await.expect("run").json;
    assert_contract(&r);
    let tips = u(&r["new_tip"]["triggered"]);
    assert!(tips >= 2, "{}", r["new_tip"]);
    assert_eq!(u64::from(sim.height() - height), tips);
    let h = &r["latency_us"]["new_tip_to_clean_jobs"];
    assert_eq!(u(&h["count"]), 50 * tips, "{h}");
    assert_eq!(u(&r["errors"]["protocol"]), 0);

    // Idle: subscribed and authorized, nothing submitted.
    let r = load::run(RunConfig {
        duration: Duration::from_secs(2),
        ..config(target, Scenario::Idle, 60)
    })
    .await
    .expect("run")
    .json;
    assert_contract(&r);
    assert_eq!(u(&r["connections"]["authorized"]), 60);
    assert_eq!(u(&r["shares"]["submitted"]), 0);

    // Bad input on a quarter of the connections; the others keep getting answers.
    let cfg = RunConfig {
        bad_fraction: 0.25,
        shares_per_min: 300.0,
        duration: Duration::from_secs(3),
        ..config(target, Scenario::BadInput, 40)
    };
    let r = load::run(cfg).await.expect("run").json;
    assert_contract(&r);
    assert_eq!(u(&r["bad_input"]["connections"]), 10, "{}", r["bad_input"]);
    let s = &r["shares"];
    assert!(u(&s["submitted"]) > 0, "{s}");
    assert_eq!(u(&s["timeouts"]), 0, "{s}");
    assert_eq!(u(&s["pool_errors"]["valid_rejected"]), 0, "{s}");
    assert_eq!(u(&s["pool_errors"]["invalid_accepted"]), 0, "{s}");
    assert_eq!(u(&r["connections"]["subscribed"]), 30);
    shutdown(pool, dir).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn tls_with_a_self_signed_certificate() {
    let sim = start_sim().await;
    let (pool, dir) = start_pool(&sim, "tls", true).await;
    let target = pool.local_addrs()[1];
    let cfg = RunConfig {
        tls: true,
        tls_insecure: true,
        shares_per_min: 300.0,
        ..config(target, Scenario::Steady, 18)
    };
    let r = load::run(cfg).await.expect("run").json;
    assert_contract(&r);
    assert_eq!(r["tls"], true);
    assert_eq!(u(&r["connections"]["subscribed"]), 18);
    let s = &r["shares"];
    assert!(u(&s["submitted"]) > 0, "{s}");
    assert_eq!(u(&s["timeouts"]), 0, "{s}");
    assert_eq!(u(&s["pool_errors"]["valid_rejected"]), 0, "{s}");
    assert_eq!(u(&s["pool_errors"]["invalid_accepted"]), 0, "{s}");

    // With the certificate as the CA and the name in it, verification passes too.
    let cfg = RunConfig {
        tls: true,
        tls_ca: Some(dir.join("cert.pem")),
        tls_server_name: Some("localhost".into()),
        duration: Duration::from_secs(1),
        ..config(target, Scenario::Idle, 3)
    };
    let r = load::run(cfg).await.expect("run").json;
    assert_eq!(
        u(&r["connections"]["authorized"]),
        3,
        "{}",
        r["connections"]
    );
    shutdown(pool, dir).await;
}

#[tokio::test]
async fn non_loopback_targets_and_oversized_runs_are_refused() {
    let cfg = RunConfig {
        target: "192.0.2.1:3333".parse().expect("addr"),
        ..RunConfig::default()
    };
    let err = load::run(cfg).await.expect_err("refused").to_string();
    assert!(err.contains("loopback"), "{err}");
    let limit = load::raise_fd_limit().expect("limit");
    let cfg = RunConfig {
        miners: usize::try_from(limit).expect("fits"),
        ..RunConfig::default()
    };
    let err = load::validate(&cfg, limit).expect_err("refused");
    assert!(err.contains("file descriptor"), "{err}");

    let refused = |cfg: RunConfig, what: &str| {
        let err = load::validate(&cfg, 20_000).expect_err(what);
        assert!(err.contains(what), "{what}: {err}");
    };
    refused(
        RunConfig {
            scenario: Scenario::NewTip,
            ..RunConfig::default()
        },
        "--node-rpc",
    );
    refused(
        RunConfig {
            scenario: Scenario::NewTip,
            node_rpc: Some("http://192.0.2.1:18443".into()),
            ..RunConfig::default()
        },
        "loopback",
    );
    refused(
        RunConfig {
            tls: true,
            ..RunConfig::default()
        },
        "--tls-insecure",
    );
    refused(
        RunConfig {
            duration: Duration::from_secs(3601),
            ..RunConfig::default()
        },
        "--duration-s",
    );
    refused(
        RunConfig {
            duplicate_fraction: 0.7,
            stale_fraction: 0.7,
            ..RunConfig::default()
        },
        "--stale-fraction",
    );
    assert_eq!(load::validate(&RunConfig::default(), 20_000), Ok(()));
}
