//! The block path: a found block is never lost.
//!
//! # Responsibilities
//!
//! For every block candidate from the data plane: (a) journal it and `fsync` before anything
//! else; (b) `submitblock` to every node concurrently (`null` or `"duplicate"` = accepted,
//! `"inconclusive"` = confirm, any other string = a rejection, logged with its reason);
//! (c) confirm with `getblockheader` (or `getbestblockhash`); (d) retry with exponential
//! back-off, bounded in rounds and in total time, while no node accepted; (e) append the new
//! status to the journal; (f) at start-up, replay unfinished journal entries; (g) emit a
//! [`BlockEvent`] on a bounded queue for storage and the UI (full = dropped and logged; the
//! journal is the record).
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
//! let path = Arc::new(path);
//! path.replay().await.unwrap();
//! path.run(candidates).await;
//! # drop(events); }
//! ```

use std::{
    path::PathBuf,
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use warppool_core::limits::{
    BLOCK_EVENTS_QUEUE_MAX, BLOCK_SUBMIT_ATTEMPTS_MAX, BLOCK_SUBMIT_BACKOFF_MS_MAX,
    BLOCK_SUBMIT_BACKOFF_MS_MIN, BLOCK_SUBMIT_TOTAL_MS_MAX,
};
use warppool_net::stratum::Candidate;

use crate::{
    journal::{BlockStatus, Finder, FoundBlock, Journal, JournalEntry, JournalError, unix_now},
    rpc::{BlockHeaderInfo, Nodes, RpcError},
};

/// What happened to a block (for storage, notifiers and the UI).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockEvent {
    /// Height.
    pub height: u32,
    /// Hash, display order.
    pub hash: String,
    /// The new status.
    pub status: BlockStatus,
    /// Node answers or reasons.
    pub detail: Option<String>,
    /// Who found it: set on [`BlockStatus::Found`] events (also when a journaled block is
    /// replayed at start-up), `None` on later status changes and for blocks journaled by
    /// versions before the exact finder.
    pub finder: Option<Finder>,
}

/// Retry bounds of one block (the defaults come from `limits`; tests shorten them).
#[derive(Debug, Clone, Copy)]
pub struct RetryPolicy {
    /// `submitblock` rounds at most.
    pub attempts_max: u32,
    /// Total time at most.
    pub total_max: Duration,
    /// First pause between rounds.
    pub backoff_min: Duration,
    /// Longest pause between rounds.
    pub backoff_max: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        Self {
            attempts_max: BLOCK_SUBMIT_ATTEMPTS_MAX,
            total_max: Duration::from_millis(BLOCK_SUBMIT_TOTAL_MS_MAX),
            backoff_min: Duration::from_millis(BLOCK_SUBMIT_BACKOFF_MS_MIN),
            backoff_max: Duration::from_millis(BLOCK_SUBMIT_BACKOFF_MS_MAX),
        }
    }
}

/// One node's answer to `submitblock`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmitOutcome {
    /// `null` or `"duplicate"`.
    Accepted,
    /// `"inconclusive"`: the node could not decide; confirm by header.
    Inconclusive,
    /// Any other string (`"high-hash"`, `"bad-txnmrklroot"`…).
    Rejected(String),
    /// The call failed (node down, timeout, JSON-RPC error).
    Failed(String),
}

/// Classifies a `submitblock` result.
#[must_use]
pub fn classify(result: Result<Option<String>, RpcError>) -> SubmitOutcome {
    match result {
        Ok(None) => SubmitOutcome::Accepted,
        Ok(Some(s)) if s == "duplicate" => SubmitOutcome::Accepted,
        Ok(Some(s)) if s == "inconclusive" => SubmitOutcome::Inconclusive,
        Ok(Some(s)) => SubmitOutcome::Rejected(s),
        Err(e) => SubmitOutcome::Failed(e.to_string()),
    }
}

/// The block path (see the module docs).
#[derive(Debug)]
pub struct BlockPath {
    nodes: Arc<Nodes>,
    journal: Arc<Mutex<Journal>>,
    journal_path: PathBuf,
    events: flume::Sender<BlockEvent>,
    retry: RetryPolicy,
}

impl BlockPath {
    /// A block path over `nodes` writing to `journal`, and the receiver of its events (bounded
    /// by `BLOCK_EVENTS_QUEUE_MAX`).
    #[must_use]
    pub fn new(nodes: Arc<Nodes>, journal: Journal) -> (Self, flume::Receiver<BlockEvent>) {
        let (events, receiver) = flume::bounded(BLOCK_EVENTS_QUEUE_MAX);
        let journal_path = journal.path().to_path_buf();
        (
            Self {
                nodes,
                journal: Arc::new(Mutex::new(journal)),
                journal_path,
                events,
                retry: RetryPolicy::default(),
            },
            receiver,
        )
    }

