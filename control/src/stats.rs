//! Share statistics drained from the data plane, and the seam the storage module plugs into.
//!
//! # Responsibilities
//!
//! - [`Recorder`]: what the control plane hands to storage (share batches, block events, a
//!   flush at shutdown). Small on purpose: the storage module implements it at merge.
//! - [`MemoryStats`]: the in-memory counters used until then (and kept for metrics).
//! - [`drain_stats`]: one task per shard queue, feeding a recorder until the queue closes.

use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};

use warppool_net::stratum::ShareEvent;

use crate::blocks::BlockEvent;

/// The storage seam: receives share batches and block events; flushed at shutdown.
pub trait Recorder: Send + Sync + 'static {
    /// One batch of share events from a shard (called from the control plane; must not block
    /// for long: queue the work to the storage thread).
    fn on_shares(&self, batch: &[ShareEvent]);
    /// A block event.
    fn on_block(&self, event: &BlockEvent);
    /// Writes out everything queued (shutdown).
    fn flush(&self);
}

/// Simple counters.
#[derive(Debug, Default)]
pub struct MemoryStats {
    /// Accepted shares.
    pub shares_accepted: AtomicU64,
    /// Rejected shares.
    pub shares_rejected: AtomicU64,
    /// Shares that met the network target.
    pub block_shares: AtomicU64,
    /// Authorizations.
    pub authorized: AtomicU64,
    /// Block events seen.
    pub block_events: AtomicU64,
}

/// A snapshot of [`MemoryStats`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct StatsSnapshot {
    /// Accepted shares.
    pub shares_accepted: u64,
    /// Rejected shares.
    pub shares_rejected: u64,
    /// Shares that met the network target.
    pub block_shares: u64,
    /// Authorizations.
    pub authorized: u64,
    /// Block events seen.
    pub block_events: u64,
}

impl MemoryStats {
    /// The counters now.
    #[must_use]
    pub fn snapshot(&self) -> StatsSnapshot {
        StatsSnapshot {
            shares_accepted: self.shares_accepted.load(Ordering::Relaxed),
            shares_rejected: self.shares_rejected.load(Ordering::Relaxed),
            block_shares: self.block_shares.load(Ordering::Relaxed),
            authorized: self.authorized.load(Ordering::Relaxed),
            block_events: self.block_events.load(Ordering::Relaxed),
        }
    }
}

impl Recorder for MemoryStats {
    fn on_shares(&self, batch: &[ShareEvent]) {
        for event in batch {
            match event {
                ShareEvent::Authorized { .. } => {
                    self.authorized.fetch_add(1, Ordering::Relaxed);
                }
                ShareEvent::Share(s) => {
                    if s.reject.is_none() {
                        self.shares_accepted.fetch_add(1, Ordering::Relaxed);
                    } else {
                        self.shares_rejected.fetch_add(1, Ordering::Relaxed);
                    }
                    if s.block {
                        self.block_shares.fetch_add(1, Ordering::Relaxed);
                    }
                }
            }
        }
    }

    fn on_block(&self, _event: &BlockEvent) {
        self.block_events.fetch_add(1, Ordering::Relaxed);
    }

    fn flush(&self) {
        let s = self.snapshot();
        tracing::info!(
            accepted = s.shares_accepted,
            rejected = s.shares_rejected,
            blocks = s.block_shares,
            "share statistics at shutdown"
        );
    }
}

/// Feeds every batch of `queue` to `recorder` until the data plane closes the queue.
pub async fn drain_stats(
    queue: flume::Receiver<warppool_net::StatsBatch<ShareEvent>>,
    recorder: Arc<dyn Recorder>,
) {
    while let Ok(batch) = queue.recv_async().await {
        recorder.on_shares(&batch);
    }
}

/// Feeds block events to `recorder` until the block path closes the queue.
pub async fn drain_block_events(queue: flume::Receiver<BlockEvent>, recorder: Arc<dyn Recorder>) {
    while let Ok(event) = queue.recv_async().await {
        recorder.on_block(&event);
    }
}

/// Most connection → worker entries [`SqliteRecorder`] remembers (a full map is cleared; the
/// next authorization of each connection is not replayed, so its shares go unnamed).
const CONNECTIONS_REMEMBERED_MAX: usize = 65_536;

/// Most worker names [`SqliteRecorder::workers`] lists.
const WORKERS_LISTED_MAX: usize = 4096;

fn unix_now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[derive(Debug, Default)]
struct Names {
    by_connection: std::collections::HashMap<warppool_net::stratum::ConnectionId, String>,
    workers: std::collections::BTreeSet<String>,
    /// The worker of the last share that met the network target (for the block record).
    last_block_worker: Option<String>,
}

/// The [`Recorder`] backed by SQLite [`Storage`](crate::storage::Storage), with the in-memory
/// counters of [`MemoryStats`] kept alongside (the HTTP API reads both).
#[derive(Debug)]
pub struct SqliteRecorder {
    storage: std::sync::Mutex<Option<crate::storage::Storage>>,
    path: std::path::PathBuf,
    counters: MemoryStats,
    names: std::sync::Mutex<Names>,
}

