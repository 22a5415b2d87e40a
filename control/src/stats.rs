//! Share statistics drained from the data plane, and the seam the storage module plugs into.
//!
//! # Responsibilities
//!
//! - [`Recorder`]: what the control plane hands to storage (share batches, block events, a
//!   flush at shutdown). Small on purpose: the storage module implements it at merge.
//! - [`MemoryStats`]: the in-memory counters used until then (and kept for metrics).
//! - [`drain_stats`]: one blocking thread per shard queue, feeding a recorder until the queue
//!   closes.
//! - Vardiff persistence (DESIGN §4): [`SqliteRecorder`] keeps each worker's last difficulty
//!   (from [`ShareEvent::Difficulty`]), loads the stored ones at start, and every
//!   `WORKER_DIFFICULTY_PUBLISH_MS` ([`publish_difficulties_task`]) writes the changed ones to
//!   storage and republishes the data plane's lock-free lookup ([`WorkerDifficulties`]), at most
//!   `WORKER_DIFFICULTIES_MAX` workers.

use std::collections::HashMap;
use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};
use std::time::Duration;

use warppool_core::Difficulty;
use warppool_core::limits::{WORKER_DIFFICULTIES_MAX, WORKER_DIFFICULTY_PUBLISH_MS};
use warppool_core::plane::{ConnectionId, ShareEvent};
use warppool_net::stratum::WorkerDifficulties;

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
    /// The stored worker difficulties this recorder maintains for the data plane (vardiff
    /// persistence); `None` (the default) when it keeps none.
    fn worker_difficulties(&self) -> Option<WorkerDifficulties> {
        None
    }
    /// Writes the worker difficulties changed since the last call to storage and republishes
    /// the lookup. Called every `WORKER_DIFFICULTY_PUBLISH_MS` on a blocking thread (may take a
    /// few milliseconds for a full map). The default does nothing.
    fn publish_difficulties(&self) {}
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
    /// Difficulty changes of authorized connections (vardiff retargets and client
    /// suggestions, [`ShareEvent::Difficulty`]).
    pub difficulty_changes: AtomicU64,
    /// Block events by status, in [`BlockStatus::ALL`](crate::block_status::BlockStatus::ALL)
    /// order.
    pub block_statuses: [AtomicU64; 6],
    /// `submitblock` answers by node and [`crate::blocks::SubmitOutcome::label`] (nodes come
    /// from the configuration, at most `NODES_MAX`, and five labels).
    pub block_submissions: std::sync::Mutex<HashMap<(String, &'static str), u64>>,
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
    /// Difficulty changes of authorized connections.
    pub difficulty_changes: u64,
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
            difficulty_changes: self.difficulty_changes.load(Ordering::Relaxed),
        }
    }

    /// Block events by status since start, in `BlockStatus::ALL` order.
    #[must_use]
    pub fn block_statuses(&self) -> [(crate::block_status::BlockStatus, u64); 6] {
        let all = crate::block_status::BlockStatus::ALL;
        std::array::from_fn(|i| (all[i], self.block_statuses[i].load(Ordering::Relaxed)))
    }

    /// `submitblock` answers since start: node, answer label, count.
    #[must_use]
    pub fn block_submissions(&self) -> Vec<(String, &'static str, u64)> {
        let map = self
            .block_submissions
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let mut rows: Vec<_> = map
            .iter()
            .map(|((node, label), n)| (node.clone(), *label, *n))
            .collect();
        rows.sort_unstable();
        rows
    }
}

