//! `GET /api/v1/events/recent`: the latest pool events (blocks found and their status
//! changes, …), newest first.

use std::collections::BTreeMap;
use std::sync::Arc;

use axum::extract::{Extension, Query, State};
use serde::{Deserialize, Serialize};
use utoipa::{IntoParams, ToSchema};

use crate::api::{ApiError, ApiState, Encoded, ErrorBody, Viewer};

/// Most events one answer lists.
pub const RECENT_EVENTS_MAX: usize = 200;

/// `limit` of `GET /api/v1/events/recent`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct RecentQuery {
    /// Events to list, 1..=200 (default 20).
    #[param(minimum = 1, maximum = 200)]
    pub limit: Option<usize>,
}

/// One field of an event: a scalar (nested values come as their JSON text).
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
#[serde(untagged)]
pub enum Field {
    /// Text.
    Text(String),
    /// A number.
    Number(f64),
    /// A flag.
    Bool(bool),
    /// No value.
    Null,
}

impl From<serde_json::Value> for Field {
    fn from(v: serde_json::Value) -> Self {
        match v {
            serde_json::Value::Null => Self::Null,
            serde_json::Value::Bool(b) => Self::Bool(b),
            serde_json::Value::Number(n) => n.as_f64().map_or(Self::Null, Self::Number),
            serde_json::Value::String(s) => Self::Text(s),
            other => Self::Text(other.to_string()),
        }
    }
}

/// One event.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct EventView {
    /// Sequence number.
    pub id: i64,
    /// When, Unix seconds.
    pub at: i64,
    /// What kind (`block`, …).
    pub kind: String,
    /// Its fields (a block event: `height`, `hash`, `status`, `detail`, `worker`).
    pub fields: BTreeMap<String, Field>,
}

/// `GET /api/v1/events/recent`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct RecentEvents {
    /// Newest first.
    pub rows: Vec<EventView>,
}

/// An event as `viewer` sees it (worker names masked unless it may see addresses).
#[must_use]
pub fn view(e: crate::storage::EventRow, viewer: Viewer) -> EventView {
    let mut fields = BTreeMap::new();
    if let serde_json::Value::Object(map) = e.message {
        for (k, v) in map {
            // Worker names carry payout addresses: masked here.
            let v = match (k.as_str(), v) {
                ("worker", serde_json::Value::String(w)) => Field::Text(viewer.name(&w)),
                (_, v) => Field::from(v),
            };
            fields.insert(k, v);
        }
    }
    EventView {
        id: e.id,
        at: e.time_unix_s,
        kind: e.kind,
        fields,
    }
}

/// The latest events.
#[utoipa::path(get, path = "/api/v1/events/recent", tag = "events", params(RecentQuery),
    responses(
        (status = 200, description = "Events, newest first", body = RecentEvents),
        (status = 400, description = "A bad limit", body = ErrorBody),
        (status = 503, description = "Busy or storage unreadable", body = ErrorBody)))]
pub async fn recent(
    State(state): State<Arc<ApiState>>,
    Extension(viewer): Extension<Viewer>,
    Query(query): Query<RecentQuery>,
) -> Result<Encoded, ApiError> {
    let limit = query.limit.unwrap_or(20);
    if !(1..=RECENT_EVENTS_MAX).contains(&limit) {
        return Err(ApiError::bad_request(format!(
            "limit must be 1..={RECENT_EVENTS_MAX}"
        )));
    }
    state
        .query(move |s| {
            s.with_reader(|r| {
                let rows = r
                    .latest_events(limit)?
                    .into_iter()
                    .map(|e| view(e, viewer))
                    .collect();
                Ok(RecentEvents { rows })
            })
        })
        .await
}
