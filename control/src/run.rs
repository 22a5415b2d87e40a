//! The wiring of `warppool run`: the Tokio runtime, the data plane, the control tasks and
//! graceful shutdown. `anyhow` is used here only (STYLE rule 9).
//!
//! # Runtime
//!
//! A multi-thread Tokio runtime with `CONTROL_WORKER_THREADS` named workers
//! (`warppool-ctl-N`) and at most `CONTROL_BLOCKING_THREADS_MAX` blocking threads
//! (journal `fsync`). Two workers rather than a current-thread runtime: a large
//! `getblocktemplate` parse (tens of ms for a full mempool) must not delay the `hashblock`
//! path or the block path, and the shards own the remaining cores.
//!
//! # Shutdown (SIGINT or SIGTERM)
//!
//! 1. The shutdown signal stops the template tasks.
//! 2. The data plane stops: listeners close, connections close, shard threads join; its
//!    candidate and statistics queues close after their last item.
//! 3. The block path drains the remaining candidates (each journaled and synced) and waits for
//!    in-flight submissions (bounded by `CONTROL_SHUTDOWN_MS_MAX`; unfinished ones are pending
//!    in the journal and replayed at the next start).
//! 4. The recorder is flushed, the journal synced, and the process exits 0.

use std::{net::SocketAddr, sync::Arc, time::Duration};

use anyhow::Context;
use tokio::{
    sync::watch,
    task::{JoinHandle, JoinSet},
};
use warppool_core::limits::{
    CONTROL_BLOCKING_THREADS_MAX, CONTROL_SHUTDOWN_MS_MAX, CONTROL_WORKER_THREADS,
};
use warppool_net::stratum::{JobSet, StratumPlane, start_stratum};

mod http;

use self::http::{HttpSettings, start_http};
use crate::{
    api::HttpServer,
    blocks::{BlockPath, BlockThread},
    config::{Config, NodeConfig, PortSettings},
    journal::Journal,
    metrics::{ListenerLabels, PoolSources},
    rpc::Nodes,
    stats::{Recorder, SqliteRecorder, drain_block_events, drain_stats, publish_difficulties_task},
    storage::{Storage, StorageConfig},
    templates::{JobSink, TemplateLoop, longpoll_task, watchdog_task, zmq_task},
};

const SECS_PER_DAY: u64 = 86_400;

/// Builds the control plane's runtime (see the module docs).
///
/// # Errors
/// If the runtime cannot be built.
pub fn build_runtime() -> anyhow::Result<tokio::runtime::Runtime> {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(CONTROL_WORKER_THREADS)
        .max_blocking_threads(CONTROL_BLOCKING_THREADS_MAX)
        .thread_name_fn(|| {
            static NEXT: std::sync::atomic::AtomicUsize = std::sync::atomic::AtomicUsize::new(0);
            let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            format!("warppool-ctl-{n}")
        })
        .enable_all()
        .build()
        .context("cannot build the control plane runtime")
}

/// Opens admin authentication on the pool's database; prints the first-run setup token while
/// no admin exists. `None` (logged) if it cannot be opened: the admin API then answers 503.
async fn open_auth(database: &std::path::Path) -> Option<Arc<crate::auth::Auth>> {
    let config = crate::auth::AuthConfig::new(database);
    let opened = tokio::task::spawn_blocking(move || crate::auth::Auth::open(config)).await;
    match opened {
        Ok(Ok(auth)) => {
            if matches!(auth.needs_setup(), Ok(true))
                && let Some(token) = auth.setup_token()
            {
                tracing::warn!(
                    setup_token = token.expose(),
                    "no admin yet: open the admin setup from this machine, or from elsewhere \
                     with this one-time setup token"
                );
            }
            Some(Arc::new(auth))
        }
        Ok(Err(e)) => {
            tracing::error!(error = %e, "admin authentication unavailable");
            None
        }
        Err(e) => {
            tracing::error!(error = %e, "admin authentication failed to open");
            None
        }
    }
}

