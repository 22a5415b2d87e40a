//! Work from `mining.notify`: header building, share targets and the verdict the pool owes.
//!
//! Hashing and target maths come from `warppool-hash` and `warppool-core`; only the client
//! side of the header layout (coinb1 + en1 + en2 + coinb2, the branch, the 80 bytes) is here,
//! since the pool is a black box and its `Job` is built from a template the client never sees.

use serde_json::Value;
use warppool_core::merkle::hash_pair;
use warppool_core::{Difficulty, ShareTarget, hex};
use warppool_hash::{sha256d, sha256d_header};

/// A job decoded from `mining.notify`.
#[derive(Debug, Clone)]
pub(crate) struct NotifyJob {
    pub(crate) id: String,
    /// Internal byte order.
    pub(crate) prevhash: [u8; 32],
    pub(crate) coinb1: Vec<u8>,
    pub(crate) coinb2: Vec<u8>,
    pub(crate) branch: Vec<[u8; 32]>,
    pub(crate) version: u32,
    pub(crate) nbits: u32,
    pub(crate) ntime: u32,
    /// ntime as the pool wrote it (NerdMiner re-sends it verbatim).
    pub(crate) ntime_text: String,
    pub(crate) clean: bool,
}

impl NotifyJob {
    /// Decodes the params of `mining.notify`; `None` if malformed.
    pub(crate) fn from_params(params: &Value) -> Option<Self> {
        let p = params.as_array()?;
        let hex32 =
            |v: &Value| -> Option<[u8; 32]> { hex::decode_array(v.as_str()?.as_bytes()).ok() };
        let word = |v: &Value| hex::parse_u32(v.as_str()?.as_bytes()).ok();
        // Stratum's prevhash is the internal byte order with every 4-byte word swapped.
        let mut prevhash = hex32(p.get(1)?)?;
        for w in prevhash.chunks_exact_mut(4) {
            w.reverse();
        }
        Some(Self {
            id: p.first()?.as_str()?.to_owned(),
            prevhash,
            coinb1: hex::decode(p.get(2)?.as_str()?).ok()?,
            coinb2: hex::decode(p.get(3)?.as_str()?).ok()?,
            branch: p
                .get(4)?
                .as_array()?
                .iter()
                .map(hex32)
                .collect::<Option<Vec<_>>>()?,
            version: word(p.get(5)?)?,
            nbits: word(p.get(6)?)?,
            ntime: word(p.get(7)?)?,
            ntime_text: p.get(7)?.as_str()?.to_owned(),
            clean: p.get(8).and_then(Value::as_bool).unwrap_or(false),
        })
    }

    /// The merkle root for an extranonce pair.
    pub(crate) fn merkle_root(&self, en1: &[u8], en2: &[u8]) -> [u8; 32] {
        let mut coinbase =
            Vec::with_capacity(self.coinb1.len() + en1.len() + en2.len() + self.coinb2.len());
        coinbase.extend_from_slice(&self.coinb1);
        coinbase.extend_from_slice(en1);
        coinbase.extend_from_slice(en2);
        coinbase.extend_from_slice(&self.coinb2);
        self.branch
            .iter()
            .fold(sha256d(&coinbase), |node, step| hash_pair(&node, step))
    }

    /// The 80-byte header.
    pub(crate) fn header(&self, root: &[u8; 32], version: u32, ntime: u32, nonce: u32) -> [u8; 80] {
        let mut h = [0u8; 80];
        h[..4].copy_from_slice(&version.to_le_bytes());
        h[4..36].copy_from_slice(&self.prevhash);
        h[36..68].copy_from_slice(root);
        h[68..72].copy_from_slice(&ntime.to_le_bytes());
        h[72..76].copy_from_slice(&self.nbits.to_le_bytes());
        h[76..].copy_from_slice(&nonce.to_le_bytes());
        h
    }

    /// The header hash (internal byte order).
    pub(crate) fn hash(&self, root: &[u8; 32], version: u32, ntime: u32, nonce: u32) -> [u8; 32] {
        sha256d_header(&self.header(root, version, ntime, nonce))
    }

    /// Whether a hash meets the job's network target.
    pub(crate) fn is_block(&self, hash: &[u8; 32]) -> bool {
        ShareTarget::from_compact(self.nbits).is_ok_and(|t| t.is_met_by(hash))
    }
}

/// A share difficulty as the pool sent it, with its exact target when representable.
#[derive(Debug, Clone, Copy)]
pub(crate) struct ShareDifficulty {
    pub(crate) value: f64,
    target: Option<ShareTarget>,
}

impl ShareDifficulty {
    pub(crate) fn new(value: f64) -> Self {
        Self {
            value,
            target: Difficulty::from_f64_lossy(value)
                .ok()
                .map(Difficulty::to_target),
        }
    }

