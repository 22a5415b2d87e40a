//! SQLite storage of the control plane: workers, per-minute share statistics, hashrate, best
//! shares, blocks and their submissions, and the event log.
//!
//! # Responsibilities
//! - One writer thread owns the only write connection. It is fed by a bounded channel
//!   ([`STORAGE_CHANNEL_MESSAGES_MAX`]) and commits in batches: it drains up to
//!   [`STORAGE_BATCH_MESSAGES_MAX`] messages or waits at most the flush interval
//!   ([`STORAGE_FLUSH_INTERVAL_MS`]), then writes everything pending in one transaction.
//! - Shares never travel one by one: [`Storage::record_share`] folds them into one bucket per
//!   worker-minute in memory (at most [`SHARE_BUCKETS_MAX`] buckets), and the writer takes all
//!   buckets at each flush. A full channel therefore never delays or drops a share.
//! - Readers ([`StorageReader`]) open their own read-only connections; WAL lets them read while
//!   the writer writes. Their queries block: call them from a blocking thread
//!   (`tokio::task::spawn_blocking`), never directly on the control plane's runtime.
//! - Schema migrations run at [`Storage::open`] (see [`schema`]). A database it creates is
//!   created with mode 0600: it holds the admin auth tables (`crate::auth`, schema v7).
//! - Retention runs on the writer every [`STORAGE_RETENTION_INTERVAL_SECS`] (minutes, events,
//!   each history level, ended sessions).
//! - History: the writer rolls closed minutes up into the pool's and the workers' history
//!   tables every [`HISTORY_ROLLUP_INTERVAL_MS`] ([`rollup`], decision 0016); the recorder's
//!   worker sessions ([`Storage::session_started`], [`Storage::session_ended`]) and status
//!   events land beside them.
//!
//! # Back-pressure
//! - Share statistics: aggregated before the channel; a share needing a new bucket beyond
//!   [`SHARE_BUCKETS_MAX`] is dropped and counted ([`Storage::dropped_shares`]).
//! - Worker updates and events: `try_send`; on a full channel they are dropped, counted
//!   ([`Storage::dropped_messages`]) and reported as [`StorageError::ChannelFull`].
//! - Blocks (records, status changes, submissions): never dropped silently. The caller blocks
//!   until there is room, for at most [`STORAGE_BLOCK_SEND_TIMEOUT_MS`], then gets
//!   [`StorageError::Timeout`] and still owns the duty to retry or alert. A batch holding a
//!   block record is committed at once, with `synchronous=FULL`.
//!
//! # Durability
//! WAL with `synchronous=NORMAL`: a committed transaction survives a crash of the process
//! (`kill -9`), because the WAL frames are in the OS page cache; after a power loss or an OS
//! crash the last transactions before the most recent WAL checkpoint/fsync may be lost (the
//! database stays consistent). Batches carrying a block commit with `synchronous=FULL`, so a
//! block record survives a power loss once [`Storage::record_block`] has been committed (at
//! most one flush later; [`Storage::flush`] waits for it). What a `kill -9` can lose: what was
//! accepted but not yet committed, that is at most one flush interval of statistics, worker
//! updates and events.
//!
//! # Usage
//! ```no_run
//! use warppool_control::storage::{ShareRecord, Storage, StorageConfig};
//! let storage = Storage::open(StorageConfig::new("pool.sqlite"))?;
//! storage.record_share(&ShareRecord {
//!     worker: "bc1qexample.rig1",
//!     time_unix_s: 1_700_000_000,
//!     difficulty: 512.0,
//!     hash_difficulty: 1234.5,
//!     reject: None,
//! });
//! let reader = storage.reader()?;
//! let _ = reader.last_difficulty("bc1qexample.rig1")?;
//! storage.shutdown()?;
//! # Ok::<(), warppool_control::storage::StorageError>(())
//! ```

mod aggregate;
mod error;
mod history;
mod reader;
pub mod rollup;
pub mod schema;
mod sessions;
mod writer;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError, sync_channel};
use std::sync::{Arc, Mutex, PoisonError};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rusqlite::Connection;

pub use error::StorageError;
pub use history::{HistoryRow, SessionRow};
pub use reader::{
    BestScope, BestShare, BestShareRow, BlockRow, BlockSubmissionRow, EventRow, HashrateWindow,
    ShareMinute, StorageReader, WorkerRow,
};
pub use sessions::{POOL_STOPPED, REAUTHORIZED, close_reason_label};

