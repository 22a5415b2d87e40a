//! Accuracy of the hashrate interval's quantile functions against published tables, closed
//! forms, and an independent Poisson sum where Wilson–Hilferty takes over.

use warppool_core::hashrate::quantile::{gamma_quantile, gamma_regularized_lower, normal_quantile};
use warppool_core::limits::HASHRATE_SHAPE_EXACT_MAX;

/// Standard normal quantiles as printed in tables (to 6 decimals).
const NORMAL_TABLE: [(f64, f64); 8] = [
    (0.5, 0.0),
    (0.6, 0.253_347),
    (0.95, 1.644_854),
    (0.975, 1.959_964),
    (0.995, 2.575_829),
    (0.999, 3.090_232),
    (0.9999, 3.719_016),
    (1e-9, -5.997_807),
];

/// Half a unit in the tables' last (6th) decimal, plus rounding.
const NORMAL_TABLE_TOLERANCE: f64 = 5.1e-7;

/// Chi-square quantiles `(degrees of freedom, p, quantile)` as printed in tables (3 decimals);
/// even degrees of freedom, as the interval uses (`2 · shape`).
const CHI_SQUARE_TABLE: [(u64, f64, f64); 20] = [
    (2, 0.025, 0.051),
    (2, 0.975, 7.378),
    (2, 0.95, 5.991),
    (4, 0.025, 0.484),
    (4, 0.975, 11.143),
    (4, 0.05, 0.711),
    (4, 0.95, 9.488),
    (10, 0.025, 3.247),
    (10, 0.975, 20.483),
    (10, 0.05, 3.940),
    (10, 0.95, 18.307),
    (20, 0.025, 9.591),
    (20, 0.975, 34.170),
    (50, 0.025, 32.357),
    (50, 0.975, 71.420),
    (100, 0.025, 74.222),
    (100, 0.975, 129.561),
    (100, 0.95, 124.342),
    (1000, 0.025, 914.257),
    (1000, 0.975, 1089.531),
];

/// Half a unit in the tables' last (3rd) decimal, plus rounding.
const CHI_SQUARE_TABLE_TOLERANCE: f64 = 5.1e-4;

#[test]
fn the_normal_quantile_matches_the_tables_in_all_three_ranges() {
    for (p, z) in NORMAL_TABLE {
        let ours = normal_quantile(p);
        assert!(
            (ours - z).abs() <= NORMAL_TABLE_TOLERANCE,
            "{p}: {ours}, table {z}"
        );
    }
    // The far tail (sqrt(-ln p) > 5): 1e-20 is 9.262340 standard deviations out.
    assert!((normal_quantile(1e-20) + 9.262_340).abs() <= NORMAL_TABLE_TOLERANCE);
}

#[test]
fn the_normal_quantile_is_odd_and_increasing() {
    let mut previous = f64::NEG_INFINITY;
    for i in 1..2_000 {
        let p = f64::from(i) / 2_000.0;
        let z = normal_quantile(p);
        assert!(z > previous, "{p}");
        assert!((z + normal_quantile(1.0 - p)).abs() < 1e-12, "{p}");
        previous = z;
    }
}

#[test]
fn chi_square_quantiles_match_the_tables() {
    for (degrees, p, table) in CHI_SQUARE_TABLE {
        let ours = 2.0 * gamma_quantile(degrees / 2, p);
        assert!(
            (ours - table).abs() <= CHI_SQUARE_TABLE_TOLERANCE,
            "chi-square({degrees}) at {p}: {ours}, table {table}"
        );
    }
}

#[test]
fn gamma_quantiles_of_shapes_one_and_two_match_their_closed_forms() {
    for p in [1e-9f64, 0.000_05, 0.025, 0.5, 0.975, 0.999_95] {
        // Shape 1 is the exponential: P(1, x) = 1 - e^-x.
        let exponential = -(-p).ln_1p();
        let ours = gamma_quantile(1, p);
        assert!(
            (ours - exponential).abs() <= 1e-12 * exponential,
            "{p}: {ours}"
        );
        // Shape 2: P(2, x) = 1 - e^-x (1 + x), written without cancellation at small x.
        let x = gamma_quantile(2, p);
        let closed = -(-x).exp_m1() - x * (-x).exp();
        assert!(
            (closed - p).abs() <= 1e-12 * p.min(1.0 - p).max(1e-6),
            "{p}: {closed}"
        );
    }
}

#[test]
fn the_regularized_gamma_matches_its_closed_forms() {
    for x in [1e-6f64, 0.1, 1.0, 3.0, 10.0, 40.0] {
        let one = 1.0 - (-x).exp();
        let two = 1.0 - (-x).exp() * (1.0 + x);
        let three = 1.0 - (-x).exp() * (1.0 + x + x * x / 2.0);
        assert!(
            (gamma_regularized_lower(1, x) - one).abs() <= 1e-14 + 1e-12 * one,
            "{x}"
        );
        assert!(
            (gamma_regularized_lower(2, x) - two).abs() <= 1e-14 + 1e-12 * two,
            "{x}"
        );
        assert!(
            (gamma_regularized_lower(3, x) - three).abs() <= 1e-14 + 1e-12 * three,
            "{x}"
        );
    }
    assert_eq!(gamma_regularized_lower(5, 0.0), 0.0);
    assert_eq!(gamma_regularized_lower(5, f64::INFINITY), 1.0);
}

/// `ln n!` from Stirling's series (for `n` in the thousands and more, exact to f64).
fn ln_factorial(n: f64) -> f64 {
    n * n.ln() - n + 0.5 * (2.0 * std::f64::consts::PI * n).ln() + 1.0 / (12.0 * n)
        - 1.0 / (360.0 * n * n * n)
}

/// `P(shape, x)` summed here, independently of the library: the Poisson probabilities of
/// `shape` and above (for `x < shape`) or below (`x >= shape`), outward from `shape`.
fn poisson_tail(shape: u64, x: f64) -> f64 {
    let k = shape as f64;
    let ln_term = |j: f64| j * x.ln() - x - ln_factorial(j);
    let (mut j, step) = if x < k { (k, 1.0) } else { (k - 1.0, -1.0) };
    let mut sum = 0.0;
    loop {
        let term = ln_term(j).exp();
        sum += term;
        j += step;
        if term < sum * 1e-17 || j < 1.0 {
            break;
        }
    }
    if x < k { sum } else { 1.0 - sum }
}

#[test]
fn wilson_hilferty_beyond_the_exact_range_meets_its_probability() {
    for shape in [HASHRATE_SHAPE_EXACT_MAX + 1, 5_000, 100_000, 1_000_000] {
        for p in [0.000_05, 0.025, 0.5, 0.975, 0.999_95] {
            let x = gamma_quantile(shape, p);
            let tail = poisson_tail(shape, x);
            // The documented error where the exact range ends, falling as shape^-1.5. A
            // quantile off by `error` relative moves the probability by density · x · error,
            // about φ(z) · sqrt(shape) · error; allow half as much again.
            let k = shape as f64;
            let first = (HASHRATE_SHAPE_EXACT_MAX + 1) as f64;
            let error_first = if (0.01..0.99).contains(&p) {
                1e-6
            } else {
                2e-5
            };
            let error = error_first * (first / k).powf(1.5);
            let z = normal_quantile(p);
            let density = (-z * z / 2.0).exp() / (2.0 * std::f64::consts::PI).sqrt();
            let allowed = 1.5 * density * k.sqrt() * error + 1e-12;
            assert!(
                (tail - p).abs() <= allowed,
                "shape {shape} p {p}: P = {tail}"
            );
        }
    }
}
