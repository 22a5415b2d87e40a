//! The mempool: real, signed transactions of the simulator's wallet that spend matured
//! coinbases of its own chain and the outputs of earlier spends (chains of unconfirmed
//! transactions are allowed, listed with Core's `depends`).
//!
//! Responsibilities: create transactions up to the target, keep them in an order where every
//! parent comes before its children, follow the active chain (drop what a block confirmed,
//! rebuild after a reorg), and choose a template's transactions within the block limits.
//! Sans-IO: the chain state calls it under the simulator's mutex.

use std::collections::{HashMap, HashSet, VecDeque};

use bitcoin::{Block, OutPoint, ScriptBuf, Transaction, TxOut, Txid, Wtxid};

use super::wallet::{Kind, Wallet, WalletCoin};

/// `COINBASE_MATURITY`: a coinbase output may be spent in a block this many blocks above it.
pub(crate) const COINBASE_MATURITY: u32 = 100;
/// The largest mempool the simulator keeps, whatever the configuration says.
pub(crate) const MEMPOOL_MAX: usize = 2_000;
/// `MAX_BLOCK_WEIGHT`.
pub(crate) const MAX_BLOCK_WEIGHT: u64 = 4_000_000;
/// `MAX_BLOCK_SIGOPS_COST`.
pub(crate) const MAX_BLOCK_SIGOPS_COST: u64 = 80_000;
/// The highest fee rate the wallet pays, in satoshis per virtual byte (the lowest is 1).
const FEE_RATE_SAT_VB_MAX: u64 = 50;

/// An unspent output of the active chain.
#[derive(Clone, Debug)]
pub(crate) struct Coin {
    pub(crate) output: TxOut,
    pub(crate) height: u32,
    pub(crate) coinbase: bool,
}

/// The active chain's unspent outputs.
pub(crate) type Utxo = HashMap<OutPoint, Coin>;

/// A mempool transaction and what Core reports about it.
#[derive(Clone, Debug)]
pub(crate) struct MempoolTx {
    pub(crate) tx: Transaction,
    pub(crate) txid: Txid,
    pub(crate) wtxid: Wtxid,
    /// Inputs minus outputs.
    pub(crate) fee_sats: u64,
    pub(crate) weight: u64,
    /// Core's sigop cost (legacy and P2SH sigops x4, witness sigops x1).
    pub(crate) sigops: u64,
    /// The in-mempool transactions it spends from.
    pub(crate) parents: Vec<Txid>,
}

/// The transactions and the wallet coins they leave spendable.
#[derive(Debug)]
pub(crate) struct Mempool {
    wallet: Wallet,
    txs: Vec<MempoolTx>,
    target: usize,
    /// Wallet coins not spent by the chain or the mempool, oldest first (entries whose coin
    /// is gone from `spendable` are skipped).
    queue: VecDeque<OutPoint>,
    spendable: HashMap<OutPoint, WalletCoin>,
    /// The wallet's coinbase outputs by height, oldest first, until they mature.
    immature: VecDeque<(u32, WalletCoin)>,
    rng: u64,
    /// Rotates the kinds of the outputs.
    counter: usize,
}

impl Mempool {
    pub(crate) fn new(seed: u64, target: usize) -> Self {
        Self {
            wallet: Wallet::new(seed),
            txs: Vec::new(),
            target: target.min(MEMPOOL_MAX),
            queue: VecDeque::new(),
            spendable: HashMap::new(),
            immature: VecDeque::new(),
            rng: seed | 1,
            counter: 0,
        }
    }

    /// The network's coinbase payout: the wallet's P2WPKH key.
    pub(crate) fn payout_script(&self) -> &ScriptBuf {
        self.wallet.script(Kind::P2wpkh)
    }

    pub(crate) fn len(&self) -> usize {
        self.txs.len()
    }

