//! The one status of a found block, for the journal, storage, the API, the UI and notifiers.
//!
//! ```text
//! Found ──► Submitted ──► In chain ──► Mature (final: 100 confirmations, coinbase spendable)
//!   │           │            ▲  │
//!   │           │            │  ▼
//!   │           └──────────► Orphaned (a side branch; final once the block at its height
//!   │                                  in the active chain is buried 100 deep)
//!   └─────────► Rejected (final: every node that answered rejected it, with its reason)
//! ```
//!
//! A block is *in chain* only while a node reports `confirmations >= 1` for it; a node that
//! reports `-1` has it on a side branch (orphaned, stale). A reorg can move a block from In
//! chain to Orphaned and back, so both are re-checked as the chain grows.

use serde::{Deserialize, Serialize};

/// Confirmations at which a block's coinbase is spendable (`COINBASE_MATURITY`): the block is
/// [`BlockStatus::Mature`], and an orphan whose competitor is this deep is settled.
pub const COINBASE_MATURITY: i64 = 100;

/// The state of a found block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum BlockStatus {
    /// Journaled, not yet answered by any node.
    #[serde(alias = "candidate")]
    Found,
    /// At least one node took it (`null`, `duplicate` or `inconclusive`), or it is waiting for
    /// a node to come back; not yet seen in an active chain.
    #[serde(alias = "accepted", alias = "pending")]
    Submitted,
    /// A node reports it in its active chain (`confirmations >= 1`).
    #[serde(alias = "confirmed")]
    InChain,
    /// In the active chain with at least [`COINBASE_MATURITY`] confirmations: final.
    Mature,
    /// On a side branch of every node that knows it (`confirmations == -1`).
    Orphaned,
    /// Every node that answered rejected it (the reason is kept): final.
    Rejected,
}

impl BlockStatus {
    /// Every status, in life order.
    pub const ALL: [Self; 6] = [
        Self::Found,
        Self::Submitted,
        Self::InChain,
        Self::Mature,
        Self::Orphaned,
        Self::Rejected,
    ];

    /// The stored and displayed text (`snake_case`, as serialized).
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Found => "found",
            Self::Submitted => "submitted",
            Self::InChain => "in_chain",
            Self::Mature => "mature",
            Self::Orphaned => "orphaned",
            Self::Rejected => "rejected",
        }
    }

    /// Parses stored text, including the names earlier versions stored (`candidate`,
    /// `accepted`, `pending`, `confirmed`); `None` for anything else.
    #[must_use]
    pub fn from_stored(text: &str) -> Option<Self> {
        match text {
            "candidate" => Some(Self::Found),
            "accepted" | "pending" => Some(Self::Submitted),
            "confirmed" => Some(Self::InChain),
            _ => Self::ALL.into_iter().find(|s| s.as_str() == text),
        }
    }

    /// Whether the status alone ends the block's life (an orphan is final only once settled,
    /// which the journal records beside the status).
    #[must_use]
    pub const fn is_final(self) -> bool {
        matches!(self, Self::Mature | Self::Rejected)
    }
}

impl std::fmt::Display for BlockStatus {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}
