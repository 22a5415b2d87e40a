//! The admin endpoints (see the parent module).

use std::net::SocketAddr;
use std::sync::Arc;

use axum::{
    Extension, Json,
    extract::{ConnectInfo, Path, Query, State, rejection::JsonRejection},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use super::{Caller, Secret, blocking, body};
use crate::{
    api::{ApiError, ApiState, Encoded, ErrorBody, Scheme, now_s},
    auth::{NewSession, Scope, SetupRequest, clear_cookie},
};

/// Audit rows one page holds at most.
const AUDIT_PAGE_MAX: usize = 200;

type Peer = ConnectInfo<SocketAddr>;

/// `POST /api/v1/setup` and `POST /api/v1/auth/login`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct Credentials {
    /// The admin's name.
    pub username: String,
    /// The password.
    pub password: String,
    /// The one-time setup token from the log (setup from a non-loopback address only).
    #[serde(default)]
    pub setup_token: Option<String>,
}

/// The first step of setup: the TOTP secret to enrol.
#[derive(Debug, Serialize, ToSchema)]
pub struct SetupStarted {
    /// Pass to `/api/v1/setup/confirm` with a code.
    pub ticket: Secret,
    /// Until when the ticket holds, Unix seconds.
    pub expires_at: i64,
    /// `otpauth://` URI for the authenticator app (as a QR code).
    pub otpauth_uri: Secret,
    /// The same secret for typing in.
    pub secret_base32: Secret,
}

/// A ticket and a code (`/setup/confirm`, `/auth/totp`, `/auth/recovery`).
#[derive(Debug, Deserialize, ToSchema)]
pub struct TicketCode {
    /// The ticket of the first step (`ticket` of setup, `mfa_token` of login).
    #[serde(alias = "mfa_token")]
    pub ticket: String,
    /// A TOTP code, or a recovery code on `/auth/recovery`.
    pub code: String,
}

/// A code alone (`/auth/step-up`, `/auth/totp/confirm`).
#[derive(Debug, Deserialize, ToSchema)]
pub struct Code {
    /// A TOTP code.
    pub code: String,
}

/// The password step passed.
#[derive(Debug, Serialize, ToSchema)]
pub struct MfaNeeded {
    /// Pass to `/api/v1/auth/totp` or `/api/v1/auth/recovery` with a code.
    pub mfa_token: Secret,
    /// Until when, Unix seconds.
    pub expires_at: i64,
}

/// A session opened: the cookie is in `Set-Cookie`; echo `csrf_token` in `x-csrf-token`.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionOpened {
    /// The CSRF token of this session.
    pub csrf_token: Secret,
    /// When the session ends at the latest, Unix seconds.
    pub expires_at: i64,
    /// Recovery codes, shown once (setup only).
    pub recovery_codes: Option<Vec<Secret>>,
}

/// Whether the request came over HTTPS (its cookies then get `Secure`).
fn over_https(scheme: Option<&Extension<Scheme>>) -> bool {
    scheme.is_some_and(|Extension(s)| *s == Scheme::Https)
}

fn session_response(session: &NewSession, codes: Option<Vec<Secret>>, secure: bool) -> Response {
    let cookie = session.set_cookie(secure);
    let mut response = Json(SessionOpened {
        csrf_token: Secret::from(&session.csrf_token),
        expires_at: session.expires_unix_s,
        recovery_codes: codes,
    })
    .into_response();
    if let Ok(value) = HeaderValue::from_str(cookie.expose()) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    response
        .headers_mut()
        .insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
    response
}

/// First-run setup, step 1: an admin's name and password, and a TOTP secret to enrol.
#[utoipa::path(post, path = "/api/v1/setup", tag = "admin", request_body = Credentials,
    responses(
        (status = 200, description = "Enrol the secret, then confirm a code", body = SetupStarted),
        (status = 400, description = "A weak password or a bad name", body = ErrorBody),
        (status = 403, description = "Not loopback, no setup token", body = ErrorBody),
        (status = 409, description = "An admin exists already", body = ErrorBody)))]
