//! Share validation: a pure function over a job and a submission, plus the per-shard job ring.
//!
//! Responsibilities: decide one share's [`Verdict`] with no allocation and no I/O. The order:
//! job lookup ([`ShareReject::UnknownJob`]), extranonce2 size, then the hash; a hash meeting
//! the network target is a [`Verdict::Block`] whatever its bookkeeping (version bits outside
//! the mask, ntime outside the window, stale, below the share target, duplicate), which the
//! caller submits before replying; then those checks in that order decide the accounting.
//!
//! Usage (the data plane's hot path, zero allocation per share):
//! 1. at shard start, [`JobBook::new`] allocates every duplicate set once (or
//!    [`JobBook::new_lazy`]: each job slot's set at the first share it records, kept when the
//!    slot is reused, so a connection that never submits holds none);
//! 2. on a new job, [`JobBook::install`] (reuses the oldest slot; a new prevhash marks every
//!    older job stale);
//! 3. per share, [`JobBook::submit`] with the parsed [`Submission`], the connection's
//!    extranonce1, version mask and share target; map a rejection with
//!    [`ShareReject::stratum_code`] and [`ShareReject::metrics_label`].
//!
//! Cost per share: one coinbase tail hash (the coinb1 midstate is precomputed), one
//! `sha256d_64` per merkle level, one header `sha256d`, and one probe of an open-addressing
//! table.

use std::sync::Arc;

use thiserror::Error;
use warppool_hash::sha256d_header;

use crate::block::BlockCandidate;
use crate::difficulty::ShareTarget;
use crate::job::Job;
use crate::limits::{
    COINBASE_BYTES_MAX, DUPLICATES_PER_JOB_MAX, JOBS_RETAINED_MAX, NTIME_AHEAD_SECS_MAX,
};
use crate::types::{Extranonce1, Extranonce2, JobId, Nonce, Ntime, VersionMask};

/// Why a share was not credited. Each reason maps once to a Stratum error code and once to a
/// metrics label.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Error)]
#[non_exhaustive]
pub enum ShareReject {
    /// The job id is not among the retained jobs.
    #[error("job not found")]
    UnknownJob,
    /// The job was built on a previous chain tip.
    #[error("stale job")]
    Stale,
    /// The extranonce2 has another size than the job's.
    #[error("wrong extranonce2 size")]
    Extranonce2Size,
    /// ntime before the job's mintime or too far ahead of the job's ntime.
    #[error("ntime out of range")]
    NtimeOutOfRange,
    /// Version bits outside the connection's mask.
    #[error("version bits outside the mask")]
    VersionBitsOutsideMask,
    /// The hash does not meet the share target.
    #[error("low difficulty share")]
    LowDifficulty,
    /// The same header was already submitted for this job.
    #[error("duplicate share")]
    Duplicate,
    /// A field of the submit does not decode (ntime, nonce or version bits that are not hex
    /// of the right length, an extranonce2 that is not hex); never hashed.
    #[error("malformed submit")]
    Malformed,
}

impl ShareReject {
    /// Every reason (metrics list each, at zero until one happens).
    pub const ALL: [Self; 8] = [
        Self::UnknownJob,
        Self::Stale,
        Self::Extranonce2Size,
        Self::NtimeOutOfRange,
        Self::VersionBitsOutsideMask,
        Self::LowDifficulty,
        Self::Duplicate,
        Self::Malformed,
    ];

    /// The Stratum V1 error code: 20 other, 21 job not found or stale, 22 duplicate, 23 low
    /// difficulty.
    #[must_use]
    pub const fn stratum_code(self) -> i32 {
        match self {
            Self::UnknownJob | Self::Stale => 21,
            Self::Duplicate => 22,
            Self::LowDifficulty => 23,
            Self::Extranonce2Size
            | Self::NtimeOutOfRange
            | Self::VersionBitsOutsideMask
            | Self::Malformed => 20,
        }
    }

