//! A regtest chain simulator: a fake `bitcoind` for the demo and the tests.
//!
//! It speaks Bitcoin Core's JSON-RPC over HTTP (basic auth or a cookie file) and publishes ZMQ
//! `hashblock`, with Core's formats: `getblocktemplate` in Core 27's segwit format, `submitblock`
//! with full validation and Core's reject strings, reorg hooks and the read-only chain queries
//! a pool uses. "The network" mines a block on the tip every [`ChainSimConfig::block_interval`]
//! and on demand ([`ChainSimHandle::mine_network_block`], or on any known block with
//! [`ChainSimHandle::mine_network_block_on`]).
//!
//! **Chain.** The genesis block is regtest's real one. At start the simulator mines
//! [`ChainSimConfig::premine_blocks`] blocks (101 by default, a few milliseconds) to its own
//! key, so coinbases have matured. The active chain is the most-work chain of valid blocks, as
//! in Core: a valid side-branch block that gives its branch more work than the active chain
//! becomes the tip (a reorg: the UTXO set is rebuilt, disconnected transactions go back to the
//! mempool, `hashblock` is published for the new tip); of equal work, the first seen stays.
//! `invalidateblock <hash>` marks a block and its descendants invalid and activates the
//! most-work valid chain (often the block's parent); `reconsiderblock <hash>` clears the mark
//! on the block, its descendants and its ancestors and does the same. `getblockheader` and
//! `getblock` report Core's `confirmations`: `tip height - height + 1` on the active chain, -1
//! off it (side branch or invalid).
//!
//! **Mempool.** Real transactions, signed by the simulator's wallet (four keys derived from
//! [`ChainSimConfig::seed`]): P2WPKH, P2TR key path (BIP341 Schnorr, default sighash), P2PKH
//! and P2SH-P2WPKH spends of matured coinbases and of earlier spends, unconfirmed chains
//! included (listed with Core's `depends`). Fees are real (inputs minus outputs), txids and
//! wtxids come from the serialization, sigops are Core's cost. Up to
//! [`ChainSimConfig::mempool_target`] transactions (at most 2000), refilled after each block.
//!
//! **Validation.** `submitblock` checks, in Core's order, with Core's BIP22 result strings (the
//! reply is JSON `null` on success, the string otherwise):
//!
//! | check | result |
//! |---|---|
//! | hash already known (valid / invalid) | `duplicate` / `duplicate-invalid` |
//! | header hash above the target of its own `nBits` | `high-hash` |
//! | merkle root | `bad-txnmrklroot` |
//! | the same txid twice | `bad-txns-duplicate` |
//! | a second coinbase | `bad-cb-multiple` |
//! | coinbase scriptSig not 2 to 100 bytes | `bad-cb-length` |
//! | weight over 4 000 000 | `bad-blk-weight` |
//! | parent unknown / invalid | `prev-blk-not-found` / `bad-prevblk` |
//! | `nBits` not the chain's | `bad-diffbits` |
//! | time at or below the median of the last 11 blocks of its branch | `time-too-old` |
//! | time over 2 h ahead of the clock | `time-too-new` |
//! | BIP34 height push at the start of the coinbase scriptSig | `bad-cb-height` |
//! | witness reserved value not one 32-byte item | `bad-witness-nonce-size` |
//! | witness commitment mismatch | `bad-witness-merkle-match` |
//! | witness data without a commitment | `unexpected-witness` |
//! | on connection: an input missing or spent | `bad-txns-inputs-missingorspent` |
//! | on connection: a coinbase spent too early | `bad-txns-premature-spend-of-coinbase` |
//! | on connection: outputs above inputs | `bad-txns-in-belowout` |
//! | on connection: sigop cost over 80 000 | `bad-blk-sigops` |
//! | on connection: coinbase above subsidy + fees | `bad-cb-amount` |
//! | valid, but its branch has no more work than the active chain | `inconclusive` |
//!
//! A block that does not deserialize, or does not start with a coinbase, is JSON-RPC error
//! `-22`. The simulator does not run scripts. **Bitcoin Core's own engine** does, when
//! [`ChainSimConfig::kernel_python`] names a Python with `py-bitcoinkernel`
//! (`scripts/kernel-venv`; `Default` reads [`KERNEL_PYTHON_ENV`]): a helper process keeps a
//! fresh regtest chainstate and is fed every block of the simulator's tree in order from
//! genesis, network blocks included. After the simulator's checks, the engine judges each
//! block: when both reject, the simulator's reason is the answer; when only the engine
//! rejects (a bad signature, say), the block is marked invalid, the tip moves back, and the
//! answer is Core's reason as the engine's log gives it (`block-script-verify-flag-failed
//! (Invalid Schnorr signature)`), or `kernel-<BlockValidationResult>` if the log has none.
//! [`ChainSimHandle::kernel_stats`] counts the verdicts. The engine runs only with regtest
//! `bits` and the simulator's own proof of work; it checks an empty block in 0.3 ms, one of
//! 80 transactions in about 8 ms.
//!
//! Runtime: [`ChainSim::start`] is `async` and spawns its tasks (HTTP server, ZMQ publisher,
//! timers) on the caller's Tokio runtime, which must have the `net` and `time` drivers enabled
//! (any `#[tokio::main]` or `#[tokio::test]` runtime does). Every [`ChainSimHandle`] method
//! except [`ChainSimHandle::stop`] is synchronous and can be called from any thread. Dropping
//! the handle stops the simulator too. Callers without a Tokio runtime use
//! [`ChainSim::start_in_own_runtime`], which runs the same tasks on a private one-thread
//! runtime.
//!
//! ```no_run
//! # async fn demo() -> std::io::Result<()> {
//! use warppool_loadgen::chain::{ChainSim, ChainSimConfig};
//! let sim = ChainSim::start(ChainSimConfig::default()).await?;
//! println!("rpc {} zmq {}", sim.rpc_url(), sim.zmq_endpoint());
//! let hash = sim.mine_network_block();
//! assert_eq!(sim.tip(), hash);
//! sim.stop().await;
//! # Ok(())
//! # }
//! ```

