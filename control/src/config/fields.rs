//! The configuration as the admin API shows and changes it: dotted keys
//! (`pool.coinbase_tag`, `port[0].difficulty_start`, `profile`), each with its value, whether
//! a change applies live or needs a restart, and where the value comes from.
//!
//! Changes are **overrides over the file** ([`Source`]): the TOML tree of the file (after
//! `WARPPOOL__…` variables) stays as the operator wrote it; the admin API's overrides (kept
//! in SQLite, `config_overrides`, applied at every start) are set onto a copy of that tree
//! and the result is validated exactly like a file, so a change is refused with the same
//! message naming the key and the range. An override of `null` unsets the key (back to the
//! profile's value or the built-in default). `[[node]]` is not here: node credentials live
//! in the secrets file.

use std::collections::BTreeMap;

use serde::Serialize;
use serde_json::{Value, json};

use super::{Config, ConfigError, invalid};

/// Where a value comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, utoipa::ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum FieldSource {
    /// Set by the admin API (stored in the database, applied over the file at start).
    Override,
    /// Set in the file (or by a `WARPPOOL__…` variable).
    File,
    /// The profile's value.
    Profile,
    /// The built-in default.
    Default,
}

/// One key of the configuration.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[schema(as = ConfigField)]
pub struct Field {
    /// Dotted key (`pool.accept_burst`, `port[0].difficulty_start`).
    pub key: String,
    /// Its value in force or stored (typed JSON; `null` for an absent optional value).
    #[schema(value_type = Option<FieldValue>)]
    pub value: Value,
    /// A change applies at once (`true`) or at the next start (`false`).
    pub live: bool,
    /// Changing it needs a recent step-up (payout outputs).
    pub step_up: bool,
    /// Where the value comes from.
    pub source: FieldSource,
}

/// The shapes a value takes (the OpenAPI schema of [`Field::value`]).
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
#[serde(untagged)]
pub enum FieldValue {
    /// Text (`pool.coinbase_tag`, addresses, paths, `profile`).
    Text(String),
    /// A number (limits, timeouts, difficulties).
    Number(f64),
    /// A switch (`pool.force_polling`).
    Switch(bool),
    /// `pool.split`.
    Splits(Vec<SplitValue>),
    /// A list of names (`http.allowed_hosts`).
    Names(Vec<String>),
}

/// One `[[pool.split]]` output.
#[derive(Debug, Clone, Serialize, utoipa::ToSchema)]
pub struct SplitValue {
    /// The address paid.
    pub address: String,
    /// Satoshis.
    pub value_sats: u64,
}

/// The keys besides the per-port ones: (key, live, step-up, profile sets it).
const POOL_KEYS: &[(&str, bool, bool, bool)] = &[
    ("profile", true, false, false),
    ("network", false, false, false),
    ("pool.coinbase_tag", true, false, false),
    ("pool.split", true, true, false),
    ("pool.shards", false, false, true),
    ("pool.force_polling", false, false, false),
    ("pool.accept_rate_per_sec", true, false, true),
    ("pool.accept_burst", true, false, true),
    ("pool.connections_per_ip_max", true, false, true),
    ("pool.connections_per_shard_max", false, false, true),
    ("pool.subscribe_timeout_secs", true, false, false),
    ("pool.idle_timeout_secs", true, false, false),
    ("template.refresh_secs", false, false, false),
    ("template.best_block_poll_ms", false, false, false),
    ("template.age_secs_max", false, false, false),
    ("storage.block_journal", false, false, false),
    ("storage.database", false, false, false),
    ("storage.share_minutes_retention_days", false, false, true),
    ("storage.events_retention_days", false, false, true),
    ("http.listen", false, false, false),
    ("http.allowed_hosts", false, false, false),
];

/// The per-port keys (`port[i].<name>`): (name, live, profile sets it). Vardiff keys apply
/// to connections opened after the change.
const PORT_KEYS: &[(&str, bool, bool)] = &[
    ("addr", false, false),
    ("tls_cert", false, false),
    ("tls_key", false, false),
    ("difficulty_start", true, false),
    ("difficulty_min", true, false),
    ("difficulty_max", true, false),
    ("shares_per_min_target", false, true),
    ("fractional", false, false),
];

