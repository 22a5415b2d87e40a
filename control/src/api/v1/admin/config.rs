//! `GET/PUT /api/v1/admin/config`: the configuration by key, each marked live or restart,
//! changed with optimistic concurrency (`ETag` / `If-Match`; see [`crate::settings`]).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::Arc;

use axum::{
    Json,
    extract::{ConnectInfo, State, rejection::JsonRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use utoipa::ToSchema;

use super::{Caller, blocking, body};
use crate::{
    api::{ApiError, ApiState, Encoded, ErrorBody, now_s},
    auth::{Change, Outcome, Scope},
    config::Field,
    settings::{ChangeError, LiveConfig},
};

/// The configuration.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConfigView {
    /// Pass back in `If-Match` to change it (also the `ETag` header).
    pub etag: String,
    /// The profile in force.
    pub profile: String,
    /// Every key.
    pub fields: Vec<Field>,
    /// Keys whose stored value differs from the running one until the next start.
    pub restart_pending: Vec<String>,
}

/// `PUT /api/v1/admin/config`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct ConfigChange {
    /// Key → new value (`null` unsets the key: back to the profile or the default).
    #[schema(value_type = Object)]
    pub changes: BTreeMap<String, Value>,
}

/// A change made.
#[derive(Debug, Serialize, ToSchema)]
pub struct ConfigChanged {
    /// The new etag.
    pub etag: String,
    /// Keys in force now.
    pub applied_live: Vec<String>,
    /// Keys stored, in force after a restart.
    pub needs_restart: Vec<String>,
}

fn live(state: &ApiState) -> Result<&LiveConfig, ApiError> {
    state.config.as_deref().ok_or_else(|| {
        ApiError::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "CONFIG_UNAVAILABLE",
            "the running configuration is not available",
        )
    })
}

fn with_etag(mut response: Response, etag: &str) -> Response {
    if let Ok(v) = HeaderValue::from_str(etag) {
        response.headers_mut().insert(header::ETAG, v);
    }
    response
}

/// The configuration, key by key (admin).
#[utoipa::path(get, path = "/api/v1/admin/config", tag = "admin", responses(
    (status = 200, description = "Every key, with the etag (also in `ETag`)", body = ConfigView),
    (status = 401, description = "Not signed in", body = ErrorBody),
    (status = 403, description = "Not an admin", body = ErrorBody)))]
pub async fn config_get(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let caller = Caller::of(peer, &headers);
    let (etag, body) = blocking(&state, move |s| {
        caller.principal(s, Scope::Admin, false)?;
        let (config, etag, restart_pending) = live(s)?.snapshot();
        let view = ConfigView {
            etag: etag.clone(),
            profile: config.profile.name.to_owned(),
            fields: config.fields(),
            restart_pending,
        };
        Ok((etag, Encoded::json(&view)?))
    })
    .await?;
    Ok(with_etag(body.into_response(), &etag))
}

/// Changes keys (admin; `If-Match` with the etag; payout keys need a recent step-up).
#[utoipa::path(put, path = "/api/v1/admin/config", tag = "admin", request_body = ConfigChange,
    params(("If-Match" = Option<String>, Header,
        description = "The etag of the last GET (required: 428 without it)")),
    responses(
        (status = 200, description = "Stored; which keys are live now", body = ConfigChanged),
        (status = 400, description = "An unknown key or a value out of range", body = ErrorBody),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 403, description = "Not an admin, no CSRF header, or a step-up needed",
            body = ErrorBody),
        (status = 412, description = "Changed meanwhile; the current etag is in `ETag`",
            body = ErrorBody),
        (status = 428, description = "No `If-Match`", body = ErrorBody)))]
pub async fn config_put(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(peer): ConnectInfo<SocketAddr>,
    headers: HeaderMap,
    json: Result<Json<ConfigChange>, JsonRejection>,
) -> Result<Response, ApiError> {
    let caller = Caller::of(peer, &headers);
    let if_match = headers
        .get(header::IF_MATCH)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    let result = blocking(&state, move |s| {
        let principal = caller.principal(s, Scope::Admin, true)?;
        let change = body(json)?;
        let Some(if_match) = if_match else {
            return Err(ApiError::new(
                StatusCode::PRECONDITION_REQUIRED,
                "PRECONDITION_REQUIRED",
                "send If-Match with the etag of GET /api/v1/admin/config",
            ));
        };
        if change.changes.is_empty() {
            return Err(ApiError::bad_request("changes is empty"));
        }
        let live = live(s)?;
        let auth = s.auth()?;
        let now = now_s();
        let (current, _, _) = live.snapshot();
        if change.changes.keys().any(|k| current.needs_step_up(k)) {
            auth.require_step_up(&principal, caller.info(now))?;
        }
        let applied = match live.change(&if_match, &change.changes, &principal.actor(), now) {
            Ok(applied) => applied,
            Err(ChangeError::Stale { current }) => return Ok(Err(current)),
            Err(ChangeError::Invalid(e)) => {
                tracing::info!(actor = %principal.actor(), error = %e, "config change refused");
                return Err(ApiError::bad_request(e.to_string()));
            }
            Err(ChangeError::Storage(e)) => return Err(ApiError::internal(e.to_string())),
        };
        let audit = Change {
            action: "config.change".to_owned(),
            target: Some(change.changes.keys().cloned().collect::<Vec<_>>().join(",")),
            before: Some(serde_json::json!(applied.before)),
            after: Some(serde_json::json!(applied.after)),
            outcome: Outcome::Ok,
        };
        auth.record(Some(&principal), audit, caller.info(now))?;
        Ok(Ok(applied))
    })
    .await?;
    match result {
        Ok(applied) => {
            let body = Json(ConfigChanged {
                etag: applied.etag.clone(),
                applied_live: applied.applied_live,
                needs_restart: applied.needs_restart,
            });
            Ok(with_etag(body.into_response(), &applied.etag))
        }
        Err(current) => {
            let error = ApiError::new(
                StatusCode::PRECONDITION_FAILED,
                "PRECONDITION_FAILED",
                format!("the configuration changed meanwhile; the current etag is {current}"),
            );
            Ok(with_etag(error.into_response(), &current))
        }
    }
}
