//! The simulated chain: the block tree, the active chain and its UTXO set, the mempool,
//! templates and the network's own blocks.
//!
//! Sans-IO: everything here is called under the simulator's mutex, from RPC handlers, timers
//! and the handle. Validation is in `validate.rs`, chain selection (reorgs, `invalidateblock`,
//! `reconsiderblock`) in `reorg.rs`, the mempool in `mempool.rs`.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

use bitcoin::absolute::LockTime;
use bitcoin::block::{Header, Version};
use bitcoin::hashes::Hash;
use bitcoin::pow::Work;
use bitcoin::transaction::Version as TxVersion;
use bitcoin::{
    Amount, Block, BlockHash, CompactTarget, Network, OutPoint, ScriptBuf, Sequence, Transaction,
    TxIn, TxMerkleNode, TxOut, Witness,
};
use serde_json::{Value, json};
use warppool_core::coinbase::bip34_height_push;
use warppool_core::difficulty::ShareTarget;
use warppool_core::hex;

use super::mempool::{MAX_BLOCK_SIGOPS_COST, MAX_BLOCK_WEIGHT, Mempool, MempoolTx, Utxo};

/// Regtest's subsidy halving interval (`nSubsidyHalvingInterval`).
pub(crate) const HALVING_INTERVAL: u32 = 150;
/// Block version of templates and network blocks (BIP9 top bits, no signalling).
pub(crate) const BLOCK_VERSION: i32 = 0x2000_0000;
/// The BIP141 commitment output prefix: `OP_RETURN`, push 36, `aa21a9ed`.
pub(crate) const WITNESS_HEADER: [u8; 6] = [0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed];
/// Miner blocks remembered for [`ChainState::submitted`]: at regtest difficulty every share is
/// a block, so a long demo finds many; the oldest are forgotten. (The chain itself keeps every
/// block, as a node would: a few hundred bytes plus the mempool transactions it carried.)
pub(crate) const SUBMITTED_MAX: usize = 100_000;

/// The block subsidy at `height` on regtest (50 BTC halving every 150 blocks).
#[must_use]
pub fn block_subsidy(height: u32) -> u64 {
    let halvings = height / HALVING_INTERVAL;
    if halvings >= 64 {
        return 0;
    }
    (50 * 100_000_000u64) >> halvings
}

/// Seconds since the epoch, saturated into a header time.
pub(crate) fn now_secs() -> u32 {
    let secs = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    u32::try_from(secs).unwrap_or(u32::MAX)
}

/// Display-order hex of an internal-order hash.
pub(crate) fn display_hex(internal: &[u8; 32]) -> String {
    let mut h = *internal;
    h.reverse();
    hex::encode(&h)
}

/// An accepted block found by someone other than the simulator.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubmittedBlock {
    /// The block hash.
    pub hash: BlockHash,
    /// Its height.
    pub height: u32,
    /// The coinbase outputs that pay someone (the witness commitment and other `OP_RETURN`
    /// outputs left out): script and value in satoshis.
    pub payouts: Vec<(ScriptBuf, u64)>,
    /// The sum of all coinbase outputs, in satoshis.
    pub coinbase_value_sats: u64,
    /// The number of transactions, coinbase included.
    pub tx_count: usize,
}

/// One block of the tree (active chain or a side branch), with its full data.
#[derive(Clone, Debug)]
pub(crate) struct BlockEntry {
    pub(crate) header: Header,
    pub(crate) hash: BlockHash,
    pub(crate) height: u32,
    pub(crate) tx_count: usize,
    pub(crate) size: usize,
    pub(crate) weight: u64,
    pub(crate) chainwork: Work,
    pub(crate) block: Arc<Block>,
    /// Arrival order (Core's `nSequenceId`): of two tips with equal work the first stays.
    pub(crate) sequence: u64,
}

