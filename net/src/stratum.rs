//! The Stratum V1 session: the [`Protocol`](crate::Protocol) the data plane runs for miners
//! (plain and TLS).
//!
//! # Responsibilities
//!
//! - The per-connection state machine of MINERS.md §1: `mining.configure` answered on the very
//!   next line with `requested & 1fffe000`; every `mining.subscribe` shape, with a unique
//!   4-byte extranonce1 (shard index in the top bits) that a client can resume by session id;
//!   `mining.authorize` with the payout address checked for the [`JobSet`]'s network (a bad
//!   address is refused with error 24 and the connection kept), then the authorize reply,
//!   `set_difficulty` and the first `notify` written together (after the replies to every
//!   line of the same read, so a pipelined suggest_difficulty sets the first difficulty: one
//!   `set_difficulty`, one `notify`); suggest_difficulty /
//!   suggest_target any time (clamped); `mining.extranonce.subscribe`; `mining.ping`;
//!   `mining.multi_version` and unknown methods refused with an error reply, never a
//!   disconnect; 5- and 6-param submits with version bits accepted inside `1fffe000` even
//!   without configure.
//! - Jobs: one coinbase per payout script per template, built lazily on each shard and shared
//!   by all the shard's connections with that script ([`JobSet`]); each notify has a new job
//!   id (a shard-wide counter, never reused) and a header that differs from every earlier one
//!   the connection got for the same template (ntime bumped by a second, MINERS rule 9).
//! - Shares: judged through the connection's own `JobBook` (its duplicate sets; see
//!   `CONNECTION_DUPLICATES_PER_JOB`) at the difficulty of the job they name (the lowest
//!   difficulty in force while that job was current), vardiff per connection, a retarget sent
//!   as `set_difficulty` then a fresh `notify`. A share that meets the network target goes to
//!   the control plane as a block candidate before the reply is written, whatever else is
//!   wrong with it, with its exact finder ([`Candidate`]: worker, extranonce1, user agent);
//!   the per-tip cap holds candidates back only on regtest-like chains (see
//!   `BLOCK_CANDIDATES_PER_TIP_PER_SHARD_MAX`). An undecodable submit is
//!   [`ShareReject::Malformed`].
//! - Vardiff persistence: each difficulty change of an authorized connection is reported
//!   ([`ShareEvent::Difficulty`], with the connection's [`UserAgentFamily`]); at its first work
//!   the session starts a worker at the difficulty stored for its username and device family
//!   ([`WorkerDifficulties`], published by the control plane) unless the miner asked for one,
//!   even in the same read as the authorize (precedence in [`Session`]'s docs).
//!
//! # Usage (the control plane)
//!
//! ```no_run
//! # use std::sync::Arc;
//! # use warppool_core::CoinbaseConfig;
//! # use warppool_net::{ListenerConfig, NetConfig, stratum::*};
//! let listener = ListenerConfig { addr: "0.0.0.0:3333".parse().unwrap(), tls: None };
//! let jobs = JobSet::waiting(bitcoin::Network::Bitcoin, CoinbaseConfig::solo(b"/warppool/"));
//! let config = StratumConfig::new(PortConfig::default());
//! let plane = start_stratum(NetConfig::new(vec![listener]), config, jobs).unwrap();
//! // For every template: plane.publish(Arc::new(JobSet::new(...)));
//! // Drain plane.candidates() (block candidates) and plane.stats_receivers() (ShareEvent).
//! plane.stop();
//! ```
//!
//! # Allocation
//!
//! None on the share path (parse, judge, reply into the outbound queue, statistics entry; a
//! difficulty change's event is a plain value too). Subscribe (the session registry),
//! authorize (the connection's job book, 12 KiB), the first work (the stored-difficulty key),
//! job building (once per payout script per template per shard) and a block candidate (its
//! finder's strings) allocate.

mod jobs;
mod session;
mod sessions;

use std::collections::HashMap;
use std::sync::Arc;

use arc_swap::ArcSwap;
use bitcoin::Network;
use warppool_core::limits::WORKER_DIFFICULTIES_MAX;
use warppool_core::{
    BlockCandidate, CoinbaseConfig, Difficulty, Extranonce1, Template, vardiff::VardiffConfig,
};

pub use session::{Session, Stratum};
/// Defined in core (they cross to the control plane); re-exported where they were.
pub use warppool_core::plane::{ConnectionId, ShareEvent, ShareStat, UserAgentFamily};

use crate::{DataPlaneOf, NetConfig, NetError, ShardId, start};

