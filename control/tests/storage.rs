//! Storage tests on real SQLite files in a temporary directory.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::Connection;
use warppool_control::storage::{
    BlockRecord, BlockStatus, HashrateWindow, STORAGE_BATCH_MESSAGES_MAX, ShareRecord, Storage,
    StorageConfig, StorageError, StorageReader, schema,
};

#[path = "support/temp_dir.rs"]
mod temp_dir;
use temp_dir::TempDir;

fn now_unix_s() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64
}

fn share(worker: &str, time_unix_s: i64, difficulty: f64) -> ShareRecord<'_> {
    ShareRecord {
        worker,
        time_unix_s,
        difficulty,
        hash_difficulty: difficulty,
        reject: None,
    }
}

fn block(hash: &str, worker: &str, height: u32, found_unix_s: i64) -> BlockRecord {
    BlockRecord {
        height,
        hash: hash.to_owned(),
        worker: worker.to_owned(),
        payout_address: "bcrt1qpayout".to_owned(),
        extranonce1: Some("01000002".to_owned()),
        user_agent: Some("bitaxe/BM1370/v2.9.0".to_owned()),
        status: BlockStatus::Found,
        found_unix_s,
    }
}

fn table_names(path: &std::path::Path) -> Vec<String> {
    let connection = Connection::open(path).unwrap();
    let mut statement = connection
        .prepare("SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name")
        .unwrap();
    statement
        .query_map([], |row| row.get(0))
        .unwrap()
        .collect::<Result<_, _>>()
        .unwrap()
}

#[test]
fn migrates_an_empty_database_to_the_latest_version() {
    let dir = TempDir::new("empty");
    let storage = Storage::open(StorageConfig::new(dir.db())).unwrap();
    let mode = std::os::unix::fs::PermissionsExt::mode(&dir.db().metadata().unwrap().permissions());
    assert_eq!(
        mode & 0o777,
        0o600,
        "created owner-only: it will hold admin secrets"
    );
    assert_eq!(
        storage.reader().unwrap().schema_version().unwrap(),
        schema::SCHEMA_VERSION
    );
    storage.shutdown().unwrap();
    let tables = table_names(&dir.db());
    for table in [
        "admin_recovery_codes",
        "admin_sessions",
        "admins",
        "api_tokens",
        "audit_log",
        "block_submissions",
        "blocks",
        "events",
        "share_minute_rejects",
        "share_minutes",
        "workers",
    ] {
        assert!(
            tables.iter().any(|t| t == table),
            "{table} missing: {tables:?}"
        );
    }
    // Opening again is a no-op: the steps are not run twice.
    let storage = Storage::open(StorageConfig::new(dir.db())).unwrap();
    assert_eq!(
        storage.reader().unwrap().schema_version().unwrap(),
        schema::SCHEMA_VERSION
    );
    storage.shutdown().unwrap();
    let connection = Connection::open(dir.db()).unwrap();
    let mode: String = connection
        .pragma_query_value(None, "journal_mode", |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "wal");
}

#[test]
fn migrates_version_3_block_statuses_to_the_one_status_and_keeps_submissions() {
    let dir = TempDir::new("v3");
    {
        let connection = Connection::open(dir.db()).unwrap();
        for step in &schema::MIGRATIONS[..3] {
            connection.execute_batch(step.sql).unwrap();
        }
        connection.pragma_update(None, "user_version", 3).unwrap();
        connection
            .execute_batch(
                "PRAGMA foreign_keys = ON;
                 INSERT INTO workers (id, name, first_seen_unix_s, last_seen_unix_s)
                     VALUES (1, 'old.rig', 10, 20);
                 INSERT INTO blocks (id, height, hash, worker_id, payout_address, status,
                     found_unix_s, updated_unix_s)
                 VALUES (1, 101, '01', 1, 'bcrt1q', 'candidate', 1, 1),
                        (2, 102, '02', 1, 'bcrt1q', 'accepted', 1, 1),
                        (3, 103, '03', 1, 'bcrt1q', 'confirmed', 1, 1),
                        (4, 104, '04', 1, 'bcrt1q', 'orphaned', 1, 1);
                 INSERT INTO block_submissions (block_id, node, submitted_unix_s, result)
                     VALUES (2, 'a', 5, 'accepted'), (3, 'a', 6, 'duplicate');",
            )
            .unwrap();
    }
    let storage = Storage::open(StorageConfig::new(dir.db())).unwrap();
    let reader = storage.reader().unwrap();
    assert_eq!(reader.schema_version().unwrap(), schema::SCHEMA_VERSION);
    let statuses: Vec<_> = ["01", "02", "03", "04"]
        .iter()
        .map(|h| reader.block(h).unwrap().unwrap().status)
        .collect();
    assert_eq!(
        statuses,
        [
            BlockStatus::Found,
            BlockStatus::Submitted,
            BlockStatus::InChain,
            BlockStatus::Orphaned
        ]
    );
    assert_eq!(reader.block_submissions("02").unwrap().len(), 1);
    assert_eq!(reader.block_submissions("03").unwrap().len(), 1);
    storage
        .set_block_status("03", BlockStatus::Mature, 30)
        .unwrap();
    storage.flush().unwrap();
    assert_eq!(
        reader.block("03").unwrap().unwrap().status,
        BlockStatus::Mature
    );
}

