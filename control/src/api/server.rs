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
};
use tower::ServiceExt;
use warppool_core::limits::API_QUERY_NICE;

/// Most HTTP connections served at once.
pub const HTTP_CONNECTIONS_MAX: usize = 64;
/// Largest request head (request line and headers), in bytes.
pub const HTTP_REQUEST_HEAD_BYTES_MAX: usize = 16 * 1024;
/// Longest life of one HTTP connection, in seconds.
pub const HTTP_CONNECTION_SECS_MAX: u64 = 30;
/// Seconds a client has to send a request head.
pub const HTTP_HEADER_READ_SECS: u64 = 5;

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
                    match TcpListener::from_std(listener) {
                        Ok(listener) => serve(listener, router, stop_rx).await,
                        Err(e) => tracing::error!(error = %e, "http listener lost"),
                    }
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
        // The peer address rides on every request as axum's `ConnectInfo` (what
        // `into_make_service_with_connect_info` would insert): `/metrics` checks it.
        let service = TowerToHyperService::new(router.clone().map_request(
            move |mut request: axum::extract::Request<hyper::body::Incoming>| {
                request.extensions_mut().insert(ConnectInfo(peer));
                request
            },
        ));
        tokio::spawn(async move {
            let _permit = permit;
            let conn = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(Duration::from_secs(HTTP_HEADER_READ_SECS))
                .max_buf_size(HTTP_REQUEST_HEAD_BYTES_MAX)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(Duration::from_secs(HTTP_CONNECTION_SECS_MAX), conn).await;
        });
    }
}
