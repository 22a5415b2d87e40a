//! Every bound in WarpPool, in one place, checked against each other at compile time.
//!
//! Each queue, buffer and loop in the data plane is bounded by one of these. `docs/limits.md`
//! repeats them with their reasons. Names put the unit or qualifier last (`..._bytes_max`).
//! The HTTP API's and admin authentication's limits are in `limits/api.rs` and
//! `limits/auth.rs`, re-exported here (this file would pass the 800-line rule otherwise).

mod api;
mod auth;
mod history;
pub use api::*;
pub use auth::*;
pub use history::*;

/// Longest Stratum V1 JSON line a client may send, newline excluded. Real firmware sends
/// `mining.submit` lines under 200 bytes and `mining.subscribe` under 300; 16 KiB leaves room for
/// verbose `mining.configure` extensions while bounding per-connection memory.
pub const LINE_BYTES_MAX: usize = 16 * 1024;

/// Deepest JSON nesting accepted in a client line (real messages nest 3 deep).
pub const JSON_DEPTH_MAX: usize = 8;

/// Most params accepted in one Stratum V1 request (`mining.submit` has 6).
pub const PARAMS_COUNT_MAX: usize = 16;

/// Longest user agent kept from `mining.subscribe`, in bytes (longer ones are truncated).
pub const USER_AGENT_BYTES_MAX: usize = 128;

/// Longest Stratum username (`<address>[.<worker>]`), in bytes.
pub const USERNAME_BYTES_MAX: usize = 128;

/// Longest worker name (the part after the first `.` of the username), in bytes.
pub const WORKER_NAME_BYTES_MAX: usize = 64;

/// Longest password field, in bytes (it may carry `d=`/`md=` options).
pub const PASSWORD_BYTES_MAX: usize = 256;

/// Longest request id echoed back to a client, in bytes of its JSON text.
pub const REQUEST_ID_BYTES_MAX: usize = 64;

/// Longest job id a client may send back (our ids are at most 16 hex digits).
pub const JOB_ID_HEX_MAX: usize = 16;

/// Size of extranonce1, in bytes: unique per connection (2³² per pool instance).
pub const EXTRANONCE1_BYTES: usize = 4;

/// Smallest extranonce2 size a port may be configured with, in bytes.
pub const EXTRANONCE2_SIZE_MIN: usize = 2;

/// Default extranonce2 size, in bytes.
pub const EXTRANONCE2_SIZE_DEFAULT: usize = 4;

/// Largest extranonce2 size a port may be configured with, in bytes.
pub const EXTRANONCE2_SIZE_MAX: usize = 8;

/// Longest coinbase scriptSig (consensus: 2..=100 bytes).
pub const COINBASE_SCRIPT_SIG_BYTES_MAX: usize = 100;

/// Longest pool tag placed in the coinbase scriptSig, in bytes.
pub const COINBASE_TAG_BYTES_MAX: usize = 40;

/// Bytes of the scriptSig taken by the BIP34 height push (1 length byte + up to 4 bytes, plus a
/// sign byte) and the extranonce push opcode.
pub const COINBASE_HEIGHT_PUSH_BYTES_MAX: usize = 6;

/// Most coinbase outputs: payout, extra splits, witness commitment.
pub const COINBASE_OUTPUTS_MAX: usize = 8;

/// Longest output script accepted for a payout or split (P2WSH/P2TR are 34 bytes).
pub const OUTPUT_SCRIPT_BYTES_MAX: usize = 64;

/// Longest serialized coinbase transaction (without witness), in bytes. Small miners (NerdMiner,
/// Bitaxe) hash the coinbase in fixed buffers; the default solo coinbase stays ≤ 255 bytes, and
/// no configuration may exceed this.
pub const COINBASE_BYTES_MAX: usize = 1024;

/// The coinbase size the default solo configuration must stay within (DESIGN §4).
pub const COINBASE_BYTES_SOLO_TARGET: usize = 255;

/// Deepest merkle branch: 2¹⁸ transactions is far beyond any 4 MWU block (~25k txs max).
pub const MERKLE_DEPTH_MAX: usize = 18;

/// Most transactions accepted in a template (2^MERKLE_DEPTH_MAX minus the coinbase).
pub const TEMPLATE_TRANSACTIONS_MAX: usize = (1 << MERKLE_DEPTH_MAX) - 1;

/// Largest `getblocktemplate` result accepted, in bytes of JSON (a full 4 MWU block is ~8 MB
/// of hex plus txids and fees).
pub const TEMPLATE_JSON_BYTES_MAX: usize = 32 * 1024 * 1024;

/// Largest serialized block (consensus weight limit / 1).
pub const BLOCK_BYTES_MAX: usize = 4_000_000;

/// Jobs a shard keeps for late shares (current plus recent; a template refresh every 30 s keeps
/// about four minutes of history).
pub const JOBS_RETAINED_MAX: usize = 8;

/// Distinct share hashes remembered per job for duplicate detection. At 100k shares/s on one
/// shard and a 30 s job life that is too few for a flood, so the set is a bounded ring that
/// forgets the oldest; vardiff keeps honest miners near 18 shares/min per connection.
pub const DUPLICATES_PER_JOB_MAX: usize = 65_536;

/// Largest accepted ntime ahead of the template's `curtime`, in seconds (ckpool allows 7000 s).
/// Measured from `curtime`, not from a job's ntime (job variants move that ahead), so that it
/// stays below `NODE_FUTURE_BLOCK_TIME_SECS_MAX` ahead of the pool's clock with 200 s to spare
/// for clock skew between pool and node.
pub const NTIME_AHEAD_SECS_MAX: u32 = 7_000;

/// How far ahead of its clock Bitcoin Core accepts a block's time, in seconds
/// (`MAX_FUTURE_BLOCK_TIME`, two hours; later ones are refused as `time-too-new`).
pub const NODE_FUTURE_BLOCK_TIME_SECS_MAX: u32 = 2 * 60 * 60;