mod kernel;
mod mempool;
mod reorg;
mod rpc;
mod state;
mod validate;
mod wallet;
mod zmq;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bitcoin::BlockHash;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use kernel::{KERNEL_PYTHON_ENV, KernelStats, kernel_python_from_env};
pub use state::{SubmittedBlock, block_subsidy};

/// Blocks mined at start by default: enough for the first coinbase to mature
/// (`COINBASE_MATURITY` + 1), so the mempool has coins to spend from the first template.
pub const PREMINE_BLOCKS_DEFAULT: u32 = mempool::COINBASE_MATURITY + 1;
/// The most blocks [`ChainSimConfig::premine_blocks`] may ask for.
pub const PREMINE_BLOCKS_MAX: u32 = 1_000;

/// Regtest's `nBits`: a target so easy that almost every hash is a block.
pub const REGTEST_BITS: u32 = 0x207f_ffff;

/// The hardest difficulty at which the simulator grinds its own blocks (about 2^20 hashes
/// expected); harder `bits` need [`ChainSimConfig::skip_own_pow`].
pub const OWN_POW_DIFFICULTY_MAX: f64 = 1.0 / 4096.0;

/// How RPC clients authenticate.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RpcAuthConfig {
    /// `-rpcuser`/`-rpcpassword`.
    UserPassword {
        /// The user name.
        user: String,
        /// The password.
        password: String,
    },
    /// Core's default: user `__cookie__` and a random password written to this file as
    /// `__cookie__:<password>` at start (and removed at stop).
    Cookie(PathBuf),
}

