//! The writer thread: owns the only write connection and commits batches.

use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, TransactionBehavior, params};

use super::aggregate::MinuteBucket;
use super::{BlockRecord, BlockStatus, Shared, StorageConfig, StorageError};

/// Acknowledgement channel for a request that waits for the writer (capacity 1).
pub(super) type Ack = SyncSender<Result<(), StorageError>>;

/// What the writer receives. Share statistics are not here: they reach the writer as minute
/// buckets taken from the aggregator at each flush.
#[derive(Debug)]
pub(super) enum Message {
    WorkerSeen {
        worker: String,
        user_agent: Option<String>,
        time_unix_s: i64,
    },
    WorkerDifficulty {
        worker: String,
        difficulty: f64,
        time_unix_s: i64,
    },
    Block(BlockRecord),
    BlockStatus {
        hash: String,
        status: BlockStatus,
        time_unix_s: i64,
    },
    BlockSubmission {
        hash: String,
        node: String,
        time_unix_s: i64,
        result: String,
    },
    Event {
        time_unix_s: i64,
        kind: String,
        message: String,
        /// The worker the event is about, if any (for its timeline).
        worker: Option<String>,
    },
    /// A connection of a worker authorized: its session begins.
    SessionStarted(Box<super::SessionStart>),
    /// A connection closed: its open session ends.
    SessionEnded {
        connection: u64,
        reason: &'static str,
        time_unix_s: i64,
    },
    /// Commit, run one rollup pass at this time, then answer with the buckets computed.
    RollUp {
        now_unix_s: i64,
        ack: SyncSender<Result<u64, StorageError>>,
    },
    /// Commit everything pending now, then acknowledge.
    Flush(Ack),
    /// Commit, run retention against this time, then acknowledge.
    Retention {
        now_unix_s: i64,
        ack: Ack,
    },
    /// Commit and stop.
    Shutdown(Ack),
}

impl Message {
    /// Block records are committed at once (with `synchronous=FULL`), not after the interval.
    fn is_block(&self) -> bool {
        matches!(
            self,
            Self::Block(_) | Self::BlockStatus { .. } | Self::BlockSubmission { .. }
        )
    }
}

