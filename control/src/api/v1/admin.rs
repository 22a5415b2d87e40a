//! The admin API over [`crate::auth`]: first-run setup, login (password, then TOTP or a
//! recovery code), logout, step-up, sessions, API tokens, TOTP re-enrolment and the audit log.
//!
//! Every call runs on the API's query threads (argon2id and SQLite block). A caller is an admin
//! session (the HttpOnly cookie; unsafe methods also need the `x-csrf-token` header) or an API
//! token (`Authorization: Bearer wpt_…`, no CSRF: a token is not sent by browsers on its own).
//! Errors keep [`crate::auth::AuthError`]'s status and stable `auth.*` code; a lockout answers
//! 429 with `Retry-After`.

mod bans;
pub mod config;
mod connections;
mod handlers;

use std::net::SocketAddr;
use std::sync::Arc;

use axum::{
    Json,
    extract::rejection::JsonRejection,
    http::{HeaderMap, StatusCode, header},
};
use serde::Serialize;
use utoipa::ToSchema;

pub use self::bans::*;
pub use self::connections::*;
pub use self::handlers::*;
use crate::{
    api::{ApiError, ApiState, now_s},
    auth::{
        AuthError, CSRF_HEADER, Principal, RequestInfo, Scope, SecretText, bearer, session_cookie,
    },
};

impl From<AuthError> for ApiError {
    fn from(e: AuthError) -> Self {
        if !e.is_client_error() {
            tracing::warn!(error = %e, "admin auth failed on the server side");
        }
        let status = StatusCode::from_u16(e.status()).unwrap_or(StatusCode::INTERNAL_SERVER_ERROR);
        let mut error = Self::new(status, e.code(), e.to_string());
        error.retry_after = e.retry_after_secs();
        error
    }
}

/// A JSON body, or a 4xx that says what is wrong with it (413 past
/// `HTTP_REQUEST_BODY_BYTES_MAX`, 415 without a JSON content type, 400 otherwise).
///
/// # Errors
/// The body is not the JSON this endpoint takes.
pub fn body<T>(body: Result<Json<T>, JsonRejection>) -> Result<T, ApiError> {
    body.map(|Json(v)| v).map_err(|e| {
        let (status, code) = match e.status() {
            StatusCode::PAYLOAD_TOO_LARGE => (StatusCode::PAYLOAD_TOO_LARGE, "PAYLOAD_TOO_LARGE"),
            StatusCode::UNSUPPORTED_MEDIA_TYPE => {
                (StatusCode::UNSUPPORTED_MEDIA_TYPE, "UNSUPPORTED_MEDIA_TYPE")
            }
            // Malformed JSON and JSON of the wrong shape alike.
            _ => (StatusCode::BAD_REQUEST, "BAD_REQUEST"),
        };
        ApiError::new(status, code, e.body_text())
    })
}

/// A JSON object body as `T` (serde would also take a struct from an array of its fields;
/// the API documents objects, so anything else is 400), with [`body`]'s other refusals.
///
/// # Errors
/// The body is not a JSON object of this endpoint's shape.
pub fn object_body<T: serde::de::DeserializeOwned>(
    json: Result<Json<serde_json::Value>, JsonRejection>,
) -> Result<T, ApiError> {
    let value = body(json)?;
    if !value.is_object() {
        return Err(ApiError::bad_request("the body must be a JSON object"));
    }
    serde_json::from_value(value).map_err(|e| ApiError::bad_request(e.to_string()))
}

/// A secret as JSON (it leaves only to its owner, once).
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(transparent)]
pub struct Secret(pub String);

impl From<&SecretText> for Secret {
    fn from(s: &SecretText) -> Self {
        Self(s.expose().to_owned())
    }
}

/// What a request is, for the audit log and the rate limit.
#[derive(Debug, Clone)]
pub struct Caller {
    /// The peer.
    pub peer: SocketAddr,
    /// Its `User-Agent`, if any.
    pub user_agent: Option<String>,
    /// The session cookie, if any.
    pub cookie: Option<String>,
    /// The bearer token, if any.
    pub bearer: Option<String>,
    /// The `x-csrf-token` header, if any.
    pub csrf: Option<String>,
}

impl Caller {
    /// From a request's peer and headers.
    #[must_use]
    pub fn of(peer: SocketAddr, headers: &HeaderMap) -> Self {
        let text = |name: &str| headers.get(name).and_then(|v| v.to_str().ok());
        Self {
            peer,
            user_agent: text(header::USER_AGENT.as_str()).map(str::to_owned),
            cookie: text(header::COOKIE.as_str())
                .and_then(session_cookie)
                .map(str::to_owned),
            bearer: text(header::AUTHORIZATION.as_str())
                .and_then(bearer)
                .map(str::to_owned),
            csrf: text(CSRF_HEADER).map(str::to_owned),
        }
    }

    /// The audit/rate-limit facts of this request at `now`.
    #[must_use]
    pub fn info(&self, now: i64) -> RequestInfo<'_> {
        let info = RequestInfo::new(self.peer.ip(), now);
        match self.user_agent.as_deref() {
            Some(ua) => info.with_user_agent(ua),
            None => info,
        }
    }

    /// The admin behind this request, with `required` scope; `changes` (an unsafe method)
    /// needs the CSRF header of a session.
    ///
    /// # Errors
    /// 401 without or with a dead session or token, 403 for a missing scope or CSRF header.
    pub fn principal(
        &self,
        state: &ApiState,
        required: Scope,
        changes: bool,
    ) -> Result<Principal, ApiError> {
        let auth = state.auth()?;
        let now = now_s();
        let principal = match (&self.bearer, &self.cookie) {
            (Some(token), _) => auth.token(token, now)?,
            (None, Some(cookie)) => auth.session(cookie, now)?,
            (None, None) => return Err(AuthError::Unauthenticated.into()),
        };
        if changes {
            auth.check_csrf(&principal, self.csrf.as_deref(), self.info(now))?;
        }
        auth.require(&principal, required, self.info(now))?;
        Ok(principal)
    }
}

/// Runs `f` on a query thread and hands back its value (for answers that set headers).
///
/// # Errors
/// [`ApiError::busy`] when the queue is full; `f`'s error; 500 if it panicked.
pub async fn blocking<T: Send + 'static>(
    state: &Arc<ApiState>,
    f: impl FnOnce(&ApiState) -> Result<T, ApiError> + Send + 'static,
) -> Result<T, ApiError> {
    let s = Arc::clone(state);
    let result = state
        .queries
        .run(move || std::panic::catch_unwind(std::panic::AssertUnwindSafe(|| f(&s))))
        .await;
    match result {
        Ok(Ok(v)) => v,
        Ok(Err(_)) => Err(ApiError::internal("the handler panicked")),
        Err(busy) => Err(ApiError::busy(busy.to_string())),
    }
}
