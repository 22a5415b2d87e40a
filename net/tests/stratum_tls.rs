//! Stratum V1 over TLS: real shares judged on a TLS port, certificate reload under a mining
//! session, and a plain and a TLS port on the same pool; each under io_uring and under forced
//! polling. The client is the shared `Miner` over a rustls (ring) client stream that trusts
//! the test's self-signed certificate.

#[path = "support/harness.rs"]
mod harness;
#[path = "support/stratum.rs"]
mod stratum;
#[path = "support/tls.rs"]
mod tls;

use std::{
    net::{SocketAddr, TcpStream},
    sync::Arc,
    time::Duration,
};

use harness::{both_drivers, check_drivers, wait_until};
use rustls::{ClientConfig, ClientConnection, StreamOwned, pki_types::CertificateDer};
use serde_json::Value;
use stratum::*;
use tls::{client_config, install, self_signed, temp_dir};
use warppool_net::{ListenerConfig, TlsFiles, stratum::StratumPlane};

const DEADLINE: Duration = Duration::from_secs(60);

type TlsStream = StreamOwned<ClientConnection, TcpStream>;
type TlsMiner = Miner<TlsStream>;

/// A miner over TLS (the handshake runs on the first read or write).
fn connect_tls(addr: SocketAddr, config: &Arc<ClientConfig>) -> TlsMiner {
    let tcp = TcpStream::connect(addr).expect("connect");
    tcp.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    tcp.set_nodelay(true).unwrap();
    let name = "localhost".try_into().unwrap();
    let conn = ClientConnection::new(Arc::clone(config), name).unwrap();
    Miner::over(StreamOwned::new(conn, tcp))
}

/// The certificate the server presented (after the handshake).
fn peer_certificate(m: &TlsMiner) -> CertificateDer<'static> {
    m.reader
        .get_ref()
        .conn
        .peer_certificates()
        .expect("handshake done")[0]
        .clone()
        .into_owned()
}

fn tls_listener(files: TlsFiles) -> ListenerConfig {
    ListenerConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        tls: Some(files),
    }
}

fn plain_listener() -> ListenerConfig {
    ListenerConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        tls: None,
    }
}

/// A one-shard pool at the tiny pinned difficulty on `listeners`.
fn pool(force_polling: bool, listeners: Vec<ListenerConfig>) -> StratumPlane {
    start_pool_with(
        net_config(listeners, force_polling),
        pinned_port(tiny()),
        template(BITS_DIFF1, 1, 20),
    )
}

fn user() -> String {
    format!("{ADDRESS}.rig1")
}

