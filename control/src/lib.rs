//! WarpPool's control plane: configuration, bitcoind RPC and ZMQ, the template loop, the
//! block path and the wiring of the `warppool` binary. It runs on Tokio; the data plane
//! (`warppool-net`) runs on its own compio shard threads and is reached through
//! `Arc<JobSet>` publications and bounded channels (DESIGN.md §2).
//!
//! Modules: [`config`] (file + environment), [`rpc`] (client, failover), [`templates`]
//! (template loop, gating, ZMQ, long-poll, watchdog), [`journal`] and [`blocks`] (a found
//! block is never lost), [`stats`] (share statistics and the storage seam), [`run`] (the
//! runtime and the wiring), [`storage`] (SQLite on one writer thread), [`live`] (the live
//! view of workers the API reads), [`health`] (the pool's conditions), [`events`] (the live
//! event hub), [`api`] (the HTTP API), [`auth`] (admin authentication: passwords, TOTP,
//! sessions, API tokens, audit log), [`metrics`] (Prometheus `/metrics`), [`secrets`]
//! (the secrets file), [`demo`]
//! (`warppool demo`: simulator, pool and miners in one process).

pub mod admin_cli;
pub mod api;
pub mod auth;
pub mod bans;
pub mod block_status;
pub mod blocks;
pub mod config;
pub mod demo;
pub mod error;
pub mod events;
pub mod health;
pub mod journal;
pub mod live;
pub mod metrics;
pub mod network;
pub mod node_admin;
pub mod payout;
pub mod rpc;
pub mod run;
pub mod secrets;
pub mod settings;
pub mod stats;
pub mod storage;
pub mod subsidy;
pub mod templates;
