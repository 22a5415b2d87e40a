//! The control plane's HTTP API (`warppool-control::api`), its live worker table and its live
//! events. Re-exported by [`crate::limits`]; `docs/limits.md` lists them with the others.

/// Workers the control plane follows live (hashrate rings, status, rejects) for the API: about
/// 1.4 KiB each, so 50,000 cost about 70 MiB. Past it a new worker is recorded in SQLite but
/// not followed live (counted, logged); a worker offline for `LIVE_WORKER_FORGET_SECS` makes
/// room.
pub const LIVE_WORKERS_MAX: usize = 50_000;

/// Seconds after its last connection closed that a worker leaves the live table (its history
/// stays in SQLite).
pub const LIVE_WORKER_FORGET_SECS: i64 = 86_400;

/// Connection starts kept per live worker, for `reconnects_24h`.
pub const LIVE_WORKER_CONNECTS_KEPT: usize = 64;

/// Most rows one `/api/v1/workers` page returns (`limit`).
pub const API_PAGE_ROWS_MAX: usize = 1_000;

/// Longest search text (`q`) and longest filter value the API accepts, in bytes.
pub const API_QUERY_TEXT_BYTES_MAX: usize = 128;

/// Seconds between refreshes of the network view (each node's `getblockchaininfo`,
/// `getnetworkinfo`; the first node's `getmininginfo` and two headers for the retarget).
pub const NETWORK_REFRESH_SECS: u64 = 30;

/// Live events kept for `Last-Event-ID` resume, and how far a stream may fall behind before it
/// is dropped (the broadcast channel's capacity).
pub const EVENTS_RING_MAX: usize = 1024;

/// Events of one kind and key go out at most once per this many milliseconds (the latest
/// wins; UI.md §8.2's 1 Hz).
pub const EVENTS_COALESCE_MS: u64 = 1000;

/// Live event streams open at once; more are answered 503 (half the HTTP connection cap, so
/// the API stays reachable with every stream open).
pub const SSE_STREAMS_MAX: usize = 32;

/// Seconds between `: ping` comments on an idle stream.
pub const SSE_PING_SECS: u64 = 15;

/// The `retry:` a stream asks the browser to wait before reconnecting, in milliseconds.
pub const SSE_RETRY_MS: u64 = 2000;

/// Longest life of one stream, in seconds; the browser reconnects with `Last-Event-ID` and
/// misses nothing the ring still holds.
pub const SSE_STREAM_SECS_MAX: u64 = 600;

/// Events a stream may fall behind the hub before its connection is closed (its client does
/// not read); below the ring, so a dropped client that comes back can still resume.
pub const SSE_BEHIND_MAX: usize = EVENTS_RING_MAX / 2;

/// `worker:<id>` topics one stream may ask for.
pub const SSE_WORKER_TOPICS_MAX: usize = 16;

/// Most per-worker series `/metrics` exposes (the highest ten-minute hashrates first; the
/// rest are counted in `warppool_worker_series_over_cap`): bounded label cardinality.
pub const METRICS_WORKER_SERIES_MAX: usize = 1_000;

/// Seconds without an update (share, connection, close, difficulty change) after which a
/// worker's series leave `/metrics` (solo-pool-rs drops series unwritten for 24 h too).
pub const METRICS_WORKER_SERIES_IDLE_SECS: i64 = 86_400;

const _: () = assert!(LIVE_WORKER_CONNECTS_KEPT >= 2);
const _: () = assert!(METRICS_WORKER_SERIES_MAX <= LIVE_WORKERS_MAX);
const _: () = assert!(API_PAGE_ROWS_MAX >= 1);
const _: () = assert!(SSE_BEHIND_MAX >= 64 && SSE_PING_SECS < SSE_STREAM_SECS_MAX);

/// Most rows one `/api/v1/admin/connections` page returns (`limit`).
pub const API_CONNECTIONS_PAGE_MAX: usize = 1_000;

/// Seconds of a connection's recent share rate (`shares_per_min` of
/// `/api/v1/admin/connections`): accepted shares in the last this many seconds (or since it
/// connected, if later), per minute. A multiple of 60.
pub const CONNECTION_RATE_WINDOW_SECS: i64 = 300;

const _: () = assert!(API_CONNECTIONS_PAGE_MAX >= 1);
const _: () = assert!(CONNECTION_RATE_WINDOW_SECS >= 60 && CONNECTION_RATE_WINDOW_SECS % 60 == 0);
