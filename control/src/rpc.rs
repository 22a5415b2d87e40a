//! A small bitcoind JSON-RPC client and an ordered set of nodes with failover.
//!
//! # Responsibilities
//!
//! - [`RpcClient`]: one node. JSON-RPC 1.0 over plain HTTP (reqwest without TLS back ends;
//!   chunked and content-length bodies alike), basic auth from user/password or the cookie
//!   file (re-read once on 401, since Core rewrites it at every start), a timeout per request,
//!   a reply size bound (`RPC_RESPONSE_BYTES_MAX`) and a latency histogram per method.
//! - [`Nodes`]: the configured nodes in order. A failing node is skipped with an exponential
//!   back-off (`NODE_BACKOFF_MS_MIN`..`NODE_BACKOFF_MS_MAX`) and retried once it expires.
//!
//! # Usage
//!
//! ```no_run
//! # async fn f(nodes: &warppool_control::rpc::Nodes) {
//! let best: String = nodes.call("getbestblockhash", serde_json::json!([])).await.unwrap().1;
//! # }
//! ```

use std::{
    collections::BTreeMap,
    path::Path,
    sync::{
        Arc, Mutex,
        atomic::{AtomicU64, Ordering},
    },
    time::{Duration, Instant},
};

use hdrhistogram::Histogram;
use serde::{Deserialize, de::DeserializeOwned};
use serde_json::value::RawValue;
use warppool_core::limits::{
    COOKIE_FILE_BYTES_MAX, NODE_BACKOFF_MS_MAX, NODE_BACKOFF_MS_MIN, RPC_LATENCY_US_MAX,
    RPC_RESPONSE_BYTES_MAX,
};

use crate::config::{NodeConfig, RpcAuth};
pub use crate::error::RpcError;

#[derive(Deserialize)]
struct Envelope<'a> {
    #[serde(borrow, default)]
    result: Option<&'a RawValue>,
    #[serde(default)]
    error: Option<ErrorObject>,
}

#[derive(Deserialize)]
struct ErrorObject {
    code: i64,
    message: String,
}

/// A snapshot of one method's latencies, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LatencySummary {
    /// Calls recorded.
    pub count: u64,
    /// Median.
    pub p50_us: u64,
    /// 99th percentile.
    pub p99_us: u64,
    /// Maximum.
    pub max_us: u64,
}

/// Upper bounds of the buckets of the RPC latency histograms (`warppool_rpc_latency_seconds`),
/// in microseconds; one more bucket takes the slower calls.
pub const RPC_LATENCY_BUCKETS_US: [u64; 12] = [
    1_000, 2_500, 5_000, 10_000, 25_000, 50_000, 100_000, 250_000, 500_000, 1_000_000, 2_500_000,
    10_000_000,
];

/// The method label of long-poll `getblocktemplate` calls in [`RpcClient::latency_buckets`]:
/// they wait for a new template by design, so they are kept apart from the ordinary ones.
pub const LONGPOLL_METHOD_LABEL: &str = "getblocktemplate_longpoll";

/// One method's calls by latency since start (a fixed-bucket histogram).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct LatencyBuckets {
    /// Calls per bucket of [`RPC_LATENCY_BUCKETS_US`], then the slower ones (not cumulative).
    pub counts: [u64; RPC_LATENCY_BUCKETS_US.len() + 1],
    /// Sum of the calls' latencies, microseconds.
    pub sum_us: u64,
}

impl LatencyBuckets {
    fn record(&mut self, us: u64) {
        let bucket = RPC_LATENCY_BUCKETS_US.partition_point(|&bound| bound < us);
        self.counts[bucket] += 1;
        self.sum_us = self.sum_us.saturating_add(us);
    }
}

