//! `GET /metrics`: who may scrape ([`authorize`]) and the handler ([`metrics`]).
//!
//! # Access
//! A peer on a loopback address (`127.0.0.0/8`, `::1`, or `::ffff:127.x.y.z`) may scrape
//! without credentials: a Prometheus on the pool's host. A request that came through a proxy
//! (it carries `Forwarded`, `X-Forwarded-For` or `X-Real-IP`) has no trustworthy peer
//! ([`peer_of`]): a reverse proxy on the same host would otherwise make every client
//! loopback. Anyone else gets 401 `UNAUTHORIZED` with `WWW-Authenticate: Bearer`. API tokens with
//! the `metrics` scope (`Authorization: Bearer …`) are being built in `control/src/auth/`
//! (branch `auth`); when it merges, [`authorize`] checks the token there and nothing else
//! changes: it already receives the header. Until then a token is not accepted from a
//! non-loopback peer, and no token is needed from loopback. A request without a peer address
//! (the server always inserts one) is refused.

use std::{
    net::{IpAddr, SocketAddr},
    sync::Arc,
};

use axum::{
    extract::{ConnectInfo, Request, State},
    http::{HeaderMap, HeaderValue, StatusCode, header},
    response::{IntoResponse, Response},
};

use super::{OPENMETRICS_CONTENT_TYPE, PROMETHEUS_TEXT_CONTENT_TYPE, wants_openmetrics};
use crate::api::{ApiError, ApiState, ErrorBody};

/// Why a scrape was refused.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Refusal {
    /// No peer address came with the request.
    NoPeer,
    /// Not from loopback, and no accepted credential.
    NotAuthorized,
}

/// Whether `ip` is a loopback address (IPv4-mapped IPv6 included).
#[must_use]
pub fn is_loopback(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => v4.is_loopback(),
        IpAddr::V6(v6) => {
            v6.is_loopback() || v6.to_ipv4_mapped().is_some_and(|v4| v4.is_loopback())
        }
    }
}

/// The peer to judge: the connection's, unless the request came through a proxy (then none:
/// the client behind it is unknown).
#[must_use]
pub fn peer_of(connection: Option<SocketAddr>, headers: &HeaderMap) -> Option<SocketAddr> {
    let proxied = ["forwarded", "x-forwarded-for", "x-real-ip"]
        .iter()
        .any(|name| headers.contains_key(*name));
    connection.filter(|_| !proxied)
}

/// The access rule of `/metrics` (see the module docs): `peer` is the connection's remote
/// address, `authorization` the request's `Authorization` header. The `metrics`-scoped token
/// check arrives here with the `auth` merge.
///
/// # Errors
/// [`Refusal`] when the scrape is not allowed.
pub fn authorize(
    peer: Option<SocketAddr>,
    authorization: Option<&HeaderValue>,
) -> Result<(), Refusal> {
    let Some(peer) = peer else {
        return Err(Refusal::NoPeer);
    };
    if is_loopback(peer.ip()) {
        return Ok(());
    }
    // A token is checked by `token_allows` (it needs the database: a query thread).
    let _ = authorization;
    Err(Refusal::NotAuthorized)
}

/// Whether `authorization` carries a live API token with the `metrics` scope (or `admin`).
async fn token_allows(
    state: &Arc<ApiState>,
    authorization: Option<&HeaderValue>,
    ip: IpAddr,
) -> bool {
    let Some(token) = authorization
        .and_then(|v| v.to_str().ok())
        .and_then(crate::auth::bearer)
        .map(str::to_owned)
    else {
        return false;
    };
    crate::api::v1::admin::blocking(state, move |s| {
        let auth = s.auth()?;
        let now = crate::api::now_s();
        let principal = auth.token(&token, now)?;
        let req = crate::auth::RequestInfo::new(ip, now);
        auth.require(&principal, crate::auth::Scope::Metrics, req)?;
        Ok(())
    })
    .await
    .is_ok()
}

