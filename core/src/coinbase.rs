//! The coinbase transaction, split around the extranonce for Stratum.
//!
//! Responsibilities: lay out the coinbase for one payout script and one template: BIP34 height,
//! extranonce (`en1 ‖ en2`), pool tag, outputs (payout, optional splits, the BIP141 witness
//! commitment for segwit templates) and cut it into `coinb1 ‖ en1 ‖ en2 ‖ coinb2`.
//! `coinb1`/`coinb2` are the txid (non-witness) serialization that miners hash; the block
//! carries the witness form built by [`crate::block`].
//!
//! Usage: the control plane calls [`build_coinbase`] once per (template, payout script) and
//! shares the resulting job with every connection paying to that script.
//!
//! Layout of the scriptSig: `<height push> <push en1‖en2> [<push tag>]`, so `coinb1` ends with
//! the push opcode of the extranonce and `coinb2` starts with the tag push.

use thiserror::Error;

use crate::limits::{
    COINBASE_BYTES_MAX, COINBASE_HEIGHT_PUSH_BYTES_MAX, COINBASE_OUTPUTS_MAX,
    COINBASE_SCRIPT_SIG_BYTES_MAX, COINBASE_TAG_BYTES_MAX, EXTRANONCE1_BYTES,
    OUTPUT_SCRIPT_BYTES_MAX,
};
use crate::template::Template;
use crate::types::ExtranonceSize;

/// Why a coinbase could not be built.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum CoinbaseError {
    /// The pool tag is longer than [`COINBASE_TAG_BYTES_MAX`].
    #[error("coinbase tag is {0} bytes, the limit is {COINBASE_TAG_BYTES_MAX}")]
    TagTooLong(usize),
    /// An output script is empty or longer than [`OUTPUT_SCRIPT_BYTES_MAX`].
    #[error("output script is {0} bytes, it must be 1 to {OUTPUT_SCRIPT_BYTES_MAX}")]
    Script(usize),
    /// More outputs than [`COINBASE_OUTPUTS_MAX`].
    #[error("coinbase would have {0} outputs, the limit is {COINBASE_OUTPUTS_MAX}")]
    TooManyOutputs(usize),
    /// The split outputs ask for more than the template's coinbase value.
    #[error("split outputs total {splits_sats} sats, more than the coinbase value {value_sats}")]
    SplitsExceedValue {
        /// Sum of the splits.
        splits_sats: u64,
        /// The template's `coinbasevalue`.
        value_sats: u64,
    },
    /// The witness commitment computed from the transactions differs from the node's.
    #[error("computed witness commitment differs from the template's default_witness_commitment")]
    WitnessCommitmentMismatch,
    /// The height cannot be encoded (above `i32::MAX`).
    #[error("block height {0} cannot be encoded")]
    Height(u32),
    /// The coinbase (or its scriptSig) exceeds its size limit.
    #[error("coinbase is {0} bytes, over its limit")]
    TooLarge(usize),
    /// `coinb1`/`coinb2` given to [`CoinbaseParts::new`] cannot be a coinbase.
    #[error("coinbase parts are malformed: {0}")]
    Malformed(&'static str),
    /// A segwit template's coinbase does not contain its witness commitment output.
    #[error("coinbase has no witness commitment output for this template")]
    MissingWitnessCommitment,
}

/// An extra coinbase output taken from the block reward before the payout.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SplitOutput {
    /// The output script.
    pub script: Vec<u8>,
    /// Satoshis paid to it.
    pub value_sats: u64,
}

/// How the pool lays out its coinbases.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoinbaseConfig {
    tag: Vec<u8>,
    extranonce2_size: ExtranonceSize,
    splits: Vec<SplitOutput>,
}