impl BlockEntry {
    pub(crate) fn new(block: Block, height: u32, chainwork: Work, sequence: u64) -> Self {
        Self {
            header: block.header,
            hash: block.block_hash(),
            height,
            tx_count: block.txdata.len(),
            size: bitcoin::consensus::serialize(&block).len(),
            weight: block.weight().to_wu(),
            chainwork,
            block: Arc::new(block),
            sequence,
        }
    }
}

/// Why `submitblock` did not accept a block. `Reject` strings are Core's BIP22 results.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SubmitError {
    /// JSON-RPC error `-22` with a message (the block did not decode, or has no coinbase).
    Deserialize(&'static str),
    /// A BIP22 result string such as `high-hash` or `duplicate`.
    Reject(String),
}

impl SubmitError {
    pub(crate) fn reject(reason: &str) -> Self {
        Self::Reject(reason.to_owned())
    }
}

/// The chain, its mempool and counters.
#[derive(Debug)]
pub(crate) struct ChainState {
    pub(crate) bits: u32,
    pub(crate) target: ShareTarget,
    /// The active chain, index = height.
    pub(crate) chain: Vec<BlockEntry>,
    /// Every stored block (active, side branch or invalid) by hash.
    pub(crate) known: HashMap<BlockHash, BlockEntry>,
    pub(crate) children: HashMap<BlockHash, Vec<BlockHash>>,
    /// Blocks that failed validation or descend from one (Core's `BLOCK_FAILED_MASK`),
    /// including those marked by `invalidateblock`.
    pub(crate) invalid: HashSet<BlockHash>,
    /// Blocks the simulator connected but Core's engine rejected: their transactions do not
    /// go back to the mempool when they are disconnected (the engine saw a flaw, such as a
    /// bad signature, that the simulator's own checks cannot).
    pub(crate) engine_rejected: HashSet<BlockHash>,
    /// The unspent outputs of the active chain.
    pub(crate) utxo: Utxo,
    pub(crate) mempool: Mempool,
    /// Core's `nTransactionsUpdated`: bumped on every mempool or tip change.
    pub(crate) updates: u64,
    /// The newest [`SUBMITTED_MAX`] blocks from miners.
    submitted: VecDeque<SubmittedBlock>,
    /// Bytes of every active-chain block (`size_on_disk`).
    pub(crate) chain_bytes: u64,
    pub(crate) sequence: u64,
}

impl ChainState {
    /// A chain holding only the regtest genesis block.
    pub(crate) fn new(bits: u32, mempool_target: usize, seed: u64) -> Result<Self, String> {
        let target =
            ShareTarget::from_compact(bits).map_err(|e| format!("bits {bits:08x}: {e}"))?;
        let genesis = bitcoin::constants::genesis_block(Network::Regtest);
        let work = genesis.header.work();
        let entry = BlockEntry::new(genesis, 0, work, 0);
        let mut known = HashMap::new();
        known.insert(entry.hash, entry.clone());
        let genesis_bytes = entry.size as u64;
        Ok(Self {
            bits,
            target,
            chain: vec![entry],
            known,
            children: HashMap::new(),
            invalid: HashSet::new(),
            engine_rejected: HashSet::new(),
            utxo: Utxo::new(),
            mempool: Mempool::new(seed, mempool_target),
            updates: 1,
            submitted: VecDeque::new(),
            chain_bytes: genesis_bytes,
            sequence: 1,
        })
    }

    pub(crate) fn tip(&self) -> &BlockEntry {
        self.chain.last().expect("the chain always holds genesis")
    }

    pub(crate) fn height(&self) -> u32 {
        self.tip().height
    }

    pub(crate) fn bits(&self) -> u32 {
        self.bits
    }

    pub(crate) fn updates(&self) -> u64 {
        self.updates
    }

    pub(crate) fn mempool_len(&self) -> usize {
        self.mempool.len()
    }

    pub(crate) fn submitted(&self) -> Vec<SubmittedBlock> {
        self.submitted.iter().cloned().collect()
    }

    pub(crate) const fn chain_bytes(&self) -> u64 {
        self.chain_bytes
    }

    pub(crate) fn main_chain(&self) -> &[BlockEntry] {
        &self.chain
    }

