//! Hashrate from accepted shares, with a confidence interval from the number of shares behind it.
//!
//! Responsibilities: turn what storage keeps per worker-minute (`share_minutes.accepted_count`
//! and `accepted_difficulty_sum`, summed over the minutes of a window) into a point hashrate
//! and a two-sided interval at a [`Confidence`] (95 % unless asked otherwise), so that every
//! hashrate the API reports says how sure it is. A Bitaxe at one share per 10 s over 10 minutes
//! has 60 shares behind it: ±26 %. An S21 at 20 shares a minute over a day: ±1.2 %. A window
//! without a share gives 0 and an upper bound only ("below X"). Pure: no I/O, no allocation.
//!
//! # Model
//! A miner hashing at `H` H/s on shares of difficulty `D` meets the share target with each hash
//! with probability `1 / (D · 2^32)`, so its shares are a Poisson process of rate
//! `λ = H / (D · 2^32)`, and over `T` seconds the share count `N` is Poisson with mean `λT`.
//! The point estimate is `difficulty_sum · 2^32 / T` ([`HASHES_PER_DIFFICULTY`], as storage
//! computes it; unbiased). The interval is an interval on the Poisson mean `λT`, in shares,
//! scaled by the shares' mean difficulty `difficulty_sum / N` and by `2^32 / T`.
//!
//! # Interval: Garwood's exact interval
//! `[Γ⁻¹(α/2; N), Γ⁻¹(1 − α/2; N + 1)]` shares (`χ²(α/2; 2N) / 2` to `χ²(1 − α/2; 2N + 2) / 2`),
//! the inversion of the two one-sided exact Poisson tests; the lower bound is 0 for `N = 0`.
//! Chosen because its coverage is never below the confidence level, whatever the true rate:
//! the error bar never claims more precision than the shares give. The price is width at a
//! handful of shares. Exact coverage of the 95 % interval, from the Poisson distribution, over
//! 4,000 true rates in each range of expected shares `λT` (min / mean / max, in %):
//!
//! | `λT` | Garwood (this module) | score (Wilson-type) |
//! |---|---|---|
//! | 0–2 | 97.5 / 98.8 / 100.0 | 83.8 / 95.2 / 99.0 |
//! | 2–10 | 95.6 / 97.2 / 99.3 | 92.8 / 95.5 / 97.8 |
//! | 10–50 | 95.0 / 96.0 / 97.5 | 93.6 / 95.1 / 96.5 |
//! | 50–200 | 95.0 / 95.5 / 96.3 | 94.3 / 95.0 / 95.7 |
//! | 200–800 | 95.0 / 95.3 / 95.7 | 94.7 / 95.0 / 95.4 |
//!
//! The score interval is better centred but falls to 84 % at a share or two (a NerdMiner at
//! difficulty 1 over a day), and under vardiff (below) both lose about 1 %, which Garwood's
//! margin mostly absorbs at the share counts of a dashboard window (94.5 % against the score
//! interval's 93.5 % for a Bitaxe whose difficulty doubles mid-window).
//!
//! With no share, Garwood's upper bound is the one-sided bound `-ln(α/2)`, 3.69 shares' worth
//! at 95 %, at the difficulty the miner was given ([`ShareTally::difficulty_last`]).
//!
//! # Varying difficulty (vardiff)
//! Within a window the difficulty may change. The interval then treats the `N` shares as if all
//! had the mean difficulty. The point estimate stays unbiased, but with difficulties `d_i` its
//! spread is that of `n_eff = (Σd_i)² / Σd_i² <= N` equal shares, so the interval is too narrow
//! by `sqrt(N / n_eff)`. For one doubling after a fraction `f` of the window that is
//! `sqrt((1 + f)(2 - f) / 2)`: 6 % at mid-window (the worst place), 1 % at `f = 0.05` (a
//! ramp-up early in a long window). Exact coverage at 95 % for a doubling at mid-window:
//! 94.5 % with 30 + 15 expected shares, 93.7 % with 2,000 + 1,000, 93.5 % in the limit
//! (`core/tests/hashrate_coverage.rs`; `core/tests/hashrate.rs` simulates it). Storage keeps no
//! `Σd_i²`, so these inputs allow no better.
//!
//! # Accuracy
//! Both bounds are exact to about 1e-13 relative for up to 1,000 shares (gamma shapes up to
//! [`HASHRATE_SHAPE_EXACT_MAX`]) and within 1e-6 relative above (Wilson–Hilferty); see
//! [`quantile`]. Every output is finite for
//! every input that [`ShareTally::estimate`] accepts, including `u64::MAX` shares.
//!
//! # Usage
//! ```
//! use warppool_core::Difficulty;
//! use warppool_core::hashrate::{Confidence, ShareTally};
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let difficulty = Difficulty::from_whole(2794)?;
//! // Summed over the window's minutes from storage.
//! let tally = ShareTally {
//!     shares: 60,
//!     difficulty_sum: 60.0 * difficulty.to_f64_lossy(),
//!     window_secs: 600,
//!     difficulty_last: difficulty,
//! };
//! let estimate = tally.estimate(Confidence::DEFAULT)?;
//! assert!(estimate.low_hps() < estimate.hashrate_hps());
//! assert!(estimate.hashrate_hps() < estimate.high_hps());
//! let percent = estimate.relative_error().map(|e| e * 100.0);
//! assert!(percent.is_some_and(|p| p > 25.0 && p < 27.0)); // "1.20 TH/s ±26 %"
//! # Ok(())
//! # }
//! ```
//!
//! [`HASHRATE_SHAPE_EXACT_MAX`]: crate::limits::HASHRATE_SHAPE_EXACT_MAX