    /// A short, stable label for metrics.
    #[must_use]
    pub const fn metrics_label(self) -> &'static str {
        match self {
            Self::UnknownJob => "unknown_job",
            Self::Stale => "stale",
            Self::Extranonce2Size => "extranonce2_size",
            Self::NtimeOutOfRange => "ntime",
            Self::VersionBitsOutsideMask => "version_bits",
            Self::LowDifficulty => "low_difficulty",
            Self::Duplicate => "duplicate",
            Self::Malformed => "malformed",
        }
    }

    /// The message sent in the Stratum error triple.
    #[must_use]
    pub const fn message(self) -> &'static str {
        match self {
            Self::UnknownJob => "job not found",
            Self::Stale => "stale",
            Self::Extranonce2Size => "wrong extranonce2 size",
            Self::NtimeOutOfRange => "ntime out of range",
            Self::VersionBitsOutsideMask => "version bits outside mask",
            Self::LowDifficulty => "low difficulty share",
            Self::Duplicate => "duplicate share",
            Self::Malformed => "malformed submit",
        }
    }
}

/// The decoded fields of one `mining.submit` (the job id is passed separately).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Submission {
    /// extranonce2.
    pub extranonce2: Extranonce2,
    /// Header time.
    pub ntime: Ntime,
    /// Header nonce.
    pub nonce: Nonce,
    /// BIP310 version bits (the sixth param), if sent.
    pub version_bits: Option<u32>,
}

/// The outcome of one share. Returned by value: the block variant carries its coinbase inline
/// so that even a block share does not allocate.
#[derive(Debug)]
#[allow(
    clippy::large_enum_variant,
    reason = "no heap on the share path, even for blocks"
)]
pub enum Verdict {
    /// A valid share.
    Accepted {
        /// The header hash, internal byte order.
        hash: [u8; 32],
    },
    /// The hash meets the network target: submit `candidate` first, then reply.
    Block {
        /// The block hash, internal byte order.
        hash: [u8; 32],
        /// The block, ready to serialize.
        candidate: BlockCandidate,
        /// `None` when the share also counts as accepted, or why it does not (stale,
        /// duplicate, below the share target). A duplicate block was already returned once.
        accounting: Option<ShareReject>,
    },
    /// Not credited.
    Rejected(ShareReject),
}

/// Header hashes seen for one job: a bounded set that forgets the oldest entry when full.
///
/// Layout: an open-addressing table of `2 * capacity` 64-bit fingerprints (linear probing,
/// load factor at most 1/2, deletion by backward shift so no tombstones build up) and a ring of
/// the same fingerprints in insertion order for eviction. The fingerprint is 8 bytes of the
/// header hash: two different shares colliding only makes the second one rejected as a
/// duplicate, which harms only the miner who would have to grind for it. All memory is
/// allocated by [`DuplicateSet::new`]; [`DuplicateSet::insert`] and [`DuplicateSet::clear`]
/// never allocate. A set made by [`DuplicateSet::new_lazy`] allocates the same memory at its
/// first insert instead, once.
///
/// The chance that a valid share is rejected because its fingerprint equals that of a
/// different share already in the set is at most `capacity / 2^64` per share (for the 64 hashes
/// a connection's job remembers: below 4e-18).
#[derive(Clone)]
pub struct DuplicateSet {
    capacity: usize,
    /// Empty until the first insert for a lazy set.
    table: Box<[u64]>,
    ring: Box<[u64]>,
    ring_head: usize,
    ring_len: usize,
}

impl core::fmt::Debug for DuplicateSet {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("DuplicateSet")
            .field("capacity", &self.capacity)
            .field("len", &self.ring_len)
            .finish()
    }
}

