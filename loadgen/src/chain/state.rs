//! The simulated chain: blocks, the synthetic mempool, templates and block validation.
//!
//! Sans-IO: everything here is called under the simulator's mutex, from RPC handlers, timers
//! and the handle. Hashes are kept in internal byte order (`[u8; 32]`) or as `bitcoin` types.

use std::collections::{HashMap, VecDeque};
use std::time::{SystemTime, UNIX_EPOCH};

use bitcoin::absolute::LockTime;
use bitcoin::block::{Header, Version};
use bitcoin::hashes::Hash;
use bitcoin::pow::Work;
use bitcoin::transaction::Version as TxVersion;
use bitcoin::{
    Amount, Block, BlockHash, CompactTarget, Network, OutPoint, PubkeyHash, ScriptBuf, Sequence,
    Transaction, TxIn, TxMerkleNode, TxOut, Txid, WPubkeyHash, Witness,
};
use serde_json::{Value, json};
use warppool_core::coinbase::bip34_height_push;
use warppool_core::difficulty::ShareTarget;
use warppool_core::hex;

/// Regtest's subsidy halving interval (`nSubsidyHalvingInterval`).
pub(crate) const HALVING_INTERVAL: u32 = 150;
/// `MAX_BLOCK_WEIGHT`.
pub(crate) const MAX_BLOCK_WEIGHT: u64 = 4_000_000;
/// `MAX_BLOCK_SIGOPS_COST`.
const MAX_BLOCK_SIGOPS_COST: u64 = 80_000;
/// How far ahead of the clock a header time may be (`MAX_FUTURE_BLOCK_TIME`).
const MAX_FUTURE_BLOCK_TIME: u32 = 2 * 60 * 60;
/// Block version of templates and network blocks (BIP9 top bits, no signalling).
pub(crate) const BLOCK_VERSION: i32 = 0x2000_0000;
/// The BIP141 commitment output prefix: `OP_RETURN`, push 36, `aa21a9ed`.
const WITNESS_HEADER: [u8; 6] = [0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed];
/// Miner blocks remembered for [`ChainState::submitted`]: at regtest difficulty every share is
/// a block, so a long demo finds many; the oldest are forgotten. (The chain itself keeps every
/// block, about 300 bytes each, as a node would.)
pub(crate) const SUBMITTED_MAX: usize = 100_000;
/// The largest mempool the simulator keeps, whatever the configuration says.
pub(crate) const MEMPOOL_MAX: usize = 2_000;

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

/// One block on the simulated chain (main chain or a side branch).
#[derive(Clone, Debug)]
pub(crate) struct BlockEntry {
    pub(crate) header: Header,
    pub(crate) hash: BlockHash,
    pub(crate) height: u32,
    pub(crate) tx_count: usize,
    pub(crate) size: usize,
    pub(crate) weight: u64,
    pub(crate) chainwork: Work,
}

/// A mempool transaction and what Core reports about it.
#[derive(Clone, Debug)]
pub(crate) struct MempoolTx {
    pub(crate) tx: Transaction,
    pub(crate) txid: Txid,
    pub(crate) fee_sats: u64,
    pub(crate) weight: u64,
    pub(crate) sigops: u64,
}