/// How the simulator is set up. `Default` gives a regtest node on random loopback ports.
#[derive(Clone, Debug)]
pub struct ChainSimConfig {
    /// JSON-RPC port on 127.0.0.1; 0 picks a free one.
    pub rpc_port: u16,
    /// ZMQ PUB port on 127.0.0.1; 0 picks a free one.
    pub zmq_port: u16,
    /// Authentication.
    pub auth: RpcAuthConfig,
    /// `nBits` of every block after genesis (no retargeting, as on regtest).
    pub bits: u32,
    /// Mine a network block this often; `None` only on demand.
    pub block_interval: Option<Duration>,
    /// Do not grind a nonce for the simulator's OWN blocks (they are accepted without proof
    /// of work). Required when `bits` is harder than [`OWN_POW_DIFFICULTY_MAX`] (`start`
    /// refuses otherwise); blocks submitted by miners are always checked.
    pub skip_own_pow: bool,
    /// Mempool size kept by the refill (capped at 2000 transactions). The transactions are
    /// real: signed spends of the simulator's matured coinbases and of earlier spends.
    pub mempool_target: usize,
    /// Network blocks mined at start, before any client connects (no `hashblock` for
    /// them). The default, [`PREMINE_BLOCKS_DEFAULT`], matures the first coinbase so the
    /// first template has transactions; with fewer the mempool stays empty until height 101.
    /// At most [`PREMINE_BLOCKS_MAX`].
    pub premine_blocks: u32,
    /// A Python interpreter with `py-bitcoinkernel` installed (`scripts/kernel-venv`): when
    /// set, Bitcoin Core's own engine judges every block after the simulator (see the module
    /// docs). `Default` takes it from [`KERNEL_PYTHON_ENV`]. Needs regtest `bits` and the
    /// simulator's own proof of work; otherwise the engine stays off
    /// ([`KernelStats::inactive_reason`]).
    pub kernel_python: Option<PathBuf>,
    /// Add one transaction this often (up to `mempool_target`); `None` refills only after
    /// blocks.
    pub mempool_refill_interval: Option<Duration>,
    /// The longest a long-poll `getblocktemplate` waits before answering with the current
    /// template.
    pub longpoll_timeout: Duration,
    /// Send JSON-RPC replies with chunked transfer encoding instead of `Content-Length`.
    pub chunked_replies: bool,
    /// Start in initial block download (`getblocktemplate` refuses with -10).
    pub initial_block_download: bool,
    /// Seed of the wallet's keys and the mempool's shapes and fee rates; 0 takes one from
    /// the OS.
    pub seed: u64,
}

impl Default for ChainSimConfig {
    fn default() -> Self {
        Self {
            rpc_port: 0,
            zmq_port: 0,
            auth: RpcAuthConfig::UserPassword {
                user: "warppool".into(),
                password: "warppool".into(),
            },
            bits: REGTEST_BITS,
            block_interval: None,
            skip_own_pow: false,
            mempool_target: 16,
            premine_blocks: PREMINE_BLOCKS_DEFAULT,
            kernel_python: kernel_python_from_env(),
            mempool_refill_interval: Some(Duration::from_secs(10)),
            longpoll_timeout: Duration::from_secs(30),
            chunked_replies: false,
            initial_block_download: false,
            seed: 0,
        }
    }
}

/// The HTTP `Authorization` header value for basic auth: `Basic <base64(user:password)>`.
#[must_use]
pub fn basic_auth_header(user: &str, password: &str) -> String {
    rpc::basic_auth(user, password)
}

/// State shared by the handle and the tasks.
pub(crate) struct Shared {
    state: Mutex<state::ChainState>,
    /// Core's engine, when configured; always locked after `state`.
    kernel: Mutex<Option<kernel::Kernel>>,
    /// Why a configured engine is not running.
    kernel_inactive_reason: Option<String>,
    /// The update counter, for long-poll waiters.
    changes: watch::Sender<u64>,
    ibd: AtomicBool,
    rpc_failing: AtomicBool,
    rpc_dropping: AtomicBool,
    skip_own_pow: bool,
    zmq: zmq::Publisher,
    zmq_seq: AtomicU32,
    user: String,
    password: String,
    chunked: bool,
    longpoll_timeout: Duration,
}

impl std::fmt::Debug for Shared {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The password stays out of logs.
        f.debug_struct("Shared")
            .field("user", &self.user)
            .field("ibd", &self.ibd)
            .field("rpc_failing", &self.rpc_failing)
            .field("rpc_dropping", &self.rpc_dropping)
            .finish_non_exhaustive()
    }
}

impl Shared {
    fn lock(&self) -> MutexGuard<'_, state::ChainState> {
        // A panic under the lock leaves the chain consistent enough for a simulator.
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Publishes the counter and, when the tip moved, `hashblock`.
    fn after_change(&self, new_tip: Option<BlockHash>, updates: u64) {
        self.changes.send_replace(updates);
        if let Some(hash) = new_tip {
            let seq = self.zmq_seq.fetch_add(1, Ordering::Relaxed);
            self.zmq.hashblock(hash, seq);
        }
    }