/// Prometheus metrics of the pool (OpenMetrics 1.0.0 when asked for, as Prometheus does;
/// Prometheus text 0.0.4 otherwise).
#[utoipa::path(get, path = "/metrics", tag = "meta", responses(
    (status = 200, description = "Every metric family, each with its help text \
        (OpenMetrics 1.0.0 when the Accept header asks for it, else Prometheus text 0.0.4)",
        body = String, content_type = "application/openmetrics-text; version=1.0.0; charset=utf-8"),
    (status = 401, description = "Not from loopback and no metrics token", body = ErrorBody),
    (status = 503, description = "The API's query threads are busy", body = ErrorBody)))]
pub async fn metrics(State(state): State<Arc<ApiState>>, request: Request) -> Response {
    let headers = request.headers();
    let connection = request.extensions().get::<ConnectInfo<SocketAddr>>();
    let peer = peer_of(connection.map(|c| c.0), headers);
    let connected = connection.map_or(IpAddr::from([0, 0, 0, 0]), |c| c.0.ip());
    let refused = match authorize(peer, headers.get(header::AUTHORIZATION)) {
        Ok(()) => None,
        Err(refusal) => {
            let token = headers.get(header::AUTHORIZATION);
            (!token_allows(&state, token, connected).await).then_some(refusal)
        }
    };
    if let Some(refusal) = refused {
        tracing::debug!(?peer, ?refusal, "metrics scrape refused");
        let mut response = ApiError::new(
            StatusCode::UNAUTHORIZED,
            "UNAUTHORIZED",
            "metrics are served to loopback peers and to API tokens with the metrics scope",
        )
        .into_response();
        response.headers_mut().insert(
            header::WWW_AUTHENTICATE,
            HeaderValue::from_static("Bearer realm=\"warppool-metrics\""),
        );
        return response;
    }
    let accept = headers.get(header::ACCEPT).and_then(|v| v.to_str().ok());
    let openmetrics = wants_openmetrics(accept);
    let encoded = state
        .run(move |state| {
            state
                .metrics
                .encode(openmetrics)
                .map_err(|e| ApiError::internal(e.to_string()))
        })
        .await;
    let content_type = if openmetrics {
        OPENMETRICS_CONTENT_TYPE
    } else {
        PROMETHEUS_TEXT_CONTENT_TYPE
    };
    match encoded {
        Ok(text) => (
            [(header::CONTENT_TYPE, HeaderValue::from_static(content_type))],
            text,
        )
            .into_response(),
        Err(e) => e.into_response(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn loopback_scrapes_and_others_are_refused_even_with_a_token_until_auth_lands() {
        let token = HeaderValue::from_static("Bearer wp_metrics_0123");
        for peer in [
            "127.0.0.1:5000",
            "127.8.9.10:1",
            "[::1]:9090",
            "[::ffff:127.0.0.1]:80",
        ] {
            let peer: SocketAddr = peer.parse().unwrap();
            assert_eq!(authorize(Some(peer), None), Ok(()), "{peer}");
        }
        for peer in [
            "192.0.2.7:5000",
            "[2001:db8::1]:9090",
            "[::ffff:192.0.2.7]:80",
            "0.0.0.0:1",
        ] {
            let peer: SocketAddr = peer.parse().unwrap();
            assert_eq!(
                authorize(Some(peer), None),
                Err(Refusal::NotAuthorized),
                "{peer}"
            );
            assert_eq!(
                authorize(Some(peer), Some(&token)),
                Err(Refusal::NotAuthorized)
            );
        }
        assert_eq!(authorize(None, None), Err(Refusal::NoPeer));
    }

    #[test]
    fn a_proxied_request_has_no_peer_to_trust() {
        let local: SocketAddr = "127.0.0.1:5000".parse().unwrap();
        assert_eq!(peer_of(Some(local), &HeaderMap::new()), Some(local));
        for name in ["forwarded", "x-forwarded-for", "x-real-ip"] {
            let mut headers = HeaderMap::new();
            headers.insert(name, HeaderValue::from_static("203.0.113.9"));
            assert_eq!(peer_of(Some(local), &headers), None, "{name}");
        }
    }
}
