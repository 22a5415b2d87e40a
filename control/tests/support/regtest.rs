//! Helpers of the end-to-end tests against the real regtest node pair of `scripts/regtest-node`
//! (see `/work/shared/NODE.md`): environment, a small JSON-RPC client, pool configuration, and
//! an HTTP proxy in front of a node that can refuse `submitblock`.

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    sync::{
        Arc,
        atomic::{AtomicBool, AtomicU64, Ordering},
    },
    time::Duration,
};

use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// The node pair, from the `WARPPOOL_REGTEST_*` variables written by `scripts/regtest-node`.
#[derive(Debug, Clone)]
pub(crate) struct Regtest {
    pub(crate) url: String,
    pub(crate) url2: String,
    pub(crate) user: String,
    pub(crate) password: String,
    pub(crate) zmq: String,
    pub(crate) address: String,
    pub(crate) dir: Option<String>,
}

/// Tests share one node pair: they run one at a time.
pub(crate) static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

impl Regtest {
    /// The node pair, or `None` (with a note) when the variables are missing on a dev machine.
    /// In CI (`CI` set) missing variables fail the test: no skipping there.
    pub(crate) fn from_env(test: &str) -> Option<Self> {
        let var = |k: &str| std::env::var(format!("WARPPOOL_REGTEST_{k}")).ok();
        let found = (|| {
            Some(Self {
                url: var("RPC_URL")?,
                url2: var("RPC2_URL")?,
                user: var("RPC_USER")?,
                password: var("RPC_PASSWORD")?,
                zmq: var("ZMQ")?,
                address: var("ADDRESS")?,
                dir: var("DIR"),
            })
        })();
        if found.is_none() {
            let ci = std::env::var("CI").is_ok_and(|v| !v.is_empty() && v != "false" && v != "0");
            assert!(
                !ci,
                "{test}: CI is set but WARPPOOL_REGTEST_* is missing: start the node pair with \
                 `scripts/regtest-node start DIR` and `source DIR/env`"
            );
            eprintln!(
                "{test}: skipped (no WARPPOOL_REGTEST_* variables; run `scripts/regtest-node start DIR` and `source DIR/env`)"
            );
        }
        found
    }

    /// A JSON-RPC call to `url`.
    pub(crate) async fn rpc_at(
        &self,
        url: &str,
        method: &str,
        params: serde_json::Value,
    ) -> Result<serde_json::Value, String> {
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .map_err(|e| e.to_string())?;
        let body =
            serde_json::json!({"jsonrpc": "1.0", "id": "e2e", "method": method, "params": params});
        let resp = client
            .post(url)
            .basic_auth(&self.user, Some(&self.password))
            .body(body.to_string())
            .header("content-type", "application/json")
            .send()
            .await
            .map_err(|e| e.to_string())?;
        let text = resp.text().await.map_err(|e| e.to_string())?;
        let v: serde_json::Value =
            serde_json::from_str(&text).map_err(|e| format!("{e}: {text}"))?;
        if !v["error"].is_null() {
            return Err(v["error"].to_string());
        }
        Ok(v["result"].clone())
    }

    /// A JSON-RPC call to node1.
    pub(crate) async fn rpc(
        &self,
        method: &str,
        params: serde_json::Value,
    ) -> Result<serde_json::Value, String> {
        self.rpc_at(&self.url, method, params).await
    }

    /// node1's height.
    pub(crate) async fn height(&self) -> u64 {
        self.rpc("getblockcount", serde_json::json!([]))
            .await
            .expect("getblockcount")
            .as_u64()
            .expect("a height")
    }

    /// Runs `scripts/regtest-node CMD DIR`.
    pub(crate) fn script(&self, cmd: &str) {
        let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/regtest-node");
        let mut c = std::process::Command::new("bash");
        c.arg(script).arg(cmd);
        if let Some(dir) = &self.dir {
            c.arg(dir);
        }
        let status = c.status().expect("run scripts/regtest-node");
        assert!(status.success(), "scripts/regtest-node {cmd}: {status}");
    }
}