impl DuplicateSet {
    /// A set remembering up to `capacity` hashes.
    ///
    /// # Panics
    /// If `capacity` is not a power of two in `1..=DUPLICATES_PER_JOB_MAX` (a configuration
    /// bug caught at shard start).
    #[must_use]
    pub fn new(capacity: usize) -> Self {
        assert!(capacity.is_power_of_two());
        assert!(capacity <= DUPLICATES_PER_JOB_MAX);
        let mut set = Self::new_lazy(capacity);
        set.allocate();
        set
    }

    /// A set remembering up to `capacity` hashes whose memory (24 bytes per hash) is allocated
    /// at the first insert.
    ///
    /// # Panics
    /// As [`DuplicateSet::new`].
    #[must_use]
    pub fn new_lazy(capacity: usize) -> Self {
        assert!(capacity.is_power_of_two());
        assert!(capacity <= DUPLICATES_PER_JOB_MAX);
        Self {
            capacity,
            table: Box::new([]),
            ring: Box::new([]),
            ring_head: 0,
            ring_len: 0,
        }
    }

    fn allocate(&mut self) {
        self.table = vec![0; 2 * self.capacity].into_boxed_slice();
        self.ring = vec![0; self.capacity].into_boxed_slice();
    }

    /// How many hashes the set remembers at most.
    #[must_use]
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// How many hashes it remembers now.
    #[must_use]
    pub fn len(&self) -> usize {
        self.ring_len
    }

    /// Whether it is empty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.ring_len == 0
    }

    /// Forgets everything (O(capacity); done when a slot is reused for a new job).
    pub fn clear(&mut self) {
        self.table.fill(0);
        self.ring_head = 0;
        self.ring_len = 0;
    }

    fn fingerprint(hash: &[u8; 32]) -> u64 {
        let mut b = [0u8; 8];
        b.copy_from_slice(&hash[..8]);
        // 0 marks an empty slot.
        u64::from_le_bytes(b).max(1)
    }

    fn slot_mask(&self) -> usize {
        self.table.len() - 1
    }

    fn home(&self, fp: u64) -> usize {
        (fp as usize) & self.slot_mask()
    }

    /// Whether `hash` is in the set.
    #[must_use]
    pub fn contains(&self, hash: &[u8; 32]) -> bool {
        if self.table.is_empty() {
            return false;
        }
        let fp = Self::fingerprint(hash);
        let mut i = self.home(fp);
        // At most half the slots are full, so an empty slot ends every probe.
        for _ in 0..self.table.len() {
            match self.table[i] {
                0 => return false,
                v if v == fp => return true,
                _ => i = (i + 1) & self.slot_mask(),
            }
        }
        unreachable!("the table is never more than half full")
    }

    /// Adds `hash`; returns `false` if it was already there. When full, the oldest hash is
    /// forgotten first.
    pub fn insert(&mut self, hash: &[u8; 32]) -> bool {
        if self.contains(hash) {
            return false;
        }
        if self.table.is_empty() {
            self.allocate();
        }
        let fp = Self::fingerprint(hash);
        let capacity = self.capacity;
        if self.ring_len == capacity {
            let oldest = self.ring[self.ring_head];
            self.remove(oldest);
            self.ring[self.ring_head] = fp;
            self.ring_head = (self.ring_head + 1) % capacity;
        } else {
            self.ring[(self.ring_head + self.ring_len) % capacity] = fp;
            self.ring_len += 1;
        }
        let mut i = self.home(fp);
        while self.table[i] != 0 {
            i = (i + 1) & self.slot_mask();
        }
        self.table[i] = fp;
        debug_assert!(self.ring_len <= capacity);
        true
    }

    /// Removes a fingerprint, shifting later entries of its probe run back (no tombstones).
    fn remove(&mut self, fp: u64) {
        let mask = self.slot_mask();
        let mut i = self.home(fp);
        while self.table[i] != fp {
            assert!(
                self.table[i] != 0,
                "an evicted fingerprint is always in the table"
            );
            i = (i + 1) & mask;
        }
        let mut hole = i;
        let mut j = i;
        loop {
            j = (j + 1) & mask;
            let v = self.table[j];
            if v == 0 {
                break;
            }
            let home = self.home(v);
            // Move `v` into the hole unless its home lies cyclically in (hole, j].
            let stays = if hole <= j {
                hole < home && home <= j
            } else {
                hole < home || home <= j
            };
            if !stays {
                self.table[hole] = v;
                hole = j;
            }
        }
        self.table[hole] = 0;
    }
}

