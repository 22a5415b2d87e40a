//! The payout check: the coinbase outputs of the job a worker has now, decoded, and the share
//! of the reward that goes to the worker's own address.
//!
//! The shards build each connection's coinbase with [`build_coinbase`] from the job set the
//! template loop published last and the connection's payout script (from its username). The
//! check does the same with the same inputs ([`LastJobs`] keeps the last publication), then
//! decodes the result as a transaction: what it shows is what the miner hashes, not a
//! description of the configuration. Only the extranonce bytes differ between connections,
//! and they sit in the input's script, not in any output.

use std::sync::{Arc, RwLock};

use bitcoin::{Address, Network, Script, Transaction, consensus::Decodable};
use serde::Serialize;
use utoipa::ToSchema;
use warppool_core::{build_coinbase, limits::EXTRANONCE1_BYTES, parse_username};
use warppool_net::stratum::JobSet;

use crate::templates::JobSink;

/// The job set the template loop published last (read by the payout check).
#[derive(Debug, Default)]
pub struct LastJobs {
    last: RwLock<Option<Arc<JobSet>>>,
}

impl LastJobs {
    /// The job set published last, if any.
    #[must_use]
    pub fn last(&self) -> Option<Arc<JobSet>> {
        self.last.read().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// A sink that forwards to `sink` and remembers each job set here. It holds `sink`, so
    /// the data plane lives as long as the sink does; `self` holds only job sets.
    #[must_use]
    pub fn recording(self: &Arc<Self>, sink: Arc<dyn JobSink>) -> Arc<dyn JobSink> {
        Arc::new(Recording {
            sink,
            last: Arc::clone(self),
        })
    }
}

struct Recording {
    sink: Arc<dyn JobSink>,
    last: Arc<LastJobs>,
}

impl JobSink for Recording {
    fn publish(&self, jobs: Arc<JobSet>) {
        *self.last.last.write().unwrap_or_else(|e| e.into_inner()) = Some(Arc::clone(&jobs));
        self.sink.publish(jobs);
    }
}

/// One output of a worker's current coinbase.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct PayoutOutput {
    /// The address the output pays (masked for visitors who are not admins); `null` for
    /// outputs without one (the witness commitment).
    pub address: Option<String>,
    /// `p2pkh`, `p2sh`, `p2wpkh`, `p2wsh`, `p2tr`, `witness_commitment` or `other`.
    pub script_type: &'static str,
    /// Satoshis.
    pub sats: u64,
    /// Percent of the coinbase value.
    pub pct: f64,
    /// Whether it pays the worker's own address.
    pub to_worker: bool,
}

/// The payout check of `GET /api/v1/workers/{id}`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub struct Payout {
    /// Height of the template the job is built on.
    pub height: u32,
    /// The coinbase value (subsidy and fees), satoshis.
    pub value_sats: u64,
    /// The outputs in coinbase order.
    pub outputs: Vec<PayoutOutput>,
    /// Percent of the coinbase value paid to the worker's address.
    pub to_worker_pct: f64,
    /// Set while new work is held back (the job the miner has is then the previous one).
    pub gated: Option<String>,
}

/// Why there is no payout check.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PayoutCheckError {
    /// No template yet.
    #[error("no template has been published yet")]
    NoTemplate,
    /// The username does not name a payout address of this network.
    #[error("the worker's username has no valid payout address: {0}")]
    Username(String),
    /// The coinbase cannot be built (the shards cannot either: they count it).
    #[error("no coinbase can be built for this worker: {0}")]
    Coinbase(String),
}

/// The payout check of `username` on the job set `jobs`; `show` formats each address (masking
/// for visitors).
///
/// # Errors
/// [`PayoutCheckError`].
pub fn check(
    jobs: &JobSet,
    username: &str,
    show: impl Fn(&str) -> String,
) -> Result<Payout, PayoutCheckError> {
    let template = jobs.template.as_ref().ok_or(PayoutCheckError::NoTemplate)?;
    let (script, _) = parse_username(username, jobs.network)
        .map_err(|e| PayoutCheckError::Username(e.to_string()))?;
    let parts = build_coinbase(template, script.as_bytes(), &jobs.coinbase)
        .map_err(|e| PayoutCheckError::Coinbase(e.to_string()))?;
    let mut bytes = parts.coinb1().to_vec();
    bytes.resize(
        bytes.len() + EXTRANONCE1_BYTES + parts.extranonce2_size().bytes(),
        0,
    );
    bytes.extend_from_slice(parts.coinb2());
    let tx = Transaction::consensus_decode(&mut bytes.as_slice())
        .map_err(|e| PayoutCheckError::Coinbase(format!("built coinbase does not decode: {e}")))?;
    let value_sats = template.coinbase_value_sats();
    let outputs: Vec<PayoutOutput> = tx
        .output
        .iter()
        .map(|o| {
            let sats = o.value.to_sat();
            PayoutOutput {
                address: address_of(&o.script_pubkey, jobs.network).map(|a| show(&a)),
                script_type: script_type(&o.script_pubkey),
                sats,
                pct: percent(sats, value_sats),
                to_worker: o.script_pubkey == script,
            }
        })
        .collect();
    let to_worker: u64 = outputs.iter().filter(|o| o.to_worker).map(|o| o.sats).sum();
    Ok(Payout {
        height: template.height(),
        value_sats,
        to_worker_pct: percent(to_worker, value_sats),
        outputs,
        gated: jobs.gate.clone(),
    })
}

fn percent(part: u64, whole: u64) -> f64 {
    if whole == 0 {
        0.0
    } else {
        // Both below 2^53 (at most 21 million BTC in satoshis): exact as f64.
        #[expect(clippy::cast_precision_loss, reason = "satoshi amounts are below 2^53")]
        let pct = part as f64 * 100.0 / whole as f64;
        pct
    }
}

fn address_of(script: &Script, network: Network) -> Option<String> {
    Address::from_script(script, network)
        .ok()
        .map(|a| a.to_string())
}

fn script_type(script: &Script) -> &'static str {
    if script.is_p2pkh() {
        "p2pkh"
    } else if script.is_p2sh() {
        "p2sh"
    } else if script.is_p2wpkh() {
        "p2wpkh"
    } else if script.is_p2wsh() {
        "p2wsh"
    } else if script.is_p2tr() {
        "p2tr"
    } else if script
        .as_bytes()
        .starts_with(&[0x6a, 0x24, 0xaa, 0x21, 0xa9, 0xed])
    {
        "witness_commitment"
    } else {
        "other"
    }
}