/// Connections one shard accepts before refusing at `accept`.
pub const CONNECTIONS_PER_SHARD_MAX: usize = 65_536;

/// Shards (data-plane threads) one pool may run.
pub const SHARDS_MAX: usize = 256;

/// Default connections accepted per second per shard (the accept token bucket's refill rate;
/// `pool.accept_rate_per_sec`).
pub const ACCEPT_RATE_PER_SEC_DEFAULT: u32 = 1_000;

/// Default accept burst per shard (the token bucket's size; `pool.accept_burst`).
pub const ACCEPT_BURST_DEFAULT: u32 = 2_000;

/// Largest configurable accept rate or burst per shard.
pub const ACCEPT_RATE_PER_SEC_MAX: u32 = 1_000_000;

/// Default connections one client address (IPv6: one /64) may hold across the pool
/// (`pool.connections_per_ip_max`). A farm behind one NAT address raises it.
pub const CONNECTIONS_PER_IP_DEFAULT: u32 = 1_024;

/// Default time a connection has to subscribe before it is closed, in seconds.
pub const SUBSCRIBE_TIMEOUT_SECS_DEFAULT: u64 = 30;

/// Default time a subscribed connection may stay silent before it is closed, in seconds.
pub const IDLE_TIMEOUT_SECS_DEFAULT: u64 = 600;

/// Longest configurable subscribe or idle timeout, in seconds (one day).
pub const CONNECTION_TIMEOUT_SECS_MAX: u64 = 86_400;

/// Requests a connection may have in flight (read but not yet answered).
pub const INFLIGHT_REQUESTS_PER_CONNECTION_MAX: usize = 32;

/// Bytes queued for one connection's socket before superseded jobs are dropped and then the
/// connection is closed.
pub const OUTBOUND_QUEUE_BYTES_MAX: usize = 64 * 1024;

/// Share-statistics entries in one batch sent from a shard to the control plane.
pub const SHARE_STATS_BATCH_MAX: usize = 256;

/// Smallest difficulty any connection may be given (fractional, for CPU miners that asked).
pub const DIFFICULTY_MIN_BITS: u32 = 16; // i.e. 2^-16

/// Largest share difficulty, as a power of two (2^60 is far above any network difficulty).
pub const DIFFICULTY_MAX_LOG2: u32 = 60;

/// Longest decimal text of a difficulty, in bytes: 19 integer digits (2^60), the point and 32
/// decimals (the fixed point's 2^-32 resolution), with room to spare.
pub const DIFFICULTY_TEXT_BYTES_MAX: usize = 64;

/// Seconds the vardiff looks back (EWMA time constant).
pub const VARDIFF_WINDOW_SECS: u32 = 300;

/// Longest method name kept from a client request, in bytes (real ones are under 32; longer
/// unknown methods are truncated in the typed `Unknown` request).
pub const METHOD_BYTES_MAX: usize = 64;

/// Longest job id, extranonce2, ntime, nonce or version-bits field accepted in a
/// `mining.submit`, in bytes (real ones are at most 16).
pub const SUBMIT_FIELD_BYTES_MAX: usize = 64;

/// Longest session id accepted in `mining.subscribe` for resumption, in bytes (WhatsMiner sends
/// 32 hex digits; longer ids are ignored, never an error).
pub const SUBSCRIBE_SESSION_BYTES_MAX: usize = 64;

/// Most extensions read from one `mining.configure` request (BIP310 defines four).
pub const CONFIGURE_EXTENSIONS_MAX: usize = 8;

/// Longest server message a builder is expected to write, in bytes: a `mining.notify` with
/// [`MERKLE_DEPTH_MAX`] branches and a [`COINBASE_BYTES_MAX`] coinbase (as hex) fits.
pub const SERVER_LINE_BYTES_MAX: usize = 8 * 1024;

/// Shortest time between two vardiff retargets in the steady state, in milliseconds.
pub const VARDIFF_RETARGET_INTERVAL_MS_MIN: u64 = 1_000;

/// Largest factor one vardiff retarget may raise or lower the difficulty by.
pub const VARDIFF_STEP_FACTOR_MAX: u32 = 1 << 16;

/// Largest gamma shape (share count + 1) whose quantile the hashrate interval computes exactly,
/// by inverting the Poisson sum (at most this many terms per evaluation); above it the
/// Wilson–Hilferty approximation is within 1e-6 relative at 95 % (`core::hashrate::quantile`).
pub const HASHRATE_SHAPE_EXACT_MAX: u64 = 1_001;

/// Most Newton or bisection steps that invert one gamma quantile (Newton takes 3 to 5; 64
/// bisections alone shrink the starting bracket below one ulp).
pub const HASHRATE_QUANTILE_ITERATIONS_MAX: u32 = 64;

/// Lowest confidence level of a hashrate interval (a narrower bar is no error bar).
pub const HASHRATE_CONFIDENCE_MIN: f64 = 0.5;

/// Highest confidence level of a hashrate interval (four nines: the quantiles' accuracy is
/// checked up to here).
pub const HASHRATE_CONFIDENCE_MAX: f64 = 0.9999;

