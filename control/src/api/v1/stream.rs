//! `GET /api/v1/events`: one Server-Sent Events stream per browser tab (UI.md §8.2), and the
//! 1 Hz ticker that feeds it pool figures, changed worker rows, worker details and health.
//!
//! A stream starts with `retry:` and a `hello` (build, version, the newest id, server time),
//! then replays what came after `Last-Event-ID` (header, or `last_event_id` for a first
//! connect) or sends `reset` when the ring no longer holds it, then follows the hub. Keep-alive
//! `: ping` comments every `SSE_PING_SECS`; at most `SSE_STREAMS_MAX` streams (503 past it); a
//! stream whose client stops reading is dropped once it is `SSE_BEHIND_MAX` events behind
//! (counted; its connection is closed, so it never holds memory or a slot), and one lives
//! `SSE_STREAM_SECS_MAX` before the browser reconnects.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::convert::Infallible;
use std::sync::{
    Arc,
    atomic::{AtomicBool, AtomicU64, Ordering},
};
use std::time::Duration;

use axum::{
    Extension,
    extract::{Query, State},
    http::{HeaderMap, HeaderValue},
    response::{
        IntoResponse, Response,
        sse::{Event, KeepAlive, Sse},
    },
};
use futures_util::stream::{self, Stream, StreamExt};
use serde::{Deserialize, Serialize};
use tokio::sync::broadcast::error::RecvError;
use utoipa::{IntoParams, ToSchema};
use warppool_core::limits::{
    SSE_BEHIND_MAX, SSE_PING_SECS, SSE_RETRY_MS, SSE_STREAM_SECS_MAX, SSE_STREAMS_MAX,
    SSE_WORKER_TOPICS_MAX,
};

use super::pool::{Windows, WorkerCounts};
use crate::{
    api::{ApiError, ApiState, ErrorBody, now_s, server::Lifetime},
    blocks::BlockEvent,
    events::{EventHub, HubEvent, Resume, Topic, Watch},
};

/// `topics` and `last_event_id` of `GET /api/v1/events`.
#[derive(Debug, Default, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub struct StreamQuery {
    /// Comma-separated extra topics: `workers`, `worker:<id>` (at most 16).
    pub topics: Option<String>,
    /// Resume after this id (browsers send `Last-Event-ID` on reconnects themselves).
    #[param(minimum = 0)]
    pub last_event_id: Option<i64>,
}

/// `hello`: the first event of every stream.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Hello {
    /// The build of the server (a different one than the page's means: reload).
    pub build_id: &'static str,
    /// WarpPool's version.
    pub version: &'static str,
    /// The newest event id now.
    pub seq: u64,
    /// Unix seconds on the server.
    pub server_time: i64,
}

/// `pool`: the dashboard's live figures (at most 1 Hz).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PoolEvent {
    /// Pool hashrate.
    pub hashrate: Windows,
    /// Workers by status.
    pub workers: WorkerCounts,
    /// Shares accepted since start.
    pub accepted: u64,
    /// Shares rejected since start.
    pub rejected: u64,
}

/// One changed row of `workers`: `[id, status, hashrate_m10, difficulty, last_share_at,
/// reject_pct]`.
pub type WorkerChange = (String, &'static str, f64, f64, Option<i64>, Option<f64>);

/// `workers`: the rows that changed since the last one (topic `workers`, at most 1 Hz).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct WorkersEvent {
    /// `[id, status, hashrate_m10, difficulty, last_share_at, reject_pct]` per changed worker.
    #[schema(value_type = Vec<Vec<super::workers::Cell>>)]
    pub changed: Vec<WorkerChange>,
    /// Workers no longer in the table.
    pub removed: Vec<String>,
    /// Workers by status.
    pub counts: WorkerCounts,
}

/// `block`: a block found, then each status change.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct BlockStreamEvent {
    /// Height.
    pub height: u32,
    /// Hash.
    pub hash: String,
    /// Its status now.
    pub status: &'static str,
    /// The finder's id (on `found`).
    pub worker_id: Option<String>,
    /// Why (node answers, confirmations).
    pub detail: Option<String>,
    /// Unix seconds.
    pub at: i64,
}

/// `job`: a new template.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct JobEvent {
    /// Height mined.
    pub height: u32,
    /// Previous block hash.
    pub prev_hash: String,
    /// A new tip (miners drop their work).
    pub clean: bool,
    /// Transactions in the template.
    pub tx_count: usize,
    /// Their fees, satoshis.
    pub fees_sats: u64,
}

/// `reset`: the ring no longer holds what came after `Last-Event-ID`; refetch.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub struct Reset {}

