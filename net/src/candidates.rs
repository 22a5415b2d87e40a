//! A shard's outgoing block candidates: the bounded queue to the control plane, and a small
//! bounded shard-local overflow for when that queue is full.
//!
//! A block candidate must never be lost silently and must never take the shard down (a panic
//! on a shard thread aborts the process, and the queue can be filled from miner input on a
//! chain whose target is easier than the share target). When the queue is full the candidate
//! waits in the overflow (`BLOCK_CANDIDATES_OVERFLOW_PER_SHARD_MAX`, allocated at start), which
//! is retried on every shard tick and before every new candidate, in order. Only when the
//! overflow is full too is a candidate dropped: counted (`candidates_lost`) and logged at error
//! level, at most once per `SHARD_LOG_INTERVAL_MS` with the count since the last line.

use std::collections::VecDeque;
use std::time::Instant;

use warppool_core::limits::{
    BLOCK_CANDIDATES_OVERFLOW_PER_SHARD_MAX, BLOCK_CANDIDATES_PER_SHARD_MAX,
};

use crate::counters::{ShardCounters, bump};
use crate::ratelog::RateLog;

/// The candidate queue of one shard (see the module docs).
pub(crate) struct CandidateQueue<C> {
    tx: flume::Sender<C>,
    overflow: VecDeque<C>,
    lost: RateLog,
}

impl<C> CandidateQueue<C> {
    pub(crate) fn new(tx: flume::Sender<C>) -> Self {
        assert!(tx.capacity().is_some(), "candidate queue must be bounded");
        Self {
            tx,
            overflow: VecDeque::with_capacity(BLOCK_CANDIDATES_OVERFLOW_PER_SHARD_MAX),
            lost: RateLog::new(),
        }
    }

    /// Sends a candidate now, or keeps it in the overflow, or counts and logs its loss. Never
    /// blocks, never panics.
    pub(crate) fn push(&mut self, candidate: C, counters: &ShardCounters) {
        self.retry();
        if self.overflow.is_empty() {
            match self.tx.try_send(candidate) {
                Ok(()) => {}
                Err(flume::TrySendError::Full(candidate)) => self.defer(candidate, counters),
                // The control plane is gone: the pool is shutting down.
                Err(flume::TrySendError::Disconnected(_)) => {}
            }
        } else {
            self.defer(candidate, counters);
        }
    }

    fn defer(&mut self, candidate: C, counters: &ShardCounters) {
        if self.overflow.len() < BLOCK_CANDIDATES_OVERFLOW_PER_SHARD_MAX {
            self.overflow.push_back(candidate);
            bump(&counters.candidates_deferred, 1);
            return;
        }
        bump(&counters.candidates_lost, 1);
        if let Some(lost) = self.lost.hit(Instant::now()) {
            tracing::error!(
                lost,
                queue = BLOCK_CANDIDATES_PER_SHARD_MAX,
                overflow = BLOCK_CANDIDATES_OVERFLOW_PER_SHARD_MAX,
                "block candidates lost: the candidate queue and the shard's overflow are full \
                 (is the control plane draining candidates?)"
            );
        }
    }

    /// Moves waiting candidates into the queue, oldest first, while it has room.
    pub(crate) fn retry(&mut self) {
        while let Some(candidate) = self.overflow.pop_front() {
            match self.tx.try_send(candidate) {
                Ok(()) => {}
                Err(flume::TrySendError::Full(candidate)) => {
                    self.overflow.push_front(candidate);
                    return;
                }
                Err(flume::TrySendError::Disconnected(_)) => {
                    self.overflow.clear();
                    return;
                }
            }
        }
    }

    /// Candidates waiting in the overflow.
    #[cfg(test)]
    pub(crate) fn waiting(&self) -> usize {
        self.overflow.len()
    }

    /// Lines logged about lost candidates.
    #[cfg(test)]
    pub(crate) fn loss_lines(&self) -> u64 {
        self.lost.lines
    }
}
