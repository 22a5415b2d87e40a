//! The cardinality rule of the per-worker series (decision 0015): a worker has series while it
//! has been updated (a share, a connection or close, a difficulty change; a connected worker
//! counts as updated now) within `METRICS_WORKER_SERIES_IDLE_SECS`, and at most
//! `METRICS_WORKER_SERIES_MAX` workers have them: the highest ten-minute hashrates, ties by
//! name. The others are counted, never silently dropped.

use std::{cmp::Ordering, collections::BinaryHeap};

use warppool_core::limits::{METRICS_WORKER_SERIES_IDLE_SECS, METRICS_WORKER_SERIES_MAX};

use crate::live::{Live, LiveWorker};

/// The workers that get series, and how many more would have had one but for the cap.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct WorkerSeries {
    /// `(name, ten-minute hashrate in hashes per second)`, highest first.
    pub rows: Vec<(Box<str>, f64)>,
    /// Workers updated recently enough but left out by the cap.
    pub over_cap: usize,
}

/// When `worker` was last updated (`now` while it is connected).
#[must_use]
pub fn last_update(worker: &LiveWorker, now: i64) -> i64 {
    if worker.connections > 0 {
        return now;
    }
    [
        worker.last_share_at,
        worker.disconnected_at,
        worker.difficulty_at,
        worker.connected_at,
    ]
    .into_iter()
    .flatten()
    .fold(worker.since, i64::max)
}

/// A candidate, ordered so that the heap's top is the weakest (lowest rate, then the last
/// name): the one to drop when a better one comes.
#[derive(Debug)]
struct Candidate {
    hps: f64,
    name: Box<str>,
}

impl PartialEq for Candidate {
    fn eq(&self, other: &Self) -> bool {
        self.cmp(other) == Ordering::Equal
    }
}

impl Eq for Candidate {}

impl PartialOrd for Candidate {
    fn partial_cmp(&self, other: &Self) -> Option<Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Candidate {
    fn cmp(&self, other: &Self) -> Ordering {
        // Greater = weaker.
        other
            .hps
            .total_cmp(&self.hps)
            .then_with(|| self.name.cmp(&other.name))
    }
}

/// Keeps the best `max` workers offered (see the module docs) without holding the others.
#[derive(Debug)]
pub struct Selector {
    heap: BinaryHeap<Candidate>,
    eligible: usize,
    now: i64,
    max: usize,
    idle_secs: i64,
}

impl Selector {
    /// A selector of at most `max` workers updated within `idle_secs` of `now`.
    #[must_use]
    pub fn new(now: i64, max: usize, idle_secs: i64) -> Self {
        Self {
            heap: BinaryHeap::with_capacity(max.saturating_add(1)),
            eligible: 0,
            now,
            max,
            idle_secs,
        }
    }

    /// Offers worker `name` with its hashrate and last update.
    pub fn offer(&mut self, name: &str, hps: f64, updated: i64) {
        if self.now - updated > self.idle_secs {
            return;
        }
        self.eligible += 1;
        if self.max == 0 {
            return;
        }
        if self.heap.len() == self.max {
            let Some(weakest) = self.heap.peek() else {
                return;
            };
            let better = hps
                .total_cmp(&weakest.hps)
                .then_with(|| weakest.name.as_ref().cmp(name))
                == Ordering::Greater;
            if !better {
                return;
            }
            self.heap.pop();
        }
        self.heap.push(Candidate {
            hps,
            name: name.into(),
        });
    }

    /// The chosen workers, highest rate first.
    #[must_use]
    pub fn finish(self) -> WorkerSeries {
        let rows: Vec<_> = self
            .heap
            .into_sorted_vec()
            .into_iter()
            .map(|c| (c.name, c.hps))
            .collect();
        WorkerSeries {
            over_cap: self.eligible - rows.len(),
            rows,
        }
    }
}

/// Picks at most `max` of `workers` (`(name, hps, last update)`) updated within `idle_secs` of
/// `now` (see the module docs).
#[must_use]
pub fn select<'a>(
    workers: impl IntoIterator<Item = (&'a str, f64, i64)>,
    now: i64,
    max: usize,
    idle_secs: i64,
) -> WorkerSeries {
    let mut selector = Selector::new(now, max, idle_secs);
    for (name, hps, updated) in workers {
        selector.offer(name, hps, updated);
    }
    selector.finish()
}

/// The ten-minute hashrate of `worker` at `now`, hashes per second.
#[must_use]
pub fn hashrate_10m(worker: &LiveWorker, now: i64) -> f64 {
    let ten = worker.window(now, 600);
    crate::live::hashes_per_second(ten.difficulty_sum, ten.secs)
}

/// The live table's workers under the pool's limits.
#[must_use]
pub fn of_live(live: &Live, now: i64) -> WorkerSeries {
    let mut selector = Selector::new(
        now,
        METRICS_WORKER_SERIES_MAX,
        METRICS_WORKER_SERIES_IDLE_SECS,
    );
    live.for_each(|w| selector.offer(&w.name, hashrate_10m(w, now), last_update(w, now)));
    selector.finish()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_cap_keeps_the_fastest_and_counts_the_rest() {
        let names: Vec<String> = (0..10).map(|i| format!("w{i}")).collect();
        let workers = names
            .iter()
            .enumerate()
            .map(|(i, n)| (n.as_str(), i as f64, 100));
        let picked = select(workers, 100, 3, 10);
        let rows: Vec<&str> = picked.rows.iter().map(|(n, _)| n.as_ref()).collect();
        assert_eq!(rows, ["w9", "w8", "w7"]);
        assert_eq!(picked.over_cap, 7);
    }

    #[test]
    fn workers_idle_past_the_limit_have_no_series_and_ties_go_by_name() {
        let workers = [("b", 0.0, 100), ("a", 0.0, 95), ("old", 9.0, 80)];
        let picked = select(workers, 100, 5, 10);
        let rows: Vec<&str> = picked.rows.iter().map(|(n, _)| n.as_ref()).collect();
        assert_eq!(rows, ["a", "b"], "old was last updated 20 s ago, over 10");
        assert_eq!(picked.over_cap, 0);
        assert_eq!(select(workers, 100, 1, 10).rows[0].0.as_ref(), "a");
    }

    #[test]
    fn a_connected_worker_is_updated_now_and_a_gone_one_when_it_left() {
        let mut w = LiveWorker::new("x", 0);
        w.connect(None, 10);
        assert_eq!(last_update(&w, 500), 500);
        w.disconnect(20);
        assert_eq!(last_update(&w, 500), 20);
    }
}
