//! Bitcoin Core `getblocktemplate` results, parsed and checked once per template.
//!
//! Responsibilities: turn the JSON `result` object of `getblocktemplate` into a [`Template`]
//! whose every field is decoded (hashes in internal byte order, transactions as raw bytes) and
//! checked against the limits. Both Core's segwit format (`rules` has `segwit`,
//! `default_witness_commitment`, `transactions[].hash`/`weight`) and the older non-segwit format
//! (Bitcoin SV's regtest node, see `shared/NODE.md`) are accepted; the latter serializes blocks
//! without witness data and gets no witness commitment.
//!
//! Usage: the control plane calls [`Template::from_json`] off the data plane (it allocates and
//! hashes every transaction), wraps the result in an `Arc`, and builds jobs from it.

use serde::Deserialize;
use thiserror::Error;
use warppool_hash::sha256d;

use crate::difficulty::ShareTarget;
use crate::hex::{self, HexError};
use crate::limits::{
    MERKLE_DEPTH_MAX, OUTPUT_SCRIPT_BYTES_MAX, TEMPLATE_JSON_BYTES_MAX, TEMPLATE_TRANSACTIONS_MAX,
};
use crate::merkle::{MerkleBranch, merkle_root};
use crate::types::Ntime;

/// Why a `getblocktemplate` result was refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum TemplateError {
    /// The JSON text is larger than [`TEMPLATE_JSON_BYTES_MAX`].
    #[error("template json is {0} bytes, the limit is {TEMPLATE_JSON_BYTES_MAX}")]
    TooLarge(usize),
    /// Not JSON, or a field is missing or of the wrong type.
    #[error("malformed template json: {0}")]
    Json(String),
    /// A hex field did not decode.
    #[error("bad hex in template field {field}: {source}")]
    Hex {
        /// The field.
        field: &'static str,
        /// The decoding error.
        source: HexError,
    },
    /// More transactions than [`TEMPLATE_TRANSACTIONS_MAX`].
    #[error("template has {0} transactions, the limit is {TEMPLATE_TRANSACTIONS_MAX}")]
    TooManyTransactions(usize),
    /// A number outside the range its field allows.
    #[error("template field {0} is out of range")]
    OutOfRange(&'static str),
    /// `bits` is not a valid compact target, or `target` does not match it.
    #[error("template bits {0:#010x} are invalid or do not match its target")]
    Bits(u32),
    /// A transaction's data does not hash to its `txid` or `hash`.
    #[error("template transaction {index} does not hash to its {field}")]
    TxidMismatch {
        /// Position in `transactions` (0 is the first non-coinbase transaction).
        index: usize,
        /// `txid` or `hash`.
        field: &'static str,
    },
    /// A transaction whose bytes could not be decoded to strip its witness.
    #[error("template transaction {0} is not a valid transaction")]
    Transaction(usize),
    /// `default_witness_commitment` is not an `OP_RETURN` witness commitment script.
    #[error("template default_witness_commitment is not a witness commitment script")]
    WitnessCommitment,
    /// A `!`-prefixed (mandatory, BIP9) rule the pool does not implement: mining on it would
    /// make invalid blocks (Knots 29.4's `!blake2b` changed the proof of work).
    #[error(
        "template has the mandatory rule {0:?}, which WarpPool does not implement \
         (the node follows rules of another chain; see its version)"
    )]
    UnknownMandatoryRule(String),
}

/// The `!`-prefixed rules WarpPool implements: a template may carry these and no others.
pub const MANDATORY_RULES_KNOWN: [&str; 2] = ["!segwit", "!signet"];

/// BIP9: a client must understand every mandatory (`!`) rule of the template.
fn check_rules(rules: &[String]) -> Result<(), TemplateError> {
    match rules
        .iter()
        .find(|r| r.starts_with('!') && !MANDATORY_RULES_KNOWN.contains(&r.as_str()))
    {
        Some(rule) => Err(TemplateError::UnknownMandatoryRule(rule.clone())),
        None => Ok(()),
    }
}

