//! Counters and latency histograms shared by every simulated miner of a run.

use std::sync::Mutex;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use hdrhistogram::Histogram;
use serde_json::{Value, json};

use super::personality::Personality;

use warppool_core::limits::LOADGEN_LATENCY_US_MAX as LATENCY_US_MAX;

/// A counter.
#[derive(Debug, Default)]
pub(crate) struct Counter(AtomicU64);

impl Counter {
    pub(crate) fn inc(&self) {
        self.0.fetch_add(1, Ordering::Relaxed);
    }

    pub(crate) fn add(&self, n: u64) {
        self.0.fetch_add(n, Ordering::Relaxed);
    }

    pub(crate) fn get(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }

    pub(crate) fn max(&self, v: u64) {
        self.0.fetch_max(v, Ordering::Relaxed);
    }

    /// Increments and returns the value before.
    pub(crate) fn fetch_inc(&self) -> u64 {
        self.0.fetch_add(1, Ordering::Relaxed)
    }

    pub(crate) fn set(&self, v: u64) {
        self.0.store(v, Ordering::Relaxed);
    }
}

/// A latency histogram in microseconds.
#[derive(Debug)]
pub(crate) struct Latency(Mutex<Histogram<u64>>);

impl Latency {
    fn new() -> Self {
        Self(Mutex::new(
            Histogram::new_with_bounds(1, LATENCY_US_MAX, 3).expect("valid histogram bounds"),
        ))
    }

    pub(crate) fn record(&self, d: Duration) {
        let us = u64::try_from(d.as_micros())
            .unwrap_or(u64::MAX)
            .clamp(1, LATENCY_US_MAX);
        let mut h = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        h.saturating_record(us);
    }

    /// `{"count","p50","p90","p99","p999","max"}`; percentiles are `null` when empty.
    pub(crate) fn to_json(&self) -> Value {
        let h = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if h.is_empty() {
            return json!({"count": 0, "p50": null, "p90": null, "p99": null, "p999": null,
                "max": null});
        }
        json!({
            "count": h.len(),
            "p50": h.value_at_quantile(0.50),
            "p90": h.value_at_quantile(0.90),
            "p99": h.value_at_quantile(0.99),
            "p999": h.value_at_quantile(0.999),
            "max": h.max(),
        })
    }
}

/// Everything a run counts.
#[derive(Debug)]
pub(crate) struct Stats {
    pub(crate) established: Counter,
    pub(crate) failed: Counter,
    pub(crate) subscribed: Counter,
    pub(crate) authorized: Counter,
    /// Microseconds from the run's start to the latest first-round subscribe reply.
    pub(crate) last_subscribed_us: Counter,
    pub(crate) disconnected_by_pool: Counter,
    pub(crate) open: Counter,

    pub(crate) submitted: Counter,
    pub(crate) accepted: Counter,
    pub(crate) rejected_21: Counter,
    pub(crate) rejected_22: Counter,
    pub(crate) rejected_23: Counter,
    pub(crate) rejected_other: Counter,
    pub(crate) timeouts: Counter,
    /// Submits whose reply had not arrived when the run stopped (neither answered nor timed
    /// out: the run ended inside their round trip).
    pub(crate) unanswered_at_stop: Counter,
    pub(crate) valid_rejected: Counter,
    pub(crate) invalid_accepted: Counter,
    /// Rejections with another code than expected (both sides agree it is not credited).
    pub(crate) reason_mismatch: Counter,
    /// Valid shares answered 21 because a new tip reached the pool in flight.
    pub(crate) stale_races: Counter,
    /// Shares whose verdict could go either way (between two difficulties, blocks).
    pub(crate) unchecked: Counter,
    pub(crate) injected_duplicates: Counter,
    pub(crate) injected_stale: Counter,
    pub(crate) blocks: Counter,
    pub(crate) pool_error_details: Counter,
    /// Connection errors printed so far.
    pub(crate) printed: Counter,

    pub(crate) notifies: Counter,
    pub(crate) clean_notifies: Counter,
    pub(crate) hashes: Counter,
    /// Rate mode: valid submits due while the connection's ground stock was empty (a random
    /// share was sent instead): the grinders could not keep up with `--valid-fraction`.
    pub(crate) valid_shortfall: Counter,
    /// Searches the full grinder queue refused (retried later).
    pub(crate) grind_queue_full: Counter,

