//! Jobs: one template plus one coinbase, everything a shard needs to judge a share and build
//! the block.
//!
//! Responsibilities: hold the header fields, the coinbase cut around the extranonce, the coinb1
//! midstate (so each share only hashes coinb1's tail, the extranonce and coinb2), the merkle
//! branch and a shared reference to the template's transactions; precompute the hex fields of
//! `mining.notify` (allocation happens here, once per job, never per share).
//!
//! Usage: the control plane builds a job with [`Job::new`] (or [`Job::from_parts`] for a
//! coinbase laid out elsewhere), wraps it in an `Arc` and hands it to the shards, which install
//! it in their [`crate::share::JobBook`].
//!
//! Version rolling (MINERS.md rule 3): the job version keeps the bits of [`VersionMask::POOL`]
//! clear, so a header version is `(job_version & !mask) | (bits & mask)` whichever way a
//! firmware combines its rolled bits (XOR with the base, OR, or the bits alone).

use std::sync::Arc;

use thiserror::Error;
use warppool_hash::{Midstate, Sha256, sha256};

use crate::coinbase::{
    CoinbaseConfig, CoinbaseError, CoinbaseParts, build_coinbase, contains_output_script,
};
use crate::difficulty::ShareTarget;
use crate::hex;
use crate::limits::COINBASE_BYTES_MAX;
use crate::merkle::MerkleBranch;
use crate::template::Template;
use crate::types::{Extranonce1, Extranonce2, ExtranonceSize, JobId, Nonce, Ntime, VersionMask};

/// Why a job could not be built.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum JobError {
    /// The coinbase could not be built or is malformed.
    #[error(transparent)]
    Coinbase(#[from] CoinbaseError),
    /// The job's ntime is before the template's mintime.
    #[error("job ntime {ntime} is before the template mintime {mintime}")]
    Ntime {
        /// The requested ntime.
        ntime: u32,
        /// The template's mintime.
        mintime: u32,
    },
}

/// The hex strings of `mining.notify`, built once per job.
#[derive(Clone, Debug, PartialEq, Eq)]
struct NotifyFields {
    job_id: String,
    prevhash: String,
    coinb1: String,
    coinb2: String,
    branch: Vec<String>,
    version: String,
    nbits: String,
    ntime: String,
}

/// A mining job. Immutable once built; shared as `Arc<Job>`.
#[derive(Debug)]
pub struct Job {
    id: JobId,
    template: Arc<Template>,
    version: u32,
    ntime: Ntime,
    coinbase: CoinbaseParts,
    coinb1_midstate: Midstate,
    notify: NotifyFields,
}

impl Job {
    /// Builds the job paying `payout_script` for `template`, at the template's `curtime`.
    ///
    /// # Errors
    /// [`JobError::Coinbase`] from [`build_coinbase`].
    pub fn new(
        id: JobId,
        template: Arc<Template>,
        payout_script: &[u8],
        config: &CoinbaseConfig,
    ) -> Result<Self, JobError> {
        let parts = build_coinbase(&template, payout_script, config)?;
        let ntime = template.curtime();
        Self::from_parts(id, template, &parts, ntime)
    }

    /// Builds a job from a coinbase laid out elsewhere (a real block's coinbase in tests, or
    /// another coinbase builder), at `ntime`. For a segwit template the coinbase must contain
    /// the witness commitment computed from the template with the parts' reserved value.
    ///
    /// # Errors
    /// [`JobError::Ntime`] if `ntime` is before the template's mintime;
    /// [`CoinbaseError::MissingWitnessCommitment`].
    pub fn from_parts(
        id: JobId,
        template: Arc<Template>,
        parts: &CoinbaseParts,
        ntime: Ntime,
    ) -> Result<Self, JobError> {
        if ntime < template.mintime() {
            return Err(JobError::Ntime {
                ntime: ntime.secs(),
                mintime: template.mintime().secs(),
            });
        }
        if template.is_segwit() {
            let script = template.witness_commitment_script(parts.witness_reserved());
            if !contains_output_script(parts.coinb2(), &script) {
                return Err(CoinbaseError::MissingWitnessCommitment.into());
            }
        }
        assert!(parts.len() <= COINBASE_BYTES_MAX);
        let version = template.version() & !VersionMask::POOL.bits();
        let (coinb1_midstate, _) = Midstate::from_prefix(parts.coinb1());
        let notify = NotifyFields {
            job_id: id.to_string(),
            prevhash: stratum_prevhash_hex(template.prevhash()),
            coinb1: hex::encode(parts.coinb1()),
            coinb2: hex::encode(parts.coinb2()),
            branch: template
                .merkle_branch()
                .steps()
                .iter()
                .map(|s| hex::encode(s))
                .collect(),
            version: format!("{version:08x}"),
            nbits: format!("{:08x}", template.bits()),
            ntime: format!("{:08x}", ntime.secs()),
        };
        let job = Self {
            id,
            version,
            ntime,
            coinbase: parts.clone(),
            coinb1_midstate,
            notify,
            template,
        };
        assert!(job.version & VersionMask::POOL.bits() == 0);
        assert!(job.coinbase_len() <= COINBASE_BYTES_MAX);
        Ok(job)
    }

    /// The job id.
    #[must_use]
    pub const fn id(&self) -> JobId {
        self.id
    }

    /// The template this job was built from.
    #[must_use]
    pub const fn template(&self) -> &Arc<Template> {
        &self.template
    }

    /// The previous block hash, internal byte order.
    #[must_use]
    pub fn prevhash(&self) -> &[u8; 32] {
        self.template.prevhash()
    }

    /// The job version (the mask bits of [`VersionMask::POOL`] clear).
    #[must_use]
    pub const fn version(&self) -> u32 {
        self.version
    }