/// A JSON-RPC client of one node.
pub struct RpcClient {
    name: String,
    url: String,
    auth: RpcAuth,
    timeout: Duration,
    http: reqwest::Client,
    /// The `user:password` from the cookie file, read lazily and re-read on 401.
    cookie: Mutex<Option<String>>,
    latency: Mutex<BTreeMap<&'static str, Histogram<u64>>>,
    /// Per method (a finite set of `&'static str` in this crate's code).
    buckets: Mutex<BTreeMap<&'static str, LatencyBuckets>>,
    next_id: AtomicU64,
}

impl std::fmt::Debug for RpcClient {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RpcClient")
            .field("name", &self.name)
            .field("url", &self.url)
            .field("auth", &self.auth)
            .finish_non_exhaustive()
    }
}

fn read_cookie(path: &Path) -> Result<String, RpcError> {
    let bytes =
        std::fs::read(path).map_err(|e| RpcError::Cookie(format!("{}: {e}", path.display())))?;
    if bytes.len() > COOKIE_FILE_BYTES_MAX {
        return Err(RpcError::Cookie(format!("{} is too large", path.display())));
    }
    let text = String::from_utf8(bytes)
        .map_err(|_| RpcError::Cookie(format!("{} is not text", path.display())))?;
    let line = text.trim();
    if !line.contains(':') {
        return Err(RpcError::Cookie(format!(
            "{} has no user:password",
            path.display()
        )));
    }
    Ok(line.to_owned())
}

impl RpcClient {
    /// A client for `node`.
    ///
    /// # Errors
    /// [`RpcError::Transport`] if the HTTP client cannot be built.
    pub fn new(node: &NodeConfig) -> Result<Self, RpcError> {
        let http = reqwest::Client::builder()
            .pool_max_idle_per_host(4)
            // The node is local or trusted: never route RPC through an HTTP(S)_PROXY setting.
            .no_proxy()
            .build()
            .map_err(|e| RpcError::Transport(e.to_string()))?;
        Ok(Self {
            name: node.name.clone(),
            url: node.rpc_url.clone(),
            auth: node.auth.clone(),
            timeout: node.rpc_timeout,
            http,
            cookie: Mutex::new(None),
            latency: Mutex::new(BTreeMap::new()),
            buckets: Mutex::new(BTreeMap::new()),
            next_id: AtomicU64::new(1),
        })
    }

    /// The node's name.
    #[must_use]
    pub fn name(&self) -> &str {
        &self.name
    }

