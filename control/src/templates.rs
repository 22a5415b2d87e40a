//! The template loop: node health, `getblocktemplate`, and [`JobSet`] publication.
//!
//! # Responsibilities
//!
//! - One task ([`TemplateLoop::run`]) owns publication: on a trigger, or every refresh
//!   interval, it asks the nodes in order (skipping those backing off or in initial block
//!   download) for a template, parses it with `Template::from_json` and publishes a new
//!   [`JobSet`] (generation + 1, `clean_jobs` iff the previous block hash changed).
//! - Triggers coalesce (a `Notify` holds at most one permit): ZMQ `hashblock`
//!   ([`zmq_task`], one `connect` per socket), long-poll ([`longpoll_task`]), and the
//!   `getbestblockhash` watchdog ([`watchdog_task`]) so a dead ZMQ never stalls work.
//! - Gating: while every node is in IBD or unreachable, or the current template is older than
//!   the maximum age, a gated `JobSet` (`gate: Some(reason)`) is published once per reason;
//!   the next good template is published ungated.
//! - "hashblock received → JobSet published" latency is logged at debug.

use std::{
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use bitcoin::Network;
use tokio::sync::{Notify, watch};
use warppool_core::{
    CoinbaseConfig, Template, build_coinbase,
    limits::{CONTROL_RETRY_MS, RPC_LONGPOLL_TIMEOUT_MS},
};
use warppool_net::stratum::{JobSet, StratumPlane};

use crate::{
    config::TemplateSettings,
    rpc::{BlockchainInfo, NetworkInfo, Nodes, RawJson, RpcClient, RpcError, TEMPLATE_METHOD},
};

/// Where job sets go: the data plane, or a test recorder.
pub trait JobSink: Send + Sync + 'static {
    /// Publishes `jobs` to the miners.
    fn publish(&self, jobs: Arc<JobSet>);
}

impl JobSink for StratumPlane {
    fn publish(&self, jobs: Arc<JobSet>) {
        warppool_net::DataPlane::publish(self, jobs);
    }
}

/// What the loop publishes last, for tests and metrics.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct TemplateStatus {
    /// Generation of the last published job set.
    pub generation: u64,
    /// Height of the current template.
    pub height: Option<u32>,
    /// The gate in force.
    pub gate: Option<String>,
    /// What kind of gate it is (for health codes).
    pub gate_kind: Option<GateKind>,
    /// The current template's summary.
    pub template: Option<TemplateSummary>,
}

/// Why work is gated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum GateKind {
    /// No node answered.
    NodeUnreachable,
    /// Every answering node is in initial block download.
    NodeSyncing,
    /// A node's template was refused (an unknown `!` rule, a malformed template).
    TemplateRefused,
    /// A template arrived but its coinbase cannot be built (e.g. `[[pool.split]]` above the
    /// coinbase value).
    WorkUnbuildable,
    /// No successful refresh for longer than the template age limit.
    TemplateStale,
}

/// What the API shows of the current template.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct TemplateSummary {
    /// Previous block hash, display order.
    pub prev_hash: [u8; 32],
    /// Compact network target.
    pub bits: u32,
    /// Network difficulty (diff-1 target / network target).
    pub network_difficulty: f64,
    /// The template's `curtime`.
    pub curtime: u32,
    /// Transactions besides the coinbase.
    pub tx_count: usize,
    /// Their serialized size, bytes.
    pub tx_bytes: usize,
    /// Their fees, satoshis.
    pub fees_sats: u64,
    /// The coinbase value (subsidy + fees), satoshis.
    pub coinbase_value_sats: u64,
    /// Unix seconds when it was published.
    pub published_at: i64,
}

