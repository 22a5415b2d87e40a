//! Bitcoin Core's own consensus engine as a second, authoritative opinion on every block.
//!
//! Responsibilities: run `scripts/kernel-check.py` (embedded here, run with `python -c`) under
//! a Python that has `py-bitcoinkernel` (Core's `libbitcoinkernel` through ctypes), keep it fed
//! with every block of the simulator's tree in order from genesis (ancestors first), and turn
//! its line replies into verdicts. The helper keeps a fresh regtest chainstate in a temporary
//! directory; after `invalidateblock`/`reconsiderblock` (which the engine's API lacks) it is
//! reset and fed the simulator's active chain again.
//!
//! Bounds: one request in flight (the caller waits for each reply under the simulator's
//! lock), [`KERNEL_REPLIES_QUEUED_MAX`] replies queued from the reader thread, request lines
//! of at most [`KERNEL_LINE_BYTES_MAX`] and replies of at most [`KERNEL_REPLY_BYTES_MAX`],
//! each reply within [`KERNEL_REPLY_TIMEOUT`]. Not for callers outside the simulator.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, sync_channel};
use std::time::{Duration, Instant};

use bitcoin::{Block, BlockHash, Network};

use super::state::{ChainState, SubmitError};

/// The environment variable naming the Python interpreter that has `py-bitcoinkernel`
/// (`scripts/kernel-venv` prints it); read by `ChainSimConfig::default()`.
pub const KERNEL_PYTHON_ENV: &str = "WARPPOOL_KERNEL_PYTHON";
/// The helper, run with `python -c`.
const HELPER_SOURCE: &str = include_str!("../../../scripts/kernel-check.py");
/// The helper's protocol version (its `ready` line ends with it).
const PROTOCOL_VERSION: &str = "1";
/// The longest request line: a 4 MWU block is at most 4 MB, 8 MB in hex, plus the newline.
/// The helper has the same bound (`LINE_BYTES_MAX`).
pub(crate) const KERNEL_LINE_BYTES_MAX: usize = 8_000_000 + 64;
/// The longest reply line the simulator reads (longer ones are an error).
pub(crate) const KERNEL_REPLY_BYTES_MAX: usize = 4_096;
/// Replies the reader thread may queue: the caller has one request in flight, so 1 would do;
/// a little slack lets the reader report its own end after a reply.
pub(crate) const KERNEL_REPLIES_QUEUED_MAX: usize = 4;
/// How long a dropped simulator waits for the helper to exit (and clean up) before killing it.
const KERNEL_EXIT_WAIT: Duration = Duration::from_secs(3);
/// The longest wait for one reply (a full block with scripts takes milliseconds).
pub(crate) const KERNEL_REPLY_TIMEOUT: Duration = Duration::from_secs(60);

/// What the engine said about one block.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Accepted (connected, or stored on a side branch); the engine's tip afterwards.
    Valid { height: u32, tip: BlockHash },
    /// Rejected: Core's `ValidationMode` and `BlockValidationResult` names, and the reject
    /// reason from Core's log when it gave one.
    Invalid {
        mode: String,
        result: String,
        reason: Option<String>,
    },
}

/// Counters of the engine's work, from [`crate::chain::ChainSimHandle::kernel_stats`].
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct KernelStats {
    /// The engine is running and consulted on every block.
    pub active: bool,
    /// Why it is not, when it was configured but is not running.
    pub inactive_reason: Option<String>,
    /// Blocks the engine accepted.
    pub accepted: u64,
    /// Blocks the engine rejected.
    pub rejected: u64,
    /// Times the engine and the simulator disagreed (on validity or on the tip); the engine
    /// is then reset and fed the simulator's chain again.
    pub disagreements: u64,
    /// The engine's last rejection: `<reason or -> <BlockValidationResult>`.
    pub last_rejection: Option<String>,
    /// Total time spent waiting for the engine's verdicts, in microseconds.
    pub check_micros_total: u64,
}

/// A running helper.
#[derive(Debug)]
pub(crate) struct Kernel {
    child: Child,
    /// `None` once closed (at drop: the helper then exits and removes its data directory).
    stdin: Option<ChildStdin>,
    replies: Receiver<Result<String, String>>,
    /// Blocks fed since the last reset (genesis is built in).
    fed: HashSet<BlockHash>,
    pub(crate) stats: KernelStats,
}

impl Kernel {
    /// Starts the helper under `python` and checks that its chain starts at regtest's
    /// genesis, the simulator's.
    pub(crate) fn start(python: &Path) -> Result<Self, String> {
        let mut child = Command::new(python)
            .arg("-c")
            .arg(HELPER_SOURCE)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", python.display()))?;
        let stdin = child.stdin.take();
        let stdout = child.stdout.take().expect("piped");
        let (tx, replies) = sync_channel(KERNEL_REPLIES_QUEUED_MAX);
        std::thread::Builder::new()
            .name("chainsim-kernel".into())
            .spawn(move || read_replies(stdout, &tx))
            .map_err(|e| format!("cannot start the reader thread: {e}"))?;
        let genesis = bitcoin::constants::genesis_block(Network::Regtest).block_hash();
        let mut kernel = Self {
            child,
            stdin,
            replies,
            fed: HashSet::from([genesis]),
            stats: KernelStats {
                active: true,
                ..KernelStats::default()
            },
        };
        let ready = kernel.reply()?;
        let want = format!("ready {genesis} {PROTOCOL_VERSION}");
        if ready != want {
            return Err(format!(
                "the engine's helper said {ready:?}, expected {want:?} (regtest's genesis)"
            ));
        }
        Ok(kernel)
    }

