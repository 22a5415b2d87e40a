//! `GET /api/v1/workers`, `GET /api/v1/workers/{id}` and `GET /api/v1/addresses/{address}`,
//! answered from the live table.

mod table;

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Extension, Path, Query, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use warppool_core::limits::{API_PAGE_ROWS_MAX, API_QUERY_TEXT_BYTES_MAX};

pub use self::table::{COLUMNS, Cell, Cursor};
use self::table::{Row, column, key_row, row, sort};
use super::pool::{Odds, Windows, WorkerCounts, expected_block_s, odds};
use crate::{
    api::{ApiError, ApiState, Encoded, ErrorBody, Viewer, now_s},
    live::{LiveWorker, Tally, WorkerStatus, device},
};

/// Rows of a page when `limit` is not given.
const PAGE_ROWS_DEFAULT: usize = 100;

/// The filters, sort, page and columns of `GET /api/v1/workers`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct WorkersQuery {
    /// Case-insensitive text in the worker's name, model or firmware.
    #[param(max_length = 128)]
    pub q: Option<String>,
    /// Comma-separated statuses (`online,degraded,idle,offline`).
    #[param(pattern = "^(online|degraded|idle|offline)(,(online|degraded|idle|offline))*$")]
    pub status: Option<String>,
    /// Exact model (first user-agent segment).
    #[param(max_length = 128)]
    pub model: Option<String>,
    /// Exact payout address.
    #[param(max_length = 128)]
    pub address: Option<String>,
    /// Count groups by `status`, `model`, `firmware` or `address`.
    #[param(pattern = "^(status|model|firmware|address)$")]
    pub group_by: Option<String>,
    /// The column to sort on (any of `columns`; default `hashrate_m10`).
    pub sort: Option<String>,
    /// `asc` or `desc` (default `desc`).
    #[param(pattern = "^(asc|desc)$")]
    pub dir: Option<String>,
    /// Rows per page, 1..=1000 (default 100).
    #[param(minimum = 1, maximum = 1000)]
    pub limit: Option<usize>,
    /// The `next_cursor` of the previous page.
    pub cursor: Option<String>,
    /// Comma-separated columns to return (default all).
    pub fields: Option<String>,
}

/// One group of `group_by`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Group {
    /// The group's value.
    pub key: String,
    /// Workers in it.
    pub count: u64,
    /// Their summed ten-minute hashrate, H/s.
    pub hashrate_m10: f64,
}

/// Counts for the filter chips (over every filter but the one counted).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Counts {
    /// By status.
    pub by_status: WorkerCounts,
    /// By model.
    pub by_model: BTreeMap<String, u64>,
}

/// `GET /api/v1/workers`: a columnar page.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WorkersPage {
    /// Workers matching the filters.
    pub total: u64,
    /// Filter chip counts.
    pub counts: Counts,
    /// The columns of `rows`, in order.
    pub columns: Vec<&'static str>,
    /// One array per worker.
    pub rows: Vec<Vec<Cell>>,
    /// Pass as `cursor` for the next page; `null` on the last one.
    pub next_cursor: Option<String>,
    /// The groups of `group_by`, largest first.
    pub groups: Option<Vec<Group>>,
}

fn bounded(name: &str, value: Option<&String>) -> Result<(), ApiError> {
    match value {
        Some(v) if v.len() > API_QUERY_TEXT_BYTES_MAX => Err(ApiError::bad_request(format!(
            "{name} is longer than API_QUERY_TEXT_BYTES_MAX ({API_QUERY_TEXT_BYTES_MAX} bytes)"
        ))),
        _ => Ok(()),
    }
}

/// The parsed query.
struct Plan {
    q: Option<String>,
    statuses: Option<Vec<WorkerStatus>>,
    sort_by: usize,
    desc: bool,
    limit: usize,
    cursor: Option<Cursor>,
    fields: Vec<usize>,
}