impl TemplateSummary {
    fn of(t: &Template) -> Self {
        let mut prev_hash = *t.prevhash();
        prev_hash.reverse();
        Self {
            prev_hash,
            bits: t.bits(),
            network_difficulty: t.network_target().to_difficulty_lossy(),
            curtime: t.curtime().secs(),
            tx_count: t.transactions().len(),
            tx_bytes: t.transactions().iter().map(|x| x.data().len()).sum(),
            fees_sats: t.transactions().iter().map(|x| x.fee_sats()).sum(),
            coinbase_value_sats: t.coinbase_value_sats(),
            published_at: std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .map_or(0, |d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX)),
        }
    }
}

#[derive(Debug, Default)]
struct State {
    generation: u64,
    template: Option<Arc<Template>>,
    fetched_at: Option<Instant>,
    gate: Option<String>,
    /// Node index and long-poll id of the current template.
    longpoll: Option<(usize, String)>,
    /// The coinbase configuration changed: the next refresh publishes even the same template.
    coinbase_changed: bool,
}

/// The template loop (see the module docs).
pub struct TemplateLoop {
    nodes: Arc<Nodes>,
    sink: Arc<dyn JobSink>,
    settings: TemplateSettings,
    network: Network,
    /// Changed live by the admin API ([`TemplateLoop::set_coinbase`]).
    coinbase: Mutex<CoinbaseConfig>,
    trigger: Notify,
    /// When a `hashblock` arrived that no publication has answered yet.
    hashblock_at: Mutex<Option<Instant>>,
    state: Mutex<State>,
    status: watch::Sender<TemplateStatus>,
    longpoll: watch::Sender<Option<(usize, String)>>,
    job_build_failures: AtomicU64,
    /// Each ZMQ endpoint's state, by endpoint (one per configured node at most).
    zmq: Mutex<std::collections::BTreeMap<String, ZmqState>>,
}

/// What one ZMQ `hashblock` subscription has done ([`TemplateLoop::zmq_states`]).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct ZmqState {
    /// Subscribed (the socket reconnects by itself after that, so a node that went away is
    /// not seen here: watch `hashblocks` and the node's RPC state).
    pub subscribed: bool,
    /// `hashblock` notifications received.
    pub hashblocks: u64,
}

impl std::fmt::Debug for TemplateLoop {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TemplateLoop")
            .field("settings", &self.settings)
            .finish_non_exhaustive()
    }
}

/// A P2WPKH payout script: what every shard's coinbase has besides the configured splits.
const PROBE_PAYOUT_SCRIPT: [u8; 22] = {
    let mut s = [0u8; 22];
    s[1] = 0x14;
    s
};

/// Logs node `client`'s version (at start and on reconnect) and warns when it is a version
/// known to follow another chain.
async fn log_node_version(client: &RpcClient) {
    match client
        .call::<NetworkInfo>("getnetworkinfo", serde_json::json!([]))
        .await
    {
        Ok(info) => {
            tracing::info!(
                node = client.name(),
                version = info.version,
                subversion = %info.subversion,
                "node version"
            );
            if let Some(warning) = info.other_chain_warning() {
                tracing::warn!(node = client.name(), "{warning}");
            }
        }
        Err(e) => {
            tracing::warn!(node = client.name(), error = %e, "cannot read the node's version")
        }
    }
}

/// Why a refresh found no usable node.
fn gate_reason(
    ibd: usize,
    refused: usize,
    unbuildable: usize,
    errors: &[String],
) -> (GateKind, String) {
    if refused > 0 || unbuildable > 0 {
        let kind = if unbuildable > 0 {
            GateKind::WorkUnbuildable
        } else {
            GateKind::TemplateRefused
        };
        return (kind, format!("no usable template ({})", errors.join("; ")));
    }
    if errors.is_empty() && ibd > 0 {
        let reason = "every node is in initial block download".to_owned();
        return (GateKind::NodeSyncing, reason);
    }
    if ibd > 0 {
        let reason = format!(
            "no usable node: {ibd} in initial block download, others failing ({})",
            errors.join("; ")
        );
        return (GateKind::NodeSyncing, reason);
    }
    let reason = format!("no node reachable ({})", errors.join("; "));
    (GateKind::NodeUnreachable, reason)
}