    fn kernel(&self) -> MutexGuard<'_, Option<kernel::Kernel>> {
        self.kernel.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// The simulator's checks, then the engine's: the final answer, the new tip if it
    /// moved, and the update counter.
    fn process_block(
        &self,
        block: &bitcoin::Block,
        skip_pow: bool,
        from_miner: bool,
    ) -> (Result<(), state::SubmitError>, Option<BlockHash>, u64) {
        let mut s = self.lock();
        let before = s.tip().hash;
        let mut result = s.submit(block, skip_pow, from_miner);
        if let Some(k) = self.kernel().as_mut() {
            result = k.judge(&mut s, block, result);
        }
        let after = s.tip().hash;
        (result, (after != before).then_some(after), s.updates())
    }

    fn mine(&self) -> BlockHash {
        self.mine_to(None)
    }

    /// Mines a block on the tip paying `payout` (default: the simulator's address).
    fn mine_to(&self, payout: Option<&bitcoin::ScriptBuf>) -> BlockHash {
        let tip = self.lock().tip().hash;
        self.mine_on(&tip, payout, true).expect("the tip is known")
    }

    /// Mines a block on `parent` (None if unknown); publishes `hashblock` if asked and the
    /// tip moved.
    fn mine_on(
        &self,
        parent: &BlockHash,
        payout: Option<&bitcoin::ScriptBuf>,
        publish: bool,
    ) -> Option<BlockHash> {
        let block = self.lock().build_network_block(
            parent,
            payout,
            state::now_secs(),
            self.skip_own_pow,
        )?;
        let hash = block.block_hash();
        let (res, new_tip, updates) = self.process_block(&block, self.skip_own_pow, false);
        assert!(
            res.is_ok() || res == Err(state::SubmitError::reject("inconclusive")),
            "the simulator's own block was refused: {res:?} (hard bits need skip_own_pow)"
        );
        if publish {
            self.after_change(new_tip, updates);
        }
        Some(hash)
    }

    /// `invalidateblock` / `reconsiderblock`: runs `change` on the chain, starts the engine
    /// over on the new active chain, publishes the new tip.
    fn change_validity(
        &self,
        change: impl FnOnce(&mut state::ChainState) -> Result<(), &'static str>,
    ) -> Result<(), &'static str> {
        let (new_tip, updates) = {
            let mut s = self.lock();
            let before = s.tip().hash;
            change(&mut s)?;
            if let Some(k) = self.kernel().as_mut()
                && k.stats.active
                && let Err(why) = k.resync(&s)
            {
                k.fail(why);
            }
            let after = s.tip().hash;
            ((after != before).then_some(after), s.updates())
        };
        self.after_change(new_tip, updates);
        Ok(())
    }

    fn kernel_stats(&self) -> KernelStats {
        self.kernel().as_ref().map_or_else(
            || KernelStats {
                inactive_reason: self.kernel_inactive_reason.clone(),
                ..KernelStats::default()
            },
            |k| k.stats.clone(),
        )
    }
}

/// The simulator's entry point.
#[derive(Debug)]
pub struct ChainSim;

impl ChainSim {
    /// Binds the RPC and ZMQ sockets, mines the premine (fed to Core's engine when it is
    /// configured) and starts serving on the current Tokio runtime.
    ///
    /// # Errors
    /// A socket cannot be bound, the cookie file cannot be written, `bits` is not a valid
    /// compact target, or `premine_blocks` is above [`PREMINE_BLOCKS_MAX`].
    pub async fn start(config: ChainSimConfig) -> std::io::Result<ChainSimHandle> {
        let st = Self::initial_state(&config)?;
        let (user, password, cookie) = Self::credentials(&config.auth)?;
        let (kernel, kernel_inactive_reason) = Self::start_kernel(&config);
        let (zmq, zmq_endpoint, zmq_task) = zmq::Publisher::bind(config.zmq_port).await?;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", config.rpc_port)).await?;
        let rpc_addr = listener.local_addr()?;
        let (changes, _) = watch::channel(st.updates());
        let shared = Arc::new(Shared {
            state: Mutex::new(st),
            kernel: Mutex::new(kernel),
            kernel_inactive_reason,
            changes,
            ibd: AtomicBool::new(config.initial_block_download),
            rpc_failing: AtomicBool::new(false),
            rpc_dropping: AtomicBool::new(false),
            skip_own_pow: config.skip_own_pow,
            zmq,
            zmq_seq: AtomicU32::new(0),
            user,
            password,
            chunked: config.chunked_replies,
            longpoll_timeout: config.longpoll_timeout,
        });
        Self::premine(&shared, config.premine_blocks);
        shared.changes.send_replace(shared.lock().updates());
        let mut tasks = vec![zmq_task];
        tasks.push(tokio::spawn(rpc::serve(listener, Arc::clone(&shared))));
        Self::spawn_timers(&shared, &config, &mut tasks);
        Ok(ChainSimHandle {
            shared,
            rpc_addr,
            zmq_endpoint,
            cookie,
            tasks,
        })
    }