impl CoinbaseConfig {
    /// A configuration with a tag, an extranonce2 size and extra split outputs.
    ///
    /// # Errors
    /// [`CoinbaseError::TagTooLong`], [`CoinbaseError::Script`] for a bad split script,
    /// [`CoinbaseError::TooManyOutputs`].
    pub fn new(
        tag: &[u8],
        extranonce2_size: ExtranonceSize,
        splits: Vec<SplitOutput>,
    ) -> Result<Self, CoinbaseError> {
        if tag.len() > COINBASE_TAG_BYTES_MAX {
            return Err(CoinbaseError::TagTooLong(tag.len()));
        }
        // Payout and witness commitment come on top of the splits.
        if splits.len() + 2 > COINBASE_OUTPUTS_MAX {
            return Err(CoinbaseError::TooManyOutputs(splits.len() + 2));
        }
        for s in &splits {
            check_script(&s.script)?;
        }
        Ok(Self {
            tag: tag.to_vec(),
            extranonce2_size,
            splits,
        })
    }

    /// The default solo configuration: a short tag, 4-byte extranonce2, no splits.
    #[must_use]
    pub fn solo(tag: &[u8]) -> Self {
        assert!(
            tag.len() <= COINBASE_TAG_BYTES_MAX,
            "solo tag is a constant of the caller"
        );
        Self {
            tag: tag.to_vec(),
            extranonce2_size: ExtranonceSize::DEFAULT,
            splits: Vec::new(),
        }
    }

    /// The extranonce2 size jobs built with this configuration expect.
    #[must_use]
    pub const fn extranonce2_size(&self) -> ExtranonceSize {
        self.extranonce2_size
    }
}

fn check_script(script: &[u8]) -> Result<(), CoinbaseError> {
    if script.is_empty() || script.len() > OUTPUT_SCRIPT_BYTES_MAX {
        return Err(CoinbaseError::Script(script.len()));
    }
    Ok(())
}

/// A coinbase cut around the extranonce: `coinb1 ‖ en1 ‖ en2 ‖ coinb2` is the coinbase in its
/// txid (non-witness) serialization.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CoinbaseParts {
    coinb1: Vec<u8>,
    coinb2: Vec<u8>,
    extranonce2_size: ExtranonceSize,
    witness_reserved: [u8; 32],
}

impl CoinbaseParts {
    /// Wraps externally made parts (for example a real block's coinbase cut at an offset).
    /// `witness_reserved` is the coinbase witness item used when the template is segwit.
    ///
    /// # Errors
    /// [`CoinbaseError::TooLarge`] past [`COINBASE_BYTES_MAX`], [`CoinbaseError::Malformed`] if
    /// `coinb1` cannot hold the fixed fields before a scriptSig or `coinb2` cannot hold the
    /// locktime.
    pub fn new(
        coinb1: Vec<u8>,
        coinb2: Vec<u8>,
        extranonce2_size: ExtranonceSize,
        witness_reserved: [u8; 32],
    ) -> Result<Self, CoinbaseError> {
        let total = coinb1.len() + EXTRANONCE1_BYTES + extranonce2_size.bytes() + coinb2.len();
        if total > COINBASE_BYTES_MAX {
            return Err(CoinbaseError::TooLarge(total));
        }
        // version 4, input count 1, outpoint 36, scriptSig length 1.
        if coinb1.len() < 42 {
            return Err(CoinbaseError::Malformed(
                "coinb1 is shorter than the fixed input fields",
            ));
        }
        if coinb1.get(4) == Some(&0) {
            return Err(CoinbaseError::Malformed(
                "coinb1 must be the non-witness serialization",
            ));
        }
        // sequence 4, output count 1, locktime 4.
        if coinb2.len() < 9 {
            return Err(CoinbaseError::Malformed(
                "coinb2 is shorter than sequence and locktime",
            ));
        }
        Ok(Self {
            coinb1,
            coinb2,
            extranonce2_size,
            witness_reserved,
        })
    }