// See: issue 9, defect 6 (difficulties stored before version 5 were keyed by username alone:
// after the family keys they matched no connection, or, kept plain, would let a NerdMiner
// inherit an S21's difficulty).
#[test]
fn pre_v5_stored_difficulties_are_rekeyed_by_the_device_family_last_seen() {
    let dir = TempDir::new("v4-difficulties");
    {
        let connection = Connection::open(dir.db()).unwrap();
        for step in &schema::MIGRATIONS[..4] {
            connection.execute_batch(step.sql).unwrap();
        }
        connection.pragma_update(None, "user_version", 4).unwrap();
        connection
            .execute_batch(
                "INSERT INTO workers (name, first_seen_unix_s, last_seen_unix_s, user_agent,
                     last_difficulty)
                 VALUES ('bc1q.s21', 10, 20, 'Antminer S21/Tue Nov 26 2024', 500000.0),
                        ('bc1q.axe', 10, 30, 'bitaxe/BM1370/v2.4.0', 2048.0),
                        ('bc1q.cpu', 10, 40, NULL, 1.0);",
            )
            .unwrap();
    }
    let storage = Storage::open(StorageConfig::new(dir.db())).unwrap();
    let reader = storage.reader().unwrap();
    assert_eq!(reader.schema_version().unwrap(), schema::SCHEMA_VERSION);
    assert_eq!(
        reader.last_difficulty("bc1q.s21#antminer").unwrap(),
        Some(500_000.0)
    );
    assert_eq!(
        reader.last_difficulty("bc1q.axe#bitaxe").unwrap(),
        Some(2048.0)
    );
    assert_eq!(reader.last_difficulty("bc1q.cpu#").unwrap(), Some(1.0));
    assert_eq!(
        reader.last_difficulty("bc1q.s21#nerdminerv2").unwrap(),
        None,
        "another device class under the S21's name inherits nothing"
    );
    let keys: Vec<String> = reader
        .last_difficulties(10)
        .unwrap()
        .into_iter()
        .map(|(k, _)| k)
        .collect();
    assert!(keys.iter().all(|k| k.contains('#')), "{keys:?}");
}

#[test]
fn migrates_a_version_1_database_and_keeps_its_rows() {
    let dir = TempDir::new("v1");
    {
        let connection = Connection::open(dir.db()).unwrap();
        connection.execute_batch(schema::MIGRATIONS[0].sql).unwrap();
        connection.pragma_update(None, "user_version", 1).unwrap();
        connection
            .execute(
                "INSERT INTO workers (name, first_seen_unix_s, last_seen_unix_s, last_difficulty,
                     best_difficulty) VALUES ('old.rig', 10, 20, 2048.0, 42.0)",
                [],
            )
            .unwrap();
    }
    assert!(!table_names(&dir.db()).iter().any(|t| t == "events"));
    let storage = Storage::open(StorageConfig::new(dir.db())).unwrap();
    let reader = storage.reader().unwrap();
    assert_eq!(reader.schema_version().unwrap(), schema::SCHEMA_VERSION);
    // No user agent known: the key of a device without one.
    assert_eq!(reader.last_difficulty("old.rig#").unwrap(), Some(2048.0));
    let best = reader.best_share("old.rig").unwrap().unwrap();
    assert_eq!(best.all_time, 42.0);
    assert_eq!(
        best.since_block, 42.0,
        "v2 starts the round best at the all-time best"
    );
    storage
        .record_event(30, "migrated", &serde_json::json!({"from": 1}))
        .unwrap();
    storage.flush().unwrap();
    assert_eq!(reader.latest_events(10).unwrap().len(), 1);
    storage.shutdown().unwrap();
}

