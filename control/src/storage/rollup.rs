//! History rollups (decision 0016): the writer sums closed minutes of `share_minutes` into
//! per-worker hourly and daily rows and into the pool's 1-minute, 5-minute, hourly, 6-hour and
//! daily rows, so every history range is answered from a bounded number of rows.
//!
//! # Crash safety
//! A level's buckets are recomputed from their source (never incremented): each pass deletes
//! the level's rows in the span it computes, inserts the sums of the source, and advances the
//! level's mark (`rollup_marks`), all in one transaction. A crash leaves the mark and the rows
//! of one level either before or after a span, so a restart neither counts a bucket twice nor
//! skips one. A minute written after its buckets were rolled up (a late share) moves every
//! mark back to the bucket holding it, in the transaction that writes the minute
//! ([`lower_marks`]), so the next pass computes those buckets again.

use rusqlite::{Connection, OptionalExtension, TransactionBehavior, params};
use warppool_core::limits::{
    HISTORY_DAY_RETENTION_DAYS, HISTORY_FIVE_MINUTE_RETENTION_DAYS, HISTORY_HOUR_RETENTION_DAYS,
    HISTORY_MINUTE_RETENTION_DAYS, HISTORY_ROLLUP_GRACE_SECS, HISTORY_SIX_HOUR_RETENTION_DAYS,
};

use super::aggregate::minute_start;

const DAY_SECS: i64 = 86_400;

/// Which table a level writes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Target {
    /// `pool_rollups`.
    Pool,
    /// `worker_rollups`.
    Worker,
}

impl Target {
    const fn as_str(self) -> &'static str {
        match self {
            Self::Pool => "pool",
            Self::Worker => "worker",
        }
    }
}

/// Where a level's sums come from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Source {
    /// `share_minutes`.
    Minutes,
    /// `worker_rollups` at this level.
    Worker(i64),
}

/// One rollup level.
#[derive(Debug, Clone, Copy)]
pub struct Level {
    /// The table it writes.
    pub target: Target,
    /// Its bucket length, seconds.
    pub secs: i64,
    /// How long its rows are kept, days.
    pub retention_days: u64,
    source: Source,
}

/// Every level, each after the levels it is made from.
pub const LEVELS: [Level; 7] = [
    level(
        Target::Worker,
        3600,
        HISTORY_HOUR_RETENTION_DAYS,
        Source::Minutes,
    ),
    level(
        Target::Worker,
        DAY_SECS,
        HISTORY_DAY_RETENTION_DAYS,
        Source::Worker(3600),
    ),
    level(
        Target::Pool,
        60,
        HISTORY_MINUTE_RETENTION_DAYS,
        Source::Minutes,
    ),
    level(
        Target::Pool,
        300,
        HISTORY_FIVE_MINUTE_RETENTION_DAYS,
        Source::Minutes,
    ),
    level(
        Target::Pool,
        3600,
        HISTORY_HOUR_RETENTION_DAYS,
        Source::Worker(3600),
    ),
    level(
        Target::Pool,
        21_600,
        HISTORY_SIX_HOUR_RETENTION_DAYS,
        Source::Worker(3600),
    ),
    level(
        Target::Pool,
        DAY_SECS,
        HISTORY_DAY_RETENTION_DAYS,
        Source::Worker(DAY_SECS),
    ),
];

const fn level(target: Target, secs: i64, retention_days: u64, source: Source) -> Level {
    Level {
        target,
        secs,
        retention_days,
        source,
    }
}

fn align(t: i64, secs: i64) -> i64 {
    t.div_euclid(secs) * secs
}

fn retention_secs(days: u64) -> i64 {
    i64::try_from(days).unwrap_or(i64::MAX / DAY_SECS) * DAY_SECS
}

/// Up to when `level` is rolled up (`None`: never yet).
pub fn mark(connection: &Connection, target: Target, secs: i64) -> rusqlite::Result<Option<i64>> {
    connection
        .prepare_cached(
            "SELECT done_until_unix_s FROM rollup_marks WHERE target = ?1 AND level_s = ?2",
        )?
        .query_row(params![target.as_str(), secs], |row| row.get(0))
        .optional()
}

/// Moves every mark back to the bucket holding `minute` (a minute is being written that may
/// already be rolled up). Runs inside the transaction that writes the minute.
pub fn lower_marks(connection: &Connection, minute: i64) -> rusqlite::Result<()> {
    connection
        .prepare_cached(
            "UPDATE rollup_marks SET done_until_unix_s = (?1 / level_s) * level_s
             WHERE done_until_unix_s > (?1 / level_s) * level_s",
        )?
        .execute([minute])?;
    Ok(())
}

