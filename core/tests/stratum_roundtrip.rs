//! Round-trip properties of the Stratum V1 codec: client messages generated from typed values
//! (random whitespace, key order, id types, hex case, padding) parse back to the same request;
//! the fast submit parser agrees with the `serde_json` reference; server messages parse back as
//! JSON with the expected values; random input never panics.

use proptest::prelude::*;
use serde_json::{Value, json};
use warppool_core::stratum::{
    ClientMessage, ConfigureReply, ErrorCode, FrameError, LineFramer, Notify, ParseErrorKind,
    Request, RequestId, parse_line, parse_submit_reference, write_configure_reply, write_error,
    write_notify, write_reconnect, write_result_bool, write_result_string, write_set_difficulty,
    write_set_extranonce, write_set_version_mask, write_subscribe_reply,
};
use warppool_core::{
    Difficulty, Extranonce1, Extranonce2, ExtranonceSize, JobId, Nonce, Ntime, VersionMask,
};

fn ws() -> impl Strategy<Value = String> {
    prop::sample::select(vec!["", "", " ", "  ", "\t", " \t "]).prop_map(str::to_owned)
}

/// An id as JSON text: number, string or null.
fn id_text() -> impl Strategy<Value = String> {
    prop_oneof![
        any::<u32>().prop_map(|n| n.to_string()),
        "[a-zA-Z0-9 _-]{0,20}".prop_map(|s| format!("\"{s}\"")),
        Just("null".to_owned()),
    ]
}

fn hex_case(s: String, upper: bool) -> String {
    if upper { s.to_uppercase() } else { s }
}

/// A JSON object with the members in the given order and random whitespace.
fn object(members: &[(&str, String)], order: &[usize], pads: &[String]) -> String {
    let mut out = format!("{}{{", pads[0]);
    for (i, &k) in order.iter().enumerate() {
        let (key, value) = &members[k];
        if i > 0 {
            out.push(',');
        }
        out.push_str(&format!(
            "{p}\"{key}\"{p}:{q}{value}{q}",
            p = pads[1],
            q = pads[2]
        ));
    }
    out.push_str(&format!("{}}}{}", pads[3], pads[4]));
    out
}

fn array(items: &[String], pad: &str) -> String {
    let mut out = String::from("[");
    for (i, item) in items.iter().enumerate() {
        if i > 0 {
            out.push(',');
        }
        out.push_str(pad);
        out.push_str(item);
        out.push_str(pad);
    }
    out.push(']');
    out
}

fn layout() -> impl Strategy<Value = (Vec<usize>, Vec<String>, bool)> {
    (
        Just(vec![0usize, 1, 2, 3]).prop_shuffle(),
        prop::collection::vec(ws(), 5),
        any::<bool>(),
    )
}

fn line(
    id: &str,
    method: &str,
    params: String,
    layout: &(Vec<usize>, Vec<String>, bool),
) -> String {
    let (order, pads, extra) = layout;
    let members = [
        ("id", id.to_owned()),
        ("method", format!("\"{method}\"")),
        ("params", params),
        ("jsonrpc", "\"2.0\"".to_owned()),
    ];
    let order: Vec<usize> = order
        .iter()
        .copied()
        .filter(|&k| *extra || k != 3)
        .collect();
    object(&members, &order, pads)
}

#[derive(Debug, Clone)]
struct GenSubmit {
    worker: String,
    job: u64,
    en2: Vec<u8>,
    ntime: u32,
    nonce: u32,
    version: Option<u32>,
    upper: bool,
    padded: bool,
}

fn gen_submit() -> impl Strategy<Value = GenSubmit> {
    (
        "[a-zA-Z0-9]{20,42}(\\.[a-zA-Z0-9_-]{1,16})?",
        any::<u64>(),
        prop_oneof![
            prop::collection::vec(any::<u8>(), 4),
            prop::collection::vec(any::<u8>(), 8)
        ],
        any::<u32>(),
        any::<u32>(),
        proptest::option::of(any::<u32>()),
        any::<bool>(),
        any::<bool>(),
    )
        .prop_map(
            |(worker, job, en2, ntime, nonce, version, upper, padded)| GenSubmit {
                worker,
                job,
                en2,
                ntime,
                nonce,
                version,
                upper,
                padded,
            },
        )
}