impl Recorder for MemoryStats {
    fn on_shares(&self, batch: &[ShareEvent]) {
        for event in batch {
            match event {
                ShareEvent::Authorized { .. } => {
                    self.authorized.fetch_add(1, Ordering::Relaxed);
                }
                ShareEvent::Difficulty { .. } => {
                    self.difficulty_changes.fetch_add(1, Ordering::Relaxed);
                }
                ShareEvent::Closed { .. } => {}
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

    fn on_block(&self, event: &BlockEvent) {
        self.block_events.fetch_add(1, Ordering::Relaxed);
        let all = crate::block_status::BlockStatus::ALL;
        if let Some(i) = all.iter().position(|s| *s == event.status) {
            self.block_statuses[i].fetch_add(1, Ordering::Relaxed);
        }
        if !event.submissions.is_empty() {
            let mut map = self
                .block_submissions
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            for answer in &event.submissions {
                let key = (answer.node.clone(), answer.outcome.label());
                *map.entry(key).or_insert(0) += 1;
            }
        }
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

/// Feeds every batch of `queue` to `recorder` until the data plane closes the queue. Blocking:
/// run it on a thread of its own (`spawn_blocking`), never on a runtime worker, because
/// applying a batch takes the live table's write lock, which an API scan at `SCHED_IDLE` may
/// hold for milliseconds; a runtime worker waiting there would delay every task behind it.
pub fn drain_stats(
    queue: &flume::Receiver<warppool_net::StatsBatch<ShareEvent>>,
    recorder: &dyn Recorder,
) {
    while let Ok(batch) = queue.recv() {
        recorder.on_shares(&batch);
    }
}

/// Calls [`Recorder::publish_difficulties`] every `WORKER_DIFFICULTY_PUBLISH_MS` (on a
/// blocking thread) until `shutdown` turns true or its sender is gone. The final publication is
/// the recorder's [`Recorder::flush`] at shutdown.
pub async fn publish_difficulties_task(
    recorder: Arc<dyn Recorder>,
    mut shutdown: tokio::sync::watch::Receiver<bool>,
) {
    let period = Duration::from_millis(WORKER_DIFFICULTY_PUBLISH_MS);
    let mut interval = tokio::time::interval_at(tokio::time::Instant::now() + period, period);
    interval.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            _ = interval.tick() => {}
            changed = shutdown.changed() => {
                if changed.is_err() || *shutdown.borrow() {
                    return;
                }
                continue;
            }
        }
        let recorder = Arc::clone(&recorder);
        if let Err(e) = tokio::task::spawn_blocking(move || recorder.publish_difficulties()).await {
            tracing::error!(error = %e, "worker difficulty publication panicked");
        }
    }
}

/// Feeds block events to `recorder` until the block path closes the queue.
pub async fn drain_block_events(queue: flume::Receiver<BlockEvent>, recorder: Arc<dyn Recorder>) {
    while let Ok(event) = queue.recv_async().await {
        // Recording may wait for room in the storage channel: never on a runtime worker.
        let recorder = Arc::clone(&recorder);
        if tokio::task::spawn_blocking(move || recorder.on_block(&event))
            .await
            .is_err()
        {
            tracing::error!("recording a block event panicked");
        }
    }
}

/// Most connection → worker entries [`SqliteRecorder`] keeps. An entry leaves when its
/// connection closes ([`ShareEvent::Closed`]), so the map holds the live authorized
/// connections, far fewer than this; if it were ever full, a new connection's shares would go
/// unnamed (counted and logged), and nobody else's would.
const CONNECTIONS_REMEMBERED_MAX: usize = 1 << 20;

/// Most worker names [`SqliteRecorder::workers`] lists.
const WORKERS_LISTED_MAX: usize = 4096;

fn unix_now_s() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
}

#[derive(Debug, Default)]
struct Names {
    by_connection: HashMap<warppool_net::stratum::ConnectionId, String>,
    workers: std::collections::BTreeSet<String>,
    /// Every known worker's last difficulty (at most `WORKER_DIFFICULTIES_MAX`): what the data
    /// plane's lookup is rebuilt from.
    difficulties: HashMap<String, Difficulty>,
    /// The entries of `difficulties` changed since the last publication (a subset of its keys,
    /// so bounded by the same limit).
    difficulties_changed: HashMap<String, Difficulty>,
}

impl Names {
    /// Records `worker`'s new difficulty; a new worker in a full map replaces an arbitrary one.
    fn set_difficulty(&mut self, worker: String, difficulty: Difficulty) {
        if self.difficulties.len() >= WORKER_DIFFICULTIES_MAX
            && !self.difficulties.contains_key(&worker)
            && let Some(victim) = self.difficulties.keys().next().cloned()
        {
            self.difficulties.remove(&victim);
            self.difficulties_changed.remove(&victim);
        }
        self.difficulties.insert(worker.clone(), difficulty);
        self.difficulties_changed.insert(worker, difficulty);
        debug_assert!(self.difficulties.len() <= WORKER_DIFFICULTIES_MAX);
        debug_assert!(self.difficulties_changed.len() <= self.difficulties.len());
    }
}

/// The [`Recorder`] backed by SQLite [`Storage`](crate::storage::Storage), with the in-memory
/// counters of [`MemoryStats`] kept alongside (the HTTP API reads both).
#[derive(Debug)]
pub struct SqliteRecorder {
    storage: std::sync::Mutex<Option<crate::storage::Storage>>,
    path: std::path::PathBuf,
    counters: MemoryStats,
    names: std::sync::Mutex<Names>,
    difficulties: WorkerDifficulties,
    /// Authorizations not remembered because the connection map was full.
    unnamed_connections: AtomicU64,
    /// The live view of the pool and its workers (the API reads it).
    live: Arc<crate::live::Live>,
    /// Live events for the API's streams.
    hub: Arc<crate::events::EventHub>,
}

impl SqliteRecorder {
    /// Wraps an open storage and loads the stored worker difficulties (at most
    /// `WORKER_DIFFICULTIES_MAX`, most recently seen first) into the data plane's lookup.
    /// Blocks on a read of the database: call it from a blocking thread.
    #[must_use]
    pub fn new(storage: crate::storage::Storage) -> Self {
        let mut names = Names::default();
        match storage
            .reader()
            .and_then(|r| r.last_difficulties(WORKER_DIFFICULTIES_MAX))
        {
            Ok(rows) => {
                for (worker, difficulty) in rows {
                    if let Ok(d) = Difficulty::from_f64_lossy(difficulty) {
                        names.difficulties.insert(worker, d);
                    }
                }
            }
            Err(e) => {
                tracing::warn!(
                    error = %e,
                    "stored worker difficulties not loaded; workers start at their port's start"
                );
            }
        }
        let stored_best = storage
            .reader()
            .and_then(|r| r.best_all_time(warppool_core::limits::LIVE_WORKERS_MAX))
            .unwrap_or_else(|e| {
                tracing::warn!(error = %e, "stored best shares not loaded into the live table");
                Vec::new()
            });
        let difficulties = WorkerDifficulties::new();
        difficulties.publish(snapshot(&names.difficulties));
        tracing::info!(
            workers = difficulties.len(),
            "stored worker difficulties loaded"
        );
        Self {
            path: storage.path().to_path_buf(),
            storage: std::sync::Mutex::new(Some(storage)),
            counters: MemoryStats::default(),
            names: std::sync::Mutex::new(names),
            difficulties,
            unnamed_connections: AtomicU64::new(0),
            live: Arc::new(crate::live::Live::new(unix_now_s(), stored_best)),
            hub: Arc::default(),
        }
    }

    /// The live event hub.
    #[must_use]
    pub fn hub(&self) -> &Arc<crate::events::EventHub> {
        &self.hub
    }

    /// The live view of the pool and its workers.
    #[must_use]
    pub fn live(&self) -> &Arc<crate::live::Live> {
        &self.live
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

    /// The in-memory counters themselves (block events by status and submissions by node).
    #[must_use]
    pub const fn memory_stats(&self) -> &MemoryStats {
        &self.counters
    }

    /// The storage writer's figures, while storage runs.
    #[must_use]
    pub fn storage_stats(&self) -> Option<crate::storage::StorageStats> {
        let guard = self
            .storage
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        guard.as_ref().map(crate::storage::Storage::stats)
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

impl SqliteRecorder {
    /// Remembers `connection`'s worker (until [`ShareEvent::Closed`]); a full map leaves only
    /// this connection unnamed, counted and logged.
    fn remember(&self, names: &mut Names, connection: ConnectionId, username: &str) {
        if names.by_connection.len() < CONNECTIONS_REMEMBERED_MAX
            || names.by_connection.contains_key(&connection)
        {
            names.by_connection.insert(connection, username.to_owned());
            return;
        }
        let n = self.unnamed_connections.fetch_add(1, Ordering::Relaxed) + 1;
        if n.is_power_of_two() {
            tracing::warn!(
                unnamed = n,
                "connection → worker map full (CONNECTIONS_REMEMBERED_MAX): shares of new \
                 connections go unnamed"
            );
        }
    }
}

impl Recorder for SqliteRecorder {
    fn on_shares(&self, batch: &[ShareEvent]) {
        self.counters.on_shares(batch);
        let now = unix_now_s();
        let changes = self.live.on_events(batch, now);
        let guard = self
            .storage
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let Some(storage) = guard.as_ref() else {
            return;
        };
        record_transitions(storage, &changes, now);
        let mut names = self.lock_names();
        for event in batch {
            match event {
                ShareEvent::Authorized {
                    connection,
                    username,
                    user_agent,
                    ..
                } => {
                    self.remember(&mut names, *connection, username);
                    session_started(storage, event, now);
                    if names.workers.len() < WORKERS_LISTED_MAX {
                        names.workers.insert(username.to_string());
                    }
                    let ua = user_agent.as_deref();
                    if let Err(e) = storage.worker_seen(username, ua, now) {
                        tracing::warn!(error = %e, "worker not recorded");
                    }
                }
                ShareEvent::Difficulty {
                    connection,
                    difficulty,
                    family,
                } => {
                    // Keyed by username and device family (warppool-net `UserAgentFamily`).
                    if let Some(worker) = names.by_connection.get(connection) {
                        let key = family.key(worker);
                        names.set_difficulty(key, *difficulty);
                    }
                }
                ShareEvent::Closed { connection, reason } => {
                    names.by_connection.remove(connection);
                    let label = crate::storage::close_reason_label(*reason);
                    if let Err(e) = storage.session_ended(*connection, label, now) {
                        tracing::warn!(error = %e, "session end not recorded");
                    }
                }
                ShareEvent::Share(s) => {
                    let Some(worker) = names.by_connection.get(&s.connection) else {
                        continue;
                    };
                    storage.record_share(&crate::storage::ShareRecord {
                        worker,
                        time_unix_s: now,
                        difficulty: s.difficulty.to_f64_lossy(),
                        hash_difficulty: s.hash_difficulty,
                        reject: s.reject.map(warppool_core::ShareReject::metrics_label),
                    });
                }
            }
        }
    }

    fn on_block(&self, event: &BlockEvent) {
        use crate::journal::BlockStatus as S;
        self.counters.on_block(event);
        crate::api::v1::stream::publish_block(&self.hub, event);
        let now = unix_now_s();
        self.with_storage(|storage| {
            // Each node's answer of a submission round goes to the block's history first.
            for answer in &event.submissions {
                let result = answer.outcome.describe();
                if let Err(e) =
                    storage.record_block_submission(&event.hash, &answer.node, now, &result)
                {
                    tracing::warn!(error = %e, hash = %event.hash, "block submission not recorded");
                }
            }
            let result = match event.status {
                S::Found => {
                    // The exact finder comes with the candidate; a block journaled by an
                    // earlier version has none and is recorded under the empty worker name.
                    let finder = event.finder.as_ref();
                    storage.record_block(crate::storage::BlockRecord {
                        height: event.height,
                        hash: event.hash.clone(),
                        worker: finder.map(|f| f.worker.clone()).unwrap_or_default(),
                        payout_address: finder
                            .map(|f| f.payout_address().to_owned())
                            .unwrap_or_default(),
                        extranonce1: finder.map(|f| f.extranonce1.clone()),
                        user_agent: finder.and_then(|f| f.user_agent.clone()),
                        status: S::Found,
                        found_unix_s: now,
                    })
                }
                status => storage.set_block_status(&event.hash, status, now),
            };
            if let Err(e) = result {
                tracing::error!(error = %e, hash = %event.hash, "block not recorded in storage");
            }
            let message = serde_json::json!({
                "height": event.height,
                "hash": event.hash,
                "status": event.status.as_str(),
                "detail": event.detail,
                "worker": event.finder.as_ref().map(|f| f.worker.as_str()),
            });
            if let Err(e) = storage.record_event(now, "block", &message) {
                tracing::warn!(error = %e, "block event not recorded");
            }
        });
    }

    fn flush(&self) {
        self.counters.flush();
        self.publish_difficulties();
        self.with_storage(|storage| {
            if let Err(e) = storage.flush() {
                tracing::error!(error = %e, "storage flush failed");
            }
        });
    }

    fn worker_difficulties(&self) -> Option<WorkerDifficulties> {
        Some(self.difficulties.clone())
    }

    fn publish_difficulties(&self) {
        let (changed, map) = {
            let mut names = self.lock_names();
            if names.difficulties_changed.is_empty() {
                return;
            }
            let changed: Vec<(String, Difficulty)> = names.difficulties_changed.drain().collect();
            (changed, snapshot(&names.difficulties))
        };
        self.difficulties.publish(map);
        let now = unix_now_s();
        let mut unsent = Vec::new();
        self.with_storage(|storage| {
            for (worker, difficulty) in changed {
                if let Err(e) = storage.set_last_difficulty(&worker, difficulty.to_f64_lossy(), now)
                {
                    tracing::debug!(error = %e, %worker, "worker difficulty not stored yet");
                    unsent.push((worker, difficulty));
                }
            }
        });
        if !unsent.is_empty() {
            // A full storage channel: retried at the next publication, unless changed again.
            tracing::warn!(
                workers = unsent.len(),
                "worker difficulties not stored; retrying"
            );
            let mut names = self.lock_names();
            for (worker, difficulty) in unsent {
                if names.difficulties.contains_key(&worker) {
                    names
                        .difficulties_changed
                        .entry(worker)
                        .or_insert(difficulty);
                }
            }
        }
    }
}

/// Opens the session of an `Authorized` event in storage (dropped and counted on a full
/// channel).
fn session_started(storage: &crate::storage::Storage, event: &ShareEvent, now: i64) {
    let ShareEvent::Authorized {
        connection,
        username,
        user_agent,
        peer,
        local_port,
        tls,
    } = event
    else {
        return;
    };
    let start = crate::storage::SessionStart {
        connection: *connection,
        worker: username.clone(),
        user_agent: user_agent.clone(),
        peer: *peer,
        local_port: *local_port,
        tls: *tls,
        time_unix_s: now,
    };
    if let Err(e) = storage.session_started(start) {
        tracing::warn!(error = %e, "session start not recorded");
    }
}

/// Stores each worker's online/offline change as a `worker` event (its timeline).
fn record_transitions(
    storage: &crate::storage::Storage,
    changes: &[crate::live::Transition],
    now: i64,
) {
    for change in changes {
        let message = serde_json::json!({
            "worker": change.worker,
            "status": if change.online { "online" } else { "offline" },
            "reason": change.reason.map(crate::storage::close_reason_label),
        });
        if let Err(e) = storage.record_event(now, "worker", &message) {
            tracing::warn!(error = %e, "worker status change not recorded");
        }
    }
}

/// The data plane's lookup built from the recorder's map.
fn snapshot(difficulties: &HashMap<String, Difficulty>) -> HashMap<Box<str>, Difficulty> {
    debug_assert!(difficulties.len() <= WORKER_DIFFICULTIES_MAX);
    difficulties
        .iter()
        .map(|(worker, d)| (Box::from(worker.as_str()), *d))
        .collect()
}
