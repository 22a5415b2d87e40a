//! The launch API: [`start`] builds the listeners and shard threads and returns a
//! [`DataPlane`] handle.

use std::{collections::HashSet, net::SocketAddr, os::fd::AsRawFd, sync::Arc, thread::JoinHandle};

use arc_swap::ArcSwap;
use compio::driver::{DriverType, ProactorBuilder};
use warppool_core::limits::{
    BLOCK_CANDIDATES_PER_SHARD_MAX, LISTEN_BACKLOG, SHARD_ADMIN_QUEUE_MAX, SHARD_CONTROL_QUEUE_MAX,
    STATS_BATCHES_QUEUED_PER_SHARD_MAX,
};

use crate::{
    admin::{BanList, PlaneAdmin, ShardAdmin, ShardLine},
    admission::IpTable,
    config::NetConfig,
    counters::{CountersSnapshot, ShardCounters},
    error::NetError,
    plain::Eventfd,
    protocol::{Protocol, ShardId},
    settings::LiveSettings,
    shard::{Events, ShardListener, ShardMsg, ShardSetup, StatsBatch, run},
    tls::{Reloadable, reload_loop},
};

/// The I/O driver a shard's runtime ended up with.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Driver {
    /// io_uring.
    IoUring,
    /// epoll through the `polling` crate (forced, or io_uring unavailable).
    Poll,
}

/// How a shard reads its plain (non-TLS) connections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PlainIo {
    /// Multishot recv into a provided-buffer ring on the shard's own io_uring (io_uring
    /// driver, kernel support probed at shard start).
    Ring,
    /// `recv(2)` on edge-triggered epoll readiness (polling driver, or the probe failed).
    Epoll,
}

struct ShardHandle {
    thread: Option<JoinHandle<()>>,
    control: flume::Sender<ShardMsg>,
    commands: flume::Sender<crate::admin::AdminCmd>,
    driver: Driver,
    plain_io: PlainIo,
    counters: Arc<ShardCounters>,
}

/// A running data plane (see [`start`]). Dropping it stops it like [`DataPlane::stop`].
pub struct DataPlane<J, S, C> {
    shards: Vec<ShardHandle>,
    local_addrs: Vec<SocketAddr>,
    jobs: Arc<ArcSwap<J>>,
    settings: Arc<ArcSwap<LiveSettings>>,
    ip_table: Arc<IpTable>,
    stats: Vec<flume::Receiver<StatsBatch<S>>>,
    candidates: flume::Receiver<C>,
    tls_stop: Option<flume::Sender<()>>,
    tls_thread: Option<JoinHandle<()>>,
    admin: PlaneAdmin,
}

impl<J, S, C> std::fmt::Debug for DataPlane<J, S, C> {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("DataPlane")
            .field("shards", &self.shards.len())
            .field("local_addrs", &self.local_addrs)
            .finish_non_exhaustive()
    }
}

impl<J, S, C> DataPlane<J, S, C> {
    /// The bound address of each configured listener, in configuration order (port 0 is
    /// replaced by the port actually bound, shared by all shards).
    pub fn local_addrs(&self) -> &[SocketAddr] {
        &self.local_addrs
    }

    /// Number of shards.
    pub fn shard_count(&self) -> usize {
        self.shards.len()
    }

    /// The driver each shard's runtime uses, by shard index.
    pub fn drivers(&self) -> Vec<Driver> {
        self.shards.iter().map(|s| s.driver).collect()
    }

    /// How each shard reads its plain connections, by shard index.
    pub fn plain_io(&self) -> Vec<PlainIo> {
        self.shards.iter().map(|s| s.plain_io).collect()
    }

    /// Publishes new jobs: swaps them in and wakes every shard, which calls `on_jobs` for each
    /// of its connections. Wake-ups coalesce, so publishing faster than the shards fan out
    /// delivers the newest jobs at least once.
    pub fn publish(&self, jobs: Arc<J>) {
        // Stamped before the swap: a shard that sees these jobs sees this time or a newer one.
        for shard in &self.shards {
            shard.counters.published();
        }
        self.jobs.store(jobs);
        for shard in &self.shards {
            // Full: a wake-up is already queued and will load the newest jobs.
            let _ = shard.control.try_send(ShardMsg::Jobs);
        }
    }

