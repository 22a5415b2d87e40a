//! Nonce search off the I/O threads: a bounded pool of dedicated OS threads fed through a
//! bounded channel. A connection task sends a [`GrindJob`] carrying the header, the starting
//! nonce and the targets; the grinder hashes with `warppool-hash`'s midstate batch kernel and
//! sends the shares it found back on the connection's own bounded channel. The Tokio threads
//! only build headers, write submits and read replies, so grinding never delays a reply read
//! and never sits inside the submit→reply interval.

use std::sync::mpsc::{Receiver, SyncSender, sync_channel};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc::{Sender, channel as bounded};
use warppool_core::ShareTarget;
use warppool_core::limits::{
    LOADGEN_GRIND_FOUND_MAX, LOADGEN_GRIND_QUEUE, LOADGEN_GRIND_REPLIES, LOADGEN_GRINDER_NICE,
    LOADGEN_NONCES_PER_SLICE,
};
use warppool_hash::{Midstate, kernel};

use super::work::ShareDifficulty;

/// What a grinder searches for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Search {
    /// Stop at the first nonce meeting `hard` (rate mode's valid-share stock).
    First,
    /// Hash every nonce of the range; report each meeting `easy` or the network target
    /// (real mode), at most `LOADGEN_GRIND_FOUND_MAX` of them.
    All,
}

/// One search, with everything it needs.
#[derive(Debug)]
pub(crate) struct GrindJob {
    /// The connection's tag for this search (echoed in the result).
    pub(crate) tag: u64,
    /// The header; its nonce field is ignored.
    pub(crate) header: [u8; 80],
    pub(crate) start_nonce: u32,
    /// Nonces to try at most.
    pub(crate) nonces: u64,
    pub(crate) hard: ShareDifficulty,
    pub(crate) easy: ShareDifficulty,
    /// The job's network target (`None` if its nbits do not decode).
    pub(crate) block: Option<ShareTarget>,
    pub(crate) search: Search,
    pub(crate) reply: Sender<GrindResult>,
}

/// What a search found.
#[derive(Debug)]
pub(crate) struct GrindResult {
    pub(crate) tag: u64,
    /// Nonces and their header hashes (internal byte order).
    pub(crate) found: Vec<(u32, [u8; 32])>,
    /// Nonces hashed.
    pub(crate) hashed: u64,
}

/// A connection's bounded channel for its search results (`LOADGEN_GRIND_REPLIES`; Tokio's
/// `mpsc::channel` is bounded).
pub(crate) fn reply_channel() -> (
    Sender<GrindResult>,
    tokio::sync::mpsc::Receiver<GrindResult>,
) {
    bounded(LOADGEN_GRIND_REPLIES)
}

/// The grinder threads and the bounded queue that feeds them.
#[derive(Debug)]
pub(crate) struct Grinders {
    tx: SyncSender<GrindJob>,
}

impl Grinders {
    /// Starts `threads` grinder threads. They end when the `Grinders` is dropped and the
    /// queue drains.
    pub(crate) fn start(threads: usize) -> std::io::Result<Self> {
        let (tx, rx) = sync_channel::<GrindJob>(LOADGEN_GRIND_QUEUE);
        let rx = Arc::new(Mutex::new(rx));
        for i in 0..threads.max(1) {
            let rx = Arc::clone(&rx);
            std::thread::Builder::new()
                .name(format!("loadgen-grind-{i}"))
                .spawn(move || worker(&rx))?;
        }
        Ok(Self { tx })
    }

    /// Queues a search; `false` (the search dropped) when the queue is full.
    pub(crate) fn try_submit(&self, job: GrindJob) -> bool {
        self.tx.try_send(job).is_ok()
    }
}

/// Lowers the calling thread's priority to nice `LOADGEN_GRINDER_NICE`: a grinder sharing a
/// core with the I/O threads (perf/run pins the loadgen to one) yields it to a reply read; when
/// it gets too little CPU, rate mode counts `valid_shortfall` instead of slowing the I/O path.
#[cfg(target_os = "linux")]
fn lower_priority() {
    // SAFETY: gettid has no preconditions; setpriority on our own thread id only reads ints.
    let _ = unsafe {
        let tid = libc::gettid();
        libc::setpriority(
            libc::PRIO_PROCESS,
            libc::id_t::try_from(tid).unwrap_or(0),
            LOADGEN_GRINDER_NICE,
        )
    };
}