/// One pass at `now`: each level computes the closed buckets after its mark, reading at most
/// `source_slots` slots of its source per worker (at least one bucket). Returns the buckets
/// computed (0: every level is caught up).
pub fn pass(
    connection: &mut Connection,
    now: i64,
    minutes_retention_secs: i64,
    source_slots: usize,
) -> rusqlite::Result<u64> {
    let closed = minute_start(now - HISTORY_ROLLUP_GRACE_SECS);
    let mut done = 0;
    for level in &LEVELS {
        let tx = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        let source_horizon = match level.source {
            Source::Minutes => now - minutes_retention_secs,
            Source::Worker(_) => now - retention_secs(HISTORY_HOUR_RETENTION_DAYS),
        };
        // Never recompute a bucket part of whose source retention already deleted.
        let horizon = (now - retention_secs(level.retention_days)).max(source_horizon);
        let horizon = align(horizon + level.secs - 1, level.secs);
        let from = mark(&tx, level.target, level.secs)?.map_or(horizon, |m| m.max(horizon));
        let mut until = align(closed, level.secs);
        if let Source::Worker(secs) = level.source {
            // Only what the source level has rolled up already.
            let source = mark(&tx, Target::Worker, secs)?.unwrap_or(i64::MIN);
            until = until.min(align(source, level.secs));
        }
        let source_secs = match level.source {
            Source::Minutes => 60,
            Source::Worker(secs) => secs,
        };
        let span = i64::try_from(source_slots)
            .unwrap_or(i64::MAX)
            .saturating_mul(source_secs);
        let span = align(span, level.secs).max(level.secs);
        let until = until.min(from.saturating_add(span));
        if until <= from {
            continue;
        }
        compute(&tx, level, from, until)?;
        tx.prepare_cached(
            "INSERT INTO rollup_marks (target, level_s, done_until_unix_s) VALUES (?1, ?2, ?3)
             ON CONFLICT (target, level_s)
             DO UPDATE SET done_until_unix_s = excluded.done_until_unix_s",
        )?
        .execute(params![level.target.as_str(), level.secs, until])?;
        tx.commit()?;
        done += u64::try_from((until - from) / level.secs).unwrap_or(0);
    }
    Ok(done)
}

/// The source rows of `level` in `[from, until)`, as a sub-select with columns
/// `worker_id, t, accepted_count, accepted_difficulty_sum, rejected_count, best_difficulty`.
fn source_sql(source: Source) -> String {
    match source {
        Source::Minutes => "SELECT worker_id, minute_start_unix_s AS t, accepted_count,
                 accepted_difficulty_sum, rejected_count, best_difficulty
             FROM share_minutes WHERE minute_start_unix_s >= ?2 AND minute_start_unix_s < ?3"
            .to_owned(),
        Source::Worker(secs) => format!(
            "SELECT worker_id, bucket_start_unix_s AS t, accepted_count, accepted_difficulty_sum,
                 rejected_count, best_difficulty
             FROM worker_rollups WHERE level_s = {secs}
                 AND bucket_start_unix_s >= ?2 AND bucket_start_unix_s < ?3"
        ),
    }
}

/// Replaces `level`'s rows in `[from, until)` by the sums of its source.
fn compute(connection: &Connection, level: &Level, from: i64, until: i64) -> rusqlite::Result<()> {
    let source = source_sql(level.source);
    let (delete, insert) = match level.target {
        Target::Worker => (
            "DELETE FROM worker_rollups WHERE level_s = ?1
                 AND bucket_start_unix_s >= ?2 AND bucket_start_unix_s < ?3",
            format!(
                "INSERT INTO worker_rollups (level_s, worker_id, bucket_start_unix_s,
                     accepted_count, accepted_difficulty_sum, rejected_count, best_difficulty)
                 SELECT ?1, worker_id, (t / ?1) * ?1 AS b, sum(accepted_count),
                     total(accepted_difficulty_sum), sum(rejected_count), max(best_difficulty)
                 FROM ({source}) GROUP BY worker_id, b"
            ),
        ),
        Target::Pool => (
            "DELETE FROM pool_rollups WHERE level_s = ?1
                 AND bucket_start_unix_s >= ?2 AND bucket_start_unix_s < ?3",
            format!(
                "INSERT INTO pool_rollups (level_s, bucket_start_unix_s, accepted_count,
                     accepted_difficulty_sum, rejected_count, best_difficulty, workers_online)
                 SELECT ?1, (t / ?1) * ?1 AS b, sum(accepted_count),
                     total(accepted_difficulty_sum), sum(rejected_count), max(best_difficulty),
                     count(DISTINCT CASE WHEN accepted_count > 0 THEN worker_id END)
                 FROM ({source}) GROUP BY b"
            ),
        ),
    };
    let bounds = params![level.secs, from, until];
    connection.prepare_cached(delete)?.execute(bounds)?;
    connection.prepare_cached(&insert)?.execute(bounds)?;
    Ok(())
}

/// Deletes every level's rows older than its retention at `now`.
pub fn retention(connection: &Connection, now: i64) -> rusqlite::Result<()> {
    for level in &LEVELS {
        let before = now - retention_secs(level.retention_days);
        let sql = match level.target {
            Target::Pool => {
                "DELETE FROM pool_rollups WHERE level_s = ?1 AND bucket_start_unix_s < ?2"
            }
            Target::Worker => {
                "DELETE FROM worker_rollups WHERE level_s = ?1 AND bucket_start_unix_s < ?2"
            }
        };
        connection
            .prepare_cached(sql)?
            .execute(params![level.secs, before])?;
    }
    Ok(())
}