    pub(crate) fn lookup(&self, hash: &BlockHash) -> Option<&BlockEntry> {
        self.known.get(hash)
    }

    /// Whether `entry` is on the active chain.
    pub(crate) fn in_main_chain(&self, entry: &BlockEntry) -> bool {
        self.chain
            .get(entry.height as usize)
            .is_some_and(|e| e.hash == entry.hash)
    }

    /// Core's `confirmations`: `tip height - height + 1` on the active chain, -1 off it.
    pub(crate) fn confirmations(&self, entry: &BlockEntry) -> i64 {
        if self.in_main_chain(entry) {
            i64::from(self.height()) - i64::from(entry.height) + 1
        } else {
            -1
        }
    }

    /// Core's `longpollid`: tip hash (display hex) followed by the update counter.
    pub(crate) fn longpollid(&self) -> String {
        format!(
            "{}{}",
            display_hex(&self.tip().hash.to_byte_array()),
            self.updates
        )
    }

    /// The difficulty of `bits` relative to difficulty 1.
    pub(crate) fn difficulty(bits: u32) -> f64 {
        ShareTarget::from_compact(bits).map_or(0.0, ShareTarget::to_difficulty_lossy)
    }

    /// Median time past of the last 11 blocks ending at active-chain `height`.
    pub(crate) fn median_time_past(&self, height: u32) -> u32 {
        self.median_time_past_of(&self.chain[height as usize].hash)
    }

    /// Median time past of the last 11 blocks ending at `hash` (any branch).
    pub(crate) fn median_time_past_of(&self, hash: &BlockHash) -> u32 {
        let mut times = Vec::with_capacity(11);
        let mut at = self.known.get(hash);
        while let Some(e) = at {
            times.push(e.header.time);
            if times.len() == 11 || e.height == 0 {
                break;
            }
            at = self.known.get(&e.header.prev_blockhash);
        }
        times.sort_unstable();
        times[times.len() / 2]
    }

    /// Adds up to `n` mempool transactions (never above the target). Returns how many were
    /// added, and bumps the update counter if any.
    pub(crate) fn refill_mempool(&mut self, n: usize) -> usize {
        let added = self.mempool.refill(n, self.height() + 1);
        if added > 0 {
            self.updates += 1;
        }
        added
    }

    /// The witness commitment output script for transactions after a coinbase, with a zero
    /// reserved value.
    fn witness_commitment_script(txs: &[&Transaction]) -> ScriptBuf {
        let mut wtxids: Vec<[u8; 32]> = Vec::with_capacity(txs.len() + 1);
        wtxids.push([0u8; 32]);
        wtxids.extend(txs.iter().map(|t| t.compute_wtxid().to_byte_array()));
        let root = warppool_core::merkle::merkle_root(&wtxids);
        let mut pre = [0u8; 64];
        pre[..32].copy_from_slice(&root);
        let commitment = warppool_hash::sha256d(&pre);
        let mut script = WITNESS_HEADER.to_vec();
        script.extend_from_slice(&commitment);
        ScriptBuf::from_bytes(script)
    }

    /// The template's `transactions`, in Core's format (`depends` are 1-based indexes into
    /// this list).
    fn template_transactions(selected: &[&MempoolTx]) -> Vec<Value> {
        let index: HashMap<_, usize> = selected
            .iter()
            .enumerate()
            .map(|(i, m)| (m.txid, i + 1))
            .collect();
        selected
            .iter()
            .map(|m| {
                let depends: Vec<usize> = m
                    .parents
                    .iter()
                    .filter_map(|p| index.get(p))
                    .copied()
                    .collect();
                json!({
                    "data": hex::encode(&bitcoin::consensus::serialize(&m.tx)),
                    "txid": m.txid.to_string(),
                    "hash": m.wtxid.to_string(),
                    "depends": depends,
                    "fee": m.fee_sats,
                    "sigops": m.sigops,
                    "weight": m.weight,
                })
            })
            .collect()
    }

