//! The live view of the pool and its workers: what the API answers from memory, never from
//! SQLite, so `/api/v1/workers` at 10,000 workers costs a sort, not 30,000 queries.
//!
//! # Responsibilities
//! - Fed with every batch of share events the recorder drains from the shards
//!   ([`Live::on_events`]): authorizations, judged shares, difficulty changes and closes.
//! - Per worker ([`LiveWorker`]): a minutes ring (the last hour) and an hours ring (the last
//!   day) of accepted/rejected/stale counts and accepted difficulty, totals, best shares,
//!   connections, the status rule ([`WorkerStatus`]).
//! - Pool-wide: the same rings over every share.
//! - Bounded: at most `LIVE_WORKERS_MAX` workers; a worker whose connections all closed more
//!   than `LIVE_WORKER_FORGET_SECS` ago makes room; past that a new worker is not followed
//!   (counted in [`Live::untracked`], logged) while SQLite still records it.
//!
//! Readers (the API's query threads) take a read lock and copy what they need; the recorder
//! takes the write lock once per batch.

pub mod conn;
pub mod device;
pub mod ring;
pub mod worker;

use std::collections::HashMap;
use std::sync::{
    RwLock,
    atomic::{AtomicU64, Ordering},
};

use warppool_core::limits::{LIVE_WORKER_FORGET_SECS, LIVE_WORKERS_MAX};
use warppool_core::plane::{ConnectionId, ShareEvent};

use self::conn::Conn;
pub use self::conn::{ConnectionFilter, ConnectionView};
pub use self::ring::Tally;
use self::worker::{Hours, Minutes};
pub use self::worker::{LiveWorker, WorkerStatus};

/// Expected hashes per share of difficulty 1.
pub const HASHES_PER_DIFFICULTY: f64 = 4_294_967_296.0;

/// Hashes per second from an accepted difficulty sum over `secs` seconds (0 for `secs <= 0`).
#[must_use]
pub fn hashes_per_second(difficulty_sum: f64, secs: i64) -> f64 {
    if secs <= 0 {
        return 0.0;
    }
    difficulty_sum * HASHES_PER_DIFFICULTY / secs as f64
}

/// A worker came online (its first connection authorized) or went offline (its last one
/// closed): what its event timeline records.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Transition {
    /// The worker name.
    pub worker: String,
    /// `true`: came online; `false`: went offline.
    pub online: bool,
    /// Why its last connection closed (`None` when it moved to another name, or online).
    pub reason: Option<warppool_core::plane::CloseReason>,
}

impl Transition {
    fn offline(w: &LiveWorker, reason: Option<warppool_core::plane::CloseReason>) -> Self {
        Self {
            worker: w.name.to_string(),
            online: false,
            reason,
        }
    }
}

/// The pool-wide tallies.
#[derive(Debug, Default)]
pub struct PoolTallies {
    /// Per-minute tallies of every share.
    pub minutes: Minutes,
    /// Per-hour tallies of every share.
    pub hours: Hours,
    /// Accepted shares since start.
    pub accepted: u64,
    /// Rejected shares since start, by reason.
    pub rejects: std::collections::BTreeMap<&'static str, u64>,
}

#[derive(Debug, Default)]
struct Inner {
    /// Workers by slot; `None` is a free slot (listed in `free`).
    slots: Vec<Option<LiveWorker>>,
    free: Vec<usize>,
    by_name: HashMap<Box<str>, usize>,
    by_connection: HashMap<ConnectionId, Conn>,
    pool: PoolTallies,
    /// Stored all-time best shares of workers not followed yet (taken at their first
    /// authorization).
    stored_best: HashMap<Box<str>, f64>,
}

/// The live table (see the module docs).
#[derive(Debug)]
pub struct Live {
    inner: RwLock<Inner>,
    started_at: i64,
    untracked: AtomicU64,
    /// Bumped by every batch that authorizes or closes a connection (see
    /// [`Live::generation`]).
    generation: AtomicU64,
}

impl Live {
    /// An empty table whose counting starts at `now` (Unix seconds); `stored_best` holds the
    /// all-time best share of workers seen before (from storage).
    #[must_use]
    pub fn new(now: i64, stored_best: impl IntoIterator<Item = (String, f64)>) -> Self {
        let inner = Inner {
            stored_best: stored_best
                .into_iter()
                .take(LIVE_WORKERS_MAX)
                .map(|(k, v)| (k.into_boxed_str(), v))
                .collect(),
            ..Inner::default()
        };
        Self {
            inner: RwLock::new(inner),
            started_at: now,
            untracked: AtomicU64::new(0),
            generation: AtomicU64::new(0),
        }
    }

    /// When counting began.
    #[must_use]
    pub const fn started_at(&self) -> i64 {
        self.started_at
    }

    /// Authorizations of new workers not followed because the table was full.
    #[must_use]
    pub fn untracked(&self) -> u64 {
        self.untracked.load(Ordering::Relaxed)
    }

    /// Changes whenever a worker or a connection comes or goes (shares and difficulty steps
    /// leave it alone): an answer computed at one generation lists the same workers and
    /// connections as one computed later at the same generation.
    #[must_use]
    pub fn generation(&self) -> u64 {
        self.generation.load(Ordering::Acquire)
    }

