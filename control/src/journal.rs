//! The block journal: an append-only file of JSON lines, written before a block is submitted.
//!
//! # Responsibilities
//!
//! - [`Journal::write`] writes one line (into the kernel's page cache: it survives a crash of
//!   the process from that moment) and returns an [`Unsynced`] whose [`Unsynced::sync`] makes
//!   it survive a power loss too; the block path runs that `fsync` on its own blocking thread
//!   while the block is already on its way to the nodes (decision 0012), so a slow disk never
//!   delays a block. [`Journal::append`] is both at once. A write that fails
//!   part-way (disk full, `EFBIG`) is cut back to the last whole line, or, if even that fails,
//!   the next entry starts with a newline: entries are never glued together. The failure is
//!   returned; the caller still submits the block.
//! - The first line of a block (`status: "found"`) carries its hex; later lines carry its new
//!   status only. The current state of a block is its last line.
//! - [`Journal::open`] reads the file in one pass (a hash index, no quadratic scan) and keeps
//!   the blocks whose last status is not final for [`Journal::take_unfinished`]: every one of
//!   them, however many. A torn or unreadable line is skipped and counted as garbage.
//! - Compaction: once the lines of finished blocks (and unreadable lines) reach
//!   `JOURNAL_COMPACT_GARBAGE_BYTES_MIN` and the live blocks' bytes, the file is rewritten with
//!   the unfinished blocks only (to a temporary file, synced, renamed over, directory synced),
//!   so the journal stays small for years: finished blocks live on in the database.
//!
//! # Format
//!
//! ```text
//! {"height":102,"hash":"3c6b…","time":1764380000,"status":"found","block_hex":"0000…",
//!  "finder":{"worker":"bcrt1q….rig1","extranonce1":"01000002","user_agent":"cgminer/4.11.1"}}
//! {"height":102,"hash":"3c6b…","time":1764380001,"status":"in_chain","detail":"node a: 1"}
//! {"height":102,"hash":"3c6b…","time":1764390001,"status":"mature"}
//! ```
//!
//! Statuses are [`BlockStatus`]; an orphan whose competitor is buried is written with
//! `"settled":true` and is final. Journals of earlier versions (`accepted`, `confirmed`,
//! `pending`) read as `submitted`, `in_chain`, `submitted`.

use std::{
    collections::HashMap,
    fs::{File, OpenOptions},
    io::{BufRead, BufReader, Read, Seek, SeekFrom, Write},
    path::{Path, PathBuf},
    sync::Arc,
};

use serde::{Deserialize, Serialize};

pub use crate::block_status::BlockStatus;
pub use crate::error::JournalError;
use warppool_core::limits::{JOURNAL_COMPACT_GARBAGE_BYTES_MIN, JOURNAL_LINE_BYTES_MAX};

/// One journal line.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct JournalEntry {
    /// Block height.
    pub height: u32,
    /// Block hash, display (RPC) order.
    pub hash: String,
    /// Seconds since the Unix epoch.
    pub time: u64,
    /// The block's state from this line on.
    pub status: BlockStatus,
    /// The block, hex (only on the `found` line).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub block_hex: Option<String>,
    /// Node answers, reasons.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
    /// Who found it (only on the `found` line; absent in journals of earlier versions).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub finder: Option<Finder>,
    /// An orphan whose competitor at its height is buried: nothing more will be done.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub settled: bool,
}

impl JournalEntry {
    /// Whether this entry ends the block's life.
    #[must_use]
    pub const fn is_final(&self) -> bool {
        self.status.is_final() || (self.settled && matches!(self.status, BlockStatus::Orphaned))
    }
}

/// The exact finder of a block: the connection whose share met the network target.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Finder {
    /// `address[.worker]` as the connection authorized it.
    pub worker: String,
    /// The connection's extranonce1, hex.
    pub extranonce1: String,
    /// The connection's subscribe user agent, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user_agent: Option<String>,
}

impl Finder {
    /// From the data plane's block finder.
    #[must_use]
    pub fn from_data_plane(finder: &warppool_net::stratum::BlockFinder) -> Self {
        Self {
            worker: finder.worker.clone(),
            extranonce1: finder.extranonce1.to_string(),
            user_agent: finder.user_agent.clone(),
        }
    }

    /// The payout address part of the worker name (before the first `.`).
    #[must_use]
    pub fn payout_address(&self) -> &str {
        self.worker.split('.').next().unwrap_or_default()
    }
}

