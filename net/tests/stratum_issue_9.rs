//! Regression tests for issue 9 (the data plane's share/block path and miner handling), over
//! real sockets against the Stratum session. Each test is named after its defect.

#[path = "support/harness.rs"]
mod harness;
#[path = "support/stratum.rs"]
mod stratum;

use std::{
    collections::HashMap,
    io::{BufRead, Write},
    net::TcpStream,
    sync::Arc,
    time::Duration,
};

use arc_swap::ArcSwap;
use harness::both_drivers;
use serde_json::Value;
use stratum::*;
use warppool_core::{
    Difficulty, ShareReject, ShareTarget,
    limits::{BLOCK_CANDIDATES_PER_TIP_PER_SHARD_MAX, JOB_VARIANTS_PER_TEMPLATE_MAX},
};
use warppool_net::stratum::{
    Fractional, PortConfig, ShareEvent, StratumConfig, StratumPlane, UserAgentFamily,
    start_stratum, stratum_factory,
};

const DEADLINE: Duration = Duration::from_secs(120);

/// A network target equal to the share target floor (difficulty 2^-16): not easier than it, so
/// the per-tip cap must not apply, yet a share at the floor is a block (a signet-like chain in
/// miniature).
const BITS_AT_FLOOR: &str = "1f00ffff";

fn user() -> String {
    format!("{ADDRESS}.rig")
}

fn listeners() -> Vec<warppool_net::ListenerConfig> {
    vec![warppool_net::ListenerConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        tls: None,
    }]
}

/// Candidates that arrive within 300 ms of each other.
fn drain_candidates(plane: &StratumPlane) -> usize {
    let mut received = 0;
    while plane
        .candidates()
        .recv_timeout(Duration::from_millis(300))
        .is_ok()
    {
        received += 1;
    }
    received
}

/// Mines a share on `job` whose hash meets `target` and submits it; returns the reply.
fn submit_meeting(
    m: &mut Miner<TcpStream>,
    job: &MinerJob,
    target: &ShareTarget,
    id: u64,
) -> Value {
    m.en2 += 1;
    let share = job.search(&m.en1, m.en2, None, 0, |h| target.is_met_by(h));
    m.submit(id, &share, &user())
}

// See: issue 9, defect 2 (the per-tip cap must never hold back a share that meets the network
// target on a chain whose target is not easier than the share target floor).
#[test]
fn issue_9_candidate_cap_never_holds_back_a_block_on_a_real_network() {
    let plane = start_pool(false, pinned_port(tiny()), template(BITS_AT_FLOOR, 3, 4));
    let mut m = Miner::connect(plane.local_addrs()[0]);
    m.setup(&user());
    let job = m.newest().clone();
    let network = ShareTarget::from_compact(job.nbits).unwrap();
    assert_eq!(
        network,
        Difficulty::MIN.to_target(),
        "the test's network is at the floor"
    );
    let blocks = BLOCK_CANDIDATES_PER_TIP_PER_SHARD_MAX + 2;
    for i in 0..blocks {
        assert_true(&submit_meeting(&mut m, &job, &network, 10 + i as u64));
    }
    assert_eq!(
        drain_candidates(&plane),
        blocks,
        "every block goes to the node"
    );
    plane.stop();
}

// See: issue 9, defect 2 (alternating stale and current shares reset the per-tip count).
#[test]
fn issue_9_candidate_cap_is_not_reset_by_alternating_stale_and_current_shares() {
    both_drivers(DEADLINE, |force_polling| {
        let plane = start_pool(
            force_polling,
            pinned_port(tiny()),
            template(BITS_REGTEST, 1, 2),
        );
        let mut m = Miner::connect(plane.local_addrs()[0]);
        m.setup(&user());
        let old = m.newest().clone();
        plane.publish(Arc::new(job_set(template(BITS_REGTEST, 2, 2), 2, true)));
        m.wait_jobs(2);
        let current = m.newest().clone();
        assert_ne!(old.prevhash, current.prevhash);
        let network = ShareTarget::from_compact(current.nbits).unwrap();
        let share = Difficulty::from_f64_lossy(m.difficulty)
            .unwrap()
            .to_target();
        let target = network.min(share);
        let cap = BLOCK_CANDIDATES_PER_TIP_PER_SHARD_MAX;
        for i in 0..cap + 16 {
            let job = if i % 2 == 0 { &old } else { &current };
            let reply = submit_meeting(&mut m, job, &target, 100 + i as u64);
            assert!(reply.get("result").is_some(), "{reply}");
        }
        assert_eq!(
            drain_candidates(&plane),
            cap,
            "the cap holds across stale and current"
        );
        plane.stop();
    });
}

