//! Stratum test support: templates, a pool on loopback, and a miner client that really mines
//! (at tiny share difficulty) with `warppool_hash`.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "a shared test module: each test binary uses a different part of it"
)]

use std::{
    collections::HashMap,
    io::{BufRead, BufReader, Read, Write},
    net::{SocketAddr, TcpStream},
    sync::Arc,
    time::Duration,
};

use serde_json::{Value, json};
use warppool_core::{CoinbaseConfig, Difficulty, Template, vardiff::VardiffConfig};
use warppool_hash::{sha256d, sha256d_header};
use warppool_net::{
    NetConfig,
    stratum::{Fractional, JobSet, PortConfig, StratumConfig, StratumPlane, start_stratum},
};

/// A mainnet P2WPKH address (BIP173 test vector).
pub const ADDRESS: &str = "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq";
/// A testnet address: refused on a mainnet job set.
pub const TESTNET_ADDRESS: &str = "tb1qw508d6qejxtdg4y5r3zarvary0c5xw7kxpjzsx";
/// Network difficulty 1: a share at `Difficulty::MIN` is never a block in practice.
pub const BITS_DIFF1: &str = "1d00ffff";
/// Regtest: about half of all hashes are blocks.
pub const BITS_REGTEST: &str = "207fffff";

fn hex(bytes: &[u8]) -> String {
    warppool_core::hex::encode(bytes)
}

fn rev_hex(hash: &[u8; 32]) -> String {
    let mut r = *hash;
    r.reverse();
    hex(&r)
}

/// A tiny non-witness transaction, distinct per `i`.
fn transaction(i: u64) -> Vec<u8> {
    let mut tx = Vec::with_capacity(64);
    tx.extend_from_slice(&1u32.to_le_bytes());
    tx.push(1);
    tx.extend_from_slice(&warppool_hash::sha256(&i.to_le_bytes()));
    tx.extend_from_slice(&0u32.to_le_bytes());
    tx.push(0);
    tx.extend_from_slice(&u32::MAX.to_le_bytes());
    tx.push(1);
    tx.extend_from_slice(&1000u64.to_le_bytes());
    tx.extend_from_slice(&[1, 0x51]);
    tx.extend_from_slice(&0u32.to_le_bytes());
    tx
}

/// A segwit template in Bitcoin Core's format: `transactions` transactions, `bits`, and a
/// previous block hash derived from `tip`.
pub fn template(bits: &str, tip: u64, transactions: u64) -> Arc<Template> {
    let txs: Vec<Vec<u8>> = (0..transactions)
        .map(|i| transaction(i + tip * 1000))
        .collect();
    let txids: Vec<[u8; 32]> = txs.iter().map(|t| sha256d(t)).collect();
    let mut wtxids = vec![[0u8; 32]];
    wtxids.extend_from_slice(&txids);
    let root = warppool_core::merkle::merkle_root(&wtxids);
    let mut pre = [0u8; 64];
    pre[..32].copy_from_slice(&root);
    let commitment = sha256d(&pre);
    let entries: Vec<Value> = txs
        .iter()
        .zip(&txids)
        .map(|(t, id)| {
            json!({"data": hex(t), "txid": rev_hex(id), "hash": rev_hex(id), "depends": [],
                   "fee": 1000, "sigops": 4, "weight": 4 * t.len()})
        })
        .collect();
    let prev = rev_hex(&sha256d(&tip.to_le_bytes()));
    let compact = u32::from_str_radix(bits, 16).unwrap();
    let exponent = (compact >> 24) as usize;
    let mut target_bytes = [0u8; 32];
    let mantissa = (compact & 0x00ff_ffff).to_be_bytes();
    for (i, byte) in mantissa[1..].iter().enumerate() {
        target_bytes[32 - exponent + i] = *byte;
    }
    let target = hex(&target_bytes);
    let t = json!({
        "capabilities": ["proposal"], "version": 0x2000_0000u32,
        "rules": ["csv", "!segwit", "taproot"], "vbavailable": {}, "vbrequired": 0,
        "previousblockhash": prev, "transactions": entries, "coinbaseaux": {},
        "coinbasevalue": 312_500_000u64 + 1000 * transactions,
        "longpollid": format!("{prev}1"),
        "target": target,
        "mintime": 1_764_000_000u32, "mutable": ["time", "transactions", "prevblock"],
        "noncerange": "00000000ffffffff", "sigoplimit": 80000, "sizelimit": 4_000_000,
        "weightlimit": 4_000_000, "curtime": 1_764_001_000u32, "bits": bits, "height": 925_000,
        "default_witness_commitment": format!("6a24aa21a9ed{}", hex(&commitment)),
    });
    Arc::new(Template::from_json(t.to_string().as_bytes()).expect("test template parses"))
}