impl TemplateLoop {
    /// A loop publishing to `sink`.
    #[must_use]
    pub fn new(
        nodes: Arc<Nodes>,
        sink: Arc<dyn JobSink>,
        settings: TemplateSettings,
        network: Network,
        coinbase: CoinbaseConfig,
    ) -> Self {
        Self {
            nodes,
            sink,
            settings,
            network,
            coinbase: Mutex::new(coinbase),
            trigger: Notify::new(),
            hashblock_at: Mutex::new(None),
            state: Mutex::new(State::default()),
            status: watch::Sender::new(TemplateStatus::default()),
            longpoll: watch::Sender::new(None),
            job_build_failures: AtomicU64::new(0),
            zmq: Mutex::new(std::collections::BTreeMap::new()),
        }
    }

    /// Each ZMQ endpoint's state, by endpoint.
    #[must_use]
    pub fn zmq_states(&self) -> Vec<(String, ZmqState)> {
        let map = self
            .zmq
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.iter().map(|(e, s)| (e.clone(), *s)).collect()
    }

    fn zmq_update(&self, endpoint: &str, f: impl FnOnce(&mut ZmqState)) {
        let mut map = self
            .zmq
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(map.entry(endpoint.to_owned()).or_default());
    }

    /// How long ago a node last answered with a usable template (`None` before the first).
    #[must_use]
    pub fn refreshed_ago(&self) -> Option<Duration> {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .fetched_at
            .map(|at| at.elapsed())
    }

    /// The coinbase configuration in force.
    #[must_use]
    pub fn coinbase(&self) -> CoinbaseConfig {
        self.coinbase
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clone()
    }

