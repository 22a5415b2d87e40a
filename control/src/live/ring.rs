//! Fixed rings of time slots (minutes, hours) holding share tallies: what every live hashrate,
//! reject rate and sparkline is computed from. No allocation after construction.

/// One slot: the shares of one minute (or hour).
#[derive(Debug, Clone, Copy, Default, PartialEq)]
struct Slot {
    /// Which slot of time this is (`unix_s / SLOT_SECS`); a slot whose index is not the one
    /// expected for its position is empty (old data).
    index: i64,
    accepted: u32,
    rejected: u32,
    stale: u32,
    /// Sum of the accepted shares' difficulties (`f32`: 24 bits of mantissa are plenty for a
    /// rate with a ±1 % error bar at best, and keep a slot at 24 bytes).
    difficulty_sum: f32,
}

/// Totals over a run of slots.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Tally {
    /// Accepted shares.
    pub accepted: u64,
    /// Rejected shares (stale ones included).
    pub rejected: u64,
    /// Rejected as stale.
    pub stale: u64,
    /// Sum of the accepted shares' difficulties.
    pub difficulty_sum: f64,
    /// Seconds the totals cover (from the start of the oldest slot taken to `now`).
    pub secs: i64,
}

/// `N` slots of `SECS` seconds each; the newest is the one holding `now`.
#[derive(Debug, Clone)]
pub struct Ring<const N: usize, const SECS: i64> {
    slots: [Slot; N],
}

impl<const N: usize, const SECS: i64> Default for Ring<N, SECS> {
    fn default() -> Self {
        Self {
            slots: [Slot {
                index: i64::MIN,
                ..Slot::default()
            }; N],
        }
    }
}

impl<const N: usize, const SECS: i64> Ring<N, SECS> {
    fn slot_mut(&mut self, now: i64) -> &mut Slot {
        let index = now.div_euclid(SECS);
        let slot = &mut self.slots[index.rem_euclid(N as i64) as usize];
        if slot.index != index {
            *slot = Slot {
                index,
                ..Slot::default()
            };
        }
        slot
    }

    /// Counts an accepted share of `difficulty` at `now`.
    pub fn accept(&mut self, now: i64, difficulty: f64) {
        let slot = self.slot_mut(now);
        slot.accepted = slot.accepted.saturating_add(1);
        slot.difficulty_sum += difficulty as f32;
    }

    /// Counts a rejected share at `now`.
    pub fn reject(&mut self, now: i64, stale: bool) {
        let slot = self.slot_mut(now);
        slot.rejected = slot.rejected.saturating_add(1);
        if stale {
            slot.stale = slot.stale.saturating_add(1);
        }
    }

    /// The totals of the window `[now - secs, now]`, widened to the start of the slot holding
    /// `now - secs` (so it covers between `secs` and `secs + SECS` seconds) and cut at `since`
    /// (when counting began: nothing before it can be in the ring). `secs` is clamped to what
    /// the ring holds.
    #[must_use]
    pub fn window(&self, now: i64, secs: i64, since: i64) -> Tally {
        let newest = now.div_euclid(SECS);
        let back = (secs / SECS).clamp(0, N as i64 - 1);
        let oldest = newest - back;
        let mut tally = Tally::default();
        // Only the window's own positions (each index has one): 11 slots for ten minutes of
        // the minutes ring, not all 61.
        let mut position = oldest.rem_euclid(N as i64) as usize;
        for index in oldest..=newest {
            let slot = &self.slots[position];
            position = if position + 1 == N { 0 } else { position + 1 };
            if slot.index == index {
                tally.accepted += u64::from(slot.accepted);
                tally.rejected += u64::from(slot.rejected);
                tally.stale += u64::from(slot.stale);
                tally.difficulty_sum += f64::from(slot.difficulty_sum);
            }
        }
        tally.secs = (now - (oldest * SECS).max(since)).max(0);
        tally
    }

    /// The accepted difficulty of each of the last `N - 1` complete slots and the current one,
    /// oldest first, as hashes per second over each slot's length (a sparkline).
    #[must_use]
    pub fn series(&self, now: i64) -> [f64; N] {
        let newest = now.div_euclid(SECS);
        let mut out = [0.0; N];
        for (i, value) in out.iter_mut().enumerate() {
            let index = newest - (N as i64 - 1) + i as i64;
            let slot = &self.slots[index.rem_euclid(N as i64) as usize];
            if slot.index == index {
                *value = crate::live::hashes_per_second(f64::from(slot.difficulty_sum), SECS);
            }
        }
        out
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_counts_only_its_slots_and_forgets_old_laps() {
        let mut ring: Ring<4, 60> = Ring::default();
        ring.accept(0, 1.0);
        ring.accept(61, 2.0);
        ring.reject(130, true);
        // 4 slots later, slot 0's position is reused: its old tally is gone.
        ring.accept(240, 8.0);
        let all = ring.window(240, 240, 0);
        assert_eq!(all.accepted, 2, "{all:?}");
        assert_eq!(all.difficulty_sum, 10.0);
        assert_eq!((all.rejected, all.stale), (1, 1));
        assert_eq!(all.secs, 240 - 60, "three slots back from slot 4: from 60");
        let last = ring.window(250, 60, 0);
        assert_eq!(last.accepted, 1);
        assert_eq!(last.secs, 250 - 180);
        // Counting began at 200: the window is cut there.
        assert_eq!(ring.window(250, 60, 200).secs, 50);
    }

    #[test]
    fn the_series_is_oldest_first_with_gaps_as_zero() {
        let mut ring: Ring<3, 60> = Ring::default();
        ring.accept(10, 60.0);
        ring.accept(130, 120.0);
        let series = ring.series(130);
        let per_diff = crate::live::hashes_per_second(1.0, 60);
        assert_eq!(series, [60.0 * per_diff, 0.0, 120.0 * per_diff]);
    }
}
