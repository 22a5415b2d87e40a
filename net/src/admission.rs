//! Admission control at accept: the per-shard token bucket, the pool-wide per-IP table, and
//! the rate-limited log of refused connections ([`RefusalLog`]).
//!
//! **Per-IP cap across shards.** `SO_REUSEPORT` spreads connections over shards by a hash of
//! the 4-tuple, so one address's connections land on every shard and a per-shard count would
//! allow `shards × cap`. Instead all shards share one table of `IP_TABLE_BUCKETS` atomic
//! counters, indexed by a keyed SipHash (random key per process) of the client address (IPv4:
//! the address; IPv6: its /64, since one host usually owns a whole /64). A shard touches it
//! only at accept and at close, never per line, so shards still share nothing on the data
//! path. Two addresses that hash to the same bucket share one cap; with 65 536 buckets and a
//! keyed hash that is rare and cannot be aimed at, and it errs on the side of refusing.

use std::{
    hash::{BuildHasher, RandomState},
    net::IpAddr,
    sync::atomic::{AtomicU32, Ordering},
    time::Instant,
};

use warppool_core::limits::IP_TABLE_BUCKETS;

use crate::ratelog::RateLog;

/// Accept-rate limiter of one shard: `rate` tokens per second up to `burst`.
#[derive(Debug)]
pub(crate) struct TokenBucket {
    rate_per_sec: f64,
    burst: f64,
    tokens: f64,
    refilled_at: Instant,
}

impl TokenBucket {
    pub(crate) fn new(rate_per_sec: u32, burst: u32, now: Instant) -> Self {
        assert!(rate_per_sec > 0);
        assert!(burst > 0);
        Self {
            rate_per_sec: f64::from(rate_per_sec),
            burst: f64::from(burst),
            tokens: f64::from(burst),
            refilled_at: now,
        }
    }

    /// New rate and burst (live settings); the tokens held are kept, clamped to the burst.
    pub(crate) fn reconfigure(&mut self, rate_per_sec: u32, burst: u32) {
        assert!(rate_per_sec > 0);
        assert!(burst > 0);
        self.rate_per_sec = f64::from(rate_per_sec);
        self.burst = f64::from(burst);
        self.tokens = self.tokens.min(self.burst);
    }

    /// Takes one token if there is one.
    pub(crate) fn try_take(&mut self, now: Instant) -> bool {
        let elapsed = now
            .saturating_duration_since(self.refilled_at)
            .as_secs_f64();
        self.tokens = (self.tokens + elapsed * self.rate_per_sec).min(self.burst);
        self.refilled_at = now;
        debug_assert!(self.tokens >= 0.0);
        if self.tokens >= 1.0 {
            self.tokens -= 1.0;
            true
        } else {
            false
        }
    }
}

/// Pool-wide per-address connection counters (see the module docs).
#[derive(Debug)]
pub(crate) struct IpTable {
    hasher: RandomState,
    /// Changed live ([`IpTable::set_cap`]): a lower cap refuses new connections only.
    cap: AtomicU32,
    buckets: Box<[AtomicU32]>,
}

impl IpTable {
    pub(crate) fn new(cap: u32) -> Self {
        assert!(cap > 0);
        let buckets = (0..IP_TABLE_BUCKETS).map(|_| AtomicU32::new(0)).collect();
        Self {
            hasher: RandomState::new(),
            cap: AtomicU32::new(cap),
            buckets,
        }
    }

    pub(crate) fn bucket(&self, ip: IpAddr) -> usize {
        let key: u128 = match ip {
            IpAddr::V4(v4) => u128::from(u32::from(v4)),
            // The /64 prefix, tagged so it cannot collide with an IPv4 key by construction.
            IpAddr::V6(v6) => (u128::from(v6) >> 64) | (1 << 127),
        };
        // Truncation is the point: the low bits of the hash pick the bucket.
        (self.hasher.hash_one(key) as usize) & (IP_TABLE_BUCKETS - 1)
    }

    /// Sets the cap for every shard at once (live settings).
    pub(crate) fn set_cap(&self, cap: u32) {
        assert!(cap > 0);
        self.cap.store(cap, Ordering::Relaxed);
    }

    /// Counts a connection in `bucket` unless that would exceed the cap.
    pub(crate) fn try_acquire(&self, bucket: usize) -> bool {
        let cap = self.cap.load(Ordering::Relaxed);
        self.buckets[bucket]
            .fetch_update(Ordering::AcqRel, Ordering::Acquire, |n| {
                (n < cap).then_some(n + 1)
            })
            .is_ok()
    }

    pub(crate) fn release(&self, bucket: usize) {
        let before = self.buckets[bucket].fetch_sub(1, Ordering::AcqRel);
        assert!(before > 0, "per-ip counter released below zero");
    }
}

/// Which admission limit refused a connection.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// The shard's accept token bucket was empty.
    Rate,
    /// The shard held `connections_per_shard_max` connections.
    ShardFull,
    /// The client address held `connections_per_ip_max` connections.
    IpCap,
    /// The client address is banned (admin API).
    Banned,
}

impl Refusal {
    const ALL: [Self; 4] = [Self::Rate, Self::ShardFull, Self::IpCap, Self::Banned];

