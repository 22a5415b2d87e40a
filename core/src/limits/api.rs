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

/// Distinct `/api/v1/workers` answers kept for the current second (see
/// `control/src/api/page_cache.rs`): viewers of the same page within a second share one
/// computation. At most 1,000 rows each (about 0.4 MiB), so the cache stays under about
/// 13 MiB; past the cap a new answer takes the oldest one's place.
pub const API_PAGE_CACHE_ENTRIES_MAX: usize = 32;

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

/// Most HTTP connections the API serves at once (more wait in the kernel backlog). Over
/// HTTP/1.1 each live event stream holds one, so this is twice [`SSE_STREAMS_MAX`]: the API
/// stays reachable with every stream open.
pub const HTTP_CONNECTIONS_MAX: usize = 256;
/// Largest HTTP request head (request line and headers), in bytes.
pub const HTTP_REQUEST_HEAD_BYTES_MAX: usize = 16 * 1024;
/// Longest life of one HTTP connection, in seconds (an event stream extends its own, up to
/// [`SSE_STREAM_SECS_MAX`]).
pub const HTTP_CONNECTION_SECS_MAX: u64 = 30;
/// Seconds an HTTP client has to send a request head.
pub const HTTP_HEADER_READ_SECS: u64 = 5;

/// Live event streams open at once; more are answered 503 (half the HTTP connection cap, so
/// the API stays reachable with every stream open). 128: a farm's wall of dashboards and
/// every phone of a household, with room (the fan-out bench runs 100).
pub const SSE_STREAMS_MAX: usize = 128;
const _: () = assert!(SSE_STREAMS_MAX * 2 == HTTP_CONNECTIONS_MAX);

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

/// Most worker ids one `GET /api/v1/workers/sparklines` asks for (a screenful of the workers
/// table, several times over).
pub const API_SPARKLINE_IDS_MAX: usize = 200;

/// Most rows one page of a worker's events or sessions holds (`limit`).
pub const API_WORKER_PAGE_ROWS_MAX: usize = 200;

/// Seconds a client has to finish the TLS handshake on the API's HTTPS listener (the
/// connection holds one of the `HTTP_CONNECTIONS_MAX` permits meanwhile).
pub const HTTPS_HANDSHAKE_SECS: u64 = 5;

/// Concurrent HTTP/2 streams one HTTPS connection may open: a browser multiplexes every
/// request of the UI (and its event stream) over one connection, so this, not the six
/// connections per origin of HTTP/1.1, bounds a tab.
pub const HTTP2_STREAMS_PER_CONNECTION_MAX: u32 = 32;

/// Seconds between checks of a given HTTPS certificate's and key's modification times (two
/// `stat` calls); a change, or SIGHUP, re-reads them.
pub const HTTPS_CERT_POLL_SECS: u64 = 2;

/// Largest HTTPS certificate chain or key file read, in bytes (PEM).
pub const HTTPS_PEM_FILE_BYTES_MAX: u64 = 64 * 1024;

/// Days a generated self-signed HTTPS certificate is valid (Apple devices refuse TLS server
/// certificates valid for more than 825 days).
pub const HTTPS_SELF_SIGNED_DAYS: u64 = 825;

/// Machine addresses (besides the listen address and loopback) a generated HTTPS certificate
/// names; more interfaces are left out (logged).
pub const HTTPS_SAN_ADDRESSES_MAX: usize = 16;

/// Largest secrets file read, in bytes.
pub const SECRETS_FILE_BYTES_MAX: u64 = 64 * 1024;

/// Seconds one step of `POST /api/v1/admin/nodes/{id}/test` may take (an RPC call or the ZMQ
/// connect); a step past it fails with a timeout.
pub const NODE_TEST_STEP_SECS: u64 = 10;

const _: () = assert!(LIVE_WORKER_CONNECTS_KEPT >= 2);
const _: () = assert!(HTTP2_STREAMS_PER_CONNECTION_MAX >= 8 && HTTPS_CERT_POLL_SECS >= 1);
const _: () = assert!(METRICS_WORKER_SERIES_MAX <= LIVE_WORKERS_MAX);
const _: () = assert!(API_PAGE_ROWS_MAX >= 1);
const _: () = assert!(API_SPARKLINE_IDS_MAX >= 1 && API_WORKER_PAGE_ROWS_MAX >= 1);
const _: () = assert!(SSE_BEHIND_MAX >= 64 && SSE_PING_SECS < SSE_STREAM_SECS_MAX);

/// Most rows one `/api/v1/admin/connections` page returns (`limit`).
pub const API_CONNECTIONS_PAGE_MAX: usize = 1_000;

/// Seconds of a connection's recent share rate (`shares_per_min` of
/// `/api/v1/admin/connections`): accepted shares in the last this many seconds (or since it
/// connected, if later), per minute. A multiple of 60.
pub const CONNECTION_RATE_WINDOW_SECS: i64 = 300;

const _: () = assert!(API_CONNECTIONS_PAGE_MAX >= 1);
const _: () = assert!(CONNECTION_RATE_WINDOW_SECS >= 60 && CONNECTION_RATE_WINDOW_SECS % 60 == 0);
