//! The bitcoind nodes as the admin API manages them: the list the pool runs, a replacement
//! list saved for the next start (`PUT /api/v1/admin/nodes`), and the connection test of
//! `POST /api/v1/admin/nodes/{id}/test`.
//!
//! # Persistence
//! A saved list goes to `nodes.toml` next to the database ([`crate::config::saved_nodes_path`],
//! `[[node]]` tables without passwords) and the passwords to the secrets file
//! ([`crate::secrets`], `[node.<name>] rpc_password`); both are written whole (a new file
//! renamed over the old). At the next start the saved list replaces the configuration's
//! `[[node]]` tables (logged, and `config check` says so). Node changes need a restart: the
//! running pool keeps its nodes.

use std::{
    path::PathBuf,
    sync::{Mutex, PoisonError, Weak},
    time::{Duration, Instant},
};

use serde::Deserialize;
use warppool_core::limits::NODE_TEST_STEP_SECS;

use crate::{
    config::{NodeConfig, NodeEntry, RpcAuth},
    rpc::{RpcClient, RpcError},
    secrets::{NodeSecrets, SecretsFile},
    templates::TemplateLoop,
};

/// What the admin API knows about the nodes.
#[derive(Debug)]
pub struct NodeAdmin {
    running: Vec<NodeConfig>,
    saved: Mutex<Option<Vec<NodeConfig>>>,
    secrets_path: PathBuf,
    saved_path: PathBuf,
    template_loop: Weak<TemplateLoop>,
}

/// The outcome of one test step.
#[derive(Debug, Clone, PartialEq)]
pub struct StepOutcome {
    /// `rpc`, `network`, `getblocktemplate` or `zmq`.
    pub step: &'static str,
    /// Passed.
    pub ok: bool,
    /// How long it took, milliseconds.
    pub latency_ms: f64,
    /// What was seen (or why it failed).
    pub detail: String,
}

impl NodeAdmin {
    /// The nodes the pool runs (`running`), saving to `saved_path` and `secrets_path`.
    #[must_use]
    pub fn new(
        running: Vec<NodeConfig>,
        secrets_path: PathBuf,
        saved_path: PathBuf,
        template_loop: Weak<TemplateLoop>,
    ) -> Self {
        Self {
            running,
            saved: Mutex::new(None),
            secrets_path,
            saved_path,
            template_loop,
        }
    }

    /// The list the next start uses: the one saved since start, else the running one.
    #[must_use]
    pub fn current(&self) -> Vec<NodeConfig> {
        self.saved
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
            .unwrap_or_else(|| self.running.clone())
    }

    /// A list was saved since start (a restart applies it).
    #[must_use]
    pub fn restart_required(&self) -> bool {
        self.saved
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .is_some()
    }

    /// The running nodes' names.
    #[must_use]
    pub fn running_names(&self) -> Vec<String> {
        self.running.iter().map(|n| n.name.clone()).collect()
    }

    /// ZMQ `(subscribed, hashblocks)` of an endpoint, as the template loop sees it.
    #[must_use]
    pub fn zmq_state(&self, endpoint: &str) -> Option<(bool, u64)> {
        let template_loop = self.template_loop.upgrade()?;
        template_loop
            .zmq_states()
            .into_iter()
            .find(|(e, _)| e == endpoint)
            .map(|(_, s)| (s.subscribed, s.hashblocks))
    }

