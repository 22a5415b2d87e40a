//! The API's HTTPS certificate: a given one (PEM files, re-read when they change or on
//! SIGHUP) or a generated self-signed one persisted next to the database (so its fingerprint
//! is the same after a restart), served by rustls with the ring provider only.
//!
//! # Reload
//! A given certificate's and key's modification times (and sizes) are checked every
//! `HTTPS_CERT_POLL_SECS`; a change, or SIGHUP, re-reads both. A new pair that does not load
//! (not PEM, no key, a key that does not match the certificate) is refused: the old one stays
//! in use, the refusal is logged and counted ([`HttpsCert::reload_failures`]).
//!
//! # Fingerprint
//! The SHA-256 of the leaf certificate (DER), colon-separated upper-case hex as browsers show
//! it: logged at start and at each reload, printed by `warppool tls fingerprint`, and in
//! `GET /api/v1/connect`'s `https` endpoint.

mod selfsigned;

use std::{
    path::{Path, PathBuf},
    sync::{
        Arc, RwLock,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, SystemTime},
};

use rustls::{
    ServerConfig,
    crypto::CryptoProvider,
    server::{ClientHello, ResolvesServerCert},
    sign::CertifiedKey,
};
use rustls_pki_types::{CertificateDer, PrivateKeyDer, pem::PemObject};
use tokio::sync::watch;
use warppool_core::limits::{HTTPS_CERT_POLL_SECS, HTTPS_PEM_FILE_BYTES_MAX};

pub use self::selfsigned::{GENERATED_CERT_FILE, GENERATED_KEY_FILE, host_name, machine_names};

/// Why a certificate could not be loaded.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum TlsError {
    /// A file could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// A file is not what it should be.
    #[error("{path}: {problem}")]
    Bad {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        problem: String,
    },
    /// The certificate could not be generated.
    #[error("cannot generate a self-signed certificate: {0}")]
    Generate(String),
}

fn bad(path: &Path, problem: impl Into<String>) -> TlsError {
    TlsError::Bad {
        path: path.to_path_buf(),
        problem: problem.into(),
    }
}

/// Where the certificate comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum CertSource {
    /// Given PEM files (`[http] tls_cert`, `tls_key`), re-read when they change.
    Files {
        /// The certificate chain, leaf first.
        cert: PathBuf,
        /// The private key.
        key: PathBuf,
    },
    /// Generated once and kept in `dir` (the database's directory).
    SelfSigned {
        /// Where the files live.
        dir: PathBuf,
    },
}

impl CertSource {
    /// The certificate and key files this source reads.
    #[must_use]
    pub fn paths(&self) -> (PathBuf, PathBuf) {
        match self {
            Self::Files { cert, key } => (cert.clone(), key.clone()),
            Self::SelfSigned { dir } => {
                (dir.join(GENERATED_CERT_FILE), dir.join(GENERATED_KEY_FILE))
            }
        }
    }
}

/// The SHA-256 of `der`, colon-separated upper-case hex.
#[must_use]
pub fn sha256_colon_hex(der: &[u8]) -> String {
    let digest = warppool_hash::sha256(der);
    let hex: Vec<String> = digest.iter().map(|b| format!("{b:02X}")).collect();
    hex.join(":")
}

fn read_pem_file(path: &Path) -> Result<Vec<u8>, TlsError> {
    let io = |source| TlsError::Io {
        path: path.to_path_buf(),
        source,
    };
    let len = std::fs::metadata(path).map_err(io)?.len();
    if len > HTTPS_PEM_FILE_BYTES_MAX {
        return Err(bad(
            path,
            format!("{len} bytes; at most {HTTPS_PEM_FILE_BYTES_MAX}"),
        ));
    }
    std::fs::read(path).map_err(io)
}

/// A certificate chain and key loaded and checked against each other, with the leaf's
/// fingerprint.
#[derive(Debug)]
pub struct LoadedCert {
    key: Arc<CertifiedKey>,
    /// The leaf's SHA-256 fingerprint.
    pub fingerprint: String,
}

fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Loads `cert` (PEM chain, leaf first) and `key` (PEM private key).
///
/// # Errors
/// [`TlsError`] naming the file: unreadable, too large, no certificate, no key, or a key that
/// does not match the certificate.
pub fn load(cert: &Path, key: &Path) -> Result<LoadedCert, TlsError> {
    let cert_pem = read_pem_file(cert)?;
    let key_pem = read_pem_file(key)?;
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(&cert_pem)
        .collect::<Result<_, _>>()
        .map_err(|e| bad(cert, format!("not a PEM certificate chain: {e}")))?;
    let Some(leaf) = chain.first() else {
        return Err(bad(cert, "no certificate in the file"));
    };
    let fingerprint = sha256_colon_hex(leaf);
    let private = PrivateKeyDer::from_pem_slice(&key_pem)
        .map_err(|e| bad(key, format!("no PEM private key: {e}")))?;
    let certified = CertifiedKey::from_der(chain, private, &provider())
        .map_err(|e| bad(key, format!("key refused for this certificate: {e}")))?;
    Ok(LoadedCert {
        key: Arc::new(certified),
        fingerprint,
    })
}

