//! One test per firmware capture in MINERS.md §2–§10: every line that firmware sends parses to
//! the expected typed request.

use warppool_core::stratum::{
    ClientMessage, Configure, ParseErrorKind, Request, RequestId, Submit, Subscribe,
    VersionRollingRequest, parse_line, parse_submit_reference,
};
use warppool_core::{Difficulty, VersionMask};

fn parse(line: &str) -> ClientMessage<'_> {
    match parse_line(line.as_bytes()) {
        Ok(m) => m,
        Err(e) => panic!("{line}: {e:?}"),
    }
}

fn id(line: &str) -> String {
    String::from_utf8(parse(line).id.as_json().to_vec()).unwrap()
}

fn subscribe(line: &str) -> Subscribe {
    match parse(line).request {
        Request::Subscribe(s) => s,
        other => panic!("{line}: {other:?}"),
    }
}

fn configure(line: &str) -> Configure {
    match parse(line).request {
        Request::Configure(c) => c,
        other => panic!("{line}: {other:?}"),
    }
}

fn submit(line: &str) -> Submit<'_> {
    let msg = parse(line);
    let Request::Submit(s) = msg.request else {
        panic!("{line}: {:?}", msg.request)
    };
    // The fast path agrees with the serde_json reference.
    let reference = parse_submit_reference(line.as_bytes()).unwrap();
    assert_eq!(s.to_owned_submit(&msg.id), reference, "{line}");
    s
}

fn authorize(line: &str) -> (String, String) {
    match parse(line).request {
        Request::Authorize(a) => (a.username, a.password),
        other => panic!("{line}: {other:?}"),
    }
}

fn suggest(line: &str) -> f64 {
    match parse(line).request {
        Request::SuggestDifficulty(d) => d.to_f64_lossy(),
        other => panic!("{line}: {other:?}"),
    }
}

const BC1: &str = "bc1qxy2kgdygjrsqtzq2n0yrf2493p83kkfjhx0wlh";

