//! Read-only queries on their own connection.

use std::path::Path;
use std::time::Duration;

use rusqlite::{Connection, OpenFlags, OptionalExtension, Row, params};

use super::aggregate::{MINUTE_SECS, minute_start};
use super::{BlockStatus, EVENTS_QUERY_MAX, STORAGE_BUSY_TIMEOUT_MS, StorageError};

/// A hashrate averaging window, made of whole minutes.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HashrateWindow {
    /// The last complete minute.
    OneMinute,
    /// The last 5 complete minutes.
    FiveMinutes,
    /// The last 60 complete minutes.
    OneHour,
    /// The last 1440 complete minutes.
    OneDay,
}

impl HashrateWindow {
    /// The window's length in seconds.
    pub const fn secs(self) -> i64 {
        match self {
            Self::OneMinute => 60,
            Self::FiveMinutes => 5 * 60,
            Self::OneHour => 60 * 60,
            Self::OneDay => 24 * 60 * 60,
        }
    }
}

/// One worker as stored.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkerRow {
    /// Worker name.
    pub name: String,
    /// First time seen, Unix seconds.
    pub first_seen_unix_s: i64,
    /// Last time seen (authorize, difficulty change or share), Unix seconds.
    pub last_seen_unix_s: i64,
    /// Last user agent reported.
    pub user_agent: Option<String>,
    /// Last difficulty set by vardiff.
    pub last_difficulty: Option<f64>,
}

/// A worker's best accepted share difficulties.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BestShare {
    /// Best ever (0 if no share yet).
    pub all_time: f64,
    /// Best since the pool's last found block (0 right after one).
    pub since_block: f64,
}

/// One worker's shares in one minute.
#[derive(Debug, Clone, PartialEq)]
pub struct ShareMinute {
    /// The minute, as Unix seconds of its first second.
    pub minute_start_unix_s: i64,
    /// Accepted shares.
    pub accepted_count: u64,
    /// Sum of the assigned difficulty of the accepted shares.
    pub accepted_difficulty_sum: f64,
    /// Rejected shares, all reasons.
    pub rejected_count: u64,
    /// Rejected shares by reason label, sorted by label.
    pub rejects: Vec<(String, u64)>,
    /// Best accepted share difficulty in the minute.
    pub best_difficulty: f64,
}

/// A recorded block.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockRow {
    /// Block height.
    pub height: u32,
    /// Block hash.
    pub hash: String,
    /// Worker that found it.
    pub worker: String,
    /// Coinbase payout address.
    pub payout_address: String,
    /// Current status.
    pub status: BlockStatus,
    /// When found, Unix seconds.
    pub found_unix_s: i64,
    /// When the status last changed, Unix seconds.
    pub updated_unix_s: i64,
    /// The finding connection's extranonce1, hex (`None` for blocks recorded without it).
    pub extranonce1: Option<String>,
    /// The finding connection's user agent, if known.
    pub user_agent: Option<String>,
}

/// One submission attempt of a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockSubmissionRow {
    /// Node name.
    pub node: String,
    /// When submitted, Unix seconds.
    pub submitted_unix_s: i64,
    /// The node's answer.
    pub result: String,
}

/// One event.
#[derive(Debug, Clone, PartialEq)]
pub struct EventRow {
    /// Sequence number (insertion order).
    pub id: i64,
    /// When, Unix seconds.
    pub time_unix_s: i64,
    /// Kind, e.g. `block_found`.
    pub kind: String,
    /// The JSON payload.
    pub message: serde_json::Value,
}

/// A read-only connection. Any number may be open while the writer writes (WAL).
#[derive(Debug)]
pub struct StorageReader {
    pub(super) connection: Connection,
}