const _: () = assert!(EXTRANONCE2_SIZE_MIN <= EXTRANONCE2_SIZE_DEFAULT);
const _: () = assert!(EXTRANONCE2_SIZE_DEFAULT <= EXTRANONCE2_SIZE_MAX);
const _: () = assert!(EXTRANONCE1_BYTES + EXTRANONCE2_SIZE_MAX <= 16);
const _: () = assert!(
    COINBASE_HEIGHT_PUSH_BYTES_MAX
        + EXTRANONCE1_BYTES
        + EXTRANONCE2_SIZE_MAX
        + COINBASE_TAG_BYTES_MAX
        <= COINBASE_SCRIPT_SIG_BYTES_MAX
);
const _: () = assert!(COINBASE_BYTES_SOLO_TARGET <= COINBASE_BYTES_MAX);
// version 4 + input count 1 + outpoint 36 + script length 1 + sequence 4 + output count 1 +
// locktime 4 = 51 fixed bytes; each output is 8 value + 1 length + its script.
const _: () = assert!(
    51 + COINBASE_SCRIPT_SIG_BYTES_MAX + COINBASE_OUTPUTS_MAX * (9 + OUTPUT_SCRIPT_BYTES_MAX)
        <= COINBASE_BYTES_MAX
);
const _: () = assert!(TEMPLATE_TRANSACTIONS_MAX < (1 << MERKLE_DEPTH_MAX));
const _: () = assert!(JOB_ID_HEX_MAX == 16); // a JobId is a u64
const _: () = assert!(REQUEST_ID_BYTES_MAX < LINE_BYTES_MAX);
const _: () = assert!(RING_BUFFER_BYTES <= READ_BYTES_MIN);
const _: () = assert!(RING_BUFFERS.is_power_of_two() && RING_BUFFERS <= 32_768);
const _: () = assert!(RING_BUFFER_BYTES <= u32::MAX as usize);
const _: () = assert!(USERNAME_BYTES_MAX + PASSWORD_BYTES_MAX < LINE_BYTES_MAX);
const _: () = assert!(WORKER_NAME_BYTES_MAX < USERNAME_BYTES_MAX);
const _: () = assert!(DUPLICATES_PER_JOB_MAX.is_power_of_two());
const _: () = assert!(DIFFICULTY_MAX_LOG2 + DIFFICULTY_MIN_BITS < 96);
// 2^60 has 19 decimal digits; the point and 32 decimals follow.
const _: () = assert!(19 + 1 + 32 <= DIFFICULTY_TEXT_BYTES_MAX);
const _: () = assert!(SHARE_STATS_BATCH_MAX > 0);

// Domain (template → job → share) relationships.
// A block candidate stores its coinbase length in a `u16`.
const _: () = assert!(COINBASE_BYTES_MAX <= u16::MAX as usize);
// ESP-Miner and NerdQAxe reject merkle branches longer than 32, the Avalon MM holds 30
// (MINERS.md rule 7); the branch length is stored in a `u8`.
const _: () = assert!(MERKLE_DEPTH_MAX <= 30);
// BIP34 height push (at most 5 bytes for heights up to i32::MAX) plus the extranonce push opcode.
const _: () = assert!(5 < COINBASE_HEIGHT_PUSH_BYTES_MAX);
// Every pool tag fits a single-byte push opcode (≤ 75 bytes).
const _: () = assert!(COINBASE_TAG_BYTES_MAX <= 75);
// Output scripts and the extranonce have one-byte lengths in the coinbase.
const _: () = assert!(OUTPUT_SCRIPT_BYTES_MAX < 0xfd);
const _: () = assert!(EXTRANONCE1_BYTES + EXTRANONCE2_SIZE_MAX <= 75);
// The ntime window stays inside the node's two hours ahead of its clock, with room for skew.
const _: () = assert!(NTIME_AHEAD_SECS_MAX + 200 <= NODE_FUTURE_BLOCK_TIME_SECS_MAX);

// Stratum V1 codec and vardiff relationships.
const _: () = assert!(METHOD_BYTES_MAX < LINE_BYTES_MAX);
const _: () = assert!(SUBSCRIBE_SESSION_BYTES_MAX <= REQUEST_ID_BYTES_MAX);
const _: () = assert!(REQUEST_ID_BYTES_MAX <= u8::MAX as usize);
const _: () = assert!(CONFIGURE_EXTENSIONS_MAX <= PARAMS_COUNT_MAX);
// notify envelope (~200 bytes) + prevhash 64 + 2 * coinbase hex + branches (67 bytes each).
const _: () =
    assert!(256 + 64 + 2 * COINBASE_BYTES_MAX + MERKLE_DEPTH_MAX * 67 <= SERVER_LINE_BYTES_MAX);
const _: () = assert!(JSON_DEPTH_MAX >= 4); // configure nests 3 deep
const _: () = assert!(VARDIFF_STEP_FACTOR_MAX.is_power_of_two());
const _: () = assert!(VARDIFF_RETARGET_INTERVAL_MS_MIN < VARDIFF_WINDOW_SECS as u64 * 1000);
const _: () = assert!(SUBMIT_FIELD_BYTES_MAX >= JOB_ID_HEX_MAX);
const _: () = assert!(SUBMIT_FIELD_BYTES_MAX >= 2 * EXTRANONCE2_SIZE_MAX);

// Hashrate interval relationships.
const _: () = assert!(HASHRATE_SHAPE_EXACT_MAX >= 2);
const _: () = assert!(HASHRATE_CONFIDENCE_MIN > 0.0);
const _: () = assert!(HASHRATE_CONFIDENCE_MIN < HASHRATE_CONFIDENCE_MAX);
const _: () = assert!(HASHRATE_CONFIDENCE_MAX < 1.0);

// ---------------------------------------------------------------------------------------------
// Data plane (`warppool-net`): I/O buffers, queues and shard control.
// ---------------------------------------------------------------------------------------------

/// Free space the line buffer always keeps for one read, in bytes. The per-connection input
/// buffer is `LINE_BYTES_MAX + READ_BYTES_MIN`, so after the unfinished tail of a line (at most
/// `LINE_BYTES_MAX` bytes) is moved to the front there is always room for another read.
pub const READ_BYTES_MIN: usize = 4 * 1024;

/// Ciphertext read buffer of a TLS connection, in bytes: one full TLS record (16 KiB of
/// plaintext plus header, padding and tag).
pub const TLS_READ_BYTES: usize = 16 * 1024 + 2 * 1024;

/// Queued job notifications ("droppable when superseded") tracked per connection.
pub const OUTBOUND_DROPPABLE_MESSAGES_MAX: usize = 16;

/// Share-statistics batches queued from one shard to the control plane before further batches
/// are counted and dropped.
pub const STATS_BATCHES_QUEUED_PER_SHARD_MAX: usize = 64;