/// A block to submit: what the journal and `submitblock` need.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FoundBlock {
    /// Height.
    pub height: u32,
    /// Hash, display (RPC) order.
    pub hash: String,
    /// The serialized block, hex.
    pub block_hex: String,
    /// Who found it (`None` only for blocks journaled by earlier versions).
    pub finder: Option<Finder>,
}

impl FoundBlock {
    /// From a data plane block candidate (the block and its exact finder).
    #[must_use]
    pub fn from_candidate(candidate: &warppool_net::stratum::Candidate) -> Self {
        let block = &candidate.block;
        let mut hash = block.hash();
        hash.reverse();
        Self {
            height: block.job().height(),
            hash: warppool_core::hex::encode(&hash),
            block_hex: block.to_block_hex(),
            finder: Some(Finder::from_data_plane(&candidate.finder)),
        }
    }

    fn found_entry(&self, time: u64) -> JournalEntry {
        JournalEntry {
            height: self.height,
            hash: self.hash.clone(),
            time,
            status: BlockStatus::Found,
            block_hex: Some(self.block_hex.clone()),
            detail: None,
            finder: self.finder.clone(),
            settled: false,
        }
    }
}

/// An unfinished block read back from the journal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Unfinished {
    /// The block.
    pub block: FoundBlock,
    /// Its last status.
    pub status: BlockStatus,
    /// The detail of its last line.
    pub detail: Option<String>,
}

/// The file a journal writes to: a real file, or a test's fault-injecting wrapper of one.
pub trait JournalFile: Write + Send + std::fmt::Debug {
    /// Its length in bytes.
    ///
    /// # Errors
    /// I/O errors.
    fn size(&self) -> std::io::Result<u64>;
    /// Cuts it to `len` bytes.
    ///
    /// # Errors
    /// I/O errors.
    fn truncate(&mut self, len: u64) -> std::io::Result<()>;
    /// Syncs its data to disk.
    ///
    /// # Errors
    /// I/O errors.
    fn sync(&mut self) -> std::io::Result<()>;
    /// A handle that syncs the same file from another thread.
    ///
    /// # Errors
    /// I/O errors (the file could not be duplicated).
    fn syncer(&self) -> std::io::Result<Arc<dyn JournalSync>>;
}

/// Syncs a journal file's data to disk from any thread ([`Unsynced::sync`]).
pub trait JournalSync: Send + Sync + std::fmt::Debug {
    /// `fdatasync`.
    ///
    /// # Errors
    /// I/O errors.
    fn sync(&self) -> std::io::Result<()>;
}

impl JournalSync for File {
    fn sync(&self) -> std::io::Result<()> {
        self.sync_data()
    }
}

impl JournalFile for File {
    fn size(&self) -> std::io::Result<u64> {
        self.metadata().map(|m| m.len())
    }
    fn truncate(&mut self, len: u64) -> std::io::Result<()> {
        self.set_len(len)
    }
    fn sync(&mut self) -> std::io::Result<()> {
        self.sync_data()
    }
    fn syncer(&self) -> std::io::Result<Arc<dyn JournalSync>> {
        Ok(Arc::new(self.try_clone()?))
    }
}

/// A line that is written but not yet synced: in the page cache, so it survives a crash of
/// the process but not yet a power loss.
#[derive(Debug)]
#[must_use = "a journal line is durable only once synced"]
pub struct Unsynced {
    syncer: Arc<dyn JournalSync>,
    path: PathBuf,
    /// The line ended a block's life: the journal may be due for compaction once synced.
    pub finished_a_block: bool,
}

impl Unsynced {
    /// Syncs the file (every line written before this one too).
    ///
    /// # Errors
    /// [`JournalError::Io`].
    pub fn sync(self) -> Result<(), JournalError> {
        self.syncer.sync().map_err(|source| JournalError::Io {
            path: self.path,
            source,
        })
    }
}

/// Per block: its journal bytes and whether it is finished (for compaction).
#[derive(Debug, Clone, Copy, Default)]
struct Tally {
    bytes: u64,
    finished: bool,
}

/// The open journal file.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: Box<dyn JournalFile>,
    syncer: Arc<dyn JournalSync>,
    /// A failed write could not be cut back: the next entry starts with a newline.
    separator_needed: bool,
    blocks: HashMap<String, Tally>,
    /// Bytes of unreadable lines (torn writes).
    unreadable_bytes: u64,
    unfinished: Vec<Unfinished>,
    compactions: u64,
}