    fn reply(&mut self) -> Result<String, String> {
        match self.replies.recv_timeout(KERNEL_REPLY_TIMEOUT) {
            Ok(r) => r,
            Err(RecvTimeoutError::Timeout) => Err("the engine did not answer in time".into()),
            Err(RecvTimeoutError::Disconnected) => Err("the engine's helper is gone".into()),
        }
    }

    fn request(&mut self, line: &str) -> Result<String, String> {
        assert!(
            line.len() < KERNEL_LINE_BYTES_MAX,
            "a block is at most 4 MB"
        );
        let io = |e: std::io::Error| format!("cannot write to the engine: {e}");
        let stdin = self.stdin.as_mut().ok_or("the engine's input is closed")?;
        stdin.write_all(line.as_bytes()).map_err(io)?;
        stdin.write_all(b"\n").map_err(io)?;
        stdin.flush().map_err(io)?;
        self.reply()
    }

    /// Sends one block and parses the verdict.
    fn check(&mut self, block: &Block) -> Result<Verdict, String> {
        let started = Instant::now();
        let hex = warppool_core::hex::encode(&bitcoin::consensus::serialize(block));
        let reply = self.request(&hex)?;
        let micros = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.stats.check_micros_total += micros;
        let verdict = parse_verdict(&reply)?;
        match &verdict {
            Verdict::Valid { .. } => {
                self.stats.accepted += 1;
                self.fed.insert(block.block_hash());
            }
            Verdict::Invalid { result, reason, .. } => {
                self.stats.rejected += 1;
                let reason = reason.as_deref().unwrap_or("-");
                self.stats.last_rejection = Some(format!("{reason} {result}"));
            }
        }
        Ok(verdict)
    }

    /// Feeds `block` after any of its ancestors the engine has not seen yet (from `state`).
    pub(crate) fn feed(&mut self, state: &ChainState, block: &Block) -> Result<Verdict, String> {
        let mut missing = Vec::new();
        let mut at = block.header.prev_blockhash;
        while !self.fed.contains(&at) {
            let Some(e) = state.lookup(&at) else { break };
            missing.push(e.block.clone());
            at = e.header.prev_blockhash;
        }
        for ancestor in missing.into_iter().rev() {
            if !matches!(self.check(&ancestor)?, Verdict::Valid { .. }) {
                self.stats.disagreements += 1;
            }
        }
        self.check(block)
    }

    /// A fresh chainstate fed the simulator's active chain.
    pub(crate) fn resync(&mut self, state: &ChainState) -> Result<(), String> {
        let genesis = state.main_chain()[0].hash;
        let reply = self.request("reset")?;
        if reply != format!("reset {genesis}") {
            return Err(format!("the engine's reset said {reply:?}"));
        }
        self.fed = HashSet::from([genesis]);
        if state.height() > 0 {
            let tip = state.tip().block.clone();
            let verdict = self.feed(state, &tip)?;
            if verdict
                != (Verdict::Valid {
                    height: state.height(),
                    tip: state.tip().hash,
                })
            {
                self.stats.disagreements += 1;
            }
        }
        Ok(())
    }

    /// Stops consulting the engine after a failure of the helper itself.
    pub(crate) fn fail(&mut self, why: String) {
        eprintln!("chain simulator: Core's engine stopped: {why}");
        self.stats.active = false;
        self.stats.inactive_reason = Some(why);
        let _ = self.child.kill();
    }
}

impl Kernel {
    /// The engine's opinion on `block`, which the simulator judged `sim` (and stored unless
    /// it rejected it): returns the final answer. The simulator's own reject reason stays
    /// when both reject; a block only the engine rejects is marked invalid in the simulator
    /// too (the active chain moves back) and answered with Core's reason from the engine's
    /// log, or `kernel-<BlockValidationResult>` when the log gave none.
    pub(crate) fn judge(
        &mut self,
        state: &mut ChainState,
        block: &Block,
        sim: Result<(), SubmitError>,
    ) -> Result<(), SubmitError> {
        if !self.stats.active {
            return sim;
        }
        if let Err(SubmitError::Reject(r)) = &sim
            && matches!(
                r.as_str(),
                "duplicate" | "duplicate-invalid" | "prev-blk-not-found"
            )
        {
            return sim; // nothing new for the engine to judge
        }
        if matches!(sim, Err(SubmitError::Deserialize(_))) {
            return sim;
        }
        let verdict = match self.feed(state, block) {
            Ok(v) => v,
            Err(why) => {
                self.fail(why);
                return sim;
            }
        };
        let sim_valid = match &sim {
            Ok(()) => true,
            Err(SubmitError::Reject(r)) => r == "inconclusive",
            Err(SubmitError::Deserialize(_)) => false,
        };
        match (&verdict, sim_valid) {
            (Verdict::Valid { tip, .. }, true) => {
                if *tip != state.tip().hash {
                    self.disagree(state);
                }
                sim
            }
            (Verdict::Invalid { .. }, false) => sim,
            (Verdict::Valid { .. }, false) => {
                self.disagree(state);
                sim
            }
            (Verdict::Invalid { result, reason, .. }, true) => {
                let hash = block.block_hash();
                state.reject_by_engine(&hash);
                let reason = reason
                    .clone()
                    .unwrap_or_else(|| format!("kernel-{}", result.to_lowercase()));
                Err(SubmitError::Reject(reason))
            }
        }
    }

