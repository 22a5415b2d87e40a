//! The block journal: an append-only file of JSON lines, synced before a block is submitted.
//!
//! # Responsibilities
//!
//! - [`Journal::append`] writes one line and `fsync`s it (and the directory when the file was
//!   just created), so a found block survives a crash at any later point.
//! - The first line of a block (`status: "found"`) carries its hex; later lines carry its new
//!   status only. The current state of a block is its last line.
//! - [`Journal::replay`] reads the file back and returns the blocks whose last status is not
//!   final (neither `confirmed` nor `rejected`), for resubmission at start-up. A torn last
//!   line (a crash while writing it) is skipped.
//!
//! # Format
//!
//! ```text
//! {"height":102,"hash":"3c6b…","time":1764380000,"status":"found","block_hex":"0000…",
//!  "finder":{"worker":"bcrt1q….rig1","extranonce1":"01000002","user_agent":"cgminer/4.11.1"}}
//! {"height":102,"hash":"3c6b…","time":1764380001,"status":"confirmed","detail":"node a"}
//! ```

use std::{
    fs::{File, OpenOptions},
    io::{BufRead, BufReader, Read, Write},
    path::{Path, PathBuf},
};

use serde::{Deserialize, Serialize};

pub use crate::error::JournalError;
use warppool_core::limits::{JOURNAL_BLOCKS_REPLAY_MAX, JOURNAL_LINE_BYTES_MAX};

/// The state of a found block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockStatus {
    /// Written to the journal, not yet submitted.
    Found,
    /// At least one node accepted it (or said `duplicate`/`inconclusive`); not yet confirmed.
    Accepted,
    /// A node knows its header: final.
    Confirmed,
    /// Every node rejected it: final.
    Rejected,
    /// No node accepted it within the retry budget of this run; replayed at the next start.
    Pending,
}

impl BlockStatus {
    /// Whether nothing more will be done with the block.
    #[must_use]
    pub const fn is_final(self) -> bool {
        matches!(self, Self::Confirmed | Self::Rejected)
    }
}

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
}

fn ends_with_newline(path: &Path) -> std::io::Result<bool> {
    use std::io::{Seek, SeekFrom};
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

/// The open journal file.
#[derive(Debug)]
pub struct Journal {
    path: PathBuf,
    file: File,
}

/// Seconds since the Unix epoch.
#[must_use]
pub fn unix_now() -> u64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs())
}

impl Journal {
    /// Opens (or creates) the journal for appending. A new file's directory is synced so the
    /// file itself survives a crash.
    ///
    /// # Errors
    /// [`JournalError::Io`].
    pub fn open(path: &Path) -> Result<Self, JournalError> {
        let io = |source| JournalError::Io {
            path: path.to_path_buf(),
            source,
        };
        let existed = path.exists();
        let mut file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(io)?;
        if existed && !ends_with_newline(path).map_err(io)? {
            // A crash tore the last line: end it so the next entry starts on its own line.
            file.write_all(b"\n").map_err(io)?;
            file.sync_data().map_err(io)?;
        }
        if !existed {
            file.sync_all().map_err(io)?;
            let dir = match path.parent() {
                Some(p) if !p.as_os_str().is_empty() => p,
                _ => Path::new("."),
            };
            File::open(dir).and_then(|d| d.sync_all()).map_err(io)?;
        }
        Ok(Self {
            path: path.to_path_buf(),
            file,
        })
    }

    /// The file.
    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends `entry` as one line and syncs it to disk before returning.
    ///
    /// # Errors
    /// [`JournalError::Io`].
    pub fn append(&mut self, entry: &JournalEntry) -> Result<(), JournalError> {
        let io = |source| JournalError::Io {
            path: self.path.clone(),
            source,
        };
        let mut line = serde_json::to_vec(entry).map_err(|e| io(std::io::Error::other(e)))?;
        line.push(b'\n');
        self.file.write_all(&line).map_err(io)?;
        self.file.sync_data().map_err(io)
    }

    /// Syncs the file (at shutdown).
    ///
    /// # Errors
    /// [`JournalError::Io`].
    pub fn sync(&self) -> Result<(), JournalError> {
        self.file.sync_all().map_err(|source| JournalError::Io {
            path: self.path.clone(),
            source,
        })
    }

    /// Reads the journal at `path` (missing = empty) and returns the unfinished blocks, oldest
    /// first, with their last status.
    ///
    /// # Errors
    /// [`JournalError`].
    pub fn replay(path: &Path) -> Result<Vec<(FoundBlock, BlockStatus)>, JournalError> {
        let io = |source| JournalError::Io {
            path: path.to_path_buf(),
            source,
        };
        let file = match File::open(path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(io(e)),
        };
        let mut reader = BufReader::new(file);
        // Blocks in first-seen order: (block, last status).
        let mut blocks: Vec<(Option<FoundBlock>, String, u32, BlockStatus)> = Vec::new();
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
            if line.len() > JOURNAL_LINE_BYTES_MAX {
                tracing::error!(path = %path.display(), line = number, "journal line too long; skipped");
                // Skip the rest of the line.
                let mut rest = Vec::new();
                reader.read_until(b'\n', &mut rest).map_err(io)?;
                continue;
            }
            let Ok(entry) = serde_json::from_slice::<JournalEntry>(&line) else {
                tracing::warn!(path = %path.display(), line = number, "unreadable journal line (torn write?); skipped");
                continue;
            };
            let index = match blocks.iter().position(|b| b.1 == entry.hash) {
                Some(i) => i,
                None => {
                    if blocks.len() >= JOURNAL_BLOCKS_REPLAY_MAX {
                        // Drop finished blocks to make room before giving up.
                        blocks.retain(|b| !b.3.is_final());
                        if blocks.len() >= JOURNAL_BLOCKS_REPLAY_MAX {
                            return Err(JournalError::TooManyBlocks(path.to_path_buf()));
                        }
                    }
                    blocks.push((None, entry.hash.clone(), entry.height, entry.status));
                    blocks.len() - 1
                }
            };
            let block = &mut blocks[index];
            block.3 = entry.status;
            if let Some(hex) = entry.block_hex {
                block.0 = Some(FoundBlock {
                    height: entry.height,
                    hash: entry.hash,
                    block_hex: hex,
                    finder: entry.finder,
                });
            }
        }
        let mut out = Vec::new();
        for (found, hash, height, status) in blocks {
            if status.is_final() {
                continue;
            }
            match found {
                Some(b) => out.push((b, status)),
                None => {
                    tracing::error!(%hash, height, "journal has no block data for an unfinished block")
                }
            }
        }
        Ok(out)
    }
}
