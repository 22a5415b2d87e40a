//! Exact coverage of the hashrate interval, summed over the Poisson distribution rather than
//! sampled: Garwood's guarantee (never below the confidence level), the coverage table in
//! `core::hashrate`'s docs, and its vardiff figures.

use warppool_core::hashrate::{Confidence, share_interval};

/// Share counts whose intervals are tabulated: enough for true rates up to 800 shares.
const SHARES_TABULATED: usize = 1_200;

/// True rates per range of the docs' table.
const RATES_PER_RANGE: u32 = 4_000;

/// Standard deviations summed on each side of a true rate (the rest is below 1e-30).
const SPREAD_SIGMAS: f64 = 12.0;

/// The 97.5 % normal quantile, for the score interval.
const Z_975: f64 = 1.959_963_984_540_054;

/// A table of intervals by share count, with `ln n!` for the Poisson probabilities.
struct Table {
    intervals: Vec<(f64, f64)>,
    ln_factorial: Vec<f64>,
}

impl Table {
    fn new(interval: impl Fn(u64) -> (f64, f64), count: usize) -> Self {
        let mut ln_factorial = vec![0.0];
        for n in 1..count {
            ln_factorial.push(ln_factorial[n - 1] + (n as f64).ln());
        }
        let intervals = (0..count as u64).map(interval).collect();
        Self {
            intervals,
            ln_factorial,
        }
    }

    fn poisson(&self, n: usize, mean: f64) -> f64 {
        (n as f64 * mean.ln() - mean - self.ln_factorial[n]).exp()
    }

    /// Shares `n` with a non-negligible probability at `mean`.
    fn range(&self, mean: f64) -> std::ops::RangeInclusive<usize> {
        let spread = SPREAD_SIGMAS * mean.sqrt() + 20.0;
        let low = (mean - spread).max(0.0) as usize;
        let high = ((mean + spread) as usize).min(self.intervals.len() - 1);
        low..=high
    }

    /// The probability that the interval of a Poisson count of `mean` covers `mean`.
    fn coverage(&self, mean: f64) -> f64 {
        let mut covered = 0.0;
        for n in self.range(mean) {
            let (low, high) = self.intervals[n];
            if low <= mean && mean <= high {
                covered += self.poisson(n, mean);
            }
        }
        covered
    }

    /// Coverage over `RATES_PER_RANGE` true rates in `(from, to]`: (min, mean, max).
    fn coverage_over(&self, from: f64, to: f64) -> (f64, f64, f64) {
        let (mut min, mut sum, mut max) = (1.0f64, 0.0, 0.0f64);
        for i in 1..=RATES_PER_RANGE {
            let c = self.coverage(from + (to - from) * f64::from(i) / f64::from(RATES_PER_RANGE));
            min = min.min(c);
            max = max.max(c);
            sum += c;
        }
        (min, sum / f64::from(RATES_PER_RANGE), max)
    }
}

fn garwood(confidence: Confidence, count: usize) -> Table {
    Table::new(|n| share_interval(n, confidence), count)
}

/// The score (Wilson-type) interval for a Poisson mean, the docs' comparison.
fn score(n: u64) -> (f64, f64) {
    let n = n as f64;
    let centre = n + Z_975 * Z_975 / 2.0;
    let half = Z_975 * (n + Z_975 * Z_975 / 4.0).sqrt();
    (centre - half, centre + half)
}

/// A row of the docs' table: the range of true rates, then Garwood's and the score interval's
/// (min, mean, max) coverage in %.
type DocsRow = ((f64, f64), (f64, f64, f64), (f64, f64, f64));

/// The table in `core/src/hashrate.rs`.
const DOCS_TABLE: [DocsRow; 5] = [
    ((0.01, 2.0), (97.5, 98.8, 100.0), (83.8, 95.2, 99.0)),
    ((2.0, 10.0), (95.6, 97.2, 99.3), (92.8, 95.5, 97.8)),
    ((10.0, 50.0), (95.0, 96.0, 97.5), (93.6, 95.1, 96.5)),
    ((50.0, 200.0), (95.0, 95.5, 96.3), (94.3, 95.0, 95.7)),
    ((200.0, 800.0), (95.0, 95.3, 95.7), (94.7, 95.0, 95.4)),
];

/// The docs round to 0.1 %.
fn assert_rounds_to(name: &str, (min, mean, max): (f64, f64, f64), docs: (f64, f64, f64)) {
    eprintln!(
        "{name}: {:.5} / {:.5} / {:.5} %",
        min * 100.0,
        mean * 100.0,
        max * 100.0
    );
    for (value, documented) in [(min, docs.0), (mean, docs.1), (max, docs.2)] {
        assert!(
            (value * 100.0 - documented).abs() <= 0.05,
            "{name}: {value} vs {documented} %"
        );
    }
}

#[test]
fn the_coverage_table_in_the_docs_is_what_the_intervals_give() {
    let garwood = garwood(Confidence::DEFAULT, SHARES_TABULATED);
    let score = Table::new(score, SHARES_TABULATED);
    for ((from, to), garwood_docs, score_docs) in DOCS_TABLE {
        let range = format!("{from}..{to}");
        assert_rounds_to(
            &format!("garwood {range}"),
            garwood.coverage_over(from, to),
            garwood_docs,
        );
        assert_rounds_to(
            &format!("score {range}"),
            score.coverage_over(from, to),
            score_docs,
        );
    }
}

#[test]
fn garwood_never_covers_less_than_its_level() {
    for level in [0.8, 0.95, 0.99] {
        let confidence = Confidence::new(level).expect("in range");
        let table = garwood(confidence, 400);
        for i in 1..=20_000 {
            let mean = f64::from(i) / 100.0;
            let coverage = table.coverage(mean);
            assert!(
                coverage >= level - 1e-12,
                "{level} at {mean} shares: {coverage}"
            );
        }
    }
}

/// Exact coverage for a miner whose difficulty doubles mid-window: `first` expected shares at
/// difficulty 1, then `first / 2` at difficulty 2, the interval scaled by the mean difficulty.
fn coverage_doubled(table: &Table, first: f64) -> f64 {
    let second = first / 2.0;
    // The true rate in difficulty-1 shares over the whole window.
    let truth = first + 2.0 * second;
    let mut covered = 0.0;
    for a in table.range(first) {
        for b in table.range(second) {
            let n = a + b;
            let (low, high) = table.intervals[n];
            let mean_difficulty = (a + 2 * b) as f64 / n as f64;
            if low * mean_difficulty <= truth && truth <= high * mean_difficulty {
                covered += table.poisson(a, first) * table.poisson(b, second);
            }
        }
    }
    covered
}

#[test]
fn the_vardiff_figures_in_the_docs_are_what_the_intervals_give() {
    let table = garwood(Confidence::DEFAULT, 4_000);
    // The Bitaxe simulated in tests/hashrate.rs: 30 + 15 shares; docs: 94.5 %.
    let bitaxe = coverage_doubled(&table, 30.0);
    // Large counts; docs: 93.7 % (and 93.5 % in the normal limit, for an interval too narrow
    // by sqrt(N / n_eff) = sqrt(1.5 · 1.5 / 2)).
    let large = coverage_doubled(&table, 2_000.0);
    eprintln!("doubled mid-window: {bitaxe} at 30 + 15 shares, {large} at 2000 + 1000");
    assert!((bitaxe * 100.0 - 94.5).abs() <= 0.05, "{bitaxe}");
    assert!((large * 100.0 - 93.7).abs() <= 0.05, "{large}");
    assert!(large < bitaxe);
}