    fn initial_state(config: &ChainSimConfig) -> std::io::Result<state::ChainState> {
        let invalid = |m: String| std::io::Error::new(std::io::ErrorKind::InvalidInput, m);
        let seed = if config.seed == 0 {
            let mut b = [0u8; 8];
            getrandom::fill(&mut b).map_err(std::io::Error::other)?;
            u64::from_le_bytes(b)
        } else {
            config.seed
        };
        if config.premine_blocks > PREMINE_BLOCKS_MAX {
            return Err(invalid(format!(
                "premine_blocks {} is above {PREMINE_BLOCKS_MAX}",
                config.premine_blocks
            )));
        }
        let st =
            state::ChainState::new(config.bits, config.mempool_target, seed).map_err(invalid)?;
        if !config.skip_own_pow
            && state::ChainState::difficulty(config.bits) > OWN_POW_DIFFICULTY_MAX
        {
            return Err(invalid(format!(
                "bits {:08x} are too hard for the simulator to mine its own blocks; \
                 set skip_own_pow",
                config.bits
            )));
        }
        Ok(st)
    }

    /// User, password and cookie file (written here) for the configured authentication.
    fn credentials(auth: &RpcAuthConfig) -> std::io::Result<(String, String, Option<PathBuf>)> {
        Ok(match auth {
            RpcAuthConfig::UserPassword { user, password } => {
                (user.clone(), password.clone(), None)
            }
            RpcAuthConfig::Cookie(path) => {
                let mut b = [0u8; 32];
                getrandom::fill(&mut b).map_err(std::io::Error::other)?;
                let password = warppool_core::hex::encode(&b);
                std::fs::write(path, format!("__cookie__:{password}"))?;
                ("__cookie__".to_owned(), password, Some(path.clone()))
            }
        })
    }

    /// Core's engine when configured and usable, or why not.
    fn start_kernel(config: &ChainSimConfig) -> (Option<kernel::Kernel>, Option<String>) {
        let Some(python) = &config.kernel_python else {
            return (None, None);
        };
        if config.bits != REGTEST_BITS || config.skip_own_pow {
            let why = "Core's regtest engine needs regtest bits and real proof of work";
            return (None, Some(why.to_owned()));
        }
        match kernel::Kernel::start(python) {
            Ok(k) => (Some(k), None),
            Err(why) => {
                eprintln!("chain simulator: Core's engine is off: {why}");
                (None, Some(why))
            }
        }
    }

    /// The start-up blocks: on the tip, to the simulator's key, without `hashblock`.
    fn premine(shared: &Shared, blocks: u32) {
        // Times from the past up to now, one second apart, so later blocks are not ahead of
        // the clock.
        let start = state::now_secs().saturating_sub(blocks);
        for i in 0..blocks {
            let (block, skip) = {
                let s = shared.lock();
                let tip = s.tip().hash;
                let block = s.build_network_block(&tip, None, start + i, shared.skip_own_pow);
                (block.expect("the tip is known"), shared.skip_own_pow)
            };
            let (res, _, _) = shared.process_block(&block, skip, false);
            assert!(res.is_ok(), "a premined block was refused: {res:?}");
        }
    }