/// The header version a share was mined on, and whether its version bits broke the mask. Bits
/// outside the mask are taken as set on top of the job's version (the header the miner
/// hashed), so a block mined that way is still found.
fn share_version(job: &Job, bits: Option<u32>, mask: VersionMask) -> (u32, bool) {
    match bits {
        None => (job.version(), false),
        Some(bits) if mask.allows(bits) => (mask.apply(job.version(), bits), false),
        Some(bits) => (job.version() | bits, true),
    }
}

/// Whether `ntime` is inside the job's window: not before the template's mintime, and at most
/// [`NTIME_AHEAD_SECS_MAX`] after the template's `curtime` (not the job's ntime, which job
/// variants move ahead). `curtime` is never ahead of the pool's clock, so the ceiling stays
/// below the node's `time-too-new` limit ([`crate::limits::NODE_FUTURE_BLOCK_TIME_SECS_MAX`]).
fn ntime_in_window(job: &Job, ntime: Ntime) -> bool {
    let ahead = (ntime - job.template().curtime()).secs();
    ntime >= job.ntime_min() && ahead <= i64::from(NTIME_AHEAD_SECS_MAX)
}

/// Judges one share against its job. Pure: no allocation, no I/O. `stale` says whether the job
/// is from a previous tip; `duplicates` is the job's duplicate set.
///
/// Only a wrong extranonce2 size is rejected before hashing (the coinbase cannot be built
/// without it). Version bits outside the mask and an ntime outside the window are rule
/// violations judged after hashing: a hash that meets the network target is a
/// [`Verdict::Block`] whatever else is wrong with the share (the node has the last word), with
/// the violation as its `accounting`.
#[must_use]
pub fn validate_share(
    job: &Arc<Job>,
    stale: bool,
    duplicates: &mut DuplicateSet,
    extranonce1: &Extranonce1,
    submission: &Submission,
    version_mask: VersionMask,
    share_target: &ShareTarget,
) -> Verdict {
    if submission.extranonce2.size() != job.extranonce2_size() {
        return Verdict::Rejected(ShareReject::Extranonce2Size);
    }
    let (version, outside_mask) = share_version(job, submission.version_bits, version_mask);
    let ntime = submission.ntime;
    let txid = job.coinbase_txid(extranonce1, &submission.extranonce2);
    let root = job.merkle_branch().root(&txid);
    let header = job.header(&root, ntime, submission.nonce, version);
    let hash = sha256d_header(&header);

    let accounting = if outside_mask {
        Some(ShareReject::VersionBitsOutsideMask)
    } else if !ntime_in_window(job, ntime) {
        Some(ShareReject::NtimeOutOfRange)
    } else if stale {
        Some(ShareReject::Stale)
    } else if !share_target.is_met_by(&hash) {
        Some(ShareReject::LowDifficulty)
    } else if !duplicates.insert(&hash) {
        Some(ShareReject::Duplicate)
    } else {
        None
    };
    if job.network_target().is_met_by(&hash) {
        let mut coinbase = [0u8; COINBASE_BYTES_MAX];
        let len = job.write_coinbase(extranonce1, &submission.extranonce2, &mut coinbase);
        let candidate = BlockCandidate::new(header, coinbase, len, Arc::clone(job));
        debug_assert_eq!(candidate.hash(), hash);
        return Verdict::Block {
            hash,
            candidate,
            accounting,
        };
    }
    match accounting {
        None => Verdict::Accepted { hash },
        Some(reason) => Verdict::Rejected(reason),
    }
}