    /// Calls `method` with the node's default timeout.
    ///
    /// # Errors
    /// [`RpcError`].
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: &'static str,
        params: serde_json::Value,
    ) -> Result<T, RpcError> {
        self.call_with_timeout(method, params, self.timeout).await
    }

    /// Calls `method` with an explicit timeout (long-poll).
    ///
    /// # Errors
    /// [`RpcError`].
    pub async fn call_with_timeout<T: DeserializeOwned>(
        &self,
        method: &'static str,
        params: serde_json::Value,
        timeout: Duration,
    ) -> Result<T, RpcError> {
        let started = Instant::now();
        let result = self.call_inner(method, &params, timeout).await;
        let elapsed = started.elapsed();
        self.record(method, elapsed);
        let label = if timeout > self.timeout {
            LONGPOLL_METHOD_LABEL
        } else {
            method
        };
        self.record_bucket(label, elapsed);
        let body = result?;
        decode_reply(&body)
    }

    async fn call_inner(
        &self,
        method: &'static str,
        params: &serde_json::Value,
        timeout: Duration,
    ) -> Result<Vec<u8>, RpcError> {
        let id = self.next_id.fetch_add(1, Ordering::Relaxed);
        let body = serde_json::to_vec(&serde_json::json!({
            "jsonrpc": "1.0", "id": id, "method": method, "params": params,
        }))
        .map_err(|e| RpcError::Decode(e.to_string()))?;
        let mut reread_cookie = false;
        loop {
            let (user, password) = self.credentials(reread_cookie)?;
            let request = self
                .http
                .post(&self.url)
                .basic_auth(user, Some(password))
                .header("content-type", "application/json")
                .timeout(timeout)
                .body(body.clone());
            let mut response = request.send().await.map_err(|e| transport(&e, timeout))?;
            let status = response.status().as_u16();
            if status == 401 && matches!(self.auth, RpcAuth::Cookie(_)) && !reread_cookie {
                // Core rewrites the cookie at every start: read it again once.
                reread_cookie = true;
                continue;
            }
            let mut bytes = Vec::new();
            while let Some(chunk) = response.chunk().await.map_err(|e| transport(&e, timeout))? {
                if bytes.len() + chunk.len() > RPC_RESPONSE_BYTES_MAX {
                    return Err(RpcError::TooLarge);
                }
                bytes.extend_from_slice(&chunk);
            }
            if !(200..300).contains(&status) {
                // Core sends JSON-RPC errors with 500 (or 404 for an unknown method).
                if let Ok(Envelope { error: Some(e), .. }) = serde_json::from_slice(&bytes) {
                    return Err(RpcError::Rpc {
                        code: e.code,
                        message: e.message,
                    });
                }
                return Err(RpcError::HttpStatus(status));
            }
            return Ok(bytes);
        }
    }

    fn credentials(&self, reread: bool) -> Result<(String, String), RpcError> {
        let line = match &self.auth {
            RpcAuth::UserPassword { user, password } => {
                return Ok((user.clone(), password.expose().to_owned()));
            }
            RpcAuth::Cookie(path) => {
                let mut cached = self
                    .cookie
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                if reread || cached.is_none() {
                    *cached = Some(read_cookie(path)?);
                }
                cached.clone().unwrap_or_default()
            }
        };
        let (user, password) = line.split_once(':').unwrap_or((&line, ""));
        Ok((user.to_owned(), password.to_owned()))
    }

    fn record(&self, method: &'static str, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros())
            .unwrap_or(u64::MAX)
            .clamp(1, RPC_LATENCY_US_MAX);
        let mut map = self
            .latency
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        let histogram = map.entry(method).or_insert_with(|| {
            Histogram::new_with_bounds(1, RPC_LATENCY_US_MAX, 2).expect("constant bounds are valid")
        });
        // In bounds by the clamp above.
        let _ = histogram.record(us);
    }

    fn record_bucket(&self, method: &'static str, elapsed: Duration) {
        let us = u64::try_from(elapsed.as_micros()).unwrap_or(u64::MAX);
        self.buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .entry(method)
            .or_default()
            .record(us);
    }

    /// Calls by latency per method since start (long-polls under [`LONGPOLL_METHOD_LABEL`]).
    #[must_use]
    pub fn latency_buckets(&self) -> Vec<(&'static str, LatencyBuckets)> {
        let map = self
            .buckets
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.iter().map(|(m, b)| (*m, *b)).collect()
    }

    /// Latency summaries per method since start (for metrics).
    #[must_use]
    pub fn latencies(&self) -> Vec<(&'static str, LatencySummary)> {
        let map = self
            .latency
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        map.iter()
            .map(|(m, h)| {
                (
                    *m,
                    LatencySummary {
                        count: h.len(),
                        p50_us: h.value_at_quantile(0.5),
                        p99_us: h.value_at_quantile(0.99),
                        max_us: h.max(),
                    },
                )
            })
            .collect()
    }
}

fn transport(e: &reqwest::Error, timeout: Duration) -> RpcError {
    if e.is_timeout() {
        RpcError::Timeout(timeout)
    } else {
        RpcError::Transport(error_chain(e))
    }
}

fn error_chain(e: &dyn std::error::Error) -> String {
    let mut s = e.to_string();
    let mut source = e.source();
    while let Some(inner) = source {
        s.push_str(": ");
        s.push_str(&inner.to_string());
        source = inner.source();
    }
    s
}

