//! Hashrates as the API reports them: a point estimate with its 95 % interval from the number
//! of shares behind it (`warppool_core::hashrate`).

use serde::Serialize;
use utoipa::ToSchema;

use warppool_core::Difficulty;
use warppool_core::hashrate::{Confidence, ShareTally};

use crate::live::Tally;

/// A hashrate measured from shares, with its error bar.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
pub struct HashrateView {
    /// Point estimate, hashes per second.
    pub hps: f64,
    /// Lower end of the 95 % confidence interval, hashes per second.
    pub low_hps: f64,
    /// Upper end of the 95 % confidence interval, hashes per second.
    pub high_hps: f64,
    /// Half the interval's width relative to the estimate (0.25 means ±25 %); `null` when no
    /// share was accepted in the window (the rate is then below `high_hps`).
    pub relative_error: Option<f64>,
    /// Accepted shares behind the estimate.
    pub shares: u64,
    /// Seconds the estimate covers.
    pub window_s: i64,
}

/// The core tally of a live tally; `None` for a window of no time.
fn share_tally(tally: &Tally, difficulty_last: f64) -> Option<ShareTally> {
    let window_secs = u64::try_from(tally.secs).ok().filter(|s| *s > 0)?;
    Some(ShareTally {
        shares: tally.accepted,
        difficulty_sum: tally.difficulty_sum,
        window_secs,
        difficulty_last: Difficulty::from_f64_lossy(difficulty_last).unwrap_or(Difficulty::MIN),
    })
}

/// The point estimate of [`view`] alone (its `hps`), without the interval: what sorting and
/// the table's plain hashrate columns need.
#[must_use]
pub fn point_hps(tally: &Tally, difficulty_last: f64) -> f64 {
    share_tally(tally, difficulty_last)
        .and_then(|t| t.point_hps().ok())
        .unwrap_or(0.0)
}

/// The view of a tally; `difficulty_last` (the difficulty the miner was last given) sizes the
/// upper bound of a window without shares.
#[must_use]
pub fn view(tally: &Tally, difficulty_last: f64) -> HashrateView {
    let empty = HashrateView {
        hps: 0.0,
        low_hps: 0.0,
        high_hps: 0.0,
        relative_error: None,
        shares: tally.accepted,
        window_s: tally.secs,
    };
    let Some(share_tally) = share_tally(tally, difficulty_last) else {
        return empty;
    };
    match share_tally.estimate(Confidence::DEFAULT) {
        Ok(e) => HashrateView {
            hps: e.hashrate_hps(),
            low_hps: e.low_hps(),
            high_hps: e.high_hps(),
            relative_error: e.relative_error(),
            shares: e.shares(),
            window_s: tally.secs,
        },
        Err(error) => {
            tracing::debug!(%error, ?tally, "no hashrate estimate for this tally");
            empty
        }
    }
}
