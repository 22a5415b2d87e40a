//! The simulator's wallet: four real keys derived from the seed, one per output kind, and the
//! signing of transactions that spend their coins.
//!
//! Responsibilities: hold the keys (the network's coinbase payout is the P2WPKH key, so the
//! simulator's own coinbases are spendable), build a signed transaction from chosen coins,
//! with a real fee (inputs minus outputs). Sans-IO: no clock, no randomness but the caller's.
//! Not for production keys: the secret keys are a hash of a public seed.

use bitcoin::absolute::LockTime;
use bitcoin::hashes::{Hash, sha256};
use bitcoin::key::{Keypair, TapTweak, TweakedKeypair};
use bitcoin::script::PushBytesBuf;
use bitcoin::secp256k1::{All, Message, Secp256k1, SecretKey};
use bitcoin::sighash::{EcdsaSighashType, Prevouts, SighashCache, TapSighashType};
use bitcoin::transaction::Version as TxVersion;
use bitcoin::{
    Amount, CompressedPublicKey, OutPoint, ScriptBuf, Sequence, Transaction, TxIn, TxOut, Witness,
};

/// The output kinds the wallet pays to and spends.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub(crate) enum Kind {
    /// BIP141 pay-to-witness-public-key-hash (also the network's coinbase payout).
    P2wpkh,
    /// BIP341 pay-to-taproot, spent by the key path with a default-sighash Schnorr signature.
    P2tr,
    /// Legacy pay-to-public-key-hash.
    P2pkh,
    /// P2WPKH nested in BIP16 pay-to-script-hash.
    P2shP2wpkh,
}

impl Kind {
    /// Every kind, in the order the wallet rotates through them.
    pub(crate) const ALL: [Kind; 4] = [Kind::P2wpkh, Kind::P2tr, Kind::P2pkh, Kind::P2shP2wpkh];
}

/// A coin the wallet can spend: where it is, what it holds, which key.
#[derive(Clone, Debug)]
pub(crate) struct WalletCoin {
    pub(crate) outpoint: OutPoint,
    pub(crate) output: TxOut,
    pub(crate) kind: Kind,
}

/// One key per kind and their output scripts.
#[derive(Debug)]
pub(crate) struct Wallet {
    secp: Secp256k1<All>,
    keys: [SecretKey; 4],
    scripts: [ScriptBuf; 4],
}

/// The smallest output the wallet creates (well above any dust threshold).
pub(crate) const OUTPUT_SATS_MIN: u64 = 20_000;

impl Wallet {
    /// Keys `sha256("warppool-chainsim" || seed || kind index)`: deterministic per seed.
    pub(crate) fn new(seed: u64) -> Self {
        let secp = Secp256k1::new();
        let keys: [SecretKey; 4] = std::array::from_fn(|i| {
            let mut pre = b"warppool-chainsim".to_vec();
            pre.extend_from_slice(&seed.to_le_bytes());
            pre.push(u8::try_from(i).expect("four kinds"));
            let digest = sha256::Hash::hash(&pre).to_byte_array();
            SecretKey::from_slice(&digest).expect("a sha256 is a valid key but with odds 2^-128")
        });
        let scripts = std::array::from_fn(|i| Self::script_for(&secp, &keys[i], Kind::ALL[i]));
        Self {
            secp,
            keys,
            scripts,
        }
    }

    fn script_for(secp: &Secp256k1<All>, key: &SecretKey, kind: Kind) -> ScriptBuf {
        let public = CompressedPublicKey(key.public_key(secp));
        match kind {
            Kind::P2wpkh => ScriptBuf::new_p2wpkh(&public.wpubkey_hash()),
            Kind::P2tr => {
                let (xonly, _) = key.x_only_public_key(secp);
                ScriptBuf::new_p2tr(secp, xonly, None)
            }
            Kind::P2pkh => ScriptBuf::new_p2pkh(&public.pubkey_hash()),
            Kind::P2shP2wpkh => ScriptBuf::new_p2wpkh(&public.wpubkey_hash()).to_p2sh(),
        }
    }

    fn index(kind: Kind) -> usize {
        Kind::ALL
            .iter()
            .position(|k| *k == kind)
            .expect("every kind is listed")
    }

    /// The output script of `kind`.
    pub(crate) fn script(&self, kind: Kind) -> &ScriptBuf {
        &self.scripts[Self::index(kind)]
    }

    /// Which kind pays to `script`, if the wallet holds its key.
    pub(crate) fn kind_of(&self, script: &ScriptBuf) -> Option<Kind> {
        self.scripts
            .iter()
            .position(|s| s == script)
            .map(|i| Kind::ALL[i])
    }

