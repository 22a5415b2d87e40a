//! A tiny bitcoind JSON-RPC test double: a Tokio TCP listener that answers raw HTTP/1.1 in
//! Bitcoin Core's formats (JSON-RPC 1.0 envelope, errors with HTTP 500, 401 without a body),
//! with content-length or chunked bodies. Each method's answer is a closure the test sets.

#![allow(
    dead_code,
    reason = "each test file uses a different part of the support module"
)]
#![allow(
    unreachable_pub,
    reason = "a test support module included with #[path]"
)]

use std::{
    collections::HashMap,
    net::SocketAddr,
    sync::{Arc, Mutex},
    time::Duration,
};

use serde_json::{Value, json};
use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
};

/// What the fake node answers to one call.
#[derive(Debug, Clone)]
pub enum Reply {
    /// `{"result": value, "error": null}` with 200.
    Result(Value),
    /// `{"result": null, "error": {code, message}}` with 500 (as Core does).
    Error(i64, String),
    /// A bare status with a text body.
    Status(u16),
    /// Never answers (timeout tests).
    Hang,
    /// `Result` after a pause (long-poll).
    Delayed(u64, Value),
}

pub type Handler = Arc<dyn Fn(&Value) -> Reply + Send + Sync>;

#[derive(Default)]
pub struct State {
    pub handlers: HashMap<String, Handler>,
    pub calls: Vec<(String, Value)>,
    /// When each call of `calls` arrived (Tokio's clock, so paused-time tests can read it).
    pub call_times: Vec<tokio::time::Instant>,
    /// Down: every connection is closed at once, unanswered (as a stopped node's port would
    /// refuse it).
    pub down: bool,
    pub chunked: bool,
    /// Accepted `Authorization` header values (`Basic …`); empty = no check.
    pub auth: Vec<String>,
}

#[derive(Clone)]
pub struct FakeNode {
    pub addr: SocketAddr,
    pub state: Arc<Mutex<State>>,
}

pub fn basic(user: &str, password: &str) -> String {
    format!("Basic {}", base64(format!("{user}:{password}").as_bytes()))
}

fn base64(input: &[u8]) -> String {
    const T: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut out = String::new();
    for chunk in input.chunks(3) {
        let b = [
            chunk[0],
            *chunk.get(1).unwrap_or(&0),
            *chunk.get(2).unwrap_or(&0),
        ];
        let n = (u32::from(b[0]) << 16) | (u32::from(b[1]) << 8) | u32::from(b[2]);
        for i in 0..4 {
            if i <= chunk.len() {
                out.push(T[((n >> (18 - 6 * i)) & 63) as usize] as char);
            } else {
                out.push('=');
            }
        }
    }
    out
}

impl FakeNode {
    pub async fn start() -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let state = Arc::new(Mutex::new(State::default()));
        let s = Arc::clone(&state);
        tokio::spawn(async move {
            loop {
                let Ok((stream, _)) = listener.accept().await else {
                    return;
                };
                if s.lock().unwrap().down {
                    drop(stream);
                    continue;
                }
                let s = Arc::clone(&s);
                tokio::spawn(async move {
                    let _ = serve(stream, s).await;
                });
            }
        });
        Self { addr, state }
    }

    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    pub fn on(&self, method: &str, f: impl Fn(&Value) -> Reply + Send + Sync + 'static) {
        self.state
            .lock()
            .unwrap()
            .handlers
            .insert(method.to_owned(), Arc::new(f));
    }

    pub fn reply(&self, method: &str, reply: Reply) {
        self.on(method, move |_| reply.clone());
    }

    pub fn set_chunked(&self, chunked: bool) {
        self.state.lock().unwrap().chunked = chunked;
    }

    pub fn set_auth(&self, accepted: Vec<String>) {
        self.state.lock().unwrap().auth = accepted;
    }

    pub fn set_down(&self, down: bool) {
        self.state.lock().unwrap().down = down;
    }

    /// When the first call of `method` at or after `since` arrived.
    pub fn first_call_since(
        &self,
        method: &str,
        since: tokio::time::Instant,
    ) -> Option<tokio::time::Instant> {
        let s = self.state.lock().unwrap();
        s.calls
            .iter()
            .zip(&s.call_times)
            .find(|((m, _), t)| m == method && **t >= since)
            .map(|(_, t)| *t)
    }

    pub fn calls(&self, method: &str) -> usize {
        self.state
            .lock()
            .unwrap()
            .calls
            .iter()
            .filter(|(m, _)| m == method)
            .count()
    }
}

