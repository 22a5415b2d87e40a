//! New-tip fan-out with many distinct payout scripts: the time from `publish` of a template on
//! a new tip until the last of `NEW_TIP_BENCH_CONNECTIONS` connections (default 1,000, each
//! authorized with its own payout address, so every shard builds one coinbase per connection)
//! has read its `mining.notify`, over loopback, with two shards.
//!
//! The template is mainnet-sized (`NEW_TIP_BENCH_TRANSACTIONS`, default 3,000 transactions):
//! what a shard does per payout script on a new tip (coinbase, witness commitment, job) is what
//! this measures. The client reads the connections in order on one thread; a connection's
//! notify is written when its shard reaches it, so the last read ends within a read of the
//! last shard's last notify.
//!
//! Run: `cargo bench -p warppool-bench --bench new_tip` (criterion, 10 samples; each sample is
//! one new tip).
//!
//! Measured 2026-12-03 on the 2-core development machine (shared with other builds; run with
//! `CARGO_PROFILE_BENCH_LTO=off CARGO_PROFILE_BENCH_CODEGEN_UNITS=16` to keep the build short),
//! defaults: 2.92 s (2.74–3.09) with the witness root recomputed per coinbase (issue 9, defect
//! 5), 14.8 ms (14.0–15.4) with it computed once per template.

use std::{
    io::{BufRead, BufReader, Write},
    net::{SocketAddr, TcpStream},
    sync::Arc,
    time::{Duration, Instant},
};

use bitcoin::hashes::Hash;
use criterion::{Criterion, criterion_group, criterion_main};
use serde_json::{Value, json};
use warppool_core::{CoinbaseConfig, Template};
use warppool_hash::{sha256, sha256d};
use warppool_net::{
    ListenerConfig, NetConfig,
    stratum::{JobSet, PortConfig, StratumConfig, StratumPlane, start_stratum},
};

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn hex(bytes: &[u8]) -> String {
    warppool_core::hex::encode(bytes)
}

fn rev_hex(hash: &[u8; 32]) -> String {
    let mut r = *hash;
    r.reverse();
    hex(&r)
}

/// A small non-witness transaction, distinct per `(tip, i)`.
fn transaction(tip: u64, i: u64) -> Vec<u8> {
    let mut tx = Vec::with_capacity(64);
    tx.extend_from_slice(&1u32.to_le_bytes());
    tx.push(1);
    tx.extend_from_slice(&sha256(&[tip.to_le_bytes(), i.to_le_bytes()].concat()));
    tx.extend_from_slice(&[0, 0, 0, 0, 0]);
    tx.extend_from_slice(&u32::MAX.to_le_bytes());
    tx.push(1);
    tx.extend_from_slice(&1000u64.to_le_bytes());
    tx.extend_from_slice(&[1, 0x51, 0, 0, 0, 0]);
    tx
}

/// A segwit template on tip `tip` with `count` transactions, network difficulty 1.
fn template(tip: u64, count: u64) -> Arc<Template> {
    let txs: Vec<Vec<u8>> = (0..count).map(|i| transaction(tip, i)).collect();
    let txids: Vec<[u8; 32]> = txs.iter().map(|t| sha256d(t)).collect();
    let mut wtxids = vec![[0u8; 32]];
    wtxids.extend_from_slice(&txids);
    let mut pre = [0u8; 64];
    pre[..32].copy_from_slice(&warppool_core::merkle::merkle_root(&wtxids));
    let entries: Vec<Value> = txs
        .iter()
        .zip(&txids)
        .map(|(t, id)| json!({"data": hex(t), "txid": rev_hex(id), "hash": rev_hex(id)}))
        .collect();
    let t = json!({
        "version": 0x2000_0000u32, "rules": ["csv", "!segwit", "taproot"],
        "previousblockhash": rev_hex(&sha256d(&tip.to_le_bytes())), "transactions": entries,
        "coinbasevalue": 312_500_000u64 + 1000 * count,
        "mintime": 1_764_000_000u32, "curtime": 1_764_001_000u32, "bits": "1d00ffff",
        "height": 925_000 + tip,
        "default_witness_commitment": format!("6a24aa21a9ed{}", hex(&sha256d(&pre))),
    });
    Arc::new(Template::from_json(t.to_string().as_bytes()).expect("template parses"))
}