#[derive(Deserialize)]
struct RawTemplate {
    version: i64,
    #[serde(default)]
    rules: Vec<String>,
    previousblockhash: String,
    transactions: Vec<RawTransaction>,
    coinbasevalue: u64,
    #[serde(default)]
    default_witness_commitment: Option<String>,
    #[serde(default)]
    target: Option<String>,
    bits: String,
    curtime: u64,
    #[serde(default)]
    mintime: Option<u64>,
    height: u64,
    #[serde(default)]
    longpollid: Option<String>,
}

#[derive(Deserialize)]
struct RawTransaction {
    data: String,
    #[serde(default)]
    txid: Option<String>,
    #[serde(default)]
    hash: Option<String>,
    #[serde(default)]
    fee: Option<i64>,
    #[serde(default)]
    weight: Option<u64>,
}

/// One non-coinbase transaction of a template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TemplateTransaction {
    data: Vec<u8>,
    txid: [u8; 32],
    wtxid: [u8; 32],
    fee_sats: u64,
}

impl TemplateTransaction {
    /// The transaction as it goes into the block (with its witness, if any).
    #[must_use]
    pub fn data(&self) -> &[u8] {
        &self.data
    }

    /// The txid, internal byte order.
    #[must_use]
    pub const fn txid(&self) -> &[u8; 32] {
        &self.txid
    }

    /// The wtxid, internal byte order (equal to the txid without witness).
    #[must_use]
    pub const fn wtxid(&self) -> &[u8; 32] {
        &self.wtxid
    }

    /// The fee in satoshis (0 when the node did not say).
    #[must_use]
    pub const fn fee_sats(&self) -> u64 {
        self.fee_sats
    }
}

/// A checked block template.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Template {
    version: u32,
    prevhash: [u8; 32],
    bits: u32,
    network_target: ShareTarget,
    curtime: Ntime,
    mintime: Ntime,
    height: u32,
    coinbase_value_sats: u64,
    segwit: bool,
    default_witness_commitment: Option<Vec<u8>>,
    longpollid: Option<String>,
    transactions: Vec<TemplateTransaction>,
    branch: MerkleBranch,
    /// The BIP141 witness merkle root (the coinbase's wtxid taken as zero), computed once per
    /// template: every coinbase built for it (one per payout script per shard) and every job
    /// variant reuses it.
    witness_root: [u8; 32],
}

/// The BIP141 witness merkle root: the merkle root of the wtxids, the coinbase's taken as zero.
fn witness_root(transactions: &[TemplateTransaction]) -> [u8; 32] {
    let mut wtxids = Vec::with_capacity(transactions.len() + 1);
    wtxids.push([0u8; 32]);
    wtxids.extend(transactions.iter().map(|t| t.wtxid));
    merkle_root(&wtxids)
}

/// Decodes display-order (reversed) hash hex into internal order.
fn hash_from_display_hex(s: &str, field: &'static str) -> Result<[u8; 32], TemplateError> {
    let mut h: [u8; 32] =
        hex::decode_array(s.as_bytes()).map_err(|source| TemplateError::Hex { field, source })?;
    h.reverse();
    Ok(h)
}

fn decode_hex(s: &str, field: &'static str) -> Result<Vec<u8>, TemplateError> {
    hex::decode(s).map_err(|source| TemplateError::Hex { field, source })
}

/// Whether raw transaction bytes use the segwit serialization (marker 0, flag 1).
fn has_witness(data: &[u8]) -> bool {
    data.get(4) == Some(&0) && data.get(5) == Some(&1)
}

/// The txid of raw transaction bytes: sha256d of the serialization without witness.
fn compute_txid(data: &[u8], index: usize) -> Result<[u8; 32], TemplateError> {
    if !has_witness(data) {
        return Ok(sha256d(data));
    }
    let tx: bitcoin::Transaction =
        bitcoin::consensus::deserialize(data).map_err(|_| TemplateError::Transaction(index))?;
    let stripped = bitcoin::consensus::serialize(&bitcoin::Transaction {
        input: tx
            .input
            .into_iter()
            .map(|i| bitcoin::TxIn {
                witness: bitcoin::Witness::new(),
                ..i
            })
            .collect(),
        ..tx
    });
    Ok(sha256d(&stripped))
}