/// What a key is: live, step-up, set by profiles.
#[derive(Debug, Clone, Copy)]
struct KeyInfo {
    live: bool,
    step_up: bool,
    profile: bool,
}

/// The file's TOML tree and the overrides over it.
#[derive(Clone, Default)]
pub struct Source {
    file: toml::Table,
    overrides: BTreeMap<String, Value>,
}

impl std::fmt::Debug for Source {
    // The tree holds node credentials: never printed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Source")
            .field("overrides", &self.overrides.keys())
            .finish_non_exhaustive()
    }
}

/// One step of a dotted key.
enum Step<'a> {
    Key(&'a str),
    Index(usize),
}

/// `port[0].difficulty_start` → `port`, `0`, `difficulty_start`.
fn steps(key: &str) -> Option<Vec<Step<'_>>> {
    let mut out = Vec::new();
    for part in key.split('.') {
        let (name, index) = match part.split_once('[') {
            Some((name, rest)) => (name, Some(rest.strip_suffix(']')?.parse().ok()?)),
            None => (part, None),
        };
        if name.is_empty() {
            return None;
        }
        out.push(Step::Key(name));
        out.extend(index.map(Step::Index));
    }
    Some(out)
}

fn unknown(key: &str) -> ConfigError {
    invalid(
        key,
        "not a key the admin API changes",
        "a key listed by GET /api/v1/admin/config",
    )
}

/// Sets (or with `None` removes) `key` in `table`.
fn set(table: &mut toml::Table, key: &str, value: Option<toml::Value>) -> Result<(), ConfigError> {
    let steps = steps(key).ok_or_else(|| unknown(key))?;
    let (last, path) = steps.split_last().ok_or_else(|| unknown(key))?;
    let Step::Key(last) = last else {
        return Err(unknown(key));
    };
    let mut node = table;
    for (i, step) in path.iter().enumerate() {
        let next = match (step, path.get(i + 1)) {
            (Step::Key(k), Some(Step::Index(_))) => {
                // An array of tables: it must exist (ports are not added through the API).
                node.get_mut(*k).ok_or_else(|| unknown(key))?
            }
            (Step::Key(k), _) => node
                .entry((*k).to_owned())
                .or_insert_with(|| toml::Value::Table(toml::Table::new())),
            (Step::Index(_), _) => continue,
        };
        let next = match (next, path.get(i + 1)) {
            (toml::Value::Array(a), Some(Step::Index(n))) => a.get_mut(*n),
            (v, _) => Some(v),
        };
        node = match next {
            Some(toml::Value::Table(t)) => t,
            _ => return Err(unknown(key)),
        };
    }
    match value {
        Some(v) => {
            node.insert((*last).to_owned(), v);
        }
        None => {
            node.remove(*last);
        }
    }
    Ok(())
}

fn get<'t>(table: &'t toml::Table, key: &str) -> Option<&'t toml::Value> {
    let mut node: &toml::Value = table.get(key.split(['.', '[']).next()?)?;
    for step in steps(key)?.into_iter().skip(1) {
        node = match step {
            Step::Key(k) => node.as_table()?.get(k)?,
            Step::Index(i) => node.as_array()?.get(i)?,
        };
    }
    Some(node)
}

impl Source {
    /// The file's tree (after environment variables), without overrides.
    #[must_use]
    pub fn new(file: toml::Table) -> Self {
        Self {
            file,
            overrides: BTreeMap::new(),
        }
    }

    /// The overrides (key → JSON value; `null` unsets).
    #[must_use]
    pub const fn overrides(&self) -> &BTreeMap<String, Value> {
        &self.overrides
    }

