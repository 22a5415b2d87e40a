//! Vardiff behaviour on simulated miners: Poisson share processes from a seeded xorshift.

use warppool_core::Difficulty;
use warppool_core::vardiff::{Millis, Vardiff, VardiffConfig};

/// xorshift64* — tiny, seeded, no dependencies.
struct Rng(u64);

impl Rng {
    fn next_u64(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_f491_4f6c_dd1d)
    }

    /// Uniform in (0, 1].
    fn uniform(&mut self) -> f64 {
        ((self.next_u64() >> 11) + 1) as f64 / (1u64 << 53) as f64
    }

    /// Exponential waiting time in ms for a rate in events per second.
    fn exp_ms(&mut self, rate_per_sec: f64) -> u64 {
        if rate_per_sec <= 0.0 {
            return u64::MAX / 4;
        }
        (-self.uniform().ln() / rate_per_sec * 1000.0).ceil() as u64
    }
}

const TWO_32: f64 = 4_294_967_296.0;

fn whole(d: u64) -> Difficulty {
    Difficulty::from_whole(d).unwrap()
}

fn frac(d: f64) -> Difficulty {
    Difficulty::from_f64_lossy(d).unwrap()
}

/// Ideal difficulty for a hashrate at 18 shares a minute.
fn ideal(hashrate: f64) -> f64 {
    hashrate / TWO_32 * 60.0 / 18.0
}

#[derive(Debug, Default)]
struct Run {
    changes: Vec<(u64, Difficulty)>,
    shares: u64,
}

/// Simulates a miner of `hashrate` H/s from `from` to `to` ms, ticking every second.
fn simulate(v: &mut Vardiff, rng: &mut Rng, hashrate: f64, from: u64, to: u64) -> Run {
    let mut run = Run::default();
    let rate = |d: Difficulty| hashrate / TWO_32 / d.to_f64_lossy();
    let mut t = from;
    let mut next_share = t + rng.exp_ms(rate(v.difficulty()));
    let mut next_tick = t + 1000;
    while t < to {
        let before = v.difficulty();
        let change = if next_share <= next_tick {
            t = next_share;
            run.shares += 1;
            v.on_share(Millis::new(t), before, true)
        } else {
            t = next_tick;
            next_tick += 1000;
            v.on_tick(Millis::new(t))
        };
        if let Some(d) = change {
            assert_ne!(d, before);
            run.changes.push((t, d));
        }
        if change.is_some() || t == next_share {
            next_share = t + rng.exp_ms(rate(v.difficulty()));
        }
    }
    run
}

fn within(d: Difficulty, target: f64, factor: f64) -> bool {
    let x = d.to_f64_lossy();
    x >= target / factor && x <= target * factor
}

#[test]
fn ramps_up_a_bitaxe_from_difficulty_one() {
    let hashrate = 1.07e12;
    let mut rng = Rng(0x1234_5678_9abc_def1);
    let mut v = Vardiff::new(VardiffConfig::default(), Millis::new(0), Some(whole(1)));
    let run = simulate(&mut v, &mut rng, hashrate, 0, 60_000);
    assert!(
        within(v.difficulty(), ideal(hashrate), 2.0),
        "{:?} {:?}",
        v.difficulty(),
        run
    );
    // The first change comes within seconds.
    assert!(run.changes[0].0 < 5_000, "{run:?}");
}

#[test]
fn ramps_up_an_s21_from_the_port_start() {
    for seed in 1..=40u64 {
        let hashrate = 200e12;
        let mut rng = Rng(seed.wrapping_mul(0x9e37_79b9_7f4a_7c15));
        let mut v = Vardiff::new(VardiffConfig::default(), Millis::new(0), None);
        assert_eq!(v.difficulty(), whole(1024));
        let run = simulate(&mut v, &mut rng, hashrate, 0, 90_000);
        assert!(
            within(v.difficulty(), ideal(hashrate), 2.0),
            "seed {seed}: {run:?}"
        );
    }
}

#[test]
fn ramps_down_a_nerdminer_with_fractions() {
    let config = VardiffConfig {
        fractional: true,
        difficulty_min: Difficulty::MIN,
        ..VardiffConfig::default()
    };
    let hashrate = 60e3;
    let mut rng = Rng(42);
    // It suggests 0.00015; the port start is 1024.
    let mut v = Vardiff::new(config, Millis::new(0), None);
    assert_eq!(
        v.suggest(Millis::new(10), frac(0.00015)),
        Some(frac(0.00015))
    );
    let run = simulate(&mut v, &mut rng, hashrate, 10, 20 * 60_000);
    assert!(
        within(v.difficulty(), ideal(hashrate), 2.0),
        "{:?} {run:?}",
        v.difficulty()
    );
    assert!(v.difficulty() < Difficulty::ONE);
}

