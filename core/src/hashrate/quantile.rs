//! The quantile functions behind the hashrate interval: the standard normal distribution and the
//! gamma distribution with a whole shape (the waiting time for `shape` events of a Poisson
//! process of rate 1, whose quantiles are Garwood's interval bounds).
//!
//! Responsibilities and accuracy (checked in `core/tests/hashrate_quantile.rs` and below):
//! - [`normal_quantile`]: Wichura's algorithm AS241 (`PPND16`, Applied Statistics 37(3),
//!   477–484, 1988), rational approximations in three ranges of `p`, relative error about
//!   1e-16 over all of (0, 1). The coefficients are checked against the paper's hash sums.
//! - [`gamma_regularized_lower`]: `P(shape, x)`, the probability that a Poisson variable of mean
//!   `x` reaches `shape`, from the finite Poisson sum; relative error about 1e-13 (rounding of
//!   at most [`HASHRATE_SHAPE_EXACT_MAX`] terms).
//! - [`gamma_quantile`]: up to [`HASHRATE_SHAPE_EXACT_MAX`] the exact inverse of `P(shape, ·)`
//!   by safeguarded Newton steps (relative error about 1e-13); above it the Wilson–Hilferty
//!   cube-root approximation, whose relative error at the first shape it serves is below 1e-6
//!   for the 2.5 % and 97.5 % points and below 2e-5 for the 0.005 % and 99.995 % points
//!   ([`HASHRATE_CONFIDENCE_MAX`]), and falls as `shape^-1.5` beyond.
//!
//! Usage: [`super::share_interval`] calls [`gamma_quantile`]; the functions are public so that
//! their accuracy can be checked from outside, and for callers that need them.
//!
//! [`HASHRATE_CONFIDENCE_MAX`]: crate::limits::HASHRATE_CONFIDENCE_MAX

use crate::limits::{HASHRATE_QUANTILE_ITERATIONS_MAX, HASHRATE_SHAPE_EXACT_MAX};

/// AS241's central range: `|p - 0.5| <= NORMAL_CENTRAL_HALF_WIDTH`.
const NORMAL_CENTRAL_HALF_WIDTH: f64 = 0.425;

/// `NORMAL_CENTRAL_HALF_WIDTH²`, AS241's `CONST1`.
const NORMAL_CENTRAL_SQUARE: f64 = 0.180_625;

/// AS241's split between the intermediate and the far tail, in `sqrt(-ln(tail))`.
const NORMAL_TAIL_SPLIT: f64 = 5.0;

/// AS241's shift of the intermediate tail's variable, `CONST2`.
const NORMAL_INTERMEDIATE_SHIFT: f64 = 1.6;

/// AS241 central range, numerator coefficients `A0..A7` (ascending powers).
#[allow(
    clippy::excessive_precision,
    reason = "AS241 as published, checkable digit by digit"
)]
const NORMAL_CENTRAL_NUMERATOR: [f64; 8] = [
    3.387_132_872_796_366_608,
    1.331_416_678_917_843_774_5e2,
    1.971_590_950_306_551_442_7e3,
    1.373_169_376_550_946_112_5e4,
    4.592_195_393_154_987_145_7e4,
    6.726_577_092_700_870_085_3e4,
    3.343_057_558_358_812_810_5e4,
    2.509_080_928_730_122_672_7e3,
];

/// AS241 central range, denominator coefficients `1, B1..B7`.
#[allow(
    clippy::excessive_precision,
    reason = "AS241 as published, checkable digit by digit"
)]
const NORMAL_CENTRAL_DENOMINATOR: [f64; 8] = [
    1.0,
    4.231_333_070_160_091_125_2e1,
    6.871_870_074_920_579_083e2,
    5.394_196_021_424_751_107_7e3,
    2.121_379_430_158_659_586_7e4,
    3.930_789_580_009_271_061e4,
    2.872_908_573_572_194_267_4e4,
    5.226_495_278_852_854_561e3,
];

/// AS241 intermediate tail, numerator coefficients `C0..C7`.
#[allow(
    clippy::excessive_precision,
    reason = "AS241 as published, checkable digit by digit"
)]
const NORMAL_INTERMEDIATE_NUMERATOR: [f64; 8] = [
    1.423_437_110_749_683_577_34,
    4.630_337_846_156_545_295_9,
    5.769_497_221_460_691_405_5,
    3.647_848_324_763_204_605_04,
    1.270_458_252_452_368_382_58,
    2.417_807_251_774_506_117_7e-1,
    2.272_384_498_926_918_458_33e-2,
    7.745_450_142_783_414_076_4e-4,
];