    /// Replaces the retry bounds.
    #[must_use]
    pub fn with_retry(mut self, retry: RetryPolicy) -> Self {
        self.retry = retry;
        self
    }

    async fn append(&self, entry: JournalEntry) -> Result<(), JournalError> {
        let journal = Arc::clone(&self.journal);
        tokio::task::spawn_blocking(move || {
            journal
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .append(&entry)
        })
        .await
        .unwrap_or_else(|e| {
            Err(JournalError::Io {
                path: PathBuf::new(),
                source: std::io::Error::other(e.to_string()),
            })
        })
    }

    async fn set_status(&self, block: &FoundBlock, status: BlockStatus, detail: Option<String>) {
        let entry = JournalEntry {
            height: block.height,
            hash: block.hash.clone(),
            time: unix_now(),
            status,
            block_hex: None,
            detail: detail.clone(),
            finder: None,
        };
        if let Err(e) = self.append(entry).await {
            tracing::error!(hash = %block.hash, error = %e, "cannot journal block status");
        }
        self.emit(BlockEvent {
            height: block.height,
            hash: block.hash.clone(),
            status,
            detail,
            finder: None,
        });
    }

    fn emit(&self, event: BlockEvent) {
        if let Err(e) = self.events.try_send(event) {
            tracing::warn!(error = %e, "block event queue full or closed; event dropped (journal has it)");
        }
    }

    /// Journals a newly found block (synced), then submits and confirms it.
    ///
    /// # Errors
    /// [`JournalError`] if the block could not be journaled; it is still submitted.
    pub async fn submit_found(&self, block: FoundBlock) -> Result<BlockStatus, JournalError> {
        tracing::info!(height = block.height, hash = %block.hash, "block found");
        let journaled = self
            .append(JournalEntry {
                height: block.height,
                hash: block.hash.clone(),
                time: unix_now(),
                status: BlockStatus::Found,
                block_hex: Some(block.block_hex.clone()),
                detail: None,
                finder: block.finder.clone(),
            })
            .await;
        if let Err(e) = &journaled {
            // Never hold a block back: submit anyway, and say loudly that it is not on disk.
            tracing::error!(hash = %block.hash, error = %e, "block NOT journaled; submitting anyway");
        }
        self.emit(BlockEvent {
            height: block.height,
            hash: block.hash.clone(),
            status: BlockStatus::Found,
            detail: None,
            finder: block.finder.clone(),
        });
        let status = self.process(&block).await;
        journaled.map(|()| status)
    }

    /// Resubmits and confirms every unfinished block of the journal. Returns how many.
    ///
    /// # Errors
    /// [`JournalError`] if the journal cannot be read.
    pub async fn replay(&self) -> Result<usize, JournalError> {
        let path = self.journal_path.clone();
        let blocks = tokio::task::spawn_blocking(move || Journal::replay(&path))
            .await
            .unwrap_or_else(|e| {
                Err(JournalError::Io {
                    path: PathBuf::new(),
                    source: std::io::Error::other(e.to_string()),
                })
            })?;
        let count = blocks.len();
        for (block, status) in blocks {
            tracing::warn!(height = block.height, hash = %block.hash, ?status, "replaying unfinished block from the journal");
            // Announced as found again, with its finder: storage records it if the crash came
            // before the first record was committed (recording a hash twice keeps the first).
            self.emit(BlockEvent {
                height: block.height,
                hash: block.hash.clone(),
                status: BlockStatus::Found,
                detail: Some("replayed from the journal".to_owned()),
                finder: block.finder.clone(),
            });
            self.process(&block).await;
        }
        Ok(count)
    }

    /// Submits `block` to every node and confirms it, retrying within the bounds (rounds and
    /// total time, slow RPC calls included).
    pub async fn process(&self, block: &FoundBlock) -> BlockStatus {
        match tokio::time::timeout(self.retry.total_max, self.process_rounds(block)).await {
            Ok(status) => status,
            Err(_) => self.give_up(block).await,
        }
    }

    async fn give_up(&self, block: &FoundBlock) -> BlockStatus {
        tracing::error!(hash = %block.hash, "block not confirmed within the retry budget; it stays pending in the journal and is replayed at the next start");
        self.set_status(
            block,
            BlockStatus::Pending,
            Some("retry budget exhausted".to_owned()),
        )
        .await;
        BlockStatus::Pending
    }

