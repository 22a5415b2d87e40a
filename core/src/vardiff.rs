//! The vardiff state machine: one per connection, time passed in by the caller.
//!
//! Responsibilities: estimate the miner's hashrate from its **valid** shares and choose a share
//! difficulty that gives about [`VardiffConfig::shares_per_min_target`] shares a minute
//! (DESIGN §4). Rejected shares never move the estimate.
//!
//! How:
//! - The estimate is a difficulty-weighted, time-decayed EWMA of valid shares ("difficulty
//!   shares per second", as ckpool's `dsps`), with time constant
//!   [`VardiffConfig::window_ms`] and ckpool's start-up bias correction. Weighting by difficulty
//!   makes the estimate independent of the difficulty the shares were mined at.
//! - **Ramp-up**: for [`VardiffConfig::rampup_ms`] after connect, once 4 shares have arrived
//!   since the last change and 500 ms since the first share, the difficulty-weighted rate since
//!   the first share sets the difficulty directly (up to [`VARDIFF_STEP_FACTOR_MAX`] times
//!   higher or 8 times lower). Ramp-up ends at the first estimate inside the band.
//! - **Steady state**: at most one change per [`VardiffConfig::retarget_interval_ms_min`], only
//!   when the EWMA's ideal difficulty is outside the hysteresis band
//!   (× or ÷ 1 + [`VardiffConfig::band_percent`]), and by at most 4 times per change.
//! - **Noise gate**: a change also needs at least 8 effective shares and the estimate to be off
//!   by more than `k / sqrt(effective share count)` in log terms (k = 4 standard errors during
//!   ramp-up, which tests at every share; 3 in the steady state), so a lucky streak of shares
//!   does not move the difficulty. A change then goes one standard error short of the
//!   estimate (towards the current difficulty).
//! - **Silence**: no valid share for [`VardiffConfig::silence_ms`] (half of it during ramp-up)
//!   lowers the difficulty 4 times (8 times during ramp-up) and restarts the ramp-up, so a
//!   miner that comes back is found again quickly; call
//!   [`Vardiff::on_tick`] now and then (every few seconds) for this.
//! - Every difficulty is clamped to the port's range, the client's own minimum and
//!   [`Difficulty::MIN`]..=[`Difficulty::MAX`], and rounded to a whole number unless it is
//!   below 1 and the client takes fractions.
//!
//! Usage: the data plane calls [`Vardiff::on_share`] after each validated share; a `Some`
//! result is sent as `mining.set_difficulty` followed by a fresh `mining.notify`.

use thiserror::Error;

use crate::difficulty::Difficulty;
use crate::limits::{
    VARDIFF_RETARGET_INTERVAL_MS_MIN, VARDIFF_STEP_FACTOR_MAX, VARDIFF_WINDOW_SECS,
};

/// A point in time in milliseconds, from a clock the caller chooses (monotonic).
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Millis(u64);

impl Millis {
    /// From a millisecond count.
    #[must_use]
    pub const fn new(ms: u64) -> Self {
        Self(ms)
    }

    /// The millisecond count.
    #[must_use]
    pub const fn get(self) -> u64 {
        self.0
    }

    /// Milliseconds from `earlier` to `self` (0 if `earlier` is later).
    #[must_use]
    pub const fn since(self, earlier: Self) -> u64 {
        self.0.saturating_sub(earlier.0)
    }
}

/// Vardiff settings (per port or profile).
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct VardiffConfig {
    /// Shares a minute aimed for (default 18).
    pub shares_per_min_target: u32,
    /// Difficulty for new connections without a hint.
    pub difficulty_start: Difficulty,
    /// Lowest difficulty of the port (default [`Difficulty::MIN`]; below 1 only for
    /// connections with `fractional`, the others are never sent less than 1).
    pub difficulty_min: Difficulty,
    /// Highest difficulty of the port.
    pub difficulty_max: Difficulty,
    /// Whether difficulties below 1 may be given (only for clients known to parse them).
    pub fractional: bool,
    /// Least time between two steady-state changes, in milliseconds (default 30 s).
    pub retarget_interval_ms_min: u64,
    /// Hysteresis: no change while the ideal difficulty is within this many percent of the
    /// current one (default 30).
    pub band_percent: u32,
    /// EWMA time constant in milliseconds (default [`VARDIFF_WINDOW_SECS`]).
    pub window_ms: u64,
    /// How long after connect the ramp-up may run, in milliseconds (default 120 s).
    pub rampup_ms: u64,
    /// Time without a valid share after which the difficulty is lowered, in milliseconds
    /// (default 60 s).
    pub silence_ms: u64,
}

