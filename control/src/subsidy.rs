//! The block subsidy schedule, and what it means for configured `[[pool.split]]` outputs.

use bitcoin::Network;

/// Blocks between halvings: 150 on regtest, 210,000 elsewhere.
#[must_use]
pub const fn halving_interval(network: Network) -> u32 {
    match network {
        Network::Regtest => 150,
        _ => 210_000,
    }
}

/// The block subsidy at `height` with halvings every `interval` blocks, in satoshis.
#[must_use]
pub const fn block_subsidy_sats(height: u32, interval: u32) -> u64 {
    let halvings = height / interval;
    if halvings >= 64 {
        0
    } else {
        (50 * 100_000_000u64) >> halvings
    }
}

/// Warnings about split outputs totalling `splits` satoshis at chain height `height`: splits
/// that take most of the subsidy now, or more than the subsidy after the next halving (work
/// would stop then: the template loop gates it). Fees are left out: a template's fees are
/// never certain.
#[must_use]
pub fn split_warnings(network: Network, splits: u64, height: u32) -> Vec<String> {
    let mut out = Vec::new();
    if splits == 0 {
        return out;
    }
    let interval = halving_interval(network);
    let now = block_subsidy_sats(height, interval);
    let next_height = (height / interval + 1) * interval;
    let next = block_subsidy_sats(next_height, interval);
    let total = format!("[[pool.split]] outputs total {splits} sats");
    if splits > now {
        out.push(format!(
            "{total}, more than the subsidy of {now} sats at height {height}: no work can be \
             built unless fees cover them"
        ));
    } else if splits.saturating_mul(10) >= now.saturating_mul(9) {
        out.push(format!(
            "{total}, at least 90 % of the subsidy of {now} sats at height {height}"
        ));
    }
    if splits > next && splits <= now {
        out.push(format!(
            "{total}, more than the subsidy of {next} sats after the halving at height \
             {next_height}: work stops then unless fees cover it; lower the splits before"
        ));
    }
    out
}