fn clamp_i64(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

pub(super) fn now_unix_s() -> i64 {
    let since = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    clamp_i64(since.as_secs())
}

pub(super) struct Writer {
    connection: Connection,
    receiver: Receiver<Message>,
    shared: Arc<Shared>,
    config: StorageConfig,
    batch: Vec<Message>,
}

impl Writer {
    pub(super) fn new(
        connection: Connection,
        receiver: Receiver<Message>,
        shared: Arc<Shared>,
        config: StorageConfig,
    ) -> Self {
        let batch = Vec::with_capacity(config.batch_messages_max);
        Self {
            connection,
            receiver,
            shared,
            config,
            batch,
        }
    }

    /// Runs until `Shutdown` or until every sender is gone; both flush first.
    pub(super) fn run(mut self) {
        let mut deadline = Instant::now() + self.config.flush_interval;
        let mut retention_due = Instant::now();
        let mut rollup_due = Instant::now() + self.config.rollup_interval;
        // The loop ends only on Shutdown or disconnection: the writer lives as long as Storage.
        loop {
            let now = Instant::now();
            if now >= retention_due {
                self.retention_logged(now_unix_s());
                retention_due = now + self.config.retention_interval;
            }
            if now >= rollup_due {
                // The minutes that closed are committed first, then rolled up.
                let _ = self.flush();
                self.rollup_logged(now_unix_s());
                rollup_due = Instant::now() + self.config.rollup_interval;
            }
            if now >= deadline {
                let _ = self.flush();
                deadline = Instant::now() + self.config.flush_interval;
                continue;
            }
            let received = self.receiver.recv_timeout(deadline - now);
            if received.is_ok() {
                self.shared.queued.fetch_sub(1, Ordering::Relaxed);
            }
            match received {
                Ok(Message::Flush(ack)) => {
                    let _ = ack.send(self.flush());
                }
                Ok(Message::Retention { now_unix_s, ack }) => {
                    let result = self.flush().and_then(|()| self.retention(now_unix_s));
                    let _ = ack.send(result);
                }
                Ok(Message::RollUp { now_unix_s, ack }) => {
                    let result = self.flush().and_then(|()| self.roll_up(now_unix_s));
                    let _ = ack.send(result);
                }
                Ok(Message::Shutdown(ack)) => {
                    let _ = ack.send(self.flush());
                    return;
                }
                Ok(message) => {
                    let urgent = message.is_block();
                    self.batch.push(message);
                    if urgent || self.batch.len() >= self.config.batch_messages_max {
                        let _ = self.flush();
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
                Err(RecvTimeoutError::Disconnected) => {
                    let _ = self.flush();
                    return;
                }
            }
        }
    }

    /// Commits the pending messages and all aggregated buckets in one transaction.
    fn flush(&mut self) -> Result<(), StorageError> {
        let buckets = self.shared.take_buckets();
        if buckets.is_empty() && self.batch.is_empty() {
            return Ok(());
        }
        assert!(self.batch.len() <= self.config.batch_messages_max);
        let has_block = self.batch.iter().any(Message::is_block);
        let result = self.commit(&buckets, has_block);
        match &result {
            Ok(()) => {
                self.batch.clear();
                self.shared.batch_committed();
            }
            Err(error) => {
                // Statistics and events of a failed batch are dropped; block records are kept
                // and retried with the next batch (they are few, and must not be lost).
                self.shared.write_failed(error.to_string());
                self.batch.retain(Message::is_block);
            }
        }
        result.map_err(|error| StorageError::Write(error.to_string()))
    }

    fn commit(&mut self, buckets: &[MinuteBucket], has_block: bool) -> rusqlite::Result<()> {
        if has_block {
            // The commit that carries a block waits for the WAL to reach the disk.
            self.connection.pragma_update(None, "synchronous", "FULL")?;
        }
        let committed = commit_batch(&mut self.connection, buckets, &self.batch);
        if has_block {
            // Back to NORMAL whether the commit worked or not.
            self.connection
                .pragma_update(None, "synchronous", "NORMAL")?;
        }
        committed
    }

    /// Runs retention and records a failure like a failed batch.
    fn retention_logged(&mut self, now_unix_s: i64) {
        if let Err(error) = self.retention(now_unix_s) {
            self.shared.write_failed(error.to_string());
        }
    }

    /// One rollup pass; a failure is recorded like a failed batch.
    fn rollup_logged(&mut self, now_unix_s: i64) {
        if let Err(error) = self.roll_up(now_unix_s) {
            self.shared.write_failed(error.to_string());
        }
    }

    fn roll_up(&mut self, now_unix_s: i64) -> Result<u64, StorageError> {
        let minutes = secs_i64(self.config.share_minutes_retention);
        let slots = self.config.rollup_source_slots_per_pass;
        Ok(super::rollup::pass(
            &mut self.connection,
            now_unix_s,
            minutes,
            slots,
        )?)
    }

    /// Deletes per-minute rows, rollups, ended sessions and events older than their retention.
    fn retention(&mut self, now_unix_s: i64) -> Result<(), StorageError> {
        let minutes_before = now_unix_s - secs_i64(self.config.share_minutes_retention);
        let events_before = now_unix_s - secs_i64(self.config.events_retention);
        let transaction = self
            .connection
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        // `share_minute_rejects` rows go with their minute (ON DELETE CASCADE).
        transaction.execute(
            "DELETE FROM share_minutes WHERE minute_start_unix_s < ?1",
            [minutes_before],
        )?;
        transaction.execute("DELETE FROM events WHERE time_unix_s < ?1", [events_before])?;
        super::rollup::retention(&transaction, now_unix_s)?;
        let sessions_before = now_unix_s - secs_i64(self.config.sessions_retention);
        transaction.execute(
            "DELETE FROM worker_sessions WHERE ended_unix_s < ?1",
            [sessions_before],
        )?;
        transaction.commit()?;
        Ok(())
    }
}

/// Buckets first, then messages in arrival order, in one transaction.
fn commit_batch(
    connection: &mut Connection,
    buckets: &[MinuteBucket],
    batch: &[Message],
) -> rusqlite::Result<()> {
    let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
    for bucket in buckets {
        apply_bucket(&transaction, bucket)?;
    }
    if let Some(oldest) = buckets.iter().map(|b| b.minute_start_unix_s).min() {
        // Buckets of that minute on may be rolled up already: they are computed again.
        super::rollup::lower_marks(&transaction, oldest)?;
    }
    for message in batch {
        apply_message(&transaction, message)?;
    }
    transaction.commit()
}

fn secs_i64(duration: Duration) -> i64 {
    clamp_i64(duration.as_secs())
}

/// Inserts the worker if new and returns its id; `last_seen` only moves forward.
pub(super) fn worker_id(
    connection: &Connection,
    worker: &str,
    time_unix_s: i64,
) -> rusqlite::Result<i64> {
    let mut statement = connection.prepare_cached(
        "INSERT INTO workers (name, first_seen_unix_s, last_seen_unix_s, public_id)
         VALUES (?1, ?2, ?2, ?3)
         ON CONFLICT (name) DO UPDATE
         SET last_seen_unix_s = max(last_seen_unix_s, excluded.last_seen_unix_s)
         RETURNING id",
    )?;
    let public_id = crate::api::v1::worker_id(worker);
    statement.query_row(params![worker, time_unix_s, public_id], |row| row.get(0))
}

fn apply_bucket(connection: &Connection, bucket: &MinuteBucket) -> rusqlite::Result<()> {
    let worker = worker_id(connection, &bucket.worker, bucket.last_share_unix_s)?;
    connection
        .prepare_cached(
            "UPDATE workers SET best_difficulty = max(best_difficulty, ?2),
             best_difficulty_since_block = max(best_difficulty_since_block, ?2) WHERE id = ?1",
        )?
        .execute(params![worker, bucket.best_difficulty])?;
    connection
        .prepare_cached(
            "INSERT INTO share_minutes (worker_id, minute_start_unix_s, accepted_count,
                 accepted_difficulty_sum, rejected_count, best_difficulty)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)
             ON CONFLICT (worker_id, minute_start_unix_s) DO UPDATE SET
                 accepted_count = accepted_count + excluded.accepted_count,
                 accepted_difficulty_sum =
                     accepted_difficulty_sum + excluded.accepted_difficulty_sum,
                 rejected_count = rejected_count + excluded.rejected_count,
                 best_difficulty = max(best_difficulty, excluded.best_difficulty)",
        )?
        .execute(params![
            worker,
            bucket.minute_start_unix_s,
            clamp_i64(bucket.accepted_count),
            bucket.accepted_difficulty_sum,
            clamp_i64(bucket.rejected_count()),
            bucket.best_difficulty,
        ])?;
    let mut rejects = connection.prepare_cached(
        "INSERT INTO share_minute_rejects (worker_id, minute_start_unix_s, reason, rejected_count)
         VALUES (?1, ?2, ?3, ?4)
         ON CONFLICT (worker_id, minute_start_unix_s, reason) DO UPDATE
         SET rejected_count = rejected_count + excluded.rejected_count",
    )?;
    for (reason, count) in &bucket.rejects {
        rejects.execute(params![
            worker,
            bucket.minute_start_unix_s,
            reason,
            clamp_i64(*count)
        ])?;
    }
    Ok(())
}

/// Stores a vardiff difficulty under its key (`address.worker#family`), and shows it on the
/// worker's row.
fn store_difficulty(
    connection: &Connection,
    worker: &str,
    difficulty: f64,
    time_unix_s: i64,
) -> rusqlite::Result<()> {
    connection
        .prepare_cached(
            "INSERT INTO worker_difficulties (key, difficulty, updated_unix_s)
                 VALUES (?1, ?2, ?3) ON CONFLICT(key) DO UPDATE SET
                 difficulty = excluded.difficulty, updated_unix_s = excluded.updated_unix_s",
        )?
        .execute(params![worker, difficulty, time_unix_s])?;
    // The worker's row shows its latest difficulty, whichever device sent it.
    let name = worker.rsplit_once('#').map_or(worker, |(n, _)| n);
    connection
        .prepare_cached("UPDATE workers SET last_difficulty = ?2 WHERE name = ?1")?
        .execute(params![name, difficulty])?;
    Ok(())
}

const EVENT_INSERT: &str =
    "INSERT INTO events (time_unix_s, kind, message, worker) VALUES (?1, ?2, ?3, ?4)";

fn apply_message(connection: &Connection, message: &Message) -> rusqlite::Result<()> {
    match message {
        Message::WorkerSeen {
            worker,
            user_agent,
            time_unix_s,
        } => {
            let id = worker_id(connection, worker, *time_unix_s)?;
            if let Some(user_agent) = user_agent {
                connection
                    .prepare_cached("UPDATE workers SET user_agent = ?2 WHERE id = ?1")?
                    .execute(params![id, user_agent])?;
            }
        }
        Message::WorkerDifficulty {
            worker,
            difficulty,
            time_unix_s,
        } => store_difficulty(connection, worker, *difficulty, *time_unix_s)?,
        Message::Block(block) => apply_block(connection, block)?,
        Message::BlockStatus {
            hash,
            status,
            time_unix_s,
        } => {
            connection
                .prepare_cached(
                    "UPDATE blocks SET status = ?2, updated_unix_s = ?3 WHERE hash = ?1",
                )?
                .execute(params![hash, status.as_str(), time_unix_s])?;
        }
        Message::BlockSubmission {
            hash,
            node,
            time_unix_s,
            result,
        } => {
            connection
                .prepare_cached(
                    "INSERT INTO block_submissions (block_id, node, submitted_unix_s, result)
                     SELECT id, ?2, ?3, ?4 FROM blocks WHERE hash = ?1",
                )?
                .execute(params![hash, node, time_unix_s, result])?;
        }
        Message::Event {
            time_unix_s,
            kind,
            message,
            worker,
        } => {
            let event = params![time_unix_s, kind, message, worker];
            connection.prepare_cached(EVENT_INSERT)?.execute(event)?;
        }
        Message::SessionStarted(start) => super::sessions::start(connection, start)?,
        Message::SessionEnded {
            connection: id,
            reason,
            time_unix_s,
        } => super::sessions::end(connection, *id, reason, *time_unix_s)?,
        Message::Flush(_)
        | Message::Retention { .. }
        | Message::RollUp { .. }
        | Message::Shutdown(_) => {
            unreachable!("control messages are handled by the loop, never batched")
        }
    }
    Ok(())
}

/// Records a found block (idempotent on its hash) and starts a new round for every worker.
fn apply_block(connection: &Connection, block: &BlockRecord) -> rusqlite::Result<()> {
    let worker = worker_id(connection, &block.worker, block.found_unix_s)?;
    let inserted = connection
        .prepare_cached(
            "INSERT INTO blocks (height, hash, worker_id, payout_address, status, found_unix_s,
                 updated_unix_s, finder_extranonce1, finder_user_agent)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?6, ?7, ?8)
             ON CONFLICT (hash) DO NOTHING",
        )?
        .execute(params![
            block.height,
            block.hash,
            worker,
            block.payout_address,
            block.status.as_str(),
            block.found_unix_s,
            block.extranonce1,
            block.user_agent,
        ])?;
    if inserted == 1 {
        connection
            .prepare_cached("UPDATE workers SET best_difficulty_since_block = 0")?
            .execute([])?;
    }
    Ok(())
}