fn plan(query: &WorkersQuery) -> Result<Plan, ApiError> {
    for (name, value) in [
        ("q", &query.q),
        ("status", &query.status),
        ("model", &query.model),
        ("address", &query.address),
        ("cursor", &query.cursor),
    ] {
        bounded(name, value.as_ref())?;
    }
    let statuses = query
        .status
        .as_deref()
        .map(|s| {
            s.split(',')
                .map(|v| {
                    WorkerStatus::parse(v.trim())
                        .ok_or_else(|| ApiError::bad_request(format!("unknown status {v:?}")))
                })
                .collect::<Result<Vec<_>, _>>()
        })
        .transpose()?;
    let sort_by = column(query.sort.as_deref().unwrap_or("hashrate_m10"))?;
    let desc = match query.dir.as_deref().unwrap_or("desc") {
        "desc" => true,
        "asc" => false,
        other => {
            return Err(ApiError::bad_request(format!(
                "dir must be asc or desc: {other:?}"
            )));
        }
    };
    let limit = query.limit.unwrap_or(PAGE_ROWS_DEFAULT);
    if !(1..=API_PAGE_ROWS_MAX).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be 1..={API_PAGE_ROWS_MAX} (API_PAGE_ROWS_MAX)"
        )));
    }
    let cursor = query.cursor.as_deref().map(Cursor::decode).transpose()?;
    if let Some(c) = &cursor
        && (c.by != sort_by || c.desc != desc)
    {
        return Err(ApiError::bad_request("the cursor belongs to another sort"));
    }
    let fields = match query.fields.as_deref() {
        None => (0..COLUMNS.len()).collect(),
        Some(f) => f
            .split(',')
            .map(|c| column(c.trim()))
            .collect::<Result<_, _>>()?,
    };
    Ok(Plan {
        q: query.q.as_ref().map(|q| q.to_lowercase()),
        statuses,
        sort_by,
        desc,
        limit,
        cursor,
        fields,
    })
}

/// Whether `q` is in the row's name (as the viewer sees it: a visitor cannot find an address
/// by searching for parts of it), model or firmware.
fn matches_text(row: &Row, q: &str, viewer: Viewer) -> bool {
    [&viewer.name(&row.name), &row.model, &row.firmware]
        .iter()
        .any(|f| f.to_lowercase().contains(q))
}

/// The workers table.
#[utoipa::path(get, path = "/api/v1/workers", tag = "workers", params(WorkersQuery), responses(
    (status = 200, description = "One page of workers", body = WorkersPage),
    (status = 400, description = "A bad filter, sort, limit or cursor", body = ErrorBody),
    (status = 503, description = "Busy", body = ErrorBody)))]
pub async fn list(
    State(state): State<Arc<ApiState>>,
    Extension(viewer): Extension<Viewer>,
    Query(query): Query<WorkersQuery>,
) -> Result<Encoded, ApiError> {
    let plan = plan(&query)?;
    state.query(move |s| page(s, &query, &plan, viewer)).await
}

fn page(
    state: &ApiState,
    query: &WorkersQuery,
    plan: &Plan,
    viewer: Viewer,
) -> Result<WorkersPage, ApiError> {
    let now = now_s();
    let mut rows = Vec::new();
    let mut by_status = WorkerCounts::default();
    let mut by_model: BTreeMap<String, u64> = BTreeMap::new();
    state.recorder.live().for_each(|w| {
        let r = key_row(w, now, viewer, plan.sort_by, query.group_by.is_some());
        let base = plan
            .q
            .as_deref()
            .is_none_or(|q| matches_text(&r, q, viewer))
            && query.address.as_ref().is_none_or(|a| *a == r.address);
        let model_ok = query.model.as_ref().is_none_or(|m| *m == r.model);
        let status_ok = plan.statuses.as_ref().is_none_or(|s| s.contains(&r.status));
        if base && model_ok {
            by_status.add(r.status);
        }
        if base && status_ok {
            *by_model.entry(r.model.clone()).or_insert(0) += 1;
        }
        if base && model_ok && status_ok {
            rows.push(r);
        }
    });
    let groups = query
        .group_by
        .as_deref()
        .map(|g| groups(&rows, g, viewer))
        .transpose()?;
    sort(&mut rows, plan.sort_by, plan.desc);
    let total = rows.len() as u64;
    let (after, next_cursor) = page_of(state, rows, plan, now, viewer);
    Ok(WorkersPage {
        total,
        counts: Counts {
            by_status,
            by_model,
        },
        columns: plan.fields.iter().map(|&i| COLUMNS[i]).collect(),
        rows: after
            .into_iter()
            .map(|r| plan.fields.iter().map(|&i| r.cells[i].clone()).collect())
            .collect(),
        next_cursor,
        groups,
    })
}