use aggregate::{Aggregator, MinuteBucket};
use writer::{Message, Writer};

pub use warppool_core::limits::{
    EVENTS_QUERY_MAX, EVENTS_RETENTION_DAYS, HISTORY_ROLLUP_INTERVAL_MS,
    HISTORY_ROLLUP_SOURCE_SLOTS_PER_PASS, SHARE_BUCKETS_MAX, SHARE_MINUTES_RETENTION_DAYS,
    STORAGE_BATCH_MESSAGES_MAX, STORAGE_BLOCK_SEND_TIMEOUT_MS, STORAGE_BUSY_TIMEOUT_MS,
    STORAGE_CHANNEL_MESSAGES_MAX, STORAGE_FLUSH_INTERVAL_MS, STORAGE_RETENTION_INTERVAL_SECS,
    WORKER_SESSIONS_RETENTION_DAYS,
};

const SECS_PER_DAY: u64 = 86_400;

/// Where and how the storage runs. [`StorageConfig::new`] gives the defaults above.
#[derive(Debug, Clone)]
pub struct StorageConfig {
    /// The SQLite file (created if missing; `-wal` and `-shm` files live next to it).
    pub path: PathBuf,
    /// Longest wait before accepted data is committed.
    pub flush_interval: Duration,
    /// Most messages per transaction.
    pub batch_messages_max: usize,
    /// Capacity of the writer's channel.
    pub channel_capacity: usize,
    /// Most worker-minute buckets held between flushes.
    pub share_buckets_max: usize,
    /// How long a block record waits for room in a full channel.
    pub block_send_timeout: Duration,
    /// Per-minute share statistics older than this are deleted.
    pub share_minutes_retention: Duration,
    /// Events older than this are deleted.
    pub events_retention: Duration,
    /// How often retention runs.
    pub retention_interval: Duration,
    /// Ended worker sessions older than this are deleted.
    pub sessions_retention: Duration,
    /// How often the writer runs a history rollup pass ([`rollup`]).
    pub rollup_interval: Duration,
    /// How many source slots (minutes, or hours) per worker one level reads in one rollup
    /// pass (at least one bucket).
    pub rollup_source_slots_per_pass: usize,
}

impl StorageConfig {
    /// The defaults for a database at `path`.
    pub fn new(path: impl Into<PathBuf>) -> Self {
        Self {
            path: path.into(),
            flush_interval: Duration::from_millis(STORAGE_FLUSH_INTERVAL_MS),
            batch_messages_max: STORAGE_BATCH_MESSAGES_MAX,
            channel_capacity: STORAGE_CHANNEL_MESSAGES_MAX,
            share_buckets_max: SHARE_BUCKETS_MAX,
            block_send_timeout: Duration::from_millis(STORAGE_BLOCK_SEND_TIMEOUT_MS),
            share_minutes_retention: Duration::from_secs(
                SHARE_MINUTES_RETENTION_DAYS * SECS_PER_DAY,
            ),
            events_retention: Duration::from_secs(EVENTS_RETENTION_DAYS * SECS_PER_DAY),
            retention_interval: Duration::from_secs(STORAGE_RETENTION_INTERVAL_SECS),
            sessions_retention: Duration::from_secs(WORKER_SESSIONS_RETENTION_DAYS * SECS_PER_DAY),
            rollup_interval: Duration::from_millis(HISTORY_ROLLUP_INTERVAL_MS),
            rollup_source_slots_per_pass: HISTORY_ROLLUP_SOURCE_SLOTS_PER_PASS,
        }
    }
}

/// One share as the control plane saw it (mapped from the data plane's share event).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ShareRecord<'a> {
    /// The worker name (the full Stratum username).
    pub worker: &'a str,
    /// When the share was validated, Unix seconds.
    pub time_unix_s: i64,
    /// The difficulty the share was assigned (what it is credited with if accepted).
    pub difficulty: f64,
    /// The difficulty its hash actually meets (for best-share tracking).
    pub hash_difficulty: f64,
    /// `None` if accepted, else the reason's metrics label (`ShareReject::metrics_label()`).
    pub reject: Option<&'static str>,
}

/// A connection of a worker that authorized: the start of a session.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SessionStart {
    /// The data plane's connection id (unique within one run of the pool).
    pub connection: u64,
    /// The worker name.
    pub worker: String,
    /// The subscribe user agent, if any.
    pub user_agent: Option<String>,
    /// The peer.
    pub peer: std::net::SocketAddr,
    /// The listener's port.
    pub local_port: u16,
    /// Whether it is TLS.
    pub tls: bool,
    /// When it authorized, Unix seconds.
    pub time_unix_s: i64,
}

