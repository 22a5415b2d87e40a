//! Read queries of the history (rollups), worker events and sessions.

use rusqlite::{OptionalExtension, Row, params};

use super::reader::to_u64;
use super::rollup::{self, Target};
use super::{EventRow, StorageError, StorageReader};

/// The shares of one history bucket.
#[derive(Debug, Clone, PartialEq)]
pub struct HistoryRow {
    /// The bucket's first second, Unix seconds.
    pub start_unix_s: i64,
    /// Accepted shares.
    pub accepted_count: u64,
    /// Sum of the accepted shares' assigned difficulties.
    pub accepted_difficulty_sum: f64,
    /// Rejected shares.
    pub rejected_count: u64,
    /// Best accepted share difficulty.
    pub best_difficulty: f64,
    /// Distinct workers with an accepted share in the bucket (pool history only).
    pub workers_online: Option<u64>,
}

/// One connection session of a worker.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionRow {
    /// Its id (newest highest).
    pub id: i64,
    /// The worker name.
    pub worker: String,
    /// When it authorized, Unix seconds.
    pub started_unix_s: i64,
    /// When it closed (`None`: open).
    pub ended_unix_s: Option<i64>,
    /// Why it closed (`close_reason_label`, `pool_stopped`, `reauthorized`).
    pub end_reason: Option<String>,
    /// The subscribe user agent.
    pub user_agent: Option<String>,
    /// The peer's IP.
    pub ip: String,
    /// The listener's port.
    pub local_port: u16,
    /// Whether it was TLS.
    pub tls: bool,
}

fn history_row(row: &Row<'_>, pool: bool) -> rusqlite::Result<HistoryRow> {
    Ok(HistoryRow {
        start_unix_s: row.get(0)?,
        accepted_count: to_u64(row.get(1)?),
        accepted_difficulty_sum: row.get(2)?,
        rejected_count: to_u64(row.get(3)?),
        best_difficulty: row.get(4)?,
        workers_online: if pool {
            Some(to_u64(row.get(5)?))
        } else {
            None
        },
    })
}

fn session_row(row: &Row<'_>) -> rusqlite::Result<SessionRow> {
    Ok(SessionRow {
        id: row.get(0)?,
        worker: row.get(1)?,
        started_unix_s: row.get(2)?,
        ended_unix_s: row.get(3)?,
        end_reason: row.get(4)?,
        user_agent: row.get(5)?,
        ip: row.get(6)?,
        local_port: row.get(7)?,
        tls: row.get(8)?,
    })
}

const SESSION_COLUMNS: &str = "s.id, w.name, s.started_unix_s, s.ended_unix_s, s.end_reason,
    s.user_agent, s.ip, s.local_port, s.tls";