impl Template {
    /// Parses and checks the `result` object of `getblocktemplate`.
    ///
    /// Every transaction is hashed to check its `txid` (and `hash`, the wtxid, when given), so
    /// a template the pool accepts cannot produce a block with a wrong merkle root.
    ///
    /// # Errors
    /// A [`TemplateError`] naming the first problem found. Never panics, whatever the input.
    pub fn from_json(bytes: &[u8]) -> Result<Self, TemplateError> {
        if bytes.len() > TEMPLATE_JSON_BYTES_MAX {
            return Err(TemplateError::TooLarge(bytes.len()));
        }
        let raw: RawTemplate =
            serde_json::from_slice(bytes).map_err(|e| TemplateError::Json(e.to_string()))?;
        Self::from_raw(raw)
    }

    fn from_raw(raw: RawTemplate) -> Result<Self, TemplateError> {
        if raw.transactions.len() > TEMPLATE_TRANSACTIONS_MAX {
            return Err(TemplateError::TooManyTransactions(raw.transactions.len()));
        }
        let version = u32::try_from(raw.version)
            .or_else(|_| i32::try_from(raw.version).map(|v| v as u32))
            .map_err(|_| TemplateError::OutOfRange("version"))?;
        let prevhash = hash_from_display_hex(&raw.previousblockhash, "previousblockhash")?;
        let bits =
            u32::from_be_bytes(hex::decode_array(raw.bits.as_bytes()).map_err(|source| {
                TemplateError::Hex {
                    field: "bits",
                    source,
                }
            })?);
        let network_target =
            ShareTarget::from_compact(bits).map_err(|_| TemplateError::Bits(bits))?;
        if let Some(target) = &raw.target {
            let t = hash_from_display_hex(target, "target")?;
            if ShareTarget::from_le_bytes(t) != network_target {
                return Err(TemplateError::Bits(bits));
            }
        }
        let curtime = Ntime::from_secs(
            u32::try_from(raw.curtime).map_err(|_| TemplateError::OutOfRange("curtime"))?,
        );
        let mintime = match raw.mintime {
            Some(m) => u32::try_from(m).map_err(|_| TemplateError::OutOfRange("mintime"))?,
            None => curtime.secs(),
        };
        if mintime > curtime.secs() {
            return Err(TemplateError::OutOfRange("mintime"));
        }
        let height = u32::try_from(raw.height)
            .ok()
            .filter(|h| *h <= 0x7fff_ffff)
            .ok_or(TemplateError::OutOfRange("height"))?;
        if raw.coinbasevalue > 21_000_000 * 100_000_000 {
            return Err(TemplateError::OutOfRange("coinbasevalue"));
        }
        check_rules(&raw.rules)?;
        let segwit = raw.rules.iter().any(|r| r == "segwit" || r == "!segwit");
        let default_witness_commitment = match &raw.default_witness_commitment {
            Some(s) => {
                let script = decode_hex(s, "default_witness_commitment")?;
                if script.len() != 38 || !script.starts_with(&WITNESS_COMMITMENT_HEADER) {
                    return Err(TemplateError::WitnessCommitment);
                }
                Some(script)
            }
            None => None,
        };
        let transactions = raw
            .transactions
            .iter()
            .enumerate()
            .map(|(index, tx)| Self::transaction(index, tx))
            .collect::<Result<Vec<_>, _>>()?;
        let txids: Vec<[u8; 32]> = transactions.iter().map(|t| t.txid).collect();
        let branch = MerkleBranch::from_txids(&txids)
            .map_err(|_| TemplateError::TooManyTransactions(transactions.len()))?;
        assert!(branch.steps().len() <= MERKLE_DEPTH_MAX);
        let witness_root = witness_root(&transactions);
        Ok(Self {
            version,
            prevhash,
            bits,
            network_target,
            curtime,
            mintime: Ntime::from_secs(mintime),
            height,
            coinbase_value_sats: raw.coinbasevalue,
            segwit,
            default_witness_commitment,
            longpollid: raw.longpollid,
            transactions,
            branch,
            witness_root,
        })
    }

