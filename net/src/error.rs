//! Errors of the data plane's launch API.

use std::{io, net::SocketAddr, path::PathBuf};

/// Why the data plane could not start (or a TLS certificate could not be loaded).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum NetError {
    /// The configuration is inconsistent (the message says how).
    #[error("invalid configuration: {0}")]
    Config(&'static str),
    /// A listening socket could not be created, bound or put into listening state.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// The configured address.
        addr: SocketAddr,
        /// The operating system's error.
        source: io::Error,
    },
    /// A certificate or key file could not be read or parsed.
    #[error("cannot load tls file {path}: {message}")]
    TlsFile {
        /// The file.
        path: PathBuf,
        /// What went wrong.
        message: String,
    },
    /// rustls refused the certificate and key.
    #[error("tls configuration refused: {0}")]
    Tls(#[from] rustls::Error),
    /// A shard thread or its runtime could not be started.
    #[error("cannot start shard {shard}: {source}")]
    Shard {
        /// The shard index.
        shard: usize,
        /// The operating system's error.
        source: io::Error,
    },
}