/// Block candidates one shard may have queued to the control plane. A candidate is a share that
/// meets the network target; producing this many on one shard between two drains of the
/// control plane (which drains continuously) needs that many valid blocks, so the queue cannot
/// fill on any real network. A full queue is never a panic: the candidate waits in the shard's
/// overflow (`BLOCK_CANDIDATES_OVERFLOW_PER_SHARD_MAX`).
pub const BLOCK_CANDIDATES_PER_SHARD_MAX: usize = 1024;

/// Block candidates one shard keeps (allocated at start) while the candidate queue is full,
/// retried in order on every tick; past it a candidate is counted as lost and logged at error
/// level (rate-limited), never a panic.
pub const BLOCK_CANDIDATES_OVERFLOW_PER_SHARD_MAX: usize = 64;

/// Shortest time between two log lines of one kind from one shard (refused connections per
/// limit, lost block candidates), in milliseconds; each line carries the count since the last.
pub const SHARD_LOG_INTERVAL_MS: u64 = 10_000;

/// Block candidates one shard sends while one previous-block hash is its current tip (counted
/// on every job, current or stale, so alternating them cannot reset it). Applied only on a
/// chain whose network target is easier than the share target floor (`Difficulty::MIN`:
/// regtest, where nearly every share is a block and a miner could otherwise flood the
/// candidate queue); on mainnet, testnet and signet every share that meets the network target
/// is sent. Shares past the cap are credited as shares. With `BLOCK_CANDIDATES_PER_SHARD_MAX`
/// at least 16 times this, the queue fills only if the control plane stops draining it across
/// 16 new tips, which it publishes itself.
pub const BLOCK_CANDIDATES_PER_TIP_PER_SHARD_MAX: usize = 64;

/// Empty outbound buffers (`OUTBOUND_QUEUE_BYTES_MAX` bytes each) a shard keeps for reuse.
/// A plain connection holds one only while a reply is being built or while the kernel has not
/// taken all of it (its write-through backlog); the shard allocates this many at start and
/// frees a returned buffer only when this many are already spare.
pub const SHARD_SPARE_OUTBOUND_BUFFERS: usize = 8;

/// Empty line-carry buffers (`LINE_BYTES_MAX + READ_BYTES_MIN` bytes each) a shard keeps for
/// reuse. A plain connection holds one only while an unfinished line (or input paused at the
/// in-flight bound) waits for more bytes; allocated at start and kept like
/// `SHARD_SPARE_OUTBOUND_BUFFERS`.
pub const SHARD_SPARE_CARRY_BUFFERS: usize = 8;

/// Readiness events one `epoll_wait(2)` of a shard's own event loop returns at most (a stack
/// array); more ready connections are returned by the next wait.
pub const SHARD_EPOLL_EVENTS_MAX: usize = 256;

/// Bytes of one provided buffer in a shard's io_uring receive ring (plain connections on the
/// io_uring driver). One multishot-recv completion carries at most this many bytes; it is at
/// most `READ_BYTES_MIN`, so an unfinished line plus one completion always fits the
/// shard-wide input buffer.
pub const RING_BUFFER_BYTES: usize = 4 * 1024;

/// Provided buffers in a shard's io_uring receive ring (a power of two, at most 32,768),
/// allocated and touched at shard start: `RING_BUFFERS * RING_BUFFER_BYTES` bytes per shard.
/// A buffer goes back to the ring as soon as its completion has been handled; when the ring
/// runs dry the kernel ends a connection's multishot recv with `ENOBUFS` and the shard re-arms
/// it (counted).
pub const RING_BUFFERS: usize = 256;

/// Submission-queue entries of a shard's io_uring receive ring (the completion queue has
/// twice as many). Entries are submitted at once, so the queue never holds more than one.
pub const RING_SUBMISSION_ENTRIES: u32 = 64;

/// Completions a shard handles from its receive ring before it looks at its other events;
/// more are handled on the next turn of the loop, which then does not block.
pub const RING_COMPLETIONS_PER_TURN_MAX: usize = 256;

/// Reads of one plain connection per readiness event before the shard moves on to other
/// connections (the connection is re-armed in the epoll set and served again on the next
/// wait), so a client that sends without pause cannot starve the rest of its shard.
pub const SHARD_READS_PER_EVENT_MAX: usize = 16;

/// Milliseconds a shard's accept waits before retrying after the process ran out of file
/// descriptors or memory (`EMFILE`, `ENFILE`, `ENOBUFS`, `ENOMEM`).
pub const ACCEPT_RETRY_MS: u64 = 10;

/// Listening addresses (ports) one pool may configure.
pub const LISTENERS_MAX: usize = 16;

/// Messages (job wake-ups, stop) queued from the control plane to one shard. Job wake-ups
/// coalesce: a full queue means a wake-up is already pending.
pub const SHARD_CONTROL_QUEUE_MAX: usize = 4;

/// Operator commands (kick one connection, kick all) queued from the control plane to one
/// shard, on their own queue so job wake-ups never crowd them out; a full queue refuses the
/// command (the admin API answers 503, counted in `DataPlane::admin`'s refusals).
pub const SHARD_ADMIN_QUEUE_MAX: usize = 4_096;

/// Address bans (IP or CIDR prefix) the pool holds at once (the admin API refuses more with
/// 409; each active ban costs 24 bytes in every accept-path lookup table).
pub const BANS_MAX: usize = 10_000;

/// Bytes of a ban's reason.
pub const BAN_REASON_BYTES_MAX: usize = 256;

/// Buckets of the pool-wide per-IP connection counter table (hashed, keyed at start-up).
pub const IP_TABLE_BUCKETS: usize = 65_536;

/// `listen(2)` backlog of each shard's listening socket.
pub const LISTEN_BACKLOG: i32 = 1024;

/// Milliseconds `stop()` waits for a shard's connections to close before giving up on them.
pub const SHUTDOWN_DRAIN_MS_MAX: u64 = 5_000;

/// Milliseconds a connection that is closing after a final reply may take to flush it.
pub const CLOSE_FLUSH_MS_MAX: u64 = 2_000;

