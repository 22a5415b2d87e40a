//! TLS: rustls (ring provider only) server configurations loaded from PEM files, and the
//! reloader thread that swaps in a new configuration when the files change.
//!
//! Each TLS listener has an `Arc<ArcSwap<ServerConfig>>`. A shard loads it at every accept,
//! so new handshakes use the newest certificate while established sessions keep theirs.

use std::{
    path::Path,
    sync::Arc,
    time::{Duration, SystemTime},
};

use arc_swap::ArcSwap;
use rustls::ServerConfig;
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};

use crate::{config::TlsFiles, error::NetError};

/// Builds a server configuration from PEM files.
pub(crate) fn load_server_config(files: &TlsFiles) -> Result<Arc<ServerConfig>, NetError> {
    let pem_error = |path: &Path, error: rustls_pki_types::pem::Error| NetError::TlsFile {
        path: path.to_owned(),
        message: error.to_string(),
    };
    let certs = CertificateDer::pem_file_iter(&files.cert_path)
        .map_err(|e| pem_error(&files.cert_path, e))?
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(&files.cert_path, e))?;
    if certs.is_empty() {
        return Err(NetError::TlsFile {
            path: files.cert_path.clone(),
            message: "no certificate in file".to_owned(),
        });
    }
    let key =
        PrivateKeyDer::from_pem_file(&files.key_path).map_err(|e| pem_error(&files.key_path, e))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(certs, key)?;
    Ok(Arc::new(config))
}

fn modified(files: &TlsFiles) -> Option<(SystemTime, SystemTime)> {
    let cert = std::fs::metadata(&files.cert_path)
        .and_then(|m| m.modified())
        .ok()?;
    let key = std::fs::metadata(&files.key_path)
        .and_then(|m| m.modified())
        .ok()?;
    Some((cert, key))
}

/// One TLS listener's files and its live configuration.
#[derive(Debug)]
pub(crate) struct Reloadable {
    pub(crate) files: TlsFiles,
    pub(crate) config: Arc<ArcSwap<ServerConfig>>,
    seen: Option<(SystemTime, SystemTime)>,
}

impl Reloadable {
    pub(crate) fn new(files: TlsFiles) -> Result<Self, NetError> {
        let seen = modified(&files);
        let config = Arc::new(ArcSwap::new(load_server_config(&files)?));
        Ok(Self {
            files,
            config,
            seen,
        })
    }

    /// Reloads when either file's modification time changed. A file that fails to parse
    /// (for example half-written) keeps the old configuration; the next poll retries.
    pub(crate) fn poll(&mut self) -> bool {
        let now = modified(&self.files);
        if now.is_none() || now == self.seen {
            return false;
        }
        match load_server_config(&self.files) {
            Ok(config) => {
                self.config.store(config);
                self.seen = now;
                true
            }
            Err(_) => false,
        }
    }
}

/// Polls the files every `interval` until `stop` is signalled (or its sender dropped).
pub(crate) fn reload_loop(
    mut reloadables: Vec<Reloadable>,
    interval: Duration,
    stop: flume::Receiver<()>,
) {
    loop {
        match stop.recv_timeout(interval) {
            Err(flume::RecvTimeoutError::Timeout) => {}
            Ok(()) | Err(flume::RecvTimeoutError::Disconnected) => return,
        }
        for reloadable in &mut reloadables {
            reloadable.poll();
        }
    }
}
