//! The data plane over real sockets, each test under io_uring and under forced polling.

#[path = "support/harness.rs"]
mod harness;

use std::{
    io::Write,
    net::{SocketAddr, TcpStream},
    sync::{Arc, atomic::Ordering},
    time::Duration,
};

use harness::*;
use warppool_net::{CloseReason, ListenerConfig};

const DEADLINE: Duration = Duration::from_secs(30);

#[test]
fn echo_lines_in_order() {
    both_drivers(DEADLINE, |force_polling| {
        let (plane, _log) = start_test(
            test_config(vec![plain_v4()], 1, force_polling),
            Options::default(),
        );
        check_drivers(&plane, force_polling);
        let mut client = Client::connect(plane.local_addrs()[0]);
        client.send(b"hello\nworld\r\n\n");
        assert_eq!(client.read_line(), b"echo:hello\n");
        assert_eq!(client.read_line(), b"echo:world\n");
        // Pipelined past the in-flight bound: every reply, in order.
        let mut burst = Vec::new();
        for i in 0..200 {
            burst.extend_from_slice(format!("line{i}\n").as_bytes());
        }
        client.send(&burst);
        for i in 0..200 {
            assert_eq!(client.read_line(), format!("echo:line{i}\n").as_bytes());
        }
        // A line split over several writes.
        client.send(b"par");
        std::thread::sleep(Duration::from_millis(20));
        client.send(b"tial\n");
        assert_eq!(client.read_line(), b"echo:partial\n");
        assert_eq!(client.request("close"), "bye\n");
        assert!(client.is_closed_by_server());
        plane.stop();
    });
}

#[test]
fn invalid_utf8_passes_through_as_bytes() {
    both_drivers(DEADLINE, |force_polling| {
        let (plane, _log) = start_test(
            test_config(vec![plain_v4()], 1, force_polling),
            Options::default(),
        );
        let mut client = Client::connect(plane.local_addrs()[0]);
        client.send(b"\xff\xfe\x80abc\xc3\n");
        assert_eq!(client.read_line(), b"echo:\xff\xfe\x80abc\xc3\n");
        plane.stop();
    });
}

#[test]
fn multiple_shards_share_the_port() {
    both_drivers(DEADLINE, |force_polling| {
        let (plane, log) = start_test(
            test_config(vec![plain_v4()], 2, force_polling),
            Options::default(),
        );
        check_drivers(&plane, force_polling);
        assert_eq!(plane.shard_count(), 2);
        let addr = plane.local_addrs()[0];
        let mut clients: Vec<Client> = (0..24).map(|_| Client::connect(addr)).collect();
        for (i, client) in clients.iter_mut().enumerate() {
            assert_eq!(client.request(&format!("c{i}")), format!("echo:c{i}\n"));
        }
        let per_shard = plane.counters();
        assert!(
            per_shard.iter().all(|c| c.accepted > 0),
            "both shards accept: {per_shard:?}"
        );
        assert_eq!(plane.counters_total().accepted, 24);
        assert_eq!(log.connects.load(Ordering::Relaxed), 24);
        plane.stop();
    });
}

#[test]
fn ipv6_loopback() {
    if std::net::TcpListener::bind("[::1]:0").is_err() {
        eprintln!("skipped: no IPv6 loopback");
        return;
    }
    both_drivers(DEADLINE, |force_polling| {
        let listeners = vec![
            plain_v4(),
            ListenerConfig {
                addr: "[::1]:0".parse().unwrap(),
                tls: None,
            },
        ];
        let (plane, _log) =
            start_test(test_config(listeners, 2, force_polling), Options::default());
        let v6 = plane.local_addrs()[1];
        assert!(v6.is_ipv6());
        let mut client = Client::connect(v6);
        assert_eq!(client.request("six"), "echo:six\n");
        let mut client = Client::connect(plane.local_addrs()[0]);
        assert_eq!(client.request("four"), "echo:four\n");
        plane.stop();
    });
}

#[test]
fn connections_per_shard_cap_refuses_at_accept() {
    both_drivers(DEADLINE, |force_polling| {
        let mut config = test_config(vec![plain_v4()], 1, force_polling);
        config.connections_per_shard_max = 2;
        let (plane, _log) = start_test(config, Options::default());
        let addr = plane.local_addrs()[0];
        let mut first = Client::connect(addr);
        let mut second = Client::connect(addr);
        assert_eq!(first.request("a"), "echo:a\n");
        assert_eq!(second.request("b"), "echo:b\n");
        let mut third = Client::connect(addr);
        third.send(b"c\n");
        assert!(third.is_closed_by_server());
        assert_eq!(plane.counters_total().refused_shard_full, 1);
        // A slot frees up when a connection closes.
        drop(first);
        assert!(wait_until(Duration::from_secs(3), || plane
            .counters_total()
            .closed
            == 1));
        let mut fourth = Client::connect(addr);
        assert_eq!(fourth.request("d"), "echo:d\n");
        plane.stop();
    });
}

