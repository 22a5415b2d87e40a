//! Limits of the stored history (decision 0016): how long each rollup level is kept and how
//! the writer rolls up. Re-exported by `limits`.

use super::STORAGE_FLUSH_INTERVAL_MS;

/// Days the pool's 1-minute history is kept (answers `range=1h` of the pool history; two days
/// leave room for a day of downtime before the rollup catches up).
pub const HISTORY_MINUTE_RETENTION_DAYS: u64 = 2;

/// Days the pool's 5-minute history is kept (answers `range=24h`).
pub const HISTORY_FIVE_MINUTE_RETENTION_DAYS: u64 = 2;

/// Days the hourly history (pool and per worker) is kept: `range=7d` reads it, and the
/// per-worker `range=30d` and the 6-hour and daily rollups are made from it.
pub const HISTORY_HOUR_RETENTION_DAYS: u64 = 32;

/// Days the pool's 6-hour history is kept (answers `range=30d`).
pub const HISTORY_SIX_HOUR_RETENTION_DAYS: u64 = 32;

/// Days the daily history (pool and per worker) is kept (answers `range=1y`).
pub const HISTORY_DAY_RETENTION_DAYS: u64 = 400;

/// Seconds after a minute ends before the rollup treats it as closed: longer than a flush
/// interval, so the minute's last shares are committed before it is rolled up.
pub const HISTORY_ROLLUP_GRACE_SECS: i64 = 5;

/// How much source one rollup level reads in one pass of the writer, in source slots per
/// worker: 60 minutes of `share_minutes` for the levels made from minutes, 60 hours of the
/// hourly rollup for those made from it (600,000 rows at 10,000 workers), and always at least
/// one bucket. A backlog after downtime or an upgrade is caught up over several passes, one
/// `HISTORY_ROLLUP_INTERVAL_MS` apart, instead of in one long transaction.
pub const HISTORY_ROLLUP_SOURCE_SLOTS_PER_PASS: usize = 60;

/// How often the writer runs a rollup pass, in milliseconds.
pub const HISTORY_ROLLUP_INTERVAL_MS: u64 = 1000;

/// Days a worker's ended connection sessions are kept.
pub const WORKER_SESSIONS_RETENTION_DAYS: u64 = 90;

const _: () = assert!(HISTORY_MINUTE_RETENTION_DAYS >= 1);
const _: () = assert!(HISTORY_FIVE_MINUTE_RETENTION_DAYS >= 1);
const _: () = assert!(HISTORY_HOUR_RETENTION_DAYS >= 31);
const _: () = assert!(HISTORY_SIX_HOUR_RETENTION_DAYS >= 31);
const _: () = assert!(HISTORY_DAY_RETENTION_DAYS >= 366);
const _: () = assert!(HISTORY_ROLLUP_GRACE_SECS * 1000 > STORAGE_FLUSH_INTERVAL_MS as i64);
const _: () = assert!(HISTORY_ROLLUP_SOURCE_SLOTS_PER_PASS > 0);
const _: () = assert!(HISTORY_ROLLUP_INTERVAL_MS > 0);
const _: () = assert!(WORKER_SESSIONS_RETENTION_DAYS >= 1);
