//! Hostile and broken input against the Stratum session: the pool stays up, every bad
//! connection is answered or closed within a bound, and another miner's shares are still
//! accepted. Each test under io_uring and under forced polling; VmRSS printed before/after.

#[path = "support/harness.rs"]
mod harness;
#[path = "support/stratum.rs"]
mod stratum;

use std::{
    io::{BufRead, BufReader, Read, Write},
    net::{Shutdown, SocketAddr, TcpStream},
    sync::Arc,
    time::{Duration, Instant},
};

use harness::{both_drivers, rss_kib, wait_until};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};
use stratum::*;
use warppool_net::{ListenerConfig, TlsFiles, stratum::StratumPlane};

const DEADLINE: Duration = Duration::from_secs(90);

/// One test at a time in this file, so the VmRSS figures are each test's own.
static SERIAL: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn serial() -> std::sync::MutexGuard<'static, ()> {
    SERIAL
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

fn plain() -> ListenerConfig {
    ListenerConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        tls: None,
    }
}

fn pool(force_polling: bool) -> StratumPlane {
    start_pool(
        force_polling,
        pinned_port(tiny()),
        template(BITS_DIFF1, 1, 5),
    )
}

/// A fresh miner on `addr` sets up and gets a share accepted.
fn assert_shares_accepted(addr: SocketAddr) {
    let mut m = Miner::connect(addr);
    m.setup(ADDRESS);
    assert_true(&m.mine_submit(10, None, ADDRESS));
}

/// Whether the server closed within the stream's read timeout (EOF or reset).
fn closed_by_server(stream: &mut TcpStream) -> bool {
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => return true,
            Err(_) => return false,
        }
    }
}

fn report(name: &str, force_polling: bool, before: u64) {
    let after = rss_kib();
    eprintln!(
        "{name} (force_polling={force_polling}): VmRSS {before} KiB -> {after} KiB ({:+} KiB)",
        after as i64 - before as i64
    );
    // Generous: proves that 1 MiB lines, 10k requests or a flood do not pile up memory (each
    // connection holds at most ~200 KiB of buffers, and they are freed at close).
    assert!(after < before + 64 * 1024, "VmRSS grew by more than 64 MiB");
}