/// The control tasks: template loop, watchdog, long-poll, ZMQ, difficulty publication, block
/// path wake-ups and the network view.
fn spawn_control(
    config: &Config,
    nodes: &Arc<Nodes>,
    template_loop: &Arc<TemplateLoop>,
    block_path: &Arc<BlockPath>,
    recorder: &Arc<dyn Recorder>,
    shutdown_rx: &watch::Receiver<bool>,
) -> (JoinSet<()>, watch::Receiver<crate::network::NetworkView>) {
    let mut control = JoinSet::new();
    control.spawn(Arc::clone(template_loop).run(shutdown_rx.clone()));
    control.spawn(watchdog_task(
        Arc::clone(template_loop),
        shutdown_rx.clone(),
    ));
    control.spawn(longpoll_task(
        Arc::clone(template_loop),
        shutdown_rx.clone(),
    ));
    spawn_zmq_tasks(&mut control, template_loop, &config.nodes, shutdown_rx);
    if recorder.worker_difficulties().is_some() {
        control.spawn(publish_difficulties_task(
            Arc::clone(recorder),
            shutdown_rx.clone(),
        ));
    }
    control.spawn(wake_block_path_on_new_tip(
        Arc::clone(template_loop),
        Arc::clone(block_path),
        shutdown_rx.clone(),
    ));
    let (network_tx, network) = watch::channel(crate::network::NetworkView::default());
    let zmq = config
        .nodes
        .iter()
        .map(|n| n.zmq_hashblock.is_some())
        .collect();
    control.spawn(crate::network::watch_task(
        Arc::clone(nodes),
        zmq,
        network_tx,
        shutdown_rx.clone(),
    ));
    (control, network)
}

/// What the API is told about the pool at start (listeners, TLS fingerprints, limits).
fn api_info(config: &Config) -> crate::api::PoolInfo {
    let endpoints = config
        .ports
        .iter()
        .map(|p| {
            let fingerprint = p.listener.tls.as_ref().and_then(|tls| {
                crate::api::v1::connect::fingerprint(&tls.cert_path)
                    .map_err(|e| {
                        tracing::warn!(
                            cert = %tls.cert_path.display(), error = %e,
                            "no TLS fingerprint for the connect page"
                        );
                    })
                    .ok()
            });
            crate::api::v1::connect::Endpoint::new(p.listener.addr, fingerprint)
        })
        .collect();
    let min_difficulty = config
        .ports
        .iter()
        .map(|p| p.policy.vardiff.difficulty_min.to_f64_lossy())
        .fold(f64::INFINITY, f64::min);
    crate::api::PoolInfo {
        version: env!("CARGO_PKG_VERSION"),
        network: config.network,
        started_at: crate::api::now_s(),
        demo: config.demo,
        endpoints,
        min_difficulty,
        ui: config.ui,
        config: crate::api::v1::diagnostics::ConfigSummary::of(config),
    }
}

/// Runs the pool until SIGINT or SIGTERM.
///
/// # Errors
/// Start-up failures (journal, nodes, listeners).
pub fn run(config: Config) -> anyhow::Result<()> {
    let runtime = build_runtime()?;
    runtime.block_on(async {
        let stop = shutdown_signal();
        let daemon = Daemon::start(config).await?;
        stop.await;
        daemon.shutdown().await
    })
}

/// The whole daemon: storage ([`SqliteRecorder`] on the configured database), the pool and the
/// HTTP API (when `[http] listen` is set).
#[derive(Debug)]
pub struct Daemon {
    pool: Pool,
    recorder: Arc<SqliteRecorder>,
    http: Option<HttpServer>,
}

