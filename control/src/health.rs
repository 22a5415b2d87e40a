//! Health: the pool's conditions (UI.md §8.2 codes), each with a severity, the time it began
//! and a "what you can do" line, decided in one place from plain facts ([`Facts`]) so the API,
//! the UI and (later) the notifiers all say the same.
//!
//! [`Health::evaluate`] is pure apart from remembering when each condition began: a condition
//! that clears and comes back starts a new `since`.

use std::collections::HashMap;
use std::sync::Mutex;

use serde::Serialize;
use utoipa::ToSchema;

use crate::templates::GateKind;

/// Free space on the database's file system below which `DISK_LOW` is raised, in bytes.
pub const DISK_LOW_BYTES: u64 = 1024 * 1024 * 1024;
/// Seconds a found block may stay unconfirmed before `BLOCK_UNCONFIRMED`.
pub const BLOCK_UNCONFIRMED_SECS: i64 = 600;
/// Difference between the node's template time and the pool's clock above which
/// `CLOCK_SKEW` is raised, in seconds.
pub const CLOCK_SKEW_SECS: i64 = 120;
/// A pool ten-minute hashrate below this fraction of the hour's raises `HASHRATE_DROP`.
pub const HASHRATE_DROP_FRACTION: f64 = 0.5;
/// Shares the pool's last hour must hold before `HASHRATE_DROP` can be raised.
pub const HASHRATE_DROP_SHARES_MIN: u64 = 50;

/// How serious a condition is.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Worth knowing; nothing is wrong.
    Info,
    /// Something degrades the pool; it still mines.
    Warning,
    /// The pool cannot mine or may lose a block.
    Critical,
}

/// One condition in force.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct Condition {
    /// Stable code (`NODE_UNREACHABLE`, `TEMPLATE_STALE`, …) the UI translates.
    pub code: &'static str,
    /// How serious.
    pub severity: Severity,
    /// Unix seconds when it began.
    pub since: i64,
    /// What exactly (plain English).
    pub detail: String,
    /// What the operator can do about it.
    pub action: &'static str,
}

/// The pool's health: the worst severity and every condition.
#[derive(Debug, Clone, PartialEq, Serialize, ToSchema)]
pub struct HealthView {
    /// `ok` without conditions, else the worst severity.
    pub level: &'static str,
    /// Every condition in force, worst first.
    pub conditions: Vec<Condition>,
}

/// The facts health is decided from.
#[derive(Debug, Clone, Default)]
pub struct Facts {
    /// Unix seconds now.
    pub now: i64,
    /// The gate in force (work withheld), with its reason.
    pub gate: Option<String>,
    /// Its kind.
    pub gate_kind: Option<GateKind>,
    /// Whether a template was ever received.
    pub has_template: bool,
    /// The current template's `curtime`, if any.
    pub template_time: Option<i64>,
    /// Workers with an open connection.
    pub miners_connected: usize,
    /// Pool accepted shares over the last hour and the hour's and ten minutes' rates (H/s).
    pub hour_shares: u64,
    /// Pool hashrate over the last hour.
    pub hashrate_h1: f64,
    /// Pool hashrate over the last ten minutes.
    pub hashrate_m10: f64,
    /// Found blocks not in a chain yet: (height, found at).
    pub unconfirmed_blocks: Vec<(u32, i64)>,
    /// Blocks every node rejected in the last day: (height, reason).
    pub rejected_blocks: Vec<(u32, String)>,
    /// Free bytes on the database's file system, if known.
    pub disk_free_bytes: Option<u64>,
    /// Started by `warppool demo`.
    pub demo: bool,
}

/// Remembers when each condition began (see the module docs).
#[derive(Debug, Default)]
pub struct Health {
    since: Mutex<HashMap<&'static str, i64>>,
}

impl Health {
    /// The conditions `facts` show, with their start times.
    pub fn evaluate(&self, facts: &Facts) -> HealthView {
        let mut found = detect(facts);
        let mut since = self.since.lock().unwrap_or_else(|e| e.into_inner());
        since.retain(|code, _| found.iter().any(|c| c.code == *code));
        for c in &mut found {
            c.since = *since.entry(c.code).or_insert(facts.now);
        }
        found.sort_by(|a, b| b.severity.cmp(&a.severity).then(a.code.cmp(b.code)));
        let level = match found.first().map(|c| c.severity) {
            None => "ok",
            Some(Severity::Info) => "info",
            Some(Severity::Warning) => "warning",
            Some(Severity::Critical) => "critical",
        };
        HealthView {
            level,
            conditions: found,
        }
    }
}