pub async fn setup(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    json: Result<Json<Credentials>, JsonRejection>,
) -> Result<Encoded, ApiError> {
    let c = body(json)?;
    let caller = Caller::of(peer, &headers);
    state
        .query(move |s| {
            let request = SetupRequest {
                username: &c.username,
                password: &c.password,
                setup_token: c.setup_token.as_deref(),
            };
            let e = s.auth()?.begin_setup(request, caller.info(now_s()))?;
            Ok(SetupStarted {
                ticket: Secret::from(&e.ticket),
                expires_at: e.expires_unix_s,
                otpauth_uri: Secret::from(&e.totp.otpauth_uri),
                secret_base32: Secret::from(&e.totp.secret_base32),
            })
        })
        .await
}

/// First-run setup, step 2: a code from the new secret; the admin exists from now on.
#[utoipa::path(post, path = "/api/v1/setup/confirm", tag = "admin", request_body = TicketCode,
    responses(
        (status = 200, description = "Signed in; recovery codes shown once", body = SessionOpened),
        (status = 401, description = "A wrong code or a dead ticket", body = ErrorBody)))]
pub async fn setup_confirm(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    scheme: Option<Extension<Scheme>>,
    json: Result<Json<TicketCode>, JsonRejection>,
) -> Result<Response, ApiError> {
    let t = body(json)?;
    let caller = Caller::of(peer, &headers);
    let done = blocking(&state, move |s| {
        Ok(s.auth()?
            .finish_setup(&t.ticket, &t.code, caller.info(now_s()))?)
    })
    .await?;
    let codes = done
        .recovery_codes
        .codes()
        .iter()
        .map(Secret::from)
        .collect();
    Ok(session_response(
        &done.session,
        Some(codes),
        over_https(scheme.as_ref()),
    ))
}

/// Login, step 1: the password.
#[utoipa::path(post, path = "/api/v1/auth/login", tag = "admin", request_body = Credentials,
    responses(
        (status = 200, description = "Now a TOTP or recovery code", body = MfaNeeded),
        (status = 401, description = "Wrong name or password", body = ErrorBody),
        (status = 429, description = "Locked out; see Retry-After", body = ErrorBody)))]
pub async fn login(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    json: Result<Json<Credentials>, JsonRejection>,
) -> Result<Encoded, ApiError> {
    let c = body(json)?;
    let caller = Caller::of(peer, &headers);
    state
        .query(move |s| {
            let t = s
                .auth()?
                .login(&c.username, &c.password, caller.info(now_s()))?;
            Ok(MfaNeeded {
                mfa_token: Secret::from(&t.ticket),
                expires_at: t.expires_unix_s,
            })
        })
        .await
}

/// Login, step 2: a TOTP code.
#[utoipa::path(post, path = "/api/v1/auth/totp", tag = "admin", request_body = TicketCode,
    responses(
        (status = 200, description = "Signed in (cookie set)", body = SessionOpened),
        (status = 401, description = "Wrong or replayed code, dead ticket", body = ErrorBody),
        (status = 429, description = "Locked out; see Retry-After", body = ErrorBody)))]
pub async fn totp(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    scheme: Option<Extension<Scheme>>,
    json: Result<Json<TicketCode>, JsonRejection>,
) -> Result<Response, ApiError> {
    let t = body(json)?;
    let caller = Caller::of(peer, &headers);
    let session = blocking(&state, move |s| {
        Ok(s.auth()?
            .complete_totp(&t.ticket, &t.code, caller.info(now_s()))?)
    })
    .await?;
    Ok(session_response(
        &session,
        None,
        over_https(scheme.as_ref()),
    ))
}

/// Login, step 2 without the device: a one-time recovery code.
#[utoipa::path(post, path = "/api/v1/auth/recovery", tag = "admin", request_body = TicketCode,
    responses(
        (status = 200, description = "Signed in (cookie set)", body = SessionOpened),
        (status = 401, description = "A wrong or used code, or a dead ticket", body = ErrorBody)))]
