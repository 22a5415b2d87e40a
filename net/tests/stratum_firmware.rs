//! The firmware sequences of MINERS.md §2–§10 replayed over real sockets against the Stratum
//! session, each under io_uring and under forced polling. The client mines real shares at a
//! tiny share difficulty (2^-16) with `warppool_hash`.

#[path = "support/harness.rs"]
mod harness;
#[path = "support/stratum.rs"]
mod stratum;

use std::{
    io::{Read, Write},
    net::TcpStream,
    time::{Duration, Instant},
};

use harness::both_drivers;
use serde_json::Value;
use stratum::*;

const DEADLINE: Duration = Duration::from_secs(60);

fn pool(force_polling: bool) -> warppool_net::stratum::StratumPlane {
    start_pool(
        force_polling,
        pinned_port(tiny()),
        template(BITS_DIFF1, 1, 20),
    )
}

fn user() -> String {
    format!("{ADDRESS}.rig1")
}

fn configure_result_keys(reply: &Value) -> Vec<String> {
    let mut keys: Vec<String> = reply["result"]
        .as_object()
        .unwrap()
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

fn assert_configure_reply(line: &str, id: &str) {
    let reply: Value = serde_json::from_str(line).unwrap();
    assert_eq!(reply["id"].to_string(), id, "{line}");
    assert!(reply["error"].is_null(), "{line}");
    assert_eq!(
        reply["result"]["version-rolling"],
        Value::Bool(true),
        "{line}"
    );
    assert_eq!(
        reply["result"]["version-rolling.mask"], "1fffe000",
        "{line}"
    );
    assert_eq!(
        configure_result_keys(&reply),
        ["version-rolling", "version-rolling.mask"],
        "no extra keys: {line}"
    );
}

#[test]
fn nerdminer_v2_sequence() {
    both_drivers(DEADLINE, |force_polling| {
        let plane = pool(force_polling);
        let mut m = Miner::connect(plane.local_addrs()[0]);
        m.send(r#"{"id": 1, "method": "mining.subscribe", "params": ["NerdMinerV2/V1.8.3"]}"#);
        // The very first line must be the subscribe reply (NerdMiner reads one line).
        let first = m.read_one().unwrap();
        assert_eq!(first["id"], 1);
        m.take_subscribe(&first);
        let auth =
            format!(r#"{{"params": ["{ADDRESS}", "x"], "id": 2, "method": "mining.authorize"}}"#);
        m.send(&auth);
        m.send(r#"{"id":3,"method":"mining.suggest_difficulty","params":[0.00015]}"#);
        assert_true(&m.reply("2"));
        assert_true(&m.reply("3"));
        m.wait_jobs(1);
        assert!(
            m.difficulty > 0.0 && m.difficulty < 1.0,
            "fractional: {}",
            m.difficulty
        );
        // en2 fixed at 00000001, nonce not zero-padded.
        m.en2 = 0;
        let share = m.mine(None);
        assert_eq!(share.en2, "00000001");
        let nonce = format!("{:x}", share.nonce);
        assert!(nonce.len() < 8, "the test wants an unpadded nonce: {nonce}");
        assert_true(&m.request(4, &share.line_with(4, ADDRESS, &nonce)));
        plane.stop();
    });
}

#[test]
fn nerdnos_version_bits_without_configure() {
    both_drivers(DEADLINE, |force_polling| {
        let plane = pool(force_polling);
        let mut m = Miner::connect(plane.local_addrs()[0]);
        m.setup(ADDRESS);
        for (i, bits) in [0u32, 0x2000, 0x4000, 0x6000].into_iter().enumerate() {
            let share = m.mine(Some(bits));
            let id = 10 + i as u64;
            assert_true(&m.submit(id, &share, ADDRESS));
        }
        // Bits outside 1fffe000 are refused (20), the connection stays.
        let share = m.mine(Some(0x0000_1000));
        assert_eq!(error_code(&m.submit(20, &share, ADDRESS)), Some(20));
        assert_true(&m.mine_submit(21, Some(0x8000), ADDRESS));
        plane.stop();
    });
}

#[test]
fn bitaxe_current_sequence() {
    both_drivers(DEADLINE, |force_polling| {
        let plane = pool(force_polling);
        let mut m = Miner::connect(plane.local_addrs()[0]);
        m.send(r#"{"id":1,"method":"mining.configure","params":[["version-rolling"],{"version-rolling.mask":"ffffffff"}]}"#);
        m.send(r#"{"id":2,"method":"mining.subscribe","params":["bitaxe/BM1372/BM1373/v2.15.0"]}"#);
        let line = format!(
            r#"{{"id":3,"method":"mining.authorize","params":["{}","x"]}}"#,
            user()
        );
        m.send(&line);
        m.read_one();
        assert_configure_reply(&m.received[0], "1");
        let sub = m.reply("2");
        m.take_subscribe(&sub);
        assert_true(&m.reply("3"));
        m.wait_jobs(1);
        // Nothing unsolicited before the authorize reply (rule 12).
        assert!(!m.received.iter().any(|l| l.contains("set_version_mask")));
        assert_true(&m.request(
            4,
            r#"{"id":4,"method":"mining.suggest_difficulty","params":[1000]}"#,
        ));
        assert_true(&m.request(
            5,
            r#"{"id":5,"method":"mining.extranonce.subscribe","params":[]}"#,
        ));
        let pong = m.request(6, r#"{"id":6,"method":"mining.ping","params":[]}"#);
        assert_eq!(pong["result"], "pong");
        for id in 7..10 {
            let share = m.mine(Some((id as u32) << 13));
            assert_true(&m.submit(id, &share, &user()));
        }
        plane.stop();
    });
}

#[test]
fn bitaxe_failover_probe_sees_notify_in_first_kib() {
    both_drivers(DEADLINE, |force_polling| {
        let plane = pool(force_polling);
        let mut stream = TcpStream::connect(plane.local_addrs()[0]).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        let probe = format!(
            "{}\n{}\n",
            r#"{"id":1,"method":"mining.subscribe","params":["bitaxe/BM1370/v2.15.0"]}"#,
            format_args!(
                r#"{{"id":2,"method":"mining.authorize","params":["{}","x"]}}"#,
                user()
            )
        );
        stream.write_all(probe.as_bytes()).unwrap();
        // The probe reads once, up to 1023 bytes, within 5 s; collect what arrives quickly.
        let mut got = Vec::new();
        let start = Instant::now();
        let mut buf = [0u8; 1023];
        while got.len() < 1023 && start.elapsed() < Duration::from_secs(5) {
            match stream.read(&mut buf[..1023 - got.len()]) {
                Ok(0) => break,
                Ok(n) => got.extend_from_slice(&buf[..n]),
                Err(_) if !got.is_empty() => break,
                Err(_) => {}
            }
        }
        let text = String::from_utf8_lossy(&got);
        let notify = text.find(r#""method":"mining.notify""#);
        assert!(notify.is_some(), "notify within the first KiB: {text}");
        plane.stop();
    });
}

#[test]
fn bitaxe_legacy_orders() {
    both_drivers(DEADLINE, |force_polling| {
        let plane = pool(force_polling);
        let addr = plane.local_addrs()[0];
        let configure = r#"{"id": 1, "method": "mining.configure", "params": [["version-rolling"], {"version-rolling.mask": "ffffffff"}]}"#;
        let auth = format!(
            r#"{{"id": 3, "method": "mining.authorize", "params": ["{}", "x"]}}"#,
            user()
        );
        let suggest = r#"{"id": 4, "method": "mining.suggest_difficulty", "params": [1000]}"#;
        // v2.5–v2.8: pipelined configure, subscribe, authorize, suggest, spaced JSON.
        let mut m = Miner::connect(addr);
        let subscribe =
            r#"{"id": 2, "method": "mining.subscribe", "params": ["bitaxe/BM1368/v2.8.0"]}"#;
        m.send(&format!("{configure}\n{subscribe}\n{auth}\n{suggest}"));
        m.read_one();
        assert_configure_reply(&m.received[0], "1");
        let sub = m.reply("2");
        m.take_subscribe(&sub);
        assert_true(&m.reply("3"));
        assert_true(&m.reply("4"));
        m.wait_jobs(1);
        assert_true(&m.mine_submit(5, Some(0x2000), &user()));
        // v2.2: subscribe, configure, suggest, authorize.
        let mut m = Miner::connect(addr);
        let subscribe2 =
            r#"{"id": 1, "method": "mining.subscribe", "params": ["bitaxe/BM1368/v2.2.0"]}"#;
        let configure2 = configure.replace("\"id\": 1", "\"id\": 2");
        let suggest3 = suggest.replace("\"id\": 4", "\"id\": 3");
        let auth4 = auth.replace("\"id\": 3", "\"id\": 4");
        m.send(&format!("{subscribe2}\n{configure2}\n{suggest3}\n{auth4}"));
        let sub = m.reply("1");
        m.take_subscribe(&sub);
        let conf = m.reply("2");
        assert_configure_reply(&conf.to_string(), "2");
        assert_true(&m.reply("3"));
        assert_true(&m.reply("4"));
        m.wait_jobs(1);
        assert_true(&m.mine_submit(5, None, &user()));
        // v2.0/v2.1: blocking subscribe, then blocking configure: each reply is the next line.
        let mut m = Miner::connect(addr);
        m.send(r#"{"id": 1, "method": "mining.subscribe", "params": ["bitaxe/BM1368"]}"#);
        let first = m.read_one().unwrap();
        m.take_subscribe(&first);
        m.send(&configure2);
        m.read_one().unwrap();
        assert_configure_reply(&m.received[1], "2");
        m.send(&suggest3);
        assert_true(&m.reply("3"));
        m.send(&auth4);
        assert_true(&m.reply("4"));
        m.wait_jobs(1);
        assert_true(&m.mine_submit(5, Some(0x4000), &user()));
        plane.stop();
    });
}

#[test]
fn nerdqaxe_pipelined_ids_route_replies() {
    both_drivers(DEADLINE, |force_polling| {
        let plane = pool(force_polling);
        let mut m = Miner::connect(plane.local_addrs()[0]);
        let lines = [
            r#"{"id": 1, "method": "mining.subscribe", "params": ["NerdOCTAXE-γ/BM1370/v1.0.38"]}"#.to_owned(),
            r#"{"id": 2, "method": "mining.configure", "params": [["version-rolling"], {"version-rolling.mask": "1fffe000"}]}"#.to_owned(),
            format!(r#"{{"id": 3, "method": "mining.authorize", "params": ["{}", "x"]}}"#, user()),
            r#"{"id": 4, "method": "mining.suggest_difficulty", "params": [1000]}"#.to_owned(),
            r#"{"id": 5, "method": "mining.extranonce.subscribe", "params": []}"#.to_owned(),
        ];
        m.send(&lines.join("\n"));
        let sub = m.reply("1");
        assert!(
            sub["result"].is_array(),
            "id 1 is the subscribe reply: {sub}"
        );
        m.take_subscribe(&sub);
        let conf = m.reply("2");
        assert_eq!(conf["result"]["version-rolling.mask"], "1fffe000");
        assert_true(&m.reply("3"));
        assert_true(&m.reply("4"));
        assert_true(&m.reply("5"));
        m.wait_jobs(1);
        for id in 6..9 {
            let reply = m.mine_submit(id, Some(0x6000), &user());
            assert_eq!(reply["id"], id, "{reply}");
            assert_true(&reply);
        }
        plane.stop();
    });
}

#[test]
fn avalon_blocking_configure_ored_bits_and_resume() {
    both_drivers(DEADLINE, |force_polling| {
        let plane = pool(force_polling);
        let addr = plane.local_addrs()[0];
        let mut m = Miner::connect(addr);
        m.send(r#"{"id": 0, "method": "mining.configure", "params": [["version-rolling"], {"version-rolling.mask": "ffffffff"}]}"#);
        m.read_one().unwrap();
        assert_configure_reply(&m.received[0], "0");
        let sub = m.request(
            1,
            r#"{"id": 1, "method": "mining.subscribe", "params": ["cgminer/4.11.1"]}"#,
        );
        m.take_subscribe(&sub);
        let auth = format!(
            r#"{{"id": 2, "method": "mining.authorize", "params": ["{}", "x"]}}"#,
            user()
        );
        assert_true(&m.request(2, &auth));
        m.wait_jobs(1);
        // Micro-job 1 submits the whole mask (ORed bits), then single bits.
        for (i, bits) in [0x1fff_e000u32, 0x0000_8000, 0x1000_0000]
            .into_iter()
            .enumerate()
        {
            let share = m.mine(Some(bits));
            let id = 3 + i as u64;
            let line = share.line(id, &user()).replace(
                &format!(r#"{{"id":{id},"method":"mining.submit","params":"#),
                "{\"params\":",
            );
            let line = format!(
                "{}, \"id\": {id}, \"method\": \"mining.submit\"}}",
                &line[..line.len() - 1]
            );
            assert_true(&m.request(id, &line));
        }
        // Reconnect with the session id: the same extranonce1 comes back.
        let (en1, session) = (m.en1.clone(), m.session.clone());
        drop(m);
        std::thread::sleep(Duration::from_millis(200));
        let mut m = Miner::connect(addr);
        let resume = format!(
            r#"{{"id": 4, "method": "mining.subscribe", "params": ["cgminer/4.11.1", "{session}"]}}"#
        );
        let sub = m.request(4, &resume);
        m.take_subscribe(&sub);
        assert_eq!(m.en1, en1, "resumed extranonce1");
        plane.stop();
    });
}

#[test]
fn antminer_s21_configure_with_min_bit_count() {
    both_drivers(DEADLINE, |force_polling| {
        let plane = pool(force_polling);
        let mut m = Miner::connect(plane.local_addrs()[0]);
        m.send(r#"{"id": 9966, "method": "mining.configure", "params": [["version-rolling", "subscribe-extranonce"], {"version-rolling.mask": "1fffe000", "version-rolling.min-bit-count": 16}]}"#);
        m.read_one().unwrap();
        assert_configure_reply(&m.received[0], "9966");
        let sub = m.request(9967, r#"{"id": 9967, "method": "mining.subscribe", "params": ["Antminer S21/Fri Oct 11 16:34:48 CST 2024"]}"#);
        m.take_subscribe(&sub);
        let auth = format!(
            r#"{{"params": ["{}", "x"], "id": 9968, "method": "mining.authorize"}}"#,
            user()
        );
        assert_true(&m.request(9968, &auth));
        m.wait_jobs(1);
        assert!(!m.received.iter().any(|l| l.contains("set_version_mask")));
        assert_true(&m.mine_submit(9969, Some(0x0002_0000), &user()));
        plane.stop();
    });
}

#[test]
fn bmminer_multi_version_refused_connection_kept() {
    both_drivers(DEADLINE, |force_polling| {
        let plane = pool(force_polling);
        let mut m = Miner::connect(plane.local_addrs()[0]);
        let sub = m.request(
            0,
            r#"{"id": 0, "method": "mining.subscribe", "params": ["bmminer/2.0.0"]}"#,
        );
        m.take_subscribe(&sub);
        let auth = format!(
            r#"{{"id": 1, "method": "mining.authorize", "params": ["{}", "x"]}}"#,
            user()
        );
        assert_true(&m.request(1, &auth));
        assert_true(&m.request(
            2,
            r#"{"id": 2, "method": "mining.suggest_difficulty", "params": [512]}"#,
        ));
        let mv = m.request(
            3,
            r#"{"id": 3, "method": "mining.multi_version", "params": [1]}"#,
        );
        assert_eq!(error_code(&mv), Some(20), "{mv}");
        assert!(mv["error"][1].as_str().unwrap().contains("not supported"));
        assert!(
            !m.received
                .iter()
                .any(|l| l.contains("\"method\":\"mining.multi_version\""))
        );
        m.wait_jobs(1);
        assert_true(&m.mine_submit(4, None, &user()));
        plane.stop();
    });
}

#[test]
fn whatsminer_configure_keys_and_foreign_session() {
    both_drivers(DEADLINE, |force_polling| {
        let plane = pool(force_polling);
        let mut m = Miner::connect(plane.local_addrs()[0]);
        m.send(r#"{"id": 196, "method": "mining.configure", "params": [["version-rolling"], {"version-rolling.mask": "1fffe000"}]}"#);
        m.read_one().unwrap();
        assert_configure_reply(&m.received[0], "196");
        let sub = m.request(197, r#"{"id": 197, "method": "mining.subscribe", "params": ["whatsminer/v1.0", "ae6812eb4cd7735a302a8a9dd95cf71f"]}"#);
        m.take_subscribe(&sub);
        let auth = format!(
            r#"{{"id": 198, "method": "mining.authorize", "params": ["{}", "x"]}}"#,
            user()
        );
        assert_true(&m.request(198, &auth));
        m.wait_jobs(1);
        assert_true(&m.mine_submit(199, Some(0x2000), &user()));
        plane.stop();
    });
}

#[test]
fn braiins_four_param_subscribe_and_empty_password() {
    both_drivers(DEADLINE, |force_polling| {
        let plane = pool(force_polling);
        let mut m = Miner::connect(plane.local_addrs()[0]);
        let conf = m.request(0, r#"{"id":0,"method":"mining.configure","params":[["version-rolling"],{"version-rolling.mask":"1fffe000","version-rolling.min-bit-count":16}]}"#);
        assert_eq!(
            serde_json::to_string(&conf).unwrap(),
            r#"{"error":null,"id":0,"result":{"version-rolling":true,"version-rolling.mask":"1fffe000"}}"#
        );
        let sub = m.request(1, r#"{"id":1,"method":"mining.subscribe","params":["Braiins OS 2019-06-05",null,"pool.example:3333",null]}"#);
        m.take_subscribe(&sub);
        let auth = format!(
            r#"{{"id":2,"method":"mining.authorize","params":["{}",""]}}"#,
            user()
        );
        assert_true(&m.request(2, &auth));
        m.wait_jobs(1);
        assert_true(&m.mine_submit(3, Some(0), &user()));
        plane.stop();
    });
}

#[test]
fn share_verdicts_and_connection_survives() {
    both_drivers(DEADLINE, |force_polling| {
        let plane = pool(force_polling);
        let mut m = Miner::connect(plane.local_addrs()[0]);
        // Before subscribe: 25; before authorize: 24.
        let early = r#"{"id":1,"method":"mining.submit","params":["a","1","00000000","00000000","00000000"]}"#;
        assert_eq!(error_code(&m.request(1, early)), Some(25));
        let sub = m.request(2, r#"{"id":2,"method":"mining.subscribe","params":[]}"#);
        m.take_subscribe(&sub);
        assert_eq!(error_code(&m.request(1, early)), Some(24));
        let auth = format!(
            r#"{{"id":3,"method":"mining.authorize","params":["{}","x"]}}"#,
            user()
        );
        assert_true(&m.request(3, &auth));
        m.wait_jobs(1);
        let share = m.mine(None);
        assert_true(&m.submit(4, &share, &user()));
        // The same share again: duplicate.
        assert_eq!(error_code(&m.submit(5, &share, &user())), Some(22));
        // The bare address and another worker of the same address are this user too.
        assert_true(&m.mine_submit(6, None, ADDRESS));
        assert_true(&m.mine_submit(7, None, &format!("{ADDRESS}.other")));
        // A hash above the share target: low difficulty.
        let job = m.newest().clone();
        let d = job.difficulty;
        m.en2 += 1;
        let low = job.search(&m.en1, m.en2, None, 0, |h| !meets(h, d));
        assert_eq!(error_code(&m.submit(8, &low, &user())), Some(23));
        // Unknown job id: 21; wrong extranonce2 size: 20.
        let mut unknown = m.mine(None);
        unknown.job_id = "ffffff".to_owned();
        assert_eq!(error_code(&m.submit(9, &unknown, &user())), Some(21));
        let mut short = m.mine(None);
        short.en2 = "0001".to_owned();
        assert_eq!(error_code(&m.submit(10, &short, &user())), Some(20));
        // A new tip with clean_jobs: a share on the old job is stale (21).
        let old = m.mine(None);
        plane.publish(std::sync::Arc::new(job_set(
            template(BITS_DIFF1, 2, 5),
            2,
            true,
        )));
        m.wait_jobs(2);
        assert!(m.newest().clean);
        assert_ne!(m.newest().prevhash, job.prevhash);
        assert_eq!(error_code(&m.submit(11, &old, &user())), Some(21));
        // And the connection still works.
        assert_true(&m.mine_submit(12, None, &user()));
        let unknown_method = m.request(13, r#"{"id":13,"method":"mining.frobnicate","params":[]}"#);
        assert_eq!(error_code(&unknown_method), Some(20));
        assert_true(&m.mine_submit(14, None, &user()));
        let stats: usize = plane
            .stats_receivers()
            .iter()
            .map(|r| r.drain().count())
            .sum();
        assert!(stats > 0, "statistics batches arrive");
        plane.stop();
    });
}

#[test]
fn new_generation_same_template_gets_new_job_and_header() {
    both_drivers(DEADLINE, |force_polling| {
        let t = template(BITS_DIFF1, 1, 3);
        let plane = start_pool(force_polling, pinned_port(tiny()), t.clone());
        let mut m = Miner::connect(plane.local_addrs()[0]);
        m.setup(&user());
        let first = m.newest().clone();
        let share = m.mine(None);
        plane.publish(std::sync::Arc::new(job_set(t.clone(), 2, false)));
        m.wait_jobs(2);
        let second = m.newest().clone();
        assert_ne!(first.id, second.id);
        assert!(second.ntime > first.ntime, "a different header (rule 9)");
        assert!(!second.clean);
        // The share on the first job is still good (same tip), and on the second too.
        assert_true(&m.submit(3, &share, &user()));
        assert_true(&m.mine_submit(4, None, &user()));
        // A gated job set sends nothing new.
        let mut gated = job_set(t, 3, false);
        gated.gate = Some("node in initial block download".to_owned());
        plane.publish(std::sync::Arc::new(gated));
        std::thread::sleep(Duration::from_millis(200));
        assert_eq!(
            m.request(5, r#"{"id":5,"method":"mining.ping","params":[]}"#)["result"],
            "pong"
        );
        assert_eq!(m.jobs.len(), 2, "no notify while gated");
        plane.stop();
    });
}

#[test]
fn retarget_judges_old_jobs_at_the_lower_difficulty() {
    both_drivers(DEADLINE, |force_polling| {
        let lo = tiny().to_f64_lossy();
        let start = warppool_core::Difficulty::from_f64_lossy(lo * 4.0).unwrap();
        let max = warppool_core::Difficulty::from_f64_lossy(lo * 16.0).unwrap();
        let plane = start_pool(
            force_polling,
            range_port(start, tiny(), max),
            template(BITS_DIFF1, 1, 3),
        );
        let mut m = Miner::connect(plane.local_addrs()[0]);
        m.setup(&user());
        let job_a = m.newest().clone();
        // The text read back is the same fixed-point difficulty (shortest text, issue 9).
        assert_eq!(as_sent(job_a.difficulty), start);
        // Raise the difficulty: set_difficulty, then a fresh notify.
        let before = m.jobs.len();
        assert_true(&m.request(
            3,
            &format!(
                r#"{{"id":3,"method":"mining.suggest_difficulty","params":[{}]}}"#,
                lo * 16.0
            ),
        ));
        m.wait_jobs(before + 1);
        let job_b = m.newest().clone();
        assert_eq!(as_sent(job_b.difficulty), max);
        assert_ne!(job_a.id, job_b.id);
        let set = m
            .received
            .iter()
            .rposition(|l| l.contains("\"method\":\"mining.set_difficulty"))
            .unwrap();
        let notify = m
            .received
            .iter()
            .rposition(|l| l.contains("mining.notify"))
            .unwrap();
        assert!(set < notify, "set_difficulty before the notify");
        // On job A, the old (lower) difficulty still applies; on job B it does not.
        let a = m.mine_between(&job_a, lo * 4.0, lo * 16.0);
        assert_true(&m.submit(4, &a, &user()));
        let b = m.mine_between(&job_b, lo * 4.0, lo * 16.0);
        assert_eq!(error_code(&m.submit(5, &b, &user())), Some(23));
        plane.stop();
    });
}

#[test]
fn block_candidate_before_reply_and_deserializes() {
    both_drivers(DEADLINE, |force_polling| {
        let plane = start_pool(
            force_polling,
            pinned_port(tiny()),
            template(BITS_REGTEST, 7, 10),
        );
        let mut m = Miner::connect(plane.local_addrs()[0]);
        m.setup(&user());
        let job = m.newest().clone();
        let target = warppool_core::ShareTarget::from_compact(job.nbits).unwrap();
        m.en2 += 1;
        let share = job.search(&m.en1, m.en2, Some(0x2000), 0, |h| target.is_met_by(h));
        assert_true(&m.submit(3, &share, &user()));
        let candidate = plane
            .candidates()
            .recv_timeout(Duration::from_secs(5))
            .expect("candidate");
        // The exact finder: this connection's user, extranonce1 and user agent.
        assert_eq!(candidate.finder.worker, user());
        assert_eq!(
            candidate.finder.extranonce1.as_bytes().as_slice(),
            m.en1.as_slice()
        );
        let bytes = warppool_core::hex::decode(&candidate.block.to_block_hex()).unwrap();
        let block: bitcoin::Block = bitcoin::consensus::deserialize(&bytes).expect("a block");
        let hash = block.block_hash();
        use bitcoin::hashes::Hash;
        assert_eq!(hash.to_byte_array(), share.hash);
        assert!(target.is_met_by(&hash.to_byte_array()));
        assert_eq!(block.txdata.len(), 11);
        assert!(block.check_merkle_root());
        assert!(block.check_witness_commitment());
        // The same block share again: duplicate, and no second candidate.
        assert_eq!(error_code(&m.submit(4, &share, &user())), Some(22));
        assert!(
            plane
                .candidates()
                .recv_timeout(Duration::from_millis(200))
                .is_err()
        );
        plane.stop();
    });
}

#[test]
fn regtest_block_flood_is_capped_per_tip_and_never_aborts() {
    // On regtest nearly every share is a block; a miner sending many distinct block shares on
    // one tip must not fill the candidate queue (which would abort the pool).
    both_drivers(DEADLINE, |force_polling| {
        let plane = start_pool(
            force_polling,
            pinned_port(tiny()),
            template(BITS_REGTEST, 7, 10),
        );
        let mut m = Miner::connect(plane.local_addrs()[0]);
        m.setup(&user());
        let job = m.newest().clone();
        let network = warppool_core::ShareTarget::from_compact(job.nbits).unwrap();
        let share_target = warppool_core::Difficulty::from_f64_lossy(m.difficulty)
            .unwrap()
            .to_target();
        // Blocks that are also valid shares, so that past the cap they are plain accepted shares.
        let target = network.min(share_target);
        let cap = warppool_core::limits::BLOCK_CANDIDATES_PER_TIP_PER_SHARD_MAX;
        let shares = cap + 16;
        for i in 0..shares {
            m.en2 += 1;
            let share = job.search(&m.en1, m.en2, None, 0, |h| target.is_met_by(h));
            assert_true(&m.submit(10 + i as u64, &share, &user()));
        }
        let mut received = 0;
        while plane
            .candidates()
            .recv_timeout(Duration::from_millis(300))
            .is_ok()
        {
            received += 1;
        }
        assert_eq!(
            received, cap,
            "one candidate per block share up to the per-tip cap"
        );
        // The pool is still up and judging shares.
        m.en2 += 1;
        let share = job.search(&m.en1, m.en2, None, 0, |h| target.is_met_by(h));
        assert_true(&m.submit(9_999, &share, &user()));
        plane.stop();
    });
}

#[test]
fn bad_payout_address_refused_connection_kept() {
    both_drivers(DEADLINE, |force_polling| {
        let plane = pool(force_polling);
        let mut m = Miner::connect(plane.local_addrs()[0]);
        let sub = m.request(1, r#"{"id":1,"method":"mining.subscribe","params":["x"]}"#);
        m.take_subscribe(&sub);
        let bad = format!(
            r#"{{"id":2,"method":"mining.authorize","params":["{TESTNET_ADDRESS}.w","x"]}}"#
        );
        let reply = m.request(2, &bad);
        assert_eq!(error_code(&reply), Some(24), "{reply}");
        let message = reply["error"][1].as_str().unwrap();
        assert!(
            message.contains(TESTNET_ADDRESS) && message.contains("bitcoin"),
            "{message}"
        );
        assert!(m.jobs.is_empty());
        let good = format!(
            r#"{{"id":3,"method":"mining.authorize","params":["{}","d=0.5"]}}"#,
            user()
        );
        assert_true(&m.request(3, &good));
        m.wait_jobs(1);
        assert_true(&m.mine_submit(4, None, &user()));
        plane.stop();
    });
}

#[test]
fn fractional_difficulty_only_for_clients_that_ask() {
    both_drivers(DEADLINE, |force_polling| {
        let mut port = range_port(tiny(), tiny(), warppool_core::Difficulty::MAX);
        port.fractional = warppool_net::stratum::Fractional::OnRequest;
        let plane = start_pool(force_polling, port, template(BITS_DIFF1, 1, 3));
        let addr = plane.local_addrs()[0];
        // A client that did not ask: whole numbers, at least 1, as a JSON integer.
        let mut whole = Miner::connect(addr);
        whole.setup(&user());
        let set = whole
            .received
            .iter()
            .find(|l| l.contains("\"method\":\"mining.set_difficulty"))
            .unwrap();
        assert!(set.contains("\"params\":[1]"), "{set}");
        // NerdMiner suggests 0.00015 before authorize: it gets a fraction (clamped).
        let mut nerd = Miner::connect(addr);
        let sub = nerd.request(
            1,
            r#"{"id":1,"method":"mining.subscribe","params":["NerdMinerV2"]}"#,
        );
        nerd.take_subscribe(&sub);
        let suggest = r#"{"id":2,"method":"mining.suggest_difficulty","params":[0.00015]}"#;
        assert_true(&nerd.request(2, suggest));
        let auth = format!(r#"{{"id":3,"method":"mining.authorize","params":["{ADDRESS}","x"]}}"#);
        assert_true(&nerd.request(3, &auth));
        nerd.wait_jobs(1);
        assert!(
            (nerd.difficulty - 0.00015).abs() < 0.00001,
            "{}",
            nerd.difficulty
        );
        // `d=` in the password works the same way (here: below the port minimum, clamped).
        let mut hinted = Miner::connect(addr);
        let sub = hinted.request(1, r#"{"id":1,"method":"mining.subscribe","params":[]}"#);
        hinted.take_subscribe(&sub);
        let auth = format!(
            r#"{{"id":2,"method":"mining.authorize","params":["{ADDRESS}","d=0.000001"]}}"#
        );
        assert_true(&hinted.request(2, &auth));
        hinted.wait_jobs(1);
        assert_eq!(as_sent(hinted.difficulty), tiny());
        assert_true(&hinted.mine_submit(3, None, ADDRESS));
        plane.stop();
    });
}
