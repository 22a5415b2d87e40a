//! The configuration while the pool runs: what `GET/PUT /api/v1/admin/config` read and
//! change (decision 0017).
//!
//! A change is validated like the file ([`Config::with_changes`]), stored as overrides in
//! the database (`config_overrides`, applied over the file at every start by
//! [`load_overrides`]) and its live part applied at once: admission numbers and timeouts to
//! the data plane ([`warppool_net::DataPlane::apply_settings`]), vardiff policies to new
//! connections ([`PortPolicies`]), the coinbase to the template loop (republished with the
//! next notify). Keys that need a restart are stored and reported; the pool keeps running
//! with their old value. The etag is a hash of the stored overrides: it changes with every
//! change and survives a restart.

use std::{
    collections::BTreeMap,
    path::{Path, PathBuf},
    sync::{Arc, Mutex, PoisonError},
};

use rusqlite::{Connection, params};
use serde_json::Value;
use warppool_net::{
    LiveSettings,
    stratum::{PortPolicies, StratumPlane},
};

use crate::{config::Config, error::ConfigError, templates::TemplateLoop};

/// What a change can touch while running.
pub struct LiveTargets {
    /// The data plane (admission, timeouts); weak, so shutdown can take it back.
    pub plane: std::sync::Weak<StratumPlane>,
    /// The port policies new connections read.
    pub ports: PortPolicies,
    /// The template loop (coinbase).
    pub templates: Arc<TemplateLoop>,
}

impl std::fmt::Debug for LiveTargets {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LiveTargets").finish_non_exhaustive()
    }
}

#[derive(Debug)]
struct State {
    /// As the pool started (restart keys keep this value until the next start).
    started: Config,
    /// As stored: the file with every override.
    current: Config,
}

/// The running configuration (see the module docs).
#[derive(Debug)]
pub struct LiveConfig {
    state: Mutex<State>,
    targets: LiveTargets,
    database: PathBuf,
}

/// A change that was made.
#[derive(Debug, Clone)]
pub struct Applied {
    /// The etag after it.
    pub etag: String,
    /// Keys whose change is in force now.
    pub applied_live: Vec<String>,
    /// Keys whose change waits for a restart.
    pub needs_restart: Vec<String>,
    /// Before and after of each changed key (for the audit log).
    pub before: BTreeMap<String, Value>,
    /// After.
    pub after: BTreeMap<String, Value>,
}

