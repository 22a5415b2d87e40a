//! A miner's socket: plain TCP, or TLS driven by rustls over a Tokio `TcpStream` (sans-IO,
//! no extra crate). `read` is cancel-safe (its only await point is the socket read), so it can
//! sit in a `select!`.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// TLS settings of a run.
#[derive(Debug, Clone)]
pub(crate) struct TlsClient {
    config: Arc<ClientConfig>,
    server_name: ServerName<'static>,
}

impl TlsClient {
    /// Builds the client: `insecure` accepts any certificate (a pool's self-signed one);
    /// otherwise `ca_file` (PEM) holds the trusted roots.
    pub(crate) fn new(
        insecure: bool,
        ca_file: Option<&Path>,
        server_name: Option<&str>,
        target: SocketAddr,
    ) -> Result<Self, String> {
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(Arc::clone(&provider))
            .with_safe_default_protocol_versions()
            .map_err(|e| format!("TLS: {e}"))?;
        let config = if insecure {
            builder
                .dangerous()
                .with_custom_certificate_verifier(Arc::new(AcceptAny(provider)))
                .with_no_client_auth()
        } else {
            let path = ca_file.ok_or("--tls needs --tls-insecure or --tls-ca FILE")?;
            let mut roots = RootCertStore::empty();
            for cert in CertificateDer::pem_file_iter(path)
                .map_err(|e| format!("--tls-ca {}: {e}", path.display()))?
            {
                let cert = cert.map_err(|e| format!("--tls-ca {}: {e}", path.display()))?;
                roots
                    .add(cert)
                    .map_err(|e| format!("--tls-ca {}: {e}", path.display()))?;
            }
            if roots.is_empty() {
                return Err(format!("--tls-ca {}: no certificate in it", path.display()));
            }
            builder.with_root_certificates(roots).with_no_client_auth()
        };
        let server_name = match server_name {
            Some(n) => ServerName::try_from(n.to_owned())
                .map_err(|e| format!("--tls-server-name {n}: {e}"))?,
            None => ServerName::IpAddress(target.ip().into()),
        };
        Ok(Self {
            config: Arc::new(config),
            server_name,
        })
    }
}

/// Accepts every certificate (`--tls-insecure`); signatures are still checked.
#[derive(Debug)]
struct AcceptAny(Arc<rustls::crypto::CryptoProvider>);

impl ServerCertVerifier for AcceptAny {
    fn verify_server_cert(
        &self,
        _end_entity: &CertificateDer<'_>,
        _intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp: &[u8],
        _now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

/// Opens a TCP connection from `source` (port chosen by the kernel) to `target`.
pub(crate) async fn connect(source: Option<IpAddr>, target: SocketAddr) -> io::Result<TcpStream> {
    let socket = if target.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(ip) = source {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = socket.connect(target).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

/// A connected socket.
#[derive(Debug)]
pub(crate) enum Transport {
    Plain(TcpStream),
    Tls(Box<TlsStream>),
}

/// rustls over a Tokio socket.
#[derive(Debug)]
pub(crate) struct TlsStream {
    sock: TcpStream,
    conn: ClientConnection,
    scratch: Vec<u8>,
    out: Vec<u8>,
}

impl Transport {
    /// Wraps `sock` in TLS and completes the handshake.
    pub(crate) async fn tls(sock: TcpStream, client: &TlsClient) -> io::Result<Self> {
        let conn = ClientConnection::new(Arc::clone(&client.config), client.server_name.clone())
            .map_err(io::Error::other)?;
        let mut s = TlsStream {
            sock,
            conn,
            scratch: vec![0; 4096],
            out: Vec::new(),
        };
        while s.conn.is_handshaking() {
            s.flush().await?;
            if s.conn.wants_read() {
                let n = s.sock.read(&mut s.scratch).await?;
                if n == 0 {
                    return Err(io::Error::new(
                        io::ErrorKind::UnexpectedEof,
                        "TLS handshake: the pool closed the connection",
                    ));
                }
                s.feed(n)?;
            }
        }
        s.flush().await?;
        Ok(Self::Tls(Box::new(s)))
    }

    /// Reads some bytes; 0 means the pool closed the connection. Cancel-safe.
    pub(crate) async fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Self::Plain(s) => s.read(buf).await,
            Self::Tls(t) => loop {
                match t.conn.reader().read(buf) {
                    Ok(n) => return Ok(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
                let n = t.sock.read(&mut t.scratch).await?;
                if n == 0 {
                    return Ok(0);
                }
                t.feed(n)?;
            },
        }
    }

    /// Writes all of `data`.
    pub(crate) async fn write_all(&mut self, data: &[u8]) -> io::Result<()> {
        match self {
            Self::Plain(s) => s.write_all(data).await,
            Self::Tls(t) => {
                t.conn.writer().write_all(data)?;
                t.flush().await
            }
        }
    }
}

impl TlsStream {
    fn feed(&mut self, n: usize) -> io::Result<()> {
        let mut input = &self.scratch[..n];
        while !input.is_empty() {
            self.conn.read_tls(&mut input)?;
            self.conn
                .process_new_packets()
                .map_err(|e| io::Error::new(io::ErrorKind::InvalidData, e))?;
        }
        Ok(())
    }

    async fn flush(&mut self) -> io::Result<()> {
        while self.conn.wants_write() {
            self.out.clear();
            self.conn.write_tls(&mut self.out)?;
            self.sock.write_all(&self.out).await?;
        }
        Ok(())
    }
}
