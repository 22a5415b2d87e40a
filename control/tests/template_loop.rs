//! The template loop against an in-test node: publication when `getblocktemplate` changes,
//! `clean_jobs` on a new previous block hash, gating in initial block download, when the node
//! is unreachable and when the template is stale, and recovery.

#[path = "support/fake_node.rs"]
mod fake_node;

use std::{
    sync::{Arc, Mutex},
    time::Duration,
};

use fake_node::{FakeNode, Reply, blockchain_info, node_config, template};
use warppool_control::{
    config::TemplateSettings,
    rpc::Nodes,
    templates::{JobSink, TemplateLoop, watchdog_task},
};
use warppool_core::CoinbaseConfig;
use warppool_net::stratum::JobSet;

#[derive(Default)]
struct Recorder(Mutex<Vec<Arc<JobSet>>>);

impl JobSink for Recorder {
    fn publish(&self, jobs: Arc<JobSet>) {
        self.0.lock().unwrap().push(jobs);
    }
}

impl Recorder {
    fn all(&self) -> Vec<Arc<JobSet>> {
        self.0.lock().unwrap().clone()
    }
    fn last(&self) -> Arc<JobSet> {
        self.0
            .lock()
            .unwrap()
            .last()
            .cloned()
            .expect("something published")
    }
}

fn settings() -> TemplateSettings {
    TemplateSettings {
        refresh: Duration::from_secs(30),
        best_block_poll: Duration::from_millis(50),
        age_max: Duration::from_secs(60),
    }
}

fn make_loop(node: &FakeNode, settings: TemplateSettings) -> (Arc<TemplateLoop>, Arc<Recorder>) {
    let nodes = Arc::new(Nodes::new(&[node_config("a", node.url())]).unwrap());
    let sink = Arc::new(Recorder::default());
    let lp = Arc::new(TemplateLoop::new(
        nodes,
        Arc::clone(&sink) as Arc<dyn JobSink>,
        settings,
        bitcoin::Network::Regtest,
        CoinbaseConfig::solo(b"/test/"),
    ));
    (lp, sink)
}