#[test]
fn refuses_a_database_from_a_newer_version() {
    let dir = TempDir::new("newer");
    {
        let connection = Connection::open(dir.db()).unwrap();
        connection.pragma_update(None, "user_version", 99).unwrap();
    }
    let error = Storage::open(StorageConfig::new(dir.db())).unwrap_err();
    match &error {
        StorageError::SchemaTooNew { found, known } => {
            assert_eq!(*found, 99);
            assert_eq!(*known, schema::SCHEMA_VERSION);
        }
        other => panic!("unexpected error {other:?}"),
    }
    assert!(error.to_string().contains("newer"), "{error}");
    // The file is left untouched.
    let connection = Connection::open(dir.db()).unwrap();
    let version: u32 = connection
        .pragma_query_value(None, "user_version", |row| row.get(0))
        .unwrap();
    assert_eq!(version, 99);
    let mode: String = connection
        .pragma_query_value(None, "journal_mode", |row| row.get(0))
        .unwrap();
    assert_eq!(mode, "delete", "a refused file keeps its journal mode");
}

#[test]
fn many_messages_are_committed_in_few_transactions() {
    let dir = TempDir::new("batching");
    let storage = Storage::open(StorageConfig::new(dir.db())).unwrap();
    let messages = 3 * STORAGE_BATCH_MESSAGES_MAX;
    for i in 0..messages {
        storage
            .record_event(1_000 + i as i64, "test", &serde_json::json!({ "seq": i }))
            .unwrap();
    }
    // 10k shares fold into 10 worker-minute buckets and ride along with some batch.
    let workers: Vec<String> = (0..10).map(|i| format!("rig{i}")).collect();
    for i in 0..10_000 {
        assert!(storage.record_share(&share(&workers[i % 10], 1_700_000_000, 1.0)));
    }
    storage.flush().unwrap();
    let batches = storage.batches_committed();
    assert!(batches >= 3, "{batches} batches for {messages} messages");
    assert!(batches <= 5, "{batches} batches for {messages} messages");
    let reader = storage.reader().unwrap();
    let events = reader.latest_events(5).unwrap();
    assert_eq!(events[0].message["seq"], messages - 1);
    let minutes = reader.share_minutes("rig3", 0, i64::MAX).unwrap();
    assert_eq!(minutes.len(), 1);
    assert_eq!(minutes[0].accepted_count, 1000);
    assert_eq!(storage.dropped_messages(), 0);
    assert_eq!(storage.dropped_shares(), 0);
    storage.shutdown().unwrap();
}

#[test]
fn data_is_committed_within_the_flush_interval_without_an_explicit_flush() {
    let dir = TempDir::new("interval");
    let mut config = StorageConfig::new(dir.db());
    config.flush_interval = Duration::from_millis(100);
    let storage = Storage::open(config).unwrap();
    let reader = storage.reader().unwrap();
    storage.record_share(&share("rig", 1_700_000_000, 8.0));
    storage
        .set_last_difficulty("rig", 8.0, 1_700_000_000)
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(reader.last_difficulty("rig").unwrap(), Some(8.0));
    assert_eq!(reader.share_minutes("rig", 0, i64::MAX).unwrap().len(), 1);
    assert_eq!(storage.batches_committed(), 1);
    storage.shutdown().unwrap();
}