    /// Cuts a whole coinbase (non-witness serialization) at `offset`, where `en1` starts.
    ///
    /// # Errors
    /// [`CoinbaseError::Malformed`] if the extranonce does not fit, and as [`Self::new`].
    pub fn from_coinbase(
        coinbase: &[u8],
        offset: usize,
        extranonce2_size: ExtranonceSize,
        witness_reserved: [u8; 32],
    ) -> Result<Self, CoinbaseError> {
        let end = offset + EXTRANONCE1_BYTES + extranonce2_size.bytes();
        if end > coinbase.len() {
            return Err(CoinbaseError::Malformed(
                "extranonce runs past the coinbase",
            ));
        }
        Self::new(
            coinbase[..offset].to_vec(),
            coinbase[end..].to_vec(),
            extranonce2_size,
            witness_reserved,
        )
    }

    /// The bytes before `en1`.
    #[must_use]
    pub fn coinb1(&self) -> &[u8] {
        &self.coinb1
    }

    /// The bytes after `en2`.
    #[must_use]
    pub fn coinb2(&self) -> &[u8] {
        &self.coinb2
    }

    /// The extranonce2 size the parts were cut for.
    #[must_use]
    pub const fn extranonce2_size(&self) -> ExtranonceSize {
        self.extranonce2_size
    }

    /// The coinbase witness reserved value (segwit blocks only).
    #[must_use]
    pub const fn witness_reserved(&self) -> &[u8; 32] {
        &self.witness_reserved
    }

    /// The whole coinbase length in bytes (non-witness serialization).
    #[must_use]
    pub fn len(&self) -> usize {
        self.coinb1.len() + EXTRANONCE1_BYTES + self.extranonce2_size.bytes() + self.coinb2.len()
    }

    /// Always false: a coinbase has fixed fields. Present for `len`'s sake.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        false
    }
}

/// The BIP34 height push: Bitcoin Core's `CScript() << height` (minimal `CScriptNum`; `OP_0`
/// for 0 and `OP_1`..`OP_16` for 1 to 16). Returns the bytes and how many are used.
///
/// # Errors
/// [`CoinbaseError::Height`] above `i32::MAX`.
pub fn bip34_height_push(height: u32) -> Result<([u8; 5], usize), CoinbaseError> {
    let mut out = [0u8; 5];
    if height > 0x7fff_ffff {
        return Err(CoinbaseError::Height(height));
    }
    if height == 0 {
        return Ok((out, 1)); // OP_0
    }
    if height <= 16 {
        out[0] = 0x50 + height as u8; // OP_1 .. OP_16
        return Ok((out, 1));
    }
    let le = height.to_le_bytes();
    let mut n = 4;
    while le[n - 1] == 0 {
        n -= 1;
    }
    out[1..=n].copy_from_slice(&le[..n]);
    if le[n - 1] & 0x80 != 0 {
        out[n + 1] = 0; // sign byte keeps the number positive
        n += 1;
    }
    assert!(n <= 4, "heights up to i32::MAX need at most 4 bytes");
    out[0] = n as u8;
    Ok((out, n + 1))
}

fn push_output(out: &mut Vec<u8>, value_sats: u64, script: &[u8]) {
    assert!(script.len() <= OUTPUT_SCRIPT_BYTES_MAX);
    out.extend_from_slice(&value_sats.to_le_bytes());
    out.push(script.len() as u8);
    out.extend_from_slice(script);
}

