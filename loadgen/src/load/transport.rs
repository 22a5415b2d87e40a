//! A miner's socket: plain TCP, or TLS driven by rustls over a Tokio `TcpStream` (sans-IO,
//! no extra crate). `read` is cancel-safe (its only await point is the socket read), so it can
//! sit in a `select!`.

use std::io::{self, Read, Write};
use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, RawFd};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime, pem::PemObject};
use rustls::{
    ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme,
};
use tokio::io::{AsyncWriteExt, Interest};
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
    enable_rx_stamps(stream.as_raw_fd())?;
    Ok(stream)
}

/// Asks the kernel to stamp received data (`SO_TIMESTAMPNS`): every read then also says when
/// its newest bytes reached the socket, however long this process took to get round to them
/// (one core simulating thousands of miners reads them one after another). The kernel turns
/// stamping on asynchronously, so the first reads of a run can come without a stamp; they are
/// then dated when loadgen handles them (the later, conservative time).
fn enable_rx_stamps(fd: RawFd) -> io::Result<()> {
    let on: libc::c_int = 1;
    // SAFETY: `fd` is an open socket owned by the caller; the option value is a live c_int
    // whose size is passed with it.
    let rc = unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_TIMESTAMPNS,
            (&raw const on).cast(),
            libc::socklen_t::try_from(size_of::<libc::c_int>()).unwrap_or(4),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}

/// One `recvmsg(2)` into `buf`: the bytes read and the kernel's receive time of the newest of
/// them (`SCM_TIMESTAMPNS`, wall clock), when the socket reports one.
fn recv_stamped(fd: RawFd, buf: &mut [u8]) -> io::Result<(usize, Option<SystemTime>)> {
    let mut iov = libc::iovec {
        iov_base: buf.as_mut_ptr().cast(),
        iov_len: buf.len(),
    };
    // Room for one `cmsghdr` + `timespec` (CMSG_SPACE(16) = 32 on 64-bit Linux) and more;
    // u64 elements keep the header aligned.
    let mut control = [0u64; 8];
    // SAFETY: an all-zero `msghdr` is a valid value (null pointers, zero lengths).
    let mut msg: libc::msghdr = unsafe { std::mem::zeroed() };
    msg.msg_iov = &raw mut iov;
    msg.msg_iovlen = 1;
    msg.msg_control = control.as_mut_ptr().cast();
    msg.msg_controllen = size_of_val(&control);
    // SAFETY: `msg` points at `iov` (covering `buf`) and `control`, all live and writable for
    // the call; the kernel writes at most their stated lengths.
    let n = unsafe { libc::recvmsg(fd, &raw mut msg, 0) };
    let Ok(n) = usize::try_from(n) else {
        return Err(io::Error::last_os_error());
    };
    let mut stamp = None;
    // SAFETY: the kernel filled `control` up to `msg.msg_controllen`; CMSG_FIRSTHDR/NXTHDR
    // only return headers inside that range (or null), and CMSG_DATA of an SCM_TIMESTAMPNS
    // header holds a `timespec` (read unaligned).
    unsafe {
        let mut c = libc::CMSG_FIRSTHDR(&raw const msg);
        while !c.is_null() {
            if (*c).cmsg_level == libc::SOL_SOCKET && (*c).cmsg_type == libc::SCM_TIMESTAMPNS {
                let ts: libc::timespec = std::ptr::read_unaligned(libc::CMSG_DATA(c).cast());
                if let (Ok(secs), Ok(nanos)) = (u64::try_from(ts.tv_sec), u32::try_from(ts.tv_nsec))
                {
                    stamp = UNIX_EPOCH.checked_add(Duration::new(secs, nanos));
                }
            }
            c = libc::CMSG_NXTHDR(&raw const msg, c);
        }
    }
    Ok((n, stamp))
}

/// Reads some bytes from `sock` with their receive stamp. Cancel-safe: the only await point
/// is readiness; the read itself does not block.
async fn read_stamped(sock: &TcpStream, buf: &mut [u8]) -> io::Result<(usize, Option<SystemTime>)> {
    loop {
        sock.readable().await?;
        match sock.try_io(Interest::READABLE, || recv_stamped(sock.as_raw_fd(), buf)) {
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            r => return r,
        }
    }
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
    /// The receive stamp of the last ciphertext read.
    stamp: Option<SystemTime>,
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
            stamp: None,
        };
        while s.conn.is_handshaking() {
            s.flush().await?;
            if s.conn.wants_read() {
                let (n, _) = read_stamped(&s.sock, &mut s.scratch).await?;
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

    /// Reads some bytes; 0 means the pool closed the connection. Also the kernel's receive
    /// time of the newest bytes behind them, when the socket gave one (see
    /// `enable_rx_stamps`). Cancel-safe.
    pub(crate) async fn read(&mut self, buf: &mut [u8]) -> io::Result<(usize, Option<SystemTime>)> {
        match self {
            Self::Plain(s) => read_stamped(s, buf).await,
            Self::Tls(t) => loop {
                match t.conn.reader().read(buf) {
                    Ok(n) => return Ok((n, t.stamp)),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                    Err(e) => return Err(e),
                }
                let (n, stamp) = read_stamped(&t.sock, &mut t.scratch).await?;
                if n == 0 {
                    return Ok((0, stamp));
                }
                t.stamp = stamp;
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

#[cfg(test)]
mod tests {
    use super::*;

    /// A real loopback socket: the kernel stamps what it receives, and the stamp lies between
    /// the send and the read on the wall clock. The kernel switches receive stamping on
    /// asynchronously (`net_enable_timestamp` defers enabling its static key to a work
    /// queue), so the first messages after the first `SO_TIMESTAMPNS` socket of the machine
    /// can arrive unstamped: the test sends until one is stamped, a bounded number of times.
    #[test]
    fn received_bytes_carry_the_kernels_receive_time() {
        const TRIES: usize = 50;
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let mut client =
            std::net::TcpStream::connect(listener.local_addr().expect("addr")).expect("connect");
        let (server, _) = listener.accept().expect("accept");
        enable_rx_stamps(server.as_raw_fd()).expect("SO_TIMESTAMPNS");
        let mut stamped = None;
        for _ in 0..TRIES {
            let before = SystemTime::now();
            client.write_all(b"{\"id\":1}\n").expect("send");
            std::thread::sleep(Duration::from_millis(20));
            let mut buf = [0u8; 64];
            let (n, stamp) = recv_stamped(server.as_raw_fd(), &mut buf).expect("recvmsg");
            let after = SystemTime::now();
            assert_eq!(&buf[..n], b"{\"id\":1}\n");
            if let Some(stamp) = stamp {
                stamped = Some((before, stamp, after));
                break;
            }
        }
        let (before, stamp, after) =
            stamped.unwrap_or_else(|| panic!("a receive stamp within {TRIES} messages"));
        assert!(
            stamp >= before && stamp <= after,
            "{stamp:?} not in {before:?}..{after:?}"
        );
        // Received 20 ms before the read: the stamp is the arrival, not the read.
        let read_lag = after.duration_since(stamp).expect("ordered");
        assert!(read_lag >= Duration::from_millis(15), "{read_lag:?}");
    }
}