/// AS241 intermediate tail, denominator coefficients `1, D1..D7`.
#[allow(
    clippy::excessive_precision,
    reason = "AS241 as published, checkable digit by digit"
)]
const NORMAL_INTERMEDIATE_DENOMINATOR: [f64; 8] = [
    1.0,
    2.053_191_626_637_758_821_87,
    1.676_384_830_183_803_849_4,
    6.897_673_349_851_000_045_5e-1,
    1.481_039_764_274_800_745_9e-1,
    1.519_866_656_361_645_719_66e-2,
    5.475_938_084_995_344_946e-4,
    1.050_750_071_644_416_843_24e-9,
];

/// AS241 far tail, numerator coefficients `E0..E7`.
#[allow(
    clippy::excessive_precision,
    reason = "AS241 as published, checkable digit by digit"
)]
const NORMAL_FAR_NUMERATOR: [f64; 8] = [
    6.657_904_643_501_103_777_2,
    5.463_784_911_164_114_369_9,
    1.784_826_539_917_291_335_8,
    2.965_605_718_285_048_912_3e-1,
    2.653_218_952_657_612_309_3e-2,
    1.242_660_947_388_078_438_6e-3,
    2.711_555_568_743_487_578_15e-5,
    2.010_334_399_292_288_132_65e-7,
];

/// AS241 far tail, denominator coefficients `1, F1..F7`.
#[allow(
    clippy::excessive_precision,
    reason = "AS241 as published, checkable digit by digit"
)]
const NORMAL_FAR_DENOMINATOR: [f64; 8] = [
    1.0,
    5.998_322_065_558_879_376_9e-1,
    1.369_298_809_227_358_053_1e-1,
    1.487_536_129_085_061_485_25e-2,
    7.868_691_311_456_132_591e-4,
    1.846_318_317_510_054_681_8e-5,
    1.421_511_758_316_445_888_7e-7,
    2.044_263_103_389_939_785_64e-15,
];

/// From this `n` on, `ln n!` comes from Stirling's series: its first omitted term,
/// `1 / (1188 n⁹)`, is below 2e-14 there.
const STIRLING_FROM: u64 = 16;

/// Newton on the gamma quantile stops when a step moves less than this, relative.
const QUANTILE_STEP_RELATIVE_MIN: f64 = 1e-14;

/// The quantile of the standard normal distribution: `z` with `Φ(z) = p` (AS241).
///
/// # Panics
/// If `p` is not inside (0, 1) (NaN included).
#[must_use]
pub fn normal_quantile(p: f64) -> f64 {
    assert!(p > 0.0, "normal quantile of {p}");
    assert!(p < 1.0, "normal quantile of {p}");
    let q = p - 0.5;
    if q.abs() <= NORMAL_CENTRAL_HALF_WIDTH {
        let r = NORMAL_CENTRAL_SQUARE - q * q;
        return q * polynomial(&NORMAL_CENTRAL_NUMERATOR, r)
            / polynomial(&NORMAL_CENTRAL_DENOMINATOR, r);
    }
    let tail = if q < 0.0 { p } else { 1.0 - p };
    let r = (-tail.ln()).sqrt();
    let z = if r <= NORMAL_TAIL_SPLIT {
        let r = r - NORMAL_INTERMEDIATE_SHIFT;
        polynomial(&NORMAL_INTERMEDIATE_NUMERATOR, r)
            / polynomial(&NORMAL_INTERMEDIATE_DENOMINATOR, r)
    } else {
        let r = r - NORMAL_TAIL_SPLIT;
        polynomial(&NORMAL_FAR_NUMERATOR, r) / polynomial(&NORMAL_FAR_DENOMINATOR, r)
    };
    if q < 0.0 { -z } else { z }
}

/// `P(shape, x)`: the regularized lower incomplete gamma function for a whole shape, which is
/// the probability that a Poisson variable of mean `x` is at least `shape`.
///
/// Sums whichever side of the Poisson distribution has decreasing terms, from its largest term:
/// `Σ_{j>=shape} e^-x x^j / j!` when `x < shape`, else `1 - Σ_{j<shape} e^-x x^j / j!`.
///
/// # Panics
/// If `shape` is 0 or above [`HASHRATE_SHAPE_EXACT_MAX`] (the sums are bounded by it), or if
/// `x` is negative or NaN.
#[must_use]
pub fn gamma_regularized_lower(shape: u64, x: f64) -> f64 {
    assert!(shape >= 1, "gamma shape 0");
    assert!(
        shape <= HASHRATE_SHAPE_EXACT_MAX,
        "gamma shape {shape} above the exact range"
    );
    assert!(x >= 0.0, "gamma at {x}");
    if x == 0.0 {
        return 0.0;
    }
    if x == f64::INFINITY {
        return 1.0;
    }
    let k = count_as_f64(shape);
    if x < k {
        // Terms t_j for j = shape, shape + 1, ...: each is t_{j-1} * x / j, so they shrink;
        // after HASHRATE_SHAPE_EXACT_MAX of them by more than e^-386 (Π shape / (shape + i)).
        let mut term = poisson_term_ln(shape, x).exp();
        let mut sum = 0.0;
        let mut j = shape;
        for _ in 0..HASHRATE_SHAPE_EXACT_MAX {
            sum += term;
            j += 1;
            term *= x / count_as_f64(j);
            if term <= sum * f64::EPSILON {
                break;
            }
        }
        return sum.min(1.0);
    }
    // Terms t_j for j = shape - 1 down to 0: each is t_{j+1} * (j + 1) / x, so they shrink.
    let mut term = poisson_term_ln(shape - 1, x).exp();
    let mut sum = 0.0;
    let mut j = shape - 1;
    loop {
        sum += term;
        if j == 0 || term <= sum * f64::EPSILON {
            break;
        }
        term *= count_as_f64(j) / x;
        j -= 1;
    }
    (1.0 - sum).max(0.0)
}

