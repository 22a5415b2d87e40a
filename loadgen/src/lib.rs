//! WarpPool's load generator and regtest chain simulator.
//!
//! - [`chain`]: a fake `bitcoind` (JSON-RPC, ZMQ `hashblock`, Bitcoin Core's
//!   `getblocktemplate` format, full `submitblock` validation) for `warppool demo` and tests.
//! - [`miner`]: a simulated Stratum V1 CPU miner that really mines (demo, end-to-end tests).
//! - [`load`]: the load generator (`warppool-loadgen run`): thousands of miners with real
//!   firmware personalities, scenarios, latency histograms, a JSON report.
//!
//! The binary `warppool-loadgen` runs it standalone: `warppool-loadgen node --help`.

pub mod chain;
pub mod load;
pub mod miner;
