//! Rate-limited logging for the shards: at most one line per kind per
//! [`SHARD_LOG_INTERVAL_MS`], carrying the number of events since the previous line, so input a
//! miner controls can never flood the log. Each shard keeps its own (shards share nothing), so
//! a pool of `n` shards writes at most `n` lines per kind per interval.

use std::time::{Duration, Instant};

use warppool_core::limits::SHARD_LOG_INTERVAL_MS;

/// One kind of rate-limited log line (see the module docs).
#[derive(Debug)]
pub(crate) struct RateLog {
    last: Option<Instant>,
    /// Events not reported in a line yet.
    pending: u64,
    /// Lines written so far (for tests).
    pub(crate) lines: u64,
}

impl RateLog {
    pub(crate) const fn new() -> Self {
        Self {
            last: None,
            pending: 0,
            lines: 0,
        }
    }

    fn due(&self, now: Instant) -> bool {
        let interval = Duration::from_millis(SHARD_LOG_INTERVAL_MS);
        self.last
            .is_none_or(|at| now.saturating_duration_since(at) >= interval)
    }

    /// Records one event at `now`; returns the events to report when a line is due now.
    pub(crate) fn hit(&mut self, now: Instant) -> Option<u64> {
        self.pending += 1;
        self.flush(now)
    }

    /// Returns the events not reported yet when a line is due now (called on the shard's
    /// tick, so the last burst before a quiet spell is reported too).
    pub(crate) fn flush(&mut self, now: Instant) -> Option<u64> {
        if self.pending == 0 || !self.due(now) {
            return None;
        }
        self.last = Some(now);
        self.lines += 1;
        Some(std::mem::take(&mut self.pending))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval_with_the_count() {
        let start = Instant::now();
        let mut log = RateLog::new();
        assert_eq!(log.hit(start), Some(1));
        for _ in 0..99 {
            assert_eq!(log.hit(start + Duration::from_millis(1)), None);
        }
        assert_eq!(log.flush(start + Duration::from_millis(2)), None);
        let later = start + Duration::from_millis(SHARD_LOG_INTERVAL_MS);
        assert_eq!(log.flush(later), Some(99));
        assert_eq!(log.flush(later + Duration::from_secs(60)), None);
        assert_eq!(log.lines, 2);
    }
}
