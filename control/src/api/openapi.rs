//! The OpenAPI 3.1 document of the API, generated from the handlers' `#[utoipa::path]` and
//! the answer types' schemas. Served at `/api/v1/openapi.json`; committed as
//! `docs/api/openapi.json`, which `control/tests/api_openapi.rs` keeps current (run it with
//! `WARPPOOL_BLESS=1` to rewrite the file after an API change).

use axum::http::{HeaderValue, header};
use axum::response::IntoResponse;
use utoipa::OpenApi;

use super::v1;

/// The document (see the module docs).
#[derive(Debug, OpenApi)]
#[openapi(
    info(
        title = "WarpPool API",
        description = "The HTTP API of WarpPool, a Bitcoin solo mining pool. Every hashrate \
                       comes with its 95 % confidence interval from the shares behind it. \
                       Payout addresses are masked unless the caller is an admin (session \
                       or admin token) or `ui.show_addresses` is set; with `ui.public = \
                       false` the read endpoints answer 401 `AUTH_REQUIRED` to callers \
                       without an admin session, a read token or an admin token.",
        license(name = "MIT OR Apache-2.0")
    ),
    paths(
        v1::status::health,
        v1::status::status,
        v1::pool::pool,
        v1::pool::umbrel,
        v1::workers::list,
        v1::workers::detail,
        v1::history::pool_history,
        v1::history::worker_history,
        v1::history::sparklines,
        v1::worker_log::worker_events,
        v1::worker_log::worker_sessions,
        v1::workers::address,
        v1::blocks::blocks,
        v1::best::best_shares,
        v1::network::network,
        v1::connect::connect,
        v1::connect::last_seen,
        v1::events::recent,
        v1::stream::events,
        serve,
        v1::admin::setup,
        v1::admin::setup_confirm,
        v1::admin::login,
        v1::admin::totp,
        v1::admin::recovery,
        v1::admin::logout,
        v1::admin::step_up,
        v1::admin::sessions,
        v1::admin::revoke_session,
        v1::admin::totp_enroll,
        v1::admin::totp_confirm,
        v1::admin::tokens,
        v1::admin::create_token,
        v1::admin::revoke_token,
        v1::admin::audit,
        v1::admin::config::config_get,
        v1::admin::config::config_put,
        v1::nodes::list,
        v1::nodes::replace,
        v1::nodes::test,
        v1::admin::connections,
        v1::admin::kick,
        v1::admin::kick_all,
        v1::admin::bans,
        v1::admin::create_ban,
        v1::admin::delete_ban,
        v1::diagnostics::diagnostics,
        crate::metrics::scrape::metrics,
    ),
    components(schemas(v1::stream::StreamEvent)),
    tags(
        (name = "status", description = "Is the pool working"),
        (name = "pool", description = "The pool's figures"),
        (name = "workers", description = "Miners and their payout addresses"),
        (name = "blocks", description = "Blocks found"),
        (name = "network", description = "Nodes and the chain"),
        (name = "connect", description = "How to point a miner here"),
        (name = "events", description = "What happened"),
        (name = "meta", description = "This document and the Prometheus metrics"),
        (name = "admin", description = "Setup, login, sessions, tokens, audit log, nodes"),
    )
)]
pub struct ApiDoc;

/// The document as pretty JSON with a final newline (the committed form).
#[must_use]
pub fn json() -> String {
    let mut doc = serde_json::to_value(ApiDoc::openapi()).unwrap_or_default();
    complete(&mut doc);
    let mut text =
        serde_json::to_string_pretty(&doc).unwrap_or_else(|e| format!("{{\"error\":\"{e}\"}}"));
    text.push('\n');
    text
}

/// What every operation can answer besides what its handler documents: any 4xx and a 503
/// (`BUSY`, the query queue is full), each as an [`super::ErrorBody`]; and `/metrics` in the
/// Prometheus text format as well as OpenMetrics.
fn complete(doc: &mut serde_json::Value) {
    let error = |description: &str| {
        serde_json::json!({
            "description": description,
            "content": {"application/json": {"schema": {"$ref": "#/components/schemas/ErrorBody"}}}
        })
    };
    // A stream message matches one of these by its event name; objects may match several
    // shapes (`reset` is `{}`), so any-of, not one-of.
    // The same for a history cell (an integer is a number too) and a config value (an empty
    // list is both a split list and a name list).
    for schema in ["StreamEvent", "HistoryCell", "FieldValue"] {
        if let Some(s) = doc.pointer_mut(&format!("/components/schemas/{schema}"))
            && let Some(one_of) = s.as_object_mut().and_then(|o| o.remove("oneOf"))
        {
            s["anyOf"] = one_of;
        }
    }
    let Some(paths) = doc.get_mut("paths").and_then(|p| p.as_object_mut()) else {
        return;
    };
    for (path, item) in paths.iter_mut() {
        let Some(item) = item.as_object_mut() else {
            continue;
        };
        for op in item.values_mut() {
            let Some(responses) = op.get_mut("responses").and_then(|r| r.as_object_mut()) else {
                continue;
            };
            responses
                .entry("4XX")
                .or_insert_with(|| error("A request this endpoint refuses (see the code)"));
            responses
                .entry("503")
                .or_insert_with(|| error("Busy: API_QUERIES_QUEUED_MAX queries are waiting"));
            if path == "/metrics"
                && let Some(content) = responses
                    .get_mut("200")
                    .and_then(|r| r.get_mut("content"))
                    .and_then(|c| c.as_object_mut())
            {
                content.insert(
                    "text/plain; version=0.0.4; charset=utf-8".to_owned(),
                    serde_json::json!({"schema": {"type": "string"}}),
                );
            }
        }
    }
}

/// This API's OpenAPI document.
#[utoipa::path(get, path = "/api/v1/openapi.json", tag = "meta", responses(
    (status = 200, description = "The OpenAPI 3.1 document", content_type = "application/json")))]
pub async fn serve() -> impl IntoResponse {
    (
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        json(),
    )
}
