//! A regtest chain simulator: a fake `bitcoind` for the demo and the tests.
//!
//! It speaks Bitcoin Core's JSON-RPC over HTTP (basic auth or a cookie file) and publishes ZMQ
//! `hashblock`, with Core's formats: `getblocktemplate` in Core 27's segwit format with a
//! synthetic mempool of witness and legacy transactions, `submitblock` with full validation and
//! Core's reject strings, and the read-only chain queries a pool uses. "The network" mines a
//! block on the tip every [`ChainSimConfig::block_interval`] and on demand.
//!
//! `submitblock` checks, in Core's order, with Core's BIP22 result strings (the reply is JSON
//! `null` on success, the string otherwise):
//!
//! | check | result |
//! |---|---|
//! | hash already known (main or side branch) | `duplicate` |
//! | header hash above the target of its own `nBits` | `high-hash` |
//! | merkle root | `bad-txnmrklroot` |
//! | the same txid twice | `bad-txns-duplicate` |
//! | a second coinbase | `bad-cb-multiple` |
//! | coinbase scriptSig not 2 to 100 bytes | `bad-cb-length` |
//! | weight over 4 000 000 | `bad-blk-weight` |
//! | parent unknown | `prev-blk-not-found` |
//! | `nBits` not the chain's | `bad-diffbits` |
//! | time at or below the median of the last 11 blocks | `time-too-old` |
//! | time over 2 h ahead of the clock | `time-too-new` |
//! | BIP34 height push at the start of the coinbase scriptSig | `bad-cb-height` |
//! | witness reserved value not one 32-byte item | `bad-witness-nonce-size` |
//! | witness commitment mismatch | `bad-witness-merkle-match` |
//! | witness data without a commitment | `unexpected-witness` |
//! | a non-coinbase transaction not in the simulator's mempool | `bad-txns-inputs-missingorspent` |
//! | coinbase outputs above subsidy + fees of the included transactions | `bad-cb-amount` |
//! | valid, but its parent is not the tip (stored on a side branch, no reorg) | `inconclusive` |
//!
//! Core answers `bad-prevblk` only for a block whose parent is known to be invalid; the
//! simulator does not keep invalid blocks, so it never sends it. A block that does not
//! deserialize, or does not start with a coinbase, is JSON-RPC error `-22`. Scripts and
//! signatures are not checked: mempool transactions are synthetic (valid serialization, txid,
//! wtxid, weight and fee; random signatures).
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

mod rpc;
mod state;
mod zmq;

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use bitcoin::BlockHash;
use tokio::sync::watch;
use tokio::task::JoinHandle;

pub use state::{SubmittedBlock, block_subsidy};

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
    /// Mempool size kept by the refill (capped at 2000 transactions).
    pub mempool_target: usize,
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
    /// Seed of the synthetic mempool; 0 takes one from the OS.
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

    fn mine(&self) -> BlockHash {
        self.mine_to(None)
    }

    /// Mines a block on the tip paying `payout` (default: the simulator's address).
    fn mine_to(&self, payout: Option<&bitcoin::ScriptBuf>) -> BlockHash {
        let (hash, updates) = {
            let mut s = self.lock();
            let block = s.build_network_block(self.skip_own_pow, payout);
            let hash = block.block_hash();
            let res = s.submit(&block, self.skip_own_pow, false);
            assert!(
                res.is_ok(),
                "the simulator's own block was refused: {res:?} (hard bits need skip_own_pow)"
            );
            (hash, s.updates())
        };
        self.after_change(Some(hash), updates);
        hash
    }
}

/// The simulator's entry point.
#[derive(Debug)]
pub struct ChainSim;

impl ChainSim {
    /// Binds the RPC and ZMQ sockets and starts serving on the current Tokio runtime.
    ///
    /// # Errors
    /// A socket cannot be bound, the cookie file cannot be written, or `bits` is not a valid
    /// compact target.
    pub async fn start(config: ChainSimConfig) -> std::io::Result<ChainSimHandle> {
        let seed = if config.seed == 0 {
            let mut b = [0u8; 8];
            getrandom::fill(&mut b).map_err(std::io::Error::other)?;
            u64::from_le_bytes(b)
        } else {
            config.seed
        };
        let st = state::ChainState::new(config.bits, config.mempool_target, seed)
            .map_err(|e| std::io::Error::new(std::io::ErrorKind::InvalidInput, e))?;
        if !config.skip_own_pow
            && state::ChainState::difficulty(config.bits) > OWN_POW_DIFFICULTY_MAX
        {
            return Err(std::io::Error::new(
                std::io::ErrorKind::InvalidInput,
                format!(
                    "bits {:08x} are too hard for the simulator to mine its own blocks; \
                     set skip_own_pow",
                    config.bits
                ),
            ));
        }
        let (user, password, cookie) = match &config.auth {
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
        };
        let (zmq, zmq_endpoint, zmq_task) = zmq::Publisher::bind(config.zmq_port).await?;
        let listener = tokio::net::TcpListener::bind(("127.0.0.1", config.rpc_port)).await?;
        let rpc_addr = listener.local_addr()?;
        let updates = st.updates();
        let (changes, _) = watch::channel(updates);
        let shared = Arc::new(Shared {
            state: Mutex::new(st),
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
        let mut tasks = vec![zmq_task];
        tasks.push(tokio::spawn(rpc::serve(listener, Arc::clone(&shared))));
        if let Some(every) = config.block_interval {
            let sh = Arc::clone(&shared);
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
            let sh = Arc::clone(&shared);
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
        Ok(ChainSimHandle {
            shared,
            rpc_addr,
            zmq_endpoint,
            cookie,
            tasks,
        })
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
    /// 100 000).
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