pub async fn recovery(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    scheme: Option<Extension<Scheme>>,
    json: Result<Json<TicketCode>, JsonRejection>,
) -> Result<Response, ApiError> {
    let t = body(json)?;
    let caller = Caller::of(peer, &headers);
    let session = blocking(&state, move |s| {
        Ok(s.auth()?
            .recover(&t.ticket, &t.code, caller.info(now_s()))?)
    })
    .await?;
    Ok(session_response(
        &session,
        None,
        over_https(scheme.as_ref()),
    ))
}

/// Ends this session.
#[utoipa::path(post, path = "/api/v1/auth/logout", tag = "admin", responses(
    (status = 204, description = "Signed out (cookie cleared)"),
    (status = 401, description = "No session", body = ErrorBody),
    (status = 403, description = "No CSRF header", body = ErrorBody)))]
pub async fn logout(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    scheme: Option<Extension<Scheme>>,
) -> Result<Response, ApiError> {
    let caller = Caller::of(peer, &headers);
    blocking(&state, move |s| {
        let p = caller.principal(s, Scope::Read, true)?;
        Ok(s.auth()?.logout(&p, caller.info(now_s()))?)
    })
    .await?;
    let mut response = StatusCode::NO_CONTENT.into_response();
    if let Ok(value) = HeaderValue::from_str(&clear_cookie(over_https(scheme.as_ref()))) {
        response.headers_mut().insert(header::SET_COOKIE, value);
    }
    Ok(response)
}

/// Re-authenticates this session for sensitive changes (a TOTP code).
#[utoipa::path(post, path = "/api/v1/auth/step-up", tag = "admin", request_body = Code,
    responses(
        (status = 204, description = "Sensitive changes allowed for a while"),
        (status = 401, description = "A wrong or replayed code", body = ErrorBody)))]
pub async fn step_up(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    json: Result<Json<Code>, JsonRejection>,
) -> Result<StatusCode, ApiError> {
    let c = body(json)?;
    let caller = Caller::of(peer, &headers);
    blocking(&state, move |s| {
        let p = caller.principal(s, Scope::Admin, true)?;
        Ok(s.auth()?.step_up(&p, &c.code, caller.info(now_s()))?)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// One session of the admin.
#[derive(Debug, Serialize, ToSchema)]
pub struct SessionRow {
    /// Its id.
    pub id: i64,
    /// The browser it was opened from.
    pub user_agent: Option<String>,
    /// The address it was opened from.
    pub ip: Option<String>,
    /// When opened, Unix seconds.
    pub created_at: i64,
    /// When last used.
    pub last_seen_at: i64,
    /// This request's session.
    pub current: bool,
}

/// The admin's sessions.
#[utoipa::path(get, path = "/api/v1/auth/sessions", tag = "admin", responses(
    (status = 200, description = "Open sessions", body = Vec<SessionRow>),
    (status = 401, description = "Not signed in", body = ErrorBody)))]
pub async fn sessions(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
) -> Result<Encoded, ApiError> {
    let caller = Caller::of(peer, &headers);
    state
        .query(move |s| {
            let p = caller.principal(s, Scope::Admin, false)?;
            let rows = s.auth()?.sessions(&p, caller.info(now_s()))?;
            Ok(rows
                .into_iter()
                .map(|r| SessionRow {
                    id: r.id,
                    user_agent: r.user_agent,
                    ip: r.ip,
                    created_at: r.created_unix_s,
                    last_seen_at: r.last_seen_unix_s,
                    current: r.current,
                })
                .collect::<Vec<_>>())
        })
        .await
}

/// Revokes one session (at once).
#[utoipa::path(delete, path = "/api/v1/auth/sessions/{id}", tag = "admin",
    params(("id" = i64, Path, description = "The session's id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such session", body = ErrorBody)))]