impl StorageReader {
    /// The pool's rows of rollup level `level_s` with `from <= start < until`, oldest first.
    ///
    /// # Errors
    /// [`StorageError::Sqlite`].
    pub fn pool_history(
        &self,
        level_s: i64,
        from: i64,
        until: i64,
    ) -> Result<Vec<HistoryRow>, StorageError> {
        let rows = self
            .connection
            .prepare_cached(
                "SELECT bucket_start_unix_s, accepted_count, accepted_difficulty_sum,
                     rejected_count, best_difficulty, workers_online
                 FROM pool_rollups WHERE level_s = ?1
                     AND bucket_start_unix_s >= ?2 AND bucket_start_unix_s < ?3
                 ORDER BY bucket_start_unix_s",
            )?
            .query_map(params![level_s, from, until], |row| history_row(row, true))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// A worker's history in buckets of `step_s` with `from <= start < until`, oldest first,
    /// summed from `level_s` (60: `share_minutes`; 3600 or 86400: its rollups). `step_s` is a
    /// multiple of `level_s`.
    ///
    /// # Errors
    /// [`StorageError::Sqlite`].
    pub fn worker_history(
        &self,
        worker: &str,
        level_s: i64,
        step_s: i64,
        from: i64,
        until: i64,
    ) -> Result<Vec<HistoryRow>, StorageError> {
        assert!(step_s > 0 && step_s % level_s == 0);
        let sql = if level_s == 60 {
            "SELECT (m.minute_start_unix_s / ?2) * ?2 AS b, sum(m.accepted_count),
                 total(m.accepted_difficulty_sum), sum(m.rejected_count), max(m.best_difficulty)
             FROM share_minutes m JOIN workers w ON w.id = m.worker_id
             WHERE w.name = ?1 AND ?5 = 60
                 AND m.minute_start_unix_s >= ?3 AND m.minute_start_unix_s < ?4
             GROUP BY b ORDER BY b"
        } else {
            "SELECT (r.bucket_start_unix_s / ?2) * ?2 AS b, sum(r.accepted_count),
                 total(r.accepted_difficulty_sum), sum(r.rejected_count), max(r.best_difficulty)
             FROM worker_rollups r JOIN workers w ON w.id = r.worker_id
             WHERE w.name = ?1 AND r.level_s = ?5
                 AND r.bucket_start_unix_s >= ?3 AND r.bucket_start_unix_s < ?4
             GROUP BY b ORDER BY b"
        };
        let rows = self
            .connection
            .prepare_cached(sql)?
            .query_map(params![worker, step_s, from, until, level_s], |row| {
                history_row(row, false)
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// Up to when the pool's (`pool = true`) or the workers' rollup level `level_s` is rolled
    /// up (`None`: not yet).
    ///
    /// # Errors
    /// [`StorageError::Sqlite`].
    pub fn rollup_mark(&self, pool: bool, level_s: i64) -> Result<Option<i64>, StorageError> {
        let target = if pool { Target::Pool } else { Target::Worker };
        Ok(rollup::mark(&self.connection, target, level_s)?)
    }

    /// The name of the stored worker whose API id is `public_id`.
    ///
    /// # Errors
    /// [`StorageError::Sqlite`].
    pub fn worker_name(&self, public_id: &str) -> Result<Option<String>, StorageError> {
        let name = self
            .connection
            .prepare_cached("SELECT name FROM workers WHERE public_id = ?1")?
            .query_row([public_id], |row| row.get(0))
            .optional()?;
        Ok(name)
    }

    /// The events about `worker` with an id below `before` (all if `None`), newest first, at
    /// most `limit`.
    ///
    /// # Errors
    /// [`StorageError::Sqlite`].
    pub fn worker_events(
        &self,
        worker: &str,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<EventRow>, StorageError> {
        let limit = i64::try_from(limit.min(super::EVENTS_QUERY_MAX)).unwrap_or(0);
        let rows = self
            .connection
            .prepare_cached(
                "SELECT id, time_unix_s, kind, message FROM events
                 WHERE worker = ?1 AND id < ?2 ORDER BY id DESC LIMIT ?3",
            )?
            .query_map(
                params![worker, before.unwrap_or(i64::MAX), limit],
                super::reader::event_row,
            )?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// The sessions of `worker` with an id below `before` (all if `None`), newest first, at
    /// most `limit`.
    ///
    /// # Errors
    /// [`StorageError::Sqlite`].
    pub fn worker_sessions(
        &self,
        worker: &str,
        before: Option<i64>,
        limit: usize,
    ) -> Result<Vec<SessionRow>, StorageError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM worker_sessions s JOIN workers w ON w.id = s.worker_id
             WHERE w.name = ?1 AND s.id < ?2 ORDER BY s.id DESC LIMIT ?3"
        );
        let rows = self
            .connection
            .prepare_cached(&sql)?
            .query_map(
                params![worker, before.unwrap_or(i64::MAX), limit],
                session_row,
            )?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// The newest session from `ip` (any worker).
    ///
    /// # Errors
    /// [`StorageError::Sqlite`].
    pub fn last_session_from(&self, ip: &str) -> Result<Option<SessionRow>, StorageError> {
        let sql = format!(
            "SELECT {SESSION_COLUMNS} FROM worker_sessions s JOIN workers w ON w.id = s.worker_id
             WHERE s.ip = ?1 ORDER BY s.id DESC LIMIT 1"
        );
        let row = self
            .connection
            .prepare_cached(&sql)?
            .query_row([ip], session_row)
            .optional()?;
        Ok(row)
    }
}