/// Bytes of input read and discarded after a graceful close (FIN sent) before the socket is
/// closed, so that unread input does not turn the close into a reset that could destroy the
/// final reply; bounded in time by `CLOSE_FLUSH_MS_MAX` as well.
pub const CLOSE_DRAIN_BYTES_MAX: usize = 1024 * 1024;

const _: () = assert!(READ_BYTES_MIN > 0);
const _: () = assert!(CLOSE_DRAIN_BYTES_MAX >= LINE_BYTES_MAX);
const _: () = assert!(TLS_READ_BYTES >= 16 * 1024 + 256);
const _: () = assert!(OUTBOUND_DROPPABLE_MESSAGES_MAX > 0);
const _: () = assert!(LINE_BYTES_MAX + READ_BYTES_MIN <= OUTBOUND_QUEUE_BYTES_MAX * 2);
const _: () = assert!(OUTBOUND_QUEUE_BYTES_MAX <= u32::MAX as usize);
const _: () = assert!(INFLIGHT_REQUESTS_PER_CONNECTION_MAX > 0);
const _: () = assert!(STATS_BATCHES_QUEUED_PER_SHARD_MAX > 0);
const _: () = assert!(BLOCK_CANDIDATES_PER_SHARD_MAX >= INFLIGHT_REQUESTS_PER_CONNECTION_MAX);
const _: () = assert!(SHARD_CONTROL_QUEUE_MAX >= 2); // one job wake-up plus the stop message
const _: () = assert!(IP_TABLE_BUCKETS.is_power_of_two());
const _: () = assert!(SHARD_ADMIN_QUEUE_MAX > 0 && BANS_MAX > 0);
const _: () = assert!(LISTENERS_MAX * SHARDS_MAX <= 65_536);
const _: () = assert!(ACCEPT_RATE_PER_SEC_DEFAULT <= ACCEPT_RATE_PER_SEC_MAX);
const _: () = assert!(ACCEPT_BURST_DEFAULT <= ACCEPT_RATE_PER_SEC_MAX);
const _: () = assert!(CONNECTIONS_PER_IP_DEFAULT as usize <= CONNECTIONS_PER_SHARD_MAX);
const _: () = assert!(SUBSCRIBE_TIMEOUT_SECS_DEFAULT <= CONNECTION_TIMEOUT_SECS_MAX);
const _: () = assert!(IDLE_TIMEOUT_SECS_DEFAULT <= CONNECTION_TIMEOUT_SECS_MAX);

// Data plane: the Stratum V1 session (`warppool-net`'s `stratum` module).

/// Payout scripts whose coinbase one shard caches for the current template ("one coinbase per
/// payout script per template, built once and shared by all its connections"). A farm of
/// many addresses beyond this only costs a rebuild (one coinbase and one job, about 2 µs and
/// 1 KB) when an evicted script needs a new job.
pub const PAYOUT_SCRIPTS_PER_SHARD_MAX: usize = 4_096;

/// Share hashes each connection remembers per retained job for duplicate detection (its own
/// `JobBook` of `JOBS_RETAINED_MAX` jobs, allocated at authorize: 24 bytes per entry, so
/// 8 × 64 × 24 = 12 KiB per authorized connection). Trade-off: a miner flooding more than this
/// many shares on one job can resubmit an evicted duplicate and be credited again; in a solo
/// pool shares only feed statistics and vardiff (never payouts), and vardiff keeps an honest
/// miner near 18 shares a minute, so a job of 30 s sees about 9.
pub const CONNECTION_DUPLICATES_PER_JOB: usize = 64;

/// Bits of a 4-byte extranonce1 that hold the shard index; the rest count subscribes on that
/// shard, so extranonce1 values are unique pool-wide without coordination.
pub const EXTRANONCE1_SHARD_BITS: u32 = 8;

/// Job variants (new job id and ntime bumped by a second) one shard builds for one payout
/// script and one template; more would push ntime far ahead of the template's time. Beyond
/// it a retarget sends `set_difficulty` with the newest variant the connection has not seen,
/// or none.
pub const JOB_VARIANTS_PER_TEMPLATE_MAX: u32 = 600;

const _: () = assert!(CONNECTION_DUPLICATES_PER_JOB.is_power_of_two());
const _: () = assert!(CONNECTION_DUPLICATES_PER_JOB <= DUPLICATES_PER_JOB_MAX);
const _: () = assert!(1 << EXTRANONCE1_SHARD_BITS >= SHARDS_MAX);
const _: () = assert!(EXTRANONCE1_SHARD_BITS < 8 * EXTRANONCE1_BYTES as u32);
// Every connection a shard holds gets its own extranonce1 from the shard's counter range.
const _: () = assert!(1 << (32 - EXTRANONCE1_SHARD_BITS) >= CONNECTIONS_PER_SHARD_MAX);
// Variants bump ntime by a second each; they stay inside the accepted ntime window.
const _: () = assert!(JOB_VARIANTS_PER_TEMPLATE_MAX < NTIME_AHEAD_SECS_MAX);
const _: () = assert!(PAYOUT_SCRIPTS_PER_SHARD_MAX <= CONNECTIONS_PER_SHARD_MAX);
// One `process_lines` call handles at most INFLIGHT lines, so it sends at most one statistics
// batch and the shard's spare batch is always there inside `on_line` (no allocation there).
const _: () = assert!(INFLIGHT_REQUESTS_PER_CONNECTION_MAX < SHARE_STATS_BATCH_MAX);
const _: () =
    assert!(BLOCK_CANDIDATES_PER_SHARD_MAX >= 16 * BLOCK_CANDIDATES_PER_TIP_PER_SHARD_MAX);

// ---------------------------------------------------------------------------------------------
// Control plane (`warppool-control`): configuration, bitcoind RPC and ZMQ, templates, block
// submission. Keep these contiguous: the control plane owns this section.
// ---------------------------------------------------------------------------------------------

/// Largest configuration file read, in bytes (a farm config with every node and port is a few
/// KiB).
pub const CONFIG_FILE_BYTES_MAX: usize = 1024 * 1024;

