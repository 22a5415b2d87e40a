//! No file descriptor outlives the data plane: every accepted, refused and listening socket
//! is closed by the time `stop()` returns. (Its own binary, so no other test's sockets are
//! counted.)

#[path = "support/harness.rs"]
mod harness;

use std::time::Duration;

use harness::*;

fn open_fds() -> usize {
    std::fs::read_dir("/proc/self/fd").unwrap().count()
}

#[test]
fn many_connections_then_stop_leaks_no_descriptors() {
    both_drivers(Duration::from_secs(60), |force_polling| {
        let before = open_fds();
        let mut config = test_config(vec![plain_v4()], 2, force_polling);
        config.connections_per_ip_max = 10_000;
        config.accept_burst = 10_000;
        let (plane, log) = start_test(config, Options::default());
        let addr = plane.local_addrs()[0];
        // Several hundred concurrent connections, each with pipelined lines.
        let mut clients: Vec<Client> = (0..300).map(|_| Client::connect(addr)).collect();
        for (i, client) in clients.iter_mut().enumerate() {
            client.send(format!("a{i}\nb{i}\n").as_bytes());
        }
        for (i, client) in clients.iter_mut().enumerate() {
            assert_eq!(client.read_line(), format!("echo:a{i}\n").as_bytes());
            assert_eq!(client.read_line(), format!("echo:b{i}\n").as_bytes());
        }
        // Half close themselves, half are closed by stop().
        for client in clients.drain(..150) {
            drop(client);
        }
        assert!(wait_until(Duration::from_secs(5), || plane
            .counters_total()
            .closed
            == 150));
        plane.stop();
        assert_eq!(log.closes.lock().unwrap().len(), 300);
        drop(clients);
        assert!(
            wait_until(Duration::from_secs(2), || open_fds() == before),
            "descriptors before {before}, after {}",
            open_fds()
        );
    });
}
