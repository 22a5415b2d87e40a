//! The configuration file: TOML, environment overrides, validated once into typed settings.
//!
//! # Responsibilities
//!
//! - Read the file (at most `CONFIG_FILE_BYTES_MAX`), apply `WARPPOOL__…` environment
//!   overrides onto the TOML tree, deserialize with unknown keys refused, then validate every
//!   value into [`Config`]. An error names the key, what is wrong and what is allowed.
//!
//! # Environment overrides
//!
//! `WARPPOOL__<SECTION>__<KEY>=<value>` sets `<section>.<key>` (names are lower-cased; a
//! numeric segment indexes an array of tables, `WARPPOOL__NODE__0__RPC_PASSWORD=…` sets
//! `rpc_password` of the first `[[node]]`). The value is read as a TOML value when it parses
//! as one (`30`, `true`, `"text"`, `[1, 2]`), otherwise as a plain string. Overrides are
//! applied before deserializing, so they are validated exactly like the file.
//!
//! # Secrets
//!
//! A `[[node]]` with `rpc_user` and no `rpc_password` takes its password from the secrets file
//! ([`crate::secrets`]: `[node.<name>] rpc_password`). An inline `rpc_password` still works and
//! is reported in [`Config::warnings`] (`config check` prints them, the start log warns).
//!
//! # Usage
//!
//! ```no_run
//! let config = warppool_control::config::Config::load(
//!     std::path::Path::new("warppool.toml"),
//!     std::env::vars(),
//! ).unwrap();
//! ```

use std::{
    net::SocketAddr,
    path::{Path, PathBuf},
    time::Duration,
};

use bitcoin::Network;

pub use crate::error::ConfigError;
use serde::Deserialize;
use warppool_core::{
    CoinbaseConfig, Difficulty, ExtranonceSize, SplitOutput,
    limits::{
        ACCEPT_RATE_PER_SEC_MAX, BEST_BLOCK_POLL_MS_DEFAULT, CONFIG_FILE_BYTES_MAX,
        CONNECTION_TIMEOUT_SECS_MAX, CONNECTIONS_PER_SHARD_MAX, IDLE_TIMEOUT_SECS_DEFAULT,
        LISTENERS_MAX, NODES_MAX, RETENTION_DAYS_MAX, RPC_TIMEOUT_MS_DEFAULT, RPC_TIMEOUT_MS_MAX,
        SHARDS_MAX, SUBSCRIBE_TIMEOUT_SECS_DEFAULT, TEMPLATE_AGE_SECS_MAX_DEFAULT,
        TEMPLATE_REFRESH_SECS_DEFAULT,
    },
    payout_script,
    vardiff::VardiffConfig,
};
use warppool_net::{
    ListenerConfig, NetConfig, TlsFiles,
    stratum::{Fractional, PortConfig, StratumConfig},
};

/// The configuration format version this build reads.
pub const CONFIG_VERSION: u32 = 1;

mod env;
pub mod fields;
mod nodes;
pub mod profile;
mod sections;

pub use self::fields::{Field, FieldSource, Source};
use self::nodes::node_tables;
pub use self::nodes::{NodeEntry, SAVED_NODES_FILE, saved_nodes_path, validate_node_entries};
pub use self::profile::{PROFILE_DEFAULT, PROFILES, Profile};
use self::sections::{validate_nodes, validate_ports};

/// The prefix of environment overrides.
pub const ENV_PREFIX: &str = "WARPPOOL__";

fn invalid(key: impl Into<String>, problem: impl Into<String>, allowed: &str) -> ConfigError {
    ConfigError::Invalid {
        key: key.into(),
        problem: problem.into(),
        allowed: allowed.to_owned(),
    }
}