    /// A transaction spending `coins` to `kinds` (one output each, the value split evenly but
    /// for the fee of `fee_rate_sat_vb` per virtual byte), signed. `None` when the coins
    /// cannot pay the outputs their minimum value.
    pub(crate) fn spend(
        &self,
        coins: &[WalletCoin],
        kinds: &[Kind],
        fee_rate_sat_vb: u64,
    ) -> Option<Transaction> {
        assert!(!coins.is_empty());
        assert!(!kinds.is_empty());
        let total: u64 = coins.iter().map(|c| c.output.value.to_sat()).sum();
        let mut tx = Transaction {
            version: TxVersion::TWO,
            lock_time: LockTime::ZERO,
            input: coins
                .iter()
                .map(|c| TxIn {
                    previous_output: c.outpoint,
                    script_sig: ScriptBuf::new(),
                    sequence: Sequence::ENABLE_RBF_NO_LOCKTIME,
                    witness: Witness::new(),
                })
                .collect(),
            output: kinds
                .iter()
                .map(|k| TxOut {
                    value: Amount::ZERO,
                    script_pubkey: self.script(*k).clone(),
                })
                .collect(),
        };
        // Sign once to learn the size, then set the values and sign for real.
        self.sign(&mut tx, coins);
        let fee = tx.vsize() as u64 * fee_rate_sat_vb;
        let share = total.checked_sub(fee)? / kinds.len() as u64;
        if share < OUTPUT_SATS_MIN {
            return None;
        }
        let n = tx.output.len() as u64;
        for (i, out) in tx.output.iter_mut().enumerate() {
            // The first output takes the remainder so that outputs + fee = inputs exactly.
            let extra = if i == 0 { total - fee - share * n } else { 0 };
            out.value = Amount::from_sat(share + extra);
        }
        self.sign(&mut tx, coins);
        Some(tx)
    }

    /// Fills every input's scriptSig and witness for the coin it spends.
    fn sign(&self, tx: &mut Transaction, coins: &[WalletCoin]) {
        let prevouts: Vec<TxOut> = coins.iter().map(|c| c.output.clone()).collect();
        let mut signatures = Vec::with_capacity(coins.len());
        {
            let mut cache = SighashCache::new(&*tx);
            for (i, coin) in coins.iter().enumerate() {
                signatures.push(self.signature(&mut cache, i, coin, &prevouts));
            }
        }
        for (input, (script_sig, witness)) in tx.input.iter_mut().zip(signatures) {
            input.script_sig = script_sig;
            input.witness = witness;
        }
    }

    /// The scriptSig and witness of input `i` spending `coin`.
    fn signature(
        &self,
        cache: &mut SighashCache<&Transaction>,
        i: usize,
        coin: &WalletCoin,
        prevouts: &[TxOut],
    ) -> (ScriptBuf, Witness) {
        let key = &self.keys[Self::index(coin.kind)];
        let public = CompressedPublicKey(key.public_key(&self.secp));
        let wpkh = ScriptBuf::new_p2wpkh(&public.wpubkey_hash());
        let ecdsa = |digest: [u8; 32]| {
            let sig = self.secp.sign_ecdsa(&Message::from_digest(digest), key);
            bitcoin::ecdsa::Signature::sighash_all(sig)
        };
        match coin.kind {
            Kind::P2wpkh | Kind::P2shP2wpkh => {
                let digest = cache
                    .p2wpkh_signature_hash(i, &wpkh, coin.output.value, EcdsaSighashType::All)
                    .expect("the input exists and the script is P2WPKH");
                let witness = Witness::p2wpkh(&ecdsa(digest.to_byte_array()), &public.0);
                let script_sig = if coin.kind == Kind::P2shP2wpkh {
                    let redeem = PushBytesBuf::try_from(wpkh.to_bytes()).expect("22 bytes");
                    bitcoin::script::Builder::new()
                        .push_slice(redeem)
                        .into_script()
                } else {
                    ScriptBuf::new()
                };
                (script_sig, witness)
            }
            Kind::P2pkh => {
                let digest = cache
                    .legacy_signature_hash(i, &coin.output.script_pubkey, 1)
                    .expect("the input exists");
                let sig = ecdsa(digest.to_byte_array());
                let script_sig = bitcoin::script::Builder::new()
                    .push_slice(sig.serialize())
                    .push_key(&bitcoin::PublicKey::new(public.0))
                    .into_script();
                (script_sig, Witness::new())
            }
            Kind::P2tr => {
                let digest = cache
                    .taproot_key_spend_signature_hash(
                        i,
                        &Prevouts::All(prevouts),
                        TapSighashType::Default,
                    )
                    .expect("every prevout is given");
                let tweaked: TweakedKeypair =
                    Keypair::from_secret_key(&self.secp, key).tap_tweak(&self.secp, None);
                let sig = self.secp.sign_schnorr_no_aux_rand(
                    &Message::from_digest(digest.to_byte_array()),
                    &tweaked.to_keypair(),
                );
                let sig = bitcoin::taproot::Signature {
                    signature: sig,
                    sighash_type: TapSighashType::Default,
                };
                (ScriptBuf::new(), Witness::p2tr_key_spend(&sig))
            }
        }
    }
}