/// Seconds since the Unix epoch.
#[must_use]
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

fn ends_with_newline(path: &Path) -> std::io::Result<bool> {
    let mut f = File::open(path)?;
    let len = f.metadata()?.len();
    if len == 0 {
        return Ok(true);
    }
    f.seek(SeekFrom::Start(len - 1))?;
    let mut last = [0u8; 1];
    f.read_exact(&mut last)?;
    Ok(last[0] == b'\n')
}

fn sync_dir(path: &Path) -> std::io::Result<()> {
    let dir = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    File::open(dir).and_then(|d| d.sync_all())
}

fn open_append(path: &Path) -> std::io::Result<File> {
    OpenOptions::new().create(true).append(true).open(path)
}

impl Journal {
    /// Opens (or creates) the journal for appending, reading it once: its unfinished blocks
    /// wait in [`Journal::take_unfinished`]. A new file's directory is synced so the file
    /// itself survives a crash; a journal with enough finished blocks is compacted.
    ///
    /// # Errors
    /// [`JournalError::Io`].
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        let io = |source| JournalError::Io {
            path: path.to_path_buf(),
            source,
        };
        let existed = path.exists();
        let mut file = open_append(path).map_err(io)?;
        if existed && !ends_with_newline(path).map_err(io)? {
            // A crash tore the last line: end it so the next entry starts on its own line.
            file.write_all(b"\n").map_err(io)?;
            file.sync_data().map_err(io)?;
        }
        if !existed {
            file.sync_all().map_err(io)?;
            sync_dir(path).map_err(io)?;
        }
        let scan = scan(path)?;
        let syncer = file.syncer().map_err(io)?;
        let mut journal = Self {
            path: path.to_path_buf(),
            file: Box::new(file),
            syncer,
            separator_needed: false,
            blocks: scan.blocks,
            unreadable_bytes: scan.unreadable_bytes,
            unfinished: scan.unfinished,
            compactions: 0,
        };
        journal.maybe_compact()?;
        Ok(journal)
    }

    /// Replaces the file handle (fault injection in tests: a writer that fails part-way, a
    /// slow `fsync`).
    ///
    /// # Errors
    /// [`JournalError::Io`]: no sync handle for it.
    pub fn with_file(mut self, file: Box<dyn JournalFile>) -> Result<Self, JournalError> {
        self.syncer = file.syncer().map_err(|e| self.io(e))?;
        self.file = file;
        Ok(self)
    }

    /// The file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The unfinished blocks read at open, oldest first (once; later calls return none).
    pub fn take_unfinished(&mut self) -> Vec<Unfinished> {
        std::mem::take(&mut self.unfinished)
    }

    /// How many times this journal was compacted since it was opened.
    #[must_use]
    pub const fn compactions(&self) -> u64 {
        self.compactions
    }

    /// Journals a newly found block (its `found` line, with the hex), synced.
    ///
    /// # Errors
    /// [`JournalError::Io`].
    pub fn append_found(&mut self, block: &FoundBlock) -> Result<(), JournalError> {
        self.append(&block.found_entry(unix_now()))
    }

    /// Writes a newly found block's `found` line, not yet synced (see [`Journal::write`]).
    ///
    /// # Errors
    /// [`JournalError::Io`].
    pub fn write_found(&mut self, block: &FoundBlock) -> Result<Unsynced, JournalError> {
        self.write(&block.found_entry(unix_now()))
    }

    /// Appends `entry` as one line and syncs it to disk before returning. A final entry may
    /// compact the journal afterwards.
    ///
    /// # Errors
    /// [`JournalError::Io`]: the line is not in the file (cut back) and the next one starts
    /// on its own line either way; or the sync failed.
    pub fn append(&mut self, entry: &JournalEntry) -> Result<(), JournalError> {
        let unsynced = self.write(entry)?;
        let finished = unsynced.finished_a_block;
        unsynced.sync()?;
        if finished {
            self.maybe_compact()?;
        }
        Ok(())
    }

    /// Writes `entry` as one line, without syncing: the caller syncs the returned
    /// [`Unsynced`] (on another thread if it likes) and then calls [`Journal::compact_if_due`]
    /// when the line finished a block.
    ///
    /// # Errors
    /// [`JournalError::Io`]: the line is not in the file (cut back) and the next one starts
    /// on its own line either way.
    pub fn write(&mut self, entry: &JournalEntry) -> Result<Unsynced, JournalError> {
        let mut line = serde_json::to_vec(entry).map_err(|e| self.io(std::io::Error::other(e)))?;
        line.push(b'\n');
        self.write_line(&line).map_err(|e| self.io(e))?;
        let tally = self.blocks.entry(entry.hash.clone()).or_default();
        tally.bytes += line.len() as u64;
        tally.finished = entry.is_final();
        Ok(Unsynced {
            syncer: Arc::clone(&self.syncer),
            path: self.path.clone(),
            finished_a_block: entry.is_final(),
        })
    }

    /// Compacts the journal if its finished blocks outweigh the live ones (see the module
    /// docs); a no-op otherwise.
    ///
    /// # Errors
    /// [`JournalError::Io`]; the old file is then still in place and in use.
    pub fn compact_if_due(&mut self) -> Result<(), JournalError> {
        self.maybe_compact()
    }

    fn io(&self, source: std::io::Error) -> JournalError {
        JournalError::Io {
            path: self.path.clone(),
            source,
        }
    }

    fn write_line(&mut self, line: &[u8]) -> std::io::Result<()> {
        if self.separator_needed {
            self.file.write_all(b"\n")?;
            self.separator_needed = false;
        }
        let start = self.file.size()?;
        if let Err(e) = self.file.write_all(line) {
            if let Err(cut) = self.file.truncate(start) {
                tracing::error!(
                    path = %self.path.display(),
                    error = %cut,
                    "cannot cut a failed journal write back; the next entry starts on a new line"
                );
                self.separator_needed = true;
            }
            return Err(e);
        }
        Ok(())
    }

    fn garbage_and_live(&self) -> (u64, u64) {
        let mut garbage = self.unreadable_bytes;
        let mut live = 0;
        for t in self.blocks.values() {
            if t.finished {
                garbage += t.bytes;
            } else {
                live += t.bytes;
            }
        }
        (garbage, live)
    }

    fn maybe_compact(&mut self) -> Result<(), JournalError> {
        let (garbage, live) = self.garbage_and_live();
        if garbage >= JOURNAL_COMPACT_GARBAGE_BYTES_MIN && garbage >= live {
            self.compact()?;
        }
        Ok(())
    }

    /// Rewrites the journal with its unfinished blocks only (each as its `found` line and its
    /// last status line), atomically: a crash leaves the old file or the new one.
    ///
    /// # Errors
    /// [`JournalError::Io`]; the old file is then still in place and in use.
    pub fn compact(&mut self) -> Result<(), JournalError> {
        let io = |source| JournalError::Io {
            path: self.path.clone(),
            source,
        };
        let scan = scan(&self.path)?;
        let mut tmp_name = self.path.clone().into_os_string();
        tmp_name.push(".compact");
        let tmp = PathBuf::from(tmp_name);
        let mut blocks = HashMap::new();
        {
            let mut out = std::io::BufWriter::new(File::create(&tmp).map_err(io)?);
            for u in &scan.unfinished {
                let mut bytes = 0u64;
                let mut lines = vec![u.block.found_entry(unix_now())];
                if u.status != BlockStatus::Found {
                    lines.push(JournalEntry {
                        status: u.status,
                        detail: u.detail.clone(),
                        block_hex: None,
                        finder: None,
                        ..u.block.found_entry(unix_now())
                    });
                }
                for entry in &lines {
                    let mut line = serde_json::to_vec(entry).map_err(|e| io(e.into()))?;
                    line.push(b'\n');
                    out.write_all(&line).map_err(io)?;
                    bytes += line.len() as u64;
                }
                blocks.insert(
                    u.block.hash.clone(),
                    Tally {
                        bytes,
                        finished: false,
                    },
                );
            }
            let file = out.into_inner().map_err(|e| io(e.into_error()))?;
            file.sync_all().map_err(io)?;
        }
        std::fs::rename(&tmp, &self.path).map_err(io)?;
        sync_dir(&self.path).map_err(io)?;
        let file = open_append(&self.path).map_err(io)?;
        self.syncer = file.syncer().map_err(io)?;
        self.file = Box::new(file);
        self.separator_needed = false;
        self.blocks = blocks;
        self.unreadable_bytes = 0;
        self.compactions += 1;
        tracing::info!(
            path = %self.path.display(),
            live = scan.unfinished.len(),
            "block journal compacted"
        );
        Ok(())
    }

    /// Syncs the file (at shutdown).
    ///
    /// # Errors
    /// [`JournalError::Io`].
    pub fn sync(&mut self) -> Result<(), JournalError> {
        self.file.sync().map_err(|source| JournalError::Io {
            path: self.path.clone(),
            source,
        })
    }

    /// Reads the journal at `path` (missing = empty) and returns the unfinished blocks, oldest
    /// first, with their last status.
    ///
    /// # Errors
    /// [`JournalError`].
    pub fn replay(path: &Path) -> Result<Vec<Unfinished>, JournalError> {
        scan(path).map(|s| s.unfinished)
    }
}