/// The page after the plan's cursor of the sorted `rows`, made whole, and the cursor of the
/// next page (kept from the sort pass's key, so no row is repeated or skipped).
fn page_of(
    state: &ApiState,
    rows: Vec<Row>,
    plan: &Plan,
    now: i64,
    viewer: Viewer,
) -> (Vec<Row>, Option<String>) {
    let mut after: Vec<Row> = rows
        .into_iter()
        .filter(|r| plan.cursor.as_ref().is_none_or(|c| c.is_before(r)))
        .take(plan.limit + 1)
        .collect();
    let more = after.len() > plan.limit;
    after.truncate(plan.limit);
    let next_cursor = after.last().filter(|_| more).map(|last| {
        Cursor {
            by: plan.sort_by,
            desc: plan.desc,
            key: last.cells[plan.sort_by].clone(),
            id: match &last.cells[0] {
                Cell::Text(id) => id.clone(),
                _ => String::new(),
            },
        }
        .encode()
    });
    // The page's rows made whole (the cursor keeps the sort pass's key; a worker gone since
    // that pass is left out).
    let live = state.recorder.live();
    let after: Vec<Row> = after
        .into_iter()
        .filter_map(|k| live.with_worker(&k.name, |w| row(w, now, viewer)))
        .collect();
    (after, next_cursor)
}

fn groups(rows: &[Row], by: &str, viewer: Viewer) -> Result<Vec<Group>, ApiError> {
    let key = |r: &Row| -> String {
        match by {
            "status" => r.status.as_str().to_owned(),
            "model" => r.model.clone(),
            "firmware" => r.firmware.clone(),
            _ => viewer.address(&r.address),
        }
    };
    if !matches!(by, "status" | "model" | "firmware" | "address") {
        return Err(ApiError::bad_request(format!(
            "group_by must be status, model, firmware or address: {by:?}"
        )));
    }
    let mut map: BTreeMap<String, Group> = BTreeMap::new();
    for r in rows {
        let k = key(r);
        let g = map.entry(k.clone()).or_insert(Group {
            key: k,
            count: 0,
            hashrate_m10: 0.0,
        });
        g.count += 1;
        g.hashrate_m10 += r.hashrate_m10;
    }
    let mut out: Vec<Group> = map.into_values().collect();
    out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
    Ok(out)
}

/// One reject reason with what it means.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RejectReason {
    /// The reason label (`stale`, `duplicate`, `low_difficulty`, …).
    pub reason: String,
    /// Shares rejected for it since start.
    pub count: u64,
    /// What it means and what to do, in plain language.
    pub explanation: &'static str,
}

/// The plain-language meaning of a reject reason.
#[must_use]
pub fn explain(reason: &str) -> &'static str {
    match reason {
        "stale" => {
            "The share was for a block the network had already moved past. A few are normal \
             right after a new block; many mean the miner is slow to switch work (network \
             latency, an overloaded device)."
        }
        "unknown_job" => {
            "The share named a job the pool no longer keeps, usually because the miner kept \
             hashing old work after a reconnect."
        }
        "duplicate" => {
            "The same share was sent twice. Occasional duplicates come from firmware resending \
             after a timeout; many point to a firmware bug."
        }
        "low_difficulty" => {
            "The share did not meet the difficulty the pool asked for, often right after a \
             difficulty change the miner had not applied yet. Constant low-difficulty rejects \
             mean the device ignores set_difficulty."
        }
        "ntime" => {
            "The share's timestamp was outside the window the pool accepts: check the device's \
             clock and firmware."
        }
        "version_bits" => {
            "The share rolled version bits the pool did not allow (version rolling / ASICBoost \
             mask): a firmware or configuration mismatch."
        }
        "extranonce2_size" => {
            "The share's extranonce2 had the wrong length for this connection: a firmware bug \
             or a proxy rewriting the work."
        }
        "malformed" => "The share's fields could not be read (not hex, wrong length).",
        _ => "A reason this version has no explanation for.",
    }
}

/// Best shares of one worker.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WorkerBest {
    /// Of the current connection run.
    pub session: f64,
    /// Ever.
    pub all_time: f64,
}

/// Shares of one worker since start.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WorkerShares {
    /// Accepted.
    pub accepted: u64,
    /// Rejected, all reasons.
    pub rejected: u64,
    /// By reason, explained.
    pub by_reason: Vec<RejectReason>,
}