impl Daemon {
    /// Opens the database, starts the pool and the HTTP API.
    ///
    /// # Errors
    /// Start-up failures (database, journal, nodes, listeners).
    pub async fn start(config: Config) -> anyhow::Result<Self> {
        let mut storage_config = StorageConfig::new(config.database.clone());
        storage_config.share_minutes_retention =
            Duration::from_secs(config.share_minutes_retention_days * SECS_PER_DAY);
        storage_config.events_retention =
            Duration::from_secs(config.events_retention_days * SECS_PER_DAY);
        // Opening reads the stored worker difficulties too: off the runtime's workers.
        let recorder = tokio::task::spawn_blocking(move || {
            Storage::open(storage_config).map(SqliteRecorder::new)
        })
        .await
        .context("storage open panicked")?
        .with_context(|| format!("cannot open the database {}", config.database.display()))?;
        let recorder = Arc::new(recorder);
        let config = with_stored_overrides(config).await;
        let live_config = config.clone();
        if !config.demo {
            for w in &config.warnings {
                tracing::warn!("{w}");
            }
        }
        let info = api_info(&config);
        let database = config.database.clone();
        let http_listen = config.http_listen;
        let https = config.https.clone();
        let nodes = (
            config.nodes.clone(),
            config.secrets_path.clone(),
            crate::config::saved_nodes_path(&config.database),
        );
        let pool = Pool::start(config, Arc::clone(&recorder) as Arc<dyn Recorder>).await?;
        let auth = open_auth(&database).await;
        if let Some(auth) = &auth {
            load_bans(auth, pool.admin()).await;
        }
        let http = if http_listen.is_some() || https.is_some() {
            let listen = HttpSettings {
                plain: http_listen,
                https,
                database,
                nodes,
                live_config,
                auth,
            };
            Some(start_http(listen, info, &pool, &recorder).await?)
        } else {
            None
        };
        Ok(Self {
            pool,
            recorder,
            http,
        })
    }

    /// The running pool.
    #[must_use]
    pub const fn pool(&self) -> &Pool {
        &self.pool
    }

    /// Storage and counters.
    #[must_use]
    pub const fn recorder(&self) -> &Arc<SqliteRecorder> {
        &self.recorder
    }

    /// The HTTP API's bound plain address, if it runs.
    #[must_use]
    pub fn http_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().and_then(HttpServer::local_addr)
    }

    /// The HTTPS listener's bound address, if it runs.
    #[must_use]
    pub fn https_addr(&self) -> Option<SocketAddr> {
        self.http.as_ref().and_then(HttpServer::tls_addr)
    }

    /// Stops the HTTP API, the pool (which flushes storage), then the storage writer.
    ///
    /// # Errors
    /// As [`Pool::shutdown`].
    pub async fn shutdown(self) -> anyhow::Result<()> {
        if let Some(http) = self.http {
            http.shutdown().await;
        }
        let result = self.pool.shutdown().await;
        let recorder = self.recorder;
        tokio::task::spawn_blocking(move || recorder.shutdown())
            .await
            .context("storage shutdown panicked")?;
        result
    }
}

/// `config` with the admin API's stored overrides applied (decision 0017). Overrides that no
/// longer validate over this file are logged and left out: the pool starts on the file.
async fn with_stored_overrides(config: Config) -> Config {
    let database = config.database.clone();
    let loaded =
        tokio::task::spawn_blocking(move || crate::settings::load_overrides(&database)).await;
    let overrides = match loaded {
        Ok(Ok(overrides)) => overrides,
        Ok(Err(e)) => {
            tracing::error!(error = %e, "cannot read the stored configuration overrides");
            return config;
        }
        Err(e) => {
            tracing::error!(error = %e, "reading the configuration overrides panicked");
            return config;
        }
    };
    if overrides.is_empty() {
        return config;
    }
    match config.with_changes(&overrides) {
        Ok(changed) => {
            let keys: Vec<&String> = overrides.keys().collect();
            tracing::info!(?keys, "configuration overrides of the admin API applied");
            changed
        }
        Err(e) => {
            tracing::error!(
                error = %e,
                "the stored configuration overrides do not validate over this file; \
                 starting on the file alone"
            );
            config
        }
    }
}

/// Hands the stored address bans to the data plane (it started with none: a banned address
/// that connected meanwhile is closed now). A failure is logged; the pool runs without bans.
async fn load_bans(auth: &Arc<crate::auth::Auth>, plane: &warppool_net::PlaneAdmin) {
    let auth = Arc::clone(auth);
    let loaded = tokio::task::spawn_blocking(move || {
        auth.store()
            .with_connection(|c| crate::bans::load(c, crate::api::now_s()))
    })
    .await;
    match loaded {
        Ok(Ok(bans)) => {
            if !bans.is_empty() {
                tracing::info!(bans = bans.len(), "address bans loaded");
            }
            plane.set_bans(crate::bans::ban_list(&bans));
        }
        Ok(Err(e)) => tracing::error!(error = %e, "cannot load the address bans; none apply"),
        Err(e) => tracing::error!(error = %e, "loading the address bans panicked; none apply"),
    }
}

