//! One check of one block: where every node has it, a `submitblock` round when no node
//! knows it, and the status that follows.

use std::sync::Arc;

use crate::{
    block_status::COINBASE_MATURITY,
    journal::{BlockStatus, FoundBlock},
    rpc::{BlockHeaderInfo, RpcClient, RpcError},
};

use super::BlockPath;

/// Bitcoin Core's JSON-RPC error code for an unknown block (`RPC_INVALID_ADDRESS_OR_KEY`).
const RPC_BLOCK_NOT_FOUND: i64 = -5;

/// One node's answer to `submitblock`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SubmitOutcome {
    /// `null`: the node accepted it.
    Accepted,
    /// `"duplicate"`: the node already has it (where, the header check tells).
    Duplicate,
    /// `"inconclusive"`: stored but not decided (a side branch, for now).
    Inconclusive,
    /// Any other string (`"high-hash"`, `"bad-txnmrklroot"`…).
    Rejected(String),
    /// The call failed (node down, timeout, JSON-RPC error).
    Failed(String),
}

impl SubmitOutcome {
    /// Whether the node has the block now (it says nothing about the active chain).
    #[must_use]
    pub const fn node_has_it(&self) -> bool {
        matches!(self, Self::Accepted | Self::Duplicate | Self::Inconclusive)
    }

    /// A short, stable label for metrics: `accepted`, `duplicate`, `inconclusive`,
    /// `rejected` or `failed`.
    #[must_use]
    pub const fn label(&self) -> &'static str {
        match self {
            Self::Accepted => "accepted",
            Self::Duplicate => "duplicate",
            Self::Inconclusive => "inconclusive",
            Self::Rejected(_) => "rejected",
            Self::Failed(_) => "failed",
        }
    }

    /// The answer as stored and shown (`accepted`, `duplicate`, `rejected: high-hash`…).
    #[must_use]
    pub fn describe(&self) -> String {
        match self {
            Self::Accepted => "accepted".to_owned(),
            Self::Duplicate => "duplicate".to_owned(),
            Self::Inconclusive => "inconclusive".to_owned(),
            Self::Rejected(r) => format!("rejected: {r}"),
            Self::Failed(e) => format!("failed: {e}"),
        }
    }
}

/// Classifies a `submitblock` result.
#[must_use]
pub fn classify(result: Result<Option<String>, RpcError>) -> SubmitOutcome {
    match result {
        Ok(None) => SubmitOutcome::Accepted,
        Ok(Some(s)) if s == "duplicate" => SubmitOutcome::Duplicate,
        Ok(Some(s)) if s == "inconclusive" => SubmitOutcome::Inconclusive,
        Ok(Some(s)) => SubmitOutcome::Rejected(s),
        Err(e) => SubmitOutcome::Failed(e.to_string()),
    }
}

/// One node's answer to a `submitblock` round.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeAnswer {
    /// The node's configured name.
    pub node: String,
    /// What it said.
    pub outcome: SubmitOutcome,
}

/// Where one node has a block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum NodeView {
    /// In its active chain with this many confirmations (at least 1).
    InChain(i64),
    /// Known, but not in its active chain (`confirmations == -1`).
    SideBranch,
    /// The node does not know the block.
    Unknown,
    /// The node did not answer.
    Unreachable(String),
}

async fn view(client: &RpcClient, hash: &str) -> NodeView {
    let header = client
        .call::<BlockHeaderInfo>("getblockheader", serde_json::json!([hash, true]))
        .await;
    match header {
        Ok(h) if h.hash != hash => NodeView::Unreachable(format!("answered for {}", h.hash)),
        Ok(h) if h.confirmations >= 1 => NodeView::InChain(h.confirmations),
        Ok(_) => NodeView::SideBranch,
        Err(RpcError::Rpc { code, .. }) if code == RPC_BLOCK_NOT_FOUND => NodeView::Unknown,
        Err(e) => NodeView::Unreachable(e.to_string()),
    }
}

/// The status the nodes' views give, with its detail; `None` when no node knows the block.
fn decide(views: &[(String, NodeView)]) -> Option<(BlockStatus, String)> {
    let best = views
        .iter()
        .filter_map(|(n, v)| match v {
            NodeView::InChain(c) => Some((*c, n)),
            _ => None,
        })
        .max();
    if let Some((confirmations, node)) = best {
        let status = if confirmations >= COINBASE_MATURITY {
            BlockStatus::Mature
        } else {
            BlockStatus::InChain
        };
        return Some((status, format!("{node}: {confirmations} confirmations")));
    }
    let side: Vec<&str> = views
        .iter()
        .filter(|(_, v)| *v == NodeView::SideBranch)
        .map(|(n, _)| n.as_str())
        .collect();
    if !side.is_empty() {
        return Some((
            BlockStatus::Orphaned,
            format!("on a side branch of {}", side.join(", ")),
        ));
    }
    None
}

fn describe_views(views: &[(String, NodeView)]) -> String {
    views
        .iter()
        .map(|(n, v)| format!("{n}: {v:?}"))
        .collect::<Vec<_>>()
        .join("; ")
}

fn describe_answers(answers: &[NodeAnswer]) -> String {
    answers
        .iter()
        .map(|a| format!("{}: {}", a.node, a.outcome.describe()))
        .collect::<Vec<_>>()
        .join("; ")
}