pub async fn revoke_session(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    let caller = Caller::of(peer, &headers);
    blocking(&state, move |s| {
        let p = caller.principal(s, Scope::Admin, true)?;
        Ok(s.auth()?.revoke_session(&p, id, caller.info(now_s()))?)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// A TOTP secret to enrol (re-enrolment).
#[derive(Debug, Serialize, ToSchema)]
pub struct TotpEnrolled {
    /// `otpauth://` URI for the authenticator app (as a QR code).
    pub otpauth_uri: Secret,
    /// The same secret for typing in.
    pub secret_base32: Secret,
}

/// A new TOTP secret to enrol (re-enrolment; needs a recent step-up).
#[utoipa::path(post, path = "/api/v1/auth/totp/enroll", tag = "admin", responses(
    (status = 200, description = "Enrol, then confirm a code", body = TotpEnrolled),
    (status = 403, description = "A step-up is needed first", body = ErrorBody)))]
pub async fn totp_enroll(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
) -> Result<Encoded, ApiError> {
    let caller = Caller::of(peer, &headers);
    state
        .query(move |s| {
            let p = caller.principal(s, Scope::Admin, true)?;
            let e = s.auth()?.enroll_totp(&p, caller.info(now_s()))?;
            Ok(TotpEnrolled {
                otpauth_uri: Secret::from(&e.otpauth_uri),
                secret_base32: Secret::from(&e.secret_base32),
            })
        })
        .await
}

/// Confirms the new TOTP secret with a code from it; new recovery codes, shown once.
#[utoipa::path(post, path = "/api/v1/auth/totp/confirm", tag = "admin", request_body = Code,
    responses(
        (status = 200, description = "The new recovery codes", body = Vec<Secret>),
        (status = 401, description = "A wrong code", body = ErrorBody),
        (status = 409, description = "No enrolment pending", body = ErrorBody)))]
pub async fn totp_confirm(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    json: Result<Json<Code>, JsonRejection>,
) -> Result<Encoded, ApiError> {
    let c = body(json)?;
    let caller = Caller::of(peer, &headers);
    state
        .query(move |s| {
            let p = caller.principal(s, Scope::Admin, true)?;
            let codes = s.auth()?.confirm_totp(&p, &c.code, caller.info(now_s()))?;
            Ok(codes.codes().iter().map(Secret::from).collect::<Vec<_>>())
        })
        .await
}

/// One API token (its secret is never shown again).
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenRow {
    /// Its id.
    pub id: i64,
    /// Its name.
    pub name: String,
    /// `read`, `metrics` or `admin`.
    pub scope: &'static str,
    /// Its first characters, to recognise it.
    pub hint: String,
    /// Who made it.
    pub created_by: String,
    /// When, Unix seconds.
    pub created_at: i64,
    /// When last used.
    pub last_used_at: Option<i64>,
}

fn token_row(t: crate::auth::TokenInfo) -> TokenRow {
    TokenRow {
        id: t.id,
        name: t.name,
        scope: t.scope.as_str(),
        hint: t.hint,
        created_by: t.created_by,
        created_at: t.created_unix_s,
        last_used_at: t.last_used_unix_s,
    }
}

/// The API tokens.
#[utoipa::path(get, path = "/api/v1/admin/tokens", tag = "admin", responses(
    (status = 200, description = "Every token", body = Vec<TokenRow>),
    (status = 401, description = "Not signed in", body = ErrorBody)))]
pub async fn tokens(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
) -> Result<Encoded, ApiError> {
    let caller = Caller::of(peer, &headers);
    state
        .query(move |s| {
            let p = caller.principal(s, Scope::Admin, false)?;
            let rows = s.auth()?.tokens(&p, caller.info(now_s()))?;
            Ok(rows.into_iter().map(token_row).collect::<Vec<_>>())
        })
        .await
}

/// `POST /api/v1/admin/tokens`.
#[derive(Debug, Deserialize, ToSchema)]
pub struct NewTokenRequest {
    /// A name for it.
    pub name: String,
    /// `read`, `metrics` or `admin`.
    pub scope: String,
}

/// A token made: its text, shown this once.
#[derive(Debug, Serialize, ToSchema)]
pub struct TokenCreated {
    /// The token.
    pub token: TokenRow,
    /// Its secret text (`wpt_…`): store it now.
    pub text: Secret,
}

