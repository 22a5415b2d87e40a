//! The block path: a found block is never lost, and its status means what it says.
//!
//! # Responsibilities
//!
//! For every block candidate from the data plane: (a) serialize it and write it to the
//! journal before anything else, on the block path's own thread ([`BlockPath::spawn`]: its own
//! runtime and its own RPC connections, so HTTP queries, template parsing or storage never
//! queue in front of it); the line's `fsync` runs on that runtime's own blocking thread while
//! the block goes out, so a slow disk never delays a block (decision 0012); every later
//! journal line is synced there too, never on the runtime thread; (b) `submitblock` to every
//! node concurrently; (c) ask every node
//! where the block is (`getblockheader`): **in chain** only when a node reports
//! `confirmations >= 1`, **orphaned** when the nodes that know it report `-1`; `duplicate` and
//! `inconclusive` only mean the node has it; (d) fast rounds with exponential back-off while
//! no node has it in a chain; (e) after that, the tracker ([`BlockPath::run`]) re-checks every
//! unfinished block every `BLOCK_RECHECK_MS` (and at once on [`BlockPath::wake`], which the
//! pool calls on every new tip): a block no node knows is resubmitted, so a node that was
//! down for hours gets it within `BLOCK_RECHECK_MS` of its return; an in-chain block becomes
//! **mature** at 100 confirmations; a reorg moves it to orphaned and back; an orphan is
//! settled once the block at its height in the active chain is 100 deep; (f) every status
//! change is journaled and sent as a [`BlockEvent`] (storage, UI, notifiers) with the nodes'
//! answers; (g) at start-up the journal's unfinished blocks are tracked again.
//!
//! # Usage
//!
//! ```no_run
//! # use std::sync::Arc;
//! # async fn f(nodes: Arc<warppool_control::rpc::Nodes>,
//! #            candidates: flume::Receiver<warppool_net::stratum::Candidate>) {
//! use warppool_control::{blocks::BlockPath, journal::Journal};
//! let journal = Journal::open(std::path::Path::new("blocks.journal")).unwrap();
//! let (path, events) = BlockPath::new(nodes, journal);
//! let thread = Arc::new(path).spawn(candidates).unwrap();
//! thread.join(std::time::Duration::from_secs(10)).await;
//! # drop(events); }
//! ```

mod check;

use std::{
    collections::HashMap,
    sync::{Arc, Mutex},
    time::Duration,
};

use tokio::{sync::Notify, time::Instant};
use warppool_core::limits::{
    BLOCK_CHECKS_PER_PASS_MAX, BLOCK_EVENTS_QUEUE_MAX, BLOCK_RECHECK_MS, BLOCK_RECHECK_SETTLED_MS,
    BLOCK_SUBMIT_ATTEMPTS_MAX, BLOCK_SUBMIT_BACKOFF_MS_MAX, BLOCK_SUBMIT_BACKOFF_MS_MIN,
    BLOCK_SUBMIT_TOTAL_MS_MAX, BLOCKS_TRACKED_WARN,
};
use warppool_net::stratum::Candidate;

pub use self::check::{NodeAnswer, NodeView, SubmitOutcome, classify};
use crate::{
    journal::{
        BlockStatus, Finder, FoundBlock, Journal, JournalEntry, JournalError, Unsynced, unix_now,
    },
    rpc::Nodes,
};

/// What happened to a block (for storage, notifiers and the UI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockEvent {
    /// Height.
    pub height: u32,
    /// Hash, display order.
    pub hash: String,
    /// The status from now on.
    pub status: BlockStatus,
    /// Why: node answers, confirmations, the competing block of an orphan.
    pub detail: Option<String>,
    /// Who found it: set on [`BlockStatus::Found`] events (also when a journaled block is
    /// replayed at start-up), `None` on later status changes and for blocks journaled by
    /// versions before the exact finder.
    pub finder: Option<Finder>,
    /// Each node's answer when this event reports a `submitblock` round (else empty).
    pub submissions: Vec<NodeAnswer>,
}