/// `GET /api/v1/workers/{id}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WorkerDetail {
    /// Its id.
    pub id: String,
    /// Its name (address masked).
    pub name: String,
    /// Its status.
    pub status: WorkerStatus,
    /// The device as its user agent names it.
    pub model: String,
    /// Its ASIC, when the user agent names one.
    pub asic: Option<String>,
    /// Its firmware, when the user agent names one.
    pub firmware: Option<String>,
    /// The raw user agent.
    pub user_agent: Option<String>,
    /// Open connections.
    pub connections: u32,
    /// Since when it is connected.
    pub connected_at: Option<i64>,
    /// Its latest accepted share.
    pub last_share_at: Option<i64>,
    /// Its current difficulty.
    pub difficulty: f64,
    /// When the difficulty last changed.
    pub difficulty_at: Option<i64>,
    /// Hashrate measured from its shares.
    pub hashrate: Windows,
    /// Shares since start.
    pub shares: WorkerShares,
    /// Best shares.
    pub best_share: WorkerBest,
    /// Expected seconds to a block at its hourly hashrate.
    pub expected_block_s: Option<f64>,
    /// The chance it finds a block.
    pub odds: Option<Odds>,
    /// Connections begun in the last 24 hours, less the first.
    pub reconnects_24h: u64,
    /// Hashrate of each of the last 24 hours and the current one, oldest first, H/s.
    pub hourly_hashrate: Vec<f64>,
    /// The payout check: the decoded outputs of the coinbase this worker hashes now.
    pub payout: Option<crate::payout::Payout>,
    /// Why there is no payout check, when there is none.
    pub payout_error: Option<String>,
}

/// The detail of `w` at `now`.
pub(crate) fn detail_of(
    w: &LiveWorker,
    now: i64,
    network_difficulty: Option<f64>,
    jobs: Option<&warppool_net::stratum::JobSet>,
    viewer: Viewer,
) -> WorkerDetail {
    let payout = jobs
        .ok_or(crate::payout::PayoutCheckError::NoTemplate)
        .and_then(|j| crate::payout::check(j, &w.name, |a| viewer.address(a)));
    let dev = device::parse(w.user_agent.as_deref());
    let hashrate = Windows::of(w.difficulty, |secs| w.window(now, secs));
    let expected = expected_block_s(network_difficulty, hashrate.h1.hps);
    WorkerDetail {
        id: super::worker_id(&w.name),
        name: viewer.name(&w.name),
        status: w.status(now),
        model: dev.model.to_owned(),
        asic: dev.asic.map(str::to_owned),
        firmware: dev.firmware.map(str::to_owned),
        user_agent: w.user_agent.as_deref().map(str::to_owned),
        connections: w.connections,
        connected_at: w.connected_at,
        last_share_at: w.last_share_at,
        difficulty: w.difficulty,
        difficulty_at: w.difficulty_at,
        hashrate,
        shares: WorkerShares {
            accepted: w.accepted,
            rejected: w.rejected(),
            by_reason: w
                .rejects
                .iter()
                .map(|(reason, count)| RejectReason {
                    reason: (*reason).to_owned(),
                    count: *count,
                    explanation: explain(reason),
                })
                .collect(),
        },
        best_share: WorkerBest {
            session: w.best_session,
            all_time: w.best_all_time(),
        },
        expected_block_s: expected,
        odds: expected.map(odds),
        reconnects_24h: w.reconnects_24h(now),
        hourly_hashrate: w.hours.series(now).to_vec(),
        payout_error: payout.as_ref().err().map(ToString::to_string),
        payout: payout.ok(),
    }
}

/// One worker.
#[utoipa::path(get, path = "/api/v1/workers/{id}", tag = "workers",
    params(("id" = String, Path, description = "The worker's id (from the table)")),
    responses(
        (status = 200, description = "The worker", body = WorkerDetail),
        (status = 404, description = "No live worker has that id", body = ErrorBody),
        (status = 503, description = "Busy", body = ErrorBody)))]
pub async fn detail(
    State(state): State<Arc<ApiState>>,
    Extension(viewer): Extension<Viewer>,
    Path(id): Path<String>,
) -> Result<Encoded, ApiError> {
    bounded("id", Some(&id))?;
    state
        .query(move |s| {
            let now = now_s();
            let difficulty = s.status.borrow().template.map(|t| t.network_difficulty);
            let jobs = s.jobs.last();
            let mut found = None;
            s.recorder.live().for_each(|w| {
                if found.is_none() && super::worker_id(&w.name) == id {
                    found = Some(detail_of(w, now, difficulty, jobs.as_deref(), viewer));
                }
            });
            found.ok_or_else(|| ApiError::not_found(format!("no live worker with id {id}")))
        })
        .await
}