impl GenSubmit {
    fn params(&self) -> Vec<String> {
        let nonce = if self.padded {
            format!("{:08x}", self.nonce)
        } else {
            format!("{:x}", self.nonce)
        };
        let mut p = vec![
            self.worker.clone(),
            format!("{:x}", self.job),
            warppool_core::hex::encode(&self.en2),
            format!("{:08x}", self.ntime),
            nonce,
        ];
        if let Some(v) = self.version {
            p.push(format!("{v:08x}"));
        }
        p.into_iter()
            .enumerate()
            .map(|(i, s)| if i == 0 { s } else { hex_case(s, self.upper) })
            .collect()
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn submit_round_trips(s in gen_submit(), id in id_text(), lay in layout(), pad in ws()) {
        let params = s.params();
        let quoted: Vec<String> = params.iter().map(|p| format!("\"{p}\"")).collect();
        let text = line(&id, "mining.submit", array(&quoted, &pad), &lay);
        let msg = parse_line(text.as_bytes()).unwrap();
        prop_assert_eq!(msg.id.as_json(), id.as_bytes());
        let Request::Submit(sub) = msg.request else { panic!("{text}") };
        prop_assert_eq!(sub.worker, params[0].as_bytes());
        prop_assert_eq!(JobId::from_hex(sub.job_id).unwrap().get(), s.job);
        let size = ExtranonceSize::new(s.en2.len()).unwrap();
        let en2 = Extranonce2::from_hex(sub.extranonce2, size).unwrap();
        prop_assert_eq!(en2.as_bytes(), &s.en2[..]);
        prop_assert_eq!(Ntime::from_hex(sub.ntime).unwrap().secs(), s.ntime);
        prop_assert_eq!(Nonce::from_hex(sub.nonce).unwrap().get(), s.nonce);
        let bits = sub.version_bits.map(|b| warppool_core::hex::parse_u32(b).unwrap());
        prop_assert_eq!(bits, s.version);
        // The fast path agrees with the serde_json reference.
        let reference = parse_submit_reference(text.as_bytes()).unwrap();
        prop_assert_eq!(sub.to_owned_submit(&msg.id), reference);
    }

    #[test]
    fn subscribe_round_trips(
        ua in proptest::option::of("\\PC{0,40}"),
        session in proptest::option::of("[0-9a-f]{8,32}"),
        id in id_text(),
        lay in layout(),
        pad in ws(),
        bosminer in any::<bool>(),
    ) {
        let mut params = Vec::new();
        if let Some(ua) = &ua {
            params.push(serde_json::to_string(ua).unwrap());
            if bosminer {
                params.extend(["null".into(), "\"pool.example:3333\"".into(), "null".into()]);
            } else if let Some(s) = &session {
                params.push(format!("\"{s}\""));
            }
        }
        let text = line(&id, "mining.subscribe", array(&params, &pad), &lay);
        let msg = parse_line(text.as_bytes()).unwrap();
        prop_assert_eq!(msg.id.as_json(), id.as_bytes());
        let Request::Subscribe(sub) = msg.request else { panic!("{text}") };
        let expected_ua = ua.clone().map(|u| {
            let mut cut = u.len().min(warppool_core::limits::USER_AGENT_BYTES_MAX);
            while !u.is_char_boundary(cut) { cut -= 1; }
            u[..cut].to_owned()
        });
        prop_assert_eq!(sub.user_agent, expected_ua);
        let expected_session = if ua.is_some() && !bosminer { session } else { None };
        prop_assert_eq!(sub.session, expected_session);
    }

    #[test]
    fn authorize_round_trips(
        user in "[a-zA-Z0-9]{1,42}(\\.[a-zA-Z0-9_ γ-]{1,16})?",
        password in "\\PC{0,40}",
        d in proptest::option::of(1u32..1_000_000),
        id in id_text(),
        lay in layout(),
    ) {
        let password = match d { Some(d) => format!("{password},d={d}"), None => password };
        let params = vec![serde_json::to_string(&user).unwrap(),
            serde_json::to_string(&password).unwrap()];
        let text = line(&id, "mining.authorize", array(&params, " "), &lay);
        let Request::Authorize(a) = parse_line(text.as_bytes()).unwrap().request else {
            panic!("{text}")
        };
        prop_assert_eq!(&a.username, &user);
        prop_assert_eq!(&a.password, &password);
        if let Some(d) = d {
            prop_assert_eq!(a.hint.difficulty_start,
                Some(Difficulty::from_whole(u64::from(d)).unwrap()));
        }
    }

    #[test]
    fn configure_round_trips(
        mask in any::<u32>(),
        upper in any::<bool>(),
        min_bits in proptest::option::of((0u32..=32, any::<bool>())),
        min_diff in proptest::option::of(1u32..100_000),
        id in id_text(),
        lay in layout(),
        pad in ws(),
    ) {
        let mut exts = vec!["\"version-rolling\"".to_owned()];
        let mut opts = serde_json::Map::new();
        opts.insert("version-rolling.mask".into(), json!(hex_case(format!("{mask:08x}"), upper)));
        if let Some((n, as_string)) = min_bits {
            let v = if as_string { json!(n.to_string()) } else { json!(n) };
            opts.insert("version-rolling.min-bit-count".into(), v);
        }
        if let Some(md) = min_diff {
            exts.push("\"minimum-difficulty\"".into());
            opts.insert("minimum-difficulty.value".into(), json!(md));
        }
        exts.push("\"some-future-extension\"".into());
        let params = vec![array(&exts, &pad), Value::Object(opts).to_string()];
        let text = line(&id, "mining.configure", array(&params, &pad), &lay);
        let Request::Configure(c) = parse_line(text.as_bytes()).unwrap().request else {
            panic!("{text}")
        };
        let vr = c.version_rolling.unwrap();
        prop_assert_eq!(vr.mask, mask);
        prop_assert_eq!(vr.min_bit_count, min_bits.map(|(n, _)| n));
        prop_assert_eq!(c.minimum_difficulty,
            min_diff.map(|d| Some(Difficulty::from_whole(u64::from(d)).unwrap())));
        let reply = c.reply(VersionMask::POOL);
        prop_assert_eq!(reply.version_rolling.unwrap().bits(), mask & 0x1fff_e000);
        prop_assert_eq!(reply.minimum_difficulty, min_diff.map(|_| true));
    }

    #[test]
    fn suggest_difficulty_round_trips(d in 1e-4f64..1e12, id in id_text(), lay in layout()) {
        let text = line(&id, "mining.suggest_difficulty", format!("[{d}]"), &lay);
        let Request::SuggestDifficulty(got) = parse_line(text.as_bytes()).unwrap().request else {
            panic!("{text}")
        };
        prop_assert!((got.to_f64_lossy() - d).abs() <= d * 1e-9 + 1e-9);
    }

    #[test]
    fn random_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        let _ = parse_line(&bytes);
        let _ = parse_submit_reference(&bytes);
    }