    /// Applies new live settings (see `crate::settings`): the per-IP cap at once, the rest
    /// on each shard at its next control message (a coalescing wake-up is sent now).
    ///
    /// # Errors
    /// [`NetError::Config`] when a value is out of range (nothing changes then).
    pub fn apply_settings(&self, settings: LiveSettings) -> Result<(), NetError> {
        settings.validate()?;
        self.ip_table.set_cap(settings.connections_per_ip_max);
        self.settings.store(Arc::new(settings));
        for shard in &self.shards {
            // Full: a queued message applies the newest settings too.
            let _ = shard.control.try_send(ShardMsg::Settings);
        }
        Ok(())
    }

    /// The live settings in force.
    pub fn settings(&self) -> LiveSettings {
        **self.settings.load()
    }

    /// The operator command handle (kicks, bans; see [`crate::admin`]).
    pub fn admin(&self) -> &PlaneAdmin {
        &self.admin
    }

    /// The per-shard statistics queues (bounded; batches of at most `SHARE_STATS_BATCH_MAX`).
    /// Drop each batch when done with it: its buffer goes back to the shard.
    pub fn stats_receivers(&self) -> &[flume::Receiver<StatsBatch<S>>] {
        &self.stats
    }

    /// The block candidate queue shared by all shards (bounded by
    /// `BLOCK_CANDIDATES_PER_SHARD_MAX` × shards; must be drained continuously).
    pub fn candidates(&self) -> &flume::Receiver<C> {
        &self.candidates
    }

    /// Each shard's counters, by shard index.
    pub fn counters(&self) -> Vec<CountersSnapshot> {
        self.shards.iter().map(|s| s.counters.snapshot()).collect()
    }

    /// All shards' counters summed.
    pub fn counters_total(&self) -> CountersSnapshot {
        let mut total = CountersSnapshot::default();
        for shard in &self.shards {
            total += shard.counters.snapshot();
        }
        total
    }

    /// Closes the listeners and every connection (each protocol `on_close` runs with
    /// [`crate::CloseReason::Shutdown`]) and joins the shard threads.
    pub fn stop(mut self) {
        self.stop_inner();
    }

    fn stop_inner(&mut self) {
        for shard in &self.shards {
            // Blocks only until the shard has drained its (tiny) control queue.
            let _ = shard.control.send(ShardMsg::Stop);
        }
        for shard in &mut self.shards {
            if let Some(thread) = shard.thread.take() {
                let _ = thread.join();
            }
        }
        drop(self.tls_stop.take());
        if let Some(thread) = self.tls_thread.take() {
            let _ = thread.join();
        }
    }
}

impl<J, S, C> Drop for DataPlane<J, S, C> {
    fn drop(&mut self) {
        self.stop_inner();
    }
}

fn bind_reuseport(addr: SocketAddr) -> std::io::Result<std::net::TcpListener> {
    use socket2::{Domain, Socket, Type};
    let socket = Socket::new(
        Domain::for_address(addr),
        Type::STREAM,
        Some(socket2::Protocol::TCP),
    )?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    socket.bind(&addr.into())?;
    socket.listen(LISTEN_BACKLOG)?;
    Ok(socket.into())
}

/// The [`DataPlane`] handle type for protocol `P`.
pub type DataPlaneOf<P> =
    DataPlane<<P as Protocol>::Jobs, <P as Protocol>::Stat, <P as Protocol>::Candidate>;

