//! `GET /health` and `GET /api/v1/status`.

use std::sync::Arc;

use axum::{Json, extract::State};
use serde::Serialize;
use utoipa::ToSchema;

use crate::{
    api::{ApiError, ApiState, Encoded, ErrorBody, now_s},
    block_status::BlockStatus,
    health::{Facts, HealthView},
};

/// Blocks read to find unconfirmed and rejected ones for health.
const HEALTH_BLOCKS_READ: usize = 50;
/// Seconds a rejected block keeps `BLOCK_SUBMIT_FAILED` raised.
const REJECTED_BLOCK_RAISED_SECS: i64 = 86_400;

/// `GET /health`.
#[derive(Debug, Serialize, ToSchema)]
pub struct HealthResponse {
    /// `ok` while work is handed out, `gated` while it is withheld.
    pub status: &'static str,
    /// Why work is withheld.
    pub reason: Option<String>,
}

/// The template the pool hands out work from.
#[derive(Debug, Serialize, ToSchema)]
pub struct TemplateView {
    /// Block height being mined.
    pub height: u32,
    /// Previous block hash (display order, hex).
    pub prev_hash: String,
    /// Network difficulty.
    pub network_difficulty: f64,
    /// Seconds since this template generation was published.
    pub age_s: u64,
    /// Transactions besides the coinbase.
    pub tx_count: usize,
    /// Their fees, satoshis.
    pub fees_sats: u64,
    /// Subsidy plus fees, satoshis.
    pub coinbase_value_sats: u64,
}

/// `GET /api/v1/status`.
#[derive(Debug, Serialize, ToSchema)]
pub struct StatusResponse {
    /// WarpPool's version.
    pub version: &'static str,
    /// `bitcoin`, `testnet`, `testnet4`, `signet` or `regtest`.
    pub network: String,
    /// Seconds since start.
    pub uptime_s: i64,
    /// Started by `warppool demo` (simulated chain and miners).
    pub demo: bool,
    /// The profile in force (`small`, `medium`, `large`, `enterprise`).
    pub profile: Option<&'static str>,
    /// The current template, once one arrived.
    pub template: Option<TemplateView>,
    /// Why work is withheld, if it is.
    pub gate: Option<String>,
    /// The pool's conditions.
    pub health: HealthView,
}

/// Whether work is handed out.
#[utoipa::path(get, path = "/health", tag = "status",
    responses((status = 200, description = "Work is handed out or gated", body = HealthResponse)))]
pub async fn health(State(state): State<Arc<ApiState>>) -> Json<HealthResponse> {
    let gate = state.status.borrow().gate.clone();
    Json(HealthResponse {
        status: if gate.is_some() { "gated" } else { "ok" },
        reason: gate,
    })
}

/// Version, network, template and health.
#[utoipa::path(get, path = "/api/v1/status", tag = "status", responses(
    (status = 200, description = "The pool's status", body = StatusResponse),
    (status = 503, description = "Busy or storage unreadable", body = ErrorBody)))]
pub async fn status(State(state): State<Arc<ApiState>>) -> Result<Encoded, ApiError> {
    state.query(status_of).await
}

pub(crate) fn status_of(state: &ApiState) -> Result<StatusResponse, ApiError> {
    let now = now_s();
    let status = state.status.borrow().clone();
    let age_s = {
        let mut seen = state
            .template_seen
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if seen.0 != status.generation {
            *seen = (status.generation, std::time::Instant::now());
        }
        seen.1.elapsed().as_secs()
    };
    let template = status
        .template
        .zip(status.height)
        .map(|(t, height)| TemplateView {
            height,
            prev_hash: warppool_core::hex::encode(&t.prev_hash),
            network_difficulty: t.network_difficulty,
            age_s,
            tx_count: t.tx_count,
            fees_sats: t.fees_sats,
            coinbase_value_sats: t.coinbase_value_sats,
        });
    let health = health_of(state, &status, now)?;
    Ok(StatusResponse {
        version: state.info.version,
        network: state.info.network.to_string(),
        uptime_s: now - state.info.started_at,
        demo: state.info.demo,
        profile: state
            .config
            .as_deref()
            .map(crate::settings::LiveConfig::profile),
        template,
        gate: status.gate,
        health,
    })
}

/// The pool's health now (also embedded in other answers).
///
/// # Errors
/// Storage could not be read.
pub fn health_of(
    state: &ApiState,
    status: &crate::templates::TemplateStatus,
    now: i64,
) -> Result<HealthView, ApiError> {
    let live = state.recorder.live();
    let mut connected = 0;
    live.for_each(|w| connected += usize::from(w.connections > 0));
    let (hour, ten) = live.with_pool(|p| {
        (
            p.minutes.window(now, 3600, live.started_at()),
            p.minutes.window(now, 600, live.started_at()),
        )
    });
    let blocks = state.with_reader(|r| Ok(r.blocks(HEALTH_BLOCKS_READ)?))?;
    let unconfirmed = blocks
        .iter()
        .filter(|b| matches!(b.status, BlockStatus::Found | BlockStatus::Submitted))
        .map(|b| (b.height, b.found_unix_s))
        .collect();
    let rejected = blocks
        .iter()
        .filter(|b| b.status == BlockStatus::Rejected)
        .filter(|b| now - b.updated_unix_s < REJECTED_BLOCK_RAISED_SECS)
        .map(|b| (b.height, "rejected".to_owned()))
        .collect();
    let facts = Facts {
        now,
        gate: status.gate.clone(),
        gate_kind: status.gate_kind,
        has_template: status.template.is_some(),
        template_time: status.template.map(|t| i64::from(t.curtime)),
        miners_connected: connected,
        hour_shares: hour.accepted,
        hashrate_h1: crate::live::hashes_per_second(hour.difficulty_sum, hour.secs),
        hashrate_m10: crate::live::hashes_per_second(ten.difficulty_sum, ten.secs),
        unconfirmed_blocks: unconfirmed,
        rejected_blocks: rejected,
        disk_free_bytes: disk_free(state.recorder.path()),
        demo: state.info.demo,
    };
    Ok(state.health.evaluate(&facts))
}

/// Free bytes on the file system holding `path` (`statvfs`), if it can be read.
fn disk_free(path: &std::path::Path) -> Option<u64> {
    use std::os::unix::ffi::OsStrExt;
    let dir = path.parent().filter(|p| !p.as_os_str().is_empty())?;
    let c = std::ffi::CString::new(dir.as_os_str().as_bytes()).ok()?;
    let mut st = std::mem::MaybeUninit::<libc::statvfs>::uninit();
    // SAFETY: `c` is a NUL-terminated path that outlives the call; `st` is written by statvfs
    // before it is read, and only read when the call succeeded.
    let st = unsafe {
        if libc::statvfs(c.as_ptr(), st.as_mut_ptr()) != 0 {
            return None;
        }
        st.assume_init()
    };
    Some(st.f_bavail.saturating_mul(st.f_frsize))
}