    fn spawn_timers(
        shared: &Arc<Shared>,
        config: &ChainSimConfig,
        tasks: &mut Vec<JoinHandle<()>>,
    ) {
        if let Some(every) = config.block_interval {
            let sh = Arc::clone(shared);
            tasks.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.tick().await; // the first tick is immediate
                loop {
                    tick.tick().await;
                    let sh2 = Arc::clone(&sh);
                    // Grinding may take a moment with harder bits: off the reactor.
                    let _ = tokio::task::spawn_blocking(move || sh2.mine()).await;
                }
            }));
        }
        if let Some(every) = config.mempool_refill_interval {
            let sh = Arc::clone(shared);
            tasks.push(tokio::spawn(async move {
                let mut tick = tokio::time::interval(every);
                tick.tick().await;
                loop {
                    tick.tick().await;
                    let (added, updates) = {
                        let mut s = sh.lock();
                        (s.refill_mempool(1), s.updates())
                    };
                    if added > 0 {
                        sh.after_change(None, updates);
                    }
                }
            }));
        }
    }
}

impl ChainSim {
    /// Starts the simulator on a Tokio runtime of its own (one worker thread), for callers
    /// that have none (a synchronous test, a compio program). The runtime lives as long as the
    /// returned value; dropping it stops everything. May be called and dropped anywhere,
    /// including inside another runtime's task.
    ///
    /// # Errors
    /// As [`ChainSim::start`], or the runtime cannot be built.
    pub fn start_in_own_runtime(config: ChainSimConfig) -> std::io::Result<ChainSimRuntime> {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .thread_name("chainsim")
            .enable_all()
            .build()?;
        // `block_on` may not run inside another runtime's context: start from a plain thread.
        let (runtime, handle) = std::thread::scope(|scope| {
            scope
                .spawn(move || {
                    let handle = runtime.block_on(ChainSim::start(config));
                    (runtime, handle)
                })
                .join()
                .map_err(|_| std::io::Error::other("chain simulator start-up panicked"))
        })?;
        Ok(ChainSimRuntime {
            handle: Some(handle?),
            runtime: Some(runtime),
        })
    }
}

/// A simulator with its own runtime, from [`ChainSim::start_in_own_runtime`]. Dereferences to
/// its [`ChainSimHandle`].
#[derive(Debug)]
pub struct ChainSimRuntime {
    handle: Option<ChainSimHandle>,
    runtime: Option<tokio::runtime::Runtime>,
}

impl std::ops::Deref for ChainSimRuntime {
    type Target = ChainSimHandle;

    fn deref(&self) -> &ChainSimHandle {
        self.handle.as_ref().expect("present until drop")
    }
}

impl Drop for ChainSimRuntime {
    fn drop(&mut self) {
        drop(self.handle.take()); // aborts the tasks
        if let Some(rt) = self.runtime.take() {
            rt.shutdown_background();
        }
    }
}

/// A running simulator. Dropping it stops the tasks (and removes the cookie file).
#[derive(Debug)]
pub struct ChainSimHandle {
    shared: Arc<Shared>,
    rpc_addr: SocketAddr,
    zmq_endpoint: String,
    cookie: Option<PathBuf>,
    tasks: Vec<JoinHandle<()>>,
}

impl ChainSimHandle {
    /// The JSON-RPC URL, `http://127.0.0.1:<port>/`.
    #[must_use]
    pub fn rpc_url(&self) -> String {
        format!("http://{}/", self.rpc_addr)
    }

    /// The JSON-RPC socket address.
    #[must_use]
    pub const fn rpc_addr(&self) -> SocketAddr {
        self.rpc_addr
    }

    /// The RPC user and password (`__cookie__` and the cookie's password in cookie mode).
    #[must_use]
    pub fn rpc_auth(&self) -> (String, String) {
        (self.shared.user.clone(), self.shared.password.clone())
    }

    /// The cookie file, in cookie mode.
    #[must_use]
    pub fn cookie_path(&self) -> Option<&std::path::Path> {
        self.cookie.as_deref()
    }

    /// The ZMQ PUB endpoint, `tcp://127.0.0.1:<port>`.
    #[must_use]
    pub fn zmq_endpoint(&self) -> String {
        self.zmq_endpoint.clone()
    }

    /// Mines a "network" block on the tip now (coinbase to the simulator's address, the
    /// mempool's transactions), publishes `hashblock` and returns its hash.
    ///
    /// # Panics
    /// If the simulator's own block is refused, which happens only with hard `bits` and
    /// `skip_own_pow` off when the grind gives up.
    pub fn mine_network_block(&self) -> BlockHash {
        self.shared.mine()
    }