#[test]
fn per_ip_cap_across_shards() {
    both_drivers(DEADLINE, |force_polling| {
        let mut config = test_config(vec![plain_v4()], 2, force_polling);
        config.connections_per_ip_max = 3;
        let (plane, _log) = start_test(config, Options::default());
        let addr = plane.local_addrs()[0];
        let mut kept: Vec<Client> = (0..3).map(|_| Client::connect(addr)).collect();
        for client in &mut kept {
            assert_eq!(client.request("x"), "echo:x\n");
        }
        for _ in 0..4 {
            let mut refused = Client::connect(addr);
            refused.send(b"y\n");
            assert!(refused.is_closed_by_server());
        }
        assert_eq!(plane.counters_total().refused_ip_cap, 4);
        plane.stop();
    });
}

#[test]
fn accept_rate_limit_with_burst() {
    both_drivers(DEADLINE, |force_polling| {
        let mut config = test_config(vec![plain_v4()], 1, force_polling);
        config.accept_rate_per_sec = 1;
        config.accept_burst = 3;
        let (plane, _log) = start_test(config, Options::default());
        let addr = plane.local_addrs()[0];
        let mut served = 0;
        let mut refused = 0;
        let mut clients = Vec::new();
        for _ in 0..6 {
            let mut client = Client::connect(addr);
            client.send(b"r\n");
            let mut line = Vec::new();
            match std::io::BufRead::read_until(&mut client.reader, b'\n', &mut line) {
                Ok(n) if n > 0 => served += 1,
                _ => refused += 1,
            }
            clients.push(client);
        }
        // The burst of 3, plus one refill per second the test takes (well under two).
        assert!((3..=4).contains(&served), "served {served}");
        assert!(refused >= 2);
        assert_eq!(served + refused, 6);
        assert_eq!(plane.counters_total().refused_rate, refused);
        plane.stop();
    });
}

#[test]
fn subscribe_timeout_closes_unsubscribed_connections() {
    both_drivers(DEADLINE, |force_polling| {
        let mut config = test_config(vec![plain_v4()], 1, force_polling);
        config.subscribe_timeout = Duration::from_millis(300);
        let (plane, log) = start_test(config, Options::default());
        let addr = plane.local_addrs()[0];
        let mut lazy = Client::connect(addr);
        let mut subscribed = Client::connect(addr);
        assert_eq!(subscribed.request("sub"), "subscribed\n");
        assert!(lazy.is_closed_by_server());
        assert!(wait_until(Duration::from_secs(2), || {
            log.closes_with(CloseReason::SubscribeTimeout) == 1
        }));
        std::thread::sleep(Duration::from_millis(400));
        assert_eq!(subscribed.request("still"), "echo:still\n");
        plane.stop();
    });
}

#[test]
fn half_open_connection_times_out() {
    both_drivers(DEADLINE, |force_polling| {
        let mut config = test_config(vec![plain_v4()], 1, force_polling);
        config.idle_timeout = Duration::from_millis(300);
        let (plane, log) = start_test(config, Options::default());
        let mut client = Client::connect(plane.local_addrs()[0]);
        assert_eq!(client.request("sub"), "subscribed\n");
        // The peer goes silent without closing (as a vanished host would).
        assert!(client.is_closed_by_server());
        assert!(wait_until(Duration::from_secs(2), || log
            .closes_with(CloseReason::IdleTimeout)
            == 1));
        assert_eq!(plane.counters_total().timeout_closes, 1);
        plane.stop();
    });
}

#[test]
fn mebibyte_line_without_newline_is_refused_and_memory_stays_bounded() {
    both_drivers(DEADLINE, |force_polling| {
        let (plane, log) = start_test(
            test_config(vec![plain_v4()], 1, force_polling),
            Options::default(),
        );
        let addr = plane.local_addrs()[0];
        let junk = vec![b'a'; 1 << 20];
        // Warm up so that the first connection's set-up does not count as growth.
        let mut warm = Client::connect(addr);
        assert_eq!(warm.request("warm"), "echo:warm\n");
        let before = rss_kib();
        for _ in 0..8 {
            let mut client = Client::connect(addr);
            let mut writer = client.reader.get_ref().try_clone().unwrap();
            let junk = junk.clone();
            // The server closes mid-way, so the write may fail; that is expected.
            let sender = std::thread::spawn(move || {
                let _ = writer.write_all(&junk);
            });
            assert_eq!(client.read_line(), b"error:line too long\n");
            assert!(client.is_closed_by_server());
            sender.join().unwrap();
        }
        let after = rss_kib();
        assert!(
            after < before + 16 * 1024,
            "rss grew from {before} KiB to {after} KiB"
        );
        assert!(wait_until(Duration::from_secs(2), || log
            .closes_with(CloseReason::LineTooLong)
            == 8));
        assert_eq!(warm.request("alive"), "echo:alive\n");
        plane.stop();
    });
}