impl SqliteRecorder {
    /// Wraps an open storage.
    #[must_use]
    pub fn new(storage: crate::storage::Storage) -> Self {
        Self {
            path: storage.path().to_path_buf(),
            storage: std::sync::Mutex::new(Some(storage)),
            counters: MemoryStats::default(),
            names: std::sync::Mutex::new(Names::default()),
        }
    }

    /// The database file (readers open their own connections on it).
    #[must_use]
    pub fn path(&self) -> &std::path::Path {
        &self.path
    }

    /// The in-memory counters.
    #[must_use]
    pub fn counters(&self) -> StatsSnapshot {
        self.counters.snapshot()
    }

    /// The worker names seen since start (at most `WORKERS_LISTED_MAX`).
    #[must_use]
    pub fn workers(&self) -> Vec<String> {
        self.lock_names().workers.iter().cloned().collect()
    }

    /// Opens a reader on the database.
    ///
    /// # Errors
    /// [`crate::storage::StorageError`] if the file cannot be opened.
    pub fn reader(&self) -> Result<crate::storage::StorageReader, crate::storage::StorageError> {
        crate::storage::StorageReader::open(&self.path)
    }

    fn lock_names(&self) -> std::sync::MutexGuard<'_, Names> {
        self.names
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn with_storage(&self, f: impl FnOnce(&crate::storage::Storage)) {
        let guard = self
            .storage
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if let Some(storage) = guard.as_ref() {
            f(storage);
        }
    }

    /// Flushes and stops the writer thread (idempotent).
    pub fn shutdown(&self) {
        let storage = self
            .storage
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take();
        if let Some(storage) = storage
            && let Err(e) = storage.shutdown()
        {
            tracing::error!(error = %e, "storage shutdown failed");
        }
    }
}

impl Recorder for SqliteRecorder {
    fn on_shares(&self, batch: &[ShareEvent]) {
        self.counters.on_shares(batch);
        let now = unix_now_s();
        let guard = self
            .storage
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(storage) = guard.as_ref() else {
            return;
        };
        let mut names = self.lock_names();
        for event in batch {
            match event {
                ShareEvent::Authorized {
                    connection,
                    username,
                    user_agent,
                } => {
                    if names.by_connection.len() >= CONNECTIONS_REMEMBERED_MAX {
                        names.by_connection.clear();
                    }
                    names
                        .by_connection
                        .insert(*connection, username.to_string());
                    if names.workers.len() < WORKERS_LISTED_MAX {
                        names.workers.insert(username.to_string());
                    }
                    let ua = user_agent.as_deref();
                    if let Err(e) = storage.worker_seen(username, ua, now) {
                        tracing::warn!(error = %e, "worker not recorded");
                    }
                }
                ShareEvent::Share(s) => {
                    let Some(worker) = names.by_connection.get(&s.connection).cloned() else {
                        continue;
                    };
                    storage.record_share(&crate::storage::ShareRecord {
                        worker: &worker,
                        time_unix_s: now,
                        difficulty: s.difficulty.to_f64_lossy(),
                        hash_difficulty: s.hash_difficulty,
                        reject: s.reject.map(warppool_core::ShareReject::metrics_label),
                    });
                    if s.block {
                        names.last_block_worker = Some(worker);
                    }
                }
            }
        }
    }

    fn on_block(&self, event: &BlockEvent) {
        use crate::{journal::BlockStatus as J, storage::BlockStatus as S};
        self.counters.on_block(event);
        let now = unix_now_s();
        let worker = self.lock_names().last_block_worker.clone();
        self.with_storage(|storage| {
            let result = match event.status {
                J::Found => {
                    let worker = worker.unwrap_or_default();
                    let payout_address = worker.split('.').next().unwrap_or_default().to_owned();
                    storage.record_block(crate::storage::BlockRecord {
                        height: event.height,
                        hash: event.hash.clone(),
                        worker,
                        payout_address,
                        status: S::Candidate,
                        found_unix_s: now,
                    })
                }
                J::Accepted => storage
                    .record_block_submission(
                        &event.hash,
                        "node",
                        now,
                        event.detail.as_deref().unwrap_or("accepted"),
                    )
                    .and_then(|()| storage.set_block_status(&event.hash, S::Accepted, now)),
                J::Confirmed => storage.set_block_status(&event.hash, S::Confirmed, now),
                J::Rejected => storage
                    .record_block_submission(
                        &event.hash,
                        "node",
                        now,
                        event.detail.as_deref().unwrap_or("rejected"),
                    )
                    .and_then(|()| storage.set_block_status(&event.hash, S::Rejected, now)),
                J::Pending => storage.set_block_status(&event.hash, S::Submitted, now),
            };
            if let Err(e) = result {
                tracing::error!(error = %e, hash = %event.hash, "block not recorded in storage");
            }
            let message = serde_json::json!({
                "height": event.height,
                "hash": event.hash,
                "status": format!("{:?}", event.status),
                "detail": event.detail,
            });
            if let Err(e) = storage.record_event(now, "block", &message) {
                tracing::warn!(error = %e, "block event not recorded");
            }
        });
    }

    fn flush(&self) {
        self.counters.flush();
        self.with_storage(|storage| {
            if let Err(e) = storage.flush() {
                tracing::error!(error = %e, "storage flush failed");
            }
        });
    }
}
