//! Difficulty text on the wire (issue 9, defect 9): `set_difficulty` carries the shortest
//! decimal text that reads back as the same fixed-point value.

use proptest::prelude::*;
use warppool_core::Difficulty;
use warppool_core::limits::DIFFICULTY_TEXT_BYTES_MAX;
use warppool_core::stratum::write_set_difficulty;

fn text(d: Difficulty) -> String {
    let mut out = [0u8; DIFFICULTY_TEXT_BYTES_MAX];
    d.write_shortest(&mut out).to_owned()
}

/// Whether `text` reads back as `d` (as the Stratum parser reads a client's difficulty).
fn reads_back(text: &str, d: Difficulty) -> bool {
    Difficulty::from_text_lossy(text) == Ok(d)
}

/// The two texts with `decimals` decimals nearest below and above a fractional `d`
/// (`units / 2^32`, exact integer arithmetic; `decimals` at most 20).
fn neighbours(d: Difficulty, decimals: u32) -> [String; 2] {
    let scaled = d.units() * 10u128.pow(decimals);
    let below = scaled >> 32;
    let write = |n: u128| {
        let digits = format!("{n:0>width$}", width = decimals as usize + 1);
        let (int, frac) = digits.split_at(digits.len() - decimals as usize);
        if decimals == 0 {
            int.to_owned()
        } else {
            format!("{int}.{frac}")
        }
    };
    [write(below), write(below + 1)]
}

fn decimals_of(text: &str) -> u32 {
    text.split_once('.').map_or(0, |(_, f)| f.len() as u32)
}

/// Checks the round trip and that no text with one decimal fewer reads back as `d`.
fn check_shortest(d: Difficulty) -> Result<(), TestCaseError> {
    let t = text(d);
    prop_assert!(reads_back(&t, d), "{t} does not read back as {d:?}");
    prop_assert!(!t.contains(['e', 'E']), "no exponent: {t}");
    prop_assert!(
        !t.ends_with('0') || !t.contains('.'),
        "no trailing zero: {t}"
    );
    let decimals = decimals_of(&t);
    if d.whole().is_none() && decimals > 0 && decimals <= 21 {
        for shorter in neighbours(d, decimals - 1) {
            prop_assert!(!reads_back(&shorter, d), "{shorter} is shorter than {t}");
        }
    }
    Ok(())
}

// See: issue 9, defect 9 (`0.00015`, not `0.00014999997802078724`).
#[test]
fn issue_9_difficulty_text_is_the_shortest_round_trip() {
    let asked = Difficulty::from_text_lossy("0.00015").unwrap();
    assert_eq!(text(asked), "0.00015");
    let mut line = [0u8; 128];
    let n = write_set_difficulty(&mut line, asked, true).unwrap();
    assert_eq!(
        std::str::from_utf8(&line[..n]).unwrap(),
        "{\"id\":null,\"method\":\"mining.set_difficulty\",\"params\":[0.00015]}\n"
    );
    assert_eq!(text(Difficulty::from_whole(500_000).unwrap()), "500000");
    assert_eq!(text(Difficulty::MIN), "0.0000152588"); // 2^-16, to the fixed point
    assert_eq!(text(Difficulty::from_text_lossy("0.5").unwrap()), "0.5");
    assert_eq!(
        Difficulty::from_text_lossy("0.001").unwrap().to_string(),
        "0.001"
    );
}

proptest! {
    // What clients ask for: a few significant digits at some scale.
    #[test]
    fn issue_9_asked_difficulties_round_trip_shortest(m in 1u64..100_000, e in 0i32..10) {
        let v = m as f64 / 10f64.powi(e);
        if let Ok(d) = Difficulty::from_f64_lossy(v) {
            check_shortest(d)?;
        }
    }

    // Any fixed-point value vardiff can produce below 1.
    #[test]
    fn issue_9_fractional_difficulties_round_trip_shortest(units in (1u64 << 16)..(1u64 << 32)) {
        // Exact: `units / 2^32` is an f64.
        let d = Difficulty::from_f64_lossy(units as f64 / 4_294_967_296.0).unwrap();
        prop_assert_eq!(d.units(), u128::from(units));
        check_shortest(d)?;
    }

    #[test]
    fn issue_9_whole_difficulties_are_integers(w in 1u64..(1 << 60)) {
        let d = Difficulty::from_whole(w).unwrap();
        prop_assert_eq!(text(d), w.to_string());
    }
}