/// The `data:` of any message of the stream, by its `event:` name: `hello`, `pool`,
/// `workers`, `worker`, `job`, `block`, `health`, `reset`.
#[derive(Debug, Clone, Serialize, ToSchema)]
#[serde(untagged)]
pub enum StreamEvent {
    /// `hello`.
    Hello(Hello),
    /// `pool`.
    Pool(PoolEvent),
    /// `workers`.
    Workers(WorkersEvent),
    /// `worker`.
    Worker(Box<super::workers::WorkerDetail>),
    /// `job`.
    Job(JobEvent),
    /// `block`.
    Block(BlockStreamEvent),
    /// `health`.
    Health(crate::health::HealthView),
    /// `reset`.
    Reset(Reset),
}

/// One message of the stream, as `text/event-stream` frames it.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct SseMessage {
    /// The global sequence id (every message but `hello` and `reset`).
    pub id: Option<String>,
    /// `hello`, `pool`, `workers`, `worker`, `job`, `block`, `health` or `reset`.
    pub event: String,
    /// The payload: JSON text of the [`StreamEvent`] of that name.
    pub data: String,
    /// Milliseconds a browser waits before reconnecting (on `hello`).
    pub retry: Option<u64>,
}

/// Publishes a block path event on `hub` (coalesced per block hash).
pub fn publish_block(hub: &EventHub, event: &BlockEvent) {
    let data = BlockStreamEvent {
        height: event.height,
        hash: event.hash.clone(),
        status: event.status.as_str(),
        worker_id: event.finder.as_ref().map(|f| super::worker_id(&f.worker)),
        detail: event.detail.clone(),
        at: now_s(),
    };
    hub.publish_coalesced("block", &event.hash, Topic::Always, &data);
}

/// What one stream asked for.
#[derive(Debug, Default)]
struct Wants {
    workers: bool,
    worker_ids: HashSet<String>,
}

impl Wants {
    fn parse(topics: Option<&str>) -> Result<Self, ApiError> {
        let mut wants = Self::default();
        for t in topics
            .unwrap_or("")
            .split(',')
            .map(str::trim)
            .filter(|t| !t.is_empty())
        {
            match t.split_once(':') {
                None if t == "workers" => wants.workers = true,
                None if t == "pool" => {}
                Some(("worker", id)) if id.len() == 16 => {
                    wants.worker_ids.insert(id.to_owned());
                }
                None if t == "admin" => {
                    return Err(ApiError::new(
                        axum::http::StatusCode::FORBIDDEN,
                        "FORBIDDEN",
                        "the admin topic needs an admin session",
                    ));
                }
                _ => return Err(ApiError::bad_request(format!("unknown topic {t:?}"))),
            }
        }
        if wants.worker_ids.len() > SSE_WORKER_TOPICS_MAX {
            return Err(ApiError::bad_request(format!(
                "at most {SSE_WORKER_TOPICS_MAX} worker topics (SSE_WORKER_TOPICS_MAX)"
            )));
        }
        Ok(wants)
    }

    fn takes(&self, event: &HubEvent) -> bool {
        match &event.topic {
            Topic::Always => true,
            Topic::Workers => self.workers,
            Topic::Worker(id) => self.worker_ids.contains(id),
        }
    }
}

fn sse(event: &HubEvent) -> Event {
    Event::default()
        .id(event.seq.to_string())
        .event(event.kind)
        .data(event.data.clone())
}

/// The live event stream.
#[utoipa::path(get, path = "/api/v1/events", tag = "events", params(StreamQuery), responses(
    (status = 200, description = "An SSE stream: hello, then pool, workers, worker, job, block, \
      health and reset events", content_type = "text/event-stream", body = SseMessage),
    (status = 400, description = "An unknown topic", body = ErrorBody),
    (status = 403, description = "A topic that needs an admin session", body = ErrorBody),
    (status = 503, description = "SSE_STREAMS_MAX streams are open", body = ErrorBody)))]
pub async fn events(
    State(state): State<Arc<ApiState>>,
    Query(query): Query<StreamQuery>,
    Extension(lifetime): Extension<Lifetime>,
    headers: HeaderMap,
) -> Result<Response, ApiError> {
    let wants = Wants::parse(query.topics.as_deref())?;
    let hub = Arc::clone(state.recorder.hub());
    if hub.streams() >= SSE_STREAMS_MAX {
        return Err(ApiError::busy(format!(
            "{SSE_STREAMS_MAX} event streams are open (SSE_STREAMS_MAX)"
        )));
    }
    let last = headers
        .get("last-event-id")
        .and_then(|v| v.to_str().ok())
        .and_then(|v| v.trim().parse::<u64>().ok())
        .or(query.last_event_id.and_then(|id| u64::try_from(id).ok()));
    if query.last_event_id.is_some_and(|id| id < 0) {
        return Err(ApiError::bad_request("last_event_id must be 0 or more"));
    }
    let life = Duration::from_secs(SSE_STREAM_SECS_MAX);
    lifetime.extend_to(tokio::time::Instant::now() + life + Duration::from_secs(5));
    let progress = Arc::new(Progress::default());
    let body = stream_of(&hub, wants, last, state.info.version, Arc::clone(&progress));
    tokio::spawn(watchdog(hub, progress, lifetime));
    let mut response = Sse::new(body)
        .keep_alive(
            KeepAlive::new()
                .interval(Duration::from_secs(SSE_PING_SECS))
                .text("ping"),
        )
        .into_response();
    response
        .headers_mut()
        .insert("x-accel-buffering", HeaderValue::from_static("no"));
    Ok(response)
}

