//! Extranonce1 allocation and session resume, pool-wide.
//!
//! An extranonce1 is `shard index << (32 - EXTRANONCE1_SHARD_BITS) | counter`: unique
//! without coordination. Resume (a client sends back the session id it was given, which is
//! its extranonce1 in hex) needs two pool-wide facts, kept here behind one mutex touched only
//! at subscribe and close (never on the share path): whether the value was issued in this run
//! (the per-shard counters) and whether a live connection holds it (the in-use set). A
//! resumed connection may land on another shard: the value stays unique because the in-use
//! set is pool-wide.

use std::collections::HashSet;
use std::sync::Mutex;
use std::sync::atomic::{AtomicU32, Ordering};

use warppool_core::limits::EXTRANONCE1_SHARD_BITS;

const COUNTER_BITS: u32 = 32 - EXTRANONCE1_SHARD_BITS;
const COUNTER_MASK: u32 = (1 << COUNTER_BITS) - 1;

/// Issued counters and live extranonce1 values (see the module docs).
#[derive(Debug)]
pub(crate) struct Registry {
    /// Per shard: how many values it issued (saturating at the counter range: then every
    /// value of the shard counts as issued).
    issued: Vec<AtomicU32>,
    in_use: Mutex<HashSet<u32>>,
}

impl Registry {
    pub(crate) fn new(shards: usize) -> Self {
        assert!(shards > 0);
        assert!(shards <= 1 << EXTRANONCE1_SHARD_BITS);
        Self {
            issued: (0..shards).map(|_| AtomicU32::new(0)).collect(),
            in_use: Mutex::new(HashSet::new()),
        }
    }

    /// An extranonce1 for a new subscription on `shard`: the resumed one if `session` names a
    /// value this pool issued that no live connection holds, else a fresh one.
    pub(crate) fn acquire(&self, shard: usize, session: Option<&str>) -> u32 {
        let mut in_use = self.in_use.lock().expect("session registry lock");
        if let Some(value) = session.and_then(parse_session)
            && self.was_issued(value)
            && in_use.insert(value)
        {
            return value;
        }
        let prefix = u32::try_from(shard).expect("shard index fits") << COUNTER_BITS;
        // Bounded: at most one full turn of the counter range; a shard holds fewer live
        // connections than the range (limits.rs), so a free value exists.
        for _ in 0..=COUNTER_MASK {
            let counter = self.issued[shard].fetch_add(1, Ordering::Relaxed) & COUNTER_MASK;
            let value = prefix | counter;
            if in_use.insert(value) {
                return value;
            }
        }
        unreachable!("more live connections than extranonce1 values on one shard");
    }

    /// The connection holding `value` closed.
    pub(crate) fn release(&self, value: u32) {
        let removed = self
            .in_use
            .lock()
            .expect("session registry lock")
            .remove(&value);
        debug_assert!(removed);
    }

    fn was_issued(&self, value: u32) -> bool {
        let shard = (value >> COUNTER_BITS) as usize;
        let Some(issued) = self.issued.get(shard) else {
            return false;
        };
        let issued = issued.load(Ordering::Relaxed);
        issued > COUNTER_MASK || (value & COUNTER_MASK) < issued
    }
}

/// A session id is exactly 8 hex digits (the extranonce1 this pool sent).
fn parse_session(session: &str) -> Option<u32> {
    if session.len() != 8 {
        return None;
    }
    u32::from_str_radix(session, 16).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unique_resumable_and_foreign_ids_ignored() {
        let registry = Registry::new(2);
        let a = registry.acquire(1, None);
        let b = registry.acquire(1, None);
        assert_ne!(a, b);
        assert_eq!(a >> COUNTER_BITS, 1);
        // In use: a resume attempt gets a fresh value.
        let c = registry.acquire(0, Some(&format!("{a:08x}")));
        assert_ne!(c, a);
        registry.release(a);
        // Free and issued: resumed, even on another shard.
        assert_eq!(registry.acquire(0, Some(&format!("{a:08x}"))), a);
        // Never issued, or foreign (Whatsminer's 32-hex-digit ids): fresh.
        let never = (1 << COUNTER_BITS) | 0x00ff_ffff;
        assert_ne!(registry.acquire(0, Some(&format!("{never:08x}"))), never);
        let foreign = registry.acquire(0, Some("ae6812eb4cd7735a302a8a9dd95cf71f"));
        assert_eq!(foreign >> COUNTER_BITS, 0);
    }
}