    #[test]
    fn mutated_submits_never_panic_and_agree(
        s in gen_submit(),
        cut in any::<prop::sample::Index>(),
        byte in any::<u8>(),
    ) {
        let quoted: Vec<String> = s.params().iter().map(|p| format!("\"{p}\"")).collect();
        let text = format!("{{\"id\":1,\"method\":\"mining.submit\",\"params\":{}}}",
            array(&quoted, ""));
        let mut bytes = text.into_bytes();
        let i = cut.index(bytes.len());
        bytes[i] = byte;
        if let Ok(ClientMessage { id, request: Request::Submit(sub) }) = parse_line(&bytes) {
            let reference = parse_submit_reference(&bytes).unwrap();
            let fast = sub.to_owned_submit(&id);
            prop_assert_eq!(fast.worker, reference.worker);
            prop_assert_eq!(fast.job_id, reference.job_id);
            prop_assert_eq!(fast.extranonce2, reference.extranonce2);
            prop_assert_eq!(fast.ntime, reference.ntime);
            prop_assert_eq!(fast.nonce, reference.nonce);
            prop_assert_eq!(fast.version_bits, reference.version_bits);
        }
    }

    #[test]
    fn framer_yields_the_lines(
        lines in prop::collection::vec("[ -~]{0,60}", 0..20),
        crlf in any::<bool>(),
        chunk in 1usize..50,
    ) {
        let sep = if crlf { "\r\n" } else { "\n" };
        let stream: String = lines.iter().map(|l| format!("{l}{sep}")).collect();
        let mut buf = [0u8; 128];
        let mut framer = LineFramer::new(&mut buf);
        let mut got = Vec::new();
        for piece in stream.as_bytes().chunks(chunk) {
            let mut rest = piece;
            while !rest.is_empty() {
                let n = framer.feed(rest);
                rest = &rest[n..];
                while let Some(line) = framer.next_line() {
                    got.push(String::from_utf8(line.unwrap().to_vec()).unwrap());
                }
            }
        }
        let expected: Vec<String> = lines.iter()
            .map(|l| if crlf { l.clone() } else { l.strip_suffix('\r').unwrap_or(l).to_owned() })
            .filter(|l| !l.is_empty())
            .collect();
        prop_assert_eq!(got, expected);
    }