/// How far one stream got, for its watchdog.
#[derive(Debug, Default)]
struct Progress {
    /// The newest id the stream has taken from the hub (sent or skipped).
    taken: AtomicU64,
    /// The stream is gone.
    closed: AtomicBool,
}

/// Marks the stream closed when it is dropped.
struct Closing(Arc<Progress>);

impl Drop for Closing {
    fn drop(&mut self) {
        self.0.closed.store(true, Ordering::SeqCst);
    }
}

/// Ends a stream's connection once it is `SSE_BEHIND_MAX` events behind the hub: its client
/// does not read (the socket is full, so the stream is never polled and would otherwise hold
/// its slot until `SSE_STREAM_SECS_MAX`).
async fn watchdog(hub: Arc<EventHub>, progress: Arc<Progress>, lifetime: Lifetime) {
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    loop {
        tick.tick().await;
        if progress.closed.load(Ordering::SeqCst) {
            return;
        }
        let behind = hub
            .last_seq()
            .saturating_sub(progress.taken.load(Ordering::SeqCst));
        if behind > SSE_BEHIND_MAX as u64 {
            hub.count_slow_drop();
            tracing::info!(behind, "an event stream that does not read was dropped");
            lifetime.cut();
            return;
        }
    }
}

/// One stream's state between events.
struct Follow {
    rx: tokio::sync::broadcast::Receiver<Arc<HubEvent>>,
    wants: Wants,
    hub: Arc<EventHub>,
    ends: tokio::time::Instant,
    progress: Arc<Progress>,
    _closing: Closing,
    _watches: Vec<Watch>,
}

fn stream_of(
    hub: &Arc<EventHub>,
    wants: Wants,
    last: Option<u64>,
    version: &'static str,
    progress: Arc<Progress>,
) -> impl Stream<Item = Result<Event, Infallible>> + Send + 'static {
    // Subscribe before reading the ring, so nothing falls between the replay and the live part.
    let rx = hub.subscribe();
    progress.taken.store(hub.last_seq(), Ordering::SeqCst);
    let hello = Hello {
        build_id: version,
        version,
        seq: hub.last_seq(),
        server_time: now_s(),
    };
    let mut head = vec![
        Event::default()
            .retry(Duration::from_millis(SSE_RETRY_MS))
            .event("hello")
            .data(serde_json::to_string(&hello).unwrap_or_default()),
    ];
    let mut replayed = 0;
    if let Some(last) = last {
        match hub.since(last) {
            Resume::Events(events) => {
                for e in events.iter().filter(|e| wants.takes(e)) {
                    head.push(sse(e));
                }
                replayed = events.last().map_or(last, |e| e.seq);
            }
            Resume::Gap => head.push(Event::default().event("reset").data("{}")),
        }
    }
    let watches = wants.worker_ids.iter().map(|id| hub.watch(id)).collect();
    let follow = Follow {
        rx,
        wants,
        hub: Arc::clone(hub),
        ends: tokio::time::Instant::now() + Duration::from_secs(SSE_STREAM_SECS_MAX),
        _closing: Closing(Arc::clone(&progress)),
        progress,
        _watches: watches,
    };
    let live = stream::unfold((follow, replayed), |(mut f, replayed)| async move {
        loop {
            let next = tokio::time::timeout_at(f.ends, f.rx.recv()).await;
            if let Ok(Ok(e)) = &next {
                f.progress.taken.store(e.seq, Ordering::SeqCst);
            }
            match next {
                Ok(Ok(e)) if e.seq > replayed && f.wants.takes(&e) => {
                    let event = sse(&e);
                    return Some((Ok(event), (f, replayed)));
                }
                Ok(Ok(_)) => {}
                Ok(Err(RecvError::Lagged(_))) => {
                    // A ring behind: drop it (the browser reconnects and resumes or resets).
                    f.hub.count_slow_drop();
                    tracing::info!("a slow event stream was dropped");
                    return None;
                }
                Ok(Err(RecvError::Closed)) | Err(_) => return None,
            }
        }
    });
    stream::iter(head.into_iter().map(Ok)).chain(live)
}