/// Listens for SIGINT and SIGTERM from the moment it is called, and returns a future that
/// resolves on the first of them.
///
/// The handlers are installed before the returned future is polled, so a signal that arrives
/// while the daemon is still starting (systemd stopping a unit that is coming up) is kept and
/// ends the pool cleanly once start-up is done, instead of killing it by the default action.
pub fn shutdown_signal() -> impl std::future::Future<Output = ()> {
    use tokio::signal::unix::{SignalKind, signal};
    let term = signal(SignalKind::terminate());
    let int = signal(SignalKind::interrupt());
    async move {
        match (term, int) {
            (Ok(mut term), Ok(mut int)) => tokio::select! {
                _ = int.recv() => tracing::info!("SIGINT: shutting down"),
                _ = term.recv() => tracing::info!("SIGTERM: shutting down"),
            },
            (term, int) => {
                for e in [term.err(), int.err()].into_iter().flatten() {
                    tracing::error!(error = %e, "cannot listen for a signal; waiting for ctrl-c");
                }
                let _ = tokio::signal::ctrl_c().await;
            }
        }
    }
}

/// Runs the pool with `recorder` until `stop` resolves (tests pass their own future).
///
/// # Errors
/// Start-up failures (journal, nodes, listeners) and shutdown failures (journal sync).
pub async fn run_async(
    config: Config,
    recorder: Arc<dyn Recorder>,
    stop: impl std::future::Future<Output = ()>,
) -> anyhow::Result<()> {
    let pool = Pool::start(config, recorder).await?;
    stop.await;
    pool.shutdown().await
}

/// A running pool: data plane and control tasks (see [`Pool::start`], [`Pool::shutdown`]).
pub struct Pool {
    plane: Arc<StratumPlane>,
    local_addrs: Vec<SocketAddr>,
    recorder: Arc<dyn Recorder>,
    block_path: Arc<BlockPath>,
    template_loop: Arc<TemplateLoop>,
    shutdown_tx: watch::Sender<bool>,
    control: JoinSet<()>,
    blocks_thread: BlockThread,
    events_task: JoinHandle<()>,
    stats_tasks: Vec<JoinHandle<()>>,
    network: watch::Receiver<crate::network::NetworkView>,
    metrics: PoolSources,
    jobs: Arc<crate::payout::LastJobs>,
    ports: warppool_net::stratum::PortPolicies,
}

impl std::fmt::Debug for Pool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Pool")
            .field("local_addrs", &self.local_addrs)
            .finish_non_exhaustive()
    }
}