/// The difficulty the tests mine at: 2^-16, about 65,000 hashes a share.
pub fn tiny() -> Difficulty {
    Difficulty::MIN
}

/// A port whose difficulty is pinned to `d` (start = min = max), fractions always sent.
pub fn pinned_port(d: Difficulty) -> PortConfig {
    range_port(d, d, d)
}

/// A port with the given start, min and max, fractions always sent.
pub fn range_port(start: Difficulty, min: Difficulty, max: Difficulty) -> PortConfig {
    let vardiff = VardiffConfig {
        difficulty_start: start,
        difficulty_min: min,
        difficulty_max: max,
        ..VardiffConfig::default()
    };
    PortConfig {
        vardiff,
        fractional: Fractional::Always,
    }
}

pub fn net_config(listeners: Vec<warppool_net::ListenerConfig>, force_polling: bool) -> NetConfig {
    let mut config = NetConfig::new(listeners);
    config.shards = Some(1);
    config.pin_shards = false;
    config.force_polling = force_polling;
    config.tick_interval = Duration::from_millis(50);
    config.tls_reload_interval = Duration::from_millis(100);
    config
}

pub fn job_set(template: Arc<Template>, generation: u64, clean_jobs: bool) -> JobSet {
    JobSet::new(
        template,
        generation,
        clean_jobs,
        bitcoin::Network::Bitcoin,
        CoinbaseConfig::solo(b"/warppool-test/"),
    )
}

/// A one-shard pool on 127.0.0.1 with `port` on every listener and a first template.
pub fn start_pool(force_polling: bool, port: PortConfig, template: Arc<Template>) -> StratumPlane {
    let listeners = vec![warppool_net::ListenerConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        tls: None,
    }];
    start_pool_with(net_config(listeners, force_polling), port, template)
}

pub fn start_pool_with(net: NetConfig, port: PortConfig, template: Arc<Template>) -> StratumPlane {
    let plane = start_stratum(net, StratumConfig::new(port), job_set(template, 1, true))
        .expect("stratum plane starts");
    // The first job set is the factory's; publishing it again is harmless.
    plane
}

/// A job as the miner sees it.
#[derive(Debug, Clone)]
pub struct MinerJob {
    pub id: String,
    pub prevhash: [u8; 32],
    pub coinb1: Vec<u8>,
    pub coinb2: Vec<u8>,
    pub branch: Vec<[u8; 32]>,
    pub version: u32,
    pub nbits: u32,
    pub ntime: u32,
    pub clean: bool,
    /// The difficulty last set before this notify.
    pub difficulty: f64,
}

/// One found share.
#[derive(Debug, Clone)]
pub struct Share {
    pub job_id: String,
    pub en2: String,
    pub ntime: String,
    pub nonce: u32,
    pub version_bits: Option<u32>,
    pub hash: [u8; 32],
}

impl Share {
    /// A submit line: 5 params, or 6 with the version bits.
    pub fn line(&self, id: u64, worker: &str) -> String {
        let nonce = format!("{:08x}", self.nonce);
        self.line_with(id, worker, &nonce)
    }

    pub fn line_with(&self, id: u64, worker: &str, nonce: &str) -> String {
        match self.version_bits {
            None => format!(
                r#"{{"id":{id},"method":"mining.submit","params":["{worker}","{}","{}","{}","{nonce}"]}}"#,
                self.job_id, self.en2, self.ntime
            ),
            Some(bits) => format!(
                r#"{{"id":{id},"method":"mining.submit","params":["{worker}","{}","{}","{}","{nonce}","{bits:08x}"]}}"#,
                self.job_id, self.en2, self.ntime
            ),
        }
    }
}

fn unhex(s: &str) -> Vec<u8> {
    warppool_core::hex::decode(s).expect("hex")
}

impl MinerJob {
    fn from_params(p: &[Value], difficulty: f64) -> Self {
        let s = |i: usize| p[i].as_str().expect("notify string field").to_owned();
        let swapped = unhex(&s(1));
        let mut prevhash = [0u8; 32];
        for (out, word) in prevhash.chunks_exact_mut(4).zip(swapped.chunks_exact(4)) {
            out.copy_from_slice(&[word[3], word[2], word[1], word[0]]);
        }
        let branch = p[4]
            .as_array()
            .unwrap()
            .iter()
            .map(|b| unhex(b.as_str().unwrap()).try_into().unwrap())
            .collect();
        Self {
            id: s(0),
            prevhash,
            coinb1: unhex(&s(2)),
            coinb2: unhex(&s(3)),
            branch,
            version: u32::from_str_radix(&s(5), 16).unwrap(),
            nbits: u32::from_str_radix(&s(6), 16).unwrap(),
            ntime: u32::from_str_radix(&s(7), 16).unwrap(),
            clean: p[8].as_bool().unwrap(),
            difficulty,
        }
    }