/// What the control plane publishes to the Stratum shards: the current template and how to
/// build coinbases for it. Each shard builds its jobs from it lazily, per payout script.
#[derive(Debug, Clone)]
pub struct JobSet {
    /// The current template; `None` before the first one (miners get no work yet).
    pub template: Option<Arc<Template>>,
    /// Increases with every publication. A new generation with the same template still sends
    /// a fresh notify (new job id, ntime bumped) to every connection.
    pub generation: u64,
    /// Whether miners must drop older jobs (true on a new chain tip).
    pub clean_jobs: bool,
    /// The network payout addresses must belong to.
    pub network: Network,
    /// Coinbase tag, extranonce2 size and optional split outputs.
    pub coinbase: CoinbaseConfig,
    /// `Some(reason)` while the node is unhealthy: no new notify goes out (shares on jobs
    /// already sent are still judged).
    pub gate: Option<String>,
}

impl JobSet {
    /// A job set for `template` (not gated).
    #[must_use]
    pub fn new(
        template: Arc<Template>,
        generation: u64,
        clean_jobs: bool,
        network: Network,
        coinbase: CoinbaseConfig,
    ) -> Self {
        Self {
            template: Some(template),
            generation,
            clean_jobs,
            network,
            coinbase,
            gate: None,
        }
    }

    /// The job set before the first template: miners can subscribe and authorize, and get
    /// their first notify when a template is published.
    #[must_use]
    pub fn waiting(network: Network, coinbase: CoinbaseConfig) -> Self {
        Self {
            template: None,
            generation: 0,
            clean_jobs: true,
            network,
            coinbase,
            gate: None,
        }
    }

    /// Whether new work may be sent: there is a template and no gate.
    #[must_use]
    pub fn has_work(&self) -> bool {
        self.template.is_some() && self.gate.is_none()
    }
}

/// When a connection gets fractional (below 1) difficulties.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Fractional {
    /// Never: difficulties are whole numbers ≥ 1.
    Never,
    /// Only for a client that asked for a difficulty below 1 (suggest, `d=`, `md=`).
    #[default]
    OnRequest,
    /// Always (test and regtest ports; a client that parses a `uint32` reads 0 then).
    Always,
}

/// The difficulty policy of one port (listener).
#[derive(Debug, Clone, Copy)]
pub struct PortConfig {
    /// Start, min and max difficulty, shares-per-minute target and vardiff tuning. Its
    /// `fractional` flag is set per connection from [`PortConfig::fractional`].
    pub vardiff: VardiffConfig,
    /// When this port sends fractional difficulties.
    pub fractional: Fractional,
}

impl Default for PortConfig {
    fn default() -> Self {
        Self {
            vardiff: VardiffConfig::default(),
            fractional: Fractional::OnRequest,
        }
    }
}

/// The stored difficulty of each known worker on each device family (vardiff persistence,
/// DESIGN §4), published by the control plane and read by the shards when a connection gets
/// its first work.
///
/// Reading is lock-free ([`ArcSwap::load`], then a hash lookup); it happens only before the
/// first work, never on the share path. The control plane replaces the whole map (at most
/// [`WORKER_DIFFICULTIES_MAX`] entries) at a bounded rate (`WORKER_DIFFICULTY_PUBLISH_MS`).
/// Keys are [`UserAgentFamily::key`]s: the full username (`address[.worker]`, as in
/// [`ShareEvent::Authorized`]) and the device family of the connection, which
/// [`ShareEvent::Difficulty`] carries. Clones share the same map.
#[derive(Debug, Clone, Default)]
pub struct WorkerDifficulties {
    map: Arc<ArcSwap<HashMap<Box<str>, Difficulty>>>,
}

impl WorkerDifficulties {
    /// An empty lookup (every worker starts at its port's start difficulty).
    #[must_use]
    pub fn new() -> Self {
        Self::default()
    }

    /// Replaces the whole map.
    ///
    /// # Panics
    /// If `map` holds more than [`WORKER_DIFFICULTIES_MAX`] entries.
    pub fn publish(&self, map: HashMap<Box<str>, Difficulty>) {
        assert!(map.len() <= WORKER_DIFFICULTIES_MAX);
        self.map.store(Arc::new(map));
    }

    /// The stored difficulty under `key` (a [`UserAgentFamily::key`]), if any.
    #[must_use]
    pub fn get(&self, key: &str) -> Option<Difficulty> {
        self.map.load().get(key).copied()
    }

    /// The stored difficulty of `username` on a device of `family`, if any (allocates the
    /// key).
    #[must_use]
    pub fn get_for(&self, username: &str, family: &UserAgentFamily) -> Option<Difficulty> {
        self.get(&family.key(username))
    }

    /// How many workers have a stored difficulty.
    #[must_use]
    pub fn len(&self) -> usize {
        self.map.load().len()
    }

    /// Whether no worker has a stored difficulty.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

/// Port policies changed while the pool runs (the admin API's live vardiff keys): each new
/// connection reads its port's policy here at connect (a lock-free `ArcSwap` load, no
/// allocation); connections already open keep the policy they started with. Empty until the
/// first [`PortPolicies::publish`]: [`StratumConfig::ports`] applies until then. Clones share
/// the same value.
#[derive(Debug, Clone, Default)]
pub struct PortPolicies {
    ports: Arc<ArcSwap<Vec<PortConfig>>>,
}

impl PortPolicies {
    /// Replaces every port's policy (index as in `NetConfig::listeners`).
    ///
    /// # Errors
    /// [`NetError::Config`] for an invalid policy (nothing changes then).
    pub fn publish(&self, ports: Vec<PortConfig>) -> Result<(), NetError> {
        for port in &ports {
            validate_port(port)?;
        }
        self.ports.store(Arc::new(ports));
        Ok(())
    }