    /// Replaces the coinbase configuration (tag, splits) and publishes the current template
    /// again with it at the next refresh, which it triggers now: every miner gets a notify
    /// with the new coinbase.
    pub fn set_coinbase(&self, coinbase: CoinbaseConfig) {
        *self
            .coinbase
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner) = coinbase;
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .coinbase_changed = true;
        self.trigger();
    }

    /// Asks for a refresh as soon as possible (coalesces with pending requests).
    pub fn trigger(&self) {
        self.trigger.notify_one();
    }

    /// Records a `hashblock` notification and triggers a refresh.
    pub fn on_hashblock(&self) {
        let mut at = self
            .hashblock_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        at.get_or_insert_with(Instant::now);
        drop(at);
        self.trigger();
    }

    /// Follows what the loop publishes.
    #[must_use]
    pub fn status(&self) -> watch::Receiver<TemplateStatus> {
        self.status.subscribe()
    }

    /// Runs until `shutdown` turns true.
    pub async fn run(self: Arc<Self>, mut shutdown: watch::Receiver<bool>) {
        let mut refresh = tokio::time::interval(self.settings.refresh);
        refresh.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        let mut age = tokio::time::interval(self.settings.best_block_poll);
        age.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = self.trigger.notified() => self.refresh().await,
                _ = refresh.tick() => self.refresh().await,
                // While gated, health is checked at the watchdog pace so work resumes within
                // a poll interval of the node becoming healthy.
                _ = age.tick() => if self.is_gated() { self.refresh().await } else { self.check_age() },
                _ = shutdown.changed() => {
                    if *shutdown.borrow() { break; }
                }
            }
        }
    }

    /// Fetches a template from the first usable node and publishes it, or gates.
    pub async fn refresh(&self) {
        let mut ibd = 0usize;
        let mut refused = 0usize;
        let mut unbuildable = 0usize;
        let mut errors = Vec::new();
        for i in self.nodes.available() {
            let client = &self.nodes.clients()[i];
            let info = client
                .call::<BlockchainInfo>("getblockchaininfo", serde_json::json!([]))
                .await;
            match info {
                Ok(info) if info.initialblockdownload => {
                    self.nodes.record_call(i, "getblockchaininfo", Ok(()));
                    ibd += 1;
                    continue;
                }
                Ok(_) => self.nodes.record_call(i, "getblockchaininfo", Ok(())),
                Err(e) => {
                    self.nodes.record_call(i, "getblockchaininfo", Err(&e));
                    errors.push(format!("{}: {e}", client.name()));
                    continue;
                }
            }
            if self.nodes.take_version_check(i) {
                log_node_version(client).await;
            }
            let raw = client
                .call::<RawJson>(TEMPLATE_METHOD, serde_json::json!([{"rules": ["segwit"]}]))
                .await;
            let raw = match raw {
                Ok(raw) => {
                    self.nodes.record_call(i, TEMPLATE_METHOD, Ok(()));
                    raw
                }
                Err(e) => {
                    self.nodes.record_call(i, TEMPLATE_METHOD, Err(&e));
                    errors.push(format!("{}: {e}", client.name()));
                    continue;
                }
            };
            let built = self.usable(raw).await;
            match built {
                Ok(t) => {
                    self.publish(i, Arc::new(t));
                    return;
                }
                Err(e) => {
                    tracing::error!(
                        node = client.name(), error = %e, "no work from this node's template"
                    );
                    match e {
                        Unusable::Refused(_) => refused += 1,
                        Unusable::Unbuildable(_) => unbuildable += 1,
                    }
                    errors.push(format!("{}: {e}", client.name()));
                }
            }
        }
        if self.nodes.available().is_empty() && errors.is_empty() && ibd == 0 {
            errors.push(RpcError::NoNodeAvailable.to_string());
        }
        let (kind, reason) = gate_reason(ibd, refused, unbuildable, &errors);
        self.gate(kind, reason);
    }

    /// Parses a template and checks that work can be built from it.
    async fn usable(&self, raw: RawJson) -> Result<Template, Unusable> {
        // A full mempool's template takes milliseconds to check: off the workers
        // (STYLE rule 11).
        let parsed =
            tokio::task::spawn_blocking(move || Template::from_json(raw.0.get().as_bytes()))
                .await
                .map_err(|_| Unusable::Refused("template parse panicked".to_owned()))?;
        let t = parsed.map_err(|e| Unusable::Refused(format!("template refused: {e}")))?;
        // Work that cannot be built must not be silent: the coinbase every shard builds,
        // tried once here (the split outputs do not depend on the payout script).
        build_coinbase(&t, &PROBE_PAYOUT_SCRIPT, &self.coinbase()).map_err(|e| {
            self.job_build_failures.fetch_add(1, Ordering::Relaxed);
            Unusable::Unbuildable(format!("cannot build work: {e} (check [[pool.split]])"))
        })?;
        Ok(t)
    }

    /// Templates that answered but could not be turned into work (a refused template, or a
    /// coinbase that cannot be built, such as splits above the coinbase value).
    #[must_use]
    pub fn job_build_failures(&self) -> u64 {
        self.job_build_failures.load(Ordering::Relaxed)
    }

    fn publish(&self, node: usize, template: Arc<Template>) {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let clean_jobs = state
            .template
            .as_ref()
            .is_none_or(|t| t.prevhash() != template.prevhash());
        let unchanged = state.gate.is_none()
            && !state.coinbase_changed
            && state.template.as_deref() == Some(template.as_ref());
        state.fetched_at = Some(Instant::now());
        let longpoll = template.longpollid().map(|id| (node, id.to_owned()));
        if unchanged {
            // Same template, nothing to tell the miners; it is fresh though.
            drop(state);
            self.longpoll
                .send_if_modified(|v| replace_if_changed(v, longpoll));
            return;
        }
        state.generation += 1;
        state.coinbase_changed = false;
        let generation = state.generation;
        let height = template.height();
        if state.gate.take().is_some() {
            tracing::info!(height, "node healthy again; work resumes");
        }
        state.template = Some(Arc::clone(&template));
        state.longpoll.clone_from(&longpoll);
        drop(state);
        let summary = TemplateSummary::of(&template);
        let jobs = JobSet::new(
            template,
            generation,
            clean_jobs,
            self.network,
            self.coinbase(),
        );
        self.sink.publish(Arc::new(jobs));
        if let Some(at) = self
            .hashblock_at
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            tracing::debug!(
                latency_us = at.elapsed().as_micros() as u64,
                height,
                "hashblock → jobset published"
            );
        }
        tracing::info!(generation, height, clean_jobs, "template published");
        self.status.send_replace(TemplateStatus {
            generation,
            height: Some(height),
            gate: None,
            gate_kind: None,
            template: Some(summary),
        });
        self.longpoll
            .send_if_modified(|v| replace_if_changed(v, longpoll));
    }

    fn gate(&self, kind: GateKind, reason: String) {
        let mut state = self
            .state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        if state.gate.as_deref() == Some(reason.as_str()) {
            return;
        }
        tracing::warn!(%reason, "work gated");
        state.generation += 1;
        state.gate = Some(reason.clone());
        let jobs = JobSet {
            template: state.template.clone(),
            generation: state.generation,
            clean_jobs: false,
            network: self.network,
            coinbase: self.coinbase(),
            gate: Some(reason.clone()),
        };
        let status = TemplateStatus {
            generation: state.generation,
            height: state.template.as_ref().map(|t| t.height()),
            gate: Some(reason),
            gate_kind: Some(kind),
            template: self.status.borrow().template,
        };
        drop(state);
        self.sink.publish(Arc::new(jobs));
        self.status.send_replace(status);
    }

    fn is_gated(&self) -> bool {
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .gate
            .is_some()
    }

    /// Gates work when the template has not been refreshed for longer than the maximum age.
    pub fn check_age(&self) {
        let stale = {
            let state = self
                .state
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner);
            state.gate.is_none()
                && state
                    .fetched_at
                    .is_some_and(|at| at.elapsed() > self.settings.age_max)
        };
        if stale {
            self.gate(
                GateKind::TemplateStale,
                format!(
                    "template older than {} s (no successful refresh)",
                    self.settings.age_max.as_secs()
                ),
            );
        }
    }
}