    /// The `getblocktemplate` result, in Bitcoin Core 27's format.
    pub(crate) fn template_json(&self) -> Value {
        let tip = self.tip();
        let height = tip.height + 1;
        let mintime = self.median_time_past(tip.height) + 1;
        let curtime = now_secs().max(mintime);
        let selected = self.mempool.selected();
        let fees: u64 = selected.iter().map(|m| m.fee_sats).sum();
        let txs: Vec<&Transaction> = selected.iter().map(|m| &m.tx).collect();
        let commitment = Self::witness_commitment_script(&txs);
        json!({
            "capabilities": ["proposal"],
            "version": BLOCK_VERSION,
            "rules": ["csv", "!segwit", "taproot"],
            "vbavailable": {},
            "vbrequired": 0,
            "previousblockhash": tip.hash.to_string(),
            "transactions": Self::template_transactions(&selected),
            "coinbaseaux": {},
            "coinbasevalue": block_subsidy(height) + fees,
            "longpollid": self.longpollid(),
            "target": display_hex(&self.target.to_le_bytes()),
            "mintime": mintime,
            "mutable": ["time", "transactions", "prevblock"],
            "noncerange": "00000000ffffffff",
            "sigoplimit": MAX_BLOCK_SIGOPS_COST,
            "sizelimit": MAX_BLOCK_WEIGHT,
            "weightlimit": MAX_BLOCK_WEIGHT,
            "curtime": curtime,
            "bits": format!("{:08x}", self.bits),
            "height": height,
            "default_witness_commitment": hex::encode(commitment.as_bytes()),
        })
    }

    /// Builds a block on `parent` paying `payout` (default: the simulator's own key) at a
    /// time of at least `time_min`. On the tip it carries the mempool's transactions; on any
    /// other block only a coinbase (the mempool is valid on the tip). The nonce is ground
    /// unless `skip_pow`; with hard bits and no skip, the grind gives up after 2^32 nonces x
    /// 64 times and returns an invalid block (rejected as `high-hash`).
    pub(crate) fn build_network_block(
        &self,
        parent: &BlockHash,
        payout: Option<&ScriptBuf>,
        time_min: u32,
        skip_pow: bool,
    ) -> Option<Block> {
        let parent_entry = self.known.get(parent)?;
        let height = parent_entry.height + 1;
        let selected = if *parent == self.tip().hash {
            self.mempool.selected()
        } else {
            Vec::new()
        };
        let fees: u64 = selected.iter().map(|m| m.fee_sats).sum();
        let txs: Vec<&Transaction> = selected.iter().map(|m| &m.tx).collect();
        let payout = payout.unwrap_or(self.mempool.payout_script());
        let coinbase = coinbase_tx(height, block_subsidy(height) + fees, payout, &txs);
        let mut txdata = Vec::with_capacity(selected.len() + 1);
        txdata.push(coinbase);
        txdata.extend(selected.iter().map(|m| m.tx.clone()));
        let time = time_min.max(self.median_time_past_of(parent) + 1);
        let mut block = Block {
            header: Header {
                version: Version::from_consensus(BLOCK_VERSION),
                prev_blockhash: *parent,
                merkle_root: TxMerkleNode::all_zeros(),
                time,
                bits: CompactTarget::from_consensus(self.bits),
                nonce: 0,
            },
            txdata,
        };
        block.header.merkle_root = block.compute_merkle_root().expect("a coinbase is there");
        if !skip_pow {
            grind(&mut block, &self.target);
        }
        Some(block)
    }

    /// Records a miner's block that became the tip, for [`ChainState::submitted`].
    pub(crate) fn record_submitted(&mut self, block: &Block) {
        let cb = &block.txdata[0];
        let hash = block.block_hash();
        let height = self.known.get(&hash).map_or(0, |e| e.height);
        if self.submitted.len() == SUBMITTED_MAX {
            self.submitted.pop_front();
        }
        self.submitted.push_back(SubmittedBlock {
            hash,
            height,
            payouts: cb
                .output
                .iter()
                .filter(|o| !o.script_pubkey.is_op_return())
                .map(|o| (o.script_pubkey.clone(), o.value.to_sat()))
                .collect(),
            coinbase_value_sats: cb.output.iter().map(|o| o.value.to_sat()).sum(),
            tx_count: block.txdata.len(),
        });
    }