    /// Mines a "network" block on `parent` (any known block: the tip, an older block, a side
    /// branch) and returns its hash. On the tip it is [`ChainSimHandle::mine_network_block`];
    /// elsewhere the block has only a coinbase and becomes the tip only if its branch then
    /// has more work than the active chain (a reorg, with `hashblock`), as in Core.
    ///
    /// # Panics
    /// If `parent` is unknown, or the block is refused (see `mine_network_block`).
    pub fn mine_network_block_on(&self, parent: &BlockHash) -> BlockHash {
        self.shared
            .mine_on(parent, None, true)
            .unwrap_or_else(|| panic!("mine_network_block_on: unknown parent {parent}"))
    }

    /// Core's `invalidateblock`: marks the block and its descendants invalid; the active
    /// chain becomes the most-work valid chain (publishing `hashblock` for a new tip), the
    /// mempool and template follow it.
    ///
    /// # Errors
    /// The block is unknown, or is genesis.
    pub fn invalidate_block(&self, hash: &BlockHash) -> Result<(), String> {
        self.shared
            .change_validity(|s| s.invalidate(hash))
            .map_err(str::to_owned)
    }

    /// Core's `reconsiderblock`: clears the invalid mark on the block, its descendants and
    /// its ancestors and activates the most-work valid chain.
    ///
    /// # Errors
    /// The block is unknown.
    pub fn reconsider_block(&self, hash: &BlockHash) -> Result<(), String> {
        self.shared
            .change_validity(|s| s.reconsider(hash).map(|_| ()))
            .map_err(str::to_owned)
    }

    /// Whether Core's engine is consulted, and its counters.
    #[must_use]
    pub fn kernel_stats(&self) -> KernelStats {
        self.shared.kernel_stats()
    }

    /// Core's `confirmations` of a block: `tip height - height + 1` on the active chain, -1
    /// off it (side branch or invalid), `None` when unknown.
    #[must_use]
    pub fn confirmations(&self, hash: &BlockHash) -> Option<i64> {
        let s = self.shared.lock();
        s.lookup(hash).map(|e| s.confirmations(e))
    }

    /// The best block hash.
    #[must_use]
    pub fn tip(&self) -> BlockHash {
        self.shared.lock().tip().hash
    }

    /// The best height.
    #[must_use]
    pub fn height(&self) -> u32 {
        self.shared.lock().height()
    }

    /// The number of transactions in the mempool.
    #[must_use]
    pub fn mempool_len(&self) -> usize {
        self.shared.lock().mempool_len()
    }

    /// Blocks submitted through `submitblock` that became the tip, oldest first (the newest
    /// 100 000). A later reorg does not remove them: use [`ChainSimHandle::confirmations`].
    #[must_use]
    pub fn submitted_blocks(&self) -> Vec<SubmittedBlock> {
        self.shared.lock().submitted()
    }

    /// Puts the node in or out of initial block download.
    pub fn set_ibd(&self, ibd: bool) {
        self.shared.ibd.store(ibd, Ordering::Relaxed);
    }

    /// While set, every RPC request gets HTTP 500 with a non-JSON body (an outage).
    pub fn set_rpc_failing(&self, failing: bool) {
        self.shared.rpc_failing.store(failing, Ordering::Relaxed);
    }

    /// While set, RPC connections are closed without a response (new ones right after
    /// accept, open ones at their next request): a crashed or unreachable node.
    pub fn set_rpc_dropping(&self, dropping: bool) {
        self.shared.rpc_dropping.store(dropping, Ordering::Relaxed);
    }

    /// Stops every task and waits for them; removes the cookie file.
    pub async fn stop(mut self) {
        for t in &self.tasks {
            t.abort();
        }
        for t in self.tasks.drain(..) {
            let _ = t.await;
        }
        self.remove_cookie();
    }

    fn remove_cookie(&mut self) {
        if let Some(p) = self.cookie.take() {
            let _ = std::fs::remove_file(p);
        }
    }
}

impl Drop for ChainSimHandle {
    fn drop(&mut self) {
        for t in &self.tasks {
            t.abort();
        }
        self.remove_cookie();
    }
}