#[test]
fn hashrate_over_each_window_from_known_sums() {
    let dir = TempDir::new("hashrate");
    let storage = Storage::open(StorageConfig::new(dir.db())).unwrap();
    let minute = 1_700_000_040; // a minute boundary
    assert_eq!(minute % 60, 0);
    let now = minute + 30;
    // Worker a: 60 in the last complete minute, 240 four minutes back, 3000 fifty minutes back,
    // 7200 two hours back, and 1000 in the current (incomplete, excluded) minute.
    for (at, count, difficulty) in [
        (minute - 60, 30, 2.0),
        (minute - 240, 10, 24.0),
        (minute - 3000, 3, 1000.0),
        (minute - 7200, 1, 7200.0),
        (minute, 1, 1000.0),
        (minute - 2 * 86_400, 1, 1e9), // outside every window
    ] {
        for _ in 0..count {
            storage.record_share(&share("a", at + 5, difficulty));
        }
    }
    // Rejected shares are not hashrate.
    storage.record_share(&ShareRecord {
        reject: Some("stale"),
        ..share("a", minute - 50, 1e6)
    });
    for _ in 0..4 {
        storage.record_share(&share("b", minute - 59, 30.0));
    }
    storage.flush().unwrap();
    let reader = storage.reader().unwrap();
    let two_32 = 4_294_967_296.0;
    let rate = |worker, window| reader.hashrate(worker, window, now).unwrap();
    assert_eq!(
        rate(Some("a"), HashrateWindow::OneMinute),
        60.0 * two_32 / 60.0
    );
    assert_eq!(
        rate(Some("a"), HashrateWindow::FiveMinutes),
        300.0 * two_32 / 300.0
    );
    assert_eq!(
        rate(Some("a"), HashrateWindow::OneHour),
        3300.0 * two_32 / 3600.0
    );
    assert_eq!(
        rate(Some("a"), HashrateWindow::OneDay),
        10_500.0 * two_32 / 86_400.0
    );
    assert_eq!(
        rate(Some("b"), HashrateWindow::OneMinute),
        120.0 * two_32 / 60.0
    );
    assert_eq!(rate(None, HashrateWindow::OneMinute), 180.0 * two_32 / 60.0);
    assert_eq!(
        rate(None, HashrateWindow::OneDay),
        10_620.0 * two_32 / 86_400.0
    );
    assert_eq!(rate(Some("nobody"), HashrateWindow::OneHour), 0.0);
    // The same shares, one minute later: the current minute's 1000 becomes the last minute.
    let later = reader
        .hashrate(Some("a"), HashrateWindow::OneMinute, now + 60)
        .unwrap();
    assert_eq!(later, 1000.0 * two_32 / 60.0);
    let minutes = reader.share_minutes("a", minute - 60, minute).unwrap();
    assert_eq!(minutes.len(), 1);
    assert_eq!(minutes[0].accepted_count, 30);
    assert_eq!(minutes[0].accepted_difficulty_sum, 60.0);
    assert_eq!(minutes[0].rejected_count, 1);
    assert_eq!(minutes[0].rejects, vec![("stale".to_owned(), 1)]);
    storage.shutdown().unwrap();
}

#[test]
fn rejects_are_counted_by_reason_across_flushes() {
    let dir = TempDir::new("rejects");
    let storage = Storage::open(StorageConfig::new(dir.db())).unwrap();
    let at = 1_700_000_040;
    for (reason, count) in [("stale", 3), ("duplicate", 2), ("low_difficulty", 1)] {
        for _ in 0..count {
            storage.record_share(&ShareRecord {
                reject: Some(reason),
                ..share("r", at, 16.0)
            });
        }
    }
    storage.record_share(&share("r", at + 1, 16.0));
    storage.flush().unwrap();
    // The same minute again, in a second batch: counts add up.
    storage.record_share(&ShareRecord {
        reject: Some("stale"),
        ..share("r", at + 2, 16.0)
    });
    storage.record_share(&share("r", at + 3, 16.0));
    storage.flush().unwrap();
    let minutes = storage
        .reader()
        .unwrap()
        .share_minutes("r", 0, i64::MAX)
        .unwrap();
    assert_eq!(minutes.len(), 1);
    assert_eq!(minutes[0].accepted_count, 2);
    assert_eq!(minutes[0].accepted_difficulty_sum, 32.0);
    assert_eq!(minutes[0].rejected_count, 7);
    assert_eq!(
        minutes[0].rejects,
        vec![
            ("duplicate".to_owned(), 2),
            ("low_difficulty".to_owned(), 1),
            ("stale".to_owned(), 4)
        ]
    );
    storage.shutdown().unwrap();
}