#[test]
fn steady_state_stays_in_band_with_few_retargets() {
    for seed in 1..=40u64 {
        let hashrate = 4.8e12;
        let target = ideal(hashrate);
        let mut rng = Rng(seed ^ 0xdead_beef);
        #[allow(
            clippy::cast_possible_truncation,
            clippy::cast_sign_loss,
            reason = "a small positive count"
        )]
        let start = whole(target as u64);
        let mut v = Vardiff::new(VardiffConfig::default(), Millis::new(0), Some(start));
        let run = simulate(&mut v, &mut rng, hashrate, 0, 2 * 3_600_000);
        // A lucky streak may move the ramp-up by up to ~2x; the steady state stays closer.
        for (t, d) in &run.changes {
            let factor = if *t < 120_000 { 2.5 } else { 1.8 };
            assert!(
                within(*d, target, factor),
                "seed {seed} at {t}: {d:?} vs {target}"
            );
        }
        assert!(
            run.changes.len() <= 12,
            "seed {seed}: {} retargets",
            run.changes.len()
        );
        // About 18 shares a minute overall.
        let per_min = run.shares as f64 / 120.0;
        assert!(
            (15.0..21.0).contains(&per_min),
            "seed {seed}: {per_min} shares/min"
        );
        // Changes are spaced by the minimum interval once ramp-up is over.
        for pair in run.changes.windows(2) {
            if pair[0].0 > 120_000 {
                assert!(pair[1].0 - pair[0].0 >= 30_000, "{pair:?}");
            }
        }
    }
}

#[test]
fn silence_lowers_difficulty_in_bounded_steps() {
    let hashrate = 1.07e12;
    let mut rng = Rng(7);
    let mut v = Vardiff::new(VardiffConfig::default(), Millis::new(0), Some(whole(830)));
    let _ = simulate(&mut v, &mut rng, hashrate, 0, 600_000);
    let before = v.difficulty();
    // The miner stops hashing.
    let run = simulate(&mut v, &mut rng, 0.0, 600_000, 1_200_000);
    assert!(v.difficulty() < before);
    assert!(!run.changes.is_empty());
    // The first decay comes after a minute without shares and lowers 4 times; later ones
    // (the connection is ramping again) come every 30 s and lower at most 8 times.
    assert!(run.changes[0].1.to_f64_lossy() >= before.to_f64_lossy() / 4.0 - 1.0);
    let mut previous = before;
    for (t, d) in &run.changes {
        assert!(
            d.to_f64_lossy() >= previous.to_f64_lossy() / 8.0 - 1.0,
            "{t}: {d:?}"
        );
        assert!(*d < previous);
        previous = *d;
    }
    for pair in run.changes.windows(2) {
        assert!(pair[1].0 - pair[0].0 >= 30_000, "{run:?}");
    }
    assert!(v.is_ramping());
    // It comes back and is found again within a minute.
    let run = simulate(&mut v, &mut rng, hashrate, 1_200_000, 1_260_000);
    assert!(within(v.difficulty(), ideal(hashrate), 2.0), "{run:?}");
}

#[test]
fn hysteresis_holds_within_the_band() {
    let d = whole(1000);
    let mut v = Vardiff::new(VardiffConfig::default(), Millis::new(0), Some(d));
    // 20% faster than the target rate: 21.6 shares a minute, deterministic spacing.
    let spacing = 60_000 * 10 / 216;
    let mut t = 0;
    for _ in 0..(30 * 60_000 / spacing) {
        t += spacing;
        assert_eq!(v.on_share(Millis::new(t), d, true), None, "at {t}");
        assert_eq!(v.on_tick(Millis::new(t)), None);
    }
    // Twice as fast: it moves within a few minutes.
    let spacing = spacing / 2 * 10 / 12;
    let end = t + 5 * 60_000;
    let mut moved = None;
    while t < end && moved.is_none() {
        t += spacing;
        moved = v.on_share(Millis::new(t), d, true);
    }
    let moved = moved.expect("no retarget at twice the target rate");
    assert!(moved > d);
}

#[test]
fn rejected_shares_do_not_move_it() {
    let hashrate = 1.07e12;
    let mut a = Vardiff::new(VardiffConfig::default(), Millis::new(0), Some(whole(64)));
    let mut b = Vardiff::new(VardiffConfig::default(), Millis::new(0), Some(whole(64)));
    let mut rng = Rng(99);
    let mut t = 0;
    for _ in 0..3000 {
        t += rng.exp_ms(hashrate / TWO_32 / a.difficulty().to_f64_lossy());
        // b also sees five rejected shares (at any difficulty) before each valid one.
        for k in 0..5u64 {
            let r = b.on_share(Millis::new(t.saturating_sub(k)), whole(1 << 30), false);
            assert_eq!(r, None);
        }
        let da = a.on_share(Millis::new(t), a.difficulty(), true);
        let db = b.on_share(Millis::new(t), b.difficulty(), true);
        assert_eq!(da, db);
        assert_eq!(a.on_tick(Millis::new(t)), b.on_tick(Millis::new(t)));
    }
    assert_eq!(a.difficulty(), b.difficulty());
    assert_eq!(
        a.hashrate_lossy(Millis::new(t)),
        b.hashrate_lossy(Millis::new(t))
    );
    assert_eq!(b.share_counts(), (3000, 15_000));
}

