//! The storage error type.

use std::time::Duration;

/// Why a storage operation failed. Operating errors only; a bug in this module panics instead.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StorageError {
    /// SQLite reported an error.
    #[error("sqlite: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// The database was written by a newer WarpPool: its schema version is unknown here.
    #[error(
        "database schema version {found} is newer than the newest this build knows ({known}); \
         upgrade warppool or restore a backup"
    )]
    SchemaTooNew {
        /// `PRAGMA user_version` of the file.
        found: u32,
        /// Newest version this build can migrate to.
        known: u32,
    },
    /// The writer's channel was full and the record could be dropped (statistics, events).
    #[error("storage channel full, {what} dropped")]
    ChannelFull {
        /// What was dropped.
        what: &'static str,
    },
    /// A record that must not be dropped (a block) waited too long for room in the channel.
    #[error("storage channel still full after {waited:?}, {what} not queued")]
    Timeout {
        /// What was not queued.
        what: &'static str,
        /// How long the caller waited.
        waited: Duration,
    },
    /// The writer thread has stopped (after `shutdown`, or because it panicked).
    #[error("storage writer has stopped")]
    WriterStopped,
    /// The writer failed to commit a batch; the message is SQLite's.
    #[error("storage write failed: {0}")]
    Write(String),
    /// The writer thread could not be spawned.
    #[error("cannot spawn the storage writer thread: {0}")]
    Spawn(#[source] std::io::Error),
}
