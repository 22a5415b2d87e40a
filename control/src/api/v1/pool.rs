//! `GET /api/v1/pool` (the dashboard's figures) and `GET /umbrel-api` (Umbrel's widget).

use std::collections::{BTreeMap, HashSet};
use std::sync::Arc;

use axum::extract::{Extension, State};
use serde::Serialize;
use utoipa::ToSchema;

use super::hashrate::{HashrateView, view};
use crate::{
    api::{ApiError, ApiState, Encoded, ErrorBody, Viewer, now_s},
    live::{Live, WorkerStatus},
    storage::BestScope,
};

/// Seconds in the windows of [`Odds`].
const DAY_S: f64 = 86_400.0;

/// Hashrates over the standard windows, each with its error bar.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct Windows {
    /// The last minute (60–120 s of shares).
    pub m1: HashrateView,
    /// The last ten minutes.
    pub m10: HashrateView,
    /// The last hour.
    pub h1: HashrateView,
    /// The last day.
    pub d1: HashrateView,
}

impl Windows {
    /// From tallies the way every answer computes them (`difficulty` sizes the bound of a
    /// window without shares).
    pub(crate) fn of(difficulty: f64, tally: impl Fn(i64) -> crate::live::Tally) -> Self {
        Self {
            m1: view(&tally(60), difficulty),
            m10: view(&tally(600), difficulty),
            h1: view(&tally(3600), difficulty),
            d1: view(&tally(86_400), difficulty),
        }
    }
}

/// Workers by status.
#[derive(Debug, Clone, Copy, Default, Serialize, ToSchema)]
pub struct WorkerCounts {
    /// Connected and hashing.
    pub online: u64,
    /// Hashing with too many rejects or at half its hourly rate.
    pub degraded: u64,
    /// Connected without shares.
    pub idle: u64,
    /// Not connected (seen in the last day).
    pub offline: u64,
    /// All of them.
    pub total: u64,
}

impl WorkerCounts {
    pub(crate) fn add(&mut self, status: WorkerStatus) {
        match status {
            WorkerStatus::Online => self.online += 1,
            WorkerStatus::Degraded => self.degraded += 1,
            WorkerStatus::Idle => self.idle += 1,
            WorkerStatus::Offline => self.offline += 1,
        }
        self.total += 1;
    }
}

/// Shares since start.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Shares {
    /// Accepted.
    pub accepted: u64,
    /// Rejected, all reasons.
    pub rejected: u64,
    /// Rejected as stale (included in `rejected`).
    pub stale: u64,
    /// Rejected by reason (`stale`, `duplicate`, `low_difficulty`, …).
    pub by_reason: BTreeMap<String, u64>,
}

/// One best share.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BestShareView {
    /// Its difficulty.
    pub difficulty: f64,
    /// Who found it (masked address).
    pub worker: String,
    /// The finder's id (`/api/v1/workers/{id}`).
    pub worker_id: String,
    /// Start of the minute it was found in, while still stored.
    pub at: Option<i64>,
}

/// The best shares of the round (since the last block) and of all time.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BestShares {
    /// Since the pool's last block.
    pub round: Option<BestShareView>,
    /// Ever.
    pub all_time: Option<BestShareView>,
}

/// The chance of finding at least one block.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
pub struct Odds {
    /// Within a day, 0..1.
    pub day: f64,
    /// Within 30 days.
    pub month: f64,
    /// Within 365 days.
    pub year: f64,
}

/// The pool's last block.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct LastBlock {
    /// Height.
    pub height: u32,
    /// Hash (display order).
    pub hash: String,
    /// When found, Unix seconds.
    pub at: i64,
    /// Its status (`found`, `submitted`, `in_chain`, `mature`, `orphaned`, `rejected`).
    pub status: &'static str,
}

/// `GET /api/v1/pool`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PoolResponse {
    /// Pool hashrate from accepted shares.
    pub hashrate: Windows,
    /// Workers by status.
    pub workers: WorkerCounts,
    /// Distinct payout addresses among the workers.
    pub addresses: u64,
    /// Shares since start.
    pub shares: Shares,
    /// Best shares.
    pub best_share: BestShares,
    /// Blocks found, ever.
    pub blocks_found: u64,
    /// The latest block found.
    pub last_block: Option<LastBlock>,
    /// The network difficulty of the current template.
    pub network_difficulty: Option<f64>,
    /// Expected seconds to a block at the last hour's hashrate (`null` without a template or
    /// without hashrate).
    pub expected_block_s: Option<f64>,
    /// The chance of a block at that rate.
    pub odds: Option<Odds>,
}

/// The dashboard's figures.
#[utoipa::path(get, path = "/api/v1/pool", tag = "pool", responses(
    (status = 200, description = "Pool figures", body = PoolResponse),
    (status = 503, description = "Busy or storage unreadable", body = ErrorBody)))]
pub async fn pool(
    State(state): State<Arc<ApiState>>,
    Extension(viewer): Extension<Viewer>,
) -> Result<Encoded, ApiError> {
    state.query(move |s| pool_of(s, viewer)).await
}

/// Expected seconds to a block at `hashrate` against `network_difficulty`.
#[must_use]
pub fn expected_block_s(network_difficulty: Option<f64>, hashrate: f64) -> Option<f64> {
    let d = network_difficulty.filter(|d| *d > 0.0)?;
    (hashrate > 0.0).then(|| d * crate::live::HASHES_PER_DIFFICULTY / hashrate)
}

