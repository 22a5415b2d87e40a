//! Address bans: `GET|POST /api/v1/admin/bans`, `DELETE /api/v1/admin/bans/{id}` (see
//! [`crate::bans`]). A change is stored and audited in one transaction, then the data plane
//! gets the new list (it closes the live connections of a newly banned address).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::{
    Json,
    extract::{ConnectInfo, Path, State, rejection::JsonRejection},
    http::{HeaderMap, StatusCode},
};
use serde::{Deserialize, Serialize};
use serde_json::json;
use utoipa::ToSchema;
use warppool_core::limits::BANS_MAX;

use super::{Caller, blocking, body};
use crate::{
    api::{ApiError, ApiState, Encoded, ErrorBody, now_s},
    auth::{AuthError, Change, Outcome, Scope},
    bans::{self, BanError, BanRecord, NewBan},
};

type Peer = ConnectInfo<SocketAddr>;

/// One ban.
#[derive(Debug, Serialize, ToSchema)]
pub struct BanRow {
    /// Its id.
    pub id: i64,
    /// The banned network (`203.0.113.7/32`, `2001:db8::/32`).
    pub network: String,
    /// Why.
    pub reason: String,
    /// Who banned it.
    pub created_by: String,
    /// When, Unix seconds.
    pub created_at: i64,
    /// When it ends, Unix seconds (exclusive); `null`: never.
    pub until: Option<i64>,
}

impl From<&BanRecord> for BanRow {
    fn from(b: &BanRecord) -> Self {
        Self {
            id: b.id,
            network: b.network(),
            reason: b.reason.clone(),
            created_by: b.created_by.clone(),
            created_at: b.created_unix_s,
            until: b.until_unix_s,
        }
    }
}

/// The bans in force.
#[derive(Debug, Serialize, ToSchema)]
pub struct BansView {
    /// Oldest first.
    pub bans: Vec<BanRow>,
    /// Most bans in force at once (`BANS_MAX`).
    pub max: usize,
}

/// `POST /api/v1/admin/bans`.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct NewBanRequest {
    /// An address, or a network with its prefix (`203.0.113.0/24`).
    pub ip: String,
    /// Why (at most 256 bytes).
    #[serde(default)]
    pub reason: Option<String>,
    /// When it ends, Unix seconds, in the future; absent: never.
    #[serde(default)]
    pub until: Option<i64>,
}

impl From<BanError> for ApiError {
    fn from(e: BanError) -> Self {
        match e {
            BanError::Invalid(message) => ApiError::bad_request(message),
            BanError::Full => ApiError::new(StatusCode::CONFLICT, "BANS_FULL", e.to_string()),
            BanError::Exists { .. } => {
                ApiError::new(StatusCode::CONFLICT, "BAN_EXISTS", e.to_string())
            }
        }
    }
}

/// Loads the bans in force and hands them to the data plane, under the store's lock, so
/// concurrent changes reach the plane in the order they were stored.
fn publish(s: &ApiState) -> Result<usize, ApiError> {
    let plane = s.plane()?;
    let n = s.auth()?.store().with_connection(|c| {
        let records = bans::load(c, now_s())?;
        plane.set_bans(bans::ban_list(&records));
        Ok(records.len())
    });
    n.map_err(|e| ApiError::from(AuthError::from(e)))
}

/// The bans in force (expired ones are pruned).
#[utoipa::path(get, path = "/api/v1/admin/bans", tag = "admin", responses(
    (status = 200, description = "The bans", body = BansView),
    (status = 401, description = "Not signed in", body = ErrorBody)))]
pub async fn bans(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
) -> Result<Encoded, ApiError> {
    let caller = Caller::of(peer, &headers);
    state
        .query(move |s| {
            caller.principal(s, Scope::Admin, false)?;
            let records = s
                .auth()?
                .store()
                .with_connection(|c| bans::load(c, now_s()))
                .map_err(|e| ApiError::from(AuthError::from(e)))?;
            Ok(BansView {
                bans: records.iter().map(BanRow::from).collect(),
                max: BANS_MAX,
            })
        })
        .await
}

/// Bans an address or a network: its live connections close, new ones are refused at accept
/// until it ends or is lifted.
#[utoipa::path(post, path = "/api/v1/admin/bans", tag = "admin", request_body = NewBanRequest,
    responses(
        (status = 201, description = "Banned", body = BanRow),
        (status = 400, description = "Bad address, reason or expiry", body = ErrorBody),
        (status = 409, description = "Banned already, or BANS_MAX in force", body = ErrorBody)))]
pub async fn create_ban(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    json: Result<Json<NewBanRequest>, JsonRejection>,
) -> Result<(StatusCode, Encoded), ApiError> {
    let r = body(json)?;
    let caller = Caller::of(peer, &headers);
    let encoded = state
        .query(move |s| {
            let p = caller.principal(s, Scope::Admin, true)?;
            let now = now_s();
            let ban = NewBan::parse(&r.ip, r.reason, r.until, now)?;
            s.plane()?;
            let actor = p.actor();
            let stored = s.auth()?.audited(&p, caller.info(now), |tx| {
                let stored = match bans::insert(tx, &ban, &actor, now)? {
                    Ok(stored) => stored,
                    Err(refused) => return Ok(Err(refused)),
                };
                let after = json!({"network": stored.network(), "reason": stored.reason,
                    "until": stored.until_unix_s});
                let change = Change {
                    action: "ban.create".to_owned(),
                    target: Some(format!("ban:{}", stored.id)),
                    before: None,
                    after: Some(after),
                    outcome: Outcome::Ok,
                };
                Ok(Ok((stored, change)))
            })??;
            let in_force = publish(s)?;
            tracing::info!(actor = %actor, id = stored.id, network = %stored.network(),
                reason = %stored.reason, until = ?stored.until_unix_s, in_force, "address banned");
            Ok(BanRow::from(&stored))
        })
        .await?;
    Ok((StatusCode::CREATED, encoded))
}

/// Lifts a ban.
#[utoipa::path(delete, path = "/api/v1/admin/bans/{id}", tag = "admin",
    params(("id" = i64, Path, description = "The ban's id")),
    responses(
        (status = 204, description = "Lifted"),
        (status = 404, description = "No such ban in force", body = ErrorBody)))]
pub async fn delete_ban(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    let caller = Caller::of(peer, &headers);
    blocking(&state, move |s| {
        let p = caller.principal(s, Scope::Admin, true)?;
        let now = now_s();
        s.plane()?;
        let removed = s.auth()?.audited(&p, caller.info(now), |tx| {
            let Some(removed) = bans::remove(tx, id, now)? else {
                return Ok(Err(ApiError::not_found(format!("no ban {id} in force"))));
            };
            let before = json!({"network": removed.network(), "reason": removed.reason,
                "until": removed.until_unix_s});
            let change = Change {
                action: "ban.delete".to_owned(),
                target: Some(format!("ban:{id}")),
                before: Some(before),
                after: None,
                outcome: Outcome::Ok,
            };
            Ok(Ok((removed, change)))
        })??;
        publish(s)?;
        tracing::info!(actor = %p.actor(), id, network = %removed.network(), "ban lifted");
        Ok(())
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}