    fn transaction(
        index: usize,
        tx: &RawTransaction,
    ) -> Result<TemplateTransaction, TemplateError> {
        let data = decode_hex(&tx.data, "transactions.data")?;
        let txid = compute_txid(&data, index)?;
        let wtxid = sha256d(&data);
        let check = |given: &Option<String>, field: &'static str, want: &[u8; 32]| match given {
            Some(g) if hash_from_display_hex(g, field)? != *want => {
                Err(TemplateError::TxidMismatch { index, field })
            }
            _ => Ok(()),
        };
        check(&tx.txid, "txid", &txid)?;
        check(&tx.hash, "hash", &wtxid)?;
        let fee_sats = match tx.fee {
            Some(f) => u64::try_from(f).map_err(|_| TemplateError::OutOfRange("fee"))?,
            None => 0,
        };
        let _ = tx.weight; // tolerated, not needed: the node already sized the block
        Ok(TemplateTransaction {
            data,
            txid,
            wtxid,
            fee_sats,
        })
    }

    /// The block version the node proposes.
    #[must_use]
    pub const fn version(&self) -> u32 {
        self.version
    }

    /// The previous block hash, internal byte order.
    #[must_use]
    pub const fn prevhash(&self) -> &[u8; 32] {
        &self.prevhash
    }

    /// `nBits`.
    #[must_use]
    pub const fn bits(&self) -> u32 {
        self.bits
    }

    /// The network target decoded from `bits`.
    #[must_use]
    pub const fn network_target(&self) -> &ShareTarget {
        &self.network_target
    }

    /// `curtime`.
    #[must_use]
    pub const fn curtime(&self) -> Ntime {
        self.curtime
    }

    /// `mintime` (the earliest valid header time); `curtime` when the node did not send it.
    #[must_use]
    pub const fn mintime(&self) -> Ntime {
        self.mintime
    }

    /// The height of the block being built.
    #[must_use]
    pub const fn height(&self) -> u32 {
        self.height
    }

    /// Subsidy plus fees, in satoshis.
    #[must_use]
    pub const fn coinbase_value_sats(&self) -> u64 {
        self.coinbase_value_sats
    }

    /// Whether the template is segwit (its block carries witnesses and a witness commitment).
    #[must_use]
    pub const fn is_segwit(&self) -> bool {
        self.segwit
    }

    /// The node's `default_witness_commitment` output script, if it sent one.
    #[must_use]
    pub fn default_witness_commitment(&self) -> Option<&[u8]> {
        self.default_witness_commitment.as_deref()
    }

    /// `longpollid`, if sent.
    #[must_use]
    pub fn longpollid(&self) -> Option<&str> {
        self.longpollid.as_deref()
    }

    /// The non-coinbase transactions in block order.
    #[must_use]
    pub fn transactions(&self) -> &[TemplateTransaction] {
        &self.transactions
    }

    /// The coinbase's merkle branch over [`Self::transactions`].
    #[must_use]
    pub const fn merkle_branch(&self) -> &MerkleBranch {
        &self.branch
    }

    /// The witness commitment output script for a coinbase witness reserved value:
    /// `6a24aa21a9ed ‖ sha256d(witness_root ‖ reserved)`, where the witness root is the merkle
    /// root of the wtxids with the coinbase's taken as zero (BIP141). The root is computed
    /// once, when the template is parsed: this is one `sha256d` of 64 bytes, whatever the
    /// number of transactions.
    #[must_use]
    pub fn witness_commitment_script(&self, reserved: &[u8; 32]) -> [u8; 38] {
        let mut preimage = [0u8; 64];
        preimage[..32].copy_from_slice(&self.witness_root);
        preimage[32..].copy_from_slice(reserved);
        let commitment = sha256d(&preimage);
        let mut script = [0u8; 38];
        script[..6].copy_from_slice(&WITNESS_COMMITMENT_HEADER);
        script[6..].copy_from_slice(&commitment);
        script
    }
}

/// `OP_RETURN`, push 36, and the BIP141 commitment header `aa21a9ed`.
pub const WITNESS_COMMITMENT_HEADER: [u8; 6] = [0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed];

const _: () = assert!(38 <= OUTPUT_SCRIPT_BYTES_MAX);
