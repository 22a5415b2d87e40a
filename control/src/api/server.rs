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
//! [`axum::extract::ConnectInfo<SocketAddr>`] extension (for `/metrics`' loopback rule).

use std::{net::SocketAddr, sync::Arc, time::Duration};

use axum::{Router, extract::ConnectInfo};
use hyper_util::{
    rt::{TokioIo, TokioTimer},
    service::TowerToHyperService,
};
use tokio::{
    net::TcpListener,
    sync::{Semaphore, watch},
    time::Instant,
};
use tower::ServiceExt;
use warppool_core::limits::API_QUERY_NICE;
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

/// A running HTTP server (see the module docs).
#[derive(Debug)]
pub struct HttpServer {
    addr: SocketAddr,
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
        Self::start_with(addr, router, |_| async {}).await
    }

    /// As [`HttpServer::start`], and runs `background(stop)` on the server's thread beside it
    /// (the event ticker); `stop` changes when the server stops.
    ///
    /// # Errors
    /// If the address cannot be bound or the thread not started.
    pub async fn start_with<F, Fut>(
        addr: SocketAddr,
        router: Router,
        background: F,
    ) -> std::io::Result<Self>
    where
        F: FnOnce(watch::Receiver<bool>) -> Fut + Send + 'static,
        Fut: std::future::Future<Output = ()> + Send + 'static,
    {
        let listener = std::net::TcpListener::bind(addr)?;
        listener.set_nonblocking(true)?;
        let addr = listener.local_addr()?;
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
                    match TcpListener::from_std(listener) {
                        Ok(listener) => serve(listener, router, stop_rx).await,
                        Err(e) => tracing::error!(error = %e, "http listener lost"),
                    }
                    beside.abort();
                });
                let _ = done_tx.send(());
            })?;
        Ok(Self {
            addr,
            stop,
            done,
            thread: Some(thread),
        })
    }

    /// The bound address.
    #[must_use]
    pub const fn local_addr(&self) -> SocketAddr {
        self.addr
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

async fn serve(listener: TcpListener, router: Router, mut stop: watch::Receiver<bool>) {
    let permits = Arc::new(Semaphore::new(HTTP_CONNECTIONS_MAX));
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
        tokio::spawn(async move {
            let _permit = permit;
            connection(stream, peer, router).await;
        });
    }
}

async fn connection(stream: tokio::net::TcpStream, peer: SocketAddr, router: Router) {
    let lifetime = Lifetime::new(Instant::now() + Duration::from_secs(HTTP_CONNECTION_SECS_MAX));
    let on_request = lifetime.clone();
    let service = tower::service_fn(move |mut req: axum::http::Request<hyper::body::Incoming>| {
        req.extensions_mut().insert(on_request.clone());
        req.extensions_mut().insert(ConnectInfo(peer));
        router.clone().oneshot(req)
    });
    let conn = hyper::server::conn::http1::Builder::new()
        .timer(TokioTimer::new())
        .header_read_timeout(Duration::from_secs(HTTP_HEADER_READ_SECS))
        .max_buf_size(HTTP_REQUEST_HEAD_BYTES_MAX)
        .serve_connection(TokioIo::new(stream), TowerToHyperService::new(service));
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