impl Default for VardiffConfig {
    fn default() -> Self {
        Self {
            shares_per_min_target: 18,
            difficulty_start: Difficulty::from_whole(1024).unwrap_or(Difficulty::ONE),
            // The floor, so that a CPU miner that asks for a fraction (a NerdMiner at about
            // 50 kH/s suggests 0.00015) gets it on a port configured with defaults; a client
            // that does not ask is never given less than 1 (`fractional` is false for it).
            difficulty_min: Difficulty::MIN,
            difficulty_max: Difficulty::MAX,
            fractional: false,
            retarget_interval_ms_min: 30_000,
            band_percent: 30,
            window_ms: u64::from(VARDIFF_WINDOW_SECS) * 1000,
            rampup_ms: 120_000,
            silence_ms: 60_000,
        }
    }
}

impl VardiffConfig {
    /// Checks the settings against each other and the limits.
    ///
    /// # Errors
    /// The first [`VardiffConfigError`] found.
    pub fn validate(&self) -> Result<(), VardiffConfigError> {
        if self.shares_per_min_target == 0 || self.shares_per_min_target > 600 {
            return Err(VardiffConfigError::SharesPerMinTarget(
                self.shares_per_min_target,
            ));
        }
        if self.difficulty_min > self.difficulty_max {
            return Err(VardiffConfigError::DifficultyRange);
        }
        if self.retarget_interval_ms_min < VARDIFF_RETARGET_INTERVAL_MS_MIN {
            return Err(VardiffConfigError::RetargetInterval(
                self.retarget_interval_ms_min,
            ));
        }
        if self.band_percent == 0 || self.band_percent >= 100 {
            return Err(VardiffConfigError::Band(self.band_percent));
        }
        if self.window_ms < 1000 || self.rampup_ms > self.window_ms * 10 {
            return Err(VardiffConfigError::Window);
        }
        if self.silence_ms < 4_000 {
            return Err(VardiffConfigError::Silence(self.silence_ms));
        }
        Ok(())
    }
}

/// Why a [`VardiffConfig`] was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Error)]
#[non_exhaustive]
pub enum VardiffConfigError {
    /// The share rate target is outside 1..=600 a minute.
    #[error("shares_per_min_target {0} is outside 1..=600")]
    SharesPerMinTarget(u32),
    /// The minimum difficulty is above the maximum.
    #[error("difficulty_min is above difficulty_max")]
    DifficultyRange,
    /// The retarget interval is below [`VARDIFF_RETARGET_INTERVAL_MS_MIN`].
    #[error("retarget_interval_ms_min {0} is below {VARDIFF_RETARGET_INTERVAL_MS_MIN}")]
    RetargetInterval(u64),
    /// The hysteresis band is outside 1..=99 percent.
    #[error("band_percent {0} is outside 1..=99")]
    Band(u32),
    /// The EWMA window is under a second, or the ramp-up longer than ten windows.
    #[error("window_ms must be at least 1000 and rampup_ms at most ten windows")]
    Window,
    /// The silence time is under 4 seconds.
    #[error("silence_ms {0} is below 4000")]
    Silence(u64),
}

/// Shares needed since the last change before a ramp-up estimate.
const RAMP_SHARES_MIN: u32 = 4;
/// Time needed since the last change before a ramp-up estimate, in milliseconds.
const RAMP_INTERVAL_MS_MIN: u64 = 500;
/// Fewest effective shares an estimate needs before it may change the difficulty (the normal
/// approximation behind the noise gate is poor below this).
const SHARES_EFFECTIVE_MIN: f64 = 8.0;
/// Standard errors a ramp-up estimate must be off by (it is tested at every share).
const RAMP_SIGMAS: f64 = 4.0;
/// Standard errors a steady-state estimate must be off by (tested every retarget interval).
const STEADY_SIGMAS: f64 = 3.0;
/// Largest decrease of one ramp-up change.
const RAMP_DOWN_FACTOR_MAX: f64 = 8.0;
/// Largest change of one steady-state retarget.
const STEADY_FACTOR_MAX: f64 = 4.0;
/// Decrease on silence in the steady state.
const SILENCE_DIVISOR: f64 = 4.0;
/// Decrease on silence during ramp-up.
const RAMP_SILENCE_DIVISOR: f64 = 8.0;