#[test]
fn best_share_all_time_and_since_the_last_block() {
    let dir = TempDir::new("best");
    let storage = Storage::open(StorageConfig::new(dir.db())).unwrap();
    let at = 1_700_000_000;
    for hash_difficulty in [100.0, 5000.0, 300.0] {
        storage.record_share(&ShareRecord {
            hash_difficulty,
            ..share("w", at, 64.0)
        });
    }
    storage.record_share(&ShareRecord {
        hash_difficulty: 900.0,
        ..share("other", at, 64.0)
    });
    // A rejected share never counts as best, however lucky.
    storage.record_share(&ShareRecord {
        hash_difficulty: 1e12,
        reject: Some("stale"),
        ..share("w", at, 64.0)
    });
    storage.flush().unwrap();
    let reader = storage.reader().unwrap();
    let best = reader.best_share("w").unwrap().unwrap();
    assert_eq!((best.all_time, best.since_block), (5000.0, 5000.0));

    storage
        .record_block(block("00aa", "w", 100, at + 10))
        .unwrap();
    storage.flush().unwrap();
    let best = reader.best_share("w").unwrap().unwrap();
    assert_eq!((best.all_time, best.since_block), (5000.0, 0.0));
    // A block starts a new round for every worker, not only its finder.
    let other = reader.best_share("other").unwrap().unwrap();
    assert_eq!((other.all_time, other.since_block), (900.0, 0.0));

    storage.record_share(&ShareRecord {
        hash_difficulty: 700.0,
        ..share("w", at + 20, 64.0)
    });
    storage.flush().unwrap();
    let best = reader.best_share("w").unwrap().unwrap();
    assert_eq!((best.all_time, best.since_block), (5000.0, 700.0));
    // Recording the same block again does not start another round.
    storage
        .record_block(block("00aa", "w", 100, at + 30))
        .unwrap();
    storage.flush().unwrap();
    assert_eq!(reader.best_share("w").unwrap().unwrap().since_block, 700.0);
    assert_eq!(reader.best_share("nobody").unwrap(), None);
    storage.shutdown().unwrap();
}

#[test]
fn blocks_and_their_submission_history() {
    let dir = TempDir::new("blocks");
    let storage = Storage::open(StorageConfig::new(dir.db())).unwrap();
    storage
        .record_block(block("00bb", "finder", 800_000, 1_000))
        .unwrap();
    storage
        .set_block_status("00bb", BlockStatus::Submitted, 1_001)
        .unwrap();
    storage
        .record_block_submission("00bb", "node-a", 1_001, "inconclusive")
        .unwrap();
    storage
        .record_block_submission("00bb", "node-b", 1_002, "null")
        .unwrap();
    storage
        .set_block_status("00bb", BlockStatus::InChain, 1_003)
        .unwrap();
    storage
        .record_block(block("00cc", "finder", 800_001, 2_000))
        .unwrap();
    // Unknown hashes are ignored.
    storage
        .record_block_submission("ffff", "node-a", 1, "x")
        .unwrap();
    storage.flush().unwrap();
    let reader = storage.reader().unwrap();
    let row = reader.block("00bb").unwrap().unwrap();
    assert_eq!(row.height, 800_000);
    assert_eq!(row.worker, "finder");
    assert_eq!(row.payout_address, "bcrt1qpayout");
    assert_eq!(row.extranonce1.as_deref(), Some("01000002"));
    assert_eq!(row.user_agent.as_deref(), Some("bitaxe/BM1370/v2.9.0"));
    assert_eq!(row.status, BlockStatus::InChain);
    assert_eq!((row.found_unix_s, row.updated_unix_s), (1_000, 1_003));
    let submissions = reader.block_submissions("00bb").unwrap();
    let nodes: Vec<_> = submissions
        .iter()
        .map(|s| (s.node.as_str(), s.result.as_str()))
        .collect();
    assert_eq!(nodes, [("node-a", "inconclusive"), ("node-b", "null")]);
    let latest: Vec<_> = reader
        .blocks(10)
        .unwrap()
        .into_iter()
        .map(|b| b.hash)
        .collect();
    assert_eq!(latest, ["00cc", "00bb"]);
    assert!(reader.block_submissions("ffff").unwrap().is_empty());
    assert_eq!(reader.block("ffff").unwrap(), None);
    storage.shutdown().unwrap();
}

#[test]
fn latest_events_newest_first() {
    let dir = TempDir::new("events");
    let storage = Storage::open(StorageConfig::new(dir.db())).unwrap();
    for i in 0..20 {
        storage
            .record_event(
                100 + i,
                "tick",
                &serde_json::json!({ "i": i, "text": "a\"b" }),
            )
            .unwrap();
    }
    storage.flush().unwrap();
    let events = storage.reader().unwrap().latest_events(3).unwrap();
    let seen: Vec<_> = events
        .iter()
        .map(|e| e.message["i"].as_i64().unwrap())
        .collect();
    assert_eq!(seen, [19, 18, 17]);
    assert_eq!(events[0].kind, "tick");
    assert_eq!(events[0].time_unix_s, 119);
    assert_eq!(events[0].message["text"], "a\"b");
    storage.shutdown().unwrap();
}