// ---------------------------------------------------------------------------------------------
// The file format (serde), refused on unknown keys.
// ---------------------------------------------------------------------------------------------

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConfig {
    version: u32,
    network: String,
    profile: Option<String>,
    #[serde(default)]
    pool: RawPool,
    #[serde(default)]
    template: RawTemplate,
    storage: RawStorage,
    #[serde(default)]
    http: RawHttp,
    #[serde(default)]
    ui: RawUi,
    #[serde(default)]
    node: Vec<NodeEntry>,
    #[serde(default)]
    port: Vec<RawPort>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPool {
    coinbase_tag: Option<String>,
    shards: Option<usize>,
    #[serde(default)]
    force_polling: bool,
    accept_rate_per_sec: Option<u64>,
    accept_burst: Option<u64>,
    connections_per_ip_max: Option<u64>,
    connections_per_shard_max: Option<u64>,
    subscribe_timeout_secs: Option<u64>,
    idle_timeout_secs: Option<u64>,
    #[serde(default)]
    split: Vec<RawSplit>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawSplit {
    address: String,
    value_sats: u64,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTemplate {
    refresh_secs: Option<u64>,
    best_block_poll_ms: Option<u64>,
    age_secs_max: Option<u64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawStorage {
    block_journal: PathBuf,
    database: PathBuf,
    share_minutes_retention_days: Option<u64>,
    events_retention_days: Option<u64>,
    secrets: Option<PathBuf>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawHttp {
    listen: Option<String>,
    tls_listen: Option<String>,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    allowed_hosts: Option<Vec<String>>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawUi {
    public: Option<bool>,
    show_addresses: Option<bool>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPort {
    addr: String,
    tls_cert: Option<PathBuf>,
    tls_key: Option<PathBuf>,
    difficulty_start: Option<f64>,
    difficulty_min: Option<f64>,
    difficulty_max: Option<f64>,
    shares_per_min_target: Option<u32>,
    fractional: Option<String>,
}

// ---------------------------------------------------------------------------------------------
// The validated configuration.
// ---------------------------------------------------------------------------------------------

/// How the pool authenticates to a node's RPC.
#[derive(Clone, PartialEq, Eq)]
pub enum RpcAuth {
    /// `rpcuser`/`rpcpassword` (or an `rpcauth` entry).
    UserPassword {
        /// The user.
        user: String,
        /// The password (inline in the configuration, or from the secrets file).
        password: crate::secrets::Secret,
    },
    /// The node's `.cookie` file, re-read when the node answers 401 (it rewrites the file on
    /// every start).
    Cookie(PathBuf),
}

impl std::fmt::Debug for RpcAuth {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::UserPassword { user, .. } => write!(f, "UserPassword({user}, <hidden>)"),
            Self::Cookie(path) => write!(f, "Cookie({})", path.display()),
        }
    }
}

/// One bitcoind node.
#[derive(Debug, Clone)]
pub struct NodeConfig {
    /// A short name for logs.
    pub name: String,
    /// `http://host:port` of its JSON-RPC server.
    pub rpc_url: String,
    /// How to authenticate.
    pub auth: RpcAuth,
    /// Its `-zmqpubhashblock` endpoint (`tcp://host:port`), if any.
    pub zmq_hashblock: Option<String>,
    /// Per-request timeout.
    pub rpc_timeout: Duration,
}

/// One Stratum listening port and its difficulty policy.
#[derive(Debug, Clone)]
pub struct PortSettings {
    /// Address and TLS files.
    pub listener: ListenerConfig,
    /// Difficulty policy.
    pub policy: PortConfig,
}

/// Template refresh and gating.
#[derive(Debug, Clone, Copy)]
pub struct TemplateSettings {
    /// Periodic refresh.
    pub refresh: Duration,
    /// `getbestblockhash` watchdog interval.
    pub best_block_poll: Duration,
    /// A template older than this (no successful refresh) gates work.
    pub age_max: Duration,
}

impl Default for TemplateSettings {
    fn default() -> Self {
        Self {
            refresh: Duration::from_secs(TEMPLATE_REFRESH_SECS_DEFAULT),
            best_block_poll: Duration::from_millis(BEST_BLOCK_POLL_MS_DEFAULT),
            age_max: Duration::from_secs(TEMPLATE_AGE_SECS_MAX_DEFAULT),
        }
    }
}

/// The validated configuration.
#[derive(Debug, Clone)]
pub struct Config {
    /// The chain.
    pub network: Network,
    /// Nodes in failover order (at least one).
    pub nodes: Vec<NodeConfig>,
    /// Stratum ports (at least one).
    pub ports: Vec<PortSettings>,
    /// Shard count; `None` means one per core.
    pub shards: Option<usize>,
    /// Use epoll instead of io_uring.
    pub force_polling: bool,
    /// Admission control and connection timeouts of the data plane.
    pub admission: Admission,
    /// Coinbase tag and split outputs.
    pub coinbase: CoinbaseConfig,
    /// The sum of the `[[pool.split]]` outputs, in satoshis (see [`Config::split_warnings`]).
    pub splits_total_sats: u64,
    /// Template refresh and gating.
    pub template: TemplateSettings,
    /// The block journal file.
    pub block_journal: PathBuf,
    /// The database file (used by the storage module).
    pub database: PathBuf,
    /// Per-minute share statistics older than this many days are deleted.
    pub share_minutes_retention_days: u64,
    /// Events older than this many days are deleted.
    pub events_retention_days: u64,
    /// The HTTP API address.
    pub http_listen: Option<SocketAddr>,
    /// Who may read the public pages and see full payout addresses (`[ui]`).
    pub ui: crate::api::UiPolicy,
    /// The HTTPS API/UI listener, if any.
    pub https: Option<HttpsSettings>,
    /// Host names the API answers besides loopback, the bind address and the machine's own
    /// host name (`[http] allowed_hosts`: the DNS-rebinding guard; a generated certificate
    /// names them too). Lower-cased, without a trailing dot.
    pub http_allowed_hosts: Vec<String>,
    /// The secrets file ([`crate::secrets`]): `[storage] secrets`, or `secrets.toml` next to
    /// the database.
    pub secrets_path: PathBuf,
    /// What `config check` and the start log warn about (a password inline in the config).
    pub warnings: Vec<String>,
    /// Started by `warppool demo` (never set from a file: the API and health say so).
    pub demo: bool,
    /// The profile whose defaults apply ([`profile`]).
    pub profile: Profile,
    /// The TOML tree it was validated from and the admin API's overrides over it
    /// ([`fields`]).
    pub source: Source,
}

/// The HTTPS listener (`[http] tls_listen`, `tls_cert`, `tls_key`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpsSettings {
    /// Its address.
    pub listen: SocketAddr,
    /// The given certificate chain and key (PEM); `None`: a self-signed one generated next
    /// to the database.
    pub files: Option<(PathBuf, PathBuf)>,
}

impl HttpsSettings {
    /// Where its certificate comes from, with `database` the pool's database file.
    #[must_use]
    pub fn source(&self, database: &Path) -> crate::api::tls::CertSource {
        match &self.files {
            Some((cert, key)) => crate::api::tls::CertSource::Files {
                cert: cert.clone(),
                key: key.clone(),
            },
            None => crate::api::tls::CertSource::SelfSigned {
                dir: data_dir(database),
            },
        }
    }
}

/// The directory of the database file (`.` for a bare file name).
#[must_use]
pub fn data_dir(database: &Path) -> PathBuf {
    match database.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    }
}

/// Admission control and connection timeouts (`pool.*` keys; defaults in `core::limits`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Admission {
    /// Connections accepted per second per shard.
    pub accept_rate_per_sec: u32,
    /// Connections a shard accepts in a burst.
    pub accept_burst: u32,
    /// Connections one client address (IPv6: one /64) may hold across the pool.
    pub connections_per_ip_max: u32,
    /// Connections one shard holds.
    pub connections_per_shard_max: usize,
    /// Time to subscribe after connecting.
    pub subscribe_timeout: Duration,
    /// Silence allowed on a subscribed connection.
    pub idle_timeout: Duration,
}

impl Config {
    /// Reads `path`, applies the `WARPPOOL__…` variables among `env`, and validates.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first problem.
    pub fn load(
        path: &Path,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        let read_err = |source| ConfigError::Read {
            path: path.to_path_buf(),
            source,
        };
        let bytes = std::fs::metadata(path).map_err(read_err)?.len();
        if bytes > CONFIG_FILE_BYTES_MAX as u64 {
            return Err(ConfigError::TooLarge {
                path: path.to_path_buf(),
                bytes,
            });
        }
        let text = std::fs::read_to_string(path).map_err(read_err)?;
        Self::from_toml(&text, env)
    }

    /// Parses `text`, applies the `WARPPOOL__…` variables among `env`, and validates; reads
    /// the secrets file it names (or `secrets.toml` next to the database) for node passwords.
    ///
    /// # Errors
    /// [`ConfigError`] naming the first problem.
    pub fn from_toml(
        text: &str,
        env: impl IntoIterator<Item = (String, String)>,
    ) -> Result<Self, ConfigError> {
        if text.len() > CONFIG_FILE_BYTES_MAX {
            return Err(ConfigError::Syntax(format!(
                "config text is {} bytes; at most {CONFIG_FILE_BYTES_MAX} allowed",
                text.len()
            )));
        }
        let mut table: toml::Table =
            toml::from_str(text).map_err(|e| ConfigError::Syntax(e.to_string()))?;
        let mut overrides: Vec<(String, String)> = env
            .into_iter()
            .filter(|(k, _)| k.starts_with(ENV_PREFIX))
            .collect();
        overrides.sort();
        for (var, value) in &overrides {
            env::apply_override(&mut table, var, value)?;
        }
        Self::from_source(Source::new(table))
    }

    /// Validates `source` (the file's tree with its overrides applied).
    ///
    /// # Errors
    /// [`ConfigError`] naming the first problem.
    pub fn from_source(source: Source) -> Result<Self, ConfigError> {
        let raw: RawConfig = toml::Value::Table(source.effective()?)
            .try_into()
            .map_err(|e: toml::de::Error| ConfigError::Syntax(e.to_string()))?;
        let mut config = validate(raw)?;
        config.source = source;
        Ok(config)
    }

    /// The data plane configuration.
    #[must_use]
    pub fn net_config(&self) -> NetConfig {
        let mut net = NetConfig::new(self.ports.iter().map(|p| p.listener.clone()).collect());
        net.shards = self.shards;
        net.force_polling = self.force_polling;
        net.accept_rate_per_sec = self.admission.accept_rate_per_sec;
        net.accept_burst = self.admission.accept_burst;
        net.connections_per_ip_max = self.admission.connections_per_ip_max;
        net.connections_per_shard_max = self.admission.connections_per_shard_max;
        net.subscribe_timeout = self.admission.subscribe_timeout;
        net.idle_timeout = self.admission.idle_timeout;
        net
    }

    /// Warnings about `[[pool.split]]` at chain height `height` (see
    /// [`crate::subsidy::split_warnings`]).
    #[must_use]
    pub fn split_warnings(&self, height: u32) -> Vec<String> {
        crate::subsidy::split_warnings(self.network, self.splits_total_sats, height)
    }

    /// The Stratum session configuration (one policy per port, in order).
    #[must_use]
    pub fn stratum_config(&self) -> StratumConfig {
        let mut config = StratumConfig::new(PortConfig::default());
        config.ports = self.ports.iter().map(|p| p.policy).collect();
        config
    }
}

fn parse_network(s: &str) -> Result<Network, ConfigError> {
    match s {
        "mainnet" | "bitcoin" => Ok(Network::Bitcoin),
        "testnet" => Ok(Network::Testnet),
        "testnet4" => Ok(Network::Testnet4),
        "signet" => Ok(Network::Signet),
        "regtest" => Ok(Network::Regtest),
        other => Err(invalid(
            "network",
            format!("unknown network {other:?}"),
            "\"mainnet\", \"testnet\", \"testnet4\", \"signet\", \"regtest\"",
        )),
    }
}

fn positive_ms(key: &str, value: Option<u64>, default: Duration) -> Result<Duration, ConfigError> {
    match value {
        None => Ok(default),
        Some(0) => Err(invalid(key, "must not be 0", "a positive integer")),
        Some(v) => Ok(Duration::from_millis(v)),
    }
}

/// An optional integer key within `1..=max`, or its default.
fn bounded(key: &str, value: Option<u64>, default: u64, max: u64) -> Result<u64, ConfigError> {
    match value {
        None => Ok(default),
        Some(v) if (1..=max).contains(&v) => Ok(v),
        Some(v) => Err(invalid(
            key,
            format!("{v} is out of range"),
            &format!("1..={max}"),
        )),
    }
}

fn validate_admission(raw: &RawPool, profile: &Profile) -> Result<Admission, ConfigError> {
    let rate_max = u64::from(ACCEPT_RATE_PER_SEC_MAX);
    let per_shard_max = CONNECTIONS_PER_SHARD_MAX as u64;
    let accept_rate_per_sec = bounded(
        "pool.accept_rate_per_sec",
        raw.accept_rate_per_sec,
        profile.accept_rate_per_sec,
        rate_max,
    )?;
    let accept_burst = bounded(
        "pool.accept_burst",
        raw.accept_burst,
        profile.accept_burst,
        rate_max,
    )?;
    let connections_per_ip_max = bounded(
        "pool.connections_per_ip_max",
        raw.connections_per_ip_max,
        profile.connections_per_ip_max,
        per_shard_max * SHARDS_MAX as u64,
    )?;
    let connections_per_shard_max = bounded(
        "pool.connections_per_shard_max",
        raw.connections_per_shard_max,
        profile.connections_per_shard_max,
        per_shard_max,
    )?;
    let subscribe_timeout_secs = bounded(
        "pool.subscribe_timeout_secs",
        raw.subscribe_timeout_secs,
        SUBSCRIBE_TIMEOUT_SECS_DEFAULT,
        CONNECTION_TIMEOUT_SECS_MAX,
    )?;
    let idle_timeout_secs = bounded(
        "pool.idle_timeout_secs",
        raw.idle_timeout_secs,
        IDLE_TIMEOUT_SECS_DEFAULT,
        CONNECTION_TIMEOUT_SECS_MAX,
    )?;
    let narrow = |v: u64| u32::try_from(v).expect("bounded to a u32 range above");
    Ok(Admission {
        accept_rate_per_sec: narrow(accept_rate_per_sec),
        accept_burst: narrow(accept_burst),
        connections_per_ip_max: narrow(connections_per_ip_max),
        connections_per_shard_max: usize::try_from(connections_per_shard_max)
            .expect("bounded by CONNECTIONS_PER_SHARD_MAX"),
        subscribe_timeout: Duration::from_secs(subscribe_timeout_secs),
        idle_timeout: Duration::from_secs(idle_timeout_secs),
    })
}

fn validate(raw: RawConfig) -> Result<Config, ConfigError> {
    if raw.version != CONFIG_VERSION {
        return Err(invalid(
            "version",
            format!("version {} is not supported", raw.version),
            &CONFIG_VERSION.to_string(),
        ));
    }
    let network = parse_network(&raw.network)?;
    let profile = Profile::resolve(raw.profile.as_deref())?;
    let (nodes, secrets_path, warnings) = node_tables(&raw.storage, raw.node)?;
    let ports = validate_ports(raw.port, profile.shares_per_min_target)?;
    if let Some(shards) = raw.pool.shards
        && (shards == 0 || shards > SHARDS_MAX)
    {
        return Err(invalid(
            "pool.shards",
            format!("{shards} shards"),
            &format!("1..={SHARDS_MAX}, or leave it out for one per core"),
        ));
    }
    let admission = validate_admission(&raw.pool, &profile)?;
    let coinbase = validate_coinbase(&raw.pool, network)?;
    let template = validate_template(&raw.template)?;
    validate_storage_paths(&raw.storage)?;
    let (share_minutes_retention_days, events_retention_days) =
        validate_retention(&raw.storage, &profile)?;
    let http_listen = validate_http_listen("http.listen", raw.http.listen)?;
    let http_allowed_hosts = sections::validate_allowed_hosts(raw.http.allowed_hosts)?;
    let https = sections::validate_https(raw.http.tls_listen, raw.http.tls_cert, raw.http.tls_key)?;
    Ok(Config {
        network,
        nodes,
        ports,
        shards: raw.pool.shards.or(profile.shards),
        force_polling: raw.pool.force_polling,
        admission,
        coinbase,
        splits_total_sats: raw.pool.split.iter().map(|s| s.value_sats).sum(),
        template,
        block_journal: raw.storage.block_journal,
        database: raw.storage.database,
        share_minutes_retention_days,
        events_retention_days,
        http_listen,
        http_allowed_hosts,
        ui: crate::api::UiPolicy {
            public: raw.ui.public.unwrap_or(true),
            show_addresses: raw.ui.show_addresses.unwrap_or(false),
        },
        https,
        secrets_path,
        warnings,
        demo: false,
        profile,
        source: Source::default(),
    })
}

/// The journal and the database: two distinct, non-empty paths.
fn validate_storage_paths(storage: &RawStorage) -> Result<(), ConfigError> {
    if storage.block_journal.as_os_str().is_empty() {
        return Err(invalid(
            "storage.block_journal",
            "empty path",
            "a file path",
        ));
    }
    if storage.database.as_os_str().is_empty() {
        return Err(invalid("storage.database", "empty path", "a file path"));
    }
    if storage.database == storage.block_journal {
        return Err(invalid(
            "storage.database",
            "same file as storage.block_journal",
            "two different files",
        ));
    }
    Ok(())
}

/// The retention days of share minutes and of events (the profile's when not given).
fn validate_retention(storage: &RawStorage, profile: &Profile) -> Result<(u64, u64), ConfigError> {
    let retention = |key: &str, value: Option<u64>, default: u64| match value {
        None => Ok(default),
        Some(days) if (1..=RETENTION_DAYS_MAX).contains(&days) => Ok(days),
        Some(days) => Err(invalid(
            key,
            format!("{days} days"),
            &format!("1..={RETENTION_DAYS_MAX} days"),
        )),
    };
    let share_minutes = retention(
        "storage.share_minutes_retention_days",
        storage.share_minutes_retention_days,
        profile.share_minutes_retention_days,
    )?;
    let events = retention(
        "storage.events_retention_days",
        storage.events_retention_days,
        profile.events_retention_days,
    )?;
    Ok((share_minutes, events))
}

fn validate_http_listen(
    key: &str,
    listen: Option<String>,
) -> Result<Option<SocketAddr>, ConfigError> {
    listen
        .map(|s| {
            s.parse::<SocketAddr>().map_err(|_| {
                invalid(
                    key,
                    format!("{s:?} is not an address"),
                    "ip:port, e.g. \"127.0.0.1:8080\"",
                )
            })
        })
        .transpose()
}

fn validate_coinbase(pool: &RawPool, network: Network) -> Result<CoinbaseConfig, ConfigError> {
    let tag = pool.coinbase_tag.as_deref().unwrap_or("/warppool/");
    let mut splits = Vec::with_capacity(pool.split.len());
    for (i, s) in pool.split.iter().enumerate() {
        let script = payout_script(&s.address, network).map_err(|e| {
            invalid(
                format!("pool.split[{i}].address"),
                format!("{:?}: {e}", s.address),
                "an address of the configured network",
            )
        })?;
        if s.value_sats == 0 {
            return Err(invalid(
                format!("pool.split[{i}].value_sats"),
                "0",
                "a positive amount in satoshis",
            ));
        }
        splits.push(SplitOutput {
            script: script.into_bytes(),
            value_sats: s.value_sats,
        });
    }
    CoinbaseConfig::new(tag.as_bytes(), ExtranonceSize::DEFAULT, splits).map_err(|e| {
        invalid(
            "pool.coinbase_tag",
            e.to_string(),
            "a tag of at most COINBASE_TAG_BYTES_MAX bytes and at most COINBASE_OUTPUTS_MAX - 2 \
             splits",
        )
    })
}

fn validate_template(raw: &RawTemplate) -> Result<TemplateSettings, ConfigError> {
    let defaults = TemplateSettings::default();
    let refresh = match raw.refresh_secs {
        None => defaults.refresh,
        Some(0) => {
            return Err(invalid(
                "template.refresh_secs",
                "must not be 0",
                "a positive number of seconds",
            ));
        }
        Some(s) => Duration::from_secs(s),
    };
    let best_block_poll = positive_ms(
        "template.best_block_poll_ms",
        raw.best_block_poll_ms,
        defaults.best_block_poll,
    )?;
    let age_max = match raw.age_secs_max {
        None => defaults.age_max,
        Some(s) => Duration::from_secs(s),
    };
    if age_max <= refresh {
        return Err(invalid(
            "template.age_secs_max",
            format!(
                "{} s is not above template.refresh_secs ({} s)",
                age_max.as_secs(),
                refresh.as_secs()
            ),
            "more than refresh_secs (a few refreshes may fail before work is gated)",
        ));
    }
    Ok(TemplateSettings {
        refresh,
        best_block_poll,
        age_max,
    })
}