/// The quantile of the gamma distribution with a whole `shape` and scale 1: `x` with
/// `P(shape, x) = p`. Exact (to about 1e-13) up to [`HASHRATE_SHAPE_EXACT_MAX`],
/// Wilson–Hilferty above (see the module docs for its accuracy).
///
/// A chi-square quantile with `2 * shape` degrees of freedom is twice this.
///
/// # Panics
/// If `shape` is 0 or `p` is not inside (0, 1) (NaN included).
#[must_use]
pub fn gamma_quantile(shape: u64, p: f64) -> f64 {
    assert!(shape >= 1, "gamma shape 0");
    assert!(p > 0.0, "gamma quantile of {p}");
    assert!(p < 1.0, "gamma quantile of {p}");
    if shape > HASHRATE_SHAPE_EXACT_MAX {
        return wilson_hilferty(shape, p);
    }
    let x = gamma_quantile_exact(shape, p);
    assert!(x.is_finite(), "gamma quantile ({shape}, {p}) not finite");
    assert!(x > 0.0, "gamma quantile ({shape}, {p}) not positive");
    x
}

/// Safeguarded Newton on `P(shape, x) - p`: a step that leaves the bracket bisects it instead.
fn gamma_quantile_exact(shape: u64, p: f64) -> f64 {
    let mut low = 0.0;
    let mut high = gamma_quantile_exact_bracket(shape, p);
    let start = gamma_quantile_exact_start(shape, p);
    let mut x = if start > low && start < high {
        start
    } else {
        0.5 * (low + high)
    };
    for _ in 0..HASHRATE_QUANTILE_ITERATIONS_MAX {
        let excess = gamma_regularized_lower(shape, x) - p;
        if excess == 0.0 {
            return x;
        }
        if excess < 0.0 {
            low = x;
        } else {
            high = x;
        }
        // A density that underflowed makes the step infinite: it fails the bracket test.
        let newton = x - excess / poisson_term_ln(shape - 1, x).exp();
        let next = if newton > low && newton < high {
            newton
        } else {
            0.5 * (low + high)
        };
        let moved = (next - x).abs();
        x = next;
        if moved <= x * QUANTILE_STEP_RELATIVE_MIN {
            break;
        }
    }
    x
}

/// An `x` with `P(shape, x) >= p`: the mean plus ten standard deviations, doubled as needed.
fn gamma_quantile_exact_bracket(shape: u64, p: f64) -> f64 {
    let k = count_as_f64(shape);
    let mut high = k + 10.0 * k.sqrt() + 10.0;
    for _ in 0..HASHRATE_QUANTILE_ITERATIONS_MAX {
        if gamma_regularized_lower(shape, high) >= p {
            break;
        }
        high *= 2.0;
    }
    debug_assert!(gamma_regularized_lower(shape, high) >= p);
    high
}

/// Newton's start: Wilson–Hilferty, or for a quantile that it puts at or below zero (small
/// shapes, small `p`) the small-`x` limit `P(shape, x) ≈ x^shape / shape!`.
fn gamma_quantile_exact_start(shape: u64, p: f64) -> f64 {
    let guess = wilson_hilferty(shape, p);
    if guess > 0.0 {
        return guess;
    }
    ((p.ln() + ln_factorial(shape)) / count_as_f64(shape)).exp()
}

/// Wilson–Hilferty (1931): `shape * (1 - 1/(9 shape) + z / (3 sqrt(shape)))³` with `z` the
/// normal quantile of `p`; clamped at 0 (it goes negative for small shapes and small `p`).
fn wilson_hilferty(shape: u64, p: f64) -> f64 {
    let k = count_as_f64(shape);
    let z = normal_quantile(p);
    let root = 1.0 - 1.0 / (9.0 * k) + z / (3.0 * k.sqrt());
    (k * root * root * root).max(0.0)
}

