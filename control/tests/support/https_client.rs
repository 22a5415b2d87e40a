//! A real HTTPS client for the API tests: rustls (ring) trusting one certificate file, then
//! hyper's HTTP/2 or HTTP/1.1 client on the connection as ALPN chose.

#![allow(
    dead_code,
    reason = "each test file uses a different part of the support module"
)]
#![allow(
    unreachable_pub,
    reason = "a test support module included with #[path]"
)]

use std::{net::SocketAddr, path::Path, sync::Arc};

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::{Request, Response, body::Incoming};
use hyper_util::rt::{TokioExecutor, TokioIo};
use rustls_pki_types::{CertificateDer, ServerName, pem::PemObject};

/// The negotiated protocol's sender.
pub enum Sender {
    H2(hyper::client::conn::http2::SendRequest<Full<Bytes>>),
    H1(hyper::client::conn::http1::SendRequest<Full<Bytes>>),
}

/// One TLS connection to the API.
pub struct Conn {
    pub sender: Sender,
    /// ALPN's choice.
    pub alpn: Option<Vec<u8>>,
    /// The SHA-256 of the certificate the server showed, colon hex.
    pub peer_fingerprint: String,
    pub addr: SocketAddr,
}

/// A rustls client trusting only the certificate in `cert_pem`.
pub fn client_config(cert_pem: &Path, alpn: &[&[u8]]) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_file_iter(cert_pem).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    config.alpn_protocols = alpn.iter().map(|p| p.to_vec()).collect();
    Arc::new(config)
}

/// Connects to `addr` (as `127.0.0.1`), trusting `cert_pem`, offering `alpn`.
pub async fn connect(addr: SocketAddr, cert_pem: &Path, alpn: &[&[u8]]) -> Conn {
    try_connect(addr, client_config(cert_pem, alpn))
        .await
        .expect("tls connect")
}

/// As [`connect`] with a given configuration; the handshake's error if it fails.
pub async fn try_connect(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
) -> Result<Conn, std::io::Error> {
    try_connect_as(addr, config, ServerName::IpAddress(addr.ip().into())).await
}

/// As [`try_connect`], verifying the certificate for `name` (a browser that typed a host name).
pub async fn try_connect_as(
    addr: SocketAddr,
    config: Arc<rustls::ClientConfig>,
    name: ServerName<'static>,
) -> Result<Conn, std::io::Error> {
    let tcp = tokio::net::TcpStream::connect(addr).await?;
    let tls = tokio_rustls::TlsConnector::from(config)
        .connect(name, tcp)
        .await?;
    let (_, session) = tls.get_ref();
    let alpn = session.alpn_protocol().map(<[u8]>::to_vec);
    let leaf = session.peer_certificates().unwrap()[0].clone();
    let peer_fingerprint = warppool_control::api::tls::sha256_colon_hex(&leaf);
    let io = TokioIo::new(tls);
    let sender = if alpn.as_deref() == Some(b"h2") {
        let (send, conn) = hyper::client::conn::http2::handshake(TokioExecutor::new(), io)
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(conn);
        Sender::H2(send)
    } else {
        let (send, conn) = hyper::client::conn::http1::handshake(io)
            .await
            .map_err(std::io::Error::other)?;
        tokio::spawn(conn);
        Sender::H1(send)
    };
    Ok(Conn {
        sender,
        alpn,
        peer_fingerprint,
        addr,
    })
}

impl Conn {
    /// Sends `method path` with `headers` and a JSON `body` (if any); the answer's head and
    /// body stream.
    pub async fn send(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&serde_json::Value>,
    ) -> Response<Incoming> {
        let uri = format!("https://{}{path}", self.addr);
        let mut req = Request::builder().method(method).uri(uri);
        if matches!(self.sender, Sender::H1(_)) {
            req = req.header("host", self.addr.to_string());
        }
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        let bytes = match body {
            Some(b) => {
                req = req.header("content-type", "application/json");
                Bytes::from(serde_json::to_vec(b).unwrap())
            }
            None => Bytes::new(),
        };
        let req = req.body(Full::new(bytes)).unwrap();
        match &mut self.sender {
            Sender::H2(s) => s.send_request(req).await.unwrap(),
            Sender::H1(s) => {
                s.ready().await.unwrap();
                s.send_request(req).await.unwrap()
            }
        }
    }

    /// As [`Conn::send`], reading the whole body as JSON (`Null` if empty or not JSON).
    pub async fn json(
        &mut self,
        method: &str,
        path: &str,
        headers: &[(&str, &str)],
        body: Option<&serde_json::Value>,
    ) -> (u16, hyper::HeaderMap, serde_json::Value) {
        let r = self.send(method, path, headers, body).await;
        let status = r.status().as_u16();
        let head = r.headers().clone();
        let bytes = r.into_body().collect().await.unwrap().to_bytes();
        let value = serde_json::from_slice(&bytes).unwrap_or(serde_json::Value::Null);
        (status, head, value)
    }
}
