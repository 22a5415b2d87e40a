//! Merkle trees of transaction ids: the coinbase branch a miner folds, and full roots.
//!
//! Responsibilities: build the sibling path of the leftmost leaf (the coinbase) once per
//! template, and fold a coinbase txid with that path once per share. Hashes are in internal byte
//! order (the order `sha256d` returns them), never the reversed display order.
//!
//! Usage: [`MerkleBranch::from_txids`] at job build time (allocates a scratch level);
//! [`MerkleBranch::root`] on the share path (no allocation, one `sha256d_64` per level).

use thiserror::Error;
use warppool_hash::sha256d_64;

use crate::limits::MERKLE_DEPTH_MAX;

/// Why a merkle branch could not be built.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum MerkleError {
    /// More leaves than a branch of [`MERKLE_DEPTH_MAX`] levels can cover.
    #[error("{leaves} merkle leaves need more than {MERKLE_DEPTH_MAX} levels")]
    TooDeep {
        /// Leaves given (coinbase included).
        leaves: usize,
    },
}

/// The sibling path of the leftmost leaf: at most [`MERKLE_DEPTH_MAX`] hashes, stored inline.
#[derive(Clone, Copy, PartialEq, Eq)]
pub struct MerkleBranch {
    steps: [[u8; 32]; MERKLE_DEPTH_MAX],
    len: u8,
}

impl core::fmt::Debug for MerkleBranch {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        f.debug_struct("MerkleBranch")
            .field("depth", &self.len)
            .finish()
    }
}

impl MerkleBranch {
    /// The branch of a block with no transaction besides the coinbase.
    pub const EMPTY: Self = Self {
        steps: [[0; 32]; MERKLE_DEPTH_MAX],
        len: 0,
    };

    /// Builds the coinbase's branch from the txids of the other transactions, in block order.
    ///
    /// # Errors
    /// [`MerkleError::TooDeep`] if the tree would need more than [`MERKLE_DEPTH_MAX`] levels.
    pub fn from_txids(txids: &[[u8; 32]]) -> Result<Self, MerkleError> {
        let leaves = txids.len() + 1;
        if leaves > (1 << MERKLE_DEPTH_MAX) {
            return Err(MerkleError::TooDeep { leaves });
        }
        let mut branch = Self::EMPTY;
        // `level[0]` stands for the (unknown) coinbase-path node and is never read.
        let mut level: Vec<[u8; 32]> = Vec::with_capacity(leaves);
        level.push([0; 32]);
        level.extend_from_slice(txids);
        while level.len() > 1 {
            assert!(
                usize::from(branch.len) < MERKLE_DEPTH_MAX,
                "depth checked above"
            );
            branch.steps[usize::from(branch.len)] = level[1];
            branch.len += 1;
            let mut next = Vec::with_capacity(level.len() / 2 + 1);
            next.push([0; 32]);
            let mut i = 2;
            while i < level.len() {
                let right = level.get(i + 1).unwrap_or(&level[i]);
                next.push(hash_pair(&level[i], right));
                i += 2;
            }
            level = next;
        }
        assert!(level.len() == 1);
        Ok(branch)
    }

    /// Builds a branch from its steps (for jobs built from parts, and tests).
    ///
    /// # Errors
    /// [`MerkleError::TooDeep`] if `steps` is longer than [`MERKLE_DEPTH_MAX`].
    pub fn from_steps(steps: &[[u8; 32]]) -> Result<Self, MerkleError> {
        if steps.len() > MERKLE_DEPTH_MAX {
            return Err(MerkleError::TooDeep {
                leaves: 1 << steps.len().min(63),
            });
        }
        let mut branch = Self::EMPTY;
        branch.steps[..steps.len()].copy_from_slice(steps);
        branch.len = steps.len() as u8;
        Ok(branch)
    }

    /// The sibling hashes, nearest the leaf first.
    #[must_use]
    pub fn steps(&self) -> &[[u8; 32]] {
        &self.steps[..usize::from(self.len)]
    }

    /// Folds `leaf` (the coinbase txid) up the branch into the merkle root. Hot path: no
    /// allocation, one double SHA-256 of 64 bytes per level.
    #[inline]
    #[must_use]
    pub fn root(&self, leaf: &[u8; 32]) -> [u8; 32] {
        let mut node = *leaf;
        for sibling in self.steps() {
            node = hash_pair(&node, sibling);
        }
        node
    }
}

/// `sha256d(left ‖ right)`.
#[inline]
#[must_use]
pub fn hash_pair(left: &[u8; 32], right: &[u8; 32]) -> [u8; 32] {
    let mut node = [0u8; 64];
    node[..32].copy_from_slice(left);
    node[32..].copy_from_slice(right);
    sha256d_64(&node)
}

/// The merkle root of `leaves` (Bitcoin's rule: an odd last node is paired with itself). Slow
/// path (allocates one level); an empty list gives all zeros.
#[must_use]
pub fn merkle_root(leaves: &[[u8; 32]]) -> [u8; 32] {
    let Some(first) = leaves.first() else {
        return [0; 32];
    };
    if leaves.len() == 1 {
        return *first;
    }
    let mut level: Vec<[u8; 32]> = leaves
        .chunks(2)
        .map(|p| hash_pair(&p[0], p.get(1).unwrap_or(&p[0])))
        .collect();
    while level.len() > 1 {
        level = level
            .chunks(2)
            .map(|p| hash_pair(&p[0], p.get(1).unwrap_or(&p[0])))
            .collect();
    }
    level[0]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn leaf(i: u8) -> [u8; 32] {
        [i; 32]
    }

    #[test]
    fn branch_root_matches_full_root() {
        for n in 0..40u8 {
            let txids: Vec<_> = (1..=n).map(leaf).collect();
            let cb = leaf(0xcb);
            let branch = MerkleBranch::from_txids(&txids).unwrap();
            let mut all = vec![cb];
            all.extend_from_slice(&txids);
            assert_eq!(branch.root(&cb), merkle_root(&all), "n = {n}");
        }
    }

    #[test]
    fn depths() {
        assert_eq!(MerkleBranch::from_txids(&[]).unwrap().steps().len(), 0);
        assert_eq!(
            MerkleBranch::from_txids(&[leaf(1)]).unwrap().steps().len(),
            1
        );
        assert_eq!(
            MerkleBranch::from_txids(&[leaf(1); 2])
                .unwrap()
                .steps()
                .len(),
            2
        );
        assert_eq!(
            MerkleBranch::from_txids(&[leaf(1); 3])
                .unwrap()
                .steps()
                .len(),
            2
        );
        assert!(MerkleBranch::from_steps(&[[0; 32]; MERKLE_DEPTH_MAX + 1]).is_err());
    }
}