    #[test]
    fn framer_is_bounded_on_random_input(
        bytes in prop::collection::vec(prop_oneof![Just(b'\n'), any::<u8>()], 0..2000),
        chunk in 1usize..300,
    ) {
        let mut buf = [0u8; 64];
        let mut framer = LineFramer::new(&mut buf);
        for piece in bytes.chunks(chunk) {
            let mut rest = piece;
            while !rest.is_empty() {
                let n = framer.feed(rest);
                rest = &rest[n..];
                while let Some(item) = framer.next_line() {
                    if let Ok(line) = item {
                        prop_assert!(!line.is_empty() && line.len() <= 63);
                        let _ = parse_line(line);
                    }
                }
                prop_assert!(framer.buffered() <= 64);
            }
        }
    }

    #[test]
    fn notify_parses_back(
        job in any::<u64>(),
        prevhash in "[0-9a-f]{64}",
        coinb1 in "([0-9a-f]{2}){0,120}",
        coinb2 in "([0-9a-f]{2}){0,120}",
        branch in prop::collection::vec("[0-9a-f]{64}", 0..14),
        version in "[0-9a-f]{8}",
        nbits in "[0-9a-f]{8}",
        ntime in "[0-9a-f]{8}",
        clean in any::<bool>(),
    ) {
        let refs: Vec<&str> = branch.iter().map(String::as_str).collect();
        let n = Notify { job_id: JobId::new(job), prevhash: &prevhash, coinb1: &coinb1,
            coinb2: &coinb2, merkle_branch: &refs, version: &version, nbits: &nbits,
            ntime: &ntime, clean_jobs: clean };
        let mut out = [0u8; 4096];
        let len = write_notify(&mut out, &n).unwrap();
        prop_assert_eq!(out[len - 1], b'\n');
        let v: Value = serde_json::from_slice(&out[..len]).unwrap();
        prop_assert_eq!(&v["method"], "mining.notify");
        prop_assert!(v["id"].is_null());
        let p = v["params"].as_array().unwrap();
        prop_assert_eq!(p.len(), 9);
        prop_assert_eq!(p[0].as_str().unwrap(), format!("{job:x}"));
        prop_assert_eq!(p[1].as_str().unwrap(), &prevhash);
        prop_assert_eq!(p[2].as_str().unwrap(), &coinb1);
        prop_assert_eq!(p[3].as_str().unwrap(), &coinb2);
        let b: Vec<&str> = p[4].as_array().unwrap().iter().map(|x| x.as_str().unwrap()).collect();
        prop_assert_eq!(&b, &refs);
        prop_assert_eq!(p[5].as_str().unwrap(), &version);
        prop_assert_eq!(p[6].as_str().unwrap(), &nbits);
        prop_assert_eq!(p[7].as_str().unwrap(), &ntime);
        prop_assert_eq!(p[8].as_bool().unwrap(), clean);
        // Too small a buffer is an error, never a panic or a truncated line.
        prop_assert!(write_notify(&mut out[..len - 1], &n).is_err());
    }

    #[test]
    fn set_difficulty_parses_back(
        units in 1u64..(1 << 40),
        frac in any::<bool>(),
        ok in any::<bool>(),
    ) {
        let d = if frac {
            Difficulty::from_f64_lossy(units as f64 / 65_536.0).unwrap()
        } else {
            Difficulty::from_whole(units).unwrap()
        };
        let mut out = [0u8; 128];
        let len = write_set_difficulty(&mut out, d, ok).unwrap();
        let v: Value = serde_json::from_slice(&out[..len]).unwrap();
        prop_assert_eq!(&v["method"], "mining.set_difficulty");
        let sent = &v["params"][0];
        prop_assert!(sent.is_number());
        let x = sent.as_f64().unwrap();
        match d.whole() {
            Some(w) => prop_assert_eq!(sent.as_u64(), Some(w)),
            // The shortest text that reads back as the same fixed-point value (issue 9).
            None if ok => {
                let text = std::str::from_utf8(&out[..len]).unwrap();
                let start = text.find("\"params\":[").unwrap() + 10;
                let number: String =
                    text[start..].chars().take_while(|c| *c != ']').collect();
                prop_assert_eq!(Difficulty::from_text_lossy(&number), Ok(d), "{}", text);
                prop_assert!((x - d.to_f64_lossy()).abs() <= d.to_f64_lossy() * 1e-3);
            }
            None => {
                let w = sent.as_u64().unwrap();
                prop_assert!(w >= 1);
                prop_assert!(w as f64 >= d.to_f64_lossy());
                prop_assert!((w as f64) < d.to_f64_lossy() + 1.0);
            }
        }
    }

