//! `GET /api/v1/pool/history`, `GET /api/v1/workers/{id}/history` and
//! `GET /api/v1/workers/sparklines`: hashrate over time, each point with its 95 % interval
//! from the shares behind it.
//!
//! Every range has one bucket length (`RANGES`) and so a fixed number of points; the pool's
//! points come from the rollup level of that length (`storage::rollup`), a worker's from
//! `share_minutes` (1h, 24h) or its hourly / daily rollups (7d, 30d, 1y). Points are dense:
//! a bucket without shares is a row of zeros. The bucket now filling is not shown.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Path, Query, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use warppool_core::limits::{API_QUERY_TEXT_BYTES_MAX, API_SPARKLINE_IDS_MAX};

use super::hashrate::view;
use crate::api::{ApiError, ApiState, Encoded, ErrorBody, now_s};
use crate::live::Tally;
use crate::storage::HistoryRow;

/// One history range: its length, its bucket, and the levels it is read from.
#[derive(Debug, Clone, Copy)]
pub struct Range {
    /// `1h`, `24h`, `7d`, `30d`, `1y`.
    pub name: &'static str,
    /// Seconds it covers.
    pub secs: i64,
    /// Seconds per point.
    pub step_s: i64,
    /// The pool rollup level it reads (equal to `step_s`).
    pool_level: i64,
    /// The worker level it reads (60: `share_minutes`).
    worker_level: i64,
}

/// The ranges, shortest first (points: 60, 288, 168, 120, 365).
pub const RANGES: [Range; 5] = [
    range("1h", 3600, 60, 60),
    range("24h", 86_400, 300, 60),
    range("7d", 7 * 86_400, 3600, 3600),
    range("30d", 30 * 86_400, 21_600, 3600),
    range("1y", 365 * 86_400, 86_400, 86_400),
];

const fn range(name: &'static str, secs: i64, step_s: i64, worker_level: i64) -> Range {
    Range {
        name,
        secs,
        step_s,
        pool_level: step_s,
        worker_level,
    }
}

impl Range {
    /// Points it has.
    #[must_use]
    pub const fn points(&self) -> i64 {
        self.secs / self.step_s
    }

    /// Parses `range=` (400 naming the accepted ranges).
    ///
    /// # Errors
    /// 400 for anything else.
    pub fn parse(name: Option<&str>, default: &'static str) -> Result<Self, ApiError> {
        let name = name.unwrap_or(default);
        RANGES
            .iter()
            .find(|r| r.name == name)
            .copied()
            .ok_or_else(|| {
                let names: Vec<&str> = RANGES.iter().map(|r| r.name).collect();
                ApiError::bad_request(format!("range must be one of {}", names.join(", ")))
            })
    }

    /// The window `[from, until)` at `now`: the last `points()` complete buckets.
    const fn window(&self, now: i64) -> (i64, i64) {
        let until = now.div_euclid(self.step_s) * self.step_s;
        (until - self.secs, until)
    }
}

/// `range` of a history.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct HistoryQuery {
    /// `1h` (1-minute points), `24h` (5 minutes, the default), `7d` (1 hour), `30d`
    /// (6 hours) or `1y` (1 day).
    #[param(pattern = "^(1h|24h|7d|30d|1y)$")]
    pub range: Option<String>,
}

/// One cell of a history row: an integer, a number, or null.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum HistoryCell {
    /// An integer (times, counts).
    Int(i64),
    /// A number (hashrates, difficulties, rates).
    Number(f64),
    /// No value (a rate or mean over no share).
    Null,
}

/// A history, columnar.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct History {
    /// The range asked for.
    pub range: &'static str,
    /// Seconds per point.
    pub step_s: i64,
    /// Buckets starting at or after this are not summed yet (the writer rolls closed minutes
    /// up every second); `null` if nothing is rolled up yet.
    pub rolled_until: Option<i64>,
    /// The columns of `rows`. `t`: bucket start (Unix s); `hashrate`, `hashrate_low`,
    /// `hashrate_high`: estimate and 95 % interval, H/s; `shares`: accepted shares behind
    /// it; `rejects`: rejected shares; `reject_rate`: rejected / judged (null without
    /// shares); pool: `workers_online`: workers with an accepted share in the bucket; worker:
    /// `difficulty`: mean difficulty of its accepted shares (null without).
    pub columns: Vec<&'static str>,
    /// One row per bucket, oldest first.
    pub rows: Vec<Vec<HistoryCell>>,
}

const POOL_COLUMNS: [&str; 8] = [
    "t",
    "hashrate",
    "hashrate_low",
    "hashrate_high",
    "shares",
    "rejects",
    "reject_rate",
    "workers_online",
];

