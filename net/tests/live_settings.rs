//! Live settings over real sockets, under io_uring and under forced polling: a lowered per-IP
//! cap refuses the next connection at once, new timeouts close connections from the next
//! tick even right after a burst of publications (the wake-up coalesces with them), and an
//! out-of-range value is refused with nothing changed.

#[path = "support/harness.rs"]
mod harness;

use std::{sync::Arc, time::Duration};

use harness::*;
use warppool_net::{CloseReason, LiveSettings};

const DEADLINE: Duration = Duration::from_secs(30);

#[test]
fn settings_apply_while_running_and_bad_ones_change_nothing() {
    both_drivers(DEADLINE, |force_polling| {
        let config = test_config(vec![plain_v4()], 2, force_polling);
        let (plane, log) = start_test(config, Options::default());
        let addr = plane.local_addrs()[0];
        let before = plane.settings();

        // Refused: a zero burst, a zero timeout. Nothing changes.
        let bad = LiveSettings {
            accept_burst: 0,
            ..before
        };
        assert!(plane.apply_settings(bad).is_err());
        let bad = LiveSettings {
            subscribe_timeout: Duration::ZERO,
            ..before
        };
        assert!(plane.apply_settings(bad).is_err());
        assert_eq!(plane.settings(), before);

        // The per-IP cap, lowered to 2: the third connection is refused.
        let capped = LiveSettings {
            connections_per_ip_max: 2,
            ..before
        };
        plane.apply_settings(capped).unwrap();
        let mut kept: Vec<Client> = (0..2).map(|_| Client::connect(addr)).collect();
        for client in &mut kept {
            assert_eq!(client.request("sub"), "subscribed\n");
        }
        let mut refused = Client::connect(addr);
        refused.send(b"y\n");
        assert!(refused.is_closed_by_server());
        assert_eq!(plane.counters_total().refused_ip_cap, 1);

        // The idle timeout, lowered right after more publications than the control queue
        // holds: the subscribed connections are closed within a few ticks.
        for generation in 0..16 {
            plane.publish(Arc::new(generation));
        }
        assert_eq!(log.closes_with(CloseReason::IdleTimeout), 0);
        let idle = LiveSettings {
            idle_timeout: Duration::from_secs(1),
            ..capped
        };
        plane.apply_settings(idle).unwrap();
        assert!(wait_until(Duration::from_secs(5), || {
            log.closes_with(CloseReason::IdleTimeout) == 2
        }));
        plane.stop();
    });
}