#[derive(Debug)]
struct JobSlot {
    job: Option<Arc<Job>>,
    stale: bool,
    duplicates: DuplicateSet,
}

/// The last [`JOBS_RETAINED_MAX`] jobs of a shard (or a connection), by id, each with its
/// duplicate set. All memory is allocated by [`JobBook::new`].
#[derive(Debug)]
pub struct JobBook {
    slots: Vec<JobSlot>,
    /// The slot the next install overwrites.
    next: usize,
    /// The slot of the newest job, if any.
    newest: Option<usize>,
}

impl JobBook {
    /// A book whose jobs each remember `duplicates_per_job` share hashes.
    ///
    /// # Panics
    /// As [`DuplicateSet::new`].
    #[must_use]
    pub fn new(duplicates_per_job: usize) -> Self {
        Self::with_sets(|| DuplicateSet::new(duplicates_per_job))
    }

    /// A book whose duplicate sets are allocated at their first share (see
    /// [`DuplicateSet::new_lazy`]): a connection that never submits a share that reaches the
    /// duplicate check holds no duplicate memory.
    ///
    /// # Panics
    /// As [`DuplicateSet::new`].
    #[must_use]
    pub fn new_lazy(duplicates_per_job: usize) -> Self {
        Self::with_sets(|| DuplicateSet::new_lazy(duplicates_per_job))
    }

    fn with_sets(mut set: impl FnMut() -> DuplicateSet) -> Self {
        let slots = (0..JOBS_RETAINED_MAX)
            .map(|_| JobSlot {
                job: None,
                stale: false,
                duplicates: set(),
            })
            .collect();
        Self {
            slots,
            next: 0,
            newest: None,
        }
    }

    /// Installs a new job, evicting the oldest. A job on a new prevhash marks every retained
    /// job stale.
    ///
    /// # Panics
    /// If a retained job already has this id (ids are unique per pool run).
    pub fn install(&mut self, job: Arc<Job>) {
        assert!(self.get(job.id()).is_none(), "job ids are never reused");
        let new_tip = match self.newest.and_then(|i| self.slots[i].job.as_ref()) {
            Some(newest) => newest.prevhash() != job.prevhash(),
            None => false,
        };
        if new_tip {
            for slot in &mut self.slots {
                slot.stale = true;
            }
        }
        let slot = &mut self.slots[self.next];
        slot.job = Some(job);
        slot.stale = false;
        slot.duplicates.clear();
        self.newest = Some(self.next);
        self.next = (self.next + 1) % JOBS_RETAINED_MAX;
    }

    /// The retained job with this id.
    #[must_use]
    pub fn get(&self, id: JobId) -> Option<&Arc<Job>> {
        self.slots
            .iter()
            .filter_map(|s| s.job.as_ref())
            .find(|j| j.id() == id)
    }

    /// The newest job.
    #[must_use]
    pub fn newest(&self) -> Option<&Arc<Job>> {
        self.newest.and_then(|i| self.slots[i].job.as_ref())
    }

    /// Judges a share for `job_id`; see [`validate_share`].
    pub fn submit(
        &mut self,
        job_id: JobId,
        extranonce1: &Extranonce1,
        submission: &Submission,
        version_mask: VersionMask,
        share_target: &ShareTarget,
    ) -> Verdict {
        let Some(slot) = self
            .slots
            .iter_mut()
            .find(|s| s.job.as_ref().is_some_and(|j| j.id() == job_id))
        else {
            return Verdict::Rejected(ShareReject::UnknownJob);
        };
        let Some(job) = slot.job.as_ref() else {
            return Verdict::Rejected(ShareReject::UnknownJob);
        };
        validate_share(
            job,
            slot.stale,
            &mut slot.duplicates,
            extranonce1,
            submission,
            version_mask,
            share_target,
        )
    }
}

const _: () = assert!(JOBS_RETAINED_MAX > 1);