impl Pool {
    /// Opens the journal (and replays it in the background), starts the data plane, the
    /// block path, statistics draining and the template tasks.
    ///
    /// # Errors
    /// Start-up failures (journal, nodes, listeners).
    pub async fn start(config: Config, recorder: Arc<dyn Recorder>) -> anyhow::Result<Self> {
        let nodes = Arc::new(Nodes::new(&config.nodes).context("cannot build the RPC clients")?);
        check_node_networks(&nodes, config.network).await?;
        let journal =
            Journal::open(&config.block_journal).context("cannot open the block journal")?;
        // The block path has its own RPC clients: their connections live on its own thread's
        // runtime, so nothing the control plane's runtime does can delay a block.
        let block_nodes =
            Arc::new(Nodes::new(&config.nodes).context("cannot build the RPC clients")?);
        let (block_path, block_events) = BlockPath::new(Arc::clone(&block_nodes), journal);
        let block_path = Arc::new(block_path);
        let events_task = tokio::spawn(drain_block_events(block_events, Arc::clone(&recorder)));

        let waiting = JobSet::waiting(config.network, config.coinbase.clone());
        let net = config.net_config();
        let mut stratum = config.stratum_config();
        let ports = stratum.live_ports.clone();
        let stored_difficulties = recorder.worker_difficulties();
        if let Some(stored) = &stored_difficulties {
            // Vardiff persistence: the shards consult the recorder's lookup at authorize.
            stratum.stored_difficulties = stored.clone();
        }
        let plane = tokio::task::spawn_blocking(move || start_stratum(net, stratum, waiting))
            .await
            .context("data plane start panicked")?
            .context("cannot start the data plane")?;
        let local_addrs = plane.local_addrs().to_vec();
        let listeners = listening(&local_addrs, &config.ports);
        let plane = Arc::new(plane);

        // Unfinished blocks of an earlier run go out first, then the new candidates.
        let blocks_thread = Arc::clone(&block_path)
            .spawn(plane.candidates().clone())
            .context("cannot start the block path thread")?;
        let stats_tasks: Vec<_> = plane
            .stats_receivers()
            .iter()
            .map(|q| {
                let (q, recorder) = (q.clone(), Arc::clone(&recorder));
                tokio::task::spawn_blocking(move || drain_stats(&q, recorder.as_ref()))
            })
            .collect();

        let (shutdown_tx, shutdown_rx) = watch::channel(false);
        let jobs = Arc::new(crate::payout::LastJobs::default());
        let template_loop = Arc::new(TemplateLoop::new(
            Arc::clone(&nodes),
            jobs.recording(Arc::clone(&plane) as Arc<dyn JobSink>),
            config.template,
            config.network,
            config.coinbase.clone(),
        ));
        let (control, network) = spawn_control(
            &config,
            &nodes,
            &template_loop,
            &block_path,
            &recorder,
            &shutdown_rx,
        );
        template_loop.trigger();
        Ok(Self {
            metrics: PoolSources::new(&plane, &template_loop, [nodes, block_nodes], listeners),
            plane,
            local_addrs,
            recorder,
            block_path,
            template_loop,
            shutdown_tx,
            control,
            blocks_thread,
            events_task,
            stats_tasks,
            network,
            jobs,
            ports,
        })
    }

    /// What the admin API changes while running ([`crate::settings`]).
    #[must_use]
    pub fn live_targets(&self) -> crate::settings::LiveTargets {
        crate::settings::LiveTargets {
            plane: Arc::downgrade(&self.plane),
            ports: self.ports.clone(),
            templates: Arc::clone(&self.template_loop),
        }
    }

    /// What the nodes say about themselves and the chain (refreshed every
    /// `NETWORK_REFRESH_SECS`).
    #[must_use]
    pub fn network(&self) -> watch::Receiver<crate::network::NetworkView> {
        self.network.clone()
    }

    /// The job set published last (for the payout check).
    #[must_use]
    pub fn jobs(&self) -> &Arc<crate::payout::LastJobs> {
        &self.jobs
    }

    /// The bound address of each Stratum port, in configuration order.
    #[must_use]
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// The template loop (status, manual triggers).
    #[must_use]
    pub fn template_loop(&self) -> &Arc<TemplateLoop> {
        &self.template_loop
    }

    /// The data plane's operator commands (kicks, bans).
    #[must_use]
    pub fn admin(&self) -> &warppool_net::PlaneAdmin {
        self.plane.admin()
    }

    /// What `/metrics` reads of the pool.
    #[must_use]
    pub const fn metrics_sources(&self) -> &PoolSources {
        &self.metrics
    }