/// The life of a found block: the one status of the whole product.
pub use crate::block_status::BlockStatus;

/// A found block to record.
#[derive(Debug, Clone, PartialEq)]
pub struct BlockRecord {
    /// Block height.
    pub height: u32,
    /// Block hash, hex in the usual (reversed) display order.
    pub hash: String,
    /// The worker whose share found it.
    pub worker: String,
    /// Where the coinbase pays.
    pub payout_address: String,
    /// The finding connection's extranonce1, hex (`None` if unknown).
    pub extranonce1: Option<String>,
    /// The finding connection's user agent, if it sent one.
    pub user_agent: Option<String>,
    /// Initial status, usually [`BlockStatus::Found`].
    pub status: BlockStatus,
    /// When it was found, Unix seconds.
    pub found_unix_s: i64,
}

/// The writer's figures ([`Storage::stats`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StorageStats {
    /// Messages waiting in the writer's channel (worker updates, events, blocks, control).
    pub queued_messages: u64,
    /// The channel's capacity (`STORAGE_CHANNEL_MESSAGES_MAX`).
    pub channel_capacity: u64,
    /// Worker-minute share buckets aggregated in memory, waiting for the next commit.
    pub pending_share_buckets: u64,
    /// Batches committed.
    pub batches_committed: u64,
    /// Shares dropped because `SHARE_BUCKETS_MAX` buckets were pending.
    pub dropped_shares: u64,
    /// Messages dropped on a full channel.
    pub dropped_messages: u64,
    /// Batches that failed to commit.
    pub write_errors: u64,
}

/// State shared between the handle and the writer thread.
#[derive(Debug)]
struct Shared {
    aggregator: Mutex<Aggregator>,
    share_buckets_max: usize,
    batches_committed: AtomicU64,
    dropped_messages: AtomicU64,
    write_errors: AtomicU64,
    /// Messages in the writer's channel: counted up before a send (down again if it fails),
    /// down when the writer receives one.
    queued: AtomicU64,
    last_write_error: Mutex<Option<String>>,
}

impl Shared {
    fn take_buckets(&self) -> Vec<MinuteBucket> {
        let taken = self
            .aggregator
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        aggregate::into_buckets(taken)
    }

    fn batch_committed(&self) {
        self.batches_committed.fetch_add(1, Ordering::Relaxed);
    }

    fn write_failed(&self, error: String) {
        self.write_errors.fetch_add(1, Ordering::Relaxed);
        *self
            .last_write_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner) = Some(error);
    }
}

/// The storage handle: send records to the writer, open readers, shut down.
///
/// Dropping it without [`Storage::shutdown`] still flushes and joins the writer.
#[derive(Debug)]
pub struct Storage {
    sender: Option<SyncSender<Message>>,
    writer: Option<JoinHandle<()>>,
    shared: Arc<Shared>,
    config: StorageConfig,
}

/// Creates `path` empty with mode 0600 if it does not exist yet, so the database, which holds
/// admin secrets (`auth`), is never open to group or others; SQLite gives its `-wal` and
/// `-shm` files the database's mode. An existing file is left as it is (`auth` checks it).
///
/// # Errors
/// The I/O error if the file cannot be created (a missing directory, no permission).
pub(crate) fn create_private(path: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::OpenOptionsExt;
    let created = std::fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(0o600)
        .open(path);
    match created {
        Err(e) if e.kind() != std::io::ErrorKind::AlreadyExists => Err(e),
        _ => Ok(()),
    }
}

/// Opens a connection with the pragmas every connection needs.
fn configure(connection: &Connection) -> Result<(), StorageError> {
    connection.busy_timeout(Duration::from_millis(STORAGE_BUSY_TIMEOUT_MS))?;
    connection.pragma_update(None, "foreign_keys", "ON")?;
    Ok(())
}