/// What one pass over the file found.
struct Scan {
    blocks: HashMap<String, Tally>,
    unreadable_bytes: u64,
    unfinished: Vec<Unfinished>,
}

/// A block as the scan sees it: its data (from the `found` line) and its last entry.
struct Seen {
    found: Option<FoundBlock>,
    last: JournalEntry,
}

/// The blocks of `order` whose last entry is not final, with their data.
fn unfinished(order: Vec<Seen>) -> Vec<Unfinished> {
    let mut out = Vec::new();
    for seen in order {
        if seen.last.is_final() {
            continue;
        }
        match seen.found {
            Some(block) => out.push(Unfinished {
                block,
                status: seen.last.status,
                detail: seen.last.detail,
            }),
            None => {
                tracing::error!(
                    hash = %seen.last.hash,
                    height = seen.last.height,
                    "journal has no block data for an unfinished block"
                );
            }
        }
    }
    out
}

/// Decodes one line read by [`scan`] (the rest of an over-long line is skipped); `None` for
/// a line that is not an entry, whose bytes count as garbage.
fn read_entry(
    reader: &mut impl BufRead,
    line: &[u8],
    path: &Path,
    number: usize,
    out: &mut Scan,
) -> Result<Option<JournalEntry>, JournalError> {
    if line.len() > JOURNAL_LINE_BYTES_MAX {
        tracing::error!(path = %path.display(), line = number, "journal line too long; skipped");
        let mut rest = Vec::new();
        reader
            .read_until(b'\n', &mut rest)
            .map_err(|source| JournalError::Io {
                path: path.to_path_buf(),
                source,
            })?;
        out.unreadable_bytes += (line.len() + rest.len()) as u64;
        return Ok(None);
    }
    match serde_json::from_slice::<JournalEntry>(line) {
        Ok(entry) => Ok(Some(entry)),
        Err(_) => {
            if line.iter().any(|b| !b.is_ascii_whitespace()) {
                tracing::warn!(
                    path = %path.display(),
                    line = number,
                    "unreadable journal line (torn write?); skipped"
                );
            }
            out.unreadable_bytes += line.len() as u64;
            Ok(None)
        }
    }
}