    /// Whether `hash` meets this difficulty. Outside the range `warppool-core` represents,
    /// the hash's own difficulty is compared (lossy, f64).
    pub(crate) fn is_met_by(&self, hash: &[u8; 32]) -> bool {
        match &self.target {
            Some(t) => t.is_met_by(hash),
            None => ShareTarget::hash_difficulty_lossy(hash) >= self.value,
        }
    }
}

/// What the pool must answer to one share.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Expect {
    /// Accepted.
    Accept,
    /// Rejected with this Stratum code (21 stale/unknown job, 22 duplicate, 23 low difficulty).
    Reject(i64),
    /// Either answer is right (a share between the old and the new difficulty, or a block
    /// below the share target, which a pool may credit or not).
    Either,
}

/// The verdict for a fresh share: `hard` and `easy` are the harder and easier of the
/// difficulty in force when the job arrived and the current one.
pub(crate) fn expect_fresh(
    job: &NotifyJob,
    hash: &[u8; 32],
    hard: &ShareDifficulty,
    easy: &ShareDifficulty,
) -> Expect {
    if hard.is_met_by(hash) {
        Expect::Accept
    } else if job.is_block(hash) || easy.is_met_by(hash) {
        Expect::Either
    } else {
        Expect::Reject(23)
    }
}

/// The verdict for re-sending a share whose first verdict was `first`: the pool checks the
/// share target before duplicates.
pub(crate) const fn expect_duplicate(first: Expect) -> Expect {
    match first {
        Expect::Accept => Expect::Reject(22),
        Expect::Reject(23) => Expect::Reject(23),
        _ => Expect::Either,
    }
}

/// Extranonce2 bytes for a counter.
pub(crate) fn extranonce2(
    scheme: super::personality::En2Scheme,
    counter: u64,
    size: usize,
) -> Vec<u8> {
    use super::personality::En2Scheme;
    let size = size.clamp(1, 8);
    match scheme {
        En2Scheme::FixedOne => {
            let mut v = vec![0u8; size];
            v[size - 1] = 1;
            v
        }
        En2Scheme::BigEndian => counter.to_be_bytes()[8 - size..].to_vec(),
        En2Scheme::LittleEndian => counter.to_le_bytes()[..size].to_vec(),
    }
}

/// A small, fast PRNG (xorshift64*), seeded per connection; not for cryptography.
#[derive(Debug, Clone)]
pub(crate) struct Rng(u64);

impl Rng {
    pub(crate) fn new(seed: u64) -> Self {
        Self(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15) | 1)
    }

    pub(crate) fn next_u64(&mut self) -> u64 {
        let mut x = self.0;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.0 = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    pub(crate) fn next_u32(&mut self) -> u32 {
        (self.next_u64() >> 32) as u32
    }

    /// Uniform in [0, 1).
    pub(crate) fn unit(&mut self) -> f64 {
        (self.next_u64() >> 11) as f64 / (1u64 << 53) as f64
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::load::personality::En2Scheme;

    #[test]
    fn extranonce2_layouts_follow_the_firmwares() {
        assert_eq!(extranonce2(En2Scheme::FixedOne, 9, 4), [0, 0, 0, 1]);
        assert_eq!(extranonce2(En2Scheme::BigEndian, 0x0102, 4), [0, 0, 1, 2]);
        assert_eq!(
            extranonce2(En2Scheme::LittleEndian, 0x08c7, 4),
            [0xc7, 0x08, 0, 0]
        );
    }

    #[test]
    fn expectations_follow_the_share_target() {
        let job = NotifyJob {
            id: "1".into(),
            prevhash: [0; 32],
            coinb1: vec![1, 2],
            coinb2: vec![3],
            branch: vec![[7; 32]],
            version: 0x2000_0000,
            nbits: 0x1d00_ffff,
            ntime: 0,
            ntime_text: "00000000".into(),
            clean: true,
        };
        let easy = ShareDifficulty::new(1.0 / 65536.0);
        let hard = ShareDifficulty::new(1e9);
        let root = job.merkle_root(&[0; 4], &[0; 4]);
        let (mut met, mut missed) = (false, false);
        for nonce in 0..200_000u32 {
            let hash = job.hash(&root, job.version, 0, nonce);
            match expect_fresh(&job, &hash, &easy, &easy) {
                Expect::Accept => met = true,
                Expect::Reject(23) => missed = true,
                other => panic!("{other:?}"),
            }
            assert_ne!(expect_fresh(&job, &hash, &hard, &hard), Expect::Accept);
            if met && missed {
                break;
            }
        }
        assert!(met && missed);
        assert_eq!(expect_duplicate(Expect::Accept), Expect::Reject(22));
        assert_eq!(expect_duplicate(Expect::Reject(23)), Expect::Reject(23));
    }
}
