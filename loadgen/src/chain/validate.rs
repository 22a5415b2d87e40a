//! Block validation in Bitcoin Core's order, with Core's BIP22 reject strings.
//!
//! `ChainState::check` runs what Core runs before storing a block (`CheckBlock`,
//! `AcceptBlockHeader`, `ContextualCheckBlockHeader`, `ContextualCheckBlock`);
//! [`connect_checks`] what `ConnectBlock` runs when the block joins the active chain (inputs,
//! coinbase maturity, amounts, sigops, coinbase value). Scripts are not run here: that is the
//! job of Core's own engine when it is configured (`kernel.rs`). Sans-IO, changes nothing.

use std::collections::{HashMap, HashSet};

use bitcoin::hashes::Hash;
use bitcoin::{Block, OutPoint, Transaction, TxOut};
use warppool_core::coinbase::bip34_height_push;
use warppool_core::difficulty::ShareTarget;

use super::mempool::{COINBASE_MATURITY, Coin, MAX_BLOCK_SIGOPS_COST, MAX_BLOCK_WEIGHT, Utxo};
use super::state::{BlockEntry, ChainState, SubmitError, WITNESS_HEADER, block_subsidy, now_secs};

/// How far ahead of the clock a header time may be (`MAX_FUTURE_BLOCK_TIME`).
const MAX_FUTURE_BLOCK_TIME: u32 = 2 * 60 * 60;
/// `MAX_MONEY`: 21 million BTC in satoshis.
const MAX_MONEY_SATS: u64 = 21_000_000 * 100_000_000;

/// What connecting a block changes in the UTXO set.
#[derive(Debug, Default)]
pub(crate) struct ConnectDelta {
    pub(crate) spent: Vec<OutPoint>,
    pub(crate) created: Vec<(OutPoint, Coin)>,
}

impl ConnectDelta {
    /// Applies the delta to `utxo`.
    pub(crate) fn apply(self, utxo: &mut Utxo) {
        for o in &self.spent {
            let removed = utxo.remove(o);
            debug_assert!(removed.is_some(), "a checked block spends existing coins");
        }
        utxo.extend(self.created);
    }
}

/// The outputs `block` at `height` creates (the genesis coinbase is unspendable, as in Core).
pub(crate) fn created_coins(block: &Block, height: u32) -> Vec<(OutPoint, Coin)> {
    if height == 0 {
        return Vec::new();
    }
    let mut out = Vec::new();
    for (i, tx) in block.txdata.iter().enumerate() {
        let txid = tx.compute_txid();
        for (vout, o) in tx.output.iter().enumerate() {
            if o.script_pubkey.is_op_return() {
                continue; // provably unspendable: never in Core's UTXO set
            }
            let coin = Coin {
                output: o.clone(),
                height,
                coinbase: i == 0,
            };
            out.push((OutPoint::new(txid, vout as u32), coin));
        }
    }
    out
}

/// `ConnectBlock`'s checks of a block at `height` against the active chain's `utxo` (the
/// block's parent must be the tip): `Ok` with the change, or Core's reject reason.
pub(crate) fn connect_checks(
    utxo: &Utxo,
    block: &Block,
    height: u32,
) -> Result<ConnectDelta, &'static str> {
    let mut view: HashMap<OutPoint, Coin> = HashMap::new();
    let mut spent: HashSet<OutPoint> = HashSet::new();
    let mut fees = 0u64;
    let mut sigops = 0u64;
    for tx in &block.txdata[1..] {
        let mut inputs = 0u64;
        let mut prevouts: HashMap<OutPoint, TxOut> = HashMap::new();
        for input in &tx.input {
            let o = input.previous_output;
            let coin = view.get(&o).or_else(|| utxo.get(&o));
            let Some(coin) = coin.filter(|_| !spent.contains(&o)) else {
                return Err("bad-txns-inputs-missingorspent");
            };
            if coin.coinbase && height.saturating_sub(coin.height) < COINBASE_MATURITY {
                return Err("bad-txns-premature-spend-of-coinbase");
            }
            inputs = inputs.saturating_add(coin.output.value.to_sat());
            prevouts.insert(o, coin.output.clone());
            spent.insert(o);
        }
        if inputs > MAX_MONEY_SATS {
            return Err("bad-txns-inputvalues-outofrange");
        }
        let outputs: u64 = tx.output.iter().map(|o| o.value.to_sat()).sum();
        if inputs < outputs {
            return Err("bad-txns-in-belowout");
        }
        fees += inputs - outputs;
        sigops += tx.total_sigop_cost(|o| prevouts.get(o).cloned()) as u64;
        if sigops > MAX_BLOCK_SIGOPS_COST {
            return Err("bad-blk-sigops");
        }
        let txid = tx.compute_txid();
        for (vout, o) in tx.output.iter().enumerate() {
            let coin = Coin {
                output: o.clone(),
                height,
                coinbase: false,
            };
            view.insert(OutPoint::new(txid, vout as u32), coin);
        }
    }
    let coinbase_value: u64 = block.txdata[0]
        .output
        .iter()
        .map(|o| o.value.to_sat())
        .sum();
    if coinbase_value > block_subsidy(height) + fees {
        return Err("bad-cb-amount");
    }
    // Coins created and spent in the same block never reach the set.
    let created = created_coins(block, height)
        .into_iter()
        .filter(|(o, _)| !spent.contains(o))
        .collect();
    let spent = spent.into_iter().filter(|o| utxo.contains_key(o)).collect();
    Ok(ConnectDelta { spent, created })
}

