//! One live worker: its share rings, totals, best shares, connections and status.

use std::collections::{BTreeMap, VecDeque};

use serde::Serialize;
use warppool_core::limits::LIVE_WORKER_CONNECTS_KEPT;

use super::ring::{Ring, Tally};

/// Minutes ring: 61 slots, so the last hour's full minutes and the current one.
pub type Minutes = Ring<61, 60>;
/// Hours ring: 25 slots, so the last day's full hours and the current one.
pub type Hours = Ring<25, 3600>;

/// Seconds without an accepted share after which a connected worker is `idle`, at least.
pub const IDLE_SECS_MIN: i64 = 600;
/// Expected share intervals without a share after which a connected worker is `idle`.
pub const IDLE_SHARE_INTERVALS: f64 = 10.0;
/// Reject rate over the last hour above which a worker is `degraded` (the red line of the
/// reject-rate health rule).
pub const DEGRADED_REJECT_RATE: f64 = 0.02;
/// Shares an hour must hold before the reject rate or a hashrate drop can call it degraded.
pub const DEGRADED_SHARES_MIN: u64 = 20;
/// A ten-minute hashrate below this fraction of the hour's makes a worker `degraded`.
pub const DEGRADED_DROP_FRACTION: f64 = 0.5;

/// A worker's state as the API shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum WorkerStatus {
    /// Connected and sending shares as expected.
    Online,
    /// Connected and sending shares, but rejecting more than 2 % over the last hour, or
    /// hashing at less than half of its hourly rate over the last ten minutes.
    Degraded,
    /// Connected, but no accepted share for ten expected share intervals (at least ten
    /// minutes).
    Idle,
    /// No connection open.
    Offline,
}

impl WorkerStatus {
    /// Every status, in display order.
    pub const ALL: [Self; 4] = [Self::Online, Self::Degraded, Self::Idle, Self::Offline];

    /// The JSON name.
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Online => "online",
            Self::Degraded => "degraded",
            Self::Idle => "idle",
            Self::Offline => "offline",
        }
    }

    /// Parses a JSON name.
    #[must_use]
    pub fn parse(s: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|v| v.as_str() == s)
    }
}

/// One worker followed live (see the module docs of `live`).
#[derive(Debug, Clone)]
pub struct LiveWorker {
    /// `address[.worker]`.
    pub name: Box<str>,
    /// The last subscribe user agent.
    pub user_agent: Option<Box<str>>,
    /// Open connections.
    pub connections: u32,
    /// When the current run of connections began (the first still open), if any is open.
    pub connected_at: Option<i64>,
    /// When it was last seen disconnecting (all connections closed).
    pub disconnected_at: Option<i64>,
    /// When the live table began counting it (pool start or first authorization).
    pub since: i64,
    /// Its latest accepted share.
    pub last_share_at: Option<i64>,
    /// The difficulty its newest connection was last set to.
    pub difficulty: f64,
    /// When vardiff (or a request) last changed it.
    pub difficulty_at: Option<i64>,
    /// Per-minute tallies.
    pub minutes: Minutes,
    /// Per-hour tallies.
    pub hours: Hours,
    /// Accepted shares since `since`.
    pub accepted: u64,
    /// Rejected shares since `since`, by reason label.
    pub rejects: BTreeMap<&'static str, u64>,
    /// Best share difficulty of the current connection run.
    pub best_session: f64,
    /// Best share difficulty since `since`.
    pub best_run: f64,
    /// Best share difficulty stored before `since` (from SQLite at start).
    pub best_stored: f64,
    /// When each of its last connections began (for `reconnects_24h`).
    pub connects: VecDeque<i64>,
}

impl LiveWorker {
    /// A worker first seen at `now`.
    #[must_use]
    pub fn new(name: &str, now: i64) -> Self {
        Self {
            name: name.into(),
            user_agent: None,
            connections: 0,
            connected_at: None,
            disconnected_at: None,
            since: now,
            last_share_at: None,
            difficulty: 0.0,
            difficulty_at: None,
            minutes: Minutes::default(),
            hours: Hours::default(),
            accepted: 0,
            rejects: BTreeMap::new(),
            best_session: 0.0,
            best_run: 0.0,
            best_stored: 0.0,
            connects: VecDeque::with_capacity(LIVE_WORKER_CONNECTS_KEPT),
        }
    }

    /// A connection of this worker authorized at `now`.
    pub fn connect(&mut self, user_agent: Option<&str>, now: i64) {
        if self.connections == 0 {
            self.connected_at = Some(now);
            self.best_session = 0.0;
        }
        self.connections += 1;
        if let Some(ua) = user_agent {
            self.user_agent = Some(ua.into());
        }
        if self.connects.len() == LIVE_WORKER_CONNECTS_KEPT {
            self.connects.pop_front();
        }
        self.connects.push_back(now);
    }

