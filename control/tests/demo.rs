//! `warppool demo` end to end: the binary starts the chain simulator, the pool and simulated
//! miners; shares are accepted, a miner's block is accepted by the simulator, `/health`
//! answers, and it exits 0 by itself and on SIGINT.

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::TcpStream,
    process::{Child, Command, Stdio},
    sync::mpsc,
    time::{Duration, Instant},
};

fn spawn_demo(extra: &[&str]) -> (Child, mpsc::Receiver<String>) {
    let mut child = Command::new(env!("CARGO_BIN_EXE_warppool"))
        .args(["demo", "--stratum-port", "0", "--http-port", "0"])
        .args(extra)
        .env("WARPPOOL_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("spawn warppool demo");
    let stdout = child.stdout.take().unwrap();
    // A bounded queue: the test reads every line well before 4096 accumulate.
    let (tx, rx) = mpsc::sync_channel(4096);
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            println!("demo> {line}");
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

fn wait_line(rx: &mpsc::Receiver<String>, prefix: &str, lines: &mut Vec<String>) -> String {
    let deadline = Instant::now() + Duration::from_secs(60);
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let line = rx.recv_timeout(left).expect("demo output line");
        lines.push(line.clone());
        if line.starts_with(prefix) {
            return line;
        }
    }
}

fn http_get(addr: &str, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut text = String::new();
    stream.read_to_string(&mut text).unwrap();
    let status = text
        .split_whitespace()
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or(0);
    let body = text
        .split_once("\r\n\r\n")
        .map(|(_, b)| b.to_owned())
        .unwrap_or_default();
    (status, body)
}

fn field(line: &str, key: &str) -> u64 {
    line.split(key)
        .nth(1)
        .and_then(|rest| {
            rest.split(|c: char| !c.is_ascii_digit())
                .next()
                .and_then(|n| n.parse().ok())
        })
        .unwrap_or_else(|| panic!("{key} in {line:?}"))
}

#[test]
fn the_demo_mines_blocks_serves_http_and_exits_0() {
    let (mut child, rx) = spawn_demo(&["--duration-secs", "20"]);
    let mut lines = Vec::new();
    let stratum = wait_line(&rx, "stratum: ", &mut lines);
    assert!(stratum.contains("stratum+tcp://127.0.0.1:"), "{stratum}");
    let http = wait_line(&rx, "http: ", &mut lines);
    let addr = http
        .trim_start_matches("http: http://")
        .split('/')
        .next()
        .unwrap()
        .to_owned();
    let rpc = wait_line(&rx, "chain simulator rpc: ", &mut lines);
    assert!(rpc.contains("http://127.0.0.1:"), "{rpc}");

    let (status, body) = http_get(&addr, "/health");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"status\""), "{body}");
    std::thread::sleep(Duration::from_secs(8));
    let (status, body) = http_get(&addr, "/api/v1/status");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("\"network\":\"regtest\""), "{body}");
    let (status, body) = http_get(&addr, "/api/v1/workers");
    assert_eq!(status, 200, "{body}");
    assert!(body.contains("bitaxe"), "{body}");
    let (status, _) = http_get(&addr, "/api/v1/blocks");
    assert_eq!(status, 200);

    let last = wait_line(&rx, "demo final: ", &mut lines);
    let exit = child.wait().unwrap();
    assert!(exit.success(), "demo exit: {exit:?}");
    assert!(field(&last, "shares accepted=") > 0, "{last}");
    let start = field(&last, "(start ");
    let height = field(&last, "height=");
    let accepted = field(&last, "accepted by the node=");
    assert!(accepted >= 1, "no miner block accepted: {last}");
    // 20 s with a network block every 30 s: at most one network block.
    assert!(
        height > start + 1,
        "height did not rise beyond network blocks: {last}"
    );
}

#[test]
fn the_demo_exits_0_on_sigint() {
    let (mut child, rx) = spawn_demo(&["--duration-secs", "120"]);
    let mut lines = Vec::new();
    wait_line(&rx, "press Ctrl-C", &mut lines);
    std::thread::sleep(Duration::from_secs(3));
    let pid = child.id().to_string();
    let status = Command::new("kill").args(["-INT", &pid]).status().unwrap();
    assert!(status.success());
    let deadline = Instant::now() + Duration::from_secs(30);
    loop {
        if let Some(exit) = child.try_wait().unwrap() {
            assert!(exit.success(), "demo exit on SIGINT: {exit:?}");
            break;
        }
        assert!(Instant::now() < deadline, "demo did not stop on SIGINT");
        std::thread::sleep(Duration::from_millis(100));
    }
    wait_line(&rx, "demo stopped", &mut lines);
}
