//! The `/api/v1` handlers and their answer types (each type is an OpenAPI schema).

pub mod admin;
pub mod best;
pub mod blocks;
pub mod connect;
pub mod diagnostics;
pub mod events;
pub mod hashrate;
pub mod history;
pub mod network;
pub mod nodes;
pub mod pool;
pub mod status;
pub mod stream;
pub mod worker_log;
pub mod workers;

/// A worker's id in URLs: 16 hex digits of FNV-1a over its name. Stable across restarts, and
/// it does not spell out the payout address the name starts with.
#[must_use]
pub fn worker_id(name: &str) -> String {
    format!("{:016x}", worker_hash(name))
}

/// The number behind [`worker_id`] (its 16 hex digits sort as the number does).
#[must_use]
pub fn worker_hash(name: &str) -> u64 {
    const OFFSET: u64 = 0xcbf2_9ce4_8422_2325;
    const PRIME: u64 = 0x0000_0100_0000_01b3;
    name.bytes()
        .fold(OFFSET, |h, b| (h ^ u64::from(b)).wrapping_mul(PRIME))
}

/// `address[.worker]` with the address shortened to its first 6 and last 4 characters
/// (`bc1qw5…t080.rig1`), as shown to visitors who are not admins.
#[must_use]
pub fn mask_name(name: &str) -> String {
    let (address, worker) = match name.split_once('.') {
        Some((a, w)) => (a, Some(w)),
        None => (name, None),
    };
    let masked = mask_address(address);
    match worker {
        Some(w) => format!("{masked}.{w}"),
        None => masked,
    }
}

/// A payout address shortened to its first 6 and last 4 characters.
#[must_use]
pub fn mask_address(address: &str) -> String {
    let chars: Vec<char> = address.chars().collect();
    if chars.len() <= 12 {
        return address.to_owned();
    }
    let head: String = chars[..6].iter().collect();
    let tail: String = chars[chars.len() - 4..].iter().collect();
    format!("{head}…{tail}")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn masks_keep_the_worker_and_hide_the_middle_of_the_address() {
        assert_eq!(
            mask_name("bcrt1qw508d6qejxtdg4y5r3zarvary0c5xw7kygt080.rig1"),
            "bcrt1q…t080.rig1"
        );
        assert_eq!(mask_address("short"), "short");
        assert_eq!(worker_id("a"), worker_id("a"));
        assert_ne!(worker_id("a.x"), worker_id("a.y"));
        assert_eq!(worker_id("").len(), 16);
    }
}
