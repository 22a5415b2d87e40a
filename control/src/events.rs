//! The live event hub behind `GET /api/v1/events` (UI.md §8.2): every event gets a global
//! sequence id, sits in a bounded ring for `Last-Event-ID` resume, and goes to every stream
//! through one bounded broadcast channel (a stream that falls `EVENTS_RING_MAX` events behind is
//! dropped: it never slows a producer). Events of one kind and key are coalesced to at most one
//! per `EVENTS_COALESCE_MS` (the latest wins).
//!
//! Producers: the block path's events (via the recorder), the template loop's status, and the
//! 1 Hz ticker of [`crate::api::v1::stream`] (pool figures, changed worker rows, health).

use std::collections::{HashMap, VecDeque};
use std::sync::{
    Arc, Mutex,
    atomic::{AtomicU64, Ordering},
};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::broadcast;
use warppool_core::limits::{EVENTS_COALESCE_MS, EVENTS_RING_MAX};

/// Which stream topic an event belongs to.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Topic {
    /// Sent to every stream (`pool`, `job`, `block`, `health`, `share.best`).
    Always,
    /// Only to streams that asked for `workers`.
    Workers,
    /// Only to streams that asked for `worker:<id>`.
    Worker(String),
}

/// One event as streams send it.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct HubEvent {
    /// Global sequence id (`id:` of the SSE message).
    pub seq: u64,
    /// The SSE event name (`pool`, `workers`, `worker`, `job`, `block`, `health`, …).
    pub kind: &'static str,
    /// Who receives it.
    #[serde(skip)]
    pub topic: Topic,
    /// The JSON payload (the `data:` line).
    pub data: String,
}

/// What [`EventHub::since`] found for a `Last-Event-ID`.
#[derive(Debug, Clone, PartialEq)]
pub enum Resume {
    /// Every event after it, oldest first.
    Events(Vec<Arc<HubEvent>>),
    /// The ring no longer holds what came after it: the client must refetch (`reset`).
    Gap,
}