    /// Bumps the generation when `batch` authorizes or closes a connection. Called under the
    /// write lock: a reader that saw the new generation sees the batch once it takes the read
    /// lock.
    fn bump_generation(&self, batch: &[ShareEvent]) {
        let membership =
            |e: &ShareEvent| matches!(e, ShareEvent::Authorized { .. } | ShareEvent::Closed { .. });
        if batch.iter().any(membership) {
            self.generation.fetch_add(1, Ordering::AcqRel);
        }
    }

    /// Applies one batch of share events at `now`; returns the workers that came online (their
    /// first connection opened) or went offline (their last one closed), in order.
    pub fn on_events(&self, batch: &[ShareEvent], now: i64) -> Vec<Transition> {
        let mut inner = self.inner.write().unwrap_or_else(|e| e.into_inner());
        self.bump_generation(batch);
        let mut changes = Vec::new();
        for event in batch {
            match event {
                ShareEvent::Authorized {
                    connection,
                    username,
                    user_agent,
                    peer,
                    local_port,
                    tls,
                } => {
                    let facts = conn::Facts {
                        peer: *peer,
                        local_port: *local_port,
                        tls: *tls,
                    };
                    self.authorized(
                        &mut inner,
                        (*connection, username, user_agent),
                        facts,
                        now,
                        &mut changes,
                    );
                }
                ShareEvent::Share(s) => {
                    let reject = s.reject.map(warppool_core::ShareReject::metrics_label);
                    let difficulty = s.difficulty.to_f64_lossy();
                    inner.pool_share(now, difficulty, reject);
                    if let Some(c) = inner.by_connection.get_mut(&s.connection) {
                        c.share(now, difficulty, reject.is_none());
                    }
                    if let Some(w) = inner.worker_of(s.connection) {
                        w.share(now, difficulty, s.hash_difficulty, reject);
                    }
                }
                ShareEvent::Difficulty {
                    connection,
                    difficulty,
                    ..
                } => {
                    if let Some(c) = inner.by_connection.get_mut(connection) {
                        c.difficulty = difficulty.to_f64_lossy();
                    }
                    if let Some(w) = inner.worker_of(*connection) {
                        w.difficulty = difficulty.to_f64_lossy();
                        w.difficulty_at = Some(now);
                    }
                }
                ShareEvent::Closed { connection, reason } => {
                    if let Some(conn) = inner.by_connection.remove(connection)
                        && let Some(Some(w)) = inner.slots.get_mut(conn.worker)
                    {
                        w.disconnect(now);
                        if w.connections == 0 {
                            changes.push(Transition::offline(w, Some(*reason)));
                        }
                    }
                }
            }
        }
        changes
    }

    fn authorized(
        &self,
        inner: &mut Inner,
        (connection, username, user_agent): (ConnectionId, &str, &Option<String>),
        facts: conn::Facts,
        now: i64,
        changes: &mut Vec<Transition>,
    ) {
        // A re-authorize on the same connection moves it to the new name.
        if let Some(old) = inner.by_connection.remove(&connection)
            && let Some(Some(w)) = inner.slots.get_mut(old.worker)
        {
            w.disconnect(now);
            if w.connections == 0 {
                changes.push(Transition::offline(w, None));
            }
        }
        let Some(slot) = inner.slot_for(username, now) else {
            let n = self.untracked.fetch_add(1, Ordering::Relaxed) + 1;
            if n.is_power_of_two() {
                tracing::warn!(
                    untracked = n,
                    limit = LIVE_WORKERS_MAX,
                    "live worker table full (LIVE_WORKERS_MAX): new workers are stored but not \
                     shown live"
                );
            }
            return;
        };
        if let Some(Some(w)) = inner.slots.get_mut(slot) {
            w.connect(user_agent.as_deref(), now);
            if w.connections == 1 {
                changes.push(Transition {
                    worker: w.name.to_string(),
                    online: true,
                    reason: None,
                });
            }
        }
        let conn = Conn::new(slot, facts, user_agent.as_deref(), now);
        inner.by_connection.insert(connection, conn);
    }

    /// The authorized connections that pass `filter` with an id above `after`, by id, at
    /// most `limit`, and how many passed in all (read lock held for one pass).
    #[must_use]
    pub fn connections(
        &self,
        filter: &ConnectionFilter,
        after: Option<ConnectionId>,
        limit: usize,
        now: i64,
    ) -> (Vec<ConnectionView>, usize) {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let mut total = 0;
        let mut page: Vec<(ConnectionId, &Conn, &str)> = Vec::new();
        for (id, c) in &inner.by_connection {
            let Some(Some(w)) = inner.slots.get(c.worker) else {
                continue;
            };
            if !filter.passes(&w.name, c) {
                continue;
            }
            total += 1;
            if after.is_some_and(|a| *id <= a) {
                continue;
            }
            page.push((*id, c, &w.name));
        }
        page.sort_unstable_by_key(|(id, _, _)| *id);
        page.truncate(limit);
        let rows = page
            .into_iter()
            .map(|(id, c, name)| c.view(id, name, now))
            .collect();
        (rows, total)
    }