    /// Counts a disagreement and starts the engine over on the simulator's chain.
    fn disagree(&mut self, state: &ChainState) {
        self.stats.disagreements += 1;
        if let Err(why) = self.resync(state) {
            self.fail(why);
        }
    }
}

impl Drop for Kernel {
    fn drop(&mut self) {
        // End of input: the helper leaves its loop and removes its data directory (Core
        // preallocates 16 MiB block files, so a killed helper would leave 18 MB behind).
        drop(self.stdin.take());
        let deadline = Instant::now() + KERNEL_EXIT_WAIT;
        while Instant::now() < deadline {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// The reader thread: one reply line at a time into the bounded queue, until EOF.
fn read_replies(stdout: std::process::ChildStdout, tx: &SyncSender<Result<String, String>>) {
    let mut reader = BufReader::new(stdout);
    loop {
        let mut line = Vec::new();
        let limit = u64::try_from(KERNEL_REPLY_BYTES_MAX).expect("small");
        let read = (&mut reader).take(limit).read_until(b'\n', &mut line);
        let item = match read {
            Ok(0) => Err("the engine's helper exited".to_owned()),
            Ok(_) if !line.ends_with(b"\n") => Err("the engine's reply is too long".to_owned()),
            Ok(_) => Ok(String::from_utf8_lossy(&line).trim_end().to_owned()),
            Err(e) => Err(format!("cannot read from the engine: {e}")),
        };
        let last = item.is_err();
        if tx.send(item).is_err() || last {
            return;
        }
    }
}

/// `ok <height> <tip>` or `invalid <mode> <result> <reason|->`.
fn parse_verdict(reply: &str) -> Result<Verdict, String> {
    let mut words = reply.splitn(4, ' ');
    match (words.next(), words.next(), words.next(), words.next()) {
        (Some("ok"), Some(height), Some(tip), None) => Ok(Verdict::Valid {
            height: height
                .parse()
                .map_err(|_| format!("bad height in {reply:?}"))?,
            tip: tip.parse().map_err(|_| format!("bad hash in {reply:?}"))?,
        }),
        (Some("invalid"), Some(mode), Some(result), reason) => Ok(Verdict::Invalid {
            mode: mode.to_owned(),
            result: result.to_owned(),
            reason: reason
                .filter(|r| *r != "-" && !r.is_empty())
                .map(str::to_owned),
        }),
        _ => Err(format!("the engine said {reply:?}")),
    }
}

/// The interpreter named by [`KERNEL_PYTHON_ENV`], if set and not empty.
#[must_use]
pub fn kernel_python_from_env() -> Option<PathBuf> {
    std::env::var_os(KERNEL_PYTHON_ENV)
        .filter(|v| !v.is_empty())
        .map(PathBuf::from)
}

#[cfg(test)]
mod tests {
    use super::{Verdict, parse_verdict};

    #[test]
    fn verdict_lines_parse_and_anything_else_is_an_error() {
        let tip = "0f9188f13cb7b2c71f2a335e3a4fc328bf5beb436012afca590b1a11466e2206";
        assert_eq!(
            parse_verdict(&format!("ok 0 {tip}")),
            Ok(Verdict::Valid {
                height: 0,
                tip: tip.parse().expect("hash")
            })
        );
        let with_spaces = "invalid INVALID CONSENSUS block-script-verify-flag-failed (Invalid \
                           Schnorr signature)";
        let Ok(Verdict::Invalid {
            mode,
            result,
            reason,
        }) = parse_verdict(with_spaces)
        else {
            panic!("an invalid verdict");
        };
        assert_eq!(mode, "INVALID");
        assert_eq!(result, "CONSENSUS");
        let reason = reason.expect("a reason");
        assert_eq!(
            reason,
            "block-script-verify-flag-failed (Invalid Schnorr signature)"
        );
        assert_eq!(
            parse_verdict("invalid INVALID MUTATED -"),
            Ok(Verdict::Invalid {
                mode: "INVALID".into(),
                result: "MUTATED".into(),
                reason: None
            })
        );
        assert!(parse_verdict("error not hex").is_err());
        assert!(parse_verdict("ok x y").is_err());
        assert!(parse_verdict("").is_err());
    }
}
