//! The Stratum data plane end to end over loopback: one shard, many connections submitting
//! pipelined real-format `mining.submit` lines, for io_uring vs forced polling and plain vs
//! TLS, all measured in the same run (report the ratios, not the absolute numbers).
//!
//! Rate mode: each connection mines a few real shares at set-up (difficulty 2^-16, about 65k
//! hashes each), then cycles through pre-built lines with known verdicts: its valid shares
//! (accepted the first time, duplicates after) and low-difficulty shares (random nonces).
//! Every verdict runs the full judging path (coinbase from the midstate, merkle branch,
//! header sha256d, target, duplicate set) — a rejection costs the same as an acceptance; the
//! verdict counts are printed. Each connection keeps a window of lines in flight (closed
//! loop): 16 for throughput, then 1 for latency; latency is from the write of a window to the
//! read of each reply, on the client's clock (so at 16 in flight it is mostly queueing: about
//! connections × 16 / rate).
//!
//! Run: `cargo bench -p warppool-bench --bench stratum_loopback` (about 60 s; prints two
//! markdown tables). `STRATUM_BENCH_SECS` sets the seconds per configuration (default 3, at
//! most 10), `STRATUM_BENCH_CONNECTIONS` the connections (default 128).

use std::{
    collections::BTreeMap,
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    sync::{Arc, Barrier},
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use serde_json::{Value, json};
use warppool_core::{CoinbaseConfig, Difficulty, Template, vardiff::VardiffConfig};
use warppool_hash::{sha256, sha256d, sha256d_header};
use warppool_net::{
    ListenerConfig, NetConfig, TlsFiles,
    stratum::{Fractional, JobSet, PortConfig, StratumConfig, StratumPlane, start_stratum},
};

const ADDRESS: &str = "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq";
/// Lines in flight per connection in the throughput rows (the shard's in-flight bound is 32);
/// the latency rows keep one in flight.
const WINDOWS: [usize; 2] = [16, 1];
/// Valid shares mined per connection at set-up.
const VALID_PER_CONNECTION: usize = 2;
/// Distinct lines each connection cycles through.
const CYCLE: usize = 32;
const CLIENT_THREADS: usize = 2;

fn hex(bytes: &[u8]) -> String {
    warppool_core::hex::encode(bytes)
}

fn rev_hex(hash: &[u8; 32]) -> String {
    let mut r = *hash;
    r.reverse();
    hex(&r)
}

/// A segwit template with 200 transactions (an 8-level merkle branch), network difficulty 1.
fn template() -> Arc<Template> {
    let txs: Vec<Vec<u8>> = (0..200u64)
        .map(|i| {
            let mut tx = Vec::with_capacity(64);
            tx.extend_from_slice(&1u32.to_le_bytes());
            tx.push(1);
            tx.extend_from_slice(&sha256(&i.to_le_bytes()));
            tx.extend_from_slice(&[0, 0, 0, 0, 0]);
            tx.extend_from_slice(&u32::MAX.to_le_bytes());
            tx.push(1);
            tx.extend_from_slice(&1000u64.to_le_bytes());
            tx.extend_from_slice(&[1, 0x51, 0, 0, 0, 0]);
            tx
        })
        .collect();
    let txids: Vec<[u8; 32]> = txs.iter().map(|t| sha256d(t)).collect();
    let mut wtxids = vec![[0u8; 32]];
    wtxids.extend_from_slice(&txids);
    let mut pre = [0u8; 64];
    pre[..32].copy_from_slice(&warppool_core::merkle::merkle_root(&wtxids));
    let entries: Vec<Value> = txs
        .iter()
        .zip(&txids)
        .map(|(t, id)| {
            json!({"data": hex(t), "txid": rev_hex(id), "hash": rev_hex(id), "depends": [],
                   "fee": 1000, "sigops": 4, "weight": 4 * t.len()})
        })
        .collect();
    let t = json!({
        "capabilities": ["proposal"], "version": 0x2000_0000u32,
        "rules": ["csv", "!segwit", "taproot"], "vbavailable": {}, "vbrequired": 0,
        "previousblockhash": rev_hex(&sha256d(b"bench tip")), "transactions": entries,
        "coinbaseaux": {}, "coinbasevalue": 312_700_000u64, "longpollid": "x",
        "target": "00000000ffff0000000000000000000000000000000000000000000000000000",
        "mintime": 1_764_000_000u32, "mutable": ["time", "transactions", "prevblock"],
        "noncerange": "00000000ffffffff", "sigoplimit": 80000, "sizelimit": 4_000_000,
        "weightlimit": 4_000_000, "curtime": 1_764_001_000u32, "bits": "1d00ffff",
        "height": 925_000,
        "default_witness_commitment": format!("6a24aa21a9ed{}", hex(&sha256d(&pre))),
    });
    Arc::new(Template::from_json(t.to_string().as_bytes()).expect("template parses"))
}

/// A stream a miner talks over (plain TCP or rustls over TCP).
trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

struct Conn {
    reader: BufReader<Box<dyn Stream>>,
    lines: Vec<Vec<u8>>,
    next: usize,
}

fn read_json(reader: &mut BufReader<Box<dyn Stream>>) -> Value {
    let mut line = String::new();
    reader.read_line(&mut line).expect("read");
    serde_json::from_str(&line).expect("json line")
}

fn send(reader: &mut BufReader<Box<dyn Stream>>, line: &str) {
    let s = reader.get_mut();
    s.write_all(line.as_bytes()).unwrap();
    s.write_all(b"\n").unwrap();
    s.flush().unwrap();
}

/// Subscribes, authorizes, waits for the first notify, mines the connection's lines.
fn set_up(stream: Box<dyn Stream>) -> Conn {
    let mut reader = BufReader::new(stream);
    send(
        &mut reader,
        r#"{"id":1,"method":"mining.subscribe","params":["bench/1.0"]}"#,
    );
    let sub = read_json(&mut reader);
    let en1 = warppool_core::hex::decode(sub["result"][1].as_str().unwrap()).unwrap();
    send(
        &mut reader,
        &format!(r#"{{"id":2,"method":"mining.authorize","params":["{ADDRESS}","x"]}}"#),
    );
    let notify = loop {
        let v = read_json(&mut reader);
        if v["method"] == "mining.notify" {
            break v;
        }
    };
    let p = &notify["params"];
    let s = |i: usize| p[i].as_str().unwrap();
    let unhex = |t: &str| warppool_core::hex::decode(t).unwrap();
    let swapped = unhex(s(1));
    let mut prevhash = [0u8; 32];
    for (out, word) in prevhash.chunks_exact_mut(4).zip(swapped.chunks_exact(4)) {
        out.copy_from_slice(&[word[3], word[2], word[1], word[0]]);
    }
    let branch: Vec<Vec<u8>> = p[4]
        .as_array()
        .unwrap()
        .iter()
        .map(|b| unhex(b.as_str().unwrap()))
        .collect();
    let version = u32::from_str_radix(s(5), 16).unwrap();
    let nbits = u32::from_str_radix(s(6), 16).unwrap();
    let ntime = u32::from_str_radix(s(7), 16).unwrap();
    let share_target = Difficulty::MIN.to_target();
    let mut lines = Vec::with_capacity(CYCLE);
    for en2 in 0..CYCLE as u32 {
        let mut coinbase = unhex(s(2));
        coinbase.extend_from_slice(&en1);
        coinbase.extend_from_slice(&en2.to_be_bytes());
        coinbase.extend_from_slice(&unhex(s(3)));
        let mut root = sha256d(&coinbase);
        for step in &branch {
            let mut pair = [0u8; 64];
            pair[..32].copy_from_slice(&root);
            pair[32..].copy_from_slice(step);
            root = sha256d(&pair);
        }
        let bits = (en2 % 4) << 13;
        let mut header = [0u8; 80];
        header[..4].copy_from_slice(&(version | bits).to_le_bytes());
        header[4..36].copy_from_slice(&prevhash);
        header[36..68].copy_from_slice(&root);
        header[68..72].copy_from_slice(&ntime.to_le_bytes());
        header[72..76].copy_from_slice(&nbits.to_le_bytes());
        let valid = (en2 as usize) < VALID_PER_CONNECTION;
        let nonce = (0..=u32::MAX)
            .find(|n| {
                header[76..].copy_from_slice(&n.to_le_bytes());
                share_target.is_met_by(&sha256d_header(&header)) == valid
            })
            .unwrap();
        lines.push(
            format!(
                "{{\"id\":{},\"method\":\"mining.submit\",\"params\":[\"{ADDRESS}\",\"{}\",\
                 \"{en2:08x}\",\"{}\",\"{nonce:08x}\",\"{bits:08x}\"]}}\n",
                100 + en2,
                s(0),
                s(7)
            )
            .into_bytes(),
        );
    }
    Conn {
        reader,
        lines,
        next: 0,
    }
}

struct Outcome {
    shares: u64,
    histogram: Histogram<u64>,
    verdicts: BTreeMap<String, u64>,
}

/// One client thread: closed loop over its connections until `until`.
fn drive(conns: &mut [Conn], window: usize, until: Instant) -> Outcome {
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    let mut verdicts = BTreeMap::new();
    let mut shares = 0;
    let mut batch = Vec::with_capacity(window * 200);
    let mut line = Vec::with_capacity(256);
    while Instant::now() < until {
        let mut sent_at = Vec::with_capacity(conns.len());
        for conn in conns.iter_mut() {
            batch.clear();
            for _ in 0..window {
                batch.extend_from_slice(&conn.lines[conn.next % CYCLE]);
                conn.next += 1;
            }
            conn.reader.get_mut().write_all(&batch).unwrap();
            conn.reader.get_mut().flush().unwrap();
            sent_at.push(Instant::now());
        }
        for (conn, sent) in conns.iter_mut().zip(&sent_at) {
            for _ in 0..window {
                line.clear();
                conn.reader.read_until(b'\n', &mut line).unwrap();
                let micros = sent.elapsed().as_micros() as u64;
                histogram.record(micros.max(1)).unwrap();
                let key = if line.windows(11).any(|w| w == b"\"result\":tr") {
                    "accepted"
                } else if line.windows(4).any(|w| w == b"[22,") {
                    "duplicate (22)"
                } else if line.windows(4).any(|w| w == b"[23,") {
                    "low difficulty (23)"
                } else {
                    "other"
                };
                *verdicts.entry(key.to_owned()).or_insert(0u64) += 1;
                shares += 1;
            }
        }
    }
    Outcome {
        shares,
        histogram,
        verdicts,
    }
}

struct Setup {
    cert_der: rustls::pki_types::CertificateDer<'static>,
    files: TlsFiles,
}

fn tls_setup() -> Setup {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = std::env::temp_dir().join(format!("warppool-bench-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let files = TlsFiles {
        cert_path: dir.join("cert.pem"),
        key_path: dir.join("key.pem"),
    };
    std::fs::write(&files.key_path, certified.signing_key.serialize_pem()).unwrap();
    std::fs::write(&files.cert_path, certified.cert.pem()).unwrap();
    Setup {
        cert_der: certified.cert.der().clone(),
        files,
    }
}

fn start(force_polling: bool, tls: Option<&Setup>) -> StratumPlane {
    let listener = ListenerConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        tls: tls.map(|s| s.files.clone()),
    };
    let mut net = NetConfig::new(vec![listener]);
    net.shards = Some(1);
    net.force_polling = force_polling;
    let d = Difficulty::MIN;
    let port = PortConfig {
        vardiff: VardiffConfig {
            difficulty_start: d,
            difficulty_min: d,
            difficulty_max: d,
            ..VardiffConfig::default()
        },
        fractional: Fractional::Always,
    };
    let jobs = JobSet::new(
        template(),
        1,
        true,
        bitcoin::Network::Bitcoin,
        CoinbaseConfig::solo(b"/bench/"),
    );
    start_stratum(net, StratumConfig::new(port), jobs).expect("plane starts")
}

fn connect(addr: SocketAddr, tls: Option<&Arc<ClientConfig>>) -> Box<dyn Stream> {
    let tcp = TcpStream::connect(addr).unwrap();
    tcp.set_nodelay(true).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    match tls {
        None => Box::new(tcp),
        Some(config) => {
            let conn =
                ClientConnection::new(Arc::clone(config), "localhost".try_into().unwrap()).unwrap();
            Box::new(StreamOwned::new(conn, tcp))
        }
    }
}

struct Row {
    name: String,
    shares_per_sec: f64,
    p50: u64,
    p99: u64,
    p999: u64,
    verdicts: BTreeMap<String, u64>,
}

fn run(
    name: &str,
    force_polling: bool,
    tls: Option<&Setup>,
    conns: usize,
    window: usize,
    secs: u64,
) -> Row {
    let plane = start(force_polling, tls);
    let client_config = tls.map(|s| {
        let mut roots = RootCertStore::empty();
        roots.add(s.cert_der.clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        Arc::new(
            ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        )
    });
    let addr = plane.local_addrs()[0];
    let barrier = Arc::new(Barrier::new(CLIENT_THREADS + 1));
    let threads: Vec<_> = (0..CLIENT_THREADS)
        .map(|t| {
            let barrier = Arc::clone(&barrier);
            let config = client_config.clone();
            let count = conns / CLIENT_THREADS + usize::from(t < conns % CLIENT_THREADS);
            std::thread::spawn(move || {
                let mut mine: Vec<Conn> = (0..count)
                    .map(|_| set_up(connect(addr, config.as_ref())))
                    .collect();
                barrier.wait();
                let until = Instant::now() + Duration::from_secs(secs);
                drive(&mut mine, window, until)
            })
        })
        .collect();
    barrier.wait();
    let started = Instant::now();
    let outcomes: Vec<Outcome> = threads.into_iter().map(|t| t.join().unwrap()).collect();
    let elapsed = started.elapsed().as_secs_f64();
    // Which path served the run: compio's driver and, for plain connections, the shard's own
    // io_uring ring or its epoll loop (with the ring's completion count as evidence).
    eprintln!(
        "{name}: driver {:?}, plain I/O {:?}, ring recv completions {}",
        plane.drivers(),
        plane.plain_io(),
        plane.counters_total().ring_recv_completions
    );
    plane.stop();
    let mut histogram = Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).unwrap();
    let mut verdicts = BTreeMap::new();
    let mut shares = 0;
    for o in outcomes {
        histogram.add(&o.histogram).unwrap();
        shares += o.shares;
        for (k, v) in o.verdicts {
            *verdicts.entry(k).or_insert(0) += v;
        }
    }
    Row {
        name: format!("{name}, {window} in flight"),
        shares_per_sec: shares as f64 / elapsed,
        p50: histogram.value_at_quantile(0.5),
        p99: histogram.value_at_quantile(0.99),
        p999: histogram.value_at_quantile(0.999),
        verdicts,
    }
}

fn main() {
    // `cargo bench` passes `--bench`; `cargo test --benches` passes nothing: run briefly.
    let benching = std::env::args().any(|a| a == "--bench");
    let secs: u64 = std::env::var("STRATUM_BENCH_SECS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if benching { 3 } else { 1 })
        .clamp(1, 10);
    let conns: usize = std::env::var("STRATUM_BENCH_CONNECTIONS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(if benching { 128 } else { 8 })
        .clamp(CLIENT_THREADS, 1024);
    let tls = tls_setup();
    println!(
        "\nStratum loopback: 1 shard, {conns} connections, {secs} s per configuration, \
         {CLIENT_THREADS} client threads on the same machine; ratios against the first row \
         of each block\n"
    );
    for window in WINDOWS {
        let rows = [
            run("io_uring, plain", false, None, conns, window, secs),
            run("polling, plain", true, None, conns, window, secs),
            run("io_uring, TLS", false, Some(&tls), conns, window, secs),
            run("polling, TLS", true, Some(&tls), conns, window, secs),
        ];
        print_table(&rows);
    }
}

fn print_table(rows: &[Row]) {
    let base = rows[0].shares_per_sec;
    println!("| configuration | shares/s | ratio | p50 µs | p99 µs | p99.9 µs | verdicts |");
    println!("|---|---:|---:|---:|---:|---:|---|");
    for r in rows {
        let verdicts: Vec<String> = r
            .verdicts
            .iter()
            .map(|(k, v)| format!("{k}: {v}"))
            .collect();
        println!(
            "| {} | {:.0} | {:.2} | {} | {} | {} | {} |",
            r.name,
            r.shares_per_sec,
            r.shares_per_sec / base,
            r.p50,
            r.p99,
            r.p999,
            verdicts.join(", ")
        );
    }
    println!();
}
