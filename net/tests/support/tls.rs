//! TLS test support: a self-signed certificate for `localhost`, installing its files for a
//! TLS listener, a rustls (ring) client configuration that trusts it, and a temporary
//! directory for the files.

#![allow(
    dead_code,
    unreachable_pub,
    reason = "a shared test module: each test binary uses a different part of it"
)]

use std::{
    path::{Path, PathBuf},
    sync::Arc,
};

use rustls::{ClientConfig, RootCertStore, pki_types::CertificateDer};
use warppool_net::TlsFiles;

/// A certificate with its key, as DER (for clients) and PEM (for the server's files).
pub struct Cert {
    pub der: CertificateDer<'static>,
    pub cert_pem: String,
    pub key_pem: String,
}

/// A fresh self-signed certificate for `localhost`.
pub fn self_signed() -> Cert {
    let certified = rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).unwrap();
    Cert {
        der: certified.cert.der().clone(),
        cert_pem: certified.cert.pem(),
        key_pem: certified.signing_key.serialize_pem(),
    }
}

/// A fresh directory `warppool-net-{name}-…` under the temporary directory, distinct per
/// process and thread.
pub fn temp_dir(name: &str) -> PathBuf {
    let dir = std::env::temp_dir().join(format!(
        "warppool-net-{name}-{}-{:?}",
        std::process::id(),
        std::thread::current().id()
    ));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).unwrap();
    dir
}

/// Writes the cert and key atomically (write then rename), key first.
pub fn install(dir: &Path, cert: &Cert) -> TlsFiles {
    let files = TlsFiles {
        cert_path: dir.join("cert.pem"),
        key_path: dir.join("key.pem"),
    };
    for (path, text) in [
        (&files.key_path, &cert.key_pem),
        (&files.cert_path, &cert.cert_pem),
    ] {
        let temp = path.with_extension("tmp");
        std::fs::write(&temp, text).unwrap();
        std::fs::rename(&temp, path).unwrap();
    }
    files
}

/// A rustls client configuration (ring provider) that trusts exactly `trusted`.
pub fn client_config(trusted: &[&Cert]) -> Arc<ClientConfig> {
    let mut roots = RootCertStore::empty();
    for cert in trusted {
        roots.add(cert.der.clone()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    Arc::new(
        ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots)
            .with_no_client_auth(),
    )
}
