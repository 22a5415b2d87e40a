//! The control plane's error types, one per module (STYLE rule 9): operating errors are
//! values; lowercase messages; `#[non_exhaustive]`.

use std::{path::PathBuf, time::Duration};

use warppool_core::limits::{CONFIG_FILE_BYTES_MAX, RPC_RESPONSE_BYTES_MAX};

/// Why a configuration could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum ConfigError {
    /// The file could not be read.
    #[error("cannot read config file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
    /// The file is larger than `CONFIG_FILE_BYTES_MAX`.
    #[error("config file {path} is {bytes} bytes; at most {CONFIG_FILE_BYTES_MAX} allowed")]
    TooLarge {
        /// The file.
        path: PathBuf,
        /// Its size.
        bytes: u64,
    },
    /// Not TOML, an unknown key or a value of the wrong type.
    #[error("config is not valid: {0}")]
    Syntax(String),
    /// An environment override could not be applied.
    #[error("environment override {var}: {problem}")]
    Env {
        /// The variable.
        var: String,
        /// What is wrong.
        problem: String,
    },
    /// A value is out of range or inconsistent.
    #[error("config key `{key}`: {problem}; allowed: {allowed}")]
    Invalid {
        /// The key, as a TOML path (`node[1].rpc_url`).
        key: String,
        /// What is wrong.
        problem: String,
        /// What is allowed.
        allowed: String,
    },
}

/// Why an RPC call failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RpcError {
    /// Connection refused, reset, or another transport failure.
    #[error("transport: {0}")]
    Transport(String),
    /// No reply within the request's timeout.
    #[error("timed out after {0:?}")]
    Timeout(Duration),
    /// An HTTP error status without a JSON-RPC error body (401, 403, 503…).
    #[error("http status {0}")]
    HttpStatus(u16),
    /// The node answered with a JSON-RPC error object.
    #[error("rpc error {code}: {message}")]
    Rpc {
        /// The JSON-RPC error code (Core's `RPCErrorCode`, e.g. -10 in initial block download).
        code: i64,
        /// The message.
        message: String,
    },
    /// The reply was not the expected JSON.
    #[error("decode: {0}")]
    Decode(String),
    /// The reply was larger than `RPC_RESPONSE_BYTES_MAX`.
    #[error("reply larger than {RPC_RESPONSE_BYTES_MAX} bytes")]
    TooLarge,
    /// The cookie file could not be read.
    #[error("cookie file: {0}")]
    Cookie(String),
    /// Every node is backing off after failures.
    #[error("no node available (all backing off after failures)")]
    NoNodeAvailable,
}

impl RpcError {
    /// Whether the node itself is unreachable or broken (as opposed to answering an error).
    #[must_use]
    pub fn is_node_failure(&self) -> bool {
        !matches!(self, Self::Rpc { .. })
    }
}

/// Why the journal failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum JournalError {
    /// Opening, writing or syncing failed.
    #[error("block journal {path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
}