fn scan(path: &Path) -> Result<Scan, JournalError> {
    let io = |source| JournalError::Io {
        path: path.to_path_buf(),
        source,
    };
    let mut out = Scan {
        blocks: HashMap::new(),
        unreadable_bytes: 0,
        unfinished: Vec::new(),
    };
    let file = match File::open(path) {
        Ok(f) => f,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(out),
        Err(e) => return Err(io(e)),
    };
    let mut reader = BufReader::new(file);
    // First-seen order, and an index into it by hash: one pass, no quadratic scan.
    let mut order: Vec<Seen> = Vec::new();
    let mut index: HashMap<String, usize> = HashMap::new();
    let mut line = Vec::new();
    let mut number = 0usize;
    loop {
        line.clear();
        let read = (&mut reader)
            .take(JOURNAL_LINE_BYTES_MAX as u64 + 1)
            .read_until(b'\n', &mut line)
            .map_err(io)?;
        if read == 0 {
            break;
        }
        number += 1;
        let Some(entry) = read_entry(&mut reader, &line, path, number, &mut out)? else {
            continue;
        };
        let tally = out.blocks.entry(entry.hash.clone()).or_default();
        tally.bytes += line.len() as u64;
        tally.finished = entry.is_final();
        let i = *index.entry(entry.hash.clone()).or_insert_with(|| {
            order.push(Seen {
                found: None,
                last: entry.clone(),
            });
            order.len() - 1
        });
        let seen = &mut order[i];
        if let Some(hex) = &entry.block_hex {
            seen.found = Some(FoundBlock {
                height: entry.height,
                hash: entry.hash.clone(),
                block_hex: hex.clone(),
                finder: entry.finder.clone(),
            });
        }
        seen.last = entry;
    }
    out.unfinished = unfinished(order);
    Ok(out)
}