/// Decodes a JSON-RPC reply body into `T` (its `result`), or the error object it carries.
///
/// # Errors
/// [`RpcError::Rpc`] for an error object, [`RpcError::Decode`] otherwise.
pub fn decode_reply<T: DeserializeOwned>(body: &[u8]) -> Result<T, RpcError> {
    let envelope: Envelope<'_> =
        serde_json::from_slice(body).map_err(|e| RpcError::Decode(e.to_string()))?;
    if let Some(e) = envelope.error {
        return Err(RpcError::Rpc {
            code: e.code,
            message: e.message,
        });
    }
    let raw = envelope.result.map_or("null", RawValue::get);
    serde_json::from_str(raw).map_err(|e| RpcError::Decode(e.to_string()))
}

/// The raw JSON of a reply's `result` (for `getblocktemplate`, parsed by
/// `warppool_core::Template::from_json`).
#[derive(Debug)]
pub struct RawJson(pub Box<RawValue>);

impl<'de> Deserialize<'de> for RawJson {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        Box::<RawValue>::deserialize(d).map(RawJson)
    }
}

/// The fields of `getblockchaininfo` the pool uses.
#[derive(Debug, Clone, Deserialize)]
pub struct BlockchainInfo {
    /// `main`, `test`, `signet`, `regtest`.
    pub chain: String,
    /// Blocks in the active chain.
    pub blocks: u64,
    /// The tip.
    pub bestblockhash: String,
    /// Whether the node is in initial block download.
    #[serde(default)]
    pub initialblockdownload: bool,
}

/// The fields of `getblockheader` (verbose) the pool uses.
#[derive(Debug, Clone, Deserialize)]
pub struct BlockHeaderInfo {
    /// The block hash.
    pub hash: String,
    /// Confirmations (-1 when the block is not in the active chain).
    pub confirmations: i64,
    /// Height.
    pub height: u64,
}

#[derive(Debug, Default)]
struct Health {
    failures: u32,
    retry_at: Option<Instant>,
    /// The last failure was `getblocktemplate`'s: only a template clears the back-off (a node
    /// that answers cheap calls but hangs on templates must not look healthy).
    template_failing: bool,
    /// The node's version is to be read (at start and whenever it answers after failing).
    version_unchecked: bool,
}

/// The method whose success alone proves a node can serve work.
pub const TEMPLATE_METHOD: &str = "getblocktemplate";

/// The fields of `getnetworkinfo` the pool logs and shows.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
pub struct NetworkInfo {
    /// `version`, e.g. `290000`.
    pub version: u64,
    /// `subversion`, e.g. `/Satoshi:29.0.0/` or `/Satoshi:29.3.0/Knots:20260508/`.
    pub subversion: String,
}

impl NetworkInfo {
    /// Why this node may follow another chain than Bitcoin's, if it is a version known to.
    #[must_use]
    pub fn other_chain_warning(&self) -> Option<String> {
        let sub = &self.subversion;
        if let Some(date) = sub.split("Knots:").nth(1) {
            let date: String = date.chars().take_while(char::is_ascii_digit).collect();
            if date.len() == 8 && date.as_str() >= "20260508" {
                return Some(format!(
                    "{sub} is a Bitcoin Knots build from 2026-05-08 or later: these enforce \
                     BIP-110 and split from Bitcoin at height 961,632, and Knots 29.4.1 changed \
                     the proof of work (BLAKE2b); blocks found on its templates are not \
                     Bitcoin blocks"
                ));
            }
        }
        if sub.contains("Bitcoin SV") || sub.contains("Bitcoin ABC") || sub.contains("BCH") {
            return Some(format!("{sub} is the node software of another chain"));
        }
        None
    }
}

/// The configured nodes, in failover order.
#[derive(Debug)]
pub struct Nodes {
    clients: Vec<Arc<RpcClient>>,
    health: Vec<Mutex<Health>>,
}