/// Why a node's answer gave no work.
#[derive(Debug)]
enum Unusable {
    Refused(String),
    Unbuildable(String),
}

impl std::fmt::Display for Unusable {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Refused(why) | Self::Unbuildable(why) => f.write_str(why),
        }
    }
}

fn replace_if_changed<T: PartialEq>(slot: &mut T, new: T) -> bool {
    if *slot == new {
        false
    } else {
        *slot = new;
        true
    }
}

/// Polls `getbestblockhash` every `best_block_poll` and triggers a refresh when the tip
/// changed or no node answers (so gating notices).
pub async fn watchdog_task(lp: Arc<TemplateLoop>, mut shutdown: watch::Receiver<bool>) {
    let mut tick = tokio::time::interval(lp.settings.best_block_poll);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut best: Option<String> = None;
    loop {
        tokio::select! {
            _ = tick.tick() => {}
            _ = shutdown.changed() => if *shutdown.borrow() { return; },
        }
        match lp
            .nodes
            .call::<String>("getbestblockhash", serde_json::json!([]))
            .await
        {
            Ok((_, hash)) => {
                if best.as_deref() != Some(hash.as_str()) {
                    if best.is_some() {
                        tracing::debug!(%hash, "watchdog: new tip");
                    }
                    best = Some(hash);
                    lp.trigger();
                }
            }
            Err(e) => {
                tracing::debug!(error = %e, "watchdog: no node answers getbestblockhash");
                best = None;
                lp.trigger();
            }
        }
    }
}

