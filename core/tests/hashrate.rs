//! Hashrate estimates on simulated miners (the check: the 95 % interval covers the true
//! hashrate in 930 to 970 of 1,000 seeded trials per scenario), and at the edges of the input.

use proptest::prelude::*;
use warppool_core::Difficulty;
use warppool_core::hashrate::{Confidence, HashrateError, ShareTally};

/// Hashes a share of difficulty 1 takes on average (the simulated miners' own constant).
const HASHES_AT_DIFFICULTY_ONE: f64 = 4_294_967_296.0;

/// Trials per scenario.
const TRIALS: u32 = 1_000;

/// Fewest and most trials whose 95 % interval may cover the true hashrate (the band).
const COVERED_MIN: u32 = 930;
const COVERED_MAX: u32 = 970;

/// SplitMix64 (Steele, Lea and Flood, 2014): seeded, tiny, no dependencies.
struct SplitMix64(u64);

impl SplitMix64 {
    fn next_u64(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    /// Uniform in (0, 1): 53 random bits, half a step off zero.
    fn uniform_open(&mut self) -> f64 {
        ((self.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
    }

    /// A waiting time in seconds for events at `rate_per_sec` (exponential by inversion).
    fn exponential_secs(&mut self, rate_per_sec: f64) -> f64 {
        -self.uniform_open().ln() / rate_per_sec
    }
}

/// A miner of constant hashrate whose share difficulty is `steps[i].1` from second
/// `steps[i].0` (vardiff retargets) to the next step or the end of the window.
struct Scenario {
    name: &'static str,
    hashrate_hps: f64,
    window_secs: u64,
    steps: Vec<(u64, Difficulty)>,
    seed: u64,
}

impl Scenario {
    /// Share rate at `difficulty`: each hash meets the target with probability
    /// 1 / (difficulty · 2^32).
    fn rate_per_sec(&self, difficulty: Difficulty) -> f64 {
        self.hashrate_hps / (difficulty.to_f64_lossy() * HASHES_AT_DIFFICULTY_ONE)
    }

    /// The end of step `i`, in seconds.
    fn step_end_secs(&self, i: usize) -> u64 {
        self.steps
            .get(i + 1)
            .map_or(self.window_secs, |step| step.0)
    }

    /// Expected shares in the window.
    fn shares_expected(&self) -> f64 {
        let mut expected = 0.0;
        for (i, &(from, difficulty)) in self.steps.iter().enumerate() {
            expected += self.rate_per_sec(difficulty) * (self.step_end_secs(i) - from) as f64;
        }
        expected
    }

    /// One window of mining: shares are a Poisson process, so the waits between them are
    /// exponential; at a retarget the wait starts over (the process is memoryless) and each
    /// share counts at the difficulty it was found at, as storage records it.
    fn mine_window(&self, rng: &mut SplitMix64) -> ShareTally {
        let mut shares = 0;
        let mut difficulty_sum = 0.0;
        for (i, &(from, difficulty)) in self.steps.iter().enumerate() {
            let rate = self.rate_per_sec(difficulty);
            let end = self.step_end_secs(i) as f64;
            let mut t = from as f64 + rng.exponential_secs(rate);
            while t < end {
                shares += 1;
                difficulty_sum += difficulty.to_f64_lossy();
                t += rng.exponential_secs(rate);
            }
        }
        ShareTally {
            shares,
            difficulty_sum,
            window_secs: self.window_secs,
            difficulty_last: self.steps.last().expect("a scenario has a step").1,
        }
    }
}

/// Runs the trials: (intervals covering the true hashrate, mean shares per window).
fn run(scenario: &Scenario) -> (u32, f64) {
    let mut rng = SplitMix64(scenario.seed);
    let mut covered = 0;
    let mut shares = 0;
    for _ in 0..TRIALS {
        let tally = scenario.mine_window(&mut rng);
        let estimate = tally.estimate(Confidence::DEFAULT).expect("a valid tally");
        shares += tally.shares;
        let truth = scenario.hashrate_hps;
        if estimate.low_hps() <= truth && truth <= estimate.high_hps() {
            covered += 1;
        }
    }
    (covered, shares as f64 / f64::from(TRIALS))
}

/// The check for one scenario, and that the simulation mines at the rate it claims.
fn assert_covers(scenario: &Scenario) {
    let (covered, shares_mean) = run(scenario);
    let expected = scenario.shares_expected();
    eprintln!(
        "{}: covered {covered} of {TRIALS}, {shares_mean:.1} shares a window (expected \
         {expected:.1})",
        scenario.name
    );
    // The mean of 1,000 Poisson counts is within 4 standard errors of their mean.
    let standard_error = (expected / f64::from(TRIALS)).sqrt();
    assert!(
        (shares_mean - expected).abs() < 4.0 * standard_error,
        "{}: {shares_mean} shares a window, expected {expected}",
        scenario.name
    );
    assert!(
        (COVERED_MIN..=COVERED_MAX).contains(&covered),
        "{}: the 95 % interval covered {covered} of {TRIALS}",
        scenario.name
    );
}

/// The whole difficulty nearest to one share every `secs_per_share` at `hashrate_hps`.
fn difficulty_for(hashrate_hps: f64, secs_per_share: f64) -> Difficulty {
    let ideal = hashrate_hps * secs_per_share / HASHES_AT_DIFFICULTY_ONE;
    Difficulty::from_whole(ideal.round() as u64).expect("a difficulty in range")
}

const BITAXE_HPS: f64 = 1.2e12;

fn bitaxe_difficulty() -> Difficulty {
    difficulty_for(BITAXE_HPS, 10.0)
}

#[test]
fn a_bitaxe_over_ten_minutes_is_covered_95_percent_of_the_time() {
    assert_covers(&Scenario {
        name: "bitaxe 1.2 TH/s, 1 share/10 s, 10 min",
        hashrate_hps: BITAXE_HPS,
        window_secs: 600,
        steps: vec![(0, bitaxe_difficulty())],
        seed: 0x0b17_a8e0,
    });
}

#[test]
fn a_nerdminer_over_an_hour_is_covered_95_percent_of_the_time() {
    // The difficulty NerdMiner firmware suggests, on a port that takes fractions.
    let difficulty = Difficulty::from_f64_lossy(0.000_15).expect("above the floor");
    assert_covers(&Scenario {
        name: "nerdminer 50 kH/s, difficulty 0.00015, 1 h",
        hashrate_hps: 50e3,
        window_secs: 3_600,
        steps: vec![(0, difficulty)],
        seed: 0x4e3d_0001,
    });
}

#[test]
fn an_s21_over_a_day_is_covered_95_percent_of_the_time() {
    let hashrate_hps = 200e12;
    assert_covers(&Scenario {
        name: "s21 200 TH/s, 20 shares/min, 24 h",
        hashrate_hps,
        window_secs: 86_400,
        steps: vec![(0, difficulty_for(hashrate_hps, 3.0))],
        seed: 0x0521_0024,
    });
}

#[test]
fn a_vardiff_doubling_mid_window_is_still_covered_95_percent_of_the_time() {
    // Mid-window is where one doubling narrows the mean-difficulty interval most (module docs).
    let difficulty = bitaxe_difficulty();
    let doubled = Difficulty::from_whole(2 * difficulty.whole().expect("whole"))
        .expect("a difficulty in range");
    assert_covers(&Scenario {
        name: "bitaxe, difficulty doubled at 5 of 10 min",
        hashrate_hps: BITAXE_HPS,
        window_secs: 600,
        steps: vec![(0, difficulty), (300, doubled)],
        seed: 0x00d0_0b1e,
    });
}

fn tally(shares: u64, difficulty: Difficulty, window_secs: u64) -> ShareTally {
    ShareTally {
        shares,
        difficulty_sum: shares as f64 * difficulty.to_f64_lossy(),
        window_secs,
        difficulty_last: difficulty,
    }
}

fn estimate(shares: u64, difficulty: Difficulty, window_secs: u64) -> (f64, f64, f64, f64) {
    let e = tally(shares, difficulty, window_secs)
        .estimate(Confidence::DEFAULT)
        .expect("a valid tally");
    (
        e.low_hps(),
        e.hashrate_hps(),
        e.high_hps(),
        e.relative_error().unwrap_or(f64::NAN),
    )
}

#[test]
fn sixty_bitaxe_shares_are_about_plus_or_minus_25_percent() {
    let (low, point, high, relative_error) = estimate(60, bitaxe_difficulty(), 600);
    assert!((0.22..=0.28).contains(&relative_error), "{relative_error}");
    assert!((relative_error - (high - low) / (2.0 * point)).abs() < 1e-12);
    let hashrate = 60.0 * bitaxe_difficulty().to_f64_lossy() * HASHES_AT_DIFFICULTY_ONE / 600.0;
    assert!((point - hashrate).abs() <= 1e-12 * hashrate, "{point}");
    // Garwood's interval is asymmetric: further up than down.
    assert!(high - point > point - low);
}

#[test]
fn no_share_gives_zero_and_the_one_sided_upper_bound() {
    let difficulty = bitaxe_difficulty();
    let per_share = difficulty.to_f64_lossy() * HASHES_AT_DIFFICULTY_ONE / 600.0;
    for (level, tail) in [(0.95, 0.025), (0.99, 0.005)] {
        let confidence = Confidence::new(level).expect("in range");
        let e = tally(0, difficulty, 600)
            .estimate(confidence)
            .expect("valid");
        assert_eq!(e.hashrate_hps(), 0.0);
        assert_eq!(e.low_hps(), 0.0);
        assert_eq!(e.relative_error(), None);
        assert!(e.is_upper_bound_only());
        // P(no share) = e^-λT = tail: λT = -ln(tail), 3.69 shares at 95 %.
        let bound = -f64::ln(tail) * per_share;
        assert!(
            (e.high_hps() - bound).abs() <= 1e-12 * bound,
            "{level}: {}",
            e.high_hps()
        );
    }
}

#[test]
fn one_share_gives_the_exact_poisson_bounds() {
    let difficulty = bitaxe_difficulty();
    let per_share = difficulty.to_f64_lossy() * HASHES_AT_DIFFICULTY_ONE / 600.0;
    let (low, point, high, _) = estimate(1, difficulty, 600);
    assert!((point - per_share).abs() <= 1e-12 * per_share);
    // P(at least one share) = 1 - e^-λT = 0.025 at the lower bound.
    let low_expected = -f64::ln(0.975) * per_share;
    assert!((low - low_expected).abs() <= 1e-12 * low_expected, "{low}");
    // P(at most one share) = e^-λT (1 + λT) = 0.025 at the upper bound.
    let shares_high = high / per_share;
    let tail = (-shares_high).exp() * (1.0 + shares_high);
    assert!((tail - 0.025).abs() < 1e-12, "{shares_high}: {tail}");
}

#[test]
fn a_billion_shares_give_a_tight_finite_interval() {
    let (low, point, high, relative_error) = estimate(1_000_000_000, bitaxe_difficulty(), 86_400);
    assert!(low.is_finite() && high.is_finite());
    assert!(low < point && point < high);
    // At a billion shares the Poisson is normal: 1.96 / sqrt(N).
    let normal = 1.959_964 / 1e9f64.sqrt();
    assert!(
        (relative_error / normal - 1.0).abs() < 1e-3,
        "{relative_error}"
    );
}

#[test]
fn the_largest_inputs_stay_finite() {
    let (low, point, high, relative_error) = estimate(u64::MAX, Difficulty::MAX, 1);
    assert!(high.is_finite(), "{high}");
    assert!(low < point && point < high);
    assert!(
        relative_error > 0.0 && relative_error < 1e-9,
        "{relative_error}"
    );
    let (_, point, high, _) = estimate(1, Difficulty::MIN, u64::MAX);
    assert!(point > 0.0 && high.is_finite());
}

#[test]
fn more_shares_give_a_narrower_relative_interval() {
    let difficulty = bitaxe_difficulty();
    let mut counts: Vec<u64> = (1..=3_000).collect();
    counts.extend((4..=19).map(|power| 10u64.pow(power)));
    counts.push(u64::MAX);
    let mut previous = f64::INFINITY;
    for shares in counts {
        let (_, _, _, relative_error) = estimate(shares, difficulty, 600);
        assert!(
            relative_error < previous,
            "{shares}: {relative_error} >= {previous}"
        );
        previous = relative_error;
    }
}

#[test]
fn a_higher_confidence_gives_a_wider_interval() {
    let mut previous = (f64::INFINITY, 0.0);
    for level in [0.5, 0.8, 0.9, 0.95, 0.99, 0.9999] {
        let confidence = Confidence::new(level).expect("in range");
        for shares in [0, 1, 60, 5_000] {
            let e = tally(shares, bitaxe_difficulty(), 600)
                .estimate(confidence)
                .expect("ok");
            assert_eq!(e.confidence().level(), level);
            if shares == 60 {
                assert!(
                    e.low_hps() < previous.0 && e.high_hps() > previous.1,
                    "{level}"
                );
                previous = (e.low_hps(), e.high_hps());
            }
        }
    }
}

#[test]
fn confidence_levels_outside_the_limits_are_refused() {
    assert_eq!(Confidence::new(0.95), Ok(Confidence::DEFAULT));
    assert_eq!(Confidence::default(), Confidence::DEFAULT);
    for level in [0.49, 0.999_91, 1.0, 0.0, -0.95, f64::NAN, f64::INFINITY] {
        assert_eq!(
            Confidence::new(level),
            Err(HashrateError::ConfidenceOutOfRange)
        );
    }
}

#[test]
fn inconsistent_or_empty_inputs_are_named_errors() {
    let good = tally(60, bitaxe_difficulty(), 600);
    let with = |shares, difficulty_sum, window_secs| {
        ShareTally {
            shares,
            difficulty_sum,
            window_secs,
            ..good
        }
        .estimate(Confidence::DEFAULT)
    };
    assert_eq!(
        with(60, good.difficulty_sum, 0),
        Err(HashrateError::WindowEmpty)
    );
    assert_eq!(with(0, 0.0, 0), Err(HashrateError::WindowEmpty));
    for sum in [f64::NAN, f64::INFINITY, -1.0] {
        assert_eq!(with(60, sum, 600), Err(HashrateError::DifficultySumInvalid));
    }
    let error = HashrateError::SharesWithoutDifficulty { shares: 60 };
    assert_eq!(with(60, 0.0, 600), Err(error));
    assert_eq!(
        with(0, 1.0, 600),
        Err(HashrateError::DifficultyWithoutShares)
    );
    let above = 2.0 * Difficulty::MAX.to_f64_lossy();
    assert_eq!(
        with(1, above, 600),
        Err(HashrateError::DifficultyMeanAboveMax)
    );
    assert!(with(2, above, 600).is_ok());
}

#[test]
fn an_estimate_serializes_for_the_api() {
    let e = tally(60, bitaxe_difficulty(), 600)
        .estimate(Confidence::DEFAULT)
        .expect("ok");
    let json = serde_json::to_value(e).expect("serializes");
    assert_eq!(json["hashrate_hps"], e.hashrate_hps());
    assert_eq!(json["low_hps"], e.low_hps());
    assert_eq!(json["high_hps"], e.high_hps());
    assert_eq!(json["confidence"], 0.95);
    assert_eq!(json["shares"], 60);
    assert_eq!(json["window_secs"], 600);
    assert_eq!(json["relative_error"], e.relative_error().expect("shares"));
    let none = tally(0, bitaxe_difficulty(), 600)
        .estimate(Confidence::DEFAULT)
        .expect("ok");
    let json = serde_json::to_value(none).expect("serializes");
    assert!(json["relative_error"].is_null());
}

/// Share counts: small ones often (the exact quantiles), any `u64` too (Wilson–Hilferty).
fn shares_any() -> impl Strategy<Value = u64> {
    prop_oneof![0..2_000u64, any::<u64>()]
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(256))]

    #[test]
    fn low_point_and_high_are_ordered_and_finite(
        shares in shares_any(),
        difficulty_log2 in -16.0f64..=60.0,
        window_secs in prop_oneof![1..100_000u64, 1..=u64::MAX],
        level in 0.5f64..=0.9999,
    ) {
        let mean = difficulty_log2.exp2();
        let tally = ShareTally {
            shares,
            difficulty_sum: shares as f64 * mean,
            window_secs,
            difficulty_last: Difficulty::from_f64_lossy(mean).expect("in range"),
        };
        let confidence = Confidence::new(level).expect("in range");
        let e = tally.estimate(confidence).expect("a valid tally");
        prop_assert!(e.high_hps().is_finite());
        prop_assert!(e.high_hps() > 0.0);
        prop_assert!(0.0 <= e.low_hps());
        prop_assert!(e.low_hps() <= e.hashrate_hps());
        prop_assert!(e.hashrate_hps() <= e.high_hps());
        prop_assert_eq!(e.shares(), shares);
        prop_assert_eq!(e.window_secs(), window_secs);
        match e.relative_error() {
            None => prop_assert_eq!(shares, 0),
            Some(error) => prop_assert!(error.is_finite() && error > 0.0),
        }
    }
}
