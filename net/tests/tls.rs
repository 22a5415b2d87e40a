//! TLS ports: handshake and echo, certificate reload, plain text on a TLS port; each under
//! io_uring and under forced polling.

#[path = "support/harness.rs"]
mod harness;
#[path = "support/tls.rs"]
mod tls;

use std::{
    io::{BufRead, BufReader, Write},
    net::{SocketAddr, TcpStream},
    sync::Arc,
    time::Duration,
};

use harness::*;
use rustls::{ClientConfig, ClientConnection, StreamOwned, pki_types::CertificateDer};
use tls::{client_config, install, self_signed, temp_dir};
use warppool_net::{CloseReason, ListenerConfig};

const DEADLINE: Duration = Duration::from_secs(30);

struct TlsClient {
    stream: BufReader<StreamOwned<ClientConnection, TcpStream>>,
}

impl TlsClient {
    fn connect(addr: SocketAddr, config: &Arc<ClientConfig>) -> Self {
        let tcp = TcpStream::connect(addr).unwrap();
        tcp.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let name = "localhost".try_into().unwrap();
        let conn = ClientConnection::new(Arc::clone(config), name).unwrap();
        Self {
            stream: BufReader::new(StreamOwned::new(conn, tcp)),
        }
    }

    fn request(&mut self, line: &str) -> String {
        self.stream
            .get_mut()
            .write_all(format!("{line}\n").as_bytes())
            .unwrap();
        self.stream.get_mut().flush().unwrap();
        let mut reply = String::new();
        self.stream.read_line(&mut reply).unwrap();
        reply
    }

    fn peer_certificate(&self) -> CertificateDer<'static> {
        self.stream.get_ref().conn.peer_certificates().unwrap()[0]
            .clone()
            .into_owned()
    }
}

#[test]
fn tls_handshake_and_echo() {
    both_drivers(DEADLINE, |force_polling| {
        let cert = self_signed();
        let dir = temp_dir("echo");
        let files = install(&dir, &cert);
        let listeners = vec![
            plain_v4(),
            ListenerConfig {
                addr: "127.0.0.1:0".parse().unwrap(),
                tls: Some(files),
            },
        ];
        let (plane, _log) =
            start_test(test_config(listeners, 2, force_polling), Options::default());
        check_drivers(&plane, force_polling);
        let config = client_config(&[&cert]);
        let mut client = TlsClient::connect(plane.local_addrs()[1], &config);
        assert_eq!(client.request("secret"), "echo:secret\n");
        assert_eq!(client.request("sub"), "subscribed\n");
        // Many pipelined lines over TLS.
        let mut burst = String::new();
        for i in 0..100 {
            burst.push_str(&format!("t{i}\n"));
        }
        client.stream.get_mut().write_all(burst.as_bytes()).unwrap();
        for i in 0..100 {
            let mut reply = String::new();
            client.stream.read_line(&mut reply).unwrap();
            assert_eq!(reply, format!("echo:t{i}\n"));
        }
        plane.publish(Arc::new(3));
        let mut job = String::new();
        client.stream.read_line(&mut job).unwrap();
        assert!(job.starts_with("job 3"));
        plane.stop();
        let _ = std::fs::remove_dir_all(dir);
    });
}

#[test]
fn certificate_reload_keeps_old_sessions() {
    both_drivers(DEADLINE, |force_polling| {
        let old = self_signed();
        let new = self_signed();
        let dir = temp_dir("reload");
        let files = install(&dir, &old);
        let listeners = vec![ListenerConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            tls: Some(files),
        }];
        let (plane, _log) =
            start_test(test_config(listeners, 1, force_polling), Options::default());
        let addr = plane.local_addrs()[0];
        let config = client_config(&[&old, &new]);
        let mut kept = TlsClient::connect(addr, &config);
        assert_eq!(kept.request("sub"), "subscribed\n");
        assert_eq!(kept.peer_certificate(), old.der);
        std::thread::sleep(Duration::from_millis(20)); // a distinct modification time
        install(&dir, &new);
        let reloaded = wait_until(Duration::from_secs(5), || {
            let mut probe = TlsClient::connect(addr, &config);
            probe.request("probe") == "echo:probe\n" && probe.peer_certificate() == new.der
        });
        assert!(reloaded, "new connections never saw the new certificate");
        assert_eq!(kept.request("still"), "echo:still\n");
        assert_eq!(kept.peer_certificate(), old.der);
        plane.stop();
        let _ = std::fs::remove_dir_all(dir);
    });
}

#[test]
fn plain_text_on_tls_port_just_closes() {
    both_drivers(DEADLINE, |force_polling| {
        let cert = self_signed();
        let dir = temp_dir("garbage");
        let files = install(&dir, &cert);
        let listeners = vec![ListenerConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            tls: Some(files),
        }];
        let (plane, log) = start_test(test_config(listeners, 1, force_polling), Options::default());
        let addr = plane.local_addrs()[0];
        let mut client = Client::connect(addr);
        client.send(b"{\"id\":1,\"method\":\"mining.subscribe\",\"params\":[]}\n");
        assert!(client.is_closed_by_server());
        assert!(wait_until(Duration::from_secs(2), || log
            .closes_with(CloseReason::TlsError)
            == 1));
        assert_eq!(plane.counters_total().tls_errors, 1);
        // The port still serves TLS.
        let mut good = TlsClient::connect(addr, &client_config(&[&cert]));
        assert_eq!(good.request("ok"), "echo:ok\n");
        plane.stop();
        let _ = std::fs::remove_dir_all(dir);
    });
}

#[test]
fn full_outbound_queue_goes_out_over_tls() {
    both_drivers(DEADLINE, |force_polling| {
        let cert = self_signed();
        let dir = temp_dir("bulk");
        let files = install(&dir, &cert);
        let listeners = vec![ListenerConfig {
            addr: "127.0.0.1:0".parse().unwrap(),
            tls: Some(files),
        }];
        // One job notification plus one message that together fill the 64 KiB queue, so the
        // ciphertext of one write is larger than the queue.
        let options = Options {
            job_padding: 400,
            job_extra: 65_000,
        };
        let (plane, log) = start_test(test_config(listeners, 1, force_polling), options);
        let mut client = TlsClient::connect(plane.local_addrs()[0], &client_config(&[&cert]));
        assert_eq!(client.request("sub"), "subscribed\n");
        plane.publish(Arc::new(9));
        let mut job = String::new();
        client.stream.read_line(&mut job).unwrap();
        assert!(job.starts_with("job 9"));
        let mut extra = String::new();
        client.stream.read_line(&mut extra).unwrap();
        assert_eq!(extra.len(), 65_001);
        assert_eq!(client.request("after"), "echo:after\n");
        assert_eq!(log.closes.lock().unwrap().len(), 0);
        plane.stop();
        let _ = std::fs::remove_dir_all(dir);
    });
}
