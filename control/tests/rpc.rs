//! The RPC client against an in-test HTTP server speaking Bitcoin Core's formats:
//! content-length and chunked bodies, 401 then cookie re-read, 500 with and without a JSON-RPC
//! error object, timeouts, failover with back-off.

#[path = "support/fake_node.rs"]
mod fake_node;

use std::time::Duration;

use fake_node::{FakeNode, Reply, basic, node_config};
use serde_json::json;
use warppool_control::{
    config::RpcAuth,
    rpc::{BlockchainInfo, Nodes, RpcClient, RpcError},
};

#[tokio::test]
async fn content_length_and_chunked_replies_decode() {
    let node = FakeNode::start().await;
    node.reply(
        "getblockchaininfo",
        Reply::Result(fake_node::blockchain_info(false)),
    );
    let client = RpcClient::new(&node_config("a", node.url())).unwrap();
    for chunked in [false, true] {
        node.set_chunked(chunked);
        let info: BlockchainInfo = client.call("getblockchaininfo", json!([])).await.unwrap();
        assert_eq!(info.chain, "regtest");
        assert!(!info.initialblockdownload);
    }
    // A large chunked template reply.
    node.set_chunked(true);
    node.reply(
        "getblocktemplate",
        Reply::Result(fake_node::template(0x22, 102)),
    );
    let raw: warppool_control::rpc::RawJson = client
        .call("getblocktemplate", json!([{"rules": ["segwit"]}]))
        .await
        .unwrap();
    warppool_core::Template::from_json(raw.0.get().as_bytes()).unwrap();
    let latencies = client.latencies();
    assert!(
        latencies
            .iter()
            .any(|(m, s)| *m == "getblockchaininfo" && s.count == 2)
    );
}

#[tokio::test]
async fn basic_auth_is_sent_and_401_is_an_http_error() {
    let node = FakeNode::start().await;
    node.reply("getbestblockhash", Reply::Result(json!("aa".repeat(32))));
    node.set_auth(vec![basic("user", "pass")]);
    let client = RpcClient::new(&node_config("a", node.url())).unwrap();
    let best: String = client.call("getbestblockhash", json!([])).await.unwrap();
    assert_eq!(best, "aa".repeat(32));
    node.set_auth(vec![basic("user", "other")]);
    let err = client
        .call::<String>("getbestblockhash", json!([]))
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::HttpStatus(401)), "{err}");
}

#[tokio::test]
async fn cookie_is_reread_after_401() {
    let dir = std::env::temp_dir().join(format!("warppool-cookie-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let cookie = dir.join(".cookie");
    std::fs::write(&cookie, "__cookie__:first").unwrap();
    let node = FakeNode::start().await;
    node.reply("getbestblockhash", Reply::Result(json!("bb".repeat(32))));
    node.set_auth(vec![basic("__cookie__", "first")]);
    let mut config = node_config("a", node.url());
    config.auth = RpcAuth::Cookie(cookie.clone());
    let client = RpcClient::new(&config).unwrap();
    let _: String = client.call("getbestblockhash", json!([])).await.unwrap();
    // The node restarts and rewrites its cookie.
    std::fs::write(&cookie, "__cookie__:second").unwrap();
    node.set_auth(vec![basic("__cookie__", "second")]);
    let best: String = client.call("getbestblockhash", json!([])).await.unwrap();
    assert_eq!(best, "bb".repeat(32));
    assert_eq!(
        node.calls("getbestblockhash"),
        3,
        "one 401, then the retry with the new cookie"
    );
    std::fs::remove_dir_all(&dir).unwrap();
}

#[tokio::test]
async fn json_rpc_errors_and_http_500_are_typed() {
    let node = FakeNode::start().await;
    node.reply(
        "getblocktemplate",
        Reply::Error(
            -10,
            "Bitcoin Core is in initial sync and waiting for blocks...".to_owned(),
        ),
    );
    node.reply("getbestblockhash", Reply::Status(500));
    node.reply("getblockcount", Reply::Result(json!("not a number")));
    let client = RpcClient::new(&node_config("a", node.url())).unwrap();
    for chunked in [false, true] {
        node.set_chunked(chunked);
        match client
            .call::<serde_json::Value>("getblocktemplate", json!([]))
            .await
        {
            Err(RpcError::Rpc { code: -10, message }) => assert!(message.contains("initial sync")),
            other => panic!("{other:?}"),
        }
        match client.call::<String>("getbestblockhash", json!([])).await {
            Err(RpcError::HttpStatus(500)) => {}
            other => panic!("{other:?}"),
        }
        match client.call::<u64>("getblockcount", json!([])).await {
            Err(RpcError::Decode(_)) => {}
            other => panic!("{other:?}"),
        }
        match client.call::<u64>("nosuchmethod", json!([])).await {
            Err(RpcError::Rpc { code: -32601, .. }) => {}
            other => panic!("{other:?}"),
        }
    }
}

#[tokio::test]
async fn a_hanging_node_times_out() {
    let node = FakeNode::start().await;
    node.reply("getbestblockhash", Reply::Hang);
    let mut config = node_config("a", node.url());
    config.rpc_timeout = Duration::from_millis(200);
    let client = RpcClient::new(&config).unwrap();
    let started = std::time::Instant::now();
    let err = client
        .call::<String>("getbestblockhash", json!([]))
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::Timeout(_)), "{err}");
    assert!(started.elapsed() < Duration::from_secs(3));
}

#[tokio::test]
async fn a_refused_connection_is_a_transport_error() {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = listener.local_addr().unwrap();
    drop(listener);
    let client = RpcClient::new(&node_config("a", format!("http://{addr}"))).unwrap();
    let err = client
        .call::<String>("getbestblockhash", json!([]))
        .await
        .unwrap_err();
    assert!(matches!(err, RpcError::Transport(_)), "{err}");
}

#[tokio::test]
async fn failover_skips_a_failing_node_with_backoff_and_retries_it_later() {
    // A "dead" node that accepts and hangs up at once (a freed port could be reused by a
    // parallel test).
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let dead = listener.local_addr().unwrap();
    tokio::spawn(async move {
        while let Ok((stream, _)) = listener.accept().await {
            drop(stream);
        }
    });
    let good = FakeNode::start().await;
    good.reply("getbestblockhash", Reply::Result(json!("cc".repeat(32))));
    let nodes = Nodes::new(&[
        node_config("dead", format!("http://{dead}")),
        node_config("good", good.url()),
    ])
    .unwrap();
    let (index, best): (usize, String) = nodes.call("getbestblockhash", json!([])).await.unwrap();
    assert_eq!((index, best.as_str()), (1, "cc".repeat(32).as_str()));
    assert_eq!(nodes.available(), vec![1], "the dead node backs off");
    tokio::time::sleep(Duration::from_millis(
        warppool_core::limits::NODE_BACKOFF_MS_MIN + 100,
    ))
    .await;
    assert_eq!(
        nodes.available(),
        vec![0, 1],
        "and is retried after its back-off"
    );
}