pub(super) fn to_u64(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

/// An [`EventRow`] from `SELECT id, time_unix_s, kind, message FROM events`.
pub(super) fn event_row(row: &Row<'_>) -> rusqlite::Result<EventRow> {
    let text: String = row.get(3)?;
    let message = serde_json::from_str(&text).map_err(|error| {
        rusqlite::Error::FromSqlConversionFailure(3, rusqlite::types::Type::Text, Box::new(error))
    })?;
    Ok(EventRow {
        id: row.get(0)?,
        time_unix_s: row.get(1)?,
        kind: row.get(2)?,
        message,
    })
}

fn block_row(row: &Row<'_>) -> rusqlite::Result<BlockRow> {
    let status: String = row.get(4)?;
    let status = BlockStatus::from_stored(&status).ok_or_else(|| {
        rusqlite::Error::FromSqlConversionFailure(
            4,
            rusqlite::types::Type::Text,
            format!("unknown block status {status:?}").into(),
        )
    })?;
    Ok(BlockRow {
        height: row.get(0)?,
        hash: row.get(1)?,
        worker: row.get(2)?,
        payout_address: row.get(3)?,
        status,
        found_unix_s: row.get(5)?,
        updated_unix_s: row.get(6)?,
        extranonce1: row.get(7)?,
        user_agent: row.get(8)?,
    })
}

const BLOCK_COLUMNS: &str = "SELECT b.height, b.hash, w.name, b.payout_address, b.status,
    b.found_unix_s, b.updated_unix_s, b.finder_extranonce1, b.finder_user_agent
    FROM blocks b JOIN workers w ON w.id = b.worker_id";

impl StorageReader {
    /// Opens `path` read-only. The file must exist and have been opened by [`super::Storage`]
    /// (which creates and migrates it).
    ///
    /// # Errors
    /// [`StorageError::Sqlite`] if it cannot be opened.
    pub fn open(path: &Path) -> Result<Self, StorageError> {
        let flags = OpenFlags::SQLITE_OPEN_READ_ONLY | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let connection = Connection::open_with_flags(path, flags)?;
        connection.busy_timeout(Duration::from_millis(STORAGE_BUSY_TIMEOUT_MS))?;
        Ok(Self { connection })
    }

    /// The schema version of the file.
    ///
    /// # Errors
    /// [`StorageError::Sqlite`].
    pub fn schema_version(&self) -> Result<u32, StorageError> {
        super::schema::version(&self.connection)
    }

    /// The last stored difficulty under `key` (`address.worker#family` as the data plane keys
    /// it, or any key given to `Storage::set_last_difficulty`), for vardiff to resume from.
    ///
    /// # Errors
    /// [`StorageError::Sqlite`].
    pub fn last_difficulty(&self, key: &str) -> Result<Option<f64>, StorageError> {
        let difficulty = self
            .connection
            .prepare_cached("SELECT difficulty FROM worker_difficulties WHERE key = ?1")?
            .query_row([key], |row| row.get::<_, f64>(0))
            .optional()?;
        Ok(difficulty)
    }

    /// Every stored difficulty (by key), most recently updated first, at most `limit` rows
    /// (vardiff persistence: loaded once at start for the data plane's lookup).
    ///
    /// # Errors
    /// [`StorageError::Sqlite`].
    pub fn last_difficulties(&self, limit: usize) -> Result<Vec<(String, f64)>, StorageError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .connection
            .prepare_cached(
                "SELECT key, difficulty FROM worker_difficulties
                 ORDER BY updated_unix_s DESC, key LIMIT ?1",
            )?
            .query_map([limit], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// One worker, if known.
    ///
    /// # Errors
    /// [`StorageError::Sqlite`].
    pub fn worker(&self, name: &str) -> Result<Option<WorkerRow>, StorageError> {
        let row = self
            .connection
            .prepare_cached(
                "SELECT name, first_seen_unix_s, last_seen_unix_s, user_agent, last_difficulty
                 FROM workers WHERE name = ?1",
            )?
            .query_row([name], |row| {
                Ok(WorkerRow {
                    name: row.get(0)?,
                    first_seen_unix_s: row.get(1)?,
                    last_seen_unix_s: row.get(2)?,
                    user_agent: row.get(3)?,
                    last_difficulty: row.get(4)?,
                })
            })
            .optional()?;
        Ok(row)
    }

    /// Average hashrate in hashes per second over the window's complete minutes before the
    /// minute holding `now_unix_s` (that minute is still filling): `sum(difficulty) * 2^32 /
    /// window seconds`. `worker = None` gives the pool's.
    ///
    /// # Errors
    /// [`StorageError::Sqlite`].
    pub fn hashrate(
        &self,
        worker: Option<&str>,
        window: HashrateWindow,
        now_unix_s: i64,
    ) -> Result<f64, StorageError> {
        let end = minute_start(now_unix_s);
        let start = end - window.secs();
        debug_assert_eq!(window.secs() % MINUTE_SECS, 0);
        let sum: f64 = match worker {
            Some(worker) => self
                .connection
                .prepare_cached(
                    "SELECT total(m.accepted_difficulty_sum) FROM share_minutes m
                     JOIN workers w ON w.id = m.worker_id
                     WHERE w.name = ?1 AND m.minute_start_unix_s >= ?2
                         AND m.minute_start_unix_s < ?3",
                )?
                .query_row(params![worker, start, end], |row| row.get(0))?,
            None => self
                .connection
                .prepare_cached(
                    "SELECT total(accepted_difficulty_sum) FROM share_minutes
                     WHERE minute_start_unix_s >= ?1 AND minute_start_unix_s < ?2",
                )?
                .query_row(params![start, end], |row| row.get(0))?,
        };
        let hashrate = hashrate_from_sum(sum, window.secs());
        assert!(hashrate >= 0.0);
        Ok(hashrate)
    }

    /// The worker's best accepted share, all time and since the pool's last block.
    ///
    /// # Errors
    /// [`StorageError::Sqlite`].
    pub fn best_share(&self, worker: &str) -> Result<Option<BestShare>, StorageError> {
        let best = self
            .connection
            .prepare_cached(
                "SELECT best_difficulty, best_difficulty_since_block FROM workers WHERE name = ?1",
            )?
            .query_row([worker], |row| {
                Ok(BestShare {
                    all_time: row.get(0)?,
                    since_block: row.get(1)?,
                })
            })
            .optional()?;
        if let Some(best) = best {
            assert!(best.since_block <= best.all_time);
        }
        Ok(best)
    }

    /// The worker's per-minute rows with `from_unix_s <= minute_start < to_unix_s`, oldest first.
    ///
    /// # Errors
    /// [`StorageError::Sqlite`].
    pub fn share_minutes(
        &self,
        worker: &str,
        from_unix_s: i64,
        to_unix_s: i64,
    ) -> Result<Vec<ShareMinute>, StorageError> {
        let mut statement = self.connection.prepare_cached(
            "SELECT m.minute_start_unix_s, m.accepted_count, m.accepted_difficulty_sum,
                 m.rejected_count, m.best_difficulty, m.worker_id
             FROM share_minutes m JOIN workers w ON w.id = m.worker_id
             WHERE w.name = ?1 AND m.minute_start_unix_s >= ?2 AND m.minute_start_unix_s < ?3
             ORDER BY m.minute_start_unix_s",
        )?;
        let rows = statement.query_map(params![worker, from_unix_s, to_unix_s], |row| {
            let minute = ShareMinute {
                minute_start_unix_s: row.get(0)?,
                accepted_count: to_u64(row.get(1)?),
                accepted_difficulty_sum: row.get(2)?,
                rejected_count: to_u64(row.get(3)?),
                rejects: Vec::new(),
                best_difficulty: row.get(4)?,
            };
            Ok((minute, row.get::<_, i64>(5)?))
        })?;
        let mut out = Vec::new();
        let mut rejects = self.connection.prepare_cached(
            "SELECT reason, rejected_count FROM share_minute_rejects
             WHERE worker_id = ?1 AND minute_start_unix_s = ?2 ORDER BY reason",
        )?;
        for row in rows {
            let (mut minute, worker_id) = row?;
            let reasons = rejects
                .query_map(params![worker_id, minute.minute_start_unix_s], |r| {
                    Ok((r.get::<_, String>(0)?, to_u64(r.get(1)?)))
                })?;
            minute.rejects = reasons.collect::<rusqlite::Result<_>>()?;
            out.push(minute);
        }
        Ok(out)
    }

    /// One block by hash.
    ///
    /// # Errors
    /// [`StorageError::Sqlite`].
    pub fn block(&self, hash: &str) -> Result<Option<BlockRow>, StorageError> {
        let sql = format!("{BLOCK_COLUMNS} WHERE b.hash = ?1");
        let row = self
            .connection
            .prepare_cached(&sql)?
            .query_row([hash], block_row)
            .optional()?;
        Ok(row)
    }

    /// The latest `limit` blocks, newest first.
    ///
    /// # Errors
    /// [`StorageError::Sqlite`].
    pub fn blocks(&self, limit: usize) -> Result<Vec<BlockRow>, StorageError> {
        let sql = format!("{BLOCK_COLUMNS} ORDER BY b.found_unix_s DESC, b.id DESC LIMIT ?1");
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .connection
            .prepare_cached(&sql)?
            .query_map([limit], block_row)?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// Every submission attempt of a block, oldest first.
    ///
    /// # Errors
    /// [`StorageError::Sqlite`].
    pub fn block_submissions(&self, hash: &str) -> Result<Vec<BlockSubmissionRow>, StorageError> {
        let rows = self
            .connection
            .prepare_cached(
                "SELECT s.node, s.submitted_unix_s, s.result FROM block_submissions s
                 JOIN blocks b ON b.id = s.block_id WHERE b.hash = ?1
                 ORDER BY s.submitted_unix_s, s.id",
            )?
            .query_map([hash], |row| {
                Ok(BlockSubmissionRow {
                    node: row.get(0)?,
                    submitted_unix_s: row.get(1)?,
                    result: row.get(2)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// The latest `count` events (at most [`EVENTS_QUERY_MAX`]), newest first.
    ///
    /// # Errors
    /// [`StorageError::Sqlite`].
    pub fn latest_events(&self, count: usize) -> Result<Vec<EventRow>, StorageError> {
        let count = i64::try_from(count.min(EVENTS_QUERY_MAX)).unwrap_or(0);
        let rows = self
            .connection
            .prepare_cached(
                "SELECT id, time_unix_s, kind, message FROM events ORDER BY id DESC LIMIT ?1",
            )?
            .query_map([count], event_row)?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }
}

/// Which best shares to list.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum BestScope {
    /// Ever.
    AllTime,
    /// Since the pool's last found block.
    Round,
    /// In the last 24 hours.
    Day,
}

/// One best share: who, how good, and when if still known.
#[derive(Debug, Clone, PartialEq)]
pub struct BestShareRow {
    /// `address[.worker]`.
    pub worker: String,
    /// The share's difficulty.
    pub difficulty: f64,
    /// The start of the minute it was found in, while that minute is still stored.
    pub minute_unix_s: Option<i64>,
    /// The worker's last user agent.
    pub user_agent: Option<String>,
}

impl StorageReader {
    /// How many blocks were recorded.
    ///
    /// # Errors
    /// [`StorageError::Sqlite`].
    pub fn block_count(&self) -> Result<u64, StorageError> {
        let n: i64 = self
            .connection
            .prepare_cached("SELECT count(*) FROM blocks")?
            .query_row([], |row| row.get(0))?;
        Ok(to_u64(n))
    }

    /// The best `limit` workers' best shares in `scope`, best first (`now_unix_s` places the
    /// day).
    ///
    /// # Errors
    /// [`StorageError::Sqlite`].
    pub fn best_shares(
        &self,
        scope: BestScope,
        limit: usize,
        now_unix_s: i64,
    ) -> Result<Vec<BestShareRow>, StorageError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let sql = match scope {
            BestScope::AllTime | BestScope::Round => {
                let column = if scope == BestScope::AllTime {
                    "best_difficulty"
                } else {
                    "best_difficulty_since_block"
                };
                format!(
                    "SELECT w.name, w.{column},
                         (SELECT max(m.minute_start_unix_s) FROM share_minutes m
                          WHERE m.worker_id = w.id AND m.best_difficulty = w.{column}),
                         w.user_agent
                     FROM workers w WHERE w.{column} > 0 AND ?2 >= 0
                     ORDER BY w.{column} DESC, w.name LIMIT ?1"
                )
            }
            BestScope::Day => "SELECT w.name, max(m.best_difficulty), max(m.minute_start_unix_s),
                     w.user_agent
                 FROM share_minutes m JOIN workers w ON w.id = m.worker_id
                 WHERE m.minute_start_unix_s >= ?2 - 86400 AND m.best_difficulty > 0
                 GROUP BY w.id ORDER BY 2 DESC, w.name LIMIT ?1"
                .to_owned(),
        };
        let rows = self
            .connection
            .prepare_cached(&sql)?
            .query_map(params![limit, now_unix_s], |row| {
                Ok(BestShareRow {
                    worker: row.get(0)?,
                    difficulty: row.get(1)?,
                    minute_unix_s: row.get(2)?,
                    user_agent: row.get(3)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }

    /// Every stored worker's best share ever, by name (at most `limit`, best first): what the
    /// live table starts from.
    ///
    /// # Errors
    /// [`StorageError::Sqlite`].
    pub fn best_all_time(&self, limit: usize) -> Result<Vec<(String, f64)>, StorageError> {
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let rows = self
            .connection
            .prepare_cached(
                "SELECT name, best_difficulty FROM workers WHERE best_difficulty > 0
                 ORDER BY best_difficulty DESC LIMIT ?1",
            )?
            .query_map([limit], |row| Ok((row.get(0)?, row.get(1)?)))?
            .collect::<rusqlite::Result<_>>()?;
        Ok(rows)
    }
}

/// `sum(difficulty) * 2^32 / seconds`: each unit of difficulty is 2^32 hashes on average.
pub(super) fn hashrate_from_sum(difficulty_sum: f64, seconds: i64) -> f64 {
    assert!(seconds > 0);
    const HASHES_PER_DIFFICULTY: f64 = 4_294_967_296.0;
    difficulty_sum * HASHES_PER_DIFFICULTY / seconds as f64
}