const WORKER_COLUMNS: [&str; 8] = [
    "t",
    "hashrate",
    "hashrate_low",
    "hashrate_high",
    "shares",
    "rejects",
    "reject_rate",
    "difficulty",
];

fn int(v: u64) -> HistoryCell {
    HistoryCell::Int(i64::try_from(v).unwrap_or(i64::MAX))
}

/// Dense rows over `[from, until)` from the stored buckets `stored` (oldest first).
fn dense(
    stored: &[HistoryRow],
    r: &Range,
    (from, until): (i64, i64),
    pool: bool,
    min_difficulty: f64,
) -> Vec<Vec<HistoryCell>> {
    let accepted: u64 = stored.iter().map(|h| h.accepted_count).sum();
    let diff_sum: f64 = stored.iter().map(|h| h.accepted_difficulty_sum).sum();
    // A bucket without shares gets its upper bound at the range's mean share difficulty.
    let typical = if accepted > 0 {
        diff_sum / accepted as f64
    } else {
        min_difficulty
    };
    let by_start: BTreeMap<i64, &HistoryRow> = stored.iter().map(|h| (h.start_unix_s, h)).collect();
    let mut rows = Vec::with_capacity(usize::try_from(r.points()).unwrap_or(0));
    let mut t = from;
    while t < until {
        let h = by_start.get(&t);
        let (acc, sum, rej) = h.map_or((0, 0.0, 0), |h| {
            (
                h.accepted_count,
                h.accepted_difficulty_sum,
                h.rejected_count,
            )
        });
        let tally = Tally {
            accepted: acc,
            rejected: rej,
            stale: 0,
            difficulty_sum: sum,
            secs: r.step_s,
        };
        let rate = view(&tally, typical);
        let judged = acc + rej;
        let reject_rate = if judged == 0 {
            HistoryCell::Null
        } else {
            HistoryCell::Number(rej as f64 / judged as f64)
        };
        let last = if pool {
            int(h.and_then(|h| h.workers_online).unwrap_or(0))
        } else if acc == 0 {
            HistoryCell::Null
        } else {
            HistoryCell::Number(sum / acc as f64)
        };
        rows.push(vec![
            HistoryCell::Int(t),
            HistoryCell::Number(rate.hps),
            HistoryCell::Number(rate.low_hps),
            HistoryCell::Number(rate.high_hps),
            int(acc),
            int(rej),
            reject_rate,
            last,
        ]);
        t += r.step_s;
    }
    rows
}

/// The pool's hashrate, workers and reject rate over a range.
#[utoipa::path(get, path = "/api/v1/pool/history", tag = "pool", params(HistoryQuery),
    responses(
        (status = 200, description = "The pool's history, columnar", body = History),
        (status = 400, description = "An unknown range", body = ErrorBody),
        (status = 503, description = "Busy or storage unreadable", body = ErrorBody)))]
pub async fn pool_history(
    State(state): State<Arc<ApiState>>,
    Query(query): Query<HistoryQuery>,
) -> Result<Encoded, ApiError> {
    let r = Range::parse(query.range.as_deref(), "24h")?;
    state
        .query(move |s| {
            let window = r.window(now_s());
            let (stored, mark) = s.with_reader(|reader| {
                let stored = reader.pool_history(r.pool_level, window.0, window.1)?;
                Ok((stored, reader.rollup_mark(true, r.pool_level)?))
            })?;
            Ok(History {
                range: r.name,
                step_s: r.step_s,
                rolled_until: mark,
                columns: POOL_COLUMNS.to_vec(),
                rows: dense(&stored, &r, window, true, s.info.min_difficulty),
            })
        })
        .await
}

/// The name of the worker whose API id is `id`: stored workers, then the live table (a
/// worker seen in the last second may not be stored yet).
///
/// # Errors
/// 400 for an id longer than the query text bound; 404 for an unknown id.
pub fn resolve(state: &ApiState, id: &str) -> Result<String, ApiError> {
    if let Some(name) = state.with_reader(|r| Ok(r.worker_name(id)?))? {
        return Ok(name);
    }
    let mut found = None;
    state.recorder.live().for_each(|w| {
        if found.is_none() && super::worker_id(&w.name) == id {
            found = Some(w.name.to_string());
        }
    });
    found.ok_or_else(|| ApiError::not_found(format!("no worker with id {id}")))
}

/// Refuses an id longer than any worker id could be.
///
/// # Errors
/// 400.
pub fn bounded_id(id: &str) -> Result<(), ApiError> {
    if id.len() > API_QUERY_TEXT_BYTES_MAX {
        return Err(ApiError::bad_request(format!(
            "id is longer than API_QUERY_TEXT_BYTES_MAX ({API_QUERY_TEXT_BYTES_MAX} bytes)"
        )));
    }
    Ok(())
}