pub mod quantile;

use serde::Serialize;
use thiserror::Error;

use crate::difficulty::Difficulty;
use crate::limits::{DIFFICULTY_MAX_LOG2, HASHRATE_CONFIDENCE_MAX, HASHRATE_CONFIDENCE_MIN};
use quantile::{count_as_f64, gamma_quantile};

/// Expected hashes per unit of share difficulty, `2^32` (as storage computes hashrates). The
/// exact expectation is `2^256 / diff1` = `2^32 · 65536 / 65535`, 1.5e-5 more: ignored.
pub const HASHES_PER_DIFFICULTY: f64 = 4_294_967_296.0;

/// The confidence level of [`Confidence::DEFAULT`]: a 95 % interval.
pub const CONFIDENCE_LEVEL_DEFAULT: f64 = 0.95;

const _: () = assert!(CONFIDENCE_LEVEL_DEFAULT >= HASHRATE_CONFIDENCE_MIN);
const _: () = assert!(CONFIDENCE_LEVEL_DEFAULT <= HASHRATE_CONFIDENCE_MAX);

/// Why no hashrate estimate could be made.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum HashrateError {
    /// A window of 0 seconds: no rate is measured in no time.
    #[error("the window is 0 seconds long")]
    WindowEmpty,
    /// The difficulty sum is NaN, infinite or negative.
    #[error("the difficulty sum is not a finite number at or above zero")]
    DifficultySumInvalid,
    /// Shares were counted but their difficulties sum to zero (every share has a difficulty of
    /// at least [`Difficulty::MIN`]): the inputs come from different places.
    #[error("{shares} shares with a difficulty sum of zero")]
    SharesWithoutDifficulty {
        /// The share count.
        shares: u64,
    },
    /// A difficulty sum above zero without a share.
    #[error("a difficulty sum above zero without a share")]
    DifficultyWithoutShares,
    /// The shares' mean difficulty is above [`Difficulty::MAX`], which no share can have.
    #[error("the mean share difficulty is above the largest difficulty 2^{DIFFICULTY_MAX_LOG2}")]
    DifficultyMeanAboveMax,
    /// A confidence level outside [`HASHRATE_CONFIDENCE_MIN`]..=[`HASHRATE_CONFIDENCE_MAX`].
    #[error("confidence level outside {HASHRATE_CONFIDENCE_MIN}..={HASHRATE_CONFIDENCE_MAX}")]
    ConfidenceOutOfRange,
}

mod encapsulate {
    use serde::Serialize;

    /// The probability that an interval covers the true hashrate, within
    /// [`HASHRATE_CONFIDENCE_MIN`](crate::limits::HASHRATE_CONFIDENCE_MIN)..=
    /// [`HASHRATE_CONFIDENCE_MAX`](crate::limits::HASHRATE_CONFIDENCE_MAX).
    /// Serialized as the level (`0.95`).
    #[derive(Clone, Copy, Debug, PartialEq, PartialOrd, Serialize)]
    #[serde(transparent)]
    pub struct Confidence {
        level: f64,
    }