#[test]
fn retention_deletes_old_minutes_and_events_only() {
    let dir = TempDir::new("retention");
    let storage = Storage::open(StorageConfig::new(dir.db())).unwrap();
    let now = now_unix_s();
    let day = 86_400;
    storage.record_share(&ShareRecord {
        reject: Some("stale"),
        ..share("w", now - 40 * day, 1.0)
    });
    storage.record_share(&share("w", now - 40 * day, 1.0));
    storage.record_share(&share("w", now - day, 2.0));
    storage
        .record_event(now - 100 * day, "old", &serde_json::json!(1))
        .unwrap();
    storage
        .record_event(now - day, "new", &serde_json::json!(2))
        .unwrap();
    storage
        .set_last_difficulty("w", 512.0, now - 40 * day)
        .unwrap();
    storage.flush().unwrap();
    let reader = storage.reader().unwrap();
    assert_eq!(reader.share_minutes("w", 0, i64::MAX).unwrap().len(), 2);
    storage.run_retention(now).unwrap();
    let minutes = reader.share_minutes("w", 0, i64::MAX).unwrap();
    assert_eq!(minutes.len(), 1);
    assert_eq!(minutes[0].accepted_difficulty_sum, 2.0);
    let events = reader.latest_events(10).unwrap();
    assert_eq!(events.len(), 1);
    assert_eq!(events[0].kind, "new");
    // Workers, their difficulty and best share outlive their statistics.
    assert_eq!(reader.last_difficulty("w").unwrap(), Some(512.0));
    storage.shutdown().unwrap();
    // The reject rows went with their minute (foreign key cascade).
    let connection = Connection::open(dir.db()).unwrap();
    let rejects: i64 = connection
        .query_row("SELECT count(*) FROM share_minute_rejects", [], |row| {
            row.get(0)
        })
        .unwrap();
    assert_eq!(rejects, 0);
}

#[test]
fn retention_age_is_configurable() {
    let dir = TempDir::new("retention-config");
    let mut config = StorageConfig::new(dir.db());
    config.share_minutes_retention = Duration::from_secs(3600);
    let storage = Storage::open(config).unwrap();
    let now = now_unix_s();
    storage.record_share(&share("w", now - 7200, 1.0));
    storage.record_share(&share("w", now - 60, 1.0));
    storage.run_retention(now).unwrap();
    assert_eq!(
        storage
            .reader()
            .unwrap()
            .share_minutes("w", 0, i64::MAX)
            .unwrap()
            .len(),
        1
    );
    storage.shutdown().unwrap();
}

#[test]
fn vardiff_difficulty_survives_a_restart() {
    let dir = TempDir::new("vardiff");
    let storage = Storage::open(StorageConfig::new(dir.db())).unwrap();
    storage
        .worker_seen("bc1q.rig", Some("bitaxe/2.4"), 1_000)
        .unwrap();
    storage
        .set_last_difficulty("bc1q.rig", 4096.0, 1_001)
        .unwrap();
    storage
        .set_last_difficulty("bc1q.rig", 8192.0, 1_002)
        .unwrap();
    storage.worker_seen("bc1q.rig", None, 1_003).unwrap();
    storage.shutdown().unwrap();

    let storage = Storage::open(StorageConfig::new(dir.db())).unwrap();
    let reader = storage.reader().unwrap();
    assert_eq!(reader.last_difficulty("bc1q.rig").unwrap(), Some(8192.0));
    assert_eq!(reader.last_difficulty("unknown").unwrap(), None);
    // The start-up load: every stored difficulty, most recently seen first, bounded.
    storage
        .set_last_difficulty("bc1q.other", 64.0, 1_003)
        .unwrap();
    storage.flush().unwrap();
    assert_eq!(
        reader.last_difficulties(10).unwrap(),
        [
            ("bc1q.other".to_owned(), 64.0),
            ("bc1q.rig".to_owned(), 8192.0)
        ]
    );
    assert_eq!(reader.last_difficulties(1).unwrap().len(), 1);
    let worker = reader.worker("bc1q.rig").unwrap().unwrap();
    assert_eq!(worker.first_seen_unix_s, 1_000);
    assert_eq!(worker.last_seen_unix_s, 1_003);
    assert_eq!(worker.user_agent.as_deref(), Some("bitaxe/2.4"));
    // A worker only authorized has no difficulty yet.
    storage.worker_seen("new.rig", None, 2_000).unwrap();
    storage.flush().unwrap();
    assert_eq!(reader.last_difficulty("new.rig").unwrap(), None);
    drop(storage); // Drop flushes and joins too.
    let reader = StorageReader::open(&dir.db()).unwrap();
    assert!(reader.worker("new.rig").unwrap().is_some());
}