/// What the ticker sent last, to send only changes.
#[derive(Debug, Default)]
struct Sent {
    rows: HashMap<String, WorkerChange>,
    health: String,
    generation: u64,
    prev_hash: [u8; 32],
}

/// Feeds the hub every second until `stop` (see the module docs). Its work runs on the API's
/// query threads, and only while some stream is open.
pub async fn ticker(state: Arc<ApiState>, mut stop: tokio::sync::watch::Receiver<bool>) {
    let sent = Arc::new(std::sync::Mutex::new(Sent::default()));
    let mut tick = tokio::time::interval(Duration::from_secs(1));
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Skip);
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = stop.changed() => return,
        }
        let hub = Arc::clone(state.recorder.hub());
        hub.flush();
        if hub.streams() == 0 {
            continue;
        }
        let sent = Arc::clone(&sent);
        let s = Arc::clone(&state);
        let _ = state.queries.run(move || one_tick(&s, &hub, &sent)).await;
    }
}

fn one_tick(state: &ApiState, hub: &EventHub, sent: &std::sync::Mutex<Sent>) {
    let now = now_s();
    let mut sent = sent.lock().unwrap_or_else(|e| e.into_inner());
    let status = state.status.borrow().clone();
    if let (Some(t), Some(height)) = (status.template, status.height)
        && status.generation != sent.generation
    {
        let clean = t.prev_hash != sent.prev_hash;
        sent.generation = status.generation;
        sent.prev_hash = t.prev_hash;
        let job = JobEvent {
            height,
            prev_hash: warppool_core::hex::encode(&t.prev_hash),
            clean,
            tx_count: t.tx_count,
            fees_sats: t.fees_sats,
        };
        hub.publish_coalesced("job", "tip", Topic::Always, &job);
    }
    if let Ok(health) = super::status::health_of(state, &status, now) {
        let text = serde_json::to_string(&health).unwrap_or_default();
        if text != sent.health {
            sent.health = text;
            hub.publish("health", Topic::Always, &health);
        }
    }
    let live = state.recorder.live();
    let since = live.started_at();
    let (hashrate, accepted, rejected) = live.with_pool(|p| {
        let windows = Windows::of(state.info.min_difficulty, |secs| {
            if secs <= 3600 {
                p.minutes.window(now, secs, since)
            } else {
                p.hours.window(now, secs, since)
            }
        });
        (windows, p.accepted, p.rejects.values().sum())
    });
    let (counts, changed, removed) = worker_changes(state, &mut sent.rows, now);
    hub.publish(
        "pool",
        Topic::Always,
        &PoolEvent {
            hashrate,
            workers: counts,
            accepted,
            rejected,
        },
    );
    if !changed.is_empty() || !removed.is_empty() {
        let event = WorkersEvent {
            changed,
            removed,
            counts,
        };
        hub.publish("workers", Topic::Workers, &event);
    }
    worker_details(state, hub, now);
}

fn worker_changes(
    state: &ApiState,
    last: &mut HashMap<String, WorkerChange>,
    now: i64,
) -> (WorkerCounts, Vec<WorkerChange>, Vec<String>) {
    let mut counts = WorkerCounts::default();
    let mut rows = HashMap::with_capacity(last.len());
    state.recorder.live().for_each(|w| {
        let status = w.status(now);
        counts.add(status);
        let ten = w.window(now, 600);
        let judged = w.accepted + w.rejected();
        let reject_pct = (judged > 0).then(|| 100.0 * w.rejected() as f64 / judged as f64);
        let id = super::worker_id(&w.name);
        let hps = crate::live::hashes_per_second(ten.difficulty_sum, ten.secs);
        let row = (
            id.clone(),
            status.as_str(),
            hps,
            w.difficulty,
            w.last_share_at,
            reject_pct,
        );
        rows.insert(id, row);
    });
    let changed = rows
        .iter()
        .filter(|(id, row)| last.get(*id) != Some(*row))
        .map(|(_, row)| row.clone())
        .collect();
    let removed = last
        .keys()
        .filter(|id| !rows.contains_key(*id))
        .cloned()
        .collect();
    *last = rows;
    (counts, changed, removed)
}

fn worker_details(state: &ApiState, hub: &EventHub, now: i64) {
    let watched: BTreeMap<String, ()> = hub.watched().into_iter().map(|id| (id, ())).collect();
    if watched.is_empty() {
        return;
    }
    let difficulty = state.status.borrow().template.map(|t| t.network_difficulty);
    let jobs = state.jobs.last();
    state.recorder.live().for_each(|w| {
        let id = super::worker_id(&w.name);
        if watched.contains_key(&id) {
            let detail = super::workers::detail_of(
                w,
                now,
                difficulty,
                jobs.as_deref(),
                crate::api::Viewer::MASKED,
            );
            hub.publish("worker", Topic::Worker(id), &detail);
        }
    });
}
