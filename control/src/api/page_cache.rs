//! Answers of `/api/v1/workers` shared for one second.
//!
//! A farm's wall of dashboards, or a public pool's visitors, ask for the same page many times
//! a second; at 10,000 workers each answer is a pass over the whole live table. An answer is
//! kept, by its query text and whether the viewer sees full addresses, for as long as the
//! wall-clock second (the `now` every answer is computed at) and the live table's
//! [membership generation](crate::live::Live::generation) stay the same: a worker that
//! connects, disconnects or is kicked is in the next answer at once, and share counts and
//! hashrates are at most one second old, the pace of the event stream's coalescing.
//!
//! Bounded by [`API_PAGE_CACHE_ENTRIES_MAX`]: a new answer then takes the place of the oldest
//! one, so a scroll through many pages (or a flood of distinct queries) cannot keep the
//! popular page out for the rest of the second.

use std::collections::VecDeque;
use std::sync::Mutex;

use axum::body::Bytes;
use warppool_core::limits::API_PAGE_CACHE_ENTRIES_MAX;

/// When an answer was computed: the second and the live table's membership generation.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Stamp {
    /// Unix seconds.
    pub second: i64,
    /// [`crate::live::Live::generation`].
    pub generation: u64,
}

#[derive(Debug, Default)]
struct Inner {
    stamp: Stamp,
    entries: VecDeque<(Box<str>, bool, Bytes)>,
}

/// The cache (see the module docs).
#[derive(Debug, Default)]
pub struct PageCache {
    inner: Mutex<Inner>,
}

impl PageCache {
    /// The answer to `query` for a viewer who sees full addresses (`full`) or not, computed
    /// at `stamp`: the kept one, or `compute`'s (kept, in the oldest one's place when the
    /// cache is full). `compute` runs without the lock held.
    ///
    /// # Errors
    /// `compute`'s error (never kept).
    pub fn get_or_compute<E>(
        &self,
        query: &str,
        full: bool,
        stamp: Stamp,
        compute: impl FnOnce() -> Result<Bytes, E>,
    ) -> Result<Bytes, E> {
        {
            let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
            if inner.stamp != stamp {
                inner.stamp = stamp;
                inner.entries.clear();
            }
            if let Some((_, _, body)) = inner
                .entries
                .iter()
                .find(|(q, f, _)| **q == *query && *f == full)
            {
                return Ok(body.clone());
            }
        }
        let body = compute()?;
        let mut inner = self.inner.lock().unwrap_or_else(|e| e.into_inner());
        let current = inner.stamp == stamp;
        let kept = inner
            .entries
            .iter()
            .any(|(q, f, _)| **q == *query && *f == full);
        if current && !kept {
            if inner.entries.len() >= API_PAGE_CACHE_ENTRIES_MAX {
                inner.entries.pop_front();
            }
            inner.entries.push_back((query.into(), full, body.clone()));
        }
        Ok(body)
    }

    /// Answers kept now.
    #[must_use]
    pub fn len(&self) -> usize {
        self.inner
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .entries
            .len()
    }

    /// Whether nothing is kept.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn at(second: i64, generation: u64) -> Stamp {
        Stamp { second, generation }
    }

    #[test]
    fn an_answer_is_shared_within_its_second_and_generation_only() {
        let cache = PageCache::default();
        let mut computed = 0;
        let mut ask = |q: &str, full: bool, stamp: Stamp| {
            cache
                .get_or_compute::<()>(q, full, stamp, || {
                    computed += 1;
                    Ok(Bytes::from(format!("{q} {full} {computed}")))
                })
                .unwrap()
        };
        let first = ask("limit=100", false, at(10, 1));
        assert_eq!(ask("limit=100", false, at(10, 1)), first);
        // Another viewer class, another query, another second, another generation: computed.
        assert_ne!(ask("limit=100", true, at(10, 1)), first);
        assert_ne!(ask("limit=10", false, at(10, 1)), first);
        assert_ne!(ask("limit=100", false, at(11, 1)), first);
        let later = ask("limit=100", false, at(11, 2));
        assert_ne!(later, first);
        assert_eq!(ask("limit=100", false, at(11, 2)), later);
        assert_eq!(computed, 5);
    }

    #[test]
    fn the_cache_is_bounded_and_errors_are_not_kept() {
        let cache = PageCache::default();
        for i in 0..API_PAGE_CACHE_ENTRIES_MAX + 10 {
            let q = format!("q={i}");
            cache
                .get_or_compute::<()>(&q, false, Stamp::default(), || Ok(Bytes::from(q.clone())))
                .unwrap();
        }
        assert_eq!(cache.len(), API_PAGE_CACHE_ENTRIES_MAX);
        // The newest are kept, the oldest gave way.
        let newest = format!("q={}", API_PAGE_CACHE_ENTRIES_MAX + 9);
        let hit = cache.get_or_compute::<()>(&newest, false, Stamp::default(), || {
            Ok(Bytes::from_static(b"computed again"))
        });
        assert_eq!(hit, Ok(Bytes::from(newest.clone())));
        let oldest = cache.get_or_compute::<()>("q=0", false, Stamp::default(), || {
            Ok(Bytes::from_static(b"computed again"))
        });
        assert_eq!(oldest, Ok(Bytes::from_static(b"computed again")));
        let err = cache.get_or_compute("q=x", false, Stamp::default(), || Err("bad"));
        assert_eq!(err, Err("bad"));
        let again = cache.get_or_compute::<&str>("q=x", false, Stamp::default(), || {
            Ok(Bytes::from_static(b"fresh"))
        });
        assert_eq!(again, Ok(Bytes::from_static(b"fresh")));
    }
}
