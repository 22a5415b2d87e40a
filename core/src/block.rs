//! Whole-block serialization for `submitblock`.
//!
//! Responsibilities: put a header, the coinbase and the template's transactions together in
//! consensus order. For a segwit template the coinbase is written in witness form (marker,
//! flag, one witness item: the 32-byte reserved value) and the other transactions as the node
//! gave them; for a non-segwit template everything is written without witness data.
//!
//! Usage: cold path only (a block was found): [`BlockCandidate::to_block_hex`] allocates the
//! whole block.

use std::sync::Arc;

use warppool_hash::sha256d_header;

use crate::hex;
use crate::job::Job;
use crate::limits::COINBASE_BYTES_MAX;
use crate::template::Template;

/// A share that meets the network target, ready to submit: header, coinbase (inline, no heap)
/// and the job it was built from.
#[derive(Clone)]
pub struct BlockCandidate {
    header: [u8; 80],
    coinbase: [u8; COINBASE_BYTES_MAX],
    coinbase_len: u16,
    job: Arc<Job>,
}

impl core::fmt::Debug for BlockCandidate {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("BlockCandidate")
            .field("job", &self.job.id())
            .field("height", &self.job.height())
            .field("coinbase_len", &self.coinbase_len)
            .finish_non_exhaustive()
    }
}

impl BlockCandidate {
    /// Wraps a header and its coinbase (non-witness serialization, `coinbase_len` bytes used).
    #[must_use]
    pub fn new(
        header: [u8; 80],
        coinbase: [u8; COINBASE_BYTES_MAX],
        coinbase_len: usize,
        job: Arc<Job>,
    ) -> Self {
        assert!(coinbase_len <= COINBASE_BYTES_MAX);
        assert!(coinbase_len == job.coinbase_len());
        Self {
            header,
            coinbase,
            coinbase_len: coinbase_len as u16,
            job,
        }
    }

    /// The 80-byte header.
    #[must_use]
    pub const fn header(&self) -> &[u8; 80] {
        &self.header
    }

    /// The block hash, internal byte order.
    #[must_use]
    pub fn hash(&self) -> [u8; 32] {
        sha256d_header(&self.header)
    }

    /// The coinbase, non-witness serialization.
    #[must_use]
    pub fn coinbase(&self) -> &[u8] {
        &self.coinbase[..usize::from(self.coinbase_len)]
    }

    /// The job the block was found on.
    #[must_use]
    pub const fn job(&self) -> &Arc<Job> {
        &self.job
    }

    /// The serialized block.
    #[must_use]
    pub fn to_block_bytes(&self) -> Vec<u8> {
        serialize_block(
            &self.header,
            self.coinbase(),
            self.job.witness_reserved(),
            self.job.template(),
        )
    }

    /// The serialized block as lowercase hex, for `submitblock`.
    #[must_use]
    pub fn to_block_hex(&self) -> String {
        hex::encode(&self.to_block_bytes())
    }
}

/// Appends a Bitcoin compact-size integer.
pub fn write_compact_size(out: &mut Vec<u8>, n: u64) {
    match n {
        0..=0xfc => out.push(n as u8),
        0xfd..=0xffff => {
            out.push(0xfd);
            out.extend_from_slice(&(n as u16).to_le_bytes());
        }
        0x1_0000..=0xffff_ffff => {
            out.push(0xfe);
            out.extend_from_slice(&(n as u32).to_le_bytes());
        }
        _ => {
            out.push(0xff);
            out.extend_from_slice(&n.to_le_bytes());
        }
    }
}

/// Serializes a block: header, transaction count, coinbase (witness form when the template is
/// segwit), then the template's transactions.
///
/// # Panics
/// If `coinbase` is shorter than its version and locktime (a job invariant).
#[must_use]
pub fn serialize_block(
    header: &[u8; 80],
    coinbase: &[u8],
    witness_reserved: &[u8; 32],
    template: &Template,
) -> Vec<u8> {
    assert!(coinbase.len() >= 8 + 42, "a coinbase has fixed fields");
    let txs = template.transactions();
    let body: usize = txs.iter().map(|t| t.data().len()).sum();
    let mut out = Vec::with_capacity(80 + 9 + coinbase.len() + 38 + body);
    out.extend_from_slice(header);
    write_compact_size(&mut out, txs.len() as u64 + 1);
    if template.is_segwit() {
        let (version, rest) = coinbase.split_at(4);
        let (middle, locktime) = rest.split_at(rest.len() - 4);
        out.extend_from_slice(version);
        out.extend_from_slice(&[0x00, 0x01]); // segwit marker and flag
        out.extend_from_slice(middle);
        out.extend_from_slice(&[0x01, 0x20]); // one witness item of 32 bytes
        out.extend_from_slice(witness_reserved);
        out.extend_from_slice(locktime);
    } else {
        out.extend_from_slice(coinbase);
    }
    for tx in txs {
        out.extend_from_slice(tx.data());
    }
    assert!(out.len() >= 80 + 1 + coinbase.len());
    out
}