impl ChainState {
    /// Every check before a block is stored, in Core's order. Returns the block's entry (not
    /// stored yet).
    pub(crate) fn check(&self, block: &Block, skip_pow: bool) -> Result<BlockEntry, SubmitError> {
        let hash = block.block_hash();
        if block.txdata.first().is_none_or(|c| !c.is_coinbase()) {
            return Err(SubmitError::Deserialize(
                "Block does not start with a coinbase",
            ));
        }
        if self.known.contains_key(&hash) {
            let duplicate = if self.invalid.contains(&hash) {
                "duplicate-invalid"
            } else {
                "duplicate"
            };
            return Err(SubmitError::reject(duplicate));
        }
        check_block(block, skip_pow).map_err(SubmitError::reject)?;
        // AcceptBlockHeader: the parent must be known and valid.
        let Some(parent) = self.known.get(&block.header.prev_blockhash) else {
            return Err(SubmitError::reject("prev-blk-not-found"));
        };
        if self.invalid.contains(&parent.hash) {
            return Err(SubmitError::reject("bad-prevblk"));
        }
        // ContextualCheckBlockHeader.
        if block.header.bits.to_consensus() != self.bits {
            return Err(SubmitError::reject("bad-diffbits"));
        }
        let height = parent.height + 1;
        if block.header.time <= self.median_time_past_of(&parent.hash) {
            return Err(SubmitError::reject("time-too-old"));
        }
        if block.header.time > now_secs().saturating_add(MAX_FUTURE_BLOCK_TIME) {
            return Err(SubmitError::reject("time-too-new"));
        }
        if block.header.version.to_consensus() < 4 {
            return Err(SubmitError::reject("bad-version(0x00000001)"));
        }
        // ContextualCheckBlock.
        let (push, len) =
            bip34_height_push(height).map_err(|_| SubmitError::reject("bad-cb-height"))?;
        if !block.txdata[0].input[0]
            .script_sig
            .as_bytes()
            .starts_with(&push[..len])
        {
            return Err(SubmitError::reject("bad-cb-height"));
        }
        check_witness(block).map_err(SubmitError::reject)?;
        let chainwork = parent.chainwork + block.header.work();
        Ok(BlockEntry::new(
            block.clone(),
            height,
            chainwork,
            self.sequence,
        ))
    }
}

/// Core's `CheckBlock`: the context-free checks.
fn check_block(block: &Block, skip_pow: bool) -> Result<(), &'static str> {
    let hash = block.block_hash();
    if !skip_pow {
        let header_target =
            ShareTarget::from_compact(block.header.bits.to_consensus()).map_err(|_| "high-hash")?;
        if !header_target.is_met_by(&hash.to_byte_array()) {
            return Err("high-hash");
        }
    }
    if block.compute_merkle_root() != Some(block.header.merkle_root) {
        return Err("bad-txnmrklroot");
    }
    let mut seen = HashSet::with_capacity(block.txdata.len());
    if !block.txdata.iter().all(|t| seen.insert(t.compute_txid())) {
        return Err("bad-txns-duplicate");
    }
    if block.txdata.iter().skip(1).any(Transaction::is_coinbase) {
        return Err("bad-cb-multiple");
    }
    let cb_script_len = block.txdata[0].input[0].script_sig.len();
    if !(2..=100).contains(&cb_script_len) {
        return Err("bad-cb-length");
    }
    if block.weight().to_wu() > MAX_BLOCK_WEIGHT {
        return Err("bad-blk-weight");
    }
    Ok(())
}

/// BIP141 checks as Core's `ContextualCheckBlock` does them.
fn check_witness(block: &Block) -> Result<(), &'static str> {
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
                _ => return Err("bad-witness-nonce-size"),
            };
            let root = block.witness_root().ok_or("bad-witness-merkle-match")?;
            let mut pre = [0u8; 64];
            pre[..32].copy_from_slice(root.as_byte_array());
            pre[32..].copy_from_slice(reserved);
            let want = warppool_hash::sha256d(&pre);
            if cb.output[pos].script_pubkey.as_bytes()[6..38] != want {
                return Err("bad-witness-merkle-match");
            }
        }
        None => {
            if block
                .txdata
                .iter()
                .any(|t| !t.input.iter().all(|i| i.witness.is_empty()))
            {
                return Err("unexpected-witness");
            }
        }
    }
    Ok(())
}
