//! The HTTP server: its own thread (`warppool-http`) with a current-thread runtime at the API's
//! lower CPU priority, our own hyper connection loop around the axum router (so every bound
//! below holds, which `axum::serve` does not offer), and a clean stop.
//!
//! # Bounds
//! At most `HTTP_CONNECTIONS_MAX` connections at once (more wait in the kernel backlog);
//! request heads at most `HTTP_REQUEST_HEAD_BYTES_MAX`, read within
//! `HTTP_HEADER_READ_SECS`; each connection lives at most `HTTP_CONNECTION_SECS_MAX`.
//!
//! Each request carries its connection's peer address as an
//! [`axum::extract::ConnectInfo<SocketAddr>`] extension (for `/metrics`' loopback rule) and
//! its [`Scheme`].
//!
//! # HTTPS
//! A second listener may speak TLS (rustls, ring; [`super::tls`]): the handshake within
//! `HTTPS_HANDSHAKE_SECS`, then HTTP/2 or HTTP/1.1 as ALPN chose, at most
//! `HTTP2_STREAMS_PER_CONNECTION_MAX` concurrent streams per HTTP/2 connection. Both listeners
//! share the connection cap; every other bound holds for both.

use std::{
    net::SocketAddr,
    sync::{
        Arc,
        atomic::{AtomicU64, Ordering},
    },
    time::Duration,
};

use axum::{
    Router,
    extract::ConnectInfo,
    http::{HeaderValue, header},
};
use hyper_util::{
    rt::{TokioExecutor, TokioIo, TokioTimer},
    server::conn::auto,
    service::TowerToHyperService,
};
use tokio::{
    net::TcpListener,
    sync::{Semaphore, watch},
    time::Instant,
};
use tower::ServiceExt;
use warppool_core::limits::{
    API_QUERY_NICE, HTTP2_STREAMS_PER_CONNECTION_MAX, HTTPS_HANDSHAKE_SECS,
};
pub use warppool_core::limits::{
    HTTP_CONNECTION_SECS_MAX, HTTP_CONNECTIONS_MAX, HTTP_HEADER_READ_SECS,
    HTTP_REQUEST_HEAD_BYTES_MAX,
};

/// A connection's deadline (`HTTP_CONNECTION_SECS_MAX` from its start), which a long-lived
/// answer (an event stream) may push back; every request carries it as an extension, with the
/// peer's address as `ConnectInfo<SocketAddr>`.
#[derive(Debug, Clone)]
pub struct Lifetime(Arc<(std::sync::Mutex<Instant>, tokio::sync::Notify)>);

impl Lifetime {
    fn new(deadline: Instant) -> Self {
        Self(Arc::new((
            std::sync::Mutex::new(deadline),
            tokio::sync::Notify::new(),
        )))
    }

    fn deadline(&self) -> Instant {
        *self.0.0.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Moves the deadline to `at` if that is later.
    pub fn extend_to(&self, at: Instant) {
        let mut d = self.0.0.lock().unwrap_or_else(|e| e.into_inner());
        *d = (*d).max(at);
    }

    /// Ends the connection now (a stream that fell too far behind).
    pub fn cut(&self) {
        *self.0.0.lock().unwrap_or_else(|e| e.into_inner()) = Instant::now();
        self.0.1.notify_one();
    }
}

/// What the server listens on: plain HTTP, HTTPS (a rustls configuration), or both.
#[derive(Debug, Clone, Default)]
pub struct Listeners {
    /// Plain HTTP (loopback by default).
    pub plain: Option<SocketAddr>,
    /// HTTPS: the address and the TLS configuration (ALPN `h2`, `http/1.1`).
    pub tls: Option<(SocketAddr, Arc<rustls::ServerConfig>)>,
}

impl Listeners {
    /// Plain HTTP on `addr` only.
    #[must_use]
    pub fn plain(addr: SocketAddr) -> Self {
        Self {
            plain: Some(addr),
            tls: None,
        }
    }
}

/// How a request reached the server (an extension of every request): `Secure` cookies go
/// only over HTTPS.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scheme {
    /// Plain HTTP.
    Http,
    /// HTTPS (TLS, HTTP/1.1 or HTTP/2).
    Https,
}