    impl Confidence {
        /// Builds from a level; callers check the range.
        pub(super) const fn from_level_unchecked(level: f64) -> Self {
            Self { level }
        }

        /// The level, for example `0.95`.
        #[must_use]
        pub const fn level(self) -> f64 {
            self.level
        }
    }
}
pub use encapsulate::Confidence;

impl Confidence {
    /// 95 % ([`CONFIDENCE_LEVEL_DEFAULT`]).
    pub const DEFAULT: Self = Self::from_level_unchecked(CONFIDENCE_LEVEL_DEFAULT);

    /// A confidence level such as `0.9` or `0.99`.
    ///
    /// # Errors
    /// [`HashrateError::ConfidenceOutOfRange`] outside
    /// [`HASHRATE_CONFIDENCE_MIN`]..=[`HASHRATE_CONFIDENCE_MAX`] (NaN included).
    pub fn new(level: f64) -> Result<Self, HashrateError> {
        let inside = (HASHRATE_CONFIDENCE_MIN..=HASHRATE_CONFIDENCE_MAX).contains(&level);
        if !inside {
            return Err(HashrateError::ConfidenceOutOfRange);
        }
        Ok(Self::from_level_unchecked(level))
    }

    /// The probability left in each tail, `(1 - level) / 2`.
    fn tail(self) -> f64 {
        (1.0 - self.level()) / 2.0
    }
}

impl Default for Confidence {
    fn default() -> Self {
        Self::DEFAULT
    }
}

/// Garwood's interval on the expected number of shares, given `shares` seen: `(low, high)`
/// with `low <= shares < high` (`low = 0` for no share, below `shares` otherwise). Scale by
/// the mean difficulty and [`HASHES_PER_DIFFICULTY`] / seconds for a hashrate, as
/// [`ShareTally::estimate`] does.
#[must_use]
pub fn share_interval(shares: u64, confidence: Confidence) -> (f64, f64) {
    let tail = confidence.tail();
    let low = if shares == 0 {
        0.0
    } else {
        gamma_quantile(shares, tail)
    };
    // At u64::MAX shares the `+ 1` is far below f64's resolution anyway.
    let high = gamma_quantile(shares.saturating_add(1), (1.0 + confidence.level()) / 2.0);
    assert!(low < high, "share interval ({low}, {high}) for {shares}");
    (low, high)
}

/// Accepted shares over a window, as storage sums them; the input of a hashrate estimate.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct ShareTally {
    /// Accepted shares in the window (`Σ share_minutes.accepted_count`).
    pub shares: u64,
    /// The sum of their difficulties (`Σ share_minutes.accepted_difficulty_sum`).
    pub difficulty_sum: f64,
    /// The window's length in seconds.
    pub window_secs: u64,
    /// The difficulty the miner was last given (`workers.last_difficulty`). Only a window
    /// without a share uses it, to size the upper bound; with shares, their mean difficulty is
    /// used.
    pub difficulty_last: Difficulty,
}

impl ShareTally {
    /// The point estimate alone (hashes per second): the `hashrate_hps` of
    /// [`ShareTally::estimate`] without the interval's quantiles, for sorting many tallies.
    ///
    /// # Errors
    /// As [`ShareTally::estimate`].
    pub fn point_hps(&self) -> Result<f64, HashrateError> {
        self.validate()?;
        Ok(self.point())
    }

    fn point(&self) -> f64 {
        if self.shares == 0 {
            0.0
        } else {
            self.difficulty_sum * HASHES_PER_DIFFICULTY / count_as_f64(self.window_secs)
        }
    }

    /// The hashrate and its interval at `confidence`.
    ///
    /// # Errors
    /// [`HashrateError::WindowEmpty`] for a window of 0 seconds,
    /// [`HashrateError::DifficultySumInvalid`] for a NaN, infinite or negative sum,
    /// [`HashrateError::SharesWithoutDifficulty`] and
    /// [`HashrateError::DifficultyWithoutShares`] when only one of the two is zero, and
    /// [`HashrateError::DifficultyMeanAboveMax`] for a mean above [`Difficulty::MAX`].
    pub fn estimate(&self, confidence: Confidence) -> Result<HashrateEstimate, HashrateError> {
        self.validate()?;
        let (low_shares, high_shares) = share_interval(self.shares, confidence);
        let seconds = count_as_f64(self.window_secs);
        let estimate = if self.shares == 0 {
            let per_share = self.difficulty_last.to_f64_lossy() * HASHES_PER_DIFFICULTY / seconds;
            HashrateEstimate {
                hashrate_hps: 0.0,
                low_hps: 0.0,
                high_hps: high_shares * per_share,
                confidence,
                shares: 0,
                window_secs: self.window_secs,
                relative_error: None,
            }
        } else {
            let shares = count_as_f64(self.shares);
            let point = self.point();
            HashrateEstimate {
                hashrate_hps: point,
                low_hps: point * (low_shares / shares),
                high_hps: point * (high_shares / shares),
                confidence,
                shares: self.shares,
                window_secs: self.window_secs,
                relative_error: Some((high_shares - low_shares) / (2.0 * shares)),
            }
        };
        estimate.check();
        Ok(estimate)
    }