async fn wait_for(what: &str, mut f: impl FnMut() -> bool) {
    for _ in 0..200 {
        if f() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    panic!("timed out waiting for {what}");
}

#[tokio::test]
async fn a_changed_template_is_published_with_clean_jobs_on_a_new_tip() {
    let node = FakeNode::start().await;
    node.set_chunked(true);
    node.reply("getblockchaininfo", Reply::Result(blockchain_info(false)));
    node.reply("getblocktemplate", Reply::Result(template(0x11, 102)));
    let (lp, sink) = make_loop(&node, settings());

    lp.refresh().await;
    let first = sink.last();
    assert_eq!(first.generation, 1);
    assert!(first.clean_jobs);
    assert!(first.gate.is_none());
    assert_eq!(first.template.as_ref().unwrap().height(), 102);

    // Same template: nothing new for the miners.
    lp.refresh().await;
    assert_eq!(sink.all().len(), 1);

    // Same tip, new template contents (curtime moved): published, not clean.
    let mut t = template(0x11, 102);
    t["curtime"] = serde_json::json!(1_764_380_700u32);
    node.reply("getblocktemplate", Reply::Result(t));
    lp.refresh().await;
    let second = sink.last();
    assert_eq!(second.generation, 2);
    assert!(!second.clean_jobs);

    // New tip.
    node.reply("getblocktemplate", Reply::Result(template(0x22, 103)));
    lp.refresh().await;
    let third = sink.last();
    assert_eq!(third.generation, 3);
    assert!(third.clean_jobs);
    assert_eq!(third.template.as_ref().unwrap().height(), 103);
}

#[tokio::test]
async fn the_watchdog_triggers_a_refresh_on_a_new_best_block() {
    let node = FakeNode::start().await;
    node.reply("getblockchaininfo", Reply::Result(blockchain_info(false)));
    node.reply("getblocktemplate", Reply::Result(template(0x11, 102)));
    node.reply(
        "getbestblockhash",
        Reply::Result(serde_json::json!("11".repeat(32))),
    );
    let (lp, sink) = make_loop(&node, settings());
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let run = tokio::spawn(Arc::clone(&lp).run(shutdown.clone()));
    let dog = tokio::spawn(watchdog_task(Arc::clone(&lp), shutdown));
    wait_for("first template", || !sink.all().is_empty()).await;

    // A block arrives (no ZMQ here): the watchdog notices and the new template goes out.
    node.reply("getblocktemplate", Reply::Result(template(0x22, 103)));
    node.reply(
        "getbestblockhash",
        Reply::Result(serde_json::json!("22".repeat(32))),
    );
    wait_for("template at 103", || {
        sink.last().template.as_ref().unwrap().height() == 103
    })
    .await;
    assert!(sink.last().clean_jobs);
    stop.send(true).unwrap();
    run.await.unwrap();
    dog.await.unwrap();
}

#[tokio::test]
async fn initial_block_download_gates_work_and_recovery_ungates_it() {
    let node = FakeNode::start().await;
    node.reply("getblockchaininfo", Reply::Result(blockchain_info(false)));
    node.reply("getblocktemplate", Reply::Result(template(0x11, 102)));
    let (lp, sink) = make_loop(&node, settings());
    lp.refresh().await;
    assert!(sink.last().has_work());

    node.reply("getblockchaininfo", Reply::Result(blockchain_info(true)));
    lp.refresh().await;
    let gated = sink.last();
    assert_eq!(
        gated.gate.as_deref(),
        Some("every node is in initial block download")
    );
    assert!(!gated.has_work());
    assert_eq!(
        node.calls("getblocktemplate"),
        1,
        "no template asked from a node in IBD"
    );
    // The same reason is published once.
    lp.refresh().await;
    assert_eq!(sink.all().len(), 2);

    node.reply("getblockchaininfo", Reply::Result(blockchain_info(false)));
    lp.refresh().await;
    let resumed = sink.last();
    assert!(resumed.gate.is_none());
    assert!(resumed.has_work());
    assert!(resumed.generation > gated.generation);
}

#[tokio::test]
async fn an_unreachable_node_gates_work() {
    let node = FakeNode::start().await;
    node.reply("getblockchaininfo", Reply::Result(blockchain_info(false)));
    node.reply("getblocktemplate", Reply::Result(template(0x11, 102)));
    let (lp, sink) = make_loop(&node, settings());
    lp.refresh().await;
    node.reply("getblockchaininfo", Reply::Status(503));
    lp.refresh().await;
    let gate = sink.last().gate.clone().expect("gated");
    assert!(gate.starts_with("no node reachable"), "{gate}");
}

#[tokio::test]
async fn a_stale_template_gates_work() {
    let node = FakeNode::start().await;
    node.reply("getblockchaininfo", Reply::Result(blockchain_info(false)));
    node.reply("getblocktemplate", Reply::Result(template(0x11, 102)));
    let mut s = settings();
    s.refresh = Duration::from_millis(100);
    s.age_max = Duration::from_millis(200);
    let (lp, sink) = make_loop(&node, s);
    lp.refresh().await;
    lp.check_age();
    assert!(sink.last().gate.is_none());
    tokio::time::sleep(Duration::from_millis(300)).await;
    lp.check_age();
    let gate = sink.last().gate.clone().expect("gated when stale");
    assert!(gate.contains("older than"), "{gate}");
    // A successful refresh of the same template ungates.
    lp.refresh().await;
    assert!(sink.last().gate.is_none());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_zmq_hashblock_triggers_an_immediate_refresh() {
    use zeromq::{Socket, SocketSend};
    let node = FakeNode::start().await;
    node.reply("getblockchaininfo", Reply::Result(blockchain_info(false)));
    node.reply("getblocktemplate", Reply::Result(template(0x11, 102)));
    let mut publisher = zeromq::PubSocket::new();
    let endpoint = publisher
        .bind("tcp://127.0.0.1:0")
        .await
        .unwrap()
        .to_string();
    // No watchdog and a long refresh: only ZMQ can bring the new template quickly.
    let (lp, sink) = make_loop(&node, settings());
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let run = tokio::spawn(Arc::clone(&lp).run(shutdown.clone()));
    let zmq = tokio::spawn(warppool_control::templates::zmq_task(
        Arc::clone(&lp),
        endpoint,
        shutdown,
    ));
    wait_for("first template", || !sink.all().is_empty()).await;
    node.reply("getblocktemplate", Reply::Result(template(0x22, 103)));
    let mut published = false;
    for sequence in 0u32..100 {
        // Bitcoin Core's three frames: topic, hash (32 bytes), sequence (4 bytes LE).
        let frames: Vec<bytes::Bytes> = vec![
            bytes::Bytes::from_static(b"hashblock"),
            bytes::Bytes::from(vec![0x22; 32]),
            bytes::Bytes::from(sequence.to_le_bytes().to_vec()),
        ];
        publisher
            .send(zeromq::ZmqMessage::try_from(frames).unwrap())
            .await
            .unwrap();
        tokio::time::sleep(Duration::from_millis(50)).await;
        if sink.last().template.as_ref().unwrap().height() == 103 {
            published = true;
            break;
        }
    }
    assert!(published, "hashblock led to the new template");
    assert!(sink.last().clean_jobs);
    stop.send(true).unwrap();
    run.await.unwrap();
    zmq.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_long_poll_answer_triggers_a_refresh() {
    let node = FakeNode::start().await;
    node.reply("getblockchaininfo", Reply::Result(blockchain_info(false)));
    let next = Arc::new(Mutex::new(template(0x11, 102)));
    {
        let next = Arc::clone(&next);
        node.on("getblocktemplate", move |params| {
            let t = next.lock().unwrap().clone();
            if params[0].get("longpollid").is_some() {
                // The node holds the long-poll until its template changes.
                Reply::Delayed(300, template(0x33, 104))
            } else {
                Reply::Result(t)
            }
        });
    }
    let (lp, sink) = make_loop(&node, settings());
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let run = tokio::spawn(Arc::clone(&lp).run(shutdown.clone()));
    wait_for("first template", || !sink.all().is_empty()).await;
    *next.lock().unwrap() = template(0x33, 104);
    let poll = tokio::spawn(warppool_control::templates::longpoll_task(
        Arc::clone(&lp),
        shutdown,
    ));
    wait_for("template at 104", || {
        sink.last().template.as_ref().unwrap().height() == 104
    })
    .await;
    stop.send(true).unwrap();
    run.await.unwrap();
    poll.await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_loop_ungates_by_itself_within_a_poll_interval() {
    let node = FakeNode::start().await;
    node.reply("getblockchaininfo", Reply::Result(blockchain_info(true)));
    node.reply("getblocktemplate", Reply::Result(template(0x11, 102)));
    // A 30 s refresh and no watchdog task: only the loop's own health check can ungate.
    let (lp, sink) = make_loop(&node, settings());
    let (stop, shutdown) = tokio::sync::watch::channel(false);
    let run = tokio::spawn(Arc::clone(&lp).run(shutdown));
    wait_for("gated", || {
        sink.all().last().is_some_and(|j| j.gate.is_some())
    })
    .await;
    node.reply("getblockchaininfo", Reply::Result(blockchain_info(false)));
    wait_for("ungated", || sink.last().has_work()).await;
    stop.send(true).unwrap();
    run.await.unwrap();
}

#[tokio::test]
async fn a_template_with_an_unknown_mandatory_rule_gates_work_and_says_why() {
    // Knots 29.4's templates carry "!blake2b": its proof of work is not SHA-256d.
    let node = FakeNode::start().await;
    node.reply("getblockchaininfo", Reply::Result(blockchain_info(false)));
    let mut t = template(0x11, 102);
    t["rules"] = serde_json::json!(["csv", "!segwit", "taproot", "!blake2b"]);
    node.reply("getblocktemplate", Reply::Result(t));
    let (lp, sink) = make_loop(&node, settings());
    lp.refresh().await;
    let gate = sink.last().gate.clone().expect("gated");
    assert!(
        gate.starts_with("no usable template") && gate.contains("\"!blake2b\""),
        "{gate}"
    );
    assert_eq!(lp.status().borrow().gate.as_deref(), Some(gate.as_str()));
    assert_eq!(
        lp.job_build_failures(),
        0,
        "a refused template is not a build failure"
    );
}

#[tokio::test]
async fn splits_above_the_coinbase_value_gate_work_and_are_counted() {
    // After a halving, [[pool.split]] outputs can ask for more than the coinbase holds.
    let node = FakeNode::start().await;
    node.reply("getblockchaininfo", Reply::Result(blockchain_info(false)));
    let mut t = template(0x11, 102);
    t["coinbasevalue"] = serde_json::json!(1_000_000);
    node.reply("getblocktemplate", Reply::Result(t));
    let nodes = Arc::new(Nodes::new(&[node_config("a", node.url())]).unwrap());
    let sink = Arc::new(Recorder::default());
    let split = warppool_core::SplitOutput {
        script: vec![
            0x00, 0x14, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7, 7,
        ],
        value_sats: 2_000_000,
    };
    let coinbase = CoinbaseConfig::new(
        b"/test/",
        warppool_core::ExtranonceSize::DEFAULT,
        vec![split],
    )
    .unwrap();
    let lp = Arc::new(TemplateLoop::new(
        nodes,
        Arc::clone(&sink) as Arc<dyn JobSink>,
        settings(),
        bitcoin::Network::Regtest,
        coinbase,
    ));
    lp.refresh().await;
    let gate = sink.last().gate.clone().expect("gated");
    assert!(
        gate.contains("cannot build work") && gate.contains("pool.split"),
        "{gate}"
    );
    assert_eq!(lp.job_build_failures(), 1);
}

#[tokio::test]
async fn a_node_hanging_on_getblocktemplate_loses_its_health_and_the_next_node_serves() {
    // It answers cheap calls (getblockchaininfo, the watchdog's getbestblockhash) at once:
    // before, those reset its health and every new tip waited a full RPC timeout on it.
    let hanging = FakeNode::start().await;
    hanging.reply("getblockchaininfo", Reply::Result(blockchain_info(false)));
    hanging.reply(
        "getbestblockhash",
        Reply::Result(serde_json::json!("11".repeat(32))),
    );
    hanging.reply("getblocktemplate", Reply::Hang);
    let good = FakeNode::start().await;
    good.reply("getblockchaininfo", Reply::Result(blockchain_info(false)));
    good.reply(
        "getbestblockhash",
        Reply::Result(serde_json::json!("11".repeat(32))),
    );
    good.reply("getblocktemplate", Reply::Result(template(0x11, 102)));
    let mut hang_config = node_config("hanging", hanging.url());
    hang_config.rpc_timeout = Duration::from_millis(300);
    let nodes = Arc::new(Nodes::new(&[hang_config, node_config("good", good.url())]).unwrap());
    let sink = Arc::new(Recorder::default());
    let lp = Arc::new(TemplateLoop::new(
        Arc::clone(&nodes),
        Arc::clone(&sink) as Arc<dyn JobSink>,
        settings(),
        bitcoin::Network::Regtest,
        CoinbaseConfig::solo(b"/test/"),
    ));
    lp.refresh().await;
    assert!(sink.last().gate.is_none(), "the second node served");
    assert_eq!(hanging.calls("getblocktemplate"), 1);
    // The watchdog's cheap call succeeds on the hanging node's turn...
    nodes.record_call(0, "getbestblockhash", Ok(()));
    // ...and the next tip's refresh still goes straight to the good node.
    good.reply("getblocktemplate", Reply::Result(template(0x22, 103)));
    lp.refresh().await;
    assert_eq!(
        hanging.calls("getblocktemplate"),
        1,
        "skipped while backing off"
    );
    assert_eq!(lp.status().borrow().height, Some(103));
    assert_eq!(nodes.available(), vec![1]);
}

#[test]
fn node_versions_known_to_follow_another_chain_are_named() {
    use warppool_control::rpc::NetworkInfo;
    let info = |s: &str| NetworkInfo {
        version: 290_000,
        subversion: s.to_owned(),
    };
    assert_eq!(info("/Satoshi:29.0.0/").other_chain_warning(), None);
    assert_eq!(
        info("/Satoshi:29.2.0/Knots:20251010/").other_chain_warning(),
        None
    );
    let bip110 = info("/Satoshi:29.3.0/Knots:20260508/").other_chain_warning();
    assert!(bip110.is_some_and(|w| w.contains("BIP-110")));
    let blake = info("/Satoshi:29.4.1/Knots:20260801/").other_chain_warning();
    assert!(blake.is_some_and(|w| w.contains("BLAKE2b")));
    let bsv = info("/Bitcoin SV:1.0.13/").other_chain_warning();
    assert!(bsv.is_some_and(|w| w.contains("another chain")));
}