/// Starts the data plane: binds one `SO_REUSEPORT` socket per listener per shard, starts the
/// shard threads (each builds its protocol with `protocol_factory`) and, if any listener is
/// TLS, the certificate reloader thread. Returns once every shard is serving.
///
/// # Errors
///
/// [`NetError`] when the configuration is invalid, a socket cannot be bound, a certificate
/// cannot be loaded, or a shard's runtime cannot be built. Nothing keeps running then.
pub fn start<P, F>(
    config: NetConfig,
    protocol_factory: F,
    jobs: Arc<ArcSwap<P::Jobs>>,
) -> Result<DataPlaneOf<P>, NetError>
where
    P: Protocol,
    F: Fn(ShardId) -> P + Send + Sync + 'static,
{
    config.validate()?;
    let config = Arc::new(config);
    let shard_count = config.shard_count();

    let (reloadables, tls_configs) = tls_configs(&config)?;

    let (per_shard, local_addrs) = bind_listeners(&config, &tls_configs)?;

    let factory = Arc::new(protocol_factory);
    let ip_table = Arc::new(IpTable::new(config.connections_per_ip_max));
    let settings = Arc::new(ArcSwap::from_pointee(LiveSettings::of(&config)));
    let (candidates_tx, candidates) = flume::bounded(BLOCK_CANDIDATES_PER_SHARD_MAX * shard_count);
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let bans = Arc::new(ArcSwap::from_pointee(BanList::default()));
    let mut plane = DataPlane {
        shards: Vec::with_capacity(shard_count),
        local_addrs,
        jobs: Arc::clone(&jobs),
        settings: Arc::clone(&settings),
        ip_table: Arc::clone(&ip_table),
        stats: Vec::with_capacity(shard_count),
        candidates,
        tls_stop: None,
        tls_thread: None,
        admin: PlaneAdmin::new(Vec::new(), Arc::clone(&bans)),
    };
    for (shard_index, listeners) in per_shard.into_iter().enumerate() {
        let id = ShardId(u16::try_from(shard_index).expect("shard count below SHARDS_MAX"));
        let (control_tx, control_rx) = flume::bounded(SHARD_CONTROL_QUEUE_MAX);
        let (commands_tx, commands) = flume::bounded(SHARD_ADMIN_QUEUE_MAX);
        let (stats_tx, stats_rx) = flume::bounded(STATS_BATCHES_QUEUED_PER_SHARD_MAX);
        let (ready_tx, ready_rx) = flume::bounded(1);
        let counters = Arc::new(ShardCounters::default());
        let setup = ShardSetup::<P> {
            id,
            config: Arc::clone(&config),
            listeners,
            jobs: Arc::clone(&jobs),
            settings: Arc::clone(&settings),
            control_rx,
            events: Events::new(stats_tx, candidates_tx.clone(), Arc::clone(&counters)),
            counters: Arc::clone(&counters),
            ip_table: Arc::clone(&ip_table),
            admin: ShardAdmin::new(commands, Arc::clone(&bans)),
        };
        let factory = Arc::clone(&factory);
        let pin = config.pin_shards.then_some(shard_index % cores);
        let force_polling = config.force_polling;
        let thread = std::thread::Builder::new()
            .name(format!("wp-shard-{shard_index}"))
            .spawn(move || run_shard(setup, &*factory, pin, force_polling, ready_tx))
            .map_err(|source| NetError::Shard {
                shard: shard_index,
                source,
            })?;
        let (driver, plain_io) = match ready_rx.recv() {
            Ok(Ok(ready)) => ready,
            Ok(Err(source)) => {
                let _ = thread.join();
                return Err(NetError::Shard {
                    shard: shard_index,
                    source,
                });
            }
            Err(_) => {
                let _ = thread.join();
                return Err(NetError::Shard {
                    shard: shard_index,
                    source: std::io::Error::other("shard thread ended during start-up"),
                });
            }
        };
        plane.shards.push(ShardHandle {
            thread: Some(thread),
            control: control_tx,
            commands: commands_tx,
            driver,
            plain_io,
            counters,
        });
        plane.stats.push(stats_rx);
    }
    plane.admin = admin_of(&plane.shards, bans);

    if !reloadables.is_empty() {
        let (stop_tx, stop_rx) = flume::bounded(1);
        let interval = config.tls_reload_interval;
        let thread = std::thread::Builder::new()
            .name("wp-tls-reload".to_owned())
            .spawn(move || reload_loop(reloadables, interval, stop_rx))
            .map_err(|source| NetError::Shard { shard: 0, source })?;
        plane.tls_stop = Some(stop_tx);
        plane.tls_thread = Some(thread);
    }
    Ok(plane)
}