impl Storage {
    /// Opens (or creates) the database, migrates it and starts the writer thread.
    ///
    /// # Errors
    /// [`StorageError::SchemaTooNew`] if the file comes from a newer build;
    /// [`StorageError::Sqlite`] if it cannot be opened or migrated;
    /// [`StorageError::Spawn`] if the thread cannot start.
    ///
    /// # Panics
    /// If `config` has a zero batch size, channel capacity or flush interval.
    pub fn open(config: StorageConfig) -> Result<Self, StorageError> {
        assert!(config.batch_messages_max > 0);
        assert!(config.channel_capacity > 0);
        assert!(!config.flush_interval.is_zero());
        if let Err(error) = create_private(&config.path) {
            // SQLite's open below fails the same way and reports it.
            tracing::debug!(%error, path = %config.path.display(), "cannot create the database");
        }
        let mut connection = Connection::open(&config.path)?;
        configure(&connection)?;
        // Refuse a newer file before changing anything in it (even its journal mode).
        schema::check_version(&connection)?;
        let mode: String =
            connection.pragma_update_and_check(None, "journal_mode", "WAL", |row| row.get(0))?;
        assert!(mode.eq_ignore_ascii_case("wal"), "journal_mode is {mode}");
        connection.pragma_update(None, "synchronous", "NORMAL")?;
        schema::migrate(&mut connection)?;
        let stale = sessions::close_stale(&connection)?;
        if stale > 0 {
            tracing::info!(
                sessions = stale,
                "sessions left open by the last run closed"
            );
        }
        let shared = Arc::new(Shared {
            aggregator: Mutex::new(Aggregator::default()),
            share_buckets_max: config.share_buckets_max,
            batches_committed: AtomicU64::new(0),
            dropped_messages: AtomicU64::new(0),
            write_errors: AtomicU64::new(0),
            queued: AtomicU64::new(0),
            last_write_error: Mutex::new(None),
        });
        let (sender, receiver) = sync_channel(config.channel_capacity);
        let writer = Writer::new(connection, receiver, Arc::clone(&shared), config.clone());
        let writer = std::thread::Builder::new()
            .name("storage-writer".into())
            .spawn(move || writer.run())
            .map_err(StorageError::Spawn)?;
        Ok(Self {
            sender: Some(sender),
            writer: Some(writer),
            shared,
            config,
        })
    }

    /// The database file.
    pub fn path(&self) -> &Path {
        &self.config.path
    }

    /// Opens a new read-only connection to the same file.
    ///
    /// # Errors
    /// [`StorageError::Sqlite`] if the file cannot be opened.
    pub fn reader(&self) -> Result<StorageReader, StorageError> {
        StorageReader::open(&self.config.path)
    }

    /// Folds one share into its worker-minute bucket. Never blocks on the writer. Returns
    /// `false` if the share was dropped because [`SHARE_BUCKETS_MAX`] buckets are pending.
    pub fn record_share(&self, share: &ShareRecord<'_>) -> bool {
        self.shared
            .aggregator
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .add(share, self.shared.share_buckets_max)
    }

    /// Records that a worker authorized (creating it if new), with its user agent if known.
    ///
    /// # Errors
    /// [`StorageError::ChannelFull`] (dropped) or [`StorageError::WriterStopped`].
    pub fn worker_seen(
        &self,
        worker: &str,
        user_agent: Option<&str>,
        time_unix_s: i64,
    ) -> Result<(), StorageError> {
        self.try_send(
            Message::WorkerSeen {
                worker: worker.to_owned(),
                user_agent: user_agent.map(str::to_owned),
                time_unix_s,
            },
            "worker update",
        )
    }

    /// Stores the worker's current difficulty, so vardiff can resume from it on reconnect.
    ///
    /// # Errors
    /// [`StorageError::ChannelFull`] (dropped) or [`StorageError::WriterStopped`].
    ///
    /// # Panics
    /// If `difficulty` is not finite and positive (vardiff never produces such a value).
    pub fn set_last_difficulty(
        &self,
        worker: &str,
        difficulty: f64,
        time_unix_s: i64,
    ) -> Result<(), StorageError> {
        assert!(difficulty.is_finite());
        assert!(difficulty > 0.0);
        self.try_send(
            Message::WorkerDifficulty {
                worker: worker.to_owned(),
                difficulty,
                time_unix_s,
            },
            "worker difficulty",
        )
    }

    /// Appends an event; `message` is stored as JSON text.
    ///
    /// # Errors
    /// [`StorageError::ChannelFull`] (dropped) or [`StorageError::WriterStopped`].
    pub fn record_event(
        &self,
        time_unix_s: i64,
        kind: &str,
        message: &serde_json::Value,
    ) -> Result<(), StorageError> {
        let worker = message
            .get("worker")
            .and_then(serde_json::Value::as_str)
            .map(str::to_owned);
        self.try_send(
            Message::Event {
                time_unix_s,
                kind: kind.to_owned(),
                message: message.to_string(),
                worker,
            },
            "event",
        )
    }