    fn get(&self, index: usize) -> Option<PortConfig> {
        self.ports.load().get(index).copied()
    }
}

fn validate_port(port: &PortConfig) -> Result<(), NetError> {
    let mut vardiff = port.vardiff;
    vardiff.fractional = port.fractional != Fractional::Never;
    if vardiff.validate().is_err() {
        return Err(NetError::Config("invalid vardiff configuration of a port"));
    }
    Ok(())
}

/// Configuration of the Stratum session.
#[derive(Debug, Clone)]
pub struct StratumConfig {
    /// Per listener (index in `NetConfig::listeners`); listeners past the end use `default`.
    pub ports: Vec<PortConfig>,
    /// The policy of listeners without an entry in `ports`.
    pub default: PortConfig,
    /// Stored worker difficulties consulted at authorize (empty: every worker starts at its
    /// port's start difficulty). See [`Session`] for the precedence of start difficulties.
    pub stored_difficulties: WorkerDifficulties,
    /// Policies published while running; they take precedence over `ports` once published.
    pub live_ports: PortPolicies,
}

impl StratumConfig {
    /// Every port with the same policy.
    #[must_use]
    pub fn new(default: PortConfig) -> Self {
        Self {
            ports: Vec::new(),
            default,
            stored_difficulties: WorkerDifficulties::new(),
            live_ports: PortPolicies::default(),
        }
    }

    /// The policy of listener `index`.
    #[must_use]
    pub fn port(&self, index: usize) -> &PortConfig {
        self.ports.get(index).unwrap_or(&self.default)
    }

    /// The policy a new connection on listener `index` gets: the published one
    /// ([`PortPolicies`]) if any, else [`StratumConfig::port`].
    #[must_use]
    pub fn policy(&self, index: usize) -> PortConfig {
        self.live_ports
            .get(index)
            .unwrap_or_else(|| *self.port(index))
    }

    fn validate(&self) -> Result<(), NetError> {
        for port in self.ports.iter().chain([&self.default]) {
            validate_port(port)?;
        }
        Ok(())
    }
}

/// The data plane handle of a Stratum pool.
pub type StratumPlane = DataPlaneOf<Stratum>;

/// Starts the Stratum data plane: `net` (listeners, shards, limits), the session `config`,
/// and the first [`JobSet`] (usually [`JobSet::waiting`]). Publish later job sets with
/// [`crate::DataPlane::publish`]; block candidates arrive on
/// [`crate::DataPlane::candidates`].
///
/// # Errors
/// [`NetError`] as [`start`], and [`NetError::Config`] for an invalid port policy.
pub fn start_stratum(
    net: NetConfig,
    config: StratumConfig,
    jobs: JobSet,
) -> Result<StratumPlane, NetError> {
    let jobs = Arc::new(ArcSwap::from_pointee(jobs));
    let factory = stratum_factory(net.shard_count(), config, &jobs)?;
    start(net, factory, jobs)
}

/// The protocol factory [`start_stratum`] passes to [`start`], for callers that wrap the
/// protocol (tests that count allocations, for example): `shards` must be the
/// `NetConfig::shard_count` of the plane and `jobs` the same `ArcSwap` given to [`start`].
///
/// # Errors
/// [`NetError::Config`] for an invalid port policy.
pub fn stratum_factory(
    shards: usize,
    config: StratumConfig,
    jobs: &Arc<ArcSwap<JobSet>>,
) -> Result<impl Fn(ShardId) -> Stratum + Send + Sync + 'static, NetError> {
    config.validate()?;
    let registry = Arc::new(sessions::Registry::new(shards));
    let config = Arc::new(config);
    let jobs = Arc::clone(jobs);
    Ok(move |shard: ShardId| {
        Stratum::new(
            shard,
            Arc::clone(&config),
            Arc::clone(&registry),
            jobs.load_full(),
        )
    })
}

/// Who found a block: the connection's authorized user at the time of the share (allocates;
/// built only for a block candidate, never on the share path).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockFinder {
    /// The connection.
    pub connection: ConnectionId,
    /// `address[.worker]` as authorized (the user the share was credited to).
    pub worker: String,
    /// The connection's extranonce1.
    pub extranonce1: Extranonce1,
    /// The subscribe user agent, if any.
    pub user_agent: Option<String>,
}

/// A block candidate of the Stratum plane: the block and its exact finder.
#[derive(Debug, Clone)]
pub struct Candidate {
    /// The block.
    pub block: BlockCandidate,
    /// The connection and user whose share it is.
    pub finder: BlockFinder,
}
