//! Memory of idle plain connections: opens `CONNECTIONS` Stratum connections (subscribed,
//! authorized, first job received) and reports the process's resident memory growth per
//! connection (VmRSS delta / N) under both drivers. The clients live in this process too but
//! hold only a socket each (kernel socket buffers are not in VmRSS). The bound is generous: it
//! catches a regression to tens of KiB per connection, not small changes. Each driver is
//! measured in a child process of its own (this binary, running the ignored
//! `idle_memory_child` test), so no other test's or driver's freed memory is reused and
//! hides the growth.

#[path = "support/stratum.rs"]
mod stratum;

use std::{
    io::{Read, Write},
    net::TcpStream,
    sync::Arc,
    time::Duration,
};

use arc_swap::ArcSwap;
use stratum::*;
use warppool_net::stratum::{StratumConfig, stratum_factory};

const CONNECTIONS: usize = 2_000;
/// Connections opened before the first measurement, so one-time shard memory (spare buffers,
/// job cache, first pages of the slab) is not charged to the measured ones.
const WARM_UP: usize = 50;
/// Bytes per idle connection this test tolerates (the target is 4 KiB; see the output).
const BYTES_PER_CONNECTION_MAX: usize = 8 * 1024;

fn vm_rss_bytes() -> usize {
    let status = std::fs::read_to_string("/proc/self/status").unwrap();
    let line = status
        .lines()
        .find(|l| l.starts_with("VmRSS:"))
        .expect("VmRSS in /proc/self/status");
    let kib: usize = line
        .trim_start_matches("VmRSS:")
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .unwrap();
    kib * 1024
}

/// Subscribes and authorizes, then reads until the first `mining.notify` has arrived.
fn open(addr: std::net::SocketAddr, buffer: &mut Vec<u8>) -> TcpStream {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let hello = format!(
        "{}\n{}\n",
        r#"{"id":1,"method":"mining.subscribe","params":["idle/1.0"]}"#,
        format_args!(r#"{{"id":2,"method":"mining.authorize","params":["{ADDRESS}","x"]}}"#)
    );
    stream.write_all(hello.as_bytes()).unwrap();
    buffer.clear();
    let mut chunk = [0u8; 4096];
    while !buffer.windows(13).any(|w| w == b"mining.notify") {
        let n = stream.read(&mut chunk).unwrap();
        assert!(
            n > 0,
            "closed during set-up: {}",
            String::from_utf8_lossy(buffer)
        );
        buffer.extend_from_slice(&chunk[..n]);
    }
    assert!(
        buffer.windows(13).any(|w| w == b"\"result\":true"),
        "authorized: {}",
        String::from_utf8_lossy(buffer)
    );
    stream
}

fn raise_descriptor_limit(needed: u64) {
    let mut limit = libc::rlimit {
        rlim_cur: 0,
        rlim_max: 0,
    };
    // SAFETY: `limit` is a valid rlimit for the call to fill.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    assert_eq!(rc, 0);
    if limit.rlim_cur < needed {
        limit.rlim_cur = limit.rlim_max.min(needed);
        // SAFETY: as above; a failure leaves the limit as it was (checked below).
        let _ = unsafe { libc::setrlimit(libc::RLIMIT_NOFILE, &limit) };
    }
    // SAFETY: as above.
    let rc = unsafe { libc::getrlimit(libc::RLIMIT_NOFILE, &mut limit) };
    assert_eq!(rc, 0);
    assert!(
        limit.rlim_cur >= needed,
        "need {needed} descriptors, limit is {}",
        limit.rlim_cur
    );
}

fn measure(force_polling: bool) {
    raise_descriptor_limit((2 * (CONNECTIONS + WARM_UP) + 256) as u64);
    let listeners = vec![warppool_net::ListenerConfig {
        addr: "127.0.0.1:0".parse().unwrap(),
        tls: None,
    }];
    let mut net = net_config(listeners, force_polling);
    net.connections_per_ip_max = 10 * CONNECTIONS as u32;
    net.accept_burst = 10 * CONNECTIONS as u32;
    net.accept_rate_per_sec = 10 * CONNECTIONS as u32;
    let jobs = Arc::new(ArcSwap::from_pointee(job_set(
        template(BITS_DIFF1, 1, 20),
        1,
        true,
    )));
    let factory = stratum_factory(1, StratumConfig::new(pinned_port(tiny())), &jobs).unwrap();
    let plane = warppool_net::start(net, factory, jobs).unwrap();
    let addr = plane.local_addrs()[0];
    let mut buffer = Vec::with_capacity(64 * 1024);
    let mut clients = Vec::with_capacity(WARM_UP + CONNECTIONS);
    for _ in 0..WARM_UP {
        clients.push(open(addr, &mut buffer));
    }
    let before = vm_rss_bytes();
    for _ in 0..CONNECTIONS {
        clients.push(open(addr, &mut buffer));
    }
    let after = vm_rss_bytes();
    let per_connection = after.saturating_sub(before) / CONNECTIONS;
    eprintln!(
        "force_polling={force_polling} (plain I/O {:?}): {CONNECTIONS} idle connections \
         (subscribed, authorized, first job sent): VmRSS {} KiB -> {} KiB, {per_connection} \
         bytes per connection",
        plane.plain_io(),
        before / 1024,
        after / 1024,
    );
    assert_eq!(
        plane.counters_total().connections,
        (WARM_UP + CONNECTIONS) as u64
    );
    assert!(
        per_connection <= BYTES_PER_CONNECTION_MAX,
        "{per_connection} bytes per idle connection"
    );
    plane.stop();
    drop(clients);
}

/// Selects the driver of the child process ("0": io_uring where available, "1": polling).
const FORCE_POLLING_VAR: &str = "WARPPOOL_IDLE_MEMORY_FORCE_POLLING";

#[test]
#[ignore = "run by `idle_connections_are_small` in a child process, one per driver"]
fn idle_memory_child() {
    let force_polling = std::env::var(FORCE_POLLING_VAR).expect("set by the parent") == "1";
    measure(force_polling);
}

#[test]
fn idle_connections_are_small() {
    for force_polling in ["0", "1"] {
        let output = std::process::Command::new(std::env::current_exe().unwrap())
            .args(["--ignored", "--exact", "idle_memory_child", "--nocapture"])
            .env(FORCE_POLLING_VAR, force_polling)
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&output.stderr);
        eprint!("{stderr}");
        assert!(
            output.status.success(),
            "child with force_polling={force_polling} failed"
        );
        assert!(
            stderr.contains("bytes per connection"),
            "the child measured"
        );
    }
}