/// A fresh temporary directory.
pub(crate) fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!("warppool-e2e-{}-{name}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// One `[[node]]` entry.
pub(crate) fn node_entry(name: &str, url: &str, rt: &Regtest, zmq: bool) -> String {
    let zmq = if zmq {
        format!("zmq_hashblock = \"{}\"\n", rt.zmq)
    } else {
        String::new()
    };
    format!(
        "[[node]]\nname = \"{name}\"\nrpc_url = \"{url}\"\nrpc_user = \"{}\"\nrpc_password = \"{}\"\nrpc_timeout_ms = 5000\n{zmq}",
        rt.user, rt.password
    )
}

/// A pool configuration: regtest, one shard, the lowest share difficulty (every share is a
/// block on regtest), `template` settings and `nodes` entries as given.
pub(crate) fn pool_config(dir: &Path, port: u16, template: &str, nodes: &str) -> String {
    format!(
        r#"
version = 1
network = "regtest"
[pool]
shards = 1
force_polling = true
coinbase_tag = "/warppool-e2e/"
[template]
{template}
[storage]
block_journal = "{journal}"
database = "{db}"
{nodes}
[[port]]
addr = "127.0.0.1:{port}"
difficulty_start = 0.0000152587890625
difficulty_min = 0.0000152587890625
fractional = "always"
"#,
        journal = dir.join("blocks.journal").display(),
        db = dir.join("db.sqlite").display(),
    )
}

/// The journal's lines.
pub(crate) fn journal(dir: &Path) -> Vec<warppool_control::journal::JournalEntry> {
    std::fs::read_to_string(dir.join("blocks.journal"))
        .unwrap_or_default()
        .lines()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

/// Polls `f` every 100 ms until it is true or `within` passes.
pub(crate) async fn wait_until<F, Fut>(within: Duration, mut f: F) -> bool
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let end = tokio::time::Instant::now() + within;
    loop {
        if f().await {
            return true;
        }
        if tokio::time::Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// An HTTP proxy in front of a node's RPC: forwards every call, except `submitblock` while
/// `refuse_submit` is set, which gets HTTP 500 with a JSON-RPC error.
#[derive(Debug)]
pub(crate) struct Proxy {
    pub(crate) addr: SocketAddr,
    pub(crate) refuse_submit: Arc<AtomicBool>,
    pub(crate) submits_refused: Arc<AtomicU64>,
    task: tokio::task::JoinHandle<()>,
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.task.abort();
    }
}

impl Proxy {
    pub(crate) async fn start(target: String) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let refuse_submit = Arc::new(AtomicBool::new(true));
        let submits_refused = Arc::new(AtomicU64::new(0));
        let (refuse, refused) = (Arc::clone(&refuse_submit), Arc::clone(&submits_refused));
        let client = reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap();
        let task = tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let (refuse, refused, client, target) = (
                    Arc::clone(&refuse),
                    Arc::clone(&refused),
                    client.clone(),
                    target.clone(),
                );
                tokio::spawn(async move {
                    let _ = serve(stream, &refuse, &refused, &client, &target).await;
                });
            }
        });
        Self {
            addr,
            refuse_submit,
            submits_refused,
            task,
        }
    }

    pub(crate) fn url(&self) -> String {
        format!("http://{}", self.addr)
    }
}

async fn serve(
    mut stream: tokio::net::TcpStream,
    refuse: &AtomicBool,
    refused: &AtomicU64,
    client: &reqwest::Client,
    target: &str,
) -> std::io::Result<()> {
    {
        // One request: headers, then Content-Length bytes of body.
        let mut buf = Vec::new();
        let head_end = loop {
            let mut chunk = [0u8; 4096];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
            if let Some(i) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
                break i + 4;
            }
            if buf.len() > 64 * 1024 {
                return Ok(());
            }
        };
        let head = String::from_utf8_lossy(&buf[..head_end]).to_string();
        let header = |name: &str| {
            head.lines().find_map(|l| {
                let (k, v) = l.split_once(':')?;
                k.trim()
                    .eq_ignore_ascii_case(name)
                    .then(|| v.trim().to_owned())
            })
        };
        let len: usize = header("content-length")
            .and_then(|v| v.parse().ok())
            .unwrap_or(0);
        while buf.len() < head_end + len {
            let mut chunk = vec![0u8; 1 << 16];
            let n = stream.read(&mut chunk).await?;
            if n == 0 {
                return Ok(());
            }
            buf.extend_from_slice(&chunk[..n]);
        }
        let body = buf[head_end..head_end + len].to_vec();
        let call: serde_json::Value = serde_json::from_slice(&body).unwrap_or_default();
        let (status, reply) = if call["method"] == "submitblock" && refuse.load(Ordering::SeqCst) {
            refused.fetch_add(1, Ordering::SeqCst);
            (
                500,
                serde_json::json!({"result": null, "id": call["id"],
                        "error": {"code": -1, "message": "e2e proxy: submitblock refused"}})
                .to_string()
                .into_bytes(),
            )
        } else {
            let mut req = client
                .post(target)
                .header("content-type", "application/json")
                .body(body);
            if let Some(auth) = header("authorization") {
                req = req.header("authorization", auth);
            }
            match req.send().await {
                Ok(resp) => {
                    let status = resp.status().as_u16();
                    (status, resp.bytes().await.unwrap_or_default().to_vec())
                }
                Err(_) => (503, b"node unreachable".to_vec()),
            }
        };
        let head = format!(
            "HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
            reply.len()
        );
        stream.write_all(head.as_bytes()).await?;
        stream.write_all(&reply).await?;
        stream.flush().await?;
    }
    Ok(())
}
