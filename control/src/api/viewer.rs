//! Who is looking at the public pages, and what they may see (`[ui]` in the configuration).
//!
//! - `ui.public = true` (the default): anyone reaches the read endpoints; with
//!   `ui.public = false` they need an admin session, a `read` token or an `admin` token
//!   (401 `AUTH_REQUIRED` otherwise). `/health`, the OpenAPI document and the admin flows
//!   stay reachable; `/metrics` has its own rule.
//! - Payout addresses leave masked (`bc1qw5…t080.rig1`) unless the caller is an admin (a
//!   session or an `admin` token) or the operator sets `ui.show_addresses = true`. The live
//!   event stream is one fan-out for every client, so its names stay masked for everyone.
//!
//! Credentials on a public page are checked only when present (a cookie or a bearer token):
//! a stale cookie on a public pool reads as a visitor, never as an error.

use std::sync::Arc;

use axum::http::StatusCode;
use axum::{
    extract::{Request, State},
    middleware::Next,
    response::{IntoResponse, Response},
};

use super::{ApiError, ApiState, now_s, v1::admin::blocking};
use crate::auth::{Principal, Scope};

/// What the public pages show: `[ui]` of the configuration.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UiPolicy {
    /// Pages readable without credentials.
    pub public: bool,
    /// Payout addresses shown in full to everyone (else to admins only).
    pub show_addresses: bool,
}

impl Default for UiPolicy {
    fn default() -> Self {
        Self {
            public: true,
            show_addresses: false,
        }
    }
}

/// How the current request sees payout addresses.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Viewer {
    full: bool,
}

impl Viewer {
    /// Masked addresses (visitors, read tokens, the shared event stream).
    pub const MASKED: Self = Self { full: false };

    /// Whether addresses are shown in full.
    #[must_use]
    pub const fn full(self) -> bool {
        self.full
    }

    /// `address[.worker]` as this viewer sees it.
    #[must_use]
    pub fn name(self, name: &str) -> String {
        if self.full {
            name.to_owned()
        } else {
            super::v1::mask_name(name)
        }
    }

    /// A payout address as this viewer sees it.
    #[must_use]
    pub fn address(self, address: &str) -> String {
        if self.full {
            address.to_owned()
        } else {
            super::v1::mask_address(address)
        }
    }
}

/// Resolves the caller into a [`Viewer`] extension, and refuses visitors of a private pool.
pub async fn viewer(State(state): State<Arc<ApiState>>, mut req: Request, next: Next) -> Response {
    let caller = super::v1::admin::Caller::of(super::peer_of(&req), req.headers());
    let principal = if caller.bearer.is_some() || caller.cookie.is_some() {
        match blocking(&state, move |s| Ok(principal_of(s, &caller))).await {
            Ok(p) => p,
            Err(e) => return e.into_response(),
        }
    } else {
        None
    };
    let policy = state.info.ui;
    let reader = principal
        .as_ref()
        .is_some_and(|p| p.allows(Scope::Read) || p.allows(Scope::Admin));
    if !policy.public && !reader {
        return ApiError::new(
            StatusCode::UNAUTHORIZED,
            "AUTH_REQUIRED",
            "this pool's pages are private (ui.public = false): log in, or send a read token",
        )
        .into_response();
    }
    let admin = principal.as_ref().is_some_and(|p| p.allows(Scope::Admin));
    req.extensions_mut().insert(Viewer {
        full: admin || policy.show_addresses,
    });
    next.run(req).await
}

/// The valid principal behind the caller's credentials, if any (a bearer token first).
fn principal_of(state: &ApiState, caller: &super::v1::admin::Caller) -> Option<Principal> {
    let auth = state.auth.as_deref()?;
    let now = now_s();
    match (&caller.bearer, &caller.cookie) {
        (Some(token), _) => auth.token(token, now).ok(),
        (None, Some(cookie)) => auth.session(cookie, now).ok(),
        (None, None) => None,
    }
}