    /// A worker's connection authorized: its session begins.
    ///
    /// # Errors
    /// [`StorageError::ChannelFull`] (dropped) or [`StorageError::WriterStopped`].
    pub fn session_started(&self, start: SessionStart) -> Result<(), StorageError> {
        self.try_send(Message::SessionStarted(Box::new(start)), "session start")
    }

    /// A connection closed: its open session (if any) ends with `reason`
    /// ([`close_reason_label`]).
    ///
    /// # Errors
    /// [`StorageError::ChannelFull`] (dropped) or [`StorageError::WriterStopped`].
    pub fn session_ended(
        &self,
        connection: u64,
        reason: &'static str,
        time_unix_s: i64,
    ) -> Result<(), StorageError> {
        let message = Message::SessionEnded {
            connection,
            reason,
            time_unix_s,
        };
        self.try_send(message, "session end")
    }

    /// Commits, then runs one history rollup pass as of `now_unix_s` and waits for it; returns
    /// the buckets it computed (0 once every level is caught up). The writer also runs passes
    /// on its own every [`StorageConfig::rollup_interval`].
    ///
    /// # Errors
    /// As [`Storage::flush`], or [`StorageError::Sqlite`] from the rollup.
    pub fn roll_up(&self, now_unix_s: i64) -> Result<u64, StorageError> {
        let (ack, answer) = sync_channel(1);
        let sender = self.sender()?;
        self.shared.queued.fetch_add(1, Ordering::Relaxed);
        if sender.send(Message::RollUp { now_unix_s, ack }).is_err() {
            self.shared.queued.fetch_sub(1, Ordering::Relaxed);
            return Err(StorageError::WriterStopped);
        }
        answer.recv().map_err(|_| StorageError::WriterStopped)?
    }

    /// Records a found block and starts a new round: every worker's best share since the last
    /// block goes back to 0. Committed at once with `synchronous=FULL`; recording the same hash
    /// twice keeps the first record and does not start another round.
    ///
    /// Shares recorded before this call count in the old round (the block's own share too).
    ///
    /// # Errors
    /// [`StorageError::Timeout`] if the channel stayed full, [`StorageError::WriterStopped`].
    pub fn record_block(&self, block: BlockRecord) -> Result<(), StorageError> {
        self.send_block(Message::Block(block), "block record")
    }

    /// Changes a block's status (no effect if the hash is unknown).
    ///
    /// # Errors
    /// As [`Storage::record_block`].
    pub fn set_block_status(
        &self,
        hash: &str,
        status: BlockStatus,
        time_unix_s: i64,
    ) -> Result<(), StorageError> {
        let message = Message::BlockStatus {
            hash: hash.to_owned(),
            status,
            time_unix_s,
        };
        self.send_block(message, "block status")
    }

    /// Appends one submission attempt of a recorded block (ignored if the hash is unknown).
    ///
    /// # Errors
    /// As [`Storage::record_block`].
    pub fn record_block_submission(
        &self,
        hash: &str,
        node: &str,
        time_unix_s: i64,
        result: &str,
    ) -> Result<(), StorageError> {
        let message = Message::BlockSubmission {
            hash: hash.to_owned(),
            node: node.to_owned(),
            time_unix_s,
            result: result.to_owned(),
        };
        self.send_block(message, "block submission")
    }

    /// Commits everything accepted so far and waits for it.
    ///
    /// # Errors
    /// [`StorageError::Write`] if the commit failed, [`StorageError::WriterStopped`].
    pub fn flush(&self) -> Result<(), StorageError> {
        self.request(Message::Flush)
    }

    /// Commits, then deletes per-minute statistics and events older than their retention
    /// counted back from `now_unix_s`, and waits for it. The writer also does this on its own
    /// every [`StorageConfig::retention_interval`].
    ///
    /// # Errors
    /// As [`Storage::flush`], or [`StorageError::Sqlite`] from the deletes.
    pub fn run_retention(&self, now_unix_s: i64) -> Result<(), StorageError> {
        self.request(|ack| Message::Retention { now_unix_s, ack })
    }

    /// Flushes and joins the writer.
    ///
    /// # Errors
    /// As [`Storage::flush`].
    pub fn shutdown(mut self) -> Result<(), StorageError> {
        self.stop()
    }