// See: issue 9, defect 4 (clean_jobs is lost when the shard skips a coalesced generation).
#[test]
fn issue_9_clean_jobs_survives_coalesced_publications() {
    both_drivers(DEADLINE, |force_polling| {
        let (jobs, plane) = plane_with_jobs(force_polling, None);
        let mut m = Miner::connect(plane.local_addrs()[0]);
        m.setup(&user());
        let first_tip = m.newest().prevhash;
        // Two generations before the shard wakes: a new tip (clean), then an update on that
        // tip (not clean). Only the second is published with a wake-up.
        jobs.store(Arc::new(job_set(template(BITS_DIFF1, 2, 3), 2, true)));
        plane.publish(Arc::new(job_set(template(BITS_DIFF1, 2, 4), 3, false)));
        m.wait_jobs(2);
        let notify = m.newest();
        assert_ne!(notify.prevhash, first_tip);
        assert!(
            notify.clean,
            "a skipped generation changed the tip: clean_jobs"
        );
        plane.stop();
    });
}

/// A pool whose port runs 2^-16..=2^60 from 1024 (fractions on request), with a stored
/// difficulty of 500,000 for `user()` on an Antminer.
fn stored_pool(force_polling: bool) -> StratumPlane {
    let port = PortConfig {
        fractional: Fractional::OnRequest,
        ..range_port(
            Difficulty::from_whole(1024).unwrap(),
            tiny(),
            Difficulty::MAX,
        )
    };
    let config = StratumConfig::new(port);
    let key = UserAgentFamily::from_user_agent(Some("Antminer S21/Tue Nov 26")).key(&user());
    let stored: HashMap<Box<str>, Difficulty> = [(
        key.into_boxed_str(),
        Difficulty::from_whole(500_000).unwrap(),
    )]
    .into_iter()
    .collect();
    config.stored_difficulties.publish(stored);
    let jobs = job_set(template(BITS_DIFF1, 1, 3), 1, true);
    start_stratum(net_config(listeners(), force_polling), config, jobs).unwrap()
}

/// Writes `lines` in one write and returns every difficulty set before the first notify, and
/// whether more set_difficulty or notify lines followed within 300 ms.
fn pipelined(plane: &StratumPlane, lines: &[String]) -> (Vec<String>, usize) {
    let mut m = Miner::connect(plane.local_addrs()[0]);
    let batch: String = lines.iter().map(|l| format!("{l}\n")).collect();
    m.reader.get_mut().write_all(batch.as_bytes()).unwrap();
    m.wait_jobs(1);
    let difficulties = set_difficulty_texts(&m.received);
    m.reader
        .get_ref()
        .set_read_timeout(Some(Duration::from_millis(300)))
        .unwrap();
    let mut extra = 0;
    let mut line = String::new();
    while m.reader.read_line(&mut line).is_ok_and(|n| n > 0) {
        if line.contains("mining.set_difficulty") || line.contains("mining.notify") {
            extra += 1;
        }
        line.clear();
    }
    (difficulties, extra)
}

/// The raw difficulty texts of the set_difficulty lines in `received`.
fn set_difficulty_texts(received: &[String]) -> Vec<String> {
    received
        .iter()
        .filter(|l| l.contains("\"method\":\"mining.set_difficulty\""))
        .map(|l| {
            let start = l.find("\"params\":[").unwrap() + "\"params\":[".len();
            let end = start + l[start..].find(']').unwrap();
            l[start..end].to_owned()
        })
        .collect()
}

