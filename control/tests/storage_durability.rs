//! Crash tests: a child process (this test binary, re-executed) writes through the storage API
//! and is killed with SIGKILL; the parent reopens the file and checks what survived.
//!
//! The child is selected with `--exact child_process_writer` and told what to do through
//! environment variables; run normally, that test returns at once.

use std::io::{BufRead, BufReader};
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rusqlite::Connection;
use warppool_control::storage::{
    BlockRecord, BlockStatus, ShareRecord, Storage, StorageConfig, StorageError,
};

const DB_ENV: &str = "WARPPOOL_STORAGE_CHILD_DB";
const MODE_ENV: &str = "WARPPOOL_STORAGE_CHILD_MODE";
const READY: &str = "STORAGE-CHILD-READY";
const FLUSH_INTERVAL: Duration = Duration::from_millis(200);

/// A minute one hour back: recent enough that the retention run at every open keeps it.
fn recent_minute() -> i64 {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    now / 60 * 60 - 3600
}

#[path = "support/temp_dir.rs"]
mod temp_dir;
use temp_dir::TempDir;

fn config(path: PathBuf) -> StorageConfig {
    let mut config = StorageConfig::new(path);
    config.flush_interval = FLUSH_INTERVAL;
    config.batch_messages_max = 64;
    config
}

fn ready() {
    println!("\n{READY}");
}

/// The child's entry point. Never returns in child mode: it is killed.
#[test]
fn child_process_writer() {
    let Some(path) = std::env::var_os(DB_ENV) else {
        return;
    };
    let mode = std::env::var(MODE_ENV).unwrap();
    let storage = Storage::open(config(PathBuf::from(path))).unwrap();
    match mode.as_str() {
        "kill-after-flush" => child_kill_after_flush(&storage),
        "flood" => child_flood(&storage),
        other => panic!("unknown mode {other}"),
    }
}

/// Writes a known set, waits two flush intervals, says so, then keeps writing until killed.
fn child_kill_after_flush(storage: &Storage) -> ! {
    let minute = recent_minute();
    for i in 0..50 {
        assert!(storage.record_share(&ShareRecord {
            worker: "durable.rig",
            time_unix_s: minute + i % 60,
            difficulty: 2.0,
            hash_difficulty: 2.0 + i as f64,
            reject: None,
        }));
    }
    storage.record_share(&ShareRecord {
        worker: "durable.rig",
        time_unix_s: minute,
        difficulty: 2.0,
        hash_difficulty: 0.5,
        reject: Some("stale"),
    });
    storage
        .set_last_difficulty("durable.rig", 2048.0, minute)
        .unwrap();
    storage
        .record_event(minute, "block_found", &serde_json::json!({"height": 101}))
        .unwrap();
    storage
        .record_block(BlockRecord {
            height: 101,
            hash: "00".repeat(32),
            worker: "durable.rig".to_owned(),
            payout_address: "bcrt1qpayout".to_owned(),
            extranonce1: None,
            user_agent: None,
            status: BlockStatus::Found,
            found_unix_s: minute,
        })
        .unwrap();
    storage
        .record_block_submission(&"00".repeat(32), "node-a", minute, "null")
        .unwrap();
    std::thread::sleep(2 * FLUSH_INTERVAL);
    ready();
    // Keep the writer busy with data that may or may not survive.
    let mut time = minute + 600;
    loop {
        storage.record_share(&ShareRecord {
            worker: "late.rig",
            time_unix_s: time,
            difficulty: 1.0,
            hash_difficulty: 1.0,
            reject: None,
        });
        let _ = storage.record_event(time, "late", &serde_json::json!(time));
        time += 1;
        std::thread::sleep(Duration::from_micros(200));
    }
}

/// Writes without pause: events numbered in order, and shares for many workers with rejects,
/// so that a kill lands in the middle of a batch.
fn child_flood(storage: &Storage) -> ! {
    let minute = recent_minute() - 86_400;
    let reader = storage.reader().unwrap();
    let mut seq = reader.latest_events(1).unwrap().first().map_or(0, |e| e.id);
    let workers: Vec<String> = (0..200).map(|i| format!("flood.{i}")).collect();
    ready();
    let mut round = 0_u64;
    loop {
        for _ in 0..32 {
            let next = seq + 1;
            match storage.record_event(minute, "seq", &serde_json::json!({ "seq": next })) {
                Ok(()) => seq = next,
                Err(StorageError::ChannelFull { .. }) => break,
                Err(other) => panic!("{other}"),
            }
        }
        for (i, worker) in workers.iter().enumerate() {
            let reject = [None, Some("stale"), Some("duplicate")][(i + round as usize) % 3];
            storage.record_share(&ShareRecord {
                worker,
                time_unix_s: minute + (round as i64 % 600) * 60,
                difficulty: 4.0,
                hash_difficulty: 4.0,
                reject,
            });
        }
        round += 1;
        if round.is_multiple_of(50) {
            storage
                .record_block(BlockRecord {
                    height: round as u32,
                    hash: format!("{round:064x}"),
                    worker: workers[round as usize % 200].clone(),
                    payout_address: "bcrt1qpayout".to_owned(),
                    extranonce1: None,
                    user_agent: None,
                    status: BlockStatus::Found,
                    found_unix_s: minute + round as i64,
                })
                .unwrap();
        }
    }
}

