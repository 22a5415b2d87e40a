//! A raw Stratum V1 miner for tests and benches on regtest templates: subscribe, authorize,
//! follow `mining.notify`, and grind a share that meets regtest's network target (nearly every
//! hash does), built the way firmware builds it (coinbase, merkle branch, header).

#![allow(
    dead_code,
    reason = "each test file uses a different part of the support module"
)]
#![allow(
    unreachable_pub,
    reason = "a test support module included with #[path]"
)]

use bitcoin::hashes::{Hash, sha256d};
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
};

/// A raw Stratum miner: the newest job, and a way to grind one network-target share of it.
pub struct Miner {
    /// `address.worker` it authorized as.
    pub worker: String,
    pub lines: tokio::io::Lines<BufReader<tokio::net::tcp::OwnedReadHalf>>,
    pub write: tokio::net::tcp::OwnedWriteHalf,
    pub extranonce1: String,
    pub job: serde_json::Value,
    pub next_en2: u32,
}

impl Miner {
    /// Subscribes and authorizes as `worker` (with user agent `agent`) and waits for work.
    pub async fn connect(addr: std::net::SocketAddr, worker: &str, agent: &str) -> Self {
        let stream = TcpStream::connect(addr).await.expect("stratum connect");
        Self::over(stream, worker, agent).await
    }

    /// As [`Miner::connect`], from the local address `from` (any of 127/8 on Linux).
    pub async fn connect_from(
        from: std::net::IpAddr,
        addr: std::net::SocketAddr,
        worker: &str,
        agent: &str,
    ) -> Self {
        let stream = connect_from(from, addr).await.expect("stratum connect");
        Self::over(stream, worker, agent).await
    }

    /// Subscribes and authorizes over `stream`.
    pub async fn over(stream: TcpStream, worker: &str, agent: &str) -> Self {
        stream.set_nodelay(true).expect("nodelay");
        let (read, mut write) = stream.into_split();
        let mut lines = BufReader::new(read).lines();
        let hello = format!(
            "{{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[\"{agent}\"]}}\n\
             {{\"id\":2,\"method\":\"mining.authorize\",\"params\":[\"{worker}\",\"x\"]}}\n"
        );
        write.write_all(hello.as_bytes()).await.expect("hello");
        let mut extranonce1 = String::new();
        loop {
            let line = lines.next_line().await.expect("read").expect("open");
            let v: serde_json::Value = serde_json::from_str(&line).expect("json");
            if v["id"] == 1 {
                extranonce1 = v["result"][1].as_str().expect("en1").to_owned();
            }
            if v["method"] == "mining.notify" {
                return Self {
                    worker: worker.to_owned(),
                    lines,
                    write,
                    extranonce1,
                    job: v["params"].clone(),
                    next_en2: 0,
                };
            }
        }
    }

    /// Reads until the server closes the connection (EOF or reset); false if it is still
    /// open after `secs`.
    pub async fn closed_within(&mut self, secs: u64) -> bool {
        let wait = std::time::Duration::from_secs(secs);
        tokio::time::timeout(wait, async {
            loop {
                match self.lines.next_line().await {
                    Ok(Some(_)) => continue,
                    Ok(None) | Err(_) => return,
                }
            }
        })
        .await
        .is_ok()
    }

    /// Sends `line` and reads until the reply with `id` arrives; `None` if the connection
    /// closed first.
    pub async fn request(&mut self, id: u64, line: &str) -> Option<serde_json::Value> {
        self.write.write_all(line.as_bytes()).await.ok()?;
        self.write.write_all(b"\n").await.ok()?;
        loop {
            let line = self.lines.next_line().await.ok()??;
            let v: serde_json::Value = serde_json::from_str(&line).expect("json");
            if v["id"] == id {
                return Some(v);
            }
        }
    }

    /// Reads until a notify on another previous block hash arrives.
    pub async fn wait_new_tip(&mut self) {
        loop {
            let line = self.lines.next_line().await.expect("read").expect("open");
            let v: serde_json::Value = serde_json::from_str(&line).expect("json");
            if v["method"] == "mining.notify" && v["params"][1] != self.job[1] {
                self.job = v["params"].clone();
                return;
            }
        }
    }

    /// A submit line for a share of the current job that meets the regtest target.
    pub fn block_share(&mut self) -> String {
        // Regtest's target is 0x7fffff << 208: the top byte of the hash (last in internal
        // order) below 0x7f is always under it.
        self.share_where(9, 64, |hash| hash[31] < 0x7f)
    }

    /// A submit line with request id `id` for a share of the current job whose header hash
    /// (internal byte order) satisfies `ok`, trying `nonces` nonces per extranonce2.
    pub fn share_where(&mut self, id: u64, nonces: u32, ok: impl Fn(&[u8; 32]) -> bool) -> String {
        let p = &self.job;
        let hex = |v: &serde_json::Value| warppool_core::hex::decode(v.as_str().unwrap()).unwrap();
        loop {
            self.next_en2 += 1;
            let en2 = format!("{:08x}", self.next_en2);
            let coinbase = [
                hex(&p[2]),
                warppool_core::hex::decode(&self.extranonce1).unwrap(),
                warppool_core::hex::decode(&en2).unwrap(),
                hex(&p[3]),
            ]
            .concat();
            let mut root = sha256d::Hash::hash(&coinbase).to_byte_array();
            for step in p[4].as_array().unwrap() {
                root = sha256d::Hash::hash(&[root.as_slice(), &hex(step)].concat()).to_byte_array();
            }
            let mut prev = hex(&p[1]);
            for word in prev.chunks_mut(4) {
                word.reverse();
            }
            let word =
                |v: &serde_json::Value| u32::from_str_radix(v.as_str().unwrap(), 16).unwrap();
            let mut header = [0u8; 80];
            header[..4].copy_from_slice(&word(&p[5]).to_le_bytes());
            header[4..36].copy_from_slice(&prev);
            header[36..68].copy_from_slice(&root);
            header[68..72].copy_from_slice(&word(&p[7]).to_le_bytes());
            header[72..76].copy_from_slice(&word(&p[6]).to_le_bytes());
            for nonce in 0..nonces {
                header[76..].copy_from_slice(&nonce.to_le_bytes());
                if ok(&warppool_hash::sha256d_header(&header)) {
                    return format!(
                        "{{\"id\":{id},\"method\":\"mining.submit\",\"params\":[\"{}\",\
                         \"{}\",\"{en2}\",\"{}\",\"{nonce:08x}\"]}}\n",
                        self.worker,
                        p[0].as_str().unwrap(),
                        p[7].as_str().unwrap()
                    );
                }
            }
        }
    }
}

/// A TCP stream to `addr` from the local address `from`.
pub async fn connect_from(
    from: std::net::IpAddr,
    addr: std::net::SocketAddr,
) -> std::io::Result<TcpStream> {
    let socket = tokio::net::TcpSocket::new_v4()?;
    socket.bind(std::net::SocketAddr::new(from, 0))?;
    let stream = socket.connect(addr).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}