    /// The limit's name in the log.
    pub(crate) const fn limit(self) -> &'static str {
        match self {
            Self::Rate => "accept rate",
            Self::ShardFull => "connections per shard",
            Self::IpCap => "connections per client address",
            Self::Banned => "address bans",
        }
    }

    /// The configuration key(s) that raise the limit.
    pub(crate) const fn config_key(self) -> &'static str {
        match self {
            Self::Rate => "pool.accept_rate_per_sec, pool.accept_burst",
            Self::ShardFull => "pool.connections_per_shard_max",
            Self::IpCap => "pool.connections_per_ip_max",
            Self::Banned => "DELETE /api/v1/admin/bans/{id}",
        }
    }

    const fn index(self) -> usize {
        match self {
            Self::Rate => 0,
            Self::ShardFull => 1,
            Self::IpCap => 2,
            Self::Banned => 3,
        }
    }
}

/// A shard's rate-limited log of refused connections: at most one warning per limit per
/// `SHARD_LOG_INTERVAL_MS`, naming the limit and the configuration key that raises it, with
/// the number refused since the previous line. (The counters in
/// [`crate::CountersSnapshot`] count every refusal.)
#[derive(Debug)]
pub(crate) struct RefusalLog {
    logs: [RateLog; 4],
}

impl RefusalLog {
    pub(crate) const fn new() -> Self {
        Self {
            logs: [
                RateLog::new(),
                RateLog::new(),
                RateLog::new(),
                RateLog::new(),
            ],
        }
    }

    /// One connection refused by `refusal` at `now`.
    pub(crate) fn refused(&mut self, refusal: Refusal, now: Instant, shard: usize) {
        if let Some(refused) = self.logs[refusal.index()].hit(now) {
            log_refused(refusal, refused, shard);
        }
    }

    /// Reports refusals not logged yet once their interval has passed (every tick).
    pub(crate) fn flush(&mut self, now: Instant, shard: usize) {
        for refusal in Refusal::ALL {
            if let Some(refused) = self.logs[refusal.index()].flush(now) {
                log_refused(refusal, refused, shard);
            }
        }
    }

    /// Lines logged for `refusal` (for tests).
    #[cfg(test)]
    fn lines(&self, refusal: Refusal) -> u64 {
        self.logs[refusal.index()].lines
    }
}

fn log_refused(refusal: Refusal, refused: u64, shard: usize) {
    if refusal == Refusal::Banned {
        tracing::warn!(
            shard,
            refused,
            "connections from banned addresses refused at accept (see GET /api/v1/admin/bans)"
        );
        return;
    }
    tracing::warn!(
        shard,
        limit = refusal.limit(),
        refused,
        raise_with = refusal.config_key(),
        "connections refused at accept: {} limit reached (raise it with {})",
        refusal.limit(),
        refusal.config_key(),
    );
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;

    #[test]
    fn bucket_refills_at_rate() {
        let start = Instant::now();
        let mut bucket = TokenBucket::new(10, 2, start);
        assert!(bucket.try_take(start));
        assert!(bucket.try_take(start));
        assert!(!bucket.try_take(start));
        assert!(bucket.try_take(start + Duration::from_millis(100)));
        assert!(!bucket.try_take(start + Duration::from_millis(100)));
    }

    #[test]
    fn ip_cap_and_v6_prefix() {
        let table = IpTable::new(2);
        let a: IpAddr = "2001:db8::1".parse().unwrap();
        let b: IpAddr = "2001:db8::ffff".parse().unwrap();
        assert_eq!(table.bucket(a), table.bucket(b));
        let bucket = table.bucket(a);
        assert!(table.try_acquire(bucket));
        assert!(table.try_acquire(bucket));
        assert!(!table.try_acquire(bucket));
        table.release(bucket);
        assert!(table.try_acquire(bucket));
    }

    // See: issue 9, defect 11 (4,000 miners from one address, 2,976 closed, nothing in the log).
    #[test]
    fn issue_9_refused_connections_are_logged_once_per_interval_with_the_config_key() {
        let start = Instant::now();
        let mut log = RefusalLog::new();
        for i in 0..2_976u64 {
            log.refused(Refusal::IpCap, start + Duration::from_millis(i), 0);
        }
        log.refused(Refusal::Rate, start, 0);
        assert_eq!(
            log.lines(Refusal::IpCap),
            1,
            "one line per limit per interval"
        );
        assert_eq!(log.lines(Refusal::Rate), 1, "each limit has its own line");
        let later = start + Duration::from_millis(warppool_core::limits::SHARD_LOG_INTERVAL_MS);
        log.flush(later + Duration::from_secs(3), 0);
        assert_eq!(
            log.lines(Refusal::IpCap),
            2,
            "the rest of the burst is reported"
        );
        assert_eq!(log.lines(Refusal::ShardFull), 0);
        assert_eq!(Refusal::IpCap.config_key(), "pool.connections_per_ip_max");
        assert_eq!(
            Refusal::ShardFull.config_key(),
            "pool.connections_per_shard_max"
        );
        assert!(
            Refusal::Rate
                .config_key()
                .contains("pool.accept_rate_per_sec")
        );
    }
}
