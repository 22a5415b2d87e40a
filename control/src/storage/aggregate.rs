//! Per-worker, per-minute share aggregation in memory, before anything reaches the writer.
//!
//! The share rate is unbounded in principle (a regtest flood, a farm of fast ASICs), so single
//! shares never go to the writer: they are folded into one [`MinuteBucket`] per worker-minute,
//! and the writer takes all buckets at each flush. The number of distinct buckets held is
//! bounded by [`SHARE_BUCKETS_MAX`](super::SHARE_BUCKETS_MAX); a share that would need a new
//! bucket beyond that is counted and dropped.

use std::collections::HashMap;

/// Seconds in one statistics bucket.
pub(super) const MINUTE_SECS: i64 = 60;

/// One worker's shares in one minute, not yet written.
#[derive(Debug, Clone, PartialEq)]
pub(super) struct MinuteBucket {
    pub(super) worker: String,
    pub(super) minute_start_unix_s: i64,
    /// Latest share time seen, for the worker's `last_seen`.
    pub(super) last_share_unix_s: i64,
    pub(super) accepted_count: u64,
    pub(super) accepted_difficulty_sum: f64,
    /// Highest `hash_difficulty` among accepted shares (0 if none).
    pub(super) best_difficulty: f64,
    /// Rejected counts by reason label; a handful of labels exist, so a short list.
    pub(super) rejects: Vec<(&'static str, u64)>,
}

impl MinuteBucket {
    pub(super) fn rejected_count(&self) -> u64 {
        self.rejects.iter().map(|(_, count)| count).sum()
    }
}

/// The minute a time falls in, as the Unix time of its first second.
pub(super) fn minute_start(time_unix_s: i64) -> i64 {
    time_unix_s.div_euclid(MINUTE_SECS) * MINUTE_SECS
}

/// Buckets keyed by worker, then by minute. Lookup by `&str` does not allocate, so a share for
/// an existing bucket costs one hash lookup and no allocation.
#[derive(Debug, Default)]
pub(super) struct Aggregator {
    workers: HashMap<String, HashMap<i64, MinuteBucket>>,
    buckets_count: usize,
    dropped_shares: u64,
}

impl Aggregator {
    /// Buckets held now.
    pub(super) const fn len(&self) -> usize {
        self.buckets_count
    }

    /// Folds one share in. Returns `false` (and counts it) if it needed a new bucket and
    /// `buckets_max` are already held.
    pub(super) fn add(&mut self, share: &super::ShareRecord<'_>, buckets_max: usize) -> bool {
        debug_assert!(share.difficulty.is_finite());
        debug_assert!(share.difficulty >= 0.0);
        let minute = minute_start(share.time_unix_s);
        let full = self.buckets_count >= buckets_max;
        let minutes = match self.workers.get_mut(share.worker) {
            Some(minutes) => minutes,
            None if full => {
                self.dropped_shares += 1;
                return false;
            }
            None => self.workers.entry(share.worker.to_owned()).or_default(),
        };
        let bucket = match minutes.get_mut(&minute) {
            Some(bucket) => bucket,
            None if full => {
                self.dropped_shares += 1;
                return false;
            }
            None => {
                self.buckets_count += 1;
                minutes.entry(minute).or_insert_with(|| MinuteBucket {
                    worker: share.worker.to_owned(),
                    minute_start_unix_s: minute,
                    last_share_unix_s: share.time_unix_s,
                    accepted_count: 0,
                    accepted_difficulty_sum: 0.0,
                    best_difficulty: 0.0,
                    rejects: Vec::new(),
                })
            }
        };
        bucket.last_share_unix_s = bucket.last_share_unix_s.max(share.time_unix_s);
        match share.reject {
            None => {
                bucket.accepted_count += 1;
                bucket.accepted_difficulty_sum += share.difficulty;
                bucket.best_difficulty = bucket.best_difficulty.max(share.hash_difficulty);
            }
            Some(label) => match bucket.rejects.iter_mut().find(|(known, _)| *known == label) {
                Some((_, count)) => *count += 1,
                None => bucket.rejects.push((label, 1)),
            },
        }
        true
    }

    /// Takes every bucket out, leaving the aggregator empty. O(1): the caller flattens the
    /// result with [`into_buckets`] after releasing the lock, so shares are not held up.
    pub(super) fn take(&mut self) -> TakenBuckets {
        let workers = std::mem::take(&mut self.workers);
        let count = std::mem::replace(&mut self.buckets_count, 0);
        TakenBuckets { workers, count }
    }

    /// Shares dropped so far because the bucket limit was reached.
    pub(super) fn dropped_shares(&self) -> u64 {
        self.dropped_shares
    }
}

/// Buckets taken out of the aggregator, not yet flattened.
#[derive(Debug)]
pub(super) struct TakenBuckets {
    workers: HashMap<String, HashMap<i64, MinuteBucket>>,
    count: usize,
}

/// Flattens taken buckets into one list.
pub(super) fn into_buckets(taken: TakenBuckets) -> Vec<MinuteBucket> {
    let mut out = Vec::with_capacity(taken.count);
    for (_, minutes) in taken.workers {
        out.extend(minutes.into_values());
    }
    assert_eq!(out.len(), taken.count);
    out
}
