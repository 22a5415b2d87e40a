//! Operator commands over real sockets under both drivers: a kick closes exactly the kicked
//! Stratum connection (EOF after a graceful close, `CloseReason::Kicked` reported), the
//! others keep working; kick-all closes the rest; a ban refuses new connections from the
//! banned address at accept (counted), closes its live ones (`CloseReason::Banned`), and an
//! expired ban refuses nothing.

#[path = "support/harness.rs"]
mod harness;
#[path = "support/stratum.rs"]
mod stratum;

use std::{
    collections::HashMap,
    net::{SocketAddr, TcpStream},
    time::Duration,
};

use harness::{both_drivers, wait_until};
use stratum::*;
use warppool_core::plane::CloseReason;
use warppool_net::{
    BanList, IpBan,
    stratum::{ConnectionId, ShareEvent, StratumPlane},
};

const DEADLINE: Duration = Duration::from_secs(60);

fn pool(force_polling: bool) -> StratumPlane {
    start_pool(
        force_polling,
        pinned_port(tiny()),
        template(BITS_DIFF1, 1, 5),
    )
}

/// A stream to `addr` from the loopback address `from` (Linux routes all of 127/8 locally).
fn connect_from(from: &str, addr: SocketAddr) -> std::io::Result<TcpStream> {
    let socket = socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None)?;
    let local: SocketAddr = format!("{from}:0").parse().unwrap();
    socket.bind(&local.into())?;
    socket.connect(&addr.into())?;
    let stream: TcpStream = socket.into();
    stream.set_read_timeout(Some(Duration::from_secs(10)))?;
    Ok(stream)
}

fn miner_from(from: &str, plane: &StratumPlane, worker: &str) -> Miner<TcpStream> {
    let stream = connect_from(from, plane.local_addrs()[0]).expect("connect");
    let mut m = Miner::over(stream);
    m.setup(&format!("{ADDRESS}.{worker}"));
    m
}

/// The connection ids and close reasons the share events reported.
#[derive(Default)]
struct Seen {
    ids: HashMap<String, ConnectionId>,
    closes: HashMap<ConnectionId, CloseReason>,
}

impl Seen {
    fn drain(&mut self, plane: &StratumPlane) {
        for q in plane.stats_receivers() {
            while let Ok(batch) = q.try_recv() {
                for event in batch.iter() {
                    match event {
                        ShareEvent::Authorized {
                            connection,
                            username,
                            ..
                        } => {
                            let worker = username.rsplit('.').next().unwrap().to_owned();
                            self.ids.insert(worker, *connection);
                        }
                        ShareEvent::Closed { connection, reason } => {
                            self.closes.insert(*connection, *reason);
                        }
                        _ => {}
                    }
                }
            }
        }
    }

    fn wait_id(&mut self, plane: &StratumPlane, worker: &str) -> ConnectionId {
        assert!(
            wait_until(Duration::from_secs(10), || {
                self.drain(plane);
                self.ids.contains_key(worker)
            }),
            "no Authorized event for {worker}"
        );
        self.ids[worker]
    }

    fn wait_close(&mut self, plane: &StratumPlane, id: ConnectionId) -> CloseReason {
        assert!(
            wait_until(Duration::from_secs(10), || {
                self.drain(plane);
                self.closes.contains_key(&id)
            }),
            "no Closed event for {id}"
        );
        self.closes[&id]
    }
}

fn still_works(m: &mut Miner<TcpStream>, id: u64) {
    let line = format!(r#"{{"id":{id},"method":"mining.suggest_difficulty","params":[1]}}"#);
    m.send(&line);
    let reply = m.reply(&id.to_string());
    assert!(reply.get("id").is_some(), "{reply}");
}

fn eof(m: &mut Miner<TcpStream>) -> bool {
    loop {
        match std::io::BufRead::read_line(&mut m.reader, &mut String::new()) {
            Ok(0) => return true,
            Ok(_) => continue,
            Err(e) => return e.kind() == std::io::ErrorKind::ConnectionReset,
        }
    }
}

#[test]
fn kick_closes_exactly_that_connection_and_kick_all_the_rest() {
    both_drivers(DEADLINE, |force_polling| {
        let plane = pool(force_polling);
        let mut seen = Seen::default();
        let mut a = miner_from("127.0.0.1", &plane, "a");
        let mut b = miner_from("127.0.0.1", &plane, "b");
        let a_id = seen.wait_id(&plane, "a");
        let b_id = seen.wait_id(&plane, "b");
        assert_ne!(a_id, b_id);

        plane.admin().kick(a_id).expect("queued");
        assert!(eof(&mut a), "the kicked miner sees EOF");
        assert_eq!(seen.wait_close(&plane, a_id), CloseReason::Kicked);
        still_works(&mut b, 10);
        assert!(!seen.closes.contains_key(&b_id));

        // An id that closed already: nothing else is touched.
        plane.admin().kick(a_id).expect("queued");
        still_works(&mut b, 11);

        plane.admin().kick_all().expect("queued");
        assert!(eof(&mut b));
        assert_eq!(seen.wait_close(&plane, b_id), CloseReason::Kicked);
        assert_eq!(plane.admin().refused(), 0);
        plane.stop();
    });
}

#[test]
fn ban_refuses_at_accept_closes_live_connections_and_expires() {
    both_drivers(DEADLINE, |force_polling| {
        let plane = pool(force_polling);
        let mut seen = Seen::default();
        let mut banned = miner_from("127.0.0.3", &plane, "banned");
        let mut other = miner_from("127.0.0.1", &plane, "other");
        let banned_id = seen.wait_id(&plane, "banned");

        let ban = |addr: &str, prefix, until| IpBan {
            addr: addr.parse().unwrap(),
            prefix,
            until_unix_s: until,
        };
        plane
            .admin()
            .set_bans(BanList::new([ban("127.0.0.3", 32, None)]));
        assert!(
            eof(&mut banned),
            "a live connection of a banned address is closed"
        );
        assert_eq!(seen.wait_close(&plane, banned_id), CloseReason::Banned);
        still_works(&mut other, 10);

        // A new connection from the banned address is closed at accept, and counted.
        let mut refused = Miner::over(connect_from("127.0.0.3", plane.local_addrs()[0]).unwrap());
        assert!(eof(&mut refused), "refused at accept");
        assert!(wait_until(Duration::from_secs(5), || {
            plane.counters_total().refused_banned == 1
        }));
        // A prefix ban covers its whole network.
        plane
            .admin()
            .set_bans(BanList::new([ban("127.0.4.0", 24, None)]));
        let mut covered = Miner::over(connect_from("127.0.4.9", plane.local_addrs()[0]).unwrap());
        assert!(eof(&mut covered));
        assert!(wait_until(Duration::from_secs(5), || {
            plane.counters_total().refused_banned == 2
        }));

        // Expired a second ago: refuses nothing, no restart needed.
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap()
            .as_secs() as i64;
        plane
            .admin()
            .set_bans(BanList::new([ban("127.0.0.3", 32, Some(now - 1))]));
        let mut back = miner_from("127.0.0.3", &plane, "back");
        still_works(&mut back, 20);
        still_works(&mut other, 11);
        assert_eq!(plane.counters_total().refused_banned, 2);
        plane.stop();
    });
}