/// The per-connection vardiff state.
#[derive(Clone, Debug)]
pub struct Vardiff {
    config: VardiffConfig,
    current: Difficulty,
    /// The client's own minimum (`md=`, BIP310 `minimum-difficulty`).
    client_min: Option<Difficulty>,
    start: Millis,
    last_change: Millis,
    last_share: Option<Millis>,
    /// Exponentially weighted sums of valid share difficulty, `Σ w·d` and `Σ w²·d²` with
    /// `w = exp(-age / window)`, as of `ewma_at`.
    ewma_sum: f64,
    ewma_sum_sq: f64,
    ewma_at: Millis,
    /// Plain sums of valid share difficulty after the first valid share of the ramp-up.
    ramp_sum: f64,
    ramp_sum_sq: f64,
    /// When the current ramp-up began (connect, or the last silence decay).
    ramp_start: Millis,
    /// The first valid share of the current ramp-up.
    ramp_first_share: Option<Millis>,
    /// The first valid share since connect or the last silence decay (EWMA bias correction).
    first_share: Option<Millis>,
    /// Valid shares since `last_change`.
    interval_shares: u32,
    ramping: bool,
    shares_valid: u64,
    shares_rejected: u64,
}

impl Vardiff {
    /// A new connection's state at `now`, starting from `hint` (a suggested or persisted
    /// difficulty) or the port's start difficulty, clamped.
    ///
    /// # Panics
    /// If `config` does not pass [`VardiffConfig::validate`] (checked at config load).
    #[must_use]
    pub fn new(config: VardiffConfig, now: Millis, hint: Option<Difficulty>) -> Self {
        assert!(config.validate().is_ok(), "invalid vardiff config");
        let mut v = Self {
            config,
            current: config.difficulty_start,
            client_min: None,
            start: now,
            last_change: now,
            last_share: None,
            ewma_sum: 0.0,
            ewma_sum_sq: 0.0,
            ewma_at: now,
            ramp_sum: 0.0,
            ramp_sum_sq: 0.0,
            ramp_start: now,
            ramp_first_share: None,
            first_share: None,
            interval_shares: 0,
            ramping: true,
            shares_valid: 0,
            shares_rejected: 0,
        };
        let start = hint.unwrap_or(config.difficulty_start);
        v.current = v.quantize(start.to_f64_lossy());
        v
    }

    /// The difficulty in force.
    #[must_use]
    pub fn difficulty(&self) -> Difficulty {
        self.current
    }

    /// Whether the ramp-up phase is still running.
    #[must_use]
    pub fn is_ramping(&self) -> bool {
        self.ramping
    }

    /// Valid and rejected shares seen.
    #[must_use]
    pub fn share_counts(&self) -> (u64, u64) {
        (self.shares_valid, self.shares_rejected)
    }

    /// The estimated hashrate in hashes per second (valid shares only).
    #[must_use]
    pub fn hashrate_lossy(&self, now: Millis) -> f64 {
        self.dsps_estimate(now) * 4_294_967_296.0
    }

    /// Records a share judged at `credited` difficulty; only `accepted` shares count. Returns
    /// the new difficulty when it changes.
    pub fn on_share(
        &mut self,
        now: Millis,
        credited: Difficulty,
        accepted: bool,
    ) -> Option<Difficulty> {
        if !accepted {
            self.shares_rejected += 1;
            return None;
        }
        self.shares_valid += 1;
        let d = credited.to_f64_lossy();
        self.decay_to(now);
        self.ewma_sum += d;
        self.ewma_sum_sq += d * d;
        if self.ramp_first_share.is_some() {
            self.ramp_sum += d;
            self.ramp_sum_sq += d * d;
        } else {
            // The first share only marks the start: its time is not a full interval.
            self.ramp_first_share = Some(now);
        }
        self.first_share.get_or_insert(now);
        self.last_share = Some(now);
        self.interval_shares = self.interval_shares.saturating_add(1);
        if self.ramping && now.since(self.ramp_start) > self.config.rampup_ms {
            self.ramping = false;
        }
        // Estimates leave out the share that triggers them: stopping at a share would bias the
        // rate upwards.
        if self.ramping {
            self.evaluate_ramp(now, d)
        } else {
            self.evaluate_steady(now, d)
        }
    }

