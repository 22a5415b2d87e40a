//! Payout addresses and Stratum usernames.
//!
//! Responsibilities: turn `<address>[.<worker>]` into the output script the coinbase pays and
//! an optional worker name, for the network the node runs; refuse an address of another
//! network with a message naming both.
//!
//! Usage: at `mining.authorize` (control path; allocates).

use core::str::FromStr;

use bitcoin::address::{Address, AddressType, NetworkUnchecked};
use bitcoin::{Network, ScriptBuf};
use thiserror::Error;

use crate::limits::{OUTPUT_SCRIPT_BYTES_MAX, USERNAME_BYTES_MAX};
use crate::types::WorkerName;

/// Why a payout address or username was refused.
#[derive(Clone, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum PayoutError {
    /// Not a Bitcoin address at all.
    #[error("invalid bitcoin address {0:?}")]
    Invalid(String),
    /// An address of another network.
    #[error("address {address} is for {found}, but this pool runs on {expected}")]
    WrongNetwork {
        /// The address as given.
        address: String,
        /// The network(s) the address is valid for.
        found: String,
        /// The pool's network.
        expected: Network,
    },
    /// An address type the pool does not pay (only P2PKH, P2SH, P2WPKH, P2WSH, P2TR).
    #[error("address {0} is of an unsupported type")]
    UnsupportedType(String),
    /// An empty username, or one longer than [`USERNAME_BYTES_MAX`].
    #[error("username must be 1 to {USERNAME_BYTES_MAX} bytes")]
    UsernameLength,
    /// The part after the first `.` is not a valid worker name.
    #[error("invalid worker name {0:?}: use 1 to 64 letters, digits or -_.:@+")]
    WorkerName(String),
}

const NETWORKS: [Network; 5] = [
    Network::Bitcoin,
    Network::Testnet,
    Network::Testnet4,
    Network::Signet,
    Network::Regtest,
];

/// The output script paying `address` on `network`.
///
/// # Errors
/// [`PayoutError::Invalid`], [`PayoutError::WrongNetwork`] (naming both networks),
/// [`PayoutError::UnsupportedType`].
pub fn payout_script(address: &str, network: Network) -> Result<ScriptBuf, PayoutError> {
    let unchecked = Address::<NetworkUnchecked>::from_str(address)
        .map_err(|_| PayoutError::Invalid(address.to_owned()))?;
    if !unchecked.is_valid_for_network(network) {
        let found: Vec<String> = NETWORKS
            .iter()
            .filter(|n| unchecked.is_valid_for_network(**n))
            .map(ToString::to_string)
            .collect();
        return Err(PayoutError::WrongNetwork {
            address: address.to_owned(),
            found: found.join("/"),
            expected: network,
        });
    }
    let checked = unchecked.assume_checked();
    match checked.address_type() {
        Some(
            AddressType::P2pkh
            | AddressType::P2sh
            | AddressType::P2wpkh
            | AddressType::P2wsh
            | AddressType::P2tr,
        ) => {}
        _ => return Err(PayoutError::UnsupportedType(address.to_owned())),
    }
    let script = checked.script_pubkey();
    assert!(!script.is_empty());
    assert!(script.len() <= OUTPUT_SCRIPT_BYTES_MAX);
    Ok(script)
}

/// Splits a Stratum username `<address>[.<worker>]` at its first `.` and returns the payout
/// script and the worker name, if any.
///
/// # Errors
/// [`PayoutError::UsernameLength`], [`PayoutError::WorkerName`], and as [`payout_script`].
pub fn parse_username(
    username: &str,
    network: Network,
) -> Result<(ScriptBuf, Option<WorkerName>), PayoutError> {
    if username.is_empty() || username.len() > USERNAME_BYTES_MAX {
        return Err(PayoutError::UsernameLength);
    }
    let (address, worker) = match username.split_once('.') {
        Some((a, w)) => (a, Some(w)),
        None => (username, None),
    };
    let script = payout_script(address, network)?;
    let worker = worker
        .map(|w| WorkerName::new(w).map_err(|_| PayoutError::WorkerName(w.to_owned())))
        .transpose()?;
    Ok((script, worker))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_and_types() {
        let main = "bc1qar0srrr7xfkvy5l643lydnw9re59gtzzwf5mdq";
        let s = payout_script(main, Network::Bitcoin).unwrap();
        assert_eq!(s.len(), 22);
        let err = payout_script(main, Network::Regtest).unwrap_err();
        let msg = err.to_string();
        assert!(msg.contains("bitcoin") && msg.contains("regtest"), "{msg}");
        assert!(payout_script("nonsense", Network::Bitcoin).is_err());
        let (_, w) = parse_username(&format!("{main}.rig-1"), Network::Bitcoin).unwrap();
        assert_eq!(w.unwrap().as_str(), "rig-1");
        assert!(parse_username(&format!("{main}.bad name"), Network::Bitcoin).is_err());
    }
}