    /// The header hash for these choices.
    pub fn hash(&self, en1: &[u8], en2: &[u8], ntime: u32, nonce: u32, version: u32) -> [u8; 32] {
        let mut coinbase = self.coinb1.clone();
        coinbase.extend_from_slice(en1);
        coinbase.extend_from_slice(en2);
        coinbase.extend_from_slice(&self.coinb2);
        let mut root = sha256d(&coinbase);
        for step in &self.branch {
            let mut pair = [0u8; 64];
            pair[..32].copy_from_slice(&root);
            pair[32..].copy_from_slice(step);
            root = sha256d(&pair);
        }
        let mut header = [0u8; 80];
        header[..4].copy_from_slice(&version.to_le_bytes());
        header[4..36].copy_from_slice(&self.prevhash);
        header[36..68].copy_from_slice(&root);
        header[68..72].copy_from_slice(&ntime.to_le_bytes());
        header[72..76].copy_from_slice(&self.nbits.to_le_bytes());
        header[76..].copy_from_slice(&nonce.to_le_bytes());
        sha256d_header(&header)
    }

    /// Searches nonces from `start` for a hash that `accept` likes.
    pub fn search(
        &self,
        en1: &[u8],
        en2: u32,
        version_bits: Option<u32>,
        start: u32,
        accept: impl Fn(&[u8; 32]) -> bool,
    ) -> Share {
        let en2_bytes = en2.to_be_bytes();
        let version = self.version | version_bits.unwrap_or(0);
        let mut coinbase = self.coinb1.clone();
        coinbase.extend_from_slice(en1);
        coinbase.extend_from_slice(&en2_bytes);
        coinbase.extend_from_slice(&self.coinb2);
        let mut root = sha256d(&coinbase);
        for step in &self.branch {
            let mut pair = [0u8; 64];
            pair[..32].copy_from_slice(&root);
            pair[32..].copy_from_slice(step);
            root = sha256d(&pair);
        }
        let mut header = [0u8; 80];
        header[..4].copy_from_slice(&version.to_le_bytes());
        header[4..36].copy_from_slice(&self.prevhash);
        header[36..68].copy_from_slice(&root);
        header[68..72].copy_from_slice(&self.ntime.to_le_bytes());
        header[72..76].copy_from_slice(&self.nbits.to_le_bytes());
        for nonce in start..=u32::MAX {
            header[76..].copy_from_slice(&nonce.to_le_bytes());
            let hash = sha256d_header(&header);
            if accept(&hash) {
                return Share {
                    job_id: self.id.clone(),
                    en2: hex(&en2_bytes),
                    ntime: format!("{:08x}", self.ntime),
                    nonce,
                    version_bits,
                    hash,
                };
            }
        }
        panic!("no nonce found");
    }
}

/// The fixed-point difficulty a client's parsed `set_difficulty` value stands for (the pool
/// sends the shortest text that reads back as it, not its exact `f64`).
pub fn as_sent(client: f64) -> Difficulty {
    Difficulty::from_f64_lossy(client).expect("a valid difficulty")
}

/// Whether `hash` meets difficulty `d`.
pub fn meets(hash: &[u8; 32], d: f64) -> bool {
    Difficulty::from_f64_lossy(d)
        .unwrap()
        .to_target()
        .is_met_by(hash)
}

/// A miner over any stream: sends lines, reads replies while tracking notifications.
pub struct Miner<S: Read + Write> {
    pub reader: BufReader<S>,
    pub en1: Vec<u8>,
    pub en2_size: usize,
    pub session: String,
    pub difficulty: f64,
    pub jobs: Vec<MinerJob>,
    /// Every line received, in order.
    pub received: Vec<String>,
    /// Replies by id text, kept until taken.
    pub replies: HashMap<String, Value>,
    pub en2: u32,
}

impl Miner<TcpStream> {
    pub fn connect(addr: SocketAddr) -> Self {
        let stream = TcpStream::connect(addr).expect("connect");
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        stream.set_nodelay(true).unwrap();
        Self::over(stream)
    }
}

impl<S: Read + Write> Miner<S> {
    pub fn over(stream: S) -> Self {
        Self {
            reader: BufReader::new(stream),
            en1: Vec::new(),
            en2_size: 0,
            session: String::new(),
            difficulty: 0.0,
            jobs: Vec::new(),
            received: Vec::new(),
            replies: HashMap::new(),
            en2: 0,
        }
    }

    pub fn send(&mut self, line: &str) {
        let stream = self.reader.get_mut();
        stream.write_all(line.as_bytes()).unwrap();
        stream.write_all(b"\n").unwrap();
        stream.flush().unwrap();
    }