/// Every listener's socket for every shard: the first bind resolves port 0, the others reuse
/// that port. Returns the sockets per shard and each listener's bound address.
fn bind_listeners(
    config: &NetConfig,
    tls_configs: &[Option<Arc<ArcSwap<rustls::ServerConfig>>>],
) -> Result<(Vec<Vec<ShardListener>>, Vec<SocketAddr>), NetError> {
    let shard_count = config.shard_count();
    let mut per_shard: Vec<Vec<ShardListener>> = (0..shard_count).map(|_| Vec::new()).collect();
    let mut local_addrs = Vec::with_capacity(config.listeners.len());
    for (index, listener) in config.listeners.iter().enumerate() {
        let mut addr = listener.addr;
        for shard_listeners in &mut per_shard {
            let socket = bind_reuseport(addr).map_err(|source| NetError::Listen {
                addr: listener.addr,
                source,
            })?;
            if addr.port() == 0 {
                let bound = socket.local_addr().map_err(|source| NetError::Listen {
                    addr: listener.addr,
                    source,
                })?;
                addr.set_port(bound.port());
            }
            shard_listeners.push(ShardListener {
                index,
                listener: socket,
                tls: tls_configs[index].clone(),
            });
        }
        assert_ne!(addr.port(), 0);
        local_addrs.push(addr);
    }

    Ok((per_shard, local_addrs))
}

/// The TLS configuration of each listener (`None` for plain ones), and their reloaders.
type TlsConfigs = (
    Vec<Reloadable>,
    Vec<Option<Arc<ArcSwap<rustls::ServerConfig>>>>,
);

fn tls_configs(config: &NetConfig) -> Result<TlsConfigs, NetError> {
    let mut reloadables = Vec::new();
    let mut tls_configs = Vec::with_capacity(config.listeners.len());
    for listener in &config.listeners {
        tls_configs.push(match &listener.tls {
            None => None,
            Some(files) => {
                let reloadable = Reloadable::new(files.clone())?;
                let live = Arc::clone(&reloadable.config);
                reloadables.push(reloadable);
                Some(live)
            }
        });
    }
    Ok((reloadables, tls_configs))
}

/// The operator command handle of started `shards`.
fn admin_of(shards: &[ShardHandle], bans: Arc<ArcSwap<BanList>>) -> PlaneAdmin {
    let lines = shards
        .iter()
        .map(|s| ShardLine {
            control: s.control.clone(),
            commands: s.commands.clone(),
            driver: s.driver,
            plain_io: s.plain_io,
            counters: Arc::clone(&s.counters),
        })
        .collect();
    PlaneAdmin::new(lines, bans)
}

fn run_shard<P: Protocol>(
    setup: ShardSetup<P>,
    factory: &(dyn Fn(ShardId) -> P + Send + Sync),
    pin: Option<usize>,
    force_polling: bool,
    ready: flume::Sender<std::io::Result<(Driver, PlainIo)>>,
) {
    // Signalled by compio's io_uring on every completion it posts; the shard loop waits on
    // it (see `shard::run`). The polling driver ignores it.
    let completions = match Eventfd::new() {
        Ok(fd) => fd,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let mut proactor = ProactorBuilder::new();
    proactor.register_eventfd(completions.as_raw_fd());
    if force_polling {
        proactor.driver_type(DriverType::Poll);
    }
    let mut builder = compio::runtime::RuntimeBuilder::new();
    builder.with_proactor(proactor);
    if let Some(core) = pin {
        builder.thread_affinity(HashSet::from([core]));
    }
    let runtime = match builder.build() {
        Ok(runtime) => runtime,
        Err(e) => {
            let _ = ready.send(Err(e));
            return;
        }
    };
    let driver = match runtime.driver_type() {
        DriverType::IoUring => Driver::IoUring,
        _ => Driver::Poll,
    };
    let protocol = factory(setup.id);
    // `run` reports readiness once its listeners are registered.
    run(&runtime, &completions, setup, protocol, &ready, driver);
}