#[test]
fn over_long_lines_invalid_utf8_and_nested_json() {
    let _serial = serial();
    both_drivers(DEADLINE, |force_polling| {
        let before = rss_kib();
        let plane = pool(force_polling);
        let addr = plane.local_addrs()[0];
        let mut good = Miner::connect(addr);
        good.setup(ADDRESS);
        // 1 MiB without a newline: an error reply, then the connection is closed.
        let mut long = TcpStream::connect(addr).unwrap();
        long.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = long.write_all(&vec![b'a'; 1 << 20]);
        let mut reader = BufReader::new(long.try_clone().unwrap());
        let mut line = String::new();
        reader.read_line(&mut line).unwrap();
        assert!(
            line.contains("line too long") && line.contains("[20,"),
            "{line}"
        );
        assert!(closed_by_server(&mut long));
        // Invalid UTF-8, invalid JSON, nesting within the line limit: error 20, kept.
        let mut m = Miner::connect(addr);
        m.reader
            .get_mut()
            .write_all(b"\xff\xfe{\"id\":1}\n")
            .unwrap();
        let reply = m.read_one().unwrap();
        assert_eq!(error_code(&reply), Some(20), "{reply}");
        m.send(r#"{"id":7,"method":"mining.subscribe","params":[}"#);
        let reply = m.read_one().unwrap();
        assert_eq!(error_code(&reply), Some(20), "{reply}");
        let nested = format!(
            "{{\"id\":8,\"method\":\"x\",\"params\":{}}}",
            "[".repeat(8000)
        );
        m.send(&nested);
        let reply = m.read_one().unwrap();
        assert_eq!(error_code(&reply), Some(20), "{reply}");
        assert_eq!(reply["id"], 8, "the id is recovered: {reply}");
        m.setup(ADDRESS);
        // 100k-deep nesting is an over-long line: error, then closed.
        let mut deep = TcpStream::connect(addr).unwrap();
        deep.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let _ = deep.write_all(format!("{}\n", "[".repeat(100_000)).as_bytes());
        assert!(closed_by_server(&mut deep));
        // The first miner was never disturbed.
        assert_true(&good.mine_submit(20, None, ADDRESS));
        assert_shares_accepted(addr);
        let counters = plane.counters_total();
        eprintln!("counters: {counters:?}");
        plane.stop();
        report("over_long_lines", force_polling, before);
    });
}

#[test]
fn ten_thousand_unknown_methods_all_answered() {
    let _serial = serial();
    both_drivers(DEADLINE, |force_polling| {
        let before = rss_kib();
        let plane = pool(force_polling);
        let addr = plane.local_addrs()[0];
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .unwrap();
        let mut writer = stream.try_clone().unwrap();
        let sender = std::thread::spawn(move || {
            let mut batch = String::new();
            for i in 0..10_000 {
                batch.push_str(&format!(
                    "{{\"id\":{i},\"method\":\"x.unknown{i}\",\"params\":[]}}\n"
                ));
                if i % 500 == 499 {
                    writer.write_all(batch.as_bytes()).unwrap();
                    batch.clear();
                }
            }
            writer
        });
        let mut reader = BufReader::new(stream);
        for i in 0..10_000 {
            let mut line = String::new();
            reader.read_line(&mut line).unwrap();
            let reply: serde_json::Value = serde_json::from_str(&line).unwrap();
            assert_eq!(reply["id"], i, "{line}");
            assert_eq!(error_code(&reply), Some(20));
        }
        let writer = sender.join().unwrap();
        let mut m = Miner::over(writer);
        m.setup(ADDRESS);
        assert_true(&m.mine_submit(10, None, ADDRESS));
        plane.stop();
        report("unknown_methods", force_polling, before);
    });
}

#[test]
fn slowloris_and_idle_connections_time_out() {
    let _serial = serial();
    both_drivers(DEADLINE, |force_polling| {
        let before = rss_kib();
        let mut net = net_config(vec![plain()], force_polling);
        net.subscribe_timeout = Duration::from_secs(2);
        net.idle_timeout = Duration::from_secs(2);
        let plane = start_pool_with(net, pinned_port(tiny()), template(BITS_DIFF1, 1, 5));
        let addr = plane.local_addrs()[0];
        // Slowloris before subscribe: 1 byte per 100 ms; the subscribe timeout closes it.
        let mut slow = TcpStream::connect(addr).unwrap();
        slow.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let started = Instant::now();
        let line =
            br#"{"id":1,"method":"mining.subscribe","params":["slow........................."]}"#;
        let mut closed = false;
        for byte in line.iter() {
            if slow.write_all(&[*byte]).is_err() || closed_by_server(&mut slow) {
                closed = true;
                break;
            }
        }
        assert!(closed, "slowloris closed");
        assert!(
            started.elapsed() < Duration::from_secs(5),
            "{:?}",
            started.elapsed()
        );
        // Subscribed, then a line trickled forever: the idle timeout closes it.
        let mut m = Miner::connect(addr);
        let sub = m.request(1, r#"{"id":1,"method":"mining.subscribe","params":[]}"#);
        m.take_subscribe(&sub);
        let mut stream = m.reader.into_inner();
        stream
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        let started = Instant::now();
        let mut closed = false;
        while started.elapsed() < Duration::from_secs(6) {
            if stream.write_all(b"x").is_err() || closed_by_server(&mut stream) {
                closed = true;
                break;
            }
        }
        assert!(closed, "idle connection closed");
        eprintln!("idle close after {:?}", started.elapsed());
        assert_shares_accepted(addr);
        plane.stop();
        report("slowloris", force_polling, before);
    });
}

#[test]
fn half_open_connections_and_flood_beyond_caps() {
    let _serial = serial();
    both_drivers(DEADLINE, |force_polling| {
        let before = rss_kib();
        let mut net = net_config(vec![plain()], force_polling);
        net.connections_per_ip_max = 64;
        net.connections_per_shard_max = 64;
        let plane = start_pool_with(net, pinned_port(tiny()), template(BITS_DIFF1, 1, 5));
        let addr = plane.local_addrs()[0];
        let mut good = Miner::connect(addr);
        good.setup(ADDRESS);
        // Half-open: the request and then FIN; the reply still arrives, then the close.
        for _ in 0..20 {
            let mut half = TcpStream::connect(addr).unwrap();
            half.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            half.write_all(b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[]}\n")
                .unwrap();
            half.shutdown(Shutdown::Write).unwrap();
            let mut all = String::new();
            let _ = half.read_to_string(&mut all);
            assert!(all.contains("\"id\":1,\"result\""), "{all}");
        }
        // A flood far beyond the caps: the excess is closed at accept.
        let mut flood = Vec::new();
        for _ in 0..300 {
            if let Ok(s) = TcpStream::connect(addr) {
                flood.push(s);
            }
        }
        let refused = flood
            .iter_mut()
            .filter_map(|s| {
                s.set_read_timeout(Some(Duration::from_millis(20))).unwrap();
                closed_by_server(s).then_some(())
            })
            .count();
        eprintln!("flood: {} connected, {refused} closed at once", flood.len());
        assert!(refused >= 300 - 64, "the caps hold: {refused}");
        assert!(wait_until(Duration::from_secs(5), || {
            let c = plane.counters_total();
            c.refused_ip_cap + c.refused_shard_full + c.refused_rate >= 200
        }));
        drop(flood);
        // The miner connected before the flood still works; and a new one once it is gone.
        assert_true(&good.mine_submit(20, None, ADDRESS));
        assert!(wait_until(Duration::from_secs(5), || plane
            .counters_total()
            .connections
            <= 2));
        assert_shares_accepted(addr);
        plane.stop();
        report("flood", force_polling, before);
    });
}

fn tls_files(dir_name: &str) -> (TlsFiles, rustls::pki_types::CertificateDer<'static>) {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    let dir = std::env::temp_dir().join(format!(
        "warppool-stratum-{dir_name}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    let files = TlsFiles {
        cert_path: dir.join("cert.pem"),
        key_path: dir.join("key.pem"),
    };
    std::fs::write(&files.key_path, certified.signing_key.serialize_pem()).unwrap();
    std::fs::write(&files.cert_path, certified.cert.pem()).unwrap();
    (files, certified.cert.der().clone())
}

#[test]
fn tls_on_plain_port_and_plain_text_on_tls_port() {
    let _serial = serial();
    both_drivers(DEADLINE, |force_polling| {
        let before = rss_kib();
        let (files, der) = tls_files("cross");
        let tls = ListenerConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            tls: Some(files),
        };
        let net = net_config(vec![plain(), tls], force_polling);
        let plane = start_pool_with(net, pinned_port(tiny()), template(BITS_DIFF1, 1, 5));
        let (plain_addr, tls_addr) = (plane.local_addrs()[0], plane.local_addrs()[1]);
        // A TLS ClientHello on the plain port: closed.
        let mut hello = TcpStream::connect(plain_addr).unwrap();
        hello
            .set_read_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        hello
            .write_all(&[
                0x16, 0x03, 0x01, 0x00, 0xa5, 0x01, 0x00, 0x00, 0xa1, 0x03, 0x03,
            ])
            .unwrap();
        assert!(closed_by_server(&mut hello));
        // Plain Stratum on the TLS port: closed.
        let mut text = TcpStream::connect(tls_addr).unwrap();
        text.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        text.write_all(b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[]}\n")
            .unwrap();
        assert!(closed_by_server(&mut text));
        assert!(wait_until(Duration::from_secs(5), || {
            let c = plane.counters_total();
            c.tls_errors >= 1 && c.closed >= 2
        }));
        // A real TLS miner still mines, and a plain one too.
        let mut roots = RootCertStore::empty();
        roots.add(der).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let config = Arc::new(
            ClientConfig::builder_with_provider(provider)
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots)
                .with_no_client_auth(),
        );
        let tcp = TcpStream::connect(tls_addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
        let conn = ClientConnection::new(config, "localhost".try_into().unwrap()).unwrap();
        let mut m = Miner::over(StreamOwned::new(conn, tcp));
        m.setup(ADDRESS);
        assert_true(&m.mine_submit(10, Some(0x2000), ADDRESS));
        assert_shares_accepted(plain_addr);
        plane.stop();
        report("tls_cross", force_polling, before);
    });
}