/// Retry and re-check pacing of the block path (defaults from `limits`; tests shorten them).
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// Fast rounds for a new block at most.
    pub attempts_max: u32,
    /// Total time of the fast rounds at most.
    pub total_max: Duration,
    /// First pause between fast rounds.
    pub backoff_min: Duration,
    /// Longest pause between fast rounds.
    pub backoff_max: Duration,
    /// Re-check pace of a block not in a chain yet (resubmitted when no node knows it).
    pub recheck: Duration,
    /// Re-check pace of an in-chain or orphaned block when no new tip wakes the tracker.
    pub recheck_settled: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts_max: BLOCK_SUBMIT_ATTEMPTS_MAX,
            total_max: Duration::from_millis(BLOCK_SUBMIT_TOTAL_MS_MAX),
            backoff_min: Duration::from_millis(BLOCK_SUBMIT_BACKOFF_MS_MIN),
            backoff_max: Duration::from_millis(BLOCK_SUBMIT_BACKOFF_MS_MAX),
            recheck: Duration::from_millis(BLOCK_RECHECK_MS),
            recheck_settled: Duration::from_millis(BLOCK_RECHECK_SETTLED_MS),
        }
    }
}

/// An unfinished block the path follows.
#[derive(Debug)]
struct Tracked {
    block: Arc<FoundBlock>,
    status: BlockStatus,
    settled: bool,
    next_check: Instant,
    /// A fast round or a re-check is running for it.
    busy: bool,
}

/// The block path (see the module docs).
#[derive(Debug)]
pub struct BlockPath {
    nodes: Arc<Nodes>,
    journal: Arc<Mutex<Journal>>,
    events: flume::Sender<BlockEvent>,
    retry: RetryPolicy,
    tracked: Mutex<HashMap<String, Tracked>>,
    wake: Notify,
}

impl BlockPath {
    /// A block path over `nodes` writing to `journal`, and the receiver of its events (bounded
    /// by `BLOCK_EVENTS_QUEUE_MAX`). The journal's unfinished blocks are tracked again by
    /// [`BlockPath::replay`].
    #[must_use]
    pub fn new(nodes: Arc<Nodes>, journal: Journal) -> (Self, flume::Receiver<BlockEvent>) {
        let (events, receiver) = flume::bounded(BLOCK_EVENTS_QUEUE_MAX);
        (
            Self {
                nodes,
                journal: Arc::new(Mutex::new(journal)),
                events,
                retry: RetryPolicy::default(),
                tracked: Mutex::new(HashMap::new()),
                wake: Notify::new(),
            },
            receiver,
        )
    }

    /// Replaces the retry bounds.
    #[must_use]
    pub const fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    /// Re-checks every tracked block now (a new tip, a node back).
    pub fn wake(&self) {
        for t in self.lock_tracked().values_mut() {
            t.next_check = Instant::now();
        }
        self.wake.notify_one();
    }

    /// The status of every block the path still follows (hash → status).
    #[must_use]
    pub fn tracked(&self) -> Vec<(String, BlockStatus)> {
        self.lock_tracked()
            .iter()
            .map(|(h, t)| (h.clone(), t.status))
            .collect()
    }

