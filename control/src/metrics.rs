//! Prometheus metrics (`GET /metrics`, decision 0015): a `prometheus-client` registry built at
//! start with one collector that reads the pool's own counters at scrape time. Nothing on the
//! share path is instrumented for it: every value is a counter, table or status the pool
//! already keeps for itself, read when Prometheus asks.
//!
//! # Families
//! - Data plane, per shard (`metrics/plane.rs`): open connections by protocol, port and shard;
//!   accepted, refused (by limit) and closed connections; closes by cause; lines; dropped
//!   notifies and statistics; io_uring ring figures; block candidates deferred and lost; job
//!   build failures; the job fan-out latency histogram.
//! - Shares and workers (`metrics/shares.rs`): shares by result and reason, block shares,
//!   authorizations, difficulty changes, pool hashrate per window with its 95 % interval,
//!   workers by status, per-worker hashrate ([`workers`]: at most `METRICS_WORKER_SERIES_MAX`
//!   series, a worker without an update for `METRICS_WORKER_SERIES_IDLE_SECS` leaves).
//! - Control plane (`metrics/control.rs`): template height, age and refresh age, gate, job
//!   publications, unusable templates, network difficulty, node state, RPC latency histograms
//!   per node and method, ZMQ subscriptions and notifications, block events and submissions,
//!   storage writer queue and counters, build information.
//!
//! # Format
//! OpenMetrics 1.0.0 text when the scraper asks for it (Prometheus does by default: its
//! `Accept` header puts `application/openmetrics-text;version=1.0.0` first), else the
//! Prometheus text format 0.0.4 (curl, browsers, older scrapers). Both come from the same
//! registry and the same collector.
//!
//! # Access
//! [`scrape::authorize`]: loopback peers only for now; `metrics`-scoped API tokens arrive with
//! the `auth` merge, through the same function.

mod control;
mod encode;
mod plane;
pub mod scrape;
mod shares;
pub mod workers;

use std::{
    net::SocketAddr,
    sync::{Arc, Weak},
};

use prometheus_client::{collector::Collector, encoding::DescriptorEncoder, registry::Registry};
use tokio::sync::watch;
use warppool_net::stratum::StratumPlane;

use crate::{
    rpc::Nodes,
    stats::SqliteRecorder,
    templates::{TemplateLoop, TemplateStatus},
};

/// The `Content-Type` of an OpenMetrics 1.0.0 answer.
pub const OPENMETRICS_CONTENT_TYPE: &str =
    "application/openmetrics-text; version=1.0.0; charset=utf-8";
/// The `Content-Type` of a Prometheus text format 0.0.4 answer.
pub const PROMETHEUS_TEXT_CONTENT_TYPE: &str =
    prometheus_client::encoding::prometheus_text::CONTENT_TYPE;

/// One Stratum listener as labels show it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ListenerLabels {
    /// The bound port.
    pub port: u16,
    /// `stratum_v1` or `stratum_v1_tls`.
    pub protocol: &'static str,
}

impl ListenerLabels {
    /// The labels of a listener bound at `addr`.
    #[must_use]
    pub const fn new(addr: SocketAddr, tls: bool) -> Self {
        Self {
            port: addr.port(),
            protocol: if tls { "stratum_v1_tls" } else { "stratum_v1" },
        }
    }
}

/// What the running pool lends the metrics (weak where holding it would keep the data plane
/// alive past shutdown).
#[derive(Debug, Clone)]
pub struct PoolSources {
    /// The data plane's counters.
    pub plane: Weak<StratumPlane>,
    /// The template loop (refresh age, ZMQ, unusable templates).
    pub template_loop: Weak<TemplateLoop>,
    /// The template loop's nodes and the block path's own clients (latencies, state).
    pub nodes: [Arc<Nodes>; 2],
    /// Each Stratum listener, in configuration order.
    pub listeners: Vec<ListenerLabels>,
}