    /// Checks for silence; call every few seconds. Returns the new difficulty when it changes.
    pub fn on_tick(&mut self, now: Millis) -> Option<Difficulty> {
        let quiet_since = match self.last_share {
            Some(t) if t > self.last_change => t,
            _ => self.last_change,
        };
        let (silence_ms, divisor) = if self.ramping {
            (self.config.silence_ms / 2, RAMP_SILENCE_DIVISOR)
        } else {
            (self.config.silence_ms, SILENCE_DIVISOR)
        };
        if now.since(quiet_since) < silence_ms {
            return None;
        }
        let target = self.current.to_f64_lossy() / divisor;
        // Start afresh when shares come back (the miner may have restarted or been swapped):
        // the old EWMA would under-estimate for a whole window.
        self.ewma_sum = 0.0;
        self.ewma_sum_sq = 0.0;
        self.ewma_at = now;
        self.first_share = None;
        self.ramping = true;
        self.ramp_start = now;
        self.ramp_first_share = None;
        self.ramp_sum = 0.0;
        self.ramp_sum_sq = 0.0;
        self.change_to(now, target)
    }

    /// A `mining.suggest_difficulty` (or `d=`): taken as the start difficulty while no valid
    /// share has arrived yet, ignored afterwards (NerdMiner re-sends it as a keep-alive).
    pub fn suggest(&mut self, now: Millis, d: Difficulty) -> Option<Difficulty> {
        if self.shares_valid > 0 {
            return None;
        }
        self.change_to(now, d.to_f64_lossy())
    }

    /// The client's own minimum difficulty (`md=`, BIP310 `minimum-difficulty`). Returns the
    /// new difficulty if the current one is below it.
    pub fn set_client_min(&mut self, now: Millis, d: Difficulty) -> Option<Difficulty> {
        self.client_min = Some(d);
        if self.current < d {
            self.change_to(now, d.to_f64_lossy())
        } else {
            None
        }
    }

    fn window_secs(&self) -> f64 {
        ms_to_secs(self.config.window_ms)
    }

    fn decay_to(&mut self, now: Millis) {
        let dt = ms_to_secs(now.since(self.ewma_at));
        let w = (-dt / self.window_secs()).exp();
        self.ewma_sum *= w;
        self.ewma_sum_sq *= w * w;
        self.ewma_at = now.max(self.ewma_at);
    }

    /// Difficulty per second from the EWMA, corrected for its start-up bias.
    fn dsps_estimate(&self, now: Millis) -> f64 {
        self.dsps_from(now, self.ewma_sum)
    }

    /// Difficulty per second from an EWMA sum as of `ewma_at`, bias corrected.
    fn dsps_from(&self, now: Millis, ewma_sum: f64) -> f64 {
        let dt = ms_to_secs(now.since(self.ewma_at));
        let raw = ewma_sum * (-dt / self.window_secs()).exp() / self.window_secs();
        let age = ms_to_secs(now.since(self.first_share.unwrap_or(self.start)));
        let bias = 1.0 - (-age / self.window_secs()).exp();
        if bias < 1e-6 { raw } else { raw / bias }
    }

    /// Whether `ratio` (ideal / current) is far enough from 1 to act on: outside the
    /// hysteresis band and outside `sigmas` standard errors of an estimate made of `sum` and
    /// `sum_sq` (the effective share count is `sum² / sum_sq`).
    fn significant(&self, ratio: f64, sum: f64, sum_sq: f64, sigmas: f64) -> bool {
        if !(ratio > 0.0 && ratio.is_finite()) {
            return false;
        }
        let band = (1.0 + f64::from(self.config.band_percent) / 100.0).ln();
        let shares_effective = if sum_sq > 0.0 {
            sum * sum / sum_sq
        } else {
            0.0
        };
        if shares_effective < SHARES_EFFECTIVE_MIN {
            return false;
        }
        let noise = sigmas / shares_effective.sqrt();
        ratio.ln().abs() > band.max(noise)
    }

    /// `ratio` moved one standard error towards 1 (never past it): a change goes to the near
    /// edge of the estimate's confidence interval rather than its middle, so a lucky streak
    /// that passed the noise gate overshoots less.
    fn shrink(ratio: f64, sum: f64, sum_sq: f64) -> f64 {
        let shares_effective = if sum_sq > 0.0 {
            sum * sum / sum_sq
        } else {
            1.0
        };
        let sigma = 1.0 / shares_effective.max(1.0).sqrt();
        let log = ratio.ln();
        (log.signum() * (log.abs() - sigma).max(0.0)).exp()
    }