    /// This source with `changes` added to its overrides (each key checked against the
    /// catalogue, each value converted to TOML; nothing validated yet).
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming an unknown key or a value TOML cannot hold.
    pub fn with(&self, changes: &BTreeMap<String, Value>) -> Result<Self, ConfigError> {
        let mut next = self.clone();
        for (key, value) in changes {
            next.overrides.insert(key.clone(), value.clone());
        }
        next.effective()?;
        Ok(next)
    }

    /// The file's tree with the overrides set onto it.
    pub(crate) fn effective(&self) -> Result<toml::Table, ConfigError> {
        let ports = get(&self.file, "port")
            .and_then(toml::Value::as_array)
            .map_or(0, Vec::len);
        let mut table = self.file.clone();
        for (key, value) in &self.overrides {
            info(key, ports).ok_or_else(|| unknown(key))?;
            let value = match value {
                Value::Null => None,
                v => Some(toml::Value::try_from(v).map_err(|e| {
                    invalid(
                        key.as_str(),
                        format!("{v} is not a value: {e}"),
                        "a TOML value",
                    )
                })?),
            };
            set(&mut table, key, value)?;
        }
        Ok(table)
    }

    fn source_of(&self, key: &str, info: KeyInfo) -> FieldSource {
        if self.overrides.get(key).is_some_and(|v| !v.is_null()) {
            FieldSource::Override
        } else if !self.overrides.contains_key(key) && get(&self.file, key).is_some() {
            FieldSource::File
        } else if info.profile {
            FieldSource::Profile
        } else {
            FieldSource::Default
        }
    }
}

/// What `key` is, for a pool with `ports` ports; `None` for an unknown key.
fn info(key: &str, ports: usize) -> Option<KeyInfo> {
    if let Some(&(_, live, step_up, profile)) = POOL_KEYS.iter().find(|k| k.0 == key) {
        return Some(KeyInfo {
            live,
            step_up,
            profile,
        });
    }
    let rest = key.strip_prefix("port[")?;
    let (index, name) = rest.split_once("].")?;
    let index: usize = index.parse().ok()?;
    let &(_, live, profile) = PORT_KEYS.iter().find(|k| k.0 == name)?;
    (index < ports).then_some(KeyInfo {
        live,
        step_up: false,
        profile,
    })
}

/// Every key for a pool with `ports` ports, in display order.
fn keys(ports: usize) -> Vec<String> {
    let mut out: Vec<String> = POOL_KEYS.iter().map(|k| k.0.to_owned()).collect();
    for i in 0..ports {
        out.extend(PORT_KEYS.iter().map(|k| format!("port[{i}].{}", k.0)));
    }
    out
}

fn network_name(network: bitcoin::Network) -> &'static str {
    match network {
        bitcoin::Network::Bitcoin => "mainnet",
        bitcoin::Network::Testnet => "testnet",
        bitcoin::Network::Testnet4 => "testnet4",
        bitcoin::Network::Signet => "signet",
        _ => "regtest",
    }
}

impl Config {
    /// The value of `key` in this configuration (`None` for an unknown key).
    #[must_use]
    pub fn value(&self, key: &str) -> Option<Value> {
        let a = &self.admission;
        let table = self.source.effective().ok();
        let raw = |k: &str| table.as_ref().and_then(|t| get(t, k)).map(|v| json!(v));
        let v = match key {
            "profile" => json!(self.profile.name),
            "network" => json!(network_name(self.network)),
            "pool.coinbase_tag" => raw(key).unwrap_or_else(|| json!("/warppool/")),
            "pool.split" => raw(key).unwrap_or_else(|| json!([])),
            "pool.shards" => json!(self.shards),
            "pool.force_polling" => json!(self.force_polling),
            "pool.accept_rate_per_sec" => json!(a.accept_rate_per_sec),
            "pool.accept_burst" => json!(a.accept_burst),
            "pool.connections_per_ip_max" => json!(a.connections_per_ip_max),
            "pool.connections_per_shard_max" => json!(a.connections_per_shard_max),
            "pool.subscribe_timeout_secs" => json!(a.subscribe_timeout.as_secs()),
            "pool.idle_timeout_secs" => json!(a.idle_timeout.as_secs()),
            "template.refresh_secs" => json!(self.template.refresh.as_secs()),
            "template.best_block_poll_ms" => json!(self.template.best_block_poll.as_millis()),
            "template.age_secs_max" => json!(self.template.age_max.as_secs()),
            "storage.block_journal" => json!(self.block_journal),
            "storage.database" => json!(self.database),
            "storage.share_minutes_retention_days" => json!(self.share_minutes_retention_days),
            "storage.events_retention_days" => json!(self.events_retention_days),
            "http.listen" => json!(self.http_listen.map(|a| a.to_string())),
            "http.allowed_hosts" => json!(self.http_allowed_hosts),
            _ => return self.port_value(key),
        };
        Some(v)
    }