/// One worker's hashrate, difficulty and rejects over a range.
#[utoipa::path(get, path = "/api/v1/workers/{id}/history", tag = "workers",
    params(("id" = String, Path, description = "The worker's id"), HistoryQuery),
    responses(
        (status = 200, description = "The worker's history, columnar", body = History),
        (status = 400, description = "An unknown range", body = ErrorBody),
        (status = 404, description = "No worker has that id", body = ErrorBody),
        (status = 503, description = "Busy or storage unreadable", body = ErrorBody)))]
pub async fn worker_history(
    State(state): State<Arc<ApiState>>,
    Path(id): Path<String>,
    Query(query): Query<HistoryQuery>,
) -> Result<Encoded, ApiError> {
    bounded_id(&id)?;
    let r = Range::parse(query.range.as_deref(), "24h")?;
    state
        .query(move |s| {
            let name = resolve(s, &id)?;
            let window = r.window(now_s());
            let (stored, mark) = s.with_reader(|reader| {
                let stored =
                    reader.worker_history(&name, r.worker_level, r.step_s, window.0, window.1)?;
                let mark = if r.worker_level == 60 {
                    // Read from the minutes themselves, committed every second.
                    Some(window.1)
                } else {
                    reader.rollup_mark(false, r.worker_level)?
                };
                Ok((stored, mark))
            })?;
            Ok(History {
                range: r.name,
                step_s: r.step_s,
                rolled_until: mark,
                columns: WORKER_COLUMNS.to_vec(),
                rows: dense(&stored, &r, window, false, s.info.min_difficulty),
            })
        })
        .await
}

/// `ids` and `range` of the sparklines.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct SparklinesQuery {
    /// Comma-separated worker ids (at most 200, `API_SPARKLINE_IDS_MAX`).
    pub ids: String,
    /// `24h` (24 hourly values, the default) or `1h` (60 one-minute values).
    #[param(pattern = "^(1h|24h)$")]
    pub range: Option<String>,
}

/// `GET /api/v1/workers/sparklines`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Sparklines {
    /// Seconds per value.
    pub step_s: i64,
    /// Each worker's hashrate per complete hour (or minute), oldest first, H/s.
    pub series: BTreeMap<String, Vec<f64>>,
    /// Ids asked for that no live worker has.
    pub unknown: Vec<String>,
}

/// Hashrate sparklines of many workers, from the live table's rings.
#[utoipa::path(get, path = "/api/v1/workers/sparklines", tag = "workers",
    params(SparklinesQuery),
    responses(
        (status = 200, description = "One series per worker", body = Sparklines),
        (status = 400, description = "Too many ids, or an unknown range", body = ErrorBody),
        (status = 503, description = "Busy", body = ErrorBody)))]
pub async fn sparklines(
    State(state): State<Arc<ApiState>>,
    Query(query): Query<SparklinesQuery>,
) -> Result<Encoded, ApiError> {
    let hourly = match query.range.as_deref().unwrap_or("24h") {
        "24h" => true,
        "1h" => false,
        _ => return Err(ApiError::bad_request("range must be one of 1h, 24h")),
    };
    let mut ids: Vec<String> = query
        .ids
        .split(',')
        .map(str::trim)
        .filter(|i| !i.is_empty())
        .map(str::to_owned)
        .collect();
    ids.sort_unstable();
    ids.dedup();
    if ids.is_empty() || ids.len() > API_SPARKLINE_IDS_MAX {
        return Err(ApiError::bad_request(format!(
            "ids must name 1..={API_SPARKLINE_IDS_MAX} workers (API_SPARKLINE_IDS_MAX)"
        )));
    }
    for id in &ids {
        bounded_id(id)?;
    }
    state
        .query(move |s| {
            let now = now_s();
            let mut series = BTreeMap::new();
            s.recorder.live().for_each(|w| {
                let id = super::worker_id(&w.name);
                if ids.binary_search(&id).is_ok() {
                    // The rings hold the complete slots and the current one: drop the latter.
                    let values = if hourly {
                        w.hours.series(now)[..24].to_vec()
                    } else {
                        w.minutes.series(now)[..60].to_vec()
                    };
                    series.insert(id, values);
                }
            });
            let unknown = ids
                .into_iter()
                .filter(|i| !series.contains_key(i))
                .collect();
            Ok(Sparklines {
                step_s: if hourly { 3600 } else { 60 },
                series,
                unknown,
            })
        })
        .await
}