/// `ln(e^-x x^j / j!)`: the log of a Poisson probability, which is also the density of the
/// gamma distribution of shape `j + 1` at `x`.
fn poisson_term_ln(j: u64, x: f64) -> f64 {
    let power = if j == 0 {
        0.0
    } else {
        count_as_f64(j) * x.ln()
    };
    power - x - ln_factorial(j)
}

/// `ln n!`: the product for small `n`, Stirling's series from [`STIRLING_FROM`].
fn ln_factorial(n: u64) -> f64 {
    if n < STIRLING_FROM {
        let mut product = 1.0;
        for k in 2..=n {
            product *= count_as_f64(k);
        }
        return product.ln();
    }
    let x = count_as_f64(n);
    let inverse = 1.0 / x;
    let inverse_square = inverse * inverse;
    // 1/(12n) - 1/(360n³) + 1/(1260n⁵) - 1/(1680n⁷)
    let tail = 1.0 / 1260.0 - inverse_square / 1680.0;
    let series = inverse * (1.0 / 12.0 - inverse_square * (1.0 / 360.0 - inverse_square * tail));
    x * x.ln() - x + 0.5 * (core::f64::consts::TAU * x).ln() + series
}

/// `c[0] + c[1] r + ... + c[7] r⁷` by Horner's rule.
fn polynomial(coefficients: &[f64; 8], r: f64) -> f64 {
    coefficients.iter().rev().fold(0.0, |sum, c| sum * r + c)
}

/// A count as an `f64`: exact up to 2^53, rounded to 53 bits above.
pub(super) fn count_as_f64(count: u64) -> f64 {
    #[allow(
        clippy::cast_precision_loss,
        reason = "counts above 2^53 need no unit precision"
    )]
    let value = count as f64;
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The sum of the mantissas (the coefficients scaled into [1, 10)) of one AS241 range.
    fn hash_sum(numerator: &[f64; 8], denominator: &[f64; 8]) -> f64 {
        let mantissa = |c: f64| c / 10f64.powi(c.log10().floor() as i32);
        numerator
            .iter()
            .chain(&denominator[1..])
            .map(|c| mantissa(*c))
            .sum()
    }

    #[test]
    fn as241_coefficients_match_the_papers_hash_sums() {
        // Wichura (1988) prints these sums to check a transcription of the coefficients.
        let central = hash_sum(&NORMAL_CENTRAL_NUMERATOR, &NORMAL_CENTRAL_DENOMINATOR);
        let intermediate = hash_sum(
            &NORMAL_INTERMEDIATE_NUMERATOR,
            &NORMAL_INTERMEDIATE_DENOMINATOR,
        );
        let far = hash_sum(&NORMAL_FAR_NUMERATOR, &NORMAL_FAR_DENOMINATOR);
        assert!((central - 55.883_192_880_614_9).abs() < 1e-12, "{central}");
        assert!(
            (intermediate - 49.332_065_033_016_1).abs() < 1e-12,
            "{intermediate}"
        );
        assert!((far - 47.525_833_175_492_9).abs() < 1e-12, "{far}");
    }

    #[test]
    fn ln_factorial_matches_the_product_on_both_sides_of_stirling() {
        let mut ln_product = 0.0;
        for n in 1..=200u64 {
            ln_product += count_as_f64(n).ln();
            let ours = ln_factorial(n);
            assert!(
                (ours - ln_product).abs() <= 1e-12 * ln_product.max(1.0),
                "{n}: {ours}"
            );
        }
        assert_eq!(ln_factorial(0), 0.0);
    }

    #[test]
    fn wilson_hilferty_at_the_first_approximated_shape_is_within_the_documented_error() {
        // The module docs promise these bounds where the exact inversion hands over.
        let shape = HASHRATE_SHAPE_EXACT_MAX;
        for (p, bound) in [
            (0.025, 1e-6),
            (0.975, 1e-6),
            (0.000_05, 2e-5),
            (0.999_95, 2e-5),
        ] {
            let exact = gamma_quantile_exact(shape, p);
            let approximate = wilson_hilferty(shape, p);
            let error = (approximate - exact).abs() / exact;
            assert!(
                error < bound,
                "p {p}: exact {exact}, wilson-hilferty {approximate}"
            );
        }
    }

    #[test]
    fn the_exact_inverse_inverts() {
        for shape in [1, 2, 3, 10, 100, HASHRATE_SHAPE_EXACT_MAX] {
            for p in [1e-12, 0.000_05, 0.025, 0.5, 0.975, 0.999_95, 1.0 - 1e-12] {
                let x = gamma_quantile(shape, p);
                let back = gamma_regularized_lower(shape, x);
                assert!(
                    (back - p).abs() <= 1e-12 * p.min(1.0 - p).max(1e-3),
                    "{shape} {p}"
                );
            }
        }
    }
}