    fn port_value(&self, key: &str) -> Option<Value> {
        let rest = key.strip_prefix("port[")?;
        let (index, name) = rest.split_once("].")?;
        let port = self.ports.get(index.parse::<usize>().ok()?)?;
        let vardiff = &port.policy.vardiff;
        let tls = port.listener.tls.as_ref();
        let v = match name {
            "addr" => json!(port.listener.addr.to_string()),
            "tls_cert" => json!(tls.map(|t| &t.cert_path)),
            "tls_key" => json!(tls.map(|t| &t.key_path)),
            "difficulty_start" => json!(vardiff.difficulty_start.to_f64_lossy()),
            "difficulty_min" => json!(vardiff.difficulty_min.to_f64_lossy()),
            "difficulty_max" => json!(vardiff.difficulty_max.to_f64_lossy()),
            "shares_per_min_target" => json!(vardiff.shares_per_min_target),
            "fractional" => json!(match port.policy.fractional {
                warppool_net::stratum::Fractional::Never => "never",
                warppool_net::stratum::Fractional::OnRequest => "on_request",
                warppool_net::stratum::Fractional::Always => "always",
            }),
            _ => return None,
        };
        Some(v)
    }

    /// Every key the admin API shows, with its value, live flag and source.
    #[must_use]
    pub fn fields(&self) -> Vec<Field> {
        keys(self.ports.len())
            .into_iter()
            .filter_map(|key| {
                let info = info(&key, self.ports.len())?;
                Some(Field {
                    value: self.value(&key)?,
                    live: info.live,
                    step_up: info.step_up,
                    source: self.source.source_of(&key, info),
                    key,
                })
            })
            .collect()
    }

    /// This configuration with `changes` applied over its overrides, validated like a file.
    ///
    /// # Errors
    /// [`ConfigError::Invalid`] naming the key (unknown, or a value out of range).
    pub fn with_changes(&self, changes: &BTreeMap<String, Value>) -> Result<Self, ConfigError> {
        for key in changes.keys() {
            info(key, self.ports.len()).ok_or_else(|| unknown(key))?;
        }
        // A value of the wrong type fails in serde, which names the section only: name the
        // changed keys instead.
        let keys = || changes.keys().cloned().collect::<Vec<_>>().join(", ");
        let mut next = Self::from_source(self.source.with(changes)?).map_err(|e| match e {
            ConfigError::Syntax(message) => invalid(
                keys(),
                message,
                "a value of the key's type (see its current value)",
            ),
            e => e,
        })?;
        next.demo = self.demo;
        Ok(next)
    }

    /// The keys whose value differs between `self` and `other`, split into (live, restart).
    #[must_use]
    pub fn changed_keys(&self, other: &Self) -> (Vec<String>, Vec<String>) {
        let (mut live, mut restart) = (Vec::new(), Vec::new());
        for key in keys(self.ports.len()) {
            let Some(info) = info(&key, self.ports.len()) else {
                continue;
            };
            if self.value(&key) != other.value(&key) {
                if info.live { &mut live } else { &mut restart }.push(key);
            }
        }
        (live, restart)
    }

    /// Whether changing `key` needs a recent step-up.
    #[must_use]
    pub fn needs_step_up(&self, key: &str) -> bool {
        info(key, self.ports.len()).is_some_and(|i| i.step_up)
    }
}