    /// Validates `entries` like `[[node]]` tables (a `user_password` node without a password
    /// keeps the one stored for that name), then saves them (see the module docs).
    ///
    /// # Errors
    /// The validation's message (nothing saved), or why a file could not be written.
    pub fn save(&self, mut entries: Vec<NodeEntry>) -> Result<Vec<NodeConfig>, SaveError> {
        let current = self.current();
        let mut secrets =
            SecretsFile::load(&self.secrets_path).map_err(|e| SaveError::Storage(e.to_string()))?;
        for entry in &mut entries {
            let kept = current.iter().find(|n| n.name == entry.name);
            if entry.rpc_user.is_some()
                && entry.rpc_password.is_none()
                && let Some(NodeConfig {
                    auth: RpcAuth::UserPassword { password, .. },
                    ..
                }) = kept
            {
                entry.rpc_password = Some(password.expose().to_owned());
            }
        }
        let mut warnings = Vec::new();
        let nodes = crate::config::validate_node_entries(entries.clone(), &secrets, &mut warnings)
            .map_err(|e| SaveError::Invalid(e.to_string()))?;
        secrets
            .nodes
            .retain(|name, _| nodes.iter().any(|n| &n.name == name));
        for node in &nodes {
            if let RpcAuth::UserPassword { password, .. } = &node.auth {
                secrets.nodes.insert(
                    node.name.clone(),
                    NodeSecrets {
                        rpc_password: Some(password.clone()),
                    },
                );
            }
        }
        secrets
            .save()
            .map_err(|e| SaveError::Storage(e.to_string()))?;
        write_saved(&self.saved_path, &entries).map_err(SaveError::Storage)?;
        *self.saved.lock().unwrap_or_else(PoisonError::into_inner) = Some(nodes.clone());
        tracing::warn!(
            nodes = nodes.len(),
            file = %self.saved_path.display(),
            "node list saved by the admin API; restart the pool to use it"
        );
        Ok(nodes)
    }
}

/// Why a node list was not saved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum SaveError {
    /// Refused by the `[[node]]` validation (nothing written).
    #[error("{0}")]
    Invalid(String),
    /// A file could not be written.
    #[error("{0}")]
    Storage(String),
}

fn write_saved(path: &std::path::Path, entries: &[NodeEntry]) -> Result<(), String> {
    #[derive(serde::Serialize)]
    struct Saved<'a> {
        node: &'a [NodeEntry],
    }
    let text = toml::to_string(&Saved { node: entries }).map_err(|e| e.to_string())?;
    let text = format!(
        "# Saved by WarpPool's admin API (PUT /api/v1/admin/nodes): replaces the config's \
         [[node]] tables.\n# Passwords are in the secrets file. Delete this file to use the \
         config's nodes again.\n{text}"
    );
    let mut tmp = path.as_os_str().to_owned();
    tmp.push(".new");
    let tmp = PathBuf::from(tmp);
    let io = |e: std::io::Error| format!("{}: {e}", path.display());
    {
        use std::io::Write;
        let mut file = std::fs::File::create(&tmp).map_err(io)?;
        file.write_all(text.as_bytes()).map_err(io)?;
        file.sync_all().map_err(io)?;
    }
    std::fs::rename(&tmp, path).map_err(io)
}

#[derive(Debug, Deserialize)]
struct ChainInfo {
    chain: String,
    blocks: u64,
    #[serde(default)]
    initialblockdownload: bool,
}

#[derive(Debug, Deserialize)]
struct NetInfo {
    version: Option<u64>,
    subversion: Option<String>,
}

#[derive(Debug, Deserialize)]
struct TemplateRules {
    height: u64,
    #[serde(default)]
    rules: Vec<String>,
}

/// The rules the pool asks `getblocktemplate` for, and so supports.
const POOL_RULES: [&str; 1] = ["segwit"];

fn step(name: &'static str, started: Instant, result: Result<String, String>) -> StepOutcome {
    let latency_ms = started.elapsed().as_secs_f64() * 1000.0;
    let (ok, detail) = match result {
        Ok(d) => (true, d),
        Err(d) => (false, d),
    };
    StepOutcome {
        step: name,
        ok,
        latency_ms,
        detail,
    }
}

fn rpc_detail(e: &RpcError) -> String {
    match e {
        RpcError::HttpStatus(401) => "the node answered 401: wrong RPC user or password".to_owned(),
        other => other.to_string(),
    }
}