    /// Reads one line and handles it; `None` on EOF.
    pub fn read_one(&mut self) -> Option<Value> {
        let mut line = String::new();
        let n = self.reader.read_line(&mut line).expect("read a line");
        if n == 0 {
            return None;
        }
        self.received.push(line.clone());
        let v: Value = serde_json::from_str(&line).unwrap_or_else(|e| panic!("{e}: {line}"));
        match v.get("method").and_then(Value::as_str) {
            Some("mining.set_difficulty") => {
                self.difficulty = v["params"][0].as_f64().expect("difficulty is a number");
            }
            Some("mining.notify") => {
                let job = MinerJob::from_params(v["params"].as_array().unwrap(), self.difficulty);
                if job.clean {
                    self.jobs.clear();
                }
                self.jobs.push(job);
            }
            _ => {
                if let Some(id) = v.get("id") {
                    self.replies.insert(id.to_string(), v.clone());
                }
            }
        }
        Some(v)
    }

    /// Reads until the reply with this id (JSON text) arrives.
    pub fn reply(&mut self, id: &str) -> Value {
        loop {
            if let Some(v) = self.replies.remove(id) {
                return v;
            }
            self.read_one()
                .unwrap_or_else(|| panic!("closed before reply {id}"));
        }
    }

    pub fn request(&mut self, id: u64, line: &str) -> Value {
        self.send(line);
        self.reply(&id.to_string())
    }

    /// Reads until `count` notifies arrived in total.
    pub fn wait_jobs(&mut self, count: usize) {
        let mut seen = self
            .received
            .iter()
            .filter(|l| l.contains("mining.notify\",\"params"))
            .count();
        while seen < count {
            let v = self.read_one().expect("connection open");
            if v.get("method").and_then(Value::as_str) == Some("mining.notify") {
                seen += 1;
            }
        }
    }

    /// Records the subscribe reply's extranonce1, size and session id.
    pub fn take_subscribe(&mut self, reply: &Value) {
        assert!(reply["error"].is_null(), "{reply}");
        let r = &reply["result"];
        self.en1 = unhex(r[1].as_str().unwrap());
        self.en2_size = r[2].as_u64().unwrap() as usize;
        self.session = r[0][1][1].as_str().unwrap().to_owned();
        assert_eq!(self.en1.len(), 4);
        assert_eq!(self.en2_size, 4);
    }

    /// subscribe + authorize in order, waiting for each reply; then the first job.
    pub fn setup(&mut self, user: &str) {
        let r = self.request(
            1,
            r#"{"id":1,"method":"mining.subscribe","params":["test/1.0"]}"#,
        );
        self.take_subscribe(&r);
        let line = format!(r#"{{"id":2,"method":"mining.authorize","params":["{user}","x"]}}"#);
        let r = self.request(2, &line);
        assert_eq!(r["result"], Value::Bool(true), "{r}");
        self.wait_jobs(1);
    }

    pub fn newest(&self) -> &MinerJob {
        self.jobs.last().expect("a job")
    }

    /// Mines a share on the newest job meeting the current difficulty.
    pub fn mine(&mut self, version_bits: Option<u32>) -> Share {
        let job = self.newest().clone();
        self.en2 += 1;
        let d = job.difficulty;
        job.search(&self.en1, self.en2, version_bits, 0, |h| meets(h, d))
    }

    /// Mines a share on `job` whose hash meets `lo` but not `hi`.
    pub fn mine_between(&mut self, job: &MinerJob, lo: f64, hi: f64) -> Share {
        self.en2 += 1;
        job.search(&self.en1, self.en2, None, 0, |h| {
            meets(h, lo) && !meets(h, hi)
        })
    }

    /// Mines a share on the newest job and submits it.
    pub fn mine_submit(&mut self, id: u64, version_bits: Option<u32>, worker: &str) -> Value {
        let share = self.mine(version_bits);
        self.submit(id, &share, worker)
    }

    /// Submits and returns the reply.
    pub fn submit(&mut self, id: u64, share: &Share, worker: &str) -> Value {
        self.request(id, &share.line(id, worker))
    }
}

/// The error code of a reply, or `None` when it has `"error":null`.
pub fn error_code(reply: &Value) -> Option<i64> {
    if reply["error"].is_null() {
        return None;
    }
    Some(reply["error"][0].as_i64().expect("[code, message, null]"))
}

/// Asserts a submit/authorize reply is `true` with `"error":null`.
pub fn assert_true(reply: &Value) {
    assert_eq!(reply["result"], Value::Bool(true), "{reply}");
    assert!(reply["error"].is_null(), "{reply}");
    assert!(reply.get("error").is_some(), "error key present: {reply}");
}