    /// The ids of the authorized connections that pass `filter`.
    #[must_use]
    pub fn connection_ids(&self, filter: &ConnectionFilter) -> Vec<ConnectionId> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        inner
            .by_connection
            .iter()
            .filter(|(_, c)| {
                inner
                    .slots
                    .get(c.worker)
                    .and_then(Option::as_ref)
                    .is_some_and(|w| filter.passes(&w.name, c))
            })
            .map(|(id, _)| *id)
            .collect()
    }

    /// The connection `id`, if it is authorized and open.
    #[must_use]
    pub fn connection(&self, id: ConnectionId, now: i64) -> Option<ConnectionView> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let c = inner.by_connection.get(&id)?;
        let w = inner.slots.get(c.worker)?.as_ref()?;
        Some(c.view(id, &w.name, now))
    }

    /// Authorized connections open now.
    #[must_use]
    pub fn connection_count(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .by_connection
            .len()
    }

    /// Runs `f` over every live worker (read lock held: copy what you need).
    pub fn for_each(&self, mut f: impl FnMut(&LiveWorker)) {
        self.for_each_slot(|_, w| f(w));
    }

    /// Runs `f` over every live worker with its slot number (read lock held). A slot is
    /// reused once its worker is dropped: whoever comes back with [`LiveTable::with_slots`]
    /// checks the worker there is still the one it saw.
    pub fn for_each_slot(&self, mut f: impl FnMut(usize, &LiveWorker)) {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        for (slot, w) in inner.slots.iter().enumerate() {
            if let Some(w) = w {
                f(slot, w);
            }
        }
    }

    /// Runs `f(i, worker)` on the worker in `slots[i]` for each `i`, in order, under one read
    /// lock (empty slots are skipped).
    pub fn with_slots(&self, slots: &[usize], mut f: impl FnMut(usize, &LiveWorker)) {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        for (i, &slot) in slots.iter().enumerate() {
            if let Some(Some(w)) = inner.slots.get(slot) {
                f(i, w);
            }
        }
    }

    /// Runs `f` on the worker named `name`, if followed.
    pub fn with_worker<T>(&self, name: &str, f: impl FnOnce(&LiveWorker) -> T) -> Option<T> {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        let slot = *inner.by_name.get(name)?;
        inner.slots.get(slot)?.as_ref().map(f)
    }

    /// Runs `f` on the pool-wide tallies.
    pub fn with_pool<T>(&self, f: impl FnOnce(&PoolTallies) -> T) -> T {
        let inner = self.inner.read().unwrap_or_else(|e| e.into_inner());
        f(&inner.pool)
    }

    /// Workers followed now.
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .by_name
            .len()
    }

    /// Whether no worker is followed.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

impl Inner {
    fn worker_of(&mut self, connection: ConnectionId) -> Option<&mut LiveWorker> {
        let worker = self.by_connection.get(&connection)?.worker;
        self.slots.get_mut(worker)?.as_mut()
    }

    fn pool_share(&mut self, now: i64, difficulty: f64, reject: Option<&'static str>) {
        match reject {
            None => {
                self.pool.minutes.accept(now, difficulty);
                self.pool.hours.accept(now, difficulty);
                self.pool.accepted += 1;
            }
            Some(reason) => {
                let stale = reason == "stale";
                self.pool.minutes.reject(now, stale);
                self.pool.hours.reject(now, stale);
                *self.pool.rejects.entry(reason).or_insert(0) += 1;
            }
        }
    }

    /// The slot of `name`, creating it (evicting a long-offline worker when full).
    fn slot_for(&mut self, name: &str, now: i64) -> Option<usize> {
        if let Some(&slot) = self.by_name.get(name) {
            return Some(slot);
        }
        if self.by_name.len() >= LIVE_WORKERS_MAX && !self.evict_one(now) {
            return None;
        }
        let mut worker = LiveWorker::new(name, now);
        worker.best_stored = self.stored_best.remove(name).unwrap_or(0.0);
        let slot = match self.free.pop() {
            Some(slot) => {
                self.slots[slot] = Some(worker);
                slot
            }
            None => {
                self.slots.push(Some(worker));
                self.slots.len() - 1
            }
        };
        self.by_name.insert(name.into(), slot);
        Some(slot)
    }

    /// Frees the slot of the worker offline the longest, if that is over
    /// `LIVE_WORKER_FORGET_SECS`.
    fn evict_one(&mut self, now: i64) -> bool {
        let victim = self
            .slots
            .iter()
            .enumerate()
            .filter_map(|(i, w)| {
                let w = w.as_ref()?;
                let gone = w.disconnected_at.filter(|_| w.connections == 0)?;
                (now - gone > LIVE_WORKER_FORGET_SECS).then_some((gone, i))
            })
            .min();
        let Some((_, slot)) = victim else {
            return false;
        };
        if let Some(w) = self.slots[slot].take() {
            self.by_name.remove(&w.name);
        }
        self.free.push(slot);
        true
    }
}
