//! WarpPool's sans-IO domain core.
//!
//! Everything here is a pure function over bytes and values: no sockets, no clocks, no threads.
//! Time and randomness are passed in by the caller. The data plane (`warppool-net`) and the
//! control plane (`warppool-control`) meet only through the types defined here.

pub mod difficulty;
pub mod hex;
pub mod limits;
pub mod stratum;
pub mod types;
pub mod vardiff;

pub use difficulty::{Difficulty, DifficultyError, ShareTarget};
pub use types::{
    Extranonce1, Extranonce2, ExtranonceSize, JobId, Nonce, Ntime, NtimeDelta, TypeError,
    VersionMask, WorkerName,
};