#[cfg(not(target_os = "linux"))]
fn lower_priority() {}

fn worker(rx: &Mutex<Receiver<GrindJob>>) {
    lower_priority();
    loop {
        let job = {
            let guard = rx.lock().unwrap_or_else(std::sync::PoisonError::into_inner);
            guard.recv()
        };
        let Ok(job) = job else {
            return;
        };
        let result = grind(&job);
        // The connection may have ended meanwhile; its result is then of no use.
        let _ = job.reply.try_send(result);
    }
}

/// Runs one search with the fastest kernel on this CPU, midstate and batches.
pub(crate) fn grind(job: &GrindJob) -> GrindResult {
    const BATCH: usize = LOADGEN_NONCES_PER_SLICE as usize;
    let k = kernel::selected();
    let mid = Midstate::from_header(&job.header);
    let mut tails = vec![[0u8; 16]; BATCH];
    for t in &mut tails {
        t.copy_from_slice(&job.header[64..]);
    }
    let mut out = vec![[0u8; 32]; BATCH];
    let mut found = Vec::new();
    let mut nonce = job.start_nonce;
    let mut hashed = 0u64;
    while hashed < job.nonces {
        if job.reply.is_closed() {
            break;
        }
        let n = usize::try_from((job.nonces - hashed).min(BATCH as u64)).unwrap_or(BATCH);
        for t in &mut tails[..n] {
            t[12..].copy_from_slice(&nonce.to_le_bytes());
            nonce = nonce.wrapping_add(1);
        }
        k.sha256d_headers_midstate(&mid, &tails[..n], &mut out[..n]);
        hashed += n as u64;
        for (t, hash) in tails[..n].iter().zip(&out[..n]) {
            let is_block = job.block.as_ref().is_some_and(|b| b.is_met_by(hash));
            let hit = match job.search {
                Search::First => job.hard.is_met_by(hash),
                Search::All => is_block || job.easy.is_met_by(hash),
            };
            if hit && found.len() < LOADGEN_GRIND_FOUND_MAX {
                let mut w = [0u8; 4];
                w.copy_from_slice(&t[12..]);
                found.push((u32::from_le_bytes(w), *hash));
                if job.search == Search::First {
                    return GrindResult {
                        tag: job.tag,
                        found,
                        hashed,
                    };
                }
            }
        }
    }
    GrindResult {
        tag: job.tag,
        found,
        hashed,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header() -> [u8; 80] {
        let mut h = [0u8; 80];
        for (i, b) in h.iter_mut().enumerate() {
            *b = u8::try_from(i).unwrap_or(0).wrapping_mul(7);
        }
        h
    }

    #[test]
    fn grinders_find_what_one_at_a_time_hashing_finds() {
        let (reply, mut rx) = bounded(2);
        let easy = ShareDifficulty::new(1.0 / 65536.0);
        let job = GrindJob {
            tag: 9,
            header: header(),
            start_nonce: 0xffff_f000,
            nonces: 200_000,
            hard: easy,
            easy,
            block: None,
            search: Search::All,
            reply,
        };
        let mut want = Vec::new();
        let mut h = header();
        for i in 0..200_000u32 {
            let nonce = 0xffff_f000u32.wrapping_add(i);
            h[76..].copy_from_slice(&nonce.to_le_bytes());
            let hash = warppool_hash::sha256d_header(&h);
            if easy.is_met_by(&hash) {
                want.push((nonce, hash));
            }
        }
        assert!(!want.is_empty());
        let g = Grinders::start(2).expect("threads");
        assert!(g.try_submit(job), "room in the queue");
        let got = rx.blocking_recv().expect("a result");
        assert_eq!(got.tag, 9);
        assert_eq!(got.hashed, 200_000);
        assert_eq!(got.found, want);

        let (reply, mut rx) = bounded(2);
        let first = GrindJob {
            tag: 10,
            header: header(),
            start_nonce: 0xffff_f000,
            nonces: 200_000,
            hard: easy,
            easy,
            block: None,
            search: Search::First,
            reply,
        };
        assert!(g.try_submit(first), "room in the queue");
        let got = rx.blocking_recv().expect("a result");
        assert_eq!(got.found, want[..1]);
    }
}
