//! Worker connection sessions (`worker_sessions`, schema v9): one row per authorized
//! connection, opened by the data plane's `Authorized`, closed by its `Closed` with the reason.

use rusqlite::{Connection, params};
use warppool_core::plane::CloseReason;

use super::SessionStart;

/// The end reason a stopped pool leaves on the sessions that were open (closed at the next
/// start, at the worker's last activity).
pub const POOL_STOPPED: &str = "pool_stopped";

/// The end reason of a session whose connection authorized again under another name.
pub const REAUTHORIZED: &str = "reauthorized";

/// The stored label of a close reason.
#[must_use]
pub fn close_reason_label(reason: CloseReason) -> &'static str {
    match reason {
        CloseReason::PeerClosed => "peer_closed",
        CloseReason::SocketError => "socket_error",
        CloseReason::Protocol => "protocol",
        CloseReason::LineTooLong => "line_too_long",
        CloseReason::SlowReader => "slow_reader",
        CloseReason::SubscribeTimeout => "subscribe_timeout",
        CloseReason::IdleTimeout => "idle_timeout",
        CloseReason::TlsError => "tls_error",
        CloseReason::TlsOnPlainPort => "tls_on_plain_port",
        CloseReason::Shutdown => "shutdown",
        CloseReason::Kicked => "kicked",
        CloseReason::Banned => "banned",
        _ => "other",
    }
}

/// Opens a session (a re-authorize on the same connection ends the one it had).
pub(super) fn start(connection: &Connection, s: &SessionStart) -> rusqlite::Result<()> {
    let id = i64::try_from(s.connection).unwrap_or(i64::MAX);
    end(connection, s.connection, REAUTHORIZED, s.time_unix_s)?;
    let worker = super::writer::worker_id(connection, &s.worker, s.time_unix_s)?;
    let ip = s.peer.ip().to_canonical().to_string();
    connection
        .prepare_cached(
            "INSERT INTO worker_sessions (worker_id, connection, started_unix_s, user_agent, ip,
                 peer_port, local_port, tls) VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?
        .execute(params![
            worker,
            id,
            s.time_unix_s,
            s.user_agent,
            ip,
            s.peer.port(),
            s.local_port,
            s.tls
        ])?;
    Ok(())
}

/// Ends the open session of `connection`, if any.
pub(super) fn end(
    connection: &Connection,
    id: u64,
    reason: &str,
    time_unix_s: i64,
) -> rusqlite::Result<()> {
    let id = i64::try_from(id).unwrap_or(i64::MAX);
    connection
        .prepare_cached(
            "UPDATE worker_sessions SET ended_unix_s = max(started_unix_s, ?2), end_reason = ?3
             WHERE connection = ?1 AND ended_unix_s IS NULL",
        )?
        .execute(params![id, time_unix_s, reason])?;
    Ok(())
}

/// Ends the sessions a stopped pool left open, at their worker's last activity. Connection
/// ids start again with each run, so none of them can be closed by a later `Closed`.
pub(super) fn close_stale(connection: &Connection) -> rusqlite::Result<usize> {
    connection.execute(
        "UPDATE worker_sessions SET end_reason = ?1, ended_unix_s = max(started_unix_s,
             coalesce((SELECT last_seen_unix_s FROM workers w WHERE w.id = worker_id), 0))
         WHERE ended_unix_s IS NULL",
        [POOL_STOPPED],
    )
}
