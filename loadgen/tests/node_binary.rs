//! `warppool-loadgen node` as a process: it prints its endpoints and serves RPC.

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper_util::rt::TokioIo;
use serde_json::Value;
use warppool_loadgen::chain::basic_auth_header;

#[tokio::test]
async fn node_prints_endpoints_and_answers_rpc() {
    let mut child = Command::new(env!("CARGO_BIN_EXE_warppool-loadgen"))
        .args([
            "node",
            "--rpc-port",
            "0",
            "--zmq-port",
            "0",
            "--block-interval-secs",
            "0",
            "--user",
            "u",
            "--password",
            "p",
        ])
        .stdout(Stdio::piped())
        .spawn()
        .expect("spawn");
    let mut lines = BufReader::new(child.stdout.take().expect("stdout")).lines();
    let rpc = lines.next().expect("line").expect("utf-8");
    let url = rpc.strip_prefix("rpc  ").expect("rpc line").to_owned();
    let auth = lines.next().expect("line").expect("utf-8");
    assert_eq!(auth, "auth u:p");
    let zmq = lines.next().expect("line").expect("utf-8");
    assert!(zmq.starts_with("zmq  tcp://127.0.0.1:"), "{zmq}");

    let addr = url
        .trim_start_matches("http://")
        .trim_end_matches('/')
        .to_owned();
    let stream = tokio::net::TcpStream::connect(&addr)
        .await
        .expect("connect");
    let (mut sender, conn) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .expect("handshake");
    tokio::spawn(conn);
    let req = hyper::Request::builder()
        .method("POST")
        .uri("/")
        .header("host", addr.as_str())
        .header("authorization", basic_auth_header("u", "p"))
        .body(Full::new(Bytes::from_static(
            br#"{"method":"getblockchaininfo","params":[],"id":1}"#,
        )))
        .expect("request");
    let resp = sender.send_request(req).await.expect("response");
    assert_eq!(resp.status(), 200);
    let body = resp.into_body().collect().await.expect("body").to_bytes();
    let v: Value = serde_json::from_slice(&body).expect("json");
    assert_eq!(v["result"]["chain"], "regtest");
    child.kill().expect("kill the child this test started");
    let _ = child.wait();
}