impl BlockPath {
    /// Every node's view of `hash`, asked concurrently.
    pub(super) async fn views(&self, hash: &str) -> Vec<(String, NodeView)> {
        let hash: Arc<str> = Arc::from(hash);
        let mut set = tokio::task::JoinSet::new();
        for (i, client) in self.nodes.clients().iter().enumerate() {
            let client = Arc::clone(client);
            let hash = Arc::clone(&hash);
            set.spawn(async move { (i, view(&client, &hash).await) });
        }
        let mut views: Vec<(String, NodeView)> = self
            .nodes
            .clients()
            .iter()
            .map(|c| {
                (
                    c.name().to_owned(),
                    NodeView::Unreachable("not run".to_owned()),
                )
            })
            .collect();
        while let Some(joined) = set.join_next().await {
            if let Ok((i, v)) = joined {
                views[i].1 = v;
            }
        }
        views
    }

    /// `submitblock` to every node concurrently.
    pub(super) async fn submit_everywhere(&self, block: &FoundBlock) -> Vec<NodeAnswer> {
        let hex: Arc<str> = Arc::from(block.block_hex.as_str());
        let mut set = tokio::task::JoinSet::new();
        for (i, client) in self.nodes.clients().iter().enumerate() {
            let client = Arc::clone(client);
            let hex = Arc::clone(&hex);
            set.spawn(async move {
                let result = client
                    .call::<Option<String>>("submitblock", serde_json::json!([&*hex]))
                    .await;
                (i, classify(result))
            });
        }
        let mut answers: Vec<NodeAnswer> = self
            .nodes
            .clients()
            .iter()
            .map(|c| NodeAnswer {
                node: c.name().to_owned(),
                outcome: SubmitOutcome::Failed("not run".to_owned()),
            })
            .collect();
        while let Some(joined) = set.join_next().await {
            if let Ok((i, outcome)) = joined {
                answers[i].outcome = outcome;
            }
        }
        for a in &answers {
            if let SubmitOutcome::Rejected(reason) = &a.outcome {
                tracing::error!(
                    node = %a.node, hash = %block.hash, %reason, "block rejected by node"
                );
            }
        }
        answers
    }

    /// Whether the active chain's block at `height` on the node named `node` is buried at
    /// least `COINBASE_MATURITY` deep (the orphan can never come back), with its hash.
    async fn competitor(&self, node: &str, height: u32) -> Option<(String, i64)> {
        let client = self.nodes.clients().iter().find(|c| c.name() == node)?;
        let hash: String = client
            .call("getblockhash", serde_json::json!([height]))
            .await
            .ok()?;
        let header: BlockHeaderInfo = client
            .call("getblockheader", serde_json::json!([hash, true]))
            .await
            .ok()?;
        Some((hash, header.confirmations))
    }

    /// One check: a `submitblock` round first when `submit_first` (a new block) or when no
    /// node knows the block, then the status the nodes' views give; a change is journaled and
    /// announced. Returns the block's status after the check.
    pub(super) async fn check(&self, block: &FoundBlock, submit_first: bool) -> BlockStatus {
        let (before, settled_before) = self
            .current(&block.hash)
            .unwrap_or((BlockStatus::Found, false));
        let mut answers = Vec::new();
        let mut views = Vec::new();
        if !submit_first {
            views = self.views(&block.hash).await;
        }
        // No node has it in any chain: (re)submit. A node that does not answer cheap calls may
        // still take a block, and a node that does not know the block needs it.
        if submit_first || decide(&views).is_none() {
            answers = self.submit_everywhere(block).await;
            let all_rejected = answers
                .iter()
                .all(|a| matches!(a.outcome, SubmitOutcome::Rejected(_)));
            if !answers.is_empty() && all_rejected {
                let detail = describe_answers(&answers);
                self.set_status(block, BlockStatus::Rejected, false, Some(detail), answers);
                return BlockStatus::Rejected;
            }
            if answers.iter().any(|a| a.outcome.node_has_it()) {
                views = self.views(&block.hash).await;
            }
        }
        let (status, settled, detail) = match decide(&views) {
            Some((BlockStatus::Orphaned, detail)) => {
                self.orphan_detail(block, &views, detail).await
            }
            Some((status, detail)) => (status, false, detail),
            None if answers.iter().any(|a| a.outcome.node_has_it()) => {
                (BlockStatus::Submitted, false, describe_answers(&answers))
            }
            None => (before, false, describe_views(&views)),
        };
        if status != before || settled != settled_before {
            tracing::info!(
                height = block.height,
                hash = %block.hash,
                from = %before,
                to = %status,
                settled,
                %detail,
                "block status"
            );
            self.set_status(block, status, settled, Some(detail), answers);
        } else if !answers.is_empty() {
            // A resubmission round without a status change: storage keeps each node's answer.
            self.emit(super::BlockEvent {
                height: block.height,
                hash: block.hash.clone(),
                status,
                detail: Some(describe_answers(&answers)),
                finder: None,
                submissions: answers,
            });
        }
        status
    }

    async fn orphan_detail(
        &self,
        block: &FoundBlock,
        views: &[(String, NodeView)],
        detail: String,
    ) -> (BlockStatus, bool, String) {
        let node = views
            .iter()
            .find(|(_, v)| *v == NodeView::SideBranch)
            .map(|(n, _)| n.clone())
            .unwrap_or_default();
        match self.competitor(&node, block.height).await {
            Some((hash, confirmations)) => {
                let settled = confirmations >= COINBASE_MATURITY;
                let detail = format!(
                    "{detail}; the active chain has {hash} at height {} \
                     ({confirmations} confirmations)",
                    block.height
                );
                (BlockStatus::Orphaned, settled, detail)
            }
            None => (BlockStatus::Orphaned, false, detail),
        }
    }
}