    /// Stops everything in order (see the module docs).
    ///
    /// # Errors
    /// If the journal cannot be synced.
    pub async fn shutdown(self) -> anyhow::Result<()> {
        let Self {
            plane,
            local_addrs: _,
            recorder,
            block_path,
            template_loop,
            shutdown_tx,
            mut control,
            blocks_thread,
            events_task,
            stats_tasks,
            network: _,
            metrics: _,
            jobs: _,
            ports: _,
        } = self;
        // 1. Stop the template tasks (they hold the plane through the sink).
        let _ = shutdown_tx.send(true);
        let deadline = Duration::from_millis(CONTROL_SHUTDOWN_MS_MAX);
        if tokio::time::timeout(deadline, async {
            while control.join_next().await.is_some() {}
        })
        .await
        .is_err()
        {
            tracing::warn!("control tasks did not stop in time; aborting them");
            control.abort_all();
            while control.join_next().await.is_some() {}
        }
        drop(template_loop);

        // 2. Stop the data plane: listeners and connections close, queues close after their
        //    last item.
        match Arc::try_unwrap(plane) {
            Ok(plane) => {
                tokio::task::spawn_blocking(move || plane.stop())
                    .await
                    .context("data plane stop panicked")?;
            }
            Err(_) => tracing::error!("data plane still shared at shutdown; dropping it"),
        }

        // 3. Drain the block path (every remaining candidate is journaled before submission;
        //    the thread syncs the journal when it stops).
        if !blocks_thread.join(deadline).await {
            tracing::warn!(
                "block submissions still running at shutdown; they stay unfinished in the journal"
            );
        }
        for task in stats_tasks {
            let _ = task.await;
        }

        // 4. Sync the journal, flush storage.
        let sync = Arc::clone(&block_path);
        tokio::task::spawn_blocking(move || sync.sync_journal())
            .await
            .context("journal sync panicked")?
            .context("cannot sync the block journal")?;
        drop(block_path);
        let _ = tokio::time::timeout(deadline, events_task).await;
        tokio::task::spawn_blocking(move || recorder.flush())
            .await
            .context("flush panicked")?;
        tracing::info!("stopped");
        Ok(())
    }
}

/// Logs each Stratum listener and names it for the metrics (port and protocol).
fn listening(local_addrs: &[SocketAddr], ports: &[PortSettings]) -> Vec<ListenerLabels> {
    local_addrs
        .iter()
        .zip(ports)
        .map(|(addr, port)| {
            let tls = port.listener.tls.is_some();
            tracing::info!(%addr, tls, "stratum listening");
            ListenerLabels::new(*addr, tls)
        })
        .collect()
}

/// One `hashblock` subscriber per node with a ZMQ endpoint.
fn spawn_zmq_tasks(
    control: &mut JoinSet<()>,
    template_loop: &Arc<TemplateLoop>,
    nodes: &[NodeConfig],
    shutdown: &watch::Receiver<bool>,
) {
    for endpoint in nodes.iter().filter_map(|n| n.zmq_hashblock.as_ref()) {
        control.spawn(zmq_task(
            Arc::clone(template_loop),
            endpoint.clone(),
            shutdown.clone(),
        ));
    }
}

/// Wakes the block tracker on every new tip: confirmations change only then, and a reorg is
/// a new tip too.
async fn wake_block_path_on_new_tip(
    template_loop: Arc<TemplateLoop>,
    block_path: Arc<BlockPath>,
    mut shutdown: watch::Receiver<bool>,
) {
    let mut status = template_loop.status();
    let mut height = status.borrow().height;
    loop {
        tokio::select! {
            changed = status.changed() => {
                if changed.is_err() { return; }
                let now = status.borrow_and_update().height;
                if now != height {
                    height = now;
                    block_path.wake();
                }
            }
            _ = shutdown.changed() => {
                if *shutdown.borrow() { return; }
            }
        }
    }
}

/// Refuses to start when a reachable node runs another network than the configured one (every
/// payout address is validated for the configured network, so such a pool could never pay
/// anyone). An unreachable node is only warned about: the template loop gates work until it
/// answers.
async fn check_node_networks(nodes: &Nodes, network: bitcoin::Network) -> anyhow::Result<()> {
    for client in nodes.clients() {
        let info: Result<crate::rpc::BlockchainInfo, _> = client
            .call("getblockchaininfo", serde_json::json!([]))
            .await;
        match info {
            Ok(info) => {
                let chain = bitcoin::Network::from_core_arg(&info.chain).ok();
                if chain != Some(network) {
                    anyhow::bail!(
                        "node {} runs the {} chain, but the pool is configured for {network} \
                         (`network` in the configuration)",
                        client.name(),
                        info.chain
                    );
                }
            }
            Err(e) => {
                tracing::warn!(node = client.name(), error = %e, "cannot check the node's chain");
            }
        }
    }
    Ok(())
}