    fn validate(&self) -> Result<(), HashrateError> {
        if self.window_secs == 0 {
            return Err(HashrateError::WindowEmpty);
        }
        if !self.difficulty_sum.is_finite() || self.difficulty_sum < 0.0 {
            return Err(HashrateError::DifficultySumInvalid);
        }
        if self.shares == 0 && self.difficulty_sum > 0.0 {
            return Err(HashrateError::DifficultyWithoutShares);
        }
        if self.shares > 0 && self.difficulty_sum == 0.0 {
            return Err(HashrateError::SharesWithoutDifficulty {
                shares: self.shares,
            });
        }
        // Bounds the point estimate (2^64 shares · 2^60 · 2^32 < 2^157) and so every output.
        if self.difficulty_sum > count_as_f64(self.shares) * Difficulty::MAX.to_f64_lossy() {
            return Err(HashrateError::DifficultyMeanAboveMax);
        }
        Ok(())
    }
}

/// A hashrate with its confidence interval: what the API reports for a worker or the pool.
///
/// Serialized with the field names below (`hashrate_hps`, `low_hps`, `high_hps`,
/// `confidence`, `shares`, `window_secs`, `relative_error`, `null` without shares).
#[derive(Clone, Copy, Debug, PartialEq, Serialize)]
pub struct HashrateEstimate {
    hashrate_hps: f64,
    low_hps: f64,
    high_hps: f64,
    confidence: Confidence,
    shares: u64,
    window_secs: u64,
    relative_error: Option<f64>,
}

impl HashrateEstimate {
    /// The point estimate in hashes per second: `difficulty_sum · 2^32 / window_secs`.
    #[must_use]
    pub const fn hashrate_hps(&self) -> f64 {
        self.hashrate_hps
    }

    /// The interval's lower bound in hashes per second (0 without shares).
    #[must_use]
    pub const fn low_hps(&self) -> f64 {
        self.low_hps
    }

    /// The interval's upper bound in hashes per second. Without shares, the hashrate below
    /// which finding none was still likely enough: say "below" this.
    #[must_use]
    pub const fn high_hps(&self) -> f64 {
        self.high_hps
    }

    /// The confidence level of the interval.
    #[must_use]
    pub const fn confidence(&self) -> Confidence {
        self.confidence
    }

    /// The shares behind the estimate.
    #[must_use]
    pub const fn shares(&self) -> u64 {
        self.shares
    }

    /// The window's length in seconds.
    #[must_use]
    pub const fn window_secs(&self) -> u64 {
        self.window_secs
    }

    /// The interval's half-width relative to the point estimate, `(high - low) / (2 · point)`
    /// (0.26 for 60 shares: "±26 %"); `None` without shares, where only [`Self::high_hps`]
    /// means something.
    #[must_use]
    pub const fn relative_error(&self) -> Option<f64> {
        self.relative_error
    }

    /// Whether there were no shares, so the estimate is only an upper bound.
    #[must_use]
    pub const fn is_upper_bound_only(&self) -> bool {
        self.shares == 0
    }

    /// The invariants every constructor leaves.
    fn check(&self) {
        assert!(self.high_hps.is_finite(), "{self:?}");
        assert!(self.low_hps >= 0.0, "{self:?}");
        assert!(self.low_hps <= self.hashrate_hps, "{self:?}");
        assert!(self.hashrate_hps <= self.high_hps, "{self:?}");
        assert_eq!(self.relative_error.is_none(), self.shares == 0, "{self:?}");
        if let Some(error) = self.relative_error {
            assert!(error.is_finite(), "{self:?}");
            assert!(error > 0.0, "{self:?}");
        }
    }
}