/// Most bitcoind nodes configured (failover order; every one gets each block).
pub const NODES_MAX: usize = 8;

/// Largest JSON-RPC reply body accepted, in bytes: the largest template plus envelope.
pub const RPC_RESPONSE_BYTES_MAX: usize = TEMPLATE_JSON_BYTES_MAX + 64 * 1024;

/// Default per-request RPC timeout, in milliseconds (`getblocktemplate` of a full mempool takes
/// well under a second on a local node).
pub const RPC_TIMEOUT_MS_DEFAULT: u64 = 10_000;

/// Largest RPC timeout accepted in the configuration, in milliseconds.
pub const RPC_TIMEOUT_MS_MAX: u64 = 120_000;

/// Timeout of a `getblocktemplate` long-poll request, in milliseconds (Core answers when the
/// template changes, at the latest after about a minute on mainnet).
pub const RPC_LONGPOLL_TIMEOUT_MS: u64 = 300_000;

/// First back-off of a node that failed, in milliseconds; doubled per consecutive failure.
pub const NODE_BACKOFF_MS_MIN: u64 = 500;

/// Longest back-off of a failing node, in milliseconds.
pub const NODE_BACKOFF_MS_MAX: u64 = 30_000;

/// Highest latency a per-method RPC histogram records, in microseconds (larger values are
/// clamped to it).
pub const RPC_LATENCY_US_MAX: u64 = RPC_LONGPOLL_TIMEOUT_MS * 1_000;

/// Largest cookie file read, in bytes (`__cookie__:` and 64 hex characters).
pub const COOKIE_FILE_BYTES_MAX: usize = 1024;

/// Default periodic template refresh, in seconds (DESIGN.md §5: "every ~30 s").
pub const TEMPLATE_REFRESH_SECS_DEFAULT: u64 = 30;

/// Default `getbestblockhash` watchdog interval, in milliseconds.
pub const BEST_BLOCK_POLL_MS_DEFAULT: u64 = 1_000;

/// Default age after which a template that could not be refreshed gates work, in seconds.
pub const TEMPLATE_AGE_SECS_MAX_DEFAULT: u64 = 120;

/// Pause after a failed long-poll or ZMQ connect before trying again, in milliseconds.
pub const CONTROL_RETRY_MS: u64 = 1_000;

/// Fast `submitblock` rounds for one newly found block (with back-off) before it is left to
/// the block tracker's periodic re-checks.
pub const BLOCK_SUBMIT_ATTEMPTS_MAX: u32 = 12;

/// Total time of a new block's fast rounds, in milliseconds; after it the block tracker keeps
/// re-checking and resubmitting it every `BLOCK_RECHECK_MS` until it is in a chain or settled.
pub const BLOCK_SUBMIT_TOTAL_MS_MAX: u64 = 300_000;

/// Pause between two re-checks of a block no node reports in a chain yet (found, submitted,
/// or waiting for a node to come back), in milliseconds: a node that returns sees the block
/// resubmitted within this long.
pub const BLOCK_RECHECK_MS: u64 = 10_000;

/// Pause between two re-checks of a block in a chain or orphaned, in milliseconds, when no
/// new tip woke the tracker first (a new tip re-checks at once: confirmations change only then).
pub const BLOCK_RECHECK_SETTLED_MS: u64 = 60_000;

/// Blocks the tracker re-checks in one pass (the most overdue first); the rest wait for the
/// next pass, so a flood of regtest blocks cannot flood the nodes with RPC calls.
pub const BLOCK_CHECKS_PER_PASS_MAX: usize = 256;

/// Unfinished blocks tracked before the tracker warns (it never drops one: the count only
/// names when something is wrong, such as a node that never answers).
pub const BLOCKS_TRACKED_WARN: usize = 4_096;

/// Journal bytes of finished blocks (and unreadable lines) that trigger a compaction, once
/// they are also at least the live blocks' bytes: the journal stays below about twice its
/// live content plus this, whatever the pool's age.
pub const JOURNAL_COMPACT_GARBAGE_BYTES_MIN: u64 = 32 * 1024;

/// First pause between `submitblock` rounds, in milliseconds; doubled per round.
pub const BLOCK_SUBMIT_BACKOFF_MS_MIN: u64 = 250;

/// Longest pause between `submitblock` rounds, in milliseconds.
pub const BLOCK_SUBMIT_BACKOFF_MS_MAX: u64 = 30_000;

/// Block events queued for storage and the UI; a full queue drops the event (the journal keeps
/// the truth).
pub const BLOCK_EVENTS_QUEUE_MAX: usize = 256;

/// Longest journal line read back, in bytes: the block hex plus the other fields.
pub const JOURNAL_LINE_BYTES_MAX: usize = 2 * BLOCK_BYTES_MAX + 4 * 1024;

/// Worker threads of the control plane's Tokio runtime (it waits on a local node, never on the
/// share path; the shards own the cores).
pub const CONTROL_WORKER_THREADS: usize = 2;

/// Blocking-pool threads of the control plane's runtime (journal fsync, file reads).
pub const CONTROL_BLOCKING_THREADS_MAX: usize = 8;

/// Threads that run the HTTP API's storage queries (at a lower CPU priority than the data
/// plane and the block path).
pub const API_QUERY_THREADS: usize = 2;

/// API queries waiting for a query thread; past it a request is answered 503 at once.
pub const API_QUERIES_QUEUED_MAX: usize = 64;

/// How much lower the API query threads' CPU priority is (`nice` increment): under load the
/// scheduler runs shares and blocks first.
pub const API_QUERY_NICE: i32 = 10;

/// Milliseconds shutdown waits for the control tasks to finish before giving up on them.
pub const CONTROL_SHUTDOWN_MS_MAX: u64 = 10_000;