    /// Validates a block and stores it, then activates the most-work valid chain, as Core's
    /// `ProcessNewBlock` does. `Ok(())` when the block is on the active chain afterwards;
    /// a valid block with less work stays on a side branch and is answered `inconclusive`.
    /// `skip_pow` applies to the simulator's own blocks only.
    pub(crate) fn submit(
        &mut self,
        block: &Block,
        skip_pow: bool,
        from_miner: bool,
    ) -> Result<(), SubmitError> {
        let entry = self.check(block, skip_pow)?;
        let hash = entry.hash;
        self.store(entry);
        let failures = self.activate_best_chain(Some(hash));
        if let Some((_, reason)) = failures.iter().find(|(h, _)| *h == hash) {
            return Err(SubmitError::Reject(reason.clone()));
        }
        let entry = self.known.get(&hash).expect("stored");
        if !self.in_main_chain(entry) {
            return Err(SubmitError::reject("inconclusive"));
        }
        if from_miner {
            self.record_submitted(block);
        }
        Ok(())
    }

    /// Adds a checked block to the tree.
    fn store(&mut self, entry: BlockEntry) {
        self.children
            .entry(entry.header.prev_blockhash)
            .or_default()
            .push(entry.hash);
        self.sequence += 1;
        self.known.insert(entry.hash, entry);
    }

    /// `getblocktemplate` in `proposal` mode (BIP23): every check of `submitblock` except
    /// proof of work, nothing stored. `Ok(())` is Core's `null`.
    pub(crate) fn propose(&self, block: &Block) -> Result<(), SubmitError> {
        if block.txdata.first().is_none_or(|c| !c.is_coinbase()) {
            return Err(SubmitError::Deserialize(
                "Block does not start with a coinbase",
            ));
        }
        if self.known.contains_key(&block.block_hash()) {
            return Err(SubmitError::reject("duplicate"));
        }
        if block.header.prev_blockhash != self.tip().hash {
            return Err(SubmitError::reject("inconclusive-not-best-prevblk"));
        }
        let entry = self.check(block, true)?;
        super::validate::connect_checks(&self.utxo, block, entry.height)
            .map(|_| ())
            .map_err(SubmitError::reject)
    }
}

/// A coinbase at `height` paying `value` to `payout`, with the BIP34 height, a zero witness
/// reserved value and the witness commitment of `txs`.
fn coinbase_tx(height: u32, value: u64, payout: &ScriptBuf, txs: &[&Transaction]) -> Transaction {
    let (push, len) = bip34_height_push(height).expect("heights stay below i32::MAX");
    let mut script_sig = push[..len].to_vec();
    script_sig.extend_from_slice(b"\x0a/chainsim/");
    Transaction {
        version: TxVersion::TWO,
        lock_time: LockTime::ZERO,
        input: vec![TxIn {
            previous_output: OutPoint::null(),
            script_sig: ScriptBuf::from_bytes(script_sig),
            sequence: Sequence::MAX,
            witness: Witness::from_slice(&[[0u8; 32]]),
        }],
        output: vec![
            TxOut {
                value: Amount::from_sat(value),
                script_pubkey: payout.clone(),
            },
            TxOut {
                value: Amount::ZERO,
                script_pubkey: ChainState::witness_commitment_script(txs),
            },
        ],
    }
}

/// Grinds the nonce (and the time, after each full nonce range) until the hash meets
/// `target`, at most 64 rounds.
fn grind(block: &mut Block, target: &ShareTarget) {
    for _ in 0..64 {
        for nonce in 0..=u32::MAX {
            block.header.nonce = nonce;
            if target.is_met_by(&block.header.block_hash().to_byte_array()) {
                return;
            }
        }
        block.header.time += 1;
    }
}