#[test]
fn tls_client_hello_on_plain_port_just_closes() {
    both_drivers(DEADLINE, |force_polling| {
        let (plane, log) = start_test(
            test_config(vec![plain_v4()], 1, force_polling),
            Options::default(),
        );
        let addr = plane.local_addrs()[0];
        let mut client = Client::connect(addr);
        // The start of a TLS 1.2/1.3 ClientHello record.
        client.send(&[
            0x16, 0x03, 0x01, 0x02, 0x00, 0x01, 0x00, 0x01, 0xfc, 0x03, 0x03,
        ]);
        assert!(client.is_closed_by_server());
        assert!(wait_until(Duration::from_secs(2), || {
            log.closes_with(CloseReason::TlsOnPlainPort) == 1
        }));
        let mut other = Client::connect(addr);
        assert_eq!(other.request("ok"), "echo:ok\n");
        plane.stop();
    });
}

#[test]
fn slow_reader_loses_superseded_jobs_then_is_disconnected() {
    both_drivers(DEADLINE, |force_polling| {
        let mut config = test_config(vec![plain_v4()], 1, force_polling);
        config.socket_send_buffer_bytes = Some(4096);
        let options = Options {
            job_padding: 4096,
            job_extra: 1024,
        };
        let (plane, log) = start_test(config, options);
        let addr: SocketAddr = plane.local_addrs()[0];
        let socket =
            socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).unwrap();
        socket.set_recv_buffer_size(4096).unwrap();
        socket.connect(&addr.into()).unwrap();
        let mut stream: TcpStream = socket.into();
        stream.write_all(b"sub\n").unwrap();
        // Never read again; keep publishing.
        let mut job = 1u64;
        let closed = wait_until(Duration::from_secs(10), || {
            plane.publish(Arc::new(job));
            job += 1;
            std::thread::sleep(Duration::from_millis(2));
            plane.counters_total().slow_reader_closes == 1
        });
        assert!(
            closed,
            "slow reader not disconnected: {:?}",
            plane.counters_total()
        );
        let counters = plane.counters_total();
        assert!(
            counters.notifies_dropped > 0,
            "no notification dropped: {counters:?}"
        );
        assert!(wait_until(Duration::from_secs(2), || log
            .closes_with(CloseReason::SlowReader)
            == 1));
        drop(stream);
        plane.stop();
    });
}

#[test]
fn publish_calls_on_jobs_for_every_connection() {
    both_drivers(DEADLINE, |force_polling| {
        let (plane, log) = start_test(
            test_config(vec![plain_v4()], 2, force_polling),
            Options::default(),
        );
        let addr = plane.local_addrs()[0];
        let mut clients: Vec<Client> = (0..10).map(|_| Client::connect(addr)).collect();
        for client in &mut clients {
            assert_eq!(client.request("sub"), "subscribed\n");
        }
        plane.publish(Arc::new(7));
        for client in &mut clients {
            let line = String::from_utf8(client.read_line()).unwrap();
            assert!(line.starts_with("job 7"), "got {line:?}");
        }
        assert_eq!(log.jobs_calls.load(Ordering::Relaxed), 10);
        // Statistics arrive in batches on the per-shard queues.
        let received = wait_until(Duration::from_secs(2), || {
            plane
                .stats_receivers()
                .iter()
                .map(|rx| rx.len())
                .sum::<usize>()
                > 0
        });
        assert!(received);
        plane.stop();
    });
}

#[test]
fn stop_closes_connections_and_joins() {
    both_drivers(DEADLINE, |force_polling| {
        let (plane, log) = start_test(
            test_config(vec![plain_v4()], 2, force_polling),
            Options::default(),
        );
        let addr = plane.local_addrs()[0];
        let mut clients: Vec<Client> = (0..3).map(|_| Client::connect(addr)).collect();
        for client in &mut clients {
            assert_eq!(client.request("hi"), "echo:hi\n");
        }
        let started = std::time::Instant::now();
        plane.stop();
        assert!(started.elapsed() < Duration::from_secs(3));
        for client in &mut clients {
            assert!(client.is_closed_by_server());
        }
        // `stop` returns after every `on_close` ran.
        assert_eq!(log.closes_with(CloseReason::Shutdown), 3);
        assert!(TcpStream::connect(addr).is_err(), "listeners closed");
    });
}