fn subscribe(agent: &str) -> String {
    format!(r#"{{"id":1,"method":"mining.subscribe","params":["{agent}"]}}"#)
}

fn authorize(password: &str) -> String {
    format!(
        r#"{{"id":2,"method":"mining.authorize","params":["{}","{password}"]}}"#,
        user()
    )
}

const SUGGEST: &str = r#"{"id":3,"method":"mining.suggest_difficulty","params":[0.00015]}"#;

// See: issue 9, defect 7 (NerdMiner, NerdNOS and Bitaxe pipeline subscribe, authorize and
// suggest_difficulty in one segment: the suggestion shapes the first work).
#[test]
fn issue_9_pipelined_suggest_difficulty_shapes_the_first_work() {
    both_drivers(DEADLINE, |force_polling| {
        let plane = stored_pool(force_polling);
        let lines = [
            subscribe("NerdMinerV2/V1.8.3"),
            authorize("x"),
            SUGGEST.to_owned(),
        ];
        let (difficulties, extra) = pipelined(&plane, &lines);
        assert_eq!(
            difficulties,
            ["0.00015"],
            "one set_difficulty, the one asked for"
        );
        assert_eq!(extra, 0, "no correction follows");
        plane.stop();
    });
}

// See: issue 9, defect 6 (a NerdMiner reconnecting under a name an S21 used got 500,000).
#[test]
fn issue_9_stored_difficulty_is_keyed_by_device_family_and_loses_to_a_request() {
    both_drivers(DEADLINE, |force_polling| {
        let plane = stored_pool(force_polling);
        // The S21 itself gets its stored difficulty back.
        let s21 = [subscribe("Antminer S21/Tue Nov 26"), authorize("x")];
        assert_eq!(pipelined(&plane, &s21).0, ["500000"]);
        // A NerdMiner under the same name: not the S21's; the port's start, then its request.
        let nerd = [subscribe("NerdMinerV2/V1.8.3"), authorize("x")];
        assert_eq!(pipelined(&plane, &nerd).0, ["1024"]);
        let nerd_asks = [subscribe("NerdMinerV2/V1.8.3"), authorize("d=0.00015")];
        assert_eq!(pipelined(&plane, &nerd_asks).0, ["0.00015"]);
        // An explicit request wins over the stored difficulty on the S21 too.
        let s21_asks = [
            subscribe("Antminer S21/Tue Nov 26"),
            authorize("x"),
            SUGGEST.to_owned(),
        ];
        assert_eq!(pipelined(&plane, &s21_asks).0, ["0.00015"]);
        plane.stop();
    });
}

// See: issue 9, defect 8 (the default port clamped a NerdMiner's request, so it never found a
// share) and defect 9 (the difficulty goes out as `0.00015`).
#[test]
fn issue_9_default_port_serves_a_nerdminer() {
    let jobs = job_set(template(BITS_DIFF1, 1, 3), 1, true);
    let config = StratumConfig::new(PortConfig::default());
    let plane = start_stratum(net_config(listeners(), false), config, jobs).unwrap();
    let lines = [
        subscribe("NerdMinerV2/V1.8.3"),
        authorize("x"),
        SUGGEST.to_owned(),
    ];
    let mut m = Miner::connect(plane.local_addrs()[0]);
    let batch: String = lines.iter().map(|l| format!("{l}\n")).collect();
    m.reader.get_mut().write_all(batch.as_bytes()).unwrap();
    m.wait_jobs(1);
    let sub = m.reply("1");
    m.take_subscribe(&sub);
    assert_eq!(set_difficulty_texts(&m.received), ["0.00015"]);
    // About 640,000 hashes: a share a NerdMiner finds every ~13 s.
    let share = m.mine(None);
    assert_true(&m.submit(4, &share, &user()));
    // A client that does not ask gets whole numbers on the same port.
    let mut plain = Miner::connect(plane.local_addrs()[0]);
    plain.setup(&user());
    assert_eq!(set_difficulty_texts(&plain.received), ["1024"]);
    plane.stop();
}

// See: issue 9, defect 10 (a difficulty change from a re-authorize with `d=` or a late
// `mining.configure` minimum sent no set_difficulty and no fresh notify).
#[test]
fn issue_9_every_difficulty_change_sends_set_difficulty_and_notify() {
    both_drivers(DEADLINE, |force_polling| {
        let port = range_port(Difficulty::from_whole(8).unwrap(), tiny(), Difficulty::MAX);
        let plane = start_pool(force_polling, port, template(BITS_DIFF1, 1, 3));
        let mut m = Miner::connect(plane.local_addrs()[0]);
        m.setup(&user());
        assert_eq!(m.difficulty, 8.0);
        let again = format!(
            r#"{{"id":5,"method":"mining.authorize","params":["{}","d=64"]}}"#,
            user()
        );
        assert_true(&m.request(5, &again));
        m.wait_jobs(2);
        assert_eq!(
            m.newest().difficulty,
            64.0,
            "set_difficulty, then a fresh notify"
        );
        let configure = concat!(
            r#"{"id":6,"method":"mining.configure","params":[["minimum-difficulty"],"#,
            r#"{"minimum-difficulty.value":4096}]}"#
        );
        m.request(6, configure);
        m.wait_jobs(3);
        assert_eq!(m.newest().difficulty, 4096.0);
        assert_eq!(set_difficulty_texts(&m.received), ["8", "64", "4096"]);
        plane.stop();
    });
}

// See: issue 9, defect 11 (a job that could not be built for a connection was dropped in
// silence: the miner kept stale work and nothing counted or logged it).
#[test]
fn issue_9_a_job_that_cannot_be_built_for_a_connection_is_counted() {
    both_drivers(DEADLINE, |force_polling| {
        let port = range_port(Difficulty::from_whole(8).unwrap(), tiny(), Difficulty::MAX);
        let plane = start_pool(force_polling, port, template(BITS_DIFF1, 1, 3));
        let mut m = Miner::connect(plane.local_addrs()[0]);
        m.setup(&user());
        assert_eq!(plane.counters_total().job_build_failures, 0);
        // Every difficulty change is a fresh job (a new ntime variant of the same template);
        // past JOB_VARIANTS_PER_TEMPLATE_MAX on one template no more can be built.
        let changes = u64::from(JOB_VARIANTS_PER_TEMPLATE_MAX) + 5;
        for i in 0..changes {
            let d = 16 + i;
            let again = format!(
                r#"{{"id":{},"method":"mining.authorize","params":["{}","d={d}"]}}"#,
                10 + i,
                user()
            );
            assert_true(&m.request(10 + i, &again));
        }
        let failures = plane.counters_total().job_build_failures;
        assert!(
            (1..=changes).contains(&failures),
            "failures counted: {failures} of {changes} changes"
        );
        plane.stop();
    });
}

/// The reject reasons of the share statistics received within `wait`.
fn rejects(plane: &StratumPlane, wait: Duration) -> Vec<Option<ShareReject>> {
    let mut found = Vec::new();
    let deadline = std::time::Instant::now() + wait;
    while std::time::Instant::now() < deadline {
        for queue in plane.stats_receivers() {
            while let Ok(batch) = queue.try_recv() {
                for event in batch.iter() {
                    if let ShareEvent::Share(s) = event {
                        found.push(s.reject);
                    }
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    found
}

// See: issue 9, defect 12 (malformed submits were counted as "extranonce2 size").
#[test]
fn issue_9_malformed_submit_has_its_own_reject_reason() {
    both_drivers(DEADLINE, |force_polling| {
        let plane = start_pool(
            force_polling,
            pinned_port(tiny()),
            template(BITS_DIFF1, 1, 3),
        );
        let mut m = Miner::connect(plane.local_addrs()[0]);
        m.setup(&user());
        let share = m.mine(None);
        let bad_nonce = m.request(8, &share.line_with(8, &user(), "zzzzzzzz"));
        assert_eq!(error_code(&bad_nonce), Some(20), "{bad_nonce}");
        assert_eq!(bad_nonce["error"][1], "invalid nonce");
        let mut bad_en2 = share.clone();
        bad_en2.en2 = "0000000g".to_owned();
        let reply = m.submit(9, &bad_en2, &user());
        assert_eq!(reply["error"][1], "invalid extranonce2", "{reply}");
        let mut short_en2 = share.clone();
        short_en2.en2 = "0001".to_owned();
        let reply = m.submit(10, &short_en2, &user());
        assert_eq!(reply["error"][1], "wrong extranonce2 size", "{reply}");
        let seen = rejects(&plane, Duration::from_millis(500));
        assert_eq!(
            seen,
            [
                Some(ShareReject::Malformed),
                Some(ShareReject::Malformed),
                Some(ShareReject::Extranonce2Size)
            ]
        );
        assert_eq!(ShareReject::Malformed.metrics_label(), "malformed");
        plane.stop();
    });
}

/// A plane started from a job set the test can also store into without a wake-up (first job:
/// tip 1), optionally with a small socket send buffer.
fn plane_with_jobs(
    force_polling: bool,
    send_buffer: Option<u32>,
) -> (Arc<ArcSwap<warppool_net::stratum::JobSet>>, StratumPlane) {
    let jobs = Arc::new(ArcSwap::from_pointee(job_set(
        template(BITS_DIFF1, 1, 3),
        1,
        true,
    )));
    let config = StratumConfig::new(pinned_port(tiny()));
    let factory = stratum_factory(1, config, &jobs).unwrap();
    let mut net = net_config(listeners(), force_polling);
    net.socket_send_buffer_bytes = send_buffer;
    let plane: StratumPlane = warppool_net::start(net, factory, Arc::clone(&jobs)).unwrap();
    (jobs, plane)
}

// See: issue 9, defect 4 (a slow reader's queued clean notify was dropped as superseded; the
// same-tip notify that replaced it went out with clean_jobs=false).
#[test]
fn issue_9_a_slow_readers_clean_notify_is_never_dropped_as_superseded() {
    both_drivers(DEADLINE, |force_polling| {
        let (_jobs, plane) = plane_with_jobs(force_polling, Some(4096));
        let addr: std::net::SocketAddr = plane.local_addrs()[0];
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        socket.connect(&addr.into()).unwrap();
        let stream: TcpStream = socket.into();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut m = Miner::over(stream);
        m.setup(&user());
        let old_tip = m.newest().prevhash;
        let new_tip = |generation: u64, clean: bool, tip: u64, n: u64| {
            plane.publish(Arc::new(job_set(
                template(BITS_DIFF1, tip, n),
                generation,
                clean,
            )));
            std::thread::sleep(Duration::from_millis(5));
        };
        // Not reading: same-tip updates fill the socket buffers, then the new tip's clean
        // notify waits in the outbound queue, then more updates on the new tip supersede
        // queued notifications.
        let mut generation = 2;
        for n in 0..24 {
            new_tip(generation, false, 1, 40 + n);
            generation += 1;
        }
        new_tip(generation, true, 2, 3);
        generation += 1;
        for n in 0..24 {
            new_tip(generation, false, 2, 40 + n);
            generation += 1;
        }
        let dropped = plane.counters_total().notifies_dropped;
        assert!(dropped > 0, "the test queues more than the droppable bound");
        let seen_clean = (0..200).any(|_| {
            m.read_one().is_some()
                && m.jobs
                    .last()
                    .is_some_and(|j| j.clean && j.prevhash != old_tip)
        });
        assert!(
            seen_clean,
            "a clean notify for the new tip reached the slow reader"
        );
        plane.stop();
    });
}