    fn ideal_for(&self, dsps: f64) -> f64 {
        dsps * 60.0 / f64::from(self.config.shares_per_min_target)
    }

    fn evaluate_ramp(&mut self, now: Millis, last: f64) -> Option<Difficulty> {
        let first = self.ramp_first_share?;
        let elapsed = now.since(first);
        if self.interval_shares < RAMP_SHARES_MIN || elapsed < RAMP_INTERVAL_MS_MIN {
            return None;
        }
        let (sum, sum_sq) = (self.ramp_sum - last, self.ramp_sum_sq - last * last);
        let rate = sum / ms_to_secs(elapsed);
        let current = self.current.to_f64_lossy();
        let ratio = self.ideal_for(rate) / current;
        let band = 1.0 + f64::from(self.config.band_percent) / 100.0;
        if ratio <= band && ratio >= 1.0 / band {
            self.ramping = false;
            return None;
        }
        if !self.significant(ratio, sum, sum_sq, RAMP_SIGMAS) {
            return None;
        }
        let up_max = f64::from(VARDIFF_STEP_FACTOR_MAX);
        let ratio = Self::shrink(ratio, sum, sum_sq).clamp(1.0 / RAMP_DOWN_FACTOR_MAX, up_max);
        self.change_to(now, current * ratio)
    }

    fn evaluate_steady(&mut self, now: Millis, last: f64) -> Option<Difficulty> {
        if now.since(self.last_change) < self.config.retarget_interval_ms_min {
            return None;
        }
        let current = self.current.to_f64_lossy();
        // The EWMA was just decayed to `now`, so the last share has weight 1.
        let (sum, sum_sq) = (self.ewma_sum - last, self.ewma_sum_sq - last * last);
        let ratio = self.ideal_for(self.dsps_from(now, sum)) / current;
        if !self.significant(ratio, sum, sum_sq, STEADY_SIGMAS) {
            return None;
        }
        let ratio = Self::shrink(ratio, sum, sum_sq);
        let ratio = ratio.clamp(1.0 / STEADY_FACTOR_MAX, STEADY_FACTOR_MAX);
        self.change_to(now, current * ratio)
    }

    /// Moves to `target` (quantized and clamped) if that differs from the current difficulty.
    fn change_to(&mut self, now: Millis, target: f64) -> Option<Difficulty> {
        let next = self.quantize(target);
        // Restart the interval (and the silence clock) even when clamping keeps the value.
        self.last_change = now;
        self.interval_shares = 0;
        if next == self.current {
            return None;
        }
        self.current = next;
        Some(next)
    }

    /// Clamps into the allowed range and rounds to a whole number unless fractions are allowed
    /// and the value is below 1.
    fn quantize(&self, target: f64) -> Difficulty {
        let mut lo = self.config.difficulty_min.max(Difficulty::MIN);
        if let Some(client_min) = self.client_min {
            lo = lo.max(client_min);
        }
        let hi = self.config.difficulty_max.min(Difficulty::MAX);
        let lo = lo.min(hi);
        let lo_f = lo.to_f64_lossy();
        let hi_f = hi.to_f64_lossy();
        let t = if target.is_nan() {
            lo_f
        } else {
            target.clamp(lo_f, hi_f)
        };
        if t >= 1.0 || !self.config.fractional {
            // Whole: nearest integer, at least 1, inside the range where a whole number fits.
            let mut whole = t.round().max(1.0);
            if whole < lo_f {
                whole = lo_f.ceil();
            }
            if whole > hi_f && hi_f >= 1.0 {
                whole = hi_f.floor();
            }
            #[allow(
                clippy::cast_possible_truncation,
                clippy::cast_sign_loss,
                reason = "clamped"
            )]
            let whole = whole as u64;
            Difficulty::from_whole(whole).unwrap_or(Difficulty::MAX)
        } else {
            Difficulty::from_f64_lossy(t).unwrap_or(lo).clamp_to(lo, hi)
        }
    }
}

fn ms_to_secs(ms: u64) -> f64 {
    #[allow(clippy::cast_precision_loss, reason = "durations far below 2^53 ms")]
    let v = ms as f64;
    v / 1000.0
}