    pub(crate) err_connect: Counter,
    pub(crate) err_io: Counter,
    pub(crate) err_protocol: Counter,

    pub(crate) bad_connections: Counter,
    pub(crate) bad_disconnected: Counter,
    pub(crate) bad_lines: Counter,
    pub(crate) bad_replies: Counter,

    /// Reconnect storm: subscribe replies in the current round, and its start.
    pub(crate) round_subscribed: Counter,
    pub(crate) reconnect_attempts: Counter,
    pub(crate) reconnect_failed: Counter,

    pub(crate) connect_to_first_notify: Latency,
    /// Submit written → its reply reached the miner's socket (kernel stamp).
    pub(crate) submit_to_reply: Latency,
    /// Submit written → the miner's task handled the reply (adds loadgen's own queueing).
    pub(crate) submit_to_reply_handled: Latency,
    /// New tip → the clean `mining.notify` reached the miner's socket (kernel stamp).
    pub(crate) new_tip_to_clean_jobs: Latency,
    /// New tip → the miner's task handled that notify (adds loadgen's own queueing).
    pub(crate) new_tip_to_clean_jobs_handled: Latency,
    pub(crate) tips_triggered: Counter,

    pub(crate) personalities: [Counter; Personality::ALL.len()],
    pub(crate) accepted_by: [Counter; Personality::ALL.len()],
    pub(crate) rejected_by: [Counter; Personality::ALL.len()],
}

impl Stats {
    pub(crate) fn new() -> Self {
        Self {
            established: Counter::default(),
            failed: Counter::default(),
            subscribed: Counter::default(),
            authorized: Counter::default(),
            last_subscribed_us: Counter::default(),
            disconnected_by_pool: Counter::default(),
            open: Counter::default(),
            submitted: Counter::default(),
            accepted: Counter::default(),
            rejected_21: Counter::default(),
            rejected_22: Counter::default(),
            rejected_23: Counter::default(),
            rejected_other: Counter::default(),
            timeouts: Counter::default(),
            unanswered_at_stop: Counter::default(),
            valid_rejected: Counter::default(),
            invalid_accepted: Counter::default(),
            reason_mismatch: Counter::default(),
            stale_races: Counter::default(),
            unchecked: Counter::default(),
            injected_duplicates: Counter::default(),
            injected_stale: Counter::default(),
            blocks: Counter::default(),
            pool_error_details: Counter::default(),
            printed: Counter::default(),
            notifies: Counter::default(),
            clean_notifies: Counter::default(),
            hashes: Counter::default(),
            valid_shortfall: Counter::default(),
            grind_queue_full: Counter::default(),
            err_connect: Counter::default(),
            err_io: Counter::default(),
            err_protocol: Counter::default(),
            bad_connections: Counter::default(),
            bad_disconnected: Counter::default(),
            bad_lines: Counter::default(),
            bad_replies: Counter::default(),
            round_subscribed: Counter::default(),
            reconnect_attempts: Counter::default(),
            reconnect_failed: Counter::default(),
            connect_to_first_notify: Latency::new(),
            submit_to_reply: Latency::new(),
            submit_to_reply_handled: Latency::new(),
            new_tip_to_clean_jobs: Latency::new(),
            new_tip_to_clean_jobs_handled: Latency::new(),
            tips_triggered: Counter::default(),
            personalities: std::array::from_fn(|_| Counter::default()),
            accepted_by: std::array::from_fn(|_| Counter::default()),
            rejected_by: std::array::from_fn(|_| Counter::default()),
        }
    }

    /// Counts a rejection by its Stratum code.
    pub(crate) fn count_rejection(&self, code: Option<i64>) {
        match code {
            Some(21) => self.rejected_21.inc(),
            Some(22) => self.rejected_22.inc(),
            Some(23) => self.rejected_23.inc(),
            _ => self.rejected_other.inc(),
        }
    }

    pub(crate) fn rejected(&self) -> u64 {
        self.rejected_21.get()
            + self.rejected_22.get()
            + self.rejected_23.get()
            + self.rejected_other.get()
    }

    pub(crate) fn pool_errors(&self) -> u64 {
        self.valid_rejected.get() + self.invalid_accepted.get()
    }
}