#[derive(Debug, Default)]
struct Coalesce {
    /// When each (kind, key) was last sent.
    sent: HashMap<(&'static str, String), Instant>,
    /// Held back: the latest payload of each (kind, key) sent too recently.
    pending: HashMap<(&'static str, String), (Topic, String)>,
}

/// The hub (see the module docs).
#[derive(Debug)]
pub struct EventHub {
    next: AtomicU64,
    ring: Mutex<VecDeque<Arc<HubEvent>>>,
    tx: broadcast::Sender<Arc<HubEvent>>,
    coalesce: Mutex<Coalesce>,
    dropped_slow: AtomicU64,
    /// `worker:<id>` topics asked for by open streams, with how many ask.
    watched: Mutex<HashMap<String, usize>>,
}

impl Default for EventHub {
    fn default() -> Self {
        Self::new()
    }
}

impl EventHub {
    /// An empty hub; the first event gets id 1.
    #[must_use]
    pub fn new() -> Self {
        let (tx, _) = broadcast::channel(EVENTS_RING_MAX);
        Self {
            next: AtomicU64::new(1),
            ring: Mutex::new(VecDeque::with_capacity(EVENTS_RING_MAX)),
            tx,
            coalesce: Mutex::default(),
            dropped_slow: AtomicU64::new(0),
            watched: Mutex::default(),
        }
    }

    /// A stream asks for `worker:<id>` until the returned guard is dropped.
    #[must_use]
    pub fn watch(self: &Arc<Self>, id: &str) -> Watch {
        let mut w = self.watched.lock().unwrap_or_else(|e| e.into_inner());
        *w.entry(id.to_owned()).or_insert(0) += 1;
        Watch {
            hub: Arc::clone(self),
            id: id.to_owned(),
        }
    }

    /// The worker ids some stream asks for.
    #[must_use]
    pub fn watched(&self) -> Vec<String> {
        let w = self.watched.lock().unwrap_or_else(|e| e.into_inner());
        w.keys().cloned().collect()
    }

    /// The id the next event will get, less one (the `seq` of `hello`).
    #[must_use]
    pub fn last_seq(&self) -> u64 {
        self.next.load(Ordering::SeqCst) - 1
    }

    /// Streams subscribed now.
    #[must_use]
    pub fn streams(&self) -> usize {
        self.tx.receiver_count()
    }

    /// Streams dropped because they fell a ring behind.
    #[must_use]
    pub fn dropped_slow(&self) -> u64 {
        self.dropped_slow.load(Ordering::Relaxed)
    }

    /// Counts a stream dropped for being slow.
    pub fn count_slow_drop(&self) {
        self.dropped_slow.fetch_add(1, Ordering::Relaxed);
    }

    /// A receiver of every event published from now on.
    #[must_use]
    pub fn subscribe(&self) -> broadcast::Receiver<Arc<HubEvent>> {
        self.tx.subscribe()
    }

    /// Publishes an event now, without coalescing.
    pub fn publish(&self, kind: &'static str, topic: Topic, data: &impl Serialize) {
        let Ok(data) = serde_json::to_string(data) else {
            return;
        };
        self.push(kind, topic, data);
    }

    fn push(&self, kind: &'static str, topic: Topic, data: String) {
        let mut ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        // Ids are taken under the ring's lock, so the ring and the channel stay in id order.
        let seq = self.next.fetch_add(1, Ordering::SeqCst);
        let event = Arc::new(HubEvent {
            seq,
            kind,
            topic,
            data,
        });
        if ring.len() == EVENTS_RING_MAX {
            ring.pop_front();
        }
        ring.push_back(Arc::clone(&event));
        // No stream listening is fine: the event waits in the ring.
        let _ = self.tx.send(event);
    }

    /// Publishes an event of `kind` about `key`, or holds it back (the latest wins) when one
    /// of the same kind and key went out less than `EVENTS_COALESCE_MS` ago; [`Self::flush`]
    /// sends what was held back.
    pub fn publish_coalesced(
        &self,
        kind: &'static str,
        key: &str,
        topic: Topic,
        data: &impl Serialize,
    ) {
        let Ok(data) = serde_json::to_string(data) else {
            return;
        };
        let now = Instant::now();
        let window = Duration::from_millis(EVENTS_COALESCE_MS);
        let id = (kind, key.to_owned());
        {
            let mut c = self.coalesce.lock().unwrap_or_else(|e| e.into_inner());
            let recent = c
                .sent
                .get(&id)
                .is_some_and(|at| now.duration_since(*at) < window);
            if recent {
                c.pending.insert(id, (topic, data));
                return;
            }
            c.sent.insert(id, now);
        }
        self.push(kind, topic, data);
    }

    /// Sends the events held back whose window has passed (called every second).
    pub fn flush(&self) {
        let now = Instant::now();
        let window = Duration::from_millis(EVENTS_COALESCE_MS);
        let due: Vec<_> = {
            let mut c = self.coalesce.lock().unwrap_or_else(|e| e.into_inner());
            let Coalesce { sent, pending } = &mut *c;
            let keys: Vec<_> = pending
                .keys()
                .filter(|k| {
                    sent.get(*k)
                        .is_none_or(|at| now.duration_since(*at) >= window)
                })
                .cloned()
                .collect();
            // Forget the send times of quiet keys so the map stays as small as the live set.
            sent.retain(|_, at| now.duration_since(*at) < 10 * window);
            keys.into_iter()
                .filter_map(|k| {
                    let v = pending.remove(&k)?;
                    sent.insert(k.clone(), now);
                    Some((k.0, v))
                })
                .collect()
        };
        for (kind, (topic, data)) in due {
            self.push(kind, topic, data);
        }
    }

    /// The events after `last` (a `Last-Event-ID`), or [`Resume::Gap`] when the ring lost some.
    #[must_use]
    pub fn since(&self, last: u64) -> Resume {
        let ring = self.ring.lock().unwrap_or_else(|e| e.into_inner());
        let newest = self.next.load(Ordering::SeqCst) - 1;
        if last >= newest {
            return Resume::Events(Vec::new());
        }
        let oldest = ring.front().map_or(newest + 1, |e| e.seq);
        if last + 1 < oldest {
            return Resume::Gap;
        }
        Resume::Events(ring.iter().filter(|e| e.seq > last).cloned().collect())
    }
}

/// See [`EventHub::watch`].
#[derive(Debug)]
pub struct Watch {
    hub: Arc<EventHub>,
    id: String,
}

impl Drop for Watch {
    fn drop(&mut self) {
        let mut w = self.hub.watched.lock().unwrap_or_else(|e| e.into_inner());
        if let Some(n) = w.get_mut(&self.id) {
            *n -= 1;
            if *n == 0 {
                w.remove(&self.id);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_grow_the_ring_resumes_and_reports_a_gap() {
        let hub = EventHub::new();
        for i in 0..5 {
            hub.publish("block", Topic::Always, &i);
        }
        assert_eq!(hub.last_seq(), 5);
        let Resume::Events(after) = hub.since(3) else {
            panic!("resumable")
        };
        assert_eq!(after.iter().map(|e| e.seq).collect::<Vec<_>>(), [4, 5]);
        assert_eq!(hub.since(5), Resume::Events(Vec::new()));
        for i in 0..EVENTS_RING_MAX {
            hub.publish("block", Topic::Always, &i);
        }
        assert_eq!(hub.since(3), Resume::Gap);
        assert!(matches!(hub.since(hub.last_seq() - 1), Resume::Events(v) if v.len() == 1));
    }

    #[test]
    fn coalescing_holds_back_the_latest_until_its_window_passes() {
        let hub = EventHub::new();
        hub.publish_coalesced("job", "tip", Topic::Always, &1);
        hub.publish_coalesced("job", "tip", Topic::Always, &2);
        hub.publish_coalesced("job", "tip", Topic::Always, &3);
        hub.publish_coalesced("block", "a", Topic::Always, &4);
        assert_eq!(hub.last_seq(), 2, "one job and the block went out");
        hub.flush();
        assert_eq!(hub.last_seq(), 2, "the window has not passed");
        std::thread::sleep(Duration::from_millis(EVENTS_COALESCE_MS + 20));
        hub.flush();
        let Resume::Events(all) = hub.since(0) else {
            panic!()
        };
        let data: Vec<_> = all.iter().map(|e| e.data.as_str()).collect();
        assert_eq!(data, ["1", "4", "3"], "the latest held-back job, once");
    }
}
