//! The live event stream over real HTTP: hello, block events through the real recorder,
//! resume with `Last-Event-ID`, `reset` past the ring, and a client that stops reading is
//! dropped while the API keeps answering.

#[path = "support/api_pool.rs"]
mod api_pool;
#[path = "support/fake_node.rs"]
mod fake_node;
#[path = "support/temp_dir.rs"]
mod temp_dir;

use std::time::Duration;

use fake_node::FakeNode;
use serde_json::{Value, json};
use temp_dir::TempDir;
use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::TcpStream,
};
use warppool_control::{
    blocks::BlockEvent, events::Topic, journal::BlockStatus, run::Daemon, stats::Recorder,
};
use warppool_core::limits::{EVENTS_RING_MAX, SSE_BEHIND_MAX};

const DEADLINE: Duration = Duration::from_secs(30);

async fn daemon(name: &str) -> (Daemon, std::net::SocketAddr, FakeNode, TempDir) {
    let p = api_pool::start(name).await;
    (p.daemon, p.http, p.node, p.dir)
}

/// One SSE message.
#[derive(Debug, Default, Clone)]
struct Message {
    id: Option<u64>,
    event: String,
    data: String,
}

/// A raw SSE client: one request, then messages as they come.
struct Client {
    lines: tokio::io::Lines<BufReader<TcpStream>>,
}