/// A distinct mainnet P2WPKH address per index.
fn address(i: usize) -> String {
    let hash = sha256(&(i as u64).to_le_bytes());
    let mut program = [0u8; 20];
    program.copy_from_slice(&hash[..20]);
    let key = bitcoin::WPubkeyHash::from_byte_array(program);
    let script = bitcoin::ScriptBuf::new_p2wpkh(&key);
    bitcoin::Address::from_script(&script, bitcoin::Network::Bitcoin)
        .expect("a P2WPKH script has an address")
        .to_string()
}

fn job_set(template: Arc<Template>, generation: u64) -> JobSet {
    JobSet::new(
        template,
        generation,
        true,
        bitcoin::Network::Bitcoin,
        CoinbaseConfig::solo(b"/warppool-bench/"),
    )
}

fn send(reader: &mut BufReader<TcpStream>, line: &str) {
    let s = reader.get_mut();
    s.write_all(line.as_bytes()).unwrap();
    s.write_all(b"\n").unwrap();
}

/// Reads lines until a `mining.notify`.
fn read_notify(reader: &mut BufReader<TcpStream>, line: &mut String) {
    loop {
        line.clear();
        let n = reader.read_line(line).expect("read");
        assert!(n > 0, "connection closed");
        if line.contains("\"mining.notify\"") {
            return;
        }
    }
}

/// Connects, subscribes and authorizes with the connection's own address; waits for the
/// first notify.
fn connect(addr: SocketAddr, index: usize) -> BufReader<TcpStream> {
    let stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(Duration::from_secs(60)))
        .unwrap();
    stream.set_nodelay(true).unwrap();
    let mut reader = BufReader::new(stream);
    send(
        &mut reader,
        r#"{"id":1,"method":"mining.subscribe","params":["bench/1.0"]}"#,
    );
    let user = address(index);
    send(
        &mut reader,
        &format!(r#"{{"id":2,"method":"mining.authorize","params":["{user}","x"]}}"#),
    );
    read_notify(&mut reader, &mut String::new());
    reader
}

fn start(connections: usize, first: Arc<Template>) -> StratumPlane {
    let listener = ListenerConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        tls: None,
    };
    let mut net = NetConfig::new(vec![listener]);
    net.shards = Some(2);
    net.pin_shards = false;
    net.connections_per_ip_max = u32::try_from(connections + 16).expect("fits");
    let config = StratumConfig::new(PortConfig::default());
    start_stratum(net, config, job_set(first, 1)).expect("stratum plane starts")
}

fn bench_new_tip(c: &mut Criterion) {
    let connections = env_usize("NEW_TIP_BENCH_CONNECTIONS", 1_000);
    let transactions = env_usize("NEW_TIP_BENCH_TRANSACTIONS", 3_000) as u64;
    let plane = start(connections, template(0, transactions));
    let addr = plane.local_addrs()[0];
    let mut readers: Vec<_> = (0..connections).map(|i| connect(addr, i)).collect();
    let mut tip = 0u64;
    let mut group = c.benchmark_group("new_tip");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(20));
    group.warm_up_time(Duration::from_secs(1));
    let name = format!("{connections}_payout_scripts_{transactions}_transactions_2_shards");
    group.bench_function(name, |b| {
        b.iter_custom(|iters| {
            let mut total = Duration::ZERO;
            let mut line = String::new();
            for _ in 0..iters {
                tip += 1;
                let next = Arc::new(job_set(template(tip, transactions), tip + 1));
                let t0 = Instant::now();
                plane.publish(next);
                for reader in &mut readers {
                    read_notify(reader, &mut line);
                }
                total += t0.elapsed();
            }
            total
        });
    });
    group.finish();
    drop(readers);
    plane.stop();
}

criterion_group!(benches, bench_new_tip);
criterion_main!(benches);