/// Why `submitblock` did not accept a block. `Reject` strings are Core's BIP22 results.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum SubmitError {
    /// JSON-RPC error `-22` with a message (the block did not decode, or has no coinbase).
    Deserialize(&'static str),
    /// A BIP22 result string such as `high-hash` or `duplicate`.
    Reject(&'static str),
}

/// The chain, its mempool and counters.
#[derive(Debug)]
pub(crate) struct ChainState {
    bits: u32,
    target: ShareTarget,
    /// The main chain, index = height.
    chain: Vec<BlockEntry>,
    /// Every known block (main and side) by hash.
    known: HashMap<BlockHash, BlockEntry>,
    mempool: Vec<MempoolTx>,
    mempool_target: usize,
    /// Core's `nTransactionsUpdated`: bumped on every mempool or tip change.
    updates: u64,
    /// The newest [`SUBMITTED_MAX`] blocks from miners.
    submitted: VecDeque<SubmittedBlock>,
    /// Bytes of every main-chain block (`size_on_disk`).
    chain_bytes: u64,
    rng: u64,
    network_payout: ScriptBuf,
}

impl ChainState {
    /// A chain holding only the regtest genesis block.
    pub(crate) fn new(bits: u32, mempool_target: usize, seed: u64) -> Result<Self, String> {
        let target =
            ShareTarget::from_compact(bits).map_err(|e| format!("bits {bits:08x}: {e}"))?;
        let genesis = bitcoin::constants::genesis_block(Network::Regtest);
        let entry = BlockEntry {
            header: genesis.header,
            hash: genesis.block_hash(),
            height: 0,
            tx_count: genesis.txdata.len(),
            size: bitcoin::consensus::serialize(&genesis).len(),
            weight: genesis.weight().to_wu(),
            chainwork: genesis.header.work(),
        };
        let mut known = HashMap::new();
        known.insert(entry.hash, entry.clone());
        let genesis_bytes = entry.size as u64;
        let mut s = Self {
            bits,
            target,
            chain: vec![entry],
            known,
            mempool: Vec::new(),
            mempool_target: mempool_target.min(MEMPOOL_MAX),
            updates: 1,
            submitted: VecDeque::new(),
            chain_bytes: genesis_bytes,
            rng: seed | 1,
            network_payout: network_payout_script(),
        };
        s.refill_mempool(s.mempool_target);
        Ok(s)
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

    /// Whether `entry` is on the main chain.
    pub(crate) fn in_main_chain(&self, entry: &BlockEntry) -> bool {
        self.chain
            .get(entry.height as usize)
            .is_some_and(|e| e.hash == entry.hash)
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

    /// Median time past of the last 11 blocks ending at `height`.
    pub(crate) fn median_time_past(&self, height: u32) -> u32 {
        let end = height as usize + 1;
        let start = end.saturating_sub(11);
        let mut times: Vec<u32> = self.chain[start..end]
            .iter()
            .map(|e| e.header.time)
            .collect();
        times.sort_unstable();
        times[times.len() / 2]
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64*: plenty for synthetic transactions.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn random_bytes<const N: usize>(&mut self) -> [u8; N] {
        let mut out = [0u8; N];
        for chunk in out.chunks_mut(8) {
            let r = self.next_random().to_le_bytes();
            chunk.copy_from_slice(&r[..chunk.len()]);
        }
        out
    }

    /// A synthetic transaction: every other one spends (in shape) a P2WPKH output and carries
    /// a witness; the others are legacy P2PKH-shaped. Signatures are random bytes: the
    /// simulator never runs scripts.
    fn synthetic_tx(&mut self) -> MempoolTx {
        let witness = !self.next_random().is_multiple_of(3);
        let inputs = 1 + (self.next_random() % 2) as usize;
        let outputs = 1 + (self.next_random() % 3) as usize;
        let mut input = Vec::with_capacity(inputs);
        for _ in 0..inputs {
            let previous_output = OutPoint {
                txid: Txid::from_byte_array(self.random_bytes()),
                vout: (self.next_random() % 4) as u32,
            };
            let mut sig = self.random_bytes::<72>().to_vec();
            sig[0] = 0x30;
            sig[71] = 0x01; // SIGHASH_ALL
            let mut pubkey = self.random_bytes::<33>().to_vec();
            pubkey[0] = 0x02;
            let (script_sig, wit) = if witness {
                (ScriptBuf::new(), Witness::from_slice(&[sig, pubkey]))
            } else {
                let mut s = Vec::with_capacity(2 + 72 + 33);
                s.push(72);
                s.extend_from_slice(&sig);
                s.push(33);
                s.extend_from_slice(&pubkey);
                (ScriptBuf::from_bytes(s), Witness::new())
            };
            input.push(TxIn {
                previous_output,
                script_sig,
                sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                witness: wit,
            });
        }
        let mut output = Vec::with_capacity(outputs);
        let mut legacy_sigops = 0;
        for _ in 0..outputs {
            let script_pubkey = if witness {
                ScriptBuf::new_p2wpkh(&WPubkeyHash::from_byte_array(self.random_bytes()))
            } else {
                legacy_sigops += 1;
                ScriptBuf::new_p2pkh(&PubkeyHash::from_byte_array(self.random_bytes()))
            };
            output.push(TxOut {
                value: Amount::from_sat(10_000 + self.next_random() % 5_000_000),
                script_pubkey,
            });
        }
        let tx = Transaction {
            version: TxVersion::TWO,
            lock_time: LockTime::ZERO,
            input,
            output,
        };
        let weight = tx.weight().to_wu();
        let vsize = weight.div_ceil(4);
        let fee_sats = vsize * (1 + self.next_random() % 50);
        // Sigop cost as Core counts it: legacy sigops x4, a P2WPKH spend counts 1.
        let sigops = if witness {
            inputs as u64
        } else {
            4 * legacy_sigops
        };
        MempoolTx {
            txid: tx.compute_txid(),
            tx,
            fee_sats,
            weight,
            sigops,
        }
    }

    /// Adds up to `n` synthetic transactions, never above the mempool target. Returns how
    /// many were added (and bumps the update counter if any).
    pub(crate) fn refill_mempool(&mut self, n: usize) -> usize {
        let room = self.mempool_target.saturating_sub(self.mempool.len());
        let add = n.min(room);
        for _ in 0..add {
            let tx = self.synthetic_tx();
            self.mempool.push(tx);
        }
        if add > 0 {
            self.updates += 1;
        }
        add
    }

    /// The mempool transactions a template includes: in order, within the block limits.
    fn selected(&self) -> Vec<&MempoolTx> {
        let mut weight = 4_000; // room for the header and the coinbase
        let mut sigops = 400;
        let mut out = Vec::new();
        for m in &self.mempool {
            if weight + m.weight > MAX_BLOCK_WEIGHT || sigops + m.sigops > MAX_BLOCK_SIGOPS_COST {
                continue;
            }
            weight += m.weight;
            sigops += m.sigops;
            out.push(m);
        }
        out
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

    /// The `getblocktemplate` result, in Bitcoin Core 27's format.
    pub(crate) fn template_json(&self) -> Value {
        let tip = self.tip();
        let height = tip.height + 1;
        let mintime = self.median_time_past(tip.height) + 1;
        let curtime = now_secs().max(mintime);
        let selected = self.selected();
        let fees: u64 = selected.iter().map(|m| m.fee_sats).sum();
        let transactions: Vec<Value> = selected
            .iter()
            .map(|m| {
                json!({
                    "data": hex::encode(&bitcoin::consensus::serialize(&m.tx)),
                    "txid": m.txid.to_string(),
                    "hash": m.tx.compute_wtxid().to_string(),
                    "depends": [],
                    "fee": m.fee_sats,
                    "sigops": m.sigops,
                    "weight": m.weight,
                })
            })
            .collect();
        let txs: Vec<&Transaction> = selected.iter().map(|m| &m.tx).collect();
        let commitment = Self::witness_commitment_script(&txs);
        json!({
            "capabilities": ["proposal"],
            "version": BLOCK_VERSION,
            "rules": ["csv", "!segwit", "taproot"],
            "vbavailable": {},
            "vbrequired": 0,
            "previousblockhash": tip.hash.to_string(),
            "transactions": transactions,
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

    /// Builds a block on the tip paying `payout` (default: the simulator's own address), with the mempool's
    /// transactions. The nonce is ground unless `skip_pow`; with hard bits and no skip, the
    /// grind gives up after 2^32 nonces x 64 times and returns an invalid block (rejected as
    /// `high-hash`).
    pub(crate) fn build_network_block(&self, skip_pow: bool, payout: Option<&ScriptBuf>) -> Block {
        let tip = self.tip();
        let height = tip.height + 1;
        let selected = self.selected();
        let fees: u64 = selected.iter().map(|m| m.fee_sats).sum();
        let txs: Vec<&Transaction> = selected.iter().map(|m| &m.tx).collect();
        let commitment = Self::witness_commitment_script(&txs);
        let (push, len) = bip34_height_push(height).expect("heights stay below i32::MAX");
        let mut script_sig = push[..len].to_vec();
        script_sig.extend_from_slice(b"\x0a/chainsim/");
        let coinbase = Transaction {
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
                    value: Amount::from_sat(block_subsidy(height) + fees),
                    script_pubkey: payout.unwrap_or(&self.network_payout).clone(),
                },
                TxOut {
                    value: Amount::ZERO,
                    script_pubkey: commitment,
                },
            ],
        };
        let mut txdata = Vec::with_capacity(selected.len() + 1);
        txdata.push(coinbase);
        txdata.extend(selected.iter().map(|m| m.tx.clone()));
        let time = now_secs().max(self.median_time_past(tip.height) + 1);
        let mut block = Block {
            header: Header {
                version: Version::from_consensus(BLOCK_VERSION),
                prev_blockhash: tip.hash,
                merkle_root: TxMerkleNode::all_zeros(),
                time,
                bits: CompactTarget::from_consensus(self.bits),
                nonce: 0,
            },
            txdata,
        };
        block.header.merkle_root = block.compute_merkle_root().expect("a coinbase is there");
        if !skip_pow {
            'grind: for _ in 0..64 {
                for nonce in 0..=u32::MAX {
                    block.header.nonce = nonce;
                    if self
                        .target
                        .is_met_by(&block.header.block_hash().to_byte_array())
                    {
                        break 'grind;
                    }
                }
                block.header.time += 1;
            }
        }
        block
    }

    /// Full validation of a submitted block, in Bitcoin Core's order, and connection to the
    /// tip. `Ok(())` when the block became the tip; a block on an older block is stored on a
    /// side branch and answered `inconclusive`, as Core does (no reorgs here). `skip_pow`
    /// applies to the simulator's own blocks only.
    pub(crate) fn submit(
        &mut self,
        block: &Block,
        skip_pow: bool,
        from_miner: bool,
    ) -> Result<(), SubmitError> {
        let checked = self.check(block, skip_pow)?;
        if !checked.extends_tip {
            self.known.insert(checked.entry.hash, checked.entry);
            return Err(SubmitError::Reject("inconclusive"));
        }
        let Checked {
            entry,
            spent,
            coinbase_value_sats,
            ..
        } = checked;
        let cb = &block.txdata[0];
        self.mempool.retain(|m| !spent.contains(&m.txid));
        if from_miner {
            if self.submitted.len() == SUBMITTED_MAX {
                self.submitted.pop_front();
            }
            self.submitted.push_back(SubmittedBlock {
                hash: entry.hash,
                height: entry.height,
                payouts: cb
                    .output
                    .iter()
                    .filter(|o| !o.script_pubkey.is_op_return())
                    .map(|o| (o.script_pubkey.clone(), o.value.to_sat()))
                    .collect(),
                coinbase_value_sats,
                tx_count: block.txdata.len(),
            });
        }
        self.chain_bytes += entry.size as u64;
        self.known.insert(entry.hash, entry.clone());
        self.chain.push(entry);
        self.updates += 1;
        self.refill_mempool(self.mempool_target);
        Ok(())
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
            return Err(SubmitError::Reject("duplicate"));
        }
        if block.header.prev_blockhash != self.tip().hash {
            return Err(SubmitError::Reject("inconclusive-not-best-prevblk"));
        }
        self.check(block, true).map(|_| ())
    }

    /// Every check, in Core's order (`CheckBlock`, `AcceptBlockHeader`,
    /// `ContextualCheckBlockHeader`, `ContextualCheckBlock`, then `ConnectBlock`'s input and
    /// coinbase-amount checks when the block extends the tip). Changes nothing.
    fn check(&self, block: &Block, skip_pow: bool) -> Result<Checked, SubmitError> {
        let hash = block.block_hash();
        if block.txdata.first().is_none_or(|c| !c.is_coinbase()) {
            return Err(SubmitError::Deserialize(
                "Block does not start with a coinbase",
            ));
        }
        if self.known.contains_key(&hash) {
            return Err(SubmitError::Reject("duplicate"));
        }
        // CheckBlock: context-free checks.
        if !skip_pow {
            let header_target = ShareTarget::from_compact(block.header.bits.to_consensus())
                .map_err(|_| SubmitError::Reject("high-hash"))?;
            if !header_target.is_met_by(&hash.to_byte_array()) {
                return Err(SubmitError::Reject("high-hash"));
            }
        }
        if block.compute_merkle_root() != Some(block.header.merkle_root) {
            return Err(SubmitError::Reject("bad-txnmrklroot"));
        }
        let mut seen = std::collections::HashSet::with_capacity(block.txdata.len());
        if !block.txdata.iter().all(|t| seen.insert(t.compute_txid())) {
            return Err(SubmitError::Reject("bad-txns-duplicate"));
        }
        if block.txdata.iter().skip(1).any(Transaction::is_coinbase) {
            return Err(SubmitError::Reject("bad-cb-multiple"));
        }
        let cb = &block.txdata[0];
        let cb_script_len = cb.input[0].script_sig.len();
        if !(2..=100).contains(&cb_script_len) {
            return Err(SubmitError::Reject("bad-cb-length"));
        }
        if block.weight().to_wu() > MAX_BLOCK_WEIGHT {
            return Err(SubmitError::Reject("bad-blk-weight"));
        }
        // AcceptBlockHeader: the parent must be known.
        let Some(parent) = self.known.get(&block.header.prev_blockhash).cloned() else {
            return Err(SubmitError::Reject("prev-blk-not-found"));
        };
        // ContextualCheckBlockHeader.
        if block.header.bits.to_consensus() != self.bits {
            return Err(SubmitError::Reject("bad-diffbits"));
        }
        let height = parent.height + 1;
        if self.in_main_chain(&parent) && block.header.time <= self.median_time_past(parent.height)
        {
            return Err(SubmitError::Reject("time-too-old"));
        }
        if block.header.time > now_secs().saturating_add(MAX_FUTURE_BLOCK_TIME) {
            return Err(SubmitError::Reject("time-too-new"));
        }
        if block.header.version.to_consensus() < 4 {
            return Err(SubmitError::Reject("bad-version(0x00000001)"));
        }
        // ContextualCheckBlock.
        let (push, len) =
            bip34_height_push(height).map_err(|_| SubmitError::Reject("bad-cb-height"))?;
        if !cb.input[0].script_sig.as_bytes().starts_with(&push[..len]) {
            return Err(SubmitError::Reject("bad-cb-height"));
        }
        check_witness(block)?;
        let entry = BlockEntry {
            header: block.header,
            hash,
            height,
            tx_count: block.txdata.len(),
            size: bitcoin::consensus::serialize(block).len(),
            weight: block.weight().to_wu(),
            chainwork: parent.chainwork + block.header.work(),
        };
        if parent.hash != self.tip().hash {
            return Ok(Checked {
                entry,
                extends_tip: false,
                spent: Vec::new(),
                coinbase_value_sats: 0,
            });
        }
        // ConnectBlock: inputs and the coinbase amount.
        let mut fees = 0u64;
        let mut spent = Vec::with_capacity(block.txdata.len());
        for tx in &block.txdata[1..] {
            let txid = tx.compute_txid();
            let Some(m) = self.mempool.iter().find(|m| m.txid == txid) else {
                return Err(SubmitError::Reject("bad-txns-inputs-missingorspent"));
            };
            fees += m.fee_sats;
            spent.push(txid);
        }
        let coinbase_value_sats: u64 = cb.output.iter().map(|o| o.value.to_sat()).sum();
        if coinbase_value_sats > block_subsidy(height) + fees {
            return Err(SubmitError::Reject("bad-cb-amount"));
        }
        Ok(Checked {
            entry,
            extends_tip: true,
            spent,
            coinbase_value_sats,
        })
    }
}

/// What [`ChainState::check`] found about a valid block.
#[derive(Debug)]
struct Checked {
    entry: BlockEntry,
    extends_tip: bool,
    /// The block's non-coinbase txids (all from the mempool); empty off the tip.
    spent: Vec<Txid>,
    /// The sum of the coinbase outputs; 0 off the tip.
    coinbase_value_sats: u64,
}

/// BIP141 checks as Core's `ContextualCheckBlock` does them.
fn check_witness(block: &Block) -> Result<(), SubmitError> {
    let cb = &block.txdata[0];
    let commitment_pos = cb.output.iter().rposition(|o| {
        let s = o.script_pubkey.as_bytes();
        s.len() >= 38 && s[..6] == WITNESS_HEADER
    });
    match commitment_pos {
        Some(pos) => {
            let witness = &cb.input[0].witness;
            let reserved = match witness.nth(0) {
                Some(r) if witness.len() == 1 && r.len() == 32 => r,
                _ => return Err(SubmitError::Reject("bad-witness-nonce-size")),
            };
            let root = block
                .witness_root()
                .ok_or(SubmitError::Reject("bad-witness-merkle-match"))?;
            let mut pre = [0u8; 64];
            pre[..32].copy_from_slice(root.as_byte_array());
            pre[32..].copy_from_slice(reserved);
            let want = warppool_hash::sha256d(&pre);
            if cb.output[pos].script_pubkey.as_bytes()[6..38] != want {
                return Err(SubmitError::Reject("bad-witness-merkle-match"));
            }
        }
        None => {
            if block
                .txdata
                .iter()
                .any(|t| !t.input.iter().all(|i| i.witness.is_empty()))
            {
                return Err(SubmitError::Reject("unexpected-witness"));
            }
        }
    }
    Ok(())
}

/// The simulator's own payout: P2WPKH to a fixed key hash (`bcrt1q…`).
pub(crate) fn network_payout_script() -> ScriptBuf {
    ScriptBuf::new_p2wpkh(&WPubkeyHash::from_byte_array([0x5a; 20]))
}