impl PoolSources {
    /// The sources of a pool that runs `plane` and `template_loop` (held weakly).
    #[must_use]
    pub fn new(
        plane: &Arc<StratumPlane>,
        template_loop: &Arc<TemplateLoop>,
        nodes: [Arc<Nodes>; 2],
        listeners: Vec<ListenerLabels>,
    ) -> Self {
        Self {
            plane: Arc::downgrade(plane),
            template_loop: Arc::downgrade(template_loop),
            nodes,
            listeners,
        }
    }
}

/// Everything a scrape reads.
#[derive(Debug, Clone)]
pub struct Sources {
    /// Share counters, the live table, block counters, storage.
    pub recorder: Arc<SqliteRecorder>,
    /// The template loop's status.
    pub status: watch::Receiver<TemplateStatus>,
    /// The pool's parts.
    pub pool: PoolSources,
    /// `CARGO_PKG_VERSION`.
    pub version: &'static str,
    /// The pool's network.
    pub network: bitcoin::Network,
    /// Unix seconds at start.
    pub started_at: i64,
    /// The lowest difficulty any port accepts (bounds a hashrate window without shares).
    pub min_difficulty: f64,
    /// The HTTPS listener's certificate, when it runs (reloads and refusals).
    pub https: Option<Arc<crate::api::tls::HttpsCert>>,
}

#[derive(Debug)]
struct PoolCollector {
    sources: Sources,
}

impl Collector for PoolCollector {
    fn encode(&self, mut encoder: DescriptorEncoder<'_>) -> Result<(), std::fmt::Error> {
        let now = crate::api::now_s();
        plane::encode(&mut encoder, &self.sources)?;
        shares::encode(&mut encoder, &self.sources, now)?;
        control::encode(&mut encoder, &self.sources, now)
    }
}

/// The registry (see the module docs).
#[derive(Debug)]
pub struct Metrics {
    registry: Registry,
}

impl Metrics {
    /// A registry whose collector reads `sources` at every scrape.
    #[must_use]
    pub fn new(sources: Sources) -> Self {
        let mut registry = Registry::default();
        registry.register_collector(Box::new(PoolCollector { sources }));
        Self { registry }
    }

    /// Every family now, as OpenMetrics text (ends with `# EOF`) or as Prometheus text 0.0.4.
    ///
    /// # Errors
    /// A formatting error of the encoder (never expected for a `String`).
    pub fn encode(&self, openmetrics: bool) -> Result<String, std::fmt::Error> {
        let mut text = String::new();
        if openmetrics {
            prometheus_client::encoding::text::encode(&mut text, &self.registry)?;
        } else {
            prometheus_client::encoding::prometheus_text::encode(&mut text, &self.registry)?;
        }
        Ok(text)
    }
}

/// Whether an `Accept` header asks for OpenMetrics (any `application/openmetrics-text` entry
/// not refused with `q=0`).
#[must_use]
pub fn wants_openmetrics(accept: Option<&str>) -> bool {
    accept.is_some_and(|accept| {
        accept.split(',').any(|entry| {
            let mut parts = entry.split(';').map(str::trim);
            let media = parts.next().unwrap_or("");
            let refused = parts.any(|p| p.replace(' ', "") == "q=0");
            media.eq_ignore_ascii_case("application/openmetrics-text") && !refused
        })
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn prometheus_default_accept_header_gets_openmetrics() {
        // Prometheus 2.42's scrape `Accept` header.
        let prometheus = "application/openmetrics-text;version=1.0.0,application/openmetrics-text;\
                          version=0.0.1;q=0.75,text/plain;version=0.0.4;q=0.5,*/*;q=0.1";
        assert!(wants_openmetrics(Some(prometheus)));
        assert!(!wants_openmetrics(Some("*/*")));
        assert!(!wants_openmetrics(Some("text/plain")));
        assert!(!wants_openmetrics(None));
        assert!(!wants_openmetrics(Some("application/openmetrics-text;q=0")));
    }
}