    /// Batches committed so far (each one transaction).
    pub fn batches_committed(&self) -> u64 {
        self.shared.batches_committed.load(Ordering::Relaxed)
    }

    /// Shares dropped because [`SHARE_BUCKETS_MAX`] buckets were pending.
    pub fn dropped_shares(&self) -> u64 {
        self.shared
            .aggregator
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .dropped_shares()
    }

    /// Worker updates and events dropped on a full channel.
    pub fn dropped_messages(&self) -> u64 {
        self.shared.dropped_messages.load(Ordering::Relaxed)
    }

    /// Batches that failed to commit, and the last error.
    pub fn write_errors(&self) -> (u64, Option<String>) {
        let count = self.shared.write_errors.load(Ordering::Relaxed);
        let last = self
            .shared
            .last_write_error
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone();
        (count, last)
    }

    /// The writer's figures now (for metrics).
    pub fn stats(&self) -> StorageStats {
        // One lock of the aggregator, released before anything else is read.
        let (pending_share_buckets, dropped_shares) = {
            let aggregator = self
                .shared
                .aggregator
                .lock()
                .unwrap_or_else(PoisonError::into_inner);
            (aggregator.len() as u64, aggregator.dropped_shares())
        };
        StorageStats {
            queued_messages: self.shared.queued.load(Ordering::Relaxed),
            channel_capacity: self.config.channel_capacity as u64,
            pending_share_buckets,
            batches_committed: self.batches_committed(),
            dropped_shares,
            dropped_messages: self.dropped_messages(),
            write_errors: self.write_errors().0,
        }
    }

    fn sender(&self) -> Result<&SyncSender<Message>, StorageError> {
        self.sender.as_ref().ok_or(StorageError::WriterStopped)
    }

    fn try_send(&self, message: Message, what: &'static str) -> Result<(), StorageError> {
        let sender = self.sender()?;
        self.shared.queued.fetch_add(1, Ordering::Relaxed);
        let sent = sender.try_send(message);
        if sent.is_err() {
            self.shared.queued.fetch_sub(1, Ordering::Relaxed);
        }
        match sent {
            Ok(()) => Ok(()),
            Err(TrySendError::Full(_)) => {
                self.shared.dropped_messages.fetch_add(1, Ordering::Relaxed);
                Err(StorageError::ChannelFull { what })
            }
            Err(TrySendError::Disconnected(_)) => Err(StorageError::WriterStopped),
        }
    }

    /// Waits for room, at most the block send timeout. `SyncSender` has no stable
    /// `send_timeout`, so this retries `try_send` with a short sleep; blocks are rare.
    fn send_block(&self, message: Message, what: &'static str) -> Result<(), StorageError> {
        let sender = self.sender()?;
        let started = Instant::now();
        let mut message = message;
        loop {
            self.shared.queued.fetch_add(1, Ordering::Relaxed);
            let sent = sender.try_send(message);
            if sent.is_err() {
                self.shared.queued.fetch_sub(1, Ordering::Relaxed);
            }
            match sent {
                Ok(()) => return Ok(()),
                Err(TrySendError::Disconnected(_)) => return Err(StorageError::WriterStopped),
                Err(TrySendError::Full(back)) => message = back,
            }
            let waited = started.elapsed();
            if waited >= self.config.block_send_timeout {
                return Err(StorageError::Timeout { what, waited });
            }
            std::thread::sleep(Duration::from_millis(1));
        }
    }

    /// Sends a control message and waits for the writer's answer. Control messages wait for
    /// room in the channel without a time limit: the writer always drains it.
    fn request(&self, make: impl FnOnce(writer::Ack) -> Message) -> Result<(), StorageError> {
        let (ack, answer) = sync_channel(1);
        let sender = self.sender()?;
        self.shared.queued.fetch_add(1, Ordering::Relaxed);
        if sender.send(make(ack)).is_err() {
            self.shared.queued.fetch_sub(1, Ordering::Relaxed);
            return Err(StorageError::WriterStopped);
        }
        answer.recv().map_err(|_| StorageError::WriterStopped)?
    }

    fn stop(&mut self) -> Result<(), StorageError> {
        let Some(writer) = self.writer.take() else {
            return Ok(());
        };
        let result = self.request(Message::Shutdown);
        self.sender = None;
        let joined = writer.join();
        result?;
        joined.map_err(|_| StorageError::WriterStopped)
    }
}

impl Drop for Storage {
    fn drop(&mut self) {
        let _ = self.stop();
    }
}