#[test]
fn nerdminer_v2() {
    let line = r#"{"id": 1, "method": "mining.subscribe", "params": ["NerdMinerV2/V1.8.3"]}"#;
    assert_eq!(
        subscribe(line).user_agent.as_deref(),
        Some("NerdMinerV2/V1.8.3")
    );
    assert_eq!(id(line), "1");
    let line =
        format!(r#"{{"params": ["{BC1}.nerd", "x"], "id": 2, "method": "mining.authorize"}}"#);
    assert_eq!(authorize(&line), (format!("{BC1}.nerd"), "x".to_owned()));
    let line = r#"{"id":3,"method":"mining.suggest_difficulty","params":[0.00015]}"#;
    assert!((suggest(line) - 0.00015).abs() < 1e-9);
    // en2 fixed, nonce unpadded.
    let line = format!(
        concat!(
            r#"{{"id":4,"method":"mining.submit","params":["{BC1}","1a","00000001","6650f8a1","#,
            r#""da54e7"]}}"#,
        ),
        BC1 = BC1
    );
    let s = submit(&line);
    assert_eq!(s.nonce, b"da54e7");
    assert_eq!(s.extranonce2, b"00000001");
    assert_eq!(s.version_bits, None);
    assert_eq!(
        warppool_core::Nonce::from_hex(s.nonce).unwrap().get(),
        0x00da_54e7
    );
}

#[test]
fn nerdnos_six_params_without_configure() {
    let line = r#"{"id": 1, "method": "mining.subscribe", "params": ["NerdNOS/V1.0.4"]}"#;
    assert_eq!(
        subscribe(line).user_agent.as_deref(),
        Some("NerdNOS/V1.0.4")
    );
    let line = r#"{"id": 3, "method": "mining.suggest_difficulty", "params": [128]}"#;
    assert_eq!(suggest(line), 128.0);
    let line = concat!(
        r#"{"id": 7, "method": "mining.submit", "params": ["bc1q.nos","2f","00000003","#,
        r#""6650f8a1","0a1b2c3d","00006000"]}"#,
    );
    let s = submit(line);
    assert_eq!(s.version_bits, Some(&b"00006000"[..]));
    assert!(VersionMask::POOL.allows(0x6000));
}

#[test]
fn bitaxe_current_compact() {
    let line = concat!(
        r#"{"id":1,"method":"mining.configure","params":[["version-rolling"],"#,
        r#"{"version-rolling.mask":"ffffffff"}]}"#,
    );
    let c = configure(line);
    assert_eq!(
        c.version_rolling,
        Some(VersionRollingRequest {
            mask: 0xffff_ffff,
            min_bit_count: None
        })
    );
    assert_eq!(c.minimum_difficulty, None);
    let reply = c.reply(VersionMask::POOL);
    assert_eq!(
        reply.version_rolling,
        Some(VersionMask::from_bits(0x1fff_e000))
    );
    assert_eq!(reply.minimum_difficulty, None);
    let line = r#"{"id":2,"method":"mining.subscribe","params":["bitaxe/BM1372/BM1373/v2.15.0"]}"#;
    assert_eq!(
        subscribe(line).user_agent.as_deref(),
        Some("bitaxe/BM1372/BM1373/v2.15.0")
    );
    let line = concat!(
        r#"{"id":2,"method":"mining.subscribe","#,
        r#""params":["bitaxe/BM1370/v2.13.0b1-28-gdee4339-dirty"]}"#,
    );
    assert!(subscribe(line).user_agent.unwrap().ends_with("-dirty"));
    let line = format!(r#"{{"id":3,"method":"mining.authorize","params":["{BC1}.bitaxe","x"]}}"#);
    assert_eq!(authorize(&line).1, "x");
    let line = r#"{"id":4,"method":"mining.suggest_difficulty","params":[1000]}"#;
    assert_eq!(suggest(line), 1000.0);
    let line = r#"{"id":5,"method":"mining.extranonce.subscribe","params":[]}"#;
    assert_eq!(parse(line).request, Request::ExtranonceSubscribe);
    let line = format!(
        concat!(
            r#"{{"id":6,"method":"mining.submit","params":["{BC1}.bitaxe","3e","c7080000","#,
            r#""6650f8a1","1a2b3c4d","00a3e000"]}}"#,
        ),
        BC1 = BC1
    );
    let s = submit(&line);
    assert_eq!(s.job_id, b"3e");
    assert_eq!(s.extranonce2, b"c7080000");
    // Replies to our server requests.
    let line = r#"{"id":9,"method":"pong","params":[]}"#;
    assert_eq!(parse(line).request, Request::Pong);
    let line = r#"{"id":10,"result":"v2.15.0","error":null}"#;
    match parse(line).request {
        Request::Response(r) => {
            assert!(r.ok);
            assert_eq!(r.result.as_deref(), Some("v2.15.0"));
        }
        other => panic!("{other:?}"),
    }
}

#[test]
fn bitaxe_legacy_spaced_and_probe() {
    let lines = [
        concat!(
            r#"{"id": 1, "method": "mining.configure", "params": [["version-rolling"],"#,
            r#" {"version-rolling.mask": "ffffffff"}]}"#,
        ),
        r#"{"id": 2, "method": "mining.subscribe", "params": ["bitaxe/BM1368/v2.8.0"]}"#,
        r#"{"id": 3, "method": "mining.authorize", "params": ["bc1q.bitaxe", "x"]}"#,
        r#"{"id": 4, "method": "mining.suggest_difficulty", "params": [1000]}"#,
        concat!(
            r#"{"id": 5, "method": "mining.submit", "params": ["bc1q.bitaxe", "3e", "c7080000","#,
            r#" "6650f8a1", "1a2b3c4d", "00000000"]}"#,
        ),
    ];
    for line in lines {
        let _ = parse(line);
    }
    // v2.0/2.1: no version in the UA.
    let line = r#"{"id": 1, "method": "mining.subscribe", "params": ["bitaxe/BM1368"]}"#;
    assert_eq!(subscribe(line).user_agent.as_deref(), Some("bitaxe/BM1368"));
    // The primary-pool probe: subscribe then authorize, nothing else.
    let _ = subscribe(r#"{"id":1,"method":"mining.subscribe","params":["bitaxe/BM1370/v2.15.0"]}"#);
    let _ = authorize(r#"{"id":2,"method":"mining.authorize","params":["bc1q.bitaxe","x"]}"#);
}

#[test]
fn nerdqaxe_utf8_user_agents() {
    for ua in [
        "NerdQAxe++/BM1370/v1.0.38",
        "NerdOCTAXE-γ/BM1370/v1.0.38",
        "NerdHaxe-γ/BM1370/v1",
    ] {
        let line = format!(r#"{{"id": 1, "method": "mining.subscribe", "params": ["{ua}"]}}"#);
        assert_eq!(subscribe(&line).user_agent.as_deref(), Some(ua));
    }
    let line = concat!(
        r#"{"id": 2, "method": "mining.configure", "params": [["version-rolling"],"#,
        r#" {"version-rolling.mask": "1fffe000"}]}"#,
    );
    assert_eq!(configure(line).version_rolling.unwrap().mask, 0x1fff_e000);
    let line = r#"{"id": 4, "method": "mining.suggest_difficulty", "params": [1000]}"#;
    assert_eq!(suggest(line), 1000.0);
    let line = r#"{"id": 5, "method": "mining.extranonce.subscribe", "params": []}"#;
    assert_eq!(parse(line).request, Request::ExtranonceSubscribe);
    let line = concat!(
        r#"{"id": 6, "method": "mining.submit", "params": ["bc1q.qaxe", "4a", "0000002a","#,
        r#" "6650f8a1", "00000001", "1fffe000"]}"#,
    );
    assert_eq!(submit(line).version_bits, Some(&b"1fffe000"[..]));
}

#[test]
fn avalon_nano3s_cgminer() {
    let line = concat!(
        r#"{"id": 0, "method": "mining.configure", "params": [["version-rolling"],"#,
        r#" {"version-rolling.mask": "ffffffff"}]}"#,
    );
    assert_eq!(id(line), "0");
    assert_eq!(
        configure(line)
            .reply(VersionMask::POOL)
            .version_rolling
            .unwrap()
            .bits(),
        0x1fff_e000
    );
    let s = subscribe(r#"{"id": 1, "method": "mining.subscribe", "params": ["cgminer/4.11.1"]}"#);
    assert_eq!(s.user_agent.as_deref(), Some("cgminer/4.11.1"));
    let s = subscribe(
        r#"{"id": 5, "method": "mining.subscribe", "params": ["cgminer/4.11.1", "3a5e01c2"]}"#,
    );
    assert_eq!(s.session.as_deref(), Some("3a5e01c2"));
    let s = subscribe(r#"{"id": 6, "method": "mining.subscribe", "params": []}"#);
    assert_eq!(s, Subscribe::default());
    let _ = authorize(r#"{"id": 2, "method": "mining.authorize", "params": ["bc1q.avalon", "x"]}"#);
    let line = concat!(
        r#"{"params": ["bc1q.avalon", "5b", "01000000", "6650f8b3", "3c2d1e0f","#,
        r#" "1fffe000"], "id": 12, "method": "mining.submit"}"#,
    );
    let s = submit(line);
    assert_eq!(s.ntime, b"6650f8b3");
    assert_eq!(id(line), "12");
    // Five params when the pool gave no mask.
    let line = concat!(
        r#"{"params": ["bc1q.avalon", "5b", "01000000", "6650f8b3", "3c2d1e0f"], "id": 13,"#,
        r#" "method": "mining.submit"}"#,
    );
    assert_eq!(submit(line).version_bits, None);
    // Its answers to ping and get_version.
    let line = r#"{"id": 14, "result": "pong", "error": null}"#;
    let Request::Response(r) = parse(line).request else {
        panic!("{line}")
    };
    assert!(r.ok);
    assert_eq!(r.result.as_deref(), Some("pong"));
}

#[test]
fn antminer_s21_min_bit_count_and_luxos() {
    let line = concat!(
        r#"{"id": 9966, "method": "mining.configure", "params": [["version-rolling","#,
        r#" "subscribe-extranonce"], {"version-rolling.mask": "1fffe000","#,
        r#" "version-rolling.min-bit-count": 16}]}"#,
    );
    let c = configure(line);
    assert_eq!(
        c.version_rolling,
        Some(VersionRollingRequest {
            mask: 0x1fff_e000,
            min_bit_count: Some(16)
        })
    );
    assert!(c.subscribe_extranonce);
    // cpuminer style: min-bit-count as a string.
    let line = concat!(
        r#"{"id":1,"method":"mining.configure","params":[["version-rolling"],"#,
        r#"{"version-rolling.mask":"1fffe000","version-rolling.min-bit-count":"2"}]}"#,
    );
    assert_eq!(
        configure(line).version_rolling.unwrap().min_bit_count,
        Some(2)
    );
    let ua = "Antminer S21/Fri Oct 11 16:34:48 CST 2024";
    let line = format!(r#"{{"id": 1, "method": "mining.subscribe", "params": ["{ua}"]}}"#);
    assert_eq!(subscribe(&line).user_agent.as_deref(), Some(ua));
    let ua = "Antminer S21|LUXminer 2024.9.30|S21|a|";
    let line = format!(
        concat!(
            r#"{{"id": 1, "method": "mining.subscribe", "params": ["{ua}", null,"#,
            r#" "pool.example:3333", null]}}"#,
        ),
        ua = ua
    );
    let s = subscribe(&line);
    assert_eq!(s.user_agent.as_deref(), Some(ua));
    assert_eq!(s.session, None);
    let line = concat!(
        r#"{"params": ["bc1q.s21", "6c", "00000000a1b2c3d4", "6650f8a1", "ABCDEF01","#,
        r#" "00002000"], "id": 30, "method": "mining.submit"}"#,
    );
    assert_eq!(submit(line).nonce, b"ABCDEF01");
}

#[test]
fn bmminer_multi_version() {
    let _ = subscribe(r#"{"id": 1, "method": "mining.subscribe", "params": ["bmminer/2.0.0"]}"#);
    let line = r#"{"id": 4, "method": "mining.multi_version", "params": [1]}"#;
    assert_eq!(parse(line).request, Request::MultiVersion(1));
    let line = r#"{"id": 3, "method": "mining.suggest_difficulty", "params": [512]}"#;
    assert_eq!(suggest(line), 512.0);
}

#[test]
fn whatsminer_configure_and_session() {
    let line = concat!(
        r#"{"id": 196, "method": "mining.configure", "params": [["version-rolling"],"#,
        r#" {"version-rolling.mask": "1fffe000"}]}"#,
    );
    let c = configure(line);
    let reply = c.reply(VersionMask::POOL);
    // Only the two standard keys: no minimum-difficulty, no min-bit-count.
    assert_eq!(reply.minimum_difficulty, None);
    assert_eq!(reply.subscribe_extranonce, None);
    let line = concat!(
        r#"{"id": 197, "method": "mining.subscribe", "params": ["whatsminer/v1.0","#,
        r#" "ae6812eb4cd7735a302a8a9dd95cf71f"]}"#,
    );
    let s = subscribe(line);
    assert_eq!(s.user_agent.as_deref(), Some("whatsminer/v1.0"));
    assert_eq!(
        s.session.as_deref(),
        Some("ae6812eb4cd7735a302a8a9dd95cf71f")
    );
}

#[test]
fn braiins_os_fixtures() {
    let line = concat!(
        r#"{"id":0,"method":"mining.configure","params":[["version-rolling"],"#,
        r#"{"version-rolling.mask":"1fffe000","version-rolling.min-bit-count":16}]}"#,
    );
    assert_eq!(
        configure(line).version_rolling.unwrap().min_bit_count,
        Some(16)
    );
    let line = concat!(
        r#"{"id":1,"method":"mining.subscribe","params":["Braiins OS 2019-06-05",null,"#,
        r#""stratum.example.com:3333",null]}"#,
    );
    assert_eq!(
        subscribe(line).user_agent.as_deref(),
        Some("Braiins OS 2019-06-05")
    );
    let ua = "2026-02-13-0-db69f9bc-26.01-plus;bosminer-plus-tuner 0.9.0-db69f9bc";
    let line =
        format!(r#"{{"id":1,"method":"mining.subscribe","params":["{ua}",null,"h:1",null]}}"#);
    assert_eq!(subscribe(&line).user_agent.as_deref(), Some(ua));
    let line = r#"{"id":2,"method":"mining.authorize","params":["braiins.worker0",""]}"#;
    assert_eq!(
        authorize(line),
        ("braiins.worker0".to_owned(), String::new())
    );
    let line = concat!(
        r#"{"id":3,"method":"mining.submit","params":["braiins.worker0","ahoj","00000000","#,
        r#""5d10bc0a","0443c37b","00000000"]}"#,
    );
    let s = submit(line);
    assert_eq!(s.job_id, b"ahoj"); // not hex: the share validator answers "job not found"
}

#[test]
fn password_hints_and_minimum_difficulty() {
    let line = r#"{"id":2,"method":"mining.authorize","params":["bc1q.w","x,d=2048,md=512"]}"#;
    let Request::Authorize(a) = parse(line).request else {
        panic!()
    };
    assert_eq!(
        a.hint.difficulty_start,
        Some(Difficulty::from_whole(2048).unwrap())
    );
    assert_eq!(
        a.hint.difficulty_min,
        Some(Difficulty::from_whole(512).unwrap())
    );
    let line = r#"{"id":2,"method":"mining.authorize","params":["bc1q.w","d=0.5"]}"#;
    let Request::Authorize(a) = parse(line).request else {
        panic!()
    };
    assert_eq!(
        a.hint.difficulty_start.map(Difficulty::to_f64_lossy),
        Some(0.5)
    );
    let line = concat!(
        r#"{"id":1,"method":"mining.configure","params":[["minimum-difficulty"],"#,
        r#"{"minimum-difficulty.value":2048}]}"#,
    );
    let c = configure(line);
    assert_eq!(
        c.minimum_difficulty,
        Some(Some(Difficulty::from_whole(2048).unwrap()))
    );
    assert_eq!(c.version_rolling, None);
    let reply = c.reply(VersionMask::POOL);
    assert_eq!(reply.version_rolling, None);
    assert_eq!(reply.minimum_difficulty, Some(true));
}

#[test]
fn unknown_methods_and_errors_keep_the_id() {
    let line = r#"{"id":"abc","method":"client.get_version","params":[]}"#;
    let m = parse(line);
    assert_eq!(m.id.as_json(), br#""abc""#);
    assert_eq!(m.request, Request::Unknown("client.get_version".to_owned()));
    let line = r#"{"id":"x","method":"mining.ping","params":[]}"#;
    assert_eq!(parse(line).request, Request::Ping);
    let line = r#"{"id":null,"method":"mining.suggest_difficulty(64)","params":[]}"#;
    assert_eq!(suggest(line), 64.0);
    // Errors carry the id when it came before the problem.
    let e =
        parse_line(br#"{"id":7,"method":"mining.submit","params":["a","b","c","d"]}"#).unwrap_err();
    assert_eq!(e.id(), Some(RequestId::from_u64(7)));
    assert!(matches!(
        e.kind(),
        ParseErrorKind::ParamCount { got: 4, .. }
    ));
    let e = parse_line(br#"{"id":8,"method":"mining.submit","params":[1,2,3,4,5]}"#).unwrap_err();
    assert_eq!(e.kind(), ParseErrorKind::ParamType { index: 0 });
    let e = parse_line(br#"{"id":9,"method":"mining.submit","params":["a\n","b","c","d","e"]}"#)
        .unwrap_err();
    assert_eq!(e.kind(), ParseErrorKind::SubmitEscape { index: 0 });
    let e = parse_line(br#"{"id":10,"method":"mining.authorize","params":["a""#).unwrap_err();
    assert_eq!(e.id(), Some(RequestId::from_u64(10)));
    assert!(matches!(e.kind(), ParseErrorKind::Json { .. }));
    let e = parse_line(b"{\"id\":1,\"params\":[[[[[[[[[[1]]]]]]]]]]}").unwrap_err();
    assert_eq!(e.kind(), ParseErrorKind::TooDeep);
    let e = parse_line(b"[1,2]").unwrap_err();
    assert_eq!(e.kind(), ParseErrorKind::NotAnObject);
    let e = parse_line(b"{\"id\":1,\"method\":\"\xff\"}").unwrap_err();
    assert!(matches!(e.kind(), ParseErrorKind::Utf8 { .. }));
    let long = vec![b' '; warppool_core::limits::LINE_BYTES_MAX + 1];
    assert!(matches!(
        parse_line(&long).unwrap_err().kind(),
        ParseErrorKind::LineTooLong { .. }
    ));
    let e = parse_line(br#"{"id":{"a":1},"method":"mining.ping"}"#).unwrap_err();
    assert_eq!(e.kind(), ParseErrorKind::IdType);
    // Trailing carriage return tolerated.
    assert_eq!(
        parse("{\"id\":1,\"method\":\"mining.ping\"}\r").request,
        Request::Ping
    );
}