/// Runs the connection test against `node` now: RPC and auth, network version,
/// `getblocktemplate` with the pool's rules, ZMQ connect. Each step within
/// `NODE_TEST_STEP_SECS`; the RPC steps after a failed `rpc` step are reported as skipped.
pub async fn test_node(node: &NodeConfig) -> Vec<StepOutcome> {
    let timeout = Duration::from_secs(NODE_TEST_STEP_SECS);
    let mut test = node.clone();
    test.rpc_timeout = test.rpc_timeout.min(timeout);
    let client = match RpcClient::new(&test) {
        Ok(c) => c,
        Err(e) => return vec![step("rpc", Instant::now(), Err(e.to_string()))],
    };
    let mut steps = Vec::with_capacity(4);
    let t = Instant::now();
    let chain = client
        .call_with_timeout::<ChainInfo>("getblockchaininfo", serde_json::json!([]), timeout)
        .await;
    let reachable = chain.is_ok();
    steps.push(step(
        "rpc",
        t,
        chain
            .map(|c| {
                format!(
                    "chain {}, {} blocks, initial block download: {}",
                    c.chain, c.blocks, c.initialblockdownload
                )
            })
            .map_err(|e| rpc_detail(&e)),
    ));
    if reachable {
        steps.push(network_step(&client, timeout).await);
        steps.push(template_step(&client, timeout).await);
    } else {
        for name in ["network", "getblocktemplate"] {
            steps.push(step(
                name,
                Instant::now(),
                Err("skipped: rpc failed".to_owned()),
            ));
        }
    }
    steps.push(zmq_step(node.zmq_hashblock.as_deref(), timeout).await);
    steps
}

async fn network_step(client: &RpcClient, timeout: Duration) -> StepOutcome {
    let t = Instant::now();
    let info = client
        .call_with_timeout::<NetInfo>("getnetworkinfo", serde_json::json!([]), timeout)
        .await;
    step(
        "network",
        t,
        info.map(|n| {
            format!(
                "{} (version {})",
                n.subversion.unwrap_or_default(),
                n.version.map_or_else(|| "?".to_owned(), |v| v.to_string())
            )
        })
        .map_err(|e| rpc_detail(&e)),
    )
}

async fn template_step(client: &RpcClient, timeout: Duration) -> StepOutcome {
    let t = Instant::now();
    let template = client
        .call_with_timeout::<TemplateRules>(
            "getblocktemplate",
            serde_json::json!([{"rules": POOL_RULES}]),
            timeout,
        )
        .await;
    let result = match template {
        Ok(tpl) => {
            // A `!` rule must be understood by the client; the pool knows only its own.
            let refused: Vec<&str> = tpl
                .rules
                .iter()
                .filter_map(|r| r.strip_prefix('!'))
                .filter(|r| !POOL_RULES.contains(r))
                .collect();
            if refused.is_empty() {
                Ok(format!(
                    "template for height {}, rules [{}]",
                    tpl.height,
                    tpl.rules.join(", ")
                ))
            } else {
                Err(format!(
                    "the node requires rules the pool does not support: {}",
                    refused.join(", ")
                ))
            }
        }
        Err(e) => Err(rpc_detail(&e)),
    };
    step("getblocktemplate", t, result)
}

async fn zmq_step(endpoint: Option<&str>, timeout: Duration) -> StepOutcome {
    use zeromq::Socket;
    let t = Instant::now();
    let Some(endpoint) = endpoint else {
        return step(
            "zmq",
            t,
            Ok("no zmq_hashblock configured: new blocks are seen by polling".to_owned()),
        );
    };
    let mut socket = zeromq::SubSocket::new();
    let connect = tokio::time::timeout(timeout, socket.connect(endpoint)).await;
    let result = match connect {
        Ok(Ok(())) => Ok(format!("connected to {endpoint} (ZMTP handshake done)")),
        Ok(Err(e)) => Err(format!("{endpoint}: {e}")),
        Err(_) => Err(format!(
            "{endpoint}: no answer within {}s",
            timeout.as_secs()
        )),
    };
    drop(socket.close().await);
    step("zmq", t, result)
}