    fn next_random(&mut self) -> u64 {
        // xorshift64*: plenty for fee rates and shapes.
        let mut x = self.rng;
        x ^= x >> 12;
        x ^= x << 25;
        x ^= x >> 27;
        self.rng = x;
        x.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    fn add_spendable(&mut self, coin: WalletCoin) {
        self.queue.push_back(coin.outpoint);
        self.spendable.insert(coin.outpoint, coin);
    }

    /// The next spendable coin (moving coinbases that mature in a block at `next_height`
    /// to the queue first).
    fn take_coin(&mut self, next_height: u32) -> Option<WalletCoin> {
        while let Some((h, _)) = self.immature.front() {
            if next_height.saturating_sub(*h) < COINBASE_MATURITY {
                break;
            }
            let (_, coin) = self.immature.pop_front().expect("front exists");
            self.add_spendable(coin);
        }
        while let Some(outpoint) = self.queue.pop_front() {
            if let Some(coin) = self.spendable.remove(&outpoint) {
                return Some(coin);
            }
        }
        None
    }

    /// Adds up to `n` signed transactions, never above the target, spending coins that a
    /// block at `next_height` may spend. Returns how many were added.
    pub(crate) fn refill(&mut self, n: usize, next_height: u32) -> usize {
        let room = self.target.saturating_sub(self.txs.len());
        let mut added = 0;
        while added < n.min(room) {
            let Some(first) = self.take_coin(next_height) else {
                break;
            };
            let mut coins = vec![first];
            if self.next_random().is_multiple_of(5)
                && let Some(second) = self.take_coin(next_height)
            {
                coins.push(second);
            }
            let kinds = [
                Kind::ALL[self.counter % 4],
                Kind::ALL[(self.counter + 1) % 4],
            ];
            self.counter += 1;
            let fee_rate = 1 + self.next_random() % FEE_RATE_SAT_VB_MAX;
            let tx = self
                .wallet
                .spend(&coins, &kinds, fee_rate)
                .or_else(|| self.wallet.spend(&coins, &kinds[..1], 1));
            let Some(tx) = tx else {
                continue; // coins too small to spend: dropped from the wallet
            };
            self.push_own(tx, &coins);
            added += 1;
        }
        added
    }

    /// Records a wallet transaction spending `coins`.
    fn push_own(&mut self, tx: Transaction, coins: &[WalletCoin]) {
        let prevouts: Vec<(OutPoint, TxOut)> = coins
            .iter()
            .map(|c| (c.outpoint, c.output.clone()))
            .collect();
        self.record(tx, &prevouts, &HashSet::new());
    }

    /// A block at `height` was connected on the tip (the common case). Returns false when
    /// it conflicts with the mempool (spends what a mempool transaction spends): the caller
    /// rebuilds.
    pub(crate) fn on_block_connected(&mut self, block: &Block, height: u32) -> bool {
        let confirmed: HashSet<Txid> = block.txdata.iter().map(Transaction::compute_txid).collect();
        let ours: HashSet<Txid> = self
            .txs
            .iter()
            .filter(|m| confirmed.contains(&m.txid))
            .map(|m| m.txid)
            .collect();
        self.txs.retain(|m| !confirmed.contains(&m.txid));
        for m in &mut self.txs {
            m.parents.retain(|p| !confirmed.contains(p));
        }
        let spent_by_pool: HashSet<OutPoint> = self
            .txs
            .iter()
            .flat_map(|m| m.tx.input.iter().map(|i| i.previous_output))
            .collect();
        for (i, tx) in block.txdata.iter().enumerate() {
            let txid = tx.compute_txid();
            for input in tx.input.iter().filter(|_| i > 0) {
                if spent_by_pool.contains(&input.previous_output) {
                    return false;
                }
                self.spendable.remove(&input.previous_output);
            }
            if ours.contains(&txid) {
                continue; // its outputs are in the wallet already
            }
            for (vout, output) in tx.output.iter().enumerate() {
                let Some(kind) = self.wallet.kind_of(&output.script_pubkey) else {
                    continue;
                };
                let coin = WalletCoin {
                    outpoint: OutPoint::new(txid, u32::try_from(vout).expect("few outputs")),
                    output: output.clone(),
                    kind,
                };
                if i == 0 {
                    self.immature.push_back((height, coin));
                } else {
                    self.add_spendable(coin);
                }
            }
        }
        true
    }

    /// After a reorg (or a conflict): keeps, in order, the transactions of `returned` (from
    /// disconnected blocks) and of the mempool that are still valid on `utxo` for a block at
    /// `next_height`, and rebuilds the wallet from `utxo` and them.
    pub(crate) fn rebuild(&mut self, utxo: &Utxo, next_height: u32, returned: Vec<Transaction>) {
        let candidates: Vec<Transaction> = returned
            .into_iter()
            .chain(self.txs.drain(..).map(|m| m.tx))
            .collect();
        let mut view: HashMap<OutPoint, TxOut> = HashMap::new();
        let mut spent: HashSet<OutPoint> = HashSet::new();
        let mut kept: Vec<(Transaction, Vec<TxOut>)> = Vec::new();
        let mut kept_txids: HashSet<Txid> = HashSet::new();
        for tx in candidates {
            if kept.len() == MEMPOOL_MAX {
                break; // the rest (and what spends it) is dropped, as from a full mempool
            }
            let txid = tx.compute_txid();
            if tx.is_coinbase() || !kept_txids.insert(txid) {
                continue;
            }
            let prevouts: Option<Vec<TxOut>> = tx
                .input
                .iter()
                .map(|i| {
                    let o = &i.previous_output;
                    if spent.contains(o) {
                        return None;
                    }
                    view.get(o).cloned().or_else(|| {
                        utxo.get(o)
                            .filter(|c| {
                                !c.coinbase
                                    || next_height.saturating_sub(c.height) >= COINBASE_MATURITY
                            })
                            .map(|c| c.output.clone())
                    })
                })
                .collect();
            let Some(prevouts) = prevouts else {
                kept_txids.remove(&txid);
                continue;
            };
            spent.extend(tx.input.iter().map(|i| i.previous_output));
            for (vout, o) in tx.output.iter().enumerate() {
                view.insert(OutPoint::new(txid, vout as u32), o.clone());
            }
            kept.push((tx, prevouts));
        }
        self.rebuild_wallet(utxo, next_height, &spent, &kept);
    }

    fn rebuild_wallet(
        &mut self,
        utxo: &Utxo,
        next_height: u32,
        spent: &HashSet<OutPoint>,
        kept: &[(Transaction, Vec<TxOut>)],
    ) {
        self.queue.clear();
        self.spendable.clear();
        self.immature.clear();
        let mut coinbases = Vec::new();
        for (outpoint, coin) in utxo {
            let Some(kind) = self.wallet.kind_of(&coin.output.script_pubkey) else {
                continue;
            };
            if spent.contains(outpoint) {
                continue;
            }
            let wc = WalletCoin {
                outpoint: *outpoint,
                output: coin.output.clone(),
                kind,
            };
            if coin.coinbase && next_height.saturating_sub(coin.height) < COINBASE_MATURITY {
                coinbases.push((coin.height, wc));
            } else {
                self.add_spendable(wc);
            }
        }
        coinbases.sort_by_key(|(h, _)| *h);
        self.immature.extend(coinbases);
        for (tx, prevouts) in kept {
            let prevouts: Vec<(OutPoint, TxOut)> = tx
                .input
                .iter()
                .map(|i| i.previous_output)
                .zip(prevouts.iter().cloned())
                .collect();
            self.record(tx.clone(), &prevouts, spent);
        }
    }

    /// Appends a transaction whose inputs spend `prevouts`; its outputs that pay the wallet
    /// become spendable unless in `spent`.
    fn record(
        &mut self,
        tx: Transaction,
        prevouts: &[(OutPoint, TxOut)],
        spent: &HashSet<OutPoint>,
    ) {
        let txid = tx.compute_txid();
        let inputs: u64 = prevouts.iter().map(|(_, o)| o.value.to_sat()).sum();
        let outputs: u64 = tx.output.iter().map(|o| o.value.to_sat()).sum();
        let by_outpoint: HashMap<OutPoint, TxOut> = prevouts.iter().cloned().collect();
        let mut parents: Vec<Txid> = prevouts
            .iter()
            .map(|(o, _)| o.txid)
            .filter(|t| self.txs.iter().any(|m| m.txid == *t))
            .collect();
        parents.sort_unstable();
        parents.dedup();
        for (vout, output) in tx.output.iter().enumerate() {
            let outpoint = OutPoint::new(txid, u32::try_from(vout).expect("few outputs"));
            if spent.contains(&outpoint) {
                continue;
            }
            if let Some(kind) = self.wallet.kind_of(&output.script_pubkey) {
                self.add_spendable(WalletCoin {
                    outpoint,
                    output: output.clone(),
                    kind,
                });
            }
        }
        self.txs.push(MempoolTx {
            wtxid: tx.compute_wtxid(),
            weight: tx.weight().to_wu(),
            sigops: tx.total_sigop_cost(|o| by_outpoint.get(o).cloned()) as u64,
            txid,
            fee_sats: inputs.saturating_sub(outputs),
            parents,
            tx,
        });
    }

    /// The transactions a template includes: in order, within the block limits, a child
    /// only with all its parents.
    pub(crate) fn selected(&self) -> Vec<&MempoolTx> {
        let mut weight = 4_000; // room for the header and the coinbase
        let mut sigops = 400;
        let mut chosen: HashSet<Txid> = HashSet::new();
        let mut out = Vec::new();
        for m in &self.txs {
            if weight + m.weight > MAX_BLOCK_WEIGHT
                || sigops + m.sigops > MAX_BLOCK_SIGOPS_COST
                || !m.parents.iter().all(|p| chosen.contains(p))
            {
                continue;
            }
            weight += m.weight;
            sigops += m.sigops;
            chosen.insert(m.txid);
            out.push(m);
        }
        out
    }
}