/// Why a change was refused.
#[derive(Debug, thiserror::Error)]
pub enum ChangeError {
    /// `If-Match` does not name the current etag.
    #[error("the configuration changed meanwhile (current etag {current})")]
    Stale {
        /// The current etag.
        current: String,
    },
    /// A key or value is refused.
    #[error(transparent)]
    Invalid(#[from] ConfigError),
    /// The database could not be written.
    #[error("cannot store the change: {0}")]
    Storage(#[from] rusqlite::Error),
}

/// The etag of a set of overrides: 16 hex digits of FNV-1a over their JSON.
fn etag_of(overrides: &BTreeMap<String, Value>) -> String {
    let text = serde_json::to_string(overrides).unwrap_or_default();
    format!("\"{}\"", crate::api::v1::worker_id(&text))
}

/// The overrides stored in `database` (empty when there are none).
///
/// # Errors
/// The database cannot be read.
pub fn load_overrides(database: &Path) -> rusqlite::Result<BTreeMap<String, Value>> {
    let connection = Connection::open(database)?;
    let mut statement = connection.prepare("SELECT key, value FROM config_overrides")?;
    let rows = statement.query_map([], |row| {
        Ok((row.get::<_, String>(0)?, row.get::<_, String>(1)?))
    })?;
    let mut out = BTreeMap::new();
    for row in rows {
        let (key, text) = row?;
        out.insert(key, serde_json::from_str(&text).unwrap_or(Value::Null));
    }
    Ok(out)
}

fn store_overrides(
    database: &Path,
    changes: &BTreeMap<String, Value>,
    actor: &str,
    now: i64,
) -> rusqlite::Result<()> {
    let mut connection = Connection::open(database)?;
    let tx = connection.transaction()?;
    for (key, value) in changes {
        tx.execute(
            "INSERT INTO config_overrides (key, value, updated_unix_s, actor) \
             VALUES (?1, ?2, ?3, ?4) ON CONFLICT(key) DO UPDATE SET \
             value = excluded.value, updated_unix_s = excluded.updated_unix_s, \
             actor = excluded.actor",
            params![key, value.to_string(), now, actor],
        )?;
    }
    tx.commit()
}

impl LiveConfig {
    /// The configuration `config` (file and stored overrides) the pool started with.
    #[must_use]
    pub fn new(config: Config, targets: LiveTargets) -> Self {
        Self {
            database: config.database.clone(),
            state: Mutex::new(State {
                started: config.clone(),
                current: config,
            }),
            targets,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// The profile in force.
    #[must_use]
    pub fn profile(&self) -> &'static str {
        self.state().current.profile.name
    }

    /// The stored configuration, its etag, and the keys whose stored value waits for a
    /// restart.
    #[must_use]
    pub fn snapshot(&self) -> (Config, String, Vec<String>) {
        let state = self.state();
        let (_, pending) = state.started.changed_keys(&state.current);
        let etag = etag_of(state.current.source.overrides());
        (state.current.clone(), etag, pending)
    }

    /// Validates `changes`, checks `if_match`, stores them and applies their live part.
    ///
    /// # Errors
    /// [`ChangeError`]; nothing is changed then.
    pub fn change(
        &self,
        if_match: &str,
        changes: &BTreeMap<String, Value>,
        actor: &str,
        now: i64,
    ) -> Result<Applied, ChangeError> {
        let mut state = self.state();
        let current = etag_of(state.current.source.overrides());
        if if_match.trim() != current && if_match.trim() != "*" {
            return Err(ChangeError::Stale { current });
        }
        let next = state.current.with_changes(changes)?;
        let (applied_live, needs_restart) = state.current.changed_keys(&next);
        let mut before = BTreeMap::new();
        let mut after = BTreeMap::new();
        for key in applied_live.iter().chain(&needs_restart) {
            before.insert(key.clone(), state.current.value(key).unwrap_or(Value::Null));
            after.insert(key.clone(), next.value(key).unwrap_or(Value::Null));
        }
        store_overrides(&self.database, changes, actor, now)?;
        if !applied_live.is_empty() {
            self.apply(&state.started, &next);
        }
        let etag = etag_of(next.source.overrides());
        state.current = next;
        Ok(Applied {
            etag,
            applied_live,
            needs_restart,
            before,
            after,
        })
    }

    /// Applies the live part of `next` (restart keys keep `started`'s value).
    fn apply(&self, started: &Config, next: &Config) {
        let t = &self.targets;
        let settings = LiveSettings::of(&next.net_config());
        match t.plane.upgrade().map(|p| p.apply_settings(settings)) {
            Some(Ok(())) => {}
            Some(Err(e)) => tracing::error!(error = %e, "live settings refused by the data plane"),
            None => tracing::warn!("the data plane is stopping; live settings not applied"),
        }
        let policies = next
            .ports
            .iter()
            .zip(&started.ports)
            .map(|(n, s)| {
                let mut policy = n.policy;
                policy.fractional = s.policy.fractional;
                // Not live: the vardiff target keeps its value until the next start.
                policy.vardiff.shares_per_min_target = s.policy.vardiff.shares_per_min_target;
                policy
            })
            .collect();
        if let Err(e) = t.ports.publish(policies) {
            tracing::error!(error = %e, "port policies refused by the data plane");
        }
        if t.templates.coinbase() != next.coinbase {
            t.templates.set_coinbase(next.coinbase.clone());
        }
        tracing::info!(profile = next.profile.name, "configuration applied live");
    }
}