#[test]
fn clamps_to_port_client_and_global_limits() {
    // Port maximum.
    let config = VardiffConfig {
        difficulty_max: whole(10_000),
        ..VardiffConfig::default()
    };
    let mut v = Vardiff::new(config, Millis::new(0), None);
    let _ = simulate(&mut v, &mut Rng(3), 200e12, 0, 120_000);
    assert_eq!(v.difficulty(), whole(10_000));
    // Port minimum holds through silence.
    let config = VardiffConfig {
        difficulty_min: whole(500),
        ..VardiffConfig::default()
    };
    let mut v = Vardiff::new(config, Millis::new(0), Some(whole(1)));
    assert_eq!(v.difficulty(), whole(500));
    let _ = simulate(&mut v, &mut Rng(4), 0.0, 0, 3_600_000);
    assert_eq!(v.difficulty(), whole(500));
    // Global range.
    let mut v = Vardiff::new(
        VardiffConfig::default(),
        Millis::new(0),
        Some(Difficulty::MAX),
    );
    assert_eq!(v.difficulty(), Difficulty::MAX);
    let _ = simulate(&mut v, &mut Rng(5), 1e30, 0, 10_000);
    assert!(v.difficulty() <= Difficulty::MAX);
    // A client minimum raises the floor at once and holds.
    let mut v = Vardiff::new(VardiffConfig::default(), Millis::new(0), Some(whole(100)));
    assert_eq!(
        v.set_client_min(Millis::new(1), whole(2048)),
        Some(whole(2048))
    );
    let _ = simulate(&mut v, &mut Rng(6), 1e9, 0, 600_000);
    assert_eq!(v.difficulty(), whole(2048));
}

#[test]
fn whole_numbers_unless_fractions_are_allowed() {
    let mut v = Vardiff::new(
        VardiffConfig::default(),
        Millis::new(0),
        Some(frac(0.00015)),
    );
    assert_eq!(v.difficulty(), Difficulty::ONE);
    let _ = simulate(&mut v, &mut Rng(8), 3e9, 0, 600_000);
    assert!(v.difficulty().whole().is_some());
    // A suggestion counts only before the first valid share (NerdMiner re-sends it).
    let mut v = Vardiff::new(VardiffConfig::default(), Millis::new(0), None);
    assert_eq!(v.suggest(Millis::new(1), whole(4096)), Some(whole(4096)));
    let _ = v.on_share(Millis::new(2), whole(4096), true);
    assert_eq!(v.suggest(Millis::new(3), whole(16)), None);
    assert_eq!(v.difficulty(), whole(4096));
}

#[test]
fn config_validation() {
    assert!(VardiffConfig::default().validate().is_ok());
    let bad = VardiffConfig {
        shares_per_min_target: 0,
        ..VardiffConfig::default()
    };
    assert!(bad.validate().is_err());
    let bad = VardiffConfig {
        difficulty_min: whole(10),
        difficulty_max: whole(5),
        ..VardiffConfig::default()
    };
    assert!(bad.validate().is_err());
    let bad = VardiffConfig {
        band_percent: 100,
        ..VardiffConfig::default()
    };
    assert!(bad.validate().is_err());
}

// See: issue 9, defect 8 (a fresh port clamped a NerdMiner's 0.00015 request, so it never
// found a share; fractions stay reserved for clients that ask).
#[test]
fn issue_9_default_port_serves_a_nerdminer_and_never_gives_a_non_asking_client_a_fraction() {
    // A client that asked for a fraction: the session sets `fractional` for it.
    let asking = VardiffConfig {
        fractional: true,
        ..VardiffConfig::default()
    };
    let mut nerd = Vardiff::new(asking, Millis::new(0), None);
    let _ = nerd.suggest(Millis::new(0), frac(0.000_15));
    assert!(
        within(nerd.difficulty(), 0.000_15, 1.000_1),
        "{:?}",
        nerd.difficulty()
    );
    // A client that did not ask: silence lowers it, but never below 1.
    let mut quiet = Vardiff::new(VardiffConfig::default(), Millis::new(0), None);
    for minute in 1..=60u64 {
        let _ = quiet.on_tick(Millis::new(minute * 60_000));
    }
    assert_eq!(quiet.difficulty(), whole(1));
    let _ = quiet.suggest(Millis::new(3_600_001), frac(0.000_15));
    assert_eq!(quiet.difficulty(), whole(1));
}