fn condition(
    code: &'static str,
    severity: Severity,
    detail: String,
    action: &'static str,
) -> Condition {
    Condition {
        code,
        severity,
        since: 0,
        detail,
        action,
    }
}

/// The conditions of `facts`, without start times.
#[must_use]
pub fn detect(facts: &Facts) -> Vec<Condition> {
    let mut out = Vec::new();
    work_conditions(facts, &mut out);
    block_conditions(facts, &mut out);
    if let Some(free) = facts.disk_free_bytes.filter(|&f| f < DISK_LOW_BYTES) {
        out.push(condition(
            "DISK_LOW",
            Severity::Warning,
            format!("{} MiB free where the database lives", free / (1024 * 1024)),
            "Free space on that disk: the block journal and the database need room to write.",
        ));
    }
    if let Some(t) = facts.template_time
        && (t - facts.now).abs() > CLOCK_SKEW_SECS
    {
        out.push(condition(
            "CLOCK_SKEW",
            Severity::Warning,
            format!(
                "the node's template time is {} s from this machine's clock",
                t - facts.now
            ),
            "Sync this machine's clock (NTP) and the node's.",
        ));
    }
    if facts.demo {
        out.push(condition(
            "DEMO_MODE",
            Severity::Info,
            "a simulated chain and simulated miners: nothing here is real".to_owned(),
            "Run `warppool run --config warppool.toml` against your own node to mine for real.",
        ));
    }
    out
}

fn work_conditions(facts: &Facts, out: &mut Vec<Condition>) {
    if let Some(reason) = &facts.gate {
        let (code, action) = gate_code(facts.gate_kind.unwrap_or(GateKind::NodeUnreachable));
        out.push(condition(code, Severity::Critical, reason.clone(), action));
    } else if !facts.has_template {
        out.push(condition(
            "NODE_UNREACHABLE",
            Severity::Critical,
            "no block template received yet".to_owned(),
            "Check that bitcoind runs, is synced, and that [[node]] rpc_url and credentials match.",
        ));
    }
    if facts.miners_connected == 0 {
        out.push(condition(
            "NO_MINERS",
            Severity::Info,
            "no miner is connected".to_owned(),
            "Point a miner at one of the Stratum URLs on the Connect page.",
        ));
    }
    if facts.hour_shares >= HASHRATE_DROP_SHARES_MIN
        && facts.hashrate_m10 < HASHRATE_DROP_FRACTION * facts.hashrate_h1
    {
        out.push(condition(
            "HASHRATE_DROP",
            Severity::Warning,
            format!(
                "ten-minute hashrate is {:.0} % of the hour's",
                100.0 * facts.hashrate_m10 / facts.hashrate_h1
            ),
            "Look at the Workers page for miners that went idle or offline.",
        ));
    }
}

fn gate_code(kind: GateKind) -> (&'static str, &'static str) {
    match kind {
        GateKind::NodeUnreachable => (
            "NODE_UNREACHABLE",
            "Check that bitcoind runs and answers RPC; the log says which node failed.",
        ),
        GateKind::NodeSyncing => (
            "NODE_SYNCING",
            "Wait for bitcoind to finish its initial block download; work starts by itself.",
        ),
        GateKind::TemplateRefused => (
            "TEMPLATE_RULE_REFUSED",
            "The node's template was refused (an unknown mandatory rule such as Knots' \
             !blake2b, or a malformed template): run a node that follows the chain you mean \
             to mine.",
        ),
        GateKind::WorkUnbuildable => (
            "PAYOUT_NOT_100",
            "The coinbase cannot be built as configured: check [[pool.split]] against the \
             subsidy (`warppool check`).",
        ),
        GateKind::TemplateStale => (
            "TEMPLATE_STALE",
            "The node stopped answering getblocktemplate: check bitcoind and its RPC settings.",
        ),
    }
}