    fn lock_tracked(&self) -> std::sync::MutexGuard<'_, HashMap<String, Tracked>> {
        self.tracked
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn lock_journal(&self) -> std::sync::MutexGuard<'_, Journal> {
        lock(&self.journal)
    }

    /// Syncs a written line on the block path runtime's own blocking thread (never a shared
    /// pool where HTTP queries or template parsing could wait in front of it, never the runtime
    /// thread the next block needs), then compacts the journal if the line finished a block.
    /// A failure is logged here, at once, and returned to whoever awaits the handle.
    fn sync_in_background(
        &self,
        unsynced: Unsynced,
        hash: &str,
    ) -> tokio::task::JoinHandle<Result<(), JournalError>> {
        let journal = Arc::clone(&self.journal);
        let hash = hash.to_owned();
        tokio::task::spawn_blocking(move || {
            let finished = unsynced.finished_a_block;
            let synced = unsynced.sync().and_then(|()| {
                if finished {
                    lock(&journal).compact_if_due()
                } else {
                    Ok(())
                }
            });
            if let Err(e) = &synced {
                tracing::error!(
                    %hash, error = %e,
                    "block journal sync failed: the line is written but may not survive a \
                     power loss"
                );
            }
            synced
        })
    }

    /// Writes a status line on the calling thread (the block path's own) and syncs it in the
    /// background.
    fn append(&self, entry: &JournalEntry) -> Result<(), JournalError> {
        let unsynced = self.lock_journal().write(entry)?;
        drop(self.sync_in_background(unsynced, &entry.hash));
        Ok(())
    }

    fn emit(&self, event: BlockEvent) {
        if let Err(e) = self.events.try_send(event) {
            tracing::warn!(
                error = %e,
                "block event queue full or closed; event dropped (the journal has it)"
            );
        }
    }

    /// Journals and announces a status change, and updates (or ends) the tracking.
    fn set_status(
        &self,
        block: &FoundBlock,
        status: BlockStatus,
        settled: bool,
        detail: Option<String>,
        submissions: Vec<NodeAnswer>,
    ) {
        let entry = JournalEntry {
            height: block.height,
            hash: block.hash.clone(),
            time: unix_now(),
            status,
            block_hex: None,
            detail: detail.clone(),
            finder: None,
            settled,
        };
        if let Err(e) = self.append(&entry) {
            tracing::error!(hash = %block.hash, error = %e, "cannot journal block status");
        }
        {
            let mut tracked = self.lock_tracked();
            if entry.is_final() {
                tracked.remove(&block.hash);
            } else if let Some(t) = tracked.get_mut(&block.hash) {
                t.status = status;
                t.settled = settled;
            }
        }
        self.emit(BlockEvent {
            height: block.height,
            hash: block.hash.clone(),
            status,
            detail,
            finder: None,
            submissions,
        });
    }

    fn current(&self, hash: &str) -> Option<(BlockStatus, bool)> {
        self.lock_tracked().get(hash).map(|t| (t.status, t.settled))
    }

    fn track(&self, block: Arc<FoundBlock>, status: BlockStatus, busy: bool) {
        let mut tracked = self.lock_tracked();
        tracked.entry(block.hash.clone()).or_insert(Tracked {
            block,
            status,
            settled: false,
            next_check: Instant::now(),
            busy,
        });
        // Once per BLOCKS_TRACKED_WARN more, not once per block.
        if tracked.len() > BLOCKS_TRACKED_WARN && tracked.len() % BLOCKS_TRACKED_WARN == 1 {
            tracing::warn!(
                tracked = tracked.len(),
                "more unfinished blocks than BLOCKS_TRACKED_WARN: are the nodes answering?"
            );
        }
    }

    fn release(&self, hash: &str) {
        let recheck = self.retry.recheck;
        if let Some(t) = self.lock_tracked().get_mut(hash) {
            t.busy = false;
            t.next_check = Instant::now() + recheck;
        }
    }

    /// Writes a newly found block to the journal, then submits it (while the line is synced in
    /// the background) and follows it through its fast rounds; the tracker keeps following it
    /// after them.
    ///
    /// # Errors
    /// [`JournalError`] if the block could not be journaled or synced; it is still submitted.
    pub async fn submit_found(&self, block: FoundBlock) -> Result<BlockStatus, JournalError> {
        tracing::info!(height = block.height, hash = %block.hash, "block found");
        let written = self.lock_journal().write_found(&block);
        let synced = match written {
            Ok(unsynced) => Ok(self.sync_in_background(unsynced, &block.hash)),
            Err(e) => {
                // Never hold a block back: submit anyway, and say loudly that it is not on disk.
                tracing::error!(
                    hash = %block.hash, error = %e, "block NOT journaled; submitting anyway"
                );
                Err(e)
            }
        };
        self.emit(BlockEvent {
            height: block.height,
            hash: block.hash.clone(),
            status: BlockStatus::Found,
            detail: None,
            finder: block.finder.clone(),
            submissions: Vec::new(),
        });
        let block = Arc::new(block);
        self.track(Arc::clone(&block), BlockStatus::Found, true);
        let status = self.fast_rounds(&block).await;
        self.release(&block.hash);
        match synced?.await {
            Ok(synced) => synced.map(|()| status),
            Err(e) => Err(JournalError::Io {
                path: self.lock_journal().path().to_path_buf(),
                source: std::io::Error::other(e),
            }),
        }
    }

    /// Tracks every unfinished block of the journal again, due at once: the tracker checks
    /// them (resubmitting those no node knows) concurrently with new blocks, at most
    /// `BLOCK_CHECKS_PER_PASS_MAX` at a time, so a long journal never delays a new block.
    /// Returns how many.
    ///
    /// # Errors
    /// None today; kept for callers that report a journal failure.
    pub async fn replay(&self) -> Result<usize, JournalError> {
        let unfinished = self.lock_journal().take_unfinished();
        let count = unfinished.len();
        for u in unfinished {
            tracing::warn!(
                height = u.block.height,
                hash = %u.block.hash,
                status = %u.status,
                "tracking an unfinished block from the journal"
            );
            // Announced as found again, with its finder: storage records it if the crash came
            // before the first record was committed (recording a hash twice keeps the first).
            self.emit(BlockEvent {
                height: u.block.height,
                hash: u.block.hash.clone(),
                status: BlockStatus::Found,
                detail: Some("replayed from the journal".to_owned()),
                finder: u.block.finder.clone(),
                submissions: Vec::new(),
            });
            self.track(Arc::new(u.block), u.status, false);
        }
        self.wake.notify_one();
        Ok(count)
    }

    /// Submits `block` at once, then checks it with back-off until a node has it in a chain,
    /// it is rejected or orphaned, or the fast rounds' bounds (rounds, total time, slow RPC
    /// calls included) run out; the last status either way.
    pub async fn fast_rounds(&self, block: &FoundBlock) -> BlockStatus {
        let rounds = async {
            let mut backoff = self.retry.backoff_min;
            let mut status = BlockStatus::Found;
            for attempt in 1..=self.retry.attempts_max {
                status = self.check(block, attempt == 1).await;
                if !matches!(status, BlockStatus::Found | BlockStatus::Submitted) {
                    return status;
                }
                if attempt < self.retry.attempts_max {
                    tracing::warn!(
                        hash = %block.hash,
                        attempt,
                        %status,
                        backoff_ms = backoff.as_millis() as u64,
                        "block not in a chain yet; checking again"
                    );
                    tokio::time::sleep(backoff).await;
                    backoff = (backoff * 2).min(self.retry.backoff_max);
                }
            }
            status
        };
        if let Ok(status) = tokio::time::timeout(self.retry.total_max, rounds).await {
            if matches!(status, BlockStatus::Found | BlockStatus::Submitted) {
                self.left_to_tracker(block);
            }
            return status;
        }
        self.left_to_tracker(block);
        self.current(&block.hash)
            .map_or(BlockStatus::Found, |(status, _)| status)
    }

    fn left_to_tracker(&self, block: &FoundBlock) {
        tracing::error!(
            hash = %block.hash,
            height = block.height,
            recheck_s = self.retry.recheck.as_secs(),
            "block not in any chain after its fast rounds; the tracker resubmits it until a \
             node has it"
        );
    }

    /// Drains `candidates` until the data plane closes it, each block in its own task so a
    /// slow node never delays journaling the next one, and runs the tracker meanwhile. Returns
    /// once the queue is closed and every block's fast rounds are over (the tracker's
    /// re-checks stop then too; unfinished blocks stay in the journal).
    pub async fn run(self: Arc<Self>, candidates: flume::Receiver<Candidate>) {
        let tracker = tokio::spawn(Arc::clone(&self).tracker());
        let mut tasks = tokio::task::JoinSet::new();
        while let Ok(candidate) = candidates.recv_async().await {
            let this = Arc::clone(&self);
            tasks.spawn(async move {
                // On the block path's own thread: nothing else is queued in front of it.
                let block = FoundBlock::from_candidate(&candidate);
                let _ = this.submit_found(block).await;
            });
            // Reap finished ones so the set stays small.
            while tasks.try_join_next().is_some() {}
        }
        while tasks.join_next().await.is_some() {}
        tracker.abort();
    }

    /// The tracker loop: one pass whenever a block is due or [`BlockPath::wake`] is called.
    async fn tracker(self: Arc<Self>) {
        loop {
            let due = self.next_due();
            tokio::select! {
                () = tokio::time::sleep_until(due) => {}
                () = self.wake.notified() => {}
            }
            self.pass().await;
        }
    }

    fn next_due(&self) -> Instant {
        self.lock_tracked()
            .values()
            .filter(|t| !t.busy)
            .map(|t| t.next_check)
            .min()
            .unwrap_or_else(|| Instant::now() + self.retry.recheck_settled)
    }

    /// Re-checks the due blocks (at most `BLOCK_CHECKS_PER_PASS_MAX`, the most overdue first),
    /// concurrently.
    pub async fn pass(self: &Arc<Self>) {
        let due: Vec<Arc<FoundBlock>> = {
            let now = Instant::now();
            let mut tracked = self.lock_tracked();
            let mut due: Vec<_> = tracked
                .values()
                .filter(|t| !t.busy && t.next_check <= now)
                .map(|t| (t.next_check, t.block.hash.clone()))
                .collect();
            due.sort();
            due.truncate(BLOCK_CHECKS_PER_PASS_MAX);
            due.into_iter()
                .filter_map(|(_, hash)| {
                    let t = tracked.get_mut(&hash)?;
                    t.busy = true;
                    Some(Arc::clone(&t.block))
                })
                .collect()
        };
        let mut checks = tokio::task::JoinSet::new();
        for block in due {
            let this = Arc::clone(self);
            checks.spawn(async move {
                let status = this.check(&block, false).await;
                this.release_after(&block.hash, status);
            });
        }
        while checks.join_next().await.is_some() {}
    }

    fn release_after(&self, hash: &str, status: BlockStatus) {
        let pause = match status {
            BlockStatus::InChain | BlockStatus::Orphaned => self.retry.recheck_settled,
            _ => self.retry.recheck,
        };
        if let Some(t) = self.lock_tracked().get_mut(hash) {
            t.busy = false;
            t.next_check = Instant::now() + pause;
        }
    }

    /// Syncs the journal (shutdown).
    ///
    /// # Errors
    /// [`JournalError`].
    pub fn sync_journal(&self) -> Result<(), JournalError> {
        self.lock_journal().sync()
    }

    /// Runs the block path on its own thread (`warppool-blocks`) with its own single-threaded
    /// runtime: the journal's unfinished blocks first, then [`BlockPath::run`]. Give it its
    /// own [`Nodes`] so its RPC connections live on that runtime too.
    ///
    /// # Errors
    /// The thread or its runtime could not be started.
    pub fn spawn(
        self: Arc<Self>,
        candidates: flume::Receiver<Candidate>,
    ) -> std::io::Result<BlockThread> {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .thread_name("warppool-blocks")
            .build()?;
        let (done_tx, done) = flume::bounded(1);
        let (stop, stop_rx) = flume::bounded::<()>(1);
        let thread = std::thread::Builder::new()
            .name("warppool-blocks".to_owned())
            .spawn(move || {
                runtime.block_on(async move {
                    let work = async {
                        match self.replay().await {
                            Ok(0) => {}
                            Ok(n) => tracing::warn!(blocks = n, "journal replayed"),
                            Err(e) => {
                                tracing::error!(error = %e, "cannot replay the block journal");
                            }
                        }
                        Arc::clone(&self).run(candidates).await;
                    };
                    tokio::select! {
                        () = work => {}
                        _ = stop_rx.recv_async() => {
                            tracing::warn!(
                                "block submissions still running at shutdown; they stay \
                                 unfinished in the journal"
                            );
                        }
                    }
                    if let Err(e) = self.sync_journal() {
                        tracing::error!(error = %e, "cannot sync the block journal at shutdown");
                    }
                });
                let _ = done_tx.send(());
            })?;
        Ok(BlockThread {
            thread: Some(thread),
            done,
            stop,
        })
    }
}

fn lock(journal: &Mutex<Journal>) -> std::sync::MutexGuard<'_, Journal> {
    journal
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// The block path's thread (see [`BlockPath::spawn`]).
#[derive(Debug)]
pub struct BlockThread {
    thread: Option<std::thread::JoinHandle<()>>,
    done: flume::Receiver<()>,
    stop: flume::Sender<()>,
}

impl BlockThread {
    /// Waits until the candidate queue is closed and drained and every fast round is over, at
    /// most `deadline`; then stops the thread (unfinished blocks stay in the journal, synced).
    /// Whether it finished by itself.
    pub async fn join(mut self, deadline: Duration) -> bool {
        let finished = tokio::time::timeout(deadline, self.done.recv_async())
            .await
            .is_ok();
        let _ = self.stop.try_send(());
        let _ = self.done.recv_async().await;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
        finished
    }
}
