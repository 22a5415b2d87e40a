//! `GET /api/v1/workers`, `GET /api/v1/workers/{id}` and `GET /api/v1/addresses/{address}`,
//! answered from the live table.

mod table;

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;

use axum::extract::{Extension, Path, Query, RawQuery, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};
use warppool_core::limits::{API_PAGE_ROWS_MAX, API_QUERY_TEXT_BYTES_MAX};

pub use self::table::{COLUMNS, Cell, Cursor, Key};
use self::table::{KeyRow, cells, column, first_n, key_row, payout_address};
use super::hashrate::point_hps;
use super::pool::{Odds, Windows, WorkerCounts, expected_block_s, odds};
use super::worker_hash;
use crate::{
    api::{ApiError, ApiState, Encoded, ErrorBody, Viewer, now_s, page_cache::Stamp},
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

/// What `group_by` groups on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum GroupBy {
    Status,
    Model,
    Firmware,
    Address,
}

impl GroupBy {
    fn parse(by: &str) -> Result<Self, ApiError> {
        Ok(match by {
            "status" => Self::Status,
            "model" => Self::Model,
            "firmware" => Self::Firmware,
            "address" => Self::Address,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "group_by must be status, model, firmware or address: {by:?}"
                )));
            }
        })
    }
}

/// The parsed query.
struct Plan {
    q: Option<String>,
    statuses: Option<Vec<WorkerStatus>>,
    group_by: Option<GroupBy>,
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
        group_by: query.group_by.as_deref().map(GroupBy::parse).transpose()?,
        sort_by,
        desc,
        limit,
        cursor,
        fields,
    })
}

/// Whether `hay` contains `needle` (already lowercased), ignoring case; without allocating
/// for ASCII text.
fn contains_folded(hay: &str, needle: &str) -> bool {
    if needle.is_empty() {
        true
    } else if hay.is_ascii() && needle.is_ascii() {
        hay.as_bytes()
            .windows(needle.len())
            .any(|w| w.eq_ignore_ascii_case(needle.as_bytes()))
    } else {
        hay.to_lowercase().contains(needle)
    }
}

/// Whether `q` is in the worker's name (as the viewer sees it: a visitor cannot find an
/// address by searching for parts of it), model or firmware.
fn matches_text(w: &LiveWorker, dev: &device::Device<'_>, q: &str, viewer: Viewer) -> bool {
    contains_folded(&viewer.name(&w.name), q)
        || contains_folded(dev.model, q)
        || dev.firmware.is_some_and(|f| contains_folded(f, q))
}

/// The workers table.
#[utoipa::path(get, path = "/api/v1/workers", tag = "workers", params(WorkersQuery), responses(
    (status = 200, description = "One page of workers", body = WorkersPage),
    (status = 400, description = "A bad filter, sort, limit or cursor", body = ErrorBody),
    (status = 503, description = "Busy", body = ErrorBody)))]
pub async fn list(
    State(state): State<Arc<ApiState>>,
    Extension(viewer): Extension<Viewer>,
    RawQuery(raw): RawQuery,
    Query(query): Query<WorkersQuery>,
) -> Result<Encoded, ApiError> {
    let plan = plan(&query)?;
    let raw = raw.unwrap_or_default();
    state
        .run(move |s| {
            let stamp = Stamp {
                second: now_s(),
                generation: s.recorder.live().generation(),
            };
            s.pages
                .get_or_compute(&raw, viewer.full(), stamp, || {
                    Encoded::json(&page(s, &query, &plan, viewer, stamp.second)?)
                        .map(Encoded::into_bytes)
                })
                .map(Encoded::from_bytes)
        })
        .await
}

/// What the first pass counts besides the key rows: the chips and the groups.
struct Tallies {
    by_status: WorkerCounts,
    by_model: BTreeMap<String, u64>,
    groups: Option<HashMap<String, Group>>,
}

impl Tallies {
    fn count_model(&mut self, model: &str) {
        match self.by_model.get_mut(model) {
            Some(n) => *n += 1,
            None => {
                self.by_model.insert(model.to_owned(), 1);
            }
        }
    }