    async fn process_rounds(&self, block: &FoundBlock) -> BlockStatus {
        let started = Instant::now();
        let mut backoff = self.retry.backoff_min;
        let mut accepted_journaled = false;
        for attempt in 1..=self.retry.attempts_max {
            let outcomes = self.submit_everywhere(block).await;
            let detail = describe(&outcomes, self.nodes.as_ref());
            let any_accepted = outcomes
                .iter()
                .any(|o| matches!(o, SubmitOutcome::Accepted | SubmitOutcome::Inconclusive));
            for (i, o) in outcomes.iter().enumerate() {
                if let SubmitOutcome::Rejected(reason) = o {
                    tracing::error!(node = self.nodes.clients()[i].name(), hash = %block.hash, %reason, "block rejected by node");
                }
            }
            if (any_accepted || attempt > 1)
                && let Some(by) = self.confirm(&block.hash).await
            {
                tracing::info!(height = block.height, hash = %block.hash, node = by, "block confirmed");
                self.set_status(block, BlockStatus::Confirmed, Some(detail))
                    .await;
                return BlockStatus::Confirmed;
            }
            if any_accepted && !accepted_journaled {
                accepted_journaled = true;
                self.set_status(block, BlockStatus::Accepted, Some(detail.clone()))
                    .await;
            }
            if !outcomes.is_empty()
                && outcomes
                    .iter()
                    .all(|o| matches!(o, SubmitOutcome::Rejected(_)))
            {
                self.set_status(block, BlockStatus::Rejected, Some(detail))
                    .await;
                return BlockStatus::Rejected;
            }
            let elapsed = started.elapsed();
            if attempt == self.retry.attempts_max || elapsed + backoff > self.retry.total_max {
                break;
            }
            tracing::warn!(hash = %block.hash, attempt, %detail, backoff_ms = backoff.as_millis() as u64, "block not confirmed yet; retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(self.retry.backoff_max);
        }
        self.give_up(block).await
    }

    async fn submit_everywhere(&self, block: &FoundBlock) -> Vec<SubmitOutcome> {
        let hex = Arc::new(block.block_hex.clone());
        let mut set = tokio::task::JoinSet::new();
        for (i, client) in self.nodes.clients().iter().enumerate() {
            let client = Arc::clone(client);
            let hex = Arc::clone(&hex);
            set.spawn(async move {
                let result = client
                    .call::<Option<String>>("submitblock", serde_json::json!([hex.as_str()]))
                    .await;
                (i, classify(result))
            });
        }
        let mut outcomes =
            vec![SubmitOutcome::Failed("not run".to_owned()); self.nodes.clients().len()];
        while let Some(joined) = set.join_next().await {
            if let Ok((i, outcome)) = joined {
                outcomes[i] = outcome;
            }
        }
        outcomes
    }

    /// The name of a node that knows the block, if any.
    async fn confirm(&self, hash: &str) -> Option<String> {
        for client in self.nodes.clients() {
            let header = client
                .call::<BlockHeaderInfo>("getblockheader", serde_json::json!([hash, true]))
                .await;
            if header.is_ok_and(|h| h.hash == hash) {
                return Some(client.name().to_owned());
            }
            let best = client
                .call::<String>("getbestblockhash", serde_json::json!([]))
                .await;
            if best.is_ok_and(|b| b == hash) {
                return Some(client.name().to_owned());
            }
        }
        None
    }

    /// Drains `candidates` until the data plane closes it; each block is handled in its own
    /// task so a slow node never delays journaling the next one. Waits for all of them.
    pub async fn run(self: Arc<Self>, candidates: flume::Receiver<Candidate>) {
        let mut tasks = tokio::task::JoinSet::new();
        while let Ok(candidate) = candidates.recv_async().await {
            let this = Arc::clone(&self);
            tasks.spawn(async move {
                // Serializing a 4 MB block takes milliseconds: off the workers.
                let block =
                    tokio::task::spawn_blocking(move || FoundBlock::from_candidate(&candidate))
                        .await;
                match block {
                    Ok(block) => {
                        let _ = this.submit_found(block).await;
                    }
                    Err(e) => tracing::error!(error = %e, "block serialization panicked"),
                }
            });
            // Reap finished ones so the set stays small.
            while tasks.try_join_next().is_some() {}
        }
        while tasks.join_next().await.is_some() {}
    }

    /// Syncs the journal (shutdown).
    ///
    /// # Errors
    /// [`JournalError`].
    pub fn sync_journal(&self) -> Result<(), JournalError> {
        self.journal
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .sync()
    }
}

fn describe(outcomes: &[SubmitOutcome], nodes: &Nodes) -> String {
    outcomes
        .iter()
        .zip(nodes.clients())
        .map(|(o, c)| format!("{}: {o:?}", c.name()))
        .collect::<Vec<_>>()
        .join("; ")
}