#[test]
fn shares_beyond_the_bucket_limit_are_dropped_and_counted() {
    let dir = TempDir::new("bucket-limit");
    let mut config = StorageConfig::new(dir.db());
    config.share_buckets_max = 2;
    let storage = Storage::open(config).unwrap();
    assert!(storage.record_share(&share("a", 60, 1.0)));
    assert!(storage.record_share(&share("b", 60, 1.0)));
    assert!(
        !storage.record_share(&share("c", 60, 1.0)),
        "a third bucket is refused"
    );
    assert!(
        !storage.record_share(&share("a", 120, 1.0)),
        "a new minute is a new bucket"
    );
    assert!(
        storage.record_share(&share("a", 61, 1.0)),
        "an existing bucket still grows"
    );
    assert_eq!(storage.dropped_shares(), 2);
    storage.flush().unwrap();
    assert!(
        storage.record_share(&share("c", 60, 1.0)),
        "the flush emptied the buckets"
    );
    storage.flush().unwrap();
    let reader = storage.reader().unwrap();
    assert_eq!(
        reader.share_minutes("a", 0, i64::MAX).unwrap()[0].accepted_count,
        2
    );
    assert_eq!(
        reader.share_minutes("c", 0, i64::MAX).unwrap()[0].accepted_count,
        1
    );
    storage.shutdown().unwrap();
}

#[test]
fn a_full_channel_drops_events_but_not_blocks() {
    let dir = TempDir::new("full");
    let mut config = StorageConfig::new(dir.db());
    config.channel_capacity = 4;
    config.batch_messages_max = 4;
    config.block_send_timeout = Duration::from_secs(10);
    let storage = Storage::open(config).unwrap();
    let mut dropped = 0;
    let mut blocks = 0;
    for i in 0..2_000 {
        if i % 100 == 0 {
            storage
                .record_block(block(&format!("{i:064x}"), "w", i as u32, i as i64))
                .unwrap();
            blocks += 1;
        }
        match storage.record_event(i as i64, "flood", &serde_json::json!(i)) {
            Ok(()) => {}
            Err(StorageError::ChannelFull { what }) => {
                assert_eq!(what, "event");
                dropped += 1;
            }
            Err(other) => panic!("{other:?}"),
        }
    }
    storage.flush().unwrap();
    assert!(dropped > 0, "the channel never filled up");
    assert_eq!(storage.dropped_messages(), dropped);
    assert_eq!(
        storage.reader().unwrap().blocks(1000).unwrap().len(),
        blocks
    );
    storage.shutdown().unwrap();
}

#[test]
fn readers_read_while_the_writer_writes() {
    let dir = TempDir::new("concurrent");
    let mut config = StorageConfig::new(dir.db());
    config.flush_interval = Duration::from_millis(5);
    let storage = Storage::open(config).unwrap();
    let path = dir.db();
    let reader_thread = std::thread::spawn(move || {
        let reader = StorageReader::open(&path).unwrap();
        let mut last = 0;
        for _ in 0..200 {
            let events = reader.latest_events(1).unwrap();
            let seen = events.first().map_or(0, |e| e.message.as_i64().unwrap());
            assert!(seen >= last, "reads go back in time: {seen} < {last}");
            last = seen;
            std::thread::sleep(Duration::from_millis(1));
        }
    });
    for i in 1..=2_000 {
        while storage
            .record_event(i, "seq", &serde_json::json!(i))
            .is_err()
        {
            std::thread::sleep(Duration::from_millis(1));
        }
    }
    reader_thread.join().unwrap();
    storage.shutdown().unwrap();
}

#[test]
fn the_handle_can_be_shared_between_threads_and_readers_moved() {
    fn shared<T: Send + Sync>() {}
    fn moved<T: Send>() {}
    shared::<Storage>();
    moved::<StorageReader>();
}
