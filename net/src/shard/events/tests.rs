//! Unit tests of the shard's event queues.

use super::*;
use warppool_core::limits::{SHARE_STATS_BATCH_MAX, STATS_BATCHES_QUEUED_PER_SHARD_MAX};

#[test]
fn full_stats_queue_counts_and_drops_whole_batches() {
    let (stats_tx, stats_rx) = flume::bounded(1);
    let (candidates_tx, _candidates_rx) = flume::bounded::<u8>(1);
    let counters = Arc::new(ShardCounters::default());
    let mut events = Events::new(stats_tx, candidates_tx, Arc::clone(&counters));
    for i in 0..SHARE_STATS_BATCH_MAX * 2 + 5 {
        events.stat(i);
    }
    events.flush_stats();
    let sent = stats_rx.try_recv().unwrap();
    assert_eq!(sent.len(), SHARE_STATS_BATCH_MAX);
    assert_eq!(sent[0], 0);
    assert!(stats_rx.try_recv().is_err());
    let dropped = counters.snapshot().stats_dropped;
    assert_eq!(dropped, (SHARE_STATS_BATCH_MAX + 5) as u64);
    // The queue has room again: the next batch goes through.
    drop(sent);
    events.stat(1);
    events.flush_stats();
    assert_eq!(&*stats_rx.try_recv().unwrap(), &[1]);
}

#[test]
fn consumed_batches_come_back_to_the_shard() {
    let (stats_tx, stats_rx) = flume::bounded(STATS_BATCHES_QUEUED_PER_SHARD_MAX);
    let (candidates_tx, _candidates_rx) = flume::bounded::<u8>(1);
    let mut events = Events::new(stats_tx, candidates_tx, Arc::default());
    for round in 0..STATS_BUFFERS * 3 {
        events.stat(round);
        events.flush_stats();
        let batch = stats_rx.try_recv().unwrap();
        assert_eq!(&*batch, &[round]);
        drop(batch);
        // Every buffer is back (none allocated, none lost).
        assert_eq!(events.recycled_rx.len(), STATS_BUFFERS);
    }
}

// See: issue 9, defect 1 (a full block-candidate queue panicked, and a panic on a shard
// thread aborts the process; reachable from miner input).
#[test]
fn issue_9_full_candidate_queue_does_not_abort() {
    use warppool_core::limits::BLOCK_CANDIDATES_OVERFLOW_PER_SHARD_MAX as OVERFLOW;
    let (stats_tx, _stats_rx) = flume::bounded::<StatsBatch<u8>>(1);
    let (candidates_tx, candidates_rx) = flume::bounded(1);
    let counters = Arc::new(ShardCounters::default());
    let mut events = Events::new(stats_tx, candidates_tx, Arc::clone(&counters));
    let sent = 1 + OVERFLOW + 3;
    for i in 0..sent {
        events.candidate(i);
    }
    // One in the queue, the overflow full, three lost: counted and logged once.
    let snapshot = counters.snapshot();
    assert_eq!(snapshot.candidates_deferred, OVERFLOW as u64);
    assert_eq!(snapshot.candidates_lost, 3);
    assert_eq!(events.candidates.loss_lines(), 1);
    assert_eq!(events.candidates.waiting(), OVERFLOW);
    // As the control plane drains, the tick's retry sends the waiting ones, in order.
    let mut received = Vec::new();
    while received.len() < 1 + OVERFLOW {
        received.push(candidates_rx.try_recv().expect("a candidate"));
        events.retry_candidates();
    }
    assert_eq!(received, (0..=OVERFLOW).collect::<Vec<_>>());
    assert_eq!(events.candidates.waiting(), 0);
    events.candidate(1000);
    assert_eq!(candidates_rx.try_recv(), Ok(1000));
}