fn block_conditions(facts: &Facts, out: &mut Vec<Condition>) {
    if let Some((height, at)) = facts
        .unconfirmed_blocks
        .iter()
        .copied()
        .find(|&(_, at)| facts.now - at > BLOCK_UNCONFIRMED_SECS)
    {
        out.push(condition(
            "BLOCK_UNCONFIRMED",
            Severity::Critical,
            format!(
                "block {height} found {} min ago is in no node's chain yet",
                (facts.now - at) / 60
            ),
            "Check the nodes: the pool keeps resubmitting it until a node has it.",
        ));
    }
    if let Some((height, reason)) = facts.rejected_blocks.first() {
        out.push(condition(
            "BLOCK_SUBMIT_FAILED",
            Severity::Critical,
            format!("block {height} was rejected by every node: {reason}"),
            "Report it with the log: a rejected block is a bug or a node on another chain.",
        ));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn facts(now: i64) -> Facts {
        Facts {
            now,
            has_template: true,
            template_time: Some(now),
            miners_connected: 1,
            disk_free_bytes: Some(10 * DISK_LOW_BYTES),
            ..Facts::default()
        }
    }

    #[test]
    fn a_healthy_pool_has_no_condition() {
        let health = Health::default();
        let view = health.evaluate(&facts(100));
        assert_eq!(view.level, "ok");
        assert!(view.conditions.is_empty());
    }

    #[test]
    fn conditions_keep_their_start_until_they_clear_and_sort_worst_first() {
        let health = Health::default();
        let mut f = facts(100);
        f.miners_connected = 0;
        f.gate = Some("every node is in initial block download".to_owned());
        f.gate_kind = Some(GateKind::NodeSyncing);
        let first = health.evaluate(&f);
        assert_eq!(first.level, "critical");
        let codes: Vec<_> = first.conditions.iter().map(|c| c.code).collect();
        assert_eq!(codes, ["NODE_SYNCING", "NO_MINERS"]);
        f.now = 160;
        let later = health.evaluate(&f);
        assert!(later.conditions.iter().all(|c| c.since == 100), "{later:?}");
        f.gate = None;
        f.gate_kind = None;
        let _ = health.evaluate(&f);
        f.gate = Some("no node reachable (a: connection refused)".to_owned());
        f.gate_kind = Some(GateKind::NodeUnreachable);
        f.now = 200;
        let again = health.evaluate(&f);
        let node = again
            .conditions
            .iter()
            .find(|c| c.code == "NODE_UNREACHABLE")
            .unwrap();
        assert_eq!(node.since, 200, "a condition that came back starts anew");
        let miners = again
            .conditions
            .iter()
            .find(|c| c.code == "NO_MINERS")
            .unwrap();
        assert_eq!(miners.since, 100, "one that never cleared keeps its start");
    }

    #[test]
    fn blocks_disk_clock_hashrate_and_demo_raise_their_codes() {
        let mut f = facts(10_000);
        f.unconfirmed_blocks = vec![(102, 10_000 - BLOCK_UNCONFIRMED_SECS - 1)];
        f.rejected_blocks = vec![(103, "bad-cb-amount".to_owned())];
        f.disk_free_bytes = Some(DISK_LOW_BYTES - 1);
        f.template_time = Some(10_000 + CLOCK_SKEW_SECS + 1);
        f.hour_shares = HASHRATE_DROP_SHARES_MIN;
        f.hashrate_h1 = 100.0;
        f.hashrate_m10 = 40.0;
        f.demo = true;
        let codes: Vec<_> = detect(&f).iter().map(|c| c.code).collect();
        for code in [
            "BLOCK_UNCONFIRMED",
            "BLOCK_SUBMIT_FAILED",
            "DISK_LOW",
            "CLOCK_SKEW",
            "HASHRATE_DROP",
            "DEMO_MODE",
        ] {
            assert!(codes.contains(&code), "{code} in {codes:?}");
        }
        assert!(detect(&f).iter().all(|c| !c.action.is_empty()));
        // A young block and a small pool raise nothing.
        f.unconfirmed_blocks = vec![(102, 10_000 - 5)];
        f.hour_shares = HASHRATE_DROP_SHARES_MIN - 1;
        let codes: Vec<_> = detect(&f).iter().map(|c| c.code).collect();
        assert!(!codes.contains(&"BLOCK_UNCONFIRMED") && !codes.contains(&"HASHRATE_DROP"));
    }
}
