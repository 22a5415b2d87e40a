//! Schema migrations, tracked in `PRAGMA user_version`.
//!
//! `MIGRATIONS[i]` takes a database from version `i` to version `i + 1`: its SQL, then its Rust
//! part if it has one (for what SQL cannot say). Each step runs in its own transaction together
//! with the `user_version` bump, so a crash leaves the file at one version or the next, and
//! opening the file again resumes where it stopped. Steps are never edited once released: a
//! change is a new step appended at the end.

use rusqlite::{Connection, Transaction, TransactionBehavior};
use warppool_core::plane::UserAgentFamily;

use super::StorageError;

/// Version 1: workers, per-minute share statistics, blocks and their submissions.
const V1: &str = "
CREATE TABLE IF NOT EXISTS workers (
    id INTEGER PRIMARY KEY,
    name TEXT NOT NULL UNIQUE,
    first_seen_unix_s INTEGER NOT NULL,
    last_seen_unix_s INTEGER NOT NULL,
    user_agent TEXT,
    last_difficulty REAL,
    best_difficulty REAL NOT NULL DEFAULT 0
);
CREATE TABLE IF NOT EXISTS share_minutes (
    worker_id INTEGER NOT NULL REFERENCES workers(id) ON DELETE CASCADE,
    minute_start_unix_s INTEGER NOT NULL,
    accepted_count INTEGER NOT NULL,
    accepted_difficulty_sum REAL NOT NULL,
    rejected_count INTEGER NOT NULL,
    best_difficulty REAL NOT NULL,
    PRIMARY KEY (worker_id, minute_start_unix_s)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS share_minute_rejects (
    worker_id INTEGER NOT NULL,
    minute_start_unix_s INTEGER NOT NULL,
    reason TEXT NOT NULL,
    rejected_count INTEGER NOT NULL,
    PRIMARY KEY (worker_id, minute_start_unix_s, reason),
    FOREIGN KEY (worker_id, minute_start_unix_s)
        REFERENCES share_minutes(worker_id, minute_start_unix_s) ON DELETE CASCADE
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS blocks (
    id INTEGER PRIMARY KEY,
    height INTEGER NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    worker_id INTEGER NOT NULL REFERENCES workers(id),
    payout_address TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN
        ('candidate', 'submitted', 'accepted', 'rejected', 'confirmed', 'orphaned')),
    found_unix_s INTEGER NOT NULL,
    updated_unix_s INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS block_submissions (
    id INTEGER PRIMARY KEY,
    block_id INTEGER NOT NULL REFERENCES blocks(id) ON DELETE CASCADE,
    node TEXT NOT NULL,
    submitted_unix_s INTEGER NOT NULL,
    result TEXT NOT NULL
);
CREATE INDEX IF NOT EXISTS block_submissions_block ON block_submissions(block_id);
";

/// Version 2: the event log, the per-round best share, and the index that pool-wide hashrate
/// and retention scan.
const V2: &str = "
CREATE TABLE IF NOT EXISTS events (
    id INTEGER PRIMARY KEY,
    time_unix_s INTEGER NOT NULL,
    kind TEXT NOT NULL,
    message TEXT NOT NULL CHECK (json_valid(message))
);
CREATE INDEX IF NOT EXISTS events_time ON events(time_unix_s);
CREATE INDEX IF NOT EXISTS share_minutes_minute ON share_minutes(minute_start_unix_s);
ALTER TABLE workers ADD COLUMN best_difficulty_since_block REAL NOT NULL DEFAULT 0;
UPDATE workers SET best_difficulty_since_block = best_difficulty;
";

/// Version 3: the exact finder of a block (the finding connection's extranonce1 and user
/// agent; its worker is `blocks.worker_id`). `NULL` for blocks recorded before.
const V3: &str = "
ALTER TABLE blocks ADD COLUMN finder_extranonce1 TEXT;
ALTER TABLE blocks ADD COLUMN finder_user_agent TEXT;
";

/// Version 4: the one block status of the product (`found`, `submitted`, `in_chain`,
/// `mature`, `orphaned`, `rejected`; see `block_status.rs`). SQLite cannot change a `CHECK`,
/// so `blocks` and its child `block_submissions` are rebuilt: the children first into a table
/// that references the new parent, so dropping the old tables cascades into nothing, then the
/// new tables take the old names (the rename rewrites the child's reference).
const V4: &str = "
CREATE TABLE blocks_v4 (
    id INTEGER PRIMARY KEY,
    height INTEGER NOT NULL,
    hash TEXT NOT NULL UNIQUE,
    worker_id INTEGER NOT NULL REFERENCES workers(id),
    payout_address TEXT NOT NULL,
    status TEXT NOT NULL CHECK (status IN
        ('found', 'submitted', 'in_chain', 'mature', 'orphaned', 'rejected')),
    found_unix_s INTEGER NOT NULL,
    updated_unix_s INTEGER NOT NULL,
    finder_extranonce1 TEXT,
    finder_user_agent TEXT
);
INSERT INTO blocks_v4 SELECT id, height, hash, worker_id, payout_address,
    CASE status WHEN 'candidate' THEN 'found' WHEN 'accepted' THEN 'submitted'
        WHEN 'confirmed' THEN 'in_chain' ELSE status END,
    found_unix_s, updated_unix_s, finder_extranonce1, finder_user_agent FROM blocks;
CREATE TABLE block_submissions_v4 (
    id INTEGER PRIMARY KEY,
    block_id INTEGER NOT NULL REFERENCES blocks_v4(id) ON DELETE CASCADE,
    node TEXT NOT NULL,
    submitted_unix_s INTEGER NOT NULL,
    result TEXT NOT NULL
);
INSERT INTO block_submissions_v4 SELECT id, block_id, node, submitted_unix_s, result
    FROM block_submissions;
DROP TABLE block_submissions;
DROP TABLE blocks;
ALTER TABLE blocks_v4 RENAME TO blocks;
ALTER TABLE block_submissions_v4 RENAME TO block_submissions;
CREATE INDEX IF NOT EXISTS block_submissions_block ON block_submissions(block_id);
";

/// Version 5: stored vardiff difficulties keyed by worker *and device family*
/// (`address.worker#family`, warppool-net's `UserAgentFamily::key`), so a NerdMiner and an S21
/// under one username do not inherit each other's difficulty. Values stored before are copied
/// under the plain name; version 6 gives them their family. No worker rows are created for
/// keys.
const V5: &str = "
CREATE TABLE IF NOT EXISTS worker_difficulties (
    key TEXT PRIMARY KEY,
    difficulty REAL NOT NULL CHECK (difficulty > 0),
    updated_unix_s INTEGER NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS worker_difficulties_updated ON worker_difficulties(updated_unix_s);
INSERT OR IGNORE INTO worker_difficulties (key, difficulty, updated_unix_s)
    SELECT name, last_difficulty, last_seen_unix_s FROM workers WHERE last_difficulty > 0;
";

/// Version 6: the difficulties version 5 copied under a plain username (no `#`) move to the
/// key of the device family that name was last seen with (`workers.user_agent`): the device
/// that learned the difficulty finds it again, and a device of another class under the same
/// name does not inherit it. A name whose family key already has a value keeps that (newer)
/// one. See [`rekey_plain_difficulties`].
const V6: &str = "";

/// Version 7: admin authentication (`auth`). Admins (argon2id PHC password hash, TOTP secret
/// and the last TOTP step accepted, so a code is never accepted twice), their server-side
/// sessions and API tokens (each stored as the SHA-256 of its secret), one-time recovery codes
/// (hashed), and the append-only audit log (triggers refuse updates and deletes).
const V7: &str = "
CREATE TABLE IF NOT EXISTS admins (
    id INTEGER PRIMARY KEY,
    username TEXT NOT NULL UNIQUE,
    password_hash TEXT NOT NULL,
    totp_secret BLOB NOT NULL,
    totp_last_step INTEGER NOT NULL DEFAULT -1,
    totp_pending_secret BLOB,
    created_unix_s INTEGER NOT NULL,
    updated_unix_s INTEGER NOT NULL
);
CREATE TABLE IF NOT EXISTS admin_sessions (
    id INTEGER PRIMARY KEY,
    admin_id INTEGER NOT NULL REFERENCES admins(id) ON DELETE CASCADE,
    secret_hash BLOB NOT NULL UNIQUE,
    user_agent TEXT,
    ip TEXT,
    created_unix_s INTEGER NOT NULL,
    last_seen_unix_s INTEGER NOT NULL,
    step_up_unix_s INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS admin_sessions_admin ON admin_sessions(admin_id);
CREATE TABLE IF NOT EXISTS api_tokens (
    id INTEGER PRIMARY KEY,
    admin_id INTEGER NOT NULL REFERENCES admins(id) ON DELETE CASCADE,
    name TEXT NOT NULL,
    scope TEXT NOT NULL CHECK (scope IN ('read', 'metrics', 'admin')),
    secret_hash BLOB NOT NULL UNIQUE,
    hint TEXT NOT NULL,
    created_unix_s INTEGER NOT NULL,
    last_used_unix_s INTEGER
);
CREATE TABLE IF NOT EXISTS admin_recovery_codes (
    id INTEGER PRIMARY KEY,
    admin_id INTEGER NOT NULL REFERENCES admins(id) ON DELETE CASCADE,
    code_hash BLOB NOT NULL,
    used_unix_s INTEGER,
    UNIQUE (admin_id, code_hash)
);
CREATE TABLE IF NOT EXISTS audit_log (
    id INTEGER PRIMARY KEY,
    time_unix_s INTEGER NOT NULL,
    actor TEXT NOT NULL,
    action TEXT NOT NULL,
    target TEXT,
    before TEXT CHECK (before IS NULL OR json_valid(before)),
    after TEXT CHECK (after IS NULL OR json_valid(after)),
    ip TEXT,
    outcome TEXT NOT NULL CHECK (outcome IN ('ok', 'denied'))
);
CREATE TRIGGER IF NOT EXISTS audit_log_no_update BEFORE UPDATE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
CREATE TRIGGER IF NOT EXISTS audit_log_no_delete BEFORE DELETE ON audit_log
BEGIN SELECT RAISE(ABORT, 'audit_log is append-only'); END;
";

/// Version 8: history rollups (decision 0016). `worker_rollups` holds per-worker hourly
/// (`level_s = 3600`) and daily (`86400`) sums of `share_minutes`; `pool_rollups` the pool's
/// 1-minute, 5-minute, hourly, 6-hour and daily sums with `workers_online` (distinct workers
/// with an accepted share in the bucket). `rollup_marks` says, per table and level, up to when
/// buckets are rolled up: the writer advances it in the transaction that writes the buckets.
/// Events get the worker they are about (`worker`, indexed) for a worker's timeline, filled
/// from their JSON; workers get their API id (`public_id`, see `api::v1::worker_id`).
const V8: &str = "
CREATE TABLE IF NOT EXISTS worker_rollups (
    level_s INTEGER NOT NULL,
    worker_id INTEGER NOT NULL REFERENCES workers(id) ON DELETE CASCADE,
    bucket_start_unix_s INTEGER NOT NULL,
    accepted_count INTEGER NOT NULL,
    accepted_difficulty_sum REAL NOT NULL,
    rejected_count INTEGER NOT NULL,
    best_difficulty REAL NOT NULL,
    PRIMARY KEY (level_s, worker_id, bucket_start_unix_s)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS worker_rollups_bucket
    ON worker_rollups(level_s, bucket_start_unix_s);
CREATE TABLE IF NOT EXISTS pool_rollups (
    level_s INTEGER NOT NULL,
    bucket_start_unix_s INTEGER NOT NULL,
    accepted_count INTEGER NOT NULL,
    accepted_difficulty_sum REAL NOT NULL,
    rejected_count INTEGER NOT NULL,
    best_difficulty REAL NOT NULL,
    workers_online INTEGER NOT NULL,
    PRIMARY KEY (level_s, bucket_start_unix_s)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS rollup_marks (
    target TEXT NOT NULL CHECK (target IN ('pool', 'worker')),
    level_s INTEGER NOT NULL,
    done_until_unix_s INTEGER NOT NULL,
    PRIMARY KEY (target, level_s)
) WITHOUT ROWID;
ALTER TABLE events ADD COLUMN worker TEXT;
UPDATE events SET worker = json_extract(message, '$.worker')
    WHERE json_type(message, '$.worker') = 'text';
CREATE INDEX IF NOT EXISTS events_worker ON events(worker, id);
ALTER TABLE workers ADD COLUMN public_id TEXT;
";

/// Version 9: a worker's connection sessions (start, end, why it ended, user agent, peer,
/// listener port, TLS), from the data plane's `Authorized` and `Closed` events. An open
/// session has no end; sessions a stopped pool left open are closed at the next start.
const V9: &str = "
CREATE TABLE IF NOT EXISTS worker_sessions (
    id INTEGER PRIMARY KEY,
    worker_id INTEGER NOT NULL REFERENCES workers(id) ON DELETE CASCADE,
    connection INTEGER NOT NULL,
    started_unix_s INTEGER NOT NULL,
    ended_unix_s INTEGER,
    end_reason TEXT,
    user_agent TEXT,
    ip TEXT NOT NULL,
    peer_port INTEGER NOT NULL,
    local_port INTEGER NOT NULL,
    tls INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS worker_sessions_worker ON worker_sessions(worker_id, id);
CREATE INDEX IF NOT EXISTS worker_sessions_ip ON worker_sessions(ip, id);
CREATE INDEX IF NOT EXISTS worker_sessions_open ON worker_sessions(connection)
    WHERE ended_unix_s IS NULL;
CREATE INDEX IF NOT EXISTS worker_sessions_ended ON worker_sessions(ended_unix_s);
";

/// Version 10: configuration overrides set through the admin API (`PUT /api/v1/admin/config`),
/// applied over the file at every start (decision 0017). `value` is JSON text; `null` unsets
/// the key.
const CONFIG_OVERRIDES: &str = "
CREATE TABLE IF NOT EXISTS config_overrides (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated_unix_s INTEGER NOT NULL,
    actor TEXT NOT NULL
);
";

/// Version 11: address bans of the admin API (`control/src/bans.rs`): a network
/// (`addr/prefix`, host bits cleared), the operator's reason, who banned and when, and an
/// optional end (exclusive, Unix seconds). Loaded at start and enforced at accept; expired
/// rows are pruned.
const BANS: &str = "
CREATE TABLE IF NOT EXISTS bans (
    id INTEGER PRIMARY KEY,
    network TEXT NOT NULL,
    reason TEXT NOT NULL,
    created_by TEXT NOT NULL,
    created_unix_s INTEGER NOT NULL,
    until_unix_s INTEGER
);
CREATE INDEX IF NOT EXISTS bans_network ON bans(network);
";

/// One migration step: SQL, then an optional Rust part in the same transaction.
#[derive(Debug, Clone, Copy)]
pub struct Step {
    /// Run first (may be empty).
    pub sql: &'static str,
    /// Run after the SQL.
    pub then: Option<fn(&Transaction<'_>) -> rusqlite::Result<()>>,
}

const fn sql(sql: &'static str) -> Step {
    Step { sql, then: None }
}

/// The ordered migration steps; `MIGRATIONS[i]` upgrades version `i` to `i + 1`.
pub const MIGRATIONS: &[Step] = &[
    sql(V1),
    sql(V2),
    sql(V3),
    sql(V4),
    sql(V5),
    Step {
        sql: V6,
        then: Some(rekey_plain_difficulties),
    },
    sql(V7),
    Step {
        sql: V8,
        then: Some(fill_public_ids),
    },
    sql(V9),
    sql(CONFIG_OVERRIDES),
    sql(BANS),
];

/// Version 8's Rust part: every stored worker gets its API id.
fn fill_public_ids(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    let names: Vec<(i64, String)> = tx
        .prepare("SELECT id, name FROM workers WHERE public_id IS NULL")?
        .query_map([], |row| Ok((row.get(0)?, row.get(1)?)))?
        .collect::<rusqlite::Result<_>>()?;
    let mut update = tx.prepare("UPDATE workers SET public_id = ?2 WHERE id = ?1")?;
    for (id, name) in &names {
        update.execute(rusqlite::params![id, crate::api::v1::worker_id(name)])?;
    }
    tx.execute_batch("CREATE UNIQUE INDEX IF NOT EXISTS workers_public_id ON workers(public_id)")?;
    Ok(())
}

/// Version 6's Rust part (see [`V6`]): every key without `#` becomes
/// `UserAgentFamily::key` of the family of the worker's last user agent.
fn rekey_plain_difficulties(tx: &Transaction<'_>) -> rusqlite::Result<()> {
    let plain: Vec<(String, f64, i64, Option<String>)> = tx
        .prepare(
            "SELECT d.key, d.difficulty, d.updated_unix_s, w.user_agent
             FROM worker_difficulties d LEFT JOIN workers w ON w.name = d.key
             WHERE instr(d.key, '#') = 0",
        )?
        .query_map([], |row| {
            Ok((row.get(0)?, row.get(1)?, row.get(2)?, row.get(3)?))
        })?
        .collect::<rusqlite::Result<_>>()?;
    for (name, difficulty, updated, agent) in &plain {
        let key = UserAgentFamily::from_user_agent(agent.as_deref()).key(name);
        tx.execute(
            "INSERT OR IGNORE INTO worker_difficulties (key, difficulty, updated_unix_s)
             VALUES (?1, ?2, ?3)",
            rusqlite::params![key, difficulty, updated],
        )?;
        tx.execute("DELETE FROM worker_difficulties WHERE key = ?1", [name])?;
    }
    if !plain.is_empty() {
        tracing::info!(
            workers = plain.len(),
            "stored difficulties keyed by the device family each worker was last seen with"
        );
    }
    Ok(())
}

/// The schema version this build writes: the number of migration steps.
pub const SCHEMA_VERSION: u32 = MIGRATIONS.len() as u32;

const _: () = assert!(SCHEMA_VERSION >= 1);

/// Reads `PRAGMA user_version`.
pub(super) fn version(connection: &Connection) -> Result<u32, StorageError> {
    let version: u32 = connection.pragma_query_value(None, "user_version", |row| row.get(0))?;
    Ok(version)
}

/// Reads the version and refuses a file newer than this build.
///
/// # Errors
/// [`StorageError::SchemaTooNew`], or [`StorageError::Sqlite`] if the file cannot be read.
pub(crate) fn check_version(connection: &Connection) -> Result<u32, StorageError> {
    let found = version(connection)?;
    if found > SCHEMA_VERSION {
        return Err(StorageError::SchemaTooNew {
            found,
            known: SCHEMA_VERSION,
        });
    }
    Ok(found)
}

/// Brings the database up to [`SCHEMA_VERSION`], one step per transaction.
///
/// # Errors
/// [`StorageError::SchemaTooNew`] if the file is newer than this build;
/// [`StorageError::Sqlite`] if a step fails (that step is rolled back).
pub(crate) fn migrate(connection: &mut Connection) -> Result<u32, StorageError> {
    let found = check_version(connection)?;
    for (index, step) in MIGRATIONS.iter().enumerate().skip(found as usize) {
        let next = index as u32 + 1;
        let transaction = connection.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // Re-read inside the write transaction: another process may have migrated meanwhile.
        if version(&transaction)? >= next {
            continue;
        }
        transaction.execute_batch(step.sql)?;
        if let Some(then) = step.then {
            then(&transaction)?;
        }
        transaction.pragma_update(None, "user_version", next)?;
        transaction.commit()?;
    }
    let after = version(connection)?;
    assert_eq!(after, SCHEMA_VERSION);
    Ok(after)
}