/// The current Bitaxe sequence (MINERS.md): configure, subscribe and authorize pipelined;
/// the configure reply first, then subscribe and authorize replies, set_difficulty, notify.
fn bitaxe_setup<S: std::io::Read + std::io::Write>(m: &mut Miner<S>) {
    m.send(r#"{"id":1,"method":"mining.configure","params":[["version-rolling"],{"version-rolling.mask":"ffffffff"}]}"#);
    m.send(r#"{"id":2,"method":"mining.subscribe","params":["bitaxe/BM1372/BM1373/v2.15.0"]}"#);
    let line = format!(
        r#"{{"id":3,"method":"mining.authorize","params":["{}","x"]}}"#,
        user()
    );
    m.send(&line);
    let first = m.read_one().expect("configure reply");
    assert_eq!(first["id"], 1, "configure answered first: {first}");
    assert!(first["error"].is_null(), "{first}");
    assert_eq!(first["result"]["version-rolling"], Value::Bool(true));
    assert_eq!(first["result"]["version-rolling.mask"], "1fffe000");
    let sub = m.reply("2");
    m.take_subscribe(&sub);
    assert_true(&m.reply("3"));
    m.wait_jobs(1);
    assert!(
        m.received
            .iter()
            .any(|l| l.contains("\"method\":\"mining.set_difficulty\"")),
        "set_difficulty received"
    );
    assert_eq!(as_sent(m.difficulty), tiny());
    assert_eq!(as_sent(m.newest().difficulty), tiny());
}

#[test]
fn tls_bitaxe_share_verdicts() {
    both_drivers(DEADLINE, |force_polling| {
        let cert = self_signed();
        let dir = temp_dir("stratum-tls-verdicts");
        let files = install(&dir, &cert);
        let plane = pool(force_polling, vec![tls_listener(files)]);
        check_drivers(&plane, force_polling);
        let config = client_config(&[&cert]);
        let mut m = connect_tls(plane.local_addrs()[0], &config);
        bitaxe_setup(&mut m);
        assert_eq!(peer_certificate(&m), cert.der);
        // Accepted, with and without version bits inside the mask.
        let share = m.mine(Some(0x2000));
        assert_true(&m.submit(4, &share, &user()));
        assert_true(&m.mine_submit(5, None, &user()));
        // The same share again: duplicate (22).
        assert_eq!(error_code(&m.submit(6, &share, &user())), Some(22));
        // A hash above the share target: low difficulty (23).
        let job = m.newest().clone();
        let d = job.difficulty;
        m.en2 += 1;
        let low = job.search(&m.en1, m.en2, None, 0, |h| !meets(h, d));
        assert_eq!(error_code(&m.submit(7, &low, &user())), Some(23));
        // A new tip with clean_jobs: a share on the old job is stale (21).
        let old = m.mine(None);
        plane.publish(Arc::new(job_set(template(BITS_DIFF1, 2, 5), 2, true)));
        m.wait_jobs(2);
        assert!(m.newest().clean);
        assert_ne!(m.newest().prevhash, job.prevhash);
        assert_eq!(error_code(&m.submit(8, &old, &user())), Some(21));
        // The connection stays up and keeps mining.
        assert_true(&m.mine_submit(9, Some(0x4000), &user()));
        let pong = m.request(10, r#"{"id":10,"method":"mining.ping","params":[]}"#);
        assert_eq!(pong["result"], "pong");
        assert_true(&m.mine_submit(11, None, &user()));
        assert_eq!(plane.counters_total().tls_errors, 0);
        plane.stop();
        let _ = std::fs::remove_dir_all(dir);
    });
}

#[test]
fn tls_certificate_reload_under_mining() {
    both_drivers(DEADLINE, |force_polling| {
        let old = self_signed();
        let new = self_signed();
        let dir = temp_dir("stratum-tls-reload");
        let files = install(&dir, &old);
        let plane = pool(force_polling, vec![tls_listener(files)]);
        check_drivers(&plane, force_polling);
        let addr = plane.local_addrs()[0];
        let config = client_config(&[&old, &new]);
        let mut kept = connect_tls(addr, &config);
        bitaxe_setup(&mut kept);
        assert_eq!(peer_certificate(&kept), old.der);
        let mut id = 10;
        for _ in 0..3 {
            assert_true(&kept.mine_submit(id, None, &user()));
            id += 1;
        }
        // A distinct modification time, then the new files (the reloader polls every 100 ms).
        std::thread::sleep(Duration::from_millis(20));
        install(&dir, &new);
        // Keep mining on the old session while waiting for new handshakes to see the new
        // certificate.
        let reloaded = wait_until(Duration::from_secs(10), || {
            assert_true(&kept.mine_submit(id, None, &user()));
            id += 1;
            let mut probe = connect_tls(addr, &config);
            let r = probe.request(
                1,
                r#"{"id":1,"method":"mining.subscribe","params":["probe/1.0"]}"#,
            );
            assert!(r["error"].is_null(), "{r}");
            peer_certificate(&probe) == new.der
        });
        assert!(reloaded, "new connections never saw the new certificate");
        // The old session: same connection, old certificate, shares still accepted.
        assert_eq!(peer_certificate(&kept), old.der);
        let en1 = kept.en1.clone();
        for _ in 0..3 {
            assert_true(&kept.mine_submit(id, Some(0x2000), &user()));
            id += 1;
        }
        assert_eq!(kept.en1, en1);
        // A new connection: the new certificate, full setup and accepted shares.
        let mut fresh = connect_tls(addr, &config);
        bitaxe_setup(&mut fresh);
        assert_eq!(peer_certificate(&fresh), new.der);
        assert_ne!(fresh.en1, kept.en1);
        for i in 0..3 {
            assert_true(&fresh.mine_submit(10 + i, None, &user()));
        }
        // A client that trusts only the new certificate can connect too.
        let only_new = client_config(&[&new]);
        let mut strict = connect_tls(addr, &only_new);
        strict.setup(&user());
        assert_true(&strict.mine_submit(3, None, &user()));
        // The old session is still up after all that.
        assert_true(&kept.mine_submit(id, None, &user()));
        assert_eq!(plane.counters_total().tls_errors, 0);
        plane.stop();
        let _ = std::fs::remove_dir_all(dir);
    });
}

#[test]
fn plain_and_tls_miners_on_one_pool() {
    both_drivers(DEADLINE, |force_polling| {
        let cert = self_signed();
        let dir = temp_dir("stratum-tls-mixed");
        let files = install(&dir, &cert);
        let plane = pool(force_polling, vec![plain_listener(), tls_listener(files)]);
        check_drivers(&plane, force_polling);
        let addrs = plane.local_addrs();
        assert_eq!(addrs.len(), 2);
        assert_ne!(addrs[0].port(), addrs[1].port());
        let mut plain = Miner::connect(addrs[0]);
        let mut tls = connect_tls(addrs[1], &client_config(&[&cert]));
        bitaxe_setup(&mut plain);
        bitaxe_setup(&mut tls);
        assert_eq!(peer_certificate(&tls), cert.der);
        assert_ne!(plain.en1, tls.en1, "extranonce1 unique across ports");
        for i in 0..3 {
            assert_true(&plain.mine_submit(10 + i, None, &user()));
            assert_true(&tls.mine_submit(10 + i, Some(0x2000), &user()));
        }
        // Both see a new tip; old shares are stale on both.
        let old_plain = plain.mine(None);
        let old_tls = tls.mine(None);
        plane.publish(Arc::new(job_set(template(BITS_DIFF1, 2, 5), 2, true)));
        plain.wait_jobs(2);
        tls.wait_jobs(2);
        assert_eq!(plain.newest().prevhash, tls.newest().prevhash);
        assert_eq!(error_code(&plain.submit(20, &old_plain, &user())), Some(21));
        assert_eq!(error_code(&tls.submit(20, &old_tls, &user())), Some(21));
        assert_true(&plain.mine_submit(21, None, &user()));
        assert_true(&tls.mine_submit(21, None, &user()));
        let share = tls.mine(None);
        assert_true(&tls.submit(22, &share, &user()));
        assert_eq!(plane.counters_total().tls_errors, 0);
        plane.stop();
        let _ = std::fs::remove_dir_all(dir);
    });
}