/// Makes an API token (a session with a recent step-up).
#[utoipa::path(post, path = "/api/v1/admin/tokens", tag = "admin", request_body = NewTokenRequest,
    responses(
        (status = 200, description = "The token, shown once", body = TokenCreated),
        (status = 403, description = "Step-up needed, or a token asked", body = ErrorBody)))]
pub async fn create_token(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    json: Result<Json<NewTokenRequest>, JsonRejection>,
) -> Result<Encoded, ApiError> {
    let r = body(json)?;
    let caller = Caller::of(peer, &headers);
    state
        .query(move |s| {
            let scope: Scope = r.scope.parse()?;
            let p = caller.principal(s, Scope::Admin, true)?;
            let t = s
                .auth()?
                .create_token(&p, &r.name, scope, caller.info(now_s()))?;
            Ok(TokenCreated {
                text: Secret::from(&t.text),
                token: token_row(t.info),
            })
        })
        .await
}

/// Revokes an API token (at once).
#[utoipa::path(delete, path = "/api/v1/admin/tokens/{id}", tag = "admin",
    params(("id" = i64, Path, description = "The token's id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 404, description = "No such token", body = ErrorBody)))]
pub async fn revoke_token(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    Path(id): Path<i64>,
) -> Result<StatusCode, ApiError> {
    let caller = Caller::of(peer, &headers);
    blocking(&state, move |s| {
        let p = caller.principal(s, Scope::Admin, true)?;
        Ok(s.auth()?.revoke_token(&p, id, caller.info(now_s()))?)
    })
    .await?;
    Ok(StatusCode::NO_CONTENT)
}

/// `cursor` and `limit` of the audit log.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct AuditQuery {
    /// The `next_cursor` of the previous page.
    pub cursor: Option<i64>,
    /// Rows, 1..=200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<usize>,
}

/// One audit row.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditRow {
    /// Its id.
    pub id: i64,
    /// When, Unix seconds.
    pub at: i64,
    /// Who (`admin:<name>`, `token:<id>`, `anonymous`, `cli`).
    pub actor: String,
    /// What (`login`, `token.create`, …).
    pub action: String,
    /// On what.
    pub target: Option<String>,
    /// Before the change (JSON text).
    pub before: Option<String>,
    /// After it (JSON text).
    pub after: Option<String>,
}

/// A page of the audit log.
#[derive(Debug, Serialize, ToSchema)]
pub struct AuditPageView {
    /// Newest first.
    pub rows: Vec<AuditRow>,
    /// For the next page.
    pub next_cursor: Option<i64>,
}

/// The audit log, newest first.
#[utoipa::path(get, path = "/api/v1/admin/audit", tag = "admin", params(AuditQuery), responses(
    (status = 200, description = "A page", body = AuditPageView),
    (status = 401, description = "Not signed in", body = ErrorBody)))]
pub async fn audit(
    State(state): State<Arc<ApiState>>,
    ConnectInfo(peer): Peer,
    headers: HeaderMap,
    Query(q): Query<AuditQuery>,
) -> Result<Encoded, ApiError> {
    let limit = q.limit.unwrap_or(50);
    if !(1..=AUDIT_PAGE_MAX).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be 1..={AUDIT_PAGE_MAX}"
        )));
    }
    let caller = Caller::of(peer, &headers);
    state
        .query(move |s| {
            let p = caller.principal(s, Scope::Admin, false)?;
            let page = s
                .auth()?
                .audit_log(&p, q.cursor, limit, caller.info(now_s()))?;
            let text = |v: Option<serde_json::Value>| v.map(|v| v.to_string());
            Ok(AuditPageView {
                rows: page
                    .records
                    .into_iter()
                    .map(|r| AuditRow {
                        id: r.id,
                        at: r.time_unix_s,
                        actor: r.actor,
                        action: r.action,
                        target: r.target,
                        before: text(r.before),
                        after: text(r.after),
                    })
                    .collect(),
                next_cursor: page.next_cursor,
            })
        })
        .await
}