/// A worker of an address.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AddressWorker {
    /// Its id.
    pub id: String,
    /// The part after the address (`rig1`; empty for none).
    pub worker: String,
    /// Its status.
    pub status: WorkerStatus,
    /// Its ten-minute hashrate, H/s.
    pub hashrate_m10: f64,
    /// Its best share ever.
    pub best_all_time: f64,
}

/// A block paid to an address.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AddressBlock {
    /// Height.
    pub height: u32,
    /// Hash.
    pub hash: String,
    /// Status.
    pub status: &'static str,
    /// When found.
    pub found_at: i64,
}

/// `GET /api/v1/addresses/{address}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct AddressResponse {
    /// The address (as asked: whoever asks knows it).
    pub address: String,
    /// The summed hashrate of its workers.
    pub hashrate: Windows,
    /// Its workers.
    pub workers: Vec<AddressWorker>,
    /// The best share of any of its workers.
    pub best_all_time: f64,
    /// Blocks paid to it.
    pub blocks: Vec<AddressBlock>,
}

/// Blocks an address lookup lists at most.
const ADDRESS_BLOCKS_MAX: usize = 100;

fn add(a: &mut Tally, b: &Tally) {
    a.accepted += b.accepted;
    a.rejected += b.rejected;
    a.stale += b.stale;
    a.difficulty_sum += b.difficulty_sum;
    a.secs = a.secs.max(b.secs);
}

/// What one payout address mines.
#[utoipa::path(get, path = "/api/v1/addresses/{address}", tag = "workers",
    params(("address" = String, Path, description = "A payout address")),
    responses(
        (status = 200, description = "Its workers and blocks", body = AddressResponse),
        (status = 404, description = "No worker or block for that address", body = ErrorBody),
        (status = 503, description = "Busy or storage unreadable", body = ErrorBody)))]
pub async fn address(
    State(state): State<Arc<ApiState>>,
    Path(address): Path<String>,
) -> Result<Encoded, ApiError> {
    bounded("address", Some(&address))?;
    state.query(move |s| address_of(s, &address)).await
}

fn address_of(state: &ApiState, address: &str) -> Result<AddressResponse, ApiError> {
    let now = now_s();
    let mut workers = Vec::new();
    let mut tallies: Vec<[Tally; 4]> = Vec::new();
    state.recorder.live().for_each(|w| {
        let (a, rest) = w.name.split_once('.').unwrap_or((&w.name, ""));
        if a != address {
            return;
        }
        tallies.push([60, 600, 3600, 86_400].map(|secs| w.window(now, secs)));
        workers.push(AddressWorker {
            id: super::worker_id(&w.name),
            worker: rest.to_owned(),
            status: w.status(now),
            hashrate_m10: crate::live::hashes_per_second(
                w.window(now, 600).difficulty_sum,
                w.window(now, 600).secs,
            ),
            best_all_time: w.best_all_time(),
        });
    });
    let blocks: Vec<AddressBlock> = state.with_reader(|r| {
        Ok(r.blocks(ADDRESS_BLOCKS_MAX)?
            .into_iter()
            .filter(|b| b.payout_address == address)
            .map(|b| AddressBlock {
                height: b.height,
                hash: b.hash,
                status: b.status.as_str(),
                found_at: b.found_unix_s,
            })
            .collect())
    })?;
    if workers.is_empty() && blocks.is_empty() {
        return Err(ApiError::not_found("no worker or block for that address"));
    }
    let mut sums = [Tally::default(); 4];
    for t in &tallies {
        for (sum, one) in sums.iter_mut().zip(t) {
            add(sum, one);
        }
    }
    let hashrate = Windows::of(state.info.min_difficulty, |secs| match secs {
        60 => sums[0],
        600 => sums[1],
        3600 => sums[2],
        _ => sums[3],
    });
    let best = workers.iter().map(|w| w.best_all_time).fold(0.0, f64::max);
    Ok(AddressResponse {
        address: address.to_owned(),
        hashrate,
        workers,
        best_all_time: best,
        blocks,
    })
}