#[test]
fn block_candidates_reach_the_control_plane() {
    both_drivers(DEADLINE, |force_polling| {
        let (plane, _log) = start_test(
            test_config(vec![plain_v4()], 2, force_polling),
            Options::default(),
        );
        let mut client = Client::connect(plane.local_addrs()[0]);
        assert_eq!(client.request("block"), "candidate sent\n");
        // The candidate leaves before the reply is written.
        assert_eq!(plane.candidates().try_recv(), Ok(1));
        plane.stop();
    });
}

#[test]
fn shards_are_pinned_to_cores() {
    both_drivers(DEADLINE, |force_polling| {
        // Three shards: no other test has a shard 2, so its thread is ours even while other
        // tests run in parallel.
        let mut config = test_config(vec![plain_v4()], 3, force_polling);
        config.pin_shards = true;
        let (plane, _log) = start_test(config, Options::default());
        let cores = std::thread::available_parallelism().unwrap().get();
        let mut seen = 0;
        for task in std::fs::read_dir("/proc/self/task").unwrap() {
            let task = task.unwrap().path();
            let Ok(name) = std::fs::read_to_string(task.join("comm")) else {
                continue;
            };
            if name.trim() != "wp-shard-2" {
                continue;
            }
            let status = std::fs::read_to_string(task.join("status")).unwrap();
            let allowed = status
                .lines()
                .find_map(|l| l.strip_prefix("Cpus_allowed_list:"))
                .unwrap()
                .trim()
                .to_owned();
            assert_eq!(allowed, (2 % cores).to_string());
            seen += 1;
        }
        assert_eq!(seen, 1);
        plane.stop();
    });
}

#[test]
fn protocol_panic_aborts_the_process() {
    use std::os::unix::process::ExitStatusExt;
    if let Some(mode) = std::env::var_os("WARPPOOL_NET_PANIC_CHILD") {
        let force_polling = mode == "poll";
        let (plane, _log) = start_test(
            test_config(vec![plain_v4()], 1, force_polling),
            Options::default(),
        );
        let mut client = Client::connect(plane.local_addrs()[0]);
        client.send(b"panic\n");
        std::thread::sleep(Duration::from_secs(10));
        unreachable!("the shard's panic should have aborted the process");
    }
    for mode in ["uring", "poll"] {
        let status = std::process::Command::new(std::env::current_exe().unwrap())
            .args([
                "--exact",
                "protocol_panic_aborts_the_process",
                "--test-threads=1",
            ])
            .env("WARPPOOL_NET_PANIC_CHILD", mode)
            .stdout(std::process::Stdio::null())
            .stderr(std::process::Stdio::null())
            .status()
            .unwrap();
        assert_eq!(status.signal(), Some(libc_sigabrt()), "{mode}: {status:?}");
    }
}

fn libc_sigabrt() -> i32 {
    6 // SIGABRT on Linux
}

/// A client that pipelines far more than the in-flight bound while its replies back up (small
/// send buffer, client reading only after a pause): the shard keeps the unsent replies as a
/// backlog, pauses input at the bound, and resumes when the socket takes the backlog. Every
/// reply arrives, in order, and nothing is closed.
#[test]
fn paused_input_resumes_when_the_backlog_drains() {
    both_drivers(DEADLINE, |force_polling| {
        const LINES: usize = 20_000;
        let mut config = test_config(vec![plain_v4()], 1, force_polling);
        config.socket_send_buffer_bytes = Some(4096);
        let (plane, log) = start_test(config, Options::default());
        let mut client = Client::connect(plane.local_addrs()[0]);
        let mut writer = client.reader.get_ref().try_clone().unwrap();
        let sender = std::thread::spawn(move || {
            let padding = "p".repeat(80);
            let mut batch = String::new();
            for i in 0..LINES {
                batch.push_str(&format!("{i}-{padding}\n"));
                if batch.len() > 32 * 1024 {
                    writer.write_all(batch.as_bytes()).unwrap();
                    batch.clear();
                }
            }
            writer.write_all(batch.as_bytes()).unwrap();
        });
        // Let the replies back up before reading any.
        std::thread::sleep(Duration::from_millis(200));
        let padding = "p".repeat(80);
        for i in 0..LINES {
            let line = client.read_line();
            assert_eq!(
                line,
                format!("echo:{i}-{padding}\n").as_bytes(),
                "reply {i}"
            );
        }
        sender.join().unwrap();
        assert_eq!(plane.counters_total().closed, 0);
        assert_eq!(log.closes.lock().unwrap().len(), 0);
        plane.stop();
    });
}