async fn serve(mut stream: TcpStream, state: Arc<Mutex<State>>) -> std::io::Result<()> {
    let mut buf = Vec::new();
    let mut tmp = [0u8; 4096];
    let header_end = loop {
        let n = stream.read(&mut tmp).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&tmp[..n]);
        if let Some(p) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break p + 4;
        }
    };
    let head = String::from_utf8_lossy(&buf[..header_end]).to_string();
    let mut length = 0usize;
    let mut authorization = None;
    for line in head.lines() {
        if let Some((k, v)) = line.split_once(':') {
            if k.eq_ignore_ascii_case("content-length") {
                length = v.trim().parse().unwrap();
            }
            if k.eq_ignore_ascii_case("authorization") {
                authorization = Some(v.trim().to_owned());
            }
        }
    }
    while buf.len() < header_end + length {
        let n = stream.read(&mut tmp).await?;
        if n == 0 {
            return Ok(());
        }
        buf.extend_from_slice(&tmp[..n]);
    }
    let request: Value = serde_json::from_slice(&buf[header_end..header_end + length]).unwrap();
    let method = request["method"].as_str().unwrap_or_default().to_owned();
    let params = request["params"].clone();
    let id = request["id"].clone();
    let (handler, chunked, auth_ok) = {
        let mut s = state.lock().unwrap();
        s.calls.push((method.clone(), params.clone()));
        s.call_times.push(tokio::time::Instant::now());
        let auth_ok =
            s.auth.is_empty() || authorization.as_ref().is_some_and(|a| s.auth.contains(a));
        (s.handlers.get(&method).cloned(), s.chunked, auth_ok)
    };
    if !auth_ok {
        let r = "HTTP/1.1 401 Unauthorized\r\nWWW-Authenticate: Basic realm=\"jsonrpc\"\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        stream.write_all(r.as_bytes()).await?;
        return stream.shutdown().await;
    }
    let reply = match handler {
        Some(h) => h(&params),
        None => Reply::Error(-32601, "Method not found".to_owned()),
    };
    let reply = match reply {
        Reply::Delayed(ms, v) => {
            tokio::time::sleep(Duration::from_millis(ms)).await;
            Reply::Result(v)
        }
        other => other,
    };
    let (status, body) = match reply {
        Reply::Result(v) => (
            200,
            json!({"result": v, "error": null, "id": id}).to_string(),
        ),
        Reply::Error(code, message) => {
            let status = if code == -32601 { 404 } else { 500 };
            (
                status,
                json!({"result": null, "error": {"code": code, "message": message}, "id": id})
                    .to_string(),
            )
        }
        Reply::Status(s) => (s, "error".to_owned()),
        Reply::Delayed(..) => unreachable!("resolved above"),
        Reply::Hang => {
            tokio::time::sleep(Duration::from_secs(3600)).await;
            return Ok(());
        }
    };
    let mut out =
        format!("HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nConnection: close\r\n");
    if chunked {
        out.push_str("Transfer-Encoding: chunked\r\n\r\n");
        for piece in body.as_bytes().chunks(7) {
            out.push_str(&format!("{:x}\r\n", piece.len()));
            out.push_str(std::str::from_utf8(piece).unwrap());
            out.push_str("\r\n");
        }
        out.push_str("0\r\n\r\n");
    } else {
        out.push_str(&format!("Content-Length: {}\r\n\r\n{body}", body.len()));
    }
    stream.write_all(out.as_bytes()).await?;
    stream.shutdown().await
}

/// A Bitcoin Core-format regtest template (segwit rules, no transactions).
pub fn template(prevhash_byte: u8, height: u32) -> Value {
    let text = include_str!("../fixtures/gbt_regtest_segwit_empty.json")
        .replace("PREVHASH", &format!("{prevhash_byte:02x}").repeat(32))
        .replace("HEIGHT", &height.to_string());
    serde_json::from_str(&text).unwrap()
}

pub fn blockchain_info(ibd: bool) -> Value {
    json!({
        "chain": "regtest", "blocks": 101, "headers": 101,
        "bestblockhash": "11".repeat(32), "difficulty": 4.656542373906925e-10,
        "time": 1764380600, "mediantime": 1764380000, "verificationprogress": 1,
        "initialblockdownload": ibd, "chainwork": "00".repeat(32), "size_on_disk": 30000,
        "pruned": false, "warnings": ""
    })
}

pub fn node_config(name: &str, url: String) -> warppool_control::config::NodeConfig {
    warppool_control::config::NodeConfig {
        name: name.to_owned(),
        rpc_url: url,
        auth: warppool_control::config::RpcAuth::UserPassword {
            user: "user".to_owned(),
            password: "pass".into(),
        },
        zmq_hashblock: None,
        rpc_timeout: Duration::from_secs(5),
    }
}