/// Builds the coinbase of `template` paying `payout_script` (the remainder after splits).
///
/// For a segwit template the witness commitment is computed from the transactions' wtxids and
/// checked against the node's `default_witness_commitment` when the node sent one.
///
/// # Errors
/// [`CoinbaseError::Script`] for a bad payout script, [`CoinbaseError::SplitsExceedValue`],
/// [`CoinbaseError::WitnessCommitmentMismatch`], [`CoinbaseError::Height`],
/// [`CoinbaseError::TooLarge`].
pub fn build_coinbase(
    template: &Template,
    payout_script: &[u8],
    config: &CoinbaseConfig,
) -> Result<CoinbaseParts, CoinbaseError> {
    check_script(payout_script)?;
    let value_sats = template.coinbase_value_sats();
    let splits_sats = config
        .splits
        .iter()
        .try_fold(0u64, |acc, s| acc.checked_add(s.value_sats))
        .filter(|s| *s <= value_sats)
        .ok_or(CoinbaseError::SplitsExceedValue {
            splits_sats: config
                .splits
                .iter()
                .map(|s| s.value_sats)
                .fold(0, u64::saturating_add),
            value_sats,
        })?;
    let witness_reserved = [0u8; 32];
    let commitment = if template.is_segwit() {
        let script = template.witness_commitment_script(&witness_reserved);
        if let Some(given) = template.default_witness_commitment()
            && given != script
        {
            return Err(CoinbaseError::WitnessCommitmentMismatch);
        }
        Some(script)
    } else {
        None
    };

    let (height_push, height_len) = bip34_height_push(template.height())?;
    let en_len = EXTRANONCE1_BYTES + config.extranonce2_size.bytes();
    let tag_len = if config.tag.is_empty() {
        0
    } else {
        1 + config.tag.len()
    };
    let script_sig_len = height_len + 1 + en_len + tag_len;
    assert!(height_len < COINBASE_HEIGHT_PUSH_BYTES_MAX);
    if script_sig_len > COINBASE_SCRIPT_SIG_BYTES_MAX {
        return Err(CoinbaseError::TooLarge(script_sig_len));
    }

    let mut coinb1 = Vec::with_capacity(64);
    coinb1.extend_from_slice(&1u32.to_le_bytes()); // tx version
    coinb1.push(1); // one input
    coinb1.extend_from_slice(&[0u8; 32]); // null outpoint txid
    coinb1.extend_from_slice(&u32::MAX.to_le_bytes()); // null outpoint index
    coinb1.push(script_sig_len as u8);
    coinb1.extend_from_slice(&height_push[..height_len]);
    coinb1.push(en_len as u8); // push of en1 ‖ en2

    let mut coinb2 = Vec::with_capacity(128);
    if !config.tag.is_empty() {
        coinb2.push(config.tag.len() as u8);
        coinb2.extend_from_slice(&config.tag);
    }
    coinb2.extend_from_slice(&u32::MAX.to_le_bytes()); // sequence
    let outputs = 1 + config.splits.len() + usize::from(commitment.is_some());
    assert!(outputs <= COINBASE_OUTPUTS_MAX);
    coinb2.push(outputs as u8);
    push_output(&mut coinb2, value_sats - splits_sats, payout_script);
    for s in &config.splits {
        push_output(&mut coinb2, s.value_sats, &s.script);
    }
    if let Some(script) = &commitment {
        push_output(&mut coinb2, 0, script);
    }
    coinb2.extend_from_slice(&0u32.to_le_bytes()); // locktime
    let parts = CoinbaseParts::new(coinb1, coinb2, config.extranonce2_size, witness_reserved)?;
    assert!(parts.len() <= COINBASE_BYTES_MAX);
    Ok(parts)
}

/// Whether `coinbase` (non-witness serialization) contains `script` as an output script
/// preceded by its length byte. Slow path, used to check parts given from outside.
#[must_use]
pub(crate) fn contains_output_script(coinbase: &[u8], script: &[u8]) -> bool {
    coinbase
        .windows(script.len() + 1)
        .any(|w| usize::from(w[0]) == script.len() && &w[1..] == script)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn height_pushes() {
        assert_eq!(bip34_height_push(0).unwrap(), ([0, 0, 0, 0, 0], 1));
        assert_eq!(bip34_height_push(1).unwrap().0[0], 0x51);
        assert_eq!(bip34_height_push(16).unwrap().0[0], 0x60);
        assert_eq!(bip34_height_push(17).unwrap(), ([1, 17, 0, 0, 0], 2));
        assert_eq!(bip34_height_push(128).unwrap(), ([2, 0x80, 0, 0, 0], 3));
        assert_eq!(
            bip34_height_push(702_861).unwrap(),
            ([3, 0x8d, 0xb9, 0x0a, 0], 4)
        );
        assert!(bip34_height_push(0x8000_0000).is_err());
    }
}