    #[test]
    fn replies_parse_back(id in id_text(), en1 in any::<u32>(), size in 2usize..=8,
        mask in any::<u32>(), ok in any::<bool>(), msg in "\\PC{0,40}") {
        let rid = RequestId::from_json(id.as_bytes()).unwrap();
        let expected_id: Value = serde_json::from_str(&id).unwrap();
        let mut out = [0u8; 512];
        let size = ExtranonceSize::new(size).unwrap();
        let en1 = Extranonce1::from_u32(en1);
        let len = write_subscribe_reply(&mut out, &rid, "1a2b3c4d", &en1, size).unwrap();
        let v: Value = serde_json::from_slice(&out[..len]).unwrap();
        prop_assert_eq!(&v["id"], &expected_id);
        prop_assert!(v["error"].is_null());
        prop_assert_eq!(&v["result"][0], &json!([["mining.set_difficulty", "1a2b3c4d"],
            ["mining.notify", "1a2b3c4d"]]));
        prop_assert_eq!(v["result"][1].as_str().unwrap(), en1.to_string());
        prop_assert_eq!(v["result"][2].as_u64().unwrap(), size.bytes() as u64);

        let len = write_result_bool(&mut out, &rid, ok).unwrap();
        let v: Value = serde_json::from_slice(&out[..len]).unwrap();
        prop_assert_eq!(&v, &json!({"id": expected_id, "result": ok, "error": null}));

        let len = write_error(&mut out, &rid, ErrorCode::LowDifficulty, &msg).unwrap();
        let v: Value = serde_json::from_slice(&out[..len]).unwrap();
        prop_assert_eq!(&v, &json!({"id": expected_id, "result": null, "error": [23, msg, null]}));

        let len = write_result_string(&mut out, &rid, &msg).unwrap();
        let v: Value = serde_json::from_slice(&out[..len]).unwrap();
        prop_assert_eq!(&v["result"], &json!(msg));

        let reply = ConfigureReply {
            version_rolling: Some(VersionMask::POOL.negotiate(mask)),
            minimum_difficulty: ok.then_some(true),
            subscribe_extranonce: None,
        };
        let len = write_configure_reply(&mut out, &rid, &reply).unwrap();
        let v: Value = serde_json::from_slice(&out[..len]).unwrap();
        let mut result = json!({"version-rolling": true,
            "version-rolling.mask": format!("{:08x}", mask & 0x1fff_e000)});
        if ok {
            result["minimum-difficulty"] = json!(true);
        }
        prop_assert_eq!(&v, &json!({"id": expected_id, "result": result, "error": null}));

        let len = write_set_extranonce(&mut out, &en1, size).unwrap();
        let v: Value = serde_json::from_slice(&out[..len]).unwrap();
        prop_assert_eq!(&v["params"], &json!([en1.to_string(), size.bytes()]));
    }
}

#[test]
fn fixed_server_messages() {
    let mut out = [0u8; 256];
    let id = RequestId::from_u64(0);
    let reply = ConfigureReply {
        version_rolling: Some(VersionMask::POOL),
        ..Default::default()
    };
    let len = write_configure_reply(&mut out, &id, &reply).unwrap();
    assert_eq!(
        &out[..len],
        concat!(
            r#"{"id":0,"result":{"version-rolling":true,"version-rolling.mask":"1fffe000"},"#,
            "\"error\":null}\n"
        )
        .as_bytes()
    );
    let len = write_set_version_mask(&mut out, VersionMask::POOL).unwrap();
    assert_eq!(
        &out[..len],
        &b"{\"id\":null,\"method\":\"mining.set_version_mask\",\"params\":[\"1fffe000\"]}\n"[..]
    );
    let len = write_reconnect(&mut out, Some(("pool.example", 3333)), 5).unwrap();
    let v: Value = serde_json::from_slice(&out[..len]).unwrap();
    assert_eq!(v["params"], json!(["pool.example", 3333, 5]));
    let len = write_reconnect(&mut out, None, 0).unwrap();
    let v: Value = serde_json::from_slice(&out[..len]).unwrap();
    assert_eq!(v["params"], json!([]));
    let len = write_set_difficulty(&mut out, Difficulty::from_whole(1024).unwrap(), false).unwrap();
    assert_eq!(
        &out[..len],
        &b"{\"id\":null,\"method\":\"mining.set_difficulty\",\"params\":[1024]}\n"[..]
    );
    let d = Difficulty::from_f64_lossy(0.5).unwrap();
    let len = write_set_difficulty(&mut out, d, true).unwrap();
    assert!(out[..len].ends_with(b"[0.5]}\n"));
    let len = write_set_difficulty(&mut out, d, false).unwrap();
    assert!(out[..len].ends_with(b"[1]}\n"));
    let bad = Notify {
        job_id: JobId::new(1),
        prevhash: "zz\"",
        coinb1: "",
        coinb2: "",
        merkle_branch: &[],
        version: "20000000",
        nbits: "1d00ffff",
        ntime: "6650f8a1",
        clean_jobs: true,
    };
    assert!(write_notify(&mut out, &bad).is_err());
}