    /// `nBits`.
    #[must_use]
    pub fn bits(&self) -> u32 {
        self.template.bits()
    }

    /// The ntime sent to miners.
    #[must_use]
    pub const fn ntime(&self) -> Ntime {
        self.ntime
    }

    /// The earliest header time the network accepts (the template's mintime).
    #[must_use]
    pub fn ntime_min(&self) -> Ntime {
        self.template.mintime()
    }

    /// The network target.
    #[must_use]
    pub fn network_target(&self) -> &ShareTarget {
        self.template.network_target()
    }

    /// The block height.
    #[must_use]
    pub fn height(&self) -> u32 {
        self.template.height()
    }

    /// The bytes before the extranonce.
    #[must_use]
    pub fn coinb1(&self) -> &[u8] {
        self.coinbase.coinb1()
    }

    /// The bytes after the extranonce.
    #[must_use]
    pub fn coinb2(&self) -> &[u8] {
        self.coinbase.coinb2()
    }

    /// The extranonce2 size miners must use.
    #[must_use]
    pub const fn extranonce2_size(&self) -> ExtranonceSize {
        self.coinbase.extranonce2_size()
    }

    /// The coinbase witness reserved value (segwit templates).
    #[must_use]
    pub const fn witness_reserved(&self) -> &[u8; 32] {
        self.coinbase.witness_reserved()
    }

    /// The coinbase merkle branch.
    #[must_use]
    pub fn merkle_branch(&self) -> &MerkleBranch {
        self.template.merkle_branch()
    }

    /// The coinbase length in bytes (non-witness serialization).
    #[must_use]
    pub fn coinbase_len(&self) -> usize {
        self.coinbase.len()
    }

    /// The coinbase txid for an extranonce. Hot path: hashes only coinb1's tail after the
    /// midstate, the extranonce and coinb2; no allocation.
    #[inline]
    #[must_use]
    pub fn coinbase_txid(&self, en1: &Extranonce1, en2: &Extranonce2) -> [u8; 32] {
        debug_assert_eq!(en2.size(), self.extranonce2_size());
        let done = self.coinb1_midstate.bytes() as usize;
        let mut h = Sha256::from_midstate(self.coinb1_midstate);
        h.update(&self.coinb1()[done..]);
        h.update(en1.as_bytes());
        h.update(en2.as_bytes());
        h.update(self.coinb2());
        sha256(&h.finalize())
    }

    /// Writes the coinbase (non-witness) for an extranonce into `out`, returning its length.
    #[must_use]
    pub fn write_coinbase(
        &self,
        en1: &Extranonce1,
        en2: &Extranonce2,
        out: &mut [u8; COINBASE_BYTES_MAX],
    ) -> usize {
        let parts: [&[u8]; 4] = [self.coinb1(), en1.as_bytes(), en2.as_bytes(), self.coinb2()];
        let mut at = 0;
        for p in parts {
            out[at..at + p.len()].copy_from_slice(p);
            at += p.len();
        }
        debug_assert_eq!(at, self.coinbase_len());
        at
    }

    /// The 80-byte header for a merkle root, ntime, nonce and final version.
    #[inline]
    #[must_use]
    pub fn header(
        &self,
        merkle_root: &[u8; 32],
        ntime: Ntime,
        nonce: Nonce,
        version: u32,
    ) -> [u8; 80] {
        let mut h = [0u8; 80];
        h[..4].copy_from_slice(&version.to_le_bytes());
        h[4..36].copy_from_slice(self.template.prevhash());
        h[36..68].copy_from_slice(merkle_root);
        h[68..72].copy_from_slice(&ntime.secs().to_le_bytes());
        h[72..76].copy_from_slice(&self.template.bits().to_le_bytes());
        h[76..].copy_from_slice(&nonce.get().to_le_bytes());
        h
    }

    /// `mining.notify` job id (lowercase hex).
    #[must_use]
    pub fn notify_job_id(&self) -> &str {
        &self.notify.job_id
    }

    /// `mining.notify` prevhash: the internal bytes with each 4-byte word byte-swapped.
    #[must_use]
    pub fn notify_prevhash(&self) -> &str {
        &self.notify.prevhash
    }

    /// `mining.notify` coinb1 hex.
    #[must_use]
    pub fn notify_coinb1(&self) -> &str {
        &self.notify.coinb1
    }

    /// `mining.notify` coinb2 hex.
    #[must_use]
    pub fn notify_coinb2(&self) -> &str {
        &self.notify.coinb2
    }

    /// `mining.notify` merkle branch, each step as internal-order hex.
    #[must_use]
    pub fn notify_branch(&self) -> &[String] {
        &self.notify.branch
    }

    /// `mining.notify` version (8 hex digits, big-endian).
    #[must_use]
    pub fn notify_version(&self) -> &str {
        &self.notify.version
    }

    /// `mining.notify` nbits (8 hex digits, big-endian).
    #[must_use]
    pub fn notify_nbits(&self) -> &str {
        &self.notify.nbits
    }

    /// `mining.notify` ntime (8 hex digits, big-endian).
    #[must_use]
    pub fn notify_ntime(&self) -> &str {
        &self.notify.ntime
    }
}

/// The Stratum form of a previous block hash: internal bytes, each 4-byte word reversed.
#[must_use]
pub fn stratum_prevhash_hex(prevhash: &[u8; 32]) -> String {
    let mut swapped = [0u8; 32];
    for (out, word) in swapped.chunks_exact_mut(4).zip(prevhash.chunks_exact(4)) {
        out.copy_from_slice(&[word[3], word[2], word[1], word[0]]);
    }
    hex::encode(&swapped)
}
