//! Chain selection as Bitcoin Core does it: the active chain is the most-work chain of valid
//! blocks (of equal work, the first seen stays), side branches take over when they have more
//! work, and `invalidateblock` / `reconsiderblock` mark and clear failures.
//!
//! A reorg disconnects to the fork point by rebuilding the UTXO set from genesis along the
//! active chain (the simulator keeps no undo data: reorgs are rare and its chains short),
//! then connects the new branch block by block with `ConnectBlock`'s checks; a block that
//! fails is marked invalid with its descendants and the next best chain is tried. The
//! disconnected blocks' transactions go back to the mempool when they are still valid.

use std::collections::VecDeque;

use bitcoin::{BlockHash, Transaction};

use super::state::ChainState;
use super::validate::{connect_checks, created_coins};

/// A block that failed to connect and Core's reason.
pub(crate) type Failure = (BlockHash, String);

impl ChainState {
    /// The valid block with the most work (the earliest stored among equals).
    fn best_candidate(&self) -> BlockHash {
        self.known
            .values()
            .filter(|e| !self.invalid.contains(&e.hash))
            .max_by(|a, b| {
                a.chainwork
                    .cmp(&b.chainwork)
                    .then_with(|| b.sequence.cmp(&a.sequence))
            })
            .map_or(self.chain[0].hash, |e| e.hash)
    }

    /// Moves the active chain to the most-work valid chain. `hint` is a block just stored:
    /// only it can beat the (valid) tip, so no search is needed. Returns the blocks that
    /// failed to connect on the way, with their reasons.
    pub(crate) fn activate_best_chain(&mut self, hint: Option<BlockHash>) -> Vec<Failure> {
        let mut failures = Vec::new();
        let mut hint = hint;
        // Each round either reaches the best chain or marks at least one block invalid, so
        // the loop ends within as many rounds as there are stored blocks.
        for _ in 0..=self.known.len() {
            let best = match hint.take() {
                Some(h) => {
                    let tip_work = self.tip().chainwork;
                    if self.known[&h].chainwork <= tip_work {
                        break;
                    }
                    h
                }
                None => self.best_candidate(),
            };
            if best == self.tip().hash {
                break;
            }
            match self.activate(best) {
                Ok(()) => break,
                Err(failure) => failures.push(failure),
            }
        }
        failures
    }

    /// Makes `target` the tip: disconnects to the fork point, connects the branch.
    fn activate(&mut self, target: BlockHash) -> Result<(), Failure> {
        let mut path = Vec::new();
        let mut at = target;
        while !self.in_main_chain(&self.known[&at]) {
            path.push(at);
            at = self.known[&at].header.prev_blockhash;
        }
        let fork_height = self.known[&at].height;
        let mut returned: Vec<Transaction> = Vec::new();
        let reorg = fork_height < self.height();
        if reorg {
            for e in self.chain.drain(fork_height as usize + 1..) {
                if !self.engine_rejected.contains(&e.hash) {
                    returned.extend(e.block.txdata.iter().skip(1).cloned());
                }
                self.chain_bytes -= e.size as u64;
            }
            self.replay_utxo();
        }
        let mut conflict = false;
        let mut result = Ok(());
        for hash in path.into_iter().rev() {
            let entry = self.known[&hash].clone();
            match connect_checks(&self.utxo, &entry.block, entry.height) {
                Ok(delta) => {
                    delta.apply(&mut self.utxo);
                    conflict |= !self.mempool.on_block_connected(&entry.block, entry.height);
                    self.chain_bytes += entry.size as u64;
                    self.chain.push(entry);
                }
                Err(reason) => {
                    self.mark_invalid(&hash);
                    result = Err((hash, reason.to_owned()));
                    break;
                }
            }
        }
        self.updates += 1;
        if reorg || conflict {
            self.mempool
                .rebuild(&self.utxo, self.height() + 1, returned);
        }
        self.refill_mempool(usize::MAX);
        result
    }

    /// Rebuilds the UTXO set of the active chain from genesis.
    fn replay_utxo(&mut self) {
        self.utxo.clear();
        for e in &self.chain[1..] {
            // Coins created and spent in the same block: add them all, then remove.
            self.utxo.extend(created_coins(&e.block, e.height));
            for tx in e.block.txdata.iter().skip(1) {
                for i in &tx.input {
                    self.utxo.remove(&i.previous_output);
                }
            }
        }
    }

    /// A block Core's engine rejected: invalid with its descendants, and taken off the
    /// active chain without giving its transactions back to the mempool.
    pub(crate) fn reject_by_engine(&mut self, hash: &BlockHash) {
        self.engine_rejected.insert(*hash);
        self.mark_invalid(hash);
        self.activate_best_chain(None);
    }

    /// Marks `hash` and its descendants invalid.
    pub(crate) fn mark_invalid(&mut self, hash: &BlockHash) {
        let mut queue = VecDeque::from([*hash]);
        while let Some(h) = queue.pop_front() {
            if self.invalid.insert(h)
                && let Some(kids) = self.children.get(&h)
            {
                queue.extend(kids.iter().copied());
            }
        }
    }

    /// Core's `invalidateblock`: marks the block and its descendants invalid and activates
    /// the most-work valid chain (the block's parent, or a side branch with more work).
    /// Returns false for an unknown block; genesis cannot be invalidated.
    pub(crate) fn invalidate(&mut self, hash: &BlockHash) -> Result<(), &'static str> {
        let entry = self.known.get(hash).ok_or("Block not found")?;
        if entry.height == 0 {
            return Err("Cannot invalidate the genesis block");
        }
        self.mark_invalid(hash);
        if self.invalid.contains(&self.tip().hash) {
            // Disconnect to the last valid block first, then look for the best chain.
            let keep = self
                .chain
                .iter()
                .position(|e| self.invalid.contains(&e.hash))
                .expect("the tip is invalid");
            let parent = self.chain[keep - 1].hash;
            let _ = self.activate(parent);
        }
        self.activate_best_chain(None);
        Ok(())
    }

    /// Core's `reconsiderblock`: clears the invalid mark on the block, its descendants and
    /// its ancestors, and activates the most-work valid chain (blocks that really are
    /// invalid fail again on connection).
    pub(crate) fn reconsider(&mut self, hash: &BlockHash) -> Result<Vec<Failure>, &'static str> {
        if !self.known.contains_key(hash) {
            return Err("Block not found");
        }
        let mut queue = VecDeque::from([*hash]);
        while let Some(h) = queue.pop_front() {
            self.invalid.remove(&h);
            if let Some(kids) = self.children.get(&h) {
                queue.extend(kids.iter().copied());
            }
        }
        let mut at = self.known[hash].header.prev_blockhash;
        while let Some(e) = self.known.get(&at) {
            self.invalid.remove(&at);
            if e.height == 0 {
                break;
            }
            at = e.header.prev_blockhash;
        }
        Ok(self.activate_best_chain(None))
    }
}