const _: () = assert!(NODES_MAX >= 1);
const _: () = assert!(RPC_RESPONSE_BYTES_MAX > TEMPLATE_JSON_BYTES_MAX);
const _: () = assert!(RPC_TIMEOUT_MS_DEFAULT <= RPC_TIMEOUT_MS_MAX);
const _: () = assert!(RPC_TIMEOUT_MS_MAX <= RPC_LONGPOLL_TIMEOUT_MS);
const _: () = assert!(NODE_BACKOFF_MS_MIN > 0);
const _: () = assert!(NODE_BACKOFF_MS_MIN <= NODE_BACKOFF_MS_MAX);
const _: () = assert!(BLOCK_SUBMIT_BACKOFF_MS_MIN > 0);
const _: () = assert!(BLOCK_SUBMIT_BACKOFF_MS_MIN <= BLOCK_SUBMIT_BACKOFF_MS_MAX);
const _: () = assert!(BLOCK_SUBMIT_ATTEMPTS_MAX >= 2);
const _: () = assert!(BLOCK_SUBMIT_BACKOFF_MS_MAX <= BLOCK_SUBMIT_TOTAL_MS_MAX);
const _: () = assert!(BLOCK_RECHECK_MS > 0 && BLOCK_RECHECK_MS <= BLOCK_RECHECK_SETTLED_MS);
const _: () = assert!(BLOCK_CHECKS_PER_PASS_MAX >= 1);
const _: () = assert!(BLOCKS_TRACKED_WARN >= BLOCK_CHECKS_PER_PASS_MAX);
const _: () = assert!(JOURNAL_COMPACT_GARBAGE_BYTES_MIN >= 4 * 1024);
// The watchdog must notice a new tip long before a template is considered stale.
const _: () = assert!(BEST_BLOCK_POLL_MS_DEFAULT < TEMPLATE_AGE_SECS_MAX_DEFAULT * 1_000);
const _: () = assert!(TEMPLATE_REFRESH_SECS_DEFAULT < TEMPLATE_AGE_SECS_MAX_DEFAULT);
const _: () = assert!(JOURNAL_LINE_BYTES_MAX > 2 * BLOCK_BYTES_MAX);
const _: () = assert!(CONTROL_WORKER_THREADS >= 1);
const _: () = assert!(BLOCK_EVENTS_QUEUE_MAX >= 1);
const _: () = assert!(CONTROL_BLOCKING_THREADS_MAX >= 1);
const _: () = assert!(COOKIE_FILE_BYTES_MAX >= 64);

// Storage (`warppool-control::storage`): SQLite on one writer thread.

/// Messages the writer's channel holds. Shares do not use it (they are aggregated first), so
/// this bounds worker updates, events and block records waiting for the writer.
pub const STORAGE_CHANNEL_MESSAGES_MAX: usize = 4096;

/// Most messages committed in one transaction; a fuller batch is committed before the interval.
pub const STORAGE_BATCH_MESSAGES_MAX: usize = 1024;

/// Longest time accepted data waits before it is committed, in milliseconds. This is also what
/// a `kill -9` can lose.
pub const STORAGE_FLUSH_INTERVAL_MS: u64 = 1000;

/// Most worker-minute share buckets held in memory between two flushes. 64 Ki buckets is
/// 64 Ki workers active within one flush interval, far above a solo pool's size.
pub const SHARE_BUCKETS_MAX: usize = 65_536;

/// How long a block record waits for room in a full channel, in milliseconds.
pub const STORAGE_BLOCK_SEND_TIMEOUT_MS: u64 = 5000;

/// Default retention of per-minute share statistics, in days.
pub const SHARE_MINUTES_RETENTION_DAYS: u64 = 30;

/// Default retention of events, in days.
pub const EVENTS_RETENTION_DAYS: u64 = 90;

/// Longest retention `storage.share_minutes_retention_days` and
/// `storage.events_retention_days` accept, in days (ten years: keeps the age arithmetic far
/// from overflow and catches a typo such as a value in seconds).
pub const RETENTION_DAYS_MAX: u64 = 3650;

/// How often the writer runs retention, in seconds (it also runs once at start).
pub const STORAGE_RETENTION_INTERVAL_SECS: u64 = 3600;

/// How long a reader waits on a lock (checkpoints, migrations), in milliseconds.
pub const STORAGE_BUSY_TIMEOUT_MS: u64 = 5000;

/// Most events one `StorageReader::latest_events` call returns.
pub const EVENTS_QUERY_MAX: usize = 1000;

/// Most workers whose last difficulty the control plane keeps for the data plane (vardiff
/// persistence: a reconnecting worker starts at its stored difficulty). Loaded at start, most
/// recently seen first; past it a new worker replaces an arbitrary one (it then starts at the
/// port's start difficulty, which vardiff corrects within its ramp-up).
pub const WORKER_DIFFICULTIES_MAX: usize = 65_536;

/// How often the control plane writes changed worker difficulties to storage and republishes
/// the data plane's lookup, in milliseconds. Bounds the write rate to at most
/// `WORKER_DIFFICULTIES_MAX` rows per interval, whatever the retarget rate.
pub const WORKER_DIFFICULTY_PUBLISH_MS: u64 = 2_000;

const _: () = assert!(STORAGE_BATCH_MESSAGES_MAX <= STORAGE_CHANNEL_MESSAGES_MAX);
const _: () = assert!(STORAGE_BATCH_MESSAGES_MAX > 0);
const _: () = assert!(STORAGE_FLUSH_INTERVAL_MS > 0);
const _: () = assert!(STORAGE_FLUSH_INTERVAL_MS < STORAGE_BLOCK_SEND_TIMEOUT_MS);
const _: () = assert!(STORAGE_FLUSH_INTERVAL_MS < STORAGE_RETENTION_INTERVAL_SECS * 1000);
const _: () = assert!(SHARE_MINUTES_RETENTION_DAYS >= 1);
const _: () = assert!(SHARE_MINUTES_RETENTION_DAYS <= RETENTION_DAYS_MAX);
const _: () = assert!(EVENTS_RETENTION_DAYS >= 1);
const _: () = assert!(EVENTS_RETENTION_DAYS <= RETENTION_DAYS_MAX);
const _: () = assert!(EVENTS_QUERY_MAX > 0);
const _: () = assert!(WORKER_DIFFICULTIES_MAX > 0);
const _: () = assert!(WORKER_DIFFICULTIES_MAX <= SHARE_BUCKETS_MAX);
const _: () = assert!(WORKER_DIFFICULTY_PUBLISH_MS >= STORAGE_FLUSH_INTERVAL_MS);