/// The odds of a block within a day, month and year at an expected block time.
#[must_use]
pub fn odds(expected_s: f64) -> Odds {
    let p = |secs: f64| 1.0 - (-secs / expected_s).exp();
    Odds {
        day: p(DAY_S),
        month: p(30.0 * DAY_S),
        year: p(365.0 * DAY_S),
    }
}

fn counts(live: &Live, now: i64) -> (WorkerCounts, u64) {
    let mut counts = WorkerCounts::default();
    let mut addresses = HashSet::new();
    live.for_each(|w| {
        counts.add(w.status(now));
        addresses.insert(w.name.split('.').next().unwrap_or_default().to_owned());
    });
    (counts, addresses.len() as u64)
}

fn pool_of(state: &ApiState, viewer: Viewer) -> Result<PoolResponse, ApiError> {
    let now = now_s();
    let live = state.recorder.live();
    let since = live.started_at();
    let (hashrate, shares) = live.with_pool(|p| {
        let windows = Windows::of(state.info.min_difficulty, |secs| {
            if secs <= 3600 {
                p.minutes.window(now, secs, since)
            } else {
                p.hours.window(now, secs, since)
            }
        });
        let by_reason: BTreeMap<String, u64> = p
            .rejects
            .iter()
            .map(|(k, v)| ((*k).to_owned(), *v))
            .collect();
        let shares = Shares {
            accepted: p.accepted,
            rejected: by_reason.values().sum(),
            stale: by_reason.get("stale").copied().unwrap_or(0),
            by_reason,
        };
        (windows, shares)
    });
    let (workers, addresses) = counts(live, now);
    let (best_share, blocks_found, last_block) = state.with_reader(|r| {
        let best = |scope| -> Result<Option<BestShareView>, ApiError> {
            Ok(r.best_shares(scope, 1, now)?
                .into_iter()
                .next()
                .map(|b| BestShareView {
                    difficulty: b.difficulty,
                    worker_id: super::worker_id(&b.worker),
                    worker: viewer.name(&b.worker),
                    at: b.minute_unix_s,
                }))
        };
        let best_share = BestShares {
            round: best(BestScope::Round)?,
            all_time: best(BestScope::AllTime)?,
        };
        let last = r.blocks(1)?.into_iter().next().map(|b| LastBlock {
            height: b.height,
            hash: b.hash,
            at: b.found_unix_s,
            status: b.status.as_str(),
        });
        Ok((best_share, r.block_count()?, last))
    })?;
    let network_difficulty = state.status.borrow().template.map(|t| t.network_difficulty);
    let expected = expected_block_s(network_difficulty, hashrate.h1.hps);
    Ok(PoolResponse {
        hashrate,
        workers,
        addresses,
        shares,
        best_share,
        blocks_found,
        last_block,
        network_difficulty,
        expected_block_s: expected,
        odds: expected.map(odds),
    })
}

/// One stat of the Umbrel widget.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UmbrelItem {
    /// The label.
    pub title: &'static str,
    /// The value.
    pub text: String,
    /// The unit or a note.
    pub subtext: String,
}

/// Umbrel's `four-stats` home-screen widget.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct UmbrelWidget {
    /// Always `four-stats`.
    #[serde(rename = "type")]
    pub kind: &'static str,
    /// Where a tap leads (empty: the app).
    pub link: &'static str,
    /// How often Umbrel refreshes it (required by umbrelOS).
    pub refresh: &'static str,
    /// Exactly four: hashrate, miners, blocks, best share.
    pub items: Vec<UmbrelItem>,
}

/// Umbrel's home-screen widget: hashrate, miners, blocks, best share.
#[utoipa::path(get, path = "/umbrel-api", tag = "pool", responses(
    (status = 200, description = "The widget", body = UmbrelWidget),
    (status = 503, description = "Busy or storage unreadable", body = ErrorBody)))]
pub async fn umbrel(State(state): State<Arc<ApiState>>) -> Result<Encoded, ApiError> {
    state
        .query(|s| {
            let p = pool_of(s, Viewer::MASKED)?;
            let (rate, unit) = scaled(p.hashrate.m10.hps);
            let best = p.best_share.all_time.map_or(0.0, |b| b.difficulty);
            let (best_text, best_unit) = scaled(best);
            Ok(UmbrelWidget {
                kind: "four-stats",
                link: "",
                refresh: "30s",
                items: vec![
                    UmbrelItem {
                        title: "Hashrate",
                        text: format!("{rate:.2}"),
                        subtext: format!("{unit}H/s"),
                    },
                    UmbrelItem {
                        title: "Miners",
                        text: (p.workers.online + p.workers.degraded).to_string(),
                        subtext: "online".to_owned(),
                    },
                    UmbrelItem {
                        title: "Blocks",
                        text: p.blocks_found.to_string(),
                        subtext: "found".to_owned(),
                    },
                    UmbrelItem {
                        title: "Best share",
                        text: format!("{best_text:.2}"),
                        subtext: best_unit.to_owned(),
                    },
                ],
            })
        })
        .await
}

/// `value` scaled by powers of 1000 with its SI prefix (`1.2e12` → `1.2`, `T`).
#[must_use]
pub fn scaled(value: f64) -> (f64, &'static str) {
    const PREFIXES: [&str; 7] = ["", "k", "M", "G", "T", "P", "E"];
    let mut v = value;
    let mut i = 0;
    while v >= 1000.0 && i + 1 < PREFIXES.len() {
        v /= 1000.0;
        i += 1;
    }
    (v, PREFIXES[i])
}