/// The certificate the HTTPS listener serves now (see the module docs).
#[derive(Debug)]
pub struct HttpsCert {
    source: CertSource,
    current: RwLock<Arc<LoadedCert>>,
    reload_failures: AtomicU64,
    reloads: AtomicU64,
}

impl HttpsCert {
    /// Loads the certificate of `source`; a self-signed one is generated first if its files do
    /// not exist yet (`names`: the DNS names and addresses it should hold).
    ///
    /// # Errors
    /// [`TlsError`] naming the file.
    pub fn open(source: CertSource, names: &[String]) -> Result<Arc<Self>, TlsError> {
        let (cert, key) = source.paths();
        if let CertSource::SelfSigned { dir } = &source {
            selfsigned::ensure(dir, names)?;
        }
        let loaded = load(&cert, &key)?;
        tracing::info!(
            cert = %cert.display(),
            fingerprint_sha256 = %loaded.fingerprint,
            self_signed = matches!(source, CertSource::SelfSigned { .. }),
            "https certificate loaded"
        );
        Ok(Arc::new(Self {
            source,
            current: RwLock::new(Arc::new(loaded)),
            reload_failures: AtomicU64::new(0),
            reloads: AtomicU64::new(0),
        }))
    }

    /// The served certificate's SHA-256 fingerprint.
    #[must_use]
    pub fn fingerprint(&self) -> String {
        self.loaded().fingerprint.clone()
    }

    /// New certificates refused since start (the old one stayed).
    #[must_use]
    pub fn reload_failures(&self) -> u64 {
        self.reload_failures.load(Ordering::Relaxed)
    }

    /// New certificates taken since start.
    #[must_use]
    pub fn reloads(&self) -> u64 {
        self.reloads.load(Ordering::Relaxed)
    }

    fn loaded(&self) -> Arc<LoadedCert> {
        Arc::clone(&self.current.read().unwrap_or_else(|e| e.into_inner()))
    }

    /// The rustls configuration: this certificate, ALPN `h2` and `http/1.1`.
    ///
    /// # Errors
    /// [`TlsError::Generate`] if the provider refuses the protocol versions (never with ring).
    pub fn server_config(self: &Arc<Self>) -> Result<Arc<ServerConfig>, TlsError> {
        let mut config = ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| TlsError::Generate(e.to_string()))?
            .with_no_client_auth()
            .with_cert_resolver(Arc::clone(self) as Arc<dyn ResolvesServerCert>);
        config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
        Ok(Arc::new(config))
    }

    /// Re-reads a given certificate; keeps the old one if the new one does not load.
    pub fn reload(&self, why: &'static str) {
        let (cert, key) = self.source.paths();
        match load(&cert, &key) {
            Ok(loaded) => {
                tracing::info!(
                    cert = %cert.display(), why,
                    fingerprint_sha256 = %loaded.fingerprint,
                    "https certificate reloaded"
                );
                *self.current.write().unwrap_or_else(|e| e.into_inner()) = Arc::new(loaded);
                self.reloads.fetch_add(1, Ordering::Relaxed);
            }
            Err(e) => {
                self.reload_failures.fetch_add(1, Ordering::Relaxed);
                tracing::error!(
                    error = %e, why,
                    fingerprint_sha256 = %self.fingerprint(),
                    "new https certificate refused; the old one stays in use"
                );
            }
        }
    }

    /// Watches a given certificate's files (and SIGHUP) until `stop` changes; returns at once
    /// for a self-signed one.
    pub async fn watch(self: Arc<Self>, mut stop: watch::Receiver<bool>) {
        if !matches!(self.source, CertSource::Files { .. }) {
            return;
        }
        let (cert, key) = self.source.paths();
        let stamp = move || [file_stamp(&cert), file_stamp(&key)];
        let mut seen = stamp();
        let mut hangup =
            tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).ok();
        let mut tick = tokio::time::interval(Duration::from_secs(HTTPS_CERT_POLL_SECS));
        tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            let why = tokio::select! {
                _ = tick.tick() => "file changed",
                Some(()) = async { match hangup.as_mut() {
                    Some(h) => h.recv().await,
                    None => std::future::pending().await,
                } } => "SIGHUP",
                _ = stop.changed() => return,
            };
            let now = stamp();
            if why == "SIGHUP" || now != seen {
                seen = now;
                self.reload(why);
            }
        }
    }
}

/// A file's modification time and size (`None` if it cannot be read).
fn file_stamp(path: &Path) -> Option<(SystemTime, u64)> {
    let meta = std::fs::metadata(path).ok()?;
    Some((meta.modified().ok()?, meta.len()))
}

impl ResolvesServerCert for HttpsCert {
    fn resolve(&self, _hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        Some(Arc::clone(&self.loaded().key))
    }
}