#[test]
fn framer_discards_over_long_lines() {
    let mut buf = [0u8; 32];
    let mut framer = LineFramer::new(&mut buf);
    let mut events = Vec::new();
    let input = [
        &b"short\n"[..],
        &[b'x'; 100][..],
        b"\nnext\r\n",
        &[b'y'; 40][..],
        b"\nend\n",
    ]
    .concat();
    let mut rest = &input[..];
    while !rest.is_empty() {
        let n = framer.feed(rest);
        rest = &rest[n..];
        while let Some(item) = framer.next_line() {
            events.push(item.map(<[u8]>::to_vec));
        }
    }
    let too_long = Err(FrameError::LineTooLong { max: 31 });
    assert_eq!(
        events,
        vec![
            Ok(b"short".to_vec()),
            too_long.clone(),
            Ok(b"next".to_vec()),
            too_long,
            Ok(b"end".to_vec())
        ]
    );
}

/// Random JSON values, nested at most `depth` deep.
fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        (-1e9f64..1e9).prop_map(|x| json!(x)),
        "\\PC{0,12}".prop_map(Value::String),
        "[\"\\\\/\u{0}-\u{1f}]{0,4}".prop_map(Value::String),
    ];
    leaf.prop_recursive(10, 64, 6, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..6).prop_map(Value::Array),
            prop::collection::btree_map("[a-z]{0,6}", inner, 0..6)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

fn depth(v: &Value) -> usize {
    match v {
        Value::Array(a) => 1 + a.iter().map(depth).max().unwrap_or(0),
        Value::Object(o) => 1 + o.values().map(depth).max().unwrap_or(0),
        _ => 0,
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    /// The scanner accepts what serde_json accepts (within the depth limit) and refuses what
    /// serde_json refuses as syntax, so the serde_json slow path only sees input of bounded
    /// depth.
    #[test]
    fn scanner_agrees_with_serde_json(
        params in json_value(),
        method in prop_oneof![Just("mining.subscribe"), Just("mining.configure"), Just("x.y")],
        cut in any::<prop::sample::Index>(),
        byte in any::<u8>(),
        mutate in any::<bool>(),
    ) {
        let object = json!({"id": 1, "method": method, "params": params});
        let mut bytes = object.to_string().into_bytes();
        if mutate {
            let i = cut.index(bytes.len());
            bytes[i] = byte;
        }
        let serde: Result<Value, _> = serde_json::from_slice(&bytes);
        let ours = parse_line(&bytes);
        match (&serde, &ours) {
            (Ok(v), Err(e)) => {
                let syntax =
                    matches!(e.kind(), ParseErrorKind::Json { .. } | ParseErrorKind::Utf8 { .. });
                prop_assert!(!syntax, "serde accepted, scanner refused: {:?}", e);
                if e.kind() == ParseErrorKind::TooDeep {
                    prop_assert!(depth(v) > warppool_core::limits::JSON_DEPTH_MAX);
                }
            }
            (Err(_), Ok(msg)) => {
                // Only lone surrogates and out-of-range numbers may pass the scanner; they
                // never reach a typed value unchecked.
                let text = String::from_utf8_lossy(&bytes);
                prop_assert!(text.contains("\\u") || text.contains('e') || text.contains('E'),
                    "scanner accepted what serde refused: {text} -> {msg:?}");
            }
            (Ok(v), Ok(_)) => prop_assert!(depth(v) <= warppool_core::limits::JSON_DEPTH_MAX),
            (Err(_), Err(_)) => {}
        }
    }
}