impl Client {
    async fn open(http: std::net::SocketAddr, last_event_id: Option<u64>) -> Self {
        let mut stream = TcpStream::connect(http).await.unwrap();
        let resume = last_event_id.map_or(String::new(), |id| format!("Last-Event-ID: {id}\r\n"));
        let request = format!(
            "GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\
             {resume}\r\n"
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        let mut lines = BufReader::new(stream).lines();
        // The status line and headers.
        let status = lines.next_line().await.unwrap().unwrap();
        assert!(status.contains("200"), "{status}");
        while !lines.next_line().await.unwrap().unwrap().is_empty() {}
        Self { lines }
    }

    /// The next message (skipping comments and chunk sizes of the chunked body).
    async fn next(&mut self) -> Message {
        let mut m = Message::default();
        let mut any = false;
        loop {
            let line = tokio::time::timeout(DEADLINE, self.lines.next_line())
                .await
                .expect("an event in time")
                .unwrap()
                .expect("the stream is open");
            if let Some(v) = line.strip_prefix("id: ") {
                m.id = v.parse().ok();
                any = true;
            } else if let Some(v) = line.strip_prefix("event: ") {
                v.clone_into(&mut m.event);
                any = true;
            } else if let Some(v) = line.strip_prefix("data: ") {
                v.clone_into(&mut m.data);
                any = true;
            } else if line.is_empty() && any && !m.event.is_empty() {
                return m;
            }
        }
    }

    /// The next message named `event`.
    async fn next_named(&mut self, event: &str) -> Message {
        loop {
            let m = self.next().await;
            if m.event == event {
                return m;
            }
        }
    }
}

fn block(n: u32, status: BlockStatus) -> BlockEvent {
    BlockEvent {
        height: 100 + n,
        hash: format!("{n:064x}"),
        status,
        detail: None,
        finder: None,
        submissions: Vec::new(),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stream_says_hello_follows_block_events_and_resumes_after_last_event_id() {
    let (daemon, http, _node, _dir) = daemon("sse-resume").await;
    let mut client = Client::open(http, None).await;
    let hello = client.next_named("hello").await;
    let hello: Value = serde_json::from_str(&hello.data).unwrap();
    assert_eq!(hello["version"], env!("CARGO_PKG_VERSION"));
    // The 1 Hz ticker: the template as a job, the health, and the pool's figures.
    let job: Value = serde_json::from_str(&client.next_named("job").await.data).unwrap();
    assert_eq!(job["height"], 102);
    let pool: Value = serde_json::from_str(&client.next_named("pool").await.data).unwrap();
    assert!(pool["hashrate"]["m10"]["hps"].is_number(), "{pool}");
    for n in 0..3 {
        daemon.recorder().on_block(&block(n, BlockStatus::Found));
    }
    let mut ids = Vec::new();
    for n in 0..3 {
        let m = client.next_named("block").await;
        let data: Value = serde_json::from_str(&m.data).unwrap();
        assert_eq!(data["height"], 100 + n);
        assert_eq!(data["status"], "found");
        ids.push(m.id.expect("every event has an id"));
    }
    assert!(ids.windows(2).all(|w| w[0] < w[1]), "{ids:?}");
    drop(client);
    // Missed while away: two more blocks.
    daemon.recorder().on_block(&block(7, BlockStatus::Found));
    daemon.recorder().on_block(&block(8, BlockStatus::Found));
    let mut back = Client::open(http, Some(ids[2])).await;
    back.next_named("hello").await;
    let first = back.next_named("block").await;
    let second = back.next_named("block").await;
    let heights: Vec<Value> = [first, second]
        .iter()
        .map(|m| serde_json::from_str::<Value>(&m.data).unwrap()["height"].clone())
        .collect();
    assert_eq!(
        heights,
        [json!(107), json!(108)],
        "resumed in order, nothing lost"
    );
    daemon.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_resume_the_ring_no_longer_holds_gets_reset() {
    let (daemon, http, _node, _dir) = daemon("sse-reset").await;
    let hub = daemon.recorder().hub();
    for n in 0..EVENTS_RING_MAX + 10 {
        hub.publish("block", Topic::Always, &json!({ "n": n }));
    }
    let mut client = Client::open(http, Some(1)).await;
    client.next_named("hello").await;
    let reset = client.next().await;
    assert_eq!(reset.event, "reset", "{reset:?}");
    daemon.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_that_stops_reading_is_dropped_and_the_api_keeps_answering() {
    let (daemon, http, _node, _dir) = daemon("sse-slow").await;
    let hub = std::sync::Arc::clone(daemon.recorder().hub());
    // A client with a tiny receive window that never reads past the headers.
    let socket = tokio::net::TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let mut stream = socket.connect(http).await.unwrap();
    stream
        .write_all(b"GET /api/v1/events HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        .await
        .unwrap();
    let deadline = tokio::time::Instant::now() + DEADLINE;
    while hub.streams() == 0 {
        assert!(tokio::time::Instant::now() < deadline, "the stream opened");
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    // Far more than socket buffers hold, and more than SSE_BEHIND_MAX events.
    let payload = "x".repeat(8 * 1024);
    for n in 0..(SSE_BEHIND_MAX * 4) {
        hub.publish("block", Topic::Always, &json!({ "n": n, "pad": payload }));
    }
    while hub.dropped_slow() == 0 || hub.streams() > 0 {
        assert!(
            tokio::time::Instant::now() < deadline,
            "dropped {} streams {}",
            hub.dropped_slow(),
            hub.streams()
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    let (status, _) = {
        let r = reqwest::get(format!("http://{http}/api/v1/pool"))
            .await
            .unwrap();
        (r.status().as_u16(), r.bytes().await.unwrap())
    };
    assert_eq!(
        status, 200,
        "the API answers while and after the slow client is dropped"
    );
    drop(stream);
    daemon.shutdown().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_and_admin_topics_are_refused() {
    let (daemon, http, _node, _dir) = daemon("sse-topics").await;
    for (topics, status) in [("colour", 400), ("admin", 403), ("worker:abc", 400)] {
        let r = reqwest::get(format!("http://{http}/api/v1/events?topics={topics}"))
            .await
            .unwrap();
        assert_eq!(r.status().as_u16(), status, "{topics}");
        let body: Value = r.json().await.unwrap();
        assert!(body["error"]["code"].is_string(), "{body}");
    }
    daemon.shutdown().await.unwrap();
}