/// A running HTTP server (see the module docs).
#[derive(Debug)]
pub struct HttpServer {
    addr: Option<SocketAddr>,
    tls_addr: Option<SocketAddr>,
    stop: watch::Sender<bool>,
    done: flume::Receiver<()>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl HttpServer {
    /// Binds `addr` and serves `router` until [`HttpServer::shutdown`].
    ///
    /// # Errors
    /// If the address cannot be bound or the thread not started.
    pub async fn start(addr: SocketAddr, router: Router) -> std::io::Result<Self> {
        Self::start_with(Listeners::plain(addr), router, |_| async {}).await
    }

    /// As [`HttpServer::start`] on `listeners`, and runs `background(stop)` on the server's
    /// thread beside it (the event ticker, the certificate watch); `stop` changes when the
    /// server stops.
    ///
    /// # Errors
    /// If an address cannot be bound or the thread not started.
    pub async fn start_with<F, Fut>(
        listeners: Listeners,
        router: Router,
        background: F,
    ) -> std::io::Result<Self>
    where
        F: FnOnce(watch::Receiver<bool>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let bind = |addr: SocketAddr| -> std::io::Result<std::net::TcpListener> {
            let listener = std::net::TcpListener::bind(addr)?;
            listener.set_nonblocking(true)?;
            Ok(listener)
        };
        let plain = listeners.plain.map(bind).transpose()?;
        let tls = match listeners.tls {
            Some((addr, config)) => Some((bind(addr)?, config)),
            None => None,
        };
        let addr = plain
            .as_ref()
            .map(std::net::TcpListener::local_addr)
            .transpose()?;
        let tls_addr = tls.as_ref().map(|(l, _)| l.local_addr()).transpose()?;
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()?;
        let (stop, stop_rx) = watch::channel(false);
        let (done_tx, done) = flume::bounded(1);
        let thread = std::thread::Builder::new()
            .name("warppool-http".to_owned())
            .spawn(move || {
                super::queries::lower_priority(API_QUERY_NICE);
                runtime.block_on(async move {
                    let beside = tokio::spawn(background(stop_rx.clone()));
                    serve_all(plain, tls, router, stop_rx).await;
                    beside.abort();
                });
                let _ = done_tx.send(());
            })?;
        Ok(Self {
            addr,
            tls_addr,
            stop,
            done,
            thread: Some(thread),
        })
    }

    /// The plain HTTP listener's bound address, if it has one.
    #[must_use]
    pub const fn local_addr(&self) -> Option<SocketAddr> {
        self.addr
    }

    /// The HTTPS listener's bound address, if it has one.
    #[must_use]
    pub const fn tls_addr(&self) -> Option<SocketAddr> {
        self.tls_addr
    }

    /// Stops accepting and waits for the server's thread (open connections are closed).
    pub async fn shutdown(mut self) {
        let _ = self.stop.send(true);
        let _ = self.done.recv_async().await;
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

async fn serve_all(
    plain: Option<std::net::TcpListener>,
    tls: Option<(std::net::TcpListener, Arc<rustls::ServerConfig>)>,
    router: Router,
    stop: watch::Receiver<bool>,
) {
    // One cap over both listeners.
    let permits = Arc::new(Semaphore::new(HTTP_CONNECTIONS_MAX));
    let mut tasks = tokio::task::JoinSet::new();
    let listen = |l: std::net::TcpListener| TcpListener::from_std(l);
    if let Some(l) = plain {
        match listen(l) {
            Ok(l) => {
                let (p, r, s) = (Arc::clone(&permits), router.clone(), stop.clone());
                tasks.spawn(serve(l, None, p, r, s));
            }
            Err(e) => tracing::error!(error = %e, "http listener lost"),
        }
    }
    if let Some((l, config)) = tls {
        match listen(l) {
            Ok(l) => {
                let acceptor = tokio_rustls::TlsAcceptor::from(config);
                let (p, r, s) = (Arc::clone(&permits), router.clone(), stop.clone());
                tasks.spawn(serve(l, Some(acceptor), p, r, s));
            }
            Err(e) => tracing::error!(error = %e, "https listener lost"),
        }
    }
    while tasks.join_next().await.is_some() {}
}

async fn serve(
    listener: TcpListener,
    tls: Option<tokio_rustls::TlsAcceptor>,
    permits: Arc<Semaphore>,
    router: Router,
    mut stop: watch::Receiver<bool>,
) {
    loop {
        let permit = tokio::select! {
            p = Arc::clone(&permits).acquire_owned() => match p {
                Ok(p) => p,
                Err(_) => return,
            },
            _ = stop.changed() => return,
        };
        let (stream, peer) = tokio::select! {
            r = listener.accept() => match r {
                Ok(s) => s,
                Err(e) => {
                    tracing::warn!(error = %e, "http accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
            },
            _ = stop.changed() => return,
        };
        let router = router.clone();
        let tls = tls.clone();
        tokio::spawn(async move {
            let _permit = permit;
            match tls {
                None => connection(stream, peer, router, Scheme::Http).await,
                Some(acceptor) => {
                    let handshake = Duration::from_secs(HTTPS_HANDSHAKE_SECS);
                    match tokio::time::timeout(handshake, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => connection(tls, peer, router, Scheme::Https).await,
                        Ok(Err(e)) => {
                            HANDSHAKE_FAILURES.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(%peer, error = %e, "https handshake failed");
                        }
                        Err(_) => {
                            HANDSHAKE_FAILURES.fetch_add(1, Ordering::Relaxed);
                            tracing::debug!(%peer, "https handshake timed out");
                        }
                    }
                }
            }
        });
    }
}

/// HTTPS handshakes that failed or timed out since start.
static HANDSHAKE_FAILURES: AtomicU64 = AtomicU64::new(0);

/// HTTPS handshakes that failed or timed out since start (every server of the process).
#[must_use]
pub fn https_handshake_failures() -> u64 {
    HANDSHAKE_FAILURES.load(Ordering::Relaxed)
}

/// An HTTP/2 request carries its host as `:authority`, not `Host`: give it the header, so the
/// `Host` check and the pages that name the host read one place.
fn host_from_authority<B>(req: &mut axum::http::Request<B>) {
    if req.headers().contains_key(header::HOST) {
        return;
    }
    let value = req
        .uri()
        .authority()
        .and_then(|a| HeaderValue::from_str(a.as_str()).ok());
    if let Some(value) = value {
        req.headers_mut().insert(header::HOST, value);
    }
}

async fn connection<S>(stream: S, peer: SocketAddr, router: Router, scheme: Scheme)
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin + Send + 'static,
{
    let lifetime = Lifetime::new(Instant::now() + Duration::from_secs(HTTP_CONNECTION_SECS_MAX));
    let on_request = lifetime.clone();
    let service = tower::service_fn(move |mut req: axum::http::Request<hyper::body::Incoming>| {
        host_from_authority(&mut req);
        req.extensions_mut().insert(on_request.clone());
        req.extensions_mut().insert(ConnectInfo(peer));
        req.extensions_mut().insert(scheme);
        router.clone().oneshot(req)
    });
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(HTTP_HEADER_READ_SECS))
        .max_buf_size(HTTP_REQUEST_HEAD_BYTES_MAX);
    builder
        .http2()
        .timer(TokioTimer::new())
        .max_concurrent_streams(HTTP2_STREAMS_PER_CONNECTION_MAX)
        .max_header_list_size(u32::try_from(HTTP_REQUEST_HEAD_BYTES_MAX).unwrap_or(u32::MAX));
    // Plain HTTP stays HTTP/1.1 (no h2c); HTTPS speaks what ALPN chose.
    let builder = if scheme == Scheme::Http {
        builder.http1_only()
    } else {
        builder
    };
    let conn = builder.serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
    tokio::pin!(conn);
    loop {
        let deadline = lifetime.deadline();
        tokio::select! {
            _ = &mut conn => return,
            () = tokio::time::sleep_until(deadline) => {}
            () = lifetime.0.1.notified() => {}
        }
        if lifetime.deadline() <= Instant::now() {
            return;
        }
    }
}