    fn group(&mut self, key: &str, w: &LiveWorker, now: i64) {
        let Some(groups) = &mut self.groups else {
            return;
        };
        let rate = point_hps(&w.window(now, 600), w.difficulty);
        let g = match groups.get_mut(key) {
            Some(g) => g,
            None => groups.entry(key.to_owned()).or_insert(Group {
                key: key.to_owned(),
                count: 0,
                hashrate_m10: 0.0,
            }),
        };
        g.count += 1;
        g.hashrate_m10 += rate;
    }
}

fn page(
    state: &ApiState,
    query: &WorkersQuery,
    plan: &Plan,
    viewer: Viewer,
    now: i64,
) -> Result<WorkersPage, ApiError> {
    let mut keys: Vec<KeyRow> = Vec::new();
    let mut tallies = Tallies {
        by_status: WorkerCounts::default(),
        by_model: BTreeMap::new(),
        groups: plan.group_by.map(|_| HashMap::new()),
    };
    state.recorder.live().for_each_slot(|slot, w| {
        let dev = device::parse(w.user_agent.as_deref());
        let status = w.status(now);
        let base = plan
            .q
            .as_deref()
            .is_none_or(|q| matches_text(w, &dev, q, viewer))
            && query
                .address
                .as_deref()
                .is_none_or(|a| a == payout_address(&w.name));
        let model_ok = query.model.as_deref().is_none_or(|m| m == dev.model);
        let status_ok = plan.statuses.as_ref().is_none_or(|s| s.contains(&status));
        if base && model_ok {
            tallies.by_status.add(status);
        }
        if base && status_ok {
            tallies.count_model(dev.model);
        }
        if base && model_ok && status_ok {
            match plan.group_by {
                Some(GroupBy::Status) => tallies.group(status.as_str(), w, now),
                Some(GroupBy::Model) => tallies.group(dev.model, w, now),
                Some(GroupBy::Firmware) => tallies.group(dev.firmware.unwrap_or_default(), w, now),
                Some(GroupBy::Address) => {
                    tallies.group(&viewer.address(payout_address(&w.name)), w, now);
                }
                None => {}
            }
            keys.push(key_row(w, slot, now, viewer, plan.sort_by));
        }
    });
    let total = keys.len() as u64;
    let (rows, next_cursor) = page_of(state, keys, plan, now, viewer);
    let groups = tallies.groups.map(|g| {
        let mut out: Vec<Group> = g.into_values().collect();
        out.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.key.cmp(&b.key)));
        out
    });
    Ok(WorkersPage {
        total,
        counts: Counts {
            by_status: tallies.by_status,
            by_model: tallies.by_model,
        },
        columns: plan.fields.iter().map(|&i| COLUMNS[i]).collect(),
        rows,
        next_cursor,
        groups,
    })
}

/// The page after the plan's cursor of the matching `keys`, made whole, and the cursor of the
/// next page (kept from the first pass's key, so no row is repeated or skipped).
fn page_of(
    state: &ApiState,
    keys: Vec<KeyRow>,
    plan: &Plan,
    now: i64,
    viewer: Viewer,
) -> (Vec<Vec<Cell>>, Option<String>) {
    let after: Vec<KeyRow> = match &plan.cursor {
        Some(c) => keys.into_iter().filter(|k| c.is_before(k)).collect(),
        None => keys,
    };
    let mut page = first_n(after, plan.limit + 1, plan.desc);
    let more = page.len() > plan.limit;
    page.truncate(plan.limit);
    let next_cursor = page
        .last()
        .filter(|_| more)
        .map(|last| Cursor::after(last, plan.sort_by, plan.desc).encode());
    // The page's rows made whole (the cursor keeps the first pass's key; a worker gone since
    // that pass, or whose slot another worker took, is left out).
    let slots: Vec<usize> = page.iter().map(|k| k.slot).collect();
    let mut rows = Vec::with_capacity(page.len());
    state.recorder.live().with_slots(&slots, |i, w| {
        if worker_hash(&w.name) == page[i].id {
            rows.push(cells(w, now, viewer, &plan.fields));
        }
    });
    (rows, next_cursor)
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
