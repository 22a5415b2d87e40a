//! WarpPool's load generator and regtest chain simulator.
//!
//! - [`chain`]: a fake `bitcoind` (JSON-RPC, ZMQ `hashblock`, Bitcoin Core's
//!   `getblocktemplate` format, full `submitblock` validation) for `warppool demo` and tests.
//!
//! The binary `warppool-loadgen` runs it standalone: `warppool-loadgen node --help`.

pub mod chain;