/// Long-polls the node of the current template and triggers a refresh when it answers.
pub async fn longpoll_task(lp: Arc<TemplateLoop>, mut shutdown: watch::Receiver<bool>) {
    let mut ids = lp.longpoll.subscribe();
    loop {
        let current = ids.borrow_and_update().clone();
        let Some((node, id)) = current else {
            tokio::select! {
                r = ids.changed() => if r.is_err() { return; },
                _ = shutdown.changed() => if *shutdown.borrow() { return; },
            }
            continue;
        };
        let client = Arc::clone(&lp.nodes.clients()[node]);
        let call = client.call_with_timeout::<RawJson>(
            "getblocktemplate",
            serde_json::json!([{"rules": ["segwit"], "longpollid": id}]),
            Duration::from_millis(RPC_LONGPOLL_TIMEOUT_MS),
        );
        tokio::select! {
            result = call => match result {
                Ok(_) => {
                    lp.trigger();
                    // Wait for the refresh to bring a new long-poll id (a node that answers at
                    // once with the same id must not make this a busy loop).
                    tokio::select! {
                        r = ids.changed() => if r.is_err() { return; },
                        () = tokio::time::sleep(lp.settings.refresh) => {}
                        _ = shutdown.changed() => if *shutdown.borrow() { return; },
                    }
                }
                Err(e) => {
                    tracing::debug!(node = client.name(), error = %e, "long-poll failed");
                    tokio::time::sleep(Duration::from_millis(CONTROL_RETRY_MS)).await;
                }
            },
            // A new template (new id) restarts the long-poll.
            r = ids.changed() => if r.is_err() { return; },
            _ = shutdown.changed() => if *shutdown.borrow() { return; },
        }
    }
}

/// Subscribes to `hashblock` at `endpoint` (one socket, one `connect`; zeromq ≥ 0.6
/// reconnects and re-subscribes by itself) and triggers a refresh per notification.
pub async fn zmq_task(
    lp: Arc<TemplateLoop>,
    endpoint: String,
    mut shutdown: watch::Receiver<bool>,
) {
    use zeromq::{Socket, SocketRecv};
    lp.zmq_update(&endpoint, |_| {});
    loop {
        let mut socket = zeromq::SubSocket::new();
        let connected = tokio::select! {
            r = socket.connect(&endpoint) => r,
            _ = shutdown.changed() => if *shutdown.borrow() { return; } else { continue; },
        };
        if let Err(e) = connected {
            // The socket never connected: a new socket is not a second connect.
            tracing::warn!(%endpoint, error = %e, "zmq connect failed; retrying");
            tokio::time::sleep(Duration::from_millis(CONTROL_RETRY_MS)).await;
            continue;
        }
        if let Err(e) = socket.subscribe("hashblock").await {
            tracing::warn!(%endpoint, error = %e, "zmq subscribe failed; retrying");
            tokio::time::sleep(Duration::from_millis(CONTROL_RETRY_MS)).await;
            continue;
        }
        tracing::info!(%endpoint, "zmq hashblock subscribed");
        lp.zmq_update(&endpoint, |s| s.subscribed = true);
        loop {
            tokio::select! {
                message = socket.recv() => match message {
                    Ok(m) => {
                        // Three frames: topic, 32-byte hash, 4-byte sequence.
                        if m.get(0).is_some_and(|t| t.as_ref() == b"hashblock")
                            && m.get(1).is_some_and(|h| h.len() == 32)
                        {
                            lp.zmq_update(&endpoint, |s| s.hashblocks += 1);
                            lp.on_hashblock();
                        }
                    }
                    Err(e) => {
                        tracing::warn!(%endpoint, error = %e, "zmq receive failed");
                        tokio::time::sleep(Duration::from_millis(CONTROL_RETRY_MS)).await;
                    }
                },
                _ = shutdown.changed() => if *shutdown.borrow() { return; },
            }
        }
    }
}