/// Starts the child and waits until it prints [`READY`].
fn spawn_child(path: &Path, mode: &str) -> Child {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "child_process_writer",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(DB_ENV, path)
        .env(MODE_ENV, mode)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let mut lines = BufReader::new(stdout).lines();
    loop {
        let line = lines
            .next()
            .expect("child exited before it was ready")
            .unwrap();
        if line.contains(READY) {
            break;
        }
    }
    // Keep draining the pipe so the child never blocks on a full one.
    std::thread::spawn(move || for _ in lines {});
    child
}

fn kill_9(mut child: Child) {
    // `Child::kill` sends SIGKILL on Unix.
    child.kill().unwrap();
    let status = child.wait().unwrap();
    assert_eq!(status.signal(), Some(9), "{status:?}");
}

fn assert_consistent(path: &Path) {
    let connection = Connection::open(path).unwrap();
    let integrity: String = connection
        .query_row("PRAGMA integrity_check", [], |row| row.get(0))
        .unwrap();
    assert_eq!(integrity, "ok");
    let mut statement = connection.prepare("PRAGMA foreign_key_check").unwrap();
    let violations = statement.query_map([], |_| Ok(())).unwrap().count();
    assert_eq!(violations, 0, "foreign key violations");
    // Each minute's rejected count equals the sum of its per-reason rows: they are written in
    // the same transaction, so a kill never leaves one without the other.
    let mismatched: i64 = connection
        .query_row(
            "SELECT count(*) FROM share_minutes m WHERE m.rejected_count != (
                 SELECT coalesce(sum(r.rejected_count), 0) FROM share_minute_rejects r
                 WHERE r.worker_id = m.worker_id
                     AND r.minute_start_unix_s = m.minute_start_unix_s)",
            [],
            |row| row.get(0),
        )
        .unwrap();
    assert_eq!(
        mismatched, 0,
        "minutes whose reject rows disagree with their count"
    );
}

#[test]
fn kill_9_loses_nothing_accepted_before_the_last_flush() {
    let dir = TempDir::new("kill9");
    let child = spawn_child(&dir.db(), "kill-after-flush");
    kill_9(child);
    assert_consistent(&dir.db());

    let storage = Storage::open(config(dir.db())).unwrap();
    let reader = storage.reader().unwrap();
    let minutes = reader.share_minutes("durable.rig", 0, i64::MAX).unwrap();
    assert_eq!(minutes.len(), 1);
    assert_eq!(minutes[0].accepted_count, 50);
    assert_eq!(minutes[0].accepted_difficulty_sum, 100.0);
    assert_eq!(minutes[0].rejects, vec![("stale".to_owned(), 1)]);
    assert_eq!(reader.last_difficulty("durable.rig").unwrap(), Some(2048.0));
    let best = reader.best_share("durable.rig").unwrap().unwrap();
    assert_eq!(best.all_time, 51.0);
    let hash = "00".repeat(32);
    let block = reader.block(&hash).unwrap().expect("the block survived");
    assert_eq!(block.height, 101);
    assert_eq!(block.worker, "durable.rig");
    assert_eq!(reader.block_submissions(&hash).unwrap().len(), 1);
    let events = reader.latest_events(1000).unwrap();
    assert!(events.iter().any(|e| e.kind == "block_found"));
    storage.shutdown().unwrap();
}

/// The number of events committed so far (read-only, while a child writes).
fn committed_events(path: &Path) -> i64 {
    let Ok(connection) =
        Connection::open_with_flags(path, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)
    else {
        return 0;
    };
    connection
        .query_row("SELECT coalesce(max(id), 0) FROM events", [], |row| {
            row.get(0)
        })
        .unwrap_or(0)
}

#[test]
fn kill_9_mid_batch_leaves_a_consistent_database() {
    let dir = TempDir::new("midbatch");
    let mut previous_events = 0;
    // Fixed delays land the kill anywhere in a batch; the last round (`None`) waits until the
    // child committed something new (bounded), so that a loaded machine, where a child may not
    // commit within a few hundred milliseconds, still checks a non-empty prefix.
    for delay_ms in [Some(150), Some(230), Some(370), Some(90), None] {
        let child = spawn_child(&dir.db(), "flood");
        match delay_ms {
            Some(ms) => std::thread::sleep(Duration::from_millis(ms)),
            None => {
                let deadline = std::time::Instant::now() + Duration::from_secs(30);
                while committed_events(&dir.db()) <= previous_events
                    && std::time::Instant::now() < deadline
                {
                    std::thread::sleep(Duration::from_millis(20));
                }
            }
        }
        kill_9(child);
        assert_consistent(&dir.db());
        let storage = Storage::open(config(dir.db())).unwrap();
        let reader = storage.reader().unwrap();
        let events = reader.latest_events(1).unwrap();
        let count = events.first().map_or(0, |e| e.id);
        // Events are committed in order: what survived is a prefix, numbered 1..=count.
        if let Some(last) = events.first() {
            assert_eq!(last.message["seq"], last.id);
        }
        let connection = Connection::open(dir.db()).unwrap();
        let (rows, max_seq): (i64, i64) = connection
            .query_row(
                "SELECT count(*), coalesce(max(json_extract(message, '$.seq')), 0) FROM events",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )
            .unwrap();
        assert_eq!(rows, count, "holes in the event sequence");
        assert_eq!(max_seq, count);
        assert!(count >= previous_events, "committed events disappeared");
        previous_events = count;
        storage.shutdown().unwrap();
    }
    assert!(previous_events > 0, "the children never committed anything");
}