// ---------------------------------------------------------------------------------------------
// Load generator (`warppool-loadgen run`): bounds of one load run.
// ---------------------------------------------------------------------------------------------

/// Longest load run, in seconds (`--duration-s`).
pub const LOADGEN_DURATION_SECS_MAX: u64 = 3600;

/// File descriptors kept free below the soft `RLIMIT_NOFILE` when sizing a load run (stdio,
/// the runtime, the node RPC client, the report file).
pub const LOADGEN_FD_MARGIN: u64 = 64;

/// Longest line the load generator accepts from a pool, in bytes; a longer one is a protocol
/// error and closes that connection.
pub const LOADGEN_LINE_BYTES_MAX: usize = 64 * 1024;

/// Bytes read from a socket at once by one simulated miner (its read buffer).
pub const LOADGEN_READ_BYTES: usize = 4096;

/// Most requests one simulated miner keeps waiting for a reply (`--max-inflight` is capped
/// here); setup requests count too.
pub const LOADGEN_INFLIGHT_MAX: usize = 1024;

/// Jobs a simulated miner remembers (for stale and duplicate injection and verdict checks).
pub const LOADGEN_JOBS_REMEMBERED: usize = 16;

/// Longest TCP connect plus TLS handshake, in milliseconds, before it counts as a connect error.
pub const LOADGEN_CONNECT_TIMEOUT_MS: u64 = 10_000;

/// Most source addresses (`--sources`, 127.0.0.1 to 127.0.0.K).
pub const LOADGEN_SOURCES_MAX: usize = 254;

/// Connection and protocol errors a load run prints on stderr (the rest are only counted).
pub const LOADGEN_MESSAGES_PRINTED_MAX: u64 = 5;

/// Highest latency a load run's histograms record, in microseconds (an hour, the longest
/// run); longer values are recorded as this.
pub const LOADGEN_LATENCY_US_MAX: u64 = 3_600_000_000;

/// Seconds without sending after which a simulated NerdMiner re-sends
/// `mining.suggest_difficulty` (the firmware's `KEEPALIVE_TIME_ms`, MINERS.md §2.1).
pub const LOADGEN_NERDMINER_KEEPALIVE_SECS: u64 = 30;

/// Most runtime worker threads of one load generator (`--threads`).
pub const LOADGEN_THREADS_MAX: usize = 64;

/// Pool errors printed with full details (the rest are only counted).
pub const LOADGEN_POOL_ERROR_DETAILS_MAX: usize = 10;

/// Nonces a grinder thread hashes per kernel batch, and real mode's search per request.
pub const LOADGEN_NONCES_PER_SLICE: u32 = 4096;

/// Most grinder threads (`--hash-threads`): the OS threads that search nonces off the I/O
/// threads.
pub const LOADGEN_HASH_THREADS_MAX: usize = 64;

/// Searches queued for the grinder threads at most; a connection that finds the queue full
/// retries after `LOADGEN_GRIND_RETRY_MS`.
pub const LOADGEN_GRIND_QUEUE: usize = 4096;

/// Delay before a connection retries a search the full grinder queue refused, in
/// milliseconds.
pub const LOADGEN_GRIND_RETRY_MS: u64 = 5;

/// Shares one search reports at most (real mode at a low difficulty finds several per slice).
pub const LOADGEN_GRIND_FOUND_MAX: usize = 256;

/// Results waiting on one connection's grinder reply channel at most (a connection has one
/// search out at a time).
pub const LOADGEN_GRIND_REPLIES: usize = 2;

/// Nice value of the grinder threads (Linux): below the I/O threads, so grinding on a shared
/// core does not delay reading the pool's replies.
pub const LOADGEN_GRINDER_NICE: i32 = 10;

/// Rate mode: shares one simulated miner submits on one extranonce2 (consecutive nonces from
/// a random start) before it takes the next, so the coinbase and the merkle branch are hashed
/// once per this many shares.
pub const LOADGEN_RATE_SHARES_PER_EN2: u32 = 64;

/// Ground valid shares a rate-mode connection keeps in stock for its scheduled valid submits.
pub const LOADGEN_VALID_STOCK: usize = 2;

/// Rate mode starts grinding a connection's next valid share this long before it is due (its
/// valid submits are drawn this far ahead), so the grinder threads have time to find it even
/// when the connection submits every few milliseconds.
pub const LOADGEN_VALID_LEAD_MS: u64 = 1000;

/// Most nonces rate mode tries to make one share valid (`--valid-fraction`): 2^26, a thousand
/// times the expected work at difficulty 2^-16.
pub const LOADGEN_GRIND_NONCES_MAX: u64 = 1 << 26;

/// Highest `--shares-per-min` per connection (one share every 6 ms).
pub const LOADGEN_SHARES_PER_MIN_MAX: f64 = 10_000.0;

/// Reconnect rounds at most (`--rounds`).
pub const LOADGEN_ROUNDS_MAX: u32 = 1000;

/// Largest oversized line a bad-input connection sends, in bytes.
pub const LOADGEN_OVERSIZED_LINE_BYTES: usize = 256 * 1024;

/// Requests in one burst of a flooding bad-input connection.
pub const LOADGEN_FLOOD_BURST: usize = 2000;

/// Longest wait for the node's answer to `generatetoaddress`, in milliseconds.
pub const LOADGEN_RPC_TIMEOUT_MS: u64 = 10_000;

const _: () = assert!(LOADGEN_READ_BYTES <= LOADGEN_LINE_BYTES_MAX);
const _: () = assert!(LOADGEN_OVERSIZED_LINE_BYTES > LINE_BYTES_MAX);
const _: () = assert!(LOADGEN_SOURCES_MAX <= 254);