impl Nodes {
    /// Clients for `nodes`, in order.
    ///
    /// # Errors
    /// [`RpcError`] from [`RpcClient::new`].
    pub fn new(nodes: &[NodeConfig]) -> Result<Self, RpcError> {
        assert!(!nodes.is_empty(), "config validation requires a node");
        let clients = nodes
            .iter()
            .map(|n| RpcClient::new(n).map(Arc::new))
            .collect::<Result<Vec<_>, _>>()?;
        let health = clients
            .iter()
            .map(|_| {
                Mutex::new(Health {
                    version_unchecked: true,
                    ..Health::default()
                })
            })
            .collect();
        Ok(Self { clients, health })
    }

    /// Every client, in order.
    #[must_use]
    pub fn clients(&self) -> &[Arc<RpcClient>] {
        &self.clients
    }

    /// Indices of the nodes not backing off now, in order.
    #[must_use]
    pub fn available(&self) -> Vec<usize> {
        let now = Instant::now();
        (0..self.clients.len())
            .filter(|&i| {
                let h = self.health[i]
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner);
                h.retry_at.is_none_or(|t| t <= now)
            })
            .collect()
    }

    /// Records the outcome of a call to node `index` (any method but `getblocktemplate`; see
    /// [`Nodes::record_call`]).
    pub fn record(&self, index: usize, outcome: Result<(), &RpcError>) {
        self.record_call(index, "", outcome);
    }

    /// Whether node `index` has not failed since its last success (a node failure starts a
    /// back-off; only a success clears it).
    #[must_use]
    pub fn is_up(&self, index: usize) -> bool {
        let h = self.health[index]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        h.failures == 0
    }

    /// Whether node `index`'s version should be read now (once at start, and again whenever
    /// it answers after failing); clears the mark.
    pub fn take_version_check(&self, index: usize) -> bool {
        let mut h = self.health[index]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        std::mem::take(&mut h.version_unchecked)
    }

    /// Records the outcome of a `method` call to node `index`: a node failure starts or
    /// doubles its back-off; a success clears it, except that after a `getblocktemplate`
    /// failure only a `getblocktemplate` success does.
    pub fn record_call(&self, index: usize, method: &str, outcome: Result<(), &RpcError>) {
        let mut h = self.health[index]
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        match outcome {
            Ok(()) if h.template_failing && method != TEMPLATE_METHOD => {}
            Ok(()) => {
                let was_failing = h.failures > 0;
                *h = Health {
                    version_unchecked: h.version_unchecked || was_failing,
                    ..Health::default()
                };
            }
            Err(e) if e.is_node_failure() => {
                h.template_failing = method == TEMPLATE_METHOD;
                h.failures = h.failures.saturating_add(1);
                let shift = h.failures.saturating_sub(1).min(16);
                let ms = NODE_BACKOFF_MS_MIN
                    .saturating_mul(1 << shift)
                    .min(NODE_BACKOFF_MS_MAX);
                h.retry_at = Some(Instant::now() + Duration::from_millis(ms));
                tracing::warn!(
                    node = self.clients[index].name(), error = %e, backoff_ms = ms, "node failing"
                );
            }
            Err(_) => {}
        }
    }

    /// Calls `method` on the first available node that answers; returns its index and the
    /// result. A JSON-RPC error object is returned as is (the node is up).
    ///
    /// # Errors
    /// The last node's error, or [`RpcError::NoNodeAvailable`].
    pub async fn call<T: DeserializeOwned>(
        &self,
        method: &'static str,
        params: serde_json::Value,
    ) -> Result<(usize, T), RpcError> {
        let mut last = RpcError::NoNodeAvailable;
        for i in self.available() {
            match self.clients[i].call(method, params.clone()).await {
                Ok(v) => {
                    self.record_call(i, method, Ok(()));
                    return Ok((i, v));
                }
                Err(e) => {
                    self.record_call(i, method, Err(&e));
                    if !e.is_node_failure() {
                        return Err(e);
                    }
                    last = e;
                }
            }
        }
        Err(last)
    }
}