    /// A connection of this worker closed at `now`.
    pub fn disconnect(&mut self, now: i64) {
        self.connections = self.connections.saturating_sub(1);
        if self.connections == 0 {
            self.connected_at = None;
            self.disconnected_at = Some(now);
        }
    }

    /// A judged share at `now`.
    pub fn share(
        &mut self,
        now: i64,
        difficulty: f64,
        hash_difficulty: f64,
        reject: Option<&'static str>,
    ) {
        match reject {
            None => {
                self.minutes.accept(now, difficulty);
                self.hours.accept(now, difficulty);
                self.accepted += 1;
                self.last_share_at = Some(now);
                self.best_session = self.best_session.max(hash_difficulty);
                self.best_run = self.best_run.max(hash_difficulty);
            }
            Some(reason) => {
                let stale = reason == "stale";
                self.minutes.reject(now, stale);
                self.hours.reject(now, stale);
                *self.rejects.entry(reason).or_insert(0) += 1;
            }
        }
    }

    /// Best share ever (stored or since `since`).
    #[must_use]
    pub fn best_all_time(&self) -> f64 {
        self.best_run.max(self.best_stored)
    }

    /// Rejected shares since `since`.
    #[must_use]
    pub fn rejected(&self) -> u64 {
        self.rejects.values().sum()
    }

    /// The tally of the last `secs` seconds (minutes ring up to an hour, hours ring beyond).
    #[must_use]
    pub fn window(&self, now: i64, secs: i64) -> Tally {
        if secs <= 3600 {
            self.minutes.window(now, secs, self.since)
        } else {
            self.hours.window(now, secs, self.since)
        }
    }

    /// Connections begun in the last 24 hours, less the first (0 for a worker that stayed).
    #[must_use]
    pub fn reconnects_24h(&self, now: i64) -> u64 {
        let n = self.connects.iter().filter(|&&t| t > now - 86_400).count() as u64;
        n.saturating_sub(1)
    }

    /// The status rule (see [`WorkerStatus`]).
    #[must_use]
    pub fn status(&self, now: i64) -> WorkerStatus {
        if self.connections == 0 {
            return WorkerStatus::Offline;
        }
        let hour = self.window(now, 3600);
        let rate = super::hashes_per_second(hour.difficulty_sum, hour.secs.max(1));
        let expected_interval = if rate > 0.0 && self.difficulty > 0.0 {
            self.difficulty * super::HASHES_PER_DIFFICULTY / rate
        } else {
            0.0
        };
        let quiet_limit = (IDLE_SHARE_INTERVALS * expected_interval).max(IDLE_SECS_MIN as f64);
        let last = self.last_share_at.or(self.connected_at).unwrap_or(now);
        if (now - last) as f64 > quiet_limit {
            return WorkerStatus::Idle;
        }
        let judged = hour.accepted + hour.rejected;
        if judged >= DEGRADED_SHARES_MIN {
            if hour.rejected as f64 > DEGRADED_REJECT_RATE * judged as f64 {
                return WorkerStatus::Degraded;
            }
            let ten = self.window(now, 600);
            let ten_rate = super::hashes_per_second(ten.difficulty_sum, ten.secs.max(1));
            let hour_old_enough = hour.secs >= 1800;
            if hour_old_enough && ten_rate < DEGRADED_DROP_FRACTION * rate {
                return WorkerStatus::Degraded;
            }
        }
        WorkerStatus::Online
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_status_follows_connections_shares_and_rejects() {
        let mut w = LiveWorker::new("bc1q.rig", 0);
        assert_eq!(w.status(10), WorkerStatus::Offline);
        w.connect(Some("bitaxe/BM1370/v2.4.0"), 0);
        w.difficulty = 1.0;
        assert_eq!(w.status(10), WorkerStatus::Online, "just connected");
        assert_eq!(
            w.status(IDLE_SECS_MIN + 1),
            WorkerStatus::Idle,
            "no share since"
        );
        for t in 0..100 {
            w.share(t * 6, 1.0, 2.0, None);
        }
        assert_eq!(w.status(600), WorkerStatus::Online);
        for t in 0..5 {
            w.share(600 + t, 1.0, 0.0, Some("low_difficulty"));
        }
        assert_eq!(w.status(606), WorkerStatus::Degraded, "5 of 105 rejected");
        assert_eq!(w.rejected(), 5);
        w.disconnect(700);
        assert_eq!(w.status(701), WorkerStatus::Offline);
        w.connect(None, 800);
        assert_eq!(w.reconnects_24h(801), 1);
        assert_eq!(w.best_run, 2.0);
        assert_eq!(
            w.best_session, 0.0,
            "a new connection run starts its own best"
        );
    }
}
